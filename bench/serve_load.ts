// Load test of `latentkit serve` over loopback: N concurrent clients POST a 64×64 PNG to
// /reconstruct for D seconds (autocannon). Reports status codes (only 200 and the server's
// deliberate 503 backpressure are acceptable), latency p50/p99 of answered requests,
// throughput, and the server's peak RSS (VmHWM) — then checks the server still answers.
//
//   node --import tsx bench/serve_load.ts [--connections 32] [--duration 30] [--model models/emoji-f4] [--queue-depth 16]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { encodePng } from '../src/io/image.ts';
import { HostTensor } from '../src/tensor.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
  const connections = Number(get('--connections', '32'));
  const duration = Number(get('--duration', '30'));
  const model = get('--model', path.join(root, 'models', 'emoji-f4'));
  const depth = get('--queue-depth', '16');
  const server = spawn(process.execPath, [path.join(root, 'bin', 'latentkit.js'), 'serve', '-m', model, '--port', '0', '--queue-depth', depth], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    server.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (c) => reject(new Error(`server exited ${c}: ${log}`)));
  });
  const name = path.basename(model).replace(/\.[^.]+$/, '');
  const x = HostTensor.float32([3, 64, 64]);
  for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.05) * 0.9;
  const body = Buffer.from(await encodePng(x));
  const target = `${url}/api/models/${name}/reconstruct`;
  // warm the session once (its creation is start-up, not load)
  await fetch(target, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
  let peakKb = 0;
  const rss = setInterval(() => {
    const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.pid}/status`, 'utf8'));
    if (m) peakKb = Math.max(peakKb, Number(m[1]));
  }, 500);
  const latencies: Record<number, number[]> = {};
  const res = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon({ url: target, method: 'POST', headers: { 'content-type': 'image/png' }, body, connections, duration, timeout: 60 }, (err, r) => (err ? reject(err) : resolve(r)));
    inst.on('response', (_c, status, _bytes, ms) => (latencies[status] ??= []).push(ms));
  });
  clearInterval(rss);
  const after = await fetch(`${url}/api/health`);
  const health = (await after.json()) as { queue: unknown };
  server.kill('SIGTERM');
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
  };
  const ok = latencies[200] ?? [];
  const shed = latencies[503] ?? [];
  const other = Object.entries(latencies).filter(([s]) => s !== '200' && s !== '503');
  const summary = {
    connections,
    duration_s: duration,
    requests: res.requests.total,
    ok_200: ok.length,
    shed_503: shed.length,
    other_status: Object.fromEntries(other.map(([s, v]) => [s, v.length])),
    errors: res.errors,
    timeouts: res.timeouts,
    throughput_ok_per_s: ok.length / duration,
    latency_ok_ms: { p50: pct(ok, 0.5), p99: pct(ok, 0.99), max: pct(ok, 1) },
    latency_503_ms: { p50: pct(shed, 0.5), p99: pct(shed, 0.99) },
    server_peak_rss_mb: peakKb / 1024,
    health_after: after.status,
    queue_after: health.queue,
  };
  console.log(JSON.stringify(summary, null, 2));
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `serve-load-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(summary, null, 2) + '\n');
  if (other.length || res.errors || res.timeouts || after.status !== 200) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
