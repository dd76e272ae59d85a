import type { ImageRecord, Origin } from '@scarce/core';
import { countByOrigin } from '@scarce/core';
import { evaluateProbabilities, type ClassificationReport, trainHead, type ClassifierHead, type FeatureSet } from '@scarce/train';
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
}

/** A mix's classifiers over all seeds, with the mean and standard deviation of their test scores. */
export interface MixResult {
  mix: string;
  rows: Record<Origin, number>;
  seeds: SeedResult[];
  testAccuracy: { mean: number; std: number };
  testAuc: { mean: number; std: number };
}

function stack(rows: readonly ImageRecord[], features: Map<ImageRecord, Float32Array>, featureSize: number): FeatureSet {
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

/**
 * Trains one head per mix and seed on cached features, stopping early on the real validation
 * split, and measures each on the real test split. The test split is only measured, never used
 * to choose anything.
 */
export async function benchmarkMixes(
  mixes: Array<{ name: string; rows: ImageRecord[] }>,
  evaluation: { val: ImageRecord[]; test: ImageRecord[] },
  features: Map<ImageRecord, Float32Array>,
  featureSize: number,
  numClasses: number,
  settings: Pick<RunConfig['train'], 'head' | 'earlyStopping' | 'reduceLrOnPlateau' | 'seeds'>,
  log: (line: string) => void,
  /** Called with each mix's head of its first seed before the head is freed, e.g. to save it. */
  keepFirstHead?: (mix: string, head: ClassifierHead, result: SeedResult) => Promise<void>,
): Promise<MixResult[]> {
  const validation = stack(evaluation.val, features, featureSize);
  const test = stack(evaluation.test, features, featureSize);
  const results: MixResult[] = [];

  for (const mix of mixes) {
    if (mix.rows.length === 0) throw new Error(`Mix '${mix.name}' has no training rows.`);
    const train = stack(mix.rows, features, featureSize);
    const seeds: SeedResult[] = [];
    for (const seed of settings.seeds) {
      const training = trainHead(train, validation, numClasses, { ...settings.head, earlyStopping: settings.earlyStopping, reduceLrOnPlateau: settings.reduceLrOnPlateau, seed });
      const valReport = evaluateProbabilities(training.head.predict(validation.features), validation.labels, numClasses);
      const testReport = evaluateProbabilities(training.head.predict(test.features), test.labels, numClasses);
      const seedResult: SeedResult = {
        seed,
        epochsRun: training.epochsRun,
        bestEpoch: training.bestEpoch,
        stoppedEpoch: training.stoppedEpoch,
        val: { loss: valReport.loss, accuracy: valReport.accuracy, auc: valReport.auc },
        test: testReport,
        history: training.history,
      };
      seeds.push(seedResult);
      if (seeds.length === 1) await keepFirstHead?.(mix.name, training.head, seedResult);
      training.head.dispose();
      log(`mix ${mix.name} seed ${seed}: ${training.summary}; test accuracy ${testReport.accuracy.toFixed(3)}, AUC ${testReport.auc.toFixed(3)}`);
    }
    results.push({
      mix: mix.name,
      rows: countByOrigin(mix.rows),
      seeds,
      testAccuracy: meanAndStd(seeds.map((seed) => seed.test.accuracy)),
      testAuc: meanAndStd(seeds.map((seed) => seed.test.auc)),
    });
  }
  return results;
}
