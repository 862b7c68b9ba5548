// Readable graph dumps for debugging and snapshot tests.
import type { Graph, Node, Tensor } from './ir.ts';
import { liveNodes } from '../onnx/lower.ts';
import { decodeModel, type ModelObj } from '../onnx/proto.ts';

function fmtAttr(v: unknown): string {
  if (v && typeof v === 'object' && 'shape' in v && 'dtype' in v) {
    const t = v as { shape: number[]; dtype: string; size: number; toArray(): number[] };
    return t.size <= 8 ? `${t.dtype}[${t.shape.join(',')}](${t.toArray().join(',')})` : `${t.dtype}[${t.shape.join(',')}]`;
  }
  return JSON.stringify(v);
}

const ref = (t: Tensor) => (t.producer ? `%${t.id}` : `%${t.name ?? t.id}`);

function fmtNode(n: Node): string {
  const outs = n.outputs.map((t) => `%${t.id}: ${t.dtype}[${t.shape.join(',')}]`).join(', ');
  const attrs = Object.entries(n.attrs).map(([k, v]) => `${k}=${fmtAttr(v)}`).join(' ');
  return `${outs} = ${n.prim}(${n.inputs.map(ref).join(', ')})${attrs ? ' ' + attrs : ''}`;
}

/** One line per node (only nodes reaching `outputs` when given). */
export function printGraph(g: Graph, outputs?: readonly Tensor[]): string {
  const nodes = outputs ? liveNodes(g, outputs) : g.nodes;
  const lines = g.inputs.map((t) => `input %${t.name}: ${t.dtype}[${t.shape.join(',')}]`);
  for (const n of nodes) lines.push(fmtNode(n));
  if (outputs) lines.push(`return ${outputs.map(ref).join(', ')}`);
  return lines.join('\n');
}

/** ONNX op-type histogram of a model (bytes or decoded), e.g. for structural snapshots. */
export function onnxOpCounts(model: Uint8Array | ModelObj): Record<string, number> {
  const m = model instanceof Uint8Array ? decodeModel(model) : model;
  const counts: Record<string, number> = {};
  for (const n of m.graph.node) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}
