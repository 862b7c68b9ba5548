// The contract every primitive fulfils: a shape rule, a VJP (or a reason it has none) and
// an ONNX lowering, kept side by side in one entry of the primitive table.
import type { Node, Tensor, TensorMeta } from '../graph/ir.ts';
import type { DType, HostTensor } from '../tensor.ts';

/** An ONNX attribute value, tagged so ints and floats never get confused. */
export type OnnxAttr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { t: HostTensor };

export const A = {
  i: (i: number): OnnxAttr => ({ i }),
  f: (f: number): OnnxAttr => ({ f }),
  s: (s: string): OnnxAttr => ({ s }),
  ints: (ints: readonly number[]): OnnxAttr => ({ ints }),
  floats: (floats: readonly number[]): OnnxAttr => ({ floats }),
  t: (t: HostTensor): OnnxAttr => ({ t }),
};

/** What a primitive's lowering may do: read its input names, emit ONNX nodes. */
export interface LowerCtx {
  /** ONNX value name of node input i. */
  input(i: number): string;
  /** Number of node inputs. */
  readonly nInputs: number;
  /** Metadata of node input i / output i. */
  inMeta(i: number): TensorMeta;
  outMeta(i: number): TensorMeta;
  /** ONNX value name that node output i must be bound to. */
  output(i: number): string;
  /** Emit an ONNX node. `outputs` given as names, or a count of fresh names. Returns output names. */
  op(opType: string, inputs: readonly string[], outputs: readonly string[] | number, attrs?: Record<string, OnnxAttr>, domain?: string): string[];
  /** A constant initializer (deduplicated for small values). */
  constant(t: HostTensor): string;
  /** 1-D int64 constant. */
  i64(values: readonly number[]): string;
  /** 0-D constant of a dtype. */
  scalar(x: number, dtype: DType): string;
}

export interface VjpCtx {
  node: Node;
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
}

export interface PrimDef<At = any> {
  /** One line of math: what the primitive computes. */
  doc: string;
  shape(inputs: readonly TensorMeta[], attrs: At): TensorMeta[];
  /** Cotangents of the inputs (null = zero / not differentiable input) given those of the outputs. */
  vjp?: (cts: readonly (Tensor | null)[], ctx: VjpCtx, attrs: At) => (Tensor | null)[];
  /** Why this primitive has no gradient (set instead of vjp). */
  nondiff?: string;
  lower(ctx: LowerCtx, attrs: At): void;
}

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9 };

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}
