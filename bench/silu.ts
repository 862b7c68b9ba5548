// SiLU forward+backward on a VQGAN-sized activation: composite x·σ(x) vs the `silu` primitive.
//   node --import tsx bench/silu.ts [--threads 2]
import { Program } from '../src/runtime/program.ts';
import * as o from '../src/ops/core.ts';
import { emit1 } from '../src/graph/trace.ts';
import { grad } from '../src/autodiff/grad.ts';
import { HostTensor } from '../src/tensor.ts';

async function main() {
  const threads = Number(process.argv[process.argv.indexOf('--threads') + 1] ?? 2) || 2;
  const shape = [8, 64, 64, 64];
  const x = HostTensor.float32(shape);
  const c = HostTensor.float32(shape);
  for (let i = 0; i < x.size; i++) {
    x.data[i] = Math.sin(i * 0.37);
    c.data[i] = Math.cos(i * 0.11);
  }
  const variants = {
    composite: (t: ReturnType<typeof o.constant>) => o.mul(t, o.sigmoid(t)),
    primitive: (t: ReturnType<typeof o.constant>) => emit1('silu', [t]),
  };
  const times: Record<string, number[]> = { composite: [], primitive: [] };
  const sess: Record<string, Awaited<ReturnType<Program['compile']>>> = {};
  for (const [k, f] of Object.entries(variants)) {
    sess[k] = await Program.trace(({ x, c }) => {
      const y = f(x!);
      const [gx] = grad(o.sum(o.mul(y, c!)), [x!]);
      return { gx: gx! };
    }, { x: { shape, dtype: 'float32' }, c: { shape, dtype: 'float32' } }).compile({ threads });
  }
  for (let r = 0; r < 12; r++) {
    for (const k of Object.keys(variants)) {
      const t = performance.now();
      await sess[k]!.run({ x, c });
      if (r >= 2) times[k]!.push(performance.now() - t);
    }
  }
  for (const [k, v] of Object.entries(times)) {
    v.sort((a, b) => a - b);
    console.log(`${k}: ${v[v.length >> 1]!.toFixed(2)} ms (median of ${v.length}, ${threads} threads, [8,64,64,64], fwd+bwd)`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
