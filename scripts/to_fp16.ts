// Store a model's float32 weights as float16 (the loaders upcast them: computed in float32),
// halving the file. Metadata and non-float tensors are kept; the file is replaced atomically.
//   node --import tsx scripts/to_fp16.ts models/*/model.safetensors
import fs from 'node:fs';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/formats/safetensors.ts';

const files = process.argv.slice(2);
if (!files.length) throw new Error('usage: to_fp16.ts FILE.safetensors...');
for (const f of files) {
  const before = fs.statSync(f).size;
  const { tensors, metadata } = readSafetensorsFile(f);
  for (const t of tensors.values()) void t.data; // read everything before the file is replaced
  writeSafetensorsFile(f, tensors, metadata, { float16: true });
  console.error(`${f}: ${(before / 1e6).toFixed(2)} MB → ${(fs.statSync(f).size / 1e6).toFixed(2)} MB`);
}
