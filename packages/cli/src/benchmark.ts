import type { ImageRecord, Origin } from '@scarce/core';
import { countByOrigin, mirrorImage } from '@scarce/core';
import * as tf from '@tensorflow/tfjs';
import {
  averageProbabilities,
  evaluateProbabilities,
  fineTune,
  tailFeatures,
  trainScaleEnsemble,
  type ClassificationReport,
  type ClassifierHead,
  type FeatureSet,
  type FineTuneOptions,
  type ScaleEnsemble,
  type SplitBackbone,
} from '@scarce/train';
import type { RunConfig } from './config.js';

/** One classifier of the benchmark: a mix trained with one seed. */
export interface SeedResult {
  seed: number;
  epochsRun: number;
  /** 1-based epoch whose weights were kept. */
  bestEpoch: number;
  stoppedEpoch: number | null;
  val: { loss: number; accuracy: number; auc: number };
  test: ClassificationReport;
  history: Array<Record<string, number>>;
  /** The fine-tuning phase after the head, or null when only the head trained. */
  fineTune: { epochsRun: number; bestEpoch: number; stoppedEpoch: number | null; history: Array<Record<string, number>> } | null;
}

/** A mix's classifiers over all seeds, with the mean and standard deviation of their test scores. */
export interface MixResult {
  mix: string;
  rows: Record<Origin, number>;
  seeds: SeedResult[];
  testAccuracy: { mean: number; std: number };
  testAuc: { mean: number; std: number };
  /**
   * Peak memory while this mix trained: the process's resident set (the highest so far, so it
   * includes earlier stages) and the largest tensor bytes tfjs held at an epoch's end.
   */
  memory: { peakRssBytes: number; peakTensorBytes: number };
}

/** Stacks the cached features of `rows` into one matrix, row by row, with their labels. */
export function stackFeatures(rows: readonly ImageRecord[], features: Map<ImageRecord, Float32Array>, featureSize: number): FeatureSet {
  const matrix = new Float32Array(rows.length * featureSize);
  rows.forEach((row, i) => matrix.set(features.get(row)!, i * featureSize));
  return { features: matrix, labels: rows.map((row) => row.label) };
}

/** Mean and sample standard deviation (0 for a single value). */
export function meanAndStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

/** Settings that the mixes' heads and the synthetic-image filter share. */
type HeadSettings = Pick<RunConfig['train'], 'head' | 'earlyStopping' | 'reduceLrOnPlateau' | 'seeds' | 'runtime' | 'trainOnValidation'>;

/** Returns a head's early stopping: none when it trains on the validation images, else the run's. */
function headStopping(settings: HeadSettings) {
  // With nothing held out, training runs all head.epochs epochs and keeps the last weights.
  return settings.trainOnValidation ? { monitor: 'loss', patience: settings.head.epochs, restoreBestWeights: false } : settings.earlyStopping;
}

/**
 * Returns, for each synthetic image, the probability of its own class under a head of the real
 * train images. The head has the run's settings. It stops early on `real.val`, or trains the
 * fixed length on `real.train` alone when the run trains on the validation images.
 */
export async function syntheticLabelConfidence(
  synthetic: readonly ImageRecord[],
  real: { train: readonly ImageRecord[]; val: readonly ImageRecord[] },
  features: Map<ImageRecord, Float32Array>,
  featureSize: number,
  numClasses: number,
  settings: HeadSettings,
  seed: number,
  widths: readonly number[] = [featureSize],
): Promise<Float32Array> {
  const validation = settings.trainOnValidation ? { features: new Float32Array(0), labels: [] } : stackFeatures(real.val, features, featureSize);
  const training = await trainScaleEnsemble(stackFeatures(real.train, features, featureSize), validation, numClasses, {
    ...settings.head,
    earlyStopping: headStopping(settings),
    reduceLrOnPlateau: settings.reduceLrOnPlateau,
    runtime: settings.runtime,
    seed,
  }, widths);
  const probabilities = training.ensemble.predict(stackFeatures(synthetic, features, featureSize).features);
  training.ensemble.dispose();
  return Float32Array.from(synthetic, (record, i) => probabilities[i * numClasses + record.label]);
}

/** The fine-tuning phase: the split backbone, every record's frozen activations, and the settings. */
export interface FineTuneContext {
  split: SplitBackbone;
  /** Frozen activations of all records, stacked on axis 0 in the order of `rowOf`. */
  activations: tf.Tensor;
  rowOf: Map<ImageRecord, number>;
  options: FineTuneOptions;
}

/** Returns the mirror of each val and test image, which test-time flips score beside the image. */
export function evaluationMirrors(evaluation: { val: readonly ImageRecord[]; test: readonly ImageRecord[] }): Map<ImageRecord, ImageRecord> {
  return new Map([...evaluation.val, ...evaluation.test].map((record) => [record, mirrorImage(record)]));
}

/**
 * Returns a head's class probabilities, row-major. With mirrored features, each row is the mean
 * of the probabilities for the image and for its mirror (test-time flips).
 */
export function scoreHead(head: Pick<ClassifierHead, 'predict'>, features: Float32Array, mirrored: Float32Array | null): Float32Array {
  const plain = head.predict(features);
  return mirrored === null ? plain : averageProbabilities(plain, head.predict(mirrored));
}

/** Inputs of `benchmarkMixes`. */
export interface BenchmarkInputs {
  mixes: Array<{ name: string; rows: ImageRecord[] }>;
  evaluation: { val: ImageRecord[]; test: ImageRecord[] };
  /** Pooled features of every record under the pretrained backbone. */
  features: Map<ImageRecord, Float32Array>;
  featureSize: number;
  /**
   * Widths of the feature blocks of one image at several input sizes, which each feature row
   * concatenates. One head trains per block, and their probabilities are averaged. Default one block.
   */
  featureWidths?: number[];
  /** Names of the blocks in training summaries, e.g. `96 px`. */
  featureLabels?: string[];
  numClasses: number;
  settings: HeadSettings;
  /** When given, each head is then fine-tuned together with the backbone's last blocks. */
  fineTuning?: FineTuneContext;
  /**
   * Mirror of each val and test image (`evaluationMirrors`). When given, val and test scores
   * average each image's probabilities with its mirror's (test-time flips). The mirrors' features,
   * and with fine-tuning their activations, must also be in `features` and `fineTuning`.
   */
  mirrors?: Map<ImageRecord, ImageRecord>;
  log: (line: string) => void;
  /** Called with each mix's head of its first seed before the head is freed, e.g. to save it. */
  keepFirstHead?: (mix: string, head: ScaleEnsemble, result: SeedResult) => Promise<void>;
}

function activationsOf(context: FineTuneContext, rows: readonly ImageRecord[]): tf.Tensor {
  return tf.tidy(() => tf.gather(context.activations, tf.tensor1d(rows.map((row) => context.rowOf.get(row)!), 'int32')));
}

/**
 * Trains one head per mix and seed on cached features, stopping early on the real validation
 * split, optionally fine-tunes it with the backbone's last blocks, and measures each classifier
 * on the real test split. The test split is only measured, never used to choose anything.
 * Fine-tuning changes the backbone's weights, so they are restored after every classifier.
 */
export async function benchmarkMixes(inputs: BenchmarkInputs): Promise<MixResult[]> {
  const { evaluation, features, featureSize, numClasses, settings, fineTuning, mirrors, log } = inputs;
  const validation = stackFeatures(evaluation.val, features, featureSize);
  const test = stackFeatures(evaluation.test, features, featureSize);
  const mirrorsOf = (rows: readonly ImageRecord[]) => rows.map((row) => mirrors!.get(row)!);
  const mirrored = mirrors === undefined ? null : { val: stackFeatures(mirrorsOf(evaluation.val), features, featureSize).features, test: stackFeatures(mirrorsOf(evaluation.test), features, featureSize).features };
  const evaluationActivations =
    fineTuning === undefined
      ? null
      : {
          val: activationsOf(fineTuning, evaluation.val),
          test: activationsOf(fineTuning, evaluation.test),
          mirrored: mirrors === undefined ? null : { val: activationsOf(fineTuning, mirrorsOf(evaluation.val)), test: activationsOf(fineTuning, mirrorsOf(evaluation.test)) },
        };
  const results: MixResult[] = [];

  for (const mix of inputs.mixes) {
    if (mix.rows.length === 0) throw new Error(`Mix '${mix.name}' has no training rows.`);
    // Validation images join only mixes with real train images, so a synthetic-only mix stays synthetic.
    const joinsValidation = settings.trainOnValidation && mix.rows.some((row) => row.origin === 'real');
    const trainRows = joinsValidation ? [...mix.rows, ...evaluation.val] : mix.rows;
    const train = stackFeatures(trainRows, features, featureSize);
    const seeds: SeedResult[] = [];
    let peakTensorBytes = tf.memory().numBytes;
    const sampleMemory = () => (peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes));
    for (const seed of settings.seeds) {
      const training = await trainScaleEnsemble(train, validation, numClasses, {
        ...settings.head,
        earlyStopping: headStopping(settings),
        reduceLrOnPlateau: settings.reduceLrOnPlateau,
        runtime: settings.runtime,
        seed,
        onEpoch: sampleMemory,
      }, inputs.featureWidths ?? [featureSize], inputs.featureLabels);
      // A fixed-length head keeps its last weights, so its last epoch is the one the report marks.
      const keptEpoch = settings.trainOnValidation ? training.epochsRun : training.bestEpoch;
      let summary = settings.trainOnValidation
        ? `trained ${training.epochsRun} epochs on ${joinsValidation ? 'the mix and the validation images' : 'the mix'}, keeping the last weights`
        : training.summary;
      let fineTuneResult: SeedResult['fineTune'] = null;
      let pretrained: tf.Tensor[] = [];
      let scored = { validation: validation.features, test: test.features, mirrored };

      if (fineTuning !== undefined && evaluationActivations !== null) {
        pretrained = fineTuning.split.tail.trainableWeights.map((weight) => weight.read().clone());
        const trainActivations = activationsOf(fineTuning, mix.rows);
        // Fine-tuning trains at one input size, so the ensemble has one head.
        const tuned = await fineTune(fineTuning.split, training.ensemble.heads[0], { activations: trainActivations, labels: train.labels }, { activations: evaluationActivations.val, labels: validation.labels }, { ...fineTuning.options, seed, onEpoch: sampleMemory });
        trainActivations.dispose();
        fineTuneResult = { epochsRun: tuned.epochsRun, bestEpoch: tuned.bestEpoch, stoppedEpoch: tuned.stoppedEpoch, history: tuned.history };
        summary = `head: ${training.summary}; fine-tuning: ${tuned.summary}`;
        const tunedFeatures = (activations: tf.Tensor) => tailFeatures(fineTuning.split, activations, { runtime: fineTuning.options.runtime });
        const mirroredActivations = evaluationActivations.mirrored;
        scored = {
          validation: await tunedFeatures(evaluationActivations.val),
          test: await tunedFeatures(evaluationActivations.test),
          mirrored: mirroredActivations === null ? null : { val: await tunedFeatures(mirroredActivations.val), test: await tunedFeatures(mirroredActivations.test) },
        };
      }

      const valReport = evaluateProbabilities(scoreHead(training.ensemble, scored.validation, scored.mirrored?.val ?? null), validation.labels, numClasses);
      const testReport = evaluateProbabilities(scoreHead(training.ensemble, scored.test, scored.mirrored?.test ?? null), test.labels, numClasses);
      const seedResult: SeedResult = {
        seed,
        epochsRun: training.epochsRun,
        bestEpoch: keptEpoch,
        stoppedEpoch: training.stoppedEpoch,
        fineTune: fineTuneResult,
        val: { loss: valReport.loss, accuracy: valReport.accuracy, auc: valReport.auc },
        test: testReport,
        history: training.history,
      };
      seeds.push(seedResult);
      if (seeds.length === 1) await inputs.keepFirstHead?.(mix.name, training.ensemble, seedResult);
      training.ensemble.dispose();
      if (fineTuning !== undefined) {
        fineTuning.split.tail.trainableWeights.forEach((weight, i) => weight.write(pretrained[i]));
        pretrained.forEach((tensor) => tensor.dispose());
      }
      const diverged = training.history.find((logs) => !Number.isFinite(logs.loss));
      if (diverged !== undefined) {
        log(`warning: mix ${mix.name} seed ${seed}: the training loss is not finite from epoch ${diverged.epoch}, so this head's scores mean nothing; lower train.head.learningRate`);
      }
      log(`mix ${mix.name} seed ${seed}: ${summary}; test accuracy ${testReport.accuracy.toFixed(3)}, AUC ${testReport.auc.toFixed(3)}`);
    }
    results.push({
      mix: mix.name,
      rows: countByOrigin(trainRows),
      seeds,
      testAccuracy: meanAndStd(seeds.map((seed) => seed.test.accuracy)),
      testAuc: meanAndStd(seeds.map((seed) => seed.test.auc)),
      memory: { peakRssBytes: process.resourceUsage().maxRSS * 1024, peakTensorBytes },
    });
  }
  if (evaluationActivations !== null) {
    const { val, test: testActivations, mirrored: mirroredActivations } = evaluationActivations;
    tf.dispose([val, testActivations, ...(mirroredActivations === null ? [] : [mirroredActivations.val, mirroredActivations.test])]);
  }
  return results;
}
