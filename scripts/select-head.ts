/**
 * Chooses the backbone input size, the feature layer and the head by stratified k-fold
 * cross-validation on the train and validation splits together. The test split is never read.
 * Inside each fold the head trains either with early stopping, on 85% of the training part with
 * the other 15% held out to stop on, or for a fixed number of epochs on all of it. The held-out
 * fold is scored. With `--views`, each training row also brings that many augmented views, drawn
 * with a named set of transforms. The scored fold and the rows held out for early stopping get no views.
 * With `--test-time-flip`, every head is scored twice: on the scored fold's images, and on the
 * mean of its probabilities for each image and the image's mirror.
 *
 *   node --import tsx scripts/select-head.ts [--data data.npz] [--sizes 96,128,160,224,128+160,96/128/160]
 *     [--layers out,block_16_expand_relu,block_6_expand_relu+block_16_expand_relu] [--folds 5]
 *     [--heads 64x1,64x5,256x1,256x5] [--epochs early,8,30] [--rates 0.001,0.0003]
 *     [--views 0,4,8] [--transforms sets.json] [--transform-sets flip,mild] [--fold-seed 7]
 *     [--test-time-flip] [--dropouts 0.5] [--mixup 0,0.2] [--label-smoothing 0,0.1]
 *     [--class-weights none,balanced]
 *
 * A layer set joins layer names with `+`: their pooled outputs are concatenated. So does a size
 * set such as `128+160`: each image's features at every size are concatenated. A size set joined
 * with `/`, such as `96/128/160`, trains one head per size and averages their probabilities, as
 * a list of sizes in `train.inputSize` does. A head is
 * hidden units x ensemble members. `early` stops early; a number trains that many epochs.
 * `--transforms` names a JSON file that maps set names to augment transform options. Without it,
 * the one set is `demo`: the transforms of examples/breastmnist.json. `--dropouts`, `--mixup`
 * (alpha of the blend weight's Beta distribution, 0 for none) and `--label-smoothing` set the
 * head's regularisation. They default to dropout 0.5, no mixup and no label smoothing.
 * `--class-weights balanced` weights each class's loss by its inverse frequency; default `none`.
 */
import { readFile } from 'node:fs/promises';
import { loadDataset, mirrorImage, Random, recordsOfSplit, selectBackend, type ImageRecord } from '@scarce/core';
import { augmentRecord, resolveTransformConfig, viewSeed, type TransformOptions } from '@scarce/augment';
import { averageProbabilities, evaluateProbabilities, extractFeaturesParallel, loadBackbone, trainScaleEnsemble, type Backbone, type FeatureSet, type HeadOptions } from '@scarce/train';
import { exitOnInputError } from './exit-on-input-error.js';

exitOnInputError('Usage is in the header of scripts/select-head.ts.');

const OPTIONS = ['data', 'sizes', 'layers', 'folds', 'heads', 'epochs', 'rates', 'views', 'transforms', 'transform-sets', 'fold-seed', 'dropouts', 'mixup', 'label-smoothing', 'class-weights'];
/** Options that take no value. */
const FLAGS = ['test-time-flip'];
// Every argument is an option with its value, or a flag: a stray word would otherwise be ignored.
for (let at = 2; at < process.argv.length; at++) {
  const argument = process.argv[at];
  const name = argument.startsWith('--') ? argument.slice(2) : '';
  if (OPTIONS.includes(name)) at++;
  else if (!FLAGS.includes(name)) {
    fail(`${argument.startsWith('--') ? 'Unknown option' : 'Unexpected argument'} ${argument}; the options are --${[...OPTIONS, ...FLAGS].join(', --')}, and --${FLAGS.join(', --')} takes no value`);
  }
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = process.argv[at + 1];
  if (value === undefined || value.startsWith('--')) fail(`--${name} needs a value`);
  return value;
}

function fail(message: string): never {
  console.error(`${message.replace(/\.$/, '')}. Usage is in the header of scripts/select-head.ts.`);
  process.exit(2);
}

/** Splits a comma-separated option into numbers that pass `valid`, or stops with a message naming the option. */
function numbers(name: string, fallback: string, valid: (value: number) => boolean, expected: string): number[] {
  const text = option(name, fallback);
  return text.split(',').map((item) => {
    const value = Number(item);
    // Decimal notation only, so '0x10' and '' are rejected rather than read as 16 and 0.
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(item.trim()) || !valid(value)) fail(`Invalid --${name} '${text}': expected ${expected}`);
    return value;
  });
}

/** Reads an option that takes one number. */
function oneNumber(name: string, fallback: string, valid: (value: number) => boolean, expected: string): number {
  const values = numbers(name, fallback, valid, expected);
  if (values.length > 1) fail(`Invalid --${name} '${option(name, fallback)}': expected ${expected}, not a list`);
  return values[0];
}

const positiveInteger = (value: number) => Number.isInteger(value) && value > 0;
const testTimeFlip = process.argv.includes('--test-time-flip');
const dataPath = option('data', 'fixtures/breastmnist/breastmnist.npz');
const sizeText = option('sizes', '96,128,160,224');
const sizeSets = sizeText.split(',').map((set) => {
  const averaged = set.includes('/');
  const sizes = set.split(averaged ? '/' : '+').map((item) => {
    const value = Number(item);
    if (!/^\d+$/.test(item.trim()) || value < 32) {
      fail(`Invalid --sizes '${sizeText}': expected input sizes of 32 px or more, separated by commas, and joined by + to concatenate their features or by / to average one head per size`);
    }
    return value;
  });
  if (new Set(sizes).size !== sizes.length) fail(`Invalid --sizes '${sizeText}': the set ${set} names a size twice`);
  return { sizes, averaged };
});
/** `out` is the backbone's own output; `+` joins layers whose pooled outputs are concatenated. */
const layers = option('layers', 'out,block_16_expand_relu').split(',');
const foldSeed = oneNumber('fold-seed', '7', (value) => Number.isInteger(value) && value >= 0 && value < 2 ** 32, 'a whole number from 0 to 4294967295');
const folds = oneNumber('folds', '5', (value) => positiveInteger(value) && value >= 2, 'a whole number of folds, 2 or more');
const headText = option('heads', '64x1,64x5,256x1,256x5');
const heads: HeadOptions[] = headText.split(',').map((head) => {
  const [units, ensemble, ...rest] = head.split('x').map(Number);
  if (rest.length > 0 || !Number.isInteger(units) || units < 0 || !positiveInteger(ensemble)) fail(`Invalid --heads '${headText}': expected units x members, e.g. 256x5`);
  return { units, ensemble };
});
const dropouts = numbers('dropouts', '0.5', (value) => value >= 0 && value < 1, 'dropout rates in [0, 1), separated by commas');
const mixups = numbers('mixup', '0', (value) => value >= 0, 'mixup alphas of 0 (off) or more, separated by commas');
const smoothings = numbers('label-smoothing', '0', (value) => value >= 0 && value < 1, 'label smoothing shares in [0, 1), separated by commas');
const classWeightText = option('class-weights', 'none');
const classWeights = [...new Set(classWeightText.split(','))].map((item) => {
  if (item !== 'none' && item !== 'balanced') fail(`Invalid --class-weights '${classWeightText}': expected none or balanced, separated by commas`);
  return item as 'none' | 'balanced';
});
/** Every combination of the regularisation and class-weight options. */
const regularisations = dropouts.flatMap((dropout) =>
  mixups.flatMap((mixup) => smoothings.flatMap((labelSmoothing) => classWeights.map((classWeight) => ({ dropout, mixup, labelSmoothing, classWeight })))),
);
const epochText = option('epochs', 'early');
const epochChoices = epochText.split(',').map((item) => {
  if (item !== 'early' && !positiveInteger(Number(item))) fail(`Invalid --epochs '${epochText}': expected 'early' or whole numbers of epochs above 0`);
  return item;
});
const rates = numbers('rates', '0.001', (value) => Number.isFinite(value) && value > 0, 'learning rates above 0, separated by commas');
const MAX_VIEWS = 64;
const viewCounts = numbers('views', '0', (value) => Number.isInteger(value) && value >= 0 && value <= MAX_VIEWS, `whole numbers of augmented views per image from 0 to ${MAX_VIEWS}, separated by commas`);
const maxViews = Math.max(...viewCounts);
const transformsPath = option('transforms', '');
const transformSets = maxViews === 0 ? {} : await readTransformSets(transformsPath);
const setNames = maxViews === 0 ? ['none'] : [...new Set(option('transform-sets', Object.keys(transformSets).join(',')).split(','))];
for (const name of setNames) {
  if (maxViews > 0 && !Object.hasOwn(transformSets, name)) fail(`Transform set '${name}' is not in ${transformsPath || 'examples/breastmnist.json'}; it has ${Object.keys(transformSets).join(', ')}`);
}

/**
 * Reads the named transform sets of `--transforms`, or the demo config's transforms as `demo`,
 * and checks each set before any work starts.
 */
async function readTransformSets(path: string): Promise<Record<string, TransformOptions>> {
  const file = path === '' ? 'examples/breastmnist.json' : path;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    fail(`Failed to read --transforms ${file}: ${(error as Error).message}. Give a JSON file that maps set names to augment transform options`);
  }
  const sets = path === '' ? { demo: (parsed as { augment: { transforms: TransformOptions } }).augment.transforms } : parsed;
  if (typeof sets !== 'object' || sets === null || Array.isArray(sets) || Object.keys(sets).length === 0) {
    fail(`Invalid --transforms ${file}: expected a JSON object that maps set names to augment transform options, e.g. { "flip": { "horizontalFlip": true } }`);
  }
  for (const [name, transforms] of Object.entries(sets)) {
    try {
      resolveTransformConfig(transforms as TransformOptions);
    } catch (error) {
      fail(`Invalid transform set '${name}' in ${file}: ${(error as Error).message}`);
    }
  }
  return sets as Record<string, TransformOptions>;
}

await selectBackend();
const dataset = await loadDataset(dataPath);
const pool: ImageRecord[] = [...recordsOfSplit(dataset, 'train'), ...recordsOfSplit(dataset, 'val')];
const labels = pool.map((record) => record.label);

// Stratified folds: each class is shuffled and dealt round-robin.
const random = new Random(foldSeed);
const foldRows: number[][] = Array.from({ length: folds }, () => []);
for (let label = 0; label < dataset.classNames.length; label++) {
  const rows = random.shuffle(labels.flatMap((value, row) => (value === label ? [row] : [])));
  rows.forEach((row, i) => foldRows[i % folds].push(row));
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
console.log(`${folds}-fold cross-validation (fold seed ${foldSeed}) on ${pool.length} train + val images of ${dataPath}\n`);
console.log('| input px | feature layer | transforms | views | units | ensemble | dropout | mixup | label smoothing | class weights | epochs | learning rate | test-time flip | cv accuracy | cv AUC |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const { sizes: sizeSet, averaged } of sizeSets) {
  const inputSize = sizeSet.join(averaged ? '/' : '+');
  for (const layer of layers) {
    const backbones: Backbone[] = [];
    for (const side of sizeSet) backbones.push(await loadBackbone('fixtures/mobilenet_v2_0.35_224_notop', { inputSize: side, featureLayer: layer === 'out' ? undefined : layer.split('+') }));
    const size = backbones.reduce((sum, backbone) => sum + backbone.featureSize, 0);
    // Averaged sizes train one head per block of features; concatenated ones, one head on the whole row.
    const widths = averaged ? backbones.map((backbone) => backbone.featureSize) : [size];
    /** Features of `images` at every size of the set, concatenated per image. */
    const extract = async (images: readonly ImageRecord[]): Promise<Float32Array> => {
      const matrix = new Float32Array(images.length * size);
      let offset = 0;
      for (const backbone of backbones) {
        const part = await extractFeaturesParallel(backbone, images, { quiet: true });
        const width = backbone.featureSize;
        for (let row = 0; row < images.length; row++) matrix.set(part.subarray(row * width, (row + 1) * width), row * size + offset);
        offset += width;
      }
      return matrix;
    };
    const features = await extract(pool);
    const mirroredFeatures = testTimeFlip ? await extract(pool.map(mirrorImage)) : null;
    for (const setName of setNames) {
      // View v of pool row r sits at r * maxViews + v. Each view is drawn once and reused by every fold.
      const views = maxViews === 0
        ? new Float32Array(0)
        : await extract(await Promise.all(pool.flatMap((record, row) => Array.from({ length: maxViews }, (_, v) => augmentRecord({ ...record, split: 'train', sourceIndex: row }, transformSets[setName], viewSeed(3, row, v + 1), v + 1)))));
      /** Features of `rows` (taken from `source`), followed by the first `viewCount` augmented views of each. */
      const pick = (rows: number[], viewCount = 0, source = features): FeatureSet => {
        const matrix = new Float32Array(rows.length * (1 + viewCount) * size);
        rows.forEach((row, i) => matrix.set(source.subarray(row * size, (row + 1) * size), i * size));
        rows.forEach((row, i) => {
          for (let v = 0; v < viewCount; v++) {
            const from = (row * maxViews + v) * size;
            matrix.set(views.subarray(from, from + size), (rows.length + i * viewCount + v) * size);
          }
        });
        return { features: matrix, labels: [...rows.map((row) => labels[row]), ...rows.flatMap((row) => Array<number>(viewCount).fill(labels[row]))] };
      };

      for (const viewCount of viewCounts) {
        // Rows without views do not depend on the transform set: score them once.
        if (viewCount === 0 && setName !== setNames[0]) continue;
        for (const head of heads.flatMap((shape) => regularisations.map((regularisation) => ({ ...shape, ...regularisation })))) {
          for (const epochs of epochChoices) {
            for (const learningRate of rates) {
              // Scores without test-time flips, and with them when --test-time-flip is given.
              const scores = (testTimeFlip ? [false, true] : [false]).map(() => ({ accuracies: [] as number[], aucs: [] as number[] }));
              for (let fold = 0; fold < folds; fold++) {
                const rest = new Random(fold).shuffle(foldRows.filter((_, j) => j !== fold).flat());
                const options = { ...head, learningRate, seed: fold };
                let training;
                if (epochs === 'early') {
                  const stopRows = Math.round(rest.length * 0.15);
                  training = await trainScaleEnsemble(pick(rest.slice(stopRows), viewCount), pick(rest.slice(0, stopRows)), dataset.classNames.length, options, widths);
                } else {
                  // A fixed length: no rows are held out, and the training loss is only logged.
                  const fixed = { epochs: Number(epochs), earlyStopping: { monitor: 'loss', patience: Number(epochs), restoreBestWeights: false } };
                  training = await trainScaleEnsemble(pick(rest, viewCount), { features: new Float32Array(0), labels: [] }, dataset.classNames.length, { ...options, ...fixed }, widths);
                }
                const scored = pick(foldRows[fold]);
                const plain = training.ensemble.predict(scored.features);
                const probabilities = [plain];
                if (mirroredFeatures !== null) {
                  probabilities.push(averageProbabilities(plain, training.ensemble.predict(pick(foldRows[fold], 0, mirroredFeatures).features)));
                }
                probabilities.forEach((values, i) => {
                  const report = evaluateProbabilities(values, scored.labels, dataset.classNames.length);
                  scores[i].accuracies.push(report.accuracy);
                  scores[i].aucs.push(report.auc);
                });
                training.ensemble.dispose();
              }
              const transforms = viewCount === 0 ? 'none' : setName;
              scores.forEach(({ accuracies, aucs }, flipped) => {
                console.log(`| ${inputSize} | ${layer} | ${transforms} | ${viewCount} | ${head.units} | ${head.ensemble} | ${head.dropout} | ${head.mixup} | ${head.labelSmoothing} | ${head.classWeight} | ${epochs} | ${learningRate} | ${flipped ? 'yes' : 'no'} | ${mean(accuracies).toFixed(3)} | ${mean(aucs).toFixed(3)} |`);
              });
            }
          }
        }
      }
    }
    backbones.forEach((backbone) => backbone.model.dispose());
  }
}
