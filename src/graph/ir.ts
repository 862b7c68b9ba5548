// Graph IR: a Graph owns Nodes (one primitive application each) and the symbolic
// Tensors they produce. Shapes and dtypes are static; nodes are appended in creation
// order, so `graph.nodes` is always a valid topological order.
import type { DType, HostTensor } from '../tensor.ts';

export type Attrs = Record<string, unknown>;

export interface TensorMeta {
  shape: readonly number[];
  dtype: DType;
}

/** A symbolic tensor: the value of one output of one node (or a graph input). */
export class Tensor implements TensorMeta {
  readonly id: number;
  readonly graph: Graph;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Producing node; null for graph inputs. */
  readonly producer: Node | null;
  readonly outIndex: number;
  /** Optional human name (graph inputs, debugging). */
  name: string | undefined;

  constructor(graph: Graph, meta: TensorMeta, producer: Node | null, outIndex: number, name?: string) {
    this.id = graph.nextId++;
    this.graph = graph;
    this.shape = Object.freeze([...meta.shape]);
    this.dtype = meta.dtype;
    this.producer = producer;
    this.outIndex = outIndex;
    this.name = name;
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  toString(): string {
    return `%${this.id}${this.name ? `(${this.name})` : ''}: ${this.dtype}[${this.shape.join(', ')}]`;
  }
}

export class Node {
  readonly id: number;
  readonly prim: string;
  readonly inputs: readonly Tensor[];
  readonly attrs: Attrs;
  outputs: Tensor[] = [];

  constructor(id: number, prim: string, inputs: readonly Tensor[], attrs: Attrs) {
    this.id = id;
    this.prim = prim;
    this.inputs = inputs;
    this.attrs = attrs;
  }
}

export class Graph {
  nextId = 0;
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  /** Label stack used to tag nodes with where they came from (debug/profiling). */
  scope: string[] = [];
  readonly scopeOf = new Map<Node, string>();

  addInput(name: string, meta: TensorMeta): Tensor {
    if (this.inputs.some((t) => t.name === name)) throw new Error(`duplicate graph input '${name}'`);
    const t = new Tensor(this, meta, null, 0, name);
    this.inputs.push(t);
    return t;
  }

  addNode(prim: string, inputs: readonly Tensor[], attrs: Attrs, outMetas: readonly TensorMeta[]): Node {
    const node = new Node(this.nodes.length, prim, inputs, attrs);
    node.outputs = outMetas.map((m, i) => new Tensor(this, m, node, i));
    this.nodes.push(node);
    if (this.scope.length) this.scopeOf.set(node, this.scope.join('/'));
    return node;
  }
}

/** Constant payload stored on 'constant' nodes. */
export interface ConstantAttrs extends Attrs {
  value: HostTensor;
}
