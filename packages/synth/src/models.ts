import * as tf from '@tensorflow/tfjs';
import { deriveSeed, type ImageShape } from '@scarce/core';
import { MinibatchStd } from './minibatch-std.js';

/** Names of the generator's inputs, in the order `apply` takes them. */
export const GENERATOR_INPUTS = ['latent', 'label_one_hot'] as const;

/** Shape and size of a generator. */
export interface GeneratorSpec {
  imageShape: ImageShape;
  numClasses: number;
  latentSize: number;
  labelEmbeddingSize: number;
  /** Channels after the dense projection and after the first transposed convolution. */
  widths: readonly [number, number];
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
  /** Channels of the two stride-2 convolutions. */
  widths: readonly [number, number];
  /**
   * Images per group of the minibatch standard deviation channel appended before flattening, or
   * null for none. It should divide the batch size, so that a batch of n real then n fake
   * images never mixes the two in a group.
   */
  minibatchStdGroupSize: number | null;
  seed: number;
}

/** DCGAN's initialisation, N(0, 0.02), seeded per layer so a run repeats. */
function dcganInitializer(seed: number, model: string, layer: string) {
  return tf.initializers.randomNormal({ mean: 0, stddev: 0.02, seed: deriveSeed(seed, model, layer) });
}

/** Checks that an image size can be reached by two stride-2 upsamplings. */
export function checkImageShape(shape: ImageShape): void {
  if (shape.height % 4 !== 0 || shape.width % 4 !== 0 || shape.height < 4 || shape.width < 4) {
    throw new Error(
      `The GAN needs image sides divisible by 4 (it upsamples twice by 2) but the images are ` +
        `${shape.height}x${shape.width}. Resize them, e.g. to 28x28 or 32x32.`,
    );
  }
  if (shape.channels !== 1 && shape.channels !== 3) {
    throw new Error(`The GAN needs 1 (grayscale) or 3 (RGB) channels but the images have ${shape.channels}.`);
  }
}

/**
 * Builds the generator: z concatenated with a label embedding, dense to (H/4)x(W/4)xwidths[0],
 * two 4x4 stride-2 transposed convolutions with batch normalisation and ReLU between them,
 * and tanh output in [-1, 1] of shape [n, H, W, channels]. The label embedding is a dense layer
 * without bias on the one-hot label, which equals an embedding lookup but trains without the
 * gather gradient.
 */
export function buildGenerator(spec: GeneratorSpec): tf.LayersModel {
  checkImageShape(spec.imageShape);
  const { height, width, channels } = spec.imageShape;
  const [projectionWidth, upsampleWidth] = spec.widths;
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
    .dense({ units: (height / 4) * (width / 4) * projectionWidth, useBias: false, kernelInitializer: init('projection'), name: 'projection' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.reshape({ targetShape: [height / 4, width / 4, projectionWidth], name: 'projection_reshape' }).apply(x) as tf.SymbolicTensor;
  x = batchNorm('projection_bn').apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'projection_relu' }).apply(x) as tf.SymbolicTensor;

  x = tf.layers
    .conv2dTranspose({ filters: upsampleWidth, kernelSize: 4, strides: 2, padding: 'same', useBias: false, kernelInitializer: init('upsample1'), name: 'upsample1' })
    .apply(x) as tf.SymbolicTensor;
  x = batchNorm('upsample1_bn').apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'upsample1_relu' }).apply(x) as tf.SymbolicTensor;

  const image = tf.layers
    .conv2dTranspose({ filters: channels, kernelSize: 4, strides: 2, padding: 'same', activation: 'tanh', kernelInitializer: init('upsample2'), name: 'upsample2' })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: [latent, label], outputs: image, name: 'generator' });
}

/**
 * Builds the projection discriminator: two 4x4 stride-2 convolutions with LeakyReLU(0.2), an
 * optional minibatch standard deviation channel, flattened to features h, and the score
 * linear(h) + <embed(label), h> of shape [n, 1]. It has no normalisation layer, so real and
 * fake images can share one batch.
 */
export function buildDiscriminator(spec: DiscriminatorSpec): tf.LayersModel {
  checkImageShape(spec.imageShape);
  const { height, width, channels } = spec.imageShape;
  const [firstWidth, secondWidth] = spec.widths;
  const init = (layer: string) => dcganInitializer(spec.seed, 'discriminator', layer);
  const featureSize = (height / 4) * (width / 4) * (secondWidth + (spec.minibatchStdGroupSize === null ? 0 : 1));

  const image = tf.input({ shape: [height, width, channels], name: 'image' });
  const label = tf.input({ shape: [spec.numClasses], name: 'label_one_hot' });
  let x = tf.layers
    .conv2d({ filters: firstWidth, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init('conv1'), name: 'conv1' })
    .apply(image) as tf.SymbolicTensor;
  x = tf.layers.leakyReLU({ alpha: 0.2, name: 'conv1_leaky_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: secondWidth, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init('conv2'), name: 'conv2' })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.leakyReLU({ alpha: 0.2, name: 'conv2_leaky_relu' }).apply(x) as tf.SymbolicTensor;
  if (spec.minibatchStdGroupSize !== null) {
    x = new MinibatchStd({ groupSize: spec.minibatchStdGroupSize, name: 'minibatch_std' }).apply(x) as tf.SymbolicTensor;
  }
  const features = tf.layers.flatten({ name: 'features' }).apply(x) as tf.SymbolicTensor;

  const unconditional = tf.layers.dense({ units: 1, kernelInitializer: init('score'), name: 'score' }).apply(features) as tf.SymbolicTensor;
  const classEmbedding = tf.layers
    .dense({ units: featureSize, useBias: false, kernelInitializer: init('class_embedding'), name: 'class_embedding' })
    .apply(label) as tf.SymbolicTensor;
  const projection = tf.layers.dot({ axes: 1, name: 'projection' }).apply([features, classEmbedding]) as tf.SymbolicTensor;
  const score = tf.layers.add({ name: 'conditional_score' }).apply([unconditional, projection]) as tf.SymbolicTensor;
  return tf.model({ inputs: [image, label], outputs: score, name: 'discriminator' });
}
