import * as tf from '@tensorflow/tfjs';
import type { Random } from '@scarce/core';
import { ArrayAdam, onnxGraphSession, stepGradient, stepWeight, type GraphFeed, type InferenceRuntime, type OnnxGraphSession } from '@scarce/train';
import {
  augmentFeeds,
  batchMean,
  batchVariance,
  exportGanStep,
  exportPenaltyStep,
  fixedWeight,
  GAN_AUGMENTED_REAL,
  GAN_FAKE_SCORE,
  GAN_LABELS,
  GAN_LATENTS,
  GAN_LOSS,
  GAN_PENALTY,
  GAN_PENALTY_IMAGES,
  GAN_REAL_IMAGES,
  GAN_REAL_SCORE,
  type GanStepSpec,
} from './compiled-steps.js';
import { drawAugmentation } from './diff-augment.js';
import { latentValues } from './latents.js';

/**
 * onnxruntime threads per GAN step. The steps of a small GAN are many small operations, and a
 * second thread cost more in hand-offs than it saved: a 28 px step took about 6.5 ms on one
 * thread and 12 ms on two.
 */
const GAN_STEP_THREADS = 1;

/** Values of a tfjs variable, copied out. */
const valuesOf = (variable: tf.LayerVariable) => (variable.read().dataSync() as Float32Array).slice();

/** Adam's moments and running products as tfjs keeps them, or null before its first step. */
export interface AdamSnapshot {
  first: Float32Array[];
  second: Float32Array[];
  powers: [number, number];
}

/** The tfjs models a compiled run trains. */
export interface CompiledGanModels {
  generator: tf.LayersModel;
  discriminator: tf.LayersModel;
  averagedGenerator: tf.LayersModel;
}

/** Settings of the compiled steps that are not in their graphs. */
export interface CompiledGanSettings extends GanStepSpec {
  /** Weight of the R1 penalty (gamma / 2 times the steps between penalties), or 0 for none. */
  penaltyWeight: number;
  generatorLearningRate: number;
  discriminatorLearningRate: number;
  adamBeta1: number;
  adamBeta2: number;
  emaDecay: number;
}

/** One step's losses and mean scores, as `GanTrainer.step` returns them. */
export interface CompiledStepValues {
  discriminatorLoss: number;
  generatorLoss: number;
  r1Penalty: number;
  realScore: number;
  fakeScore: number;
}

/**
 * The discriminator and generator steps of a GAN run compiled for onnxruntime, with the weights,
 * the Adam moments, the moving statistics and the averaged generator kept in JavaScript arrays.
 * `writeBack` copies them into the tfjs models, which checkpoints, sampling and the quality
 * metrics read.
 */
export class CompiledGanTraining {
  private readonly generatorWeights: Float32Array[];
  private readonly discriminatorWeights: Float32Array[];
  private readonly averagedWeights: Float32Array[];
  /** Moving mean and variance of each generator BatchNormalization layer, in graph output order. */
  private readonly movingStatistics: Array<{ mean: Float32Array; variance: Float32Array; momentum: number; variables: tf.LayerVariable[] }>;
  private readonly generatorAdam: ArrayAdam;
  private readonly discriminatorAdam: ArrayAdam;

  private constructor(
    private readonly models: CompiledGanModels,
    private readonly settings: CompiledGanSettings,
    private readonly sessions: { discriminator: OnnxGraphSession; generator: OnnxGraphSession; penalty: OnnxGraphSession | null },
    private readonly outputs: { discriminator: string[]; generator: string[]; penalty: string[] },
    batchNormLayers: readonly tf.layers.Layer[],
  ) {
    const { generator, discriminator, averagedGenerator } = models;
    this.generatorWeights = generator.trainableWeights.map(valuesOf);
    this.discriminatorWeights = discriminator.trainableWeights.map(valuesOf);
    this.averagedWeights = averagedGenerator.trainableWeights.map(valuesOf);
    this.movingStatistics = batchNormLayers.map((layer) => {
      // A BatchNormalization layer's weights end with its moving mean and moving variance.
      const variables = layer.weights.filter((weight) => !weight.trainable);
      return { mean: valuesOf(variables[0]), variance: valuesOf(variables[1]), momentum: Number((layer.getConfig() as Record<string, unknown>).momentum), variables };
    });
    const sizes = (weights: Float32Array[]) => weights.map((values) => values.length);
    this.generatorAdam = new ArrayAdam(settings.generatorLearningRate, sizes(this.generatorWeights), settings.adamBeta1, settings.adamBeta2);
    this.discriminatorAdam = new ArrayAdam(settings.discriminatorLearningRate, sizes(this.discriminatorWeights), settings.adamBeta1, settings.adamBeta2);
  }

  /**
   * Compiles both steps and opens their sessions, or returns undefined when tfjs should train:
   * `tfjs` requested, `auto` on a native tfjs backend, or without onnxruntime-node. Throws when
   * `onnxruntime` is requested and not available.
   */
  static async open(models: CompiledGanModels, settings: CompiledGanSettings, runtime: InferenceRuntime): Promise<CompiledGanTraining | undefined> {
    const discriminatorStep = exportGanStep('discriminator', models.generator, models.discriminator, settings);
    const discriminator = await onnxGraphSession(() => discriminatorStep.bytes, runtime, GAN_STEP_THREADS);
    if (discriminator === undefined) return undefined;
    const generatorStep = exportGanStep('generator', models.generator, models.discriminator, settings);
    const generator = await onnxGraphSession(() => generatorStep.bytes, runtime, GAN_STEP_THREADS);
    if (generator === undefined) return undefined;
    const penaltyStep = settings.penaltyWeight > 0 ? exportPenaltyStep(models.discriminator, { ...settings, weight: settings.penaltyWeight }) : null;
    const penalty = penaltyStep === null ? null : ((await onnxGraphSession(() => penaltyStep.bytes, runtime, GAN_STEP_THREADS)) ?? null);
    return new CompiledGanTraining(
      models,
      settings,
      { discriminator, generator, penalty },
      { discriminator: discriminatorStep.outputs, generator: generatorStep.outputs, penalty: penaltyStep?.outputs ?? [] },
      generatorStep.batchNormLayers,
    );
  }

  /** Takes the weights of the tfjs models and the optimisers' moments (null for fresh ones) as they are now. */
  load(generatorAdam: AdamSnapshot | null, discriminatorAdam: AdamSnapshot | null): void {
    const { generator, discriminator, averagedGenerator } = this.models;
    const reload = (arrays: Float32Array[], model: tf.LayersModel) => model.trainableWeights.forEach((weight, i) => arrays[i].set(weight.read().dataSync()));
    reload(this.generatorWeights, generator);
    reload(this.discriminatorWeights, discriminator);
    reload(this.averagedWeights, averagedGenerator);
    for (const statistics of this.movingStatistics) {
      statistics.mean.set(statistics.variables[0].read().dataSync());
      statistics.variance.set(statistics.variables[1].read().dataSync());
    }
    if (generatorAdam !== null) this.generatorAdam.restore(generatorAdam.first, generatorAdam.second, generatorAdam.powers);
    if (discriminatorAdam !== null) this.discriminatorAdam.restore(discriminatorAdam.first, discriminatorAdam.second, discriminatorAdam.powers);
  }

  /** The optimisers' moments and running products, in tfjs's order of the trainable weights. */
  adamState(): { generator: AdamSnapshot; discriminator: AdamSnapshot } {
    const snapshot = (adam: ArrayAdam): AdamSnapshot => {
      const { first, second, powers } = adam.state;
      return { first: first.map((values) => values.slice()), second: second.map((values) => values.slice()), powers };
    };
    return { generator: snapshot(this.generatorAdam), discriminator: snapshot(this.discriminatorAdam) };
  }

  /** Copies the arrays into the tfjs models: both trained models, the moving statistics and the averaged generator. */
  writeBack(): void {
    const { generator, discriminator, averagedGenerator } = this.models;
    tf.tidy(() => {
      const write = (variable: tf.LayerVariable, values: Float32Array) => variable.write(tf.tensor(values, variable.shape as number[]));
      generator.trainableWeights.forEach((weight, i) => write(weight, this.generatorWeights[i]));
      discriminator.trainableWeights.forEach((weight, i) => write(weight, this.discriminatorWeights[i]));
      averagedGenerator.trainableWeights.forEach((weight, i) => write(weight, this.averagedWeights[i]));
      for (const { mean, variance, variables } of this.movingStatistics) {
        write(variables[0], mean);
        write(variables[1], variance);
      }
    });
  }

  /**
   * Runs one training step on `images` (NHWC in [-1, 1]) with one-hot `labels`, drawing latents
   * and augmentation from `random` in the order the tfjs step draws them. `step` is the number of
   * steps taken before this one; `applyR1` adds the R1 penalty's gradient to the discriminator's.
   */
  async step(images: Float32Array, labels: Float32Array, random: Random, step: number, applyR1: boolean): Promise<CompiledStepValues> {
    const { batchSize: n, latentSize, imageShape, numClasses, augment } = this.settings;
    const common = (draws: ReturnType<typeof drawAugmentation> | null, latents: Float32Array): Record<string, GraphFeed> => ({
      [GAN_LATENTS]: { data: latents, dims: [n, latentSize] },
      [GAN_LABELS]: { data: labels, dims: [n, numClasses] },
      ...(draws === null ? {} : augmentFeeds(draws, imageShape)),
    });
    const weightFeeds = (trained: Float32Array[], trainedShapes: tf.LayerVariable[], fixed: Float32Array[], fixedShapes: tf.LayerVariable[]) => ({
      ...Object.fromEntries(trained.map((data, i) => [stepWeight(i), { data, dims: trainedShapes[i].shape as number[] }])),
      ...Object.fromEntries(fixed.map((data, i) => [fixedWeight(i), { data, dims: fixedShapes[i].shape as number[] }])),
    });
    const { generator, discriminator } = this.models;

    const discriminatorLatents = latentValues(random, n, latentSize);
    const discriminatorDraws = augment === null ? null : drawAugmentation(random, 2 * n, imageShape, augment);
    const discriminatorResult = await this.sessions.discriminator.run(
      {
        ...common(discriminatorDraws, discriminatorLatents),
        [GAN_REAL_IMAGES]: { data: images, dims: [n, imageShape.height, imageShape.width, imageShape.channels] },
        ...weightFeeds(this.discriminatorWeights, discriminator.trainableWeights, this.generatorWeights, generator.trainableWeights),
      },
      this.outputs.discriminator,
    );
    const discriminatorGradients = this.discriminatorWeights.map((_, i) => discriminatorResult[stepGradient(i)]);
    let r1Penalty = 0;
    if (applyR1 && this.sessions.penalty !== null) {
      // The penalty is taken at the weights before this step's update, on the augmented real images.
      const penalty = await this.sessions.penalty.run(
        {
          [GAN_PENALTY_IMAGES]: { data: discriminatorResult[GAN_AUGMENTED_REAL], dims: [n, imageShape.height, imageShape.width, imageShape.channels] },
          [GAN_LABELS]: { data: labels, dims: [n, numClasses] },
          ...weightFeeds(this.discriminatorWeights, discriminator.trainableWeights, [], []),
        },
        this.outputs.penalty,
      );
      discriminatorGradients.forEach((total, i) => {
        const share = penalty[stepGradient(i)];
        for (let k = 0; k < total.length; k++) total[k] += share[k];
      });
      r1Penalty = penalty[GAN_PENALTY][0];
    }
    this.discriminatorAdam.apply(this.discriminatorWeights, discriminatorGradients);
    this.updateMovingStatistics(discriminatorResult);

    const generatorLatents = latentValues(random, n, latentSize);
    const generatorDraws = augment === null ? null : drawAugmentation(random, n, imageShape, augment);
    const generatorResult = await this.sessions.generator.run(
      { ...common(generatorDraws, generatorLatents), ...weightFeeds(this.generatorWeights, generator.trainableWeights, this.discriminatorWeights, discriminator.trainableWeights) },
      this.outputs.generator,
    );
    this.generatorAdam.apply(
      this.generatorWeights,
      this.generatorWeights.map((_, i) => generatorResult[stepGradient(i)]),
    );
    this.updateMovingStatistics(generatorResult);
    this.updateAverage(step);
    return {
      discriminatorLoss: discriminatorResult[GAN_LOSS][0],
      generatorLoss: generatorResult[GAN_LOSS][0],
      r1Penalty,
      realScore: discriminatorResult[GAN_REAL_SCORE][0],
      fakeScore: discriminatorResult[GAN_FAKE_SCORE][0],
    };
  }

  /** moving -= (moving - batch) (1 - momentum), as tfjs's BatchNormalization does in training. */
  private updateMovingStatistics(result: Record<string, Float32Array>): void {
    this.movingStatistics.forEach((statistics, i) => {
      const decay = 1 - statistics.momentum;
      const [mean, variance] = [result[batchMean(i)], result[batchVariance(i)]];
      for (let k = 0; k < mean.length; k++) {
        statistics.mean[k] -= (statistics.mean[k] - mean[k]) * decay;
        statistics.variance[k] -= (statistics.variance[k] - variance[k]) * decay;
      }
    });
  }

  /** average = average d + weights (1 - d), with d = min(decay, (1 + step) / (10 + step)). */
  private updateAverage(step: number): void {
    const decay = Math.min(this.settings.emaDecay, (1 + step) / (10 + step));
    this.averagedWeights.forEach((average, i) => {
      const weights = this.generatorWeights[i];
      for (let k = 0; k < average.length; k++) average[k] = average[k] * decay + weights[k] * (1 - decay);
    });
  }
}
