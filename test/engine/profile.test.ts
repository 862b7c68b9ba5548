import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatProfile, summarizeProfile } from '../../src/runtime/profile.ts';

// A synthetic ORT profile: two runs; the first (warm-up) must not be counted.
function writeProfile(): string {
  const ev = (name: string, op: string, ts: number, dur: number) => ({ cat: 'Node', name: `${name}_kernel_time`, ts, dur, args: { op_name: op } });
  const evs = [
    { cat: 'Session', name: 'model_run', ts: 0, dur: 1000 },
    ev('decoder.up.0/conv2d#12.0', 'Conv', 10, 900), // warm-up run: ignored
    { cat: 'Session', name: 'model_run', ts: 2000, dur: 1000 },
    ev('decoder.up.0/conv2d#12.0', 'Conv', 2010, 3000),
    ev('conv2dWeightGrad#40.3', 'MatMul', 2100, 2000),
    ev('conv2dWeightGrad#40.1', 'Slice', 2200, 1000),
  ];
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lk-prof-test-')), 'p.json');
  fs.writeFileSync(f, JSON.stringify(evs));
  return f;
}

test('profile summary skips the warm-up run and groups by op, scope and primitive', () => {
  const r = summarizeProfile(writeProfile(), 1);
  assert.equal(r.total, 6); // ms: 3 + 2 + 1, the 0.9 ms warm-up kernel excluded
  assert.deepEqual(r.byGroup, { conv: 3, gemm: 2, copies: 1 });
  assert.equal(r.byScope['decoder.up.0'], 3);
  assert.equal(r.byScope['(top)'], 3);
  assert.deepEqual(r.byPrim, { 'conv2d:Conv': 3, 'conv2dWeightGrad:MatMul': 2, 'conv2dWeightGrad:Slice': 1 });
  assert.equal(r.top[0]!.node, 'decoder.up.0/conv2d#12.0');
  assert.match(formatProfile({ ...r, wall: 7 }), /by primitive: conv2d:Conv 3\.0 ms \(50%\)/);
});
