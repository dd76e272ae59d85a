/**
 * Chooses between feature extraction and fine-tuning by stratified k-fold cross-validation on the
 * train and validation splits together. In each fold the head trains on frozen features (the
 * feature-extraction score), then the last blocks and the head train together at a small
 * learning rate on the real images and their augmented views (the fine-tuning score). Inside
 * each fold, 15% of the training part is held out for early stopping. The test split is never read.
 *
 *   node --import tsx scripts/select-strategy.ts --size 128 --layer block_16_expand_relu --blocks 2
 *     --views 4 --lr 1e-4 --units 256 --ensemble 5 [--folds 5]
 */
import * as tf from '@tensorflow/tfjs';
import { loadDataset, Random, recordsOfSplit, selectBackend, type ImageRecord } from '@scarce/core';
import { augmentRecord, viewSeed } from '@scarce/augment';
import { evaluateProbabilities, fineTune, frozenActivations, loadBackbone, splitBackbone, tailFeatures, trainHead } from '@scarce/train';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const inputSize = option('size', 128);
const lastBlocks = option('blocks', 2);
const views = option('views', 4);
const learningRate = option('lr', 1e-4);
const folds = option('folds', 5);
const maxFolds = option('max-folds', folds);
const units = option('units', 256);
const ensemble = option('ensemble', 1);
const layerAt = process.argv.indexOf('--layer');
const featureLayer = layerAt > 0 ? process.argv[layerAt + 1] : undefined;

await selectBackend();
const dataset = await loadDataset('fixtures/breastmnist/breastmnist.npz');
const pool: ImageRecord[] = [...recordsOfSplit(dataset, 'train'), ...recordsOfSplit(dataset, 'val')];
const labels = pool.map((record) => record.label);
const numClasses = dataset.classNames.length;
const random = new Random(7);
const foldRows: number[][] = Array.from({ length: folds }, () => []);
for (let label = 0; label < numClasses; label++) {
  const rows = random.shuffle(labels.flatMap((value, row) => (value === label ? [row] : [])));
  rows.forEach((row, i) => foldRows[i % folds].push(row));
}

const transforms = { rotation: 10, widthShift: 0.08, heightShift: 0.08, zoom: 0.1, horizontalFlip: true, brightness: 0.1, fill: 'reflect' as const };
const viewRecords: ImageRecord[][] = await Promise.all(
  pool.map((record, row) => Promise.all(Array.from({ length: views }, (_, v) => augmentRecord({ ...record, split: 'train', sourceIndex: row }, transforms, viewSeed(3, row, v + 1), v + 1)))),
);

const backbone = await loadBackbone('fixtures/mobilenet_v2_0.35_224_notop', { inputSize, featureLayer });
const split = splitBackbone(backbone, { lastBlocks });
const started = Date.now();
const realActivations = await frozenActivations(split, backbone, pool);
const viewActivations = views > 0 ? await frozenActivations(split, backbone, viewRecords.flat()) : null;
console.error(`front: ${((Date.now() - started) / 1000).toFixed(1)} s for ${pool.length * (1 + views)} images; cut before ${split.cutBefore}`);
const initialWeights = split.tail.trainableWeights.map((weight) => weight.read().clone());

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const headScores: Array<{ accuracy: number; auc: number }> = [];
const tunedScores: Array<{ accuracy: number; auc: number }> = [];
for (let fold = 0; fold < maxFolds; fold++) {
  split.tail.trainableWeights.forEach((weight, i) => (weight.read() as tf.Variable).assign(initialWeights[i]));
  const rest = new Random(fold).shuffle(foldRows.filter((_, j) => j !== fold).flat());
  const stopRows = rest.slice(0, Math.round(rest.length * 0.15));
  const trainRows = rest.slice(stopRows.length);
  const gather = (source: tf.Tensor, rows: number[]) => tf.gather(source, tf.tensor1d(rows, 'int32'));
  const viewRows = trainRows.flatMap((row) => Array.from({ length: views }, (_, v) => row * views + v));
  const trainActs = tf.tidy(() => (views > 0 ? tf.concat([gather(realActivations, trainRows), gather(viewActivations!, viewRows)]) : gather(realActivations, trainRows)));
  const trainLabels = [...trainRows.map((row) => labels[row]), ...viewRows.map((row) => labels[Math.floor(row / views)])];
  const stopActs = gather(realActivations, stopRows);
  const stopLabels = stopRows.map((row) => labels[row]);
  const scoredActs = gather(realActivations, foldRows[fold]);
  const scoredLabels = foldRows[fold].map((row) => labels[row]);

  const head = (await trainHead(
    { features: await tailFeatures(split, trainActs), labels: trainLabels },
    { features: await tailFeatures(split, stopActs), labels: stopLabels },
    numClasses,
    { units, dropout: 0.5, ensemble, seed: fold },
  )).head;
  const before = evaluateProbabilities(head.predict(await tailFeatures(split, scoredActs)), scoredLabels, numClasses);
  const t0 = Date.now();
  const tuned = await fineTune(split, head, { activations: trainActs, labels: trainLabels }, { activations: stopActs, labels: stopLabels }, { learningRate, seed: fold, epochs: 30 });
  const after = evaluateProbabilities(head.predict(await tailFeatures(split, scoredActs)), scoredLabels, numClasses);
  headScores.push(before);
  tunedScores.push(after);
  console.error(
    `fold ${fold}: head ${before.accuracy.toFixed(3)}/${before.auc.toFixed(3)} -> tuned ${after.accuracy.toFixed(3)}/${after.auc.toFixed(3)}; ${tuned.summary}; ${((Date.now() - t0) / 1000).toFixed(0)} s, ${tuned.epochsRun} epochs of ${trainLabels.length} rows`,
  );
  head.dispose();
  tf.dispose([trainActs, stopActs, scoredActs]);
}
const summary = (scores: Array<{ accuracy: number; auc: number }>) => `${mean(scores.map((s) => s.accuracy)).toFixed(3)} / ${mean(scores.map((s) => s.auc)).toFixed(3)}`;
console.log(`size ${inputSize} layer ${featureLayer ?? 'out'} blocks ${lastBlocks} views ${views} lr ${learningRate} units ${units} ensemble ${ensemble}: head ${summary(headScores)}, fine-tuned ${summary(tunedScores)} (${maxFolds} of ${folds} folds)`);
