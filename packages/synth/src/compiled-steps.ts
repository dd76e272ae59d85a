import * as tf from '@tensorflow/tfjs';
import type { ImageShape } from '@scarce/core';
import {
  encodeOnnxModel,
  forwardDerivative,
  leakyRelu,
  mapValue,
  ONNX_FLOAT,
  StepGraph,
  stepGradient,
  stepWeight,
  translateModel,
  UnsupportedLayerError,
  type LayerTranslator,
  type Value,
} from '@scarce/train';
import type { GanLoss } from './config.js';
import type { AugmentDraws, DiffAugmentOptions } from './diff-augment.js';
import { largestDivisorUpTo } from './minibatch-std.js';

/** Names of the inputs and outputs of the compiled GAN steps. */
export const GAN_LATENTS = 'latents';
export const GAN_LABELS = 'labels';
export const GAN_REAL_IMAGES = 'real_images';
export const GAN_FAKE_IMAGES = 'fake_images';
export const GAN_LOSS = 'loss';
export const GAN_REAL_SCORE = 'real_score';
export const GAN_FAKE_SCORE = 'fake_score';
export const GAN_AUGMENTED_REAL = 'augmented_real';
export const GAN_PENALTY = 'penalty';
export const fixedWeight = (index: number) => `fixed_${index}`;
export const batchMean = (index: number) => `batch_mean_${index}`;
export const batchVariance = (index: number) => `batch_variance_${index}`;

const AUGMENT_BRIGHTNESS = 'augment_brightness';
const AUGMENT_SATURATION = 'augment_saturation';
const AUGMENT_CONTRAST = 'augment_contrast';
const AUGMENT_SHIFT_ROWS = 'augment_shift_rows';
const AUGMENT_SHIFT_COLUMNS = 'augment_shift_columns';
/** The cut-out square's bounds per image, in the order of `AugmentDraws.cutout`. */
const AUGMENT_CUTOUT = ['augment_cutout_top', 'augment_cutout_bottom', 'augment_cutout_left', 'augment_cutout_right'];

/** Shapes and settings that a compiled GAN step is built for. */
export interface GanStepSpec {
  imageShape: ImageShape;
  numClasses: number;
  latentSize: number;
  /** Real images per step; the discriminator step scores as many fakes besides them. */
  batchSize: number;
  loss: GanLoss;
  labelSmoothing: number;
  /** Weight of the auxiliary classification loss; 0 when the discriminator has no class head. */
  classifierWeight: number;
  /** DiffAugment's transforms, or null for none. */
  augment: DiffAugmentOptions | null;
}

/** A graph input: its name and dimensions. */
interface GraphInput {
  name: string;
  dims: number[];
}

/** One compiled step: its bytes, its inputs, and the BatchNormalization layers whose batch statistics it returns, in output order. */
export interface GanStepGraph {
  bytes: Uint8Array;
  inputs: GraphInput[];
  outputs: string[];
  batchNormLayers: tf.layers.Layer[];
}

/**
 * Translates the minibatch standard deviation layer on `count` images: it appends one channel
 * with each group's standard deviation, averaged over features and positions.
 */
function minibatchStd(graph: StepGraph, x: Value, groupSize: number, count: number): Value {
  const { g } = graph;
  const group = largestDivisorUpTo(count, groupSize);
  const groups = count / group;
  const [height, width, channels] = x.shape;
  const overGroup = [{ name: 'axes', ints: [1] }, { name: 'keepdims', int: 1 }];
  const grouped = graph.reshape(x.name, [groups, group, height, width, channels]);
  const centred = g.op('Sub', [grouped, g.op('ReduceMean', [grouped], overGroup)]);
  const std = g.op('Sqrt', [g.op('Add', [g.op('ReduceMean', [g.op('Mul', [centred, centred])], overGroup), g.scalar('epsilon', 1e-8)])]);
  const perGroup = g.op('ReduceMean', [std], [{ name: 'axes', ints: [2, 3, 4] }, { name: 'keepdims', int: 1 }]);
  const channel = graph.reshape(g.op('Expand', [perGroup, g.ints('shape', [groups, group, height, width, 1])]), [count, height, width, 1]);
  const y: Value = { name: g.op('Concat', [x.name, channel], [{ name: 'axis', int: 3 }]), shape: [height, width, channels + 1], needsGradient: x.needsGradient };
  graph.afterwards(() => {
    const dy = graph.gradientOf(y);
    if (dy === undefined) return;
    const direct = graph.slice(dy, [0], [channels], [3]);
    const dPerGroup = graph.sumOver(graph.reshape(graph.slice(dy, [channels], [channels + 1], [3]), [groups, group * height * width]), [1]);
    // The group's value is the mean of sqrt(var + eps) over h w c positions, with var the mean of
    // the squared deviations over the group: d centred = centred d perGroup / (h w c group std).
    const scale = g.op('Div', [graph.reshape(dPerGroup, [groups, 1, 1, 1, 1]), g.op('Mul', [std, g.scalar('positions', height * width * channels * group)])]);
    const dCentred = g.op('Mul', [centred, scale]);
    const dGrouped = g.op('Sub', [dCentred, g.op('ReduceMean', [dCentred], overGroup)]);
    graph.flow(x, g.op('Add', [direct, graph.reshape(dGrouped, [count, height, width, channels])]));
  });
  return y;
}

/** Translators of the discriminator's custom layers for a batch of `count` images. */
function discriminatorLayers(count: number): Record<string, LayerTranslator> {
  const config = (layer: tf.layers.Layer) => layer.getConfig() as Record<string, unknown>;
  return {
    TwiceDifferentiableLeakyRelu: (graph, layer, [x]) => leakyRelu(graph, x, Number(config(layer).alpha)),
    MinibatchStd: (graph, layer, [x]) => minibatchStd(graph, x, Number(config(layer).groupSize), count),
  };
}

/**
 * DiffAugment in the graph on `count` images, with the draws as inputs of one value per image:
 * brightness, saturation and contrast, the shifts, and the cut-out square's bounds. The graph
 * builds the 0/1 shift matrices and the cutout mask from them. Each transform is linear in the
 * images, so each gradient is the transposed map.
 */
function augmentInGraph(graph: StepGraph, images: Value, count: number, shape: ImageShape, options: DiffAugmentOptions, inputs: GraphInput[]): Value {
  const { g } = graph;
  const { height, width, channels } = shape;
  const input = (name: string) => {
    inputs.push({ name, dims: [count, 1, 1, 1] });
    return name;
  };
  /** 0, 1, ..., size - 1 along `axis` of a 4-D value. */
  const positions = (size: number, axis: number) => {
    const dims = [1, 1, 1, 1];
    dims[axis] = size;
    return g.constant('positions', dims, Float32Array.from({ length: size }, (_, i) => i));
  };
  /** (x - mean) k + mean over `axes`, per image; its gradient has the same form. */
  const scaleAroundMean = (x: Value, factor: string, axes: number[]) => {
    const mix = (value: string) => {
      const mean = g.op('ReduceMean', [value], [{ name: 'axes', ints: axes }, { name: 'keepdims', int: 1 }]);
      return g.op('Add', [g.op('Mul', [g.op('Sub', [value, mean]), factor]), mean]);
    };
    return mapValue(graph, x, mix(x.name), x.shape, mix);
  };
  const float = (condition: string) => g.op('Cast', [condition], [{ name: 'to', int: ONNX_FLOAT }]);
  let x = images;
  if (options.colour) {
    x = mapValue(graph, x, g.op('Add', [x.name, input(AUGMENT_BRIGHTNESS)]), x.shape, (dy) => dy);
    if (channels > 1) x = scaleAroundMean(x, input(AUGMENT_SATURATION), [3]);
    x = scaleAroundMean(x, input(AUGMENT_CONTRAST), [1, 2, 3]);
  }
  if (options.translationFraction > 0) {
    // S[i][a][b] = 1 where b = a - shift_i, [count, 1, size, size]: R = S(rows) moves rows down by R X,
    // and X S(columns)^T moves columns right. The gradient takes R^T dY S(columns).
    const shiftMatrix = (shift: string, size: number, transposed: boolean) =>
      float(g.op('Equal', transposed ? [positions(size, 2), g.op('Sub', [positions(size, 3), shift])] : [positions(size, 3), g.op('Sub', [positions(size, 2), shift])]));
    const [rowShift, columnShift] = [input(AUGMENT_SHIFT_ROWS), input(AUGMENT_SHIFT_COLUMNS)];
    const [rows, rowsTransposed] = [shiftMatrix(rowShift, height, false), shiftMatrix(rowShift, height, true)];
    const [columns, columnsTransposed] = [shiftMatrix(columnShift, width, false), shiftMatrix(columnShift, width, true)];
    const toPlanes = (value: string) => g.op('Transpose', [value], [{ name: 'perm', ints: [0, 3, 1, 2] }]);
    const fromPlanes = (value: string) => g.op('Transpose', [value], [{ name: 'perm', ints: [0, 2, 3, 1] }]);
    const shifted = fromPlanes(g.op('MatMul', [g.op('MatMul', [rows, toPlanes(x.name)]), columnsTransposed]));
    x = mapValue(graph, x, shifted, x.shape, (dy) => fromPlanes(g.op('MatMul', [rowsTransposed, g.op('MatMul', [toPlanes(dy), columns])])));
  }
  if (options.cutoutFraction > 0) {
    const [top, bottom, left, right] = AUGMENT_CUTOUT.map(input);
    const [rowAt, columnAt] = [positions(height, 1), positions(width, 2)];
    const inRows = g.op('And', [g.op('GreaterOrEqual', [rowAt, top]), g.op('Less', [rowAt, bottom])]);
    const inColumns = g.op('And', [g.op('GreaterOrEqual', [columnAt, left]), g.op('Less', [columnAt, right])]);
    const mask = float(g.op('Not', [g.op('And', [inRows, inColumns])]));
    x = mapValue(graph, x, g.op('Mul', [x.name, mask]), x.shape, (dy) => g.op('Mul', [dy, mask]));
  }
  return x;
}

/** Returns the feeds of drawn DiffAugment parameters for `augmentInGraph`'s inputs. */
export function augmentFeeds(draws: AugmentDraws): Record<string, { data: Float32Array; dims: number[] }> {
  const { count } = draws;
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = {};
  const perImage = (name: string, values: ArrayLike<number> | null) => {
    if (values !== null) feeds[name] = { data: Float32Array.from(values), dims: [count, 1, 1, 1] };
  };
  perImage(AUGMENT_BRIGHTNESS, draws.brightness);
  perImage(AUGMENT_SATURATION, draws.saturation);
  perImage(AUGMENT_CONTRAST, draws.contrast);
  perImage(AUGMENT_SHIFT_ROWS, draws.shiftsY);
  perImage(AUGMENT_SHIFT_COLUMNS, draws.shiftsX);
  const squares = draws.cutout;
  if (squares !== null) AUGMENT_CUTOUT.forEach((name, side) => perImage(name, Array.from({ length: count }, (_, image) => squares[image * 4 + side])));
  return feeds;
}

/**
 * The part of a training step that a graph computes: the discriminator's loss on real images or
 * on given fakes, the generator's fakes alone, or the generator's loss.
 */
export type GanStepPart = 'real' | 'fake' | 'generate' | 'generator';

/** Options of `exportGanStep`. */
export interface GanStepOptions {
  /**
   * Images in the whole batch whose mean the `real` or `fake` loss term takes, when the graph
   * scores only a share of them; default `batchSize`.
   */
  lossRows?: number;
  /**
   * Weight w of an R1 penalty w mean_n |grad_x D(x_n)|^2 on the augmented real images, added to
   * the loss of a `real` part; default 0 (none).
   */
  penaltyWeight?: number;
}

/**
 * Adds the R1 penalty w mean_n |grad_x D(x_n)|^2 of the images `images` to the graph and returns
 * the penalty and its gradient per discriminator weight (null where it is zero). The input
 * gradient g comes from a backward pass of its own. The weight gradient is 2 w / n times the
 * mixed second derivative of D applied to g, which is the forward derivative of that pass's
 * weight gradient along g (`forwardDerivative`).
 */
function addPenalty(builder: StepGraph['g'], discriminator: tf.LayersModel, images: Value, labels: Value, count: number, weight: number): { penalty: string; gradients: Array<string | null> } {
  const graph = new StepGraph(discriminator.trainableWeights, new Map(), builder);
  const { g } = graph;
  const seed: Value = { ...images, needsGradient: true };
  const [scores] = translateModel(graph, discriminator, [seed, labels], { layers: discriminatorLayers(count) });
  // The gradient of the summed scores, as tfjs's tf.grad of tf.sum(D(x)) takes it.
  graph.flow(scores, g.op('Expand', [g.scalar('one', 1), g.op('Shape', [scores.name])]));
  graph.backward();
  const inputGradient = graph.gradientOf(seed);
  if (inputGradient === undefined) throw new UnsupportedLayerError('an R1 penalty of a discriminator whose score does not depend on its image');
  const firstOrder = discriminator.trainableWeights.map((_, i) => graph.weightGradients.get(stepWeight(i)));
  const reached = firstOrder.flatMap((gradient) => (gradient === undefined ? [] : [gradient]));
  const derivatives = new Map(forwardDerivative(graph, seed.name, inputGradient, reached).map((derivative, i) => [reached[i], derivative]));
  const penalty = g.op('Mul', [g.op('ReduceSum', [g.op('Mul', [inputGradient, inputGradient])], [{ name: 'keepdims', int: 0 }]), g.scalar('weight', weight / count)]);
  const gradients = firstOrder.map((gradient) => {
    const mixed = gradient === undefined ? null : derivatives.get(gradient) ?? null;
    return mixed === null ? null : g.op('Mul', [mixed, g.scalar('scale', (2 * weight) / count)]);
  });
  return { penalty, gradients };
}

/**
 * Writes one part of a GAN training step as an ONNX graph: the forward pass, the loss and the
 * gradient with respect to the trained model's weights, as `GanTrainer.step` computes them in
 * tfjs. The discriminator has no normalisation across images, and its minibatch std groups never
 * straddle the real and fake halves of its batch. So its step splits into graphs over shares of
 * the batch whose gradients add up and which can run side by side.
 *
 * - `real` and `fake`: the given real or fake images are augmented and scored, and that term of
 *   the discriminator's loss (averaged over `lossRows`) is differentiated. `real` adds an R1
 *   penalty with `penaltyWeight`. Each returns its images' mean score; `real` also returns the
 *   augmented images.
 * - `generate`: the generator (batch statistics, weights as inputs without gradients) makes fakes
 *   for the labels, with no loss.
 * - `generator`: the generator makes fakes, which are augmented and scored by the discriminator
 *   (weights as inputs without gradients); the generator's loss is differentiated through both.
 *
 * Graphs that run the generator return the batch mean and variance of each of its
 * BatchNormalization layers, from which the caller updates the moving statistics. Throws
 * `UnsupportedLayerError` for a layer the compiler does not differentiate.
 */
export function exportGanStep(part: GanStepPart, generator: tf.LayersModel, discriminator: tf.LayersModel, spec: GanStepSpec, options: GanStepOptions = {}): GanStepGraph {
  const { batchSize: n, imageShape, numClasses, latentSize } = spec;
  const lossRows = options.lossRows ?? n;
  const trainsDiscriminator = part === 'real' || part === 'fake';
  const [trainedModel, fixedModel] = trainsDiscriminator ? [discriminator, generator] : part === 'generate' ? [null, generator] : [generator, discriminator];
  const graph = new StepGraph(trainedModel?.trainableWeights ?? [], new Map(fixedModel.trainableWeights.map((weight, i) => [weight, fixedWeight(i)])));
  const { g } = graph;
  const imageDims = [imageShape.height, imageShape.width, imageShape.channels];
  const inputs: GraphInput[] = [{ name: GAN_LABELS, dims: [n, numClasses] }];
  const labels: Value = { name: GAN_LABELS, shape: [numClasses], needsGradient: false };
  const outputs: string[] = [];
  const output = (name: string, value: string) => g.nodes.push({ opType: 'Identity', inputs: [value], outputs: [name] });
  const mean = (value: string) => g.op('ReduceMean', [value], [{ name: 'keepdims', int: 0 }]);
  const sumOverRows = (value: string) => g.op('Div', [g.op('ReduceSum', [value], [{ name: 'keepdims', int: 0 }]), g.scalar('rows', lossRows)]);
  const constant = (value: number) => g.scalar('constant', value);
  const filled = (value: number, like: string) => g.op('Expand', [constant(value), g.op('Shape', [like])]);
  const augmented = (images: Value) => (spec.augment === null ? images : augmentInGraph(graph, images, n, imageShape, spec.augment, inputs));
  const batchStatistics = () =>
    graph.batchStatistics.forEach((statistics, i) => {
      output(batchMean(i), statistics.mean);
      output(batchVariance(i), statistics.variance);
      outputs.push(batchMean(i), batchVariance(i));
    });
  const encode = () =>
    encodeOnnxModel({
      name: `${part}_step`,
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: inputs.map(({ name, dims }) => ({ name, elementType: ONNX_FLOAT, dims })),
      outputs: outputs.map((name) => ({ name, elementType: ONNX_FLOAT, dims: null })),
    });

  let images: Value;
  if (trainsDiscriminator) {
    const name = part === 'real' ? GAN_REAL_IMAGES : GAN_FAKE_IMAGES;
    inputs.push({ name, dims: [n, ...imageDims] });
    images = augmented({ name, shape: imageDims, needsGradient: false });
  } else {
    inputs.push({ name: GAN_LATENTS, dims: [n, latentSize] });
    const [fakes] = translateModel(graph, generator, [{ name: GAN_LATENTS, shape: [latentSize], needsGradient: false }, labels], { batchNorm: 'training' });
    if (part === 'generate') {
      output(GAN_FAKE_IMAGES, fakes.name);
      outputs.push(GAN_FAKE_IMAGES);
      batchStatistics();
      inputs.push(...fixedModel.trainableWeights.map((weight, i) => ({ name: fixedWeight(i), dims: weight.shape as number[] })));
      return { bytes: encode(), inputs, outputs, batchNormLayers: graph.batchStatistics.map((statistics) => statistics.layer) };
    }
    images = augmented(fakes);
  }
  outputs.push(GAN_LOSS);
  const [scores, logits] = translateModel(graph, discriminator, [images, labels], { layers: discriminatorLayers(n) });
  const s = scores.name;
  let loss: string;
  const smoothing = spec.labelSmoothing;
  let dScores: string;
  if (part === 'real') {
    if (spec.loss === 'hinge') {
      // relu(1 - s - D(real)), averaged.
      loss = sumOverRows(g.op('Relu', [g.op('Sub', [constant(1 - smoothing), s])]));
      dScores = graph.where(g.op('Less', [s, constant(1 - smoothing)]), filled(-1 / lossRows, s));
    } else {
      // t softplus(-r) + (1 - t) softplus(r) with t = 1 - s; its slope is sigmoid(r) - t.
      loss = sumOverRows(g.op('Add', [g.op('Mul', [g.op('Softplus', [g.op('Neg', [s])]), constant(1 - smoothing)]), g.op('Mul', [g.op('Softplus', [s]), constant(smoothing)])]));
      dScores = g.op('Div', [g.op('Sub', [g.op('Sigmoid', [s]), constant(1 - smoothing)]), constant(lossRows)]);
    }
    output(GAN_REAL_SCORE, mean(s));
    output(GAN_AUGMENTED_REAL, images.name);
    outputs.push(GAN_REAL_SCORE, GAN_AUGMENTED_REAL);
  } else if (part === 'fake') {
    // relu(1 + D(fake)) or softplus(D(fake)), averaged.
    loss = sumOverRows(spec.loss === 'hinge' ? g.op('Relu', [g.op('Add', [constant(1), s])]) : g.op('Softplus', [s]));
    dScores = spec.loss === 'hinge' ? graph.where(g.op('Greater', [s, constant(-1)]), filled(1 / lossRows, s)) : g.op('Div', [g.op('Sigmoid', [s]), constant(lossRows)]);
    output(GAN_FAKE_SCORE, mean(s));
    outputs.push(GAN_FAKE_SCORE);
  } else if (spec.loss === 'hinge') {
    loss = g.op('Neg', [mean(s)]);
    dScores = filled(-1 / n, s);
  } else {
    loss = mean(g.op('Softplus', [g.op('Neg', [s])]));
    dScores = g.op('Div', [g.op('Neg', [g.op('Sigmoid', [g.op('Neg', [s])])]), constant(n)]);
  }
  graph.flow(scores, dScores);
  // The class head learns from real images, and the generator from its fakes' predicted classes.
  if (logits !== undefined && part !== 'fake' && spec.classifierWeight > 0) {
    const weight = spec.classifierWeight;
    const crossEntropy = sumOverRows(g.op('Neg', [graph.sumOver(g.op('Mul', [GAN_LABELS, g.op('LogSoftmax', [logits.name], [{ name: 'axis', int: -1 }])]), [1])]));
    loss = g.op('Add', [loss, g.op('Mul', [crossEntropy, constant(weight)])]);
    graph.flow(logits, g.op('Mul', [g.op('Sub', [g.op('Softmax', [logits.name], [{ name: 'axis', int: -1 }]), GAN_LABELS]), constant(weight / lossRows)]));
  }
  output(GAN_LOSS, loss);
  graph.backward();

  const penaltyWeight = part === 'real' ? options.penaltyWeight ?? 0 : 0;
  const penalty = penaltyWeight > 0 ? addPenalty(g, discriminator, images, labels, n, penaltyWeight) : null;
  if (penalty !== null) {
    output(GAN_PENALTY, penalty.penalty);
    outputs.push(GAN_PENALTY);
  }
  const trainedShapes = trainedModel!.trainableWeights.map((weight) => weight.shape as number[]);
  trainedShapes.forEach((_, i) => {
    let gradient = graph.weightGradients.get(stepWeight(i));
    // The fake half leaves the class head alone; any other weight must reach the loss.
    if (gradient === undefined && part === 'fake' && logits !== undefined) gradient = g.op('Mul', [stepWeight(i), constant(0)]);
    if (gradient === undefined) throw new UnsupportedLayerError(`weight ${i} of the ${trainsDiscriminator ? 'discriminator' : 'generator'} does not reach the loss`);
    const penaltyGradient = penalty?.gradients[i] ?? null;
    output(stepGradient(i), penaltyGradient === null ? gradient : g.op('Add', [gradient, penaltyGradient]));
    outputs.push(stepGradient(i));
  });
  batchStatistics();
  inputs.push(
    ...trainedShapes.map((dims, i) => ({ name: stepWeight(i), dims })),
    ...(trainsDiscriminator ? [] : fixedModel.trainableWeights.map((weight, i) => ({ name: fixedWeight(i), dims: weight.shape as number[] }))),
  );
  return { bytes: encode(), inputs, outputs, batchNormLayers: graph.batchStatistics.map((statistics) => statistics.layer) };
}
