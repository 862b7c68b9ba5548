// Composite ops and SGD against PyTorch values (fixture: scripts/make_ops_fixture.py).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import * as nn from '../../src/ops/nn.ts';
import { Trainer } from '../../src/train/step.ts';
import type { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = readSafetensorsFile(path.join(here, '../fixtures/engine/ops.safetensors')).tensors;
const T = (k: string) => fx.get(k)!;
const f32 = (t: HostTensor) => t.data as Float32Array;

describe('composites vs PyTorch', () => {
  it('batchNorm (train + running stats, eval), layerNorm, gelu, logSoftmax within 1e-5', async () => {
    const names = ['x', 'w', 'b', 'rm', 'rv', 'lw', 'lb'];
    const prog = Program.trace((i) => {
      const bn = nn.batchNorm(i.x!, { weight: i.w!, bias: i.b!, runningMean: i.rm!, runningVar: i.rv! }, { training: true, momentum: 0.1 });
      return {
        bn_train: bn.y,
        bn_rm: bn.runningMean!,
        bn_rv: bn.runningVar!,
        bn_eval: nn.batchNorm(i.x!, { weight: i.w!, bias: i.b!, runningMean: i.rm!, runningVar: i.rv! }, { training: false }).y,
        ln: nn.layerNorm(i.x!, i.lw!, i.lb!),
        gelu: nn.gelu(i.x!),
        log_softmax: nn.logSoftmax(i.x!, 1),
      };
    }, Object.fromEntries(names.map((n) => [n, { shape: T(n).shape, dtype: 'float32' as const }])));
    const out = await (await prog.compile()).run(Object.fromEntries(names.map((n) => [n, T(n)])));
    for (const k of Object.keys(out)) assert.ok(relErr(f32(out[k]!), f32(T(k))) < 1e-5, `${k}: rel err ${relErr(f32(out[k]!), f32(T(k)))}`);
  });

  for (const [tag, optimizer] of [
    ['plain', { kind: 'sgd' as const }],
    ['momentum', { kind: 'sgd' as const, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }],
    ['nesterov', { kind: 'sgd' as const, momentum: 0.9, nesterov: true }],
  ] as const) {
    it(`5 SGD steps (${tag}) match torch.optim.SGD`, async () => {
      const tr = new Trainer({ g: { shapes: { p: [6] }, optimizer } }, { params: new Map([['p', T('sgd_p0')]]) });
      tr.define('step', {
        batch: { a: { shape: [6], dtype: 'float32' }, c: { shape: [6], dtype: 'float32' } },
        loss: (p, b) => ({ losses: { g: o.sum(o.add(o.mul(b.a!, o.square(p.p!)), o.mul(b.c!, p.p!))) } }),
      });
      for (let i = 0; i < 5; i++) await tr.run('step', { a: T('sgd_a'), c: T('sgd_c') }, { g: 0.1 });
      const e = relErr(f32(tr.params('g').get('p')!), f32(T(`sgd_${tag}`)));
      assert.ok(e < 1e-5, `rel err ${e}`);
    });
  }
});
