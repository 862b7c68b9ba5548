// Program: a traced function with named inputs and outputs, lowered to ONNX and compiled
// into an ONNX Runtime session once per input-shape signature (jit caches them).
import type * as OrtNs from 'onnxruntime-common';
import { Graph, Tensor, type TensorMeta } from '../graph/ir.ts';
import { input as declareInput, withGraph } from '../graph/trace.ts';
import { lowerToModel, type LoweredModel } from '../onnx/lower.ts';
import { encodeModel } from '../onnx/proto.ts';
import { HostTensor, type DType, type TypedData } from '../tensor.ts';
import { createSession, getOrt, nativeBackend, type SessionOptions } from './backend.ts';
import { planExternalData } from './external.ts';
import { fmtShape } from '../prims/types.ts';

export type InputSpecs = Record<string, TensorMeta>;
export type Outputs = Record<string, Tensor>;

export class Program {
  readonly graph: Graph;
  readonly inputs: { name: string; tensor: Tensor }[];
  readonly outputs: { name: string; tensor: Tensor }[];
  private lowered: LoweredModel | null = null;

  private constructor(graph: Graph, inputs: Program['inputs'], outputs: Program['outputs']) {
    this.graph = graph;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  /** Trace `fn` over symbolic inputs with the given shapes/dtypes. */
  static trace(fn: (inputs: Record<string, Tensor>) => Outputs, specs: InputSpecs): Program {
    const graph = new Graph();
    return withGraph(graph, () => {
      const ins: Record<string, Tensor> = {};
      for (const [name, m] of Object.entries(specs)) ins[name] = declareInput(name, m.shape, m.dtype);
      const outs = fn(ins);
      const outputs = Object.entries(outs).map(([name, t]) => {
        if (!(t instanceof Tensor)) throw new Error(`Program.trace: output '${name}' is not a Tensor`);
        return { name, tensor: t };
      });
      return new Program(graph, Object.entries(ins).map(([name, tensor]) => ({ name, tensor })), outputs);
    });
  }

  lower(): LoweredModel {
    if (!this.lowered) this.lowered = lowerToModel(this.graph, { inputs: this.inputs, outputs: this.outputs });
    return this.lowered;
  }

  /**
   * Serialize to ONNX. `bake` turns the named inputs into initializers (e.g. weights for a
   * standalone inference model); `metadata` lands in the model's metadata_props.
   */
  toOnnx(opts: { metadata?: Record<string, string>; bake?: Record<string, HostTensor> } = {}): Uint8Array {
    if (!opts.metadata && !opts.bake) return encodeModel(this.lower().model);
    const bake = opts.bake ? new Map(Object.entries(opts.bake)) : undefined;
    return encodeModel(lowerToModel(this.graph, { inputs: this.inputs, outputs: this.outputs, metadata: opts.metadata, bake }).model);
  }

  /**
   * Lower and create an ONNX Runtime session. Baked values read verbatim from a file (weights
   * from safetensors) are handed to ORT as external data pointing into that file, so neither
   * the model bytes nor JS hold a copy (see runtime/external.ts).
   */
  async compile(opts: SessionOptions & { bake?: Record<string, HostTensor> } = {}): Promise<CompiledProgram> {
    const ort = await getOrt();
    const baked = new Set(Object.keys(opts.bake ?? {}));
    const bake = opts.bake ? new Map(Object.entries(opts.bake)) : undefined;
    const plan = bake && nativeBackend() ? planExternalData(bake) : null;
    try {
      const model = encodeModel(lowerToModel(this.graph, { inputs: this.inputs, outputs: this.outputs, bake, external: plan?.ref }).model);
      const session = await createSession(plan ? plan.modelSource(model) : model, opts);
      return new CompiledProgram(this, session, ort, baked);
    } finally {
      plan?.cleanup();
    }
  }
}

function toOrt(ort: typeof OrtNs, t: HostTensor): OrtNs.Tensor {
  return new ort.Tensor(t.dtype, t.data as never, [...t.shape]);
}

function fromOrt(t: OrtNs.Tensor): HostTensor {
  return new HostTensor(t.type as DType, t.dims as number[], t.data as TypedData as never);
}

export class CompiledProgram {
  readonly program: Program;
  readonly session: OrtNs.InferenceSession;
  private readonly ort: typeof OrtNs;
  /** Inputs baked in as initializers (not fed at run time). */
  readonly baked: ReadonlySet<string>;

  constructor(program: Program, session: OrtNs.InferenceSession, ort: typeof OrtNs, baked: ReadonlySet<string> = new Set()) {
    this.program = program;
    this.session = session;
    this.ort = ort;
    this.baked = baked;
  }

  checkFeeds(feeds: Record<string, HostTensor>): void {
    for (const { name, tensor } of this.program.inputs) {
      if (this.baked.has(name)) continue;
      const f = feeds[name];
      if (!f) throw new Error(`program input '${name}' (${tensor.dtype}${fmtShape(tensor.shape)}) was not given`);
      if (f.dtype !== tensor.dtype || f.shape.length !== tensor.rank || f.shape.some((d, i) => d !== tensor.shape[i])) {
        throw new Error(`program input '${name}': expected ${tensor.dtype}${fmtShape(tensor.shape)}, got ${f.dtype}${fmtShape(f.shape)}`);
      }
    }
    const known = new Set(this.program.inputs.map((i) => i.name).filter((n) => !this.baked.has(n)));
    for (const k of Object.keys(feeds)) if (!known.has(k)) throw new Error(`unexpected program input '${k}'`);
  }

  /**
   * Run. `into` may hold preallocated output tensors (same shape/dtype) that ONNX Runtime
   * writes into, avoiding fresh buffers per step.
   */
  async run(feeds: Record<string, HostTensor>, into?: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    this.checkFeeds(feeds);
    const ortFeeds: Record<string, OrtNs.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(this.ort, v);
    let res: OrtNs.InferenceSession.OnnxValueMapType;
    // Preallocated outputs only where the backend honours them: onnxruntime-node writes into
    // them in place; onnxruntime-web (1.30, WASM) accepts them and returns them unwritten
    // (zeros), so there the outputs come back fresh and are copied into `into` below.
    const inPlace = into && nativeBackend();
    if (inPlace) {
      const fetches: Record<string, OrtNs.Tensor | null> = {};
      for (const { name } of this.program.outputs) fetches[name] = into[name] ? toOrt(this.ort, into[name]!) : null;
      res = await this.session.run(ortFeeds, fetches);
    } else {
      res = await this.session.run(ortFeeds);
    }
    const out: Record<string, HostTensor> = {};
    for (const { name } of this.program.outputs) {
      const dst = into?.[name];
      if (dst && !inPlace) (dst.data as Float32Array).set((res[name] as OrtNs.Tensor).data as Float32Array);
      out[name] = dst ?? fromOrt(res[name] as OrtNs.Tensor);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function signature(feeds: Record<string, HostTensor>): string {
  return Object.keys(feeds)
    .sort()
    .map((k) => `${k}:${feeds[k]!.dtype}[${feeds[k]!.shape.join(',')}]`)
    .join(';');
}

/**
 * `jit(fn)` → async (feeds) => outputs. Traces and compiles once per input signature
 * (names, shapes, dtypes) and caches the session.
 */
export function jit(fn: (inputs: Record<string, Tensor>) => Outputs, opts: SessionOptions = {}) {
  const cache = new Map<string, Promise<CompiledProgram>>();
  const call = async (feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> => {
    const sig = signature(feeds);
    let p = cache.get(sig);
    if (!p) {
      const specs: InputSpecs = {};
      for (const [k, v] of Object.entries(feeds)) specs[k] = { shape: v.shape, dtype: v.dtype };
      p = Program.trace(fn, specs).compile(opts);
      cache.set(sig, p);
      p.catch(() => cache.delete(sig));
    }
    return (await p).run(feeds);
  };
  call.cacheSize = () => cache.size;
  return call;
}
