import { createHash } from 'node:crypto';
import { InputError } from '@scarce/core/io';

/** Shard size as rows, or as a byte target. */
export type ShardSize = { rows: number } | { bytes: number };

/** Default shard size: 4096 rows. */
export const DEFAULT_SHARD_ROWS = 4096;

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/**
 * Parses a shard size: a number of rows (`4096`), or bytes with a unit (`256MB`, `1GiB`,
 * `500kb`). Throws an `InputError` naming the value otherwise.
 */
export function parseShardSize(value: number | string | ShardSize): ShardSize {
  if (typeof value === 'object') return checkShardSize(value);
  if (typeof value === 'number') return checkShardSize({ rows: value });
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = match?.[2].toLowerCase() ?? '';
  if (match === null || (unit !== '' && !(unit in BYTE_UNITS))) {
    throw new InputError(`Invalid shard size '${value}': expected rows (e.g. 4096) or bytes with a unit (e.g. 256MB, 1GiB).`);
  }
  const amount = Number(match[1]);
  return checkShardSize(unit === '' ? { rows: amount } : { bytes: Math.round(amount * BYTE_UNITS[unit]) });
}

function checkShardSize(size: ShardSize): ShardSize {
  const amount = 'rows' in size ? size.rows : size.bytes;
  if (!Number.isInteger(amount) || amount < 1) {
    throw new InputError(`Invalid shard size ${JSON.stringify(size)}: expected a positive whole number of ${'rows' in size ? 'rows' : 'bytes'}.`);
  }
  return size;
}

/** One part of a run split across machines: part `index` of `count`. */
export interface RunPart {
  index: number;
  count: number;
}

/** Checks a part; both numbers come from a batch scheduler, so errors name the flags. */
export function checkPart(part: RunPart): RunPart {
  if (!Number.isInteger(part.count) || part.count < 1) {
    throw new InputError(`Invalid number of shards ${part.count}: expected a positive integer (--num-shards).`);
  }
  if (!Number.isInteger(part.index) || part.index < 0 || part.index >= part.count) {
    throw new InputError(`Invalid shard index ${part.index}: expected an integer in [0, ${part.count - 1}] (--shard-index) for ${part.count} parts.`);
  }
  return part;
}

/** A shard of the plan: its number and the range [start, end) of source positions it holds. */
export interface PlannedShard {
  index: number;
  start: number;
  end: number;
}

/**
 * Splits `sourceCount` sources into shards of `sourcesPerShard` consecutive sources, and gives
 * part `part.index` of `part.count` a contiguous run of whole shards. Every part computes the
 * same plan, so the parts are disjoint and together cover every shard, and the files of a split
 * run are the files a single run writes.
 */
export function planShards(sourceCount: number, sourcesPerShard: number, part: RunPart): { total: number; shards: PlannedShard[] } {
  const total = Math.max(1, Math.ceil(sourceCount / sourcesPerShard));
  const first = Math.floor((part.index * total) / part.count);
  const end = Math.floor(((part.index + 1) * total) / part.count);
  const shards: PlannedShard[] = [];
  for (let index = first; index < end; index++) {
    shards.push({ index, start: index * sourcesPerShard, end: Math.min(sourceCount, (index + 1) * sourcesPerShard) });
  }
  return { total, shards };
}

/** Returns the file name of shard `index`. */
export function shardFileName(prefix: string, index: number): string {
  return `${prefix}-${String(index).padStart(5, '0')}.arrow`;
}

/** Returns the hex sha256 of values written as JSON, for run and shard fingerprints. */
export function fingerprint(...values: unknown[]): string {
  const hash = createHash('sha256');
  for (const value of values) hash.update(typeof value === 'string' ? value : JSON.stringify(value)).update('\n');
  return hash.digest('hex');
}
