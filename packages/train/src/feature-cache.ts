import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, type ImageRecord } from '@scarce/core';
import type { Backbone } from './backbone.js';
import { extractFeaturesParallel, type ParallelFeatureOptions } from './feature-pool.js';

/** The cache folder: $SCARCE_CACHE_DIR, else $XDG_CACHE_HOME/scarce, else ~/.cache/scarce. */
export function defaultCacheDirectory(): string {
  if (process.env.SCARCE_CACHE_DIR) return process.env.SCARCE_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'scarce');
}

/** Hex sha1 of a record's shape and pixels: equal images share cached features whatever their label or origin. */
export function recordDigest(record: ImageRecord): string {
  return createHash('sha1').update(`${record.height}x${record.width}x${record.channels}:`).update(record.pixels).digest('hex');
}

/**
 * Pooled backbone features on disk, one float32 file per image, under a folder keyed by the
 * backbone's fingerprint (topology with its input size, and weights). A changed backbone or
 * input size therefore never reads stale features.
 */
export class FeatureCache {
  readonly directory: string;

  constructor(root: string, readonly backbone: Backbone) {
    this.directory = join(root, 'features', backbone.fingerprint.slice(0, 32));
  }

  private path(digest: string): string {
    return join(this.directory, digest.slice(0, 2), `${digest}.f32`);
  }

  /** Features of one image, or undefined when absent or of the wrong length. */
  async get(digest: string): Promise<Float32Array | undefined> {
    const bytes = await readFile(this.path(digest)).catch(() => undefined);
    if (bytes === undefined || bytes.byteLength !== this.backbone.featureSize * 4) return undefined;
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }

  async set(digest: string, features: Float32Array): Promise<void> {
    await mkdir(join(this.directory, digest.slice(0, 2)), { recursive: true });
    await writeFileAtomic(this.path(digest), new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
  }
}

/** Features with how many came from the cache. */
export interface CachedFeatures {
  features: Float32Array;
  hits: number;
  misses: number;
}

/**
 * Like `extractFeaturesParallel`, but reads what the cache has and runs the backbone only on the
 * other images (each distinct image once), writing their features back.
 */
export async function extractFeaturesCached(
  backbone: Backbone,
  records: readonly ImageRecord[],
  cache: FeatureCache,
  options: ParallelFeatureOptions = {},
): Promise<CachedFeatures> {
  const size = backbone.featureSize;
  const features = new Float32Array(records.length * size);
  const digests = records.map(recordDigest);
  const missing = new Map<string, number[]>();

  for (const [row, digest] of digests.entries()) {
    const cached = await cache.get(digest);
    if (cached !== undefined) features.set(cached, row * size);
    else missing.set(digest, [...(missing.get(digest) ?? []), row]);
  }

  const toCompute = [...missing.entries()];
  const computed = await extractFeaturesParallel(backbone, toCompute.map(([, rows]) => records[rows[0]]), options);
  for (const [index, [digest, rows]] of toCompute.entries()) {
    const vector = computed.subarray(index * size, (index + 1) * size);
    for (const row of rows) features.set(vector, row * size);
    await cache.set(digest, vector);
  }
  const misses = [...missing.values()].reduce((sum, rows) => sum + rows.length, 0);
  return { features, hits: records.length - misses, misses };
}
