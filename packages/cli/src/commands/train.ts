import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { assignSplits, loadDataset, parseBackendChoice, readShardFolder, recordsOfSplit, selectBackend, writeFileAtomic } from '@scarce/core';
import { checkNoLeakage, composeClassifier, INFERENCE_RUNTIMES, loadBackbone, saveClassifier, type Backbone, type InferenceRuntime, type ScaleEnsemble } from '@scarce/train';
import { benchmarkMixes, evaluationMirrors, type SeedResult } from '../benchmark.js';
import { verifyAugmentedSources } from '../verify-views.js';
import { featuresByRecord, missingClassWarnings } from '../pipeline.js';
import { inputSizes, runConfigSchema } from '../config.js';
import { describeIssue, fieldName } from '../config-issues.js';
import { InputError } from '../errors.js';
import { integer, integerList, number, pixelSize } from '../options.js';
import { configureOutput } from '../output.js';

/** The run config's train defaults, shown in the help text so there is one place they live. */
const DEFAULTS = runConfigSchema.shape.train.parse({});

/** The flag that sets each train setting, to name it in an error. */
const FLAG_OF_FIELD: Record<string, string> = {
  backbone: '--backbone',
  inputSize: '--input-size',
  featureLayer: '--feature-layer',
  seeds: '--seeds',
  'head.units': '--units',
  'head.ensemble': '--ensemble',
  'head.learningRate': '--learning-rate',
  'head.epochs': '--epochs',
  'head.mixup': '--mixup',
  'head.labelSmoothing': '--label-smoothing',
  runtime: '--runtime',
  'earlyStopping.patience': '--patience',
  'earlyStopping.monitor': '--monitor',
};

/** Checks the flags' train settings with the run config's schema, naming the flag of each invalid one. */
function parseTrainFlags(input: Record<string, unknown>) {
  const schema = runConfigSchema.shape.train;
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const field = fieldName(issue.path);
    const problem = describeIssue(issue, input, schema).slice(field.length + 2);
    // An entry of a list, such as inputSize[0], comes from the list's flag.
    return `Invalid ${FLAG_OF_FIELD[field.replace(/\[\d+\]$/, '')] ?? `train.${field}`}: ${problem}.`;
  });
  throw new InputError(lines.join('\n'));
}

function runtimeOption(value: string): InferenceRuntime {
  if (!(INFERENCE_RUNTIMES as readonly string[]).includes(value)) {
    throw new InputError(`Invalid --runtime '${value}': expected one of ${INFERENCE_RUNTIMES.join(', ')}.`);
  }
  return value as InferenceRuntime;
}

/** Reads --feature-layer: one layer name, or several separated by commas. */
function featureLayerOption(value: string): string | string[] {
  const names = value.split(',').map((name) => name.trim());
  if (names.some((name) => name === '')) {
    throw new InputError(`Invalid --feature-layer '${value}': expected layer names separated by commas, as scarce backbone inspect lists them.`);
  }
  return names.length === 1 ? names[0] : names;
}

function nameList(value: string): string[] {
  const names = value.split(',').map((name) => name.trim());
  if (names.some((name) => name === '') || new Set(names).size !== names.length) {
    throw new InputError(`Invalid --class-names '${value}': expected distinct names separated by commas, one per label in label order.`);
  }
  return names;
}

function splitShares(value: string): [number, number] {
  const parts = value.split(',').map(Number);
  if (parts.length !== 2 || parts.some((share) => !Number.isFinite(share) || share <= 0 || share >= 0.5)) {
    throw new InputError(`Invalid --split '${value}': expected two shares in (0, 0.5) as val,test, e.g. 0.15,0.15.`);
  }
  return [parts[0], parts[1]];
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('Train a head on frozen backbone features of the real train split plus any shard folders, and test it on the real test split.')
    .argument('<data>', 'real data with train, val and test splits: an .npz archive, a class folder with split subfolders, or a shard folder')
    .option('--with <dirs...>', 'shard folders whose train rows join the training set (augmented or synthetic)', [])
    .option('--backbone <path-or-url>', `TF.js layers model: a folder, a model.json path or an http(s) URL (default: the MobileNetV2-0.35 in fixtures/)`)
    .option('--input-size <px>', `backbone input side in pixels, or several separated by commas to train one head per size and average their probabilities (default: ${DEFAULTS.inputSize})`, integerList)
    .option('--feature-layer <names>', 'layer whose pooled output is the feature vector, as scarce backbone inspect lists them, or several separated by commas whose pooled outputs are concatenated (default: the backbone output)')
    .option('--units <n>', `hidden units of the head, 0 for a linear head (default: ${DEFAULTS.head.units})`, integer)
    .option('--ensemble <n>', `heads trained side by side whose probabilities are averaged (default: ${DEFAULTS.head.ensemble})`, integer)
    .option('--learning-rate <lr>', `Adam learning rate of the head (default: ${DEFAULTS.head.learningRate})`, number)
    .option('--epochs <n>', `maximum epochs of each head, or with --train-on-validation the exact count (default: ${DEFAULTS.head.epochs})`, integer)
    .option('--mixup <alpha>', `alpha of mixup's Beta(alpha, alpha) blend of training rows, 0 for none (default: ${DEFAULTS.head.mixup})`, number)
    .option('--label-smoothing <share>', `share of each one-hot target spread evenly over the classes (default: ${DEFAULTS.head.labelSmoothing})`, number)
    .option('--train-on-validation', 'train each head on the train rows plus the validation images for exactly --epochs epochs, with no early stopping', false)
    .option('--test-time-flip', 'score each val and test image, and each image the saved classifier predicts, by the mean of the probabilities for the image and its left-right mirror', false)
    .option('--runtime <name>', `what runs the frozen backbone and the training steps: auto, onnxruntime or tfjs (default: ${DEFAULTS.runtime})`, runtimeOption)
    .option('--patience <epochs>', `early-stopping patience in epochs (default: ${DEFAULTS.earlyStopping.patience})`, integer)
    .option('--monitor <name>', `early-stopping monitor: val_loss, val_accuracy or val_auc (default: ${DEFAULTS.earlyStopping.monitor})`)
    .option('--seeds <list>', `comma-separated head seeds (default: ${DEFAULTS.seeds.join(',')})`, integerList)
    .option('--out <dir>', 'folder for metrics.json and, with --save, the classifier under model/ (default: none, only the log)')
    .option('--force', 'replace metrics.json and model/ of an earlier run in --out', false)
    .option('--save', 'save the first seed\'s classifier (backbone and head) in the TF.js layers format under <out>/model', false)
    .option('--split <val,test>', 'hold out stratified shares of a data set without its own splits as val and test, e.g. 0.15,0.15 (seed 0)', splitShares)
    .option('--class-names <list>', 'comma-separated class names of an .npz or IDX data set, which stores only label numbers, e.g. to match the shards of a run', nameList)
    .option('--size <HxW>', 'resize every image of a class folder to HxW (default: every image must have the size of the first)', pixelSize)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu')
    .option('--quiet', 'print no progress bar', false)
    .option('--json', 'write log lines and progress as JSON lines on stdout', false)
    .addHelpText('after', '\nExample:\n  scarce train fixtures/breastmnist/breastmnist.npz --with out/aug out/synth --seeds 0,1,2')
    .action(async (data: string, options: Record<string, unknown>) => {
      const { log } = configureOutput({ quiet: options.quiet as boolean, json: options.json as boolean });
      const defined = (value: unknown) => (value === undefined ? {} : value);
      if (options.trainOnValidation === true && (options.patience !== undefined || options.monitor !== undefined)) {
        throw new InputError('--train-on-validation trains a fixed --epochs with no early stopping, so --patience and --monitor have no effect. Leave them out, or drop --train-on-validation.');
      }
      const settings = parseTrainFlags({
        ...defined(options.backbone === undefined ? undefined : { backbone: options.backbone }),
        ...defined(options.inputSize === undefined ? undefined : { inputSize: (options.inputSize as number[]).length === 1 ? (options.inputSize as number[])[0] : options.inputSize }),
        ...defined(options.featureLayer === undefined ? undefined : { featureLayer: featureLayerOption(options.featureLayer as string) }),
        ...defined(options.seeds === undefined ? undefined : { seeds: options.seeds }),
        head: {
          ...defined(options.units === undefined ? undefined : { units: options.units }),
          ...defined(options.ensemble === undefined ? undefined : { ensemble: options.ensemble }),
          ...defined(options.learningRate === undefined ? undefined : { learningRate: options.learningRate }),
          ...defined(options.epochs === undefined ? undefined : { epochs: options.epochs }),
          ...defined(options.mixup === undefined ? undefined : { mixup: options.mixup }),
          ...defined(options.labelSmoothing === undefined ? undefined : { labelSmoothing: options.labelSmoothing }),
        },
        trainOnValidation: options.trainOnValidation,
        testTimeFlip: options.testTimeFlip,
        ...defined(options.runtime === undefined ? undefined : { runtime: options.runtime }),
        earlyStopping: { ...defined(options.patience === undefined ? undefined : { patience: options.patience }), ...defined(options.monitor === undefined ? undefined : { monitor: options.monitor }) },
      });

      if (options.out !== undefined && !options.force && (await stat(join(options.out as string, 'metrics.json')).then(() => true, () => false))) {
        throw new InputError(`${join(options.out as string, 'metrics.json')} exists. Choose another --out or pass --force to replace it.`);
      }
      await selectBackend({ backend: parseBackendChoice(options.backend as string | undefined, '--backend'), log });
      let dataset = await loadDataset(data, { size: options.size as [number, number] | undefined, classNames: options.classNames as string[] | undefined });
      if (options.classNames !== undefined && JSON.stringify(options.classNames) !== JSON.stringify(dataset.classNames)) {
        throw new InputError(`--class-names names ${JSON.stringify(options.classNames)} but ${data} has classes ${JSON.stringify(dataset.classNames)} (folders and shards name their own classes). Leave out --class-names.`);
      }
      if (options.split !== undefined) {
        if (dataset.records.some((record) => record.split !== 'train')) {
          throw new InputError(`${data} has its own val or test split, so --split would change a fixed test set. Leave out --split.`);
        }
        const [val, test] = options.split as [number, number];
        dataset = assignSplits(dataset, { val, test, seed: 0 });
      }
      for (const warning of missingClassWarnings(dataset, '--split')) log(`warning: ${warning}`);
      const records = [...dataset.records];
      for (const dir of options.with as string[]) {
        const extra = await readShardFolder(dir);
        if (JSON.stringify(extra.classNames) !== JSON.stringify(dataset.classNames)) {
          throw new InputError(
            `${dir} has classes ${JSON.stringify(extra.classNames)} but ${data} has ${JSON.stringify(dataset.classNames)}. ` +
              `For an .npz or IDX data set, name its classes with --class-names ${extra.classNames.join(',')}.`,
          );
        }
        const rows = extra.records.filter((record) => record.origin !== 'real');
        await verifyAugmentedSources(recordsOfSplit(dataset, 'train'), rows.filter((record) => record.origin === 'augmented'), dir);
        records.push(...rows);
      }
      const trainRows = records.filter((record) => record.split === 'train');
      const evaluation = { val: recordsOfSplit(dataset, 'val'), test: recordsOfSplit(dataset, 'test') };
      if (evaluation.val.length === 0 || evaluation.test.length === 0) {
        throw new InputError(`${data} needs val and test splits to stop early and to measure; pass --split 0.15,0.15 to hold out stratified shares.`);
      }
      for (const duplicate of checkNoLeakage(trainRows, [...evaluation.val, ...evaluation.test])) log(`warning: the data's own splits share an image: ${duplicate}`);

      const backbones: Backbone[] = [];
      const downloads = new Map<string, Uint8Array>();
      for (const inputSize of inputSizes(settings)) backbones.push(await loadBackbone(settings.backbone, { inputSize, featureLayer: settings.featureLayer, spec: settings.backboneSpec, downloads }));
      const backbone = backbones[0];
      const sizes = backbones.map((scale) => scale.inputSize);
      const mirrors = settings.testTimeFlip ? evaluationMirrors(evaluation) : undefined;
      const all = [...trainRows, ...evaluation.val, ...evaluation.test, ...(mirrors?.values() ?? [])];
      // Features are computed afresh: scarce train keeps no feature cache.
      const { features, widths, featureSize } = await featuresByRecord(backbones, all, { ...settings, featureCache: false }, log, options.quiet as boolean);
      const mixName = [...new Set(trainRows.map((row) => row.origin))].join('+');
      if (options.save === true && options.out === undefined) throw new InputError('--save needs --out <dir> to know where the model goes.');
      const saveModel = async (mix: string, head: ScaleEnsemble, result: SeedResult) => {
        const path = await saveClassifier(join(options.out as string, 'model'), composeClassifier(backbone, head, sizes), {
          classNames: dataset.classNames,
          inputSize: sizes.length === 1 ? sizes[0] : sizes,
          spec: backbone.spec,
          backbone: { source: backbone.source, fingerprint: backbone.fingerprint },
          preprocess: { size: options.size as [number, number] | undefined, channels: dataset.records[0].channels as 1 | 3, imageSize: [dataset.records[0].height, dataset.records[0].width] },
          testTimeFlip: settings.testTimeFlip,
          provenance: { data, mix, seed: result.seed, bestEpoch: result.bestEpoch, testAccuracy: result.test.accuracy, testAuc: result.test.auc },
        });
        log(`model: ${path}`);
      };
      const results = await benchmarkMixes({
        mixes: [{ name: mixName, rows: trainRows }],
        evaluation,
        features,
        featureSize,
        featureWidths: widths,
        featureLabels: sizes.map((size) => `${size} px`),
        numClasses: dataset.classNames.length,
        settings,
        mirrors,
        log,
        keepFirstHead: options.save === true ? saveModel : undefined,
      });

      const result = results[0];
      log(`${mixName}: test accuracy ${result.testAccuracy.mean.toFixed(3)} ± ${result.testAccuracy.std.toFixed(3)}, AUC ${result.testAuc.mean.toFixed(3)} ± ${result.testAuc.std.toFixed(3)} (seeds ${settings.seeds.join(', ')})`);
      if (options.out !== undefined) {
        await mkdir(options.out as string, { recursive: true });
        const path = join(options.out as string, 'metrics.json');
        await writeFileAtomic(path, `${JSON.stringify({ data, with: options.with, settings, results }, null, 2)}\n`);
        log(`metrics: ${path}`);
      }
    });
}
