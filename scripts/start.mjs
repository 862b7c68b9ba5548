// `npm start`: build what is missing (the compiled CLI, the web page), then serve the bundled
// emoji models and the demo page. Extra arguments go to `latentkit serve`.
//
// Stopping: a supervisor stops `npm start` by signalling the npm process, not the terminal's
// process group. npm forwards SIGINT and SIGTERM only to the process it spawned, so the
// script is `exec node scripts/start.mjs` (the shell npm runs it in gives way to node; a shell
// left in between swallows SIGINT and dies of SIGTERM without passing it on), and the server
// runs in this process, not a child of it: whatever reaches npm reaches the server, whose
// handlers finish in-flight requests and exit, as on Ctrl-C. If npm itself dies without
// forwarding (SIGKILL, SIGHUP) this process is re-parented; it notices and shuts down the
// same way instead of holding the port.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
if (!fs.existsSync(path.join(root, 'dist', '.built')) || !fs.existsSync(path.join(root, 'web', 'dist', 'index.html'))) {
  console.error('building the CLI and the web page (first run)…');
  execFileSync(npm, ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}

const parent = process.ppid;
const orphaned = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(orphaned);
  console.error(`npm start: the parent process (pid ${parent}) is gone; stopping`);
  process.kill(process.pid, 'SIGTERM');
}, 500);
orphaned.unref();

const bin = path.join(root, 'bin', 'latentkit.js');
process.argv = [process.argv[0], bin, 'serve', ...process.argv.slice(2)];
await import(pathToFileURL(bin).href);
