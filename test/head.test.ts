import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Random, selectBackend } from '@scarce/core';
import { epochOrder, evaluateProbabilities, ReduceLrOnPlateau, trainHead, type FeatureSet } from '@scarce/train';

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

test('head learns separable features', () => {
  const training = trainHead(blobs(200, 2, 1), blobs(60, 2, 2), 2, { epochs: 30, units: 16, seed: 0 });
  const test = blobs(100, 2, 3);
  const report = evaluateProbabilities(training.head.predict(test.features), test.labels, 2);
  assert.ok(report.accuracy > 0.95, `accuracy ${report.accuracy}`);
  assert.ok(report.auc > 0.98, `auc ${report.auc}`);
  training.head.dispose();
});

test('head keeps the tensor count flat across epochs', () => {
  const counts: number[] = [];
  const training = trainHead(blobs(100, 1, 4), blobs(40, 1, 5), 2, {
    epochs: 6,
    earlyStopping: { patience: 100 },
    reduceLrOnPlateau: { patience: 1, factor: 0.5 },
    onEpoch: () => counts.push(tf.memory().numTensors),
  });
  assert.equal(counts.length, 6);
  // The first restore-best snapshot is taken after epoch 1's callback, so counts settle from epoch 2.
  assert.ok(counts.slice(1).every((count) => count === counts[1]), `tensor counts ${counts.join(', ')}`);
  training.head.dispose();
});

test('head restores the best epoch', () => {
  const validation = blobs(40, 0.3, 7);
  const training = trainHead(blobs(60, 0.3, 6), validation, 2, { epochs: 40, units: 64, learningRate: 0.01, earlyStopping: { patience: 40 }, seed: 2 });
  const best = Math.min(...training.history.map((entry) => entry.val_loss));
  const bestEpoch = training.history.findIndex((entry) => entry.val_loss === best) + 1;
  assert.equal(training.bestEpoch, bestEpoch);
  const restored = evaluateProbabilities(training.head.predict(validation.features), validation.labels, 2);
  assert.ok(Math.abs(restored.loss - best) < 1e-5, `restored val_loss ${restored.loss} equals the best ${best}`);
  training.head.dispose();
});

test('head training repeats for a seed', () => {
  const train = blobs(80, 1, 8);
  const validation = blobs(30, 1, 9);
  const first = trainHead(train, validation, 2, { epochs: 5, seed: 11 });
  const second = trainHead(train, validation, 2, { epochs: 5, seed: 11 });
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
