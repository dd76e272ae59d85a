/**
 * Chooses how many synthetic images per class join the real train images, on the validation
 * split. --runs is evaluate-synth's `breastmnist` folder, with one `seed-N/synthetic` shard
 * folder per GAN seed (each GAN trained on the train split). For each run and each N, heads with
 * the run config's settings train on the real train images plus the first N synthetic images of
 * each class, in a seeded shuffle, and are scored on the validation split. The test split is
 * never read.
 *
 *   node --import tsx scripts/select-synthetic-count.ts [--runs runs/evaluate-synth/breastmnist]
 *     [--counts 0,25,50,100,200,500] [--config examples/breastmnist.json] [--seeds 0,1,2]
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Random, readShardFolder, recordsOfSplit, selectBackend, type ImageRecord } from '@scarce/core';
import { defaultCacheDirectory, evaluateProbabilities, extractFeaturesCached, FeatureCache, loadBackbone, trainHead, type FeatureSet } from '@scarce/train';
import { meanAndStd, stackFeatures } from '../packages/cli/src/benchmark.js';
import { loadRunConfig } from '../packages/cli/src/config.js';
import { loadRunData } from '../packages/cli/src/pipeline.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: 'runs/evaluate-synth/breastmnist' },
    counts: { type: 'string', default: '0,25,50,100,200,500' },
    config: { type: 'string', default: 'examples/breastmnist.json' },
    seeds: { type: 'string', default: '0,1,2' },
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
const backbone = await loadBackbone(runConfig.train.backbone, { inputSize: runConfig.train.inputSize, featureLayer: runConfig.train.featureLayer });
// The script reads every run's features through the cache, even where the config turns the cache off.
const cache = new FeatureCache(typeof runConfig.train.featureCache === 'string' ? runConfig.train.featureCache : defaultCacheDirectory(), backbone);
const numClasses = dataset.classNames.length;
const { head } = runConfig.train;
// The heads train for a fixed number of epochs and keep their last weights, as the demo's do.
const fixedLength = { epochs: head.epochs, earlyStopping: { monitor: 'loss', patience: head.epochs, restoreBestWeights: false } };

const scores = new Map<number, { auc: number[]; accuracy: number[] }>(counts.map((count) => [count, { auc: [], accuracy: [] }]));
for (const folder of runFolders.sort()) {
  const synthetic = (await readShardFolder(join(flags.runs, folder, 'synthetic'))).records;
  const records: ImageRecord[] = [...train, ...validation, ...synthetic];
  const { features } = await extractFeaturesCached(backbone, records, cache, { batchSize: runConfig.train.featureBatchSize, quiet: true });
  const size = backbone.featureSize;
  const featuresOf = new Map(records.map((record, i) => [record, features.subarray(i * size, (i + 1) * size)]));
  const scored = stackFeatures(validation, featuresOf, size);
  const shuffled = Array.from({ length: numClasses }, (_, label) => new Random(label).shuffle(synthetic.filter((record) => record.label === label)));

  for (const count of counts) {
    const rows = stackFeatures([...train, ...shuffled.flatMap((images) => images.slice(0, count))], featuresOf, size);
    for (const seed of headSeeds) {
      const training = await trainHead(rows, { features: new Float32Array(0), labels: [] }, numClasses, { ...head, ...fixedLength, runtime: runConfig.train.runtime, seed });
      const report = evaluateProbabilities(training.head.predict(scored.features), scored.labels, numClasses);
      training.head.dispose();
      scores.get(count)!.auc.push(report.auc);
      scores.get(count)!.accuracy.push(report.accuracy);
    }
  }
  console.error(`${folder}: ${synthetic.length} synthetic images scored`);
}
backbone.model.dispose();

console.log(`Validation split (${validation.length} images), heads of ${flags.config} trained on ${train.length} real train images plus N synthetic per class; GAN runs ${runFolders.join(', ')}; head seeds ${headSeeds.join(', ')}\n`);
console.log('| synthetic per class | validation AUC | validation accuracy |\n| ---: | --- | --- |');
const format = (values: number[]) => {
  const { mean, std } = meanAndStd(values);
  return `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
};
for (const [count, { auc, accuracy }] of scores) console.log(`| ${count} | ${format(auc)} | ${format(accuracy)} |`);
