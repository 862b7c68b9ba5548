// Training steps as one program: forward, losses, gradients and optimizer updates of every
// parameter group run in a single ONNX Runtime call. Each group's parameters and optimizer
// state live in one flat float32 buffer (measured faster than one input per tensor), and
// the Trainer alternates two preallocated buffer sets so outputs never allocate.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { grad } from '../autodiff/grad.ts';
import { Program, type CompiledProgram, type InputSpecs } from '../runtime/program.ts';
import type { SessionOptions } from '../runtime/backend.ts';
import { HostTensor } from '../tensor.ts';
import type { ShapeTree, StateDict, TensorTree } from '../nn/params.ts';
import { optimizerUpdate, stateSlots, type OptimizerSpec } from './optim.ts';

export interface ParamLayout {
  names: string[];
  shapes: number[][];
  offsets: number[];
  total: number;
}

export function makeLayout(shapes: ShapeTree): ParamLayout {
  const names = Object.keys(shapes);
  const offsets: number[] = [];
  let total = 0;
  for (const n of names) {
    offsets.push(total);
    total += shapes[n]!.reduce((a, b) => a * b, 1);
  }
  return { names, shapes: names.map((n) => [...shapes[n]!]), offsets, total };
}

/** Copy a state dict's tensors into one flat buffer in layout order. */
export function packFlat(sd: StateDict, layout: ParamLayout, source = 'state dict'): Float32Array {
  const flat = new Float32Array(layout.total);
  layout.names.forEach((n, i) => {
    const t = sd.get(n);
    if (!t) throw new Error(`${source}: missing '${n}'`);
    const want = layout.shapes[i]!;
    if (t.shape.length !== want.length || t.shape.some((d, k) => d !== want[k])) {
      throw new Error(`${source}: '${n}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}]`);
    }
    if (t.dtype !== 'float32') throw new Error(`${source}: '${n}' must be float32, got ${t.dtype}`);
    flat.set(t.data as Float32Array, layout.offsets[i]);
  });
  return flat;
}

/** Views (no copy) of a flat buffer as a state dict. */
export function unpackFlat(flat: Float32Array, layout: ParamLayout): StateDict {
  const sd: StateDict = new Map();
  layout.names.forEach((n, i) => {
    const s = layout.shapes[i]!;
    const len = s.reduce((a, b) => a * b, 1);
    sd.set(n, HostTensor.float32(s, flat.subarray(layout.offsets[i]!, layout.offsets[i]! + len)));
  });
  return sd;
}

/** In-graph: split a flat [P] tensor into named tensors. */
export function splitFlat(flat: Tensor, layout: ParamLayout): TensorTree {
  const tree: TensorTree = {};
  layout.names.forEach((n, i) => {
    const s = layout.shapes[i]!;
    const len = s.reduce((a, b) => a * b, 1);
    tree[n] = o.reshape(o.narrow(flat, 0, layout.offsets[i]!, layout.offsets[i]! + len), s);
  });
  return tree;
}

/** In-graph: concatenate named tensors (layout order) into a flat [P] tensor. */
export function joinFlat(tree: TensorTree, layout: ParamLayout): Tensor {
  return o.concat(layout.names.map((n) => o.reshape(tree[n]!, [-1])), 0);
}

export interface GroupSpec {
  shapes: ShapeTree;
  optimizer: OptimizerSpec;
  /** Which parameters get weight decay (default: all). */
  decay?: (name: string) => boolean;
}

export interface LossOutput {
  /** One loss per parameter group: group g's parameters follow the gradient of losses[g]. */
  losses: Record<string, Tensor>;
  /** Extra outputs (scalars or tensors) returned after each step. */
  metrics?: Record<string, Tensor>;
  /** New values of non-trained buffers (e.g. BatchNorm running statistics). */
  buffers?: TensorTree;
}

export interface TrainStepSpec {
  groups: Record<string, GroupSpec>;
  buffers?: ShapeTree;
  batch: InputSpecs;
  loss: (params: TensorTree, batch: Record<string, Tensor>, buffers: TensorTree) => LossOutput;
}

/**
 * Program inputs: `<g>.params`, `<g>.s<k>` (optimizer slots), `<g>.lr`, `step`, `buffers`,
 * then the batch; outputs: the same names + '.out', `loss.<g>`, `metric.<name>`.
 */
export function buildTrainStep(spec: TrainStepSpec): { program: Program; layouts: Record<string, ParamLayout>; bufferLayout: ParamLayout } {
  const layouts = Object.fromEntries(Object.entries(spec.groups).map(([g, s]) => [g, makeLayout(s.shapes)]));
  const bufferLayout = makeLayout(spec.buffers ?? {});
  const specs: InputSpecs = {};
  for (const [g, s] of Object.entries(spec.groups)) {
    const P = layouts[g]!.total;
    specs[`${g}.params`] = { shape: [P], dtype: 'float32' };
    for (let k = 0; k < stateSlots(s.optimizer); k++) specs[`${g}.s${k}`] = { shape: [P], dtype: 'float32' };
    specs[`${g}.lr`] = { shape: [], dtype: 'float32' };
  }
  specs.step = { shape: [], dtype: 'float32' };
  if (bufferLayout.total) specs.buffers = { shape: [bufferLayout.total], dtype: 'float32' };
  for (const [k, v] of Object.entries(spec.batch)) specs[k] = v;

  const program = Program.trace((ins) => {
    const params: TensorTree = {};
    const perGroup: Record<string, TensorTree> = {};
    for (const g of Object.keys(spec.groups)) {
      perGroup[g] = splitFlat(ins[`${g}.params`]!, layouts[g]!);
      for (const [k, t] of Object.entries(perGroup[g]!)) {
        if (k in params) throw new Error(`train step: parameter '${k}' is in two groups`);
        params[k] = t;
      }
    }
    const buffers = bufferLayout.total ? splitFlat(ins.buffers!, bufferLayout) : {};
    const batch = Object.fromEntries(Object.keys(spec.batch).map((k) => [k, ins[k]!]));
    const res = spec.loss(params, batch, buffers);
    const outs: Record<string, Tensor> = {};
    for (const [g, gs] of Object.entries(spec.groups)) {
      const loss = res.losses[g];
      if (!loss) throw new Error(`train step: loss function returned no loss for group '${g}'`);
      const lay = layouts[g]!;
      const grads = grad(loss, lay.names.map((n) => perGroup[g]![n]!));
      const gflat = joinFlat(Object.fromEntries(lay.names.map((n, i) => [n, grads[i]!])), lay);
      let decay: Tensor | number = 1;
      if (gs.decay) {
        const mask = lay.names.map((n) => (gs.decay!(n) ? 1 : 0));
        if (mask.every((m) => m === 0)) decay = 0;
        else if (!mask.every((m) => m === 1)) {
          const flat = new Float32Array(lay.total);
          lay.names.forEach((_n, i) => flat.fill(mask[i]!, lay.offsets[i]!, lay.offsets[i]! + lay.shapes[i]!.reduce((a, b) => a * b, 1)));
          decay = o.constant(HostTensor.float32([lay.total], flat));
        }
      }
      const slots = Array.from({ length: stateSlots(gs.optimizer) }, (_, k) => ins[`${g}.s${k}`]!);
      const upd = optimizerUpdate(gs.optimizer, ins[`${g}.params`]!, gflat, slots, ins.step!, ins[`${g}.lr`]!, decay);
      outs[`${g}.params.out`] = upd.p;
      upd.state.forEach((s, k) => (outs[`${g}.s${k}.out`] = s));
      outs[`loss.${g}`] = loss;
    }
    if (bufferLayout.total) {
      const nb = { ...buffers, ...(res.buffers ?? {}) };
      outs['buffers.out'] = joinFlat(nb, bufferLayout);
    }
    for (const [k, t] of Object.entries(res.metrics ?? {})) outs[`metric.${k}`] = t;
    return outs;
  }, specs);
  return { program, layouts, bufferLayout };
}

/** Host-side driver: owns the flat buffers, runs steps, exposes state dicts. */
export class Trainer {
  readonly spec: TrainStepSpec;
  readonly program: Program;
  readonly layouts: Record<string, ParamLayout>;
  readonly bufferLayout: ParamLayout;
  private compiled: CompiledProgram | null = null;
  /** Two sets of state buffers: [current, next]. */
  private sets: [Record<string, HostTensor>, Record<string, HostTensor>];
  step = 0;

  constructor(spec: TrainStepSpec, init: { params: StateDict; buffers?: StateDict }) {
    this.spec = spec;
    const b = buildTrainStep(spec);
    this.program = b.program;
    this.layouts = b.layouts;
    this.bufferLayout = b.bufferLayout;
    const mk = (): Record<string, HostTensor> => {
      const s: Record<string, HostTensor> = {};
      for (const [g, gs] of Object.entries(spec.groups)) {
        const P = this.layouts[g]!.total;
        s[`${g}.params`] = HostTensor.float32([P]);
        for (let k = 0; k < stateSlots(gs.optimizer); k++) s[`${g}.s${k}`] = HostTensor.float32([P]);
      }
      if (this.bufferLayout.total) s.buffers = HostTensor.float32([this.bufferLayout.total]);
      return s;
    };
    this.sets = [mk(), mk()];
    for (const g of Object.keys(spec.groups)) {
      (this.sets[0][`${g}.params`]!.data as Float32Array).set(packFlat(init.params, this.layouts[g]!, `group '${g}'`));
    }
    if (this.bufferLayout.total) {
      (this.sets[0].buffers!.data as Float32Array).set(packFlat(init.buffers ?? new Map(), this.bufferLayout, 'buffers'));
    }
  }

  async compile(opts: SessionOptions = {}): Promise<void> {
    this.compiled = await this.program.compile(opts);
  }

  /** One step. `lr` per group. Returns losses and metrics (fresh tensors). */
  async run(batch: Record<string, HostTensor>, lr: Record<string, number>): Promise<Record<string, HostTensor>> {
    if (!this.compiled) await this.compile();
    const [cur, next] = this.sets;
    const feeds: Record<string, HostTensor> = { ...cur, step: HostTensor.scalar(this.step + 1), ...batch };
    for (const g of Object.keys(this.spec.groups)) {
      if (lr[g] === undefined) throw new Error(`Trainer.run: no learning rate for group '${g}'`);
      feeds[`${g}.lr`] = HostTensor.scalar(lr[g]!);
    }
    const into: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(next)) into[`${k}.out`] = v;
    const out = await this.compiled!.run(feeds, into);
    this.sets = [next, cur];
    this.step++;
    const res: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(out)) if (k.startsWith('loss.') || k.startsWith('metric.')) res[k] = v;
    return res;
  }

  /** Current parameters of a group (views into the live buffer; copy to keep). */
  params(group: string): StateDict {
    return unpackFlat(this.sets[0][`${group}.params`]!.data as Float32Array, this.layouts[group]!);
  }

  buffers(): StateDict {
    return this.bufferLayout.total ? unpackFlat(this.sets[0].buffers!.data as Float32Array, this.bufferLayout) : new Map();
  }

  /** Raw flat state (params, optimizer slots, buffers) for checkpointing. */
  flatState(): Record<string, HostTensor> {
    return this.sets[0];
  }

  loadFlatState(state: Record<string, HostTensor>, step: number): void {
    for (const [k, v] of Object.entries(this.sets[0])) {
      const s = state[k];
      if (!s || s.size !== v.size) throw new Error(`trainer state: '${k}' missing or wrong size`);
      (v.data as Float32Array).set(s.data as Float32Array);
    }
    this.step = step;
  }
}
