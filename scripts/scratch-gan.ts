import { loadDataset, recordsOfSplit, selectBackend } from '@scarce/core';
import { runSynth } from '@scarce/synth';
import { loadBackbone } from '@scarce/train';
await selectBackend({ log: () => {} });
const overrides = JSON.parse(process.argv[2] ?? '{}');
const name = process.argv[3] ?? 'x';
const dataset = await loadDataset('fixtures/breastmnist/breastmnist.npz');
const backbone = await loadBackbone('fixtures/mobilenet_v2_0.35_224_notop', { inputSize: 64 });
const { trained, quality } = await runSynth({ train: recordsOfSplit(dataset, 'train'), validation: recordsOfSplit(dataset, 'val') }, dataset.classNames, { timeBudgetSeconds: 90, checkpointEvery: 25, seed: 42, ...overrides }, {
  directory: `/tmp/gan-exp/${name}`, perClass: 50, seed: 42, overwrite: true, quality: { backbone, inputSize: 64, seed: 42 }, progress: false, log: () => {},
});
const rows = quality!.checkpoints.map((c: any) => [c.epoch, c.frechetDistance.toFixed(0), c.classConsistency.accuracy.toFixed(3), c.tstr.validation.auc.toFixed(3), c.precision.toFixed(2), c.recall.toFixed(3)]);
const cc = quality!.checkpoints.map((c: any) => c.classConsistency.accuracy);
const auc = quality!.checkpoints.map((c: any) => c.tstr.validation.auc);
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
console.log(`${name} ${JSON.stringify(overrides)}: epochs ${trained.epochsCompleted}, class consistency mean ${mean(cc).toFixed(3)} last3 ${mean(cc.slice(-3)).toFixed(3)}, val TSTR AUC mean ${mean(auc).toFixed(3)} last3 ${mean(auc.slice(-3)).toFixed(3)} max ${Math.max(...auc).toFixed(3)}`);
console.log(rows.map((r) => r.join(' ')).join('\n'));
trained.dispose();
