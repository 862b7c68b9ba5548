// A model's recommended sampling settings (config.yaml latentkit.sampling): a flag given wins,
// then the model's value, then the built-in default; `fromModel` names what the model supplied;
// a bad value in the config is one line naming the key.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { parseNet2NetConfig, toTamingNet2Net } from '../../src/models/cond_transformer/config.ts';
import { samplingSettings } from '../../src/models/cond_transformer/sampling.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

it("the model's recommended settings fill what the request leaves out; flags win; 0 turns top-k off", async () => {
  const m = Net2Net.load(path.join(root, 'models/emoji-sketch'), { session: { threads: 1 } });
  assert.deepEqual(m.config.sampling, { top_k: 100 });
  let r = samplingSettings(m, {});
  assert.equal(r.sampling.topK, 100);
  assert.deepEqual(r.fromModel, ['top-k 100']);
  assert.equal(r.sampling.steps, undefined, 'an autoregressive model has no passes');
  r = samplingSettings(m, { topK: 20, temperature: 0.8 });
  assert.equal(r.sampling.topK, 20);
  assert.deepEqual(r.fromModel, []);
  r = samplingSettings(m, { topK: 0 });
  assert.equal(r.sampling.topK, undefined);
  // the config round-trips through taming's layout
  const again = parseNet2NetConfig(toTamingNet2Net(m.config), 'round trip');
  assert.deepEqual(again.sampling, { top_k: 100 });
  await m.release();
  const bad = toTamingNet2Net({ ...m.config, sampling: undefined }) as Record<string, any>;
  bad.latentkit = { ...(bad.latentkit ?? {}), sampling: { topk: 5 } };
  assert.throws(() => parseNet2NetConfig(bad, 'x.yaml'), /x\.yaml: latentkit\.sampling\.topk is not a sampling setting \(temperature, top_k, top_p, guidance, steps, choice_temperature\)/);
  bad.latentkit.sampling = { top_k: 'many' };
  assert.throws(() => parseNet2NetConfig(bad, 'x.yaml'), /latentkit\.sampling\.top_k must be a number or null, got "many"/);
});
