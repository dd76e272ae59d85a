/**
 * Measures whether the GAN's synthetic images are useful, over several GAN seeds:
 *
 * - BreastMNIST: per seed, trains the GAN with `runSynth` (checkpoints chosen on the train and
 *   validation splits only) and reads the test split for the chosen checkpoint's
 *   train-on-synthetic test-on-real (TSTR) scores. Then trains the classifier of a run config
 *   (default examples/breastmnist.json) on real, real + synthetic and synthetic train rows, as
 *   `scarce run` does, and measures each on the test split. When the config augments, it also trains
 *   real + augmented and all three, with views drawn with the GAN seed as the run seed.
 * - MNIST test split (fixtures/mnist_t10k): per seed, holds out a stratified validation share
 *   and trains the GAN on the rest. It reports the class consistency of the chosen checkpoint's
 *   samples twice: by the classifier of the synth quality metrics and by a classifier on the
 *   pixels of all real train digits. Each classifier's accuracy on the real validation digits
 *   is reported beside it.
 *
 *   node --import tsx scripts/evaluate-synth.ts [--seeds 0,1,2] [--time-budget 300]
 *     [--mnist-time-budget S] [--per-class 500] [--min-confidence P] [--out runs/evaluate-synth] [--parts breastmnist,mnist]
 *     [--checkpoint-every N] [--mnist-checkpoint-every 1] [--select-by frechetDistance]
 *     [--mnist-val 0.1] [--config examples/breastmnist.json] [--backend auto] [--force]
 *
 * The time budget, synthetic images per class and GAN settings default to the config's `synth`
 * fields, and so does --checkpoint-every for BreastMNIST (else the GAN's default). With the
 * defaults one MNIST epoch is 281 steps of 32 images, so MNIST checkpoints every epoch by default.
 *
 * Results go to --out as results.md and results.json, rewritten after every seed. Each finished
 * seed also leaves result.json in its folder, which a rerun with the same settings keeps. A GAN
 * stopped part-way resumes from its last checkpoint. --force starts every seed again.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  InputError,
  loadDataset,
  parseBackendChoice,
  readShardFolder,
  recordsOfSplit,
  selectBackend,
  writeFileAtomic,
  type ImageRecord,
} from '@scarce/core';
import {
  CHECKPOINT_SCORES,
  CHECKPOINTS_FOLDER,
  disposeQuality,
  listCheckpoints,
  pixelFeatures,
  prepareQuality,
  resolveSynthConfig,
  runSynth,
  variedPixels,
  type CheckpointScore,
  type QualitySummary,
  type SynthConfig,
} from '@scarce/synth';
import {
  evaluateProbabilities,
  loadBackbone,
  trainHead,
  type Backbone,
  type FeatureSet,
} from '@scarce/train';
import { augmentToShards, type TransformOptions } from '@scarce/augment';
import { benchmarkMixes, evaluationMirrors, meanAndStd, syntheticLabelConfidence } from '../packages/cli/src/benchmark.js';
import { describeInputSizes, loadRunConfig, type RunConfig } from '../packages/cli/src/config.js';
import { featuresByRecord, loadRunBackbone, loadRunData } from '../packages/cli/src/pipeline.js';
import { exitOnInputError } from './exit-on-input-error.js';

exitOnInputError('Run with --help for the options.');

const MNIST_FOLDER = 'fixtures/mnist_t10k';
/** Synthetic MNIST images per class in the shards, which the pixel classifier labels. */
const MNIST_SHARD_PER_CLASS = 100;
/** Backbone input side of the quality metrics, as `scarce run` sets it. */
const QUALITY_INPUT_SIZE = 64;
const RESULT_FILE = 'result.json';
/** Version of the fields in result.json. A stored result of another version is rejected until --force measures it again. */
const RESULT_VERSION = 2;
const { values: flags } = parseArgs({
  options: {
    seeds: { type: 'string', default: '0,1,2' },
    'time-budget': { type: 'string' },
    'mnist-time-budget': { type: 'string' },
    'per-class': { type: 'string' },
    'min-confidence': { type: 'string' },
    'checkpoint-every': { type: 'string' },
    'mnist-checkpoint-every': { type: 'string', default: '1' },
    'select-by': { type: 'string', default: 'frechetDistance' },
    'mnist-val': { type: 'string', default: '0.1' },
    config: { type: 'string', default: 'examples/breastmnist.json' },
    parts: { type: 'string', default: 'breastmnist,mnist' },
    out: { type: 'string', default: 'runs/evaluate-synth' },
    backend: { type: 'string' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  log(
    [
      'Usage: node --import tsx scripts/evaluate-synth.ts [options]',
      '',
      '  --seeds 0,1,2                 GAN seeds; each BreastMNIST head uses its GAN seed',
      '  --time-budget S               GAN training seconds per seed (default: the config, 300 in examples/breastmnist.json)',
      '  --mnist-time-budget S         the same for MNIST (default: --time-budget)',
      '  --per-class N                 synthetic BreastMNIST images per class (default: the config\'s synth.perClass)',
      '  --min-confidence P            leave out synthetic BreastMNIST images whose own class a head of the real train images gives a lower probability (default: the config\'s synth.minConfidence)',
      '  --checkpoint-every N          BreastMNIST epochs between measured checkpoints (default: synth.gan of the config, else 10)',
      '  --mnist-checkpoint-every N    MNIST epochs between measured checkpoints (default 1)',
      `  --select-by SCORE             checkpoint to sample from: ${CHECKPOINT_SCORES.join(', ')} (default frechetDistance)`,
      '  --mnist-val F                 stratified share of MNIST held out for validation (default 0.1)',
      '  --config FILE                 run config with the data, GAN and classifier settings (default examples/breastmnist.json)',
      '  --parts breastmnist,mnist     parts to run',
      '  --out DIR                     output folder (default runs/evaluate-synth)',
      '  --backend NAME                tfjs backend: auto, node-gpu, node, wasm or cpu',
      '  --force                       measure every seed again instead of keeping finished ones',
    ].join('\n'),
  );
  process.exit(0);
}

function integerFlag(name: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum) throw new InputError(`Invalid --${name} '${text}': expected an integer of at least ${minimum}.`);
  return value;
}

function listFlag<T extends string>(name: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(',').map((item) => item.trim()) as T[];
  const invalid = items.find((item) => !allowed.includes(item));
  if (invalid !== undefined) throw new InputError(`Invalid --${name} '${text}': '${invalid}' is not one of ${allowed.join(', ')}.`);
  return items;
}

function choiceFlag<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!allowed.includes(text as T)) throw new InputError(`Invalid --${name} '${text}': expected one of ${allowed.join(', ')}.`);
  return text as T;
}

/** Formats the mean ± sample standard deviation with `digits` decimals (3 by default), or the single value of one seed. */
function formatScore(values: readonly number[], digits = 3): string {
  if (values.length === 0) return '-';
  const { mean, std } = meanAndStd(values);
  return values.length === 1 ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${std.toFixed(digits)}`;
}

function seconds(startedAt: number): number {
  return Number(((performance.now() - startedAt) / 1000).toFixed(1));
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Returns a seed's stored result when it was measured with the same settings, else null. */
async function readStoredResult<T extends { settings: unknown }>(directory: string, settings: unknown): Promise<T | null> {
  if (flags.force) return null;
  const text = await readFile(join(directory, RESULT_FILE), 'utf8').catch(() => null);
  if (text === null) return null;
  const stored = JSON.parse(text) as T;
  if (JSON.stringify(stored.settings) !== JSON.stringify(settings)) {
    throw new InputError(`${join(directory, RESULT_FILE)} was measured with other settings. Pass --force to measure again, or choose another --out.`);
  }
  return stored;
}

/** Training length of a seed's GAN and the checkpoint it sampled from. */
interface GanSummary {
  epochsCompleted: number;
  steps: number;
  stoppedBy: string;
  selectedBy: string;
  selectedEpoch: number;
  checkpoints: number;
}

/**
 * Runs the GAN of one seed, resuming from the folder's checkpoints when an earlier run stopped
 * part-way, and frees it once the shards are written.
 */
async function trainSeedGan(
  data: Parameters<typeof runSynth>[0],
  classNames: string[],
  config: Partial<SynthConfig>,
  directory: string,
  perClass: number,
  qualityBackbone: Backbone,
): Promise<{ gan: GanSummary; quality: QualitySummary; seconds: number }> {
  const startedAt = performance.now();
  const resume = !flags.force && (await listCheckpoints(join(directory, CHECKPOINTS_FOLDER))).length > 0;
  if (resume) log(`  resuming the GAN from the checkpoints in ${directory}`);
  const { trained, quality } = await runSynth(data, classNames, config, {
    directory,
    perClass,
    seed: config.seed,
    resume,
    overwrite: !resume,
    quality: { backbone: qualityBackbone, inputSize: QUALITY_INPUT_SIZE, seed: config.seed },
    log: (line) => log(`  ${line}`),
    progress: false,
  });
  trained.dispose();
  if (quality === null) throw new Error(`The GAN in ${directory} has no quality record, although its data has a validation split.`);

  const gan: GanSummary = {
    epochsCompleted: trained.epochsCompleted,
    steps: trained.steps,
    stoppedBy: trained.stoppedBy,
    selectedBy: quality.selectedBy,
    selectedEpoch: quality.selectedEpoch,
    checkpoints: quality.checkpoints.length,
  };
  return { gan, quality, seconds: seconds(startedAt) };
}

const seeds = flags.seeds.split(',').map((text) => integerFlag('seeds', text, 0));
const parts = listFlag('parts', flags.parts, ['breastmnist', 'mnist'] as const);
const selectBy: CheckpointScore = choiceFlag('select-by', flags['select-by'], CHECKPOINT_SCORES);
const runConfig: RunConfig = await loadRunConfig(flags.config);
if (runConfig.train.strategy !== 'feature-extraction') {
  throw new InputError(`${flags.config} sets train.strategy '${runConfig.train.strategy}'; this script trains heads on frozen features only. Give a config with feature-extraction.`);
}
const ganBase = runConfig.synth.gan as Partial<SynthConfig>;
const configuredBudget = resolveSynthConfig(ganBase).timeBudgetSeconds;
if (flags['time-budget'] === undefined && configuredBudget === null) {
  throw new InputError(`${flags.config} sets no GAN time budget (synth.gan.timeBudgetSeconds is null). Pass --time-budget in seconds.`);
}
const timeBudget = flags['time-budget'] === undefined ? configuredBudget! : integerFlag('time-budget', flags['time-budget'], 1);
const mnistTimeBudget = flags['mnist-time-budget'] === undefined ? timeBudget : integerFlag('mnist-time-budget', flags['mnist-time-budget'], 1);
const perClass = flags['per-class'] === undefined ? runConfig.synth.perClass : integerFlag('per-class', flags['per-class'], 1);
const minConfidenceText = flags['min-confidence'];
const minConfidence = minConfidenceText === undefined ? runConfig.synth.minConfidence : Number(minConfidenceText);
if (minConfidenceText?.trim() === '' || !(minConfidence >= 0 && minConfidence < 1)) throw new InputError(`Invalid --min-confidence '${flags['min-confidence']}': expected a probability in [0, 1).`);
const checkpointEvery = flags['checkpoint-every'] === undefined ? undefined : integerFlag('checkpoint-every', flags['checkpoint-every'], 1);
const mnistCheckpointEvery = integerFlag('mnist-checkpoint-every', flags['mnist-checkpoint-every'], 1);
const mnistValidationShare = Number(flags['mnist-val']);
if (!(mnistValidationShare > 0 && mnistValidationShare < 1)) throw new InputError(`Invalid --mnist-val '${flags['mnist-val']}': expected a share between 0 and 1.`);

const startedAt = performance.now();
const selection = await selectBackend({ backend: parseBackendChoice(flags.backend, '--backend'), log });
const qualityBackbone = await loadBackbone(runConfig.train.backbone, { inputSize: QUALITY_INPUT_SIZE });

// ---------------------------------------------------------------- BreastMNIST

/** One mix's classifier scores on the real test split. */
interface TestScores {
  accuracy: number;
  auc: number;
}

interface BreastSeedResult {
  seed: number;
  settings: unknown;
  gan: GanSummary;
  /** TSTR of the quality module: a small head trained on the chosen checkpoint's samples, at 64 px. */
  tstrQuality: { validation: TestScores; test: TestScores };
  frechetDistance: number;
  classConsistency: number;
  /**
   * Test scores of the run config's classifier per mix, with the GAN seed as head seed. Real +
   * augmented and all three are present when the config augments.
   */
  classifiers: Record<'real' | 'real+synthetic' | 'synthetic', TestScores> & Partial<Record<'real+augmented' | 'real+augmented+synthetic', TestScores>>;
  /** Synthetic images sampled, and those the classifiers trained on after --min-confidence. */
  synthetic: { sampled: number; kept: number };
  seconds: { gan: number; features: number; heads: number; total: number };
}

async function measureBreastSeed(seed: number, backbones: Backbone[]): Promise<BreastSeedResult> {
  const directory = join(flags.out, 'breastmnist', `seed-${seed}`);
  const ganConfig: Partial<SynthConfig> = { ...ganBase, seed, timeBudgetSeconds: timeBudget, selectCheckpointBy: selectBy, ...(checkpointEvery === undefined ? {} : { checkpointEvery }) };
  const settings = { version: RESULT_VERSION, ganConfig, perClass, minConfidence, train: runConfig.train, data: runConfig.data };
  const stored = await readStoredResult<BreastSeedResult>(directory, settings);
  if (stored !== null) {
    log(`BreastMNIST seed ${seed}: kept the result in ${directory}`);
    return stored;
  }

  const seedStartedAt = performance.now();
  const dataset = await loadRunData(runConfig);
  const real = { train: recordsOfSplit(dataset, 'train'), val: recordsOfSplit(dataset, 'val'), test: recordsOfSplit(dataset, 'test') };
  log(`BreastMNIST seed ${seed}: GAN for ${timeBudget} s on ${real.train.length} train images`);
  const { gan, quality, seconds: ganSeconds } = await trainSeedGan(
    { train: real.train, validation: real.val, test: real.test },
    dataset.classNames,
    ganConfig,
    join(directory, 'synthetic'),
    perClass,
    qualityBackbone,
  );
  const tstrTest = quality.final.tstr.test;
  if (tstrTest === undefined) throw new Error(`The chosen GAN checkpoint of seed ${seed} has no TSTR test scores, although ${runConfig.data.path} has a test split.`);

  // The augmented views of the train split, as scarce run writes them with this seed as the run seed.
  let augmented: ImageRecord[] = [];
  if (runConfig.augment.enabled && runConfig.augment.viewsPerImage > 0) {
    const outDir = join(directory, 'augmented');
    await augmentToShards(dataset, {
      outDir,
      viewsPerImage: runConfig.augment.viewsPerImage,
      seed,
      transforms: runConfig.augment.transforms as TransformOptions,
      config: runConfig.augment,
      // --force measures again, so views of other transforms left in the folder are replaced.
      overwrite: flags.force,
      progress: { quiet: true },
      log: () => {},
    });
    augmented = (await readShardFolder(outDir)).records;
  }

  const featuresStartedAt = performance.now();
  const sampled = (await readShardFolder(join(directory, 'synthetic'))).records;
  // With test-time flips, the val and test images are scored with their mirrors, which need features too.
  const mirrors = runConfig.train.testTimeFlip ? evaluationMirrors({ val: real.val, test: real.test }) : undefined;
  const records: ImageRecord[] = [...real.train, ...real.val, ...real.test, ...sampled, ...augmented, ...(mirrors?.values() ?? [])];
  const { features, widths, featureSize: size } = await featuresByRecord(backbones, records, runConfig.train, (line) => log(`  ${line}`), true);
  const featureSeconds = seconds(featuresStartedAt);
  log(`  features of ${records.length} images at ${describeInputSizes(runConfig.train)} in ${featureSeconds} s`);

  const headsStartedAt = performance.now();
  let synthetic = sampled;
  if (minConfidence > 0) {
    const confidence = await syntheticLabelConfidence(sampled, real, features, size, dataset.classNames.length, runConfig.train, seed, widths);
    synthetic = sampled.filter((_, i) => confidence[i] >= minConfidence);
    if (synthetic.length === 0) {
      throw new InputError(`--min-confidence ${minConfidence} left none of the ${sampled.length} synthetic images of GAN seed ${seed} in ${join(directory, 'synthetic')}. Pass a lower --min-confidence.`);
    }
    log(`  kept ${synthetic.length} of ${sampled.length} synthetic images at min confidence ${minConfidence}`);
  }
  const mixes = await benchmarkMixes({
    mixes: [
      { name: 'real', rows: real.train },
      { name: 'real+synthetic', rows: [...real.train, ...synthetic] },
      { name: 'synthetic', rows: synthetic },
      ...(augmented.length === 0
        ? []
        : [
            { name: 'real+augmented', rows: [...real.train, ...augmented] },
            { name: 'real+augmented+synthetic', rows: [...real.train, ...augmented, ...synthetic] },
          ]),
    ],
    evaluation: { val: real.val, test: real.test },
    features,
    featureSize: size,
    featureWidths: widths,
    featureLabels: backbones.map((backbone) => `${backbone.inputSize} px`),
    numClasses: dataset.classNames.length,
    settings: { ...runConfig.train, seeds: [seed] },
    mirrors,
    log: (line) => log(`  ${line}`),
  });
  const scoresOf = (name: string): TestScores => {
    const mix = mixes.find((result) => result.mix === name)!;
    return { accuracy: mix.seeds[0].test.accuracy, auc: mix.seeds[0].test.auc };
  };

  return {
    seed,
    settings,
    gan,
    tstrQuality: { validation: quality.final.tstr.validation, test: tstrTest },
    frechetDistance: quality.final.frechetDistance,
    classConsistency: quality.final.classConsistency.accuracy,
    classifiers: {
      real: scoresOf('real'),
      'real+synthetic': scoresOf('real+synthetic'),
      synthetic: scoresOf('synthetic'),
      ...(augmented.length === 0 ? {} : { 'real+augmented': scoresOf('real+augmented'), 'real+augmented+synthetic': scoresOf('real+augmented+synthetic') }),
    },
    synthetic: { sampled: sampled.length, kept: synthetic.length },
    seconds: { gan: ganSeconds, features: featureSeconds, heads: seconds(headsStartedAt), total: seconds(seedStartedAt) },
  };
}

// ---------------------------------------------------------------- MNIST

interface MnistSeedResult {
  seed: number;
  settings: unknown;
  gan: GanSummary;
  classConsistency: number;
  classConsistencyPerClass: Array<{ className: string; accuracy: number }>;
  /** The best class consistency among the checkpoints, for comparison with the chosen one. */
  bestCheckpointClassConsistency: { epoch: number; accuracy: number };
  /** Accuracy on the real validation images of the classifier that labels the samples, as a reference for class consistency. */
  consistencyClassifierValidationAccuracy: number;
  /** Class consistency by a pixel classifier trained on all real train digits, with its own validation accuracy. */
  pixelClassifier: { classConsistency: number; validationAccuracy: number; pixels: number; samples: number };
  seconds: { gan: number; classifierCheck: number; pixelClassifier: number; total: number };
}

/**
 * Trains a classifier on the real train digits' pixels, stopped early on the validation split,
 * and measures its accuracy on the validation digits and at labelling the synthetic ones.
 */
async function measureWithPixelClassifier(splits: { train: ImageRecord[]; validation: ImageRecord[] }, synthetic: readonly ImageRecord[], numClasses: number, seed: number): Promise<MnistSeedResult['pixelClassifier']> {
  const columns = variedPixels(splits.train);
  // Batches of 128 keep the 9,000-row epochs short; the other settings are trainHead's defaults.
  const training = await trainHead(pixelFeatures(splits.train, columns), pixelFeatures(splits.validation, columns), numClasses, { units: 256, batchSize: 128, seed });
  const validation = pixelFeatures(splits.validation, columns);
  const samples = pixelFeatures(synthetic, columns);
  const validationAccuracy = evaluateProbabilities(training.head.predict(validation.features), validation.labels, numClasses).accuracy;
  const classConsistency = evaluateProbabilities(training.head.predict(samples.features), samples.labels, numClasses).accuracy;
  training.head.dispose();
  log(`  pixel classifier on ${columns.length} pixels: ${training.summary}; validation accuracy ${validationAccuracy.toFixed(3)}, class consistency ${classConsistency.toFixed(3)}`);
  return { classConsistency, validationAccuracy, pixels: columns.length, samples: synthetic.length };
}

async function measureMnistSeed(seed: number): Promise<MnistSeedResult> {
  const directory = join(flags.out, 'mnist', `seed-${seed}`);
  const ganConfig: Partial<SynthConfig> = { seed, timeBudgetSeconds: mnistTimeBudget, selectCheckpointBy: selectBy, checkpointEvery: mnistCheckpointEvery };
  const settings = { version: RESULT_VERSION, ganConfig, validationShare: mnistValidationShare };
  const stored = await readStoredResult<MnistSeedResult>(directory, settings);
  if (stored !== null) {
    log(`MNIST seed ${seed}: kept the result in ${directory}`);
    return stored;
  }

  const seedStartedAt = performance.now();
  const dataset = await loadDataset(MNIST_FOLDER, { split: { val: mnistValidationShare, test: 0 }, seed });
  const splits = { train: recordsOfSplit(dataset, 'train'), validation: recordsOfSplit(dataset, 'val') };
  log(`MNIST seed ${seed}: GAN for ${mnistTimeBudget} s on ${splits.train.length} train images, ${splits.validation.length} held out for validation`);
  const { gan, quality, seconds: ganSeconds } = await trainSeedGan(splits, dataset.classNames, ganConfig, join(directory, 'synthetic'), MNIST_SHARD_PER_CLASS, qualityBackbone);

  // runSynth frees its consistency classifier, so retrain it here with the same splits, settings and seed to score it on real images.
  const checkStartedAt = performance.now();
  const context = await prepareQuality(splits, dataset.classNames, { backbone: qualityBackbone, inputSize: QUALITY_INPUT_SIZE, seed });
  const ceiling = context.consistencyClassifier.validationAccuracy;
  disposeQuality(context);
  const checkSeconds = seconds(checkStartedAt);

  const pixelStartedAt = performance.now();
  const synthetic = (await readShardFolder(join(directory, 'synthetic'))).records;
  const pixelClassifier = await measureWithPixelClassifier(splits, synthetic, dataset.classNames.length, seed);

  const best = quality.checkpoints.reduce((top, record) => (record.classConsistency.accuracy > top.classConsistency.accuracy ? record : top), quality.checkpoints[0] ?? quality.final);

  return {
    seed,
    settings,
    gan,
    classConsistency: quality.final.classConsistency.accuracy,
    classConsistencyPerClass: quality.final.classConsistency.perClass,
    bestCheckpointClassConsistency: { epoch: best.epoch, accuracy: best.classConsistency.accuracy },
    consistencyClassifierValidationAccuracy: ceiling,
    pixelClassifier,
    seconds: { gan: ganSeconds, classifierCheck: checkSeconds, pixelClassifier: seconds(pixelStartedAt), total: seconds(seedStartedAt) },
  };
}

// ---------------------------------------------------------------- report

/** Returns a table row of one measure: its name, mean ± std over the seeds, each seed's value and the target. */
function scoreRow<T>(results: readonly T[], name: string, target: string, pick: (result: T) => number): string {
  const values = results.map(pick);
  return `| ${name} | ${formatScore(values)} | ${values.map((value) => value.toFixed(3)).join(', ')} | ${target} |`;
}

function breastTable(results: readonly BreastSeedResult[]): string[] {
  const row = (name: string, target: string, pick: (result: BreastSeedResult) => number) => scoreRow(results, name, target, pick);
  return [
    '| measure (real test split) | mean ± std | per seed | target |',
    '| --- | --- | --- | --- |',
    row('TSTR accuracy, quality head', '', (result) => result.tstrQuality.test.accuracy),
    row('TSTR AUC, quality head', '≥ 0.80', (result) => result.tstrQuality.test.auc),
    row('synthetic only: accuracy', '', (result) => result.classifiers.synthetic.accuracy),
    row('synthetic only: AUC', '≥ 0.80', (result) => result.classifiers.synthetic.auc),
    row('real only: accuracy', '', (result) => result.classifiers.real.accuracy),
    row('real only: AUC', '', (result) => result.classifiers.real.auc),
    row('real + synthetic: accuracy', '', (result) => result.classifiers['real+synthetic'].accuracy),
    row('real + synthetic: AUC', '≥ real only', (result) => result.classifiers['real+synthetic'].auc),
    row('AUC of real + synthetic minus real only', '≥ 0', (result) => result.classifiers['real+synthetic'].auc - result.classifiers.real.auc),
    ...(results.every((result) => result.classifiers['real+augmented'] !== undefined)
      ? [
            row('real + augmented: accuracy', '', (result) => result.classifiers['real+augmented']!.accuracy),
            row('real + augmented: AUC', '', (result) => result.classifiers['real+augmented']!.auc),
            row('real + augmented + synthetic: accuracy', '', (result) => result.classifiers['real+augmented+synthetic']!.accuracy),
            row('real + augmented + synthetic: AUC', '', (result) => result.classifiers['real+augmented+synthetic']!.auc),
            row('AUC of real + augmented + synthetic minus real + augmented', '', (result) => result.classifiers['real+augmented+synthetic']!.auc - result.classifiers['real+augmented']!.auc),
        ]
      : []),
    `| synthetic images the classifiers used | ${formatScore(results.map((result) => result.synthetic.kept), 0)} | ${results.map((result) => result.synthetic.kept).join(', ')} | |`,
    row('class consistency', '', (result) => result.classConsistency),
    row('Fréchet distance (64 px features)', '', (result) => result.frechetDistance),
  ];
}

function mnistTable(results: readonly MnistSeedResult[]): string[] {
  const row = (name: string, target: string, pick: (result: MnistSeedResult) => number) => scoreRow(results, name, target, pick);
  return [
    '| measure | mean ± std | per seed | target |',
    '| --- | --- | --- | --- |',
    row('class consistency, chosen checkpoint', '≥ 0.90', (result) => result.classConsistency),
    row('class consistency, best checkpoint', '', (result) => result.bestCheckpointClassConsistency.accuracy),
    row('consistency classifier on real validation images', '', (result) => result.consistencyClassifierValidationAccuracy),
    row('class consistency by the pixel classifier', '≥ 0.90', (result) => result.pixelClassifier.classConsistency),
    row('pixel classifier on real validation images', '', (result) => result.pixelClassifier.validationAccuracy),
  ];
}

function timingLines(breast: readonly BreastSeedResult[], mnist: readonly MnistSeedResult[]): string[] {
  const lines = ['| part | seed | GAN s | features s | heads s | consistency classifier s | pixel classifier s | total s |', '| --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const result of breast) lines.push(`| BreastMNIST | ${result.seed} | ${result.seconds.gan} | ${result.seconds.features} | ${result.seconds.heads} | | | ${result.seconds.total} |`);
  for (const result of mnist) {
    lines.push(`| MNIST | ${result.seed} | ${result.seconds.gan} | | | ${result.seconds.classifierCheck} | ${result.seconds.pixelClassifier} | ${result.seconds.total} |`);
  }
  return lines;
}

function ganLines(name: string, results: ReadonlyArray<BreastSeedResult | MnistSeedResult>): string[] {
  return results.map(
    (result) =>
      `- ${name} seed ${result.seed}: ${result.gan.epochsCompleted} epochs (${result.gan.steps} steps, stopped by ${result.gan.stoppedBy}), ` +
      `checkpoints measured: ${result.gan.checkpoints}, sampled from epoch ${result.gan.selectedEpoch} chosen by ${result.gan.selectedBy}`,
  );
}

async function writeResults(breast: readonly BreastSeedResult[], mnist: readonly MnistSeedResult[]): Promise<void> {
  const settings = { seeds, timeBudget, mnistTimeBudget, perClass, checkpointEvery: checkpointEvery ?? 'config default', mnistCheckpointEvery, selectBy, mnistValidationShare, config: flags.config, backend: selection.backend };
  const markdown = [
    '# Synthetic image evaluation',
    '',
    `Settings: seeds ${seeds.join(', ')}; GAN budget ${[...(parts.includes('breastmnist') ? [`${timeBudget} s (BreastMNIST)`] : []), ...(parts.includes('mnist') ? [`${mnistTimeBudget} s (MNIST)`] : [])].join(' and ')}; ${perClass} synthetic images per class${minConfidence > 0 ? ` (those below ${minConfidence} confidence left out)` : ''}; ` +
      `checkpoints chosen by ${selectBy}; classifier settings of ${flags.config}${runConfig.train.testTimeFlip ? ', whose val and test scores average each image with its mirror (test-time flips)' : ''}; backend ${selection.backend}. Elapsed ${seconds(startedAt)} s.`,
    '',
    // A part left out by --parts gets no section.
    ...(parts.includes('breastmnist')
      ? [
          `## BreastMNIST (${breast.length} of ${seeds.length} seeds)`,
          '',
          'The quality head is the small TSTR head of the synth quality metrics (64 px backbone features). The other rows use the run config\'s classifier, one head per seed with the head seed equal to the GAN seed.',
          '',
          ...(breast.length > 0 ? [...breastTable(breast), '', ...ganLines('BreastMNIST', breast)] : ['No seed finished.']),
          '',
        ]
      : []),
    ...(parts.includes('mnist')
      ? [
          `## MNIST test split (${mnist.length} of ${seeds.length} seeds)`,
          '',
          'Class consistency is the share of synthetic digits that a classifier of real digits labels as the class they were drawn for. ' +
            'The consistency classifier is the synth quality metrics\' classifier: of a head on 64 px backbone features of up to 1,000 real ' +
            'train digits and a head on the pixels of up to 10,000, the one more accurate on the validation digits. ' +
            'The second, wider pixel classifier is this script\'s check: ' +
            `a 256-unit head on the pixels of all real train digits, which labels ${MNIST_SHARD_PER_CLASS} samples per class.`,
          '',
          ...(mnist.length > 0 ? [...mnistTable(mnist), '', ...ganLines('MNIST', mnist)] : ['No seed finished.']),
          '',
        ]
      : []),
    '## Time',
    '',
    'Seconds per seed. The GAN column includes measuring the checkpoints and writing the shards, which the time budget does not count.',
    '',
    ...timingLines(breast, mnist),
    '',
  ].join('\n');
  await mkdir(flags.out, { recursive: true });
  await writeFileAtomic(join(flags.out, 'results.md'), markdown);
  await writeFileAtomic(join(flags.out, 'results.json'), `${JSON.stringify({ settings, elapsedSeconds: seconds(startedAt), breastmnist: breast, mnist }, null, 2)}\n`);
}

// ---------------------------------------------------------------- main

const breastResults: BreastSeedResult[] = [];
const mnistResults: MnistSeedResult[] = [];
try {
  if (parts.includes('breastmnist')) {
    const { backbones } = await loadRunBackbone(runConfig);
    for (const seed of seeds) {
      const result = await measureBreastSeed(seed, backbones);
      await writeFileAtomic(join(flags.out, 'breastmnist', `seed-${seed}`, RESULT_FILE), `${JSON.stringify(result, null, 2)}\n`);
      breastResults.push(result);
      await writeResults(breastResults, mnistResults);
      const { classifiers, tstrQuality } = result;
      log(
        `BreastMNIST seed ${seed} done in ${result.seconds.total} s: TSTR test AUC ${tstrQuality.test.auc.toFixed(3)} (quality head), ` +
          `${classifiers.synthetic.auc.toFixed(3)} (run classifier); real AUC ${classifiers.real.auc.toFixed(3)}, real + synthetic ${classifiers['real+synthetic'].auc.toFixed(3)}`,
      );
    }
    backbones.forEach((backbone) => backbone.model.dispose());
  }

  if (parts.includes('mnist')) {
    for (const seed of seeds) {
      const result = await measureMnistSeed(seed);
      await writeFileAtomic(join(flags.out, 'mnist', `seed-${seed}`, RESULT_FILE), `${JSON.stringify(result, null, 2)}\n`);
      mnistResults.push(result);
      await writeResults(breastResults, mnistResults);
      log(
        `MNIST seed ${seed} done in ${result.seconds.total} s: class consistency ${result.classConsistency.toFixed(3)} ` +
          `(its classifier on real validation images ${result.consistencyClassifierValidationAccuracy.toFixed(3)}); ` +
          `by the pixel classifier ${result.pixelClassifier.classConsistency.toFixed(3)} (on real validation images ${result.pixelClassifier.validationAccuracy.toFixed(3)})`,
      );
    }
  }
} finally {
  qualityBackbone.model.dispose();
}
log(`done in ${seconds(startedAt)} s: ${join(flags.out, 'results.md')} and results.json`);
