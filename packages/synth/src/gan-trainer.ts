import * as tf from '@tensorflow/tfjs';
import { deriveSeed, Random, type ImageShape } from '@scarce/core';
import type { SynthConfig } from './config.js';
import { diffAugment, type DiffAugmentOptions } from './diff-augment.js';
import { buildDiscriminator, buildGenerator } from './models.js';

/** Batch-normalisation momentum of the generator being trained (Keras's default). */
const TRAINING_BATCH_NORM_MOMENTUM = 0.99;

/** Images per group of the discriminator's minibatch standard deviation, as in Progressive GAN. */
const MINIBATCH_STD_GROUP_SIZE = 4;

/** Image shape, classes and batch size that a `GanTrainer` is built for. */
export interface TrainingShape {
  imageShape: ImageShape;
  numClasses: number;
  /** Real images per step; default `config.batchSize`. */
  batchSize?: number;
}

function largestDivisorUpTo(value: number, limit: number): number {
  let divisor = Math.min(limit, value);
  while (value % divisor !== 0) divisor--;
  return divisor;
}

/** Losses and mean discriminator scores of one step. */
export interface StepValues {
  discriminatorLoss: number;
  generatorLoss: number;
  /** Mean discriminator score of the (augmented) real images. */
  realScore: number;
  /** Mean discriminator score of the (augmented) fake images in the discriminator step. */
  fakeScore: number;
}

/** A batch of real images in [-1, 1] with one-hot labels. */
export interface RealBatch {
  images: tf.Tensor4D;
  labels: tf.Tensor2D;
}

/** Fills a tensor [count, size] with N(0, 1) draws from a seeded generator. */
export function latentBatch(random: Random, count: number, size: number): tf.Tensor2D {
  const values = Float32Array.from({ length: count * size }, () => random.normal());
  return tf.tensor2d(values, [count, size]);
}

/**
 * The models and optimisers of one GAN run, and its training step: a discriminator step and a
 * generator step with the hinge loss, then an update of the averaged (EMA) generator.
 */
export class GanTrainer {
  readonly generator: tf.LayersModel;
  readonly discriminator: tf.LayersModel;
  /** Exponential moving average of the generator's weights, used for sampling. */
  readonly averagedGenerator: tf.LayersModel;
  private readonly generatorOptimizer: tf.Optimizer;
  private readonly discriminatorOptimizer: tf.Optimizer;
  private readonly generatorVariables: tf.Variable[];
  private readonly discriminatorVariables: tf.Variable[];
  private readonly averagedVariables: tf.Variable[];
  private readonly augmentOptions: DiffAugmentOptions | null;
  private readonly random: Random;
  private readonly numClasses: number;
  private stepCount = 0;

  constructor(private readonly config: SynthConfig, shape: TrainingShape) {
    const { imageShape, numClasses } = shape;
    this.numClasses = numClasses;
    const generatorSpec = {
      imageShape,
      numClasses,
      latentSize: config.latentSize,
      labelEmbeddingSize: config.labelEmbeddingSize,
      widths: config.generatorWidths,
      batchNormMomentum: TRAINING_BATCH_NORM_MOMENTUM,
      seed: config.seed,
    };
    this.generator = buildGenerator(generatorSpec);
    // Same seed, so the average starts equal to the generator.
    this.averagedGenerator = buildGenerator({ ...generatorSpec, batchNormMomentum: 0 });
    this.discriminator = buildDiscriminator({
      imageShape,
      numClasses,
      widths: config.discriminatorWidths,
      minibatchStdGroupSize: config.minibatchStd ? largestDivisorUpTo(shape.batchSize ?? config.batchSize, MINIBATCH_STD_GROUP_SIZE) : null,
      seed: config.seed,
    });

    this.generatorVariables = this.generator.trainableWeights.map((weight) => weight.read() as tf.Variable);
    this.discriminatorVariables = this.discriminator.trainableWeights.map((weight) => weight.read() as tf.Variable);
    this.averagedVariables = this.averagedGenerator.trainableWeights.map((weight) => weight.read() as tf.Variable);
    this.generatorOptimizer = tf.train.adam(config.generatorLearningRate, config.adamBeta1, config.adamBeta2);
    this.discriminatorOptimizer = tf.train.adam(config.discriminatorLearningRate, config.adamBeta1, config.adamBeta2);
    this.augmentOptions = config.diffAugment
      ? { colour: config.augmentColour, translationFraction: config.translationFraction, cutoutFraction: config.cutoutFraction }
      : null;
    this.random = new Random(deriveSeed(config.seed, 'latents and augmentation'));
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.stepCount;
  }

  private augment(images: tf.Tensor4D): tf.Tensor4D {
    return this.augmentOptions === null ? images : diffAugment(images, this.random, this.augmentOptions);
  }

  private discriminate(images: tf.Tensor4D, labels: tf.Tensor2D): tf.Tensor2D {
    return this.discriminator.apply([this.augment(images), labels], { training: true }) as tf.Tensor2D;
  }

  private generate(latents: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor4D {
    return this.generator.apply([latents, labels], { training: true }) as tf.Tensor4D;
  }

  /**
   * Runs one training step on a real batch; fakes get the real batch's labels. Every tensor made
   * here is disposed before it returns, and the batch stays with the caller.
   */
  step(batch: RealBatch): StepValues {
    const count = batch.images.shape[0];
    const values = tf.tidy(() => {
      const fakes = this.generate(latentBatch(this.random, count, this.config.latentSize), batch.labels);
      const bothLabels = tf.concat([batch.labels, batch.labels], 0);
      let realScore: tf.Scalar | undefined;
      let fakeScore: tf.Scalar | undefined;
      const discriminatorStep = tf.variableGrads(() => {
        const scores = this.discriminate(tf.concat([batch.images, fakes], 0), bothLabels);
        const [realScores, fakeScores] = tf.split(scores, 2, 0);
        realScore = tf.keep(tf.mean(realScores) as tf.Scalar);
        fakeScore = tf.keep(tf.mean(fakeScores) as tf.Scalar);
        return tf.add(tf.mean(tf.relu(tf.sub(1, realScores))), tf.mean(tf.relu(tf.add(1, fakeScores)))) as tf.Scalar;
      }, this.discriminatorVariables);
      this.discriminatorOptimizer.applyGradients(discriminatorStep.grads);

      const latents = latentBatch(this.random, count, this.config.latentSize);
      const generatorStep = tf.variableGrads(() => {
        const scores = this.discriminate(this.generate(latents, batch.labels), batch.labels);
        return tf.neg(tf.mean(scores)) as tf.Scalar;
      }, this.generatorVariables);
      this.generatorOptimizer.applyGradients(generatorStep.grads);

      this.updateAverage();
      // tf.keep moved the scores out of variableGrads's scope; tidy cannot see them, so free them here.
      const stacked = tf.stack([discriminatorStep.value, generatorStep.value, realScore!, fakeScore!]);
      tf.dispose([realScore!, fakeScore!]);
      return stacked;
    });
    const [discriminatorLoss, generatorLoss, realScore, fakeScore] = values.dataSync();
    values.dispose();
    this.stepCount++;
    return { discriminatorLoss, generatorLoss, realScore, fakeScore };
  }

  /** Moves the averaged generator towards the generator, with a decay that warms up over the first steps. */
  private updateAverage(): void {
    const decay = Math.min(this.config.emaDecay, (1 + this.stepCount) / (10 + this.stepCount));
    tf.tidy(() => {
      this.averagedVariables.forEach((average, index) => {
        average.assign(tf.add(tf.mul(average, decay), tf.mul(this.generatorVariables[index], 1 - decay)));
      });
    });
  }

  /**
   * Sets the averaged generator's batch-normalisation statistics to those of its own outputs on
   * one batch of latents with the given labels ("standing statistics"). The moving statistics of
   * the trained generator belong to its current weights, not to their average.
   */
  setAveragedStatistics(labels: readonly number[]): void {
    const random = new Random(deriveSeed(this.config.seed, 'standing statistics'));
    tf.tidy(() => {
      const latents = latentBatch(random, labels.length, this.config.latentSize);
      const oneHot = tf.oneHot(tf.tensor1d(labels as number[], 'int32'), this.numClasses).toFloat() as tf.Tensor2D;
      // Training mode with momentum 0 writes this batch's mean and variance into the moving statistics.
      this.averagedGenerator.apply([latents, oneHot], { training: true });
    });
  }

  /** Frees the optimisers and the models used only for training; the averaged generator stays. */
  disposeTraining(): void {
    this.generatorOptimizer.dispose();
    this.discriminatorOptimizer.dispose();
    this.generator.dispose();
    this.discriminator.dispose();
  }
}
