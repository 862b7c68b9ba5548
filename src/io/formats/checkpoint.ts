// One entry point for weights on disk: sniffs the content (not the extension) and reads a
// safetensors file or a torch.save zip archive (.pt / .pth / Lightning .ckpt) into a flat
// state dict of HostTensors.

import * as fs from 'node:fs';
import type { HostTensor } from '../../tensor.ts';
import { readSafetensors, readSafetensorsFile } from './safetensors.ts';
import { isLegacyTorchFormat, readTorchCheckpoint, type ReadTorchOptions, type TorchCheckpoint } from './torch_ckpt.ts';
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
  if (format === 'torch') return fromTorch(readTorchCheckpoint(bytes, { ...opts, fileName }));
  return unrecognized(fileName, bytes, bytes.length);
}

function unrecognized(fileName: string, bytes: Uint8Array, length: number): never {
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(
    `${fileName}: unrecognized checkpoint format (expected safetensors or a torch.save zip archive; ` +
      `${length} bytes, starting ${head || '(empty)'})`,
  );
}

function fromTorch({ stateDict, raw }: TorchCheckpoint): LoadedStateDict {
  const metadata: Record<string, string> = {};
  if (raw instanceof Map) {
    for (const [k, v] of raw) {
      if (typeof k === 'string' && ['string', 'number', 'boolean', 'bigint'].includes(typeof v)) metadata[k] = String(v);
    }
  }
  return { stateDict, metadata, format: 'torch' };
}

/**
 * Reads `file` and dispatches on its content. Both formats are read lazily: safetensors'
 * header, or a torch archive's central directory and data.pkl, now; each tensor's bytes on
 * first use (see readSafetensorsFile, readTorchCheckpoint). Tensors whose bytes sit verbatim
 * in the file carry it as their origin (ONNX Runtime reads them as external data).
 */
export function loadStateDict(file: string, opts: Omit<ReadTorchOptions, 'fileName'> = {}): LoadedStateDict {
  let head: Uint8Array;
  let size: number;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      size = fs.fstatSync(fd).size;
      head = new Uint8Array(Math.min(size, 16));
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw new Error(`${file}: cannot read checkpoint: ${(e as Error).message}`, { cause: e });
  }
  if (detectCheckpointFormat(head) === 'torch') return fromTorch(readTorchCheckpoint(file, opts));
  if (looksLikeSafetensors(head, size)) {
    const { tensors, metadata } = readSafetensorsFile(file);
    return { stateDict: tensors, metadata, format: 'safetensors' };
  }
  return unrecognized(file, head, size);
}
