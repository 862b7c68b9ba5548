// VQGAN against taming's PyTorch code (fixtures: scripts/make_vqgan_fixtures.py with a
// faithful reimplementation in scripts/taming_ref.py and hash weights).
// Tolerance: reconstructions within 1e-4 relative error (‖a−b‖/‖b‖); indices equal.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { Program } from '../../src/runtime/program.ts';
import { ParamView } from '../../src/nn/params.ts';
import { hashStateDict, hashTensor } from '../../src/nn/hashinit.ts';
import { loadVQConfig, parseVQConfig, inferVQConfig } from '../../src/models/vqgan/config.ts';
import { decodeCode, vqForward, vqShapes } from '../../src/models/vqgan/vqmodel.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { loadStateDict } from '../../src/io/formats/checkpoint.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';
import { perBackend } from '../backends.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const FX = path.join(here, '../fixtures/vqgan');
const f32 = (t: HostTensor) => t.data as Float32Array;

function checkClose(got: HostTensor, want: HostTensor, what: string, tol = 1e-4) {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const e = relErr(f32(got), f32(want));
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
}

async function runModel(cfgObj: unknown, x: HostTensor, code?: HostTensor) {
  const cfg = parseVQConfig(cfgObj);
  const sd = hashStateDict(vqShapes(cfg));
  const specs = Object.fromEntries([...sd].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  const prog = Program.trace((ins) => {
    const p = new ParamView(ins);
    const r = vqForward(p, cfg, ins.x!);
    const out: Record<string, ReturnType<typeof decodeCode>> = { h: r.h, zq: r.zq, indices: r.indices, qloss: r.loss, xrec: r.xrec };
    if (ins.code) out.decode_code = decodeCode(p, cfg, ins.code);
    return out;
  }, { ...specs, x: { shape: x.shape, dtype: 'float32' }, ...(code ? { code: { shape: code.shape, dtype: 'int64' as const } } : {}) });
  return (await prog.compile()).run({ ...Object.fromEntries(sd), x, ...(code ? { code } : {}) });
}

perBackend('VQGAN vs taming (PyTorch)', () => {
  it('hash weights reproduce the Python known answers bit for bit', () => {
    const kat = JSON.parse(fs.readFileSync(path.join(FX, 'hashinit_kat.json'), 'utf8')) as { cases: { key: string; shape: number[]; values: number[] }[] };
    for (const c of kat.cases) assert.deepEqual(Array.from(hashTensor(c.key, c.shape).data), c.values, c.key);
  });

  it('parameter names and shapes equal taming state_dict keys', () => {
    const keys = JSON.parse(fs.readFileSync(path.join(FX, 'state_dict_keys.json'), 'utf8')) as Record<string, [string, number[]][]>;
    const cfgs: Record<string, string> = { small: 'small.yaml', small2: 'small2.yaml', tiny: 'tiny.yaml', imagenet: 'model.yaml' };
    for (const [name, file] of Object.entries(cfgs)) {
      const ours = vqShapes(loadVQConfig(path.join(FX, file)));
      const theirs = Object.fromEntries(keys[name]!.filter(([k]) => !k.startsWith('loss.')));
      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort(), name);
      for (const [k, s] of Object.entries(theirs)) assert.deepEqual([...ours[k]!], s, `${name}: ${k}`);
    }
  });

  const io = readSafetensorsFile(path.join(FX, 'small_io.safetensors')).tensors;
  for (const [name, yaml] of [['small', 'small.yaml'], ['small.nonsq', 'small.yaml'], ['small2', 'small2.yaml']] as const) {
    it(`${name}: latents, indices, codebook loss, reconstruction, decode_code`, async () => {
      const cfg = loadVQConfig(path.join(FX, yaml));
      const r = await runModel(cfg, io.get(`${name}.x`)!, io.get(`${name}.code`)!);
      checkClose(r.h!, io.get(`${name}.h`)!, 'h');
      checkClose(r.zq!, io.get(`${name}.zq`)!, 'zq');
      assert.deepEqual(r.indices!.toArray(), io.get(`${name}.indices`)!.toArray(), 'indices');
      checkClose(r.qloss!, io.get(`${name}.qloss`)!, 'qloss');
      checkClose(r.xrec!, io.get(`${name}.xrec`)!, 'xrec');
      checkClose(r.decode_code!, io.get(`${name}.decode_code`)!, 'decode_code');
    });
  }

  it("taming's ImageNet f16/16384 architecture (76 M parameters) on a 64×64 input", async () => {
    const big = readSafetensorsFile(path.join(FX, 'imagenet_io.safetensors'));
    const cfg = loadVQConfig(path.join(FX, 'model.yaml'));
    assert.deepEqual(cfg.ddconfig, JSON.parse(big.metadata.config!).ddconfig);
    const r = await runModel(cfg, big.tensors.get('x')!);
    checkClose(r.h!, big.tensors.get('h')!, 'h');
    assert.deepEqual(r.indices!.toArray(), big.tensors.get('indices')!.toArray(), 'indices');
    checkClose(r.xrec!, big.tensors.get('xrec')!, 'xrec');
  });
});

perBackend('VQGAN from real checkpoint files', () => {
  const io = readSafetensorsFile(path.join(FX, 'tiny_io.safetensors')).tensors;

  it('Lightning .ckpt (optimizer state, discriminator keys) + taming YAML', async () => {
    const m = VQGAN.load(path.join(FX, 'tiny.ckpt'), { config: path.join(FX, 'tiny.yaml') });
    const r = await m.reconstruct(io.get('tiny.x')!);
    checkClose(r.image, io.get('tiny.xrec')!, 'xrec');
    assert.deepEqual(r.indices.toArray(), io.get('tiny.indices')!.toArray());
    const e = await m.encode(io.get('tiny.x')!);
    checkClose(e.latents, io.get('tiny.zq')!, 'zq');
    await m.release();
  });

  it('float16 state dict, config inferred from the keys', async () => {
    const m = VQGAN.load(path.join(FX, 'tiny_fp16.ckpt'));
    assert.ok(m.notes.some((n) => n.includes('inferred')), m.notes.join('; '));
    const r = await m.reconstruct(io.get('tiny.x')!);
    checkClose(r.image, io.get('tiny_fp16.xrec')!, 'xrec');
    assert.deepEqual(r.indices.toArray(), io.get('tiny_fp16.indices')!.toArray());
    await m.release();
  });

  it('inferred config matches the YAML where it matters', () => {
    const { stateDict } = loadStateDict(path.join(FX, 'tiny.ckpt'));
    const inf = inferVQConfig(stateDict).config;
    const yaml = loadVQConfig(path.join(FX, 'tiny.yaml'));
    for (const k of ['ch', 'ch_mult', 'num_res_blocks', 'z_channels'] as const) assert.deepEqual(inf.ddconfig[k], yaml.ddconfig[k], k);
    assert.equal(inf.n_embed, yaml.n_embed);
    assert.equal(inf.embed_dim, yaml.embed_dim);
  });

  it('clear errors: missing file, not a VQGAN, config that does not match, bad image size, bad codes', async () => {
    assert.throws(() => VQGAN.load(path.join(FX, 'nope.ckpt')), /model not found: .*nope\.ckpt/);
    assert.throws(() => VQGAN.load(path.join(here, '../fixtures/ckpt/tiny_plain.pt')), /not a taming VQGAN checkpoint/);
    assert.throws(
      () => VQGAN.load(path.join(FX, 'tiny.ckpt'), { config: path.join(FX, 'small.yaml') }),
      /state dict does not match the model: missing keys \(62\): encoder\.down\.0\.downsample\.conv\.weight.*; unexpected keys \(30\).*; wrong shapes \(66\): 'encoder\.mid\.block_1\.norm1\.weight': expected \[64\], got \[32\]/,
    );
    const m = VQGAN.load(path.join(FX, 'tiny.ckpt'), { config: path.join(FX, 'tiny.yaml') });
    await assert.rejects(m.decode(HostTensor.int64([1, 2, 2], [0, 1, 2, 99])), /code index 99 out of range \[0, 16\)/);
    await assert.rejects(m.reconstruct(HostTensor.float32([1, 1, 8, 8])), /expected images as float32 \[B, 3, H, W\]/);
    const small = loadVQConfig(path.join(FX, 'small.yaml'));
    const s = new VQGAN(small, hashStateDict(vqShapes(small)));
    assert.equal(s.factor, 2);
    await assert.rejects(s.reconstruct(HostTensor.float32([1, 3, 15, 16])), /image size 16×15 is not a multiple of the model's downsampling factor 2/);
  });
});
