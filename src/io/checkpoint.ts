// One entry point for weights on disk: sniffs the content (not the extension) and reads a
// safetensors file or a torch.save zip archive (.pt / .pth / Lightning .ckpt) into a flat
// state dict of HostTensors.

import * as fs from 'node:fs';
import type { HostTensor } from '../tensor.ts';
import { readSafetensors, readSafetensorsFile } from './safetensors.ts';
import { isLegacyTorchFormat, readTorchCheckpoint, type ReadTorchOptions } from './torch_ckpt.ts';
import { looksLikeZip } from './zip.ts';

export type CheckpointFormat = 'safetensors' | 'torch';

export interface LoadedStateDict {
  stateDict: Map<string, HostTensor>;
  /**
   * safetensors: its `__metadata__`. torch: the top-level scalar entries (strings, numbers,
   * booleans — e.g. Lightning's `epoch`, `global_step`), stringified.
   */
  metadata: Record<string, string>;
  format: CheckpointFormat;
}

/**
 * True when the bytes start with a plausible safetensors header (u64 length, then '{');
 * `fileLength` (default: the bytes' length) bounds the header when only the start is given.
 */
export function looksLikeSafetensors(bytes: Uint8Array, fileLength = bytes.length): boolean {
  if (bytes.length < 10 || bytes[8] !== 0x7b) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(fileLength - 8);
}

export function detectCheckpointFormat(bytes: Uint8Array): CheckpointFormat | undefined {
  if (looksLikeZip(bytes) || isLegacyTorchFormat(bytes)) return 'torch';
  if (looksLikeSafetensors(bytes)) return 'safetensors';
  return undefined;
}

/** Loads a state dict from bytes already in memory; `fileName` is used in errors. */
export function loadStateDictBytes(bytes: Uint8Array, fileName: string, opts: Omit<ReadTorchOptions, 'fileName'> = {}): LoadedStateDict {
  const format = detectCheckpointFormat(bytes);
  if (format === 'safetensors') {
    const { tensors, metadata } = readSafetensors(bytes, fileName);
    return { stateDict: tensors, metadata, format };
  }
  if (format === 'torch') {
    const { stateDict, raw } = readTorchCheckpoint(bytes, { ...opts, fileName });
    const metadata: Record<string, string> = {};
    if (raw instanceof Map) {
      for (const [k, v] of raw) {
        if (typeof k === 'string' && ['string', 'number', 'boolean', 'bigint'].includes(typeof v)) metadata[k] = String(v);
      }
    }
    return { stateDict, metadata, format };
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(
    `${fileName}: unrecognized checkpoint format (expected safetensors or a torch.save zip archive; ` +
      `${bytes.length} bytes, starting ${head || '(empty)'})`,
  );
}

/**
 * Reads `file` and dispatches on its content. safetensors files are read lazily (header now,
 * each tensor on first use; see readSafetensorsFile); torch archives are read whole.
 */
export function loadStateDict(file: string, opts: Omit<ReadTorchOptions, 'fileName'> = {}): LoadedStateDict {
  const cannot = (e: unknown): never => {
    throw new Error(`${file}: cannot read checkpoint: ${(e as Error).message}`, { cause: e });
  };
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const head = new Uint8Array(Math.min(size, 16));
      fs.readSync(fd, head, 0, head.length, 0);
      if (detectCheckpointFormat(head) !== 'torch' && looksLikeSafetensors(head, size)) {
        const { tensors, metadata } = readSafetensorsFile(file);
        return { stateDict: tensors, metadata, format: 'safetensors' };
      }
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) cannot(e);
    throw e;
  }
  let bytes: Uint8Array = new Uint8Array(0);
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    cannot(e);
  }
  return loadStateDictBytes(bytes, file, opts);
}
