import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { registerAugment } from '../packages/cli/src/commands/augment.js';
import { registerBackbone } from '../packages/cli/src/commands/backbone.js';
import { registerInspect } from '../packages/cli/src/commands/inspect.js';
import { registerMerge } from '../packages/cli/src/commands/merge.js';
import { registerPredict } from '../packages/cli/src/commands/predict.js';
import { registerReport } from '../packages/cli/src/commands/report.js';
import { registerRun } from '../packages/cli/src/commands/run.js';
import { registerSynth } from '../packages/cli/src/commands/synth.js';
import { registerTrain } from '../packages/cli/src/commands/train.js';
import { BREASTMNIST, MOBILENET, temporaryFolder } from './helpers.js';
import { buildManifest, readMedMnistNpz, recordsOfSplit, writeManifest, writeRecordsAsShards } from '@scarce/core';

// commander is a dependency of the cli package, not of the workspace root.
const { Command } = createRequire(resolve('packages/cli/package.json'))('commander') as typeof import('commander');

const CLI = resolve('packages/cli/dist/main.js');

function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SCARCE_BACKEND: '' } });
}

const exists = (path: string) => stat(path).then(() => true, () => false);

test('every command has help with an example', async () => {
  const program = new Command('scarce').exitOverride();
  for (const register of [registerRun, registerSynth, registerAugment, registerMerge, registerInspect, registerTrain, registerPredict, registerReport, registerBackbone]) register(program);
  const commands = program.commands.flatMap((command) => [command, ...command.commands]);
  assert.equal(commands.length, 10, commands.map((command) => command.name()).join(', '));
  for (const command of commands) {
    let help = '';
    command.configureOutput({ writeOut: (text) => (help += text) });
    command.outputHelp();
    assert.match(help, /^Usage: scarce /, `${command.name()} --help prints usage`);
    assert.match(help, /\nExamples?:\n {2}scarce /, `${command.name()} --help has an example`);
  }

  const top = runCli(['--help']);
  assert.equal(top.status, 0);
  assert.match(top.stdout, /\nExample:\n {2}scarce run /);
});

test('run --dry-run prints the plan and writes nothing', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'plan.json');
  const config = {
    name: 'planned',
    data: { path: resolve(BREASTMNIST), classNames: ['malignant', 'benign'] },
    augment: { viewsPerImage: 3, transforms: { rotation: 10, fill: 'reflect' } },
    synth: { perClass: 7, gan: { epochs: 5 } },
    train: { backbone: resolve(MOBILENET), inputSize: 32, seeds: [0, 1], mixes: ['real', 'real+augmented', 'synthetic'] },
  };
  await writeFile(configPath, JSON.stringify(config));

  const result = runCli(['run', configPath, '--dry-run']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /real images: train 546, val 78, test 156/);
  assert.match(result.stdout, /augment: 3 views of each of 546 train images \(rotation\)/);
  assert.match(result.stdout, /synth: GAN on 546 train images for 5 epochs/);
  assert.match(result.stdout, /6 heads \(3 mixes x 2 seeds/);
  assert.match(result.stdout, /\n {2}real +546 +0 +0 +546\n/);
  assert.match(result.stdout, /\n {2}real\+augmented +546 +1638 +0 +2184\n/);
  assert.match(result.stdout, /\n {2}synthetic +0 +0 +14 +14\n/);
  assert.ok(result.stdout.includes(join(dir, 'runs', 'planned', 'report.html')), 'lists the outputs');
  assert.doesNotMatch(result.stdout, /test-time flips/);
  assert.deepEqual(await readdir(dir), ['plan.json'], 'nothing written beside the config');

  await writeFile(configPath, JSON.stringify({ ...config, augment: { viewsPerImage: 1 }, train: { ...config.train, trainOnValidation: true, testTimeFlip: true, head: { epochs: 10 } } }));
  const onValidation = runCli(['run', configPath, '--dry-run']);
  assert.equal(onValidation.status, 0, onValidation.stderr);
  assert.match(onValidation.stdout, /augment: 1 view of each of 546 train images/);
  assert.match(onValidation.stdout, /10 epochs each on its mix plus the 78 val images \(mixes with real images\), no early stopping/);
  assert.match(onValidation.stdout, /\n {2}real\+augmented +624 +546 +0 +1170\n/);
  assert.match(onValidation.stdout, /test scores on the 156 test images, each averaged with its mirror \(test-time flips\), as are the val scores/);
  assert.match(onValidation.stdout, /backbone features of every image at 32 px, and of the mirrors of the 234 val and test images/);
  assert.match(onValidation.stdout, /\n {2}synthetic +0 +0 +14 +14\n/);
  assert.doesNotMatch(onValidation.stdout, /unfreezing/, 'feature extraction unfreezes nothing');

  await writeFile(configPath, JSON.stringify({ ...config, train: { ...config.train, strategy: 'fine-tune', fineTune: { layerPrefixes: ['block_16_'] } } }));
  const fineTuning = runCli(['run', configPath, '--dry-run']);
  assert.equal(fineTuning.status, 0, fineTuning.stderr);
  assert.match(fineTuning.stdout, /fine-tune\), unfreezing 8 backbone layers from block_16_expand to block_16_project_BN, /);
});

test('run --dry-run counts the rows of a shard folder', async () => {
  const dir = await temporaryFolder();
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const real = recordsOfSplit(dataset, 'train').slice(0, 12);
  const synthetic = real.slice(0, 5).map((record) => ({ ...record, origin: 'synthetic' as const, sourceIndex: null }));
  const folder = join(dir, 'extra');
  await mkdir(folder);
  // One shard of 12 real rows, one of 5 synthetic rows.
  const shards = await writeRecordsAsShards([...real, ...synthetic], { directory: folder, classNames: dataset.classNames, rowsPerShard: 12 });
  await writeManifest(folder, buildManifest(dataset.classNames, shards, {}));
  const configPath = join(dir, 'plan.json');
  const mixes = [{ name: 'folder', sources: [{ from: folder }] }, { name: 'counted', sources: [{ from: 'real' }, { from: folder, count: 4 }] }];
  await writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, synth: { enabled: false }, augment: { enabled: false }, train: { backbone: resolve(MOBILENET), inputSize: 32, mixes } }));

  const result = runCli(['run', configPath, '--dry-run']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /\n {2}folder +12 +0 +5 +17\n/);
  assert.match(result.stdout, /\n {2}counted +546 +0 +0 +550\n/);
});

test('run --dry-run checks like a run', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'c.json');
  await writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, synth: { gan: { batchSize: 0 } } }));
  const badSetting = runCli(['run', configPath, '--dry-run']);
  assert.equal(badSetting.status, 2);
  assert.match(badSetting.stderr, /Invalid config field 'synth\.gan'/);

  await writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, train: { backbone: resolve(MOBILENET) } }));
  await mkdir(join(dir, 'runs', 'run'), { recursive: true });
  const earlierConfig = JSON.stringify({ data: {}, augment: {}, synth: {}, train: {} });
  await writeFile(join(dir, 'runs', 'run', 'config.json'), earlierConfig);
  const unfinished = runCli(['run', configPath, '--dry-run']);
  assert.equal(unfinished.status, 2);
  assert.match(unfinished.stderr, /contains an unfinished run \(it has no metrics\.json\), and a run does not resume\. Pass --force to start it again/);
  await writeFile(join(dir, 'runs', 'run', 'metrics.json'), '{}');
  const existing = runCli(['run', configPath, '--dry-run']);
  assert.equal(existing.status, 2);
  assert.match(existing.stderr, /already contains a run/);
  const forced = runCli(['run', configPath, '--dry-run', '--force']);
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stdout, /replaces the earlier run there/);
  assert.equal(await readFile(join(dir, 'runs', 'run', 'config.json'), 'utf8'), earlierConfig, 'the earlier run is kept');
});

test('run names the feature layer or runtime at fault and writes nothing', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'c.json');
  const write = (train: object) => writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, synth: { enabled: false }, augment: { enabled: false }, train: { mixes: ['real'], ...train } }));

  await write({ backbone: resolve(MOBILENET), featureLayer: ['block_6_expand_relu', 'nope'] });
  const missing = runCli(['run', configPath]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /Invalid config field 'train\.featureLayer' \(\["block_6_expand_relu","nope"\]\): .* has no layer named 'nope'/);

  // A backbone with a layer the ONNX exporter does not translate.
  const tf = createRequire(resolve('packages/train/package.json'))('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
  const input = tf.input({ shape: [32, 32, 3] });
  const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(tf.layers.conv2d({ filters: 4, kernelSize: 3 }).apply(input)) as import('@tensorflow/tfjs').SymbolicTensor;
  // Saves a model as a TF.js layers folder without tfjs's file:// handler, which needs tfjs-node.
  const saveFolder = async (model: import('@tensorflow/tfjs').LayersModel, folder: string) => {
    await mkdir(folder);
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const manifest = [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }];
        await writeFile(join(folder, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: artifacts.modelTopology, weightsManifest: manifest }));
        await writeFile(join(folder, 'weights.bin'), new Uint8Array(artifacts.weightData as ArrayBuffer));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
  };
  const backbone = join(dir, 'pooling-backbone');
  await saveFolder(tf.model({ inputs: input, outputs: pooled }), backbone);
  await write({ backbone, inputSize: 32, runtime: 'onnxruntime' });
  const required = runCli(['run', configPath]);
  assert.equal(required.status, 2);
  assert.match(required.stderr, /Invalid config field 'train\.runtime' \(onnxruntime\): .*does not translate layer .*MaxPooling2D.*runtime 'auto' or 'tfjs'/);
  const dryRun = runCli(['run', configPath, '--dry-run']);
  assert.equal(dryRun.status, 2);
  assert.match(dryRun.stderr, /Invalid config field 'train\.runtime'/);

  // A tail that onnxruntime can run forward but not differentiate (elu).
  const stemInput = tf.input({ shape: [32, 32, 3] });
  const stem = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, activation: 'relu', name: 'stem' }).apply(stemInput) as import('@tensorflow/tfjs').SymbolicTensor;
  const last = tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'elu', name: 'last_conv' }).apply(stem) as import('@tensorflow/tfjs').SymbolicTensor;
  const eluBackbone = join(dir, 'elu-backbone');
  await saveFolder(tf.model({ inputs: stemInput, outputs: last }), eluBackbone);
  await write({ backbone: eluBackbone, inputSize: 32, runtime: 'onnxruntime', strategy: 'fine-tune', fineTune: { lastBlocks: 1 } });
  const untrainable = runCli(['run', configPath, '--dry-run']);
  assert.equal(untrainable.status, 2);
  assert.match(untrainable.stderr, /Invalid config field 'train\.runtime' \(onnxruntime\): .*activation 'elu' of layer last_conv in a training step/);
  await write({ backbone: eluBackbone, inputSize: 32, runtime: 'auto', strategy: 'fine-tune', fineTune: { lastBlocks: 1 } });
  const fallback = runCli(['run', configPath, '--dry-run']);
  assert.equal(fallback.status, 0, fallback.stderr);
  assert.equal(await exists(join(dir, 'runs')), false, 'nothing was written');
});

test('run --dry-run --json prints one plan', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'plan.json');
  await writeFile(configPath, JSON.stringify({ data: { path: resolve(BREASTMNIST) }, train: { backbone: resolve(MOBILENET), mixes: ['real'] } }));

  const result = runCli(['run', configPath, '--dry-run', '--json']);
  assert.equal(result.status, 0, result.stderr);
  const events = result.stdout.trimEnd().split('\n').map((line) => JSON.parse(line));
  const plans = events.filter((event) => event.event === 'plan');
  assert.equal(plans.length, 1);
  assert.deepEqual(plans[0].plan.mixes, [{ mix: 'real', rows: { real: 546, augmented: 0, synthetic: 0, total: 546 } }]);
  assert.equal(plans[0].plan.runDir, join(dir, 'runs', 'run'));
  assert.equal(await exists(join(dir, 'runs')), false);
});

test('json errors go to stdout too', async () => {
  const dir = await temporaryFolder();
  const configPath = join(dir, 'bad.json');
  await writeFile(configPath, JSON.stringify({ data: { path: 'x.npz' }, backend: 'gpu' }));

  const result = runCli(['run', configPath, '--json']);
  assert.equal(result.status, 2);
  const error = JSON.parse(result.stdout.trim());
  assert.equal(error.event, 'error');
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /backend: expected one of/);
  assert.match(result.stderr, /^scarce: Invalid config/);
});

test('image folder example passes a dry run', () => {
  const result = runCli(['run', 'examples/image-folder.json', '--dry-run', '--force']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /classes: circle, square; images 32x32, 1 channel/);
  assert.match(result.stdout, /real images: train 24, val 8, test 8/);
});

test('exit codes split input and failure', async () => {
  const dir = await temporaryFolder();
  const missing = runCli(['report', join(dir, 'no-run')]);
  assert.equal(missing.status, 2, 'a folder without metrics.json is bad input');
  assert.match(missing.stderr, /Cannot read .*metrics\.json \(ENOENT\)/);

  const badFlag = runCli(['run', 'x.json', '--no-such-flag']);
  assert.equal(badFlag.status, 2, 'an unknown flag is bad input');

  // Metrics that pass the shape check but break the renderer stand for a failure of scarce itself.
  await writeFile(join(dir, 'metrics.json'), JSON.stringify({ mixes: [{ mix: 'real' }], config: {} }));
  const broken = runCli(['report', dir]);
  assert.equal(broken.status, 1, broken.stderr);
  assert.match(broken.stderr, /^scarce: TypeError/);
});

test('train names the invalid flag', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--epochs', '0'], /^scarce: Invalid --epochs: expected a number > 0 but received 0\.$/m],
    [['--input-size', '10'], /^scarce: Invalid --input-size: expected a number >= 32 but received 10\.$/m],
    [['--learning-rate', '0'], /^scarce: Invalid --learning-rate: expected a number > 0 but received 0\.$/m],
    [['--monitor', 'foo'], /^scarce: Invalid --monitor: expected one of "loss", "val_loss", "val_accuracy", "val_auc" but received "foo"\.$/m],
    [['--mixup', '-1'], /^scarce: Invalid --mixup: expected a number >= 0 but received -1\.$/m],
    [['--label-smoothing', '1'], /^scarce: Invalid --label-smoothing: expected a number < 1 but received 1\.$/m],
    [['--train-on-validation', '--patience', '2'], /--patience and --monitor have no effect\. Leave them out, or drop --train-on-validation\./],
  ];
  for (const [flags, message] of cases) {
    const result = runCli(['train', 'fixtures/breastmnist/breastmnist.npz', ...flags]);
    assert.equal(result.status, 2, `${flags.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /ZodError|\n\s+at /, `${flags.join(' ')}: no raw error`);
  }
});

test('predict checks its paths first', async () => {
  const dir = await temporaryFolder();
  await writeFile(join(dir, 'scan.png'), 'not read');
  const cases: Array<[string[], RegExp]> = [
    [[join(dir, 'missing')], /Image folder .*missing not found\. Give the folder of images to predict\./],
    [[join(dir, 'scan.png')], /scan\.png is a file, not a folder\. Give the folder that contains it/],
    [[dir, '--out', dir], /--out .* is a folder\. Give a CSV file path, e\.g\. --out .*predictions\.csv\./],
  ];
  for (const [args, message] of cases) {
    const result = runCli(['predict', 'no/such/model', ...args]);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  assert.deepEqual(await readdir(dir), ['scan.png'], 'nothing written');
});

test('synth --force keeps augment folders', async () => {
  const dir = await temporaryFolder();
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ config: { stage: 'augment' } }));
  await writeFile(join(dir, 'augment-journal.jsonl'), '{}\n');
  const result = runCli(['synth', 'fixtures/breastmnist/breastmnist.npz', '--out', dir, '--force', '--seconds', '1']);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /contains the shards of scarce augment, and --force replaces only synth outputs\. Choose another --out\./);
  assert.deepEqual((await readdir(dir)).sort(), ['augment-journal.jsonl', 'manifest.json']);
});

test('integer flags take decimal digits only', () => {
  for (const value of ['', '0x0c', '1e1', '-1', '2.5']) {
    const result = runCli(['augment', 'fixtures/shapes', '--out', 'unused', '--compression-level', value]);
    assert.equal(result.status, 2, `'${value}' is bad input`);
    assert.match(result.stderr, /expected a non-negative integer but received/, `'${value}' is named`);
  }
});

test('augment config rejects unknown fields', async () => {
  const dir = await temporaryFolder();
  const config = join(dir, 'augment.yaml');
  await writeFile(config, 'viewsPerImag: 2\ntransforms:\n  rotation: 10\n');
  const result = runCli(['augment', 'fixtures/shapes', '--out', join(dir, 'out'), '--config', config]);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /unknown field 'viewsPerImag'\. Allowed: transforms, viewsPerImage, seed\. Did you mean 'viewsPerImage'\?/);
  assert.equal(await exists(join(dir, 'out')), false, 'nothing written');
});

test('augment rejects output inside data', async () => {
  const dir = await temporaryFolder();
  const inside = runCli(['augment', 'fixtures/shapes', '--out', 'fixtures/shapes/augmented']);
  assert.equal(inside.status, 2);
  assert.match(inside.stderr, /is inside the data folder fixtures\/shapes/);
  assert.equal(await exists('fixtures/shapes/augmented'), false, 'nothing written inside the data');
  const file = join(dir, 'taken');
  await writeFile(file, 'x');
  const onFile = runCli(['augment', 'fixtures/shapes', '--out', file, '--size', '32x32']);
  assert.equal(onFile.status, 2, onFile.stderr);
  assert.match(onFile.stderr, /taken is a file, not a folder/);
});

test('augment --json ends with done', async () => {
  const dir = await temporaryFolder();
  const result = runCli(['augment', 'fixtures/shapes', '--out', join(dir, 'out'), '--size', '24x24', '--views', '1', '--workers', '1', '--json']);
  assert.equal(result.status, 0, result.stderr);
  const last = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { event: string; rows: number; shards: string[] };
  assert.equal(last.event, 'done');
  assert.equal(last.rows, 40);
  assert.deepEqual(last.shards, ['augmented-00000.arrow']);
});

test('fill value needs constant fill', () => {
  const result = runCli(['augment', 'fixtures/shapes', '--out', 'unused', '--fill', 'reflect', '--fill-value', '128']);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--fill-value applies to --fill constant only, but --fill is reflect/);
});
