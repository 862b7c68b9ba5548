// Minimal read-only ZIP reader over an in-memory byte array, enough for torch.save
// archives (STORED entries, 64-byte aligned, zip64 when large) plus DEFLATE entries via
// node:zlib. Parses the end-of-central-directory record (and its zip64 twin), the central
// directory and each entry's local header; checks every offset against the buffer and the
// CRC-32 of every entry it returns. All failures are `Error`s naming the file.

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

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export class ZipReader {
  readonly bytes: Uint8Array;
  readonly fileName: string;
  private readonly view: DataView;
  private readonly byName = new Map<string, ZipEntry>();
  private readonly list: ZipEntry[] = [];

  constructor(bytes: Uint8Array, fileName = '<zip>') {
    // Plain view: Node's Buffer.slice() would alias instead of copy.
    this.bytes = Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.fileName = fileName;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.parse();
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
   * The entry's bytes. STORED entries are a zero-copy view into the archive (so their
   * byteOffset can be anything, e.g. not 4-byte aligned); DEFLATE entries are inflated.
   */
  read(name: string, opts: { verifyCrc?: boolean } = {}): Uint8Array {
    const e = this.byName.get(name);
    if (!e) throw this.err(`no entry named '${name}'`);
    const start = this.dataStart(e);
    if (start + e.compressedSize > this.bytes.length) {
      throw this.err(`entry '${name}': data [${start}, ${start + e.compressedSize}) runs past end of file (${this.bytes.length} bytes); truncated?`);
    }
    const raw = this.bytes.subarray(start, start + e.compressedSize);
    let out: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw this.err(`entry '${name}': STORED but compressed size ${e.compressedSize} != size ${e.size}`);
      out = raw;
    } else if (e.method === 8) {
      try {
        const buf = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
        out = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (cause) {
        throw this.err(`entry '${name}': cannot inflate DEFLATE data: ${(cause as Error).message}`);
      }
      if (out.length !== e.size) throw this.err(`entry '${name}': inflated to ${out.length} bytes, central directory says ${e.size}`);
    } else {
      throw this.err(`entry '${name}': unsupported compression method ${e.method} (only STORED=0 and DEFLATE=8)`);
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

  private u16(off: number): number {
    return this.view.getUint16(off, true);
  }

  private u32(off: number): number {
    return this.view.getUint32(off, true);
  }

  private u64(off: number, what: string): number {
    const v = this.view.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.err(`${what} ${v} is too large`);
    return Number(v);
  }

  /** Throws unless [off, off+len) lies inside the buffer. */
  private need(off: number, len: number, what: string): void {
    if (!(off >= 0 && len >= 0 && off + len <= this.bytes.length)) {
      throw this.err(`${what} at [${off}, ${off + len}) is outside the file (${this.bytes.length} bytes); truncated or corrupt`);
    }
  }

  private findEocd(): number {
    const n = this.bytes.length;
    if (n < 22) throw this.err(`file is ${n} bytes, too short for a zip archive`);
    // The EOCD is 22 bytes plus a comment of up to 65535 bytes at the very end.
    const lowest = Math.max(0, n - 22 - U16_MAX);
    for (let off = n - 22; off >= lowest; off--) {
      if (this.u32(off) === SIG_EOCD && off + 22 + this.u16(off + 20) === n) return off;
    }
    for (let off = n - 22; off >= lowest; off--) if (this.u32(off) === SIG_EOCD) return off;
    const magic = this.bytes.length >= 4 ? this.u32(0) : 0;
    if (magic === SIG_LOCAL) throw this.err('no end-of-central-directory record found; the archive is truncated');
    throw this.err('not a zip archive (no end-of-central-directory record)');
  }

  private parse(): void {
    const eocd = this.findEocd();
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (this.u16(eocd + 4) !== 0 || this.u16(eocd + 6) !== 0) throw this.err('multi-disk archives are not supported');

    const needs64 = count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
    const loc = eocd - 20;
    if (loc >= 0 && this.u32(loc) === SIG_EOCD64_LOCATOR) {
      const eocd64 = this.u64(loc + 8, 'zip64 end-of-central-directory offset');
      this.need(eocd64, 56, 'zip64 end-of-central-directory record');
      if (this.u32(eocd64) !== SIG_EOCD64) throw this.err(`bad zip64 end-of-central-directory signature at ${eocd64}`);
      count = this.u64(eocd64 + 32, 'zip64 entry count');
      cdSize = this.u64(eocd64 + 40, 'zip64 central directory size');
      cdOffset = this.u64(eocd64 + 48, 'zip64 central directory offset');
    } else if (needs64) {
      throw this.err('end-of-central-directory needs zip64 values but the zip64 locator is missing');
    }
    this.need(cdOffset, cdSize, 'central directory');

    const dec = new TextDecoder('utf-8', { fatal: false });
    let p = cdOffset;
    const end = cdOffset + cdSize;
    for (let i = 0; i < count; i++) {
      this.need(p, 46, `central directory entry #${i}`);
      if (p + 46 > end) throw this.err(`central directory entry #${i} runs past the central directory`);
      if (this.u32(p) !== SIG_CENTRAL) throw this.err(`bad central directory signature for entry #${i} at offset ${p}`);
      const flags = this.u16(p + 8);
      const method = this.u16(p + 10);
      const crc = this.u32(p + 16);
      let csize = this.u32(p + 20);
      let size = this.u32(p + 24);
      const nameLen = this.u16(p + 28);
      const extraLen = this.u16(p + 30);
      const commentLen = this.u16(p + 32);
      let local = this.u32(p + 42);
      this.need(p + 46, nameLen + extraLen + commentLen, `central directory entry #${i} name/extra`);
      if (flags & 1) throw this.err(`entry #${i} is encrypted; not supported`);
      const name = dec.decode(this.bytes.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information (header id 1): present fields are those that are 0xFFFFFFFF.
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = this.u16(x);
        const len = this.u16(x + 2);
        if (x + 4 + len > xEnd) throw this.err(`entry '${name}': extra field runs past its header`);
        if (id === 1) {
          let q = x + 4;
          const take = (what: string): number => {
            if (q + 8 > x + 4 + len) throw this.err(`entry '${name}': zip64 extra field too short for ${what}`);
            const v = this.u64(q, `entry '${name}' ${what}`);
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
    this.need(off, 30, `local header of entry '${e.name}'`);
    if (this.u32(off) !== SIG_LOCAL) throw this.err(`bad local header signature for entry '${e.name}' at offset ${off}`);
    // Name and extra lengths must come from the local header: torch pads the local extra
    // field so the data is 64-byte aligned, while the central copy has no padding.
    const start = off + 30 + this.u16(off + 26) + this.u16(off + 28);
    this.need(start, 0, `data of entry '${e.name}'`);
    return start;
  }
}

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
