/**
 * Writes the part of the ONNX protobuf format that an inference graph of convolutions, normalisation
 * and activations needs: a model, its graph, nodes with int, float and int-list attributes,
 * float and int64 initialisers, and typed inputs and outputs. Field numbers are those of onnx.proto.
 */

const encoder = new TextEncoder();

/** An encoded protobuf field, or the concatenated fields of a message. */
type Bytes = Uint8Array;

function concat(parts: readonly Bytes[]): Bytes {
  return Buffer.concat(parts);
}

/** Encodes a base-128 varint. Negative values take ten bytes, as two's complement int64. */
function varint(value: number | bigint): Bytes {
  let rest = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  do {
    const low = Number(rest & 0x7fn);
    rest >>= 7n;
    bytes.push(rest > 0n ? low | 0x80 : low);
  } while (rest > 0n);
  return Uint8Array.from(bytes);
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const tag = (field: number, wireType: number) => varint((field << 3) | wireType);
const integerField = (field: number, value: number | bigint) => concat([tag(field, VARINT), varint(value)]);
const bytesField = (field: number, data: Bytes) => concat([tag(field, LENGTH_DELIMITED), varint(data.length), data]);
const stringField = (field: number, text: string) => bytesField(field, encoder.encode(text));
const messageField = (field: number, fields: readonly Bytes[]) => bytesField(field, concat(fields));
const floatField = (field: number, value: number) => {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setFloat32(0, value, true);
  return concat([tag(field, FIXED32), data]);
};

/** onnx.TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

/** A node attribute: an integer, a float or a list of integers. */
export type OnnxAttribute = { name: string; int: number } | { name: string; float: number } | { name: string; ints: readonly number[] } | { name: string; string: string };

/** One operator of the graph. */
export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: readonly OnnxAttribute[];
}

/** A constant tensor stored in the graph. */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  values: Float32Array | BigInt64Array;
}

/** A graph input or output: its name, element type and dimensions (a string names a free dimension; null leaves the shape unstated). */
export interface OnnxValue {
  name: string;
  elementType: number;
  dims: ReadonlyArray<number | string> | null;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValue[];
  outputs: readonly OnnxValue[];
}

function attribute(value: OnnxAttribute): Bytes {
  // AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7).
  const name = stringField(1, value.name);
  if ('int' in value) return concat([name, integerField(3, value.int), integerField(20, 2)]);
  if ('float' in value) return concat([name, floatField(2, value.float), integerField(20, 1)]);
  if ('string' in value) return concat([name, stringField(4, value.string), integerField(20, 3)]);
  return concat([name, ...value.ints.map((item) => integerField(8, item)), integerField(20, 7)]);
}

function node(value: OnnxNode, index: number): Bytes {
  // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
  return concat([
    ...value.inputs.map((input) => stringField(1, input)),
    ...value.outputs.map((output) => stringField(2, output)),
    stringField(3, `${value.opType}_${index}`),
    stringField(4, value.opType),
    ...(value.attributes ?? []).map((item) => messageField(5, [attribute(item)])),
  ]);
}

function initializer(value: OnnxInitializer): Bytes {
  // TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
  const elementType = value.values instanceof Float32Array ? ONNX_FLOAT : ONNX_INT64;
  const raw = new Uint8Array(value.values.byteLength);
  const view = new DataView(raw.buffer);
  value.values.forEach((item: number | bigint, i: number) => {
    if (typeof item === 'bigint') view.setBigInt64(i * 8, item, true);
    else view.setFloat32(i * 4, item, true);
  });
  return concat([...value.dims.map((dim) => integerField(1, dim)), integerField(2, elementType), stringField(8, value.name), bytesField(9, raw)]);
}

function valueInfo(value: OnnxValue): Bytes {
  // ValueInfoProto: name 1, type 2. TypeProto: tensor_type 1. Tensor: elem_type 1, shape 2.
  // TensorShapeProto: dim 1. Dimension: dim_value 1, dim_param 2.
  const elementType = integerField(1, value.elementType);
  if (value.dims === null) return concat([stringField(1, value.name), messageField(2, [messageField(1, [elementType])])]);
  const dims = value.dims.map((dim) => messageField(1, [typeof dim === 'number' ? integerField(1, dim) : stringField(2, dim)]));
  const tensorType = messageField(1, [elementType, messageField(2, dims)]);
  return concat([stringField(1, value.name), messageField(2, [tensorType])]);
}

/** Encodes a model (IR version 8, the default opset at `opset`) as the bytes of an .onnx file. */
export function encodeOnnxModel(graph: OnnxGraph, opset = 13): Uint8Array {
  // GraphProto: node 1, name 2, initializer 5, input 11, output 12.
  const graphFields = [
    ...graph.nodes.map((item, index) => messageField(1, [node(item, index)])),
    stringField(2, graph.name),
    ...graph.initializers.map((item) => messageField(5, [initializer(item)])),
    ...graph.inputs.map((item) => messageField(11, [valueInfo(item)])),
    ...graph.outputs.map((item) => messageField(12, [valueInfo(item)])),
  ];
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain 1, version 2).
  return concat([integerField(1, 8), stringField(2, 'scarce'), messageField(7, graphFields), messageField(8, [stringField(1, ''), integerField(2, opset)])]);
}
