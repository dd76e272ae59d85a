import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { Random } from '@scarce/core';
import { ArrayAdam, onnxGraphSession, OnnxThread, resolveTrainingRuntime, sharedFloats, stepGradient, stepWeight, type GraphFeed, type InferenceRuntime, type OnnxGraphSession } from '@scarce/train';
import {
  augmentFeeds,
  batchMean,
  batchVariance,
  exportGanStep,
  fixedWeight,
  GAN_AUGMENTED_REAL,
  GAN_FAKE_IMAGES,
  GAN_FAKE_SCORE,
  GAN_LABELS,
  GAN_LATENTS,
  GAN_LOSS,
  GAN_PENALTY,
  GAN_REAL_IMAGES,
  GAN_REAL_SCORE,
  type GanStepSpec,
} from './compiled-steps.js';
import { drawAugmentation, splitDraws, type AugmentDraws } from './diff-augment.js';
import { latentValues } from './latents.js';
import { largestDivisorUpTo } from './minibatch-std.js';

/**
 * onnxruntime threads per GAN step. The steps of a small GAN are many small operations, and a
 * second thread cost more in hand-offs than it saved: a 28 px step took about 6.5 ms on one
 * thread and 12 ms on two.
 */
const GAN_STEP_THREADS = 1;

/** tfjs's Adam epsilon on the wasm and cpu backends, which `ArrayAdam` also defaults to. */
const ADAM_EPSILON = 1e-7;

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

/** A batch of a compiled step: images NHWC in [-1, 1], one-hot labels, and whether the step takes the R1 penalty. */
export interface CompiledBatch {
  images: Float32Array;
  labels: Float32Array;
  applyR1: boolean;
}

/** A step whose discriminator half has begun: its draws and the real half in flight. */
interface StartedDiscriminator {
  batch: CompiledBatch;
  latents: Float32Array;
  fakeDraws: AugmentDraws | null;
  penalised: boolean;
  real: Promise<Record<string, Float32Array>>;
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
  /** The generator's weights as the graphs take them: the weights themselves, or a copy of them off shared memory. */
  private readonly generatorInputs: Float32Array[];
  private readonly generatorAdam: ArrayAdam;
  private readonly discriminatorAdam: ArrayAdam;
  /** The next step's discriminator half, started during the last step's generator part. */
  private prefetched: StartedDiscriminator | null = null;

  private constructor(
    private readonly models: CompiledGanModels,
    private readonly settings: CompiledGanSettings,
    private readonly sessions: Record<'generate' | 'real' | 'fake' | 'generator', OnnxGraphSession> & {
      penalised: OnnxGraphSession | null;
      fakeInThread: OnnxGraphSession | null;
      thread: OnnxThread | null;
    },
    private readonly outputs: Record<'generate' | 'real' | 'fake' | 'generator' | 'penalised', string[]>,
    batchNormLayers: readonly tf.layers.Layer[],
    /** Fakes per fake-part graph: the batch, or half of it when the worker thread scores the other half. */
    private readonly fakeRows: number,
  ) {
    const { generator, discriminator, averagedGenerator } = models;
    // With a worker thread the generator's arrays live on shared memory, so that the thread can take half of each Adam step.
    const allocate = sessions.thread === null ? (size: number) => new Float32Array(size) : sharedFloats;
    const shared = (variable: tf.LayerVariable) => {
      const data = variable.read().dataSync();
      const values = allocate(data.length);
      values.set(data);
      return values;
    };
    this.generatorWeights = generator.trainableWeights.map(shared);
    // onnxruntime-node rejects tensors on shared memory, so the graphs read a copy.
    this.generatorInputs = sessions.thread === null ? this.generatorWeights : this.generatorWeights.map((values) => values.slice());
    this.discriminatorWeights = discriminator.trainableWeights.map(valuesOf);
    this.averagedWeights = averagedGenerator.trainableWeights.map(shared);
    this.movingStatistics = batchNormLayers.map((layer) => {
      // A BatchNormalization layer's weights end with its moving mean and moving variance.
      const variables = layer.weights.filter((weight) => !weight.trainable);
      return { mean: valuesOf(variables[0]), variance: valuesOf(variables[1]), momentum: Number((layer.getConfig() as Record<string, unknown>).momentum), variables };
    });
    const sizes = (weights: Float32Array[]) => weights.map((values) => values.length);
    this.generatorAdam = new ArrayAdam(settings.generatorLearningRate, sizes(this.generatorWeights), settings.adamBeta1, settings.adamBeta2, ADAM_EPSILON, allocate);
    this.discriminatorAdam = new ArrayAdam(settings.discriminatorLearningRate, sizes(this.discriminatorWeights), settings.adamBeta1, settings.adamBeta2);
  }

  /**
   * Compiles the steps and opens their sessions, or returns undefined when tfjs should train:
   * `tfjs` requested, `auto` on a native tfjs backend, or without onnxruntime-node. Throws when
   * `onnxruntime` is requested and not available. With more than one core, the discriminator's
   * real half runs in a worker thread while its fake half runs here.
   */
  static async open(models: CompiledGanModels, settings: CompiledGanSettings, runtime: InferenceRuntime): Promise<CompiledGanTraining | undefined> {
    // Decides before compiling anything: tfjs asked for, a native tfjs backend, or no onnxruntime-node.
    if ((await resolveTrainingRuntime(null, runtime)) === 'tfjs') return undefined;
    const { generator, discriminator } = models;
    const generateStep = exportGanStep('generate', generator, discriminator, settings);
    const generate = await onnxGraphSession(() => generateStep.bytes, runtime, GAN_STEP_THREADS);
    if (generate === undefined) return undefined;
    const thread = availableParallelism() > 1 ? new OnnxThread() : null;
    const inThread = async (bytes: Uint8Array) => (thread === null ? (await onnxGraphSession(() => bytes, runtime, GAN_STEP_THREADS))! : thread.open(bytes, GAN_STEP_THREADS));
    const onMainThread = async (bytes: Uint8Array) => (await onnxGraphSession(() => bytes, runtime, GAN_STEP_THREADS))!;
    const n = settings.batchSize;
    // The fakes split in two when both halves keep the minibatch std groups of the whole batch.
    const groupSize = discriminator.layers.find((layer) => layer.getClassName() === 'MinibatchStd')?.getConfig().groupSize as number | undefined;
    const group = groupSize === undefined ? 1 : largestDivisorUpTo(n, groupSize);
    const fakeRows = thread !== null && n % 2 === 0 && (n / 2) % group === 0 ? n / 2 : n;
    const fakeStep = exportGanStep('fake', generator, discriminator, { ...settings, batchSize: fakeRows }, { lossRows: n });
    const generatorStep = exportGanStep('generator', generator, discriminator, settings);
    const realStep = exportGanStep('real', generator, discriminator, settings);
    const penalisedStep = settings.penaltyWeight > 0 ? exportGanStep('real', generator, discriminator, settings, { penaltyWeight: settings.penaltyWeight }) : null;
    return new CompiledGanTraining(
      models,
      settings,
      {
        generate,
        fake: await onMainThread(fakeStep.bytes),
        fakeInThread: fakeRows < n ? await inThread(fakeStep.bytes) : null,
        generator: await onMainThread(generatorStep.bytes),
        real: await inThread(realStep.bytes),
        penalised: penalisedStep === null ? null : await inThread(penalisedStep.bytes),
        thread,
      },
      {
        generate: generateStep.outputs,
        fake: fakeStep.outputs,
        generator: generatorStep.outputs,
        // The augmented real images are there for tests; training does not need them.
        real: realStep.outputs.filter((name) => name !== GAN_AUGMENTED_REAL),
        penalised: penalisedStep?.outputs.filter((name) => name !== GAN_AUGMENTED_REAL) ?? [],
      },
      generateStep.batchNormLayers,
      fakeRows,
    );
  }

  /** Ends the worker thread, if any. */
  async close(): Promise<void> {
    await this.sessions.thread?.close();
  }

  /** Takes the weights of the tfjs models and the optimisers' moments (null for fresh ones) as they are now. */
  load(generatorAdam: AdamSnapshot | null, discriminatorAdam: AdamSnapshot | null): void {
    const { generator, discriminator, averagedGenerator } = this.models;
    const reload = (arrays: Float32Array[], model: tf.LayersModel) => model.trainableWeights.forEach((weight, i) => arrays[i].set(weight.read().dataSync()));
    reload(this.generatorWeights, generator);
    this.copyGeneratorInputs();
    reload(this.discriminatorWeights, discriminator);
    reload(this.averagedWeights, averagedGenerator);
    for (const statistics of this.movingStatistics) {
      statistics.mean.set(statistics.variables[0].read().dataSync());
      statistics.variance.set(statistics.variables[1].read().dataSync());
    }
    if (generatorAdam !== null) this.generatorAdam.restore(generatorAdam.first, generatorAdam.second, generatorAdam.powers);
    if (discriminatorAdam !== null) this.discriminatorAdam.restore(discriminatorAdam.first, discriminatorAdam.second, discriminatorAdam.powers);
  }

  /** Returns copies of the optimisers' moments and running products, in tfjs's order of the trainable weights. */
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
   * Starts the discriminator half of a step: draws its latents and augmentation from `random` and
   * sends the real half on its way, which runs in the worker thread until it is awaited.
   */
  private startDiscriminator(batch: CompiledBatch, random: Random): StartedDiscriminator {
    const { batchSize: n, latentSize, imageShape, numClasses, augment } = this.settings;
    const latents = latentValues(random, n, latentSize);
    const draws = augment === null ? null : splitDraws(drawAugmentation(random, 2 * n, imageShape, augment), n);
    const penalised = batch.applyR1 && this.sessions.penalised !== null;
    const [session, outputs] = penalised ? [this.sessions.penalised!, this.outputs.penalised] : [this.sessions.real, this.outputs.real];
    const real = session.run(
      {
        [GAN_LABELS]: { data: batch.labels, dims: [n, numClasses] },
        [GAN_REAL_IMAGES]: { data: batch.images, dims: [n, imageShape.height, imageShape.width, imageShape.channels] },
        ...(draws === null ? {} : augmentFeeds(draws[0])),
        ...this.weightFeeds(this.discriminatorWeights, this.models.discriminator.trainableWeights, [], []),
      },
      outputs,
    );
    // A rejection is handled where the step awaits it; until then it must not count as unhandled.
    real.catch(() => {});
    return { batch, latents, fakeDraws: draws?.[1] ?? null, penalised, real };
  }

  private weightFeeds(trained: Float32Array[], trainedShapes: tf.LayerVariable[], fixed: Float32Array[], fixedShapes: tf.LayerVariable[]): Record<string, GraphFeed> {
    return {
      ...Object.fromEntries(trained.map((data, i) => [stepWeight(i), { data, dims: trainedShapes[i].shape as number[] }])),
      ...Object.fromEntries(fixed.map((data, i) => [fixedWeight(i), { data, dims: fixedShapes[i].shape as number[] }])),
    };
  }

  /** The latents, labels and augmentation feeds of a part that runs the generator. */
  private generatorFeeds(labels: Float32Array, latents: Float32Array, draws: AugmentDraws | null): Record<string, GraphFeed> {
    const { batchSize: n, latentSize, imageShape, numClasses } = this.settings;
    return {
      [GAN_LATENTS]: { data: latents, dims: [n, latentSize] },
      [GAN_LABELS]: { data: labels, dims: [n, numClasses] },
      ...(draws === null ? {} : augmentFeeds(draws)),
    };
  }

  /** Forgets a discriminator half started for a step that will not run, such as the first of a new epoch. */
  discardPrefetched(): void {
    this.prefetched = null;
  }

  /**
   * Runs one training step on a batch of images (NHWC in [-1, 1]) with one-hot labels, drawing
   * latents and augmentation from `random` in the order the tfjs step draws them. `step` is the
   * number of steps taken before this one. Given the `next` batch (of the same epoch), it starts
   * that step's real half while this step's generator part runs, and takes its draws from
   * `random` then, which is where the next step would draw them anyway.
   */
  async step(batch: CompiledBatch, random: Random, step: number, next?: CompiledBatch): Promise<CompiledStepValues> {
    const { generator, discriminator } = this.models;
    const prefetched = this.prefetched;
    const started = prefetched !== null && prefetched.batch.images === batch.images && prefetched.batch.applyR1 === batch.applyR1 ? prefetched : this.startDiscriminator(batch, random);
    this.prefetched = null;
    const { batchSize: n, latentSize, imageShape, numClasses, augment } = this.settings;
    const generated = await this.sessions.generate.run(
      { ...this.generatorFeeds(batch.labels, started.latents, null), ...this.weightFeeds([], [], this.generatorInputs, generator.trainableWeights) },
      this.outputs.generate,
    );
    // The fakes are scored in shares of `fakeRows`: the last in the worker thread, the first here.
    const imageSize = imageShape.height * imageShape.width * imageShape.channels;
    const shares = n / this.fakeRows;
    let shareDraws: AugmentDraws[] | null = null;
    if (started.fakeDraws !== null) shareDraws = shares === 1 ? [started.fakeDraws] : splitDraws(started.fakeDraws, this.fakeRows);
    const fakeRuns = Array.from({ length: shares }, (_, share) => share).reverse().map((share) => {
      const [start, end] = [share * this.fakeRows, (share + 1) * this.fakeRows];
      const session = share === 0 ? this.sessions.fake : this.sessions.fakeInThread!;
      return session.run(
        {
          [GAN_LABELS]: { data: batch.labels.slice(start * numClasses, end * numClasses), dims: [this.fakeRows, numClasses] },
          [GAN_FAKE_IMAGES]: { data: generated[GAN_FAKE_IMAGES].slice(start * imageSize, end * imageSize), dims: [this.fakeRows, imageShape.height, imageShape.width, imageShape.channels] },
          ...(shareDraws === null ? {} : augmentFeeds(shareDraws[share])),
          ...this.weightFeeds(this.discriminatorWeights, discriminator.trainableWeights, [], []),
        },
        this.outputs.fake,
      );
    });
    const fakeResults = await Promise.all(fakeRuns);
    const realResult = await started.real;
    const discriminatorGradients = this.discriminatorWeights.map((_, i) => {
      const total = realResult[stepGradient(i)];
      for (const result of fakeResults) {
        const share = result[stepGradient(i)];
        for (let k = 0; k < total.length; k++) total[k] += share[k];
      }
      return total;
    });
    this.discriminatorAdam.apply(this.discriminatorWeights, discriminatorGradients);
    this.updateMovingStatistics(generated);

    const generatorLatents = latentValues(random, n, latentSize);
    const generatorDraws = augment === null ? null : drawAugmentation(random, n, imageShape, augment);
    // The next step's real half needs only the discriminator as it is now, so it overlaps this generator part.
    if (next !== undefined) this.prefetched = this.startDiscriminator(next, random);
    const generatorResult = await this.sessions.generator.run(
      { ...this.generatorFeeds(batch.labels, generatorLatents, generatorDraws), ...this.weightFeeds(this.generatorInputs, generator.trainableWeights, this.discriminatorWeights, discriminator.trainableWeights) },
      this.outputs.generator,
    );
    // The averaged generator follows in the same pass, with a decay that warms up: min(decay, (1 + step) / (10 + step)).
    const decay = Math.min(this.settings.emaDecay, (1 + step) / (10 + step));
    const generatorGradients = this.generatorWeights.map((_, i) => generatorResult[stepGradient(i)]);
    const average = { values: this.averagedWeights, decay };
    const thread = this.sessions.thread;
    if (thread === null) this.generatorAdam.apply(this.generatorWeights, generatorGradients, average);
    else await this.generatorAdam.applyWith(thread, this.generatorWeights, generatorGradients, average);
    this.copyGeneratorInputs();
    this.updateMovingStatistics(generatorResult);
    return {
      discriminatorLoss: realResult[GAN_LOSS][0] + fakeResults.reduce((sum, result) => sum + result[GAN_LOSS][0], 0),
      generatorLoss: generatorResult[GAN_LOSS][0],
      r1Penalty: started.penalised ? realResult[GAN_PENALTY][0] : 0,
      realScore: realResult[GAN_REAL_SCORE][0],
      fakeScore: fakeResults.reduce((sum, result) => sum + result[GAN_FAKE_SCORE][0], 0) / shares,
    };
  }

  private copyGeneratorInputs(): void {
    if (this.generatorInputs !== this.generatorWeights) this.generatorInputs.forEach((copy, i) => copy.set(this.generatorWeights[i]));
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
}
