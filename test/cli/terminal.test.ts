// What a terminal shows after `train-ae` and `train-gpt`: the commands run in tmux (a real
// terminal emulator, so cursor saves/restores, wrapping and clears are applied as a user's
// terminal applies them), and the rendered screen must end with the intact summary and the
// shell prompt on a clean line below it, with the cursor visible — after a finished run and
// after Ctrl-C. Skipped where tmux is not installed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { extractCodes } from '../../src/train/extract_codes.ts';
import { writeCodeSet } from '../../src/io/codes.ts';
import { LiveBar, fitLine, formatBarLine, formatEta } from '../../src/cli/util.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-term-'));
const data = path.join(tmp, 'images');
const codes = path.join(tmp, 'codes.safetensors');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache'); // also for the tmux server: it inherits this process's environment
const PROMPT = 'READY>';
const COLS = 160;
const ROWS = 50;
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const sock = `lk-term-${process.pid}`;
const lk = `'${process.execPath}' '${path.join(root, 'bin/latentkit.js')}'`;

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let sessions = 0;

/**
 * Type `cmd` into an interactive bash in a fresh ROWS×COLS tmux window and wait for it to
 * end; with `interruptWhen`, press Ctrl-C once the screen matches it. Returns the rendered
 * screen (trailing blank rows dropped), the exit status and where the cursor is.
 */
async function inTerminal(cmd: string, o: { interruptWhen?: RegExp; timeoutMs?: number; cols?: number } = {}) {
  const name = `s${++sessions}`;
  const codeFile = path.join(tmp, `${name}.status`);
  tmux('new-session', '-d', '-s', name, '-x', String(o.cols ?? COLS), '-y', String(ROWS), '-c', tmp, `env PS1='${PROMPT} ' bash --norc --noprofile`);
  try {
    tmux('send-keys', '-t', name, '-l', `${cmd}; echo $? > ${codeFile}`);
    tmux('send-keys', '-t', name, 'Enter');
    const t0 = Date.now();
    let interrupted = false;
    while (!fs.existsSync(codeFile)) {
      if (Date.now() - t0 > (o.timeoutMs ?? 90_000)) throw new Error(`timed out; screen:\n${tmux('capture-pane', '-p', '-t', name)}`);
      if (o.interruptWhen && !interrupted && o.interruptWhen.test(tmux('capture-pane', '-p', '-t', name))) {
        tmux('send-keys', '-t', name, 'C-c');
        interrupted = true;
      }
      await sleep(100);
    }
    if (o.interruptWhen) assert.ok(interrupted, 'Ctrl-C was never sent');
    await sleep(500); // the shell draws its prompt
    // rows as shown, and (-J) with the rows a long line wrapped onto joined into one
    const capture = (...flags: string[]) => {
      const rows = tmux('capture-pane', '-p', ...flags, '-t', name).split('\n').map((l) => l.trimEnd());
      while (rows.length && rows[rows.length - 1] === '') rows.pop();
      return rows;
    };
    const rows = capture();
    const screen = capture('-J');
    const [flag, x, y] = tmux('display-message', '-p', '-t', name, '#{cursor_flag} #{cursor_x} #{cursor_y}').trim().split(' ').map(Number);
    return { rows, screen, text: screen.join('\n'), code: Number(fs.readFileSync(codeFile, 'utf8')), cursor: { visible: flag === 1, x: x!, y: y! }, cols: o.cols ?? COLS };
  } finally {
    tmux('kill-session', '-t', name);
  }
}

/** The end of the screen is `summary`, line for line, then the prompt with the cursor after it; the bar was drawn exactly once. */
function assertEndsWith(r: Awaited<ReturnType<typeof inTerminal>>, summary: RegExp[]) {
  const { screen, text } = r;
  const tail = screen.slice(-summary.length - 1);
  summary.forEach((re, i) => assert.match(tail[i] ?? '', re, `summary line ${i + 1}; screen:\n${text}`));
  assert.equal(tail[summary.length], PROMPT, `the prompt on a clean last line; screen:\n${text}`);
  assert.deepEqual(r.cursor, { visible: true, x: PROMPT.length + 1, y: r.rows.length - 1 }, `cursor visible, after the prompt; screen:\n${text}`);
  const bars = screen.filter((l) => /\[[\u2588\u2591]{10,}\]/.test(l));
  assert.equal(bars.length, 1, `one progress bar line, no leftovers; screen:\n${text}`);
  assert.ok(Array.from(bars[0]!).length < r.cols, `the bar fits on one row: ${bars[0]}`);
  if (process.env.LATENTKIT_SHOW_SCREEN) console.log(text);
}

describe('training on a terminal (tmux)', { skip: hasTmux ? false : 'tmux is not installed' }, () => {
  before(async () => {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const src = path.join(pkg, 'img/google/64');
    fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(400, 432).forEach((f, i) => {
      const d = path.join(data, i % 2 ? 'a' : 'b');
      fs.mkdirSync(d, { recursive: true });
      fs.copyFileSync(path.join(src, f), path.join(d, f));
    });
    const model = VQGAN.load(VQ, { session: { threads: 1 } });
    writeCodeSet(codes, await extractCodes({ model, modelPath: VQ, data, size: 64, flip: false, valFraction: 0.2 }));
    await model.release();
  });
  after(() => {
    if (hasTmux) spawnSync('tmux', ['-L', sock, 'kill-server']);
  });

  it('train-ae, on a terminal narrower than its lines: the screen ends with the validation lines, the summary and a prompt on a clean line', async () => {
    // 90 columns: the bar line is cut to fit, the longer messages wrap and stay whole
    const r = await inTerminal(`${lk} train-ae -c tiny -d ${data} --max-steps 6 -o ae -t 1`, { cols: 90 });
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /^step 6: val PSNR [\d.]+ dB, SSIM [\d.]+, codebook usage [\d.]+%, perplexity [\d.]+$/m, r.text);
    assertEndsWith(r, [
      /^samples: \S+step-0000006\.png$/,
      /^step 6: val PSNR /,
      /^final validation on \d+ images: PSNR [\d.]+ dB, SSIM [\d.]+, codebook usage [\d.]+%, perplexity [\d.]+$/,
      /^step 6\/6 \[\u2588{40}\] 0s left \| rec [\d.]+ q [\d.]+ λ \S+/,
      /^finished at step 6; model: \S+\/model\.safetensors$/,
      /^look at: \S+latest\.png \(inputs \| reconstructions\), \S+loss\.png, \S+metrics\.jsonl$/,
    ]);
  });

  it('train-ae, Ctrl-C while training: it saves, prints its summary, and the prompt is on a clean line', async () => {
    const r = await inTerminal(`${lk} train-ae -c tiny -d ${data} --max-steps 2000 -o ae-int -t 1`, { interruptWhen: /^step ([2-9]|\d\d+)\/2000 \[/m });
    assert.equal(r.code, 130, r.text);
    assertEndsWith(r, [
      /^step \d+\/2000 \[[\u2588\u2591]{40}\] \S+ left \| rec [\d.]+ q /,
      /^stopped at step \d+; model: \S+\/model\.safetensors$/,
      /^look at: /,
    ]);
    // the notice comes before the summary; a step that validates or samples may log its lines in between
    const notice = r.screen.findIndex((l) => /^stopping after this step \(saving a checkpoint\); press Ctrl-C again to abort$/.test(l));
    assert.ok(notice >= 0 && notice < r.screen.length - 4, `the Ctrl-C notice above the summary; screen:\n${r.text}`);
  });

  it('train-gpt: the screen ends with the validation lines, the summary and a prompt on a clean line', async () => {
    const r = await inTerminal(`${lk} train-gpt --codes ${codes} -c tiny --max-steps 10 -o gpt -t 1`);
    assert.equal(r.code, 0, r.text);
    assertEndsWith(r, [
      /^step 10: validation [\d.]+ bits\/token \([\d.]+ nats\) on \d+ code grids$/,
      /^step 10: final validation [\d.]+ bits\/token \([\d.]+ nats\) on \d+ code grids$/,
      /^samples: \S+step-0000010\.png$/,
      /^step 10\/10 \[\u2588{40}\] 0s left \| loss [\d.]+ \| [\d.]+ bits\/token \| \d+ tok\/s$/,
      /^finished at step 10; validation [\d.]+ bits\/token$/,
      /^model directory: \S+ \(latentkit sample --model gpt …\)$/,
      /^look at: \S+latest\.png, \S+loss\.png, \S+metrics\.jsonl$/,
    ]);
  });

  it('train-gpt, Ctrl-C while training: it saves, prints its summary, and the prompt is on a clean line', async () => {
    const r = await inTerminal(`${lk} train-gpt --codes ${codes} -c tiny --max-steps 5000 -o gpt-int -t 1`, { interruptWhen: /^step ([2-9]|\d\d+)\/5000 \[/m });
    assert.equal(r.code, 130, r.text);
    assertEndsWith(r, [
      /^step \d+\/5000 \[[\u2588\u2591]{40}\] \S+ left \| loss /,
      /^stopped at step \d+/,
      /^model directory: /,
      /^look at: /,
    ]);
    // the notice comes before the summary; a step that validates (every 10th) may log its lines in between
    const notice = r.screen.findIndex((l) => /^stopping after this step \(saving a checkpoint\); press Ctrl-C again to abort$/.test(l));
    assert.ok(notice >= 0 && notice < r.screen.length - 5, `the Ctrl-C notice above the summary; screen:\n${r.text}`);
  });
});

describe('LiveBar (what it writes)', () => {
  /** A stand-in terminal stream: records writes. */
  const fakeTty = (columns: number, isTTY = true) => {
    const writes: string[] = [];
    return { writes, stream: { isTTY, columns, write: (c: string) => (writes.push(c), true) } as unknown as NodeJS.WriteStream };
  };

  it('draws with a carriage return only (no saved or restored cursor, no wrapping switched off), cut to the width; stop ends the line and shows the cursor', () => {
    const t = fakeTty(40);
    const bar = new LiveBar(t.stream);
    bar.start('step {value}/{total} [{bar}] {eta_formatted} left | {what}', 10, 0, { what: 'x' });
    bar.update(10, { what: 'done' });
    bar.log('a message longer than the forty columns of this terminal, wrapping as it likes');
    bar.stop();
    bar.stop(); // a second stop writes nothing
    const out = t.writes.join('');
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(out, /\x1b[78]|\x1b\[[su]|\x1b\[\?7[lh]/, 'no cursor save/restore, autowrap untouched');
    assert.ok(out.startsWith('\x1b[?25l'), 'cursor hidden while the bar runs');
    assert.ok(out.endsWith('\n\x1b[?25h'), 'the bar line ended and the cursor shown');
    // every bar draw: \r, the line cut to 39 characters, clear to the end of the line
    // eslint-disable-next-line no-control-regex
    const draws = [...out.matchAll(/\r([^\r\n\x1b]*)\x1b\[K/g)].map((m) => m[1]!).filter(Boolean);
    assert.ok(draws.length >= 2);
    for (const d of draws) assert.ok(Array.from(d).length < 40, d);
    assert.ok(out.includes('\r\x1b[Ka message longer than the forty columns of this terminal, wrapping as it likes\n'), 'the message whole, on a cleared line');
    assert.equal(draws[draws.length - 1], fitLine('step 10/10 [' + '\u2588'.repeat(40) + '] 0s left | done', 40));
  });

  it('off a terminal: no bar, messages as lines', () => {
    const t = fakeTty(80, false);
    const bar = new LiveBar(t.stream);
    bar.start('{bar}', 10, 0, {});
    bar.update(5, {});
    bar.stop();
    assert.deepEqual(t.writes, []);
  });

  it('bar lines and times', () => {
    assert.equal(formatBarLine('{value}/{total} [{bar}] {percentage}% {eta_formatted} {x} {unknown}', 1, 4, 75, { x: 'y' }), `1/4 [${'\u2588'.repeat(10)}${'\u2591'.repeat(30)}] 25% 1m15s y {unknown}`);
    assert.deepEqual([NaN, 0, 9.6, 59.4, 61, 3599, 3661, 90000].map(formatEta), ['-', '0s', '10s', '59s', '1m01s', '59m59s', '1h01m', '25h00m']);
    assert.equal(fitLine('abcdef', 7), 'abcdef');
    assert.equal(fitLine('abcdef', 6), 'abcde');
    assert.equal(fitLine('λλλλ', 3), 'λλ');
  });
});
