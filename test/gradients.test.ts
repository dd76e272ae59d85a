import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@scarce/core';
import { largestDifference } from './helpers.js';

before(async () => {
  // Registers scarce's gradients of FusedBatchNorm and ClipByValue.
  await selectBackend({ log: () => {} });
});

function assertClose(actual: tf.Tensor, expected: tf.Tensor, label: string): void {
  assert.deepEqual(actual.shape, expected.shape, label);
  const largest = largestDifference(actual.dataSync(), expected.dataSync());
  assert.ok(largest < 1e-4, `${label}: differs by up to ${largest}`);
  assert.ok(expected.dataSync().some((value) => Math.abs(value) > 1e-3), `${label}: all zeros, so the comparison proves nothing`);
}

/** Sums the output weighted by fixed values, so that dy is not constant. */
function weighted(output: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(output, tf.linspace(-1, 2, output.size).reshape(output.shape)));
}

for (const [name, xShape, statsShape] of [
  ['rank-4 input, per-channel statistics', [2, 3, 3, 4], [4]],
  ['rank-4 input, broadcast statistics', [2, 3, 3, 4], [1, 1, 1, 4]],
  ['rank-2 input', [5, 4], [4]],
] as const) {
  test(`batchNorm gradients equal the formula's: ${name}`, () => {
    const x = tf.randomNormal([...xShape], 0, 2, 'float32', 1);
    const mean = tf.randomNormal([...statsShape], 0, 1, 'float32', 2);
    const variance = tf.randomUniform([...statsShape], 0.5, 2, 'float32', 3);
    const offset = tf.randomNormal([...statsShape], 0, 1, 'float32', 4);
    const scale = tf.randomNormal([...statsShape], 1, 0.3, 'float32', 5);
    const epsilon = 1e-3;
    const fused = tf.grads((...inputs: tf.Tensor[]) => weighted(tf.batchNorm(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], epsilon)));
    const formula = tf.grads((...inputs: tf.Tensor[]) =>
      weighted(tf.add(tf.mul(tf.div(tf.sub(inputs[0], inputs[1]), tf.sqrt(tf.add(inputs[2], epsilon))), inputs[4]), inputs[3])),
    );
    const inputs = [x, mean, variance, offset, scale];
    const actual = fused(inputs);
    const expected = formula(inputs);
    ['x', 'mean', 'variance', 'offset', 'scale'].forEach((label, i) => assertClose(actual[i], expected[i], label));
  });
}

test('clipByValue gradient passes dy at and between the bounds, and 0 outside', () => {
  const x = tf.tensor1d([-1, 0, 0.5, 3, 6, 6.5, -0.001, 5.999]);
  const gradient = tf.grad((input: tf.Tensor) => weighted(tf.clipByValue(input, 0, 6)))(x);
  const dy = tf.linspace(-1, 2, 8).dataSync();
  const inside = [false, true, true, true, true, false, false, true];
  assert.deepEqual(
    Array.from(gradient.dataSync(), (value) => value + 0), // -0 where dy < 0 is outside
    inside.map((keep, i) => (keep ? dy[i] : 0)),
  );
});

test('ReLU6 layer gradient through clipByValue', () => {
  const layer = tf.layers.reLU({ maxValue: 6 });
  const x = tf.tensor2d([[-2, 1, 7], [6, 0.5, 3]]);
  const gradient = tf.grad((input: tf.Tensor) => weighted(layer.apply(input) as tf.Tensor))(x);
  const dy = tf.linspace(-1, 2, 6).dataSync();
  assert.deepEqual(Array.from(gradient.dataSync(), (value) => value + 0), [0, dy[1], 0, dy[3], dy[4], dy[5]]);
});
