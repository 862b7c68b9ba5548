// Batches for transformer training from a code set: epoch-shuffled rows, a random view per
// row (original or flipped, when the set holds both), the condition (class token — replaced
// by the null class with probability class_dropout —, the condition grid's codes, or the SOS
// token), pkeep corruption of the input codes (targets stay clean; random codes are drawn
// from [0, vocab_size) as taming does) and dropout keep-masks. All randomness comes from Rngs
// whose state is part of `state()`, so a resumed run draws exactly the batches it would have.
import { Rng } from '../io/datasets.ts';
import { HostTensor } from '../tensor.ts';
import type { CodeSet } from '../io/codes.ts';
import type { CondKind } from './gpt_config.ts';
import { sampleTrainingMask } from '../losses/maskgit.ts';

export interface GPTBatch {
  c: HostTensor<'int64'>;
  a: HostTensor<'int64'>;
  z: HostTensor<'int64'>;
  /** MaskGIT: 1 where `a` holds [MASK] (the positions scored), [B, Lz] */
  m?: HostTensor<'float32'>;
  rows: Int32Array;
}

export interface GPTBatcherOptions {
  set: CodeSet;
  rows: readonly number[];
  batchSize: number;
  cond: CondKind;
  sosToken: number;
  vocab: number;
  pkeep: number;
  classDropout: number;
  /** Label used for dropped classes (n_classes). */
  nullClass: number;
  flip: boolean;
  seed: number;
  /** false: fixed order, view 0, no corruption (validation). */
  train: boolean;
  /**
   * MaskGIT: the [MASK] id. Each row masks ⌈cos(πr/2)·Lz⌉ codes of `a` (r ~ U(0, 1)); validation
   * rows draw theirs from a stream seeded by the row, so every validation pass scores the same
   * masks. An image condition is dropped (every token [MASK]) with probability condDropout.
   */
  maskToken?: number;
  condDropout?: number;
}

export interface GPTBatcherState {
  epoch: number;
  position: number;
  rng: number[];
  count: number;
}

export class GPTBatcher {
  readonly o: GPTBatcherOptions;
  readonly lz: number;
  readonly lc: number;
  private rng: Rng;
  private epoch = 0;
  private pos = 0;
  private order: number[] = [];
  private orderEpoch = -1;

  constructor(o: GPTBatcherOptions) {
    this.o = o;
    const [, , h, w] = o.set.codes.shape as [number, number, number, number];
    this.lz = h * w;
    if (o.cond === 'image') {
      if (!o.set.cond) throw new Error('the config is conditioned on an image but the code set holds no condition codes (extract-codes --cond …)');
      const [, , hc, wc] = o.set.cond.shape as [number, number, number, number];
      this.lc = hc * wc;
    } else this.lc = 1;
    if (o.rows.length === 0) throw new Error('no rows to draw batches from');
    if (o.train && o.rows.length < o.batchSize) throw new Error(`the code set's training split has ${o.rows.length} rows, fewer than one batch of ${o.batchSize} (lower --batch-size)`);
    this.rng = new Rng(`gpt-batches:${o.seed}`);
  }

  get length(): number {
    return this.o.rows.length;
  }

  /** Batches per pass over the rows (validation: ceil; training drops the last partial). */
  get batchesPerEpoch(): number {
    return this.o.train ? Math.floor(this.o.rows.length / this.o.batchSize) : Math.ceil(this.o.rows.length / this.o.batchSize);
  }

  private orderFor(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      this.order = [...this.o.rows];
      if (this.o.train) new Rng(`gpt-order:${this.o.seed}:${epoch}`).shuffle(this.order);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** The next batch; validation batches are padded by repeating their last row (`rows` says which are real). */
  next(): GPTBatch & { real: number } {
    const o = this.o;
    const n = o.rows.length;
    const B = o.batchSize;
    if (this.pos >= n || (o.train && this.pos + B > n)) {
      this.epoch++;
      this.pos = 0;
    }
    const order = this.orderFor(this.epoch);
    const real = Math.min(B, n - this.pos);
    const rows = Int32Array.from({ length: B }, (_, i) => order[this.pos + Math.min(i, real - 1)]!);
    this.pos += real;
    const codes = o.set.codes;
    const views = codes.shape[1]!;
    const lz = this.lz;
    const lc = this.lc;
    const c = HostTensor.int64([B, lc]);
    const a = HostTensor.int64([B, lz]);
    const z = HostTensor.int64([B, lz]);
    const mg = o.maskToken !== undefined;
    const m = mg ? HostTensor.float32([B, lz]) : undefined;
    for (let b = 0; b < B; b++) {
      const r = rows[b]!;
      const view = o.train && o.flip && views > 1 ? this.rng.int(views) : 0;
      const zsrc = codes.data.subarray((r * views + view) * lz, (r * views + view + 1) * lz);
      for (let i = 0; i < lz; i++) {
        const v = BigInt(zsrc[i]!);
        z.data[b * lz + i] = v;
        a.data[b * lz + i] = !mg && o.train && o.pkeep < 1 && this.rng.next() >= o.pkeep ? BigInt(this.rng.int(o.vocab)) : v;
      }
      if (mg) {
        const mask = sampleTrainingMask(o.train ? this.rng : new Rng(`maskgit-val:${o.seed}:${r}`), lz);
        m!.data.set(mask, b * lz);
        for (let i = 0; i < lz; i++) if (mask[i]) a.data[b * lz + i] = BigInt(o.maskToken!);
      }
      if (o.cond === 'image') {
        const cs = o.set.cond!.data.subarray((r * views + view) * lc, (r * views + view + 1) * lc);
        const dropped = mg && o.train && (o.condDropout ?? 0) > 0 && this.rng.next() < o.condDropout!;
        for (let i = 0; i < lc; i++) c.data[b * lc + i] = BigInt(dropped ? o.maskToken! : cs[i]!);
      } else if (o.cond === 'class') {
        const drop = o.train && o.classDropout > 0 && this.rng.next() < o.classDropout;
        c.data[b] = BigInt(drop ? o.nullClass : o.set.labels[r]!);
      } else c.data[b] = BigInt(o.sosToken);
    }
    return { c, a, z, ...(m ? { m } : {}), rows, real };
  }

  /** Bool keep-masks (true = keep) with P(keep) = 1 − p, from the same stream. */
  keepMask(shape: readonly number[], p: number): HostTensor<'bool'> {
    const t = new HostTensor('bool', shape);
    const d = t.data as Uint8Array;
    const thr = Math.round(p * 65536);
    for (let i = 0; i < d.length; i += 2) {
      const u = this.rng.nextU32();
      d[i] = (u & 0xffff) >= thr ? 1 : 0;
      if (i + 1 < d.length) d[i + 1] = u >>> 16 >= thr ? 1 : 0;
    }
    return t;
  }

  state(): GPTBatcherState {
    return { epoch: this.epoch, position: this.pos, rng: this.rng.state(), count: this.o.rows.length };
  }

  setState(s: GPTBatcherState): void {
    if (s.count !== this.o.rows.length) throw new Error(`resume: the checkpoint was trained on ${s.count} rows, this code set has ${this.o.rows.length}`);
    this.epoch = s.epoch;
    this.pos = s.position;
    this.rng.setState(s.rng);
  }
}
