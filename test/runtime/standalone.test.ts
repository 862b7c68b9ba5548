// The in-browser path, run in Node: the standalone exports (models/export_onnx.ts) through
// onnxruntime-web's WASM build (runtime/standalone.ts) agree with the library on
// onnxruntime-node — VQGAN codes of a real emoji, sampled transformer tokens for a seed
// (batch-1 sessions one sample after another vs the library's batch), and a drawing's
// sketch-condition tokens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ortWeb from 'onnxruntime-web';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { vqganOnnx, net2netOnnx, type OnnxExport, type VQGANOnnxManifest, type Net2NetOnnxManifest } from '../../src/models/export_onnx.ts';
import { StandaloneVQGAN, StandaloneNet2Net } from '../../src/runtime/standalone.ts';
import { emojiDataset } from '../../src/io/datasets.ts';
import { decodeImageBytesU8, encodePng, loadImage } from '../../src/io/image.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';
import { initCondEmbedding, initGPT } from '../../src/models/mingpt/gpt.ts';
import { InitRng } from '../../src/nn/params.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const gptDir = path.join(here, '../fixtures/gpt');
ortWeb.env.wasm.numThreads = 1;
const ort = ortWeb as never;

const reader = (e: OnnxExport) => async (f: string) => {
  const b = e.files.get(f);
  if (!b) throw new Error(`no ${f} in the export`);
  return b;
};

describe('standalone exports on onnxruntime-web (WASM)', () => {
  let vq: VQGAN;
  before(() => {
    vq = VQGAN.load(path.join(root, 'models/emoji-f4/model.safetensors'), { session: { threads: 1 } });
  });
  after(() => vq.release());

  it('VQGAN: the same code indices as the library for a real emoji, and the same decoded image', async () => {
    const e = vqganOnnx(vq, { size: 64 });
    const web = await StandaloneVQGAN.load(ort, e.manifest as unknown as VQGANOnnxManifest, reader(e));
    const items = (await emojiDataset()).items.slice(0, 3);
    for (const item of items) {
      const x = await loadImage(item.path, { size: 64 });
      const native = await vq.encode(x.reshape([1, 3, 64, 64]));
      const got = await web.encode(x.data as Float32Array);
      assert.deepEqual(got.shape, [16, 16]);
      assert.deepEqual(Array.from(got.indices), native.indices.toArray(), item.path);
      const img = await web.decode(got.indices);
      const ref = await vq.decode(native.indices);
      assert.ok(relErr(img, ref.data as Float32Array) < 1e-4, 'decoded image');
    }
    await assert.rejects(web.encode(new Float32Array(10)), /expected 3×64×64 = 12288 values, got 10/);
    await assert.rejects(web.decode(new Array(256).fill(5000)), /index 5000 is not a code in \[0, 1024\)/);
    await web.release();
  });

  it('transformer: batch-1 sessions, one sample after another, choose the tokens of the library batch (sampled, same seed)', async () => {
    const m = Net2Net.load(path.join(gptDir, 'net2net_class.ckpt'), { config: path.join(gptDir, 'net2net_class.yaml'), session: { threads: 1 } });
    const e = net2netOnnx(m, { batch: 1 });
    const web = await StandaloneNet2Net.load(ort, e.manifest as unknown as Net2NetOnnxManifest, reader(e));
    for (const o of [{ temperature: 1, topK: 5 }, { temperature: 0.7, topP: 0.9 }]) {
      const want = await m.sample({ n: 4, cond: [2], seed: 11, ...o });
      const got = await web.sample({ n: 4, cond: web.classCondition(2), seed: 11, ...o });
      assert.deepEqual(Array.from(got), Array.from(want), JSON.stringify(o));
    }
    const tokens = await web.sample({ n: 2, cond: [1], seed: 3 });
    const imgs = await web.decodeTokens(tokens, 2);
    const ref = await m.decodeTokens(tokens, 2);
    assert.ok(relErr(Float32Array.from(imgs.flatMap((x) => [...x])), ref.data as Float32Array) < 1e-4);
    assert.throws(() => web.classCondition('no-such'), /unknown class "no-such"/);
    await assert.rejects(web.sample({ n: 1, cond: [1, 2] }), /condition has 2 tokens; this model takes 1/);
    await assert.rejects(web.sample({ n: 1, cond: [1], guidance: 2 }), /guidance needs a class-conditional model trained with class dropout/);
    await web.release();
    // guidance: the null-class row decoded in lockstep gives the library's doubled batch's codes
    const g = new Net2Net({ ...m.config, null_class: true }, m.weights, m.firstStage, null, { session: { threads: 1 } });
    const eg = net2netOnnx(g, { batch: 1 });
    const wg = await StandaloneNet2Net.load(ort, eg.manifest as unknown as Net2NetOnnxManifest, reader(eg));
    for (const o of [{ topK: 5, guidance: 2 }, { temperature: 0.8, guidance: 3 }]) {
      const want = await g.sample({ n: 3, cond: [2], seed: 5, ...o });
      const got = await wg.sample({ n: 3, cond: [2], seed: 5, ...o });
      assert.deepEqual(Array.from(got), Array.from(want), JSON.stringify(o));
      assert.notDeepEqual(Array.from(got), Array.from(await wg.sample({ n: 3, cond: [2], seed: 5, ...o, guidance: undefined })), 'guidance changes the codes');
    }
    await wg.release();
    await g.release();
    await m.release();
  });

  it('MaskGIT exports (bidir.onnx): the library\'s codes for a seed — class prefix with guidance and an edit, aligned image condition', async () => {
    const base = Net2Net.load(path.join(gptDir, 'net2net_class.ckpt'), { config: path.join(gptDir, 'net2net_class.yaml'), session: { threads: 1 } });
    const V = base.config.first_stage.n_embed; // 16 codes; [MASK] = 16
    for (const cond of ['prefix', 'add'] as const) {
      const lz = base.grid[0] * base.grid[1];
      const T = cond === 'add' ? lz : 1 + lz;
      const t = { ...base.config.transformer, vocab_size: V + 1, block_size: T, n_unmasked: T };
      const config = { ...base.config, transformer: t, maskgit: { mask_token: V, cond }, null_class: true, ...(cond === 'add' ? { cond_stage: { kind: 'first_stage' as const } } : {}) };
      const w = initGPT(t, new InitRng(7));
      if (cond === 'add') w.set('cond_emb.weight', initCondEmbedding(t, new InitRng(8)));
      (w.get('head.weight')!.data as Float32Array).forEach((v, i, a) => (a[i] = v * 60)); // peaked logits: choices far from ties
      const m = new Net2Net(config, w, base.firstStage, null, { session: { threads: 1 } });
      const e = net2netOnnx(m, { batch: 1 });
      assert.ok(e.files.has('bidir.onnx') && !e.files.has('step.onnx'));
      const web = await StandaloneNet2Net.load(ort, e.manifest as unknown as Net2NetOnnxManifest, reader(e));
      assert.ok(web.isMaskGit);
      const c = cond === 'add' ? Array.from({ length: lz }, (_, i) => (i * 5) % V) : [2];
      for (const o of [{ topK: 5, steps: 4 }, { temperature: 0.8, steps: 6, guidance: 2 }]) {
        const want = await m.sample({ n: 3, cond: c, seed: 11, ...o });
        const got = await web.sample({ n: 3, cond: c, seed: 11, ...o });
        assert.deepEqual(Array.from(got), Array.from(want), `${cond} ${JSON.stringify(o)}`);
      }
      const init = Array.from({ length: lz }, (_, i) => (i % 3 === 0 ? -1 : i % V));
      const want = await m.sample({ n: 2, cond: c, seed: 4, steps: 3, init });
      const got = await web.sample({ n: 2, cond: c, seed: 4, steps: 3, init });
      assert.deepEqual(Array.from(got), Array.from(want));
      for (let k = 0; k < 2; k++) init.forEach((v, i) => v >= 0 && assert.equal(got[k * lz + i], v));
      // the image an edit starts from: the export's encoder gives the first stage's codes
      const [H, W] = (e.manifest as unknown as Net2NetOnnxManifest).image_size;
      const ch = base.firstStage.config.ddconfig.in_channels;
      const img = Float32Array.from({ length: ch * H * W }, (_, i) => Math.sin(i * 0.37));
      const { indices } = await base.firstStage.encode(HostTensor.float32([1, ch, H, W], img));
      assert.deepEqual(Array.from(await web.encodeImage(img)), indices.toArray().map(Number));
      await web.release();
    }
    await base.release();
  });

  it("sketch model: a drawing's condition tokens equal the server's (PNG bytes → conditionFromImage)", async () => {
    const m = Net2Net.load(path.join(root, 'models/emoji-sketch'), { session: { threads: 1 } });
    const e = net2netOnnx(m, { batch: 1 });
    const man = e.manifest as unknown as Net2NetOnnxManifest;
    assert.equal(man.condition.input, 'sketch');
    // only the condition encoder is needed here: load it alone
    const only = await StandaloneNet2Net.load(ort, { ...man, files: { cond_encoder: 'cond_encoder.onnx' } }, reader(e));
    // a 200×200 drawing: a circle and a line, black on white
    const [H, W] = [200, 200];
    const rgb = new Uint8Array(3 * H * W).fill(255);
    for (let t = 0; t < 2000; t++) {
      const a = (t / 2000) * 2 * Math.PI;
      const [y, x] = [Math.round(100 + 70 * Math.sin(a)), Math.round(100 + 70 * Math.cos(a))];
      for (let c = 0; c < 3; c++) for (let d = -2; d <= 2; d++) rgb[c * H * W + (y + d) * W + x] = 0;
    }
    for (let x = 60; x < 140; x++) for (let c = 0; c < 3; c++) rgb[c * H * W + 130 * W + x] = 0;
    const png = await encodePng(HostTensor.float32([3, H, W], Float32Array.from(rgb, (v) => v / 127.5 - 1)));
    assert.deepEqual(Array.from((await decodeImageBytesU8(png)).data), Array.from(rgb), 'the PNG round trip is lossless');
    const server = await m.conditionFromImage(png, 'drawing.png');
    const got = await only.sketchCondition(rgb, H, W);
    assert.equal(got.length, 256);
    assert.deepEqual(Array.from(got), Array.from(server.cond));
    await only.release();
    await m.release();
  });
});
