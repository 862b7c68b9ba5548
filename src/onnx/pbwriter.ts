// A minimal protobuf writer for ONNX models. Why not protobufjs' encoder: it copied the
// 300 MB of a baked VQGAN's weights slowly (1.8 s to encode taming's f16 model); this writer
// keeps large byte fields as references and copies each byte once, in the final concat.

const enc = new TextEncoder();

export class PbMessage {
  private parts: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flush(): void {
    if (this.scratch.length) {
      this.parts.push(Uint8Array.from(this.scratch));
      this.scratch = [];
    }
  }

  private rawVarint(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
      while (v >= 0x80) {
        this.scratch.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
        this.length++;
      }
      this.scratch.push(v);
      this.length++;
      return;
    }
    // negative int64: two's complement over 64 bits (10 bytes)
    let b = BigInt.asUintN(64, BigInt(v));
    while (b >= 0x80n) {
      this.scratch.push(Number(b & 0x7fn) | 0x80);
      b >>= 7n;
      this.length++;
    }
    this.scratch.push(Number(b));
    this.length++;
  }

  private tag(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  varint(field: number, v: number): this {
    this.tag(field, 0);
    this.rawVarint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.scratch.push(x);
    this.length += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(data.length);
    if (data.length > 256) {
      this.flush();
      this.parts.push(data);
    } else {
      for (const x of data) this.scratch.push(x);
    }
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, enc.encode(s));
  }

  message(field: number, m: PbMessage): this {
    this.tag(field, 2);
    this.rawVarint(m.length);
    this.flush();
    this.parts.push(...m.take());
    this.length += m.length;
    return this;
  }

  packedVarints(field: number, vs: readonly number[]): this {
    const inner = new PbMessage();
    for (const v of vs) inner.rawVarint(v);
    return this.bytes(field, inner.finish());
  }

  packedFloats(field: number, vs: readonly number[]): this {
    const b = new Uint8Array(4 * vs.length);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(4 * i, v, true));
    return this.bytes(field, b);
  }

  /** Hand over the parts (used when nesting). */
  take(): Uint8Array[] {
    this.flush();
    const p = this.parts;
    this.parts = [];
    return p;
  }

  finish(): Uint8Array {
    const parts = this.take();
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}
