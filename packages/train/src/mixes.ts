import { createHash } from 'node:crypto';
import type { ImageRecord, Origin } from '@scarce/core';
import { deriveSeed, InputError, ORIGINS, Random } from '@scarce/core';

/** The mixes a benchmark compares by default: real only, each addition, and synthetic only. */
export const STANDARD_MIXES = ['real', 'real+augmented', 'real+synthetic', 'real+augmented+synthetic', 'synthetic'] as const;

/** Parses a mix name such as `real+augmented` into the origins it draws training rows from. */
export function parseMix(name: string): Origin[] {
  const origins = name.split('+').map((part) => part.trim());
  for (const origin of origins) {
    if (!(ORIGINS as readonly string[]).includes(origin)) {
      throw new InputError(`Invalid mix '${name}': '${origin}' is not one of ${ORIGINS.join(', ')}. Join origins with '+', e.g. real+synthetic.`);
    }
  }
  if (new Set(origins).size !== origins.length) throw new InputError(`Invalid mix '${name}': an origin is named twice.`);
  return origins as Origin[];
}

/** Returns the training rows of a mix: every train-split record whose origin the mix names, in input order. */
export function composeMix(trainRecords: readonly ImageRecord[], origins: readonly Origin[]): ImageRecord[] {
  return trainRecords.filter((record) => record.split === 'train' && origins.includes(record.origin));
}

/** One source of a mix recipe: an origin of the run's rows or another named pool, and how many of its rows. */
export interface MixSource {
  /** `real`, `augmented`, `synthetic`, or the key of another pool (such as a shard folder's path). */
  from: string;
  /** Exactly this many rows, drawn without replacement. */
  count?: number;
  /** `ratio` x the number of real train rows, rounded, drawn without replacement. */
  ratio?: number;
}

/** A named recipe of training rows. A source with neither count nor ratio gives all its rows. */
export interface MixRecipe {
  name: string;
  sources: MixSource[];
}

/** Returns the recipe of a mix name such as `real+augmented`: every row of each origin. */
export function recipeOfName(name: string): MixRecipe {
  return { name, sources: parseMix(name).map((origin) => ({ from: origin })) };
}

/**
 * Returns a recipe's training rows, source by source. Counted rows are a seeded random subset of
 * their pool, kept in the pool's order, so the same recipe and seed give the same rows.
 */
export function composeRecipe(recipe: MixRecipe, pools: ReadonlyMap<string, readonly ImageRecord[]>, realTrainCount: number, seed: number): ImageRecord[] {
  const rows: ImageRecord[] = [];
  for (const source of recipe.sources) {
    const pool = pools.get(source.from);
    if (pool === undefined) throw new InputError(`Mix '${recipe.name}' names source '${source.from}', which is not one of ${[...pools.keys()].join(', ')}.`);
    if (source.count !== undefined && source.ratio !== undefined) throw new InputError(`Mix '${recipe.name}', source '${source.from}': give count or ratio, not both.`);
    const rowCount = source.count ?? (source.ratio === undefined ? pool.length : Math.round(source.ratio * realTrainCount));
    if (!Number.isInteger(rowCount) || rowCount < 0 || rowCount > pool.length) {
      throw new InputError(`Mix '${recipe.name}' needs ${rowCount} rows of '${source.from}', which has ${pool.length}; lower its count or ratio.`);
    }
    if (rowCount === pool.length) {
      rows.push(...pool);
      continue;
    }
    const random = new Random(deriveSeed(seed, `mix/${recipe.name}/${source.from}`));
    const chosen = random.shuffle(pool.map((_, i) => i)).slice(0, rowCount).sort((a, b) => a - b);
    rows.push(...chosen.map((i) => pool[i]));
  }
  return rows;
}

function pixelDigest(record: ImageRecord): string {
  return createHash('sha1').update(record.pixels).digest('hex');
}

/**
 * Rejects training rows that could leak evaluation data: augmented or synthetic rows outside the
 * train split, augmented rows whose source is not a real train record, and augmented or
 * synthetic rows whose pixels equal a validation or test image. Real training images that equal
 * an evaluation image are returned rather than rejected, because public benchmarks ship such
 * duplicates in their official splits (BreastMNIST has one between train and test). An augmented
 * view that left its source unchanged, such as an undrawn flip, counts as that real image.
 */
export function checkNoLeakage(trainRows: readonly ImageRecord[], evaluationRows: readonly ImageRecord[]): string[] {
  const realTrainIndices = new Set(trainRows.filter((row) => row.origin === 'real').map((row) => row.sourceIndex));
  for (const row of trainRows) {
    if (row.split !== 'train') {
      throw new InputError(`A ${row.origin} training row is in the ${row.split} split; validation and test rows must never be trained on.`);
    }
    if (row.origin === 'augmented' && !realTrainIndices.has(row.sourceIndex)) {
      throw new InputError(
        `An augmented row derives from source index ${row.sourceIndex}, which is not a real train image. ` +
          'Augment only the train split.',
      );
    }
  }
  for (const row of evaluationRows) {
    if (row.origin !== 'real') throw new InputError(`The ${row.split} split contains a ${row.origin} row; validation and test rows must be real.`);
  }

  const evaluationDigests = new Map(evaluationRows.map((row) => [pixelDigest(row), row]));
  const realDigests = new Map(trainRows.filter((row) => row.origin === 'real').map((row) => [row.sourceIndex, pixelDigest(row)]));
  const duplicates: string[] = [];
  for (const row of trainRows) {
    const digest = pixelDigest(row);
    const match = evaluationDigests.get(digest);
    if (match === undefined) continue;
    // An unchanged view repeats its source, and the source's own row reports the duplicate.
    if (row.origin === 'augmented' && realDigests.get(row.sourceIndex) === digest) continue;
    const description = `${row.origin} train image ${row.sourceIndex ?? '(synthetic)'} equals ${match.split} image ${match.sourceIndex}`;
    if (row.origin !== 'real') throw new InputError(`A training row could leak evaluation data: ${description}.`);
    duplicates.push(description);
  }
  return duplicates;
}
