import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EarlyStopping, resolveMode, type EarlyStoppingOptions } from '@scarce/train';

/** Feeds values to early stopping as a training loop would; returns epochs run, the stop and restore points. */
function replay(values: number[], options: EarlyStoppingOptions) {
  const earlyStopping = new EarlyStopping(options);
  let snapshotEpoch: number | null = null;
  let epochsRun = 0;
  for (const [epoch, value] of values.entries()) {
    const decision = earlyStopping.onEpochEnd(epoch, { [earlyStopping.monitor]: value });
    epochsRun = epoch + 1;
    if (decision.snapshot) snapshotEpoch = epoch;
    if (decision.stop) break;
  }
  return { epochsRun, stoppedEpoch: earlyStopping.stoppedEpoch, bestEpoch: earlyStopping.bestEpoch, snapshotEpoch, best: earlyStopping.best };
}

const cases: Array<{ name: string; values: number[]; options: EarlyStoppingOptions; epochsRun: number; bestEpoch: number; snapshotEpoch?: number | null }> = [
  // Keras's docstring example: a loss that never improves after the first epoch runs 4 epochs with patience 3.
  { name: 'flat loss stops after patience', values: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], options: { monitor: 'loss', patience: 3 }, epochsRun: 4, bestEpoch: 0 },
  { name: 'patience 0 stops at first non-improvement', values: [3, 2, 2.5, 1], options: { monitor: 'val_loss' }, epochsRun: 3, bestEpoch: 1 },
  { name: 'improving loss runs all epochs', values: [5, 4, 3, 2, 1], options: { patience: 1 }, epochsRun: 5, bestEpoch: 4 },
  { name: 'min delta ignores small gains', values: [1, 0.995, 0.99, 0.985, 0.98], options: { minDelta: 0.01, patience: 2 }, epochsRun: 3, bestEpoch: 0 },
  { name: 'max mode for accuracy', values: [0.5, 0.7, 0.6, 0.65, 0.69, 0.8], options: { monitor: 'val_accuracy', patience: 3 }, epochsRun: 5, bestEpoch: 1 },
  { name: 'auc is maximised', values: [0.6, 0.9, 0.8, 0.95], options: { monitor: 'val_auc', patience: 2 }, epochsRun: 4, bestEpoch: 3 },
  { name: 'start from epoch delays monitoring', values: [1, 2, 3, 4, 5, 6], options: { startFromEpoch: 3, patience: 1 }, epochsRun: 5, bestEpoch: 3 },
  // A baseline never beaten: best still moves, but the wait is never reset, so training stops at
  // the first epoch without improvement once the wait reaches patience (epoch 3 here, as in Keras).
  { name: 'baseline not beaten stops after patience', values: [0.9, 0.8, 0.85, 0.7, 0.6], options: { baseline: 0.5, patience: 2, restoreBestWeights: true }, epochsRun: 3, bestEpoch: 1, snapshotEpoch: 1 },
  { name: 'baseline beaten resets patience', values: [0.9, 0.4, 0.45, 0.42, 0.41, 0.43], options: { baseline: 0.5, patience: 2 }, epochsRun: 4, bestEpoch: 1 },
  { name: 'restore best without early stop', values: [3, 1, 2, 2.5], options: { patience: 10, restoreBestWeights: true }, epochsRun: 4, bestEpoch: 1, snapshotEpoch: 1 },
  { name: 'restore best after early stop', values: [3, 1, 2, 2.5, 2.6], options: { patience: 2, restoreBestWeights: true }, epochsRun: 4, bestEpoch: 1, snapshotEpoch: 1 },
];

for (const example of cases) {
  test(`early stopping: ${example.name}`, () => {
    const result = replay(example.values, example.options);
    assert.equal(result.epochsRun, example.epochsRun, 'epochs run');
    assert.equal(result.bestEpoch, example.bestEpoch, 'best epoch');
    if (example.snapshotEpoch !== undefined) assert.equal(result.snapshotEpoch, example.snapshotEpoch, 'epoch whose weights are restored');
  });
}

test('early stopping never stops at epoch 0', () => {
  const result = replay([1], { patience: 0 });
  assert.equal(result.stoppedEpoch, undefined);
});

test('early stopping names a missing monitor', () => {
  const earlyStopping = new EarlyStopping({ monitor: 'val_auc' });
  assert.throws(() => earlyStopping.onEpochEnd(0, { val_loss: 1 }), /'val_auc', which is not logged\. Logged values: val_loss/);
});

test('early stopping auto mode by metric name', () => {
  assert.equal(resolveMode('val_loss', 'auto'), 'min');
  assert.equal(resolveMode('loss', 'auto'), 'min');
  assert.equal(resolveMode('val_accuracy', 'auto'), 'max');
  assert.equal(resolveMode('val_auc', 'auto'), 'max');
  assert.equal(resolveMode('val_auc', 'min'), 'min');
  assert.throws(() => resolveMode('val_widget', 'auto'), /Set mode to 'min' or 'max'/);
});

test('early stopping summary is 1-based', () => {
  const earlyStopping = new EarlyStopping({ patience: 1, restoreBestWeights: true });
  for (const [epoch, value] of [2, 1, 3, 4].entries()) {
    if (earlyStopping.onEpochEnd(epoch, { val_loss: value }).stop) break;
  }
  assert.equal(earlyStopping.summary(), 'early stopping: stopped early at epoch 3; best epoch 2 (val_loss 1.0000), restored weights of epoch 2');
});

test('early stopping summary without monitored epochs', () => {
  const earlyStopping = new EarlyStopping({ patience: 2, startFromEpoch: 30, restoreBestWeights: true });
  for (let epoch = 0; epoch < 5; epoch++) assert.equal(earlyStopping.onEpochEnd(epoch, { val_loss: 1 / (epoch + 1) }).snapshot, false);
  assert.equal(earlyStopping.monitoredEpochs, 0);
  assert.equal(earlyStopping.summary(), "early stopping: ran all epochs; no epoch had a value of val_loss to compare (startFromEpoch 30, or only NaN values), so the last epoch's weights were kept");
});
