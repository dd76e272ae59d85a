import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { Random, selectBackend, type ImageRecord, type Origin } from '@scarce/core';
import { evaluateProbabilities } from '@scarce/train';
import { benchmarkMixes, syntheticLabelConfidence } from '../packages/cli/src/benchmark.js';
import { parseRunConfig } from '../packages/cli/src/config.js';

before(async () => {
  await selectBackend({ log: () => {} });
});

/** Makes `count` records of one origin and split whose 6 features lean towards their label. */
function records(count: number, origin: Origin, split: ImageRecord['split'], random: Random, features: Map<ImageRecord, Float32Array>): ImageRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const record: ImageRecord = { pixels: new Uint8Array(4), height: 2, width: 2, channels: 1, label: i % 2, origin, sourceIndex: i, view: 0, seed: 0, params: null, split };
    features.set(record, Float32Array.from({ length: 6 }, () => random.normal() + record.label));
    return record;
  });
}

test('validation images join only real mixes', async () => {
  const random = new Random(1);
  const features = new Map<ImageRecord, Float32Array>();
  const real = records(30, 'real', 'train', random, features);
  const synthetic = records(20, 'synthetic', 'train', random, features);
  const evaluation = { val: records(10, 'real', 'val', random, features), test: records(12, 'real', 'test', random, features) };
  const config = parseRunConfig({ data: { path: 'x.npz' }, train: { trainOnValidation: true, seeds: [0, 1], head: { units: 8, epochs: 12 }, earlyStopping: { monitor: 'val_accuracy', patience: 0 } } }, 'test.json', '.');

  const lines: string[] = [];
  const results = await benchmarkMixes({
    mixes: [
      { name: 'real', rows: real },
      { name: 'synthetic', rows: synthetic },
    ],
    evaluation,
    features,
    featureSize: 6,
    numClasses: 2,
    settings: config.train,
    log: (line) => lines.push(line),
  });
  const [realMix, syntheticMix] = results;
  assert.match(lines[0], /^mix real seed 0: trained 12 epochs on the mix and the validation images, keeping the last weights; test accuracy/);
  assert.match(lines[2], /^mix synthetic seed 0: trained 12 epochs on the mix, keeping/);
  assert.deepEqual(realMix.rows, { real: 40, augmented: 0, synthetic: 0 });
  assert.deepEqual(syntheticMix.rows, { real: 0, augmented: 0, synthetic: 20 });
  for (const mix of results) {
    // The configured early stopping would end at the first epoch without a better val accuracy.
    assert.deepEqual(
      mix.seeds.map((seed) => seed.epochsRun),
      [12, 12],
      `${mix.mix}: every head runs all epochs`,
    );
    assert.deepEqual(
      mix.seeds.map((seed) => seed.stoppedEpoch),
      [null, null],
    );
    assert.deepEqual(
      mix.seeds.map((seed) => seed.bestEpoch),
      [12, 12],
      `${mix.mix}: the kept weights are the last epoch's`,
    );
  }
});

test('test-time flips average mirror scores', async () => {
  const random = new Random(3);
  const features = new Map<ImageRecord, Float32Array>();
  const real = records(30, 'real', 'train', random, features);
  const evaluation = { val: records(10, 'real', 'val', random, features), test: records(12, 'real', 'test', random, features) };
  // Stand-ins for the mirrors, with features of their own.
  const mirrors = new Map([...evaluation.val, ...evaluation.test].map((record) => [record, records(1, 'real', record.split, random, features)[0]]));
  const config = parseRunConfig({ data: { path: 'x.npz' }, train: { seeds: [0], head: { units: 8, epochs: 10 } } }, 'test.json', '.');
  let checked = 0;
  const featuresOf = (rows: ImageRecord[]) => Float32Array.from(rows.flatMap((row) => [...features.get(row)!]));
  await benchmarkMixes({
    mixes: [{ name: 'real', rows: real }],
    evaluation,
    features,
    featureSize: 6,
    numClasses: 2,
    settings: config.train,
    mirrors,
    log: () => {},
    keepFirstHead: async (_, head, result) => {
      for (const [split, report] of [['val', result.val], ['test', result.test]] as const) {
        const rows = evaluation[split];
        const plain = head.predict(featuresOf(rows));
        const mirrored = head.predict(featuresOf(rows.map((row) => mirrors.get(row)!)));
        const expected = evaluateProbabilities(plain.map((value, i) => (value + mirrored[i]) / 2), rows.map((row) => row.label), 2);
        assert.equal(report.loss, expected.loss, `${split} loss`);
        assert.equal(report.auc, expected.auc, `${split} AUC`);
        assert.notEqual(report.loss, evaluateProbabilities(plain, rows.map((row) => row.label), 2).loss, `${split}: the mirrors changed the scores`);
        checked++;
      }
    },
  });
  assert.equal(checked, 2);
});

test('diverged head is reported', async () => {
  const random = new Random(2);
  const features = new Map<ImageRecord, Float32Array>();
  const real = records(20, 'real', 'train', random, features);
  const evaluation = { val: records(6, 'real', 'val', random, features), test: records(6, 'real', 'test', random, features) };
  const config = parseRunConfig({ data: { path: 'x.npz' }, train: { seeds: [0], head: { units: 4, epochs: 3, learningRate: 1e30 } } }, 'test.json', '.');
  const lines: string[] = [];
  await benchmarkMixes({ mixes: [{ name: 'real', rows: real }], evaluation, features, featureSize: 6, numClasses: 2, settings: config.train, log: (line) => lines.push(line) });
  assert.match(lines.join('\n'), /warning: mix real seed 0: the training loss is not finite from epoch \d+.*lower train\.head\.learningRate/);
});

test('label confidence flags mislabelled images', async () => {
  const random = new Random(2);
  const features = new Map<ImageRecord, Float32Array>();
  const real = { train: records(40, 'real', 'train', random, features), val: records(10, 'real', 'val', random, features) };
  const agreeing = records(20, 'synthetic', 'train', random, features);
  // The agreeing images' features, each labelled as the other class.
  const mislabelled = agreeing.map((record) => {
    const flipped = { ...record, label: 1 - record.label };
    features.set(flipped, features.get(record)!);
    return flipped;
  });
  const config = parseRunConfig({ data: { path: 'x.npz' }, train: { trainOnValidation: false, head: { units: 8, epochs: 40 } } }, 'test.json', '.');
  const confidence = await syntheticLabelConfidence([...agreeing, ...mislabelled], real, features, 6, 2, config.train, 0);
  assert.equal(confidence.length, 40);
  // Each mislabelled image has an agreeing twin's features, so the two confidences are its two class probabilities.
  for (let i = 0; i < 20; i++) assert.ok(Math.abs(confidence[i] + confidence[20 + i] - 1) < 1e-5, `pair ${i} sums to 1`);
  const agreeingAbove = confidence.subarray(0, 20).filter((value) => value > 0.5).length;
  assert.ok(agreeingAbove >= 15, `${agreeingAbove} of 20 agreeing images above 0.5`);
  for (const value of confidence) assert.ok(value >= 0 && value <= 1);
});
