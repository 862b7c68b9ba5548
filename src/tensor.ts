// Host-side tensors: plain typed arrays with a shape and dtype. No engine imports here,
// so io/, nn/ and the runtime can all share this one type.

export type DType = 'float32' | 'int64' | 'int32' | 'uint8' | 'bool';

export type DataOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int64'
    ? BigInt64Array
    : D extends 'int32'
      ? Int32Array
      : Uint8Array;

export type TypedData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export const DTYPES: readonly DType[] = ['float32', 'int64', 'int32', 'uint8', 'bool'];

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function allocData(dtype: DType, n: number): TypedData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
  }
}

export function dtypeOfData(data: TypedData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  return 'bool';
}

/**
 * Where a tensor's exact bytes live on disk: little-endian elements of its own dtype at
 * `offset` in `file` (absolute path). `ino`/`size`/`mtimeMs` identify the file as it was
 * read, so a file replaced since is noticed rather than read as garbage.
 */
export interface FileOrigin {
  file: string;
  offset: number;
  length: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/**
 * A dense row-major tensor living in JS memory. Its data may be loaded lazily (weights read
 * from a file on first use): inference that hands the file region to ONNX Runtime as
 * external data then never holds a JS copy.
 */
export class HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly size: number;
  /** Set when the data is a verbatim copy of a file region (see FileOrigin). */
  readonly origin?: FileOrigin;
  private _data: DataOf<D> | undefined;
  private loader: (() => DataOf<D>) | undefined;

  constructor(dtype: D, shape: readonly number[], data?: DataOf<D>, lazy?: { load: () => DataOf<D>; origin?: FileOrigin }) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`HostTensor: bad shape [${shape.join(', ')}]`);
    }
    const n = sizeOf(shape);
    this.dtype = dtype;
    this.shape = [...shape];
    this.size = n;
    if (lazy) {
      this.loader = lazy.load;
      if (lazy.origin) this.origin = lazy.origin;
    } else {
      this._data = (data ?? allocData(dtype, n)) as DataOf<D>;
      this.checkLength(this._data);
    }
  }

  private checkLength(d: TypedData): void {
    if (d.length !== this.size) {
      throw new Error(`HostTensor: shape [${this.shape.join(', ')}] needs ${this.size} elements, data has ${d.length}`);
    }
  }

  /** A tensor whose data is produced by `load` on first access. */
  static lazy<D extends DType>(dtype: D, shape: readonly number[], load: () => DataOf<D>, origin?: FileOrigin): HostTensor<D> {
    return new HostTensor(dtype, shape, undefined, { load, origin });
  }

  get data(): DataOf<D> {
    if (this._data === undefined) {
      const d = this.loader!();
      this.checkLength(d);
      this._data = d;
      this.loader = undefined;
    }
    return this._data;
  }

  /** False while lazily loaded data has not been read yet. */
  get loaded(): boolean {
    return this._data !== undefined;
  }

  static float32(shape: readonly number[], data?: Float32Array | number[]): HostTensor<'float32'> {
    return new HostTensor('float32', shape, data instanceof Float32Array ? data : data ? Float32Array.from(data) : undefined);
  }

  static int64(shape: readonly number[], data?: BigInt64Array | number[]): HostTensor<'int64'> {
    if (data && !(data instanceof BigInt64Array)) data = BigInt64Array.from(data.map((x) => BigInt(x)));
    return new HostTensor('int64', shape, data as BigInt64Array | undefined);
  }

  static scalar(x: number): HostTensor<'float32'> {
    return HostTensor.float32([], [x]);
  }

  /** Same data, new shape (no copy). */
  reshape(shape: readonly number[]): HostTensor<D> {
    return new HostTensor(this.dtype, shape, this.data);
  }

  clone(): HostTensor<D> {
    return new HostTensor(this.dtype, this.shape, this.data.slice() as DataOf<D>);
  }

  /** Numbers as a plain array (int64 converted with Number()). */
  toArray(): number[] {
    return Array.from(this.data as ArrayLike<number | bigint>, (x) => Number(x));
  }
}
