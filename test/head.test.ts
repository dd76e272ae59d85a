import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Random, selectBackend } from '@scarce/core';
import { assembleBatch, epochOrder, evaluateProbabilities, ReduceLrOnPlateau, trainHead, type FeatureSet } from '@scarce/train';

before(async () => {
  await selectBackend({ log: () => {} });
});

/** Two Gaussian blobs in 8 dimensions, class 1 shifted by `separation` along every axis. */
function blobs(rows: number, separation: number, seed: number, minorityShare = 0.5): FeatureSet {
  const random = new Random(seed);
  const features = new Float32Array(rows * 8);
  const labels: number[] = [];
  for (let row = 0; row < rows; row++) {
    const label = random.next() < minorityShare ? 1 : 0;
    labels.push(label);
    for (let k = 0; k < 8; k++) features[row * 8 + k] = random.normal() + label * separation;
  }
  return { features, labels };
}

test('head learns separable features', async () => {
  const training = await trainHead(blobs(200, 2, 1), blobs(60, 2, 2), 2, { epochs: 30, units: 16, seed: 0 });
  const test = blobs(100, 2, 3);
  const report = evaluateProbabilities(training.head.predict(test.features), test.labels, 2);
  assert.ok(report.accuracy > 0.95, `accuracy ${report.accuracy}`);
  assert.ok(report.auc > 0.98, `auc ${report.auc}`);
  training.head.dispose();
});

test('head keeps the tensor count flat in both runtimes', async () => {
  for (const runtime of ['onnxruntime', 'tfjs'] as const) {
    const counts: number[] = [];
    const training = await trainHead(blobs(100, 1, 4), blobs(40, 1, 5), 2, {
      epochs: 6,
      earlyStopping: { patience: 100 },
      reduceLrOnPlateau: { patience: 1, factor: 0.5 },
      onEpoch: () => counts.push(tf.memory().numTensors),
      runtime,
    });
    assert.equal(counts.length, 6);
    // The first restore-best snapshot is taken after epoch 1's callback, so counts settle from epoch 2.
    assert.ok(counts.slice(1).every((count) => count === counts[1]), `${runtime}: tensor counts ${counts.join(', ')}`);
    training.head.dispose();
  }
});

test('head restores the best epoch', async () => {
  const validation = blobs(40, 0.3, 7);
  const training = await trainHead(blobs(60, 0.3, 6), validation, 2, { epochs: 40, units: 64, learningRate: 0.01, earlyStopping: { patience: 40 }, seed: 2 });
  const best = Math.min(...training.history.map((entry) => entry.val_loss));
  const bestEpoch = training.history.findIndex((entry) => entry.val_loss === best) + 1;
  assert.equal(training.bestEpoch, bestEpoch);
  const restored = evaluateProbabilities(training.head.predict(validation.features), validation.labels, 2);
  assert.ok(Math.abs(restored.loss - best) < 1e-5, `restored val_loss ${restored.loss} equals the best ${best}`);
  training.head.dispose();
});

test('head training repeats for a seed', async () => {
  const train = blobs(80, 1, 8);
  const validation = blobs(30, 1, 9);
  const first = await trainHead(train, validation, 2, { epochs: 5, seed: 11 });
  const second = await trainHead(train, validation, 2, { epochs: 5, seed: 11 });
  assert.deepEqual(first.history, second.history);
  first.head.dispose();
  second.head.dispose();
});

test('balanced sampling evens out classes', () => {
  const labels = Array.from({ length: 1000 }, (_, i) => (i < 900 ? 0 : 1));
  const order = epochOrder(labels, 2, 'balanced', new Random(1));
  assert.equal(order.length, 1000);
  const minority = order.filter((row) => labels[row] === 1).length;
  assert.ok(minority > 430 && minority < 570, `minority draws ${minority}`);
  const shuffled = epochOrder(labels, 2, 'shuffle', new Random(1));
  assert.deepEqual([...shuffled].sort((a, b) => a - b), labels.map((_, i) => i));
});

test('reduce on plateau follows Keras', () => {
  const schedule = new ReduceLrOnPlateau({ patience: 2, factor: 0.5, cooldown: 1, minLearningRate: 0.1 });
  const rates: number[] = [];
  let rate = 1;
  for (const value of [1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]) {
    rate = schedule.onEpochEnd({ val_loss: value }, rate);
    rates.push(rate);
  }
  // Two epochs without improvement halve the rate. The cooldown epoch ends its own cooldown before
  // counting, as in Keras, so later halvings come every second epoch, down to the 0.1 floor.
  assert.deepEqual(rates, [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.1]);
  assert.throws(() => new ReduceLrOnPlateau({ factor: 1 }), /factor must be in \(0, 1\)/);
});

test('ensemble averages its members', async () => {
  const training = await trainHead(blobs(120, 1, 11), blobs(40, 1, 12), 2, { epochs: 8, units: 8, ensemble: 3, seed: 4 });
  const { head } = training;
  const scored = blobs(10, 1, 13);
  const probabilities = head.predict(scored.features);
  assert.equal(probabilities.length, 20);

  // Each member's probabilities, from its own slice of the hidden units and its own output layer.
  const [kernel, bias, outputKernel, outputBias] = head.weights.map((weight) => weight.arraySync()) as [number[][], number[], number[][][], number[][]];
  assert.equal(kernel[0].length, 24);
  const expected = new Float64Array(20);
  for (let row = 0; row < 10; row++) {
    const x = Array.from({ length: 8 }, (_, k) => (scored.features[row * 8 + k] - head.mean[k]) / head.std[k]);
    for (let member = 0; member < 3; member++) {
      const hidden = Array.from({ length: 8 }, (_, u) => Math.max(0, bias[member * 8 + u] + x.reduce((sum, value, k) => sum + value * kernel[k][member * 8 + u], 0)));
      const logits = [0, 1].map((c) => outputBias[member][c] + hidden.reduce((sum, value, u) => sum + value * outputKernel[member][u][c], 0));
      const top = Math.max(...logits);
      const exps = logits.map((logit) => Math.exp(logit - top));
      exps.forEach((value, c) => (expected[row * 2 + c] += value / (exps[0] + exps[1]) / 3));
    }
  }
  const maxDifference = Math.max(...Array.from(probabilities, (value, i) => Math.abs(value - expected[i])));
  assert.ok(maxDifference < 1e-5, `max difference ${maxDifference}`);
  head.dispose();
});

test('ensemble members differ', async () => {
  const training = await trainHead(blobs(120, 1, 14), blobs(40, 1, 15), 2, { epochs: 3, units: 4, ensemble: 2, seed: 5 });
  const outputKernel = training.head.weights[2].arraySync() as number[][][];
  assert.notDeepEqual(outputKernel[0], outputKernel[1]);
  training.head.dispose();
});

test('beta samples match their moments', () => {
  for (const [a, b] of [[0.2, 0.2], [2, 5], [1, 1]]) {
    const random = new Random(17);
    const samples = Array.from({ length: 20_000 }, () => random.beta(a, b));
    const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
    const variance = samples.reduce((sum, value) => sum + (value - mean) ** 2, 0) / samples.length;
    assert.ok(samples.every((value) => value >= 0 && value <= 1), `Beta(${a}, ${b}) left [0, 1]`);
    assert.ok(Math.abs(mean - a / (a + b)) < 0.01, `Beta(${a}, ${b}) mean ${mean}`);
    const expectedVariance = (a * b) / ((a + b) ** 2 * (a + b + 1));
    assert.ok(Math.abs(variance - expectedVariance) < 0.01, `Beta(${a}, ${b}) variance ${variance}, expected ${expectedVariance}`);
  }
  assert.throws(() => new Random(1).gamma(0), /Gamma shape must be positive but received 0/);
});

test('batch smooths and mixes targets', () => {
  const data = { values: Float32Array.from([0, 1, 10, 11, 20, 21]), labels: [0, 1, 1], numClasses: 2, classWeights: [3, 1], labelSmoothing: 0.2 };
  const plain = assembleBatch(data, { rows: [2, 0], mask: null });
  assert.deepEqual([...plain.activations], [20, 21, 0, 1]);
  assert.deepEqual([...plain.targets].map((value) => Number(value.toFixed(6))), [0.1, 0.9, 0.9, 0.1]);
  assert.deepEqual([...plain.sampleWeights!], [1, 3]);

  const mixed = assembleBatch(data, { rows: [2, 0], mask: null, mix: { partners: [1, 0], lambda: 0.75 } });
  assert.deepEqual([...mixed.activations], [15, 16, 5, 6]);
  assert.deepEqual([...mixed.targets].map((value) => Number(value.toFixed(6))), [0.3, 0.7, 0.7, 0.3]);
  assert.deepEqual([...mixed.sampleWeights!], [1.5, 2.5]);
});

test('mixup and smoothing agree across runtimes', async () => {
  const train = blobs(80, 1, 12);
  const validation = blobs(30, 1, 13);
  const options = { epochs: 4, units: 16, ensemble: 2, mixup: 0.4, labelSmoothing: 0.1, classWeight: 'balanced', seed: 3, earlyStopping: { patience: 10 } } as const;
  const runs = [];
  for (const runtime of ['onnxruntime', 'tfjs'] as const) runs.push(await trainHead(train, validation, 2, { ...options, runtime }));
  const [onnx, tfjs] = runs.map((run) => run.history.map((entry) => entry.loss));
  onnx.forEach((loss, epoch) => assert.ok(Math.abs(loss - tfjs[epoch]) < 1e-4, `epoch ${epoch + 1}: onnxruntime loss ${loss}, tfjs ${tfjs[epoch]}`));

  const plain = await trainHead(train, validation, 2, { ...options, mixup: 0, labelSmoothing: 0 });
  assert.notDeepEqual(plain.history.map((entry) => entry.loss), onnx, 'mixup and smoothing change the training loss');
  [...runs, plain].forEach((run) => run.head.dispose());
});

test('head rejects bad regularisation', async () => {
  const rows = blobs(10, 1, 14);
  await assert.rejects(trainHead(rows, rows, 2, { mixup: -1 }), /mixup alpha must be 0 \(off\) or positive but received -1/);
  await assert.rejects(trainHead(rows, rows, 2, { labelSmoothing: 1 }), /label smoothing must be in \[0, 1\) but received 1/);
});

test('head keeps last epoch unmonitored', async () => {
  const training = await trainHead(blobs(40, 1, 15), blobs(20, 1, 16), 2, { epochs: 4, units: 8, earlyStopping: { startFromEpoch: 10, restoreBestWeights: true } });
  assert.equal(training.epochsRun, 4);
  assert.equal(training.bestEpoch, 4, 'the last epoch, whose weights are kept');
  assert.match(training.summary, /no epoch had a value of val_loss to compare/);
  training.head.dispose();
});
