// Atomic file writes: write a temp file next to the target, fsync it, rename it over the
// target, then fsync the directory (where the OS allows), so readers see either the old
// file or the complete new one — never a torn checkpoint, cache or image.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export type FileData = Uint8Array | string;

function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** fsync a directory so the rename itself is durable; not supported everywhere (Windows). */
async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // Directory fsync is best effort (EISDIR/EPERM/EINVAL on some platforms).
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort, see fsyncDir
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // ignore
      }
    }
  }
}

/** Write `data` to `target` atomically, creating parent directories as needed. */
export async function writeFileAtomic(target: string, data: FileData): Promise<void> {
  const dir = path.dirname(path.resolve(target));
  const tmp = tempPathFor(path.resolve(target));
  let fh: fsp.FileHandle | undefined;
  try {
    await fsp.mkdir(dir, { recursive: true });
    fh = await fsp.open(tmp, 'wx', 0o644);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw new Error(`writeFileAtomic: cannot write ${target}: ${(err as Error).message}`, { cause: err });
  }
  await fsyncDir(dir);
}

/** Synchronous twin of writeFileAtomic (for exit handlers and small files). */
export function writeFileAtomicSync(target: string, data: FileData): void {
  const dir = path.dirname(path.resolve(target));
  const tmp = tempPathFor(path.resolve(target));
  let fd: number | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fd = fs.openSync(tmp, 'wx', 0o644);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // ignore
      }
    }
    fs.rmSync(tmp, { force: true });
    throw new Error(`writeFileAtomic: cannot write ${target}: ${(err as Error).message}`, { cause: err });
  }
  fsyncDirSync(dir);
}

/** JSON with a trailing newline, written atomically. */
export async function writeJsonAtomic(target: string, value: unknown, indent = 2): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value, null, indent) + '\n');
}

export function writeJsonAtomicSync(target: string, value: unknown, indent = 2): void {
  writeFileAtomicSync(target, JSON.stringify(value, null, indent) + '\n');
}
