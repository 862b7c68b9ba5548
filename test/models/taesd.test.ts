// TAESD previews vs a PyTorch reference (fixture: scripts/make_taesd_fixtures.py, hash
// weights regenerated here from the key names). The same weights saved in every layout
// people have — the original per-part .pth / .safetensors files, a TAESD module state dict,
// a diffusers AutoencoderTiny folder, float16 — decode and encode alike. Tolerances: decoded
// images ≥ 99.5 % of values within 2/255 (the bar; here all are within 1e-4), latents
// within 1e-4 relative. Runs on onnxruntime-node and on the WASM build.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { writeTorchCheckpoint } from '../../src/io/formats/torch_write.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import type { StateDict } from '../../src/nn/params.ts';
import { HostTensor } from '../../src/tensor.ts';
import { taesdShapes, type TAESDPart } from '../../src/models/taesd/taesd.ts';
import { TAESD } from '../../src/models/taesd/load.ts';
import { toDiffusersKey } from '../../src/io/formats/taesd_keys.ts';
import { relErr } from '../helpers.ts';
import { perBackend } from '../backends.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = readSafetensorsFile(path.join(here, '../fixtures/taesd/taesd_io.safetensors'));
const T = fx.tensors;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-taesd-'));
const weights = (part: TAESDPart, c: number): StateDict => hashStateDict(taesdShapes(part, c));
const f32 = (t: HostTensor) => t.data as Float32Array;

/** decoded ([−1, 1] from the library) against PyTorch's [0, 1] output: share of values within tol. */
function within(got: HostTensor, want01: HostTensor, tol: number): number {
  const a = f32(got);
  const b = f32(want01);
  assert.equal(a.length, b.length);
  let ok = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs((a[i]! + 1) / 2 - b[i]!) <= tol) ok++;
  return ok / a.length;
}
const toLib = (x01: HostTensor) => HostTensor.float32(x01.shape, f32(x01).map((v) => v * 2 - 1));

it("parameter names and shapes are the original files' (taesd_encoder.pth / taesd_decoder.pth)", () => {
  for (const part of ['encoder', 'decoder'] as const) {
    const want = JSON.parse(fx.metadata[`keys.${part}`]!) as [string, number[]][];
    assert.deepEqual(Object.entries(taesdShapes(part, 4)), want, part);
  }
});

// the layouts a user may hold, written once from the same hash weights
const layouts: Record<string, (c: number) => string> = {
  'original .pth pair': (c) => {
    const d = path.join(tmp, `pth${c}`);
    fs.mkdirSync(d, { recursive: true });
    for (const part of ['encoder', 'decoder'] as const) writeTorchCheckpoint(path.join(d, `taesd_${part}.pth`), new Map(weights(part, c)));
    return path.join(d, 'taesd_decoder.pth'); // the encoder is found beside it
  },
  'original .safetensors, float16': (c) => {
    const d = path.join(tmp, `st${c}`);
    fs.mkdirSync(d, { recursive: true });
    for (const part of ['encoder', 'decoder'] as const) writeSafetensorsFile(path.join(d, `taesd_${part}.safetensors`), weights(part, c), undefined, { float16: true });
    return d; // a folder of *_encoder / *_decoder files
  },
  'TAESD module state dict': (c) => {
    const f = path.join(tmp, `module${c}.pth`);
    const sd = new Map<string, HostTensor>();
    for (const part of ['encoder', 'decoder'] as const) for (const [k, v] of weights(part, c)) sd.set(`${part}.${k}`, v);
    writeTorchCheckpoint(f, sd);
    return f;
  },
  'diffusers AutoencoderTiny folder': (c) => {
    const d = path.join(tmp, `diffusers${c}`);
    fs.mkdirSync(d, { recursive: true });
    const sd = new Map<string, HostTensor>();
    for (const part of ['encoder', 'decoder'] as const) for (const [k, v] of weights(part, c)) sd.set(toDiffusersKey(part, k), v);
    writeSafetensorsFile(path.join(d, 'diffusion_pytorch_model.safetensors'), sd);
    fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ _class_name: 'AutoencoderTiny', latent_channels: c, scaling_factor: 1.0 }));
    return d;
  },
};

perBackend('TAESD vs PyTorch', () => {
  for (const [name, make] of Object.entries(layouts)) {
    for (const c of [4, 16]) {
      it(`${name}, ${c} latent channels: decode and encode like PyTorch`, async () => {
        const m = TAESD.load(make(c), { session: { threads: 1 } });
        assert.equal(m.latentChannels, c);
        assert.ok(m.parts.encoder && m.parts.decoder, 'both parts loaded');
        const fp16 = name.includes('float16');
        const img = await m.decode(T.get(`c${c}.latents`)!);
        assert.deepEqual([...img.shape], [1, 3, 32, 48]);
        const share = within(img, T.get(`c${c}.decoded`)!, fp16 ? 2 / 255 : 1e-4);
        assert.ok(share >= 0.995, `${(share * 100).toFixed(2)} % of values within tolerance`);
        const z = await m.encode(toLib(T.get(`c${c}.image`)!));
        const e = relErr(f32(z), f32(T.get(`c${c}.encoded`)!));
        assert.ok(e < (fp16 ? 1e-2 : 1e-4), `latents: relative error ${e.toExponential(2)}`);
        await m.release();
      });
    }
  }
});

before(() => fs.mkdirSync(tmp, { recursive: true }));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('one-line errors: a UNet or KL VAE given as TAESD, a diffusers folder without config.json, wrong latent channels, a missing part', async () => {
  const unet = path.join(tmp, 'unet.safetensors');
  writeSafetensorsFile(unet, new Map([['model.diffusion_model.input_blocks.0.0.weight', HostTensor.float32([4, 4, 3, 3])]]));
  assert.throws(() => TAESD.load(unet), /not a TAESD encoder or decoder.*looks like a UNet/);
  const vae = path.join(tmp, 'vae.safetensors');
  writeSafetensorsFile(vae, new Map([['encoder.conv_in.weight', HostTensor.float32([4, 3, 3, 3])]]));
  assert.throws(() => TAESD.load(vae), /not a TAESD.*KL\/VQ autoencoder/);
  const d = path.join(tmp, 'noconfig');
  fs.mkdirSync(d);
  writeSafetensorsFile(path.join(d, 'diffusion_pytorch_model.safetensors'), new Map([['decoder.layers.0.weight', HostTensor.float32([64, 4, 3, 3])]]));
  assert.throws(() => TAESD.load(d), /needs config\.json/);
  const only = path.join(tmp, 'dec_only');
  fs.mkdirSync(only);
  writeSafetensorsFile(path.join(only, 'taesd_decoder.safetensors'), weights('decoder', 4));
  const m = TAESD.load(path.join(only, 'taesd_decoder.safetensors'));
  await assert.rejects(m.decode(HostTensor.float32([1, 16, 4, 4])), /expected float32 \[B, 4, h, w\] for this TAESD decoder, got float32\[1, 16, 4, 4\]/);
  await assert.rejects(m.encode(HostTensor.float32([1, 3, 32, 32])), /has no encoder/);
  const cut = path.join(only, 'taesd_decoder.safetensors');
  const sd = weights('decoder', 4);
  sd.delete('19.bias');
  writeSafetensorsFile(cut, sd);
  assert.throws(() => TAESD.load(cut), /missing keys \(1\): 19\.bias/);
  await m.release();
});
