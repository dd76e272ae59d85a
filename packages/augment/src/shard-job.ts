import {
  encodeImage,
  InputError,
  readImageFile,
  realRecord,
  ShardFileWriter,
  type EncodePngOptions,
  type ImageEncoding,
  type ImageRecord,
  type ReadImageFileOptions,
  type ShardInfo,
  type ShardRow,
  type SkippedInput,
} from '@scarce/core';
import type { TransformConfig } from './config.js';
import { sampleTransformParams } from './params.js';
import { applyTransform, viewSeed } from './transform.js';

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

/** One shard to write: its sources, in order, and its final path. */
export interface ShardJob {
  index: number;
  path: string;
  sources: ShardSource[];
}

/** Result of writing one shard. */
export interface ShardJobResult {
  info: ShardInfo;
  skipped: SkippedInput[];
}

/** Rows per Arrow record batch; a batch is also flushed at `MAX_BATCH_BYTES`. Part of the file format, so fixed. */
export const BATCH_ROWS = 64;
const MAX_BATCH_BYTES = 32 * 1024 * 1024;

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
    const image = await applyTransform(source, params);
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
 * Writes one shard: every view of every source, in source then view order, as record batches
 * of `BATCH_ROWS` rows. Its bytes depend only on the job and the settings, never on which
 * thread runs it or when. `onSource` is called after each source. A failure removes the
 * temporary file, so no partial shard is left.
 */
export async function runShardJob(job: ShardJob, settings: ShardSettings, onSource?: () => void): Promise<ShardJobResult> {
  const writer = await ShardFileWriter.open(job.path, { classNames: settings.classNames, encoding: settings.encoding });
  const skipped: SkippedInput[] = [];
  try {
    let batch: ShardRow[] = [];
    let batchBytes = 0;
    for (const source of job.sources) {
      const record = await loadSource(source, settings, skipped);
      if (record !== undefined) {
        for (const row of await encodeViews(record, settings)) {
          batch.push(row);
          batchBytes += row.image.byteLength;
          if (batch.length >= BATCH_ROWS || batchBytes >= MAX_BATCH_BYTES) {
            writer.write(batch);
            batch = [];
            batchBytes = 0;
          }
        }
      }
      onSource?.();
    }
    if (batch.length > 0) writer.write(batch);
    return { info: await writer.close(), skipped };
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
