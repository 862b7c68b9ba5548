// A client that gives up holds no place: the page's Draw view aborts its request with every
// new stroke, and the server must not keep computing (or queueing) what nobody will read.
// Eight sketch → emoji requests, each aborted as the next is sent, then one kept: with a queue
// depth of 2 the old server answered the later ones 503 (eight jobs piled up); now every
// aborted one leaves the queue or stops at its next pass, and the kept one gets its emoji.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/serve/server.ts';
import { loadServedModel, releaseServed, type ServedModel } from '../../src/serve/models.ts';
import { JobQueue, CancelledError } from '../../src/serve/queue.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
let app: FastifyInstance;
let url: string;
let model: ServedModel;

before(async () => {
  model = loadServedModel(path.join(root, 'models', 'emoji-sketch-maskgit'), { threads: 1 });
  ({ app } = await createServer({ models: [model], queueDepth: 2 }));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await app.close();
  await releaseServed(model);
});

test('aborted requests leave the queue or stop at the next pass; the last one is answered', { timeout: 180_000 }, async () => {
  const drawing = fs.readFileSync(path.join(root, 'models/emoji-sketch/drawings/face.png'));
  const send = (signal?: AbortSignal) => fetch(`${url}/api/models/emoji-sketch-maskgit/sample?n=2&format=json`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: drawing, ...(signal ? { signal } : {}) });
  const statuses: Promise<number | 'aborted'>[] = [];
  let previous: AbortController | null = null;
  for (let i = 0; i < 8; i++) {
    previous?.abort();
    const c = new AbortController();
    statuses.push(send(c.signal).then((r) => r.status, (e: Error) => (e.name === 'AbortError' ? 'aborted' : Promise.reject(e))));
    previous = c;
    await new Promise((r) => setTimeout(r, 150));
  }
  previous!.abort();
  const last = await send();
  assert.equal(last.status, 200, await last.clone().text());
  assert.equal(((await last.json()) as { images: string[] }).images.length, 2);
  assert.deepEqual(await Promise.all(statuses), new Array(8).fill('aborted'), 'no earlier request got an answer (nor a 503)');
  const q = ((await (await fetch(`${url}/api/health`)).json()) as { queue: { cancelled: number; refused: number; waiting: number; running: number } }).queue;
  assert.equal(q.refused, 0, 'nothing was shed');
  assert.ok(q.cancelled >= 7, `${q.cancelled} jobs cancelled of 8 aborted`);
  assert.deepEqual([q.waiting, q.running], [0, 0]);
});

test('JobQueue: a waiting job whose signal aborts leaves at once; the running one sees its signal', async () => {
  const q = new JobQueue({ concurrency: 1, depth: 4 });
  let release!: () => void;
  let seen: AbortSignal | undefined;
  const c1 = new AbortController();
  const first = q.run((s) => ((seen = s), new Promise<string>((r) => (release = () => r('first')))), { signal: c1.signal });
  const c2 = new AbortController();
  const second = q.run(async () => 'second', { signal: c2.signal });
  const third = q.run(async () => 'third');
  assert.equal(q.stats().waiting, 2);
  c2.abort();
  await assert.rejects(second, CancelledError);
  assert.equal(q.stats().waiting, 1, 'the aborted job left the queue');
  assert.equal(seen, c1.signal, 'the running job gets its own signal');
  release();
  assert.equal(await first, 'first');
  assert.equal(await third, 'third');
  await assert.rejects(q.run(async () => 'never', { signal: AbortSignal.abort() }), CancelledError);
  assert.deepEqual([q.stats().cancelled, q.stats().refused, q.stats().running], [2, 0, 0]);
});
