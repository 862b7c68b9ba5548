// Transformer training end to end on a small code set: extract-codes (flips, labels, split),
// exact resume, the run directory doubling as a model directory, and bad configs.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { extractCodes, flipBatch } from '../../src/train/extract_codes.ts';
import { readCodeSet, writeCodeSet } from '../../src/io/codes.ts';
import { gptLearningRate, loadGPTTrainConfig, parseGPTTrainConfig, TINY_GPT_PRESET } from '../../src/train/gpt_config.ts';
import { initialWeights, trainGPT } from '../../src/train/gpt_run.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { HostTensor } from '../../src/tensor.ts';
import { GPTBatcher } from '../../src/train/gpt_batches.ts';
import { loadImageU8 } from '../../src/io/image.ts';
import { emojiClassFolders } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-gpt-'));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');
const codesFile = path.join(tmp, 'codes.safetensors');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');
const quiet = { onMessage: () => {} };
const tiny = (over: Record<string, unknown> = {}) => {
  const c = structuredClone(TINY_GPT_PRESET) as any;
  Object.assign(c.latentkit, { max_steps: 6, log_every: 2, val_every: 3, sample_every: 6, ckpt_every: 3 }, over);
  return parseGPTTrainConfig(c, 'tiny');
};

describe('train-gpt', () => {
  before(async () => {
    emojiClassFolders(data, 200, 240, ['dogs', 'cats']);
    const model = VQGAN.load(VQ, { session: { threads: 1 } });
    const set = await extractCodes({ model, modelPath: VQ, data, size: 64, flip: true, valFraction: 0.2 });
    writeCodeSet(codesFile, set);
    await model.release();
  });

  it('a code set holds both views, labels, the split and where it came from', async () => {
    const s = readCodeSet(codesFile);
    assert.deepEqual(s.codes.shape, [40, 2, 16, 16]);
    assert.deepEqual(s.classes, ['cats', 'dogs']);
    assert.equal(s.labels.length, 40);
    const nVal = s.val.reduce((a, b) => a + b, 0);
    assert.ok(nVal > 0 && nVal < 40, `val rows ${nVal}`);
    assert.equal(path.resolve(s.info.model), path.resolve(VQ));
    // view 1 is the code grid of the mirrored image, not a mirrored code grid
    const m = VQGAN.load(VQ, { session: { threads: 1 } });
    const first = path.join(data, 'dogs', fs.readdirSync(path.join(data, 'dogs')).sort()[0]!);
    const u8 = (await loadImageU8(first, { size: 64 })).reshape([1, 3, 64, 64]);
    const flipped = flipBatch(u8);
    const { indices } = await m.encode(HostTensor.float32([1, 3, 64, 64], Float32Array.from(flipped.data, (v) => v / 127.5 - 1)));
    const row = s.keys.findIndex((k) => k.startsWith('dogs/'));
    assert.deepEqual(Array.from(s.codes.data.subarray((row * 2 + 1) * 256, (row * 2 + 2) * 256)), indices.toArray());
    await m.release();
  });

  it('batches: pkeep corrupts inputs only, class dropout uses the null class, state resumes the stream', () => {
    const s = readCodeSet(codesFile);
    const rows = Array.from({ length: 40 }, (_, i) => i);
    const mk = () => new GPTBatcher({ set: s, rows, batchSize: 8, cond: 'class', sosToken: 0, vocab: 1024, pkeep: 0.5, classDropout: 0.5, nullClass: 2, flip: true, seed: 3, train: true });
    const b = mk();
    const x = b.next();
    let diff = 0;
    for (let i = 0; i < x.a.size; i++) if (x.a.data[i] !== x.z.data[i]) diff++;
    assert.ok(diff > 0.3 * x.a.size && diff < 0.7 * x.a.size, `corrupted ${diff}/${x.a.size}`);
    assert.ok(x.c.toArray().every((c) => c === 0 || c === 1 || c === 2));
    assert.ok(x.c.toArray().includes(2), 'class dropout never fired');
    b.next();
    const st = b.state();
    const want = b.next();
    const b2 = mk();
    b2.setState(st);
    const got = b2.next();
    assert.deepEqual(got.a.toArray(), want.a.toArray());
    assert.deepEqual(got.c.toArray(), want.c.toArray());
  });

  it('resume continues exactly: the same weights and metrics as an uninterrupted run', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await trainGPT({ config: tiny(), codes: codesFile, out: a, threads: 1, events: quiet });
    await trainGPT({ config: tiny(), codes: codesFile, out: b, maxSteps: 3, threads: 1, events: quiet });
    await trainGPT({ config: tiny(), codes: codesFile, out: b, resume: true, threads: 1, events: quiet });
    const wa = readSafetensorsFile(path.join(a, 'model.safetensors')).tensors;
    const wb = readSafetensorsFile(path.join(b, 'model.safetensors')).tensors;
    for (const [k, v] of wa) assert.deepEqual(Array.from(wb.get(k)!.data as Float32Array), Array.from(v.data as Float32Array), k);
    const strip = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => { const j = JSON.parse(l); delete j.tokens_per_s; return j; });
    assert.deepEqual(strip(path.join(b, 'metrics.jsonl')), strip(path.join(a, 'metrics.jsonl')));
    for (const f of ['config.yaml', 'loss.png', 'samples/latest.png', 'checkpoints/last.json']) assert.ok(fs.existsSync(path.join(a, f)), f);
  });

  it('the run directory is a model directory: sample by class name, decode', async () => {
    const m = Net2Net.load(path.join(tmp, 'a'), { session: { threads: 1 } });
    assert.deepEqual(m.classes, ['cats', 'dogs']);
    assert.equal(m.config.null_class, true);
    const tokens = await m.sample({ n: 2, cond: [m.classIndex('dogs')], topK: 10, seed: 1 });
    const img = await m.decodeTokens(tokens, 2);
    assert.deepEqual(img.shape, [2, 3, 64, 64]);
    const g = await m.sample({ n: 1, cond: [0], guidance: 2, seed: 1 });
    assert.equal(g.length, 256);
    await m.release();
  });

  it('a config that cannot hold the code set is a one-line error before anything is written', async () => {
    const c = tiny();
    c.transformer.block_size = 100;
    const out = path.join(tmp, 'bad');
    await assert.rejects(trainGPT({ config: c, codes: codesFile, out, threads: 1, events: quiet }), /block_size 100 is smaller than the 1 condition \+ 256 image tokens/);
    assert.ok(!fs.existsSync(path.join(out, 'config.yaml')));
    await assert.rejects(trainGPT({ config: tiny(), codes: VQ, out, threads: 1, events: quiet }), /not a code set/);
    const img = tiny();
    img.cond = 'image';
    await assert.rejects(trainGPT({ config: img, codes: codesFile, out, threads: 1, events: quiet }), /condition model|no condition codes/);
  });

  it('validation of an image-conditioned model also scores each grid under another grid\'s condition', async () => {
    const s = readCodeSet(codesFile);
    // the emoji's own codes (flipped view first) as the condition: a condition that is easy to read
    const cond = s.codes.clone();
    for (let i = 0; i < 40; i++) cond.data.copyWithin(i * 512, i * 512 + 256, i * 512 + 512);
    const file = path.join(tmp, 'self-cond.safetensors');
    writeCodeSet(file, { ...s, cond, condCodes: 1024, info: { ...s.info, condModel: VQ, cond: 'flipped self' } });
    const c = tiny({ max_steps: 2, val_every: 2, log_every: 1, sample_every: 2, ckpt_every: 2 });
    c.cond = 'image';
    c.transformer.block_size = 512;
    const out = path.join(tmp, 'img-cond');
    await trainGPT({ config: c, codes: file, out, threads: 1, events: quiet });
    const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const v = lines.find((j) => j.split === 'val');
    assert.ok(v && Number.isFinite(v.bpt_other_cond) && v.bpt_other_cond !== v.bpt, JSON.stringify(v));
    assert.ok(lines.filter((j) => j.split === 'val').every((j) => j.rows === s.val.reduce((a, b) => a + b, 0)));
    const cls = fs.readFileSync(path.join(tmp, 'a', 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(cls.some((j) => j.split === 'val') && cls.every((j) => j.bpt_other_cond === undefined), 'class models: no such line');
  });

  it("taming's Net2NetTransformer YAMLs load as training configs as they are", () => {
    const c = loadGPTTrainConfig(path.join(root, 'test/fixtures/gpt/net2net_class.yaml'));
    assert.equal(c.cond, 'class');
    assert.equal(c.transformer.n_embd, 32);
    assert.equal(c.run.batch_size, 16);
    assert.equal(gptLearningRate(c), 4.5e-6 * 16); // taming: base_learning_rate × batch
    const drin = parseGPTTrainConfig({
      model: { base_learning_rate: 4.5e-6, target: 'taming.models.cond_transformer.Net2NetTransformer', params: { cond_stage_key: 'depth', transformer_config: { target: 'taming.modules.transformer.mingpt.GPT', params: { vocab_size: 1024, block_size: 512, n_layer: 24, n_head: 16, n_embd: 1024 } }, first_stage_config: { target: 'taming.models.vqgan.VQModel', params: {} }, cond_stage_config: { target: 'taming.models.vqgan.VQModel', params: { ckpt_path: 'x.ckpt', ddconfig: { in_channels: 1 } } } } },
      data: { params: { batch_size: 2 } },
    }, 'drin_transformer.yaml');
    assert.equal(drin.cond, 'image');
    assert.equal(drin.transformer.n_layer, 24);
    assert.throws(() => parseGPTTrainConfig({ model: { params: { transformer_config: { params: { vocab_size: 10, block_size: 5 } }, cond_stage_config: { target: 'my.Custom' } } } }, 'x.yaml'), /x.yaml: cond_stage_config 'my.Custom' is not supported/);
    assert.throws(() => loadGPTTrainConfig('nope'), /cannot read config nope: ENOENT \(presets: class, sketch, tiny, maskgit-class, maskgit-sketch, maskgit-sketch-prefix, tiny-maskgit\)/);
  });

  it("pos_init 'aligned' shares start vectors between a condition cell and the position predicting that image cell", () => {
    const s = readCodeSet(codesFile);
    s.cond = s.codes; // an image condition on the image's own 16×16 grid
    const c = tiny({ pos_init: 'aligned' });
    c.transformer.block_size = 512;
    const w = initialWeights(c.transformer, c.run, 256, 256, s);
    const C = c.transformer.n_embd;
    const pos = w.get('pos_emb')!.data as Float32Array;
    const row = (p: number) => Array.from(pos.subarray(p * C, (p + 1) * C));
    assert.deepEqual(row(256 - 1 + 17), row(17));
    assert.notDeepEqual(row(17), row(18));
    assert.ok(row(17).some((v) => v !== 0));
    const z = initialWeights(c.transformer, tiny().run, 256, 256, s).get('pos_emb')!.data as Float32Array;
    assert.ok(z.every((v) => v === 0), "taming's zeros by default");
    assert.throws(() => initialWeights(c.transformer, c.run, 1, 256, readCodeSet(codesFile)), /needs an image condition/);
  });

  it("pos_init 'aligned_head': head 0 of block 0 starts attending to the aligned condition cell", () => {
    const s = readCodeSet(codesFile);
    s.cond = s.codes;
    const c = tiny({ pos_init: 'aligned_head' });
    Object.assign(c.transformer, { block_size: 512, n_embd: 64, n_head: 4 }); // head size 16 ≤ 64/4
    const C = 64;
    const hs = 16;
    const w = initialWeights(c.transformer, c.run, 256, 256, s);
    const pos = w.get('pos_emb')!.data as Float32Array;
    const tok = w.get('tok_emb.weight')!.data as Float32Array;
    const q = w.get('blocks.0.attn.query.weight')!.data as Float32Array;
    const k = w.get('blocks.0.attn.key.weight')!.data as Float32Array;
    assert.deepEqual(Array.from(pos.subarray((255 + 40) * C, (256 + 40) * C)), Array.from(pos.subarray(40 * C, 41 * C)));
    for (let v = 0; v < 10; v++) assert.ok(tok.subarray(v * C + 48, (v + 1) * C).every((x) => x === 0), 'token embeddings leave the position channels free');
    assert.ok(pos.subarray(40 * C, 40 * C + 48).every((x) => x === 0), 'position vectors only in the last quarter');
    // head 0 reads the position channels only, with the same map for query and key
    assert.deepEqual(Array.from(q.subarray(0, hs * C)), Array.from(k.subarray(0, hs * C)));
    for (let r = 0; r < hs; r++) assert.ok(q.subarray(r * C, r * C + 48).every((x) => x === 0));
    assert.notDeepEqual(Array.from(q.subarray(hs * C, 2 * hs * C)), Array.from(k.subarray(hs * C, 2 * hs * C)), 'other heads keep their random init');
    // attention logits of head 0 (LayerNorm of tok + pos, gain 1): the aligned condition cell beats every other key but the query itself
    const x = (t: number, p: number) => {
      const e = Array.from({ length: C }, (_, j) => tok[t * C + j]! + pos[p * C + j]!);
      const m = e.reduce((a, b) => a + b) / C;
      const sd = Math.sqrt(e.reduce((a, b) => a + (b - m) ** 2, 0) / C + 1e-5);
      return e.map((b) => (b - m) / sd);
    };
    const map = (W: Float32Array, v: number[]) => Array.from({ length: hs }, (_, r) => v.reduce((a, b, j) => a + W[r * C + j]! * b, 0));
    let wins = 0;
    for (const cell of [5, 60, 130, 200, 250]) {
      const qi = map(q, x(7, 255 + cell));
      const logit = (t: number, p: number) => map(k, x(t, p)).reduce((a, b, r) => a + b * qi[r]!, 0);
      const aligned = logit(3, cell);
      const others = Array.from({ length: 255 + cell }, (_, p) => p).filter((p) => p !== cell).map((p) => logit(3, p));
      if (aligned > Math.max(...others)) wins++;
    }
    assert.ok(wins >= 4, `aligned cell wins ${wins}/5`);
    assert.throws(() => initialWeights({ ...c.transformer, n_head: 1 }, c.run, 256, 256, s), /head size \(64\) of at most n_embd\/4 \(16\)/);
  });
});
