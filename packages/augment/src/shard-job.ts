import {
  encodeImage,
  InputError,
  readImageFile,
  realRecord,
  type EncodePngOptions,
  type ImageRecord,
  type ReadImageFileOptions,
} from '@scarce/core/codec';
import type { ImageEncoding, ShardRow, SkippedInput } from '@scarce/core/io';
import type { TransformConfig } from './config-values.js';
import { applyCheckedTransform } from './apply-transform.js';
import { sampleTransformParams, viewSeed } from './params.js';

/** An image file to augment, with its label and index among the train images. */
export interface SourceFile {
  path: string;
  label: number;
  sourceIndex: number;
}

/** One source of a shard: a record in memory or a file to read. */
export type ShardSource = { record: ImageRecord } | { file: SourceFile };

/** Settings shared by every shard of a run; plain data, so it can be posted to a worker thread. */
export interface ShardSettings {
  classNames: string[];
  config: TransformConfig;
  seed: number;
  viewsPerImage: number;
  encoding: ImageEncoding;
  png: EncodePngOptions;
  /** Read settings of source files: size policy, channels and pixel limit. */
  read: ReadImageFileOptions;
  /** `skip` leaves out a source file that cannot be read and records why; `error` stops the run. */
  onError: 'error' | 'skip';
}

/** Encoded views of a run of consecutive sources, and the sources left out. */
export interface ChunkResult {
  rows: ShardRow[];
  skipped: SkippedInput[];
}

/**
 * Rows per Arrow record batch, and so per chunk of work handed to a worker: a chunk contains
 * `max(1, floor(BATCH_ROWS / viewsPerImage))` sources. Fixed, because it shapes the file.
 */
export const BATCH_ROWS = 64;

/** Returns how many consecutive sources make one chunk (one record batch). */
export function sourcesPerChunk(viewsPerImage: number): number {
  return Math.max(1, Math.floor(BATCH_ROWS / viewsPerImage));
}

/** Reads a source, returning undefined when it is a file that `onError: 'skip'` leaves out. */
async function loadSource(source: ShardSource, settings: ShardSettings, skipped: SkippedInput[]): Promise<ImageRecord | undefined> {
  if ('record' in source) return source.record;
  const { path, label, sourceIndex } = source.file;
  try {
    const image = await readImageFile(path, settings.read);
    return realRecord(image.pixels, image, label, 'train', sourceIndex);
  } catch (error) {
    if (settings.onError === 'skip' && error instanceof InputError) {
      skipped.push({ file: path, reason: error.message });
      return undefined;
    }
    throw error;
  }
}

/** Makes and encodes the views of one source record, in view order. */
export async function encodeViews(source: ImageRecord, settings: ShardSettings): Promise<ShardRow[]> {
  const rows: ShardRow[] = [];
  for (let view = 1; view <= settings.viewsPerImage; view++) {
    const seed = viewSeed(settings.seed, source.sourceIndex as number, view);
    const params = sampleTransformParams(settings.config, source.height, source.width, seed);
    const image = await applyCheckedTransform(source, params);
    rows.push({
      image: encodeImage(image, settings.encoding, settings.png),
      height: image.height,
      width: image.width,
      channels: image.channels,
      label: source.label,
      origin: 'augmented',
      sourceIndex: source.sourceIndex,
      view,
      seed: seed >>> 0,
      params,
      split: 'train',
    });
  }
  return rows;
}

/**
 * Reads and augments a run of consecutive sources and encodes their views, in source then view
 * order. The rows depend only on the sources and the settings, never on the thread that runs
 * this. `onSource` is called after each source.
 */
export async function encodeChunk(sources: readonly ShardSource[], settings: ShardSettings, onSource?: () => void): Promise<ChunkResult> {
  const rows: ShardRow[] = [];
  const skipped: SkippedInput[] = [];
  for (const source of sources) {
    const record = await loadSource(source, settings, skipped);
    if (record !== undefined) rows.push(...(await encodeViews(record, settings)));
    onSource?.();
  }
  return { rows, skipped };
}
