// latentkit as a consumer gets it: the packed tarball installed by a plain `npm install` into
// an empty folder (no .npmrc, no npm or ONNX Runtime environment variables), used from a
// plain `app.mjs` (reconstructs an emoji with the shipped models/emoji-f4) and from a
// TypeScript project that type-checks and builds against the shipped .d.ts. Where the
// optional onnxruntime-node could not install (its installer fetches CUDA files from
// api.nuget.org, unreachable on registry-only machines), the app runs on onnxruntime-web's
// WebAssembly build; where it did install, the test also removes it and checks that fallback.
// Then `latentkit serve` from the installed package, its page driven in headless Chromium
// through every view: each works, or says in the view what it needs and the command (the
// consumer has no emoji images), and no route answers 500.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-pkg-'));
const app = path.join(tmp, 'app');

/** The environment of a fresh shell: no npm_* (npm test sets them) and no ONNX Runtime install flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || /^ONNXRUNTIME_NODE_INSTALL/.test(k) || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return env;
}

function sh(cmd: string, args: string[], cwd: string, timeout = 600_000) {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

const ORT_WARNING = /\[W:onnxruntime|Removing initializer/;

describe('the npm package', { timeout: 900_000 }, () => {
  let tarball = '';
  before(() => {
    // npm test has just built dist/; pack exactly what ships
    const r = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root);
    assert.equal(r.code, 0, r.err);
    const info = JSON.parse(r.out) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(tmp, info[0]!.filename);
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }));
  });

  it('ships only the build, the CLI, the web page, the bundled models (float16 weights), README and LICENSE', () => {
    const r = sh('npm', ['pack', '--ignore-scripts', '--dry-run', '--json'], root);
    const files = (JSON.parse(r.out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    const bad = files.filter((f) => !/^(dist\/.*\.(js|d\.ts)|bin\/latentkit\.js|web\/dist\/(index\.html|assets\/[\w.-]+\.(js|css))|models\/(emoji-f4|emoji-class|emoji-sketch|emoji-sketch-maskgit|sketch-f4|emoji-kl-f4)\/(model\.safetensors|config\.yaml|README\.md|metrics\.jsonl|loss\.png|val_psnr\.png)|models\/emoji-kl-f4\/preview_decoder\.safetensors|models\/emoji-sketch\/drawings\/\w+\.png|README\.md|LICENSE|package\.json)$/.test(f));
    assert.deepEqual(bad, []);
    // the bundled models, each with what it loads (the transformers' first and condition stages)
    const models = ['emoji-f4', 'emoji-class', 'emoji-sketch', 'emoji-sketch-maskgit', 'sketch-f4', 'emoji-kl-f4'];
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/latentkit.js', 'web/dist/index.html', 'LICENSE', ...models.flatMap((m) => [`models/${m}/model.safetensors`, `models/${m}/config.yaml`])]) assert.ok(files.includes(f), f);
    // weights stored as float16: the package stays small (six models, 51 MB of weights)
    const pack = (JSON.parse(r.out) as { size: number; unpackedSize: number }[])[0]!;
    assert.ok(pack.size < 50e6 && pack.unpackedSize < 56e6, `${pack.size} bytes packed, ${pack.unpackedSize} unpacked`);
  });

  it('a plain npm install works, app.mjs reconstructs an emoji, a TypeScript consumer builds', () => {
    const tsVersion = (JSON.parse(fs.readFileSync(path.join(root, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version;
    const typesNode = (JSON.parse(fs.readFileSync(path.join(root, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
    let r = sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `typescript@${tsVersion}`, `@types/node@${typesNode}`], app);
    assert.equal(r.code, 0, r.err);
    const native = fs.existsSync(path.join(app, 'node_modules/onnxruntime-node/package.json'));

    const emoji = path.join(path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json')), 'img/google/64/1f600.png');
    fs.copyFileSync(emoji, path.join(app, 'grinning.png'));
    fs.writeFileSync(path.join(app, 'app.mjs'), [
      "import { VQGAN, loadImage, saveImage, psnr } from 'latentkit';",
      "const vq = VQGAN.load('node_modules/latentkit/models/emoji-f4/model.safetensors');",
      "const x = await loadImage('grinning.png', { size: 64 });",
      'const batch = x.reshape([1, ...x.shape]);',
      'const { image, indices } = await vq.reconstruct(batch);',
      "await saveImage('grinning-recon.png', image);",
      'console.log(JSON.stringify({ psnr: psnr(batch, image)[0], codes: indices.shape, first: Array.from(indices.data.slice(0, 8), Number) }));',
    ].join('\n'));
    const runApp = () => {
      const a = sh(process.execPath, ['app.mjs'], app);
      assert.equal(a.code, 0, a.err);
      assert.doesNotMatch(a.out + a.err, ORT_WARNING);
      return { ...(JSON.parse(a.out.trim().split('\n').pop()!) as { psnr: number; codes: number[]; first: number[] }), err: a.err };
    };
    const first = runApp();
    assert.deepEqual(first.codes, [1, 16, 16]);
    assert.ok(first.psnr > 24, `PSNR ${first.psnr}`);
    assert.ok(fs.existsSync(path.join(app, 'grinning-recon.png')));
    if (native) {
      assert.doesNotMatch(first.err, /WebAssembly/);
      fs.rmSync(path.join(app, 'node_modules/onnxruntime-node'), { recursive: true });
      const wasm = runApp();
      assert.match(wasm.err, /note: running ONNX Runtime as WebAssembly \(slower\): onnxruntime-node is not installed.*ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node/);
      assert.ok(Math.abs(wasm.psnr - first.psnr) < 0.01, `wasm ${wasm.psnr} vs native ${first.psnr}`);
    } else {
      assert.match(first.err, /note: running ONNX Runtime as WebAssembly \(slower\)/);
    }

    // TypeScript: type-checks against the shipped .d.ts (a type error is caught) and builds
    fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, outDir: 'build', types: ['node'], skipLibCheck: false } }));
    fs.writeFileSync(path.join(app, 'main.ts'), [
      "import { VQGAN, loadImage, type VQConfig } from 'latentkit';",
      "const vq: VQGAN = VQGAN.load('node_modules/latentkit/models/emoji-f4/model.safetensors');",
      'const cfg: VQConfig = vq.config;',
      "const x = await loadImage('grinning.png', { size: 64 });",
      'const { indices } = await vq.reconstruct(x.reshape([1, ...x.shape]));',
      'console.log(cfg.n_embed, indices.shape.join("x"));',
    ].join('\n'));
    r = sh(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], app);
    assert.equal(r.code, 0, r.out + r.err);
    r = sh(process.execPath, ['build/main.js'], app);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^1024 1x16x16$/m);
    fs.writeFileSync(path.join(app, 'bad.ts'), "import { VQGAN } from 'latentkit';\nconst n: string = VQGAN.load('x').config.n_embed;\nconsole.log(n);\n");
    r = sh(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.', '--noEmit'], app);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /bad\.ts.*TS2322/);

    // the CLI from the package: compiled JavaScript, no TypeScript at run time
    r = sh(process.execPath, ['node_modules/.bin/latentkit', '--help'], app);
    assert.equal(r.code, 0, r.err);
    assert.ok(!fs.existsSync(path.join(app, 'node_modules/tsx')), 'tsx is not installed for consumers');
  });

  it('its server and page: every view works or says what it needs and the command; no route answers 500 (Chromium)', { timeout: 600_000 }, async () => {
    assert.ok(fs.existsSync(path.join(app, 'node_modules/latentkit/package.json')), 'installed by the test before');
    assert.ok(!fs.existsSync(path.join(app, 'node_modules/emoji-datasource-google')), 'a consumer has no emoji images');
    const srv = spawn(process.execPath, ['node_modules/.bin/latentkit', 'serve', '--port', '0'], { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no 'listening on' in 60 s: ${log}`)), 60_000);
      srv.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(log);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
      srv.on('exit', (code) => reject(new Error(`latentkit serve exited ${code}: ${log}`)));
    });
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const answers: { url: string; status: number; error?: string }[] = [];
      const bodies: Promise<unknown>[] = []; // error bodies still being read when the views are done
      page.on('response', (r) => {
        const a: (typeof answers)[number] = { url: new URL(r.url()).pathname, status: r.status() };
        answers.push(a);
        if (r.status() >= 400) bodies.push(r.json().then((j: { error?: string }) => (a.error = j.error), () => (a.error = '(not JSON)')));
      });
      await page.goto(url);
      await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
      const view = (v: string) => page.click(`nav button[data-view="${v}"]`);
      // Draw: the shipped sketch model answers a drawing with 4 emoji
      const box = (await page.locator('#pad').boundingBox())!;
      await page.mouse.move(box.x + 0.2 * box.width, box.y + 0.5 * box.height);
      await page.mouse.down();
      for (let i = 1; i <= 24; i++) await page.mouse.move(box.x + (0.5 + 0.3 * Math.cos(Math.PI + (i / 24) * 2 * Math.PI)) * box.width, box.y + (0.5 + 0.3 * Math.sin(Math.PI + (i / 24) * 2 * Math.PI)) * box.height);
      await page.mouse.up();
      await page.waitForFunction(() => document.querySelectorAll('#draw-out img').length === 4 || !document.getElementById('msg-draw')!.hidden, null, { timeout: 300_000 });
      assert.equal(await page.isHidden('#msg-draw'), true, await page.textContent('#msg-draw') ?? '');
      // Sample: the shipped class model, its categories listed
      await view('sample');
      assert.ok((await page.$$('#class option')).length === 10);
      await page.fill('#seed', '1');
      await page.click('#go');
      await page.waitForFunction(() => (document.getElementById('sample-out') as HTMLImageElement).naturalWidth > 0 || !document.getElementById('msg-sample')!.hidden, null, { timeout: 300_000 });
      assert.equal(await page.isHidden('#msg-sample'), true, await page.textContent('#msg-sample') ?? '');
      // Reconstruct
      await view('reconstruct');
      await page.setInputFiles('#file', path.join(app, 'grinning.png'));
      await page.waitForFunction(() => document.querySelectorAll('#codes span').length === 256, null, { timeout: 60_000 });
      // Latent: the KL model's channels and reconstruction of the same emoji
      await view('latent');
      await page.setInputFiles('#lat-file-a', path.join(app, 'grinning.png'));
      await page.waitForSelector('#lat-rec-a[data-psnr]', { timeout: 60_000 });
      assert.equal(await page.$$eval('#lat-ch-a canvas', (c) => c.length), 4);
      // Codebook: the entries; the usage map says it needs the emoji images and the command
      await view('codebook');
      await page.waitForFunction(() => (document.getElementById('cb-atlas') as HTMLImageElement).naturalWidth > 0 && !document.getElementById('msg-codebook')!.hidden, null, { timeout: 180_000 });
      assert.match((await page.textContent('#msg-codebook'))!, /needs the emoji images, which are not installed here: run npm install emoji-datasource-google@16/);
      // Runs: the shipped models' training curves
      await view('runs');
      await page.waitForFunction(() => document.querySelector('#run-plot svg path'), null, { timeout: 30_000 });
      assert.deepEqual(await page.$$eval('#run option', (o) => o.map((e) => (e as HTMLOptionElement).value)), ['emoji-f4', 'emoji-class', 'emoji-sketch', 'emoji-sketch-maskgit', 'emoji-kl-f4']);
      // Train: says what training on emoji needs before and after trying
      await view('train');
      assert.match((await page.textContent('#msg-train'))!, /npm install emoji-datasource-google@16/);
      await page.fill('#tr-steps', '10');
      await page.click('#tr-start');
      await page.waitForFunction(() => /^error: /.test(document.getElementById('tr-status')!.textContent!), null, { timeout: 120_000 });
      assert.match((await page.textContent('#tr-status'))!, /npm install emoji-datasource-google@16/);
      assert.deepEqual(errors, []);
      await Promise.all(bodies);
      assert.deepEqual(answers.filter((a) => a.status === 500 || a.status === 404), []);
      assert.ok(answers.filter((a) => a.status >= 400).every((a) => a.status === 503 && /npm install emoji-datasource-google@16/.test(a.error ?? '')), JSON.stringify(answers.filter((a) => a.status >= 400)));
    } finally {
      await browser.close();
      if (srv.exitCode === null) {
        const exited = new Promise((r) => srv.once('exit', r));
        srv.kill('SIGTERM');
        await exited;
      }
    }
  });
});
