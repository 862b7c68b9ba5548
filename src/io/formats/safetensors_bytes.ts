// safetensors bytes without Node: the element tables and the writer (io/safetensors.ts adds
// the reader and files; the page uses this to save a model trained in the browser).
import { HostTensor, type DType } from '../../tensor.ts';

/** Stored element types (safetensors' names; the torch reader maps its storages onto them). */
export type ElemType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'U16' | 'I8' | 'U8' | 'BOOL';

export const ELEM_SIZE: Record<ElemType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** The host dtype each stored element type is read into. */
export const ELEM_DTYPE: Record<ElemType, DType> = {
  F64: 'float32', F32: 'float32', F16: 'float32', BF16: 'float32',
  I64: 'int64', I32: 'int32', I16: 'int32', U16: 'int32', I8: 'int32', U8: 'int32', BOOL: 'bool',
};

export const WRITE_CODE: Record<DType, ElemType> = { float32: 'F32', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL' };

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function assertLittleEndianHost(): void {
  if (!LITTLE_ENDIAN_HOST) throw new Error('latentkit io: big-endian hosts are not supported');
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → float16 bit pattern, rounded to nearest even (overflow → ±Inf, NaN stays NaN). */
export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the full significand down, round half to even
    if (e < -10) return sign;
    const shift = 14 - e;
    const full = mant | 0x800000;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && m & 1)) m++; // a carry into bit 10 is the smallest normal: right
    return sign | m;
  }
  let m = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      if (++e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** float32 values → float16 bit patterns. */
export function toHalf(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = floatToHalfBits(x[i]!);
  return out;
}

export interface WriteOptions {
  /**
   * Store these float32 tensors as F16 (readers upcast them to float32 again): true for
   * all, or a predicate on name and tensor. Values round to the nearest float16.
   */
  float16?: boolean | ((name: string, t: HostTensor) => boolean);
}

/**
 * Serializes tensors (F32/I64/I32/BOOL as stored; float32 as F16 where `opts.float16`
 * says) with optional string metadata.
 */
export function writeSafetensors(
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
  opts: WriteOptions = {},
): Uint8Array {
  assertLittleEndianHost();
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new Error(`writeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t instanceof HostTensor)) throw new Error(`writeSafetensors: '${name}' is not a HostTensor`);
    if (!WRITE_CODE[t.dtype]) throw new Error(`writeSafetensors: '${name}' has unsupported dtype ${t.dtype}`);
  }
  const half = new Set<HostTensor>();
  const want = opts.float16;
  if (want) for (const [name, t] of list) if (t.dtype === 'float32' && (want === true || want(name, t))) half.add(t);
  // Largest element size first keeps every tensor aligned to its own element size.
  const code = (t: HostTensor): ElemType => (half.has(t) ? 'F16' : WRITE_CODE[t.dtype]);
  list.sort(([an, at], [bn, bt]) => ELEM_SIZE[code(bt)] - ELEM_SIZE[code(at)] || (an < bn ? -1 : an > bn ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let off = 0;
  for (const [name, t] of list) {
    const nb = t.size * ELEM_SIZE[code(t)];
    // defineProperty: a tensor named "__proto__" must become a plain key.
    Object.defineProperty(header, name, {
      value: { dtype: code(t), shape: [...t.shape], data_offsets: [off, off + nb] },
      enumerable: true, configurable: true, writable: true,
    });
    off += nb;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, t] of list) {
    const d = half.has(t) ? toHalf(t.data as Float32Array) : t.data;
    if (t.dtype === 'bool') {
      for (let i = 0; i < d.length; i++) out[pos + i] = (d as Uint8Array)[i] ? 1 : 0;
    } else {
      out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    }
    pos += d.byteLength;
  }
  return out;
}
