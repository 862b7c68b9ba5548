// AutoencoderKL (Stable Diffusion's VAE) against latent-diffusion's PyTorch code. Fixtures:
// scripts/make_kl_fixtures.py (Debian python3-torch): one random-weight model saved as an SD
// .ckpt and a diffusers folder (fp32, fp16); a 16-channel model without
// quant convs (bf16); SD's kl-f8 key layout. Tolerances: latents within 1e-4 relative (‖a−b‖/‖b‖),
// reconstructions ≥ 99.5 % of pixels within 2/255.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { loadStateDict } from '../../src/io/formats/checkpoint.ts';
import { diffusersToLdmKey, ldmToDiffusers, ldmToDiffusersKey } from '../../src/io/formats/kl_keymap.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { parseKLConfig, parseDiffusersVaeConfig, toDiffusersVaeConfig, inferKLConfig } from '../../src/models/autoencoder_kl/config.ts';
import { klDivergence, klShapes, samplePosterior } from '../../src/models/autoencoder_kl/autoencoder.ts';
import { Program } from '../../src/runtime/program.ts';
import { readKLWeights } from '../../src/models/autoencoder_kl/weights.ts';
import { readConfigFile } from '../../src/models/vqgan/config.ts';
import { Rng } from '../../src/io/rng.ts';
import { HostTensor } from '../../src/tensor.ts';
import { randn, relErr } from '../helpers.ts';
import { mergeStats, Plane, tileMoments } from '../../src/models/autoencoder_kl/tiled.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const FX = path.join(here, '../fixtures/kl');
const io = readSafetensorsFile(path.join(FX, 'io.safetensors')).tensors;
const ref = (k: string) => io.get(k)! as HostTensor<'float32'>;
const x = ref('x');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latentkit-kl-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function close(got: HostTensor, want: HostTensor, what: string, tol = 1e-4): void {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const e = relErr(got.data as Float32Array, want.data as Float32Array);
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

/** Fraction of pixels (images in [−1, 1] → [0, 255]) within 2/255 of the reference. */
function pixelsWithin(got: HostTensor, want: HostTensor, what: string): number {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const px = (v: number) => Math.min(255, Math.max(0, (v + 1) * 127.5));
  const a = got.data as Float32Array;
  const b = want.data as Float32Array;
  let ok = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs(px(a[i]!) - px(b[i]!)) <= 2) ok++;
  const frac = ok / a.length;
  assert.ok(frac >= 0.995, `${what}: only ${(frac * 100).toFixed(2)} % of pixels within 2/255`);
  return frac;
}

/** mode latents and reconstruction of x against the reference set `name`. */
async function checkModel(m: AutoencoderKL, name: string, scale: number, shift = 0, tol = 1e-4): Promise<void> {
  const e = await m.encode(x);
  close(e.mean, ref(`${name}.mean`), `${name}: posterior mean`, tol);
  close(e.logvar, ref(`${name}.logvar`), `${name}: posterior logvar`, tol);
  const want = HostTensor.float32(e.mean.shape, ref(`${name}.mean`).data.map((v) => (v - shift) * scale));
  close(e.latents, want, `${name}: scaled latents`, tol);
  const img = await m.decode(e.latents);
  pixelsWithin(img, ref(`${name}.rec`), `${name}: reconstruction`);
  close(img, ref(`${name}.rec`), `${name}: reconstruction`, tol);
}

describe('AutoencoderKL vs latent-diffusion (PyTorch)', () => {
  it("one key table maps every key of SD's kl-f8 layout (248) to diffusers' names and back", () => {
    const j = JSON.parse(fs.readFileSync(path.join(FX, 'klf8_keys.json'), 'utf8')) as { config: unknown; embed_dim: number; keys: [string, number[], string, number[]][] };
    assert.equal(j.keys.length, 248);
    const ours = klShapes(parseKLConfig({ embed_dim: j.embed_dim, ddconfig: j.config }));
    assert.deepEqual(Object.keys(ours).sort(), j.keys.map((r) => r[0]).sort(), 'ldm key set');
    const sd = new Map<string, HostTensor>();
    for (const [k, shape, dk] of j.keys) {
      assert.deepEqual([...ours[k]!], shape, `shape of ${k}`);
      assert.equal(ldmToDiffusersKey(k, 4), dk, `ldm → diffusers: ${k}`);
      assert.equal(diffusersToLdmKey(dk, 4), k, `diffusers → ldm: ${dk}`);
      sd.set(k, HostTensor.lazy('float32', shape, () => { throw new Error('read'); }));
    }
    const d = ldmToDiffusers(sd, 4);
    for (const [, , dk, dshape] of j.keys) assert.deepEqual([...d.get(dk)!.shape], dshape, `diffusers shape of ${dk}`);
    // older diffusers attention names read too
    assert.equal(diffusersToLdmKey('decoder.mid_block.attentions.0.proj_attn.weight', 4), 'decoder.mid.attn_1.proj_out.weight');
    assert.equal(diffusersToLdmKey('encoder.mid_block.attentions.0.query.bias', 4), 'encoder.mid.attn_1.q.bias');
    assert.equal(diffusersToLdmKey('decoder.up_blocks.0.resnets.0.time_emb_proj.weight', 4), null);
  });

  it("the released diffusers configs (SD 1.5, SDXL, SD3, FLUX) parse to kl-f8 layouts with their scaling", () => {
    const base = { _class_name: 'AutoencoderKL', act_fn: 'silu', block_out_channels: [128, 256, 512, 512], down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'), in_channels: 3, out_channels: 3, layers_per_block: 2, norm_num_groups: 32 };
    const cases = [
      [{ ...base, _diffusers_version: '0.6.0', latent_channels: 4, sample_size: 512 }, 248, undefined, undefined],
      [{ ...base, latent_channels: 4, sample_size: 1024, scaling_factor: 0.13025, force_upcast: true }, 248, 0.13025, undefined],
      [{ ...base, latent_channels: 16, sample_size: 1024, scaling_factor: 1.5305, shift_factor: 0.0609, use_quant_conv: false, use_post_quant_conv: false }, 244, 1.5305, 0.0609],
      [{ ...base, latent_channels: 16, sample_size: 1024, scaling_factor: 0.3611, shift_factor: 0.1159, use_quant_conv: false, use_post_quant_conv: false, mid_block_add_attention: true }, 244, 0.3611, 0.1159],
    ] as const;
    for (const [json, keys, scale, shift] of cases) {
      const c = parseDiffusersVaeConfig(json);
      assert.equal(Object.keys(klShapes(c)).length, keys);
      assert.deepEqual([c.ddconfig.ch, c.ddconfig.ch_mult, c.ddconfig.num_res_blocks, c.embed_dim], [128, [1, 2, 4, 4], 2, json.latent_channels]);
      assert.deepEqual([c.scaling_factor, c.shift_factor], [scale, shift]);
    }
    assert.throws(() => parseDiffusersVaeConfig({ ...base, up_block_types: ['UpDecoderBlock2D'] }, 'vae/config.json'), /vae\/config\.json: 'up_block_types' must be 4 × 'UpDecoderBlock2D'/);
    assert.throws(() => parseDiffusersVaeConfig({ ...base, _class_name: 'AutoencoderTiny' }), /TAESD/);
  });

  it('an SD checkpoint (.ckpt, first_stage_model.* among UNet and text-encoder keys) with its YAML', async () => {
    const m = AutoencoderKL.load(path.join(FX, 'sd_tiny.ckpt'), { config: path.join(FX, 'sd_tiny.yaml') });
    assert.match(m.notes.join('\n'), /Stable Diffusion torch checkpoint: the VAE from first_stage_model\.\* \(\d+ tensors; 6 other tensors left unread\)/);
    assert.match(m.notes.join('\n'), /latent scaling 0\.18215 \(from the file's config\)/);
    assert.equal(m.scaling.scale, 0.18215);
    await checkModel(m, 'tiny', 0.18215);
    await m.release();
    // the UNet / text-encoder tensors beside the VAE are never read from the file
    const w = readKLWeights(path.join(FX, 'sd_tiny.ckpt'));
    assert.equal(w.others.size, 6);
    const vae = new AutoencoderKL(parseKLConfig(readConfigFile(path.join(FX, 'sd_tiny.yaml'))), w.stateDict);
    await vae.encode(x);
    await vae.release();
    assert.ok([...w.others.values()].every((t) => !t.loaded), 'other tensors left unread');
    assert.ok([...w.stateDict.values()].some((t) => t.loaded || t.origin), 'the VAE tensors were used');
  });

  it('a diffusers vae/ folder, given as the folder, its weights file or the pipeline folder', async () => {
    const dir = path.join(FX, 'diffusers_tiny');
    const pipe = path.join(tmp, 'pipeline');
    fs.mkdirSync(pipe);
    fs.symlinkSync(dir, path.join(pipe, 'vae'));
    for (const p of [dir, path.join(dir, 'diffusion_pytorch_model.safetensors'), pipe]) {
      const m = AutoencoderKL.load(p);
      assert.match(m.notes.join('\n'), /config from .*config\.json/);
      assert.equal(m.config.ddconfig.norm_num_groups, 2);
      await checkModel(m, 'tiny', 0.18215);
      await m.release();
    }
  });

  it("older diffusers attention names (query/key/value/proj_attn) load the same", async () => {
    const dir = path.join(tmp, 'legacy');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(FX, 'diffusers_tiny/config.json'), path.join(dir, 'config.json'));
    const { stateDict } = loadStateDict(path.join(FX, 'diffusers_tiny/diffusion_pytorch_model.safetensors'));
    const ren: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
    const old = new Map([...stateDict].map(([k, v]) => [k.replace(/attentions\.0\.(to_q|to_k|to_v|to_out\.0)\./, (_, n: string) => `attentions.0.${ren[n]}.`), v]));
    assert.ok([...old.keys()].some((k) => k.includes('proj_attn')));
    writeSafetensorsFile(path.join(dir, 'diffusion_pytorch_model.safetensors'), old);
    const m = AutoencoderKL.load(dir);
    await checkModel(m, 'tiny', 0.18215);
    await m.release();
  });

  it('a 16-channel model without quant convs (SD3 / FLUX layout), ldm-named .safetensors', async () => {
    const withCfg = AutoencoderKL.load(path.join(FX, 'flux16.safetensors'), { config: path.join(FX, 'flux16.yaml') });
    assert.equal(withCfg.config.use_quant_conv, false);
    assert.ok(!withCfg.weights.has('quant_conv.weight') && !withCfg.weights.has('post_quant_conv.weight'));
    assert.match(withCfg.notes.join('\n'), /latent scaling 0\.3611, shift 0\.1159 \(FLUX assumed: 16 latent channels/);
    await checkModel(withCfg, 'flux16', 0.3611, 0.1159);
    await withCfg.release();
    // SD3's numbers by option; the inferred config sees no quant convs
    const sd3 = AutoencoderKL.load(path.join(FX, 'flux16.safetensors'), { config: path.join(FX, 'flux16.yaml'), family: 'sd3' });
    assert.deepEqual([sd3.scaling.scale, sd3.scaling.shift], [1.5305, 0.0609]);
    const inf = inferKLConfig(loadStateDict(path.join(FX, 'flux16.safetensors')).stateDict).config;
    assert.deepEqual([inf.embed_dim, inf.use_quant_conv, inf.use_post_quant_conv, inf.ddconfig.z_channels], [16, false, false, 16]);
  });

  it('fp16 (diffusers folder) and bf16 (the 16-channel .safetensors) weights load, computed in fp32', async () => {
    const h = AutoencoderKL.load(path.join(FX, 'diffusers_fp16'));
    assert.match(h.source, /fp16\.safetensors$/);
    await checkModel(h, 'fp16', 0.18215);
    // the rounding is real: the fp16 weights do not give the fp32 model's latents
    const e = await h.encode(x);
    assert.ok(relErr(e.mean.data, ref('tiny.mean').data) > 1e-4, 'fp16 weights differ from fp32 ones');
    await h.release();
    // flux16.safetensors is stored in bfloat16 (like FLUX's ae.safetensors): the test above checks it
    const head = fs.readFileSync(path.join(FX, 'flux16.safetensors')).subarray(8, 400).toString('latin1');
    assert.match(head, /"dtype":"BF16"/);
  });

  it('posterior: seeded samples, KL and the reparameterisation match ldm', async () => {
    const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
    const a = await m.encode(x, { sample: true, seed: 7 });
    const a2 = await m.encode(x, { sample: true, seed: 7 });
    const c = await m.encode(x, { sample: true, seed: 8 });
    assert.deepEqual(a.latents.data, a2.latents.data);
    assert.notDeepEqual(a.latents.data, c.latents.data);
    const rng = new Rng(7);
    const want = a.mean.data.map((mu, i) => (mu + Math.exp(0.5 * a.logvar.data[i]!) * rng.normal()) * 0.18215);
    close(a.latents, HostTensor.float32(a.mean.shape, want), 'sample', 1e-6);
    await m.release();
    const shape = ref('tiny.mean').shape;
    const prog = Program.trace(({ mean, logvar, eps }) => ({ kl: klDivergence({ mean: mean!, logvar: logvar! }), sample: samplePosterior({ mean: mean!, logvar: logvar! }, eps!) }), {
      mean: { shape, dtype: 'float32' }, logvar: { shape, dtype: 'float32' }, eps: { shape, dtype: 'float32' },
    });
    const r = await (await prog.compile()).run({ mean: ref('tiny.mean'), logvar: ref('tiny.logvar'), eps: ref('tiny.eps') });
    close(r.kl!, ref('tiny.kl'), 'kl');
    close(r.sample!, ref('tiny.sample'), 'sample (graph)');
    // ldm clamps the log-variance to [−30, 20]: blow up quant_conv's logvar half to reach both bounds
    const w = new Map(m.weights);
    const qw = w.get('quant_conv.weight')!;
    const big = HostTensor.float32(qw.shape, (qw.data as Float32Array).map((v, i) => (i >= qw.size / 2 ? v * 1e4 : v)));
    w.set('quant_conv.weight', big);
    const clamped = new AutoencoderKL(m.config, w);
    const lv = (await clamped.encode(x)).logvar.data;
    assert.ok(lv.every((v) => v >= -30 && v <= 20));
    assert.ok(lv.includes(20) && lv.includes(-30), 'both bounds reached');
    await clamped.release();
  });

  it('save: a diffusers folder and an ldm .safetensors that load back the same (PyTorch loads them strictly: make_kl_fixtures.py --roundtrip)', async () => {
    const m = AutoencoderKL.load(path.join(FX, 'flux16.safetensors'), { config: path.join(FX, 'flux16.yaml') });
    const dir = path.join(tmp, 'saved_vae');
    const file = path.join(tmp, 'saved.safetensors');
    m.save(dir, { format: 'diffusers' });
    m.save(file, { format: 'ldm' });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual([cfg.latent_channels, cfg.scaling_factor, cfg.shift_factor, cfg.use_quant_conv], [16, 0.3611, 0.1159, false]);
    for (const p of [dir, file]) {
      const b = AutoencoderKL.load(p);
      assert.match(b.notes.join('\n'), /latent scaling 0\.3611, shift 0\.1159 \(from the file's config\)/);
      await checkModel(b, 'flux16', 0.3611, 0.1159);
      await b.release();
    }
    await m.release();
    const t = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
    const half = path.join(tmp, 'saved_fp16');
    t.save(half, { format: 'diffusers', float16: true });
    const h = AutoencoderKL.load(half);
    assert.match(h.source, /diffusion_pytorch_model\.fp16\.safetensors$/);
    await checkModel(h, 'fp16', 0.18215); // the fixture's fp16 weights are the same rounding
    await h.release();
    await t.release();
  });

  it('latent scaling: by family, from the config, overridden, or off', () => {
    const p = path.join(FX, 'sd_tiny.ckpt');
    const cfg = path.join(FX, 'sd_tiny.yaml');
    assert.equal(AutoencoderKL.load(p, { config: cfg, family: 'sdxl' }).scaling.scale, 0.13025);
    assert.deepEqual(AutoencoderKL.load(p, { config: cfg, scale: 0.5 }).scaling, { scale: 0.5, shift: 0, source: 'given' });
    assert.deepEqual(AutoencoderKL.load(p, { config: cfg, noScale: true }).scaling.scale, 1);
    // a bare ldm config has no scale: SD 1.x/2.x by default, and the note says why
    const bare = AutoencoderKL.load(p, { config: { embed_dim: 4, ddconfig: parseKLConfig(readConfigFile(cfg)).ddconfig } });
    assert.equal(bare.scaling.scale, 0.18215);
    assert.match(bare.notes.join('\n'), /latent scaling 0\.18215 \(SD 1\.x\/2\.x assumed: 4 latent channels and no scale in the config; SDXL's VAE has the same layout/);
    // diffusers config round trip
    const dc = parseDiffusersVaeConfig(JSON.parse(fs.readFileSync(path.join(FX, 'diffusers_tiny/config.json'), 'utf8')));
    assert.deepEqual(parseDiffusersVaeConfig(toDiffusersVaeConfig(dc)), dc);
  });

  it('bad input: one-line errors naming the problem', async () => {
    const unet = path.join(tmp, 'unet.safetensors');
    writeSafetensorsFile(unet, { 'model.diffusion_model.input_blocks.0.0.weight': HostTensor.float32([2, 2]), 'model.diffusion_model.time_embed.0.weight': HostTensor.float32([2]) });
    const dunet = path.join(tmp, 'dunet.safetensors');
    writeSafetensorsFile(dunet, { 'time_embedding.linear_1.weight': HostTensor.float32([2, 2]), 'down_blocks.0.attentions.0.proj_in.weight': HostTensor.float32([2]) });
    const noCfg = path.join(tmp, 'nocfg');
    fs.mkdirSync(noCfg);
    fs.copyFileSync(path.join(FX, 'diffusers_tiny/diffusion_pytorch_model.safetensors'), path.join(noCfg, 'diffusion_pytorch_model.safetensors'));
    const trunc = path.join(tmp, 'trunc.safetensors');
    const full = fs.readFileSync(path.join(FX, 'flux16.safetensors'));
    fs.writeFileSync(trunc, full.subarray(0, full.length - 1000));
    const unetDir = path.join(tmp, 'unetdir');
    fs.mkdirSync(unetDir);
    fs.writeFileSync(path.join(unetDir, 'config.json'), JSON.stringify({ _class_name: 'UNet2DConditionModel' }));
    fs.copyFileSync(dunet, path.join(unetDir, 'diffusion_pytorch_model.safetensors'));
    const cases: [string, RegExp][] = [
      [unet, /unet\.safetensors: not a KL autoencoder \(VAE\): it looks like a Stable Diffusion UNet checkpoint without a VAE/],
      [dunet, /not a KL autoencoder \(VAE\): it looks like a diffusion UNet/],
      [unetDir, /_class_name is 'UNet2DConditionModel' \(a diffusion UNet, not a VAE\); expected 'AutoencoderKL'/],
      [noCfg, /nocfg: a diffusers VAE folder needs config\.json, which is missing \(weights diffusion_pytorch_model\.safetensors found\)/],
      [path.join(noCfg, 'diffusion_pytorch_model.safetensors'), /diffusers-named VAE weights, but there is no config\.json beside them/],
      [path.join(tmp, 'nope.ckpt'), /model not found: .*nope\.ckpt/],
      [trunc, /trunc\.safetensors/],
    ];
    for (const [p, re] of cases) {
      assert.throws(() => AutoencoderKL.load(p, { config: p === trunc ? path.join(FX, 'flux16.yaml') : undefined }), (e: Error) => {
        assert.match(e.message, re);
        assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
        return true;
      });
    }
    const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
    await assert.rejects(m.decode(HostTensor.float32([1, 16, 4, 4])), /latents have 16 channels, but this model's latent space has 4 \(latents \[1, 16, 4, 4\]\)/);
    await assert.rejects(m.encode(HostTensor.float32([1, 3, 5, 4])), /image size 4×5 is not a multiple of the model's downsampling factor 2/);
    await m.release();
  });
});

describe('AutoencoderKL tiled decoding (whole-image GroupNorm statistics)', () => {
  it("Chan's pooling of per-tile moments gives the whole image's mean and variance (between-tile term included)", () => {
    // two tiles with different means: averaging their variances would miss the spread between them
    const y = HostTensor.float32([1, 2, 2, 4], [0, 1, 2, 3, 10, 11, 12, 13, 5, 5, 6, 6, -4, -2, 0, 2]);
    const left = HostTensor.float32([1, 2, 2, 2], [0, 1, 10, 11, 5, 5, -4, -2]);
    const right = HostTensor.float32([1, 2, 2, 2], [2, 3, 12, 13, 6, 6, 0, 2]);
    const whole = tileMoments(y, 1, 2, 4);
    const pooled = mergeStats(tileMoments(left, 1, 2, 2), tileMoments(right, 1, 2, 2));
    assert.equal(pooled.n, whole.n);
    assert.ok(Math.abs(pooled.mean[0]! - whole.mean[0]!) < 1e-12 && Math.abs(pooled.m2[0]! - whole.m2[0]!) < 1e-9);
    const naive = (tileMoments(left, 1, 2, 2).m2[0]! + tileMoments(right, 1, 2, 2).m2[0]!) / whole.n;
    assert.ok(naive < whole.m2[0]! / whole.n - 0.1, 'the within-tile variance alone underestimates');
  });

  it('tiled decode equals the untiled decoder (and PyTorch) with a 1-pixel halo; without a halo it does not', async () => {
    for (const [p, cfg, name, scale, shift] of [['diffusers_tiny', undefined, 'tiny', 0.18215, 0], ['flux16.safetensors', 'flux16.yaml', 'flux16', 0.3611, 0.1159]] as const) {
      const m = AutoencoderKL.load(path.join(FX, p), { config: cfg && path.join(FX, cfg) });
      // the fixture's latents (8×6: tiles of 3 leave edge tiles) against PyTorch's untiled decode
      const lat = HostTensor.float32(ref(`${name}.mean`).shape, ref(`${name}.mean`).data.map((v) => (v - shift) * scale));
      const t = await m.decode(lat, { tile: 3 });
      pixelsWithin(t, ref(`${name}.rec`), `${name}: tiled vs PyTorch`);
      close(t, ref(`${name}.rec`), `${name}: tiled vs PyTorch`);
      if (name === 'flux16') {
        await m.release();
        continue;
      }
      // larger random latents, several tilings and a query-chunked mid-block attention
      const z = randn([1, m.latentChannels, 11, 9], 3);
      const whole = await m.decode(z);
      // recompute: each resnet block in one stage after a statistics pass (only its input and output stored)
      for (const o of [{ tile: 4 }, { tile: 2, queryChunk: 7, halo: 2 }, { tile: 3, recompute: true }, { tile: 2, recompute: true, halo: 2 }]) {
        const tiled = await m.decode(z, o);
        close(tiled, whole, `${name} ${JSON.stringify(o)}`, 1e-5);
        assert.ok(m.tiled(o).lastRun.tiles > 10);
      }
      const noHalo = await m.decode(z, { tile: 4, halo: 0 });
      assert.ok(relErr(noHalo.data, whole.data) > 0.1, 'a tile needs one pixel of context per 3×3 conv');
      assert.ok(relErr((await m.decode(z, { tile: 4, halo: 0, recompute: true })).data, whole.data) > 0.1, 'recompute: no halo, wrong result');
      await m.release();
    }
  });
  it('float16 storage between stages: blocks scaled past float16 range, freed rows refuse reads, decode within 1e-3 of untiled', async () => {
    // a 5×7 activation in 3×4 blocks with values beyond float16's 65504 and below its precision
    const full = randn([1, 2, 5, 7], 5);
    full.data[3] = 1e6;
    full.data[40] = -3e5;
    full.data[9] = 1e-3;
    const src = Plane.of(full);
    const p = new Plane(1, 2, 5, 7, 3, 4, true);
    for (const [r0, c0] of [[0, 0], [0, 4], [3, 0], [3, 4]] as const) p.write(r0, c0, src.read(r0, c0, 3, 4), Math.min(3, 5 - r0), Math.min(4, 7 - c0));
    const back = p.read(-1, -2, 7, 10); // one row/two columns of zeros around
    for (let c = 0; c < 2; c++) {
      for (let y = -1; y < 6; y++) {
        for (let x = -2; x < 8; x++) {
          const got = back.data[(c * 7 + y + 1) * 10 + x + 2]!;
          const want = y >= 0 && y < 5 && x >= 0 && x < 7 ? full.data[(c * 5 + y) * 7 + x]! : 0;
          assert.ok(Math.abs(got - want) <= Math.abs(want) * 2 ** -11 + 1e-7, `(${c}, ${y}, ${x}): ${got} vs ${want}`);
        }
      }
    }
    assert.throws(() => p.write(1, 0, src.read(1, 0, 3, 4), 3, 4), /not a block of the 3×4 grid/);
    p.freeAbove(3);
    assert.throws(() => p.read(2, 0, 2, 2), /block \(0, 0\) was freed/);
    assert.equal(p.read(3, 0, 2, 7).shape[2], 2);

    const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
    const z = randn([1, m.latentChannels, 11, 9], 3);
    const whole = await m.decode(z);
    const f32 = await m.decode(z, { tile: 4 });
    const f16 = await m.decode(z, { tile: 4, storage: 'float16' });
    assert.equal(m.tiled({ tile: 4, storage: 'float16' }).lastRun.storage, 'float16');
    assert.equal(m.tiled({ tile: 4 }).lastRun.storage, 'float32', 'small images default to float32 storage');
    close(f16, whole, 'float16 storage', 1e-3);
    assert.ok(relErr(f16.data, whole.data) > 10 * relErr(f32.data, whole.data), 'float16 storage rounds (the path ran)');
    const e = await m.encode(randn([1, 3, 22, 18], 4), { tile: 4, storage: 'float16' });
    close(e.mean, (await m.encode(randn([1, 3, 22, 18], 4))).mean, 'encode, float16 storage', 1e-3);
    await m.release();
  });

  it('tiled encode equals the untiled encoder (and PyTorch); reconstruct tiles both ways', async () => {
    const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
    const t = await m.encode(x, { tile: 3 }); // 6-pixel image tiles over 16×12: edge tiles too
    close(t.mean, ref('tiny.mean'), 'tiled encode vs PyTorch: mean');
    close(t.logvar, ref('tiny.logvar'), 'tiled encode vs PyTorch: logvar');
    const img = randn([1, 3, 22, 18], 4);
    const whole = await m.encode(img);
    for (const o of [{ tile: 4 }, { tile: 2, queryChunk: 5 }]) {
      const e = await m.encode(img, o);
      close(e.mean, whole.mean, `encode ${JSON.stringify(o)}: mean`, 1e-5);
      close(e.logvar, whole.logvar, `encode ${JSON.stringify(o)}: logvar`, 1e-5);
    }
    assert.ok(relErr((await m.encode(img, { tile: 3, halo: 0 })).mean.data, whole.mean.data) > 0.1, 'no halo, wrong result');
    const r = await m.reconstruct(x, { tile: 3 });
    pixelsWithin(r.image, ref('tiny.rec'), 'tiled reconstruction vs PyTorch');
    await m.release();
  });
});

describe('AutoencoderKL on onnxruntime-web (WebAssembly)', () => {
  it('reconstructs like PyTorch from the SD checkpoint and the 16-channel model', async () => {
    const ortWeb = await import('onnxruntime-web');
    const { setBackend } = await import('../../src/runtime/backend.ts');
    ortWeb.env.wasm.numThreads = 1;
    setBackend(ortWeb as never, ['wasm']);
    const m = AutoencoderKL.load(path.join(FX, 'sd_tiny.ckpt'), { config: path.join(FX, 'sd_tiny.yaml'), session: { threads: 1 } });
    await checkModel(m, 'tiny', 0.18215);
    await m.release();
    const f = AutoencoderKL.load(path.join(FX, 'flux16.safetensors'), { config: path.join(FX, 'flux16.yaml'), session: { threads: 1 } });
    await checkModel(f, 'flux16', 0.3611, 0.1159);
    await f.release();
  });
});
