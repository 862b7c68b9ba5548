// A committed transformer directory describes itself twice: config.yaml (loading the
// directory) and the config in model.safetensors' metadata (loading the file alone). They must
// agree — recommended sampling settings included — or the two ways of naming one model would
// sample differently. scripts/sync_model_metadata.ts rewrites the metadata from config.yaml.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { parseNet2NetConfig, toTamingNet2Net } from '../../src/models/cond_transformer/config.ts';

const models = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../models');

test("each committed transformer's config.yaml and its weights' embedded config agree", () => {
  const dirs = fs.readdirSync(models).filter((d) => /Net2NetTransformer/.test(fs.readFileSync(path.join(models, d, 'config.yaml'), 'utf8')));
  assert.ok(dirs.length >= 3, `transformer directories: ${dirs.join(', ')}`);
  for (const d of dirs) {
    const yaml = toTamingNet2Net(parseNet2NetConfig(YAML.parse(fs.readFileSync(path.join(models, d, 'config.yaml'), 'utf8')), d));
    const embedded = JSON.parse(readSafetensorsFile(path.join(models, d, 'model.safetensors')).metadata.config!);
    assert.deepEqual(embedded, yaml, `${d}: run node --import tsx scripts/sync_model_metadata.ts models/${d}`);
  }
});
