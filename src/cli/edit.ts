// `latentkit edit`: repaint the masked region of an image with a transformer over its codes
// (MaskGIT models: exactly the masked cells; autoregressive models: from the first masked cell
// on), or outpaint around an image placed on the model's canvas.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { Net2Net } from '../models/cond_transformer/load.ts';
import { editImage } from '../models/cond_transformer/edit.ts';
import { downFactor } from '../models/vqgan/config.ts';
import { decodeImageBytes, decodeImageBytesU8, saveImage, saveLabeledGrid, imageInfo } from '../io/image.ts';
import { grayOf } from '../sample/edit.ts';
import { HostTensor } from '../tensor.ts';
import { CliError, action, parseIntOpt } from './util.ts';
import { parseHxW } from './limits.ts';
import { addSamplingOptions, conditionFor, readCondImage, readImageArg, samplingFlags, type SamplingFlagStrings } from './gpt.ts';
import { samplingSettings } from '../models/cond_transformer/sampling.ts';
import { MODEL_PATH_HELP } from '../io/model_path.ts';

function parseAt(v: string): [number, number] {
  const m = /^(\d+),(\d+)$/.exec(v.trim());
  if (!m) throw new CliError(`--at must be X,Y in pixels (e.g. 16,16), got '${v}'`);
  return [Number(m[1]), Number(m[2])];
}

/** The input image with the cells to regenerate tinted red, for the grid. */
function markCells(img: HostTensor<'float32'>, cells: Uint8Array, grid: [number, number], f: number): HostTensor<'float32'> {
  const [c, H, W] = img.shape as [number, number, number];
  const out = img.clone() as HostTensor<'float32'>;
  const d = out.data as Float32Array;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!cells[Math.floor(y / f) * grid[1] + Math.floor(x / f)]) continue;
      for (let k = 0; k < c; k++) {
        const i = (k * H + y) * W + x;
        d[i] = k === 0 ? 0.5 * d[i]! + 0.5 : 0.5 * d[i]! - 0.5;
      }
    }
  }
  return out;
}

export function registerEditCommand(program: Command): void {
  const edit = program
    .command('edit')
    .description('repaint the white area of a mask in an image with a transformer (MaskGIT models keep every other code exactly; autoregressive ones regenerate from the first masked cell on), or outpaint around an image placed with --at')
    .requiredOption('-m, --model <dir|file>', `a transformer: ${MODEL_PATH_HELP}`)
    .requiredOption('-i, --input <image>', "the image to edit (the model's size, e.g. 64x64; other sizes are resized, and said) — with --at, a smaller image to place")
    .option('--mask <image>', 'white = repaint, black or transparent = keep (resized to the image when its size differs)')
    .option('--size <HxW>', "the canvas (default and only size: the model's training size)")
    .option('--at <X,Y>', 'outpainting: place the input with its top-left corner here on the canvas; the cells it leaves uncovered are generated')
    .option('--class <name|id>', 'class condition (class-conditional models)')
    .option('--cond <image>', 'condition image (sketch models: a drawing)')
    .option('-n, --n <n>', 'number of edits', '4');
  addSamplingOptions(edit);
  edit
    .option('--seed <s>', 'random seed', '0')
    .requiredOption('-o, --out <dir>', 'output directory: edit-NNN.png and grid.png')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: SamplingFlagStrings & { model: string; input: string; mask?: string; size?: string; at?: string; class?: string; cond?: string; n: string; seed: string; out: string; threads?: string }) => {
        const t0 = performance.now();
        const n = parseIntOpt(o.n, '--n');
        const seed = Number(o.seed);
        if (!Number.isInteger(seed)) throw new CliError(`--seed must be an integer, got '${o.seed}'`);
        if (o.class && o.cond) throw new CliError('give --class or --cond, not both');
        if (!o.mask && !o.at) throw new CliError('give --mask (white = repaint) or --at X,Y (outpainting), or both');
        const size = o.size ? parseHxW(o.size) : null;
        const at = o.at ? parseAt(o.at) : undefined;
        const flags = samplingFlags(o);
        const inputBytes = readImageArg(o.input, 'input');
        const maskBytes = o.mask ? readImageArg(o.mask, 'mask') : null;
        const condBytes = readCondImage(o.cond);
        const m = Net2Net.load(o.model, { session: { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined } });
        for (const note of m.notes) console.error(`note: ${note}`);
        const f = downFactor(m.config.first_stage);
        const [H, W] = [m.grid[0] * f, m.grid[1] * f];
        if (size && (size[0] !== H || size[1] !== W)) throw new CliError(`--size ${size[1]}x${size[0]}: this model edits on its training canvas, ${W}x${H}`);
        const info = await imageInfo(inputBytes, o.input);
        let image: HostTensor<'float32'>;
        if (at) {
          image = await decodeImageBytes(inputBytes, {}, o.input);
        } else {
          image = await decodeImageBytes(inputBytes, info.width === W && info.height === H ? {} : { size: H }, o.input);
          if (info.width !== W || info.height !== H) console.error(`note: the input is ${info.width}x${info.height}; resized to the model's ${W}x${H}`);
        }
        let mask: { gray: Uint8Array; height: number; width: number } | undefined;
        if (maskBytes) {
          const u8 = await decodeImageBytesU8(maskBytes, { background: 'black' }, o.mask);
          const [, mh, mw] = u8.shape as [number, number, number];
          mask = { gray: grayOf(u8.data as Uint8Array, 3, mh, mw), height: mh, width: mw };
        }
        const { cond, label } = await conditionFor(m, { class: o.class, cond: o.cond, condBytes }, m.grid);
        const { sampling, fromModel } = samplingSettings(m, flags);
        if (fromModel.length) console.error(`the model's recommended settings: ${fromModel.join(', ')} (override with the flags)`);
        const r = await editImage(m, { ...sampling, image, at, mask, n, cond, seed });
        for (const note of r.plan.notes) console.error(note);
        if (r.plan.kind === 'nothing') {
          await m.release();
          return;
        }
        const Lz = m.grid[0] * m.grid[1];
        fs.mkdirSync(o.out, { recursive: true });
        const [, c] = r.images!.shape as [number, number];
        const tiles: HostTensor<'float32'>[] = [r.canvas, markCells(r.canvas, r.cells, m.grid, f)];
        for (let k = 0; k < n; k++) {
          const one = HostTensor.float32([c, H, W], (r.images!.data as Float32Array).slice(k * c * H * W, (k + 1) * c * H * W));
          tiles.push(one);
          await saveImage(path.join(o.out, `edit-${String(k).padStart(3, '0')}.png`), one);
        }
        // every kept code is the input's (the sampler never touches them; checked here too)
        let kept = 0;
        for (let k = 0; k < n; k++) for (let i = 0; i < Lz; i++) if (r.plan.init[i]! >= 0) {
          if (r.tokens![k * Lz + i] !== r.codes[i]) throw new Error(`internal: kept code ${i} of edit ${k} changed`);
          kept++;
        }
        const gridFile = path.join(o.out, 'grid.png');
        await saveLabeledGrid(gridFile, tiles, { cols: Math.min(8, tiles.length), title: `input | repainted cells | ${n} edits (${label}${m.isMaskGit ? `, ${sampling.steps} passes` : ''}, seed ${seed})` });
        console.error(`repainted ${r.plan.generate} of ${Lz} cells; kept ${kept / n} codes of each edit exactly as the input's`);
        console.error(`wrote ${n} images to ${path.resolve(o.out)}; grid: ${path.resolve(gridFile)} (${((performance.now() - t0) / 1000).toFixed(2)} s)`);
        await m.release();
      }),
    );
}
