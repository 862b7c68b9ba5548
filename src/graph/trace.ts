// Tracing context: while a function is traced, ops record nodes into the current Graph
// instead of computing. `emit` is the single entry point every primitive goes through:
// it validates inputs, runs the primitive's shape rule and appends the node.
import { Graph, Tensor, type Attrs, type TensorMeta } from './ir.ts';
import { PRIMS } from '../prims/index.ts';
import { DTYPES, type DType } from '../tensor.ts';

const stack: Graph[] = [];

export function currentGraph(): Graph {
  const g = stack[stack.length - 1];
  if (!g) throw new Error('no active trace: tensor ops must run inside trace()/Program.trace()/jit()');
  return g;
}

export function isTracing(): boolean {
  return stack.length > 0;
}

/** Run `fn` with `graph` as the active trace. */
export function withGraph<T>(graph: Graph, fn: () => T): T {
  stack.push(graph);
  try {
    return fn();
  } finally {
    stack.pop();
  }
}

/** Tag nodes created inside `fn` with a scope label (shown in prints and profiles). */
export function scoped<T>(label: string, fn: () => T): T {
  const g = currentGraph();
  g.scope.push(label);
  try {
    return fn();
  } finally {
    g.scope.pop();
  }
}

export function checkDType(dtype: string, where: string): DType {
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    throw new Error(`${where}: unknown dtype '${dtype}' (expected one of ${DTYPES.join(', ')})`);
  }
  return dtype as DType;
}

/** Declare a symbolic input of the active graph. */
export function input(name: string, shape: readonly number[], dtype: DType = 'float32'): Tensor {
  checkDType(dtype, `input '${name}'`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`input '${name}': bad shape [${shape.join(', ')}]`);
  }
  return currentGraph().addInput(name, { shape, dtype });
}

/** Apply primitive `prim` to `inputs`: shape rule, then a new node. Returns its outputs. */
export function emit(prim: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor[] {
  const def = PRIMS[prim as keyof typeof PRIMS];
  if (!def) throw new Error(`unknown primitive '${prim}'`);
  const g = currentGraph();
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new Error(`${prim}: input ${i} is not a Tensor (got ${typeof t})`);
    if (t.graph !== g) throw new Error(`${prim}: input ${i} ${t} belongs to another trace`);
  });
  const metas: TensorMeta[] = def.shape(inputs, attrs);
  return g.addNode(prim, inputs, attrs, metas).outputs;
}

export function emit1(prim: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor {
  return emit(prim, inputs, attrs)[0]!;
}
