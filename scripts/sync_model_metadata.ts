// Keep a transformer model directory's two descriptions of itself in step: the config embedded
// in model.safetensors' metadata (what a caller loading the file alone gets) is rewritten from
// config.yaml (what a caller loading the directory gets), e.g. after recording recommended
// sampling settings there. Tensors are kept as stored (float16 stays float16).
//   node --import tsx scripts/sync_model_metadata.ts models/emoji-class models/emoji-sketch ...
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { parseNet2NetConfig, toTamingNet2Net } from '../src/models/cond_transformer/config.ts';

const dirs = process.argv.slice(2);
if (!dirs.length) throw new Error('usage: sync_model_metadata.ts MODEL_DIR...');
for (const dir of dirs) {
  const cfg = parseNet2NetConfig(YAML.parse(fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8')), path.join(dir, 'config.yaml'));
  const file = path.join(dir, 'model.safetensors');
  const { tensors, metadata } = readSafetensorsFile(file);
  // stored as float16? (the reader upcasts, so ask the file's own header)
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(8);
  fs.readSync(fd, head, 0, 8, 0);
  const header = Buffer.alloc(Number(head.readBigUInt64LE(0)));
  fs.readSync(fd, header, 0, header.length, 8);
  fs.closeSync(fd);
  const half = Object.values(JSON.parse(header.toString('utf8')) as Record<string, { dtype?: string }>).some((t) => t.dtype === 'F16');
  for (const t of tensors.values()) void t.data; // read everything before the file is replaced
  const config = JSON.stringify(toTamingNet2Net(cfg));
  if (metadata.config === config) {
    console.error(`${file}: already in step`);
    continue;
  }
  writeSafetensorsFile(file, tensors, { ...metadata, config }, { float16: half });
  console.error(`${file}: metadata config rewritten from config.yaml`);
}
