#!/usr/bin/env node
// latentkit CLI entry. Runs the compiled CLI in dist/ (built by `npm run build`, which
// `npm start` and `npm test` run; the npm package ships it) — no TypeScript compiler at run
// time. In a checkout where a file under src/ is newer than the build, it runs the sources
// through tsx instead, so an edit never runs stale code.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'dist', 'cli', 'main.js');

function newestUnder(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestUnder(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function useBuild() {
  if (!fs.existsSync(built)) return false;
  const src = path.join(root, 'src');
  if (!fs.existsSync(src)) return true;
  return newestUnder(src) <= fs.statSync(path.join(root, 'dist', '.built')).mtimeMs;
}

let fresh = false;
try {
  fresh = useBuild();
} catch {
  fresh = false;
}
if (fresh) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
