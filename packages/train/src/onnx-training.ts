import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, pair, UnsupportedLayerError } from './onnx-export.js';
import { encodeOnnxModel, ONNX_FLOAT, type OnnxNode } from './onnx-proto.js';
import type { ClassifierHead } from './head.js';

/** Names of the training-step graph's inputs and outputs. */
export const STEP_ACTIVATIONS = 'activations';
export const STEP_TARGETS = 'targets';
export const STEP_DROPOUT_MASK = 'dropout_mask';
export const STEP_SAMPLE_WEIGHTS = 'sample_weights';
export const STEP_LOSS = 'loss';
export const stepWeight = (index: number) => `weight_${index}`;
export const stepGradient = (index: number) => `gradient_${index}`;

/** A value of the step graph: its name, its shape after the batch axis, and whether the loss's gradient must reach it. */
export interface Value {
  name: string;
  shape: number[];
  needsGradient: boolean;
}

type Config = Record<string, unknown>;

/** Batch mean and variance of a BatchNormalization layer run in training mode, as graph values of shape [channels]. */
export interface BatchStatistics {
  layer: tf.layers.Layer;
  mean: string;
  variance: string;
}

/**
 * Builder of a forward pass and its reverse-mode gradient as one ONNX graph. Each translated
 * operation adds its forward nodes at once and queues a closure that adds its backward nodes.
 * Once the loss is in place, `backward` runs the queue in reverse order.
 */
export class StepGraph {
  readonly g: GraphBuilder;
  private readonly pending: Array<() => void> = [];
  private readonly contributions = new Map<string, string[]>();
  /** Gradient value of each trainable weight input. */
  readonly weightGradients = new Map<string, string>();
  /** Graph input name of each trainable weight, by its tfjs variable. */
  readonly inputs: Map<object, string>;
  /** Batch statistics of the BatchNormalization layers translated in training mode, in call order. */
  readonly batchStatistics: BatchStatistics[] = [];

  /**
   * `trainable` weights become inputs named `weight_<i>`, and the graph returns their gradients.
   * `fixed` maps further weights to input names that take their current values without a
   * gradient. Any other weight is a constant. Graphs that share `builder` add their nodes to one
   * ONNX graph, each with its own gradients.
   */
  constructor(trainable: readonly object[], private readonly fixed: ReadonlyMap<object, string> = new Map(), builder = new GraphBuilder()) {
    this.inputs = new Map(trainable.map((weight, i) => [weight, stepWeight(i)]));
    this.g = builder;
  }

  /** Returns the graph name of a weight: an input when it trains or is fixed, else a constant with its values. */
  weight(variable: tf.LayerVariable | tf.Variable, hint: string): { name: string; trains: boolean } {
    const input = this.inputs.get(variable);
    if (input !== undefined) return { name: input, trains: true };
    const fixed = this.fixed.get(variable);
    if (fixed !== undefined) return { name: fixed, trains: false };
    const tensor = variable instanceof tf.Variable ? variable : variable.read();
    return { name: this.g.constant(hint, tensor.shape, tensor.dataSync() as Float32Array), trains: false };
  }

  afterwards(step: () => void): void {
    this.pending.push(step);
  }

  /** Adds one contribution to the gradient of `value`; values that need none ignore it. */
  flow(value: Value, gradient: string): void {
    if (!value.needsGradient) return;
    const parts = this.contributions.get(value.name) ?? [];
    parts.push(gradient);
    this.contributions.set(value.name, parts);
  }

  /** Returns the summed gradient of `value`, or undefined when the loss does not depend on it. */
  gradientOf(value: Value): string | undefined {
    const parts = this.contributions.get(value.name);
    if (parts === undefined) return undefined;
    return parts.slice(1).reduce((sum, part) => this.g.op('Add', [sum, part]), parts[0]);
  }

  /** Records the gradient of a trainable weight; several uses of one weight add up. */
  weightGradient(weight: string, gradient: string): void {
    const earlier = this.weightGradients.get(weight);
    this.weightGradients.set(weight, earlier === undefined ? gradient : this.g.op('Add', [earlier, gradient]));
  }

  backward(): void {
    for (const step of this.pending.reverse()) step();
  }

  /** Sums an NHWC map (or any [..., channels] value) over everything but its channels. */
  sumOverRows(value: string, channels: number): string {
    return this.sumOver(this.reshape(value, [-1, channels]), [0]);
  }

  /** Averages an NHWC map (or any [..., channels] value) over everything but its channels. */
  meanOverRows(value: string, channels: number): string {
    return this.g.op('ReduceMean', [this.reshape(value, [-1, channels])], [{ name: 'axes', ints: [0] }, { name: 'keepdims', int: 0 }]);
  }

  sumOver(value: string, axes: readonly number[]): string {
    return this.g.op('ReduceSum', [value, this.g.ints('axes', axes)], [{ name: 'keepdims', int: 0 }]);
  }

  reshape(value: string, shape: readonly number[]): string {
    return this.g.op('Reshape', [value, this.g.ints('shape', shape)]);
  }

  slice(value: string, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps?: readonly number[]): string {
    const bounds = [this.g.ints('starts', starts), this.g.ints('ends', ends), this.g.ints('axes', axes)];
    return this.g.op('Slice', [value, ...bounds, ...(steps === undefined ? [] : [this.g.ints('steps', steps)])]);
  }

  /** Keeps `gradient` where `condition` is true and puts zero elsewhere. */
  where(condition: string, gradient: string): string {
    return this.g.op('Where', [condition, gradient, this.g.scalar('zero', 0)]);
  }
}

/** Applies ReLU, or ReLU capped at `max`, with its gradient. */
function rectify(graph: StepGraph, x: Value, max: number | null): Value {
  const { g } = graph;
  const forward = max === null ? g.op('Relu', [x.name]) : g.clip(x.name, 0, max);
  return mapValue(graph, x, forward, x.shape, (dy) => {
    let open = g.op('Greater', [x.name, g.scalar('zero', 0)]);
    if (max !== null) open = g.op('And', [open, g.op('Less', [x.name, g.scalar('max', max)])]);
    return graph.where(open, dy);
  });
}

/**
 * Adds a value computed from `x` by a linear map (or one linearised at x), whose gradient
 * `backward` maps from the output's gradient to the input's.
 */
export function mapValue(graph: StepGraph, x: Value, name: string, shape: number[], backward: (dy: string) => string): Value {
  const y: Value = { name, shape, needsGradient: x.needsGradient };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy !== undefined && x.needsGradient) graph.flow(x, backward(dy));
  });
  return y;
}

/** Applies y = f(x) elementwise with the gradient dx = dy * derivative, where `derivative(x, y)` builds f'. */
function elementwise(graph: StepGraph, x: Value, forward: string, derivative: (x: string, y: string) => string): Value {
  return mapValue(graph, x, forward, x.shape, (dy) => graph.g.op('Mul', [dy, derivative(x.name, forward)]));
}

/** Applies LeakyReLU with slope `alpha` below zero, with its gradient. */
export function leakyRelu(graph: StepGraph, x: Value, alpha: number): Value {
  const { g } = graph;
  const forward = g.op('LeakyRelu', [x.name], [{ name: 'alpha', float: alpha }]);
  return mapValue(graph, x, forward, x.shape, (dy) => g.op('Where', [g.op('Greater', [x.name, g.scalar('zero', 0)]), dy, g.op('Mul', [dy, g.scalar('alpha', alpha)])]));
}

/** Applies a layer's activation (linear, relu, relu6, tanh or sigmoid) with its gradient. */
function activate(graph: StepGraph, x: Value, name: unknown, layerName: string): Value {
  const { g } = graph;
  const constantOne = () => g.scalar('one', 1);
  switch (name ?? 'linear') {
    case 'linear':
      return x;
    case 'relu':
      return rectify(graph, x, null);
    case 'relu6':
      return rectify(graph, x, 6);
    case 'tanh':
      return elementwise(graph, x, g.op('Tanh', [x.name]), (_, y) => g.op('Sub', [constantOne(), g.op('Mul', [y, y])]));
    case 'sigmoid':
      return elementwise(graph, x, g.op('Sigmoid', [x.name]), (_, y) => g.op('Mul', [y, g.op('Sub', [constantOne(), y])]));
    default:
      throw new UnsupportedLayerError(`activation '${String(name)}' of layer ${layerName} in a training step`);
  }
}

/**
 * Geometry of a strided convolution between a large map and a small one. Padding the large map by
 * `pads` ([top, left, bottom, right]) and reading it at every stride of each kernel tap gives the
 * small map. A convolution's input is the large map, and so is a transposed convolution's output.
 */
interface TapGeometry {
  kernel: [number, number];
  strides: [number, number];
  large: [number, number];
  small: [number, number];
  pads: [number, number, number, number];
}

/** Returns the geometry of a convolution of a `large` input with tfjs's `valid` or `same` padding. */
function convolutionGeometry(large: [number, number], kernel: [number, number], strides: [number, number], padding: unknown, layerName: string): TapGeometry {
  if (padding === 'valid') {
    const small: [number, number] = [Math.ceil((large[0] - kernel[0] + 1) / strides[0]), Math.ceil((large[1] - kernel[1] + 1) / strides[1])];
    return { kernel, strides, large, small, pads: [0, 0, 0, 0] };
  }
  if (padding !== 'same') throw new UnsupportedLayerError(`padding '${String(padding)}' of layer ${layerName}`);
  const small: [number, number] = [Math.ceil(large[0] / strides[0]), Math.ceil(large[1] / strides[1])];
  const padY = Math.max((small[0] - 1) * strides[0] + kernel[0] - large[0], 0);
  const padX = Math.max((small[1] - 1) * strides[1] + kernel[1] - large[1], 0);
  return { kernel, strides, large, small, pads: [Math.floor(padY / 2), Math.floor(padX / 2), padY - Math.floor(padY / 2), padX - Math.floor(padX / 2)] };
}

/** Returns whether the taps of `geometry` are the map itself: a 1x1 kernel, stride 1, no padding. */
function isPointwise(geometry: TapGeometry): boolean {
  return geometry.kernel.every((size) => size === 1) && geometry.strides.every((stride) => stride === 1) && geometry.pads.every((pad) => pad === 0);
}

/** Reads a large map at every kernel tap: one strided slice of the padded map per tap, row-major. */
function readTaps(graph: StepGraph, large: string, geometry: TapGeometry): string[] {
  const { g } = graph;
  if (isPointwise(geometry)) return [large];
  const [top, left, bottom, right] = geometry.pads;
  const padded = top + left + bottom + right > 0 ? g.op('Pad', [large, g.ints('pads', [0, top, left, 0, 0, bottom, right, 0])]) : large;
  const [strideY, strideX] = geometry.strides;
  const [smallHeight, smallWidth] = geometry.small;
  const slices: string[] = [];
  for (let row = 0; row < geometry.kernel[0]; row++) {
    for (let column = 0; column < geometry.kernel[1]; column++) {
      slices.push(graph.slice(padded, [row, column], [row + (smallHeight - 1) * strideY + 1, column + (smallWidth - 1) * strideX + 1], [1, 2], [strideY, strideX]));
    }
  }
  return slices;
}

/**
 * Writes one small map per kernel tap back at that tap's offset and stride and sums them into a
 * large map of `channels` channels, cropped to the unpadded size: the transpose of `readTaps`.
 */
function writeTaps(graph: StepGraph, shares: readonly string[], geometry: TapGeometry, channels: number): string {
  const { g } = graph;
  if (isPointwise(geometry)) return shares[0];
  const [strideY, strideX] = geometry.strides;
  const [smallHeight, smallWidth] = geometry.small;
  const [top, left, bottom, right] = geometry.pads;
  const [paddedHeight, paddedWidth] = [geometry.large[0] + top + bottom, geometry.large[1] + left + right];
  const [spanY, spanX] = [(smallHeight - 1) * strideY + 1, (smallWidth - 1) * strideX + 1];
  const placed = shares.map((share, tap) => {
    const [row, column] = [Math.floor(tap / geometry.kernel[1]), tap % geometry.kernel[1]];
    let spreadShare = share;
    if (strideY > 1 || strideX > 1) {
      // Spread the rows and columns apart: [n, h, 1, w, 1, c] padded to [n, h, sy, w, sx, c], then trimmed.
      const spread = g.op('Pad', [graph.reshape(share, [0, smallHeight, 1, smallWidth, 1, channels]), g.ints('pads', [0, 0, 0, 0, 0, 0, 0, 0, strideY - 1, 0, strideX - 1, 0])]);
      spreadShare = graph.slice(graph.reshape(spread, [0, smallHeight * strideY, smallWidth * strideX, channels]), [0, 0], [spanY, spanX], [1, 2]);
    }
    return g.op('Pad', [spreadShare, g.ints('pads', [0, row, column, 0, 0, paddedHeight - spanY - row, paddedWidth - spanX - column, 0])]);
  });
  const total = placed.slice(1).reduce((sum, share) => g.op('Add', [sum, share]), placed[0]);
  return top + left + bottom + right > 0 ? graph.slice(total, [top, left], [top + geometry.large[0], left + geometry.large[1]], [1, 2]) : total;
}

/** Returns each tap's filter of an HWIO kernel, row-major: `[in]` for depthwise, else `[in, out]`. */
function tapFilters(graph: StepGraph, kernel: string, [kernelHeight, kernelWidth, inner, outer]: number[], depthwise: boolean): string[] {
  const shape = depthwise ? [inner] : [inner, outer];
  if (kernelHeight === 1 && kernelWidth === 1) return [graph.reshape(kernel, shape)];
  const filters: string[] = [];
  for (let row = 0; row < kernelHeight; row++) {
    for (let column = 0; column < kernelWidth; column++) filters.push(graph.reshape(graph.slice(kernel, [row, column], [row + 1, column + 1], [0, 1]), shape));
  }
  return filters;
}

/** Stacks per-tap filter gradients, row-major, into the kernel's shape. */
function stackTaps(graph: StepGraph, perTap: readonly string[], kernelShape: number[]): string {
  // Taps stacked along axis 0 are the kernel's own [height, width, ...] order.
  const stacked = perTap.length === 1 ? perTap[0] : graph.g.op('Concat', [...perTap], [{ name: 'axis', int: 0 }]);
  return graph.reshape(stacked, kernelShape);
}

const CHANNELS_FIRST = [0, 3, 1, 2];
const CHANNELS_LAST = [0, 2, 3, 1];
/** From an HWIO (or HW-out-in) kernel to ONNX's [first, second, height, width] order. */
const KERNEL_TO_ONNX = [3, 2, 0, 1];
/** Back from ONNX's kernel order to tfjs's. */
const KERNEL_FROM_ONNX = [2, 3, 0, 1];

function transpose(graph: StepGraph, value: string, perm: number[]): string {
  return graph.g.op('Transpose', [value], [{ name: 'perm', ints: perm }]);
}

/** Attributes of ONNX's Conv and ConvTranspose for a geometry: strides and [top, left, bottom, right] pads. */
function convolutionAttributes(geometry: TapGeometry) {
  return [
    { name: 'strides', ints: geometry.strides },
    { name: 'pads', ints: geometry.pads },
  ];
}

/**
 * ONNX's ConvTranspose from the small map to the large one (NCHW), the transpose of Conv with the
 * same weights [small channels, large channels, height, width]; output padding restores rows and
 * columns that the strided convolution never read.
 */
function convolutionTranspose(graph: StepGraph, small: string, weights: string, geometry: TapGeometry): string {
  const [kernelHeight, kernelWidth] = geometry.kernel;
  const [top, left, bottom, right] = geometry.pads;
  const outputPadding = [
    geometry.large[0] - ((geometry.small[0] - 1) * geometry.strides[0] + kernelHeight - top - bottom),
    geometry.large[1] - ((geometry.small[1] - 1) * geometry.strides[1] + kernelWidth - left - right),
  ];
  return graph.g.op('ConvTranspose', [small, weights], [...convolutionAttributes(geometry), { name: 'output_padding', ints: outputPadding }]);
}

/**
 * Gradient of a strided convolution's kernel from its large map and the gradient at its small map
 * (both NCHW): a convolution over the batch, with the small map as the kernel dilated by the
 * strides. Returns [large channels, small channels, height, width].
 */
function kernelGradient(graph: StepGraph, large: string, small: string, geometry: TapGeometry): string {
  const swapped = (value: string) => transpose(graph, value, [1, 0, 2, 3]);
  const [top, left, bottom, right] = geometry.pads;
  const reach = [geometry.large[0] + top + bottom - (geometry.small[0] - 1) * geometry.strides[0], geometry.large[1] + left + right - (geometry.small[1] - 1) * geometry.strides[1]];
  const full = graph.g.op('Conv', [swapped(large), swapped(small)], [{ name: 'dilations', ints: geometry.strides }, { name: 'pads', ints: geometry.pads }]);
  // With 'valid' padding the last rows and columns that no output read give taps past the kernel.
  return reach[0] === geometry.kernel[0] && reach[1] === geometry.kernel[1] ? full : graph.slice(full, [0, 0], geometry.kernel, [2, 3]);
}

/**
 * Translates a dense convolution with ONNX's own Conv on NCHW maps. Its input gradient is the
 * ConvTranspose with the same weights and its kernel gradient is `kernelGradient`, so a 4x4
 * stride-2 convolution costs three library calls instead of a graph per kernel tap.
 */
function nativeConvolution(graph: StepGraph, layer: tf.layers.Layer, x: Value, geometry: TapGeometry): Value {
  const { g } = graph;
  const [kernelVariable, biasVariable] = layer.weights;
  const kernelShape = kernelVariable.shape as number[];
  const outer = kernelShape[3];
  const kernel = graph.weight(kernelVariable, 'kernel');
  const weights = transpose(graph, kernel.name, KERNEL_TO_ONNX);
  const input = transpose(graph, x.name, CHANNELS_FIRST);
  let sum = transpose(graph, g.op('Conv', [input, weights], convolutionAttributes(geometry)), CHANNELS_LAST);
  const bias = biasVariable === undefined ? null : graph.weight(biasVariable, 'bias');
  if (bias !== null) sum = g.op('Add', [sum, bias.name]);
  const linear: Value = { name: sum, shape: [...geometry.small, outer], needsGradient: x.needsGradient || kernel.trains || bias?.trains === true };
  graph.afterwards(() => {
    const dy = graph.gradientOf(linear);
    if (dy === undefined) return;
    if (bias?.trains) graph.weightGradient(bias.name, graph.sumOverRows(dy, outer));
    const dyFirst = transpose(graph, dy, CHANNELS_FIRST);
    if (kernel.trains) graph.weightGradient(kernel.name, transpose(graph, kernelGradient(graph, input, dyFirst, geometry), KERNEL_FROM_ONNX));
    if (x.needsGradient) graph.flow(x, transpose(graph, convolutionTranspose(graph, dyFirst, weights, geometry), CHANNELS_LAST));
  });
  return activate(graph, linear, (layer.getConfig() as Config).activation, layer.name);
}

/**
 * Translates a convolution (dense or depthwise) in NHWC as a sum over its kernel taps. Each tap is
 * a strided slice of the padded input times that tap's filter: a matrix product for Conv2D, a
 * channel-wise product for DepthwiseConv2D. The backward pass runs the same taps in reverse. Each
 * tap's filter gradient sums slice x output gradient, and the input gradient places each tap's
 * share back at its offset. A MobileNet tail has 1x1 and 3x3 kernels on maps of a few pixels, so
 * the slices stay small.
 */
function convolution(graph: StepGraph, layer: tf.layers.Layer, x: Value): Value {
  const { g } = graph;
  const config = layer.getConfig() as Config;
  const depthwise = layer.getClassName() === 'DepthwiseConv2D';
  const [kernelVariable, biasVariable] = layer.weights;
  const kernelShape = kernelVariable.shape as number[];
  const [kernelHeight, kernelWidth, inner, outer] = kernelShape;
  if (depthwise && outer !== 1) throw new UnsupportedLayerError(`depth multiplier ${outer} of layer ${layer.name} in a training step`);
  if (pair(config.dilationRate).some((rate) => rate !== 1)) throw new UnsupportedLayerError(`dilation of layer ${layer.name} in a training step`);
  const geometry = convolutionGeometry([x.shape[0], x.shape[1]], [kernelHeight, kernelWidth], pair(config.strides), config.padding, layer.name);
  if (!depthwise && !isPointwise(geometry)) return nativeConvolution(graph, layer, x, geometry);
  const channels = depthwise ? inner : outer;

  const kernel = graph.weight(kernelVariable, 'kernel');
  const inputs = readTaps(graph, x.name, geometry);
  const filters = tapFilters(graph, kernel.name, kernelShape, depthwise);
  const terms = inputs.map((input, tap) => g.op(depthwise ? 'Mul' : 'MatMul', [input, filters[tap]]));
  let sum = terms.slice(1).reduce((total, term) => g.op('Add', [total, term]), terms[0]);
  const bias = biasVariable === undefined ? null : graph.weight(biasVariable, 'bias');
  if (bias !== null) sum = g.op('Add', [sum, bias.name]);
  const linear: Value = { name: sum, shape: [...geometry.small, channels], needsGradient: x.needsGradient || kernel.trains || bias?.trains === true };

  graph.afterwards(() => {
    const dy = graph.gradientOf(linear);
    if (dy === undefined) return;
    if (bias?.trains) graph.weightGradient(bias.name, graph.sumOverRows(dy, channels));
    if (kernel.trains) {
      const perTap = inputs.map((input) =>
        depthwise
          ? graph.sumOverRows(g.op('Mul', [input, dy]), inner)
          : g.op('Gemm', [graph.reshape(input, [-1, inner]), graph.reshape(dy, [-1, outer])], [{ name: 'transA', int: 1 }]),
      );
      graph.weightGradient(kernel.name, stackTaps(graph, perTap, kernelShape));
    }
    if (!x.needsGradient) return;
    const shares = filters.map((filter) => (depthwise ? g.op('Mul', [dy, filter]) : g.op('MatMul', [dy, g.op('Transpose', [filter])])));
    graph.flow(x, writeTaps(graph, shares, geometry, inner));
  });
  return activate(graph, linear, config.activation, layer.name);
}

/**
 * Translates a transposed convolution (Conv2DTranspose) with ONNX's ConvTranspose on NCHW maps.
 * Its input gradient is the Conv with the same weights, and its kernel gradient is
 * `kernelGradient` with the output as the large map.
 */
function transposedConvolution(graph: StepGraph, layer: tf.layers.Layer, x: Value): Value {
  const { g } = graph;
  const config = layer.getConfig() as Config;
  const [kernelVariable, biasVariable] = layer.weights;
  // tfjs stores a transposed kernel as [height, width, output channels, input channels].
  const [kernelHeight, kernelWidth, outputs] = kernelVariable.shape as number[];
  // tfjs's Conv2DTranspose config has no dilation rate; one given anyway must be 1.
  if (config.dilationRate !== undefined && pair(config.dilationRate).some((rate) => rate !== 1)) throw new UnsupportedLayerError(`dilation of layer ${layer.name} in a training step`);
  const strides = pair(config.strides);
  const [height, width] = x.shape;
  const large: [number, number] =
    config.padding === 'same' ? [height * strides[0], width * strides[1]] : [(height - 1) * strides[0] + kernelHeight, (width - 1) * strides[1] + kernelWidth];
  const geometry = convolutionGeometry(large, [kernelHeight, kernelWidth], strides, config.padding, layer.name);

  const kernel = graph.weight(kernelVariable, 'kernel');
  // [input channels, output channels, height, width]: ConvTranspose's order, and Conv's for the way back.
  const weights = transpose(graph, kernel.name, KERNEL_TO_ONNX);
  const input = transpose(graph, x.name, CHANNELS_FIRST);
  let sum = transpose(graph, convolutionTranspose(graph, input, weights, geometry), CHANNELS_LAST);
  const bias = biasVariable === undefined ? null : graph.weight(biasVariable, 'bias');
  if (bias !== null) sum = g.op('Add', [sum, bias.name]);
  const linear: Value = { name: sum, shape: [...large, outputs], needsGradient: x.needsGradient || kernel.trains || bias?.trains === true };

  graph.afterwards(() => {
    const dy = graph.gradientOf(linear);
    if (dy === undefined) return;
    if (bias?.trains) graph.weightGradient(bias.name, graph.sumOverRows(dy, outputs));
    const dyFirst = transpose(graph, dy, CHANNELS_FIRST);
    if (kernel.trains) graph.weightGradient(kernel.name, transpose(graph, kernelGradient(graph, dyFirst, input, geometry), KERNEL_FROM_ONNX));
    if (x.needsGradient) graph.flow(x, transpose(graph, g.op('Conv', [dyFirst, weights], convolutionAttributes(geometry)), CHANNELS_LAST));
  });
  return activate(graph, linear, config.activation, layer.name);
}

/** BatchNormalization in inference mode: its moving statistics stay fixed, its scale and offset may train. */
function batchNormalization(graph: StepGraph, layer: tf.layers.Layer, x: Value): Value {
  const config = layer.getConfig() as Config;
  const axis = Number(config.axis);
  if (axis !== -1 && axis !== x.shape.length) throw new UnsupportedLayerError(`BatchNormalization axis ${axis} of layer ${layer.name}`);
  const weights = [...layer.weights];
  const channels = weights.at(-1)!.shape[0] as number;
  const gamma = config.scale ? weights.shift()! : null;
  const beta = config.center ? weights.shift()! : null;
  const [mean, variance] = weights.map((weight) => weight.read().dataSync() as Float32Array);
  const inverse = Float32Array.from(variance, (value) => 1 / Math.sqrt(value + Number(config.epsilon)));
  const scale = gamma === null ? null : graph.weight(gamma, 'gamma');
  const offset = beta === null ? null : graph.weight(beta, 'beta');
  const { g } = graph;
  const meanValues = g.constant('mean', [channels], mean);
  const inverseValues = g.constant('inverse', [channels], inverse);

  // y = x * factor + shift with factor = gamma / sqrt(variance + epsilon) and shift = beta - mean * factor,
  // both per channel, so the map itself is read twice.
  const factor = scale === null ? inverseValues : g.op('Mul', [scale.name, inverseValues]);
  const shifted = g.op('Mul', [meanValues, factor]);
  const shift = offset === null ? g.op('Neg', [shifted]) : g.op('Sub', [offset.name, shifted]);
  const y: Value = { name: g.op('Add', [g.op('Mul', [x.name, factor]), shift]), shape: x.shape, needsGradient: x.needsGradient || scale?.trains === true || offset?.trains === true };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy === undefined) return;
    const dyTotal = graph.sumOverRows(dy, channels);
    if (offset?.trains) graph.weightGradient(offset.name, dyTotal);
    if (scale?.trains) {
      // d gamma = sum(dy (x - mean)) / sqrt(variance + epsilon), without the centred map.
      const dyTimesX = graph.sumOverRows(g.op('Mul', [dy, x.name]), channels);
      graph.weightGradient(scale.name, g.op('Mul', [g.op('Sub', [dyTimesX, g.op('Mul', [dyTotal, meanValues])]), inverseValues]));
    }
    if (x.needsGradient) graph.flow(x, g.op('Mul', [dy, factor]));
  });
  return y;
}

/**
 * BatchNormalization in training mode: it normalises with the batch's own mean and (biased)
 * variance over every axis but the channels, as tfjs does in training, and records them in
 * `graph.batchStatistics` so that the caller can update the moving statistics.
 */
function trainingBatchNormalization(graph: StepGraph, layer: tf.layers.Layer, x: Value): Value {
  const config = layer.getConfig() as Config;
  const axis = Number(config.axis);
  if (axis !== -1 && axis !== x.shape.length) throw new UnsupportedLayerError(`BatchNormalization axis ${axis} of layer ${layer.name}`);
  const { g } = graph;
  const weights = [...layer.weights];
  const channels = weights.at(-1)!.shape[0] as number;
  const scale = config.scale ? graph.weight(weights.shift()!, 'gamma') : null;
  const offset = config.center ? graph.weight(weights.shift()!, 'beta') : null;
  const mean = graph.meanOverRows(x.name, channels);
  const centred = g.op('Sub', [x.name, mean]);
  const variance = graph.meanOverRows(g.op('Mul', [centred, centred]), channels);
  const inverse = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.scalar('epsilon', Number(config.epsilon))])])]);
  const normalised = g.op('Mul', [centred, inverse]);
  let output = scale === null ? normalised : g.op('Mul', [normalised, scale.name]);
  if (offset !== null) output = g.op('Add', [output, offset.name]);
  graph.batchStatistics.push({ layer, mean, variance });
  const y: Value = { name: output, shape: x.shape, needsGradient: x.needsGradient || scale?.trains === true || offset?.trains === true };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy === undefined) return;
    if (offset?.trains) graph.weightGradient(offset.name, graph.sumOverRows(dy, channels));
    if (scale?.trains) graph.weightGradient(scale.name, graph.sumOverRows(g.op('Mul', [dy, normalised]), channels));
    if (!x.needsGradient) return;
    // dx = (d - mean(d) - n * mean(d n)) / sqrt(variance + epsilon), with d = dy * gamma and n the normalised map.
    const dNormalised = scale === null ? dy : g.op('Mul', [dy, scale.name]);
    const spread = g.op('Add', [graph.meanOverRows(dNormalised, channels), g.op('Mul', [normalised, graph.meanOverRows(g.op('Mul', [dNormalised, normalised]), channels)])]);
    graph.flow(x, g.op('Mul', [g.op('Sub', [dNormalised, spread]), inverse]));
  });
  return y;
}

/** Dense on vectors: x W + b, then the layer's activation. */
function dense(graph: StepGraph, layer: tf.layers.Layer, x: Value): Value {
  const { g } = graph;
  const config = layer.getConfig() as Config;
  if (x.shape.length !== 1) throw new UnsupportedLayerError(`Dense layer ${layer.name} on a ${x.shape.length + 1}-D input in a training step`);
  const [kernelVariable, biasVariable] = layer.weights;
  const outer = kernelVariable.shape[1] as number;
  const kernel = graph.weight(kernelVariable, 'kernel');
  const bias = biasVariable === undefined ? null : graph.weight(biasVariable, 'bias');
  let sum = g.op('MatMul', [x.name, kernel.name]);
  if (bias !== null) sum = g.op('Add', [sum, bias.name]);
  const linear: Value = { name: sum, shape: [outer], needsGradient: x.needsGradient || kernel.trains || bias?.trains === true };
  graph.afterwards(() => {
    const dy = graph.gradientOf(linear);
    if (dy === undefined) return;
    if (bias?.trains) graph.weightGradient(bias.name, graph.sumOver(dy, [0]));
    if (kernel.trains) graph.weightGradient(kernel.name, g.op('Gemm', [x.name, dy], [{ name: 'transA', int: 1 }]));
    if (x.needsGradient) graph.flow(x, g.op('Gemm', [dy, kernel.name], [{ name: 'transB', int: 1 }]));
  });
  return activate(graph, linear, config.activation, layer.name);
}

/** Concatenates along the last axis; the gradient is sliced back into the inputs' parts. */
function concatenate(graph: StepGraph, layer: tf.layers.Layer, inputs: Value[]): Value {
  const { g } = graph;
  const rank = inputs[0].shape.length;
  const axis = Number((layer.getConfig() as Config).axis ?? -1);
  if (axis !== -1 && axis !== rank) throw new UnsupportedLayerError(`Concatenate axis ${axis} of layer ${layer.name} in a training step`);
  const sizes = inputs.map((input) => input.shape[rank - 1]);
  const y: Value = {
    name: g.op('Concat', inputs.map((input) => input.name), [{ name: 'axis', int: -1 }]),
    shape: [...inputs[0].shape.slice(0, -1), sizes.reduce((sum, size) => sum + size, 0)],
    needsGradient: inputs.some((input) => input.needsGradient),
  };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy === undefined) return;
    let start = 0;
    inputs.forEach((input, i) => {
      graph.flow(input, graph.slice(dy, [start], [start + sizes[i]], [rank]));
      start += sizes[i];
    });
  });
  return y;
}

/** Gives each example a new shape; the gradient takes the old one back. */
function reshapeValue(graph: StepGraph, x: Value, shape: number[]): Value {
  return mapValue(graph, x, graph.reshape(x.name, [-1, ...shape]), shape, (dy) => graph.reshape(dy, [-1, ...x.shape]));
}

/** Dot product of two vectors per example (Dot with axes 1), shaped [1]. */
function dot(graph: StepGraph, layer: tf.layers.Layer, [a, b]: Value[]): Value {
  const { g } = graph;
  const config = layer.getConfig() as Config;
  const axes = Array.isArray(config.axes) ? config.axes : [config.axes, config.axes];
  if (a.shape.length !== 1 || b.shape.length !== 1 || axes.some((axis) => axis !== 1 && axis !== -1) || config.normalize) {
    throw new UnsupportedLayerError(`Dot layer ${layer.name} other than an unnormalised product of vectors in a training step`);
  }
  const y: Value = { name: g.op('ReduceSum', [g.op('Mul', [a.name, b.name]), g.ints('axes', [1])], [{ name: 'keepdims', int: 1 }]), shape: [1], needsGradient: a.needsGradient || b.needsGradient };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy === undefined) return;
    graph.flow(a, g.op('Mul', [dy, b.name]));
    graph.flow(b, g.op('Mul', [dy, a.name]));
  });
  return y;
}

/** Translates a layer that the caller knows and this module does not, such as a custom layer. */
export type LayerTranslator = (graph: StepGraph, layer: tf.layers.Layer, inputs: Value[]) => Value;

/** Options of `translateModel`. */
export interface TranslateOptions {
  /** Mode of BatchNormalization layers; default `inference` (moving statistics). */
  batchNorm?: 'inference' | 'training';
  /** Translators of further layer classes, by class name. */
  layers?: Readonly<Record<string, LayerTranslator>>;
}

/** Translates one layer call, with its gradient. */
function translateTrainable(graph: StepGraph, layer: tf.layers.Layer, inputs: Value[], options: TranslateOptions): Value {
  const config = layer.getConfig() as Config;
  const className = layer.getClassName();
  const [first] = inputs;
  if ('dataFormat' in config && config.dataFormat !== 'channelsLast') throw new UnsupportedLayerError(`data format of layer ${layer.name}`);
  const custom = options.layers?.[className];
  if (custom !== undefined) return custom(graph, layer, inputs);
  switch (className) {
    case 'Conv2D':
    case 'DepthwiseConv2D':
      return convolution(graph, layer, first);
    case 'Conv2DTranspose':
      return transposedConvolution(graph, layer, first);
    case 'BatchNormalization':
      return options.batchNorm === 'training' ? trainingBatchNormalization(graph, layer, first) : batchNormalization(graph, layer, first);
    case 'Dense':
      return dense(graph, layer, first);
    case 'Concatenate':
      return concatenate(graph, layer, inputs);
    case 'Reshape':
      return reshapeValue(graph, first, config.targetShape as number[]);
    case 'Flatten':
      return reshapeValue(graph, first, [first.shape.reduce((product, size) => product * size, 1)]);
    case 'Dot':
      return dot(graph, layer, inputs);
    case 'LeakyReLU':
      return leakyRelu(graph, first, Number(config.alpha ?? 0.3));
    case 'ReLU': {
      if (Number(config.negativeSlope ?? 0) !== 0 || Number(config.threshold ?? 0) !== 0) throw new UnsupportedLayerError(`leaky or thresholded ReLU ${layer.name}`);
      const max = config.maxValue as number | null | undefined;
      return rectify(graph, first, max ?? null);
    }
    case 'Activation':
      return activate(graph, first, config.activation, layer.name);
    case 'Add': {
      const y: Value = { name: inputs.slice(1).reduce((sum, input) => graph.g.op('Add', [sum, input.name]), first.name), shape: first.shape, needsGradient: inputs.some((input) => input.needsGradient) };
      graph.afterwards(() => {
        const dy = graph.gradientOf(y);
        if (dy !== undefined) inputs.forEach((input) => graph.flow(input, dy));
      });
      return y;
    }
    case 'ZeroPadding2D': {
      const [[top, bottom], [left, right]] = config.padding as [[number, number], [number, number]];
      const [height, width, channels] = first.shape;
      const y: Value = { name: graph.g.op('Pad', [first.name, graph.g.ints('pads', [0, top, left, 0, 0, bottom, right, 0])]), shape: [height + top + bottom, width + left + right, channels], needsGradient: first.needsGradient };
      graph.afterwards(() => {
        const dy = graph.gradientOf(y);
        if (dy !== undefined) graph.flow(first, graph.slice(dy, [top, left], [top + height, left + width], [1, 2]));
      });
      return y;
    }
    case 'Dropout':
    case 'SpatialDropout2D':
    case 'GaussianNoise':
    case 'GaussianDropout':
      return first;
    default:
      throw new UnsupportedLayerError(`layer ${layer.name} (${className}) in a training step`);
  }
}

/**
 * Translates a model's layers from the given input values to its outputs, queueing the gradient
 * of every step, and returns one value per model output. Throws `UnsupportedLayerError` for a
 * layer it does not differentiate.
 */
export function translateModel(graph: StepGraph, model: tf.LayersModel, inputs: readonly Value[], options: TranslateOptions = {}): Value[] {
  const values = new Map<number, Value>(model.inputs.map((input, i) => [input.id, inputs[i]]));
  const visit = (tensor: tf.SymbolicTensor): Value => {
    const known = values.get(tensor.id);
    if (known !== undefined) return known;
    if (tensor.inputs.length === 0) throw new UnsupportedLayerError(`input ${tensor.name} is not an input of model ${model.name}`);
    const value = translateTrainable(graph, tensor.sourceLayer as unknown as tf.layers.Layer, tensor.inputs.map(visit), options);
    values.set(tensor.id, value);
    return value;
  };
  return model.outputs.map(visit);
}

/**
 * Translates a tail from its 4-D input to its average-pooled output, queueing the gradient of
 * every step. Throws `UnsupportedLayerError` for a layer it does not differentiate.
 */
function translateTail(graph: StepGraph, tail: tf.LayersModel): { inputShape: number[]; pooled: Value } {
  if (tail.inputs.length !== 1 || tail.inputs[0].shape.length !== 4 || tail.outputs.length !== 1 || tail.outputs[0].shape.length !== 4) {
    throw new UnsupportedLayerError(`model ${tail.name}: a training step needs one 4-D input and one 4-D output`);
  }
  const { g } = graph;
  const inputShape = tail.inputs[0].shape.slice(1) as number[];
  const [mapped] = translateModel(graph, tail, [{ name: STEP_ACTIVATIONS, shape: inputShape, needsGradient: false }]);
  const [mapHeight, mapWidth, featureSize] = mapped.shape;
  const pooled: Value = { name: g.op('ReduceMean', [mapped.name], [{ name: 'axes', ints: [1, 2] }, { name: 'keepdims', int: 0 }]), shape: [featureSize], needsGradient: mapped.needsGradient };
  graph.afterwards(() => {
    const dy = graph.gradientOf(pooled);
    if (dy === undefined) return;
    const spread = g.constant('spread', [1, mapHeight, mapWidth, 1], new Float32Array(mapHeight * mapWidth).fill(1 / (mapHeight * mapWidth)));
    graph.flow(mapped, g.op('Mul', [graph.reshape(dy, [-1, 1, 1, featureSize]), spread]));
  });
  return { inputShape, pooled };
}

/** Name of the pooled features that `exportTailFeatures` returns. */
export const TAIL_FEATURES = 'features';

/**
 * Writes the tail's inference pass to pooled features as an ONNX graph that takes the tail's
 * trainable weights as inputs, in the order of `tail.trainableWeights`, so that one session
 * serves every epoch of fine-tuning.
 */
export function exportTailFeatures(tail: tf.LayersModel): Uint8Array {
  const tailWeights = tail.trainableWeights;
  const graph = new StepGraph(tailWeights);
  const { inputShape, pooled } = translateTail(graph, tail);
  graph.g.nodes.push({ opType: 'Identity', inputs: [pooled.name], outputs: [TAIL_FEATURES] });
  return encodeOnnxModel({
    name: `${tail.name}_features`,
    nodes: graph.g.nodes,
    initializers: graph.g.initializers,
    inputs: [
      { name: STEP_ACTIVATIONS, elementType: ONNX_FLOAT, dims: ['batch', ...inputShape] },
      ...tailWeights.map((weight, i) => ({ name: stepWeight(i), elementType: ONNX_FLOAT, dims: weight.shape as number[] })),
    ],
    outputs: [{ name: TAIL_FEATURES, elementType: ONNX_FLOAT, dims: ['batch', ...pooled.shape] }],
  });
}

/** A training-step graph and the shapes of the weights it takes and differentiates. */
export interface TrainingStepGraph {
  bytes: Uint8Array;
  /** Shape of each weight input: the tail's trainable weights, then the head's. */
  weightShapes: number[][];
  /** Whether the graph takes a dropout mask (heads with a hidden layer). */
  takesDropoutMask: boolean;
}

/** Options of `exportTrainingStep`. */
export interface TrainingStepOptions {
  /**
   * Weight each row's loss by a `sample_weights` input and divide by the count of nonzero weights
   * (tfjs's SUM_BY_NONZERO_WEIGHTS), as `trainHead` does for class weights. Default false: the mean.
   */
  sampleWeights?: boolean;
}

/**
 * Writes one training step as an ONNX graph. The graph runs the tail in inference mode from its
 * 4-D input and average pooling, or takes pooled features when `tail` is a feature size. Then it
 * runs the classifier head with a dropout mask and the softmax cross-entropy over every member's
 * rows. It returns that loss and its gradient with respect to the tail's trainable weights
 * followed by the head's, as `fineTune` and `trainHead` train them. Those weights are inputs and
 * every other weight is a constant. Throws `UnsupportedLayerError` for a layer it does not
 * differentiate.
 */
export function exportTrainingStep(tail: tf.LayersModel | number, head: ClassifierHead, options: TrainingStepOptions = {}): TrainingStepGraph {
  const tailWeights = typeof tail === 'number' ? [] : tail.trainableWeights;
  const graph = new StepGraph([...tailWeights, ...head.weights]);
  const { g } = graph;
  const { inputShape, pooled } =
    typeof tail === 'number' ? { inputShape: [tail], pooled: { name: STEP_ACTIVATIONS, shape: [tail], needsGradient: false } } : translateTail(graph, tail);
  const featureSize = pooled.shape[0];
  const inverseStd = g.constant('inverse_std', [featureSize], Float32Array.from(head.std, (value) => 1 / value));
  const standardised = g.op('Mul', [g.op('Sub', [pooled.name, g.constant('mean', [featureSize], head.mean)]), inverseStd]);

  const { members, numClasses } = head;
  const hiddenUnits = head.hiddenUnits;
  const [kernel, bias] = [graph.weight(head.weights[0], 'head_kernel'), graph.weight(head.weights[1], 'head_bias')];
  const firstLayer = g.op('Add', [g.op('MatMul', [standardised, kernel.name]), bias.name]);
  let logits: string;
  let backToFirstLayer: (dLogits: string) => string;
  if (hiddenUnits > 0) {
    const units = hiddenUnits / members;
    const [outputKernel, outputBias] = [graph.weight(head.weights[2], 'output_kernel'), graph.weight(head.weights[3], 'output_bias')];
    const hidden = g.op('Mul', [g.op('Relu', [firstLayer]), STEP_DROPOUT_MASK]);
    const perMember = g.op('Transpose', [graph.reshape(hidden, [-1, members, units])], [{ name: 'perm', ints: [1, 0, 2] }]);
    logits = g.op('Add', [g.op('MatMul', [perMember, outputKernel.name]), graph.reshape(outputBias.name, [members, 1, numClasses])]);
    backToFirstLayer = (dLogits) => {
      graph.weightGradient(outputBias.name, graph.sumOver(dLogits, [1]));
      graph.weightGradient(outputKernel.name, g.op('MatMul', [g.op('Transpose', [perMember], [{ name: 'perm', ints: [0, 2, 1] }]), dLogits]));
      const dPerMember = g.op('MatMul', [dLogits, g.op('Transpose', [outputKernel.name], [{ name: 'perm', ints: [0, 2, 1] }])]);
      const dHidden = g.op('Mul', [graph.reshape(g.op('Transpose', [dPerMember], [{ name: 'perm', ints: [1, 0, 2] }]), [-1, hiddenUnits]), STEP_DROPOUT_MASK]);
      return graph.where(g.op('Greater', [firstLayer, g.scalar('zero', 0)]), dHidden);
    };
  } else {
    logits = g.op('Transpose', [graph.reshape(firstLayer, [-1, members, numClasses])], [{ name: 'perm', ints: [1, 0, 2] }]);
    backToFirstLayer = (dLogits) => graph.reshape(g.op('Transpose', [dLogits], [{ name: 'perm', ints: [1, 0, 2] }]), [-1, members * numClasses]);
  }

  // Cross-entropy over [members, rows]; targets [rows, classes] broadcast over the members.
  const logProbabilities = g.op('LogSoftmax', [logits], [{ name: 'axis', int: -1 }]);
  const crossEntropy = g.op('Neg', [graph.sumOver(g.op('Mul', [STEP_TARGETS, logProbabilities]), [2])]);
  let dLogits = g.op('Sub', [g.op('Softmax', [logits], [{ name: 'axis', int: -1 }]), STEP_TARGETS]);
  if (options.sampleWeights) {
    // sum(w ce) / (members x rows with w != 0); each row's logit gradient is scaled by its weight.
    const nonzero = graph.sumOver(g.op('Cast', [g.op('Not', [g.op('Equal', [STEP_SAMPLE_WEIGHTS, g.scalar('zero', 0)])])], [{ name: 'to', int: ONNX_FLOAT }]), [0]);
    const count = g.op('Mul', [nonzero, g.scalar('members', members)]);
    g.nodes.push({ opType: 'Div', inputs: [graph.sumOver(g.op('Mul', [crossEntropy, STEP_SAMPLE_WEIGHTS]), [0, 1]), count], outputs: [STEP_LOSS] });
    dLogits = g.op('Div', [g.op('Mul', [dLogits, graph.reshape(STEP_SAMPLE_WEIGHTS, [1, -1, 1])]), count]);
  } else {
    g.nodes.push({ opType: 'ReduceMean', inputs: [crossEntropy], outputs: [STEP_LOSS], attributes: [{ name: 'keepdims', int: 0 }] });
    dLogits = g.op('Div', [dLogits, g.op('Cast', [g.op('Size', [crossEntropy])], [{ name: 'to', int: ONNX_FLOAT }])]);
  }

  const dFirstLayer = backToFirstLayer(dLogits);
  graph.weightGradient(bias.name, graph.sumOver(dFirstLayer, [0]));
  graph.weightGradient(kernel.name, g.op('Gemm', [standardised, dFirstLayer], [{ name: 'transA', int: 1 }]));
  if (pooled.needsGradient) graph.flow(pooled, g.op('Mul', [g.op('Gemm', [dFirstLayer, kernel.name], [{ name: 'transB', int: 1 }]), inverseStd]));
  graph.backward();

  const variables = [...tailWeights.map((weight) => weight.read()), ...head.weights];
  variables.forEach((_, i) => {
    const gradient = graph.weightGradients.get(stepWeight(i));
    if (gradient === undefined) throw new UnsupportedLayerError(`weight ${i} of the training step does not reach the loss`);
    g.nodes.push({ opType: 'Identity', inputs: [gradient], outputs: [stepGradient(i)] });
  });

  const weightShapes = variables.map((variable) => variable.shape as number[]);
  const takesDropoutMask = hiddenUnits > 0;
  const bytes = encodeOnnxModel({
    name: typeof tail === 'number' ? 'head_training_step' : `${tail.name}_training_step`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [
      { name: STEP_ACTIVATIONS, elementType: ONNX_FLOAT, dims: ['batch', ...inputShape] },
      { name: STEP_TARGETS, elementType: ONNX_FLOAT, dims: ['batch', numClasses] },
      ...(takesDropoutMask ? [{ name: STEP_DROPOUT_MASK, elementType: ONNX_FLOAT, dims: ['batch', hiddenUnits] }] : []),
      ...(options.sampleWeights ? [{ name: STEP_SAMPLE_WEIGHTS, elementType: ONNX_FLOAT, dims: ['batch'] }] : []),
      ...weightShapes.map((shape, i) => ({ name: stepWeight(i), elementType: ONNX_FLOAT, dims: shape })),
    ],
    outputs: [{ name: STEP_LOSS, elementType: ONNX_FLOAT, dims: [] }, ...weightShapes.map((shape, i) => ({ name: stepGradient(i), elementType: ONNX_FLOAT, dims: shape }))],
  });
  return { bytes, weightShapes, takesDropoutMask };
}

/** Operators whose output is linear in their first input alone: the tangent is the same operator on the first input's tangent. */
const LINEAR_IN_FIRST = new Set(['Identity', 'Neg', 'Reshape', 'Transpose', 'Slice', 'Expand', 'ReduceSum', 'ReduceMean', 'Pad', 'Flatten', 'Squeeze', 'Unsqueeze']);
/** Operators whose outputs are not differentiable (comparisons, shapes): their tangent is zero. */
const CONSTANT_OUTPUT = new Set(['Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Equal', 'And', 'Or', 'Not', 'Shape', 'Size', 'Cast']);
/** Operators linear in each input separately, so the tangent sums the operator applied with one input's tangent at a time. */
const BILINEAR = new Set(['Mul', 'MatMul', 'Conv', 'ConvTranspose']);

/**
 * Adds to `graph` the forward-mode derivative of each of `targets` with respect to the graph
 * value `seed`, in the direction of the value `direction`. That is the change of each target per
 * unit step of `seed` along `direction`, with every other input and constant held fixed. It reads
 * the nodes already in the graph, which must not yet depend on the new ones. Returns one value
 * per target, or null where the target does not depend on `seed`. Applied to a gradient, this
 * gives a Hessian-vector product, the second derivative that a gradient penalty needs.
 * Throws `UnsupportedLayerError` for an operator it has no rule for.
 */
export function forwardDerivative(graph: StepGraph, seed: string, direction: string, targets: readonly string[]): Array<string | null> {
  const { g } = graph;
  const producers = new Map<string, OnnxNode>();
  for (const node of [...g.nodes]) for (const output of node.outputs) producers.set(output, node);
  const tangents = new Map<string, string | null>([[seed, direction]]);
  /** Broadcasts a tangent to the shape of `like`, where a rule drops the other operand's term. */
  const shaped = (tangent: string, like: string) => g.op('Expand', [tangent, g.op('Shape', [like])]);

  const tangentOf = (value: string): string | null => {
    const known = tangents.get(value);
    if (known !== undefined) return known;
    const node = producers.get(value);
    const result = node === undefined || CONSTANT_OUTPUT.has(node.opType) ? null : rule(node);
    tangents.set(value, result);
    return result;
  };

  const rule = (node: OnnxNode): string | null => {
    const { opType, inputs, attributes = [] } = node;
    const [output] = node.outputs;
    const inputTangents = inputs.map((input) => (input === '' ? null : tangentOf(input)));
    if (inputTangents.every((tangent) => tangent === null)) return null;
    const [first, second, third] = inputTangents;
    const same = (replaced: readonly string[]) => g.op(opType, [...replaced], [...attributes]);
    if (LINEAR_IN_FIRST.has(opType)) {
      if (inputTangents.slice(1).some((tangent) => tangent !== null)) throw new UnsupportedLayerError(`a forward derivative through the shape operands of ${opType}`);
      return same([first!, ...inputs.slice(1)]);
    }
    if (BILINEAR.has(opType)) {
      if (inputs.length > 2) throw new UnsupportedLayerError(`a forward derivative of ${opType} with a bias operand`);
      const terms = [first === null ? null : same([first, inputs[1]]), second === null ? null : same([inputs[0], second])].filter((term): term is string => term !== null);
      return shaped(terms.length === 1 ? terms[0] : g.op('Add', terms), output);
    }
    switch (opType) {
      case 'Add':
      case 'Sub': {
        let right = second;
        if (right !== null && opType === 'Sub') right = g.op('Neg', [right]);
        let sum: string;
        if (first === null) sum = right!;
        else if (right === null) sum = first;
        else sum = g.op('Add', [first, right]);
        return shaped(sum, output);
      }
      case 'Div': {
        // (a / b)' = (a' - y b') / b
        const numerator = second === null ? first! : g.op('Sub', [first ?? g.scalar('zero', 0), g.op('Mul', [output, second])]);
        return shaped(g.op('Div', [numerator, inputs[1]]), output);
      }
      case 'Gemm': {
        const withoutBias = (a: string, b: string) => g.op('Gemm', [a, b], attributes.filter((attribute) => attribute.name !== 'beta'));
        const terms = [first === null ? null : withoutBias(first, inputs[1]), second === null ? null : withoutBias(inputs[0], second)].filter((term): term is string => term !== null);
        const beta = attributes.find((attribute) => attribute.name === 'beta');
        if (third !== null && third !== undefined) terms.push(beta === undefined ? third : g.op('Mul', [third, g.scalar('beta', (beta as { float: number }).float)]));
        return shaped(terms.length === 1 ? terms[0] : terms.slice(1).reduce((sum, term) => g.op('Add', [sum, term]), terms[0]), output);
      }
      case 'Concat':
        return same(inputs.map((input, i) => inputTangents[i] ?? g.op('Mul', [input, g.scalar('zero', 0)])));
      case 'Where': {
        const branch = (i: number) => inputTangents[i] ?? g.op('Mul', [inputs[i], g.scalar('zero', 0)]);
        return shaped(g.op('Where', [inputs[0], branch(1), branch(2)]), output);
      }
      case 'Relu':
        return graph.where(g.op('Greater', [inputs[0], g.scalar('zero', 0)]), first!);
      case 'LeakyRelu': {
        const alpha = (attributes.find((attribute) => attribute.name === 'alpha') as { float: number } | undefined)?.float ?? 0.01;
        return g.op('Where', [g.op('Greater', [inputs[0], g.scalar('zero', 0)]), first!, g.op('Mul', [first!, g.scalar('alpha', alpha)])]);
      }
      case 'Sqrt':
        return g.op('Div', [first!, g.op('Mul', [output, g.scalar('two', 2)])]);
      case 'Reciprocal':
        return g.op('Neg', [g.op('Mul', [first!, g.op('Mul', [output, output])])]);
      case 'Tanh':
        return g.op('Mul', [first!, g.op('Sub', [g.scalar('one', 1), g.op('Mul', [output, output])])]);
      case 'Sigmoid':
        return g.op('Mul', [first!, g.op('Mul', [output, g.op('Sub', [g.scalar('one', 1), output])])]);
      case 'Softplus':
        return g.op('Mul', [first!, g.op('Sigmoid', [inputs[0]])]);
      default:
        throw new UnsupportedLayerError(`a forward derivative of ${opType}`);
    }
  };
  return targets.map(tangentOf);
}
