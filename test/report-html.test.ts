import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodePngSync } from '@scarce/core';
import { parseRunConfig } from '../packages/cli/src/config.js';
import type { SeedResult } from '../packages/cli/src/benchmark.js';
import type { RunMetrics } from '../packages/cli/src/pipeline.js';
import { writeHtmlReport } from '../packages/cli/src/report-html.js';
import { renderReportPlots } from '../packages/cli/src/report-plots.js';
import { renderValue } from '../packages/cli/src/report-values.js';
import { temporaryFolder } from './helpers.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function seedResult(seed: number, epochs: number, bestEpoch: number, fineTuned: boolean): SeedResult {
  const history = Array.from({ length: epochs }, (_, i) => ({ epoch: i + 1, loss: 1 / (i + 1), val_loss: 0.5 + Math.abs(i + 1 - bestEpoch) * 0.05, val_accuracy: 0.7 + seed * 0.01, val_auc: 0.8, learning_rate: 1e-3 }));
  const report = { loss: 0.5, accuracy: 0.75 + seed * 0.05, auc: 0.8 + seed * 0.02, confusion: [[8, 2], [3, 7]], perClass: [] };
  return {
    seed,
    epochsRun: epochs,
    bestEpoch,
    stoppedEpoch: epochs,
    val: { loss: 0.5, accuracy: 0.7, auc: 0.8 },
    test: report,
    history,
    fineTune: fineTuned ? { epochsRun: 3, bestEpoch: 2, stoppedEpoch: null, history: history.slice(0, 3) } : null,
  };
}

/** Builds the metrics of a run with the given mixes, seeds and stages, as `scarce run` writes them. */
function runMetrics(options: { mixes: string[]; seeds: number[]; synth: boolean; fineTuned?: boolean; extra?: Record<string, unknown> }): RunMetrics {
  const config = parseRunConfig({ name: 'fake', data: { path: 'data.npz' }, train: { seeds: options.seeds, mixes: options.mixes } }, 'fake.json', '/data');
  const mixes = options.mixes.map((mix) => {
    const seeds = options.seeds.map((seed) => seedResult(seed, 12, 6, options.fineTuned ?? false));
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
    return {
      mix,
      rows: { real: 20, augmented: mix.includes('augmented') ? 40 : 0, synthetic: mix.includes('synthetic') ? 20 : 0 },
      seeds,
      testAccuracy: { mean: mean(seeds.map((seed) => seed.test.accuracy)), std: 0.03 },
      testAuc: { mean: mean(seeds.map((seed) => seed.test.auc)), std: 0.01 },
      memory: { peakRssBytes: 300 * 2 ** 20, peakTensorBytes: 12 * 2 ** 20 },
    };
  });
  return {
    toolkitVersion: '0.1.0',
    name: 'fake',
    seed: 7,
    backend: 'wasm',
    inferenceRuntime: 'onnxruntime',
    trainingRuntime: 'onnxruntime',
    startedAt: '2025-01-01T00:00:00.000Z',
    timings: { load: 0.1, synth: 3.2, train: 4.5 },
    dataset: { path: '/data/data.npz', classNames: ['benign', 'malignant'], splits: { train: 20, val: 10, test: 20 } },
    synth: options.synth ? { epochsCompleted: 3, steps: 9, stoppedBy: 'timeBudget', seconds: 3.1 } : null,
    mixes,
    config,
    ...options.extra,
  } as RunMetrics;
}

async function writePng(path: string, side: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const pixels = Uint8Array.from({ length: side * side }, (_, i) => (i * 7) % 256);
  await writeFile(path, encodePngSync({ pixels, height: side, width: side, channels: 1 }));
}

/** Returns the inline SVG of each plot figure, by the figure's data-plot id. */
function plotSvgs(html: string): Map<string, string> {
  const figures = [...html.matchAll(/<figure class="plot" id="[^"]+" data-plot="([^"]+)">([\s\S]*?)<\/figure>/g)];
  return new Map(figures.map((match) => [match[1], /<svg[\s\S]*<\/svg>/.exec(match[2])?.[0] ?? '']));
}

test('report html is self-contained', async () => {
  const runDir = await temporaryFolder();
  await writePng(join(runDir, 'figures', 'real-samples.png'), 16);
  await writePng(join(runDir, 'figures', 'transform-rotation.png'), 12);
  await writePng(join(runDir, 'augmented', 'examples.png'), 20);
  await writePng(join(runDir, 'synthetic', 'samples.png'), 24);
  await writePng(join(runDir, 'synthetic', 'real-vs-synthetic-1-malignant.png'), 24);
  await writePng(join(runDir, 'synthetic', 'nearest-real.png'), 24);
  const ganEpochs = [1, 2, 3].map((epoch) => JSON.stringify({ epoch, discriminatorLoss: 1 / epoch, generatorLoss: epoch / 3 }));
  await writeFile(join(runDir, 'synthetic', 'history.jsonl'), `${ganEpochs.join('\n')}\n`);
  const metrics = runMetrics({ mixes: ['real', 'real+augmented', 'synthetic'], seeds: [0, 1], synth: true, fineTuned: true });
  metrics.config.augment.transforms = { rotation: 10 };
  metrics.config.settingsChosenBy = { 'train.head.units': 'cross-validation on train + val' };

  const path = await writeHtmlReport(runDir, metrics);
  const html = await readFile(path, 'utf8');

  assert.equal(path, join(runDir, 'report.html'));
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'no network URL in src or href');
  assert.doesNotMatch(html, /<script|<link|@import|url\(\s*["']?https?:/i, 'no scripts, style sheets or remote CSS');
  const plots = plotSvgs(html);
  assert.deepEqual([...plots.keys()], ['scores', 'loss', 'validation', 'fine-tune', 'confusion', 'gan']);
  for (const [id, svg] of plots) {
    assert.match(svg, /^<svg [^>]*width="\d+"/, `${id}: an SVG with a width`);
    assert.match(svg, /<path|<rect|<line/, `${id}: the SVG draws marks`);
  }
  const images = [...html.matchAll(/<img src="([^"]+)"/g)].map((match) => match[1]);
  const alts = [...html.matchAll(/<img src="[^"]+" alt="([^"]+)"/g)].map((match) => match[1]);
  assert.deepEqual(alts, ['Real train images', 'Synthetic images', 'Augmented views', 'Real and synthetic: malignant', 'Nearest real images', 'Transform: rotation']);
  for (const source of images) {
    assert.match(source, /^data:image\/png;base64,/);
    assert.deepEqual([...Buffer.from(source.split(',')[1], 'base64').subarray(0, 8)], PNG_SIGNATURE);
  }
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((match) => match[1]);
  assert.equal(new Set(ids).size, ids.length, 'element ids are unique across the inline SVGs');
  assert.match(html, /<h3>Transform: rotation<\/h3>/);
  assert.match(html, /<td><code>train\.head\.units<\/code><\/td><td><code>256<\/code><\/td><td>cross-validation on train \+ val<\/td>/, 'how a setting was chosen, beside its value');
  assert.match(html, /0\.775 ± 0\.030/, 'mean ± standard deviation of test accuracy');
  assert.match(html, /<td>real\+augmented<\/td><td class="num">300<\/td><td class="num">12<\/td>/, 'peak memory in MiB');
});

test('report html error bars need seeds', async () => {
  const several = plotSvgs(await readFile(await writeHtmlReport(await temporaryFolder(), runMetrics({ mixes: ['real'], seeds: [0, 1, 2], synth: false })), 'utf8'));
  const single = plotSvgs(await readFile(await writeHtmlReport(await temporaryFolder(), runMetrics({ mixes: ['real'], seeds: [0], synth: false })), 'utf8'));

  assert.match(several.get('scores')!, /mark-rule role-mark/, 'error bars with three seeds');
  assert.doesNotMatch(single.get('scores')!, /mark-rule role-mark/, 'no error bars with one seed');
  assert.match(single.get('loss')!, /mark-rule role-mark/, 'the best epoch is marked on the loss curves');
  assert.deepEqual([...single.keys()], ['scores', 'loss', 'validation', 'confusion'], 'no GAN or fine-tuning plots without those stages');
});

test('report html renders quality generically', async () => {
  const quality = { frechetDistance: 12.34567, classes: [{ name: 'benign', precision: 0.5 }, { name: 'malignant', precision: 0.25, recall: 0.125 }] };
  const metrics = runMetrics({ mixes: ['real'], seeds: [0], synth: true, extra: { synthQuality: quality } });
  const html = await readFile(await writeHtmlReport(await temporaryFolder(), metrics), 'utf8');

  assert.match(html, /<h3>synthQuality<\/h3>/);
  assert.match(html, /<th>frechetDistance<\/th><td>12\.35<\/td>/);
  assert.match(html, /<th>name<\/th><th>precision<\/th><th>recall<\/th>/, 'an array of objects becomes a table with every key');
  assert.match(html, /<td>malignant<\/td><td>0\.25<\/td><td>0\.125<\/td>/);
});

test('renderValue escapes and formats', () => {
  const cases: Array<[unknown, string]> = [
    [0.123456, '0.1235'],
    [42, '42'],
    [1.5e-7, '1.500e-7'],
    [null, '<span class="muted">none</span>'],
    ['<b>&', '&#60;b&#62;&#38;'],
    [[1, 2], '1, 2'],
    [{ a: 1 }, '<div class="scroll"><table class="values"><tbody><tr><th>a</th><td>1</td></tr></tbody></table></div>'],
    [{ a: { b: [1, 2.5] } }, '<div class="scroll"><table class="values"><tbody><tr><th>a.b</th><td>1, 2.5</td></tr></tbody></table></div>'],
  ];
  for (const [value, html] of cases) assert.equal(renderValue(value), html, JSON.stringify(value));
});

test('renderValue tables records compactly', () => {
  const checkpoints = [
    { epoch: 10, features: { size: 1280 }, tstr: { auc: 0.5 }, perClass: [{ className: 'a', ratio: 0.5 }] },
    { epoch: 20, features: { size: 1280 }, tstr: { auc: 0.61234 }, perClass: [{ className: 'a', ratio: 0.75 }] },
  ];
  const html = renderValue({ selectedEpoch: 20, checkpoints });

  assert.match(html, /<th>selectedEpoch<\/th><td>20<\/td>/);
  assert.match(html, /<h4>checkpoints<\/h4>/, 'a list of records gets a table of its own');
  assert.match(html, /In every row: features\.size 1280\./, 'a column with one value is written once');
  assert.match(html, /<thead><tr><th>epoch<\/th><th>tstr\.auc<\/th><th>perClass\.a\.ratio<\/th><\/tr><\/thead>/, 'nested fields and labelled records become dotted columns');
  assert.match(html, /<tr><td>20<\/td><td>0\.6123<\/td><td>0\.75<\/td><\/tr>/);
});

test('loss caption follows restoreBestWeights', async () => {
  for (const restoreBestWeights of [true, false]) {
    const metrics = runMetrics({ mixes: ['real'], seeds: [0], synth: false });
    metrics.config.train.earlyStopping.restoreBestWeights = restoreBestWeights;
    const loss = (await renderReportPlots(metrics, [])).find((plot) => plot.id === 'loss');
    const expected = restoreBestWeights ? /dashed line marks the epoch whose weights early stopping kept/ : /dashed line marks the best epoch by val_loss; restoreBestWeights is off, so each head kept its last epoch's weights/;
    assert.match(loss?.caption ?? '', expected);
  }
});
