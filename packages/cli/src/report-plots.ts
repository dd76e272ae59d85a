import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { RunMetrics } from './pipeline.js';

/** One plot of the HTML report: an inline SVG with a title and a caption. */
export interface ReportPlot {
  /** Short id, unique in the report; also prefixes the SVG's element ids. */
  id: string;
  title: string;
  caption: string;
  svg: string;
}

/** Epoch logs as `trainHead` and `fineTune` record them: `epoch` and one field per metric. */
type History = ReadonlyArray<Record<string, number>>;

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const CONFIG = {
  font: FONT,
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
  header: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
} as const;
/** Width and height of one facet panel, in CSS pixels. */
const PANEL = { width: 200, height: 140 };

/**
 * Renders a Vega-Lite spec to an SVG string without a browser. Element ids get `idPrefix`, because
 * several SVGs share one HTML document and vega numbers clip paths and gradients with counters
 * that any caller may reset (`resetSVGDefIds`).
 */
export async function renderVegaLite(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg.replace(/\bid="([^"]+)"/g, `id="${idPrefix}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#${idPrefix}-$1)`);
  } finally {
    view.finalize();
  }
}

/** Rows of the score chart: the mean, the mean ± one standard deviation, and each seed's score. */
function scoreRows(metrics: RunMetrics): Array<Record<string, unknown>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const mix of metrics.mixes) {
    for (const [metric, summary, pick] of [
      ['test accuracy', mix.testAccuracy, (seed: (typeof mix.seeds)[number]) => seed.test.accuracy],
      ['test AUC', mix.testAuc, (seed: (typeof mix.seeds)[number]) => seed.test.auc],
    ] as const) {
      rows.push({ kind: 'mean', mix: mix.mix, metric, value: summary.mean, low: summary.mean - summary.std, high: summary.mean + summary.std, seeds: mix.seeds.length });
      for (const seed of mix.seeds) rows.push({ kind: 'seed', mix: mix.mix, metric, value: pick(seed), seed: seed.seed });
    }
  }
  return rows;
}

/** Builds the bar chart of test accuracy and AUC per mix, with ± one standard deviation over seeds. */
export function scoreChartSpec(metrics: RunMetrics): TopLevelSpec {
  const mixOrder = metrics.mixes.map((mix) => mix.mix);
  const several = metrics.mixes.some((mix) => mix.seeds.length > 1);
  // Without a canvas package vega estimates text widths, so labels get room to spare before it cuts them.
  const x = { field: 'mix', type: 'nominal', sort: mixOrder, title: null, axis: { labelAngle: -30, labelLimit: 260 } } as const;
  const y = { type: 'quantitative', scale: { domain: [0, 1] }, title: null } as const;
  const layers: unknown[] = [
    {
      transform: [{ filter: "datum.kind === 'mean'" }],
      mark: { type: 'bar', width: { band: 0.7 } },
      encoding: { x, y: { ...y, field: 'value' }, color: { field: 'mix', type: 'nominal', sort: mixOrder, legend: null } },
    },
    {
      transform: [{ filter: "datum.kind === 'mean'" }],
      mark: { type: 'text', dy: -8, fontSize: 10 },
      encoding: { x, y: { ...y, field: several ? 'high' : 'value' }, text: { field: 'value', format: '.3f' } },
    },
  ];
  if (several) {
    layers.push(
      {
        transform: [{ filter: "datum.kind === 'mean'" }],
        mark: { type: 'rule', strokeWidth: 1.5 },
        encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' } },
      },
      {
        transform: [{ filter: "datum.kind === 'seed'" }],
        mark: { type: 'point', filled: true, size: 18, color: '#222', opacity: 0.7 },
        encoding: { x, y: { ...y, field: 'value' } },
      },
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    data: { values: scoreRows(metrics) },
    facet: { column: { field: 'metric', type: 'nominal', title: null, sort: ['test accuracy', 'test AUC'] } },
    spec: { width: Math.max(220, 48 * mixOrder.length), height: 220, layer: layers },
  } as TopLevelSpec;
}

/** Returns the rows of a curve chart: one per mix, seed, epoch and plotted metric. */
function curveRows(metrics: RunMetrics, series: Record<string, string>, historyOf: (seed: RunMetrics['mixes'][number]['seeds'][number]) => { history: History; bestEpoch: number } | null) {
  const rows: Array<Record<string, unknown>> = [];
  for (const mix of metrics.mixes) {
    for (const seed of mix.seeds) {
      const run = historyOf(seed);
      if (run === null) continue;
      for (const epoch of run.history) {
        for (const [field, label] of Object.entries(series)) {
          if (Number.isFinite(epoch[field])) rows.push({ kind: 'curve', mix: mix.mix, seed: `seed ${seed.seed}`, epoch: epoch.epoch, series: label, value: epoch[field] });
        }
      }
      rows.push({ kind: 'best', mix: mix.mix, seed: `seed ${seed.seed}`, epoch: run.bestEpoch });
    }
  }
  return rows;
}

/**
 * Builds one panel per mix of metrics per epoch (every seed's line), with a dashed rule at the
 * epoch whose weights early stopping kept.
 */
export function curveChartSpec(
  metrics: RunMetrics,
  series: Record<string, string>,
  yTitle: string,
  historyOf: Parameters<typeof curveRows>[2],
): TopLevelSpec {
  const mixOrder = metrics.mixes.map((mix) => mix.mix);
  const several = metrics.mixes.some((mix) => mix.seeds.length > 1);
  const labels = Object.values(series);
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    data: { values: curveRows(metrics, series, historyOf) },
    facet: { field: 'mix', type: 'nominal', sort: mixOrder, title: null },
    columns: Math.min(3, mixOrder.length),
    // Each panel gets its own scales: a synthetic-only head's validation loss can be ten times the others'.
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      ...PANEL,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'curve'" }],
          mark: { type: 'line', strokeWidth: 1.5, opacity: 0.85 },
          encoding: {
            x,
            y: { field: 'value', type: 'quantitative', title: yTitle },
            color: { field: 'series', type: 'nominal', sort: labels, title: null, legend: { orient: 'top' } },
            ...(several ? { strokeDash: { field: 'seed', type: 'nominal', title: null, legend: { orient: 'top' } } } : {}),
            detail: { field: 'seed', type: 'nominal' },
          },
        },
        {
          transform: [{ filter: "datum.kind === 'best'" }],
          mark: { type: 'rule', color: '#555', strokeDash: [4, 3], strokeWidth: 1 },
          encoding: { x },
        },
      ],
    },
  } as TopLevelSpec;
}

/** Builds the confusion matrix of every mix, summed over seeds, coloured by the share of each true class. */
export function confusionChartSpec(metrics: RunMetrics, classNames: readonly string[]): TopLevelSpec {
  const rows: Array<Record<string, unknown>> = [];
  for (const mix of metrics.mixes) {
    const size = classNames.length;
    const summed = Array.from({ length: size }, () => new Array<number>(size).fill(0));
    for (const seed of mix.seeds) seed.test.confusion.forEach((row, t) => row.forEach((count, p) => (summed[t][p] += count)));
    summed.forEach((row, t) => {
      const total = row.reduce((sum, count) => sum + count, 0);
      row.forEach((count, p) => rows.push({ mix: mix.mix, true: classNames[t], predicted: classNames[p], count, share: total > 0 ? count / total : 0 }));
    });
  }
  const side = Math.max(110, Math.min(260, 44 * classNames.length));
  const order = [...classNames];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    data: { values: rows },
    facet: { field: 'mix', type: 'nominal', sort: metrics.mixes.map((mix) => mix.mix), title: null },
    columns: Math.min(5, metrics.mixes.length),
    resolve: { axis: { x: 'independent' } },
    spec: {
      width: side,
      height: side,
      encoding: {
        x: { field: 'predicted', type: 'nominal', sort: order, title: 'predicted', axis: { labelAngle: -30, grid: false } },
        y: { field: 'true', type: 'nominal', sort: order, title: 'true', axis: { grid: false } },
      },
      layer: [
        { mark: 'rect', encoding: { color: { field: 'share', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'row share' } } },
        {
          mark: { type: 'text', fontSize: 12 },
          encoding: { text: { field: 'count', type: 'quantitative' }, color: { condition: { test: 'datum.share > 0.6', value: 'white' }, value: 'black' } },
        },
      ],
    },
  } as TopLevelSpec;
}

/** Builds the chart of the GAN's discriminator and generator losses per epoch. */
export function ganChartSpec(history: ReadonlyArray<Record<string, number>>): TopLevelSpec {
  const rows = history.flatMap((epoch) => [
    { epoch: epoch.epoch, series: 'discriminator loss', value: epoch.discriminatorLoss },
    { epoch: epoch.epoch, series: 'generator loss', value: epoch.generatorLoss },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: CONFIG,
    data: { values: rows.filter((row) => Number.isFinite(row.value)) },
    width: 420,
    height: 200,
    mark: { type: 'line', point: history.length <= 30 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative', title: 'loss' },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } },
    },
  } as TopLevelSpec;
}

/**
 * Renders every plot the run has data for: test scores, loss and validation scores per epoch,
 * fine-tuning curves when heads were fine-tuned, confusion matrices, and the GAN's losses.
 */
export async function renderReportPlots(metrics: RunMetrics, ganHistory: ReadonlyArray<Record<string, number>>): Promise<ReportPlot[]> {
  const monitor = metrics.config.train.earlyStopping.monitor;
  const headRun = (seed: RunMetrics['mixes'][number]['seeds'][number]) => ({ history: seed.history, bestEpoch: seed.bestEpoch });
  const fineTuneRun = (seed: RunMetrics['mixes'][number]['seeds'][number]) => (seed.fineTune === null ? null : { history: seed.fineTune.history, bestEpoch: seed.fineTune.bestEpoch });
  const seeds = metrics.config.train.seeds.length;
  const stopping = metrics.config.train.trainOnValidation
    ? 'The validation images were also trained on (mixes with real images), so these curves are not held out.'
    : metrics.config.train.earlyStopping.restoreBestWeights
      ? `The dashed line marks the epoch whose weights early stopping kept (monitor ${monitor}).`
      : `The dashed line marks the best epoch by ${monitor}; restoreBestWeights is off, so each head kept its last epoch's weights.`;
  const plots: Array<Omit<ReportPlot, 'svg'> & { spec: TopLevelSpec }> = [
    {
      id: 'scores',
      title: 'Test accuracy and AUC per mix',
      caption: seeds > 1 ? `Bars: mean over ${seeds} head seeds. Lines: ± one standard deviation. Dots: single seeds.` : 'One head seed, so no error bars.',
      spec: scoreChartSpec(metrics),
    },
    {
      id: 'loss',
      title: 'Loss per epoch',
      caption: `Training loss on the mix and validation loss on the real validation split. ${stopping}`,
      spec: curveChartSpec(metrics, { loss: 'train loss', val_loss: 'val loss' }, 'loss', headRun),
    },
    {
      id: 'validation',
      title: 'Validation accuracy and AUC per epoch',
      caption: `Scores on the real validation split. ${stopping}`,
      spec: curveChartSpec(metrics, { val_accuracy: 'val accuracy', val_auc: 'val AUC' }, 'score', headRun),
    },
  ];
  if (metrics.mixes.some((mix) => mix.seeds.some((seed) => seed.fineTune !== null))) {
    plots.push({
      id: 'fine-tune',
      title: 'Fine-tuning loss per epoch',
      caption: `The phase after the head, with the backbone's last blocks training. The dashed line marks the epoch whose weights were kept.`,
      spec: curveChartSpec(metrics, { loss: 'train loss', val_loss: 'val loss' }, 'loss', fineTuneRun),
    });
  }
  plots.push({
    id: 'confusion',
    title: 'Confusion matrices on the real test split',
    caption: `Counts${seeds > 1 ? ` summed over ${seeds} head seeds` : ''}; rows are true classes and the colour is the share of each row.`,
    spec: confusionChartSpec(metrics, metrics.dataset.classNames),
  });
  if (ganHistory.length > 0) {
    plots.push({ id: 'gan', title: 'GAN losses per epoch', caption: 'Mean discriminator and generator loss of each epoch.', spec: ganChartSpec(ganHistory) });
  }

  const rendered: ReportPlot[] = [];
  for (const { spec, ...plot } of plots) rendered.push({ ...plot, svg: await renderVegaLite(spec, `plot-${plot.id}`) });
  return rendered;
}
