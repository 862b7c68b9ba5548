// Transformer commands: extract-codes, train-gpt, sample.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { VQGAN } from '../models/vqgan/load.ts';
import { Net2Net } from '../models/cond_transformer/load.ts';
import { downFactor } from '../models/vqgan/config.ts';
import { writeCodeSet } from '../io/codes.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { writeTorchCheckpoint, type TorchValue } from '../io/formats/torch_write.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { toTamingNet2Net } from '../models/cond_transformer/config.ts';
import YAML from 'yaml';
import { saveImage, saveLabeledGrid } from '../io/image.ts';
import { extractCodes } from '../train/extract_codes.ts';
import { loadGPTTrainConfig, GPT_PRESETS } from '../train/gpt_config.ts';
import { trainGPT } from '../train/gpt_run.ts';
import { HostTensor } from '../tensor.ts';
import type { DecodeStats } from '../sample/decode.ts';
import { net2netOnnx, type OnnxExport } from '../models/export_onnx.ts';
import { samplingSettings, type SamplingFlags } from '../models/cond_transformer/sampling.ts';
import { CliError, LiveBar, action, parseIntOpt, removeIfFailedStart, stopOnSignal } from './util.ts';
import { aboutDuration, checkImageHeader, parseHxW, parseSideOpt, timedProgress } from './limits.ts';
import { MODEL_PATH_HELP, resolveModelPath } from '../io/model_path.ts';

const threadsOpt = (t?: string) => (t ? parseIntOpt(t, '--threads') : undefined);

/** Read and check an image argument before any model loads; `what` names it in errors. */
export function readImageArg(file: string, what: string, hint = ''): Uint8Array {
  if (!fs.existsSync(file)) throw new CliError(`${what === '--cond' ? 'input' : what} not found: ${file}`);
  if (!fs.statSync(file).isFile()) throw new CliError(`${what} ${file} is a directory; give one image${hint}`);
  checkImageHeader(file);
  return new Uint8Array(fs.readFileSync(file));
}

/** Read and check a --cond image before any model loads. */
export function readCondImage(file: string | undefined): Uint8Array | null {
  return file ? readImageArg(file, '--cond', ' (a drawing for sketch models)') : null;
}

/** The condition tokens of --class / --cond (or the SOS token), with a label for titles. */
export async function conditionFor(m: Net2Net, o: { class?: string; cond?: string; condBytes: Uint8Array | null }, grid: [number, number]): Promise<{ cond: ArrayLike<number>; condGrid?: [number, number]; condImage: HostTensor<'float32'> | null; label: string }> {
  if (o.class !== undefined) {
    const c = m.classIndex(o.class);
    return { cond: [c], condImage: null, label: `class ${c} (${m.classes![c]})` };
  }
  if (o.cond) {
    if (!m.condStage) throw new CliError(`this model's condition is ${m.config.cond_stage.kind === 'label' ? 'a class: use --class' : 'none (unconditional)'}, not an image`);
    const { cond, condGrid, condImage } = await m.conditionFromImage(o.condBytes!, o.cond, grid);
    return { cond, condGrid, condImage, label: `condition ${o.cond}` };
  }
  return { cond: m.sosCondition(), condImage: null, label: 'unconditional' };
}

/** A whole number ≥ 0 (0 = off for --top-k). */
export function parseCount(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a whole number ≥ 0, got '${v}'`);
  return n;
}

/** The sampling flags shared by `sample` and `edit`. */
export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('--temperature <t>', "softmax temperature (default: the model's recommended settings, else 1)")
    .option('--top-k <k>', "keep the k most likely tokens (0: all; default: the model's)")
    .option('--top-p <p>', 'nucleus: keep the most likely tokens up to probability p (works without --top-k; 1: off)')
    .option('--greedy', 'always take the most likely token')
    .option('--cfg <scale>', "classifier-free guidance scale (models trained with condition dropout; 0: off; default: the model's)")
    .option('--steps <T>', "MaskGIT models: parallel decoding passes (default: the model's, else 12)")
    .option('--choice-temperature <tau>', 'MaskGIT models: Gumbel noise on the confidences at the first pass (default 4.5)');
}

export interface SamplingFlagStrings {
  temperature?: string;
  topK?: string;
  topP?: string;
  greedy?: boolean;
  cfg?: string;
  steps?: string;
  choiceTemperature?: string;
}

export function samplingFlags(o: SamplingFlagStrings): SamplingFlags {
  return {
    temperature: parseNum(o.temperature, '--temperature'),
    topK: o.topK !== undefined ? parseCount(o.topK, '--top-k') : undefined,
    topP: parseNum(o.topP, '--top-p'),
    greedy: o.greedy,
    guidance: parseNum(o.cfg, '--cfg'),
    steps: o.steps !== undefined ? parseStepsOpt(o.steps) : undefined,
    choiceTemperature: parseNum(o.choiceTemperature, '--choice-temperature'),
  };
}

/** --steps: MaskGIT passes, a whole number ≥ 1 (0 would decode nothing). */
function parseStepsOpt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`--steps must be a whole number ≥ 1 (parallel decoding passes), got '${v}'`);
  return n;
}


export function parseNum(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliError(`${name} must be a number, got '${v}'`);
  return n;
}

/**
 * `convert` for transformers: the whole Net2Net (transformer, first stage, cond stage) as
 * taming's state dict — a torch.save .ckpt ({state_dict}) with its YAML beside it, or one
 * .safetensors with the config in the metadata.
 */
export async function convertNet2Net(o: { model: string; output: string; config?: string }, loaded?: Net2Net): Promise<void> {
  const m = loaded ?? Net2Net.load(o.model, { config: o.config });
  for (const n of m.notes) console.error(`note: ${n}`);
  const sd = m.tamingStateDict();
  const cfg = toTamingNet2Net({ ...m.config, first_stage_ckpt: undefined, cond_stage: m.config.cond_stage.kind === 'vqgan' ? { ...m.config.cond_stage, ckpt_path: undefined } : m.config.cond_stage });
  if (o.output.endsWith('.safetensors')) {
    writeSafetensorsFile(o.output, sd, { format: 'latentkit-net2net', config: JSON.stringify(cfg), source: path.basename(o.model) });
    console.error(`wrote ${o.output} (${sd.size} tensors, config in the metadata)`);
  } else {
    writeTorchCheckpoint(o.output, new Map<string, TorchValue>([['state_dict', sd], ['latentkit_source', path.basename(o.model)]]));
    const yamlFile = o.output.replace(/\.[^./]+$/, '') + '.yaml';
    writeFileAtomicSync(yamlFile, YAML.stringify(cfg));
    console.error(`wrote ${o.output} (torch.save format, ${sd.size} tensors: transformer, first_stage_model${m.condStage && m.config.cond_stage.kind !== 'label' ? ', cond_stage_model' : ''}) and ${yamlFile}`);
    console.error("  PyTorch: model = Net2NetTransformer(**config.model.params); model.load_state_dict(torch.load(ckpt)['state_dict'], strict=True)");
  }
  await m.release();
}

/**
 * `export-onnx` for transformers: standalone graphs with the weights inside that plain ONNX
 * Runtime runs — step.onnx (one token against a KV cache), prefill.onnx (image conditions),
 * decoder.onnx (codes → image), cond_encoder.onnx (condition image → codes) — and
 * transformer.json describing the decoding loop.
 */
export async function exportNet2Net(o: { model: string; config?: string; output: string; batch: string }, loaded?: Net2Net): Promise<void> {
  const m = loaded ?? Net2Net.load(o.model, { config: o.config });
  for (const n of m.notes) console.error(`note: ${n}`);
  writeOnnxExport(net2netOnnx(m, { batch: parseIntOpt(o.batch, '--batch') }), o.output, '(inputs, outputs and the decoding loop)');
  await m.release();
}

/** Write an export's files and manifest into `dir`, one line per file. */
export function writeOnnxExport(e: OnnxExport, dir: string, manifestNote = ''): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of e.files) {
    writeFileAtomicSync(path.join(dir, name), bytes);
    console.error(`wrote ${path.join(dir, name)} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  }
  writeFileAtomicSync(path.join(dir, e.manifestName), JSON.stringify(e.manifest, null, 2) + '\n');
  console.error(`wrote ${path.join(dir, e.manifestName)}${manifestNote ? ' ' + manifestNote : ''}`);
}

export function registerGptCommands(program: Command): void {
  program
    .command('extract-codes')
    .description('encode a dataset once with a VQGAN (codes, labels, split; flips; condition codes) for transformer training')
    .requiredOption('-m, --model <dir|file>', `the image VQGAN (first stage): ${MODEL_PATH_HELP}`)
    .option('-d, --data <emoji|dir>', "'emoji', 'emoji:google', 'emoji:twitter' or a folder of images (subfolders = classes)", 'emoji')
    .requiredOption('-o, --out <file>', 'code set to write (.safetensors)')
    .option('-s, --size <n>', 'image size the VQGAN encodes', '64')
    .option('--no-flip', 'do not encode horizontal flips as a second view')
    .option('--cond <sketch|dir>', "condition images: 'sketch' (each image's sketch) or a folder paired by relative path")
    .option('--cond-model <dir|file>', 'the VQGAN that encodes the condition images (e.g. models/sketch-f4)')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: { model: string; data: string; out: string; size: string; flip: boolean; cond?: string; condModel?: string; threads?: string }) => {
        if (o.cond && !o.condModel) throw new CliError('--cond needs --cond-model (the VQGAN that encodes the condition images)');
        const size = parseSideOpt(o.size);
        if (!/^emoji(:|$)/.test(o.data) && !fs.existsSync(o.data)) throw new CliError(`input not found: ${o.data}`);
        if (o.cond && o.cond !== 'sketch' && !fs.existsSync(o.cond)) throw new CliError(`input not found: ${o.cond}`);
        const session = { threads: threadsOpt(o.threads) };
        // the code set records the weights files (train-gpt's ckpt_path), whatever form was given
        const modelFile = resolveModelPath(o.model).weights;
        const condFile = o.condModel ? resolveModelPath(o.condModel).weights : undefined;
        const model = VQGAN.load(o.model, { session });
        const condModel = o.condModel ? VQGAN.load(o.condModel, { session }) : undefined;
        const t0 = Date.now();
        let last = '';
        const set = await extractCodes({
          model,
          modelPath: modelFile,
          data: o.data,
          size,
          flip: o.flip,
          cond: o.cond ? { source: o.cond, model: condModel!, modelPath: condFile! } : undefined,
          onProgress: (d, t, what) => {
            if (what !== last || d === t || d % 1024 === 0) console.error(`${what}: ${d}/${t}`);
            last = what;
          },
        });
        fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
        writeCodeSet(o.out, set);
        const [n, v, h, w] = set.codes.shape;
        const val = set.val.reduce((a, b) => a + b, 0);
        console.error(`${n} images × ${v} view(s) → ${h}×${w} codes of ${set.nCodes}${set.cond ? `, conditions ${set.cond.shape[2]}×${set.cond.shape[3]} codes of ${set.condCodes}` : ''}; ${n - val} train / ${val} val; ${set.classes.length} classes; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        console.error(`wrote ${path.resolve(o.out)}`);
        await model.release();
        await condModel?.release();
      }),
    );

  program
    .command('train-gpt')
    .description('train a taming GPT (Net2NetTransformer) on a code set from extract-codes')
    .requiredOption('--codes <file>', 'code set (latentkit extract-codes)')
    .option('-c, --config <preset|file>', `preset (${Object.keys(GPT_PRESETS).join(', ')}) or a taming Net2NetTransformer YAML`, 'class')
    .requiredOption('-o, --out <dir>', 'run directory (also a model directory for `sample`)')
    .option('--max-steps <n>', 'stop after n steps (default from the config)')
    .option('--batch-size <n>', 'override data.params.batch_size')
    .option('--lr <x>', 'absolute learning rate')
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: { codes: string; config: string; out: string; maxSteps?: string; batchSize?: string; lr?: string; resume?: boolean; threads?: string }) => {
        const cfg = loadGPTTrainConfig(o.config);
        if (o.batchSize) cfg.run.batch_size = parseIntOpt(o.batchSize, '--batch-size');
        if (o.lr) cfg.run.lr = parseNum(o.lr, '--lr')!;
        const maxSteps = o.maxSteps ? parseIntOpt(o.maxSteps, '--max-steps') : cfg.run.max_steps;
        const bar = new LiveBar();
        const signals = stopOnSignal(bar);
        const t0 = Date.now();
        const f = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '-');
        let first = 0;
        const r = await removeIfFailedStart(o.out, () => trainGPT({
          config: cfg,
          codes: o.codes,
          out: o.out,
          resume: o.resume,
          maxSteps,
          threads: threadsOpt(o.threads),
          shouldStop: signals.stopRequested,
          events: {
            onMessage: (m) => bar.log(m),
            onStart: (i) => {
              first = i.startStep;
              console.error(`${i.resumed ? 'resuming' : 'training'} GPT: ${(i.params / 1e6).toFixed(2)} M parameters (${cfg.transformer.n_layer} layers × ${cfg.transformer.n_embd}, ${cfg.transformer.n_head} heads), ${i.trainRows} train / ${i.valRows} val code grids, ${i.tokensPerStep} image tokens per step, steps ${i.startStep}→${i.maxSteps}`);
              console.error(`run directory: ${path.resolve(o.out)}`);
              bar.start('step {value}/{total} [{bar}] {eta_formatted} left | loss {loss} | {bpt} bits/token | {tps} tok/s', i.maxSteps, i.startStep, { loss: '-', bpt: '-', tps: '-' });
            },
            onStep: (step, m) => bar.update(step, { loss: f(m.loss!), bpt: f(m.bpt!), tps: f(m.tokensPerSec!, 0) }),
            onLog: (l) => {
              const s = (Date.now() - t0) / 1000;
              if (l.split === 'val' || l.split === 'val_final') bar.log(`step ${l.step}: ${l.split === 'val_final' ? 'final ' : ''}validation ${f(l.bpt as number)} bits/token (${f(l.loss as number)} nats) on ${l.rows} code grids${l.bpt_other_cond !== undefined ? `; ${f(l.bpt_other_cond as number)} with another grid's condition` : ''}`);
              else if (!process.stderr.isTTY) console.error(`step ${l.step}/${maxSteps}: loss ${f(l.loss as number)} (${f(l.bpt as number)} bits/token), lr ${(l.lr as number).toExponential(2)}, ${l.tokens_per_s} tok/s, ${(((l.step as number) - first) / s).toFixed(2)} steps/s`);
            },
            onSample: (file) => bar.log(`samples: ${file}`),
          },
        })).finally(() => bar.stop());
        signals.release();
        const abs = path.resolve(r.out);
        console.error(`${r.stopped ? 'stopped' : 'finished'} at step ${r.step}${r.valBpt !== null ? `; validation ${r.valBpt.toFixed(3)} bits/token` : ''}`);
        console.error(`model directory: ${abs} (latentkit sample --model ${o.out} …)`);
        console.error(`look at: ${path.join(abs, 'samples', 'latest.png')}, ${path.join(abs, 'loss.png')}, ${path.join(abs, 'metrics.jsonl')}`);
        if (r.stopped) process.exitCode = 130;
      }),
    );

  const sample = program
    .command('sample')
    .description('sample images from a transformer: unconditional, by class (--class) or from a condition image such as a sketch (--cond)')
    .requiredOption('-m, --model <dir|file>', 'a model directory (model.safetensors + config.yaml) or a checkpoint file: taming Net2NetTransformer .ckpt, .safetensors')
    .option('-c, --config <file>', "the Net2NetTransformer YAML (default: the directory's config.yaml, the file's metadata, or a config beside the file)")
    .option('--class <name|id>', 'class to sample (class-conditional models)')
    .option('--cond <image>', 'condition image (sketch models: a drawing, any size, black strokes on white or transparent)')
    .option('-n, --n <n>', 'number of samples', '8');
  addSamplingOptions(sample);
  sample
    .option('--seed <s>', 'random seed (sample i of a seed is the same whatever --n)', '0')
    .option('--size <HxW>', 'output size in pixels (default: the training size; larger sizes use a sliding window)')
    .option('--batch <b>', 'samples decoded together', '8')
    .requiredOption('-o, --out <dir>', 'output directory: sample-NNN.png and grid.png')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: SamplingFlagStrings & { model: string; config?: string; class?: string; cond?: string; n: string; seed: string; size?: string; batch: string; out: string; threads?: string }) => {
        const t0 = performance.now();
        // every option and input is checked before the model loads
        const n = parseIntOpt(o.n, '--n');
        const batch = Math.min(parseIntOpt(o.batch, '--batch'), n);
        const seed = Number(o.seed);
        if (!Number.isInteger(seed)) throw new CliError(`--seed must be an integer, got '${o.seed}'`);
        const size = o.size ? parseHxW(o.size) : null;
        if (o.class && o.cond) throw new CliError('give --class or --cond, not both');
        const condBytes = readCondImage(o.cond);
        const m = Net2Net.load(o.model, { config: o.config, session: { threads: threadsOpt(o.threads) } });
        for (const note of m.notes) console.error(`note: ${note}`);
        const f = downFactor(m.config.first_stage);
        let grid = m.grid;
        if (size) {
          const [h, w] = size;
          if (h % f || w % f) throw new CliError(`--size ${h}x${w} is not a multiple of the model's ${f}-pixel code cells (the code grid is ${m.grid[0]}×${m.grid[1]} for ${m.grid[0] * f}x${m.grid[1] * f})`);
          grid = [h / f, w / f];
          if (grid[0] < m.grid[0] || grid[1] < m.grid[1]) throw new CliError(`--size ${h}x${w} is smaller than the training size ${m.grid[0] * f}x${m.grid[1] * f}`);
        }
        const { cond, condGrid, condImage, label } = await conditionFor(m, { class: o.class, cond: o.cond, condBytes }, grid);
        const { sampling, fromModel } = samplingSettings(m, samplingFlags(o));
        const mg = m.isMaskGit;
        if (mg && size && (grid[0] !== m.grid[0] || grid[1] !== m.grid[1])) throw new CliError(`--size: a MaskGIT model fills its training size ${m.grid[0] * f}x${m.grid[1] * f}`);
        if (!mg && (o.steps !== undefined || o.choiceTemperature !== undefined)) throw new CliError('--steps and --choice-temperature are for MaskGIT models; this one decodes one token at a time');
        const steps = mg ? sampling.steps! : grid[0] * grid[1];
        const windowed = grid[0] !== m.grid[0] || grid[1] !== m.grid[1];
        console.error(`sampling ${n} × ${grid[0]}×${grid[1]} codes (${grid[0] * f}x${grid[1] * f} pixels${windowed ? `, sliding ${m.grid[0]}×${m.grid[1]} window` : ''}${mg ? `, ${steps} parallel passes` : ''}), ${label}`);
        if (fromModel.length) console.error(`the model's recommended settings: ${fromModel.join(', ')} (override with the flags)`);
        fs.mkdirSync(o.out, { recursive: true });
        const batches = Math.ceil(n / batch);
        const totalSteps = batches * steps;
        // time the first steps, say what the whole will take, then show the bar
        const bar = timedProgress(totalSteps, mg ? 'passes' : 'tokens', (ms, s) => `${totalSteps} ${mg ? 'passes' : 'token steps'}${batches > 1 ? ` (${batches} batches of ≤ ${batch})` : batch > 1 ? ` (batch of ${batch})` : ''} at ${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms: ${aboutDuration(s)} on this machine`);
        const images: HostTensor<'float32'>[] = [];
        const stats: DecodeStats = { prefillMs: 0, stepMs: [], compileMs: 0 };
        const tSample = performance.now();
        for (let i = 0; i < n; i += batch) {
          const b = Math.min(batch, n - i);
          const st: DecodeStats = { prefillMs: 0, stepMs: [], compileMs: 0 };
          // sample i+k of seed s = sample k of stream offset: streams are per sample index
          // sample i+k of a seed uses uniform stream i+k, so --batch never changes the samples
          const tokens = await m.sample({ ...sampling, n: b, cond, condGrid, grid, seed, streamOffset: i, stats: st, onProgress: () => bar.tick() });
          stats.stepMs.push(...st.stepMs);
          stats.compileMs += st.compileMs;
          stats.prefillMs += st.prefillMs;
          const img = await m.decodeTokens(tokens, b, grid);
          const [, c, h, w] = img.shape as [number, number, number, number];
          for (let k = 0; k < b; k++) {
            const one = HostTensor.float32([c, h, w], (img.data as Float32Array).slice(k * c * h * w, (k + 1) * c * h * w));
            images.push(one);
            await saveImage(path.join(o.out, `sample-${String(i + k).padStart(3, '0')}.png`), one);
          }
        }
        bar.stop();
        const sampleS = (performance.now() - tSample) / 1000;
        const gridFile = path.join(o.out, 'grid.png');
        const tiles = condImage ? [condImage.shape[0] === 3 ? condImage : HostTensor.float32([3, ...condImage.shape.slice(1)], Float32Array.from({ length: 3 * condImage.size }, (_, i) => condImage!.data[i % condImage!.size] as number)), ...images] : images;
        await saveLabeledGrid(gridFile, tiles, { cols: Math.min(8, tiles.length), title: `${label}${sampling.guidance !== undefined ? `, cfg ${sampling.guidance}` : ''}, T ${sampling.temperature ?? 1}${sampling.topK ? `, top-k ${sampling.topK}` : ''}${sampling.topP ? `, top-p ${sampling.topP}` : ''}${sampling.greedy ? ', greedy' : ''}${mg ? `, ${steps} passes` : ''}, seed ${seed}` });
        const sorted = [...stats.stepMs].sort((a, b) => a - b);
        const med = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN;
        const rss = process.resourceUsage().maxRSS / 1024;
        console.error(`${n} samples in ${sampleS.toFixed(2)} s (${(n / sampleS).toFixed(2)} images/s)${windowed || mg ? '' : `: ${med.toFixed(2)} ms per token step (median, batch ${batch}), prefill ${stats.prefillMs.toFixed(1)} ms, session set-up ${stats.compileMs.toFixed(0)} ms`}; peak RSS ${rss.toFixed(0)} MB; whole process so far ${((performance.now() - t0) / 1000).toFixed(2)} s`);
        console.error(`wrote ${n} images to ${path.resolve(o.out)}; grid: ${path.resolve(gridFile)}`);
        await m.release();
      }),
    );
}
