// A safe unpickler: it interprets Python pickle opcodes (protocols 0–5) into plain data and
// never runs anything. Dicts become Map, lists arrays, tuples frozen arrays, sets Set,
// bytes Uint8Array, ints number (bigint beyond 2^53). Globals are names, not code: calling
// one (REDUCE / NEWOBJ / INST / OBJ) runs a builder only if it is whitelisted (a few safe
// builtins here, plus the builders the caller passes, e.g. torch's tensor rebuilders);
// anything else — os.system, builtins.eval, a Lightning callback class — becomes an inert
// PickleObject recording the name and arguments. BUILD on such a placeholder records state.

/** A reference to a Python global (`module.name`) that was named but not called. */
export class PickleGlobal {
  readonly __global__: string;
  constructor(
    readonly module: string,
    readonly name: string,
  ) {
    this.__global__ = `${module}.${name}`;
  }
}

/** Inert stand-in for an object built by calling a non-whitelisted global. Never executed. */
export class PickleObject {
  readonly __global__: string;
  readonly args: unknown[];
  /** Set when built with NEWOBJ / NEWOBJ_EX (cls.__new__) rather than REDUCE. */
  newobj = false;
  kwargs?: Map<unknown, unknown>;
  /** Argument of BUILD (usually the instance __dict__), recorded as data. */
  state?: unknown;
  /** Items set / appended on the object (dict / list subclasses). */
  dictItems?: Map<unknown, unknown>;
  listItems?: unknown[];
  constructor(global: string, args: readonly unknown[]) {
    this.__global__ = global;
    this.args = [...args];
  }
}

/** A whitelisted builder: receives the call's positional arguments, returns plain data. */
export type PickleBuilder = (args: readonly unknown[]) => unknown;

export interface UnpickleOptions {
  /** Used in error messages. */
  fileName?: string;
  /** Resolves BINPERSID / PERSID ids (torch: ('storage', type, key, location, numel)). */
  persistentLoad?: (pid: unknown) => unknown;
  /** Extra whitelisted globals, keyed 'module.name'. */
  builders?: Record<string, PickleBuilder>;
}

// Python 2 names that protocol ≤ 2 pickles use for builtins (pickle's fix_imports).
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new Error('latin-1 string has a code point > 255');
    out[i] = c;
  }
  return out;
}

function pairsToMap(x: unknown): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (x instanceof Map) for (const [k, v] of x) m.set(k, v);
  else if (Array.isArray(x)) {
    for (const p of x) {
      if (!Array.isArray(p) || p.length !== 2) throw new Error('expected (key, value) pairs');
      m.set(p[0], p[1]);
    }
  } else if (x !== undefined) throw new Error('expected a dict or a list of pairs');
  return m;
}

/** Safe builtins every unpickle call knows. They only construct containers. */
const SAFE_BUILDERS: Record<string, PickleBuilder> = {
  'collections.OrderedDict': (a) => pairsToMap(a[0]),
  'builtins.dict': (a) => pairsToMap(a[0]),
  'builtins.set': (a) => new Set(a[0] === undefined ? [] : (a[0] as unknown[])),
  'builtins.frozenset': (a) => new Set(a[0] === undefined ? [] : (a[0] as unknown[])),
  'builtins.list': (a) => (a[0] === undefined ? [] : [...(a[0] as unknown[])]),
  'builtins.tuple': (a) => Object.freeze(a[0] === undefined ? [] : [...(a[0] as unknown[])]),
  // Protocol 2 writes bytes as _codecs.encode(str, 'latin1').
  'builtins.bytes': (a) => (a[0] === undefined ? new Uint8Array(0) : a[0] instanceof Uint8Array ? a[0].slice() : latin1Arg(a)),
  'builtins.bytearray': (a) => (a[0] === undefined ? new Uint8Array(0) : a[0] instanceof Uint8Array ? a[0].slice() : latin1Arg(a)),
  '_codecs.encode': (a) => latin1Arg(a),
};

function latin1Arg(a: readonly unknown[]): Uint8Array | PickleObject {
  const enc = a[1];
  if (typeof a[0] === 'string' && (enc === 'latin1' || enc === 'latin-1')) return latin1Bytes(a[0]);
  return new PickleObject('_codecs.encode', a);
}

function isPlainArray(x: unknown): x is unknown[] {
  return Array.isArray(x);
}

const OPNAMES: Record<number, string> = {};

/** Runs the pickle program in `bytes` and returns the resulting value. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): unknown {
  return new Unpickler(bytes, opts).run();
}

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private marks: number[] = [];
  private memo = new Map<number, unknown>();
  private readonly dv: DataView;
  private readonly file: string;
  private readonly builders: Record<string, PickleBuilder>;
  private readonly text = new TextDecoder('utf-8', { fatal: true });

  private readonly bytes: Uint8Array;

  constructor(
    input: Uint8Array,
    private readonly opts: UnpickleOptions,
  ) {
    // Plain view: Node's Buffer.slice() would alias the input instead of copying.
    this.bytes = Object.getPrototypeOf(input) === Uint8Array.prototype ? input : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    this.dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.file = opts.fileName ?? '<pickle>';
    this.builders = { ...SAFE_BUILDERS, ...(opts.builders ?? {}) };
  }

  run(): unknown {
    let opPos = 0;
    let op = -1;
    try {
      for (;;) {
        opPos = this.pos;
        op = this.u8();
        if (op === 0x2e /* . STOP */) {
          if (this.stack.length === 0) throw new Error('STOP with an empty stack');
          return this.stack.pop();
        }
        this.step(op);
      }
    } catch (e) {
      const name = OPNAMES[op] ?? `0x${op.toString(16)}`;
      throw new Error(`${this.file}: pickle: at byte ${opPos} (${op < 0 ? 'start' : name}): ${(e as Error).message}`, { cause: e });
    }
  }

  // ---- byte readers (all bounds-checked) ----
  private need(n: number): number {
    if (!(n >= 0) || this.pos + n > this.bytes.length) {
      throw new Error(`truncated: need ${n} bytes at offset ${this.pos}, only ${this.bytes.length - this.pos} left`);
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }
  private u8(): number {
    return this.bytes[this.need(1)];
  }
  private u16(): number {
    return this.dv.getUint16(this.need(2), true);
  }
  private u32(): number {
    return this.dv.getUint32(this.need(4), true);
  }
  private i32(): number {
    return this.dv.getInt32(this.need(4), true);
  }
  private u64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    if (v > BigInt(this.bytes.length)) throw new Error(`length ${v} exceeds the pickle size`);
    return Number(v);
  }
  private raw(n: number): Uint8Array {
    const p = this.need(n);
    return this.bytes.subarray(p, p + n);
  }
  private utf8(n: number): string {
    const b = this.raw(n);
    try {
      return this.text.decode(b);
    } catch {
      throw new Error('invalid UTF-8 in string');
    }
  }
  private latin1(n: number): string {
    const b = this.raw(n);
    let s = '';
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    return s;
  }
  private line(): string {
    const start = this.pos;
    const nl = this.bytes.indexOf(0x0a, start);
    if (nl < 0) throw new Error('truncated: missing newline');
    this.pos = nl + 1;
    return this.latin1Slice(start, nl);
  }
  private latin1Slice(a: number, b: number): string {
    const save = this.pos;
    this.pos = a;
    const s = this.latin1(b - a);
    this.pos = save;
    return s;
  }

  // ---- stack helpers ----
  private push(x: unknown): void {
    this.stack.push(x);
  }
  // Like CPython, values below the innermost MARK are out of reach until it is popped.
  private pop(): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) throw new Error('stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) throw new Error('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) throw new Error('no MARK on the stack');
    return this.stack.splice(m);
  }
  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) throw new Error(`memo key ${i} not found`);
    return this.memo.get(i);
  }
  private memoPut(i: number): void {
    this.memo.set(i, this.top());
  }

  private global(module: string, name: string): PickleGlobal {
    return new PickleGlobal(PY2_MODULES[module] ?? module, name);
  }

  /** Applies a callable to arguments: a whitelisted builder, else an inert placeholder. */
  private call(fn: unknown, args: unknown, newobj: boolean, kwargs?: unknown): unknown {
    if (!isPlainArray(args)) throw new Error(`call arguments must be a tuple, got ${describe(args)}`);
    let name: string;
    if (fn instanceof PickleGlobal) {
      const b = Object.prototype.hasOwnProperty.call(this.builders, fn.__global__) ? this.builders[fn.__global__] : undefined;
      if (b && (kwargs === undefined || (kwargs instanceof Map && kwargs.size === 0))) return b(args);
      name = fn.__global__;
    } else if (fn instanceof PickleObject) {
      name = `${fn.__global__}()`;
    } else {
      throw new Error(`cannot call ${describe(fn)}`);
    }
    const o = new PickleObject(name, args);
    o.newobj = newobj;
    if (kwargs instanceof Map) o.kwargs = kwargs;
    return o;
  }

  private setItems(target: unknown, kv: unknown[]): void {
    if (kv.length % 2) throw new Error('SETITEMS with an odd number of items');
    let m: Map<unknown, unknown>;
    if (target instanceof Map) m = target;
    else if (target instanceof PickleObject) m = target.dictItems ??= new Map();
    else throw new Error(`cannot set items on ${describe(target)}`);
    for (let i = 0; i < kv.length; i += 2) m.set(kv[i], kv[i + 1]);
  }

  // (loops, not push(...items): a long MARK run must not blow the call stack)
  private append(target: unknown, items: unknown[]): void {
    let list: unknown[];
    if (Array.isArray(target) && !Object.isFrozen(target)) list = target;
    else if (target instanceof PickleObject) list = target.listItems ??= [];
    else throw new Error(`cannot append to ${describe(target)}`);
    for (const x of items) list.push(x);
  }

  private addItems(target: unknown, items: unknown[]): void {
    if (target instanceof Set) for (const x of items) target.add(x);
    else if (target instanceof PickleObject) this.append(target, items);
    else throw new Error(`cannot add items to ${describe(target)}`);
  }

  private persistent(pid: unknown): unknown {
    if (!this.opts.persistentLoad) throw new Error('persistent id found but no persistent loader was given');
    return this.opts.persistentLoad(pid);
  }

  private step(op: number): void {
    switch (op) {
      case 0x80: { // PROTO
        const v = this.u8();
        if (v > 5) throw new Error(`unsupported pickle protocol ${v}`);
        return;
      }
      case 0x95: this.u64(); return; // FRAME: length prefix only, opcodes continue inline
      case 0x28: this.marks.push(this.stack.length); return; // MARK
      case 0x7d: this.push(new Map()); return; // EMPTY_DICT
      case 0x5d: this.push([]); return; // EMPTY_LIST
      case 0x29: this.push(Object.freeze([])); return; // EMPTY_TUPLE
      case 0x8f: this.push(new Set()); return; // EMPTY_SET
      case 0x4e: this.push(null); return; // NONE
      case 0x88: this.push(true); return; // NEWTRUE
      case 0x89: this.push(false); return; // NEWFALSE
      // ints
      case 0x4a: this.push(this.i32()); return; // BININT
      case 0x4b: this.push(this.u8()); return; // BININT1
      case 0x4d: this.push(this.u16()); return; // BININT2
      case 0x8a: this.push(this.long(this.u8())); return; // LONG1
      case 0x8b: { // LONG4
        const n = this.i32();
        if (n < 0) throw new Error('negative LONG4 length');
        this.push(this.long(n));
        return;
      }
      case 0x49: { // INT (text; '01'/'00' are True/False)
        const s = this.line().trim();
        this.push(s === '01' ? true : s === '00' ? false : parseIntText(s));
        return;
      }
      case 0x4c: this.push(parseIntText(this.line().trim().replace(/L$/, ''))); return; // LONG (text)
      // floats
      case 0x47: this.push(this.dv.getFloat64(this.need(8), false)); return; // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const s = this.line().trim().toLowerCase();
        const special = new Map([['inf', Infinity], ['+inf', Infinity], ['-inf', -Infinity], ['nan', NaN], ['-nan', NaN]]);
        const x = special.get(s) ?? (s === '' ? NaN : Number(s));
        if (Number.isNaN(x) && !special.has(s)) throw new Error(`bad FLOAT literal '${s.slice(0, 40)}'`);
        this.push(x);
        return;
      }
      // strings and bytes
      case 0x58: this.push(this.utf8(this.u32())); return; // BINUNICODE
      case 0x8c: this.push(this.utf8(this.u8())); return; // SHORT_BINUNICODE
      case 0x8d: this.push(this.utf8(this.u64())); return; // BINUNICODE8
      case 0x56: this.push(rawUnicodeEscape(this.line())); return; // UNICODE (text)
      case 0x54: { // BINSTRING (py2 str, decoded as latin-1)
        const n = this.i32();
        if (n < 0) throw new Error('negative BINSTRING length');
        this.push(this.latin1(n));
        return;
      }
      case 0x55: this.push(this.latin1(this.u8())); return; // SHORT_BINSTRING
      case 0x53: this.push(pyStringLiteral(this.line())); return; // STRING (text repr)
      case 0x42: this.push(this.raw(this.u32()).slice()); return; // BINBYTES
      case 0x43: this.push(this.raw(this.u8()).slice()); return; // SHORT_BINBYTES
      case 0x8e: this.push(this.raw(this.u64()).slice()); return; // BINBYTES8
      case 0x96: this.push(this.raw(this.u64()).slice()); return; // BYTEARRAY8
      // containers
      case 0x85: this.push(Object.freeze([this.pop()])); return; // TUPLE1
      case 0x86: { // TUPLE2
        const b = this.pop();
        const a = this.pop();
        this.push(Object.freeze([a, b]));
        return;
      }
      case 0x87: { // TUPLE3
        const c = this.pop();
        const b = this.pop();
        const a = this.pop();
        this.push(Object.freeze([a, b, c]));
        return;
      }
      case 0x74: this.push(Object.freeze(this.popMark())); return; // TUPLE
      case 0x6c: this.push(this.popMark()); return; // LIST
      case 0x64: { // DICT
        const kv = this.popMark();
        const m = new Map();
        this.setItems(m, kv);
        this.push(m);
        return;
      }
      case 0x91: this.push(new Set(this.popMark())); return; // FROZENSET
      case 0x73: { // SETITEM
        const v = this.pop();
        const k = this.pop();
        this.setItems(this.top(), [k, v]);
        return;
      }
      case 0x75: { // SETITEMS
        const kv = this.popMark();
        this.setItems(this.top(), kv);
        return;
      }
      case 0x61: { // APPEND
        const v = this.pop();
        this.append(this.top(), [v]);
        return;
      }
      case 0x65: { // APPENDS
        const items = this.popMark();
        this.append(this.top(), items);
        return;
      }
      case 0x90: { // ADDITEMS
        const items = this.popMark();
        this.addItems(this.top(), items);
        return;
      }
      // stack manipulation
      case 0x30: this.pop(); return; // POP
      case 0x31: this.popMark(); return; // POP_MARK
      case 0x32: this.push(this.top()); return; // DUP
      // memo
      case 0x71: this.memoPut(this.u8()); return; // BINPUT
      case 0x72: this.memoPut(this.u32()); return; // LONG_BINPUT
      case 0x70: this.memoPut(parseMemoIndex(this.line())); return; // PUT
      case 0x94: this.memoPut(this.memo.size); return; // MEMOIZE
      case 0x68: this.push(this.memoGet(this.u8())); return; // BINGET
      case 0x6a: this.push(this.memoGet(this.u32())); return; // LONG_BINGET
      case 0x67: this.push(this.memoGet(parseMemoIndex(this.line()))); return; // GET
      // globals and calls (never executed: see call())
      case 0x63: { // GLOBAL
        const module = this.line();
        const name = this.line();
        this.push(this.global(module, name));
        return;
      }
      case 0x93: { // STACK_GLOBAL
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new Error('STACK_GLOBAL needs two strings');
        this.push(this.global(module, name));
        return;
      }
      case 0x52: { // REDUCE
        const args = this.pop();
        const fn = this.pop();
        this.push(this.call(fn, args, false));
        return;
      }
      case 0x81: { // NEWOBJ
        const args = this.pop();
        const cls = this.pop();
        this.push(this.call(cls, args, true));
        return;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = this.pop();
        const args = this.pop();
        const cls = this.pop();
        this.push(this.call(cls, args, true, kwargs));
        return;
      }
      case 0x69: { // INST (protocol 0): module\nname\n, args after MARK
        const module = this.line();
        const name = this.line();
        this.push(this.call(this.global(module, name), this.popMark(), false));
        return;
      }
      case 0x6f: { // OBJ (protocol 1): MARK cls args...
        const items = this.popMark();
        if (items.length === 0) throw new Error('OBJ without a class');
        this.push(this.call(items[0], items.slice(1), false));
        return;
      }
      case 0x62: { // BUILD
        const state = this.pop();
        const obj = this.top();
        // Only placeholders keep state; on built values (tensors, OrderedDict with its
        // `_metadata` attribute) the extra attributes are dropped.
        if (obj instanceof PickleObject) obj.state = state;
        return;
      }
      case 0x51: this.push(this.persistent(this.pop())); return; // BINPERSID
      case 0x50: this.push(this.persistent(this.line())); return; // PERSID
      case 0x82: case 0x83: case 0x84: // EXT1/2/4
        throw new Error('extension-registry opcodes (EXT1/2/4) are not supported');
      case 0x97: case 0x98: // NEXT_BUFFER / READONLY_BUFFER
        throw new Error('out-of-band buffers (protocol 5) are not supported');
      default:
        throw new Error(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }

  /** Little-endian two's complement integer of n bytes (LONG1 / LONG4). */
  private long(n: number): number | bigint {
    const b = this.raw(n);
    if (n === 0) return 0;
    let hex = '';
    for (let i = n - 1; i >= 0; i--) hex += b[i].toString(16).padStart(2, '0');
    let v = BigInt('0x' + hex);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return toNumberIfSafe(v);
  }
}

function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string): number | bigint {
  if (s.length > 10000 || !/^[+-]?\d+$/.test(s)) throw new Error(`bad integer literal '${s.slice(0, 40)}'`);
  return toNumberIfSafe(BigInt(s));
}

function parseMemoIndex(s: string): number {
  const x = Number(s.trim());
  if (!Number.isSafeInteger(x) || x < 0) throw new Error(`bad memo index '${s}'`);
  return x;
}

/** Decodes Python's raw-unicode-escape (latin-1 plus \uXXXX / \UXXXXXXXX escapes). */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a?: string, b?: string) => {
    const cp = parseInt((a ?? b)!, 16);
    if (cp > 0x10ffff) throw new Error('bad \\U escape');
    return String.fromCodePoint(cp);
  });
}

/** Decodes a protocol-0 STRING operand: a quoted Python 2 str literal. */
function pyStringLiteral(line: string): string {
  const q = line[0];
  if (line.length < 2 || (q !== "'" && q !== '"') || line[line.length - 1] !== q) throw new Error('bad STRING literal');
  const body = line.slice(1, -1);
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    return simple[e] ?? '\\' + e;
  });
}

/** Short description of a decoded value for error messages. */
export function describe(x: unknown): string {
  if (x === null) return 'None';
  if (x instanceof PickleObject) return `inert placeholder for ${x.__global__} (never executed)`;
  if (x instanceof PickleGlobal) return `global ${x.__global__}`;
  if (x instanceof Map) return `dict (${x.size} items)`;
  if (x instanceof Set) return 'set';
  if (x instanceof Uint8Array) return `bytes (${x.length})`;
  if (Array.isArray(x)) return `${Object.isFrozen(x) ? 'tuple' : 'list'} (${x.length} items)`;
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}

// Opcode names for error messages.
Object.assign(OPNAMES, {
  0x80: 'PROTO', 0x95: 'FRAME', 0x28: 'MARK', 0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE',
  0x8f: 'EMPTY_SET', 0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x4a: 'BININT', 0x4b: 'BININT1',
  0x4d: 'BININT2', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x49: 'INT', 0x4c: 'LONG', 0x47: 'BINFLOAT', 0x46: 'FLOAT',
  0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x56: 'UNICODE', 0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING', 0x53: 'STRING', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8',
  0x96: 'BYTEARRAY8', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x74: 'TUPLE', 0x6c: 'LIST', 0x64: 'DICT',
  0x91: 'FROZENSET', 0x73: 'SETITEM', 0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS', 0x90: 'ADDITEMS',
  0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x70: 'PUT', 0x94: 'MEMOIZE',
  0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x67: 'GET', 0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE',
  0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x69: 'INST', 0x6f: 'OBJ', 0x62: 'BUILD', 0x51: 'BINPERSID', 0x50: 'PERSID',
  0x2e: 'STOP',
});
