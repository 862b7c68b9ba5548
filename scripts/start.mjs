// `npm start`: build what is missing (the compiled CLI, the web page), then serve the bundled
// emoji models and the demo page. Extra arguments go to `latentkit serve`.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
if (!fs.existsSync(path.join(root, 'dist', '.built')) || !fs.existsSync(path.join(root, 'web', 'dist', 'index.html'))) {
  console.error('building the CLI and the web page (first run)…');
  execFileSync(npm, ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}
const child = spawn(process.execPath, [path.join(root, 'bin', 'latentkit.js'), 'serve', ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code) => process.exit(code ?? 0));
