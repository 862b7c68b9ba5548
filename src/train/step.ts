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
import type { FlatLayout } from './train_manifest.ts';

/** Where each named tensor sits in a flat buffer (also what a training export's manifest carries). */
export type ParamLayout = FlatLayout;

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
  /**
   * Custom backward for a group: its gradient is that of Σ⟨seeds_k, outputs_k⟩ instead of
   * losses[g] (used to share one discriminator backward between λ and the generator).
   */
  backward?: Record<string, { outputs: Tensor[]; seeds: Tensor[] }>;
}

export interface TrainStepSpec {
  groups: Record<string, GroupSpec>;
  buffers?: ShapeTree;
  batch: InputSpecs;
  loss: (params: TensorTree, batch: Record<string, Tensor>, buffers: TensorTree) => LossOutput;
  /** Groups this program updates (default: all). Others are read-only inputs, not trained. */
  train?: string[];
}

/**
 * Program inputs: `<g>.params`, and for trained groups `<g>.s<k>` (optimizer slots),
 * `<g>.lr`, `<g>.step`; `buffers`; then the batch. Outputs: `<g>.params.out`, `<g>.s<k>.out`,
 * `buffers.out`, `loss.<g>`, `metric.<name>`.
 */
export function buildTrainStep(spec: TrainStepSpec): { program: Program; layouts: Record<string, ParamLayout>; bufferLayout: ParamLayout } {
  const layouts = Object.fromEntries(Object.entries(spec.groups).map(([g, s]) => [g, makeLayout(s.shapes)]));
  const trained = spec.train ?? Object.keys(spec.groups);
  for (const g of trained) if (!spec.groups[g]) throw new Error(`train step: unknown group '${g}'`);
  const bufferLayout = makeLayout(spec.buffers ?? {});
  const specs: InputSpecs = {};
  for (const [g, s] of Object.entries(spec.groups)) {
    const P = layouts[g]!.total;
    specs[`${g}.params`] = { shape: [P], dtype: 'float32' };
    if (!trained.includes(g)) continue;
    for (let k = 0; k < stateSlots(s.optimizer); k++) specs[`${g}.s${k}`] = { shape: [P], dtype: 'float32' };
    specs[`${g}.lr`] = { shape: [], dtype: 'float32' };
    specs[`${g}.step`] = { shape: [], dtype: 'float32' };
  }
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
    for (const g of trained) {
      const gs = spec.groups[g]!;
      const loss = res.losses[g];
      if (!loss) throw new Error(`train step: loss function returned no loss for group '${g}'`);
      const lay = layouts[g]!;
      const bw = res.backward?.[g];
      const wrt = lay.names.map((n) => perGroup[g]![n]!);
      const grads = bw ? grad(bw.outputs, wrt, bw.seeds) : grad(loss, wrt);
      const gflat = joinFlat(Object.fromEntries(lay.names.map((n, i) => [n, grads[i]!])), lay);
      const slots = Array.from({ length: stateSlots(gs.optimizer) }, (_, k) => ins[`${g}.s${k}`]!);
      const upd = optimizerUpdate(gs.optimizer, ins[`${g}.params`]!, gflat, slots, ins[`${g}.step`]!, ins[`${g}.lr`]!, decayMask(gs, lay));
      outs[`${g}.params.out`] = upd.p;
      upd.state.forEach((s, k) => (outs[`${g}.s${k}.out`] = s));
      outs[`loss.${g}`] = loss;
    }
    if (bufferLayout.total) outs['buffers.out'] = joinFlat({ ...buffers, ...(res.buffers ?? {}) }, bufferLayout);
    for (const [k, t] of Object.entries(res.metrics ?? {})) outs[`metric.${k}`] = t;
    return outs;
  }, specs);
  return { program, layouts, bufferLayout };
}

function decayMask(gs: GroupSpec, lay: ParamLayout): Tensor | number {
  if (!gs.decay) return 1;
  const mask = lay.names.map((n) => (gs.decay!(n) ? 1 : 0));
  if (mask.every((m) => m === 0)) return 0;
  if (mask.every((m) => m === 1)) return 1;
  const flat = new Float32Array(lay.total);
  lay.names.forEach((_n, i) => flat.fill(mask[i]!, lay.offsets[i]!, lay.offsets[i]! + lay.shapes[i]!.reduce((a, b) => a * b, 1)));
  return o.constant(HostTensor.float32([lay.total], flat));
}

/** Per-group host state: two alternating sets of flat buffers (params + optimizer slots). */
interface GroupState {
  sets: [Record<string, HostTensor>, Record<string, HostTensor>];
  step: number;
}

/**
 * Host-side driver: owns every group's flat buffers and step count, and runs one or more
 * programs over them (e.g. a warm-up program that trains only the autoencoder and a full
 * GAN program). Outputs are written into preallocated buffers that alternate per group.
 */
export class Trainer {
  readonly groups: Record<string, GroupSpec>;
  readonly layouts: Record<string, ParamLayout>;
  readonly bufferLayout: ParamLayout;
  private state: Record<string, GroupState> = {};
  private bufSets: [HostTensor, HostTensor] | null = null;
  private programs = new Map<string, { spec: TrainStepSpec; program: Program; compiled: Promise<CompiledProgram> | null }>();
  session: SessionOptions = {};

  constructor(groups: Record<string, GroupSpec>, init: { params: StateDict; buffers?: StateDict; bufferShapes?: ShapeTree }) {
    this.groups = groups;
    this.layouts = Object.fromEntries(Object.entries(groups).map(([g, s]) => [g, makeLayout(s.shapes)]));
    this.bufferLayout = makeLayout(init.bufferShapes ?? {});
    for (const [g, gs] of Object.entries(groups)) {
      const P = this.layouts[g]!.total;
      const mk = () => {
        const s: Record<string, HostTensor> = { params: HostTensor.float32([P]) };
        for (let k = 0; k < stateSlots(gs.optimizer); k++) s[`s${k}`] = HostTensor.float32([P]);
        return s;
      };
      this.state[g] = { sets: [mk(), mk()], step: 0 };
      (this.state[g]!.sets[0].params!.data as Float32Array).set(packFlat(init.params, this.layouts[g]!, `group '${g}'`));
    }
    if (this.bufferLayout.total) {
      this.bufSets = [HostTensor.float32([this.bufferLayout.total]), HostTensor.float32([this.bufferLayout.total])];
      (this.bufSets[0].data as Float32Array).set(packFlat(init.buffers ?? new Map(), this.bufferLayout, 'buffers'));
    }
  }

  /** Register a program (its groups must be this trainer's groups). */
  define(name: string, spec: Omit<TrainStepSpec, 'groups' | 'buffers'>): Program {
    const full: TrainStepSpec = { ...spec, groups: this.groups, buffers: this.bufferShapes() };
    const b = buildTrainStep(full);
    this.programs.set(name, { spec: full, program: b.program, compiled: null });
    return b.program;
  }

  private bufferShapes(): ShapeTree {
    return Object.fromEntries(this.bufferLayout.names.map((n, i) => [n, this.bufferLayout.shapes[i]!]));
  }

  program(name: string): Program {
    const p = this.programs.get(name);
    if (!p) throw new Error(`Trainer: no program '${name}'`);
    return p.program;
  }

  async compile(name: string): Promise<CompiledProgram> {
    const p = this.programs.get(name);
    if (!p) throw new Error(`Trainer: no program '${name}'`);
    if (!p.compiled) p.compiled = p.program.compile(this.session);
    return p.compiled;
  }

  /** The feeds (and preallocated outputs) one step of program `name` uses. */
  feeds(name: string, batch: Record<string, HostTensor>, lr: Record<string, number>): { feeds: Record<string, HostTensor>; into: Record<string, HostTensor>; trained: string[] } {
    const spec = this.programs.get(name)?.spec;
    if (!spec) throw new Error(`Trainer: no program '${name}'`);
    const trained = spec.train ?? Object.keys(this.groups);
    const feeds: Record<string, HostTensor> = { ...batch };
    const into: Record<string, HostTensor> = {};
    for (const [g, st] of Object.entries(this.state)) {
      const [cur, next] = st.sets;
      feeds[`${g}.params`] = cur.params!;
      if (!trained.includes(g)) continue;
      if (lr[g] === undefined) throw new Error(`Trainer.run: no learning rate for group '${g}'`);
      for (const [k, v] of Object.entries(cur)) if (k !== 'params') feeds[`${g}.${k}`] = v;
      feeds[`${g}.lr`] = HostTensor.scalar(lr[g]!);
      feeds[`${g}.step`] = HostTensor.scalar(st.step + 1);
      for (const [k, v] of Object.entries(next)) into[`${g}.${k}.out`] = v;
    }
    if (this.bufSets) {
      feeds.buffers = this.bufSets[0];
      into['buffers.out'] = this.bufSets[1];
    }
    return { feeds, into, trained };
  }

  /** One step of program `name`; `lr` per trained group. Returns losses and metrics. */
  async run(name: string, batch: Record<string, HostTensor>, lr: Record<string, number>): Promise<Record<string, HostTensor>> {
    const compiled = await this.compile(name);
    const { feeds, into, trained } = this.feeds(name, batch, lr);
    const out = await compiled.run(feeds, into);
    for (const g of trained) {
      const st = this.state[g]!;
      st.sets = [st.sets[1], st.sets[0]];
      st.step++;
    }
    if (this.bufSets) this.bufSets = [this.bufSets[1], this.bufSets[0]];
    const res: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(out)) if (k.startsWith('loss.') || k.startsWith('metric.')) res[k] = v;
    return res;
  }

  /** Count a step for a group without running it (an optimizer step with zero gradient). */
  advance(group: string, n = 1): void {
    this.state[group]!.step += n;
  }

  step(group: string): number {
    return this.state[group]!.step;
  }

  /** Current parameters of a group (views into the live buffer; copy to keep). */
  params(group: string): StateDict {
    return unpackFlat(this.state[group]!.sets[0].params!.data as Float32Array, this.layouts[group]!);
  }

  /** Current optimizer slots of a group (views), e.g. to reset moments of restarted codes. */
  slots(group: string): StateDict[] {
    const cur = this.state[group]!.sets[0];
    return Object.keys(cur)
      .filter((k) => k !== 'params')
      .map((k) => unpackFlat(cur[k]!.data as Float32Array, this.layouts[group]!));
  }

  buffers(): StateDict {
    return this.bufSets ? unpackFlat(this.bufSets[0].data as Float32Array, this.bufferLayout) : new Map();
  }

  /** Everything needed to resume: flat params, optimizer slots, buffers, step counts. */
  snapshot(): { tensors: Record<string, HostTensor>; steps: Record<string, number> } {
    const tensors: Record<string, HostTensor> = {};
    for (const [g, st] of Object.entries(this.state)) for (const [k, v] of Object.entries(st.sets[0])) tensors[`${g}.${k}`] = v;
    if (this.bufSets) tensors.buffers = this.bufSets[0];
    return { tensors, steps: Object.fromEntries(Object.entries(this.state).map(([g, s]) => [g, s.step])) };
  }

  restore(snap: { tensors: Record<string, HostTensor>; steps: Record<string, number> }): void {
    const put = (dst: HostTensor, key: string) => {
      const s = snap.tensors[key];
      if (!s || s.size !== dst.size) throw new Error(`trainer state: '${key}' missing or of the wrong size (${s?.size} vs ${dst.size})`);
      (dst.data as Float32Array).set(s.data as Float32Array);
    };
    for (const [g, st] of Object.entries(this.state)) {
      for (const [k, v] of Object.entries(st.sets[0])) put(v, `${g}.${k}`);
      st.step = snap.steps[g] ?? 0;
    }
    if (this.bufSets) put(this.bufSets[0], 'buffers');
  }
}
