import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  buildManifest,
  MANIFEST_FILE,
  recordsOfSplit,
  writeManifest,
  writeRecordsAsShards,
  type LabelledDataset,
  type Manifest,
  type ProgressOptions,
} from '@scarce/core';
import { writeContactSheet } from './contact-sheet.js';
import { resolveTransformConfig, type TransformOptions } from './config.js';
import { augmentDataset } from './dataset.js';

export const EXAMPLES_FILE = 'examples.png';
const SHARD_PREFIX = 'augmented';

/** Options of `augmentToShards`. */
export interface AugmentToShardsOptions {
  /** Output folder; created when missing. */
  outDir: string;
  /** Augmented views made of every train record; a positive integer. */
  viewsPerImage: number;
  /** Run seed, recorded in the manifest; default 0. */
  seed?: number;
  /** Transforms; default none. */
  transforms?: TransformOptions;
  /** Rows per shard; default 4096. */
  rowsPerShard?: number;
  /** The caller's settings (for example the whole run config), recorded in the manifest under `run`; default null. */
  config?: unknown;
  /** Replace the shards, manifest and examples.png of an earlier run in `outDir`; default false. */
  overwrite?: boolean;
  /** Views computed at once; default 8 (see `AugmentDatasetOptions.concurrency`). */
  concurrency?: number;
  /** Progress bar settings; default a bar on stderr. */
  progress?: ProgressOptions;
  /** Receives a summary line at the end; default none. */
  log?: (line: string) => void;
}

/** Names of earlier outputs in a folder: shards and the manifest. */
function earlierOutputs(entries: readonly string[]): string[] {
  return entries.filter((name) => name.endsWith('.arrow') || name === MANIFEST_FILE);
}

/** Creates the folder, and rejects one that contains shards or a manifest unless `overwrite` is set. */
async function checkOutputFolder(directory: string, overwrite: boolean): Promise<void> {
  await mkdir(directory, { recursive: true });
  const earlier = earlierOutputs(await readdir(directory));
  if (earlier.length > 0 && !overwrite) {
    throw new Error(
      `${directory} already has shards or a manifest (${earlier.slice(0, 3).join(', ')}${earlier.length > 3 ? ', ...' : ''}). ` +
        'Choose another folder or set overwrite to replace them.',
    );
  }
}

/**
 * Removes earlier outputs, the manifest first, so that an interrupted run leaves a folder
 * without a manifest (which readers reject) rather than one whose manifest lists changed shards.
 */
async function removeEarlierOutputs(directory: string): Promise<void> {
  const entries = await readdir(directory);
  await rm(join(directory, MANIFEST_FILE), { force: true });
  const ours = earlierOutputs(entries).filter((name) => name !== MANIFEST_FILE);
  if (entries.includes(EXAMPLES_FILE)) ours.push(EXAMPLES_FILE);
  await Promise.all(ours.map((name) => rm(join(directory, name), { force: true })));
}

/**
 * Augments the train split of a dataset and writes the views as Arrow shards into `outDir`, with
 * `examples.png` (a few sources beside their views) and, last, `manifest.json`, which records the
 * augmentation settings, the sharp and libvips versions and `config`. Validation and test records
 * are left out. Rejects a folder that already contains shards or a manifest unless `overwrite` is
 * set. A failed write removes the files this call wrote, so no partial output is left.
 * Returns the manifest.
 */
export async function augmentToShards(dataset: LabelledDataset, options: AugmentToShardsOptions): Promise<Manifest> {
  const sources = recordsOfSplit(dataset, 'train');
  if (sources.length === 0) {
    throw new Error(`augmentToShards found no train records among ${dataset.records.length}; there is nothing to augment.`);
  }
  const transforms = resolveTransformConfig(options.transforms);
  const seed = options.seed ?? 0;
  await checkOutputFolder(options.outDir, options.overwrite ?? false);

  const views = await augmentDataset(sources, {
    viewsPerImage: options.viewsPerImage,
    seed,
    transforms,
    concurrency: options.concurrency,
    progress: options.progress,
  });

  await removeEarlierOutputs(options.outDir);
  let manifest: Manifest;
  try {
    const shards = await writeRecordsAsShards(views, {
      directory: options.outDir,
      classNames: dataset.classNames,
      prefix: SHARD_PREFIX,
      rowsPerShard: options.rowsPerShard,
    });
    await writeContactSheet(join(options.outDir, EXAMPLES_FILE), sources, views);
    manifest = buildManifest(dataset.classNames, shards, {
      stage: 'augment',
      augment: {
        viewsPerImage: options.viewsPerImage,
        seed,
        transforms,
        sourceRecords: sources.length,
        sharpVersion: sharp.versions.sharp,
        libvipsVersion: sharp.versions.vips,
      },
      run: options.config ?? null,
    });
    await writeManifest(options.outDir, manifest);
  } catch (error) {
    await removeEarlierOutputs(options.outDir);
    throw error;
  }

  options.log?.(
    `wrote ${views.length} augmented records (${options.viewsPerImage} views of ${sources.length} train records) ` +
      `in ${manifest.shards.length} shard(s), ${MANIFEST_FILE} and ${EXAMPLES_FILE} to ${options.outDir}`,
  );
  return manifest;
}
