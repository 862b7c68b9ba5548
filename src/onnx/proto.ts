// ONNX protobuf encoding via protobufjs, from a hand-written JSON descriptor of the subset
// of onnx.proto we emit (field numbers from onnx/onnx.proto). The only protobuf importer.
import protobuf from 'protobufjs';
import { PbMessage } from './pbwriter.ts';

const descriptor = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            floats: { rule: 'repeated', type: 'float', id: 7, options: { packed: true } },
            ints: { rule: 'repeated', type: 'int64', id: 8, options: { packed: true } },
            type: { type: 'int32', id: 20 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            docString: { type: 'string', id: 6 },
            domain: { type: 'string', id: 7 },
          },
        },
        StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1, options: { packed: true } },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
            externalData: { rule: 'repeated', type: 'StringStringEntryProto', id: 13 },
            dataLocation: { type: 'int32', id: 14 },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: {
            Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } },
          },
        },
        TypeProto: {
          fields: { tensorType: { type: 'Tensor', id: 1 } },
          nested: {
            Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(descriptor);
const ModelProto = root.lookupType('onnx.ModelProto');

export const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** A tensor's bytes either inline (rawData) or in a file beside the model (externalData). */
export interface TensorProtoObj {
  name: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
  externalData?: { location: string; offset: number; length: number };
}
export interface AttrObj { name: string; type: number; f?: number; i?: number; s?: Uint8Array; t?: TensorProtoObj; floats?: number[]; ints?: number[] }
export interface NodeObj { input: string[]; output: string[]; name: string; opType: string; domain?: string; attribute: AttrObj[] }
/** A dimension: a fixed size, or a symbolic name (dim_param) for one chosen at run time. */
export type DimObj = { dimValue: number; dimParam?: undefined } | { dimParam: string; dimValue?: undefined };
export interface ValueInfoObj { name: string; type: { tensorType: { elemType: number; shape: { dim: DimObj[] } } } }
export interface ModelObj {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsetImport: { domain: string; version: number }[];
  graph: { name: string; node: NodeObj[]; initializer: TensorProtoObj[]; input: ValueInfoObj[]; output: ValueInfoObj[] };
  metadataProps?: { key: string; value: string }[];
}

// Field numbers from onnx.proto (same as the descriptor above).
function tensorMsg(t: TensorProtoObj): PbMessage {
  const m = new PbMessage().packedVarints(1, t.dims).varint(2, t.dataType);
  if (t.name) m.string(8, t.name);
  const x = t.externalData;
  if (!x) return m.bytes(9, t.rawData ?? new Uint8Array(0));
  const kv = (k: string, v: string) => new PbMessage().string(1, k).string(2, v);
  m.message(13, kv('location', x.location)).message(13, kv('offset', String(x.offset))).message(13, kv('length', String(x.length)));
  return m.varint(14, 1); // data_location = EXTERNAL
}

function attrMsg(a: AttrObj): PbMessage {
  const m = new PbMessage().string(1, a.name);
  if (a.f !== undefined) m.float(2, a.f);
  if (a.i !== undefined) m.varint(3, a.i);
  if (a.s !== undefined) m.bytes(4, a.s);
  if (a.t !== undefined) m.message(5, tensorMsg(a.t));
  if (a.floats !== undefined) m.packedFloats(7, a.floats);
  if (a.ints !== undefined) m.packedVarints(8, a.ints);
  return m.varint(20, a.type);
}

function valueInfoMsg(v: ValueInfoObj): PbMessage {
  const shape = new PbMessage();
  for (const d of v.type.tensorType.shape.dim) shape.message(1, d.dimParam !== undefined ? new PbMessage().string(2, d.dimParam) : new PbMessage().varint(1, d.dimValue));
  const tt = new PbMessage().varint(1, v.type.tensorType.elemType).message(2, shape);
  return new PbMessage().string(1, v.name).message(2, new PbMessage().message(1, tt));
}

/** Serialize a model with the streaming writer (large tensors are copied once). */
export function encodeModel(m: ModelObj): Uint8Array {
  const g = new PbMessage();
  for (const n of m.graph.node) {
    const nm = new PbMessage();
    for (const i of n.input) nm.string(1, i);
    for (const o of n.output) nm.string(2, o);
    nm.string(3, n.name).string(4, n.opType);
    for (const a of n.attribute) nm.message(5, attrMsg(a));
    if (n.domain) nm.string(7, n.domain);
    g.message(1, nm);
  }
  g.string(2, m.graph.name);
  for (const t of m.graph.initializer) g.message(5, tensorMsg(t));
  for (const v of m.graph.input) g.message(11, valueInfoMsg(v));
  for (const v of m.graph.output) g.message(12, valueInfoMsg(v));
  const model = new PbMessage().varint(1, m.irVersion).string(2, m.producerName).string(3, m.producerVersion).message(7, g);
  for (const o of m.opsetImport) model.message(8, new PbMessage().string(1, o.domain).varint(2, o.version));
  for (const kv of m.metadataProps ?? []) model.message(14, new PbMessage().string(1, kv.key).string(2, kv.value));
  return model.finish();
}

/** protobufjs encoding of the same object (reference for the writer's tests). */
export function encodeModelReference(m: ModelObj): Uint8Array {
  return ModelProto.encode(ModelProto.fromObject(m)).finish();
}

/** Decode (used by tests and `print` of exported files). */
export function decodeModel(bytes: Uint8Array): ModelObj {
  return ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, bytes: Array, defaults: false }) as unknown as ModelObj;
}
