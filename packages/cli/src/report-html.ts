import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@scarce/core';
import { comparisonFileName, NEAREST_REAL_FILE } from '@scarce/synth';
import { describeInputSizes, inputSizes } from './config.js';
import type { RunMetrics } from './pipeline.js';
import { renderReportPlots, type ReportPlot } from './report-plots.js';
import { FIGURES_FOLDER, REAL_SAMPLES_FILE, TRANSFORM_PREFIX } from './report-figures.js';
import { escapeHtml, renderValue, valueAt } from './report-values.js';
import { REPORT_STYLE } from './report-style.js';

/** File name of the HTML report in a run folder. */
export const HTML_REPORT_FILE = 'report.html';

/** A PNG of the run folder, embedded in the report as a data: URI. */
interface ReportImage {
  title: string;
  caption: string;
  /** Path relative to the run folder. */
  file: string;
  dataUri: string;
}

const number = (value: number, digits = 3) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

async function readImage(runDir: string, file: string, title: string, caption: string): Promise<ReportImage | undefined> {
  const bytes = await readFile(join(runDir, file)).catch(() => undefined);
  if (bytes === undefined) return undefined;
  return { title, caption, file, dataUri: `data:image/png;base64,${bytes.toString('base64')}` };
}

/** Reads every image the run wrote that the report shows, skipping those a run left out. */
async function readRunImages(runDir: string, metrics: RunMetrics): Promise<ReportImage[]> {
  const seed = metrics.seed;
  const images = [
    await readImage(runDir, join(FIGURES_FOLDER, REAL_SAMPLES_FILE), 'Real train images', 'The first real train images of each class.'),
    await readImage(runDir, join('synthetic', 'samples.png'), 'Synthetic images', `Images from the GAN, one row per class (run seed ${seed}).`),
    await readImage(runDir, join('augmented', 'examples.png'), 'Augmented views', 'The first train images (left) beside their views as written to the shards, with every configured transform.'),
  ];
  for (const [label, className] of metrics.dataset.classNames.entries()) {
    const caption = `Real train images of ${className} beside synthetic ones of the same class.`;
    images.push(await readImage(runDir, join('synthetic', comparisonFileName(label, className)), `Real and synthetic: ${className}`, caption));
  }
  const nearestCaption = 'Synthetic images, each beside its nearest real train image in backbone features, to spot copies of the train set.';
  images.push(await readImage(runDir, join('synthetic', NEAREST_REAL_FILE), 'Nearest real images', nearestCaption));
  const figures = await readdir(join(runDir, FIGURES_FOLDER)).catch(() => [] as string[]);
  for (const file of figures.filter((name) => name.startsWith(TRANSFORM_PREFIX) && name.endsWith('.png')).sort()) {
    const transform = file.slice(TRANSFORM_PREFIX.length, -'.png'.length);
    const setting = JSON.stringify(metrics.config.augment.transforms[transform]);
    images.push(await readImage(runDir, join(FIGURES_FOLDER, file), `Transform: ${transform}`, `Only ${transform} (${setting}) on a few train images, each at the left of its views.`));
  }
  return images.filter((image): image is ReportImage => image !== undefined);
}

/** Reads the GAN's epoch log, `synthetic/history.jsonl`, when the run trained one. */
async function readGanHistory(runDir: string): Promise<Array<Record<string, number>>> {
  const text = await readFile(join(runDir, 'synthetic', 'history.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, number>);
}

/** Returns the synthetic-quality measurements a run recorded: top-level fields named like `synthQuality`, and `synth.quality`. */
export function findQualitySections(metrics: RunMetrics): Array<{ name: string; value: unknown }> {
  const record = metrics as unknown as Record<string, unknown>;
  const sections = Object.keys(record)
    .filter((key) => /quality/i.test(key) && record[key] !== null && record[key] !== undefined)
    .map((key) => ({ name: key, value: record[key] }));
  const synth = metrics.synth as Record<string, unknown> | null;
  if (synth !== null && synth.quality !== undefined && synth.quality !== null) sections.push({ name: 'synth.quality', value: synth.quality });
  return sections;
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, numericFrom = 1): string {
  const head = header.map((cell, i) => `<th${i >= numericFrom ? ' class="num"' : ''}>${cell}</th>`).join('');
  const body = rows.map((row) => `<tr>${row.map((cell, i) => `<td${i >= numericFrom ? ' class="num"' : ''}>${cell}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function runSection(metrics: RunMetrics): string {
  const { config, dataset } = metrics;
  const totalSeconds = Object.values(metrics.timings).reduce((sum, seconds) => sum + seconds, 0);
  const facts: Array<[string, string]> = [
    ['data', `<code>${escapeHtml(dataset.path)}</code>`],
    ['classes', escapeHtml(dataset.classNames.join(', '))],
    ['real images', `train ${dataset.splits.train}, val ${dataset.splits.val}, test ${dataset.splits.test}`],
    ['backend', escapeHtml(metrics.backend)],
    ['frozen backbone ran in', escapeHtml(metrics.inferenceRuntime ?? 'tfjs')],
    ['training steps ran in', escapeHtml(metrics.trainingRuntime ?? 'tfjs')],
    ['run seed', String(metrics.seed)],
    ['head seeds', config.train.seeds.join(', ')],
    ['backbone', `<code>${escapeHtml(config.train.backbone.split('/').pop() ?? '')}</code> at ${describeInputSizes(config.train)}${inputSizes(config.train).length > 1 ? ' (one head per size, probabilities averaged)' : ''}, ${escapeHtml(config.train.strategy)}`],
    config.train.trainOnValidation
      ? ['head training', `${config.train.head.epochs} epochs on each mix plus the validation images (mixes with real images), no early stopping`]
      : ['early stopping', `${escapeHtml(config.train.earlyStopping.monitor)}, patience ${config.train.earlyStopping.patience}, at most ${config.train.head.epochs} epochs`],
    ['test-time flips', config.train.testTimeFlip ? "yes: val and test scores average each image's probabilities with its mirror's; early stopping and the training curves score each image alone" : 'no'],
    ['started', escapeHtml(metrics.startedAt)],
    ['scarce', escapeHtml(metrics.toolkitVersion)],
  ];
  const timings = table(
    ['stage', 'seconds'],
    [...Object.entries(metrics.timings).map(([stage, seconds]) => [escapeHtml(stage), String(seconds)]), ['<strong>total</strong>', `<strong>${totalSeconds.toFixed(1)}</strong>`]],
  );
  const factList = facts.map(([name, value]) => `<dt>${name}</dt><dd>${value}</dd>`).join('\n');
  return `<section id="run"><h2>Run</h2>\n<div class="columns"><dl class="facts">\n${factList}\n</dl>\n<div><h3>Timings</h3>\n${timings}</div>${memoryTable(metrics)}</div>\n${choicesTable(metrics)}</section>`;
}

/** Tabulates how each setting was chosen, as the config records it in `settingsChosenBy`, beside its value. */
function choicesTable(metrics: RunMetrics): string {
  const chosen = Object.entries(metrics.config.settingsChosenBy ?? {});
  if (chosen.length === 0) return '<p class="muted">The config records no choice of settings (<code>settingsChosenBy</code>).</p>';
  const rows = chosen.map(([path, how]) => [`<code>${escapeHtml(path)}</code>`, `<code>${escapeHtml(JSON.stringify(valueAt(metrics.config, path)) ?? 'unset')}</code>`, escapeHtml(how)]);
  const note = '<p class="muted">The test split only measures: no setting above was chosen on it.</p>';
  return `<h3>How the settings were chosen</h3>\n<div class="scroll">${table(['setting', 'value', 'chosen by'], rows, 3)}</div>\n${note}`;
}

/** Tabulates each mix's peak memory, which metrics written before it was recorded lack. */
function memoryTable(metrics: RunMetrics): string {
  const measured = metrics.mixes.filter((mix) => mix.memory !== undefined);
  if (measured.length === 0) return '';
  const megabytes = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  const rows = measured.map((mix) => [escapeHtml(mix.mix), megabytes(mix.memory.peakRssBytes), megabytes(mix.memory.peakTensorBytes)]);
  const note = '<p class="muted">Resident set: the highest so far in the process. Tensors: the most tfjs held at an epoch end.</p>';
  return `<div><h3>Peak memory while each mix trained</h3>\n${table(['mix', 'resident set (MiB)', 'tensors (MiB)'], rows)}\n${note}</div>`;
}

function scoreTable(metrics: RunMetrics): string {
  const several = metrics.config.train.seeds.length > 1;
  const meanStd = (value: { mean: number; std: number }) => (several ? `${number(value.mean)} ± ${number(value.std)}` : number(value.mean));
  const best = Math.max(...metrics.mixes.map((mix) => mix.testAccuracy.mean));
  const rows = metrics.mixes.map((mix) => [
    `${mix.testAccuracy.mean === best ? '<strong>' : ''}${escapeHtml(mix.mix)}${mix.testAccuracy.mean === best ? '</strong>' : ''}`,
    String(mix.rows.real),
    String(mix.rows.augmented),
    String(mix.rows.synthetic),
    mix.seeds.map((seed) => `${seed.bestEpoch}/${seed.epochsRun}`).join(', '),
    meanStd(mix.testAccuracy),
    meanStd(mix.testAuc),
  ]);
  return table(['mix', 'real', 'augmented', 'synthetic', 'best / run epochs', 'test accuracy', 'test AUC'], rows);
}

function plotFigure(plot: ReportPlot): string {
  return `<figure class="plot" id="plot-${plot.id}" data-plot="${plot.id}"><h3>${escapeHtml(plot.title)}</h3>\n${plot.svg}\n<figcaption>${escapeHtml(plot.caption)}</figcaption></figure>`;
}

function imageFigure(image: ReportImage): string {
  return `<figure class="image"><h3>${escapeHtml(image.title)}</h3><img src="${image.dataUri}" alt="${escapeHtml(image.title)}"><figcaption>${escapeHtml(image.caption)} <code>${escapeHtml(image.file)}</code></figcaption></figure>`;
}

/** Renders the self-contained HTML report: every image a data: URI, every plot inline SVG, no scripts. */
export function renderHtmlReport(metrics: RunMetrics, plots: readonly ReportPlot[], images: readonly ReportImage[]): string {
  const byId = new Map(plots.map((plot) => [plot.id, plot]));
  const curves = ['loss', 'validation', 'fine-tune'].flatMap((id) => (byId.has(id) ? [plotFigure(byId.get(id)!)] : []));
  const quality = findQualitySections(metrics);
  const sections = [
    runSection(metrics),
    `<section id="scores"><h2>Test scores per mix</h2>\n<p>Each classifier is measured once on the real test split, which chose nothing.</p>\n${scoreTable(metrics)}\n${byId.has('scores') ? plotFigure(byId.get('scores')!) : ''}</section>`,
    `<section id="curves"><h2>Training curves</h2>\n${curves.join('\n')}</section>`,
    byId.has('confusion') ? `<section id="confusion"><h2>Confusion matrices</h2>\n${plotFigure(byId.get('confusion')!)}</section>` : '',
    images.length > 0 ? `<section id="images"><h2>Images</h2>\n${images.map(imageFigure).join('\n')}</section>` : '',
    quality.length > 0 || byId.has('gan')
      ? `<section id="gan"><h2>GAN and synthetic quality</h2>\n${metrics.synth === null ? '' : `<p>GAN: ${metrics.synth.epochsCompleted} epochs, ${metrics.synth.steps} steps in ${metrics.synth.seconds} s in ${escapeHtml(metrics.synth.trainingRuntime ?? 'tfjs')}, stopped by ${metrics.synth.stoppedBy === 'timeBudget' ? 'the time budget' : 'the epoch limit'}.${metrics.synth.filtered === undefined ? '' : ` The mixes used ${metrics.synth.filtered.kept} of its ${metrics.synth.filtered.sampled} synthetic images: those that passed <code>synth.minConfidence</code> ${metrics.config.synth.minConfidence}.`}</p>`}\n` +
        `${quality.map((section) => `<h3>${escapeHtml(section.name)}</h3>\n${renderValue(section.value)}`).join('\n')}\n${byId.has('gan') ? plotFigure(byId.get('gan')!) : ''}</section>`
      : '',
    `<section id="config"><h2>Config</h2>\n<pre>${escapeHtml(JSON.stringify(metrics.config, null, 2))}</pre></section>`,
  ].filter((section) => section !== '');
  const navigation = [...sections.join('\n').matchAll(/<section id="([^"]+)"><h2>([^<]+)<\/h2>/g)].map((match) => `<a href="#${match[1]}">${match[2]}</a>`).join(' · ');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scarce run ${escapeHtml(metrics.name)}</title>
<style>${REPORT_STYLE}</style>
</head>
<body>
<main>
<h1>scarce run <code>${escapeHtml(metrics.name)}</code></h1>
<nav>${navigation}</nav>
${sections.join('\n')}
</main>
</body>
</html>
`;
}

/** Renders the plots, reads the run's images and writes `report.html` into the run folder. */
export async function writeHtmlReport(runDir: string, metrics: RunMetrics): Promise<string> {
  const plots = await renderReportPlots(metrics, await readGanHistory(runDir));
  const images = await readRunImages(runDir, metrics);
  const path = join(runDir, HTML_REPORT_FILE);
  await writeFileAtomic(path, renderHtmlReport(metrics, plots, images));
  return path;
}
