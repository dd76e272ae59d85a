import { join } from 'node:path';
import { writeFileAtomic } from '@scarce/core';
import { describeInputSizes, inputSizes } from './config.js';
import type { RunMetrics } from './pipeline.js';
import { writeHtmlReport } from './report-html.js';
import { valueAt } from './report-values.js';

const number = (value: number, digits = 3) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const meanStd = (value: { mean: number; std: number }, count: number) => (count > 1 ? `${number(value.mean)} ± ${number(value.std)}` : number(value.mean));

/** Describes the fine-tuning phase: what unfreezes, its learning rate and its own early stopping. */
function fineTuningSentence(train: RunMetrics['config']['train']): string {
  const { layerPrefixes, lastBlocks, learningRate, earlyStopping } = train.fineTune;
  let unfrozen = `last ${lastBlocks} blocks`;
  if (layerPrefixes.length > 0) unfrozen = `layers ${layerPrefixes.join(', ')}`;
  if (train.strategy === 'full') unfrozen = 'every block';
  return `fine-tunes it with the backbone's ${unfrozen} at learning rate ${learningRate}, stopping early on ${earlyStopping.monitor} with patience ${earlyStopping.patience}`;
}

/** Renders a run's metrics as Markdown. */
export function renderMarkdownReport(metrics: RunMetrics): string {
  const { config } = metrics;
  const seeds = config.train.seeds.join(', ');
  const lines: string[] = [
    `# scarce run \`${metrics.name}\``,
    '',
    `Data: \`${metrics.dataset.path}\` (classes: ${metrics.dataset.classNames.join(', ')}; ` +
      `train ${metrics.dataset.splits.train}, val ${metrics.dataset.splits.val}, test ${metrics.dataset.splits.test}).`,
    `Backend: ${metrics.backend}; the frozen backbone ran in ${metrics.inferenceRuntime ?? 'tfjs'}, the training steps in ${metrics.trainingRuntime ?? 'tfjs'}. Run seed: ${metrics.seed}. Head seeds: ${seeds}. scarce ${metrics.toolkitVersion}, started ${metrics.startedAt}.`,
    '',
    '## Test scores per mix',
    '',
    (inputSizes(config.train).length > 1
      ? `Each mix trains one head per input size on frozen ${describeInputSizes(config.train)} features of \`${config.train.backbone.split('/').pop()}\` and averages their probabilities, `
      : `Each mix trains a head on frozen ${describeInputSizes(config.train)} features of \`${config.train.backbone.split('/').pop()}\`, `) +
      (config.train.trainOnValidation
        ? `for ${config.train.head.epochs} epochs on its rows plus the real validation images (mixes with real images), with no early stopping`
        : `stopping early on the real validation split (${config.train.earlyStopping.monitor}, patience ${config.train.earlyStopping.patience})`) +
      (config.train.strategy === 'feature-extraction' ? ', ' : `, then ${fineTuningSentence(config.train)}, `) +
      `and is measured once on the real test split. ${
        config.train.testTimeFlip
          ? "Val and test scores average each image's probabilities with its mirror's (test-time flips); early stopping and the training curves score each image alone. "
          : ''
      }${config.train.seeds.length > 1 ? `Scores are mean ± standard deviation over head seeds ${seeds}.` : `Scores come from head seed ${seeds}.`}`,
    '',
    '| mix | real | augmented | synthetic | epochs run | best epoch | test accuracy | test AUC |',
    '| --- | ---: | ---: | ---: | --- | --- | --- | --- |',
  ];
  for (const mix of metrics.mixes) {
    const epochs = mix.seeds.map((seed) => seed.epochsRun).join(', ');
    const best = mix.seeds.map((seed) => seed.bestEpoch).join(', ');
    lines.push(
      `| ${mix.mix} | ${mix.rows.real} | ${mix.rows.augmented} | ${mix.rows.synthetic} | ${epochs} | ${best} | ${meanStd(mix.testAccuracy, mix.seeds.length)} | ${meanStd(mix.testAuc, mix.seeds.length)} |`,
    );
  }

  lines.push('', '## Per seed', '');
  if (config.train.trainOnValidation) lines.push('The heads of mixes with real images trained on the validation images, so their val scores are not held out.', '');
  lines.push('| mix | seed | val accuracy | val AUC | test accuracy | test AUC | confusion (rows: true, columns: predicted) |', '| --- | ---: | --- | --- | --- | --- | --- |');
  for (const mix of metrics.mixes) {
    for (const seed of mix.seeds) {
      lines.push(
        `| ${mix.mix} | ${seed.seed} | ${number(seed.val.accuracy)} | ${number(seed.val.auc)} | ${number(seed.test.accuracy)} | ${number(seed.test.auc)} | ${JSON.stringify(seed.test.confusion)} |`,
      );
    }
  }

  lines.push('', '## How the settings were chosen', '');
  const chosen = Object.entries(config.settingsChosenBy ?? {});
  if (chosen.length === 0) {
    lines.push('The config records no choice of settings (`settingsChosenBy`); every value is set in it or a default.');
  } else {
    lines.push('| setting | value | chosen by |', '| --- | --- | --- |');
    for (const [path, how] of chosen) lines.push(`| \`${path}\` | \`${JSON.stringify(valueAt(config, path)) ?? 'unset'}\` | ${how} |`);
  }
  lines.push('', 'The test split only measures: no setting above was chosen on it.');

  lines.push('', '## Stages', '');
  if (metrics.synth !== null) {
    lines.push(
      `GAN: ${metrics.synth.epochsCompleted} ${metrics.synth.epochsCompleted === 1 ? 'epoch' : 'epochs'}, ${metrics.synth.steps} steps in ${metrics.synth.seconds} s in ${metrics.synth.trainingRuntime ?? 'tfjs'} (stopped by ${metrics.synth.stoppedBy === 'timeBudget' ? 'the time budget' : 'the epoch limit'}); ` +
        `${config.synth.perClass} synthetic images per class` +
        (metrics.synth.filtered === undefined ? '' : `, of which ${metrics.synth.filtered.kept} of ${metrics.synth.filtered.sampled} passed \`synth.minConfidence\` ${config.synth.minConfidence}`) +
        `. Samples: \`synthetic/samples.png\`.`,
    );
  }
  if (config.augment.enabled) lines.push(`Augmentation: ${config.augment.viewsPerImage} ${config.augment.viewsPerImage === 1 ? 'view' : 'views'} per real train image. Examples: \`augmented/examples.png\`.`);
  lines.push('', '| stage | seconds |', '| --- | ---: |');
  for (const [stage, seconds] of Object.entries(metrics.timings)) lines.push(`| ${stage} | ${seconds} |`);
  const megabytes = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  lines.push(
    '',
    'Peak memory while each mix trained: the process resident set (the highest so far) and the tensor memory tfjs held at an epoch end.',
    '',
    '| mix | peak RSS (MiB) | peak tensors (MiB) |',
    '| --- | ---: | ---: |',
    // Metrics written before memory was recorded have none.
    ...metrics.mixes.map((mix) => `| ${mix.mix} | ${mix.memory ? megabytes(mix.memory.peakRssBytes) : 'n/a'} | ${mix.memory ? megabytes(mix.memory.peakTensorBytes) : 'n/a'} |`),
  );
  const folders = ['real', ...(metrics.mixes.some((mix) => mix.rows.augmented > 0) ? ['augmented'] : []), ...(metrics.synth !== null ? ['synthetic'] : [])];
  lines.push(
    '',
    `Outputs: ${folders.map((folder) => `\`${folder}/\``).join(', ')} contain Arrow shards with a \`manifest.json\` each, \`models/\` the first seed's classifier of each mix, and \`metrics.json\` every number above with the per-epoch logs.`,
    '',
  );
  return lines.join('\n');
}

/** Writes `metrics.json`, `report.md` and the self-contained `report.html` into the run folder. */
export async function writeReport(runDir: string, metrics: RunMetrics): Promise<{ report: string; metrics: string; html: string }> {
  const metricsPath = join(runDir, 'metrics.json');
  const reportPath = join(runDir, 'report.md');
  await writeFileAtomic(metricsPath, `${JSON.stringify(metrics, null, 2)}\n`);
  await writeFileAtomic(reportPath, renderMarkdownReport(metrics));
  const htmlPath = await writeHtmlReport(runDir, metrics);
  return { report: reportPath, metrics: metricsPath, html: htmlPath };
}
