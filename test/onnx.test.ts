import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError, readMedMnistNpz, selectBackend } from '@scarce/core';
import { exportOnnx, frozenActivations, loadBackbone, onnxRunnerFor, splitBackbone, UnsupportedLayerError } from '@scarce/train';
import { BREASTMNIST, largestDifference, MOBILENET } from './helpers.js';

before(async () => {
  await selectBackend({ log: () => {} });
});

async function assertOnnxMatchesTfjs(model: tf.LayersModel, pooled: boolean, images: tf.Tensor4D, tolerance = 1e-4): Promise<void> {
  const runner = await onnxRunnerFor(model, pooled, 'onnxruntime');
  assert.ok(runner !== undefined);
  const actual = await runner.run(images.dataSync() as Float32Array, images.shape[0]);
  const expected = tf.tidy(() => {
    const output = model.predict(images) as tf.Tensor;
    return (pooled && output.rank === 4 ? output.mean([1, 2]) : output).dataSync();
  });
  assert.ok(expected.some((value) => Math.abs(value) > 1e-2), 'the output is all but zero, so the comparison proves nothing');
  const difference = largestDifference(actual, expected);
  assert.ok(difference < tolerance, `onnxruntime and tfjs differ by up to ${difference}`);
}

test('shipped MobileNetV2 matches tfjs', async () => {
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  const images = tf.randomUniform([3, 32, 32, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
  await assertOnnxMatchesTfjs(backbone.model, true, images);
  await assertOnnxMatchesTfjs(backbone.model, false, images);
  backbone.model.dispose();
});

test('translated layer kinds match tfjs', async () => {
  const input = tf.input({ shape: [9, 8, 3] });
  const padded = tf.layers.zeroPadding2d({ padding: [[0, 1], [2, 1]] }).apply(input) as tf.SymbolicTensor;
  const strided = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', biasInitializer: 'randomNormal' }).apply(padded) as tf.SymbolicTensor;
  const depthwise = tf.layers.depthwiseConv2d({ kernelSize: [3, 2], depthMultiplier: 2, padding: 'same', useBias: true, biasInitializer: 'randomNormal' }).apply(strided) as tf.SymbolicTensor;
  const normalised = tf.layers
    .batchNormalization({ scale: false, movingMeanInitializer: 'randomNormal', movingVarianceInitializer: 'ones', betaInitializer: 'randomNormal' })
    .apply(depthwise) as tf.SymbolicTensor;
  const capped = tf.layers.reLU({ maxValue: 0.5 }).apply(normalised) as tf.SymbolicTensor;
  const pointwise = tf.layers.conv2d({ filters: 12, kernelSize: 1, activation: 'tanh' }).apply(capped) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([pointwise, depthwise, capped]) as tf.SymbolicTensor;
  const gated = tf.layers.activation({ activation: 'sigmoid' }).apply(sum) as tf.SymbolicTensor;
  const dilated = tf.layers.conv2d({ filters: 4, kernelSize: 2, dilationRate: 2, padding: 'valid', activation: 'elu' }).apply(gated) as tf.SymbolicTensor;
  const mapModel = tf.model({ inputs: input, outputs: dilated });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(dilated) as tf.SymbolicTensor;
  const dropped = tf.layers.dropout({ rate: 0.5 }).apply(pooled) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 5, activation: 'softmax', biasInitializer: 'randomNormal' }).apply(dropped) as tf.SymbolicTensor;
  const vectorModel = tf.model({ inputs: input, outputs: dense });

  const images = tf.randomNormal([4, 9, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  await assertOnnxMatchesTfjs(mapModel, false, images);
  await assertOnnxMatchesTfjs(mapModel, true, images);
  await assertOnnxMatchesTfjs(vectorModel, false, images);
});

test('untranslated layer falls back or stops', async () => {
  const input = tf.input({ shape: [8, 8, 1] });
  const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: pooled });
  assert.throws(() => exportOnnx(model), (error: Error) => error instanceof UnsupportedLayerError && /MaxPooling2D/.test(error.message));
  assert.equal(await onnxRunnerFor(model, false, 'auto'), undefined);
  await assert.rejects(onnxRunnerFor(model, false, 'onnxruntime'), (error: Error) => error instanceof InputError && /does not translate layer .*MaxPooling2D.*runtime 'auto' or 'tfjs'/.test(error.message));
  assert.equal(await onnxRunnerFor(tf.model({ inputs: input, outputs: tf.layers.conv2d({ filters: 1, kernelSize: 1 }).apply(input) as tf.SymbolicTensor }), false, 'tfjs'), undefined);
});

test('frozen activations match tfjs', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const records = dataset.records.slice(0, 70);
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  const split = splitBackbone(backbone, { lastBlocks: 2 });
  const fromOnnx = await frozenActivations(split, backbone, records, { batchSize: 32, runtime: 'onnxruntime' });
  const fromTfjs = await frozenActivations(split, backbone, records, { batchSize: 32, runtime: 'tfjs' });
  assert.deepEqual(fromOnnx.shape, fromTfjs.shape);
  assert.equal(fromOnnx.shape[0], 70);
  const difference = largestDifference(fromOnnx.dataSync(), fromTfjs.dataSync());
  assert.ok(difference < 1e-4, `activations differ by up to ${difference}`);
  tf.dispose([fromOnnx, fromTfjs]);
  backbone.model.dispose();
});

test('runner follows assigned weights', async () => {
  const input = tf.input({ shape: [4, 4, 2] });
  const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same' });
  const model = tf.model({ inputs: input, outputs: conv.apply(input) as tf.SymbolicTensor });
  const images = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 11) as tf.Tensor4D;
  const first = await onnxRunnerFor(model, true, 'onnxruntime');
  assert.equal(await onnxRunnerFor(model, true, 'onnxruntime'), first, 'unchanged weights reuse the runner');
  const before = await first!.run(images.dataSync() as Float32Array, 2);

  conv.setWeights(conv.getWeights().map((weight) => tf.mul(weight, -2)));
  const second = await onnxRunnerFor(model, true, 'onnxruntime');
  assert.notEqual(second, first);
  const after = await second!.run(images.dataSync() as Float32Array, 2);
  assert.ok(largestDifference(after, Array.from(before, (value) => value * -2)) < 1e-4);
  await assertOnnxMatchesTfjs(model, true, images);
});
