import { statSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import {
  buildManifest,
  decodeShardRows,
  DEFAULT_PNG_WINDOW_BITS,
  InputError,
  listImageFolder,
  MANIFEST_FILE,
  Progress,
  readImageFile,
  readShardHead,
  realRecord,
  recordsOfSplit,
  rowsToRecordBatch,
  sha256Hex,
  ShardFileWriter,
  SHARD_FORMAT_VERSION,
  TOOLKIT_VERSION,
  writeManifest,
  type ImageEncoding,
  type ImageRecord,
  type LabelledDataset,
  type Manifest,
  type PngFilter,
  type ProgressOptions,
  type ReadImageFileOptions,
  type ResizeFit,
  type ShardInfo,
  type ShardRow,
  type SkippedInput,
} from '@scarce/core/io';
import { Table, tableToIPC } from 'apache-arrow';
import { writeContactSheet } from './contact-sheet.js';
import { resolveTransformConfig, type TransformConfig, type TransformOptions } from './config.js';
import { checkSources } from './dataset.js';
import {
  appendJournal,
  journalFileName,
  partSuffix,
  readJournal,
  removeTemporaryFiles,
  shardIsIntact,
  writeJournal,
  type JournalEntry,
} from './journal.js';
import { encodeChunk, encodeViews, sourcesPerChunk, type ChunkResult, type ShardSettings, type ShardSource, type SourceFile } from './shard-job.js';
import {
  checkPart,
  DEFAULT_SHARD_ROWS,
  fingerprint,
  parseShardSize,
  planShards,
  shardFileName,
  type PlannedShard,
  type RunPart,
  type ShardSize,
} from './shard-plan.js';
import { ShardWorkerPool } from './worker-pool.js';

export const EXAMPLES_FILE = 'examples.png';
export const SHARD_PREFIX = 'augmented';

/** Options of `augmentToShards` and `augmentFolderToShards`. */
export interface AugmentToShardsOptions {
  /** Output folder; created when missing. */
  outDir: string;
  /** Augmented views made of every train image; a positive integer. */
  viewsPerImage: number;
  /** Run seed, recorded in the manifest; default 0. */
  seed?: number;
  /** Transforms; default none. */
  transforms?: TransformOptions | TransformConfig;
  /**
   * Shard size: rows (`4096`), or a byte target (`'256MB'`, `{ bytes: 268435456 }`) that is met
   * on average, estimated from the views of the first four sources. A shard always contains whole
   * sources, so it has a multiple of `viewsPerImage` rows. Default 4096 rows.
   */
  shardSize?: number | string | ShardSize;
  /** Rows per shard; the older name of `shardSize` in rows, used when `shardSize` is not set. */
  rowsPerShard?: number;
  /** Image encoding of the shards: `png` (default) or `raw` uint8 pixels. */
  encoding?: ImageEncoding;
  /** zlib level of PNG output, 0-9; default 6. */
  compressionLevel?: number;
  /** PNG row filter; default `adaptive`. */
  pngFilter?: PngFilter;
  /** Base-2 logarithm of the PNG deflate window, 9-15; default 12 (see `DEFAULT_PNG_WINDOW_BITS`). */
  pngWindowBits?: number;
  /**
   * This run's part when the work is split across machines: part `shardIndex` of `numShards`
   * writes a disjoint, deterministic run of shards and a partial manifest, which
   * `mergeShardParts` joins. Default one part.
   */
  shardIndex?: number;
  numShards?: number;
  /** The caller's settings (for example the whole run config), recorded in the manifest under `run`; default null. */
  config?: unknown;
  /**
   * Replace the outputs of an earlier run with other settings in `outDir`; default false. A rerun
   * with the same inputs and settings needs no flag: it keeps the complete shards and redoes the rest.
   */
  overwrite?: boolean;
  /** Worker threads encoding images; default the number of CPU cores. 1 runs on the calling thread. The output does not depend on it. */
  concurrency?: number;
  /** Progress bar settings; default a bar on stderr. */
  progress?: ProgressOptions;
  /** Receives a summary line at the end; default none. */
  log?: (line: string) => void;
  /** Stops the run after the shards in flight; complete shards are kept for a rerun. */
  signal?: AbortSignal;
  /** Called after each shard is written and journaled. */
  onShardWritten?: (info: ShardInfo) => void;
}

/** Options of `augmentFolderToShards`: those of `augmentToShards` and how the images are read. */
export interface AugmentFolderOptions extends AugmentToShardsOptions {
  /** `skip` leaves out unreadable images and empty class folders and lists them in the manifest; default `error`. */
  onError?: 'error' | 'skip';
  /** Size every image is brought to, as [height, width]; default none: every image must have the size of the first. */
  size?: readonly [number, number];
  /** Fit that brings an image of another size to `size`: `fill` (default), `cover` or `contain`. */
  fit?: ResizeFit;
  /** Channels of the output, 1 or 3; default those of the first image. */
  channels?: 1 | 3;
  /** Largest height x width of an input image; default 64 million. */
  maxPixels?: number;
}

/** The train images of a run, in memory or as files, with what identifies each for resuming. */
interface SourceSet {
  classNames: string[];
  sources: ShardSource[];
  /** Stable identity of a source: its pixels' digest, or its path, size and modification time. */
  identify(source: ShardSource): string;
  /** Inputs left out before any shard was written (empty class folders). */
  skipped: SkippedInput[];
  read: ReadImageFileOptions;
  onError: 'error' | 'skip';
  /** Recorded in the manifest. */
  description: string;
}

/** Rejects PNG settings outside zlib's ranges before any work starts. */
function checkPngSettings(png: ShardSettings['png']): void {
  const ranges = [
    ['compressionLevel (--compression-level)', png.compressionLevel, 0, 9],
    ['pngWindowBits (--png-window-bits)', png.windowBits, 9, 15],
  ] as const;
  for (const [name, value, low, high] of ranges) {
    if (!Number.isInteger(value) || (value as number) < low || (value as number) > high) {
      throw new InputError(`${name} must be an integer in ${low}-${high} but received ${JSON.stringify(value)}.`);
    }
  }
}

function checkPositiveInteger(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InputError(`${name} must be a positive integer but received ${JSON.stringify(value)}.`);
  }
}

/**
 * Augments the train split of a dataset and writes the views as Arrow shards into `outDir`, with
 * `examples.png` (a few sources beside their views) and, last, `manifest.json`, which records the
 * augmentation settings, the sharp, libvips and zlib versions and `config`. Validation and test
 * records are left out. Shards are written as they fill, by worker threads, so memory stays
 * bounded by the shards in flight. A rerun into the same folder resumes: complete shards whose
 * sha256 still matches are kept. A folder written with other settings is rejected unless
 * `overwrite` is set. Returns the manifest (the partial manifest of a part).
 */
export async function augmentToShards(dataset: LabelledDataset, options: AugmentToShardsOptions): Promise<Manifest> {
  const records = recordsOfSplit(dataset, 'train');
  if (records.length === 0) {
    throw new InputError(`augmentToShards found no train records among ${dataset.records.length}; there is nothing to augment.`);
  }
  checkSources(records);
  const sources: SourceSet = {
    classNames: dataset.classNames,
    sources: records.map((record) => ({ record })),
    identify: (source) => {
      const { record } = source as { record: ImageRecord };
      return `${record.sourceIndex}:${record.label}:${record.height}x${record.width}x${record.channels}:${sha256Hex(record.pixels)}`;
    },
    skipped: [],
    read: {},
    onError: 'error',
    description: `${records.length} train records in memory`,
  };
  return runAugment(sources, options);
}

/**
 * Augments the images of a class folder (`root/<class>/*` or `root/train/<class>/*`; val and
 * test folders are left out) without loading them all. Each worker reads the images of the
 * shard it writes. Images are read as a viewer shows them (EXIF orientation applied). Bad inputs
 * stop the run with an error naming the file, or with `onError: 'skip'` are left out and listed
 * in the manifest under `skipped`. Otherwise as `augmentToShards`.
 */
export async function augmentFolderToShards(root: string, options: AugmentFolderOptions): Promise<Manifest> {
  const outFromRoot = relative(resolve(root), resolve(options.outDir));
  if (outFromRoot === '' || (!outFromRoot.startsWith('..') && !isAbsolute(outFromRoot))) {
    throw new InputError(
      `The output folder ${options.outDir} is inside the data folder ${root}, so a later run would read its shards and examples.png ` +
        'as images. Choose an output folder outside the data folder.',
    );
  }
  const listing = await listImageFolder(root);
  const onError = options.onError ?? 'error';
  const skipped: SkippedInput[] = [];
  for (const folder of listing.emptyClassFolders) {
    if (onError === 'error') {
      throw new InputError(`${folder} has no images (.png, .jpg, .jpeg, .webp). Add images, remove the folder, or pass --on-error skip.`);
    }
    skipped.push({ file: folder, reason: 'class folder without images' });
  }
  const files: SourceFile[] = listing.images
    .filter((image) => image.split === 'train')
    .map((image) => ({ path: image.path, label: image.label, sourceIndex: image.sourceIndex }));
  if (files.length === 0) throw new InputError(`${root} has no train images to augment.`);

  const read = await referenceReadOptions(files, options, onError);
  const sources: SourceSet = {
    classNames: listing.classNames,
    sources: files.map((file) => ({ file })),
    identify: (source) => {
      const { file } = source as { file: SourceFile };
      // A synchronous stat is cheaper than a round trip through libuv's thread pool, and there is one per image.
      const info = statSync(file.path, { throwIfNoEntry: false });
      return `${file.sourceIndex}:${file.label}:${relative(root, file.path)}:${info?.size ?? 'missing'}:${info?.mtimeMs ?? ''}`;
    },
    skipped,
    read,
    onError,
    description: `${files.length} train images under ${root}`,
  };
  return runAugment(sources, options);
}

/**
 * Fixes the size and channels every image must have: the declared ones, or those of the first
 * image that can be read, so that every part of a split run agrees without reading all images.
 */
async function referenceReadOptions(files: readonly SourceFile[], options: AugmentFolderOptions, onError: 'error' | 'skip'): Promise<ReadImageFileOptions> {
  const read: ReadImageFileOptions = { size: options.size, fit: options.fit, channels: options.channels, maxPixels: options.maxPixels };
  if (options.size !== undefined && options.channels !== undefined) return read;
  for (const file of files) {
    try {
      const first = await readImageFile(file.path, read);
      return { ...read, expectedSize: options.size === undefined ? [first.height, first.width] : undefined, channels: options.channels ?? (first.channels as 1 | 3) };
    } catch (error) {
      if (onError === 'error' || !(error instanceof InputError)) throw error;
    }
  }
  throw new InputError('No image in the folder could be read; see the errors with --on-error error.');
}

/**
 * Estimates sources per shard for a byte target from the first four sources: the size of their
 * views as one Arrow record batch, columns and params included.
 */
async function sourcesPerShardFor(size: ShardSize, sources: SourceSet, settings: ShardSettings): Promise<number> {
  if ('rows' in size) return Math.max(1, Math.floor(size.rows / settings.viewsPerImage));
  const sample: ShardRow[] = [];
  let counted = 0;
  for (const source of sources.sources) {
    if (counted === 4) break;
    let record: ImageRecord;
    if ('record' in source) record = source.record;
    else {
      const image = await readImageFile(source.file.path, settings.read).catch(() => undefined);
      if (image === undefined) continue;
      record = realRecord(image.pixels, image, source.file.label, 'train', source.file.sourceIndex);
    }
    sample.push(...(await encodeViews(record, settings)));
    counted++;
  }
  if (counted === 0) return 1;
  const batch = rowsToRecordBatch(sample, settings.classNames, settings.encoding);
  const bytes = tableToIPC(new Table(batch.schema, [batch]), 'stream').byteLength;
  return Math.max(1, Math.floor(size.bytes / (bytes / counted)));
}

/** Files of earlier outputs of this part in a folder. */
function ownOutputs(entries: readonly string[], part: RunPart, shardFiles: ReadonlySet<string>): string[] {
  const manifests = part.count === 1 ? [MANIFEST_FILE] : [`manifest.${partSuffix(part)}.json`];
  const ownShards = part.count === 1 ? (name: string) => name.startsWith(`${SHARD_PREFIX}-`) && name.endsWith('.arrow') : (name: string) => shardFiles.has(name);
  return entries.filter((name) => manifests.includes(name) || ownShards(name) || name === journalFileName(part));
}

/**
 * Removes earlier outputs of this part, the manifest first, so that an interrupted removal
 * leaves a folder without a manifest (which readers reject) rather than one whose manifest lists
 * changed shards.
 */
async function removeOutputs(directory: string, names: readonly string[]): Promise<void> {
  const manifests = names.filter((name) => name.startsWith('manifest'));
  await Promise.all(manifests.map((name) => rm(join(directory, name), { force: true })));
  await Promise.all(names.filter((name) => !manifests.includes(name)).map((name) => rm(join(directory, name), { force: true })));
}

async function runAugment(sourceSet: SourceSet, options: AugmentToShardsOptions): Promise<Manifest> {
  checkPositiveInteger('viewsPerImage (--views)', options.viewsPerImage);
  const concurrency = options.concurrency ?? availableParallelism();
  checkPositiveInteger('concurrency (--workers)', concurrency);
  const partSources = Math.ceil(sourceSet.sources.length / (options.numShards ?? 1));
  const threads = Math.min(concurrency, Math.ceil(partSources / sourcesPerChunk(options.viewsPerImage)));
  // Started first, so the workers load while this thread plans and fingerprints the sources.
  const pool = threads > 1 ? new ShardWorkerPool(threads) : undefined;
  try {
    return await augmentSources(sourceSet, options, pool);
  } finally {
    await pool?.close();
  }
}

async function augmentSources(sourceSet: SourceSet, options: AugmentToShardsOptions, pool: ShardWorkerPool | undefined): Promise<Manifest> {
  const part = checkPart({ index: options.shardIndex ?? 0, count: options.numShards ?? 1 });
  const config = resolveTransformConfig(options.transforms as TransformOptions | undefined);
  const seed = options.seed ?? 0;
  const encoding = options.encoding ?? 'png';
  const shardSize = parseShardSize(options.shardSize ?? { rows: options.rowsPerShard ?? DEFAULT_SHARD_ROWS });
  const settings: ShardSettings = {
    classNames: sourceSet.classNames,
    config,
    seed,
    viewsPerImage: options.viewsPerImage,
    encoding,
    png: { compressionLevel: options.compressionLevel ?? 6, filter: options.pngFilter ?? 'adaptive', windowBits: options.pngWindowBits ?? DEFAULT_PNG_WINDOW_BITS },
    read: sourceSet.read,
    onError: sourceSet.onError,
  };
  checkPngSettings(settings.png);
  pool?.configure(settings);

  // Plan: every part computes the same shards from the same inputs and settings.
  const sourcesPerShard = await sourcesPerShardFor(shardSize, sourceSet, settings);
  const plan = planShards(sourceSet.sources.length, sourcesPerShard, part);
  const versions = { toolkit: TOOLKIT_VERSION, formatVersion: SHARD_FORMAT_VERSION, zlib: process.versions.zlib, sharp: sharp.versions.sharp, libvips: sharp.versions.vips };
  // onError is left out: a complete shard is the same under either policy, so a run that stopped
  // at a bad file can resume with 'skip'. PNG settings do not change raw shards.
  const { onError: _policy, png, ...outputSettings } = settings;
  const runFingerprint = fingerprint(versions, { ...outputSettings, png: encoding === 'png' ? png : null }, { sourcesPerShard, sourceCount: sourceSet.sources.length, totalShards: plan.total });
  const shardFingerprints = new Map<number, string>();
  for (const shard of plan.shards) {
    const identities = sourceSet.sources.slice(shard.start, shard.end).map((source) => sourceSet.identify(source));
    shardFingerprints.set(shard.index, fingerprint(runFingerprint, shard.index, identities));
  }

  // Resume: keep the shards that the journal lists with the same fingerprint and an intact file.
  const outDir = options.outDir;
  await mkdir(outDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST' || error.code === 'ENOTDIR') throw new InputError(`${outDir} is a file, not a folder. Choose another output folder.`);
    throw error;
  });
  const shardFiles = new Set(plan.shards.map((shard) => shardFileName(SHARD_PREFIX, shard.index)));
  const journalPath = join(outDir, journalFileName(part));
  let journal = await readJournal(journalPath);
  const earlier = ownOutputs(await readdir(outDir), part, shardFiles);
  const ownShardsOnDisk = earlier.some((name) => name.endsWith('.arrow'));
  if (journal !== undefined && journal.run !== runFingerprint) {
    // A run that stopped before its first shard leaves nothing worth protecting.
    if (!options.overwrite && (journal.entries.size > 0 || ownShardsOnDisk)) {
      throw new InputError(
        `${outDir} contains shards written with other inputs or settings. Choose another folder, or set overwrite (--force) to replace them.`,
      );
    }
    journal = undefined;
  } else if (journal === undefined && earlier.length > 0 && !options.overwrite) {
    throw new InputError(
      `${outDir} already has shards or a manifest (${earlier.slice(0, 3).join(', ')}${earlier.length > 3 ? ', ...' : ''}) ` +
        'without a journal to resume from. Choose another folder or set overwrite (--force) to replace them.',
    );
  }
  if (journal === undefined) await removeOutputs(outDir, [...earlier, ...(part.index === 0 ? [EXAMPLES_FILE] : [])]);
  // A part removes only its own shards' leftovers, because other parts may be writing into the
  // folder. A whole run owns every shard file, including those of an earlier plan.
  const ownsShardFile = part.count === 1 ? (name: string) => name.startsWith(`${SHARD_PREFIX}-`) && name.endsWith('.arrow') : (name: string) => shardFiles.has(name);
  await removeTemporaryFiles(outDir, ownsShardFile);

  const kept: JournalEntry[] = [];
  for (const shard of plan.shards) {
    const entry = journal?.entries.get(shard.index);
    if (entry !== undefined && entry.fingerprint === shardFingerprints.get(shard.index) && (await shardIsIntact(outDir, entry.info))) kept.push(entry);
  }
  await writeJournal(journalPath, runFingerprint, kept);
  if (kept.length < plan.shards.length) await rm(join(outDir, part.count === 1 ? MANIFEST_FILE : `manifest.${partSuffix(part)}.json`), { force: true });

  // Write the missing shards.
  const entries = new Map(kept.map((entry) => [entry.shard, entry]));
  const todo = plan.shards.filter((shard) => !entries.has(shard.index));
  const sourceCount = plan.shards.reduce((sum, shard) => sum + shard.end - shard.start, 0);
  const progress = new Progress('augment', sourceCount * options.viewsPerImage, options.progress);
  const keptSources = plan.shards.filter((shard) => entries.has(shard.index)).reduce((sum, shard) => sum + shard.end - shard.start, 0);
  if (keptSources > 0) progress.tick(keptSources * options.viewsPerImage);
  const written = await writeShards(todo, sourceSet, settings, pool, options, outDir, async (shard, result) => {
    const entry: JournalEntry = { shard: shard.index, fingerprint: shardFingerprints.get(shard.index)!, info: result.info, skipped: result.skipped };
    await appendJournal(journalPath, entry);
    entries.set(shard.index, entry);
    options.onShardWritten?.(result.info);
  }, () => progress.tick(options.viewsPerImage));

  // Finish: contact sheet, then the manifest, last.
  const ordered = plan.shards.map((shard) => entries.get(shard.index)!);
  // Inputs left out before the plan (empty class folders) are listed by part 0 only, so a merge lists each once.
  const skipped = [...(part.index === 0 ? sourceSet.skipped : []), ...ordered.flatMap((entry) => entry.skipped)];
  if (plan.shards[0]?.index === 0) await writeExamples(outDir, sourceSet, settings, ordered[0].info);
  const manifest = buildManifest(
    sourceSet.classNames,
    ordered.map((entry) => entry.info),
    {
      stage: 'augment',
      augment: {
        viewsPerImage: options.viewsPerImage,
        seed,
        transforms: config,
        sourceRecords: sourceSet.sources.length,
        source: sourceSet.description,
        encoding,
        png: settings.png,
        read: sourceSet.read,
        onError: sourceSet.onError,
        shardSize,
        sourcesPerShard,
        totalShards: plan.total,
        part: part.count === 1 ? null : part,
        runFingerprint,
        sharpVersion: sharp.versions.sharp,
        libvipsVersion: sharp.versions.vips,
        zlibVersion: process.versions.zlib,
      },
      run: options.config ?? null,
    },
    { encoding, skipped },
  );
  const manifestName = part.count === 1 ? MANIFEST_FILE : `manifest.${partSuffix(part)}.json`;
  await writeManifest(outDir, manifest, manifestName);

  const rows = manifest.totals.rows;
  // Empty class folders are listed as skipped too, but they are not among the sources.
  const skippedImages = ordered.reduce((sum, entry) => sum + entry.skipped.length, 0);
  options.log?.(
    `wrote ${rows} augmented records (${options.viewsPerImage} views of ${sourceCount - skippedImages} train images${skipped.length > 0 ? `, ${skipped.length} skipped` : ''}) ` +
      `in ${ordered.length} shard(s) (${written} new, ${kept.length} kept from an earlier run) and ${manifestName} to ${outDir}`,
  );
  return manifest;
}

/** A run of consecutive sources of one shard, encoded as one record batch. */
interface Chunk {
  shard: PlannedShard;
  sources: ShardSource[];
  /** Whether it is the shard's last chunk, after which the shard is closed. */
  last: boolean;
}

function chunksOf(shards: readonly PlannedShard[], sources: readonly ShardSource[], perChunk: number): Chunk[] {
  const chunks: Chunk[] = [];
  for (const shard of shards) {
    if (shard.end === shard.start) chunks.push({ shard, sources: [], last: true });
    for (let start = shard.start; start < shard.end; start += perChunk) {
      const end = Math.min(shard.end, start + perChunk);
      chunks.push({ shard, sources: sources.slice(start, end), last: end === shard.end });
    }
  }
  return chunks;
}

/**
 * Writes the shards: chunks of sources are encoded on worker threads (or on this thread when
 * one is enough), a few ahead of the writer, and written in order, one record batch each. So
 * every core works on every shard, memory is bounded by the chunks in flight, and the bytes do
 * not depend on the thread count. Each finished shard is reported to `onWritten`. On a failure
 * or an abort the shard being written is removed, and the error reports how many were kept.
 */
async function writeShards(
  todo: readonly PlannedShard[],
  sourceSet: SourceSet,
  settings: ShardSettings,
  workers: ShardWorkerPool | undefined,
  options: AugmentToShardsOptions,
  outDir: string,
  onWritten: (shard: PlannedShard, result: { info: ShardInfo; skipped: SkippedInput[] }) => Promise<void>,
  onSource: () => void,
): Promise<number> {
  const chunks = chunksOf(todo, sourceSet.sources, sourcesPerChunk(settings.viewsPerImage));
  const pool = chunks.length > 1 ? workers : undefined;
  const encode = (chunk: Chunk): Promise<ChunkResult> =>
    pool === undefined ? encodeChunk(chunk.sources, settings, onSource) : pool.run(chunk.sources, onSource);
  // Two chunks per thread keep every worker busy while the writer waits for the next in order.
  const window = pool === undefined ? 1 : 2 * pool.size;

  const inFlight = new Map<number, Promise<ChunkResult>>();
  let dispatched = 0;
  let written = 0;
  let writer: ShardFileWriter | undefined;
  let skipped: SkippedInput[] = [];
  try {
    for (let index = 0; index < chunks.length; index++) {
      while (dispatched < chunks.length && dispatched < index + window) {
        const pending = encode(chunks[dispatched]);
        pending.catch(() => undefined);
        inFlight.set(dispatched++, pending);
      }
      const chunk = chunks[index];
      const result = await inFlight.get(index)!;
      inFlight.delete(index);

      writer ??= await ShardFileWriter.open(join(outDir, shardFileName(SHARD_PREFIX, chunk.shard.index)), {
        classNames: settings.classNames,
        encoding: settings.encoding,
      });
      if (result.rows.length > 0) writer.write(result.rows);
      skipped.push(...result.skipped);
      if (!chunk.last) continue;

      const info = await writer.close();
      writer = undefined;
      await onWritten(chunk.shard, { info, skipped });
      skipped = [];
      written++;
      if (options.signal?.aborted && index < chunks.length - 1) throw options.signal.reason ?? new Error('The run was aborted.');
    }
  } catch (failure) {
    await writer?.abort();
    const error = failure as Error;
    // The resume hint helps only when shards were written; a bad input or setting fails the same way again.
    const note = written > 0 ? ` (${written} shard(s) written before it are kept; rerun the same command to resume.)` : '';
    if (error instanceof InputError) throw new InputError(`${error.message}${note}`);
    error.message = `${error.message}${note}`;
    throw error;
  }
  return written;
}

/** Writes `examples.png`: the first sources of shard 0, each beside its views. */
async function writeExamples(outDir: string, sourceSet: SourceSet, settings: ShardSettings, first: ShardInfo): Promise<void> {
  const sources: ImageRecord[] = [];
  for (const source of sourceSet.sources) {
    if (sources.length === 6) break;
    if ('record' in source) sources.push(source.record);
    else {
      const image = await readImageFile(source.file.path, settings.read).catch(() => undefined);
      if (image !== undefined) sources.push(realRecord(image.pixels, image, source.file.label, 'train', source.file.sourceIndex));
    }
  }
  if (sources.length === 0 || first.rows === 0) return;
  const head = await readShardHead(join(outDir, first.file), sources.length * settings.viewsPerImage);
  const views = await decodeShardRows(head.rows, first.file, 8, head.encoding);
  await writeContactSheet(join(outDir, EXAMPLES_FILE), sources, views);
}
