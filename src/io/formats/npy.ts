// Minimal .npy reader (NumPy format 1.0–3.0, little-endian, C order) for taming's `remap`
// files (arrays of used code indices).
import fs from 'node:fs';
import { HostTensor } from '../../tensor.ts';

export function readNpy(bytes: Uint8Array, fileName = '<npy>'): HostTensor {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error(`${fileName}: not a .npy file (bad magic)`);
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > bytes.length) throw new Error(`${fileName}: truncated .npy header`);
  const header = new TextDecoder().decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeStr === undefined) throw new Error(`${fileName}: unreadable .npy header`);
  if (fortran === 'True') throw new Error(`${fileName}: Fortran-ordered arrays are not supported`);
  const shape = shapeStr.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const body = bytes.slice(hstart + hlen);
  const need = (k: number) => {
    if (body.length < n * k) throw new Error(`${fileName}: data is ${body.length} bytes, expected ${n * k}`);
  };
  switch (descr) {
    case '<i8':
      need(8);
      return new HostTensor('int64', shape, new BigInt64Array(body.buffer, 0, n));
    case '<i4':
      need(4);
      return HostTensor.int64(shape, Array.from(new Int32Array(body.buffer, 0, n)));
    case '<f4':
      need(4);
      return HostTensor.float32(shape, new Float32Array(body.buffer, 0, n));
    case '<f8':
      need(8);
      return HostTensor.float32(shape, Float32Array.from(new Float64Array(body.buffer, 0, n)));
    default:
      throw new Error(`${fileName}: unsupported .npy dtype '${descr}'`);
  }
}

export function readNpyFile(file: string): HostTensor {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  return readNpy(bytes, file);
}
