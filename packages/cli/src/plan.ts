import { join } from 'node:path';
import { ORIGINS, readManifest, recordsOfSplit, selectBackend, type Origin } from '@scarce/core';
import { resolveSynthConfig, type SynthConfig } from '@scarce/synth';
import { defaultCacheDirectory } from '@scarce/train';
import { describeInputSizes, inputSizes, type RunConfig } from './config.js';
import { checkMixes, checkRunFolder, loadRunBackbone, loadRunData, preflight, RUN_OUTPUTS } from './pipeline.js';
import { SHARED_TRANSFORM_SETTINGS } from './report-figures.js';

/** Plan of a `scarce run`: its stages, rows and outputs, as `--dry-run` prints it. */
export interface RunPlan {
  name: string;
  /** Folder the run writes to, and whether it is new or replaces an earlier run (`--force`). */
  runDir: string;
  runFolder: 'new' | 'replace';
  backend: string;
  seed: number;
  data: { path: string; classNames: string[]; imageSize: [number, number, number]; splits: Record<'train' | 'val' | 'test', number> };
  stages: Array<{ stage: string; detail: string; output: string | null }>;
  /** Training rows of each mix by origin; every mix is validated and tested on the same real rows. */
  mixes: Array<{ mix: string; rows: Record<'real' | 'augmented' | 'synthetic' | 'total', number> }>;
  heads: number;
  outputs: string[];
}

/**
 * Checks a run config as `scarce run` does before it writes anything (settings, data, splits,
 * backbone and run folder) and returns the plan: stages, row counts per mix and split, and where
 * the outputs go. Writes nothing.
 */
export async function planRun(config: RunConfig, options: { force?: boolean; log?: (line: string) => void } = {}): Promise<RunPlan> {
  const runDir = join(config.output, config.name);
  const mixes = config.train.mixes;
  const needs = new Set<string>(mixes.flatMap((mix) => mix.sources.map((source) => source.from)));
  checkMixes(config, needs);

  const selection = await selectBackend({ backend: config.backend, log: options.log ?? (() => {}) });
  const dataset = await loadRunData(config);
  preflight(config, dataset, needs);
  const { backbones, trainableLayers } = await loadRunBackbone(config);
  backbones.forEach((backbone) => backbone.model.dispose());
  const runFolder = await checkRunFolder(runDir, options.force ?? false);

  const splits = { train: recordsOfSplit(dataset, 'train').length, val: recordsOfSplit(dataset, 'val').length, test: recordsOfSplit(dataset, 'test').length };
  const augmentedRows = needs.has('augmented') ? splits.train * config.augment.viewsPerImage : 0;
  const syntheticRows = needs.has('synthetic') ? config.synth.perClass * dataset.classNames.length : 0;
  const first = dataset.records[0];
  const sizes = inputSizes(config.train).length;
  const heads = mixes.length * config.train.seeds.length * sizes;
  const gan = resolveSynthConfig({ seed: config.seed, ...(config.synth.gan as Partial<SynthConfig>) });
  const ganLimit = gan.timeBudgetSeconds === null ? `${gan.epochs} epochs` : `${gan.epochs} epochs or ${gan.timeBudgetSeconds} s, whichever comes first`;

  const folderRows = new Map<string, Record<Origin | 'total', number>>();
  for (const from of needs) {
    if ((ORIGINS as readonly string[]).includes(from)) continue;
    const counted = await trainRowsOf(from);
    if (counted !== null) folderRows.set(from, counted);
  }

  const stages: RunPlan['stages'] = [
    { stage: 'real shards', detail: `${dataset.records.length} real images as shards, and a grid of train images per class`, output: join(runDir, 'real') },
  ];
  if (needs.has('augmented')) {
    const transforms = Object.keys(config.augment.transforms).filter((key) => !SHARED_TRANSFORM_SETTINGS.has(key)).join(', ') || 'no transforms';
    const views = config.augment.viewsPerImage;
    stages.push({ stage: 'augment', detail: `${views} ${views === 1 ? 'view' : 'views'} of each of ${splits.train} train images (${transforms})`, output: join(runDir, 'augmented') });
  }
  if (needs.has('synthetic')) {
    const filter =
      config.synth.minConfidence > 0
        ? `; images that a head of the real train images gives less than ${config.synth.minConfidence} for their own class are left out, so mixes may get fewer synthetic rows than planned`
        : '';
    stages.push({ stage: 'synth', detail: `GAN on ${splits.train} train images for ${ganLimit}, then ${config.synth.perClass} images per class${filter}`, output: join(runDir, 'synthetic') });
  }
  stages.push(
    {
      stage: 'features',
      detail: `backbone features of every image at ${describeInputSizes(config.train)}${config.train.testTimeFlip ? `, and of the mirrors of the ${splits.val + splits.test} val and test images (test-time flips)` : ''}`,
      output: config.train.featureCache === false ? null : (config.train.featureCache ?? defaultCacheDirectory()),
    },
    {
      stage: 'train',
      detail:
        `${heads} ${heads === 1 ? 'head' : 'heads'} (${mixes.length} ${mixes.length === 1 ? 'mix' : 'mixes'} x ${config.train.seeds.length} ${config.train.seeds.length === 1 ? 'seed' : 'seeds'}${sizes > 1 ? ` x ${sizes} input sizes` : ''}, ${config.train.strategy}), ` +
        (trainableLayers.length === 0 ? '' : `unfreezing ${trainableLayers.length} backbone layers from ${trainableLayers[0]} to ${trainableLayers.at(-1)}, `) +
        (config.train.trainOnValidation
          ? `${config.train.head.epochs} epochs each on its mix plus the ${splits.val} val images (mixes with real images), no early stopping`
          : `early stopping on ${config.train.earlyStopping.monitor} of the ${splits.val} val images`),
      output: join(runDir, 'models'),
    },
    { stage: 'report', detail: `test scores on the ${splits.test} test images${config.train.testTimeFlip ? ', each averaged with its mirror (test-time flips), as are the val scores' : ''}`, output: runDir },
  );

  return {
    name: config.name,
    runDir,
    runFolder,
    backend: selection.backend,
    seed: config.seed,
    data: { path: config.data.path, classNames: dataset.classNames, imageSize: [first.height, first.width, first.channels], splits },
    stages,
    mixes: mixes.map((mix) => {
      const rows = { real: 0, augmented: 0, synthetic: 0, total: 0 };
      const available: Record<string, number> = { real: splits.train, augmented: augmentedRows, synthetic: syntheticRows };
      for (const source of mix.sources) {
        const folder = folderRows.get(source.from);
        if (folder !== undefined && source.count === undefined && source.ratio === undefined) {
          // The whole folder: its train rows by origin, as its manifest counts them.
          for (const origin of ORIGINS) rows[origin] += folder[origin];
          rows.total += folder.total;
          continue;
        }
        const pool = available[source.from] ?? folder?.total;
        const count = source.count ?? (source.ratio !== undefined ? Math.round(source.ratio * splits.train) : pool);
        if (source.from in rows && count !== undefined) rows[source.from as 'real' | 'augmented' | 'synthetic'] += count;
        rows.total += count ?? 0;
      }
      if (config.train.trainOnValidation && rows.real > 0) {
        rows.real += splits.val;
        rows.total += splits.val;
      }
      return { mix: mix.name, rows };
    }),
    heads,
    outputs: RUN_OUTPUTS.filter((name) => (name !== 'augmented' && name !== 'synthetic') || needs.has(name)).map((name) => join(runDir, name)),
  };
}

/**
 * Counts a shard folder's train rows by origin from its manifest, or returns null when there is
 * none yet (an earlier stage of the same run may write it). A shard with rows of several origins
 * and several splits cannot be split by origin from its counts, so its train rows count only in
 * the total.
 */
async function trainRowsOf(folder: string): Promise<Record<Origin | 'total', number> | null> {
  const manifest = await readManifest(folder).catch(() => null);
  if (manifest === null) return null;
  const rows: Record<Origin | 'total', number> = { real: 0, augmented: 0, synthetic: 0, total: 0 };
  for (const shard of manifest.shards) {
    const train = shard.splitCounts.train;
    const origins = ORIGINS.filter((origin) => shard.originCounts[origin] > 0);
    if (origins.length === 1) rows[origins[0]] += train;
    else if (train === shard.rows) for (const origin of ORIGINS) rows[origin] += shard.originCounts[origin];
    rows.total += train;
  }
  return rows;
}

/** Formats a plan as the text `scarce run --dry-run` prints. */
export function formatPlan(plan: RunPlan): string {
  const [height, width, channels] = plan.data.imageSize;
  const lines = [
    `Plan of run '${plan.name}' (nothing written):`,
    `  data: ${plan.data.path}`,
    `    classes: ${plan.data.classNames.join(', ')}; images ${height}x${width}, ${channels} ${channels === 1 ? 'channel' : 'channels'}`,
    `    real images: train ${plan.data.splits.train}, val ${plan.data.splits.val}, test ${plan.data.splits.test}`,
    `  backend: ${plan.backend}, run seed ${plan.seed}`,
    `  output: ${plan.runDir} (${plan.runFolder === 'new' ? 'new' : 'replaces the earlier run there'})`,
    '',
    'Stages:',
    ...plan.stages.map((stage, i) => `  ${i + 1}. ${stage.stage}: ${stage.detail}${stage.output === null ? '' : ` -> ${stage.output}`}`),
    '',
    `Training rows per mix (validation: ${plan.data.splits.val} real, test: ${plan.data.splits.test} real, for every mix):`,
  ];
  const width0 = Math.max(...plan.mixes.map((mix) => mix.mix.length), 3);
  lines.push(`  ${'mix'.padEnd(width0)}  ${['real', 'augmented', 'synthetic', 'total'].map((name) => name.padStart(9)).join(' ')}`);
  for (const mix of plan.mixes) {
    lines.push(`  ${mix.mix.padEnd(width0)}  ${[mix.rows.real, mix.rows.augmented, mix.rows.synthetic, mix.rows.total].map((count) => String(count).padStart(9)).join(' ')}`);
  }
  lines.push('', 'Outputs:', ...plan.outputs.map((path) => `  ${path}`));
  return lines.join('\n');
}
