// loadStateDict: dispatch on content (not extension) between safetensors and torch zips,
// metadata passthrough, and clear errors naming the file for anything else.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostTensor } from '../../src/tensor.ts';
import { detectCheckpointFormat, loadStateDict, loadStateDictBytes } from '../../src/io/formats/checkpoint.ts';
import { writeSafetensors } from '../../src/io/formats/safetensors.ts';
import { fixture } from './helpers.ts';

test('torch zip (.ckpt / .pt) by magic, with scalar top-level entries as metadata', () => {
  const l = loadStateDict(fixture('tiny_lightning.ckpt'));
  assert.equal(l.format, 'torch');
  assert.equal(l.stateDict.size, 21);
  assert.deepEqual(l.metadata, { epoch: '3', global_step: '120', 'pytorch-lightning_version': '1.9.0' });
  const p = loadStateDict(fixture('tiny_plain.pt'));
  assert.equal(p.format, 'torch');
  assert.deepEqual(p.metadata, {});
  assert.ok(p.stateDict.has('2.num_batches_tracked'));
});

test('safetensors by header, whatever the extension', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentkit-ck-'));
  try {
    const file = path.join(dir, 'weights.ckpt');
    fs.writeFileSync(file, writeSafetensors({ w: HostTensor.float32([2], [1, 2]) }, { a: 'b' }));
    const r = loadStateDict(file);
    assert.equal(r.format, 'safetensors');
    assert.deepEqual(r.metadata, { a: 'b' });
    assert.deepEqual(r.stateDict.get('w')!.toArray(), [1, 2]);
    assert.equal(loadStateDict(fixture('expected.safetensors')).format, 'safetensors');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('format detection', () => {
  assert.equal(detectCheckpointFormat(fs.readFileSync(fixture('legacy.pt'))), 'torch');
  assert.equal(detectCheckpointFormat(new Uint8Array([1, 2, 3])), undefined);
  assert.equal(detectCheckpointFormat(writeSafetensors({})), 'safetensors');
});

test('clear errors naming the file for unknown, legacy, missing and corrupt files', () => {
  assert.throws(() => loadStateDictBytes(new TextEncoder().encode('GIF89a....'), 'pic.ckpt'),
    /pic\.ckpt: unrecognized checkpoint format \(expected safetensors or a torch\.save zip archive; 10 bytes, starting 47 49 46 38/);
  assert.throws(() => loadStateDictBytes(new Uint8Array(0), 'empty.pt'), /empty\.pt: unrecognized checkpoint format.*\(empty\)/);
  assert.throws(() => loadStateDict(fixture('legacy.pt')), /legacy\.pt: legacy torch\.save format/);
  assert.throws(() => loadStateDict(fixture('does_not_exist.pt')), /does_not_exist\.pt: cannot read checkpoint/);
  const st = writeSafetensors({ w: HostTensor.float32([2], [1, 2]) });
  assert.throws(() => loadStateDictBytes(st.subarray(0, st.length - 1), 'cut.safetensors'), /cut\.safetensors: safetensors: .*data section is 7 bytes/);
});
