import type * as tf from '@tensorflow/tfjs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assignSplits,
  buildManifest,
  loadDataset,
  ORIGINS,
  readShardFolder,
  recordsOfSplit,
  selectBackend,
  TOOLKIT_VERSION,
  writeFileAtomic,
  writeManifest,
  writeRecordsAsShards,
  type ImageRecord,
  type LabelledDataset,
} from '@scarce/core';
import { augmentToShards, resolveTransformConfig, type TransformOptions } from '@scarce/augment';
import { resolveSynthConfig, runSynth, type QualitySummary, type SynthConfig } from '@scarce/synth';
import { backboneBlocks, checkNoLeakage, composeClassifier, composeRecipe, frozenActivations, saveClassifier, splitBackbone, defaultCacheDirectory, extractFeaturesCached, extractFeaturesParallel, FeatureCache, FeatureLayerError, loadBackbone, resolveInferenceRuntime, resolveTrainingRuntime, type Backbone, type MixRecipe } from '@scarce/train';
import { inputSizes, type RunConfig } from './config.js';
import { InputError } from './errors.js';
import { benchmarkMixes, evaluationMirrors, syntheticLabelConfidence, type FineTuneContext, type MixResult } from './benchmark.js';
import { writeReport } from './report.js';
import { verifyAugmentedSources } from './verify-views.js';
import { FIGURES_FOLDER, writeRunFigures } from './report-figures.js';

/** Options of `runPipeline`. */
export interface PipelineOptions {
  /** Replace an earlier run of the same name; default false. */
  force?: boolean;
  quiet?: boolean;
  log?: (line: string) => void;
}

/** Everything a run measured, as written to `metrics.json`. */
export interface RunMetrics {
  toolkitVersion: string;
  name: string;
  seed: number;
  backend: string;
  /** Runtime of the frozen backbone: onnxruntime, or tfjs on `backend`. */
  inferenceRuntime: 'onnxruntime' | 'tfjs';
  /** Runtime of the training steps of heads and fine-tuning: onnxruntime, or tfjs on `backend`. */
  trainingRuntime: 'onnxruntime' | 'tfjs';
  startedAt: string;
  /** Seconds per stage. */
  timings: Record<string, number>;
  dataset: { path: string; classNames: string[]; splits: Record<string, number> };
  /** GAN training summary. `quality` contains every checkpoint's quality record and the chosen one's, or null when not measured. */
  synth: {
    epochsCompleted: number;
    steps: number;
    stoppedBy: string;
    seconds: number;
    trainingRuntime?: 'onnxruntime' | 'tfjs';
    quality: QualitySummary | null;
    /** Synthetic train rows sampled, and those that `synth.minConfidence` kept, in all and per class. Absent when it is 0. */
    filtered?: { kept: number; sampled: number; keptPerClass: number[] };
  } | null;
  mixes: MixResult[];
  config: RunConfig;
}

/** Files and folders that a run writes into its folder, in the order the plan lists them. */
export const RUN_OUTPUTS = ['config.json', 'report.md', 'report.html', 'metrics.json', FIGURES_FOLDER, 'real', 'augmented', 'synthetic', 'models'];

/** Names what makes `directory` something other than a scarce run, or returns null for a run. */
async function notARun(directory: string, entries: readonly string[]): Promise<string | null> {
  if (!entries.includes('config.json')) return 'it has no config.json';
  // An interrupted atomic write leaves `<output>.tmp-<pid>-<id>` beside the output.
  const foreign = entries.filter((name) => !RUN_OUTPUTS.some((output) => name === output || name.startsWith(`${output}.tmp-`)));
  if (foreign.length > 0) return `a run writes no ${foreign.slice(0, 3).map((name) => `'${name}'`).join(', ')}${foreign.length > 3 ? ` or ${foreign.length - 3} more` : ''}`;
  let config: unknown;
  try {
    config = JSON.parse(await readFile(join(directory, 'config.json'), 'utf8'));
  } catch {
    return 'its config.json is not valid JSON';
  }
  const fields = ['data', 'augment', 'synth', 'train'];
  const isRunConfig = typeof config === 'object' && config !== null && fields.every((field) => typeof (config as Record<string, unknown>)[field] === 'object');
  return isRunConfig ? null : `its config.json lacks the ${fields.join(', ')} sections of a run config`;
}

/**
 * Checks that a run may write to `directory`: it is new or empty, or an earlier run that `force`
 * replaces. A folder holding anything a run does not write is never replaced.
 */
export async function checkRunFolder(directory: string, force: boolean): Promise<'new' | 'replace'> {
  const entries = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOTDIR') return undefined;
    throw new InputError(`Run folder ${directory} cannot be created because a part of its path is a file. Choose another output folder (output in the config, or --output).`);
  });
  if (entries === undefined || entries.length === 0) return 'new';
  const reason = await notARun(directory, entries);
  if (reason !== null) {
    throw new InputError(`${directory} exists and is not a scarce run (${reason}), so it is left alone. Choose another name or output folder.`);
  }
  if (!force && !entries.includes('metrics.json')) {
    throw new InputError(`${directory} contains an unfinished run (it has no metrics.json), and a run does not resume. Pass --force to start it again, or choose another name (--name).`);
  }
  if (!force) throw new InputError(`${directory} already contains a run. Choose another name (--name) or pass --force to replace it.`);
  return 'replace';
}

async function prepareRunFolder(directory: string, force: boolean): Promise<void> {
  if ((await checkRunFolder(directory, force)) === 'replace') await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
}

/** Checks that every origin the mixes use has its stage enabled, and that mix names, which name their model folders, are distinct. */
export function checkMixes(config: RunConfig, needs: ReadonlySet<string>): void {
  for (const stage of ['augment', 'synth'] as const) {
    const origin = stage === 'augment' ? 'augmented' : 'synthetic';
    if (needs.has(origin) && !config[stage].enabled) {
      throw new InputError(`train.mixes uses ${origin} rows but ${stage}.enabled is false. Set ${stage}.enabled to true, or leave ${origin} rows out of train.mixes.`);
    }
  }
  const names = config.train.mixes.map((mix) => mix.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) {
    throw new InputError(`train.mixes has two mixes named '${repeated}', and each mix saves its classifier under models/<name>. Remove the repeat or give each recipe its own name.`);
  }
}

/** Wraps a settings error of another package as an input error naming the config field. */
function checkSetting<T>(field: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new InputError(`Invalid config field '${field}': ${(error as Error).message}`);
  }
}

/**
 * Checks everything that can be checked before any work starts, so a bad setting fails in
 * seconds and writes nothing: stage settings, image sizes the GAN takes, class names and splits.
 */
export function preflight(config: RunConfig, dataset: LabelledDataset, needs: Set<string>): void {
  if (needs.has('augmented')) checkSetting('augment.transforms', () => resolveTransformConfig(config.augment.transforms as TransformOptions));
  if (needs.has('synthetic') && config.synth.minConfidence > 0 && !needs.has('real')) {
    throw new InputError(`synth.minConfidence trains its filter on the real train images, but no mix in train.mixes uses real rows. Add a mix with real rows, or set synth.minConfidence to 0.`);
  }
  if (needs.has('synthetic')) {
    checkSetting('synth.gan', () => resolveSynthConfig({ seed: config.seed, ...(config.synth.gan as Partial<SynthConfig>) }));
    const { height, width } = dataset.records[0];
    if (height % 4 !== 0 || width % 4 !== 0) {
      throw new InputError(
        `The GAN needs image sides divisible by 4 but the images are ${height}x${width}. Set data.size, e.g. [28, 28] or [32, 32], or leave synthetic rows out of train.mixes.`,
      );
    }
  }
  const configuredNames = config.data.classNames;
  if (configuredNames !== undefined && JSON.stringify(configuredNames) !== JSON.stringify(dataset.classNames)) {
    throw new InputError(
      `data.classNames is ${JSON.stringify(configuredNames)} but ${config.data.path} has classes ${JSON.stringify(dataset.classNames)} (folders and shards name their own classes). Remove data.classNames or make it match.`,
    );
  }
  checkSplits(dataset, config.data.path);
}

async function timed<T>(timings: Record<string, number>, stage: string, work: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await work();
  timings[stage] = Number(((performance.now() - start) / 1000).toFixed(1));
  return result;
}

/**
 * Runs the whole job: reads the data, writes its real rows as shards, augments and synthesises
 * the train split into shards, reads every shard back, and trains and tests one classifier per
 * mix and seed on the frozen backbone's features. Writes `metrics.json` and `report.md`.
 */
export async function runPipeline(config: RunConfig, options: PipelineOptions = {}): Promise<RunMetrics> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const progress = { quiet: options.quiet };
  const runDir = join(config.output, config.name);
  const timings: Record<string, number> = {};
  const startedAt = new Date().toISOString();
  const mixes = config.train.mixes;
  const needs = new Set(mixes.flatMap((mix) => mix.sources.map((source) => source.from)));
  checkMixes(config, needs);

  const selection = await selectBackend({ backend: config.backend, log });
  const dataset = await timed(timings, 'load', () => loadRunData(config));
  preflight(config, dataset, needs);
  for (const warning of missingClassWarnings(dataset)) log(`warning: ${warning}`);
  const folders = await readMixFolders(needs, dataset);
  const { backbone, backbones, runtime, trainingRuntime } = await loadRunBackbone(config);
  const described = (chosen: 'onnxruntime' | 'tfjs') => (chosen === 'onnxruntime' ? 'onnxruntime' : `tfjs (${selection.backend})`);
  log(`frozen backbone runs in ${described(runtime)}, training steps in ${described(trainingRuntime)}`);
  await prepareRunFolder(runDir, options.force ?? false);
  await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  log(`run ${config.name}: ${dataset.records.length} images, classes ${dataset.classNames.join(', ')}, outputs in ${runDir}`);

  await timed(timings, 'real shards', async () => {
    const directory = join(runDir, 'real');
    await mkdir(directory, { recursive: true });
    const shards = await writeRecordsAsShards(dataset.records, { directory, classNames: dataset.classNames });
    await writeManifest(directory, buildManifest(dataset.classNames, shards, { source: config.data.path }));
  });
  await writeRunFigures(runDir, dataset, config, needs);

  if (config.augment.enabled && needs.has('augmented')) {
    await timed(timings, 'augment', () =>
      augmentToShards(dataset, {
        outDir: join(runDir, 'augmented'),
        viewsPerImage: config.augment.viewsPerImage,
        seed: config.seed,
        transforms: config.augment.transforms as TransformOptions,
        config: config.augment,
        progress,
        log,
      }),
    );
  }

  let synthSummary: RunMetrics['synth'] = null;
  if (config.synth.enabled && needs.has('synthetic')) {
    await timed(timings, 'synth', async () => {
      const { trained: gan, quality } = await runSynth(
        { train: recordsOfSplit(dataset, 'train'), validation: recordsOfSplit(dataset, 'val'), test: recordsOfSplit(dataset, 'test') },
        dataset.classNames,
        { seed: config.seed, ...(config.synth.gan as Partial<SynthConfig>) },
        // The quality metrics use the run's backbone at 64 px, about 3.5 times faster than 128 px.
        { directory: join(runDir, 'synthetic'), perClass: config.synth.perClass, seed: config.seed, quality: { backbone: config.train.backbone, inputSize: 64 }, log, progress: options.quiet ? false : {} },
      );
      synthSummary = { epochsCompleted: gan.epochsCompleted, steps: gan.steps, stoppedBy: gan.stoppedBy, seconds: Number(gan.seconds.toFixed(1)), trainingRuntime: gan.trainingRuntime, quality };
      gan.dispose();
    });
  }

  // Training reads everything back from the shards, so the classifiers see exactly what was written.
  // The real shards contain the validation and test images and the sources of augmented views,
  // so they are read even when no mix trains on real rows.
  const runRecords = await timed(timings, 'read shards', () => readRunShards(runDir, new Set([...needs, 'real'])));
  const records = [...runRecords, ...[...folders.values()].flat()];
  const evaluation = records.filter((record) => record.split !== 'train');
  const trainRows = records.filter((record) => record.split === 'train');
  for (const duplicate of checkNoLeakage(trainRows, evaluation)) log(`warning: the data's own splits share an image: ${duplicate}`);

  const evaluationSplits = {
    val: records.filter((record) => record.split === 'val'),
    test: records.filter((record) => record.split === 'test'),
  };
  // Test-time flips score each val and test image with its mirror too, so the mirrors need features.
  const mirrors = config.train.testTimeFlip ? evaluationMirrors(evaluationSplits) : undefined;
  const featureRecords = [...records, ...(mirrors?.values() ?? [])];
  const { features, widths, featureSize } = await timed(timings, 'features', () => featuresByRecord(backbones, featureRecords, config.train, log, options.quiet));

  /** Leaves out the run's synthetic rows below synth.minConfidence, and records and logs what it kept. */
  async function filterSynthetic(rows: ImageRecord[], summary: NonNullable<RunMetrics['synth']>): Promise<ImageRecord[]> {
    const { minConfidence } = config.synth;
    const synthetic = rows.filter((record) => record.origin === 'synthetic');
    const real = { train: rows.filter((record) => record.origin === 'real'), val: evaluation.filter((record) => record.split === 'val') };
    const confidence = await timed(timings, 'synthetic filter', () =>
      syntheticLabelConfidence(synthetic, real, features, featureSize, dataset.classNames.length, config.train, config.seed, widths),
    );
    const dropped = new Set(synthetic.filter((_, i) => confidence[i] < minConfidence));
    if (dropped.size === synthetic.length) {
      throw new InputError(`synth.minConfidence ${minConfidence} left none of the ${synthetic.length} synthetic images in ${join(runDir, 'synthetic')}: a head of the real train images gives every one a lower probability for its own class. Lower synth.minConfidence, or train the GAN longer.`);
    }
    const keptPerClass = dataset.classNames.map((_, label) => synthetic.filter((record) => record.label === label && !dropped.has(record)).length);
    summary.filtered = { kept: synthetic.length - dropped.size, sampled: synthetic.length, keptPerClass };
    log(`synthetic filter: kept ${summary.filtered.kept} of ${synthetic.length} synthetic images (${dataset.classNames.map((name, label) => `${name} ${keptPerClass[label]}`).join(', ')}), those whose own class a head of the real train images gives a probability of ${minConfidence} or more`);
    const emptied = dataset.classNames.filter((_, label) => keptPerClass[label] === 0);
    if (emptied.length > 0) {
      log(`warning: synth.minConfidence ${minConfidence} left no synthetic image of class ${emptied.map((name) => `'${name}'`).join(', ')}, so the synthetic rows of every mix miss it. Lower synth.minConfidence, or train the GAN longer.`);
    }
    return rows.filter((record) => !dropped.has(record));
  }

  let runTrainRows = runRecords.filter((record) => record.split === 'train');
  // The summary is filled inside a callback, which hides its assignment from the compiler's narrowing.
  const synthResult = synthSummary as RunMetrics['synth'];
  if (config.synth.minConfidence > 0 && synthResult === null) {
    log(`warning: synth.minConfidence ${config.synth.minConfidence} filters only the synthetic images this run samples, and no mix uses them. Shard folders given as mix sources are not filtered.`);
  }
  if (synthResult !== null && config.synth.minConfidence > 0) {
    runTrainRows = await filterSynthetic(runTrainRows, synthResult);
  }

  const fineTuning = config.train.strategy !== 'feature-extraction' ? await prepareFineTuning(backbone, featureRecords, config, options.quiet) : undefined;
  let composed: ReturnType<typeof composeMixes>;
  try {
    composed = composeMixes(mixes, runTrainRows, folders, config.seed);
  } catch (error) {
    const filtered = synthResult?.filtered;
    if (!(error instanceof InputError) || filtered === undefined) throw error;
    throw new InputError(`${error.message} synth.minConfidence ${config.synth.minConfidence} kept ${filtered.kept} of the ${filtered.sampled} synthetic images. Lower synth.minConfidence, or request fewer synthetic rows in the mix.`);
  }
  const results = await timed(timings, 'train', () =>
    benchmarkMixes({
      mixes: composed,
      evaluation: evaluationSplits,
      features,
      featureSize,
      featureWidths: widths,
      featureLabels: backbones.map((scale) => `${scale.inputSize} px`),
      numClasses: dataset.classNames.length,
      settings: config.train,
      fineTuning,
      mirrors,
      log,
      keepFirstHead: async (mix, head, result) => {
        const sizes = backbones.map((scale) => scale.inputSize);
        const model = composeClassifier(backbone, head, sizes);
        await saveClassifier(join(runDir, 'models', mix), model, {
          classNames: dataset.classNames,
          inputSize: sizes.length === 1 ? sizes[0] : sizes,
          spec: backbone.spec,
          backbone: { source: backbone.source, fingerprint: backbone.fingerprint },
          preprocess: { size: config.data.size, channels: dataset.records[0].channels as 1 | 3, imageSize: [dataset.records[0].height, dataset.records[0].width] },
          testTimeFlip: config.train.testTimeFlip,
          provenance: { run: config.name, mix, seed: result.seed, strategy: config.train.strategy, bestEpoch: result.bestEpoch, testAccuracy: result.test.accuracy, testAuc: result.test.auc },
        });
      },
    }),
  );
  fineTuning?.activations.dispose();
  backbones.forEach((scale) => scale.model.dispose());

  const metrics: RunMetrics = {
    toolkitVersion: TOOLKIT_VERSION,
    name: config.name,
    seed: config.seed,
    backend: selection.backend,
    inferenceRuntime: runtime,
    trainingRuntime,
    startedAt,
    timings,
    dataset: {
      path: config.data.path,
      classNames: dataset.classNames,
      splits: Object.fromEntries((['train', 'val', 'test'] as const).map((split) => [split, recordsOfSplit(dataset, split).length])),
    },
    synth: synthSummary,
    mixes: results,
    config,
  };
  const written = await writeReport(runDir, metrics);
  log(`report: ${written.report}\nreport with plots: ${written.html}\nmetrics: ${written.metrics}`);
  return metrics;
}

/** Reads the run's data; `data.split` applies only to data without its own validation and test splits. */
export async function loadRunData(config: RunConfig): Promise<LabelledDataset> {
  const { path, format, classNames, split, size } = config.data;
  const dataset = await loadDataset(path, { format, classNames: format === 'npz' || path.toLowerCase().endsWith('.npz') ? classNames : undefined, size });
  if (split === undefined || (split.val === 0 && split.test === 0)) return dataset;
  if (dataset.records.some((record) => record.split !== 'train')) {
    throw new InputError(`${path} has its own val or test split, so data.split would change a fixed test set. Remove data.split, or give data without split folders.`);
  }
  return assignSplits(dataset, { ...split, seed: config.seed });
}

/**
 * Names each class that has no images in the val or test split, where its scores cannot be
 * measured. `splitSetting` is the setting that holds out those splits: `data.split` or `--split`.
 */
export function missingClassWarnings(dataset: LabelledDataset, splitSetting = 'data.split'): string[] {
  const warnings: string[] = [];
  for (const split of ['val', 'test'] as const) {
    const present = new Set(recordsOfSplit(dataset, split).map((record) => record.label));
    const missing = dataset.classNames.filter((_, label) => !present.has(label));
    if (missing.length > 0) {
      warnings.push(`class ${missing.map((name) => `'${name}'`).join(', ')} has no ${split} images, so ${split} scores say nothing about it. Add images of it, or raise ${splitSetting}.`);
    }
  }
  return warnings;
}

function checkSplits(dataset: LabelledDataset, path: string): void {
  for (const split of ['train', 'val', 'test'] as const) {
    if (recordsOfSplit(dataset, split).length === 0) {
      throw new InputError(
        `${path} has no ${split} images. Give data with train, val and test splits, or set data.split (e.g. { "val": 0.15, "test": 0.15 }) to hold some out.`,
      );
    }
  }
}

/** Reads the run's own shard folders that the mixes use. */
async function readRunShards(runDir: string, needs: Set<string>): Promise<ImageRecord[]> {
  const records: ImageRecord[] = [];
  for (const origin of ORIGINS) {
    if (needs.has(origin)) records.push(...(await readShardFolder(join(runDir, origin))).records);
  }
  return records;
}

/**
 * Reads the train rows of every shard folder a mix names as a source, keyed by the folder, before
 * the run writes anything. Augmented rows must replay from this data's train images.
 */
async function readMixFolders(needs: Set<string>, dataset: LabelledDataset): Promise<Map<string, ImageRecord[]>> {
  const realTrain = recordsOfSplit(dataset, 'train');
  const folders = new Map<string, ImageRecord[]>();
  for (const folder of needs) {
    if ((ORIGINS as readonly string[]).includes(folder)) continue;
    const shards = await readShardFolder(folder).catch((error: Error) => {
      throw new InputError(`Invalid mix source '${folder}' in train.mixes: ${error.message}`);
    });
    if (JSON.stringify(shards.classNames) !== JSON.stringify(dataset.classNames)) {
      throw new InputError(`Mix source ${folder} has classes ${JSON.stringify(shards.classNames)} but the data has ${JSON.stringify(dataset.classNames)}.`);
    }
    const rows = shards.records.filter((record) => record.split === 'train');
    await verifyAugmentedSources(realTrain, rows.filter((record) => record.origin === 'augmented'), folder);
    folders.set(folder, rows);
  }
  return folders;
}

/** Composes each mix's training rows from the pools of the run: its origins and the shard folders it names. */
function composeMixes(mixes: readonly MixRecipe[], trainRows: readonly ImageRecord[], folders: Map<string, ImageRecord[]>, seed: number): Array<{ name: string; rows: ImageRecord[] }> {
  const pools = new Map<string, readonly ImageRecord[]>(ORIGINS.map((origin) => [origin, trainRows.filter((row) => row.origin === origin)]));
  for (const [folder, rows] of folders) pools.set(folder, rows);
  const realCount = pools.get('real')!.length;
  return mixes.map((mix) => ({ name: mix.name, rows: composeRecipe(mix, pools, realCount, seed) }));
}

/**
 * Loads the run's backbone and finds which runtime runs it, naming the config field at fault when
 * either fails, so that a run stops before it writes anything.
 */
export async function loadRunBackbone(
  config: RunConfig,
): Promise<{ backbone: Backbone; backbones: Backbone[]; runtime: 'onnxruntime' | 'tfjs'; trainingRuntime: 'onnxruntime' | 'tfjs'; trainableLayers: string[] }> {
  const { backbone: source, featureLayer, backboneSpec, runtime } = config.train;
  const [inputSize, ...otherSizes] = inputSizes(config.train);
  const downloads = new Map<string, Uint8Array>();
  const backbone = await loadBackbone(source, { inputSize, featureLayer, spec: backboneSpec, downloads }).catch((error: Error) => {
    if (error instanceof FeatureLayerError) {
      throw new InputError(`Invalid config field 'train.featureLayer' (${JSON.stringify(featureLayer)}): ${error.message}`);
    }
    throw new InputError(`Invalid config field 'train.backbone' (${source}): ${error.message}`);
  });
  let tail: tf.LayersModel | null = null;
  let trainableLayers: string[] = [];
  try {
    if (config.train.strategy !== 'feature-extraction') ({ tail, trainableLayers } = splitBackbone(backbone, unfreezeOptions(backbone, config)));
  } catch (error) {
    backbone.model.dispose();
    const field = config.train.fineTune.layerPrefixes.length > 0 ? 'train.fineTune.layerPrefixes' : 'train.fineTune.lastBlocks';
    throw error instanceof InputError ? new InputError(`Invalid config field '${field}': ${error.message}`) : error;
  }
  // The first size has loaded, so the others can only differ in their input layer.
  const backbones = [backbone];
  for (const size of otherSizes) backbones.push(await loadBackbone(source, { inputSize: size, featureLayer, spec: backboneSpec, downloads }));
  try {
    return { backbone, backbones, runtime: await resolveInferenceRuntime(backbone.model, runtime), trainingRuntime: await resolveTrainingRuntime(tail, runtime), trainableLayers };
  } catch (error) {
    backbones.forEach((scale) => scale.model.dispose());
    throw new InputError(`Invalid config field 'train.runtime' (${runtime}): ${(error as Error).message}`);
  }
}

/** Returns the blocks that train under the config's strategy: the last blocks or layer prefixes, or every block for `full`. */
function unfreezeOptions(backbone: Backbone, config: RunConfig): { lastBlocks: number } | { layerPrefixes: string[] } {
  const { lastBlocks, layerPrefixes } = config.train.fineTune;
  // Full training unfreezes every block; BatchNorm still runs in inference mode, as in fine-tuning.
  if (config.train.strategy === 'full') return { lastBlocks: backboneBlocks(backbone.model).length };
  return layerPrefixes.length > 0 ? { layerPrefixes } : { lastBlocks };
}

/** Splits the backbone for fine-tuning and runs its frozen front once over every record. */
async function prepareFineTuning(backbone: Backbone, records: ImageRecord[], config: RunConfig, quiet?: boolean): Promise<FineTuneContext> {
  const { lastBlocks, layerPrefixes, ...options } = config.train.fineTune;
  const split = splitBackbone(backbone, unfreezeOptions(backbone, config));
  const activations = await frozenActivations(split, backbone, records, { batchSize: config.train.featureBatchSize, quiet, runtime: config.train.runtime });
  return { split, activations, rowOf: new Map(records.map((record, i) => [record, i])), options: { ...options, runtime: config.train.runtime } };
}

/**
 * Returns the pooled features of every record, extracted once per backbone (one per input size)
 * and concatenated in the backbones' order, with the width of each backbone's block and of a whole row.
 */
export async function featuresByRecord(
  backbones: readonly Backbone[],
  records: ImageRecord[],
  train: Pick<RunConfig['train'], 'featureBatchSize' | 'runtime' | 'featureCache'>,
  log: (line: string) => void,
  quiet?: boolean,
): Promise<{ features: Map<ImageRecord, Float32Array>; widths: number[]; featureSize: number }> {
  const options = { batchSize: train.featureBatchSize, quiet, runtime: train.runtime };
  const blocks: Float32Array[] = [];
  for (const backbone of backbones) {
    if (train.featureCache === false) {
      blocks.push(await extractFeaturesParallel(backbone, records, options));
      continue;
    }
    const cache = new FeatureCache(train.featureCache ?? defaultCacheDirectory(), backbone);
    const result = await extractFeaturesCached(backbone, records, cache, options);
    log(`features${backbones.length > 1 ? ` at ${backbone.inputSize} px` : ''}: ${result.hits} from the cache in ${cache.directory}, ${result.misses} computed`);
    blocks.push(result.features);
  }
  const widths = backbones.map((backbone) => backbone.featureSize);
  const rowWidth = widths.reduce((sum, width) => sum + width, 0);
  const all = blocks.length === 1 ? blocks[0] : new Float32Array(records.length * rowWidth);
  if (blocks.length > 1) {
    let offset = 0;
    blocks.forEach((block, b) => {
      for (let row = 0; row < records.length; row++) all.set(block.subarray(row * widths[b], (row + 1) * widths[b]), row * rowWidth + offset);
      offset += widths[b];
    });
  }
  return { features: new Map(records.map((record, i) => [record, all.subarray(i * rowWidth, (i + 1) * rowWidth)])), widths, featureSize: rowWidth };
}
