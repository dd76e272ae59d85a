import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { readMedMnistNpz, readShardFolder, recordsOfSplit } from '@scarce/core';
import { BREASTMNIST, MOBILENET, npyBytes, temporaryFolder, writeBreastMnistSubset, writeNpz } from './helpers.js';

const CLI = resolve('packages/cli/dist/main.js');

function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SCARCE_BACKEND: '' } });
}

test('run writes a report with every mix', async () => {
  const dir = await temporaryFolder();
  const data = await writeBreastMnistSubset(dir);
  const config = {
    name: 'tiny',
    output: join(dir, 'runs'),
    data: { path: data, classNames: ['malignant', 'benign'] },
    augment: { viewsPerImage: 2, transforms: { rotation: 10, horizontalFlip: true } },
    synth: { perClass: 12, minConfidence: 0.2, gan: { epochs: 2, timeBudgetSeconds: 20, batchSize: 16 } },
    train: { backbone: resolve(MOBILENET), inputSize: 32, seeds: [0, 1], head: { epochs: 8 }, featureCache: join(dir, 'cache') },
  };
  const configPath = join(dir, 'tiny.json');
  await writeFile(configPath, JSON.stringify(config));

  const result = runCli(['run', configPath, '--json']);
  assert.equal(result.status, 0, result.stderr);
  const events = result.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { event: string; [field: string]: unknown });
  assert.ok(events.every((event) => typeof event.event === 'string'), 'every stdout line is an event');
  assert.ok(events.filter((event) => event.event !== 'progress').every((event) => typeof event.time === 'string'), 'events but progress carry the time');
  assert.ok(events.some((event) => event.event === 'progress' && event.label === 'features'), 'progress of feature extraction');
  assert.ok(events.some((event) => event.event === 'log' && /^mix real seed 0: /.test(event.message as string)), 'log lines as events');
  assert.equal(events.at(-1)!.event, 'done');
  assert.equal(events.at(-1)!.runDir, join(dir, 'runs', 'tiny'));
  assert.doesNotMatch(result.stderr, /mix real seed 0|features \d+\/\d+/, 'with --json nothing of the log goes to stderr');
  const metrics = JSON.parse(await readFile(join(dir, 'runs', 'tiny', 'metrics.json'), 'utf8'));
  assert.deepEqual(metrics.mixes.map((mix: { mix: string }) => mix.mix), ['real', 'real+augmented', 'real+synthetic', 'real+augmented+synthetic', 'synthetic']);
  for (const mix of metrics.mixes) {
    assert.equal(mix.seeds.length, 2);
    for (const seed of mix.seeds) {
      for (const value of [seed.test.accuracy, seed.test.auc, seed.val.accuracy]) assert.ok(value >= 0 && value <= 1, `${mix.mix}: ${value} in [0, 1]`);
      assert.ok(seed.bestEpoch >= 1, `${mix.mix}: best epoch ${seed.bestEpoch} is 1-based`);
      assert.ok(seed.bestEpoch <= seed.epochsRun, `${mix.mix}: best epoch within ${seed.epochsRun} epochs run`);
    }
  }
  const rows = Object.fromEntries(metrics.mixes.map((mix: { mix: string; rows: object }) => [mix.mix, mix.rows]));
  assert.deepEqual(rows['real+augmented'], { real: 48, augmented: 96, synthetic: 0 });
  // The filter's head scores all 24 sampled images, and the mixes train on those it kept.
  const { kept, sampled } = metrics.synth.filtered;
  assert.equal(sampled, 24);
  assert.ok(kept >= 1, `kept ${kept} of 24`);
  assert.ok(kept <= 24, `kept ${kept} of 24`);
  assert.deepEqual(rows['synthetic'], { real: 0, augmented: 0, synthetic: kept });
  assert.equal(rows['real+synthetic'].synthetic, kept);
  assert.equal(metrics.synth.filtered.keptPerClass.reduce((sum: number, count: number) => sum + count, 0), kept);
  assert.ok(events.some((event) => event.event === 'log' && (event.message as string).startsWith(`synthetic filter: kept ${kept} of 24 synthetic images`)));
  assert.equal(metrics.backend, 'wasm');

  const report = await readFile(join(dir, 'runs', 'tiny', 'report.md'), 'utf8');
  for (const mix of ['| real |', '| real+augmented |', '| real+synthetic |', '| real+augmented+synthetic |', '| synthetic |']) assert.ok(report.includes(mix), mix);
  const html = await readFile(join(dir, 'runs', 'tiny', 'report.html'), 'utf8');
  assert.ok(html.includes(`The mixes used ${kept} of its 24 synthetic images: those that passed <code>synth.minConfidence</code> 0.2.`));
  assert.deepEqual([...html.matchAll(/data-plot="([^"]+)"/g)].map((match) => match[1]), ['scores', 'loss', 'validation', 'confusion', 'gan']);
  const images = [...html.matchAll(/<img src="data:image\/png;base64,[^"]+" alt="([^"]+)"/g)].map((match) => match[1]);
  const expectedImages = ['Real train images', 'Synthetic images', 'Augmented views', 'Real and synthetic: malignant', 'Real and synthetic: benign', 'Nearest real images'];
  assert.deepEqual(images, [...expectedImages, 'Transform: horizontalFlip', 'Transform: rotation']);
  const synthetic = await readShardFolder(join(dir, 'runs', 'tiny', 'synthetic'));
  assert.equal(synthetic.records.length, 24);
  assert.ok(synthetic.records.every((record) => record.origin === 'synthetic' && record.sourceIndex === null));

  const plan = runCli(['run', configPath, '--dry-run', '--force']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /less than 0\.2 for their own class are left out, so mixes may get fewer synthetic rows than planned/);

  const again = runCli(['run', configPath, '--quiet']);
  assert.equal(again.status, 2, 'an existing run is not overwritten without --force');
  assert.match(again.stderr, /already contains a run.*--force/);
});

test('run names an invalid config field', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'bad.json');
  await writeFile(configPath, JSON.stringify({ data: { path: BREASTMNIST }, train: { inputSize: 'large' } }));
  const result = runCli(['run', configPath]);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /Invalid config .*bad\.json:\n\s+train\.inputSize: /);
});

test('cli exits 2 for a missing dataset', () => {
  const result = runCli(['augment', 'no/such/data.npz', '--out', '/tmp/unused']);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /Dataset no\/such\/data\.npz not found/);
});

test('run rejects unsafe names and non-run folders', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'c.json');
  await writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, output: 'runs' }));
  for (const name of ['..', '.', '']) {
    const result = runCli(['run', configPath, '--name', name, '--force']);
    assert.equal(result.status, 2, `--name '${name}'`);
    assert.match(result.stderr, /Invalid --name/);
  }
  await mkdir(join(dir, 'runs', 'notes'), { recursive: true });
  await writeFile(join(dir, 'runs', 'notes', 'mine.txt'), 'keep me');
  const result = runCli(['run', configPath, '--name', 'notes', '--force']);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /is not a scarce run .* left alone/);
  assert.equal(await readFile(join(dir, 'runs', 'notes', 'mine.txt'), 'utf8'), 'keep me');

  const lookalikes: Array<[string, Record<string, string>, RegExp]> = [
    ['extra-file', { 'config.json': JSON.stringify({ data: {}, augment: {}, synth: {}, train: {} }), 'thesis.txt': 'keep me' }, /a run writes no 'thesis\.txt'/],
    ['other-config', { 'config.json': '{"eslint":true}' }, /its config\.json lacks the data, augment, synth, train sections/],
    ['broken-config', { 'config.json': '{"data":' }, /its config\.json is not valid JSON/],
  ];
  for (const [name, files, reason] of lookalikes) {
    await mkdir(join(dir, 'runs', name), { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, 'runs', name, file), text);
    const forced = runCli(['run', configPath, '--name', name, '--force']);
    assert.equal(forced.status, 2, `${name}: ${forced.stderr}`);
    assert.match(forced.stderr, reason, name);
    for (const [file, text] of Object.entries(files)) assert.equal(await readFile(join(dir, 'runs', name, file), 'utf8'), text, `${name}/${file} kept`);
  }

  await writeFile(join(dir, 'a-file'), 'keep me');
  const underFile = runCli(['run', configPath, '--output', join(dir, 'a-file')]);
  assert.equal(underFile.status, 2, underFile.stderr);
  assert.match(underFile.stderr, /cannot be created because a part of its path is a file\. Choose another output folder/);
});

test('run checks settings before writing anything', async () => {
  const dir = await temporaryFolder();
  const cases: Array<[object, RegExp]> = [
    [{ augment: { transforms: { rotation: '10deg' } } }, /Invalid config field 'augment\.transforms'/],
    [{ synth: { gan: { batchSize: 0 } } }, /Invalid config field 'synth\.gan'/],
    [{ synth: { minConfidence: 1 } }, /synth\.minConfidence: expected a number < 1/],
    [{ synth: { minConfidence: 0.5 }, train: { mixes: ['synthetic'] } }, /synth\.minConfidence trains its filter on the real train images.*set synth\.minConfidence to 0/],
    [{ train: { backbone: 'no/such/backbone' } }, /Invalid config field 'train\.backbone'/],
    [{ data: { path: resolve(BREASTMNIST), split: { val: 0.1, test: 0.1 } } }, /has its own val or test split/],
    [{ augment: { enabled: false } }, /train\.mixes uses augmented rows but augment\.enabled is false\. Set augment\.enabled to true, or leave augmented rows out of train\.mixes\./],
    [{ train: { mixes: ['real', 'real'] } }, /train\.mixes has two mixes named 'real'/],
    [{ train: { strategy: 'fine-tune', fineTune: { lastBlocks: 99 } } }, /Invalid config field 'train\.fineTune\.lastBlocks': lastBlocks must be an integer from 1 to 19 for this backbone but received 99/],
  ];
  for (const [index, [settings, message]] of cases.entries()) {
    const configPath = join(dir, `case${index}.json`);
    await writeFile(configPath, JSON.stringify({ name: `case${index}`, data: { path: resolve(BREASTMNIST) }, ...settings }));
    const result = runCli(['run', configPath, '--quiet']);
    assert.equal(result.status, 2, `case ${index}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(await stat(join(dir, 'runs', `case${index}`)).then(() => true, () => false), false, `case ${index} wrote nothing`);
  }
});

test('train rejects views of other images', async () => {
  const dir = await temporaryFolder();
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const pick = (split: 'train' | 'val' | 'test', count: number) => recordsOfSplit(dataset, split).slice(0, count);
  const writeData = async (name: string, splits: Record<'train' | 'val' | 'test', ReturnType<typeof pick>>) => {
    const arrays: Record<string, Uint8Array> = {};
    for (const [split, records] of Object.entries(splits)) {
      const pixels = new Uint8Array(records.length * 28 * 28);
      records.forEach((record, i) => pixels.set(record.pixels, i * 28 * 28));
      arrays[`${split}_images`] = npyBytes(pixels, [records.length, 28, 28], '|u1');
      arrays[`${split}_labels`] = npyBytes(records.map((record) => record.label), [records.length], '<i8');
    }
    const path = join(dir, `${name}.npz`);
    await writeNpz(path, arrays);
    return path;
  };
  // B trains on A's held-out images, so views of B's train split are views of A's val and test images.
  const a = await writeData('a', { train: pick('train', 40), val: pick('val', 20), test: pick('test', 20) });
  const b = await writeData('b', { train: [...pick('val', 20), ...pick('test', 20)], val: pick('train', 20), test: pick('train', 40).slice(20) });
  const common = ['--input-size', '32', '--seeds', '0', '--quiet'];

  assert.equal(runCli(['augment', b, '--out', join(dir, 'aug-b'), '--views', '1', '--rotation', '10', '--quiet']).status, 0);
  const leaked = runCli(['train', a, '--with', join(dir, 'aug-b'), ...common]);
  assert.equal(leaked.status, 2, leaked.stderr);
  assert.match(leaked.stderr, /aug-b: augmented row 0 .* does not replay from the train image with that index/);

  assert.equal(runCli(['augment', a, '--out', join(dir, 'aug-a'), '--views', '1', '--rotation', '10', '--quiet']).status, 0);
  const honest = runCli(['train', a, '--with', join(dir, 'aug-a'), ...common]);
  assert.equal(honest.status, 0, honest.stderr);
  assert.match(honest.stderr, /real\+augmented: test accuracy/);
});

test('run trains a mix without real rows', async () => {
  const dir = await temporaryFolder();
  const data = await writeBreastMnistSubset(dir);
  const config = {
    name: 'views-only',
    output: join(dir, 'runs'),
    data: { path: data },
    augment: { viewsPerImage: 1, transforms: { horizontalFlip: true } },
    synth: { enabled: false },
    train: { backbone: resolve(MOBILENET), inputSize: 32, seeds: [0], head: { epochs: 2 }, featureCache: false, mixes: ['augmented'] },
  };
  await writeFile(join(dir, 'views.json'), JSON.stringify(config));
  const result = runCli(['run', join(dir, 'views.json'), '--quiet']);
  assert.equal(result.status, 0, result.stderr);
  const metrics = JSON.parse(await readFile(join(dir, 'runs', 'views-only', 'metrics.json'), 'utf8'));
  assert.deepEqual(metrics.mixes[0].rows, { real: 0, augmented: 48, synthetic: 0 });
  assert.equal(metrics.mixes[0].seeds[0].test.confusion.flat().reduce((sum: number, count: number) => sum + count, 0), 24, 'every test image is scored');
});

test('run averages heads over sizes', async () => {
  const dir = await temporaryFolder();
  const data = await writeBreastMnistSubset(dir);
  const config = {
    name: 'scales',
    output: join(dir, 'runs'),
    data: { path: data },
    augment: { enabled: false },
    synth: { enabled: false },
    train: { backbone: resolve(MOBILENET), inputSize: [32, 40], seeds: [0], head: { epochs: 2 }, featureCache: false, mixes: ['real'] },
  };
  await writeFile(join(dir, 'scales.json'), JSON.stringify(config));
  const plan = runCli(['run', join(dir, 'scales.json'), '--dry-run']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout + plan.stderr, /2 heads \(1 mix x 1 seed x 2 input sizes, feature-extraction\)/);
  const result = runCli(['run', join(dir, 'scales.json'), '--quiet']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /mix real seed 0: 32 px: .*; 40 px: /);
  const report = await readFile(join(dir, 'runs', 'scales', 'report.md'), 'utf8');
  assert.match(report, /trains one head per input size on frozen 32 and 40 px features/);
  const saved = JSON.parse(await readFile(join(dir, 'runs', 'scales', 'models', 'real', 'model.json'), 'utf8'));
  assert.deepEqual(saved.userDefinedMetadata.scarceClassifier.inputSize, [32, 40]);

  const twice = runCli(['train', BREASTMNIST, '--input-size', '32,32', '--seeds', '0', '--quiet']);
  assert.equal(twice.status, 2);
  assert.match(twice.stderr, /Invalid --input-size: input size 32 is listed twice/);
  const small = runCli(['train', BREASTMNIST, '--input-size', '16,32', '--seeds', '0', '--quiet']);
  assert.equal(small.status, 2);
  assert.match(small.stderr, /Invalid --input-size: expected a number >= 32 but received 16/);
});

test('train concatenates several feature layers', async () => {
  const dir = await temporaryFolder();
  const common = ['--input-size', '32', '--seeds', '0', '--quiet', '--out', join(dir, 'run')];
  const result = runCli(['train', BREASTMNIST, '--feature-layer', 'block_6_expand_relu,block_16_expand_relu', ...common]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /real: test accuracy/);

  const empty = runCli(['train', BREASTMNIST, '--feature-layer', 'block_6_expand_relu,,block_16_expand_relu', ...common]);
  assert.equal(empty.status, 2);
  assert.match(empty.stderr, /Invalid --feature-layer 'block_6_expand_relu,,block_16_expand_relu'/);
});

test('train trains on validation images for fixed epochs', async () => {
  const dir = await temporaryFolder();
  const common = ['--input-size', '32', '--seeds', '0', '--quiet'];
  const result = runCli(['train', BREASTMNIST, ...common, '--train-on-validation', '--epochs', '3', '--runtime', 'tfjs', '--test-time-flip', '--out', join(dir, 'run')]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /trained 3 epochs on the mix and the validation images/);
  const metrics = JSON.parse(await readFile(join(dir, 'run', 'metrics.json'), 'utf8'));
  assert.equal(metrics.settings.runtime, 'tfjs');
  assert.equal(metrics.settings.testTimeFlip, true);
  assert.deepEqual(metrics.results[0].rows, { real: 624, augmented: 0, synthetic: 0 });
  assert.equal(metrics.results[0].seeds[0].epochsRun, 3);

  const invalid = runCli(['train', BREASTMNIST, ...common, '--runtime', 'gpu']);
  assert.equal(invalid.status, 2);
  assert.match(invalid.stderr, /Invalid --runtime 'gpu': expected one of auto, onnxruntime, tfjs/);
});

test('train checks --class-names', () => {
  const common = ['--input-size', '32', '--seeds', '0', '--quiet'];
  const repeated = runCli(['train', BREASTMNIST, ...common, '--class-names', 'a,a']);
  assert.equal(repeated.status, 2);
  assert.match(repeated.stderr, /Invalid --class-names 'a,a': expected distinct names/);
  const tooFew = runCli(['train', BREASTMNIST, ...common, '--class-names', 'malignant']);
  assert.equal(tooFew.status, 2);
  assert.match(tooFew.stderr, /has label 1 but only 1 class names were given/);
});
