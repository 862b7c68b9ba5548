// safetensors: round trips, every readable dtype, unaligned data, atomic writes, and clean
// rejection of malformed headers (plus a byte-flip fuzz over a valid file).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostTensor } from '../../src/tensor.ts';
import { readSafetensors, readSafetensorsFile, writeSafetensors, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { assertCleanFailure, fixture, rng } from './helpers.ts';

const F = 'model.safetensors';

/** Builds a file from a header object and a data section, padding nothing. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function sample(): Map<string, HostTensor> {
  return new Map<string, HostTensor>([
    ['encoder.conv_in.weight', HostTensor.float32([2, 1, 2, 2], [1, -2, 3.5, 4, 5, 6, 7, -0])],
    ['quantize.embedding.weight', HostTensor.float32([3, 2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])],
    ['step', new HostTensor('int64', [], BigInt64Array.from([9007199254740993n]))],
    ['codes', new HostTensor('int32', [3], Int32Array.from([-1, 0, 2147483647]))],
    ['mask', new HostTensor('bool', [2, 2], Uint8Array.from([1, 0, 0, 1]))],
    ['empty', HostTensor.float32([0, 4])],
  ]);
}

test('round trip keeps names, dtypes, shapes, values and metadata', () => {
  const t = sample();
  const bytes = writeSafetensors(t, { format: 'pt', note: 'ünïcode' });
  assert.equal(new DataView(bytes.buffer).getBigUint64(0, true) % 8n, 0n, 'header padded to 8 bytes');
  const back = readSafetensors(bytes, F);
  assert.deepEqual(back.metadata, { format: 'pt', note: 'ünïcode' });
  assert.deepEqual([...back.tensors.keys()].sort(), [...t.keys()].sort());
  for (const [k, v] of t) {
    const b = back.tensors.get(k)!;
    assert.equal(b.dtype, v.dtype, k);
    assert.deepEqual(b.shape, v.shape, k);
    assert.deepEqual(b.data, v.data, k);
  }
  assert.equal(back.tensors.get('step')!.data[0], 9007199254740993n);
  // Record input works the same, and without metadata there is no __metadata__ key.
  const rec = readSafetensors(writeSafetensors({ a: HostTensor.float32([2], [1, 2]) }), F);
  assert.deepEqual(rec.metadata, {});
});

test('writer rejects reserved names and non-string metadata', () => {
  assert.throws(() => writeSafetensors({ __metadata__: HostTensor.float32([1], [1]) }), /reserved/);
  assert.throws(() => writeSafetensors({ a: HostTensor.float32([1], [1]) }, { n: 3 as unknown as string }), /metadata 'n' must be a string/);
  // "__proto__" is just a name.
  const m = new Map([['__proto__', HostTensor.float32([1], [7])]]);
  assert.deepEqual(readSafetensors(writeSafetensors(m), F).tensors.get('__proto__')!.toArray(), [7]);
});

test('reads F16, BF16, F64 (to float32), I8/U8/I16 (to int32), I64, BOOL', () => {
  const data = new Uint8Array(64);
  const dv = new DataView(data.buffer);
  // F16 [1, -2, 65504, 2^-24]
  [0x3c00, 0xc000, 0x7bff, 0x0001].forEach((h, i) => dv.setUint16(i * 2, h, true));
  // BF16 [1.5, -0.15625]
  [0x3fc0, 0xbe20].forEach((h, i) => dv.setUint16(8 + i * 2, h, true));
  // F64 [1/3]
  dv.setFloat64(16, 1 / 3, true);
  // I8 [-128, 127], U8 [255, 0], I16 [-300]
  dv.setInt8(24, -128); dv.setInt8(25, 127); dv.setUint8(26, 255); dv.setUint8(27, 0); dv.setInt16(28, -300, true);
  // I64 [-5]; BOOL [1, 0, 7 → true]
  dv.setBigInt64(32, -5n, true);
  data.set([1, 0, 7], 40);
  const header = {
    h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
    bf: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
    pad: { dtype: 'U8', shape: [4], data_offsets: [12, 16] },
    d: { dtype: 'F64', shape: [], data_offsets: [16, 24] },
    i8: { dtype: 'I8', shape: [2], data_offsets: [24, 26] },
    u8: { dtype: 'U8', shape: [2], data_offsets: [26, 28] },
    i16: { dtype: 'I16', shape: [1], data_offsets: [28, 30] },
    pad2: { dtype: 'U8', shape: [2], data_offsets: [30, 32] },
    l: { dtype: 'I64', shape: [1], data_offsets: [32, 40] },
    b: { dtype: 'BOOL', shape: [3], data_offsets: [40, 43] },
    tail: { dtype: 'U8', shape: [21], data_offsets: [43, 64] },
  };
  const t = readSafetensors(build(header, data), F).tensors;
  assert.deepEqual(t.get('h')!.toArray(), [1, -2, 65504, 2 ** -24]);
  assert.deepEqual(t.get('bf')!.toArray(), [1.5, -0.15625]);
  assert.equal(t.get('d')!.dtype, 'float32');
  assert.equal(t.get('d')!.data[0], Math.fround(1 / 3));
  assert.deepEqual([t.get('i8')!.dtype, ...t.get('i8')!.toArray()], ['int32', -128, 127]);
  assert.deepEqual(t.get('u8')!.toArray(), [255, 0]);
  assert.deepEqual(t.get('i16')!.toArray(), [-300]);
  assert.deepEqual([t.get('l')!.dtype, t.get('l')!.data[0]], ['int64', -5n]);
  assert.deepEqual([t.get('b')!.dtype, ...t.get('b')!.toArray()], ['bool', 1, 0, 1]);
});

test('unaligned data offsets are copied, not viewed', () => {
  // Header of odd length and a 1-byte tensor first: the float32 starts at an odd address.
  const data = new Uint8Array(1 + 8);
  data[0] = 1;
  new DataView(data.buffer).setFloat32(1, 2.5, true);
  new DataView(data.buffer).setFloat32(5, -1, true);
  const header = { a: { dtype: 'BOOL', shape: [1], data_offsets: [0, 1] }, f: { dtype: 'F32', shape: [2], data_offsets: [1, 9] } };
  const bytes = build(header, data, JSON.stringify(header) + ' ');
  // Also from a subarray at an odd byteOffset of a larger buffer.
  const big = new Uint8Array(bytes.length + 3);
  big.set(bytes, 3);
  for (const b of [bytes, big.subarray(3)]) {
    const f = readSafetensors(b, F).tensors.get('f')!;
    assert.deepEqual(f.toArray(), [2.5, -1]);
    assert.notEqual(f.data.buffer, b.buffer, 'result must not alias the file bytes');
  }
});

test('file helpers: atomic write leaves no temp files and replaces the old file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentkit-st-'));
  try {
    const file = path.join(dir, 'w.safetensors');
    fs.writeFileSync(file, 'old contents');
    writeSafetensorsFile(file, sample(), { step: '1' });
    assert.deepEqual(fs.readdirSync(dir), ['w.safetensors']);
    const back = readSafetensorsFile(file);
    assert.equal(back.metadata.step, '1');
    assert.equal(back.tensors.size, 6);
    // Renaming over a directory fails; the temp file is cleaned up.
    fs.mkdirSync(path.join(dir, 'sub.safetensors'));
    assert.throws(() => writeSafetensorsFile(path.join(dir, 'sub.safetensors'), sample()), /sub\.safetensors/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['sub.safetensors', 'w.safetensors']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'sub.safetensors')), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('expected.safetensors fixture (written by scripts/st.py) parses', () => {
  const { tensors, metadata } = readSafetensorsFile(fixture('expected.safetensors'));
  assert.equal(metadata.generator, 'scripts/make_ckpt_fixtures.py');
  assert.ok(tensors.size > 20);
  assert.equal(tensors.get('tiny_lightning/codes.int64')!.dtype, 'int64');
});

const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
const rejects: [string, Uint8Array, RegExp][] = [
  ['empty file', new Uint8Array(0), /shorter than the 8-byte header length/],
  ['huge header length', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 2n ** 62n, true); return b; })(), /implausibly large/],
  ['header past end', (() => { const b = build(ok, new Uint8Array(8)); new DataView(b.buffer).setBigUint64(0, 5000n, true); return b; })(), /runs past the end/],
  ['bad JSON', build(null, new Uint8Array(8), '{"a": {"dtype": "F32",'), /not valid JSON/],
  ['not an object', build(null, new Uint8Array(0), '[1]'), /does not start with '\{'/],
  ['bad utf-8', build(null, new Uint8Array(0), '{"x": 1}').map((b, i) => (i === 10 ? 0xff : b)), /UTF-8/],
  ['unknown dtype', build({ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor 'a': unknown or unsupported dtype "C64"/],
  ['wrong byte length', build({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor 'a': byte length 8 != numel 3/],
  ['offsets out of range', build({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, new Uint8Array(8)), /tensor 'a'.*out of range/],
  ['offsets overlap', build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /overlap/],
  ['gap', build({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /gap/],
  ['trailing bytes', build(ok, new Uint8Array(12)), /cover 8 bytes but the data section is 12/],
  ['end before begin', build({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)), /end before begin/],
  ['bad shape', build({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor 'a': shape must be/],
  ['huge shape', build({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor 'a'/],
  ['bad metadata', build({ __metadata__: { n: 1 }, ...ok }, new Uint8Array(8)), /__metadata__\['n'\] must be a string/],
  ['bad entry', build({ a: 5 }, new Uint8Array(0)), /tensor 'a': entry must be an object/],
];
for (const [name, bytes, re] of rejects) {
  test(`rejects: ${name}`, () => {
    assert.throws(() => readSafetensors(bytes, F), (e: Error) => {
      assert.equal(e.constructor, Error);
      assert.match(e.message, /^model\.safetensors: safetensors: /);
      assert.match(e.message, re);
      return true;
    });
  });
}

test('fuzz: 200 random byte flips / truncations of a valid file fail cleanly or parse', () => {
  const good = writeSafetensors(sample(), { format: 'pt' });
  const rand = rng(1234);
  const outcomes = { ok: 0, error: 0 };
  for (let it = 0; it < 200; it++) {
    const b = good.slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) {
      // Bias towards the length prefix and header, where the parsing happens.
      const pos = rand() < 0.8 ? Math.floor(rand() * Math.min(b.length, 300)) : Math.floor(rand() * b.length);
      b[pos] ^= 1 << Math.floor(rand() * 8);
    }
    const input = rand() < 0.15 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
    outcomes[assertCleanFailure(() => readSafetensors(input, F), F, `iteration ${it}`)]++;
  }
  assert.ok(outcomes.error > 50, `expected most mutations to be rejected: ${JSON.stringify(outcomes)}`);
});

test('file reads are lazy: header now, each tensor on first use, verbatim types carry their file region', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-st-'));
  try {
    const file = path.join(dir, F);
    const t = sample();
    t.set('half', HostTensor.float32([2], [1, 2])); // written as F32; F16 is tested below
    writeSafetensorsFile(file, t);
    const back = readSafetensorsFile(file).tensors;
    for (const v of back.values()) assert.equal(v.loaded, false);
    const w = back.get('encoder.conv_in.weight')!;
    assert.equal(w.size, 8);
    assert.ok(w.origin, 'F32 tensor has an origin');
    assert.equal(w.origin!.file, path.resolve(file));
    // the origin region holds exactly the tensor's bytes
    const raw = fs.readFileSync(file).subarray(w.origin!.offset, w.origin!.offset + w.origin!.length);
    assert.deepEqual(new Float32Array(new Uint8Array(raw).buffer), t.get('encoder.conv_in.weight')!.data);
    assert.equal(back.get('mask')!.origin, undefined, 'bool is decoded, so no verbatim origin');
    // replacing the file atomically (as a training run does) does not change what lazy reads see
    writeSafetensorsFile(file, new Map([['x', HostTensor.float32([1], [42])]]));
    for (const [k, v] of t) assert.deepEqual(back.get(k)!.data, v.data, k);
    assert.equal(w.loaded, true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('lazy file reads still reject malformed files at open, naming the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-st-'));
  try {
    const file = path.join(dir, F);
    const good = writeSafetensors(sample());
    fs.writeFileSync(file, good.subarray(0, good.length - 3));
    assert.equal(assertCleanFailure(() => readSafetensorsFile(file), F, 'truncated'), 'error');
    fs.writeFileSync(file, good.subarray(0, 5));
    assert.equal(assertCleanFailure(() => readSafetensorsFile(file), F, 'short'), 'error');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
