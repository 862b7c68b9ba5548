// Lowering: a traced Graph → ONNX ModelProto. Dead nodes are dropped; each primitive
// lowers itself through a LowerCtx; graph outputs get the caller's names.
import type { Graph, Node, Tensor, TensorMeta } from '../graph/ir.ts';
import { primDef } from '../prims/index.ts';
import { ONNX_DTYPE, type LowerCtx, type OnnxAttr } from '../prims/types.ts';
import { HostTensor, type DType } from '../tensor.ts';
import { ATTR_TYPE, encodeModel, type AttrObj, type ModelObj, type NodeObj, type TensorProtoObj } from './proto.ts';

export const OPSET = 21;
export const IR_VERSION = 10;

export interface LowerOptions {
  /** Graph inputs in ONNX order (name → tensor). */
  inputs: readonly { name: string; tensor: Tensor }[];
  outputs: readonly { name: string; tensor: Tensor }[];
  metadata?: Record<string, string>;
  graphName?: string;
  /** Inputs whose values are baked into the model as initializers (e.g. weights). */
  bake?: ReadonlyMap<string, HostTensor>;
  /**
   * Where a baked value's bytes can be read from instead (ONNX external data: a file
   * location relative to the model, an offset and a length); undefined embeds the bytes.
   */
  external?: (name: string, t: HostTensor) => ExternalRef | undefined;
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

function tensorProto(name: string, t: HostTensor, external?: ExternalRef): TensorProtoObj {
  if (external) return { name, dims: [...t.shape], dataType: ONNX_DTYPE[t.dtype], externalData: external };
  const d = t.data;
  return {
    name,
    dims: [...t.shape],
    dataType: ONNX_DTYPE[t.dtype],
    rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  };
}

function attrObj(name: string, v: OnnxAttr): AttrObj {
  if ('i' in v) return { name, type: ATTR_TYPE.INT, i: v.i };
  if ('f' in v) return { name, type: ATTR_TYPE.FLOAT, f: v.f };
  if ('s' in v) return { name, type: ATTR_TYPE.STRING, s: new TextEncoder().encode(v.s) };
  if ('ints' in v) return { name, type: ATTR_TYPE.INTS, ints: [...v.ints] };
  if ('floats' in v) return { name, type: ATTR_TYPE.FLOATS, floats: [...v.floats] };
  return { name, type: ATTR_TYPE.TENSOR, t: tensorProto('', v.t) };
}

function valueInfo(name: string, m: TensorMeta) {
  return { name, type: { tensorType: { elemType: ONNX_DTYPE[m.dtype], shape: { dim: m.shape.map((d) => ({ dimValue: d })) } } } };
}

/** Nodes needed to compute `outs`, in graph (topological) order. */
export function liveNodes(graph: Graph, outs: readonly Tensor[]): Node[] {
  const live = new Set<Node>();
  const stack = outs.map((t) => t.producer).filter((n): n is Node => n !== null);
  while (stack.length) {
    const n = stack.pop()!;
    if (live.has(n)) continue;
    live.add(n);
    for (const i of n.inputs) if (i.producer && !live.has(i.producer)) stack.push(i.producer);
  }
  return graph.nodes.filter((n) => live.has(n));
}

export interface LoweredModel {
  model: ModelObj;
  /** ONNX node count and how many came from each primitive. */
  stats: { onnxNodes: number; prims: Record<string, number> };
}

export function lowerToModel(graph: Graph, opts: LowerOptions): LoweredModel {
  const names = new Map<Tensor, string>();
  const nodes: NodeObj[] = [];
  const inits: TensorProtoObj[] = [];
  const live = liveNodes(graph, opts.outputs.map((o) => o.tensor));
  const used = new Set<Tensor>([...live.flatMap((n) => n.inputs), ...opts.outputs.map((o) => o.tensor)]);
  for (const { name, tensor } of opts.inputs) {
    if (tensor.producer) throw new Error(`lower: '${name}' is not a graph input`);
    names.set(tensor, name);
    const v = opts.bake?.get(name);
    // a baked value no live node reads is left out (ORT would warn and drop it anyway)
    if (v && used.has(tensor)) {
      if (v.dtype !== tensor.dtype || v.shape.length !== tensor.rank || v.shape.some((d, i) => d !== tensor.shape[i])) {
        throw new Error(`lower: baked value for '${name}' is ${v.dtype}[${v.shape.join(', ')}], expected ${tensor.dtype}[${tensor.shape.join(', ')}]`);
      }
      inits.push(tensorProto(name, v, opts.external?.(name, v)));
    }
  }
  const constCache = new Map<string, string>();
  let fresh = 0;
  const stats: LoweredModel['stats'] = { onnxNodes: 0, prims: {} };

  const nameOf = (t: Tensor): string => {
    const n = names.get(t);
    if (n === undefined) {
      if (!t.producer) throw new Error(`lower: graph input ${t} is used but not declared as a program input`);
      throw new Error(`lower: ${t} used before it is defined`);
    }
    return n;
  };

  const constant = (t: HostTensor): string => {
    let key: string | undefined;
    if (t.size <= 16) key = `${t.dtype}|${t.shape.join(',')}|${t.toArray().join(',')}`;
    if (key && constCache.has(key)) return constCache.get(key)!;
    const name = `c${fresh++}`;
    inits.push(tensorProto(name, t));
    if (key) constCache.set(key, name);
    return name;
  };

  for (const node of live) {
    const def = primDef(node.prim);
    const outNames = node.outputs.map((t) => `t${t.id}`);
    node.outputs.forEach((t, i) => names.set(t, outNames[i]!));
    const scope = graph.scopeOf.get(node);
    let k = 0;
    const ctx: LowerCtx = {
      nInputs: node.inputs.length,
      input: (i) => nameOf(node.inputs[i]!),
      inMeta: (i) => node.inputs[i]!,
      outMeta: (i) => node.outputs[i]!,
      output: (i) => outNames[i]!,
      op(opType, inputs, outputs, attrs = {}, domain) {
        const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `v${fresh++}`) : [...outputs];
        nodes.push({
          opType,
          input: [...inputs],
          output: outs,
          name: `${scope ? scope + '/' : ''}${node.prim}#${node.id}.${k++}`,
          domain: domain ?? '',
          attribute: Object.entries(attrs).map(([n, v]) => attrObj(n, v)),
        });
        return outs;
      },
      constant,
      i64: (values) => constant(HostTensor.int64([values.length], [...values])),
      scalar: (x: number, dtype: DType) =>
        constant(dtype === 'int64' ? HostTensor.int64([], [x]) : dtype === 'float32' ? HostTensor.scalar(x) : new HostTensor(dtype, [], dtype === 'int32' ? Int32Array.of(x) : Uint8Array.of(x))),
    };
    const before = nodes.length;
    def.lower(ctx, node.attrs);
    stats.prims[node.prim] = (stats.prims[node.prim] ?? 0) + 1;
    if (nodes.length === before) throw new Error(`lower: primitive '${node.prim}' emitted no ONNX node`);
  }

  const seen = new Set<string>();
  for (const { name } of [...opts.inputs, ...opts.outputs]) {
    if (seen.has(name)) throw new Error(`lower: name '${name}' used twice among program inputs/outputs`);
    seen.add(name);
  }
  for (const { name, tensor } of opts.outputs) {
    nodes.push({ opType: 'Identity', input: [nameOf(tensor)], output: [name], name: `output/${name}`, domain: '', attribute: [] });
  }
  stats.onnxNodes = nodes.length;
  const model: ModelObj = {
    irVersion: IR_VERSION,
    producerName: 'latentkit',
    producerVersion: '0.1.0',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: opts.graphName ?? 'latentkit',
      node: nodes,
      initializer: inits,
      input: opts.inputs.filter(({ name }) => !opts.bake?.has(name)).map(({ name, tensor }) => valueInfo(name, tensor)),
      output: opts.outputs.map(({ name, tensor }) => valueInfo(name, tensor)),
    },
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return { model, stats };
}

export function lowerToOnnx(graph: Graph, opts: LowerOptions): Uint8Array {
  return encodeModel(lowerToModel(graph, opts).model);
}

