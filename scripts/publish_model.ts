// Copy a train-gpt run directory's model into a committed model directory: config.yaml and
// model.safetensors with the first/cond stage ckpt_path pointing at the committed VQGANs
// (relative to the new directory) and no machine paths (the code set's path is dropped).
//   node --import tsx scripts/publish_model.ts RUN DEST --first ../emoji-f4/model.safetensors [--cond ../sketch-f4/model.safetensors]
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { parseNet2NetConfig, toTamingNet2Net } from '../src/models/cond_transformer/config.ts';

const [run, dest, ...rest] = process.argv.slice(2);
const opt = (k: string) => (rest.includes(k) ? rest[rest.indexOf(k) + 1] : undefined);
if (!run || !dest || !opt('--first')) throw new Error('usage: publish_model.ts RUN DEST --first <ckpt> [--cond <ckpt>]');
fs.mkdirSync(dest, { recursive: true });
const yaml = YAML.parse(fs.readFileSync(path.join(run, 'config.yaml'), 'utf8')) as Record<string, any>;
const p = yaml.model.params;
p.first_stage_config.params.ckpt_path = opt('--first');
if (opt('--cond')) p.cond_stage_config.params.ckpt_path = opt('--cond');
if (yaml.latentkit) yaml.latentkit.codes = 'made by latentkit extract-codes (see README.md)';
fs.writeFileSync(path.join(dest, 'config.yaml'), YAML.stringify(yaml));
const cfg = parseNet2NetConfig(yaml, 'config.yaml');
const { tensors, metadata } = readSafetensorsFile(path.join(run, 'model.safetensors'));
writeSafetensorsFile(path.join(dest, 'model.safetensors'), tensors, { ...metadata, config: JSON.stringify(toTamingNet2Net(cfg)) });
console.error(`wrote ${dest}/config.yaml and model.safetensors (${tensors.size} tensors)`);
