import { InputError } from './errors.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assignSplits, readImageFolder } from './folder.js';
import { isIdxImagesFileName, listIdxImageFiles, readIdxDataset } from './idx.js';
import { MANIFEST_FILE, readShardFolder } from './manifest.js';
import { readMedMnistNpz } from './npz.js';
import type { LabelledDataset } from './records.js';

/** The kinds of dataset scarce reads. */
export const DATASET_FORMATS = ['auto', 'npz', 'idx', 'folder', 'shards'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

/** Options of `loadDataset`. */
export interface LoadDatasetOptions {
  /**
   * Default `auto`: a `.npz` file, an IDX image file (`...idx3-ubyte[.gz]`) or a folder with one,
   * a folder with `manifest.json` (shards), or a class folder.
   */
  format?: DatasetFormat;
  /** Class names in label order, for `.npz` and IDX files (folders and shards carry their own). */
  classNames?: string[];
  /** Shares of the train split moved to val and test, seeded and stratified; default none. */
  split?: { val: number; test: number };
  /** Seed of the split; default 0. */
  seed?: number;
  /** Size images of a class folder are resized to, as [height, width]. */
  size?: [number, number];
}

/** Decides how to read a dataset path. */
export async function detectDatasetFormat(path: string): Promise<Exclude<DatasetFormat, 'auto'>> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new InputError(`Dataset ${path} not found.`);
  if (info.isFile()) {
    if (path.toLowerCase().endsWith('.npz')) return 'npz';
    if (isIdxImagesFileName(path)) return 'idx';
    throw new InputError(
      `Dataset ${path} is a file but neither an .npz archive nor an IDX image file (...idx3-ubyte[.gz]). Give one of those, a folder of class subfolders, or a shard folder.`,
    );
  }
  const hasManifest = await stat(join(path, MANIFEST_FILE)).then(() => true, () => false);
  if (hasManifest) return 'shards';
  return (await listIdxImageFiles(path)).length > 0 ? 'idx' : 'folder';
}

/**
 * Reads a labelled dataset from an `.npz` archive, IDX files, a class folder or a shard folder.
 * IDX files have no splits, so all their records start in `train`.
 */
export async function loadDataset(path: string, options: LoadDatasetOptions = {}): Promise<LabelledDataset> {
  const format = options.format === undefined || options.format === 'auto' ? await detectDatasetFormat(path) : options.format;
  let dataset: LabelledDataset;
  if (format === 'npz') dataset = await readMedMnistNpz(path, { classNames: options.classNames });
  else if (format === 'idx') dataset = await readIdxDataset(path, { classNames: options.classNames });
  else if (format === 'shards') dataset = await readShardFolder(path);
  else dataset = await readImageFolder(path, { size: options.size });

  if (options.split !== undefined && (options.split.val > 0 || options.split.test > 0)) {
    dataset = assignSplits(dataset, { ...options.split, seed: options.seed ?? 0 });
  }
  return dataset;
}
