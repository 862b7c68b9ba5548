// The "Train" view: drives web/train.worker.ts (a tiny VQGAN training on WebAssembly),
// plots its losses live, shows reconstructions of held-out images, and downloads the model.
import * as Comlink from 'comlink';
import { lossCurveSvg, type Series } from '../src/browser.ts';
import { imageToU8, toDataUrl } from './pixels.ts';
import type { ReconReport, StepReport, TrainApi, TrainInfo } from './train.worker.ts';
import { apiFetch, errorOf } from './api.ts';
import { note, statusFor } from './status.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export function initTrain(emoji: { installed: boolean; install: string }): void {
  if (!emoji.installed) {
    note('train', `Training on emoji needs the emoji images, which are not installed on this server: run \`${emoji.install}\` where you run latentkit, then restart it. Or train on your own images: pick them with “or your images”.`, 'need');
    $<HTMLInputElement>('tr-n').disabled = true;
  }
  let worker: Comlink.Remote<TrainApi> | null = null;
  let running = false;
  let info: TrainInfo | null = null;
  let log: StepReport[] = [];
  const status = $('tr-status');
  const [start, stop, save] = [$<HTMLButtonElement>('tr-start'), $<HTMLButtonElement>('tr-stop'), $<HTMLButtonElement>('tr-save')];
  const say = (m: string) => (status.textContent = m);

  const api = () => (worker ??= Comlink.wrap<TrainApi>(new Worker(new URL('./train.worker.ts', import.meta.url), { type: 'module', name: 'latentkit-train' })));

  let drawn = 0;
  function plot(force = false) {
    if (!force && log.length - drawn < 5) return;
    drawn = log.length;
    const series: Series[] = [];
    for (const k of ['rec', 'qloss', 'g_loss', 'd_loss']) {
      const points = log.filter((r) => Number.isFinite(r.values[k])).map((r) => [r.step, r.values[k]!] as [number, number]);
      if (points.length) series.push({ name: k, points });
    }
    $('tr-plot').innerHTML = lossCurveSvg(series, { title: 'training losses (this browser)', logY: true, smoothing: 0.6, width: 760, height: 360 });
    $('tr-plot').querySelector('svg')?.setAttribute('viewBox', '0 0 760 360');
  }

  function showRecon(r: ReconReport) {
    const { batch, size } = info!;
    const per = 3 * size * size;
    const tiles = [...Array.from({ length: batch }, (_, i) => r.inputs.subarray(i * per, (i + 1) * per)), ...Array.from({ length: batch }, (_, i) => r.xrec.subarray(i * per, (i + 1) * per))];
    $<HTMLImageElement>('tr-recon').src = toDataUrl(tiles, 3, size, size, batch);
    $('tr-fig').hidden = false;
    $('tr-recon-cap').textContent = `held-out images (top) and their reconstructions (bottom) at step ${r.step}; ${r.used} codebook entries in use`;
    document.body.dataset.trRecon = String(r.step);
  }

  /** The training images: the user's files (decoded here) or emoji from the server. */
  async function data(size: number): Promise<{ train: Uint8Array; n: number; heldOut: Uint8Array; what: string }> {
    const files = Array.from($<HTMLInputElement>('tr-files').files ?? []);
    const per = 3 * size * size;
    if (files.length) {
      const all = await Promise.all(files.map((f) => imageToU8(f, size)));
      const hold = all.length >= 32 ? 8 : 0; // small sets: show training images instead of holding any out
      const pack = (xs: Uint8Array[]) => {
        const out = new Uint8Array(xs.length * per);
        xs.forEach((x, i) => out.set(x, i * per));
        return out;
      };
      return { train: pack(all.slice(hold)), n: all.length - hold, heldOut: pack(hold ? all.slice(0, hold) : all.slice(0, 8)), what: `${all.length - hold} of your images${hold ? ` (${hold} held out)` : ''}` };
    }
    const n = Math.max(8, Math.min(2048, Number($<HTMLInputElement>('tr-n').value) || 256));
    const get = async (q: string) => {
      const r = await apiFetch(`./api/train/data?${q}&size=${size}`);
      if (!r.ok) throw new Error(await errorOf(r));
      return new Uint8Array(await r.arrayBuffer());
    };
    const [train, heldOut] = await Promise.all([get(`n=${n}`), get('split=val&n=8')]);
    return { train, n: train.length / per, heldOut, what: `${train.length / per} emoji` };
  }

  start.onclick = async () => {
    if (running) return;
    running = true;
    start.disabled = true;
    save.disabled = true;
    log = [];
    drawn = 0;
    const done = statusFor('train').busy('training in this browser…');
    try {
      const steps = Math.max(10, Math.min(5000, Number($<HTMLInputElement>('tr-steps').value) || 300));
      say('loading the training graphs…');
      info = await api().load(location.href, steps, Comlink.proxy(say));
      const d = await data(info.size);
      await api().setData(Comlink.transfer(d.train, [d.train.buffer]), d.n, d.heldOut);
      stop.disabled = false;
      const t0 = performance.now();
      say(`training on ${d.what}: ${(info.params.ae / 1e6).toFixed(2)} M + ${(info.params.disc / 1e6).toFixed(2)} M parameters, batch ${info.batch}, ${info.threads} WASM thread${info.threads > 1 ? 's' : ''}…`);
      const onStep = (r: StepReport) => {
        log.push(r);
        const v = r.values;
        say(`step ${r.step}/${info!.steps} (${r.program === 'gan' ? 'with the discriminator' : `discriminator from step ${info!.discStart}`}): rec ${v.rec?.toFixed(3)} · codebook ${v.qloss?.toFixed(3)}${v.d_loss !== undefined ? ` · D ${v.d_loss.toFixed(3)}` : ''} — ${r.rate.toFixed(1)} steps/s on ${d.what}`);
        plot();
        document.body.dataset.trStep = String(r.step);
        save.disabled = false;
      };
      const last = await api().train(Comlink.proxy(onStep), Comlink.proxy(showRecon));
      plot(true);
      say(`${last >= info.steps ? 'finished' : 'stopped'} at step ${last} in ${((performance.now() - t0) / 1000).toFixed(0)} s — download the model, then e.g. npx latentkit reconstruct --model model.safetensors --input pic.png --output out.png --size 32`);
      document.body.dataset.trDone = String(last);
      done(`trained ${last} steps in this browser`);
    } catch (e) {
      say(`error: ${(e as Error).message}`);
      done('training: failed');
    } finally {
      running = false;
      start.disabled = false;
      stop.disabled = true;
    }
  };
  stop.onclick = () => void api().stop();
  save.onclick = async () => {
    const bytes = await api().save();
    const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' })), download: 'model.safetensors' });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };
}
