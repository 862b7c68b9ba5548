// Minimal read-only ZIP reader, enough for torch.save archives (STORED entries, 64-byte
// aligned, zip64 when large) plus DEFLATE entries via node:zlib. It reads through a
// ByteSource: bytes in memory, or an open file read on demand (so a multi-GB checkpoint is
// never read whole: the end records, the central directory and the entries asked for). Parses
// the end-of-central-directory record (and its zip64 twin), the central directory and each
// entry's local header; checks every offset against the archive's length and the CRC-32 of
// every entry it returns. All failures are `Error`s naming the file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE; anything else is rejected on read. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

/** Random access to an archive's bytes. */
export interface ByteSource {
  readonly length: number;
  /** Bytes [offset, offset + length): a view when in memory, a fresh array when read from a file. */
  read(offset: number, length: number): Uint8Array;
}

/** Bytes already in memory; reads are zero-copy views. */
export class MemorySource implements ByteSource {
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    // Plain view: Node's Buffer.slice() would alias instead of copy.
    this.bytes = Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

// A FileSource's descriptor is closed when the source is garbage-collected (every lazy tensor
// reading through it is gone) or by close().
const closeFd = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
});

/**
 * An open file read on demand. The descriptor stays open while the source is reachable, so
 * later reads see the file as it was opened even if its path is replaced meanwhile.
 */
export class FileSource implements ByteSource {
  /** Absolute path. */
  readonly file: string;
  readonly length: number;
  /** Identity of the file as opened (see FileOrigin). */
  readonly ino: number;
  readonly mtimeMs: number;
  private fd: number | null;

  constructor(file: string) {
    this.file = path.resolve(file);
    const fd = fs.openSync(this.file, 'r');
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error(`${file}: not a regular file`);
      this.length = st.size;
      this.ino = st.ino;
      this.mtimeMs = st.mtimeMs;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
    closeFd.register(this, fd, this);
  }

  read(offset: number, length: number): Uint8Array {
    if (this.fd === null) throw new Error(`${this.file}: read after close`);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const k = fs.readSync(this.fd, out, done, length - done, offset + done);
      if (k === 0) throw new Error(`${this.file}: file ended at byte ${offset + done} while reading ${length} bytes at ${offset} (changed on disk?)`);
      done += k;
    }
    return out;
  }

  close(): void {
    if (this.fd === null) return;
    closeFd.unregister(this);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

/** Little-endian reads from a chunk that starts at `base` in the archive. */
class Chunk {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(off: number): number {
    return this.view.getUint16(off - this.base, true);
  }
  u32(off: number): number {
    return this.view.getUint32(off - this.base, true);
  }
  u64(off: number): bigint {
    return this.view.getBigUint64(off - this.base, true);
  }
  sub(off: number, len: number): Uint8Array {
    return this.bytes.subarray(off - this.base, off - this.base + len);
  }
}

export class ZipReader {
  readonly source: ByteSource;
  readonly fileName: string;
  private readonly byName = new Map<string, ZipEntry>();
  private readonly list: ZipEntry[] = [];
  private readonly starts = new Map<string, number>();

  constructor(src: Uint8Array | ByteSource, fileName = '<zip>') {
    this.source = src instanceof Uint8Array ? new MemorySource(src) : src;
    this.fileName = fileName;
    this.parse();
  }

  /** A reader over a file on disk, read on demand (see FileSource). */
  static open(file: string, fileName = file): ZipReader {
    return new ZipReader(new FileSource(file), fileName);
  }

  /** All entries in central-directory order. */
  entries(): readonly ZipEntry[] {
    return this.list;
  }

  names(): string[] {
    return this.list.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /**
   * Where the entry's stored bytes begin in the archive (after its local header). For a
   * STORED entry these are the entry's bytes verbatim, [dataOffset, dataOffset + size).
   */
  dataOffset(name: string): number {
    const e = this.byName.get(name);
    if (!e) throw this.err(`no entry named '${name}'`);
    let start = this.starts.get(name);
    if (start === undefined) {
      start = this.dataStart(e);
      if (start + e.compressedSize > this.source.length) {
        throw this.err(`entry '${name}': data [${start}, ${start + e.compressedSize}) runs past end of file (${this.source.length} bytes); truncated?`);
      }
      this.starts.set(name, start);
    }
    return start;
  }

  /**
   * The entry's bytes. From memory, STORED entries are a zero-copy view into the archive (so
   * their byteOffset can be anything, e.g. not 4-byte aligned); from a file they are read
   * into a fresh array. DEFLATE entries are inflated.
   */
  read(name: string, opts: { verifyCrc?: boolean } = {}): Uint8Array {
    const start = this.dataOffset(name);
    const e = this.byName.get(name)!;
    if (e.method !== 0 && e.method !== 8) throw this.err(`entry '${name}': unsupported compression method ${e.method} (only STORED=0 and DEFLATE=8)`);
    if (e.method === 0 && e.compressedSize !== e.size) throw this.err(`entry '${name}': STORED but compressed size ${e.compressedSize} != size ${e.size}`);
    const raw = this.source.read(start, e.compressedSize);
    let out: Uint8Array;
    if (e.method === 0) {
      out = raw;
    } else {
      try {
        const buf = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
        out = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (cause) {
        throw this.err(`entry '${name}': cannot inflate DEFLATE data: ${(cause as Error).message}`);
      }
      if (out.length !== e.size) throw this.err(`entry '${name}': inflated to ${out.length} bytes, central directory says ${e.size}`);
    }
    if (opts.verifyCrc ?? true) {
      const crc = crc32(out);
      if (crc !== e.crc32) {
        throw this.err(`entry '${name}': CRC-32 mismatch (stored ${hex(e.crc32)}, computed ${hex(crc)}); file is corrupt`);
      }
    }
    return out;
  }

  private err(msg: string): Error {
    return new Error(`${this.fileName}: zip: ${msg}`);
  }

  private u64(c: Chunk, off: number, what: string): number {
    const v = c.u64(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.err(`${what} ${v} is too large`);
    return Number(v);
  }

  /** Throws unless [off, off+len) lies inside the archive. */
  private need(off: number, len: number, what: string): void {
    if (!(off >= 0 && len >= 0 && off + len <= this.source.length)) {
      throw this.err(`${what} at [${off}, ${off + len}) is outside the file (${this.source.length} bytes); truncated or corrupt`);
    }
  }

  /** [off, off+len) of the archive, bounds-checked. */
  private chunk(off: number, len: number, what: string): Chunk {
    this.need(off, len, what);
    return new Chunk(this.source.read(off, len), off);
  }

  /** The EOCD record's offset, and a chunk holding the archive's tail (EOCD included). */
  private findEocd(): { eocd: number; tail: Chunk } {
    const n = this.source.length;
    if (n < 22) throw this.err(`file is ${n} bytes, too short for a zip archive`);
    // The EOCD is 22 bytes plus a comment of up to 65535 bytes at the very end.
    const lowest = Math.max(0, n - 22 - U16_MAX);
    const tail = this.chunk(lowest, n - lowest, 'end of the archive');
    for (let off = n - 22; off >= lowest; off--) {
      if (tail.u32(off) === SIG_EOCD && off + 22 + tail.u16(off + 20) === n) return { eocd: off, tail };
    }
    for (let off = n - 22; off >= lowest; off--) if (tail.u32(off) === SIG_EOCD) return { eocd: off, tail };
    const magic = this.source.read(0, 4);
    if (magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 3 && magic[3] === 4) {
      throw this.err('no end-of-central-directory record found; the archive is truncated');
    }
    throw this.err('not a zip archive (no end-of-central-directory record)');
  }

  private parse(): void {
    const { eocd, tail } = this.findEocd();
    let count = tail.u16(eocd + 10);
    let cdSize = tail.u32(eocd + 12);
    let cdOffset = tail.u32(eocd + 16);
    if (tail.u16(eocd + 4) !== 0 || tail.u16(eocd + 6) !== 0) throw this.err('multi-disk archives are not supported');

    const needs64 = count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
    const loc = eocd - 20;
    const locator = loc >= tail.base ? tail : loc >= 0 ? this.chunk(loc, 20, 'zip64 locator') : undefined;
    if (locator && locator.u32(loc) === SIG_EOCD64_LOCATOR) {
      const eocd64 = this.u64(locator, loc + 8, 'zip64 end-of-central-directory offset');
      const rec = this.chunk(eocd64, 56, 'zip64 end-of-central-directory record');
      if (rec.u32(eocd64) !== SIG_EOCD64) throw this.err(`bad zip64 end-of-central-directory signature at ${eocd64}`);
      count = this.u64(rec, eocd64 + 32, 'zip64 entry count');
      cdSize = this.u64(rec, eocd64 + 40, 'zip64 central directory size');
      cdOffset = this.u64(rec, eocd64 + 48, 'zip64 central directory offset');
    } else if (needs64) {
      throw this.err('end-of-central-directory needs zip64 values but the zip64 locator is missing');
    }
    const cd = this.chunk(cdOffset, cdSize, 'central directory');

    const dec = new TextDecoder('utf-8', { fatal: false });
    let p = cdOffset;
    const end = cdOffset + cdSize;
    for (let i = 0; i < count; i++) {
      if (p + 46 > end) throw this.err(`central directory entry #${i} runs past the central directory`);
      if (cd.u32(p) !== SIG_CENTRAL) throw this.err(`bad central directory signature for entry #${i} at offset ${p}`);
      const flags = cd.u16(p + 8);
      const method = cd.u16(p + 10);
      const crc = cd.u32(p + 16);
      let csize = cd.u32(p + 20);
      let size = cd.u32(p + 24);
      const nameLen = cd.u16(p + 28);
      const extraLen = cd.u16(p + 30);
      const commentLen = cd.u16(p + 32);
      let local = cd.u32(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > end) throw this.err(`central directory entry #${i} name/extra runs past the central directory`);
      if (flags & 1) throw this.err(`entry #${i} is encrypted; not supported`);
      const name = dec.decode(cd.sub(p + 46, nameLen));
      // zip64 extended information (header id 1): present fields are those that are 0xFFFFFFFF.
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cd.u16(x);
        const len = cd.u16(x + 2);
        if (x + 4 + len > xEnd) throw this.err(`entry '${name}': extra field runs past its header`);
        if (id === 1) {
          let q = x + 4;
          const take = (what: string): number => {
            if (q + 8 > x + 4 + len) throw this.err(`entry '${name}': zip64 extra field too short for ${what}`);
            const v = this.u64(cd, q, `entry '${name}' ${what}`);
            q += 8;
            return v;
          };
          if (size === U32_MAX) size = take('size');
          if (csize === U32_MAX) csize = take('compressed size');
          if (local === U32_MAX) local = take('local header offset');
        }
        x += 4 + len;
      }
      if (this.byName.has(name)) throw this.err(`duplicate entry name '${name}'`);
      const entry: ZipEntry = { name, method, compressedSize: csize, size, crc32: crc, localHeaderOffset: local };
      this.need(local, 30, `local header of entry '${name}'`);
      this.list.push(entry);
      this.byName.set(name, entry);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  private dataStart(e: ZipEntry): number {
    const off = e.localHeaderOffset;
    const h = this.chunk(off, 30, `local header of entry '${e.name}'`);
    if (h.u32(off) !== SIG_LOCAL) throw this.err(`bad local header signature for entry '${e.name}' at offset ${off}`);
    // Name and extra lengths must come from the local header: torch pads the local extra
    // field so the data is 64-byte aligned, while the central copy has no padding.
    const start = off + 30 + h.u16(off + 26) + h.u16(off + 28);
    this.need(start, 0, `data of entry '${e.name}'`);
    return start;
  }
}

/** A reader over bytes in memory. */
export function readZip(bytes: Uint8Array, fileName?: string): ZipReader {
  return new ZipReader(bytes, fileName);
}

/** True when the bytes start like a zip archive (local file header or empty-archive EOCD). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) return false;
  return (bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6);
}

function hex(x: number): string {
  return '0x' + (x >>> 0).toString(16).padStart(8, '0');
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE); node:zlib's native one where available. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
