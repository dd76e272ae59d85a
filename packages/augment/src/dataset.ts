import pLimit from 'p-limit';
import { Progress, type ImageRecord, type ProgressOptions } from '@scarce/core/io';
import { resolveTransformConfig, type TransformOptions } from './config.js';
import { augmentRecord, checkAugmentable, viewSeed } from './transform.js';

/** Options of `augmentDataset`. */
export interface AugmentDatasetOptions {
  /** Augmented views K made of every source record, numbered 1..K; a positive integer. */
  viewsPerImage: number;
  /** Run seed; view v of the record with source index i uses `deriveSeed(seed, 'augment', i, v)`. Default 0. */
  seed?: number;
  /** Transforms; default none, which makes every view a copy of its source. */
  transforms?: TransformOptions;
  /**
   * Views computed at once; default 8. Only the sharp engine runs in parallel (on libuv's thread
   * pool, 4 threads unless UV_THREADPOOL_SIZE sets another number); the TypeScript engine runs on the
   * calling thread. The output does not depend on it.
   */
  concurrency?: number;
  /** Progress bar settings; default a bar on stderr. */
  progress?: ProgressOptions;
}

export const DEFAULT_AUGMENT_CONCURRENCY = 8;

function checkPositiveInteger(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer but received ${JSON.stringify(value)}.`);
  }
}

/** Checks every source before any work, so a bad record fails the run at once. */
export function checkSources(records: readonly ImageRecord[]): void {
  const heldOut = records.filter((record) => record.split !== 'train');
  if (heldOut.length > 0) {
    const first = records.indexOf(heldOut[0]);
    throw new Error(
      `augmentDataset received ${heldOut.length} record(s) outside the train split (record ${first} is in ` +
        `'${heldOut[0].split}'). Augmented rows must derive from train records only, so validation and test ` +
        `images never leak into training. Pass recordsOfSplit(dataset, 'train').`,
    );
  }

  const positions = new Map<number, number>();
  for (const [position, record] of records.entries()) {
    checkAugmentable(record, position);
    const sourceIndex = record.sourceIndex as number;
    const earlier = positions.get(sourceIndex);
    if (earlier !== undefined) {
      throw new Error(
        `Records ${earlier} and ${position} share source index ${sourceIndex}, so their views would share seeds. ` +
          'Each train record needs its own index.',
      );
    }
    positions.set(sourceIndex, position);
  }
}

/**
 * Makes `viewsPerImage` augmented views of every real train record. Each view is seeded by the
 * run seed, its source index and its view number, so the output is the same whatever the
 * concurrency. The output is ordered by source record, then view.
 */
export async function augmentDataset(records: readonly ImageRecord[], options: AugmentDatasetOptions): Promise<ImageRecord[]> {
  checkPositiveInteger('viewsPerImage', options.viewsPerImage);
  const concurrency = options.concurrency ?? DEFAULT_AUGMENT_CONCURRENCY;
  checkPositiveInteger('concurrency', concurrency);
  const seed = options.seed ?? 0;
  const config = resolveTransformConfig(options.transforms);
  checkSources(records);

  const limit = pLimit(concurrency);
  const progress = new Progress('augment', records.length * options.viewsPerImage, options.progress);
  const jobs: Array<Promise<ImageRecord>> = [];
  for (const record of records) {
    for (let view = 1; view <= options.viewsPerImage; view++) {
      const rowSeed = viewSeed(seed, record.sourceIndex as number, view);
      jobs.push(
        limit(async () => {
          const augmented = await augmentRecord(record, config, rowSeed, view);
          progress.tick();
          return augmented;
        }),
      );
    }
  }
  try {
    return await Promise.all(jobs);
  } catch (error) {
    limit.clearQueue();
    throw error;
  }
}
