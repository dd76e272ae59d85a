import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accuracy, binaryAuc, confusionMatrix, crossEntropy, perClassScores, rocAuc } from '@scarce/train';

test('auc of a known ranking', () => {
  // scikit-learn's roc_auc_score documentation example.
  assert.equal(binaryAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75);
});

test('auc extremes and ties', () => {
  assert.equal(binaryAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]), 1);
  assert.equal(binaryAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]), 0);
  assert.equal(binaryAuc([0.5, 0.5, 0.5, 0.5], [false, true, false, true]), 0.5);
  assert.ok(Number.isNaN(binaryAuc([0.1, 0.2], [true, true])));
});

test('macro one-vs-rest auc for three classes', () => {
  const probabilities = Float32Array.from([0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8, 0.6, 0.3, 0.1]);
  const labels = [0, 1, 2, 1];
  // Class 0: scores 0.8 (pos), 0.1, 0.1, 0.6 -> 1. Class 1: 0.8 and 0.3 positive against 0.1, 0.1 -> 1. Class 2: 0.8 vs 0.1s -> 1.
  assert.equal(rocAuc(probabilities, labels, 3), 1);
  const swapped = Float32Array.from([0.1, 0.8, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.8, 0.6, 0.3, 0.1]);
  // Class 0: 0.1 (positive) against 0.8, 0.1, 0.6 gives 0.5 / 3. Class 1: 0.1 and 0.3 (positive)
  // against 0.8 and 0.1 give (0 + 0.5 + 0 + 1) / 4. Class 2 still ranks perfectly.
  assert.ok(Math.abs(rocAuc(swapped, labels, 3) - (0.5 / 3 + 1.5 / 4 + 1) / 3) < 1e-9);
});

test('accuracy, confusion matrix and cross entropy', () => {
  assert.equal(accuracy([0, 1, 1, 0], [0, 1, 0, 0]), 0.75);
  assert.deepEqual(confusionMatrix([0, 1, 1, 0], [0, 1, 0, 0], 2), [[2, 1], [0, 1]]);
  const probabilities = Float32Array.from([0.5, 0.5, 0.25, 0.75]);
  assert.ok(Math.abs(crossEntropy(probabilities, [0, 1], 2) - (Math.log(2) + Math.log(4 / 3)) / 2) < 1e-6);
});

test('per-class precision, recall and f1', () => {
  // True 0 predicted 0 twice and 1 once; true 1 predicted 1 once; class 2 never predicted.
  const scores = perClassScores([[2, 1, 0], [0, 1, 0], [0, 0, 0]]);
  assert.deepEqual(scores[0], { precision: 1, recall: 2 / 3, f1: 0.8, support: 3 });
  assert.deepEqual(scores[1], { precision: 0.5, recall: 1, f1: 2 / 3, support: 1 });
  assert.deepEqual(scores[2], { precision: 0, recall: 0, f1: 0, support: 0 });
});
