import { loadDataset, mirrorImage, Random, recordsOfSplit, selectBackend, type ImageRecord } from '@scarce/core';
import { augmentRecord, viewSeed } from '@scarce/augment';
import { averageProbabilities, evaluateProbabilities, extractFeaturesParallel, loadBackbone, trainHead } from '@scarce/train';

const arg = (name: string, fallback: number) => { const at = process.argv.indexOf(`--${name}`); return at > 0 ? Number(process.argv[at + 1]) : fallback; };
const foldSeed = arg('fold-seed', 7);
const views = 4, folds = 5;
await selectBackend();
const dataset = await loadDataset('fixtures/breastmnist/breastmnist.npz');
const pool: ImageRecord[] = [...recordsOfSplit(dataset, 'train'), ...recordsOfSplit(dataset, 'val')];
const labels = pool.map((r) => r.label);
const random = new Random(foldSeed);
const foldRows: number[][] = Array.from({ length: folds }, () => []);
for (let label = 0; label < 2; label++) {
  const rows = random.shuffle(labels.flatMap((v, row) => (v === label ? [row] : [])));
  rows.forEach((row, i) => foldRows[i % folds].push(row));
}
const viewRecords = await Promise.all(pool.flatMap((record, row) => Array.from({ length: views }, (_, v) => augmentRecord({ ...record, split: 'train', sourceIndex: row }, { horizontalFlip: true }, viewSeed(3, row, v + 1), v + 1))));
const mirrored = pool.map(mirrorImage);
const layers = ['block_3_expand_relu', 'block_6_expand_relu', 'block_10_expand_relu', 'block_13_expand_relu', 'block_16_expand_relu'];
type F = { pool: Float32Array; mirror: Float32Array; views: Float32Array; width: number };
const sets: Record<string, F> = {};
for (const size of [96, 128, 160]) {
  const b = await loadBackbone('fixtures/mobilenet_v2_0.35_224_notop', { inputSize: size, featureLayer: layers });
  sets[`${size}`] = { pool: await extractFeaturesParallel(b, pool, { quiet: true }), mirror: await extractFeaturesParallel(b, mirrored, { quiet: true }), views: await extractFeaturesParallel(b, viewRecords, { quiet: true }), width: b.featureSize };
}
const s = sets['128'];
sets['128sqrt'] = { pool: s.pool.map(Math.sqrt), mirror: s.mirror.map(Math.sqrt), views: s.views.map(Math.sqrt), width: s.width };
const pickRows = (m: Float32Array, w: number, rows: number[]) => { const out = new Float32Array(rows.length * w); rows.forEach((row, i) => out.set(m.subarray(row * w, (row + 1) * w), i * w)); return out; };
const demoHead = { units: 256, ensemble: 5, dropout: 0.7, labelSmoothing: 0.05, learningRate: 3e-4, epochs: 30, earlyStopping: { monitor: 'loss', patience: 30, restoreBestWeights: false } };
const scores: Record<string, { acc: number[]; auc: number[] }> = {};
const record = (name: string, r: { accuracy: number; auc: number }) => { scores[name] ??= { acc: [], auc: [] }; scores[name].acc.push(r.accuracy); scores[name].auc.push(r.auc); };
const mean = (v: number[]) => v.reduce((a, x) => a + x, 0) / v.length;
for (let fold = 0; fold < folds; fold++) {
  const rest = new Random(fold).shuffle(foldRows.filter((_, j) => j !== fold).flat());
  const restViews = rest.flatMap((row) => Array.from({ length: views }, (_, v) => row * views + v));
  const trainLabels = [...rest.map((r) => labels[r]), ...restViews.map((r) => labels[Math.floor(r / views)])];
  const scoredLabels = foldRows[fold].map((r) => labels[r]);
  const probs: Record<string, Float32Array> = {};
  for (const [name, f] of Object.entries(sets)) {
    const train = new Float32Array([...pickRows(f.pool, f.width, rest), ...pickRows(f.views, f.width, restViews)]);
    const { head } = await trainHead({ features: train, labels: trainLabels }, { features: new Float32Array(0), labels: [] }, 2, { ...demoHead, seed: fold });
    probs[name] = averageProbabilities(head.predict(pickRows(f.pool, f.width, foldRows[fold])), head.predict(pickRows(f.mirror, f.width, foldRows[fold])));
    record(name, evaluateProbabilities(probs[name], scoredLabels, 2));
    head.dispose();
  }
  const avg = (names: string[]) => { const out = new Float32Array(probs[names[0]].length); for (const n of names) probs[n].forEach((v, i) => (out[i] += v / names.length)); return out; };
  record('late 96+128', evaluateProbabilities(avg(['96', '128']), scoredLabels, 2));
  record('late 128+160', evaluateProbabilities(avg(['128', '160']), scoredLabels, 2));
  record('late 96+128+160', evaluateProbabilities(avg(['96', '128', '160']), scoredLabels, 2));
  record('late 128+128sqrt', evaluateProbabilities(avg(['128', '128sqrt']), scoredLabels, 2));
  console.error(`fold ${fold} done`);
}
for (const [name, v] of Object.entries(scores)) console.log(`seed ${foldSeed}: ${name} ${mean(v.acc).toFixed(3)} / ${mean(v.auc).toFixed(4)}`);
