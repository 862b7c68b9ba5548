// float16 storage: float32 → float16 rounding against Python's IEEE half packing (struct 'e',
// round half to even: test/fixtures/f16_round.json from scripts/make_f16_fixture.py), and
// models written with F16 weights read back as float32 equal to the rounded values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { floatToHalfBits, readSafetensors, readSafetensorsFile, writeSafetensors, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { HostTensor } from '../../src/tensor.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { pairs } = JSON.parse(fs.readFileSync(path.join(root, 'test/fixtures/f16_round.json'), 'utf8')) as { pairs: [number, number][] };

test('float32 → float16 rounds as IEEE round-half-to-even does (Python struct reference)', () => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const bad: string[] = [];
  for (const [b32, want] of pairs) {
    u[0] = b32;
    const got = floatToHalfBits(f[0]!);
    const nan = (want & 0x7c00) === 0x7c00 && want & 0x3ff;
    if (nan ? !((got & 0x7c00) === 0x7c00 && got & 0x3ff) : got !== want) bad.push(`${f[0]} (0x${b32.toString(16)}): got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
  }
  assert.ok(pairs.length > 900);
  assert.deepEqual(bad.slice(0, 5), []);
});

test('F16 storage: written on request, read back as float32 equal to the rounded values; other dtypes untouched', () => {
  const w = HostTensor.float32([2, 3], [0.1, -2.5, 65504, 1e-7, 3.14159, 70000]);
  const b = HostTensor.float32([3], [1, 2, 3]);
  const idx = HostTensor.int64([2], [5, 6]);
  const bytes = writeSafetensors({ w, b, idx }, { format: 'x' }, { float16: (name) => name !== 'b' });
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))))) as Record<string, { dtype: string }>;
  assert.equal(header.w!.dtype, 'F16');
  assert.equal(header.b!.dtype, 'F32');
  assert.equal(header.idx!.dtype, 'I64');
  const back = readSafetensors(bytes);
  const wv = Array.from(back.tensors.get('w')!.data as Float32Array);
  assert.deepEqual(wv, [0.0999755859375, -2.5, 65504, 1.1920928955078125e-7, 3.140625, Infinity]);
  assert.deepEqual(Array.from(back.tensors.get('b')!.data as Float32Array), [1, 2, 3]);
  assert.deepEqual(Array.from(back.tensors.get('idx')!.data as BigInt64Array), [5n, 6n]);
  assert.equal(back.metadata.format, 'x');
  // the file writer takes the same option; the file holds 2 bytes per F16 element
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lk-f16-')), 'm.safetensors');
  const big = HostTensor.float32([1000], Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)));
  writeSafetensorsFile(file, { big }, undefined, { float16: true });
  assert.ok(fs.statSync(file).size < 2000 + 200, `${fs.statSync(file).size} bytes`);
  const r = readSafetensorsFile(file).tensors.get('big')!;
  assert.equal(r.dtype, 'float32');
  const err = Math.max(...Array.from(r.data as Float32Array, (v, i) => Math.abs(v - Math.fround(Math.sin(i)))));
  assert.ok(err > 0 && err <= 2 ** -12, `max error ${err}`);
});
