// torch.save writer (zip format, as torch ≥ 1.6 writes it), for checkpoints PyTorch code loads
// with torch.load: `archive/data.pkl` (pickle protocol 2: a dict of str → OrderedDict of
// tensors, strings or numbers), one STORED entry per tensor storage `archive/data/<i>`
// (64-byte aligned, as PyTorchStreamWriter pads), `archive/version`. Tensors are rebuilt by
// torch._utils._rebuild_tensor_v2 from ('storage', torch.<Type>Storage, key, 'cpu', numel).
// Only what state dicts need: contiguous float32 / int64 / int32 / uint8 / bool tensors.
import { crc32 } from './zip.ts';
import { writeFileAtomicSync } from '../atomic.ts';
import { HostTensor } from '../../tensor.ts';

/** What a checkpoint may hold: tensors, nested string-keyed maps (OrderedDicts), scalars, strings. */
export type TorchValue = HostTensor | string | number | boolean | Map<string, TorchValue>;

const STORAGE: Record<string, string> = { float32: 'FloatStorage', int64: 'LongStorage', int32: 'IntStorage', uint8: 'ByteStorage', bool: 'BoolStorage' };

class PickleWriter {
  private parts: number[] = [];
  readonly storages: HostTensor[] = [];
  private memo = new Map<string, number>();

  byte(b: number) {
    this.parts.push(b & 0xff);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.byte(v >>> (8 * i));
  }
  bytes(b: Uint8Array) {
    for (const x of b) this.parts.push(x);
  }
  unicode(s: string) {
    const b = new TextEncoder().encode(s);
    this.byte(0x58); // BINUNICODE
    this.u32(b.length);
    this.bytes(b);
  }
  global(module: string, name: string) {
    const key = `${module}\n${name}`;
    const m = this.memo.get(key);
    if (m !== undefined) {
      this.byte(0x6a); // LONG_BINGET
      this.u32(m);
      return;
    }
    this.byte(0x63); // GLOBAL
    this.bytes(new TextEncoder().encode(`${module}\n${name}\n`));
    const idx = this.memo.size;
    this.memo.set(key, idx);
    this.byte(0x72); // LONG_BINPUT
    this.u32(idx);
  }
  int(v: number) {
    if (Number.isInteger(v) && v >= 0 && v < 256) {
      this.byte(0x4b); // BININT1
      this.byte(v);
    } else if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) {
      this.byte(0x4a); // BININT
      this.u32(v >>> 0);
    } else if (Number.isSafeInteger(v)) {
      this.byte(0x8a); // LONG1: little-endian two's complement
      let x = BigInt(v);
      const b: number[] = [];
      do {
        b.push(Number(x & 0xffn));
        x >>= 8n;
      } while (!(x === 0n && (b[b.length - 1]! & 0x80) === 0) && !(x === -1n && (b[b.length - 1]! & 0x80) !== 0));
      this.byte(b.length);
      for (const y of b) this.byte(y);
    } else {
      this.byte(0x47); // BINFLOAT (big endian double)
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v, false);
      this.bytes(b);
    }
  }
  tuple(items: (() => void)[]) {
    this.byte(0x28); // MARK
    for (const f of items) f();
    this.byte(0x74); // TUPLE
  }
  value(v: TorchValue) {
    if (v instanceof HostTensor) return this.tensor(v);
    if (typeof v === 'string') return this.unicode(v);
    if (typeof v === 'boolean') return this.byte(v ? 0x88 : 0x89); // NEWTRUE / NEWFALSE
    if (typeof v === 'number') return this.int(v);
    this.orderedDict(v);
  }
  orderedDict(m: Map<string, TorchValue>) {
    this.global('collections', 'OrderedDict');
    this.byte(0x29); // EMPTY_TUPLE
    this.byte(0x52); // REDUCE
    if (m.size === 0) return;
    this.byte(0x28); // MARK
    for (const [k, v] of m) {
      this.unicode(k);
      this.value(v);
    }
    this.byte(0x75); // SETITEMS
  }
  tensor(t: HostTensor) {
    const st = STORAGE[t.dtype];
    if (!st) throw new Error(`torch writer: unsupported dtype ${t.dtype}`);
    const key = String(this.storages.length);
    this.storages.push(t);
    const strides: number[] = [];
    let s = 1;
    for (let i = t.shape.length - 1; i >= 0; i--) {
      strides[i] = s;
      s *= t.shape[i]!;
    }
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.tuple([
      () => {
        this.tuple([() => this.unicode('storage'), () => this.global('torch', st), () => this.unicode(key), () => this.unicode('cpu'), () => this.int(t.size)]);
        this.byte(0x51); // BINPERSID
      },
      () => this.int(0),
      () => this.tuple(t.shape.map((d) => () => this.int(d))),
      () => this.tuple(strides.map((d) => () => this.int(d))),
      () => this.byte(0x89),
      () => this.orderedDict(new Map()),
    ]);
    this.byte(0x52); // REDUCE
  }
  finish(): Uint8Array {
    this.byte(0x2e); // STOP
    return Uint8Array.from(this.parts);
  }
}

/** Pickle a top-level dict (str → value) as torch.save does, plus its storages. */
export function pickleCheckpoint(top: Map<string, TorchValue>): { pkl: Uint8Array; storages: HostTensor[] } {
  const w = new PickleWriter();
  w.byte(0x80); // PROTO
  w.byte(2);
  w.byte(0x7d); // EMPTY_DICT
  w.byte(0x28); // MARK
  for (const [k, v] of top) {
    w.unicode(k);
    w.value(v);
  }
  w.byte(0x75); // SETITEMS
  return { pkl: w.finish(), storages: w.storages };
}

/** A STORED zip archive; each entry's data starts on a 64-byte boundary (extra-field padding). */
export function storedZip(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let off = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const crc = crc32(e.data);
    const pad = (64 - ((off + 30 + name.length + 4) % 64)) % 64;
    const extraLen = 4 + pad; // one 'padding' extra field (id 0xfa0e, like PyTorchStreamWriter)
    const h = new DataView(new ArrayBuffer(30));
    h.setUint32(0, 0x04034b50, true);
    h.setUint16(4, 20, true);
    h.setUint16(8, 0, true); // STORED
    h.setUint32(14, crc, true);
    h.setUint32(18, e.data.length, true);
    h.setUint32(22, e.data.length, true);
    h.setUint16(26, name.length, true);
    h.setUint16(28, extraLen, true);
    const extra = new Uint8Array(extraLen);
    new DataView(extra.buffer).setUint16(0, 0xfa0e, true);
    new DataView(extra.buffer).setUint16(2, pad, true);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, e.data.length, true);
    c.setUint32(24, e.data.length, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, off, true);
    central.push(new Uint8Array(c.buffer), name);
    chunks.push(new Uint8Array(h.buffer), name, extra, e.data);
    off += 30 + name.length + extraLen + e.data.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  if (off + cdSize > 0xffffffff) throw new Error('torch writer: checkpoints over 4 GB need zip64, which is not written');
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, off, true);
  const all = [...chunks, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const a of all) {
    out.set(a, p);
    p += a.length;
  }
  return out;
}

/** torch.save(top, file) for a dict of state dicts / scalars; written atomically. */
export function writeTorchCheckpoint(file: string, top: Map<string, TorchValue>, archive = 'archive'): void {
  const { pkl, storages } = pickleCheckpoint(top);
  const entries = [{ name: `${archive}/data.pkl`, data: pkl }];
  storages.forEach((t, i) => entries.push({ name: `${archive}/data/${i}`, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }));
  entries.push({ name: `${archive}/version`, data: new TextEncoder().encode('3\n') });
  writeFileAtomicSync(file, storedZip(entries));
}
