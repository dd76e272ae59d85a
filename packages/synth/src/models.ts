import * as tf from '@tensorflow/tfjs';
import { deriveSeed, type ImageShape } from '@scarce/core';
import { MinibatchStd } from './minibatch-std.js';
import { TwiceDifferentiableLeakyRelu } from './leaky-relu.js';

/** Names of the generator's inputs, in the order `apply` takes them. */
export const GENERATOR_INPUTS = ['latent', 'label_one_hot'] as const;

/** Shape and size of a generator. */
export interface GeneratorSpec {
  imageShape: ImageShape;
  numClasses: number;
  latentSize: number;
  labelEmbeddingSize: number;
  /** Channels after the dense projection and after each transposed convolution but the last; one upsampling per entry. */
  widths: readonly number[];
  /**
   * Momentum of the batch-normalisation moving statistics. Training uses Keras's 0.99; the
   * averaged generator uses 0, so that one pass in training mode sets its statistics.
   */
  batchNormMomentum: number;
  /** Seed of the weight initialisation. */
  seed: number;
}

/** Shape and size of a discriminator. */
export interface DiscriminatorSpec {
  imageShape: ImageShape;
  numClasses: number;
  /** Channels of the stride-2 convolutions, one per entry. */
  widths: readonly number[];
  /**
   * Images per group of the minibatch standard deviation channel appended before flattening, or
   * null for none. It should divide the batch size, so that a batch of n real then n fake
   * images never mixes the two in a group.
   */
  minibatchStdGroupSize: number | null;
  /** Add a second output, class logits linear(h) of shape [n, classes], for an auxiliary classification loss; default false. */
  classifier?: boolean;
  seed: number;
}

/** DCGAN's initialisation, N(0, 0.02), seeded per layer so a run repeats. */
function dcganInitializer(seed: number, model: string, layer: string) {
  return tf.initializers.randomNormal({ mean: 0, stddev: 0.02, seed: deriveSeed(seed, model, layer) });
}

/**
 * Checks that an image size can be reached by `upsamplings` stride-2 upsamplings (default 2) and
 * has 1 or 3 channels.
 */
export function checkImageShape(shape: ImageShape, upsamplings = 2): void {
  const factor = 2 ** upsamplings;
  if (shape.height % factor !== 0 || shape.width % factor !== 0 || shape.height < factor || shape.width < factor) {
    throw new Error(
      `The GAN needs image sides divisible by ${factor} (it upsamples ${upsamplings} times by 2) but the images are ` +
        `${shape.height}x${shape.width}. Resize them (e.g. to ${factor * 7}x${factor * 7} or ${factor * 8}x${factor * 8}) or use fewer generator widths.`,
    );
  }
  if (shape.channels !== 1 && shape.channels !== 3) {
    throw new Error(`The GAN needs 1 (grayscale) or 3 (RGB) channels but the images have ${shape.channels}.`);
  }
}

/**
 * Builds the generator: z concatenated with a label embedding, dense to
 * (H/2^n)x(W/2^n)xwidths[0] for n = widths.length, then n 4x4 stride-2 transposed convolutions
 * with batch normalisation and ReLU between them, and tanh output in [-1, 1] of shape
 * [n, H, W, channels]. The label embedding is a dense layer without bias on the one-hot label,
 * which equals an embedding lookup but trains without the gather gradient.
 */
export function buildGenerator(spec: GeneratorSpec): tf.LayersModel {
  const stages = spec.widths.length;
  checkImageShape(spec.imageShape, stages);
  const { height, width, channels } = spec.imageShape;
  const [startHeight, startWidth] = [height / 2 ** stages, width / 2 ** stages];
  const init = (layer: string) => dcganInitializer(spec.seed, 'generator', layer);
  const batchNorm = (name: string) => tf.layers.batchNormalization({ momentum: spec.batchNormMomentum, epsilon: 1e-5, name });

  const latent = tf.input({ shape: [spec.latentSize], name: GENERATOR_INPUTS[0] });
  const label = tf.input({ shape: [spec.numClasses], name: GENERATOR_INPUTS[1] });
  const embedding = tf.layers
    .dense({
      units: spec.labelEmbeddingSize,
      useBias: false,
      // N(0, 1) like a lookup-table embedding, so the label is as loud as z from the first step.
      kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 1, seed: deriveSeed(spec.seed, 'generator', 'label_embedding') }),
      name: 'label_embedding',
    })
    .apply(label) as tf.SymbolicTensor;
  let x = tf.layers.concatenate({ name: 'latent_and_label' }).apply([latent, embedding]) as tf.SymbolicTensor;

  x = tf.layers
    .dense({ units: startHeight * startWidth * spec.widths[0], useBias: false, kernelInitializer: init('projection'), name: 'projection' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.reshape({ targetShape: [startHeight, startWidth, spec.widths[0]], name: 'projection_reshape' }).apply(x) as tf.SymbolicTensor;
  x = batchNorm('projection_bn').apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'projection_relu' }).apply(x) as tf.SymbolicTensor;

  // Layer names upsample1, upsample1_bn, ... keep those of the two-stage model, so saved generators still load.
  for (let stage = 1; stage < stages; stage++) {
    const name = `upsample${stage}`;
    x = tf.layers
      .conv2dTranspose({ filters: spec.widths[stage], kernelSize: 4, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(name), name })
      .apply(x) as tf.SymbolicTensor;
    x = batchNorm(`${name}_bn`).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: `${name}_relu` }).apply(x) as tf.SymbolicTensor;
  }

  const outputName = `upsample${stages}`;
  const image = tf.layers
    .conv2dTranspose({ filters: channels, kernelSize: 4, strides: 2, padding: 'same', activation: 'tanh', kernelInitializer: init(outputName), name: outputName })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: [latent, label], outputs: image, name: 'generator' });
}

/**
 * Builds the projection discriminator: one 4x4 stride-2 convolution with LeakyReLU(0.2) per
 * width, an optional minibatch standard deviation channel, flattened to features h, and the
 * score linear(h) + <embed(label), h> of shape [n, 1]. It has no normalisation layer, so real and
 * fake images can share one batch. Its LeakyReLU is written so that tfjs can differentiate its
 * gradient, which the R1 penalty needs. With `classifier` it also returns class logits from h.
 */
export function buildDiscriminator(spec: DiscriminatorSpec): tf.LayersModel {
  checkImageShape(spec.imageShape, 0);
  const { height, width, channels } = spec.imageShape;
  const init = (layer: string) => dcganInitializer(spec.seed, 'discriminator', layer);

  const image = tf.input({ shape: [height, width, channels], name: 'image' });
  const label = tf.input({ shape: [spec.numClasses], name: 'label_one_hot' });
  let x = image as tf.SymbolicTensor;
  let [mapHeight, mapWidth] = [height, width];
  spec.widths.forEach((filters, index) => {
    const name = `conv${index + 1}`;
    x = tf.layers.conv2d({ filters, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init(name), name }).apply(x) as tf.SymbolicTensor;
    x = new TwiceDifferentiableLeakyRelu({ alpha: 0.2, name: `${name}_leaky_relu` }).apply(x) as tf.SymbolicTensor;
    // 'same' padding with stride 2 rounds up.
    [mapHeight, mapWidth] = [Math.ceil(mapHeight / 2), Math.ceil(mapWidth / 2)];
  });
  if (spec.minibatchStdGroupSize !== null) {
    x = new MinibatchStd({ groupSize: spec.minibatchStdGroupSize, name: 'minibatch_std' }).apply(x) as tf.SymbolicTensor;
  }
  const lastWidth = spec.widths[spec.widths.length - 1];
  const featureSize = mapHeight * mapWidth * (lastWidth + (spec.minibatchStdGroupSize === null ? 0 : 1));
  const features = tf.layers.flatten({ name: 'features' }).apply(x) as tf.SymbolicTensor;

  const unconditional = tf.layers.dense({ units: 1, kernelInitializer: init('score'), name: 'score' }).apply(features) as tf.SymbolicTensor;
  const classEmbedding = tf.layers
    .dense({ units: featureSize, useBias: false, kernelInitializer: init('class_embedding'), name: 'class_embedding' })
    .apply(label) as tf.SymbolicTensor;
  const projection = tf.layers.dot({ axes: 1, name: 'projection' }).apply([features, classEmbedding]) as tf.SymbolicTensor;
  const score = tf.layers.add({ name: 'conditional_score' }).apply([unconditional, projection]) as tf.SymbolicTensor;
  if (!spec.classifier) return tf.model({ inputs: [image, label], outputs: score, name: 'discriminator' });
  const logits = tf.layers.dense({ units: spec.numClasses, kernelInitializer: init('class_logits'), name: 'class_logits' }).apply(features) as tf.SymbolicTensor;
  return tf.model({ inputs: [image, label], outputs: [score, logits], name: 'discriminator' });
}
