import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadDataset, readMedMnistNpz, readShardFolder, recordsOfSplit, selectBackend, type ImageRecord, type LabelledDataset } from '@scarce/core';
import {
  buildDiscriminator,
  buildGenerator,
  cholesky,
  classDiversity,
  disposeQuality,
  featureMatrix,
  frechetDistance,
  memorisation,
  multiplyTransposed,
  pixelFeatures,
  precisionRecall,
  prepareQuality,
  runSynth,
  symmetricEigenvalues,
  trainConditionalGan,
  variedPixels,
  type QualityRecord,
  type SynthConfig,
  type SynthRunResult,
} from '@scarce/synth';
import { BREASTMNIST, MOBILENET, temporaryFolder } from './helpers.js';

/** A seeded uniform generator in [-0.5, 0.5), so the cases repeat. */
function uniform(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 16807) % 2147483647;
    return state / 2147483647 - 0.5;
  };
}

/** Rows of uniform values with each column's mean subtracted, so the mean term of a Fréchet distance is 0. */
function centredRows(rows: number, size: number, seed: number): Float64Array {
  const next = uniform(seed);
  const values = Float64Array.from({ length: rows * size }, next);
  for (let c = 0; c < size; c++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += values[r * size + c] / rows;
    for (let r = 0; r < rows; r++) values[r * size + c] -= mean;
  }
  return values;
}

function trace(values: Float64Array, rows: number, size: number): number {
  let sum = 0;
  for (const value of values) sum += value * value;
  return sum / (rows - 1);
}

describe('linear algebra', () => {
  test('eigenvalues of a 2x2 matrix', () => {
    const eigenvalues = symmetricEigenvalues(Float64Array.from([2, 1, 1, 2]), 2);
    assert.ok(Math.abs(eigenvalues[0] - 1) < 1e-12);
    assert.ok(Math.abs(eigenvalues[1] - 3) < 1e-12);
  });

  test('eigenvalues keep trace and Frobenius norm', () => {
    const n = 60;
    const next = uniform(3);
    const matrix = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) matrix[i * n + j] = matrix[j * n + i] = next();
    const eigenvalues = symmetricEigenvalues(matrix, n);
    let matrixTrace = 0;
    let frobenius = 0;
    for (let i = 0; i < n; i++) matrixTrace += matrix[i * n + i];
    for (const value of matrix) frobenius += value * value;
    assert.ok(Math.abs(eigenvalues.reduce((sum, value) => sum + value, 0) - matrixTrace) < 1e-9);
    assert.ok(Math.abs(eigenvalues.reduce((sum, value) => sum + value * value, 0) - frobenius) < 1e-9);
    for (let i = 1; i < n; i++) assert.ok(eigenvalues[i] >= eigenvalues[i - 1], 'eigenvalues ascend');
  });

  test('eigenvalues of a rank-deficient Gram matrix', () => {
    // 40 x 40 Gram matrix of rank 5: 35 eigenvalues are zero.
    const rows = centredRows(40, 5, 11);
    const eigenvalues = symmetricEigenvalues(multiplyTransposed(rows, 40, rows, 40, 5), 40);
    assert.equal(eigenvalues.filter((value) => Math.abs(value) < 1e-9).length, 35);
  });

  test('cholesky factor reproduces the matrix', () => {
    const matrix = Float64Array.from([4, 2, 2, 3]);
    const lower = cholesky(matrix, 2);
    assert.deepEqual(Array.from(multiplyTransposed(lower, 2, lower, 2, 2)).map((value) => Math.round(value * 1e12) / 1e12), [4, 2, 2, 3]);
    assert.throws(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2), /not positive definite/);
  });
});

describe('frechetDistance', () => {
  // Fewer rows than features uses the Gram form; more rows than features the Cholesky form.
  for (const [rows, size] of [[20, 50], [80, 12]]) {
    const values = centredRows(rows, size, rows);
    const features = featureMatrix(values, size);

    test(`identical sets give 0 (${rows}x${size})`, () => {
      assert.ok(Math.abs(frechetDistance(features, features)) < 1e-9);
    });

    test(`shifted set gives the squared shift (${rows}x${size})`, () => {
      const shifted = values.map((value, index) => value + (index % size === 0 ? 3 : 0) + (index % size === 1 ? 4 : 0));
      assert.ok(Math.abs(frechetDistance(features, featureMatrix(shifted, size)) - 25) < 1e-6);
    });

    test(`doubled set gives the trace (${rows}x${size})`, () => {
      // S_b = 4 S_a, so Tr S_a + 4 Tr S_a - 2 Tr (2 S_a) = Tr S_a.
      const doubled = values.map((value) => 2 * value);
      const expected = trace(values, rows, size);
      assert.ok(Math.abs(frechetDistance(features, featureMatrix(doubled, size)) - expected) < 1e-6 * expected);
    });
  }

  test('rejects different feature sizes', () => {
    assert.throws(() => frechetDistance(featureMatrix(new Float64Array(8), 4), featureMatrix(new Float64Array(9), 3)), /Feature sizes differ/);
  });
});

describe('precisionRecall', () => {
  // Real rows at 0, 1, ..., 19 on a line: every row's 3rd nearest neighbour is 2 away (1.5 at no row), radius 2.
  const line = (points: number[]) => featureMatrix(Float64Array.from(points.flatMap((x) => [x, 0])), 2);
  const real = line(Array.from({ length: 20 }, (_, i) => i));

  test('identical sets give 1 and 1', () => {
    const scores = precisionRecall(real, real);
    assert.equal(scores.precision, 1);
    assert.equal(scores.recall, 1);
    assert.equal(scores.k, 3);
  });

  test('disjoint sets give 0 and 0', () => {
    const scores = precisionRecall(real, line(Array.from({ length: 20 }, (_, i) => 1000 + i)));
    assert.equal(scores.precision, 0);
    assert.equal(scores.recall, 0);
  });

  test('half the samples inside gives 0.5 precision', () => {
    const inside = Array.from({ length: 10 }, (_, i) => 5 + i * 0.5);
    const outside = Array.from({ length: 10 }, (_, i) => 500 + i * 0.5);
    assert.equal(precisionRecall(real, line([...inside, ...outside])).precision, 0.5);
  });
});

describe('classDiversity', () => {
  test('collapsed class is warned by name', () => {
    const next = uniform(5);
    const real = featureMatrix(Float64Array.from({ length: 40 * 4 }, next), 4);
    const realLabels = Array.from({ length: 40 }, (_, i) => i % 2);
    // Class 'benign' (label 1) repeats one point; class 'malignant' varies as much as the real rows.
    const synthetic = featureMatrix(Float64Array.from({ length: 40 * 4 }, (_, i) => (Math.floor(i / 4) % 2 === 1 ? 0.1 : next())), 4);
    const { classes, warnings } = classDiversity(real, realLabels, synthetic, realLabels, ['malignant', 'benign']);
    assert.equal(classes[0].collapsed, false);
    assert.equal(classes[1].collapsed, true);
    assert.equal(classes[1].synthetic, 0);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /class 'benign' may have collapsed/);
  });
});

describe('memorisation', () => {
  // Real rows 2 apart on a line, so every real-to-real nearest distance, and the threshold, is 2.
  const points = Array.from({ length: 30 }, (_, i) => i * 2);
  const onLine = (offset: number, above: number) => featureMatrix(Float64Array.from(points.flatMap((x) => [x + offset, above])), 2);
  const real = onLine(0, 0);

  test('copies of real images are all near copies', () => {
    const result = memorisation(real, real);
    assert.equal(result.threshold, 2);
    assert.equal(result.nearCopyShare, 1);
    assert.deepEqual(result.nearestReal, points.map((_, i) => i));
  });

  test('samples 3 away are not', () => {
    const result = memorisation(real, onLine(0, 3));
    assert.equal(result.nearCopyShare, 0);
    assert.deepEqual(result.nearestDistance, new Array(30).fill(3));
    assert.equal(result.medianDistanceRatio, 1.5);
  });

  test('samples halfway between count as near copies', () => {
    // Distance 1 is below the threshold of 2: such a sample sits closer to the data than real images do.
    assert.equal(memorisation(real, onLine(1, 0)).nearCopyShare, 1);
  });
});

describe('model sizes', () => {
  test('64 px colour with three stages', async () => {
    const tf = await import('@tensorflow/tfjs');
    const imageShape = { height: 64, width: 64, channels: 3 };
    const generator = buildGenerator({ imageShape, numClasses: 3, latentSize: 8, labelEmbeddingSize: 4, widths: [8, 8, 4], batchNormMomentum: 0.99, seed: 1 });
    const discriminator = buildDiscriminator({ imageShape, numClasses: 3, widths: [4, 8, 8], minibatchStdGroupSize: 2, seed: 1 });
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3).toFloat();
    const images = generator.predict([tf.randomNormal([4, 8]), labels]) as import('@tensorflow/tfjs').Tensor;
    const scores = discriminator.predict([images, labels]) as import('@tensorflow/tfjs').Tensor;
    assert.deepEqual(images.shape, [4, 64, 64, 3]);
    assert.deepEqual(scores.shape, [4, 1]);
    tf.dispose([labels, images, scores]);
    generator.dispose();
    discriminator.dispose();
  });

  test('three stages reject 28 px', () => {
    assert.throws(
      () => buildGenerator({ imageShape: { height: 28, width: 28, channels: 1 }, numClasses: 2, latentSize: 4, labelEmbeddingSize: 2, widths: [4, 4, 4], batchNormMomentum: 0.99, seed: 1 }),
      /divisible by 8/,
    );
  });
});

/** Small enough for a few seconds on wasm. */
const TINY: Partial<SynthConfig> = {
  latentSize: 16,
  labelEmbeddingSize: 4,
  generatorWidths: [8, 4],
  discriminatorWidths: [4, 8],
  batchSize: 16,
  timeBudgetSeconds: null,
  seed: 7,
};

let dataset: LabelledDataset;
let trainSubset: ImageRecord[];

before(async () => {
  try {
    await selectBackend({ backend: 'wasm', log: () => {} });
  } catch {
    await selectBackend({ backend: 'cpu', log: () => {} });
  }
  dataset = await readMedMnistNpz(BREASTMNIST, { classNames: ['malignant', 'normal_benign'] });
  const train = recordsOfSplit(dataset, 'train');
  trainSubset = [0, 1].flatMap((label) => train.filter((record) => record.label === label).slice(0, 32));
});

describe('stabilisers', () => {
  const variants: Array<[string, Partial<SynthConfig>]> = [
    ['non-saturating with smoothing', { loss: 'non-saturating', labelSmoothing: 0.1 }],
    ['hinge with smoothing', { loss: 'hinge', labelSmoothing: 0.2 }],
    ['everything off', { diffAugment: false, emaDecay: 0, r1Gamma: 0, minibatchStd: false }],
    ['R1 every step', { r1Gamma: 1, r1Interval: 1 }],
  ];
  for (const [name, settings] of variants) {
    test(`trains with ${name}`, async () => {
      const trained = await trainConditionalGan(trainSubset, dataset.classNames, { ...TINY, ...settings, epochs: 2 }, { progress: false });
      assert.equal(trained.history.length, 2);
      for (const log of trained.history) {
        assert.ok(Number.isFinite(log.discriminatorLoss), `D loss of epoch ${log.epoch}`);
        assert.ok(Number.isFinite(log.generatorLoss), `G loss of epoch ${log.epoch}`);
      }
      if (settings.r1Gamma === 0) assert.equal(trained.history[0].r1Penalty, 0);
      if (settings.r1Interval === 1) assert.ok(trained.history[0].r1Penalty > 0, 'R1 penalty is positive');
      trained.dispose();
    });
  }
});

describe('consistency classifier', () => {
  test('varied pixels and their values', () => {
    const image = (label: number, pixels: number[]): ImageRecord => ({ ...trainSubset[0], label, pixels: Uint8Array.from(pixels) });
    const records = [image(0, [0, 0, 255]), image(1, [0, 255, 255]), image(0, [0, 0, 255]), image(1, [0, 255, 255])];
    assert.deepEqual(variedPixels(records), [1]);
    const { features, labels } = pixelFeatures(records, [1, 2]);
    assert.deepEqual([...features], [0, 1, 1, 1, 0, 1, 1, 1]);
    assert.deepEqual(labels, [0, 1, 0, 1]);
  });

  test('MNIST digits pick pixels', async () => {
    const digits = await loadDataset('fixtures/mnist_t10k', { split: { val: 0.1, test: 0 }, seed: 0 });
    const train = recordsOfSplit(digits, 'train');
    const reference = Array.from({ length: 10 }, (_, label) => train.filter((record) => record.label === label).slice(0, 30)).flat();
    const context = await prepareQuality({ train: reference, validation: recordsOfSplit(digits, 'val').slice(0, 300) }, digits.classNames, {
      backbone: MOBILENET,
      inputSize: 32,
      headEpochs: 20,
    });
    try {
      assert.equal(context.consistencyClassifier.input, 'pixels');
      assert.ok(context.consistencyClassifier.columns.length > 100, `${context.consistencyClassifier.columns.length} pixels`);
      assert.ok(context.consistencyClassifier.validationAccuracy > 0.7, `validation accuracy ${context.consistencyClassifier.validationAccuracy}`);
    } finally {
      disposeQuality(context);
    }
  });
});

describe('runSynth', () => {
  let directory: string;
  let result: SynthRunResult;
  let log: QualityRecord[];

  before(async () => {
    directory = await temporaryFolder('scarce-synth-run-');
    result = await runSynth(
      { train: trainSubset, validation: recordsOfSplit(dataset, 'val'), test: recordsOfSplit(dataset, 'test') },
      dataset.classNames,
      { ...TINY, epochs: 8, checkpointEvery: 4 },
      { directory, perClass: 6, progress: false, quality: { backbone: MOBILENET, inputSize: 32, headEpochs: 10 } },
    );
    log = (await readFile(join(directory, 'quality.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as QualityRecord);
  });
  after(async () => {
    result?.trained.dispose();
    await rm(directory, { recursive: true, force: true });
  });

  test('D loss falls over the run', () => {
    const history = result.trained.history;
    assert.equal(history.length, 8);
    assert.ok(history[7].discriminatorLoss < history[0].discriminatorLoss, `D loss went from ${history[0].discriminatorLoss} to ${history[7].discriminatorLoss}`);
  });

  test('one quality record per checkpoint', () => {
    assert.deepEqual(log.map((record) => record.epoch), [4, 8]);
    assert.deepEqual(result.quality?.checkpoints.map((record) => record.epoch), [4, 8]);
  });

  test('metrics fall in range', () => {
    for (const record of [...log, result.quality!.final]) {
      assert.ok(Number.isFinite(record.frechetDistance), `Fréchet distance ${record.frechetDistance}`);
      assert.ok(record.frechetDistance >= 0);
      const shares = { precision: record.precision, recall: record.recall, consistency: record.classConsistency.accuracy, nearCopies: record.memorisation.nearCopyShare, tstrAuc: record.tstr.validation.auc };
      for (const [name, value] of Object.entries(shares)) {
        assert.ok(value >= 0, `${name} ${value} >= 0`);
        assert.ok(value <= 1, `${name} ${value} <= 1`);
      }
      assert.ok(['features', 'pixels'].includes(record.classConsistency.classifier.input), record.classConsistency.classifier.input);
      assert.ok(record.classConsistency.classifier.validationAccuracy >= 0.5, `consistency classifier accuracy ${record.classConsistency.classifier.validationAccuracy}`);
      assert.deepEqual(record.samplesPerClass, [32, 32]);
      assert.equal(record.diversity.length, 2);
    }
  });

  test('test split scored only at the end', () => {
    for (const record of log) assert.equal(record.tstr.test, undefined);
    const test = result.quality!.final.tstr.test!;
    assert.ok(test.auc >= 0, `test AUC ${test.auc}`);
    assert.ok(test.auc <= 1, `test AUC ${test.auc}`);
  });

  test('lowest Fréchet distance chosen', () => {
    const best = log.reduce((a, b) => (b.frechetDistance < a.frechetDistance ? b : a));
    assert.equal(result.quality!.selectedBy, 'frechetDistance');
    assert.equal(result.quality!.selectedEpoch, best.epoch);
    assert.equal(result.quality!.final.frechetDistance, best.frechetDistance);
  });

  test('writes shards, logs and pictures', async () => {
    const files = await readdir(directory);
    for (const file of ['manifest.json', 'quality.json', 'quality.jsonl', 'history.jsonl', 'nearest-real.png', 'losses.png', 'real-vs-synthetic-0-malignant.png', 'real-vs-synthetic-1-normal_benign.png', 'checkpoints']) {
      assert.ok(files.includes(file), `${file} written`);
    }
    const shards = await readShardFolder(directory);
    assert.equal(shards.records.length, 12);
    assert.equal(shards.records[0].origin, 'synthetic');
    assert.equal(shards.records[0].params?.epochsTrained, result.quality!.selectedEpoch);
  });
});

test('runSynth without checkpoints', async () => {
  const parent = await temporaryFolder('scarce-synth-no-checkpoints-');
  const directory = join(parent, 'not-yet-created');
  try {
    const result = await runSynth({ train: trainSubset, validation: [] }, dataset.classNames, { ...TINY, epochs: 2, checkpointEvery: 0 }, { directory, perClass: 3, progress: false });
    result.trained.dispose();
    const files = await readdir(directory);
    for (const file of ['manifest.json', 'history.jsonl', 'synthetic-00000.arrow']) assert.ok(files.includes(file), `${file} written`);
    assert.ok(!files.includes('checkpoints'), 'no checkpoints folder');
    assert.equal((await readShardFolder(directory)).records.length, 6);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});
