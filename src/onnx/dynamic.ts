// Shape-polymorphic ONNX from fixed-shape traces. Our graphs are traced at static shapes, so
// the shape operands of Reshape / Expand / Slice are int64 constants. A model that must run
// at any batch, height and width (SD's ONNX pipelines declare those axes dynamic) is traced at
// three sizes and lowered three times; the three graphs must be the same but for int64
// constants. Each entry that differs is a monomial of the free input dims, a·B^i·H^j·W^k with
// a rational and i, j, k ∈ {0, 1}, fitted on two traces and checked on the third, and is
// computed at run time by a small Shape → Slice → Mul / Div → Concat subgraph. Anything else
// that differs (a float constant, an attribute, the node list) is refused: such a model is
// not polymorphic in those dims, and a silently wrong graph is worse than none.
import { ATTR_TYPE, type DimObj, type ModelObj, type NodeObj, type TensorProtoObj } from './proto.ts';

const ONNX_INT64 = 7;

/** The free axes of one graph input, e.g. { input: 'latent_sample', axes: { 0: 'batch', 2: 'height', 3: 'width' } }. */
export interface DynamicAxes {
  input: string;
  axes: Record<number, string>;
}

/** One traced size: the free axes' values in that trace, in the order of `axes`' keys. */
export interface Traced {
  model: ModelObj;
  dims: readonly number[];
}

/** a/b · Π symbols[i] for i in `syms` (a, b > 0 coprime). */
interface Monomial {
  syms: number[];
  num: number;
  den: number;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : Math.abs(a));

function int64s(t: TensorProtoObj): number[] | null {
  if (t.dataType !== ONNX_INT64 || !t.rawData || t.dims.length > 1) return null;
  const raw = t.rawData;
  const a = new BigInt64Array(raw.slice().buffer, 0, raw.byteLength / 8);
  return Array.from(a, Number);
}

function sameBytes(a: TensorProtoObj, b: TensorProtoObj): boolean {
  if (a.dataType !== b.dataType || a.dims.join() !== b.dims.join()) return false;
  const x = a.rawData ?? new Uint8Array(0);
  const y = b.rawData ?? new Uint8Array(0);
  return x.byteLength === y.byteLength && x.every((v, i) => v === y[i]);
}

/** The monomial through values vs[t] at symbol values dims[t] (t = trace), or null. */
function fitMonomial(vs: readonly number[], dims: readonly (readonly number[])[]): Monomial | null {
  const nSym = dims[0]!.length;
  for (let mask = 1; mask < 1 << nSym; mask++) {
    const syms = [...Array(nSym).keys()].filter((i) => mask & (1 << i));
    const m = dims.map((d) => syms.reduce((p, i) => p * d[i]!, 1));
    // vs[t] / m[t] equal for every trace
    if (!vs.every((v, t) => v * m[0]! === vs[0]! * m[t]!)) continue;
    if (vs[0]! <= 0) return null;
    const g = gcd(vs[0]!, m[0]!);
    return { syms, num: vs[0]! / g, den: m[0]! / g };
  }
  return null;
}

function describe(m: Monomial, names: readonly string[]): string {
  const s = m.syms.map((i) => names[i]).join('*');
  return `${s}${m.num !== 1 ? `*${m.num}` : ''}${m.den !== 1 ? `/${m.den}` : ''}`;
}

function attrKey(n: NodeObj): string {
  return JSON.stringify(n.attribute.map((a) => (a.type === ATTR_TYPE.TENSOR ? { ...a, t: a.t && { ...a.t, rawData: Array.from(a.t.rawData ?? []) } } : a)));
}

/**
 * One model whose `dyn.axes` are free, from the same program lowered at three sizes (the
 * first is the template). The free dims must differ between traces so that monomials are told
 * apart: choose distinct primes, e.g. batch 2, 3, 5 and latent sizes 3, 7, 13 / 5, 11, 4.
 */
export function makeDynamic(traces: readonly Traced[], dyn: DynamicAxes): ModelObj {
  if (traces.length < 3) throw new Error(`makeDynamic: three traces are needed (two fit each formula, the third checks it), got ${traces.length}`);
  const names = Object.values(dyn.axes);
  const axes = Object.keys(dyn.axes).map(Number);
  const dims = traces.map((t) => t.dims);
  const [A, ...rest] = traces.map((t) => t.model) as [ModelObj, ...ModelObj[]];
  const fail = (what: string): never => {
    throw new Error(`ONNX export with free ${names.join(', ')}: ${what} — the model is not shape-polymorphic in them`);
  };
  if (!A.graph.input.some((v) => v.name === dyn.input)) fail(`'${dyn.input}' is not a graph input`);
  for (const M of rest) if (M.graph.node.length !== A.graph.node.length) fail(`the traces have ${A.graph.node.length} and ${M.graph.node.length} nodes`);
  const inits = [A, ...rest].map((M) => new Map(M.graph.initializer.map((t) => [t.name, t])));

  // the free dims at run time: Shape(input) sliced per axis, as int64 [1]
  const pre: NodeObj[] = [];
  const extraInits: TensorProtoObj[] = [];
  let fresh = 0;
  const i64 = (vals: number[]): string => {
    const name = `dyn_c${fresh++}`;
    extraInits.push({ name, dims: [vals.length], dataType: ONNX_INT64, rawData: new Uint8Array(BigInt64Array.from(vals, BigInt).buffer) });
    return name;
  };
  const op = (opType: string, input: string[], attrs: NodeObj['attribute'] = []): string => {
    const out = `dyn_v${fresh++}`;
    pre.push({ opType, input, output: [out], name: `dynamic/${opType}#${pre.length}`, domain: '', attribute: attrs });
    return out;
  };
  let shapeOf: string | null = null;
  const symVals: string[] = [];
  const sym = (i: number): string => {
    if (!symVals[i]) {
      shapeOf ??= op('Shape', [dyn.input]);
      symVals[i] = op('Slice', [shapeOf, i64([axes[i]!]), i64([axes[i]! + 1])]);
    }
    return symVals[i]!;
  };
  const monoCache = new Map<string, string>();
  const monoValue = (m: Monomial): string => {
    const key = `${m.syms.join(',')}|${m.num}|${m.den}`;
    let v = monoCache.get(key);
    if (!v) {
      v = sym(m.syms[0]!);
      for (const i of m.syms.slice(1)) v = op('Mul', [v, sym(i)]);
      if (m.num !== 1) v = op('Mul', [v, i64([m.num])]);
      if (m.den !== 1) v = op('Div', [v, i64([m.den])]);
      monoCache.set(key, v);
    }
    return v;
  };
  const vecCache = new Map<string, string>();

  // A's nodes and declared shapes are rewritten in a copy; its initializers are kept by reference (below)
  const out = structuredClone({ ...A, graph: { ...A.graph, initializer: [] } }) as ModelObj;
  out.graph.node.forEach((n, k) => {
    const others = rest.map((M) => M.graph.node[k]!);
    for (const o of others) {
      if (o.opType !== n.opType || o.input.length !== n.input.length) fail(`node ${k} is ${n.opType} in one trace and ${o.opType} in another`);
      if (attrKey(o) !== attrKey(n)) fail(`the attributes of node ${n.name} (${n.opType}) differ`);
    }
    n.input.forEach((name, j) => {
      const a = inits[0]!.get(name);
      if (!a) return;
      const bs = others.map((o, t) => inits[t + 1]!.get(o.input[j]!));
      if (bs.some((b) => !b)) fail(`input ${j} of node ${n.name} is a constant in one trace only`);
      if (bs.every((b) => sameBytes(a, b!))) return;
      const vals = [a, ...bs].map((t) => int64s(t!));
      if (vals.some((v) => !v) || vals.some((v) => v!.length !== vals[0]!.length)) fail(`constant input ${j} of ${n.name} (${n.opType}) differs between traces`);
      // each entry: a fixed value or a monomial; the vector is rebuilt from runs of fixed
      // entries (one constant each) and computed monomials
      const entries = vals[0]!.map((_, e): number | Monomial => {
        const vs = vals.map((v) => v![e]!);
        if (vs.every((v) => v === vs[0])) return vs[0]!;
        return fitMonomial(vs, dims) ?? fail(`entry ${e} of ${n.opType} ${n.name}'s input ${j} takes the values ${vs.join(', ')}, not a monomial of ${names.join(', ')}`);
      });
      const key = entries.map((x) => (typeof x === 'number' ? String(x) : describe(x, names))).join(',');
      let v = vecCache.get(key);
      if (!v) {
        const pieces: string[] = [];
        let run: number[] = [];
        for (const x of [...entries, null]) {
          if (typeof x === 'number') {
            run.push(x);
            continue;
          }
          if (run.length) pieces.push(i64(run));
          run = [];
          if (x) pieces.push(monoValue(x));
        }
        v = pieces.length === 1 ? pieces[0]! : op('Concat', pieces, [{ name: 'axis', type: ATTR_TYPE.INT, i: 0 }]);
        vecCache.set(key, v);
      }
      n.input[j] = v;
    });
  });
  out.graph.node.unshift(...pre);
  // constants the rewrite left unused
  const used = new Set(out.graph.node.flatMap((n) => n.input));
  out.graph.initializer = [...A.graph.initializer.filter((t) => used.has(t.name)), ...extraInits];

  // declared shapes: the input's free axes by name; outputs' dims fitted like the constants
  const dimOf = (vs: number[], what: string): DimObj => {
    if (vs.every((v) => v === vs[0])) return { dimValue: vs[0]! };
    const m = fitMonomial(vs, dims);
    if (!m) return fail(`${what} takes the sizes ${vs.join(', ')}`);
    return { dimParam: describe(m, names) };
  };
  for (const [io, list] of [['input', out.graph.input], ['output', out.graph.output]] as const) {
    list.forEach((vi, k) => {
      const all = [A, ...rest].map((M) => M.graph[io][k]!.type.tensorType.shape.dim.map((d) => d.dimValue!));
      vi.type.tensorType.shape.dim = all[0]!.map((_, a) => dimOf(all.map((s) => s[a]!), `axis ${a} of ${io} '${vi.name}'`));
    });
  }
  return out;
}
