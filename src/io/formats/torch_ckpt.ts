// torch.save (zip format, torch >= 1.6) reader: zip archive `<prefix>/data.pkl` + one entry
// per storage `<prefix>/data/<key>`. data.pkl runs through the safe unpickler with torch's
// tensor rebuilders whitelisted; everything else non-data stays an inert placeholder.
// Only data.pkl is read up front: every tensor is lazy (TorchTensor → a lazy HostTensor) and
// reads its storage entry on first use, so keys that are never used (optimizer states, other
// sub-models) are never read. Read from a path, a tensor whose bytes sit verbatim in the file
// (a STORED little-endian entry, float32/int64/int32, contiguous view) carries its file region
// as HostTensor.origin, so ONNX Runtime can read it from the checkpoint itself as external
// data (runtime/external.ts). Materialising honours storage offset, size and stride.
// Storage dtypes: float32/float16/bfloat16/float64 → float32, int64 → int64,
// int32/int16/int8/uint8 → int32, bool → bool.

import { HostTensor, allocData, sizeOf, type FileOrigin, type TypedData } from '../../tensor.ts';
import { ELEM_DTYPE, ELEM_SIZE, decodeElements, type ElemType } from './safetensors.ts';
import { describe, PickleGlobal, PickleObject, unpickle, type PickleBuilder } from './pickle.ts';
import { FileSource, looksLikeZip, ZipReader } from './zip.ts';

/** torch storage class name → stored element type. */
const STORAGE_ELEM: Record<string, ElemType> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** Element types the host holds exactly as stored (ONNX Runtime can read them in place). */
const VERBATIM: Partial<Record<ElemType, true>> = { F32: true, I64: true, I32: true };

/** One storage entry of the archive; its bytes are read on demand, never kept. */
export class TorchStorage {
  constructor(
    /** e.g. 'FloatStorage' */
    readonly storageType: string,
    readonly key: string,
    readonly location: string,
    /** element count from the persistent id */
    readonly numel: number,
    readonly zip: ZipReader,
    readonly entryName: string,
    readonly bigEndian: boolean,
  ) {}

  /** Stored element type, or undefined for storage types this reader cannot decode. */
  get elemType(): ElemType | undefined {
    return STORAGE_ELEM[this.storageType];
  }

  /** Entry size in bytes (from the central directory; nothing is read). */
  get byteLength(): number {
    return this.zip.entry(this.entryName)!.size;
  }

  /**
   * The whole entry, CRC-checked, little-endian (byte-swapped when the archive is big-endian).
   * `fresh`: a new array the caller may keep, not a view of archive bytes held in memory.
   */
  read(): { bytes: Uint8Array; fresh: boolean } {
    const data = this.zip.read(this.entryName);
    const k = this.elemType ? ELEM_SIZE[this.elemType] : 1;
    if (this.bigEndian && k > 1) return { bytes: swapBytes(data, k), fresh: true };
    return { bytes: data, fresh: this.zip.source instanceof FileSource || this.zip.entry(this.entryName)!.method !== 0 };
  }

  /**
   * Where elements [first, first + count) lie verbatim in the checkpoint file, when they do:
   * read from a file, little-endian, STORED, a type the host keeps as is, and aligned to the
   * element size (torch aligns entries to 64 bytes; re-zipped archives may not be).
   */
  fileRegion(first: number, count: number): FileOrigin | undefined {
    const src = this.zip.source;
    const et = this.elemType;
    if (!(src instanceof FileSource) || this.bigEndian || !et || !VERBATIM[et] || count === 0) return undefined;
    const e = this.zip.entry(this.entryName)!;
    if (e.method !== 0 || e.compressedSize !== e.size) return undefined;
    const k = ELEM_SIZE[et];
    const offset = this.zip.dataOffset(this.entryName) + first * k;
    if (offset % k !== 0) return undefined;
    return { file: src.file, offset, length: count * k, ino: src.ino, size: src.length, mtimeMs: src.mtimeMs };
  }
}

/** A tensor as saved: a strided view of a storage. `toHostTensor()` gives it as a (lazy) HostTensor. */
export class TorchTensor {
  private cached?: HostTensor;
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
    private readonly fileName: string,
  ) {}

  /** Compact form for console.log / util.inspect. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const s = this.storage;
    return `TorchTensor(${s.storageType} '${s.key}', size [${this.shape.join(', ')}], stride [${this.stride.join(', ')}], offset ${this.storageOffset})`;
  }

  /**
   * Dense row-major tensor in the host dtype (see file header for the dtype mapping). The
   * storage type, size and the view's bounds are checked now; the data is read on first use
   * of `.data`. `origin` is set when the view is the verbatim file region it reads.
   */
  toHostTensor(): HostTensor {
    return (this.cached ??= lazyTensor(this, this.fileName));
  }
}

export interface TorchCheckpoint {
  /** Tensors of `raw.state_dict` when present, else of `raw` itself, materialized. */
  stateDict: Map<string, HostTensor>;
  /** Whole unpickled object: Maps, arrays, TorchTensor, inert PickleObject placeholders. */
  raw: unknown;
  /** Top folder of the archive ('archive', 'last', …). */
  archivePrefix: string;
}

export interface ReadTorchOptions {
  fileName?: string;
  /** Take the state dict from this top-level key instead (e.g. 'model'); no other unwrapping. */
  stateDictKey?: string;
}

// Pickled `torch.save` output of the legacy (pre-1.6, non-zip) format begins with
// PROTO 2, LONG1 of 10 bytes: the magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

export function isLegacyTorchFormat(bytes: Uint8Array): boolean {
  return bytes.length >= LEGACY_MAGIC.length && LEGACY_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Reads a torch.save zip archive: a plain state dict (`torch.save(model.state_dict())`) or a
 * Lightning `.ckpt`. Only the top-level `state_dict` key is unwrapped (Lightning); other
 * wrappers such as `{'model': sd}` or DataParallel's `module.` prefixes are NOT unwrapped —
 * the reader then fails naming the offending entry; pass `stateDictKey` to pick a sub-dict.
 * Every entry of the state dict must be a tensor; a non-tensor (including an inert placeholder
 * for some global) is an error. Non-tensor parts of the checkpoint (`optimizer_states`,
 * `callbacks`, `hyper_parameters`, `epoch`, …) may hold anything and stay reachable in `raw`.
 */
export function readTorchCheckpoint(src: Uint8Array | string, opts: ReadTorchOptions = {}): TorchCheckpoint {
  const fileName = opts.fileName ?? (typeof src === 'string' ? src : '<torch checkpoint>');
  if (typeof src !== 'string') return readArchive(src, fileName, opts);
  const file = new FileSource(src);
  try {
    return readArchive(file, fileName, opts);
  } catch (e) {
    file.close();
    throw e;
  }
}

function readArchive(src: Uint8Array | FileSource, fileName: string, opts: ReadTorchOptions): TorchCheckpoint {
  const fail = (msg: string): never => {
    throw new Error(`${fileName}: ${msg}`);
  };
  const head = src instanceof FileSource ? src.read(0, Math.min(src.length, LEGACY_MAGIC.length)) : src;
  if (isLegacyTorchFormat(head)) fail('legacy torch.save format; re-save with torch>=1.6 (torch.save with the default zip serialization)');
  if (head.length > 0 && head[0] === 0x80 && !looksLikeZip(head)) fail('a bare pickle, not a torch.save zip archive; not supported');
  if (!looksLikeZip(head)) fail('not a torch.save zip archive (missing PK\\x03\\x04 magic)');

  const zip = new ZipReader(src, fileName);
  const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  let prefix: string;
  if (pkls.length === 1) prefix = pkls[0].slice(0, -'/data.pkl'.length);
  else if (pkls.length === 0) return fail(`no <prefix>/data.pkl entry in the archive; not a torch.save file (entries: ${zip.names().slice(0, 5).join(', ')})`);
  else {
    const first = zip.names()[0].split('/')[0];
    if (!pkls.includes(`${first}/data.pkl`)) fail(`several data.pkl entries (${pkls.join(', ')}); ambiguous`);
    prefix = first;
  }
  if (zip.has(`${prefix}/constants.pkl`) || zip.names().some((n) => n.startsWith(`${prefix}/code/`))) {
    fail('a TorchScript archive (torch.jit.save); load it in Python and torch.save its state_dict()');
  }
  let bigEndian = false;
  if (zip.has(`${prefix}/byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}/byteorder`)).trim();
    if (order !== 'little' && order !== 'big') fail(`unknown byteorder '${order}'`);
    bigEndian = order === 'big';
  }

  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): TorchStorage => {
    if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') {
      throw new Error(`unsupported persistent id ${describe(pid)} (expected ('storage', type, key, location, numel))`);
    }
    const [, type, key, location, numel] = pid as unknown[];
    const typeName = type instanceof PickleGlobal ? type.name : typeof type === 'string' ? type : undefined;
    if (typeName === undefined) throw new Error(`storage type is ${describe(type)}`);
    if (typeof key !== 'string') throw new Error(`storage key is ${describe(key)}`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw new Error(`storage '${key}': bad numel ${String(numel)}`);
    const have = storages.get(key);
    if (have) return have;
    const entry = `${prefix}/data/${key}`;
    if (!zip.has(entry)) throw new Error(`storage '${key}' refers to missing archive entry '${entry}'`);
    const s = new TorchStorage(typeName, key, String(location), numel, zip, entry, bigEndian);
    storages.set(key, s);
    return s;
  };

  const raw = unpickle(zip.read(`${prefix}/data.pkl`), {
    fileName: `${fileName}:${prefix}/data.pkl`,
    persistentLoad,
    builders: torchBuilders(fileName),
  });
  return { stateDict: extractStateDict(raw, fileName, opts.stateDictKey), raw, archivePrefix: prefix };
}

function swapBytes(b: Uint8Array, k: number): Uint8Array {
  const out = new Uint8Array(b.length - (b.length % k));
  for (let i = 0; i < out.length; i += k) for (let j = 0; j < k; j++) out[i + j] = b[i + k - 1 - j];
  return out;
}

function intTuple(x: unknown, what: string): number[] {
  if (!Array.isArray(x) || !x.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${what} must be a tuple of non-negative ints, got ${describe(x)}`);
  }
  return x as number[];
}

/** Whitelisted torch globals: each only assembles data (no I/O, no evaluation). */
function torchBuilders(fileName: string): Record<string, PickleBuilder> {
  const tensor = (a: readonly unknown[], fn: string): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = a;
    if (!(storage instanceof TorchStorage)) throw new Error(`${fn}: storage argument is ${describe(storage)}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new Error(`${fn}: bad storage offset ${String(offset)}`);
    const shape = intTuple(size, `${fn}: size`);
    const strides = intTuple(stride, `${fn}: stride`);
    if (shape.length !== strides.length) throw new Error(`${fn}: size has ${shape.length} dims but stride has ${strides.length}`);
    return new TorchTensor(storage, offset, shape, strides, requiresGrad === true, fileName);
  };
  const param = (a: readonly unknown[], fn: string): TorchTensor => {
    if (!(a[0] instanceof TorchTensor)) throw new Error(`${fn}: data is ${describe(a[0])}, not a tensor`);
    return a[0];
  };
  const b: Record<string, PickleBuilder> = {
    'torch._utils._rebuild_tensor_v2': (a) => tensor(a, '_rebuild_tensor_v2'),
    'torch._utils._rebuild_tensor': (a) => tensor(a, '_rebuild_tensor'),
    'torch._utils._rebuild_parameter': (a) => param(a, '_rebuild_parameter'),
    'torch._utils._rebuild_parameter_with_state': (a) => param(a, '_rebuild_parameter_with_state'),
    'torch.Size': (a) => Object.freeze(intTuple(a[0] ?? [], 'torch.Size').slice()),
  };
  // Tensor subclasses: (func, new_type, args, state); run func only if it is a rebuilder above.
  b['torch._tensor._rebuild_from_type_v2'] = (a) => {
    const [func, , args] = a;
    if (func instanceof PickleGlobal && Object.prototype.hasOwnProperty.call(b, func.__global__) && Array.isArray(args)) {
      return b[func.__global__](args);
    }
    return new PickleObject('torch._tensor._rebuild_from_type_v2', a);
  };
  return b;
}

function extractStateDict(raw: unknown, fileName: string, key?: string): Map<string, HostTensor> {
  let sd = raw;
  let where = 'the top level';
  if (key !== undefined) {
    if (!(raw instanceof Map) || !raw.has(key)) throw new Error(`${fileName}: no top-level key '${key}' (top level is ${describe(raw)})`);
    sd = raw.get(key);
    where = `'${key}'`;
  } else if (raw instanceof Map && raw.has('state_dict')) {
    sd = raw.get('state_dict');
    where = "'state_dict'";
  }
  if (!(sd instanceof Map)) throw new Error(`${fileName}: expected a dict of tensors at ${where}, found ${describe(sd)}`);
  const out = new Map<string, HostTensor>();
  for (const [k, v] of sd) {
    if (typeof k !== 'string') throw new Error(`${fileName}: state dict key ${String(k)} is not a string`);
    if (v instanceof TorchTensor) {
      try {
        out.set(k, v.toHostTensor());
      } catch (e) {
        throw new Error(`${fileName}: tensor '${k}': ${(e as Error).message}`, { cause: e });
      }
      continue;
    }
    const hint = v instanceof Map ? " (nested dicts like 'model'/'module' wrappers are not unwrapped; use stateDictKey)" : '';
    throw new Error(`${fileName}: state dict entry '${k}' is ${describe(v)}, not a tensor${hint}`);
  }
  return out;
}

/**
 * Checks the view against its storage (type, entry size, bounds) and returns a lazy tensor
 * that reads the storage entry on first use. Contiguous views of verbatim types read from a
 * file get their file region as origin.
 */
function lazyTensor(t: TorchTensor, fileName: string): HostTensor {
  const s = t.storage;
  const et = s.elemType;
  if (!et) throw new Error(`${fileName}: storage '${s.key}' has unsupported type torch.${s.storageType}`);
  const dtype = ELEM_DTYPE[et];
  const k = ELEM_SIZE[et];
  const shape = t.shape;
  const n = sizeOf(shape);
  if (s.byteLength < s.numel * k) {
    throw new Error(`${fileName}: storage '${s.key}' (${s.entryName}) has ${s.byteLength} bytes, needs ${s.numel} × ${k}`);
  }
  if (n === 0) return new HostTensor(dtype, shape);
  let last = t.storageOffset;
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * t.stride[d];
  if (last >= s.numel) {
    throw new Error(
      `${fileName}: view (offset ${t.storageOffset}, size [${shape.join(', ')}], stride [${t.stride.join(', ')}]) ` +
        `reaches element ${last} of storage '${s.key}' with ${s.numel} elements`,
    );
  }
  const span = last - t.storageOffset + 1;
  const dense = span === n && isContiguous(shape, t.stride);
  const load = (): TypedData => {
    const { bytes, fresh } = s.read();
    const first = t.storageOffset * k;
    // A fresh array holding exactly this view's elements is used as is (no second copy).
    const whole = first === 0 && (last + 1) * k === bytes.length;
    const src = decodeElements(et, bytes.subarray(first, (last + 1) * k), span, { inPlace: fresh && whole });
    return dense ? src : gather(src, dtype, shape, t.stride, n);
  };
  return HostTensor.lazy(dtype, shape, load as never, dense ? s.fileRegion(t.storageOffset, n) : undefined);
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

/** out[i] = src[Σ idx_d · stride_d] over the row-major odometer of `shape`. */
function gather(src: TypedData, dtype: HostTensor['dtype'], shape: readonly number[], stride: readonly number[], n: number): TypedData {
  const out = allocData(dtype, n);
  const o = out as unknown as Record<number, number | bigint>;
  const x = src as unknown as Record<number, number | bigint>;
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let p = 0;
  for (let i = 0; i < n; i++) {
    o[i] = x[p];
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      p += stride[d];
      if (idx[d] < shape[d]) break;
      p -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}
