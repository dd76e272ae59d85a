import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { missingClassWarnings } from '../packages/cli/src/pipeline.js';
import { MOBILENET, temporaryFolder, writeBreastMnistSubset } from './helpers.js';

const CLI = resolve('packages/cli/dist/main.js');

interface MixMetrics {
  mix: string;
  rows: Record<string, number>;
  seeds: Array<{ fineTune: { epochsRun: number } | null; test: { auc: number } }>;
  memory: { peakRssBytes: number; peakTensorBytes: number };
}

test('full training with recipe mixes', async () => {
  const dir = await temporaryFolder();
  const data = await writeBreastMnistSubset(dir);
  const augmentOnly = join(dir, 'aug');
  const augment = spawnSync(process.execPath, [CLI, 'augment', data, '--out', augmentOnly, '--views', '3', '--horizontal-flip', '--quiet', '--workers', '1'], { encoding: 'utf8' });
  assert.equal(augment.status, 0, augment.stderr);

  const config = {
    name: 'full',
    output: join(dir, 'runs'),
    settingsChosenBy: { 'train.inputSize': '5-fold cross-validation on train + val' },
    data: { path: data },
    augment: { enabled: false },
    synth: { enabled: false },
    train: {
      backbone: resolve(MOBILENET),
      inputSize: 32,
      strategy: 'full',
      seeds: [0],
      head: { epochs: 3, ensemble: 2 },
      fineTune: { epochs: 2 },
      testTimeFlip: true,
      featureCache: false,
      mixes: ['real', { name: 'real + 30 views', sources: [{ from: 'real' }, { from: 'aug', count: 30 }] }, { name: 'views only', sources: [{ from: 'aug', ratio: 0.5 }] }],
    },
  };
  await writeFile(join(dir, 'full.json'), JSON.stringify(config));
  const result = spawnSync(process.execPath, [CLI, 'run', join(dir, 'full.json'), '--quiet'], { encoding: 'utf8', env: { ...process.env, SCARCE_BACKEND: '' } });
  assert.equal(result.status, 0, result.stderr);

  const metrics = JSON.parse(await readFile(join(dir, 'runs', 'full', 'metrics.json'), 'utf8')) as { mixes: MixMetrics[] };
  const byName = new Map(metrics.mixes.map((mix) => [mix.mix, mix]));
  assert.deepEqual(byName.get('real')!.rows, { real: 48, augmented: 0, synthetic: 0 });
  assert.deepEqual(byName.get('real + 30 views')!.rows, { real: 48, augmented: 30, synthetic: 0 });
  assert.deepEqual(byName.get('views only')!.rows, { real: 0, augmented: 24, synthetic: 0 });
  for (const mix of metrics.mixes) {
    assert.ok(mix.seeds[0].fineTune !== null, `${mix.mix} was fine-tuned`);
    assert.ok(mix.seeds[0].fineTune!.epochsRun >= 1, `${mix.mix} ran a fine-tuning epoch`);
    assert.ok(mix.seeds[0].test.auc >= 0, `${mix.mix} AUC ${mix.seeds[0].test.auc} is at least 0`);
    assert.ok(mix.seeds[0].test.auc <= 1, `${mix.mix} AUC ${mix.seeds[0].test.auc} is at most 1`);
    // The backbone's weights alone take about 1.6 MB, so any real peak is above that.
    assert.ok(mix.memory.peakTensorBytes > 1.5e6, `${mix.mix} peak tensor bytes ${mix.memory.peakTensorBytes}`);
    assert.ok(mix.memory.peakRssBytes >= mix.memory.peakTensorBytes, `${mix.mix} peak RSS ${mix.memory.peakRssBytes}`);
  }
  const model = JSON.parse(await readFile(join(dir, 'runs', 'full', 'models', 'real', 'model.json'), 'utf8'));
  assert.equal(model.userDefinedMetadata.scarceClassifier.testTimeFlip, true, 'the saved classifier predicts with test-time flips, as it was scored');
  const report = await readFile(join(dir, 'runs', 'full', 'report.md'), 'utf8');
  assert.match(report, /then fine-tunes it with the backbone's every block at learning rate 0\.0001, stopping early on val_loss with patience 5, /);
  assert.match(report, /Val and test scores average each image's probabilities with its mirror's \(test-time flips\); early stopping and the training curves score each image alone\./);
  assert.match(report, /\| `train\.inputSize` \| `32` \| 5-fold cross-validation on train \+ val \|/);
});

test('recipe rejects views of test images', async () => {
  const dir = await temporaryFolder();
  const data = await writeBreastMnistSubset(dir);
  // Views of the test images, made from a copy of the data whose train split contains them.
  const leaking = await writeBreastMnistSubset(await temporaryFolder(), { train: 24, val: 0, test: 0 }, 'test');
  const views = join(dir, 'leaky');
  const augment = spawnSync(process.execPath, [CLI, 'augment', leaking, '--out', views, '--views', '1', '--quiet', '--workers', '1'], { encoding: 'utf8' });
  assert.equal(augment.status, 0, augment.stderr);
  const config = {
    name: 'leak',
    output: join(dir, 'runs'),
    data: { path: data },
    augment: { enabled: false },
    synth: { enabled: false },
    train: { backbone: resolve(MOBILENET), inputSize: 32, seeds: [0], head: { epochs: 2 }, featureCache: false, mixes: [{ name: 'leaky', sources: [{ from: 'real' }, { from: 'leaky' }] }] },
  };
  await writeFile(join(dir, 'leak.json'), JSON.stringify(config));
  const result = spawnSync(process.execPath, [CLI, 'run', join(dir, 'leak.json'), '--quiet'], { encoding: 'utf8', env: { ...process.env, SCARCE_BACKEND: '' } });
  assert.equal(result.status, 2, result.stderr);
  await assert.rejects(stat(join(dir, 'runs', 'leak')), { code: 'ENOENT' }, 'the run wrote nothing');
  assert.match(result.stderr, /leaky: augmented row 0 \(source index 0, view 1\) does not replay from the train image with that index/);
});

test('run warns of classes missing from val or test', () => {
  const record = (label: number, split: 'train' | 'val' | 'test') => ({ pixels: new Uint8Array(1), height: 1, width: 1, channels: 1, label, origin: 'real' as const, split, sourceIndex: 0, view: 0, seed: 0, params: null });
  const dataset = { classNames: ['a', 'b', 'rare'], records: [record(0, 'train'), record(1, 'train'), record(2, 'train'), record(0, 'val'), record(1, 'val'), record(0, 'test'), record(1, 'test'), record(2, 'test')] };
  assert.deepEqual(missingClassWarnings(dataset), ["class 'rare' has no val images, so val scores say nothing about it. Add images of it, or raise data.split."]);
  assert.match(missingClassWarnings(dataset, '--split')[0], /or raise --split\.$/);
});
