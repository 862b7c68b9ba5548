// Tiled encoding and decoding whose output equals the untiled model's up to float error. The
// network runs stage by stage over all tiles (a stage = one GroupNorm → SiLU → 3×3 conv, or a
// resampling conv), and every GroupNorm uses the WHOLE image's statistics: after each stage
// the host takes each tile's per-group count, mean and M2 = Σ(x − mean)² and pools them over
// the tiles with Chan's parallel formula (between-tile variance included), then feeds the
// pooled mean and 1/σ to the next stage. Between stages the activation is re-cut from the
// assembled image, so a tile needs a halo of one pixel (one 3×3 conv per stage; the
// encoder's stride-2 downsampling needs one row/column after the tile). All tiles of a stage
// have one shape (zero-padded past the image, with a mask standing in for the conv's zero
// padding), so a stage compiles one program. The mid block and everything at latent
// resolution run whole, the attention optionally in query chunks.
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import { ParamView, type StateDict } from '../../nn/params.ts';
import { Program, type CompiledProgram } from '../../runtime/program.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import { conv, midBlock, normGroups } from '../vqgan/modules.ts';
import type { KLConfig } from './config.ts';
import { posteriorFromMoments } from './autoencoder.ts';

export interface TileOptions {
  /** tile size in latent pixels (each stage tiles the same regions at its own resolution) */
  tile: number;
  /** context pixels around each tile at each stage's resolution; 1 is exact (one 3×3 conv per stage) */
  halo?: number;
  /** mid-block attention in blocks of this many query positions (0 = whole) */
  queryChunk?: number;
}

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

type StageKind = 'convIn' | 'resA' | 'resB' | 'up' | 'down' | 'out';
interface Stage {
  kind: StageKind;
  /** parameter prefix: decoder.up.3.block.0, decoder.up.3.upsample, encoder.down.0.downsample, encoder.conv_in, decoder */
  key: string;
  cin: number;
  cout: number;
  /** this stage's output resolution = input resolution × scale */
  scale: 0.5 | 1 | 2;
}

/** The decoder after its mid block, in execution order. */
function decoderStages(cfg: KLConfig): Stage[] {
  const dd = cfg.ddconfig;
  if (dd.attn_resolutions.length) throw new Error('tiled decoding supports decoders without attention outside the mid block (as in SD\'s VAEs)');
  const stages: Stage[] = [];
  let c = dd.ch * dd.ch_mult[dd.ch_mult.length - 1]!;
  for (let i = dd.ch_mult.length - 1; i >= 0; i--) {
    const cout = dd.ch * dd.ch_mult[i]!;
    for (let j = 0; j < dd.num_res_blocks + 1; j++) {
      stages.push({ kind: 'resA', key: `decoder.up.${i}.block.${j}`, cin: c, cout, scale: 1 });
      stages.push({ kind: 'resB', key: `decoder.up.${i}.block.${j}`, cin: cout, cout, scale: 1 }); // input: resA's output (the skip has c)
      c = cout;
    }
    if (i !== 0) stages.push({ kind: 'up', key: `decoder.up.${i}.upsample`, cin: c, cout: c, scale: 2 });
  }
  stages.push({ kind: 'out', key: 'decoder', cin: c, cout: dd.out_ch, scale: 1 });
  return stages;
}

/** The encoder up to its mid block, in execution order. */
function encoderStages(cfg: KLConfig): Stage[] {
  const dd = cfg.ddconfig;
  if (dd.attn_resolutions.length) throw new Error('tiled encoding supports encoders without attention outside the mid block (as in SD\'s VAEs)');
  const stages: Stage[] = [{ kind: 'convIn', key: 'encoder.conv_in', cin: dd.in_channels, cout: dd.ch, scale: 1 }];
  let c = dd.ch;
  dd.ch_mult.forEach((m, i) => {
    const cout = dd.ch * m;
    for (let j = 0; j < dd.num_res_blocks; j++) {
      stages.push({ kind: 'resA', key: `encoder.down.${i}.block.${j}`, cin: c, cout, scale: 1 });
      stages.push({ kind: 'resB', key: `encoder.down.${i}.block.${j}`, cin: cout, cout, scale: 1 });
      c = cout;
    }
    if (i !== dd.ch_mult.length - 1) stages.push({ kind: 'down', key: `encoder.down.${i}.downsample`, cin: c, cout: c, scale: 0.5 });
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

/**
 * Rows [r0, r0 + h) × cols [c0, c0 + w) of a full tensor [B, C, H, W] as a new tensor; the
 * parts outside the image are zeros.
 */
function cut(t: HostTensor<'float32'>, r0: number, c0: number, h: number, w: number): HostTensor<'float32'> {
  const [b, c, H, W] = t.shape as [number, number, number, number];
  const out = new Float32Array(b * c * h * w);
  const src = t.data;
  const x0 = Math.max(0, c0);
  const x1 = Math.min(W, c0 + w);
  for (let bc = 0; bc < b * c; bc++) {
    for (let y = Math.max(0, -r0); y < h && r0 + y < H; y++) {
      const s = (bc * H + r0 + y) * W;
      out.set(src.subarray(s + x0, s + x1), (bc * h + y) * w + (x0 - c0));
    }
  }
  return HostTensor.float32([b, c, h, w], out);
}

/** 1 inside the image, 0 outside, over the same window as cut(). */
function windowMask(H: number, W: number, r0: number, c0: number, h: number, w: number): HostTensor<'float32'> {
  const m = HostTensor.float32([1, 1, h, w]);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m.data[y * w + x] = r0 + y >= 0 && r0 + y < H && c0 + x >= 0 && c0 + x < W ? 1 : 0;
  return m;
}

/** Writes the [0, h) × [0, w) corner of tile [B, C, th, tw] into full [B, C, H, W] at (r0, c0). */
function paste(full: HostTensor<'float32'>, tile: HostTensor<'float32'>, r0: number, c0: number, h: number, w: number): void {
  const [b, c, H, W] = full.shape as [number, number, number, number];
  const [, , th, tw] = tile.shape as [number, number, number, number];
  for (let bc = 0; bc < b * c; bc++) {
    for (let y = 0; y < h; y++) full.data.set(tile.data.subarray((bc * th + y) * tw, (bc * th + y) * tw + w), (bc * H + r0 + y) * W + c0);
  }
}

export class TiledAutoencoder {
  private programs = new Map<string, Promise<CompiledProgram>>();
  private readonly stages: Stage[];
  private readonly encStages: Stage[];
  private readonly groups: number;
  /** tiles run and programs compiled by the last encode or decode (for tests and benchmarks) */
  lastRun = { tiles: 0, programs: 0 };

  constructor(
    private readonly cfg: KLConfig,
    private readonly weights: StateDict,
    private readonly session: SessionOptions,
    readonly opts: TileOptions,
  ) {
    if (!Number.isInteger(opts.tile) || opts.tile < 1) throw new Error(`tile must be a positive integer (latent pixels), got ${opts.tile}`);
    this.stages = decoderStages(cfg);
    this.encStages = encoderStages(cfg);
    this.groups = normGroups(cfg.ddconfig);
    for (const s of [...this.encStages, ...this.stages]) {
      if (s.kind === 'resB' && this.weights.has(`${s.key}.conv_shortcut.weight`)) throw new Error(`${s.key}: 3×3 conv_shortcut is not supported by tiling`);
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
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  /** post_quant_conv → conv_in → mid block, whole, with its output's group statistics. */
  private async mid(z: HostTensor<'float32'>): Promise<{ h: HostTensor<'float32'>; stats: GroupStats }> {
    const cfg = this.cfg;
    const prefixes = ['post_quant_conv', 'decoder.conv_in', 'decoder.mid'];
    const prog = await this.compile(`mid:${z.shape.join('x')}`, prefixes, (ins) => {
      const p = new ParamView(ins);
      let h = cfg.use_post_quant_conv ? conv(p.sub('post_quant_conv'), ins.z!) : ins.z!;
      h = conv(p.sub('decoder.conv_in'), h, { padding: 1 });
      return { h: midBlock(p.sub('decoder.mid'), h, this.groups, this.opts.queryChunk ?? 0) };
    }, { z: z.shape });
    const h = (await prog.run({ z })).h as HostTensor<'float32'>;
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

  /** One stage over all tiles; returns the assembled output and its pooled statistics. */
  private async stage(st: Stage, x: HostTensor<'float32'>, stats: GroupStats | null, skip: HostTensor<'float32'> | null, tile: number): Promise<{ y: HostTensor<'float32'>; stats: GroupStats | null }> {
    const [b, , H, W] = x.shape as [number, number, number, number];
    const halo = this.opts.halo ?? 1;
    const f = st.scale;
    const [th, tw] = [Math.min(tile, H), Math.min(tile, W)]; // interior, at the stage's input resolution
    // context: `halo` on every side for 3×3 convs; the stride-2 conv (ldm pads right/bottom by 1) needs one row/column after
    const [lo, hi] = st.kind === 'down' ? [0, 1] : [halo, halo];
    if (st.kind === 'down' && (th % 2 || tw % 2)) throw new Error(`tiled encoding: tile ${th}×${tw} at ${st.key} is not even`);
    const [wh, ww] = [th + lo + hi, tw + lo + hi];
    const y = HostTensor.float32([b, st.cout, H * f, W * f]);
    const norm = stats ? this.normInputs(stats, b, st.cin) : null;
    const final = st.kind === 'out';
    const inputs: Record<string, readonly number[]> = { x: [b, st.cin, wh, ww] };
    if (norm) Object.assign(inputs, { mean: norm.mean.shape, rstd: norm.rstd.shape, mask: [1, 1, wh, ww] });
    if (skip) inputs.skip = [b, skip.shape[1]!, th, tw];
    const prefixes = st.kind === 'out' ? ['decoder.norm_out', 'decoder.conv_out'] : [st.key];
    const prog = await this.compile(`${st.kind}:${st.key}:${inputs.x!.join('x')}:${halo}`, prefixes, (ins) => this.stageGraph(st, ins, lo * f, th * f, tw * f), inputs);
    let pooled: GroupStats | null = null;
    for (let r0 = 0; r0 < H; r0 += th) {
      for (let c0 = 0; c0 < W; c0 += tw) {
        const feeds: Record<string, HostTensor> = { x: cut(x, r0 - lo, c0 - lo, wh, ww) };
        if (norm) Object.assign(feeds, norm, { mask: windowMask(H, W, r0 - lo, c0 - lo, wh, ww) });
        if (skip) feeds.skip = cut(skip, r0, c0, th, tw);
        const out = (await prog.run(feeds)).y as HostTensor<'float32'>;
        const [vh, vw] = [(Math.min(H, r0 + th) - r0) * f, (Math.min(W, c0 + tw) - c0) * f];
        paste(y, out, r0 * f, c0 * f, vh, vw);
        if (!final) pooled = mergeStats(pooled, tileMoments(out, this.groups, vh, vw));
        this.lastRun.tiles++;
      }
    }
    return { y, stats: pooled };
  }

  /** A stage on one padded tile: output the interior [B, C', h, w] starting at `off` (= halo at the output resolution). */
  private stageGraph(st: Stage, ins: Record<string, Tensor>, off: number, h: number, w: number): Record<string, Tensor> {
    const p = new ParamView(ins, st.kind === 'out' ? 'decoder' : st.key);
    const x = ins.x!;
    const inner = (t: Tensor) => o.slice(t, [off, off], [off + h, off + w], [2, 3]);
    // GroupNorm → SiLU, then zeros outside the image: what the untiled conv's zero padding sees
    const act = (n: string) => o.mul(nn.silu(normWith(p.sub(n), x, ins.mean!, ins.rstd!)), ins.mask!);
    let y: Tensor;
    if (st.kind === 'convIn') y = inner(conv(p, x, { padding: 1 }));
    else if (st.kind === 'down') y = conv(p.sub('conv'), x, { stride: 2 }); // window [r0, r0+th+1): exactly th/2 rows
    else if (st.kind === 'resA') y = inner(conv(p.sub('conv1'), act('norm1'), { padding: 1 }));
    else if (st.kind === 'resB') {
      const s = p.has('nin_shortcut.weight') ? conv(p.sub('nin_shortcut'), ins.skip!) : ins.skip!;
      y = o.add(s, inner(conv(p.sub('conv2'), act('norm2'), { padding: 1 })));
    } else if (st.kind === 'up') y = inner(conv(p.sub('conv'), nn.upsampleNearest2x(x), { padding: 1 }));
    else y = inner(conv(p.sub('conv_out'), act('norm_out'), { padding: 1 }));
    return { y };
  }

  /** Unscaled latents [B, E, h, w] → image [B, out_ch, H, W]. */
  async decode(z: HostTensor<'float32'>): Promise<HostTensor<'float32'>> {
    const before = this.programs.size;
    this.lastRun = { tiles: 0, programs: 0 };
    let { h, stats } = await this.mid(z);
    let scale = 1;
    let blockIn = h;
    for (const st of this.stages) {
      if (st.kind === 'resA') blockIn = h;
      const r = await this.stage(st, h, st.kind === 'up' ? null : stats, st.kind === 'resB' ? blockIn : null, this.opts.tile * scale);
      h = r.y;
      if (r.stats) stats = r.stats;
      if (st.kind === 'up') scale *= 2;
    }
    this.lastRun.programs = this.programs.size - before;
    return h;
  }

  /** Images [B, C, H, W] → posterior mean and clamped log-variance (unscaled), tiled up to the mid block. */
  async encode(x: HostTensor<'float32'>): Promise<{ mean: HostTensor<'float32'>; logvar: HostTensor<'float32'> }> {
    const before = this.programs.size;
    this.lastRun = { tiles: 0, programs: 0 };
    const f = 2 ** (this.cfg.ddconfig.ch_mult.length - 1);
    let h = x;
    let stats: GroupStats | null = null;
    let blockIn = h;
    let tile = this.opts.tile * f;
    for (const st of this.encStages) {
      if (st.kind === 'resA') blockIn = h;
      const r = await this.stage(st, h, st.kind === 'resA' || st.kind === 'resB' ? stats : null, st.kind === 'resB' ? blockIn : null, tile);
      h = r.y;
      stats = r.stats;
      if (st.kind === 'down') tile /= 2;
    }
    // mid block, norm_out, conv_out and quant_conv at latent resolution, whole
    const cfg = this.cfg;
    const prefixes = ['encoder.mid', 'encoder.norm_out', 'encoder.conv_out', 'quant_conv'];
    const prog = await this.compile(`encTail:${h.shape.join('x')}`, prefixes, (ins) => {
      const p = new ParamView(ins);
      let t = midBlock(p.sub('encoder.mid'), ins.h!, this.groups, this.opts.queryChunk ?? 0);
      t = conv(p.sub('encoder.conv_out'), nn.silu(nn.groupNorm(t, this.groups, p.get('encoder.norm_out.weight'), p.get('encoder.norm_out.bias'), 1e-6)), { padding: 1 });
      const q = posteriorFromMoments(cfg, cfg.use_quant_conv ? conv(p.sub('quant_conv'), t) : t);
      return { mean: q.mean, logvar: q.logvar };
    }, { h: h.shape });
    const r = await prog.run({ h });
    this.lastRun.programs = this.programs.size - before;
    return { mean: r.mean as HostTensor<'float32'>, logvar: r.logvar as HostTensor<'float32'> };
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
