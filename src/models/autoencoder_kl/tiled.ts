// Tiled encoding and decoding whose output equals the untiled model's up to float error. The
// network runs stage by stage over all tiles (a stage = one GroupNorm → SiLU → 3×3 conv, or a
// resampling conv), and every GroupNorm uses the WHOLE image's statistics: after each stage
// the host takes each tile's per-group count, mean and M2 = Σ(x − mean)² and pools them over
// the tiles with Chan's parallel formula (between-tile variance included), then feeds the
// pooled mean and 1/σ to the next stage. Between stages the activation waits on the host as a
// grid of blocks (Plane) and the next stage cuts its tiles from it, so a tile needs a halo of
// one pixel (one 3×3 conv per stage; the encoder's stride-2 downsampling needs one row/column
// after the tile). All tiles of a stage have one shape (zero-padded past the image, with a
// mask standing in for the conv's zero padding), so a stage compiles one program. The mid
// block and everything at latent resolution run whole, the attention in query chunks.
//
// Memory (a 2048² decode with SD's VAE holds 128-channel 2048² activations: 2.1 GB each in
// float32): the decoder's upsampling conv is not stored but recomputed inside the next
// resnet's first stage (a statistics-only pass over it first: its output's GroupNorm
// statistics are needed before that stage), a resnet's 1×1 shortcut is applied in its first
// stage so its wider input can go, blocks of a stage's input are freed as soon as no later
// tile needs them, and above LARGE_BYTES per activation the blocks are float16 (scaled by a
// power of two per block, so activations beyond float16's range survive) and each stage's
// program is released after the stage. Where one activation exceeds RECOMPUTE_BYTES even so
// (the top level at 2048²), a resnet block runs as a statistics pass over its first conv and
// then whole in one stage (context 2 per side), so only its input and output are stored:
// ~1.1 GB at the top level instead of ~2.2 GB, for one more first conv per block (measured in
// bench/README.md, "KL autoencoder").
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import { ParamView, type StateDict } from '../../nn/params.ts';
import { Program, type CompiledProgram } from '../../runtime/program.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import { floatToHalfBits, halfToFloatTable } from '../../io/formats/safetensors.ts';
import { conv, midBlock, normGroups } from '../vqgan/modules.ts';
import type { KLConfig } from './config.ts';
import { posteriorFromMoments } from './autoencoder.ts';

export interface TileOptions {
  /** tile size in latent pixels (each stage tiles the same regions at its own resolution, at most MAX_STAGE_TILE pixels) */
  tile: number;
  /** context pixels around each tile at each stage's resolution; 1 is exact (one 3×3 conv per stage) */
  halo?: number;
  /** mid-block attention in blocks of this many query positions (0 = whole; default: whole up to 64² latents, else blocks whose scores take ≤ 64 MB) */
  queryChunk?: number;
  /**
   * How activations wait on the host between stages: 'float32', or 'float16' (half the
   * memory; rounding adds ~1e-4 relative error per stage). Default: float16 when one
   * full-resolution activation would exceed LARGE_BYTES in float32 (a 2048² decode with SD's
   * VAE), else float32.
   */
  storage?: 'float32' | 'float16';
  /**
   * Decoder levels whose resnet blocks store only their input and output, recomputing the
   * first conv (and an upsampling before it) in a second pass: true for all, false for none.
   * Default: the levels whose stored activation would exceed RECOMPUTE_BYTES (at 2048² with
   * SD's VAE the top level: 1.07 GB per activation in float16, instead of two of them).
   */
  recompute?: boolean;
}

/** A stage's tiles are at most this many pixels a side at its own resolution (bounds the runtime's per-tile memory). */
export const MAX_STAGE_TILE = 128;
/** Above this many bytes per full-resolution float32 activation, storage defaults to float16 and stage programs are released after use. */
export const LARGE_BYTES = 2 ** 30;
/** Decoder levels whose stored activation (float16 or float32, as stored) exceeds this recompute their resnets' first convs by default. */
export const RECOMPUTE_BYTES = 2 ** 29;

/** Query rows per attention block: whole up to 4096 positions, else blocks of ≤ 2^24 scores (64 MB in float32). */
export const autoQueryChunk = (n: number): number => (n <= 4096 ? 0 : Math.max(1, Math.floor(2 ** 24 / n)));

/** Per (batch, group) statistics: element count per group, mean and M2 (float64, [B·G]). */
export interface GroupStats {
  n: number;
  mean: Float64Array;
  m2: Float64Array;
}

/** Chan et al.'s parallel combination of two sets of (n, mean, M2). */
export function mergeStats(a: GroupStats | null, b: GroupStats): GroupStats {
  if (!a) return b;
  const n = a.n + b.n;
  const mean = new Float64Array(a.mean.length);
  const m2 = new Float64Array(a.mean.length);
  for (let i = 0; i < mean.length; i++) {
    const d = b.mean[i]! - a.mean[i]!;
    mean[i] = a.mean[i]! + (d * b.n) / n;
    m2[i] = a.m2[i]! + b.m2[i]! + (d * d * a.n * b.n) / n;
  }
  return { n, mean, m2 };
}

type StageKind = 'convIn' | 'resA' | 'resB' | 'res' | 'upStats' | 'down' | 'out';
interface Stage {
  kind: StageKind;
  /** parameter prefix: decoder.up.3.block.0, decoder.up.3.upsample, encoder.down.0.downsample, encoder.conv_in, decoder */
  key: string;
  cin: number;
  cout: number;
  /** this stage's output resolution = input resolution × scale */
  scale: 0.5 | 1 | 2;
  /** output resolution ÷ latent resolution */
  res: number;
  /** resA after an upsampling: the upsampling conv (this prefix) runs first, inside the stage; upStats: its statistics pass */
  up?: string;
  /** resA of a block with a 1×1 shortcut: the shortcut is applied here (second output); res: the block has one */
  nin?: boolean;
  /** resA run for its output's statistics only (before a res stage that recomputes it) */
  statsOnly?: boolean;
}

/**
 * The decoder after its mid block, in execution order (each upsampling as a statistics pass,
 * then fused into the next resA). At the levels in `recompute` a resnet block runs as a
 * statistics pass over its first conv (resA, statsOnly) and then whole in one stage (res)
 * that recomputes it: only the block's input and output are ever stored, not its middle.
 */
function decoderStages(cfg: KLConfig, has: (k: string) => boolean, recompute: (level: number) => boolean = () => false): Stage[] {
  const dd = cfg.ddconfig;
  if (dd.attn_resolutions.length) throw new Error('tiled decoding supports decoders without attention outside the mid block (as in SD\'s VAEs)');
  const stages: Stage[] = [];
  const n = dd.ch_mult.length;
  let c = dd.ch * dd.ch_mult[n - 1]!;
  let res = 1;
  for (let i = n - 1; i >= 0; i--) {
    const cout = dd.ch * dd.ch_mult[i]!;
    for (let j = 0; j < dd.num_res_blocks + 1; j++) {
      const key = `decoder.up.${i}.block.${j}`;
      const up = j === 0 && i !== n - 1 ? `decoder.up.${i + 1}.upsample` : undefined;
      if (up) {
        stages.push({ kind: 'upStats', key: up, cin: c, cout: c, scale: 2, res: res * 2, up });
        res *= 2;
      }
      const nin = has(`${key}.nin_shortcut.weight`);
      if (recompute(i)) {
        stages.push({ kind: 'resA', key, cin: c, cout, scale: up ? 2 : 1, res, up, statsOnly: true });
        stages.push({ kind: 'res', key, cin: c, cout, scale: up ? 2 : 1, res, up, nin });
      } else {
        stages.push({ kind: 'resA', key, cin: c, cout, scale: up ? 2 : 1, res, up, nin });
        stages.push({ kind: 'resB', key, cin: cout, cout, scale: 1, res });
      }
      c = cout;
    }
  }
  stages.push({ kind: 'out', key: 'decoder', cin: c, cout: dd.out_ch, scale: 1, res });
  return stages;
}

/** The encoder up to its mid block, in execution order. */
function encoderStages(cfg: KLConfig, has: (k: string) => boolean): Stage[] {
  const dd = cfg.ddconfig;
  if (dd.attn_resolutions.length) throw new Error('tiled encoding supports encoders without attention outside the mid block (as in SD\'s VAEs)');
  let res = 2 ** (dd.ch_mult.length - 1);
  const stages: Stage[] = [{ kind: 'convIn', key: 'encoder.conv_in', cin: dd.in_channels, cout: dd.ch, scale: 1, res }];
  let c = dd.ch;
  dd.ch_mult.forEach((m, i) => {
    const cout = dd.ch * m;
    for (let j = 0; j < dd.num_res_blocks; j++) {
      const key = `encoder.down.${i}.block.${j}`;
      stages.push({ kind: 'resA', key, cin: c, cout, scale: 1, res, nin: has(`${key}.nin_shortcut.weight`) });
      stages.push({ kind: 'resB', key, cin: cout, cout, scale: 1, res });
      c = cout;
    }
    if (i !== dd.ch_mult.length - 1) {
      res /= 2;
      stages.push({ kind: 'down', key: `encoder.down.${i}.downsample`, cin: c, cout: c, scale: 0.5, res });
    }
  });
  return stages;
}

/** GroupNorm with given per-channel mean and 1/σ ([B, C, 1, 1]) then the affine weight/bias. */
function normWith(p: ParamView, x: Tensor, mean: Tensor, rstd: Tensor): Tensor {
  const c = x.shape[1]!;
  const w = o.reshape(p.get('weight'), [1, c, 1, 1]);
  const b = o.reshape(p.get('bias'), [1, c, 1, 1]);
  return o.add(o.mul(o.mul(o.sub(x, mean), rstd), w), b);
}

/** Per (batch, group) count, mean and M2 of the [0, h) × [0, w) corner of y [B, C, H, W], in float64. */
export function tileMoments(y: HostTensor<'float32'>, groups: number, h: number, w: number): GroupStats {
  const [b, c, H, W] = y.shape as [number, number, number, number];
  const cg = c / groups;
  const n = cg * h * w;
  const mean = new Float64Array(b * groups);
  const m2 = new Float64Array(b * groups);
  const d = y.data;
  for (let i = 0; i < b * groups; i++) {
    let s = 0;
    for (let ch = 0; ch < cg; ch++) for (let r = 0; r < h; r++) for (let k = (((i * cg + ch) * H) + r) * W, e = k + w; k < e; k++) s += d[k]!;
    const mu = s / n;
    let q = 0;
    for (let ch = 0; ch < cg; ch++) {
      for (let r = 0; r < h; r++) {
        for (let k = (((i * cg + ch) * H) + r) * W, e = k + w; k < e; k++) q += (d[k]! - mu) ** 2;
      }
    }
    mean[i] = mu;
    m2[i] = q;
  }
  return { n, mean, m2 };
}

interface Block {
  data: Float32Array | Uint16Array;
  /** stored = value / scale (a power of two; float16 blocks only) */
  scale: number;
  h: number;
  w: number;
}

/**
 * An activation [B, C, H, W] on the host as a grid of bh × bw blocks (the tiles that wrote
 * it), float32 or float16. Any window can be read back as float32 (zeros outside the image);
 * blocks no longer needed can be freed row by row.
 */
export class Plane {
  private readonly blocks: (Block | null | undefined)[];
  private readonly cols: number;

  constructor(
    readonly b: number,
    readonly c: number,
    readonly H: number,
    readonly W: number,
    readonly bh: number,
    readonly bw: number,
    readonly half: boolean,
  ) {
    this.cols = Math.ceil(W / bw);
    this.blocks = new Array<Block | undefined>(Math.ceil(H / bh) * this.cols);
  }

  /** A whole float32 tensor as a one-block plane (shares its data). */
  static of(t: HostTensor<'float32'>): Plane {
    const [b, c, H, W] = t.shape as [number, number, number, number];
    const p = new Plane(b, c, H, W, H, W, false);
    p.blocks[0] = { data: t.data, scale: 1, h: H, w: W };
    return p;
  }

  /** Bytes held by the blocks not yet freed. */
  get bytes(): number {
    return this.blocks.reduce((s, k) => s + (k ? k.data.byteLength : 0), 0);
  }

  /** Stores the [0, h) × [0, w) corner of `src` [B, C, sh, sw] as the block whose top-left is (r0, c0). */
  write(r0: number, c0: number, src: HostTensor<'float32'>, h: number, w: number): void {
    if (r0 % this.bh || c0 % this.bw || h !== Math.min(this.bh, this.H - r0) || w !== Math.min(this.bw, this.W - c0)) throw new Error(`Plane.write: ${h}×${w} at (${r0}, ${c0}) is not a block of the ${this.bh}×${this.bw} grid over ${this.H}×${this.W}`);
    const [, , sh, sw] = src.shape as [number, number, number, number];
    const bc = this.b * this.c;
    const s = src.data;
    let block: Block;
    if (!this.half) {
      const d = new Float32Array(bc * h * w);
      for (let i = 0; i < bc; i++) for (let y = 0; y < h; y++) d.set(s.subarray((i * sh + y) * sw, (i * sh + y) * sw + w), (i * h + y) * w);
      block = { data: d, scale: 1, h, w };
    } else {
      let max = 0;
      for (let i = 0; i < bc; i++) {
        for (let y = 0; y < h; y++) {
          for (let k = (i * sh + y) * sw, e = k + w; k < e; k++) {
            const v = Math.abs(s[k]!);
            if (v > max) max = v;
          }
        }
      }
      // keep |value / scale| ≤ 2^14 (float16's largest finite value is 65504)
      const scale = max > 2 ** 14 && Number.isFinite(max) ? 2 ** Math.ceil(Math.log2(max / 2 ** 14)) : 1;
      const d = new Uint16Array(bc * h * w);
      for (let i = 0; i < bc; i++) {
        for (let y = 0; y < h; y++) {
          const i0 = (i * sh + y) * sw;
          const o0 = (i * h + y) * w;
          for (let k = 0; k < w; k++) d[o0 + k] = floatToHalfBits(s[i0 + k]! / scale);
        }
      }
      block = { data: d, scale, h, w };
    }
    this.blocks[(r0 / this.bh) * this.cols + c0 / this.bw] = block;
  }

  /** Rows [r0, r0 + h) × cols [c0, c0 + w) as a float32 tensor [B, C, h, w]; zeros outside the image. */
  read(r0: number, c0: number, h: number, w: number): HostTensor<'float32'> {
    const bc = this.b * this.c;
    const out = new Float32Array(bc * h * w);
    const tab = this.half ? halfToFloatTable() : null;
    const [y0, y1, x0, x1] = [Math.max(0, r0), Math.min(this.H, r0 + h), Math.max(0, c0), Math.min(this.W, c0 + w)];
    for (let bi = Math.floor(y0 / this.bh); bi * this.bh < y1; bi++) {
      for (let bj = Math.floor(x0 / this.bw); bj * this.bw < x1; bj++) {
        const k = this.blocks[bi * this.cols + bj];
        if (!k) throw new Error(`Plane.read: block (${bi}, ${bj}) ${k === null ? 'was freed' : 'was never written'}`);
        const [by, bx] = [bi * this.bh, bj * this.bw];
        const [ya, yb, xa, xb] = [Math.max(y0, by), Math.min(y1, by + k.h), Math.max(x0, bx), Math.min(x1, bx + k.w)];
        const n = xb - xa;
        for (let i = 0; i < bc; i++) {
          for (let y = ya; y < yb; y++) {
            const s = (i * k.h + y - by) * k.w + xa - bx;
            const d = (i * h + y - r0) * w + xa - c0;
            if (!tab) out.set((k.data as Float32Array).subarray(s, s + n), d);
            else {
              const src = k.data as Uint16Array;
              for (let j = 0; j < n; j++) out[d + j] = tab[src[s + j]!]! * k.scale;
            }
          }
        }
      }
    }
    return HostTensor.float32([this.b, this.c, h, w], out);
  }

  /** Frees the blocks that lie wholly above row `r` (no later read starts above it). */
  freeAbove(r: number): void {
    for (let bi = 0; (bi + 1) * this.bh <= r && bi * this.bh < this.H; bi++) for (let bj = 0; bj < this.cols; bj++) this.blocks[bi * this.cols + bj] = null;
  }

  toTensor(): HostTensor<'float32'> {
    return this.read(0, 0, this.H, this.W);
  }
}

/** 1 inside the image, 0 outside, over a window of h × w at (r0, c0). */
function windowMask(H: number, W: number, r0: number, c0: number, h: number, w: number): HostTensor<'float32'> {
  const m = HostTensor.float32([1, 1, h, w]);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m.data[y * w + x] = r0 + y >= 0 && r0 + y < H && c0 + x >= 0 && c0 + x < W ? 1 : 0;
  return m;
}

interface StageInputs {
  /** pooled statistics of the tensor this stage normalises (none for convIn, down, upStats) */
  stats: GroupStats | null;
  /** res: pooled statistics of its first conv's output (from the statistics pass) */
  stats2?: GroupStats | null;
  /** resB: the block's shortcut (its input, or its 1×1 shortcut's output) */
  skip?: Plane;
  /** free x's blocks as the tiles pass them (x is not needed after this stage) */
  freeX: boolean;
}

export class TiledAutoencoder {
  private programs = new Map<string, Promise<CompiledProgram>>();
  private stages: Stage[];
  private readonly encStages: Stage[];
  private readonly groups: number;
  /** float16 storage and programs released after each stage, for this run */
  private large = false;
  /** tiles run and programs compiled by the last encode or decode, and the most bytes of activations held between stages (for tests and benchmarks) */
  lastRun = { tiles: 0, programs: 0, storage: 'float32' as 'float32' | 'float16', peakHeldBytes: 0 };

  constructor(
    private readonly cfg: KLConfig,
    private readonly weights: StateDict,
    private readonly session: SessionOptions,
    readonly opts: TileOptions,
  ) {
    if (!Number.isInteger(opts.tile) || opts.tile < 1) throw new Error(`tile must be a positive integer (latent pixels), got ${opts.tile}`);
    const has = (k: string) => this.weights.has(k);
    this.stages = decoderStages(cfg, has);
    this.encStages = encoderStages(cfg, has);
    this.groups = normGroups(cfg.ddconfig);
    for (const s of [...this.encStages, ...this.stages]) {
      if (s.kind === 'resA' && this.weights.has(`${s.key}.conv_shortcut.weight`)) throw new Error(`${s.key}: 3×3 conv_shortcut is not supported by tiling`);
    }
  }

  private subWeights(prefixes: string[]): Record<string, HostTensor> {
    return Object.fromEntries([...this.weights].filter(([k]) => prefixes.some((p) => k.startsWith(`${p}.`))));
  }

  private compile(key: string, prefixes: string[], fn: (ins: Record<string, Tensor>) => Record<string, Tensor>, inputs: Record<string, readonly number[]>): Promise<CompiledProgram> {
    let p = this.programs.get(key);
    if (!p) {
      const w = this.subWeights(prefixes);
      const specs = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
      for (const [k, s] of Object.entries(inputs)) specs[k] = { shape: s, dtype: 'float32' as const };
      p = Program.trace(fn, specs).compile({ ...this.session, bake: w });
      this.programs.set(key, p);
      this.lastRun.programs++;
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  /** In a large run, a program is released after its stage (its weights and its runtime's memory pool go). */
  private async done(key: string): Promise<void> {
    if (!this.large) return;
    const p = this.programs.get(key);
    this.programs.delete(key);
    if (p) await (await p).release();
  }

  /** Decides the storage for a run whose full-resolution activation is [b, c, H, W]. */
  private begin(b: number, c: number, H: number, W: number): void {
    this.large = b * c * H * W * 4 > LARGE_BYTES;
    const storage = this.opts.storage ?? (this.large ? 'float16' : 'float32');
    this.lastRun = { tiles: 0, programs: 0, storage, peakHeldBytes: 0 };
  }

  private held(...planes: (Plane | null | undefined)[]): void {
    const bytes = [...new Set(planes)].reduce((s: number, p) => s + (p ? p.bytes : 0), 0);
    this.lastRun.peakHeldBytes = Math.max(this.lastRun.peakHeldBytes, bytes);
  }

  private queryChunk(n: number): number {
    return this.opts.queryChunk ?? autoQueryChunk(n);
  }

  /** post_quant_conv → conv_in → mid block, whole, with its output's group statistics. */
  private async mid(z: HostTensor<'float32'>): Promise<{ h: HostTensor<'float32'>; stats: GroupStats }> {
    const cfg = this.cfg;
    const prefixes = ['post_quant_conv', 'decoder.conv_in', 'decoder.mid'];
    const chunk = this.queryChunk(z.shape[2]! * z.shape[3]!);
    const key = `mid:${z.shape.join('x')}:${chunk}`;
    const prog = await this.compile(key, prefixes, (ins) => {
      const p = new ParamView(ins);
      let h = cfg.use_post_quant_conv ? conv(p.sub('post_quant_conv'), ins.z!) : ins.z!;
      h = conv(p.sub('decoder.conv_in'), h, { padding: 1 });
      return { h: midBlock(p.sub('decoder.mid'), h, this.groups, chunk) };
    }, { z: z.shape });
    const h = (await prog.run({ z })).h as HostTensor<'float32'>;
    await this.done(key);
    return { h, stats: tileMoments(h, this.groups, h.shape[2]!, h.shape[3]!) };
  }

  /** Per-channel mean and 1/σ ([B, C, 1, 1]) from pooled group statistics (GroupNorm's ε = 1e-6). */
  private normInputs(s: GroupStats, b: number, c: number): { mean: HostTensor<'float32'>; rstd: HostTensor<'float32'> } {
    const g = this.groups;
    const mean = HostTensor.float32([b, c, 1, 1]);
    const rstd = HostTensor.float32([b, c, 1, 1]);
    for (let i = 0; i < b; i++) {
      for (let ch = 0; ch < c; ch++) {
        const k = i * g + Math.floor((ch * g) / c);
        mean.data[i * c + ch] = s.mean[k]!;
        rstd.data[i * c + ch] = 1 / Math.sqrt(s.m2[k]! / s.n + 1e-6);
      }
    }
    return { mean, rstd };
  }

  /**
   * One stage over all tiles, in rows: returns its output plane (none for a statistics pass),
   * the shortcut plane (resA with a 1×1 shortcut or after an upsampling) and the output's
   * pooled statistics.
   */
  private async stage(st: Stage, x: Plane, io: StageInputs): Promise<{ y: Plane | null; s: Plane | null; stats: GroupStats | null }> {
    const { b, H, W } = x;
    const halo = this.opts.halo ?? 1;
    const f = st.scale;
    // tile size at the output resolution (capped), then at the input's
    const tOut = Math.min(this.opts.tile * st.res, MAX_STAGE_TILE);
    const tIn = tOut / f;
    const [th, tw] = [Math.min(tIn, H), Math.min(tIn, W)]; // interior, at the stage's input resolution
    // context: `halo` on every side for 3×3 convs; the stride-2 conv (ldm pads right/bottom by 1) needs one row/column after;
    // a whole resnet (res) two convs' worth, or after an upsampling halo + 1 at the low resolution (the upsampled tile ± 2·halo + 1)
    const [lo, hi] = st.kind === 'down' ? [0, 1] : st.kind === 'res' ? (st.up ? [halo + 1, halo + 1] : [2 * halo, 2 * halo]) : [halo, halo];
    if (st.kind === 'down' && (th % 2 || tw % 2)) throw new Error(`tiled encoding: tile ${th}×${tw} at ${st.key} is not even`);
    const [wh, ww] = [th + lo + hi, tw + lo + hi];
    // after an upsampling the GroupNorm runs at the output resolution over the tile ± hh
    const hh = st.kind === 'res' ? 2 * halo : st.up ? Math.max(2 * lo - 1, 0) : lo;
    const [nh, nw] = st.up ? [2 * th + 2 * hh, 2 * tw + 2 * hh] : [wh, ww];
    // res: the second GroupNorm runs over the tile ± halo at the output resolution
    const [mh, mw] = [th * f + 2 * halo, tw * f + 2 * halo];
    const stored = this.lastRun.storage === 'float16';
    const final = st.kind === 'out';
    const y = st.kind === 'upStats' || st.statsOnly ? null : new Plane(b, st.cout, H * f, W * f, th * f, tw * f, stored && !final);
    const s = st.kind === 'resA' && !st.statsOnly && (st.nin || st.up) ? new Plane(b, st.cout, H * f, W * f, th * f, tw * f, stored) : null;
    const normC = st.kind === 'resA' || st.kind === 'resB' || st.kind === 'res' || final ? st.cin : 0;
    const norm = normC && io.stats ? this.normInputs(io.stats, b, normC) : null;
    if (normC && !norm) throw new Error(`tiled: ${st.key} needs statistics`);
    const norm2 = st.kind === 'res' && io.stats2 ? this.normInputs(io.stats2, b, st.cout) : null;
    if (st.kind === 'res' && !norm2) throw new Error(`tiled: ${st.key} needs its first conv's statistics`);
    const inputs: Record<string, readonly number[]> = { x: [b, st.cin, wh, ww] };
    if (norm) Object.assign(inputs, { mean: norm.mean.shape, rstd: norm.rstd.shape, mask: [1, 1, nh, nw] });
    if (norm2) Object.assign(inputs, { mean2: norm2.mean.shape, rstd2: norm2.rstd.shape, mask2: [1, 1, mh, mw] });
    if (io.skip) inputs.skip = [b, io.skip.c, th, tw];
    const prefixes = final ? ['decoder.norm_out', 'decoder.conv_out'] : st.up && st.kind !== 'upStats' ? [st.key, st.up] : [st.key];
    const key = `${st.kind}${st.statsOnly ? '/stats' : ''}:${st.key}:${inputs.x!.join('x')}:${halo}`;
    const prog = await this.compile(key, prefixes, (ins) => this.stageGraph(st, ins, lo, hh, th * f, tw * f, halo), inputs);
    let pooled: GroupStats | null = null;
    for (let r0 = 0; r0 < H; r0 += th) {
      for (let c0 = 0; c0 < W; c0 += tw) {
        const feeds: Record<string, HostTensor> = { x: x.read(r0 - lo, c0 - lo, wh, ww) };
        if (norm) {
          const m = st.up ? windowMask(H * 2, W * 2, 2 * r0 - hh, 2 * c0 - hh, nh, nw) : windowMask(H, W, r0 - lo, c0 - lo, wh, ww);
          Object.assign(feeds, norm, { mask: m });
        }
        if (norm2) Object.assign(feeds, { mean2: norm2.mean, rstd2: norm2.rstd, mask2: windowMask(H * f, W * f, r0 * f - halo, c0 * f - halo, mh, mw) });
        if (io.skip) feeds.skip = io.skip.read(r0, c0, th, tw);
        const out = await prog.run(feeds);
        const yt = out.y as HostTensor<'float32'>;
        const [vh, vw] = [(Math.min(H, r0 + th) - r0) * f, (Math.min(W, c0 + tw) - c0) * f];
        if (!final) pooled = mergeStats(pooled, tileMoments(yt, this.groups, vh, vw));
        y?.write(r0 * f, c0 * f, yt, vh, vw);
        s?.write(r0 * f, c0 * f, out.s as HostTensor<'float32'>, vh, vw);
        this.lastRun.tiles++;
      }
      this.held(x, io.skip, y, s);
      if (io.freeX) x.freeAbove(r0 + th - lo);
      io.skip?.freeAbove(r0 + th);
    }
    await this.done(key);
    return { y, s, stats: pooled };
  }

  /**
   * A stage on one padded tile: output the interior [B, C', h, w] (h, w at the output
   * resolution). `lo`: the context before the tile in the input; `hh`: after an upsampling,
   * the context kept at the output resolution for the resnet's conv.
   */
  private stageGraph(st: Stage, ins: Record<string, Tensor>, lo: number, hh: number, h: number, w: number, halo: number): Record<string, Tensor> {
    const root = new ParamView(ins);
    const p = root.sub(st.kind === 'out' ? 'decoder' : st.key);
    let x = ins.x!;
    const inner = (t: Tensor, off: number, e = 0) => o.slice(t, [off, off], [off + h + e, off + w + e], [2, 3]);
    // GroupNorm → SiLU, then zeros outside the image: what the untiled conv's zero padding sees
    const act = (n: string, t: Tensor, two = false) => o.mul(nn.silu(normWith(p.sub(n), t, two ? ins.mean2! : ins.mean!, two ? ins.rstd2! : ins.rstd!)), two ? ins.mask2! : ins.mask!);
    if (st.kind === 'res') {
      // the whole block over the tile: input ± 2·halo → first conv ± halo → second conv on the tile
      let skipIn: Tensor;
      if (st.up) {
        const u = conv(root.sub(`${st.up}.conv`), nn.upsampleNearest2x(x), { padding: 1 });
        skipIn = inner(u, 2 * lo);
        x = o.slice(u, [2 * lo - hh, 2 * lo - hh], [2 * lo + h + hh, 2 * lo + w + hh], [2, 3]);
      } else skipIn = inner(x, lo);
      const h1 = inner(conv(p.sub('conv1'), act('norm1', x), { padding: 1 }), hh - halo, 2 * halo);
      const r = inner(conv(p.sub('conv2'), act('norm2', h1, true), { padding: 1 }), halo);
      return { y: o.add(st.nin ? conv(p.sub('nin_shortcut'), skipIn) : skipIn, r) };
    }
    if (st.kind === 'upStats' || (st.kind === 'resA' && st.up)) {
      // the upsampling over the low-resolution window [−lo, t + lo) gives the upsampled tile ± (2·lo − 1) exactly
      const u = conv(root.sub(`${st.up!}.conv`), nn.upsampleNearest2x(x), { padding: 1 });
      if (st.kind === 'upStats') return { y: inner(u, 2 * lo) };
      const uin = inner(u, 2 * lo);
      x = o.slice(u, [2 * lo - hh, 2 * lo - hh], [2 * lo + h + hh, 2 * lo + w + hh], [2, 3]);
      const y = inner(conv(p.sub('conv1'), act('norm1', x), { padding: 1 }), hh);
      return st.statsOnly ? { y } : { y, s: st.nin ? conv(p.sub('nin_shortcut'), uin) : uin };
    }
    if (st.kind === 'convIn') return { y: inner(conv(p, x, { padding: 1 }), lo) };
    if (st.kind === 'down') return { y: conv(p.sub('conv'), x, { stride: 2 }) }; // window [r0, r0+th+1): exactly th/2 rows
    if (st.kind === 'resA') {
      const y = inner(conv(p.sub('conv1'), act('norm1', x), { padding: 1 }), lo);
      return st.nin && !st.statsOnly ? { y, s: conv(p.sub('nin_shortcut'), inner(x, lo)) } : { y };
    }
    if (st.kind === 'resB') return { y: o.add(ins.skip!, inner(conv(p.sub('conv2'), act('norm2', x), { padding: 1 }), lo)) };
    return { y: inner(conv(p.sub('conv_out'), act('norm_out', x), { padding: 1 }), lo) };
  }

  /** Runs resA/resB/up/out stages (decoder) or convIn/resA/resB/down stages (encoder) from x. */
  private async run(stages: Stage[], x: Plane, stats: GroupStats | null): Promise<Plane> {
    let upStats: GroupStats | null = null;
    let h1Stats: GroupStats | null = null;
    let h1: Plane | null = null;
    let skip: Plane | null = null;
    for (const st of stages) {
      if (st.kind === 'upStats') upStats = (await this.stage(st, x, { stats: null, freeX: false })).stats;
      else if (st.kind === 'resA' && st.statsOnly) h1Stats = (await this.stage(st, x, { stats: st.up ? upStats : stats, freeX: false })).stats;
      else if (st.kind === 'res') {
        const r = await this.stage(st, x, { stats: st.up ? upStats : stats, stats2: h1Stats, freeX: true });
        [x, stats] = [r.y!, r.stats];
      } else if (st.kind === 'resA') {
        // the block's input stays for resB unless this stage produces the shortcut itself
        const r = await this.stage(st, x, { stats: st.up ? upStats : stats, freeX: !!(st.up || st.nin) });
        [h1, skip, stats] = [r.y, r.s ?? x, r.stats];
      } else if (st.kind === 'resB') {
        const r = await this.stage(st, h1!, { stats, skip: skip!, freeX: true });
        [x, stats, h1, skip] = [r.y!, r.stats, null, null];
      } else {
        const r = await this.stage(st, x, { stats: st.kind === 'out' ? stats : null, freeX: true });
        [x, stats] = [r.y!, r.stats];
      }
    }
    return x;
  }

  /** Unscaled latents [B, E, h, w] → image [B, out_ch, H, W]. */
  async decode(z: HostTensor<'float32'>): Promise<HostTensor<'float32'>> {
    const dd = this.cfg.ddconfig;
    const f = 2 ** (dd.ch_mult.length - 1);
    const [b, , zh, zw] = z.shape as [number, number, number, number];
    this.begin(b, dd.ch * dd.ch_mult[0]!, zh * f, zw * f);
    // levels (index i: ch_mult[i], resolution f / 2^i × the latent's) that recompute
    const bytes = this.lastRun.storage === 'float16' ? 2 : 4;
    const recompute = (i: number) => this.opts.recompute ?? b * dd.ch * dd.ch_mult[i]! * ((zh * f) / 2 ** i) * ((zw * f) / 2 ** i) * bytes > RECOMPUTE_BYTES;
    this.stages = decoderStages(this.cfg, (k) => this.weights.has(k), recompute);
    const { h, stats } = await this.mid(z);
    return (await this.run(this.stages, Plane.of(h), stats)).toTensor();
  }

  /** Images [B, C, H, W] → posterior mean and clamped log-variance (unscaled), tiled up to the mid block. */
  async encode(x: HostTensor<'float32'>): Promise<{ mean: HostTensor<'float32'>; logvar: HostTensor<'float32'> }> {
    const dd = this.cfg.ddconfig;
    const [b, , H, W] = x.shape as [number, number, number, number];
    this.begin(b, dd.ch * dd.ch_mult[0]!, H, W);
    const h = (await this.run(this.encStages, Plane.of(x), null)).toTensor();
    // mid block, norm_out, conv_out and quant_conv at latent resolution, whole
    const cfg = this.cfg;
    const prefixes = ['encoder.mid', 'encoder.norm_out', 'encoder.conv_out', 'quant_conv'];
    const chunk = this.queryChunk(h.shape[2]! * h.shape[3]!);
    const key = `encTail:${h.shape.join('x')}:${chunk}`;
    const prog = await this.compile(key, prefixes, (ins) => {
      const p = new ParamView(ins);
      let t = midBlock(p.sub('encoder.mid'), ins.h!, this.groups, chunk);
      t = conv(p.sub('encoder.conv_out'), nn.silu(nn.groupNorm(t, this.groups, p.get('encoder.norm_out.weight'), p.get('encoder.norm_out.bias'), 1e-6)), { padding: 1 });
      const q = posteriorFromMoments(cfg, cfg.use_quant_conv ? conv(p.sub('quant_conv'), t) : t);
      return { mean: q.mean, logvar: q.logvar };
    }, { h: h.shape });
    const r = await prog.run({ h });
    await this.done(key);
    return { mean: r.mean as HostTensor<'float32'>, logvar: r.logvar as HostTensor<'float32'> };
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
