// Test helpers for io/: a tiny ZIP writer (STORED / DEFLATE, optional zip64 records), a
// pickle byte assembler, fixture paths and a "fails cleanly" assertion for fuzzing.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { crc32 } from '../../src/io/formats/zip.ts';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ckpt');
export const fixture = (name: string): string => path.join(FIXTURES, name);

export interface ZipInput {
  name: string;
  data: Uint8Array | string;
  deflate?: boolean;
}

function cat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

class W {
  parts: Uint8Array[] = [];
  len = 0;
  private push(b: Uint8Array) {
    this.parts.push(b);
    this.len += b.length;
  }
  u16(x: number) {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, x, true);
    this.push(b);
  }
  u32(x: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, x >>> 0, true);
    this.push(b);
  }
  u64(x: number) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(x), true);
    this.push(b);
  }
  bytes(b: Uint8Array) {
    this.push(b);
  }
  out() {
    return cat(this.parts);
  }
}

/** Builds a ZIP archive. With zip64, every size/offset goes through the zip64 records. */
export function makeZip(entries: ZipInput[], opts: { zip64?: boolean } = {}): Uint8Array {
  const z64 = opts.zip64 ?? false;
  const enc = new TextEncoder();
  const w = new W();
  const central: { name: Uint8Array; crc: number; csize: number; size: number; method: number; offset: number }[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? enc.encode(e.data) : e.data;
    const comp = e.deflate ? new Uint8Array(zlib.deflateRawSync(data)) : data;
    const method = e.deflate ? 8 : 0;
    const name = enc.encode(e.name);
    const crc = crc32(data);
    const offset = w.len;
    w.u32(0x04034b50);
    w.u16(z64 ? 45 : 20);
    w.u16(0x800);
    w.u16(method);
    w.u16(0);
    w.u16(0x21);
    w.u32(crc);
    w.u32(z64 ? 0xffffffff : comp.length);
    w.u32(z64 ? 0xffffffff : data.length);
    w.u16(name.length);
    w.u16(z64 ? 20 : 0);
    w.bytes(name);
    if (z64) {
      w.u16(1);
      w.u16(16);
      w.u64(data.length);
      w.u64(comp.length);
    }
    w.bytes(comp);
    central.push({ name, crc, csize: comp.length, size: data.length, method, offset });
  }
  const cdStart = w.len;
  for (const c of central) {
    w.u32(0x02014b50);
    w.u16(z64 ? 45 : 20);
    w.u16(z64 ? 45 : 20);
    w.u16(0x800);
    w.u16(c.method);
    w.u16(0);
    w.u16(0x21);
    w.u32(c.crc);
    w.u32(z64 ? 0xffffffff : c.csize);
    w.u32(z64 ? 0xffffffff : c.size);
    w.u16(c.name.length);
    w.u16(z64 ? 28 : 0);
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.u32(0);
    w.u32(z64 ? 0xffffffff : c.offset);
    w.bytes(c.name);
    if (z64) {
      w.u16(1);
      w.u16(24);
      w.u64(c.size);
      w.u64(c.csize);
      w.u64(c.offset);
    }
  }
  const cdSize = w.len - cdStart;
  if (z64) {
    const eocd64 = w.len;
    w.u32(0x06064b50);
    w.u64(44);
    w.u16(45);
    w.u16(45);
    w.u32(0);
    w.u32(0);
    w.u64(central.length);
    w.u64(central.length);
    w.u64(cdSize);
    w.u64(cdStart);
    w.u32(0x07064b50);
    w.u32(0);
    w.u64(eocd64);
    w.u32(1);
  }
  w.u32(0x06054b50);
  w.u16(0);
  w.u16(0);
  w.u16(z64 ? 0xffff : central.length);
  w.u16(z64 ? 0xffff : central.length);
  w.u32(z64 ? 0xffffffff : cdSize);
  w.u32(z64 ? 0xffffffff : cdStart);
  w.u16(0);
  return w.out();
}

/** Pickle assembler: opcodes as bytes, strings as SHORT_BINUNICODE / BINUNICODE. */
export const P = {
  proto: (v: number) => [0x80, v],
  str(s: string): number[] {
    const b = [...new TextEncoder().encode(s)];
    if (b.length < 256) return [0x8c, b.length, ...b];
    const n = b.length;
    return [0x58, n & 255, (n >> 8) & 255, (n >> 16) & 255, n >>> 24, ...b];
  },
  global: (mod: string, name: string) => [0x63, ...new TextEncoder().encode(`${mod}\n${name}\n`)],
  int1: (x: number) => [0x4b, x],
  bytes: (...parts: (number[] | number)[]): Uint8Array => new Uint8Array(parts.flat()),
  // opcode bytes
  MARK: 0x28, STOP: 0x2e, EMPTY_DICT: 0x7d, EMPTY_LIST: 0x5d, EMPTY_TUPLE: 0x29, TUPLE: 0x74,
  TUPLE1: 0x85, TUPLE2: 0x86, REDUCE: 0x52, BUILD: 0x62, SETITEM: 0x73, SETITEMS: 0x75,
  APPEND: 0x61, NEWOBJ: 0x81, BINPERSID: 0x51, NONE: 0x4e, NEWFALSE: 0x89, STACK_GLOBAL: 0x93,
};

/** The pickle for `_rebuild_tensor_v2(storage(key, type, numel), offset, size, stride, False, OrderedDict())`. */
export function tensorPickle(key: string, storageType: string, numel: number, offset: number, size: number[], stride: number[]): number[] {
  const tuple = (xs: number[]) => [P.MARK, ...xs.flatMap((x) => P.int1(x)), P.TUPLE];
  return [
    ...P.global('torch._utils', '_rebuild_tensor_v2'),
    P.MARK,
    P.MARK, ...P.str('storage'), ...P.global('torch', storageType), ...P.str(key), ...P.str('cpu'), ...P.int1(numel), P.TUPLE,
    P.BINPERSID,
    ...P.int1(offset), ...tuple(size), ...tuple(stride), P.NEWFALSE,
    ...P.global('collections', 'OrderedDict'), P.EMPTY_TUPLE, P.REDUCE,
    P.TUPLE, P.REDUCE,
  ];
}

/** Asserts `fn` either succeeds or throws a plain Error whose message names `fileName`. */
export function assertCleanFailure(fn: () => unknown, fileName: string, note: string): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof Error, `${note}: threw a non-Error: ${String(e)}`);
    assert.equal(e.constructor, Error, `${note}: threw ${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(fileName), `${note}: message does not name the file: ${e.message}`);
    return 'error';
  }
}

/** Small deterministic PRNG (mulberry32) so fuzz failures reproduce. */
export { rng } from '../helpers.ts';
