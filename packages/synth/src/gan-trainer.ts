import * as tf from '@tensorflow/tfjs';
import { deriveSeed, Random, type ImageShape } from '@scarce/core';
import type { InferenceRuntime } from '@scarce/train';
import { CompiledGanTraining, type AdamSnapshot, type CompiledBatch } from './compiled-trainer.js';
import type { SynthConfig } from './config.js';
import { diffAugment, type DiffAugmentOptions } from './diff-augment.js';
import { latentBatch } from './latents.js';
import { largestDivisorUpTo } from './minibatch-std.js';
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

/** Losses and mean discriminator scores of one step. */
export interface StepValues {
  /** Discriminator loss without the R1 penalty. */
  discriminatorLoss: number;
  generatorLoss: number;
  /** Weighted R1 penalty of this step (already multiplied by the interval), or 0 in a step without one. */
  r1Penalty: number;
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

/** Weights and optimiser moments of a `GanTrainer`, in the order `restoreState` expects. */
export interface TrainerState {
  generator: tf.Tensor[];
  discriminator: tf.Tensor[];
  averagedGenerator: tf.Tensor[];
  /** Adam's iteration count, then its first and second moments, as `Optimizer.getWeights` returns them. */
  generatorOptimizer: Array<{ name: string; tensor: tf.Tensor }>;
  discriminatorOptimizer: Array<{ name: string; tensor: tf.Tensor }>;
  /** Each optimiser's running products beta1^t and beta2^t, or null where the optimiser does not expose them. */
  adamPowers: { generator: [number, number] | null; discriminator: [number, number] | null };
  steps: number;
}

/** The bias-correction products that tfjs 4.22's AdamOptimizer keeps in private variables. */
interface AdamPowers {
  accBeta1?: tf.Variable;
  accBeta2?: tf.Variable;
}

function readAdamPowers(optimizer: tf.Optimizer): [number, number] | null {
  const { accBeta1, accBeta2 } = optimizer as unknown as AdamPowers;
  if (!(accBeta1 instanceof tf.Variable) || !(accBeta2 instanceof tf.Variable)) return null;
  return [accBeta1.dataSync()[0], accBeta2.dataSync()[0]];
}

/**
 * Puts back the products saved by `readAdamPowers`. tfjs's `setWeights` recomputes them as
 * beta^(t+1) with `pow`, which differs in the last float32 bits from the product accumulated
 * step by step, and a GAN amplifies that into visibly different losses within a few epochs.
 */
function writeAdamPowers(optimizer: tf.Optimizer, powers: [number, number] | null): void {
  const { accBeta1, accBeta2 } = optimizer as unknown as AdamPowers;
  if (powers === null || !(accBeta1 instanceof tf.Variable) || !(accBeta2 instanceof tf.Variable)) return;
  tf.tidy(() => {
    accBeta1.assign(tf.scalar(powers[0]));
    accBeta2.assign(tf.scalar(powers[1]));
  });
}

/** Reads an Adam optimiser's moments and running products, or null before its first step. */
async function adamSnapshot(optimizer: tf.Optimizer): Promise<AdamSnapshot | null> {
  const moments = (await optimizer.getWeights()).slice(1);
  const powers = readAdamPowers(optimizer);
  if (moments.length === 0 || powers === null) return null;
  const values = moments.map(({ tensor }) => tensor.dataSync() as Float32Array);
  return { first: values.slice(0, values.length / 2), second: values.slice(values.length / 2), powers };
}

/** Writes array moments as tfjs's Adam lists its weights: the iteration count, then every first moment, then every second. */
function adamEntries(snapshot: AdamSnapshot, variables: readonly tf.Variable[], iterations: number): Array<{ name: string; tensor: tf.Tensor }> {
  const entries = (moments: Float32Array[], suffix: string) => moments.map((values, i) => ({ name: `${variables[i].name}/${suffix}`, tensor: tf.tensor(values, variables[i].shape) }));
  return [{ name: 'iter', tensor: tf.scalar(iterations, 'int32') }, ...entries(snapshot.first, 'm'), ...entries(snapshot.second, 'v')];
}

/** Discriminator loss of real and fake scores, [n, 1] each. */
export function discriminatorLoss(config: SynthConfig, realScores: tf.Tensor, fakeScores: tf.Tensor): tf.Scalar {
  const smoothing = config.labelSmoothing;
  if (config.loss === 'hinge') {
    // Smoothing lowers the real margin from 1 to 1 - s; see SynthConfig.labelSmoothing.
    return tf.add(tf.mean(tf.relu(tf.sub(1 - smoothing, realScores))), tf.mean(tf.relu(tf.add(1, fakeScores)))) as tf.Scalar;
  }
  // Binary cross-entropy on logits: target t costs t * softplus(-s) + (1 - t) * softplus(s).
  const realTarget = 1 - smoothing;
  const realTerm = tf.add(tf.mul(tf.softplus(tf.neg(realScores)), realTarget), tf.mul(tf.softplus(realScores), smoothing));
  return tf.add(tf.mean(realTerm), tf.mean(tf.softplus(fakeScores))) as tf.Scalar;
}

/** Generator loss of the discriminator's scores of fakes. */
export function generatorLoss(config: SynthConfig, fakeScores: tf.Tensor): tf.Scalar {
  return (config.loss === 'hinge' ? tf.neg(tf.mean(fakeScores)) : tf.mean(tf.softplus(tf.neg(fakeScores)))) as tf.Scalar;
}

/**
 * The models and optimisers of one GAN run, and its training step: a discriminator step and a
 * generator step with the configured loss, an R1 penalty every `r1Interval` steps, then an
 * update of the averaged (EMA) generator.
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
  private random: Random;
  private readonly numClasses: number;
  private readonly imageShape: ImageShape;
  private readonly batchSize: number;
  private stepCount = 0;
  /** The steps compiled for onnxruntime, once `useRuntime` chose them. */
  private compiled: CompiledGanTraining | null = null;
  private readonly compiledBatches = new WeakMap<RealBatch, { images: Float32Array; labels: Float32Array }>();

  constructor(private readonly config: SynthConfig, shape: TrainingShape) {
    const { imageShape, numClasses } = shape;
    this.numClasses = numClasses;
    this.imageShape = imageShape;
    this.batchSize = shape.batchSize ?? config.batchSize;
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
      minibatchStdGroupSize: config.minibatchStd ? largestDivisorUpTo(this.batchSize, MINIBATCH_STD_GROUP_SIZE) : null,
      classifier: config.classifierWeight > 0,
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

  /**
   * Chooses where the training steps run and returns the runtime chosen. `onnxruntime` compiles
   * both steps and the R1 penalty and keeps weights and Adam in JavaScript arrays. `auto` does so
   * when tfjs runs on wasm or cpu and onnxruntime-node loads, else it keeps tfjs. It may be called
   * before or after `restoreState`. Throws when `onnxruntime` is requested and not available.
   */
  async useRuntime(runtime: InferenceRuntime): Promise<'onnxruntime' | 'tfjs'> {
    if (this.compiled !== null) return 'onnxruntime';
    const augment = this.augmentOptions;
    const compiled = await CompiledGanTraining.open(
      { generator: this.generator, discriminator: this.discriminator, averagedGenerator: this.averagedGenerator },
      {
        ...this.config,
        imageShape: this.imageShape,
        numClasses: this.numClasses,
        batchSize: this.batchSize,
        augment,
        penaltyWeight: (this.config.r1Gamma / 2) * this.config.r1Interval,
      },
      runtime,
    );
    if (compiled === undefined) return 'tfjs';
    compiled.load(await adamSnapshot(this.generatorOptimizer), await adamSnapshot(this.discriminatorOptimizer));
    this.compiled = compiled;
    return 'onnxruntime';
  }

  /**
   * Reseeds the latents and augmentation for a 1-based epoch. Drawing them from (seed, epoch)
   * rather than from one stream makes a run resumed at an epoch boundary repeat the draws of an
   * uninterrupted run without storing a generator's internal state.
   */
  beginEpoch(epoch: number): void {
    this.random = new Random(deriveSeed(this.config.seed, 'latents and augmentation', epoch));
    this.compiled?.discardPrefetched();
  }

  private augment(images: tf.Tensor4D): tf.Tensor4D {
    return this.augmentOptions === null ? images : diffAugment(images, this.random, this.augmentOptions);
  }

  private generate(latents: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor4D {
    return this.generator.apply([latents, labels], { training: true }) as tf.Tensor4D;
  }

  private score(images: tf.Tensor4D, labels: tf.Tensor2D): tf.Tensor2D {
    return this.scoreAndClass(images, labels).score;
  }

  /** The discriminator's scores and, with an auxiliary classifier, its class logits. */
  private scoreAndClass(images: tf.Tensor4D, labels: tf.Tensor2D): { score: tf.Tensor2D; logits: tf.Tensor2D | null } {
    const output = this.discriminator.apply([images, labels], { training: true }) as tf.Tensor2D | tf.Tensor2D[];
    return Array.isArray(output) ? { score: output[0], logits: output[1] } : { score: output, logits: null };
  }

  /** Returns the weighted auxiliary classification loss of class logits against one-hot labels, or zero without a classifier. */
  private classLoss(logits: tf.Tensor2D | null, labels: tf.Tensor2D): tf.Scalar {
    return logits === null ? tf.scalar(0) : (tf.mul(tf.losses.softmaxCrossEntropy(labels, logits), this.config.classifierWeight) as tf.Scalar);
  }

  /**
   * R1 penalty (gamma / 2) * mean |grad_x D(x)|^2 on (augmented) real images, multiplied by the
   * interval because it runs only every `r1Interval` steps.
   */
  private r1Penalty(realImages: tf.Tensor4D, labels: tf.Tensor2D): tf.Scalar {
    const inputGradient = tf.grad((images: tf.Tensor) => tf.sum(this.score(images as tf.Tensor4D, labels)))(realImages);
    const squaredNorms = tf.sum(tf.square(inputGradient), [1, 2, 3]);
    return tf.mul(tf.mean(squaredNorms), (this.config.r1Gamma / 2) * this.config.r1Interval) as tf.Scalar;
  }

  /** Returns whether step number `step` (0-based) takes the R1 penalty. */
  private penalises(step: number): boolean {
    return this.config.r1Gamma > 0 && step % this.config.r1Interval === 0;
  }

  /** Returns a batch for the compiled steps as step number `step`, reading its arrays once per batch. */
  private compiledBatch(batch: RealBatch, step: number): CompiledBatch {
    let arrays = this.compiledBatches.get(batch);
    if (arrays === undefined) {
      const count = batch.images.shape[0];
      if (count !== this.batchSize) throw new Error(`Invalid batch of ${count} images: the compiled GAN steps take batches of ${this.batchSize}. Pass full batches, or set runtime 'tfjs'.`);
      arrays = { images: batch.images.dataSync() as Float32Array, labels: batch.labels.dataSync() as Float32Array };
      this.compiledBatches.set(batch, arrays);
    }
    return { ...arrays, applyR1: this.penalises(step) };
  }

  /**
   * Runs one training step on a real batch; fakes get the real batch's labels. Every tensor made
   * here is disposed before it returns, and the batch stays with the caller. Passing the `next`
   * batch of the same epoch lets the compiled steps start part of the next step early. The
   * results are the same either way.
   */
  async step(batch: RealBatch, next?: RealBatch): Promise<StepValues> {
    const count = batch.images.shape[0];
    const applyR1 = this.penalises(this.stepCount);
    if (this.compiled !== null) {
      const arrays = this.compiledBatch(batch, this.stepCount);
      const values = await this.compiled.step(arrays, this.random, this.stepCount, next === undefined ? undefined : this.compiledBatch(next, this.stepCount + 1));
      this.stepCount++;
      return values;
    }
    const values = tf.tidy(() => {
      const fakes = this.generate(latentBatch(this.random, count, this.config.latentSize), batch.labels);
      const bothLabels = tf.concat([batch.labels, batch.labels], 0);
      const augmented = this.augment(tf.concat([batch.images, fakes], 0));
      let realScore: tf.Scalar | undefined;
      let fakeScore: tf.Scalar | undefined;
      let unpenalisedLoss: tf.Scalar | undefined;
      let penalty: tf.Scalar | undefined;
      const discriminatorStep = tf.variableGrads(() => {
        // Fakes enter as constants here, so no gradient reaches the generator.
        const { score: scores, logits } = this.scoreAndClass(augmented, bothLabels);
        const [realScores, fakeScores] = tf.split(scores, 2, 0);
        realScore = tf.keep(tf.mean(realScores) as tf.Scalar);
        fakeScore = tf.keep(tf.mean(fakeScores) as tf.Scalar);
        // The class head learns from the real images only.
        const realLogits = logits === null ? null : (tf.slice(logits, 0, count) as tf.Tensor2D);
        const loss = tf.add(discriminatorLoss(this.config, realScores, fakeScores), this.classLoss(realLogits, batch.labels)) as tf.Scalar;
        unpenalisedLoss = tf.keep(loss);
        if (!applyR1) return loss;
        penalty = tf.keep(this.r1Penalty(tf.slice(augmented, 0, count) as tf.Tensor4D, batch.labels));
        return tf.add(loss, penalty) as tf.Scalar;
      }, this.discriminatorVariables);
      this.discriminatorOptimizer.applyGradients(discriminatorStep.grads);

      const latents = latentBatch(this.random, count, this.config.latentSize);
      const generatorStep = tf.variableGrads(() => {
        const { score: scores, logits } = this.scoreAndClass(this.augment(this.generate(latents, batch.labels)), batch.labels);
        return tf.add(generatorLoss(this.config, scores), this.classLoss(logits, batch.labels)) as tf.Scalar;
      }, this.generatorVariables);
      this.generatorOptimizer.applyGradients(generatorStep.grads);

      this.updateAverage();
      // tf.keep moved these out of variableGrads's scope; tidy cannot see them, so free them here.
      const kept = [unpenalisedLoss!, realScore!, fakeScore!, ...(penalty === undefined ? [] : [penalty])];
      const stacked = tf.stack([unpenalisedLoss!, generatorStep.value, penalty ?? tf.scalar(0), realScore!, fakeScore!]);
      tf.dispose(kept);
      return stacked;
    });
    const [discriminatorLossValue, generatorLossValue, r1Penalty, realScore, fakeScore] = values.dataSync();
    values.dispose();
    this.stepCount++;
    return { discriminatorLoss: discriminatorLossValue, generatorLoss: generatorLossValue, r1Penalty, realScore, fakeScore };
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
   * the trained generator belong to its current weights, not to their average. Training never
   * reads the averaged generator's statistics, so calling this between epochs changes no loss.
   */
  setAveragedStatistics(labels: readonly number[]): void {
    this.compiled?.writeBack();
    const random = new Random(deriveSeed(this.config.seed, 'standing statistics'));
    tf.tidy(() => {
      const latents = latentBatch(random, labels.length, this.config.latentSize);
      const oneHot = tf.oneHot(tf.tensor1d(labels as number[], 'int32'), this.numClasses).toFloat() as tf.Tensor2D;
      // Training mode with momentum 0 writes this batch's mean and variance into the moving statistics.
      this.averagedGenerator.apply([latents, oneHot], { training: true });
    });
  }

  /** Returns the weights of all three models and the optimisers' moments, as copies that the caller disposes (`disposeTrainerState`). */
  async exportState(): Promise<TrainerState> {
    this.compiled?.writeBack();
    const copies = (model: tf.LayersModel) => model.weights.map((weight) => weight.read().clone());
    let generatorOptimizer: TrainerState['generatorOptimizer'];
    let discriminatorOptimizer: TrainerState['discriminatorOptimizer'];
    let adamPowers: TrainerState['adamPowers'];
    if (this.compiled === null) {
      const cloned = async (optimizer: tf.Optimizer) => (await optimizer.getWeights()).map(({ name, tensor }, i) => ({ name, tensor: i === 0 ? tensor : tensor.clone() }));
      generatorOptimizer = await cloned(this.generatorOptimizer);
      discriminatorOptimizer = await cloned(this.discriminatorOptimizer);
      adamPowers = { generator: readAdamPowers(this.generatorOptimizer), discriminator: readAdamPowers(this.discriminatorOptimizer) };
    } else {
      const { generator, discriminator } = this.compiled.adamState();
      generatorOptimizer = adamEntries(generator, this.generatorVariables, this.stepCount);
      discriminatorOptimizer = adamEntries(discriminator, this.discriminatorVariables, this.stepCount);
      adamPowers = { generator: generator.powers, discriminator: discriminator.powers };
    }
    return {
      generator: copies(this.generator),
      discriminator: copies(this.discriminator),
      averagedGenerator: copies(this.averagedGenerator),
      generatorOptimizer,
      discriminatorOptimizer,
      adamPowers,
      steps: this.stepCount,
    };
  }

  /** Loads a state from `exportState` into a trainer built with the same config and shape; the caller keeps and disposes the tensors. */
  async restoreState(state: TrainerState): Promise<void> {
    const load = (model: tf.LayersModel, tensors: tf.Tensor[], name: string) => {
      if (tensors.length !== model.weights.length) {
        throw new Error(`The checkpoint has ${tensors.length} ${name} weights but the model has ${model.weights.length}; it was written with other settings.`);
      }
      model.setWeights(tensors);
    };
    load(this.generator, state.generator, 'generator');
    load(this.discriminator, state.discriminator, 'discriminator');
    load(this.averagedGenerator, state.averagedGenerator, 'averaged generator');
    // setWeights copies each moment into a new variable, so the caller may dispose the given tensors.
    await this.generatorOptimizer.setWeights(state.generatorOptimizer);
    await this.discriminatorOptimizer.setWeights(state.discriminatorOptimizer);
    writeAdamPowers(this.generatorOptimizer, state.adamPowers.generator);
    writeAdamPowers(this.discriminatorOptimizer, state.adamPowers.discriminator);
    this.stepCount = state.steps;
    // The running products come from the state, not from tfjs's float32 copies of them.
    const withPowers = (snapshot: AdamSnapshot | null, powers: [number, number] | null) => (snapshot === null || powers === null ? snapshot : { ...snapshot, powers });
    this.compiled?.load(
      withPowers(await adamSnapshot(this.generatorOptimizer), state.adamPowers.generator),
      withPowers(await adamSnapshot(this.discriminatorOptimizer), state.adamPowers.discriminator),
    );
  }

  /** Frees the optimisers and the models used only for training; the averaged generator stays. */
  disposeTraining(): void {
    void this.compiled?.close();
    this.generatorOptimizer.dispose();
    this.discriminatorOptimizer.dispose();
    this.generator.dispose();
    this.discriminator.dispose();
  }
}
