import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildManifest, MANIFEST_FILE, writeFileAtomic, writeManifest, writeRecordsAsShards, type ShardInfo } from '@scarce/core';
import { saveGenerator } from './generator-io.js';
import { writeSampleGrid } from './sample-grid.js';
import { sampleSynthetic, type SamplingGenerator } from './sample.js';
import type { TrainedGan } from './train.js';

export const SAMPLES_FILE = 'samples.png';
export const HISTORY_FILE = 'history.jsonl';
export const GENERATOR_FOLDER = 'generator';
const SHARD_PREFIX = 'synthetic';

/** Options of `synthToShards`. */
export interface SynthToShardsOptions {
  /** Output folder; created when missing. */
  directory: string;
  /** Synthetic images per class. */
  perClass: number;
  /** Seed of the latents; default 0. */
  seed?: number;
  /** Replace the shards, manifest, history, grid and generator of an earlier run in the folder; default false. */
  overwrite?: boolean;
  /** Rows per shard; default 4096. */
  rowsPerShard?: number;
  /** Images per class row in samples.png; default 10. */
  gridColumns?: number;
  /** Also save the averaged generator under generator/ in the TF.js layers format; default true. */
  saveGenerator?: boolean;
  /** Checkpoint the generator comes from and the score that chose it, recorded in the manifest; default none. */
  checkpoint?: { epoch: number; selectedBy: string; score: number | null };
  /** Receives a summary line; default none. */
  log?: (line: string) => void;
}

/** Paths and counts of what `synthToShards` wrote. */
export interface SynthOutputs {
  directory: string;
  records: number;
  shards: ShardInfo[];
  manifestPath: string;
  samplesPath: string;
  /** One JSON line per epoch with the losses. */
  historyPath: string;
  /** Path of generator/model.json, or null when the generator was not saved. */
  generatorPath: string | null;
}

/** Rejects a folder that contains earlier outputs, or removes them when `overwrite` is set. */
async function prepareDirectory(directory: string, overwrite: boolean): Promise<void> {
  await mkdir(directory, { recursive: true });
  const entries = await readdir(directory);
  const earlier = entries.filter((name) => name.endsWith('.arrow') || name === MANIFEST_FILE);
  if (earlier.length > 0 && !overwrite) {
    throw new Error(
      `${directory} already has shards or a manifest (${earlier.slice(0, 3).join(', ')}${earlier.length > 3 ? ', ...' : ''}). ` +
        'Choose another folder or set overwrite to replace them.',
    );
  }
  const ours = entries.filter((name) => earlier.includes(name) || [SAMPLES_FILE, HISTORY_FILE, GENERATOR_FOLDER].includes(name));
  await Promise.all(ours.map((name) => rm(join(directory, name), { recursive: true, force: true })));
}

/**
 * Samples `perClass` synthetic images per class and writes them as Arrow shards with a manifest,
 * which records the GAN config, the training summary and the sampling seed. Beside them it
 * writes the loss history as `history.jsonl`, a `samples.png` grid with one row per class, and
 * the averaged generator under `generator/`. Rejects a folder that
 * already contains shards or a manifest unless `overwrite` is set.
 */
export async function synthToShards(trained: TrainedGan, options: SynthToShardsOptions): Promise<SynthOutputs> {
  const seed = options.seed ?? 0;
  if (!Number.isInteger(options.perClass) || options.perClass < 1) {
    throw new Error(`perClass must be a positive integer but received ${options.perClass}.`);
  }
  await prepareDirectory(options.directory, options.overwrite ?? false);

  const records = sampleSynthetic(trained, { perClass: options.perClass, seed });
  const shards = await writeRecordsAsShards(records, {
    directory: options.directory,
    classNames: trained.classNames,
    prefix: SHARD_PREFIX,
    rowsPerShard: options.rowsPerShard,
  });
  const lastEpoch = trained.history[trained.history.length - 1];
  const manifest = buildManifest(trained.classNames, shards, {
    stage: 'synth',
    synth: trained.config,
    training: {
      backend: trained.backend,
      trainingRuntime: trained.trainingRuntime,
      epochsCompleted: trained.epochsCompleted,
      steps: trained.steps,
      seconds: trained.seconds,
      stoppedBy: trained.stoppedBy,
      classCounts: trained.classCounts,
      finalDiscriminatorLoss: lastEpoch?.discriminatorLoss ?? null,
      finalGeneratorLoss: lastEpoch?.generatorLoss ?? null,
    },
    sampling: { perClass: options.perClass, seed },
    ...(options.checkpoint === undefined ? {} : { checkpoint: options.checkpoint }),
  });
  const manifestPath = await writeManifest(options.directory, manifest);

  const historyPath = join(options.directory, HISTORY_FILE);
  await writeFileAtomic(historyPath, trained.history.map((log) => `${JSON.stringify(log)}\n`).join(''));
  const samplesPath = await writeSampleGrid(join(options.directory, SAMPLES_FILE), records, trained.classNames, {
    columns: options.gridColumns,
  });
  const generatorPath = options.saveGenerator === false ? null : await saveGenerator(join(options.directory, GENERATOR_FOLDER), trained);

  options.log?.(
    `wrote ${records.length} synthetic records in ${shards.length} shard(s), ${MANIFEST_FILE}, ${HISTORY_FILE} and ${SAMPLES_FILE}` +
      `${generatorPath === null ? '' : ` and ${GENERATOR_FOLDER}/`} to ${options.directory}`,
  );
  return { directory: options.directory, records: records.length, shards, manifestPath, samplesPath, historyPath, generatorPath };
}

/** Options of `sampleToShards`. */
export interface SampleToShardsOptions {
  /** Output folder; created when missing. */
  directory: string;
  /** Synthetic images per class. */
  perClass: number;
  /** Seed of the latents; default 0. */
  seed?: number;
  /** Replace the shards, manifest and grid of an earlier run in the folder; default false. */
  overwrite?: boolean;
  /** Path the generator was loaded from, recorded in the manifest; default none. */
  source?: string;
  /** Rows per shard; default 4096. */
  rowsPerShard?: number;
  log?: (line: string) => void;
}

/**
 * Samples `perClass` images per class from a generator (such as one read by `loadGenerator`)
 * and writes them as Arrow shards with a manifest and `samples.png`. Every record has
 * `origin: 'synthetic'` and the generator's provenance in `params`; the manifest records the
 * provenance, the source and the sampling seed. Rejects a folder that already contains shards or
 * a manifest unless `overwrite` is set.
 */
export async function sampleToShards(generator: SamplingGenerator, options: SampleToShardsOptions): Promise<Omit<SynthOutputs, 'historyPath' | 'generatorPath'>> {
  const seed = options.seed ?? 0;
  if (!Number.isInteger(options.perClass) || options.perClass < 1) {
    throw new Error(`perClass must be a positive integer but received ${options.perClass}.`);
  }
  await prepareDirectory(options.directory, options.overwrite ?? false);

  const records = sampleSynthetic(generator, { perClass: options.perClass, seed });
  const shards = await writeRecordsAsShards(records, {
    directory: options.directory,
    classNames: generator.classNames,
    prefix: SHARD_PREFIX,
    rowsPerShard: options.rowsPerShard,
  });
  const manifest = buildManifest(generator.classNames, shards, {
    stage: 'synth-sample',
    generator: generator.provenance,
    source: options.source ?? null,
    sampling: { perClass: options.perClass, seed },
  });
  const manifestPath = await writeManifest(options.directory, manifest);
  const samplesPath = await writeSampleGrid(join(options.directory, SAMPLES_FILE), records, generator.classNames);
  options.log?.(`wrote ${records.length} synthetic records in ${shards.length} shard(s), ${MANIFEST_FILE} and ${SAMPLES_FILE} to ${options.directory}`);
  return { directory: options.directory, records: records.length, shards, manifestPath, samplesPath };
}
