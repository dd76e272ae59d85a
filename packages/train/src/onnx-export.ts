import * as tf from '@tensorflow/tfjs';
import { encodeOnnxModel, ONNX_FLOAT, type OnnxAttribute, type OnnxInitializer, type OnnxNode } from './onnx-proto.js';

/** Name of the exported graph's input: NHWC float images, any batch size. */
export const ONNX_INPUT = 'images';
/** Name of the exported graph's output. */
export const ONNX_OUTPUT = 'output';

/** A layer the exporter cannot translate; the caller runs the model in tfjs instead. */
export class UnsupportedLayerError extends Error {}

/** Options of `exportOnnx`. */
export interface ExportOnnxOptions {
  /** Global-average-pool a 4-D output into one vector per image; default false (NHWC output). */
  pooled?: boolean;
}

type Config = Record<string, unknown>;

/** Builds an ONNX node list: fresh value names, constants and operators. */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private count = 0;

  fresh(hint: string): string {
    return `${hint}_${this.count++}`;
  }

  constant(hint: string, dims: number[], values: Float32Array | BigInt64Array): string {
    const name = this.fresh(hint);
    this.initializers.push({ name, dims, values });
    return name;
  }

  /** Adds an int64 constant, the type ONNX takes for axes, shapes, pads and slice bounds. */
  ints(hint: string, values: readonly number[]): string {
    return this.constant(hint, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  /** Adds a float scalar constant. */
  scalar(hint: string, value: number): string {
    return this.constant(hint, [], Float32Array.of(value));
  }

  op(opType: string, inputs: string[], attributes: OnnxAttribute[] = [], hint = opType): string {
    const output = this.fresh(hint);
    this.nodes.push({ opType, inputs, outputs: [output], attributes });
    return output;
  }

  activation(name: unknown, input: string, layerName: string, rank: number): string {
    switch (name ?? 'linear') {
      case 'linear':
        return input;
      case 'relu':
        return this.op('Relu', [input]);
      case 'relu6':
        return this.clip(input, 0, 6);
      case 'sigmoid':
        return this.op('Sigmoid', [input]);
      case 'tanh':
        return this.op('Tanh', [input]);
      case 'elu':
        return this.op('Elu', [input]);
      case 'softmax':
        // Channels are axis 1 of an NCHW map, and the last axis of a vector.
        return this.op('Softmax', [input], [{ name: 'axis', int: rank === 4 ? 1 : -1 }]);
      case 'swish':
        return this.op('Mul', [input, this.op('Sigmoid', [input])]);
      default:
        throw new UnsupportedLayerError(`activation '${String(name)}' of layer ${layerName}`);
    }
  }

  clip(input: string, min: number, max: number): string {
    return this.op('Clip', [input, this.scalar('min', min), this.scalar('max', max)]);
  }
}

/** Reorders a tfjs HWIO (or HWC-multiplier) filter into ONNX's OIHW. */
function toOihw(values: Float32Array, [height, width, inner, outer]: number[], depthwise: boolean): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let i = 0; i < inner; i++) {
        for (let o = 0; o < outer; o++) {
          const value = values[((y * width + x) * inner + i) * outer + o];
          // A depthwise filter's output channel i * multiplier + o reads input channel i alone.
          const target = depthwise ? (((i * outer + o) * height + y) * width + x) : ((o * inner + i) * height + y) * width + x;
          out[target] = value;
        }
      }
    }
  }
  return out;
}

export function pair(value: unknown): [number, number] {
  return Array.isArray(value) ? [Number(value[0]), Number(value[1])] : [Number(value), Number(value)];
}

function padding(config: Config, layerName: string): OnnxAttribute[] {
  if (config.padding === 'valid') return [];
  if (config.padding === 'same') return [{ name: 'auto_pad', string: 'SAME_UPPER' }];
  throw new UnsupportedLayerError(`padding '${String(config.padding)}' of layer ${layerName}`);
}

function weightsOf(layer: tf.layers.Layer): Array<{ shape: number[]; values: Float32Array }> {
  return layer.getWeights().map((weight) => ({ shape: weight.shape, values: weight.dataSync() as Float32Array }));
}

/** Translates one layer call; returns the name of its output value and that value's rank. */
function translate(builder: GraphBuilder, layer: tf.layers.Layer, inputs: Array<{ name: string; rank: number }>): { name: string; rank: number } {
  const config = layer.getConfig() as Config;
  const className = layer.getClassName();
  const [first] = inputs;
  if ('dataFormat' in config && config.dataFormat !== 'channelsLast') {
    throw new UnsupportedLayerError(`data format '${String(config.dataFormat)}' of layer ${layer.name}`);
  }
  switch (className) {
    case 'Conv2D':
    case 'DepthwiseConv2D': {
      const depthwise = className === 'DepthwiseConv2D';
      const [kernel, bias] = weightsOf(layer);
      const [height, width, inner, outer] = kernel.shape;
      const filter = builder.constant('filter', depthwise ? [inner * outer, 1, height, width] : [outer, inner, height, width], toOihw(kernel.values, kernel.shape, depthwise));
      const attributes: OnnxAttribute[] = [
        { name: 'kernel_shape', ints: [height, width] },
        { name: 'strides', ints: pair(config.strides) },
        { name: 'dilations', ints: pair(config.dilationRate) },
        ...padding(config, layer.name),
        ...(depthwise ? [{ name: 'group', int: inner }] : []),
      ];
      const convInputs = [first.name, filter, ...(bias === undefined ? [] : [builder.constant('bias', bias.shape, bias.values)])];
      return { name: builder.activation(config.activation, builder.op('Conv', convInputs, attributes), layer.name, 4), rank: 4 };
    }
    case 'BatchNormalization': {
      const axis = Number(config.axis);
      if (axis !== -1 && axis !== first.rank - 1) throw new UnsupportedLayerError(`BatchNormalization axis ${axis} of layer ${layer.name}`);
      const weights = weightsOf(layer);
      const channels = weights.at(-1)!.shape[0];
      const gamma = config.scale ? weights.shift()!.values : new Float32Array(channels).fill(1);
      const beta = config.center ? weights.shift()!.values : new Float32Array(channels);
      const [mean, variance] = weights;
      const inputsBn = [first.name, ...[gamma, beta, mean.values, variance.values].map((values) => builder.constant('bn', [channels], values))];
      return { name: builder.op('BatchNormalization', inputsBn, [{ name: 'epsilon', float: Number(config.epsilon) }]), rank: first.rank };
    }
    case 'ReLU': {
      const max = config.maxValue as number | null | undefined;
      return { name: max === null || max === undefined ? builder.op('Relu', [first.name]) : builder.clip(first.name, 0, max), rank: first.rank };
    }
    case 'Activation':
      return { name: builder.activation(config.activation, first.name, layer.name, first.rank), rank: first.rank };
    case 'Add':
      return { name: inputs.slice(1).reduce((sum, input) => builder.op('Add', [sum, input.name]), first.name), rank: first.rank };
    case 'ZeroPadding2D': {
      const [[top, bottom], [left, right]] = config.padding as [[number, number], [number, number]];
      const pads = builder.ints('pads', [0, 0, top, left, 0, 0, bottom, right]);
      return { name: builder.op('Pad', [first.name, pads]), rank: 4 };
    }
    case 'GlobalAveragePooling2D':
      return { name: builder.op('Flatten', [builder.op('GlobalAveragePool', [first.name])]), rank: 2 };
    case 'Dropout':
    case 'SpatialDropout2D':
    case 'GaussianNoise':
    case 'GaussianDropout':
      return first;
    case 'Dense': {
      if (first.rank !== 2) throw new UnsupportedLayerError(`Dense on a rank-${first.rank} input in layer ${layer.name}`);
      const [kernel, bias] = weightsOf(layer);
      const gemmInputs = [first.name, builder.constant('kernel', kernel.shape, kernel.values), ...(bias === undefined ? [] : [builder.constant('bias', bias.shape, bias.values)])];
      return { name: builder.activation(config.activation, builder.op('Gemm', gemmInputs), layer.name, 2), rank: 2 };
    }
    default:
      throw new UnsupportedLayerError(`layer ${layer.name} (${className})`);
  }
}

/**
 * Translates the inference graph of a tfjs layers model, from its single 4-D input to its output,
 * into an ONNX model: BatchNormalization with its moving statistics, dropout as identity. The ONNX
 * model takes NHWC float images and returns an NHWC map, or with `pooled` one vector per image
 * (every output pooled and concatenated), running NCHW inside. Throws `UnsupportedLayerError` for a layer or setting it does not translate.
 */
export function exportOnnx(model: tf.LayersModel, options: ExportOnnxOptions = {}): Uint8Array {
  if (model.inputs.length !== 1 || model.inputs[0].shape.length !== 4) {
    throw new UnsupportedLayerError(`model ${model.name}: only one 4-D input is supported`);
  }
  const builder = new GraphBuilder();
  const [, height, width, channels] = model.inputs[0].shape as number[];
  const values = new Map<number, { name: string; rank: number }>([
    [model.inputs[0].id, { name: builder.op('Transpose', [ONNX_INPUT], [{ name: 'perm', ints: [0, 3, 1, 2] }]), rank: 4 }],
  ]);

  const visit = (tensor: tf.SymbolicTensor): { name: string; rank: number } => {
    const known = values.get(tensor.id);
    if (known !== undefined) return known;
    if (tensor.inputs.length === 0) throw new UnsupportedLayerError(`input ${tensor.name} is not the model's input`);
    const inputs = tensor.inputs.map(visit);
    const value = translate(builder, tensor.sourceLayer as unknown as tf.layers.Layer, inputs);
    values.set(tensor.id, value);
    return value;
  };
  // Deep graphs recurse once per layer; a few hundred layers stay well inside the stack.
  const results = model.outputs.map(visit);

  let output: string;
  let outputDims: Array<number | string>;
  if (options.pooled) {
    // Each map is pooled to one vector; several are concatenated in output order, as poolFeatureMaps does.
    const vectors = results.map((result) => (result.rank === 4 ? builder.op('Flatten', [builder.op('GlobalAveragePool', [result.name])]) : result.name));
    output = vectors.length === 1 ? vectors[0] : builder.op('Concat', vectors, [{ name: 'axis', int: 1 }]);
    outputDims = ['batch', model.outputs.reduce((sum, tensor) => sum + (tensor.shape.at(-1) as number), 0)];
  } else if (results.length > 1) {
    throw new UnsupportedLayerError(`model ${model.name}: several outputs are exported only pooled`);
  } else {
    const [result] = results;
    output = result.rank === 4 ? builder.op('Transpose', [result.name], [{ name: 'perm', ints: [0, 2, 3, 1] }]) : result.name;
    outputDims = ['batch', ...(model.outputs[0].shape.slice(1) as number[])];
  }
  builder.nodes.push({ opType: 'Identity', inputs: [output], outputs: [ONNX_OUTPUT] });

  return encodeOnnxModel({
    name: model.name,
    nodes: builder.nodes,
    initializers: builder.initializers,
    inputs: [{ name: ONNX_INPUT, elementType: ONNX_FLOAT, dims: ['batch', height, width, channels] }],
    outputs: [{ name: ONNX_OUTPUT, elementType: ONNX_FLOAT, dims: outputDims }],
  });
}
