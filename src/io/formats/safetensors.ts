// safetensors reader/writer. Layout: u64 little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}), then the
// data section, which the tensors must tile exactly (sorted, contiguous, no gaps/overlap).
// Read: F32/F16/BF16/F64 → float32, I64 → int64, I32/I16/U16/I8/U8 → int32, BOOL → bool.
// Write: F32/I64/I32/BOOL (float32 as F16 on request), sorted by alignment then name, header padded to 8 bytes.
// Also exports the element decoders shared with the torch checkpoint reader.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostTensor, sizeOf, type TypedData } from '../../tensor.ts';
import { writeFileAtomicSync } from '../atomic.ts';
import { ELEM_DTYPE, ELEM_SIZE, assertLittleEndianHost, floatToHalfBits, toHalf, writeSafetensors, type ElemType, type WriteOptions } from './safetensors_bytes.ts';

export { ELEM_DTYPE, ELEM_SIZE, assertLittleEndianHost, floatToHalfBits, toHalf, writeSafetensors, type ElemType, type WriteOptions };

/** Largest header we accept (the reference implementation uses the same 100 MB bound). */
const MAX_HEADER = 100_000_000;

export function isElemType(s: unknown): s is ElemType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ELEM_SIZE, s);
}

/** A plain Uint8Array view (Node's Buffer overrides slice() to not copy). */
export function plainBytes(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

let halfTable: Float32Array | undefined;

/** float16 bit pattern → float32, via a 64K-entry table built once. */
export function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24; // subnormal (and ±0)
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

type ViewCtor<T> = new (buffer: ArrayBuffer, byteOffset: number, length: number) => T;

/** A typed view of `bytes` (element size k), copying first when byteOffset is unaligned. */
function view<T>(Ctor: ViewCtor<T>, bytes: Uint8Array, k: number, count: number): { v: T; copied: boolean } {
  const copied = bytes.byteOffset % k !== 0;
  const b = copied ? new Uint8Array(bytes) : bytes; // (a Buffer's .slice() would not copy)
  return { v: new Ctor(b.buffer as ArrayBuffer, b.byteOffset, count), copied };
}

/**
 * Decodes `count` little-endian elements of type `t` from `bytes` into a fresh array of the
 * host dtype ELEM_DTYPE[t]. The result never aliases `bytes`, unless `inPlace` says the caller
 * hands `bytes` over (then verbatim types are viewed, not copied).
 */
export function decodeElements(t: ElemType, bytes: Uint8Array, count: number, opts: { inPlace?: boolean } = {}): TypedData {
  assertLittleEndianHost();
  const nbytes = count * ELEM_SIZE[t];
  if (bytes.length < nbytes) throw new Error(`need ${nbytes} bytes for ${count} ${t} elements, have ${bytes.length}`);
  const src = bytes.subarray(0, nbytes);
  switch (t) {
    case 'F32': {
      const { v, copied } = view(Float32Array, src, 4, count);
      return copied || opts.inPlace ? v : v.slice();
    }
    case 'F64':
      return Float32Array.from(view(Float64Array, src, 8, count).v);
    case 'F16': {
      const h = view(Uint16Array, src, 2, count).v;
      const tab = halfToFloatTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = tab[h[i]];
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const h = view(Uint16Array, src, 2, count).v;
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = h[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'I64': {
      const { v, copied } = view(BigInt64Array, src, 8, count);
      return copied || opts.inPlace ? v : v.slice();
    }
    case 'I32': {
      const { v, copied } = view(Int32Array, src, 4, count);
      return copied || opts.inPlace ? v : v.slice();
    }
    case 'I16':
      return Int32Array.from(view(Int16Array, src, 2, count).v);
    case 'U16':
      return Int32Array.from(view(Uint16Array, src, 2, count).v);
    case 'I8':
      return Int32Array.from(new Int8Array(src.buffer, src.byteOffset, count));
    case 'U8':
      return Int32Array.from(src);
    case 'BOOL': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i] ? 1 : 0;
      return out;
    }
  }
}

export interface SafetensorsContents {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  name: string;
  dtype: ElemType;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  entries: HeaderEntry[];
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file. */
  dataStart: number;
}

function failer(fileName: string) {
  return (msg: string): never => {
    throw new Error(`${fileName}: safetensors: ${msg}`);
  };
}

/** Header length n from the first 8 bytes, checked against the file length. */
function headerLength(first8: Uint8Array, fileLength: number, fileName: string): number {
  const fail = failer(fileName);
  if (fileLength < 8 || first8.length < 8) fail(`file is ${fileLength} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is implausibly large (limit ${MAX_HEADER})`);
  const n = Number(n64);
  if (n < 2) fail(`header length ${n} is too small`);
  if (8 + n > fileLength) fail(`header length ${n} runs past the end of the file (${fileLength} bytes); truncated?`);
  return n;
}

/** Parses and validates the JSON header (`headerBytes`: the n bytes after the length). */
function parseHeader(headerBytes: Uint8Array, fileLength: number, fileName: string): ParsedHeader {
  const fail = failer(fileName);
  const n = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(`header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))})`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header JSON is not an object');

  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('__metadata__ must be an object of strings');
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') fail(`__metadata__['${mk}'] must be a string, got ${typeof mv}`);
        metadata[mk] = mv as string;
      }
      continue;
    }
    const at = `tensor '${name}'`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${at}: entry must be an object`);
    const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>;
    if (!isElemType(dtype)) fail(`${at}: unknown or unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${at}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${at}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    if (end < begin) fail(`${at}: data_offsets [${begin}, ${end}] end before begin`);
    const numel = sizeOf(shape as number[]);
    const want = numel * ELEM_SIZE[dtype as ElemType];
    if (!Number.isSafeInteger(want)) fail(`${at}: shape ${JSON.stringify(shape)} is too large`);
    if (end - begin !== want) {
      fail(`${at}: byte length ${end - begin} != numel ${numel} × ${ELEM_SIZE[dtype as ElemType]} bytes (${dtype}) = ${want}`);
    }
    entries.push({ name, dtype: dtype as ElemType, shape: shape as number[], begin, end });
  }

  const dataStart = 8 + n;
  const dataLen = fileLength - dataStart;
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.end > dataLen) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] out of range (data section is ${dataLen} bytes)`);
    if (e.begin < pos) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${pos})`);
    if (e.begin > pos) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${pos}`);
    pos = e.end;
  }
  if (pos !== dataLen) fail(`tensors cover ${pos} bytes but the data section is ${dataLen} bytes`);
  return { entries, metadata, dataStart };
}

/** Parses and validates a safetensors file held in memory. Errors name the file and key. */
export function readSafetensors(input: Uint8Array, fileName = '<safetensors>'): SafetensorsContents {
  const bytes = plainBytes(input);
  const n = headerLength(bytes, bytes.length, fileName);
  const { entries, metadata, dataStart } = parseHeader(bytes.subarray(8, 8 + n), bytes.length, fileName);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const numel = sizeOf(e.shape);
    const data = decodeElements(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end), numel);
    tensors.set(e.name, new HostTensor(ELEM_DTYPE[e.dtype], e.shape, data));
  }
  return { tensors, metadata };
}

/** Element types stored exactly as the host dtype holds them (ONNX can read them in place). */
const VERBATIM: Partial<Record<ElemType, true>> = { F32: true, I64: true, I32: true };

function readAt(fd: number, offset: number, length: number, file: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const k = fs.readSync(fd, out, done, length - done, offset + done);
    if (k === 0) throw new Error(`${file}: safetensors: file ended at byte ${offset + done} while reading ${length} bytes at ${offset} (changed on disk?)`);
    done += k;
  }
  return out;
}

/**
 * Reads a safetensors file's header now and each tensor's data on first use (an open file
 * descriptor keeps the file read consistent even if the path is replaced meanwhile). Tensors
 * stored as F32/I64/I32 carry their file region as `origin`, so ONNX Runtime can read them
 * as external data without a JS copy.
 */
export function readSafetensorsFile(file: string): SafetensorsContents {
  const abs = path.resolve(file);
  const fd = fs.openSync(abs, 'r');
  let pending = 0;
  try {
    const st = fs.fstatSync(fd);
    const n = headerLength(readAt(fd, 0, Math.min(8, st.size), file), st.size, file);
    const { entries, metadata, dataStart } = parseHeader(readAt(fd, 8, n, file), st.size, file);
    const tensors = new Map<string, HostTensor>();
    for (const e of entries) {
      const numel = sizeOf(e.shape);
      const offset = dataStart + e.begin;
      const length = e.end - e.begin;
      const load = () => {
        const bytes = readAt(fd, offset, length, file);
        if (--pending === 0) fs.closeSync(fd);
        return decodeElements(e.dtype, bytes, numel, { inPlace: true });
      };
      const origin = VERBATIM[e.dtype] ? { file: abs, offset, length, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } : undefined;
      tensors.set(e.name, HostTensor.lazy(ELEM_DTYPE[e.dtype], e.shape, load as never, origin));
      pending++;
    }
    if (pending === 0) fs.closeSync(fd);
    return { tensors, metadata };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Writes atomically (temp file in the same directory, fsync, rename; see atomic.ts). */
export function writeSafetensorsFile(
  file: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
  opts: WriteOptions = {},
): void {
  writeFileAtomicSync(file, writeSafetensors(tensors, metadata, opts));
}
