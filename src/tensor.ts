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

/** A dense row-major tensor living in JS memory. */
export class HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DataOf<D>;

  constructor(dtype: D, shape: readonly number[], data?: DataOf<D>) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`HostTensor: bad shape [${shape.join(', ')}]`);
    }
    const n = sizeOf(shape);
    this.dtype = dtype;
    this.shape = [...shape];
    this.data = (data ?? allocData(dtype, n)) as DataOf<D>;
    if (this.data.length !== n) {
      throw new Error(`HostTensor: shape [${shape.join(', ')}] needs ${n} elements, data has ${this.data.length}`);
    }
  }

  get size(): number {
    return this.data.length;
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
