// `npm start` stopped the way supervisors, containers and CI stop it: a signal to the npm
// process itself (not the terminal's process group). Each way must stop every process that
// `npm start` started — through the server's graceful shutdown — and free the port.
// Linux only (walks /proc). Needs the build (`npm test` builds before it runs the tests).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The environment of a fresh shell: no npm_* (npm test sets them), not this test runner's. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !/^NODE_TEST/.test(k) && k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a new server can listen on the port (nothing holds it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

interface Proc { pid: number; ppid: number; state: string; cmd: string }

/** Every live process (zombies excluded: they hold nothing and only wait to be reaped). */
function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (state !== 'Z') out.push({ pid: Number(d), ppid: Number(ppid), state: state!, cmd });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

function descendants(pid: number): Proc[] {
  const all = processes();
  const found: Proc[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of all.filter((x) => x.ppid === p)) {
      found.push(c);
      queue.push(c.pid);
    }
  }
  return found;
}

/** What is still alive: any of the recorded pids, or any process started for this port. */
function leftovers(pids: number[], port: number): Proc[] {
  return processes().filter((p) => pids.includes(p.pid) || p.cmd.includes(`--port ${port}`));
}

async function waitFor<T>(what: string, f: () => T | Promise<T>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Started { child: ChildProcess; port: number; output: () => string; closed: Promise<number | null> }

async function npmStart(): Promise<Started> {
  const port = await freePort();
  const child = spawn(npm, ['start', '--', '--port', String(port)], { cwd: root, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  // 'close': npm and everything that inherited its pipes have exited
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await waitFor(`'listening on' from npm start (output so far:\n${out})`, () => out.includes(`listening on http://127.0.0.1:${port}`), 90_000);
  return { child, port, output: () => out, closed };
}

describe('npm start stops on a signal to the npm process', { concurrency: true, timeout: 180_000, skip: process.platform !== 'linux' && 'walks /proc' }, () => {
  before(() => {
    for (const f of ['dist/.built', 'web/dist/index.html']) assert.ok(fs.existsSync(path.join(root, f)), `${f} is missing: run \`npm run build\` first (npm test does)`);
  });

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'] as const) {
    it(`${sig}: no process left, the port free${sig === 'SIGINT' || sig === 'SIGTERM' ? ', a graceful exit' : ''}`, async () => {
      const s = await npmStart();
      const npmPid = s.child.pid!;
      const tree = descendants(npmPid);
      const pids = [npmPid, ...tree.map((p) => p.pid)];
      try {
        assert.ok(tree.some((p) => p.cmd.includes('scripts/start.mjs')), `the server runs under npm: ${JSON.stringify(tree)}`);
        assert.equal(await portFree(s.port), false, 'the server holds its port');

        process.kill(npmPid, sig);
        const code = await Promise.race([s.closed, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
        assert.notEqual(code, 'hung', `npm start still running 30 s after ${sig}:\n${s.output()}`);
        await waitFor(`no process left after ${sig} (left: ${JSON.stringify(leftovers(pids, s.port))})`, () => leftovers(pids, s.port).length === 0, 10_000);
        assert.equal(await portFree(s.port), true, `port ${s.port} is free after ${sig}`);
        // the server's own shutdown ran (in-flight requests finished), as on Ctrl-C
        assert.match(s.output(), /(SIGINT|SIGTERM): finishing in-flight requests, then exiting/, s.output());
        if (sig === 'SIGINT' || sig === 'SIGTERM') {
          assert.match(s.output(), new RegExp(`${sig}: finishing in-flight requests`));
          assert.equal(code, 0, `npm start exits 0 after ${sig}:\n${s.output()}`);
        }
        // the one npm warning is about the checkout's .npmrc key (kept so any npm installs offline)
        assert.deepEqual(s.output().split('\n').filter((l) => /npm warn/i.test(l) && !/Unknown project config "onnxruntime-node-install"/.test(l)), []);
      } finally {
        for (const p of leftovers(pids, s.port)) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
});
