import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readMedMnistNpz, recordsOfSplit, selectBackend } from '@scarce/core';
import { extractFeatures, fineTune, frozenActivations, loadBackbone, splitBackbone, tailFeatures, trainHead } from '@scarce/train';
import { BREASTMNIST, MOBILENET } from './helpers.js';

before(async () => {
  await selectBackend({ log: () => {} });
});

test('split backbone computes the same features', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const records = dataset.records.slice(0, 12);
  const backbone = await loadBackbone(MOBILENET, { inputSize: 64 });
  const whole = extractFeatures(backbone, records, { quiet: true });
  for (const unfreeze of [{ lastBlocks: 1 }, { lastBlocks: 3 }, { layerPrefixes: ['block_16_project'] }]) {
    const split = splitBackbone(backbone, unfreeze);
    const activations = await frozenActivations(split, backbone, records);
    const parts = await tailFeatures(split, activations);
    const maxDifference = Math.max(...parts.map((value, i) => Math.abs(value - whole[i])));
    assert.ok(maxDifference < 1e-4, `${JSON.stringify(unfreeze)}: max difference ${maxDifference}`);
    activations.dispose();
  }
  const lastTwo = splitBackbone(backbone, { lastBlocks: 2 });
  assert.equal(lastTwo.cutBefore, 'block_16_expand');
  assert.equal(lastTwo.tail.trainableWeights.length, 12);
  const prefixed = splitBackbone(backbone, { layerPrefixes: ['Conv_1'] });
  assert.equal(prefixed.cutBefore, 'Conv_1');
  assert.deepEqual(prefixed.trainableLayers, ['Conv_1', 'Conv_1_bn']);
  assert.throws(() => splitBackbone(backbone, { layerPrefixes: ['nothing_'] }), /No layer .* matches/);
  backbone.model.dispose();
});

test('fine-tuning keeps the tensor count flat in both runtimes', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const train = recordsOfSplit(dataset, 'train').slice(0, 64);
  const validation = recordsOfSplit(dataset, 'val').slice(0, 24);
  const labels = (records: typeof train) => records.map((record) => record.label);
  for (const runtime of ['onnxruntime', 'tfjs'] as const) {
    const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
    const split = splitBackbone(backbone, { lastBlocks: 2 });
    const trainActivations = await frozenActivations(split, backbone, train);
    const validationActivations = await frozenActivations(split, backbone, validation);
    const head = (await trainHead(
      { features: await tailFeatures(split, trainActivations), labels: labels(train) },
      { features: await tailFeatures(split, validationActivations), labels: labels(validation) },
      2,
      { epochs: 3 },
    )).head;

    const before = split.tail.trainableWeights.map((weight) => weight.read().dataSync().slice());
    const counts: number[] = [];
    const tuned = await fineTune(split, head, { activations: trainActivations, labels: labels(train) }, { activations: validationActivations, labels: labels(validation) }, {
      epochs: 4,
      learningRate: 1e-3,
      earlyStopping: { patience: 10, restoreBestWeights: false },
      onEpoch: () => counts.push(tf.memory().numTensors),
      runtime,
    });
    assert.equal(tuned.epochsRun, 4);
    assert.ok(counts.slice(1).every((count) => count === counts[1]), `${runtime}: tensor counts ${counts.join(', ')}`);
    const changed = split.tail.trainableWeights.some((weight, i) => weight.read().dataSync().some((value, j) => value !== before[i][j]));
    assert.ok(changed, `${runtime}: the unfrozen weights moved`);
    tf.dispose([trainActivations, validationActivations]);
    head.dispose();
    backbone.model.dispose();
  }
});
