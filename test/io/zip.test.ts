// ZIP reader: torch archives (aligned local extras), Python-zipfile archives (DEFLATE),
// zip64 records, and clean errors for wrong magic, truncation, bad offsets, CRC, methods.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { looksLikeZip, readZip, ZipReader } from '../../src/io/formats/zip.ts';
import { assertCleanFailure, fixture, makeZip, rng } from './helpers.ts';

const Z = 'archive.zip';
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('reads a torch.save archive (64-byte aligned STORED entries)', () => {
  const buf = fs.readFileSync(fixture('tiny_plain.pt'));
  const z = readZip(buf, 'tiny_plain.pt');
  assert.ok(z.has('tiny_plain/data.pkl'));
  assert.equal(text(z.read('tiny_plain/version')).trim(), '3');
  for (const e of z.entries()) {
    assert.equal(e.method, 0);
    // offsets within the file: a Buffer from readFileSync may start anywhere in its ArrayBuffer
    if (e.name.includes('/data/')) assert.equal((z.read(e.name).byteOffset - buf.byteOffset) % 64, 0, 'torch aligns storages to 64 bytes');
  }
});

test('a file read on demand gives what the bytes in memory give; dataOffset locates STORED data', () => {
  for (const name of ['tiny_plain.pt', 'tiny_plain_repacked.pt']) {
    const buf = fs.readFileSync(fixture(name));
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    const mem = readZip(bytes, name);
    const file = ZipReader.open(fixture(name));
    assert.deepEqual(file.entries(), mem.entries());
    for (const e of mem.entries()) {
      assert.deepEqual(file.read(e.name), mem.read(e.name), e.name);
      assert.equal(file.dataOffset(e.name), mem.dataOffset(e.name));
      if (e.method === 0) assert.deepEqual(bytes.subarray(file.dataOffset(e.name), file.dataOffset(e.name) + e.size), file.read(e.name));
    }
  }
  // a file longer than the EOCD search window (64 KiB comment + records) with a zip64 directory
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-zip-'));
  try {
    const big = new Uint8Array(200_000).map((_, i) => i * 7);
    fs.writeFileSync(path.join(dir, 'z.zip'), makeZip([{ name: 'a/big', data: big }, { name: 'a/s', data: 'tail' }], { zip64: true }));
    const z = ZipReader.open(path.join(dir, 'z.zip'));
    assert.deepEqual(z.read('a/big'), big);
    assert.equal(text(z.read('a/s')), 'tail');
    fs.writeFileSync(path.join(dir, 'cut.zip'), fs.readFileSync(path.join(dir, 'z.zip')).subarray(0, 150_000));
    assert.throws(() => ZipReader.open(path.join(dir, 'cut.zip'), 'cut.zip'), /^Error: cut\.zip: zip: no end-of-central-directory record found; the archive is truncated/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('reads a Python-zipfile archive with a DEFLATE entry', () => {
  const z = readZip(fs.readFileSync(fixture('tiny_plain_repacked.pt')), 'r.pt');
  const e = z.entry('archive/data.pkl')!;
  assert.equal(e.method, 8);
  assert.ok(e.compressedSize < e.size);
  assert.equal(z.read('archive/data.pkl')[0], 0x80);
});

test('plain and zip64 archives written by the test helper read back identically', () => {
  const entries = [
    { name: 'a/data.pkl', data: 'hello' },
    { name: 'a/data/0', data: new Uint8Array([1, 2, 3, 4, 5, 6, 7]) },
    { name: 'a/empty', data: '' },
    { name: 'a/z', data: 'x'.repeat(1000), deflate: true },
    { name: 'a/ünï', data: 'utf8 name' },
  ];
  for (const zip64 of [false, true]) {
    const bytes = makeZip(entries, { zip64 });
    assert.ok(looksLikeZip(bytes));
    const z = readZip(bytes, Z);
    assert.deepEqual(z.names(), entries.map((e) => e.name));
    assert.equal(text(z.read('a/data.pkl')), 'hello');
    assert.deepEqual([...z.read('a/data/0')], [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(z.read('a/empty').length, 0);
    assert.equal(text(z.read('a/z')), 'x'.repeat(1000));
    assert.equal(text(z.read('a/ünï')), 'utf8 name');
  }
});

test('an empty archive has no entries', () => {
  const z = readZip(makeZip([]), Z);
  assert.equal(z.entries().length, 0);
  assert.throws(() => z.read('x'), /archive\.zip: zip: no entry named 'x'/);
});

const good = makeZip([{ name: 'a/data.pkl', data: 'hello world' }, { name: 'a/data/0', data: new Uint8Array(40).fill(7) }]);

function expectZipError(bytes: Uint8Array, re: RegExp, readName?: string): void {
  assert.throws(
    () => {
      const z = readZip(bytes, Z);
      if (readName) z.read(readName);
    },
    (e: Error) => {
      assert.equal(e.constructor, Error);
      assert.match(e.message, /^archive\.zip: zip: /);
      assert.match(e.message, re);
      return true;
    },
  );
}

test('rejects: wrong magic / not a zip', () => {
  expectZipError(new TextEncoder().encode('this is certainly not a zip archive, just text'), /not a zip archive/);
  expectZipError(new Uint8Array(5), /too short/);
});

test('rejects: truncated archive', () => {
  expectZipError(good.subarray(0, good.length - 30), /truncated/);
  expectZipError(good.subarray(0, 40), /truncated/);
});

test('rejects: central directory offset out of range', () => {
  const b = good.slice();
  new DataView(b.buffer).setUint32(b.length - 6, 1_000_000, true); // EOCD: cd offset
  expectZipError(b, /central directory at \[1000000, .*outside the file/);
});

test('rejects: local header offset out of range', () => {
  const b = good.slice();
  const dv = new DataView(b.buffer);
  const cd = dv.getUint32(b.length - 6, true);
  dv.setUint32(cd + 42, 999_999, true);
  expectZipError(b, /local header of entry 'a\/data.pkl'.*outside the file/);
});

test('rejects: data running past the end, CRC mismatch, unsupported method', () => {
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const cdOf = (b: Uint8Array) => dv(b).getUint32(b.length - 6, true);
  let b = good.slice();
  dv(b).setUint32(cdOf(b) + 20, 1 << 30, true); // compressed size
  dv(b).setUint32(cdOf(b) + 24, 1 << 30, true);
  expectZipError(b, /entry 'a\/data.pkl'.*runs past end of file/, 'a/data.pkl');
  b = good.slice();
  b[30 + 'a/data.pkl'.length] ^= 1; // first data byte
  expectZipError(b, /entry 'a\/data.pkl': CRC-32 mismatch/, 'a/data.pkl');
  b = good.slice();
  dv(b).setUint16(cdOf(b) + 10, 12, true); // bzip2
  expectZipError(b, /unsupported compression method 12/, 'a/data.pkl');
  const bad = makeZip([{ name: 'd', data: 'abc', deflate: true }]);
  bad[30 + 1] ^= 0xff;
  expectZipError(bad, /entry 'd'/, 'd');
});

test('rejects: zip64 EOCD values without a locator', () => {
  const b = good.slice();
  new DataView(b.buffer).setUint32(b.length - 6, 0xffffffff, true);
  expectZipError(b, /zip64 locator is missing/);
});

test('fuzz: 200 byte flips of a zip64 archive fail cleanly or read', () => {
  const bytes = makeZip([{ name: 'a/data.pkl', data: 'hello world' }, { name: 'a/z', data: 'y'.repeat(300), deflate: true }], { zip64: true });
  const rand = rng(99);
  for (let it = 0; it < 200; it++) {
    const b = bytes.slice();
    for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
    assertCleanFailure(() => {
      const z = readZip(b, Z);
      for (const n of z.names()) z.read(n);
    }, Z, `iteration ${it}`);
  }
});
