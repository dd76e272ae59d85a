import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError, Random, readMedMnistNpz, recordsOfSplit, selectBackend } from '@scarce/core';
import {
  ArrayAdam,
  dropoutMask,
  fineTune,
  frozenActivations,
  headLogits,
  loadBackbone,
  onnxTailFeaturesFor,
  onnxTrainingStepFor,
  repeatForMembers,
  splitBackbone,
  tailFeatures,
  trainHead,
  type ClassifierHead,
} from '@scarce/train';
import { BREASTMNIST, largestDifference, MOBILENET } from './helpers.js';

before(async () => {
  await selectBackend({ log: () => {} });
});

/** Trains a head for one epoch on random features of `featureSize`, so its weights are not at their start. */
async function someHead(featureSize: number, units: number, ensemble: number, seed: number): Promise<ClassifierHead> {
  const random = new Random(seed);
  const rows = 24;
  const features = Float32Array.from({ length: rows * featureSize }, () => random.uniform(0, 3));
  const labels = Array.from({ length: rows }, (_, i) => i % 2);
  return (await trainHead({ features, labels }, { features: new Float32Array(0), labels: [] }, 2, { units, ensemble, epochs: 1, seed, earlyStopping: { monitor: 'loss' } })).head;
}

/** Compares onnxruntime's loss and gradients with tfjs's on one random batch of tail inputs. */
async function assertGradientsMatch(tail: tf.LayersModel, head: ClassifierHead, rows: number): Promise<void> {
  const random = new Random(5);
  const shape = tail.inputs[0].shape.slice(1) as number[];
  const activations = Float32Array.from({ length: rows * shape.reduce((product, size) => product * size, 1) }, () => random.uniform(0, 4));
  const labels = Array.from({ length: rows }, (_, i) => (i * 7) % 2);
  const targets = new Float32Array(rows * 2);
  labels.forEach((label, i) => (targets[i * 2 + label] = 1));
  const mask = head.hiddenUnits > 0 ? dropoutMask(random, rows, head.hiddenUnits, 0.5) : null;
  const variables = [...tail.trainableWeights.map((weight) => weight.read() as tf.Variable), ...head.weights];

  const step = await onnxTrainingStepFor(tail, head, 'onnxruntime');
  assert.ok(step !== undefined);
  const actual = await step.run({ rows, activations, targets, dropoutMask: mask }, variables.map((variable) => variable.dataSync() as Float32Array));
  const expected = tf.variableGrads(() => {
    const x = tf.tensor(activations, [rows, ...shape]);
    const y = repeatForMembers(tf.oneHot(tf.tensor1d(labels, 'int32'), 2), head.members);
    const pooled = (tail.apply(x, { training: false }) as tf.Tensor4D).mean([1, 2]) as tf.Tensor2D;
    return tf.losses.softmaxCrossEntropy(y, headLogits(head, pooled, mask === null ? null : tf.tensor2d(mask, [rows, head.hiddenUnits]))) as tf.Scalar;
  }, variables);

  assert.ok(Math.abs(actual.loss - expected.value.dataSync()[0]) < 1e-5, `loss ${actual.loss} against ${expected.value.dataSync()[0]}`);
  assert.equal(actual.gradients.length, variables.length);
  variables.forEach((variable, i) => {
    const reference = expected.grads[variable.name].dataSync() as Float32Array;
    const scale = reference.reduce((largest, value) => Math.max(largest, Math.abs(value)), 1);
    assert.ok(reference.some((value) => value !== 0), `the gradient of ${variable.name} is zero, so the comparison proves nothing`);
    const difference = largestDifference(actual.gradients[i], reference);
    assert.ok(difference < 1e-5 * scale, `gradient of ${variable.name} differs by up to ${difference}`);
  });
  tf.dispose([expected.value, ...Object.values(expected.grads)]);
}

test('step gradients of the MobileNetV2 tail', async () => {
  const backbone = await loadBackbone(MOBILENET, { inputSize: 64 });
  // Four blocks hold a stride-2 depthwise convolution after zero padding, and residual additions.
  for (const [lastBlocks, units, ensemble] of [[2, 32, 3], [4, 0, 2]]) {
    const split = splitBackbone(backbone, { lastBlocks });
    const head = await someHead(1280, units, ensemble, lastBlocks);
    await assertGradientsMatch(split.tail, head, 6);
    head.dispose();
  }
  backbone.model.dispose();
});

test('step gradients of every layer kind', async () => {
  const input = tf.input({ shape: [9, 8, 3] });
  const padded = tf.layers.zeroPadding2d({ padding: [[0, 1], [2, 1]] }).apply(input) as tf.SymbolicTensor;
  const strided = tf.layers
    .conv2d({ filters: 6, kernelSize: [3, 2], strides: 2, padding: 'valid', activation: 'relu', biasInitializer: 'randomNormal' })
    .apply(padded) as tf.SymbolicTensor;
  const depthwise = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: true, biasInitializer: 'randomNormal' }).apply(strided) as tf.SymbolicTensor;
  const frozen = tf.layers.batchNormalization({ movingMeanInitializer: 'randomNormal', movingVarianceInitializer: 'ones', betaInitializer: 'randomNormal', gammaInitializer: 'randomNormal' });
  const normalised = frozen.apply(depthwise) as tf.SymbolicTensor;
  const capped = tf.layers.reLU({ maxValue: 0.5 }).apply(normalised) as tf.SymbolicTensor;
  const same = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' }).apply(capped) as tf.SymbolicTensor;
  const centred = tf.layers.batchNormalization({ gammaInitializer: 'randomNormal', movingMeanInitializer: 'randomNormal', movingVarianceInitializer: 'ones' }).apply(same) as tf.SymbolicTensor;
  const pointwise = tf.layers.conv2d({ filters: 6, kernelSize: 1, useBias: false }).apply(centred) as tf.SymbolicTensor;
  // The centred map feeds two layers, so its gradient sums two paths.
  const sum = tf.layers.add().apply([pointwise, centred]) as tf.SymbolicTensor;
  const dropped = tf.layers.dropout({ rate: 0.5 }).apply(tf.layers.activation({ activation: 'relu' }).apply(sum) as tf.SymbolicTensor) as tf.SymbolicTensor;
  // Transposed convolutions as a generator uses them: 4x4 stride 2 'same', then 3x3 stride 2 'valid'.
  const upsampled = tf.layers
    .conv2dTranspose({ filters: 5, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu', biasInitializer: 'randomNormal' })
    .apply(dropped) as tf.SymbolicTensor;
  const widened = tf.layers.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', useBias: false }).apply(upsampled) as tf.SymbolicTensor;
  const leaky = tf.layers.leakyReLU({ alpha: 0.1 }).apply(widened) as tf.SymbolicTensor;
  const squashed = tf.layers.conv2d({ filters: 4, kernelSize: 1, activation: 'tanh' }).apply(leaky) as tf.SymbolicTensor;
  const gated = tf.layers.activation({ activation: 'sigmoid' }).apply(squashed) as tf.SymbolicTensor;
  const tail = tf.model({ inputs: input, outputs: gated });
  frozen.trainable = false;

  const head = await someHead(4, 8, 2, 3);
  await assertGradientsMatch(tail, head, 5);
  head.dispose();
});

test('step tail features match tfjs', async () => {
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  const split = splitBackbone(backbone, { lastBlocks: 3 });
  const activations = tf.randomUniform([5, ...(split.tail.inputs[0].shape.slice(1) as number[])], 0, 3, 'float32', 2);
  const onnxFeatures = await onnxTailFeaturesFor(split.tail, 'onnxruntime');
  const weights = split.tail.trainableWeights.map((weight) => weight.read().dataSync() as Float32Array);
  const actual = await onnxFeatures!.run(activations.dataSync() as Float32Array, 5, weights);
  const expected = await tailFeatures(split, activations, { runtime: 'tfjs' });
  assert.ok(largestDifference(actual, expected) < 1e-4);
  backbone.model.dispose();
});

test('step without a gradient falls back or stops', async () => {
  const input = tf.input({ shape: [4, 4, 2] });
  const elu = tf.layers.conv2d({ filters: 3, kernelSize: 1, activation: 'elu' }).apply(input) as tf.SymbolicTensor;
  const unsupported = tf.model({ inputs: input, outputs: elu });
  const small = await someHead(3, 4, 1, 1);
  assert.equal(await onnxTrainingStepFor(unsupported, small, 'auto'), undefined);
  assert.equal(await onnxTrainingStepFor(unsupported, small, 'tfjs'), undefined);
  await assert.rejects(onnxTrainingStepFor(unsupported, small, 'onnxruntime'), (error: Error) => error instanceof InputError && /activation 'elu'.*train\.runtime/.test(error.message));
  small.dispose();
});

test('ArrayAdam follows tf.train.adam', () => {
  const random = new Random(9);
  const start = Float32Array.from({ length: 50 }, () => random.normal());
  const variable = tf.variable(tf.tensor1d(start));
  const optimizer = tf.train.adam(0.01);
  const weights = [start.slice()];
  const adam = new ArrayAdam(0.01, [50]);
  for (let step = 0; step < 5; step++) {
    const gradient = Float32Array.from({ length: 50 }, () => random.normal());
    optimizer.applyGradients([{ name: variable.name, tensor: tf.tensor1d(gradient) }]);
    adam.apply(weights, [gradient]);
  }
  const difference = largestDifference(weights[0], variable.dataSync());
  assert.ok(difference < 1e-6, `weights differ by up to ${difference}`);
  assert.ok(largestDifference(weights[0], start) > 0.01, 'the weights moved');
  variable.dispose();
  optimizer.dispose();
});

test('onnxruntime fine-tuning follows tfjs', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const train = recordsOfSplit(dataset, 'train').slice(0, 48);
  const validation = recordsOfSplit(dataset, 'val').slice(0, 16);
  const labels = (records: typeof train) => records.map((record) => record.label);
  const histories: Array<Array<Record<string, number>>> = [];
  for (const runtime of ['tfjs', 'onnxruntime'] as const) {
    const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
    const split = splitBackbone(backbone, { lastBlocks: 2 });
    const trainActivations = await frozenActivations(split, backbone, train, { runtime: 'tfjs' });
    const validationActivations = await frozenActivations(split, backbone, validation, { runtime: 'tfjs' });
    const features = await tailFeatures(split, trainActivations, { runtime: 'tfjs' });
    const head = (await trainHead({ features, labels: labels(train) }, { features: new Float32Array(0), labels: [] }, 2, { epochs: 2, earlyStopping: { monitor: 'loss' } })).head;
    const tuned = await fineTune(split, head, { activations: trainActivations, labels: labels(train) }, { activations: validationActivations, labels: labels(validation) }, {
      epochs: 3,
      learningRate: 1e-3,
      earlyStopping: { patience: 10, restoreBestWeights: false },
      runtime,
    });
    histories.push(tuned.history);
    tf.dispose([trainActivations, validationActivations]);
    head.dispose();
    backbone.model.dispose();
  }
  const [tfjs, onnx] = histories;
  assert.equal(onnx.length, 3);
  for (const key of ['loss', 'val_loss']) {
    const difference = Math.max(...onnx.map((logs, i) => Math.abs(logs[key] - tfjs[i][key])));
    assert.ok(difference < 1e-3, `${key} differs by up to ${difference}: ${JSON.stringify(histories)}`);
  }
  assert.notEqual(onnx[0].loss, onnx[2].loss, 'training moved the loss');
});

test('onnxruntime head training follows tfjs', async () => {
  const random = new Random(4);
  const rows = 90;
  const featureSize = 12;
  // Two thirds of the rows are class 1, so balanced class weights differ from 1.
  const labels = Array.from({ length: rows }, (_, i) => (i % 3 === 0 ? 0 : 1));
  const features = Float32Array.from({ length: rows * featureSize }, (_, i) => random.normal() + labels[Math.floor(i / featureSize)] * 0.8);
  const train = { features: features.subarray(0, 60 * featureSize), labels: labels.slice(0, 60) };
  const validation = { features: features.subarray(60 * featureSize), labels: labels.slice(60) };
  for (const options of [{ units: 8, ensemble: 2, classWeight: 'balanced' as const, reduceLrOnPlateau: { patience: 1, factor: 0.5 } }, { units: 0, ensemble: 3 }]) {
    const runs = [];
    for (const runtime of ['tfjs', 'onnxruntime'] as const) {
      const training = await trainHead(train, validation, 2, { ...options, epochs: 6, batchSize: 16, seed: 3, earlyStopping: { patience: 100 }, runtime });
      runs.push(training.history);
      training.head.dispose();
    }
    const [tfjs, onnx] = runs;
    assert.equal(onnx.length, 6);
    for (const key of ['loss', 'val_loss', 'learning_rate']) {
      const difference = Math.max(...onnx.map((logs, i) => Math.abs(logs[key] - tfjs[i][key])));
      assert.ok(difference < 1e-4, `${JSON.stringify(options)}: ${key} differs by up to ${difference}`);
    }
    assert.notEqual(onnx[0].loss, onnx[5].loss, 'training moved the loss');
  }
});
