import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { countByClass, deriveSeed, InputError, mirrorImage, Progress, Random, sha256Hex, type ImageRecord, type ImageShape, type ProgressOptions } from '@scarce/core';
import {
  CHECKPOINTS_FOLDER,
  disposeTrainerState,
  listCheckpoints,
  readCheckpointState,
  writeCheckpoint,
  type CheckpointInfo,
} from './checkpoint.js';
import { DEFAULT_SYNTH_CONFIG, resolveSynthConfig, type SynthConfig } from './config.js';
import { GanTrainer, type RealBatch, type StepValues } from './gan-trainer.js';
import type { GeneratorProvenance, SamplingGenerator } from './sample.js';

/** Samples used to set the averaged generator's batch-normalisation statistics after training. */
const STANDING_STATISTICS_SAMPLES = 1024;

/** Mean losses and scores of one epoch (or of the steps of an epoch cut short by the time budget). */
export interface EpochLog {
  /** 1-based epoch number. */
  epoch: number;
  /** Steps run in this epoch. */
  steps: number;
  /** Discriminator loss without the R1 penalty. */
  discriminatorLoss: number;
  generatorLoss: number;
  /** Mean weighted R1 penalty of the steps that had one, or 0 when none did. */
  r1Penalty: number;
  /** Mean discriminator score of augmented real images; the hinge loss pushes it above 1. */
  realScore: number;
  /** Mean discriminator score of augmented fakes; the hinge loss pushes it below -1. */
  fakeScore: number;
  /** Seconds this epoch took. */
  seconds: number;
  /** Seconds since training started. */
  elapsedSeconds: number;
}

/** Callbacks and output of `trainConditionalGan`. */
export interface TrainHooks {
  /** Called after every epoch with its log. */
  onEpochEnd?: (log: EpochLog) => void;
  /** Receives one formatted line per epoch and a summary line at the end; default no lines. */
  log?: (line: string) => void;
  /** Options of the progress bar on stderr, or false for none; default a bar on stderr. */
  progress?: ProgressOptions | false;
  /**
   * Output folder of the run. Checkpoints go to its `checkpoints/` subfolder every
   * `config.checkpointEvery` epochs and after the last epoch; default none, so no checkpoints.
   */
  directory?: string;
  /**
   * Continue from the latest resumable checkpoint under `directory` instead of starting anew;
   * default false. With no checkpoint there, training starts from epoch 1. Rejects a checkpoint
   * written with other train records or other settings, except the run length (`epochs`,
   * `timeBudgetSeconds`), `checkpointEvery` and `selectCheckpointBy`.
   */
  resume?: boolean;
  /** Called after each checkpoint is written, with its folder and the averaged generator (which it must not dispose). */
  onCheckpoint?: (checkpoint: WrittenCheckpoint) => Promise<void> | void;
}

/** A checkpoint just written by `trainConditionalGan`. */
export interface WrittenCheckpoint {
  epoch: number;
  /** The checkpoint folder, with `generator/` inside. */
  path: string;
  /** The averaged generator at this epoch, with its batch-normalisation statistics set. */
  generator: SamplingGenerator;
  history: EpochLog[];
}

/** The limit that ended training. */
export type StopReason = 'epochs' | 'timeBudget';

/** A trained GAN: the averaged generator for sampling, and how it was trained. */
export interface TrainedGan extends SamplingGenerator {
  config: SynthConfig;
  history: EpochLog[];
  /** Whole epochs run; the last entry of `history` may be a partial epoch cut by the time budget. */
  epochsCompleted: number;
  steps: number;
  seconds: number;
  stoppedBy: StopReason;
  /** tfjs backend of the run (`wasm`, `cpu`, `tensorflow`). */
  backend: string;
  /** Runtime of the training steps: `onnxruntime` (compiled) or `tfjs` (on `backend`). */
  trainingRuntime: 'onnxruntime' | 'tfjs';
  /** Train records per class. */
  classCounts: number[];
  /** Epoch of the checkpoint training resumed from, or null for a fresh run. */
  resumedFromEpoch: number | null;
  /** Frees the generator's weights. */
  dispose(): void;
}

/** Epochs between logged epoch lines after the first five. */
const EPOCH_LOG_INTERVAL = 10;

/** Formats an epoch log as one line for a person watching the run. */
export function formatEpochLog(log: EpochLog, epochs: number, stepsPerEpoch?: number): string {
  const partial = stepsPerEpoch !== undefined && log.steps < stepsPerEpoch ? ` (partial: ${log.steps} of ${stepsPerEpoch} steps)` : '';
  return (
    `epoch ${log.epoch}/${epochs}${partial}  D loss ${log.discriminatorLoss.toFixed(4)}  G loss ${log.generatorLoss.toFixed(4)}  ` +
    (log.r1Penalty > 0 ? `R1 ${log.r1Penalty.toExponential(2)}  ` : '') +
    `D(real) ${log.realScore.toFixed(3)}  D(fake) ${log.fakeScore.toFixed(3)}  ${log.seconds.toFixed(2)}s`
  );
}

/** Checks the train records and returns their common shape. */
function checkTrainRecords(records: readonly ImageRecord[], classNames: readonly string[]): ImageShape {
  if (records.length === 0) throw new Error('trainConditionalGan received no records; it needs the train split of a labelled dataset.');
  if (classNames.length < 1) throw new Error('trainConditionalGan received no class names.');

  const { height, width, channels } = records[0];
  records.forEach((record, index) => {
    if (record.split !== 'train') {
      throw new Error(
        `Record ${index} is in the '${record.split}' split, but the GAN trains on train records only so that ` +
          `validation and test images stay unseen. Pass recordsOfSplit(dataset, 'train').`,
      );
    }
    if (record.height !== height || record.width !== width || record.channels !== channels) {
      throw new Error(
        `Record ${index} is ${record.height}x${record.width}x${record.channels} but record 0 is ` +
          `${height}x${width}x${channels}. Resize all images to one size first.`,
      );
    }
    if (!Number.isInteger(record.label) || record.label < 0 || record.label >= classNames.length) {
      throw new Error(`Record ${index} has label ${record.label}, which is not a class index in 0..${classNames.length - 1}.`);
    }
  });

  const counts = countByClass(records, classNames.length);
  const missing = classNames.filter((_, label) => counts[label] === 0);
  if (missing.length > 0) {
    throw new Error(`Class(es) ${missing.join(', ')} have no train records, so the generator cannot learn them. Remove the class or add images.`);
  }
  return { height, width, channels };
}

/** Converts 8-bit pixels to floats in [-1, 1], one image after another. */
function scaleImages(records: readonly ImageRecord[], imageSize: number): Float32Array {
  const scaled = new Float32Array(records.length * imageSize);
  records.forEach((record, index) => {
    for (let i = 0; i < imageSize; i++) scaled[index * imageSize + i] = record.pixels[i] / 127.5 - 1;
  });
  return scaled;
}

/**
 * Draws which records of an epoch's shuffled order the real batches mirror under
 * `SynthConfig.mirror`, each with probability 0.5. The stream is seeded by the run's seed and the
 * epoch, so a resumed epoch draws the same flips.
 */
export function epochMirrorFlags(seed: number, epoch: number, count: number): boolean[] {
  const random = new Random(deriveSeed(seed, 'mirror', epoch));
  return Array.from({ length: count }, () => random.chance(0.5));
}

/**
 * Gathers the images of record indices into one batch array. Both pixel arrays contain one HWC
 * image per record, and rows whose entry of `mirrored` is true take theirs from `mirroredPixels`.
 */
export function gatherBatchPixels(
  indices: readonly number[],
  scaledPixels: Float32Array,
  imageSize: number,
  mirror: { mirroredPixels: Float32Array; mirrored: readonly boolean[] } | null,
): Float32Array {
  const batchPixels = new Float32Array(indices.length * imageSize);
  indices.forEach((recordIndex, row) => {
    const source = mirror?.mirrored[row] ? mirror.mirroredPixels : scaledPixels;
    batchPixels.set(source.subarray(recordIndex * imageSize, (recordIndex + 1) * imageSize), row * imageSize);
  });
  return batchPixels;
}

/** Builds the tensors of one batch from record indices; the caller disposes them. */
function makeBatch(
  indices: readonly number[],
  records: readonly ImageRecord[],
  scaledPixels: Float32Array,
  imageShape: ImageShape,
  numClasses: number,
  mirror: { mirroredPixels: Float32Array; mirrored: readonly boolean[] } | null,
): RealBatch {
  const { height, width, channels } = imageShape;
  const batchPixels = gatherBatchPixels(indices, scaledPixels, height * width * channels, mirror);
  const images = tf.tensor4d(batchPixels, [indices.length, height, width, channels]);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(indices.map((index) => records[index].label), 'int32'), numClasses).toFloat() as tf.Tensor2D);
  return { images, labels };
}

/** Hashes the train records' labels and pixels, so a resumed run can check it trains on the same data. */
export function digestTrainRecords(records: readonly ImageRecord[]): string {
  const parts: Uint8Array[] = [];
  for (const record of records) {
    parts.push(Uint8Array.from([record.label & 255, (record.label >> 8) & 255]), record.pixels);
  }
  return sha256Hex(Buffer.concat(parts));
}

/** Settings a resumed run may change, because they set only how long it runs and what it keeps. */
const RESUMABLE_CHANGES: ReadonlySet<keyof SynthConfig> = new Set(['epochs', 'timeBudgetSeconds', 'checkpointEvery', 'selectCheckpointBy', 'runtime']);

/** Rejects a checkpoint that another config or other data wrote. */
function checkResumable(info: CheckpointInfo, config: SynthConfig, trainDigest: string, path: string): void {
  if (info.trainDigest !== trainDigest) {
    throw new InputError(`The checkpoint ${path} was trained on other train records. Resume with the same data, or start a new run in another folder.`);
  }
  // A field that a checkpoint lacks was added later, and that run trained with its default.
  const written: SynthConfig = { ...DEFAULT_SYNTH_CONFIG, ...info.config };
  const changed = (Object.keys(config) as Array<keyof SynthConfig>).filter(
    (key) => !RESUMABLE_CHANGES.has(key) && JSON.stringify(config[key]) !== JSON.stringify(written[key]),
  );
  if (changed.length > 0) {
    const details = changed.map((key) => `${key} ${JSON.stringify(written[key])} -> ${JSON.stringify(config[key])}`).join(', ');
    throw new InputError(`The checkpoint ${path} was written with other GAN settings (${details}). Resume with its settings, or start a new run in another folder.`);
  }
}

/**
 * Trains the class-conditional GAN on train records: DCGAN generator and projection
 * discriminator, hinge or non-saturating loss, Adam, DiffAugment on real and fake images, an
 * optional lazy R1 penalty, and an exponential moving average of the generator for sampling.
 * Training stops after `config.epochs` or when `config.timeBudgetSeconds` runs out, whichever
 * comes first. The budget counts training seconds only, not the time spent writing and measuring
 * checkpoints, and a resumed run counts the seconds of the runs before it. Each epoch is a fresh
 * shuffle cut into full batches (a batch is all records when there are fewer than
 * `batchSize`), so up to batchSize - 1 records sit out each epoch. With the same seed on the
 * same backend and no time budget cut, two runs give the same losses, and so does a run
 * resumed from a checkpoint written at an epoch's end.
 *
 * Throws when a record is not in the train split, when the records differ in shape, or when a
 * class has no records.
 */
export async function trainConditionalGan(
  records: readonly ImageRecord[],
  classNames: readonly string[],
  options: Partial<SynthConfig> = {},
  hooks: TrainHooks = {},
): Promise<TrainedGan> {
  const config = resolveSynthConfig(options);
  const imageShape = checkTrainRecords(records, classNames);
  const numClasses = classNames.length;
  const imageSize = imageShape.height * imageShape.width * imageShape.channels;
  const pixels = scaleImages(records, imageSize);
  // With mirror on, every train image's mirror is scaled once, and the batches pick either copy.
  const mirroredPixels = config.mirror ? scaleImages(records.map(mirrorImage), imageSize) : null;
  const batchSize = Math.min(config.batchSize, records.length);
  const stepsPerEpoch = Math.floor(records.length / batchSize);
  const trainDigest = digestTrainRecords(records);
  const checkpointsDirectory = hooks.directory === undefined ? null : join(hooks.directory, CHECKPOINTS_FOLDER);

  const trainer = new GanTrainer(config, { imageShape, numClasses, batchSize });
  let trainingRuntime: 'onnxruntime' | 'tfjs';
  try {
    trainingRuntime = await trainer.useRuntime(config.runtime);
  } catch (error) {
    trainer.disposeTraining();
    trainer.averagedGenerator.dispose();
    throw error;
  }
  const history: EpochLog[] = [];
  let firstEpoch = 1;
  let secondsBefore = 0;
  let resumedFromEpoch: number | null = null;
  if (hooks.resume && checkpointsDirectory !== null) {
    const latest = (await listCheckpoints(checkpointsDirectory)).filter((entry) => entry.resumable).at(-1);
    if (latest === undefined) {
      hooks.log?.(`no checkpoint to resume from in ${checkpointsDirectory}; starting at epoch 1`);
    } else {
      const { info, state } = await readCheckpointState<EpochLog>(latest.path);
      try {
        checkResumable(info, config, trainDigest, latest.path);
        await trainer.restoreState(state);
      } catch (error) {
        // A rejected checkpoint ends the run, so the trainer's worker thread and tensors go too.
        trainer.disposeTraining();
        trainer.averagedGenerator.dispose();
        throw error;
      } finally {
        disposeTrainerState(state);
      }
      history.push(...info.history);
      firstEpoch = info.random.nextEpoch;
      secondsBefore = info.elapsedSeconds;
      resumedFromEpoch = info.epoch;
      hooks.log?.(`resumed from ${latest.path}: epoch ${info.epoch}, ${info.steps} steps, ${info.elapsedSeconds.toFixed(1)}s trained`);
    }
  }

  // A bar in epochs when only the epoch count bounds the run, else in seconds of the budget.
  const progressTotal = config.timeBudgetSeconds === null ? config.epochs : Math.ceil(config.timeBudgetSeconds);
  const progressLabel = config.timeBudgetSeconds === null ? 'GAN epochs' : 'GAN training seconds';
  const progress = hooks.progress === false ? null : new Progress(progressLabel, progressTotal, hooks.progress);
  const startedAt = performance.now();
  // Seconds spent writing and measuring checkpoints, which the time budget does not count.
  let checkpointSeconds = 0;
  const elapsedSeconds = () => secondsBefore + (performance.now() - startedAt) / 1000 - checkpointSeconds;
  const statisticsLabels = labelsForStatistics(records, config.seed);
  const samplingGenerator = (): SamplingGenerator => ({
    generator: trainer.averagedGenerator,
    classNames: [...classNames],
    imageShape,
    latentSize: config.latentSize,
    provenance: buildProvenance(config, batchSize, history, trainer.steps),
  });
  const checkpoint = async (epoch: number) => {
    if (checkpointsDirectory === null) return;
    const checkpointStartedAt = performance.now();
    trainer.setAveragedStatistics(statisticsLabels);
    const state = await trainer.exportState();
    const info: CheckpointInfo<EpochLog> = {
      epoch,
      steps: trainer.steps,
      elapsedSeconds: elapsedSeconds(),
      config,
      trainDigest,
      random: { scheme: 'seed-and-epoch', seed: config.seed, nextEpoch: epoch + 1 },
      history,
    };
    let path: string;
    try {
      path = await writeCheckpoint(checkpointsDirectory, info, state, samplingGenerator());
    } finally {
      disposeTrainerState(state);
    }
    hooks.log?.(`checkpoint ${path}`);
    try {
      await hooks.onCheckpoint?.({ epoch, path, generator: samplingGenerator(), history: [...history] });
    } finally {
      checkpointSeconds += (performance.now() - checkpointStartedAt) / 1000;
    }
  };

  let stoppedBy: StopReason = 'epochs';
  let progressDone = 0;
  let lastCheckpointEpoch = resumedFromEpoch ?? 0;
  try {
    if (config.timeBudgetSeconds !== null && elapsedSeconds() >= config.timeBudgetSeconds) stoppedBy = 'timeBudget';
    for (let epoch = firstEpoch; epoch <= config.epochs && stoppedBy === 'epochs'; epoch++) {
      const epochStartedAt = performance.now();
      const sums = { discriminatorLoss: 0, generatorLoss: 0, r1Penalty: 0, realScore: 0, fakeScore: 0 };
      let penalisedSteps = 0;
      const order = new Random(deriveSeed(config.seed, 'batch order', epoch)).shuffle(records.map((_, index) => index));
      trainer.beginEpoch(epoch);
      let steps = 0;

      const mirroredOf = config.mirror ? epochMirrorFlags(config.seed, epoch, order.length) : null;
      const batchAt = (step: number) => {
        const [start, end] = [step * batchSize, (step + 1) * batchSize];
        const mirror = mirroredPixels === null || mirroredOf === null ? null : { mirroredPixels, mirrored: mirroredOf.slice(start, end) };
        return makeBatch(order.slice(start, end), records, pixels, imageShape, numClasses, mirror);
      };
      let next: RealBatch | null = batchAt(0);
      for (let step = 0; step < stepsPerEpoch; step++) {
        const batch: RealBatch = next!;
        next = step + 1 < stepsPerEpoch ? batchAt(step + 1) : null;
        let values: StepValues;
        try {
          values = await trainer.step(batch, next ?? undefined);
        } catch (error) {
          if (next !== null) tf.dispose([next.images, next.labels]);
          throw error;
        } finally {
          tf.dispose([batch.images, batch.labels]);
        }

        for (const key of Object.keys(sums) as Array<keyof typeof sums>) sums[key] += values[key];
        if (values.r1Penalty > 0) penalisedSteps++;
        steps++;
        if (config.timeBudgetSeconds !== null && elapsedSeconds() >= config.timeBudgetSeconds) {
          stoppedBy = 'timeBudget';
          if (next !== null) tf.dispose([next.images, next.labels]);
          break;
        }
      }

      const log: EpochLog = {
        epoch,
        steps,
        discriminatorLoss: sums.discriminatorLoss / steps,
        generatorLoss: sums.generatorLoss / steps,
        r1Penalty: penalisedSteps === 0 ? 0 : sums.r1Penalty / penalisedSteps,
        realScore: sums.realScore / steps,
        fakeScore: sums.fakeScore / steps,
        seconds: (performance.now() - epochStartedAt) / 1000,
        elapsedSeconds: elapsedSeconds(),
      };
      for (const [name, value] of Object.entries(log)) {
        if (!Number.isFinite(value)) throw new Error(`GAN training diverged: ${name} is ${value} in epoch ${epoch}. Lower the learning rates.`);
      }
      history.push(log);
      hooks.onEpochEnd?.(log);
      const last = epoch === config.epochs || stoppedBy === 'timeBudget';
      // The first epochs, every tenth and the last are logged; history.jsonl keeps every epoch.
      if (epoch <= 5 || epoch % EPOCH_LOG_INTERVAL === 0 || last) hooks.log?.(formatEpochLog(log, config.epochs, stepsPerEpoch));

      const done = config.timeBudgetSeconds === null ? epoch : Math.min(progressTotal, Math.floor(log.elapsedSeconds));
      progress?.tick(Math.max(0, done - progressDone), `epoch ${epoch} D ${log.discriminatorLoss.toFixed(3)} G ${log.generatorLoss.toFixed(3)}`);
      progressDone = Math.max(progressDone, done);
      if ((config.checkpointEvery > 0 && epoch % config.checkpointEvery === 0) || (last && config.checkpointEvery > 0)) {
        await checkpoint(epoch);
        lastCheckpointEpoch = epoch;
      }
      // Let pending output and timers run between epochs.
      await new Promise((resolve) => setImmediate(resolve));
    }
    progress?.tick(Math.max(0, progressTotal - progressDone));
    if (history.length === 0) throw new Error('GAN training ran no epoch: the time budget was spent before the first one. Raise timeBudgetSeconds or epochs.');
    if (lastCheckpointEpoch !== history[history.length - 1].epoch && config.checkpointEvery > 0) await checkpoint(history[history.length - 1].epoch);

    trainer.setAveragedStatistics(statisticsLabels);
  } catch (error) {
    trainer.averagedGenerator.dispose();
    throw error;
  } finally {
    trainer.disposeTraining();
  }

  const lastEpoch = history[history.length - 1];
  const epochsCompleted = history.filter((log) => log.steps === stepsPerEpoch).length;
  const seconds = elapsedSeconds();
  hooks.log?.(
    `trained ${epochsCompleted} ${epochsCompleted === 1 ? 'epoch' : 'epochs'} (${trainer.steps} steps of ${batchSize}) in ${seconds.toFixed(1)}s on ${trainingRuntime === 'onnxruntime' ? 'onnxruntime' : tf.getBackend()}, ` +
      `stopped by ${stoppedBy === 'epochs' ? 'the epoch count' : 'the time budget'}; last D loss ${lastEpoch.discriminatorLoss.toFixed(4)}, G loss ${lastEpoch.generatorLoss.toFixed(4)}`,
  );
  const generator = trainer.averagedGenerator;
  return {
    ...samplingGenerator(),
    config,
    history,
    epochsCompleted,
    steps: trainer.steps,
    seconds,
    stoppedBy,
    backend: tf.getBackend(),
    trainingRuntime,
    classCounts: countByClass(records, numClasses),
    resumedFromEpoch,
    dispose: () => generator.dispose(),
  };
}

/** Generator settings recorded with every synthetic record. */
function buildProvenance(config: SynthConfig, batchSize: number, history: readonly EpochLog[], steps: number): GeneratorProvenance {
  return {
    generator: 'conditional-dcgan',
    latentSize: config.latentSize,
    generatorWidths: config.generatorWidths,
    discriminatorWidths: config.discriminatorWidths,
    batchSize,
    loss: config.loss,
    labelSmoothing: config.labelSmoothing,
    classifierWeight: config.classifierWeight,
    r1Gamma: config.r1Gamma,
    diffAugment: config.diffAugment,
    emaDecay: config.emaDecay,
    trainingSeed: config.seed,
    epochsTrained: history.length === 0 ? 0 : history[history.length - 1].epoch,
    steps,
  };
}

/** Labels for the standing statistics, drawn in the train class proportions like the training batches. */
function labelsForStatistics(records: readonly ImageRecord[], seed: number): number[] {
  const random = new Random(deriveSeed(seed, 'standing statistics labels'));
  return Array.from({ length: STANDING_STATISTICS_SAMPLES }, () => records[random.integer(0, records.length)].label);
}
