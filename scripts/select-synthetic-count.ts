/**
 * Chooses how many synthetic images per class join the real train images, on the validation
 * split. --runs is evaluate-synth's `breastmnist` folder, with one `seed-N/synthetic` shard
 * folder per GAN seed (each GAN trained on the train split). For each run and each N, heads with
 * the run config's settings train on the real train images plus the first N synthetic images of
 * each class, in a seeded shuffle, and are scored on the validation split. The test split is
 * never read.
 *
 * With --min-confidence, a head first trains for the config's fixed length on the real train
 * images alone (seed 0) and scores each synthetic image. Images whose conditioned class gets a
 * lower probability are left out before the first N of each class are taken. When the config
 * sets `train.testTimeFlip`, each validation image is scored with its mirror, as the run scores it.
 *
 * With --with-augmented, the heads also train on each run's `seed-N/augmented` views of the train
 * images (evaluate-synth draws them when the config augments), so the rows compare real +
 * augmented with all three. Views of a validation or test image are rejected.
 *
 *   node --import tsx scripts/select-synthetic-count.ts [--runs runs/evaluate-synth/breastmnist]
 *     [--counts 0,25,50,100,200,500] [--config examples/breastmnist.json] [--seeds 0,1,2]
 *     [--min-confidence 0,0.5,0.8] [--with-augmented]
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mirrorImage, Random, readShardFolder, recordsOfSplit, selectBackend, type ImageRecord } from '@scarce/core';
import { evaluateProbabilities, trainScaleEnsemble, type FeatureSet } from '@scarce/train';
import { meanAndStd, scoreHead, stackFeatures, syntheticLabelConfidence } from '../packages/cli/src/benchmark.js';
import { loadRunConfig } from '../packages/cli/src/config.js';
import { featuresByRecord, loadRunBackbone, loadRunData } from '../packages/cli/src/pipeline.js';
import { exitOnInputError } from './exit-on-input-error.js';

exitOnInputError('Usage is in the header of scripts/select-synthetic-count.ts.');

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: 'runs/evaluate-synth/breastmnist' },
    counts: { type: 'string', default: '0,25,50,100,200,500' },
    config: { type: 'string', default: 'examples/breastmnist.json' },
    seeds: { type: 'string', default: '0,1,2' },
    'min-confidence': { type: 'string', default: '0' },
    'with-augmented': { type: 'boolean', default: false },
  },
});

/** Parses a comma-separated list of whole numbers, or stops with a message naming the option. */
function wholeNumbers(name: string, text: string): number[] {
  const items = text.split(',');
  const values = items.map(Number);
  if (items.some((item) => item.trim() === '') || values.some((value) => !Number.isInteger(value) || value < 0)) {
    console.error(`Invalid --${name} '${text}': expected whole numbers of 0 or more, separated by commas.`);
    process.exit(2);
  }
  return values;
}

const counts = wholeNumbers('counts', flags.counts);
const headSeeds = wholeNumbers('seeds', flags.seeds);
const confidenceText = flags['min-confidence'];
const minConfidences = [...new Set(confidenceText.split(','))].map((item) => {
  const value = Number(item);
  if (item.trim() === '' || !(value >= 0 && value < 1)) {
    console.error(`Invalid --min-confidence '${confidenceText}': expected probabilities in [0, 1), separated by commas.`);
    process.exit(2);
  }
  return value;
});
const runFolders = (await readdir(flags.runs, { withFileTypes: true }).catch(() => [])).filter((entry) => entry.isDirectory() && /^seed-\d+$/.test(entry.name)).map((entry) => entry.name);
if (runFolders.length === 0) {
  console.error(`No seed-N folders in ${flags.runs}: run scripts/evaluate-synth.ts --parts breastmnist first, or pass its breastmnist folder with --runs.`);
  process.exit(2);
}

await selectBackend({ log: () => {} });
const runConfig = await loadRunConfig(flags.config);
const dataset = await loadRunData(runConfig);
const train = recordsOfSplit(dataset, 'train');
const validation = recordsOfSplit(dataset, 'val');
const mirroredValidation = runConfig.train.testTimeFlip ? validation.map(mirrorImage) : [];
const { backbones } = await loadRunBackbone(runConfig);
// The script reads every run's features through the cache, even where the config turns the cache off.
const featureSettings = { ...runConfig.train, featureCache: typeof runConfig.train.featureCache === 'string' ? runConfig.train.featureCache : undefined };
const numClasses = dataset.classNames.length;
const { head } = runConfig.train;
// The heads train for a fixed number of epochs and keep their last weights, as the demo's do.
const fixedLength = { epochs: head.epochs, earlyStopping: { monitor: 'loss', patience: head.epochs, restoreBestWeights: false } };

/** Reads a folder of augmented views and checks that every one derives from a train image. */
async function readTrainViews(folder: string): Promise<ImageRecord[]> {
  const views = (await readShardFolder(folder)).records;
  const leaked = views.findIndex((record) => record.split !== 'train');
  if (leaked >= 0) {
    console.error(`Row ${leaked} of ${folder} derives from a ${views[leaked].split} image; the validation split must stay unseen. Draw the views from the train split alone.`);
    process.exit(2);
  }
  return views;
}

type Scores = { auc: number[]; accuracy: number[]; syntheticUsed: number[] };
/** Scores by minimum confidence, then by synthetic images per class. */
const scores = new Map<number, Map<number, Scores>>(minConfidences.map((confidence) => [confidence, new Map(counts.map((count) => [count, { auc: [], accuracy: [], syntheticUsed: [] }]))]));
for (const folder of runFolders.sort()) {
  const synthetic = (await readShardFolder(join(flags.runs, folder, 'synthetic'))).records;
  const augmented = flags['with-augmented'] ? await readTrainViews(join(flags.runs, folder, 'augmented')) : [];
  const records: ImageRecord[] = [...train, ...validation, ...mirroredValidation, ...synthetic, ...augmented];
  const { features: featuresOf, widths, featureSize: size } = await featuresByRecord(backbones, records, featureSettings, () => {}, true);
  const scored = stackFeatures(validation, featuresOf, size);
  const mirrored = runConfig.train.testTimeFlip ? stackFeatures(mirroredValidation, featuresOf, size).features : null;
  const shuffled = Array.from({ length: numClasses }, (_, label) => new Random(label).shuffle(synthetic.filter((record) => record.label === label)));
  const confidence = new Map<ImageRecord, number>();
  if (minConfidences.some((value) => value > 0)) {
    // The filter's head trains on the train images alone, so the validation split only measures.
    const scoresOfLabels = await syntheticLabelConfidence(synthetic, { train, val: [] }, featuresOf, size, numClasses, { ...runConfig.train, trainOnValidation: true }, 0, widths);
    synthetic.forEach((record, i) => confidence.set(record, scoresOfLabels[i]));
  }

  for (const minConfidence of minConfidences) {
    const keptByClass = shuffled.map((images) => images.filter((record) => minConfidence === 0 || confidence.get(record)! >= minConfidence));
    for (const count of counts) {
      // Without synthetic images the filter changes nothing: score that row once.
      if (count === 0 && minConfidence !== minConfidences[0]) continue;
      const chosen = keptByClass.flatMap((images) => images.slice(0, count));
      const rows = stackFeatures([...train, ...augmented, ...chosen], featuresOf, size);
      const cell = scores.get(minConfidence)!.get(count)!;
      cell.syntheticUsed.push(chosen.length);
      for (const seed of headSeeds) {
        const training = await trainScaleEnsemble(rows, { features: new Float32Array(0), labels: [] }, numClasses, { ...head, ...fixedLength, runtime: runConfig.train.runtime, seed }, widths);
        const report = evaluateProbabilities(scoreHead(training.ensemble, scored.features, mirrored), scored.labels, numClasses);
        training.ensemble.dispose();
        cell.auc.push(report.auc);
        cell.accuracy.push(report.accuracy);
      }
    }
  }
  console.error(`${folder}: ${synthetic.length} synthetic images scored`);
}
backbones.forEach((backbone) => backbone.model.dispose());

const viewsNote = flags['with-augmented'] ? ' and their augmented views' : '';
console.log(`Validation split (${validation.length} images${runConfig.train.testTimeFlip ? ', each scored with its mirror' : ''}), heads of ${flags.config} trained on ${train.length} real train images${viewsNote} plus N synthetic per class; GAN runs ${runFolders.join(', ')}; head seeds ${headSeeds.join(', ')}\n`);
console.log('| min confidence | synthetic per class | synthetic used (mean) | validation AUC | validation accuracy |\n| ---: | ---: | ---: | --- | --- |');
const format = (values: number[]) => {
  const { mean, std } = meanAndStd(values);
  return `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
};
for (const [minConfidence, byCount] of scores) {
  for (const [count, { auc, accuracy, syntheticUsed }] of byCount) {
    if (auc.length === 0) continue;
    console.log(`| ${count === 0 ? 'none' : minConfidence} | ${count} | ${Math.round(syntheticUsed.reduce((sum, value) => sum + value, 0) / syntheticUsed.length)} | ${format(auc)} | ${format(accuracy)} |`);
  }
}
