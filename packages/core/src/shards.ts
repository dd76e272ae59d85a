import { InputError } from './errors.js';
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  Binary,
  RecordBatchFileWriter,
  RecordBatchReader,
  Int32,
  makeData,
  RecordBatch,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
  Uint32,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import pLimit from 'p-limit';
import { sha256Hex, writeFileAtomic } from './files.js';
import { decodeStoredImage, encodeImage, type EncodePngOptions } from './image-codec.js';
import type { ImageRecord, LabelledDataset, Origin, Split } from './records.js';
import { countByClass, countByOrigin, ORIGINS, SPLITS } from './records.js';
import {
  IMAGE_ENCODINGS,
  METADATA_CLASS_NAMES,
  METADATA_ENCODING,
  METADATA_FORMAT_VERSION,
  SHARD_FIELDS,
  SHARD_FORMAT_VERSION,
  shardSchema,
  type ImageEncoding,
} from './shard-schema.js';

/** One shard row before it is written: the record with its image already encoded. */
export interface ShardRow extends Omit<ImageRecord, 'pixels'> {
  image: Uint8Array;
}

/** Manifest entry of one written shard. */
export interface ShardInfo {
  /** File name relative to the shard folder. */
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  classCounts: number[];
  originCounts: Record<Origin, number>;
  splitCounts: Record<Split, number>;
}

/** Options of `ShardWriter`. */
export interface ShardWriterOptions {
  /** Folder the shards go to; it must exist. */
  directory: string;
  classNames: readonly string[];
  /** File name prefix; default `shard`, giving `shard-00000.arrow`, `shard-00001.arrow`, ... */
  prefix?: string;
  /** Rows per shard; default 4096. */
  rowsPerShard?: number;
  /** Image encoding; default `png`. The rows' `image` bytes must already be in it. */
  encoding?: ImageEncoding;
}

/**
 * Writes rows into Arrow IPC file shards of a fixed number of rows. Each shard is written under
 * a temporary name and renamed when complete, so a crash never leaves a partial shard.
 */
export class ShardWriter {
  private readonly rows: ShardRow[] = [];
  private readonly written: ShardInfo[] = [];
  private readonly prefix: string;
  private readonly rowsPerShard: number;
  private closed = false;

  constructor(private readonly options: ShardWriterOptions) {
    this.prefix = options.prefix ?? 'shard';
    this.rowsPerShard = options.rowsPerShard ?? 4096;
    if (!Number.isInteger(this.rowsPerShard) || this.rowsPerShard < 1) {
      throw new InputError(`rowsPerShard must be a positive integer but received ${this.rowsPerShard}.`);
    }
  }

  /** Adds one row, writing a shard when it fills up. */
  async add(row: ShardRow): Promise<void> {
    if (this.closed) throw new InputError('ShardWriter.add called after close.');
    checkLabel(row.label, this.options.classNames.length);
    this.rows.push(row);
    if (this.rows.length >= this.rowsPerShard) await this.flush();
  }

  /** Writes the last partial shard and returns what was written. */
  async close(): Promise<ShardInfo[]> {
    if (!this.closed) {
      await this.flush();
      this.closed = true;
    }
    return [...this.written];
  }

  private async flush(): Promise<void> {
    if (this.rows.length === 0) return;
    const rows = this.rows.splice(0, this.rows.length);
    const file = `${this.prefix}-${String(this.written.length).padStart(5, '0')}.arrow`;
    const bytes = tableToIPC(rowsToTable(rows, this.options.classNames, this.options.encoding), 'file');
    await writeFileAtomic(join(this.options.directory, file), bytes);
    this.written.push({ file, rows: rows.length, bytes: bytes.byteLength, sha256: sha256Hex(bytes), ...countRows(rows, this.options.classNames.length) });
  }
}

/** Counts of shard rows by class, origin and split, as a manifest records them. */
export function countRows(rows: readonly Pick<ShardRow, 'label' | 'origin' | 'split'>[], numClasses: number) {
  return {
    classCounts: countByClass(rows as unknown as ImageRecord[], numClasses),
    originCounts: countByOrigin(rows as unknown as ImageRecord[]),
    splitCounts: countBySplit(rows),
  };
}

/** Options of `ShardFileWriter.open`. */
export interface ShardFileWriterOptions {
  classNames: readonly string[];
  /** Encoding of the rows' images; default `png`. */
  encoding?: ImageEncoding;
}

/** Bytes of Arrow output gathered before one write to the shard file. */
const WRITE_GATHER_BYTES = 1 << 20;

/**
 * Writes one shard as a stream of record batches, so its rows never need to be in memory at
 * once. The file is written under a temporary name beside `path` and renamed into place by
 * `close`, so a crash never leaves a partial shard under the final name. Call `abort` to
 * remove the temporary file after a failure.
 */
export class ShardFileWriter {
  private readonly writer = new RecordBatchFileWriter();
  private readonly hash = createHash('sha256');
  private readonly drained: Promise<void>;
  private bytes = 0;
  private readonly rowCounts: ReturnType<typeof countRows>;
  private rows = 0;

  private constructor(
    private readonly path: string,
    private readonly temporaryPath: string,
    private readonly handle: FileHandle,
    private readonly options: ShardFileWriterOptions,
  ) {
    this.rowCounts = countRows([], options.classNames.length);
    this.drained = this.drain();
  }

  /** Creates the temporary file of a shard that will be renamed to `path`. */
  static async open(path: string, options: ShardFileWriterOptions): Promise<ShardFileWriter> {
    const temporaryPath = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const handle = await open(temporaryPath, 'w');
    return new ShardFileWriter(path, temporaryPath, handle, options);
  }

  /**
   * Hashes the writer's output and writes it to the file. The Arrow writer emits every buffer of
   * a batch as its own chunk, so chunks are gathered and written together to save system calls.
   */
  private async drain(): Promise<void> {
    let gathered: Uint8Array[] = [];
    let gatheredBytes = 0;
    for await (const chunk of this.writer) {
      this.hash.update(chunk);
      this.bytes += chunk.byteLength;
      gathered.push(chunk);
      gatheredBytes += chunk.byteLength;
      if (gatheredBytes >= WRITE_GATHER_BYTES) {
        await this.handle.writev(gathered);
        gathered = [];
        gatheredBytes = 0;
      }
    }
    if (gathered.length > 0) await this.handle.writev(gathered);
  }

  /** Appends the rows as one record batch. */
  write(rows: readonly ShardRow[]): void {
    const numClasses = this.options.classNames.length;
    for (const row of rows) checkLabel(row.label, numClasses);
    this.writer.write(rowsToRecordBatch(rows, this.options.classNames, this.options.encoding));
    const counts = countRows(rows, numClasses);
    counts.classCounts.forEach((count, label) => (this.rowCounts.classCounts[label] += count));
    for (const origin of ORIGINS) this.rowCounts.originCounts[origin] += counts.originCounts[origin];
    for (const split of SPLITS) this.rowCounts.splitCounts[split] += counts.splitCounts[split];
    this.rows += rows.length;
  }

  /** Finishes the file, syncs it to disk, renames it into place and returns what the manifest records. */
  async close(): Promise<ShardInfo> {
    // A shard without rows still carries its schema, so every listed shard can be read.
    if (this.rows === 0) this.writer.write(rowsToRecordBatch([], this.options.classNames, this.options.encoding));
    this.writer.finish();
    this.writer.close();
    await this.drained;
    await this.handle.sync();
    await this.handle.close();
    await rename(this.temporaryPath, this.path);
    return { file: basename(this.path), rows: this.rows, bytes: this.bytes, sha256: this.hash.digest('hex'), ...this.rowCounts };
  }

  /** Removes the temporary file; the final name is never written. */
  async abort(): Promise<void> {
    this.writer.abort();
    await this.drained.catch(() => undefined);
    await this.handle.close().catch(() => undefined);
    await rm(this.temporaryPath, { force: true });
  }
}

function checkLabel(label: number, numClasses: number): void {
  if (label < 0 || label >= numClasses || !Number.isInteger(label)) {
    throw new InputError(`Row label ${label} is not a class index in 0..${numClasses - 1}.`);
  }
}

function countBySplit(rows: readonly { split: Split }[]): Record<Split, number> {
  const counts: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const row of rows) counts[row.split]++;
  return counts;
}

function rowsToTable(rows: readonly ShardRow[], classNames: readonly string[], encoding?: ImageEncoding): Table {
  const batch = rowsToRecordBatch(rows, classNames, encoding);
  return new Table(batch.schema, [batch]);
}

/** Builds one Arrow record batch of shard rows, with the shard schema and its metadata. */
export function rowsToRecordBatch(rows: readonly ShardRow[], classNames: readonly string[], encoding?: ImageEncoding): RecordBatch {
  const schema = shardSchema(classNames, encoding);
  const columns = [
    vectorFromArray(rows.map((row) => row.image), new Binary()),
    vectorFromArray(rows.map((row) => row.label), new Int32()),
    vectorFromArray(rows.map((row) => row.height), new Int32()),
    vectorFromArray(rows.map((row) => row.width), new Int32()),
    vectorFromArray(rows.map((row) => row.channels), new Int32()),
    vectorFromArray(rows.map((row) => row.origin), new Utf8()),
    vectorFromArray(rows.map((row) => row.sourceIndex), new Int32()),
    vectorFromArray(rows.map((row) => row.view), new Int32()),
    vectorFromArray(rows.map((row) => row.seed >>> 0), new Uint32()),
    vectorFromArray(rows.map((row) => (row.params === null ? null : JSON.stringify(row.params))), new Utf8()),
    vectorFromArray(rows.map((row) => row.split), new Utf8()),
  ];
  const data = makeData({
    type: new Struct(SHARD_FIELDS),
    length: rows.length,
    nullCount: 0,
    children: columns.map((column) => column.data[0]),
  });
  return new RecordBatch(schema, data);
}

/** Options of `writeRecordsAsShards`. */
export interface WriteRecordsOptions extends ShardWriterOptions, EncodePngOptions {
  /** Kept for callers of earlier versions; encoding now runs on the calling thread and ignores it. */
  concurrency?: number;
}

/** Encodes records (PNG by default, or raw) and writes them as shards in input order. */
export async function writeRecordsAsShards(
  records: readonly ImageRecord[],
  options: WriteRecordsOptions,
): Promise<ShardInfo[]> {
  const writer = new ShardWriter(options);
  const encoding = options.encoding ?? 'png';
  for (const record of records) {
    const { pixels, ...rest } = record;
    const image = encodeImage(record, encoding, { compressionLevel: options.compressionLevel, filter: options.filter, windowBits: options.windowBits });
    await writer.add({ ...rest, image } satisfies ShardRow);
  }
  return writer.close();
}

/** A shard's rows with their images still encoded, and the class names and encoding from its metadata. */
export interface ShardContents {
  classNames: string[];
  rows: ShardRow[];
  encoding: ImageEncoding;
}

/** Reads one shard file without decoding its images. */
export async function readShard(path: string): Promise<ShardContents> {
  const bytes = await readFile(path);
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (error) {
    throw new InputError(`${path} is not an Arrow IPC file (${(error as Error).message}). Rewrite the shard.`);
  }

  return tableToContents(table, path);
}

function tableToContents(table: Table, path: string): ShardContents {
  const metadata = table.schema.metadata;
  const version = metadata.get(METADATA_FORMAT_VERSION);
  if (version !== String(SHARD_FORMAT_VERSION)) {
    throw new InputError(
      `${path}: expected shard format version ${SHARD_FORMAT_VERSION} in schema metadata ` +
        `'${METADATA_FORMAT_VERSION}' but found ${version ?? 'none'}. Rewrite it with this version of scarce.`,
    );
  }
  const classNames = JSON.parse(metadata.get(METADATA_CLASS_NAMES) ?? '[]') as string[];
  // Shards written before raw encoding existed carry 'png' or nothing.
  const encoding = (metadata.get(METADATA_ENCODING) ?? 'png') as ImageEncoding;
  if (!IMAGE_ENCODINGS.includes(encoding)) {
    throw new InputError(`${path}: unknown image encoding '${encoding}' in schema metadata '${METADATA_ENCODING}'; expected one of ${IMAGE_ENCODINGS.join(', ')}.`);
  }
  for (const field of SHARD_FIELDS) {
    if (!table.getChild(field.name)) throw new InputError(`${path}: column '${field.name}' is missing.`);
  }

  const rows: ShardRow[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const params = table.getChild('params')!.get(i) as string | null;
    const origin = table.getChild('origin')!.get(i) as Origin;
    const split = table.getChild('split')!.get(i) as Split;
    if (!ORIGINS.includes(origin)) throw new InputError(`${path}: row ${i} has unknown origin '${origin}'.`);
    if (!SPLITS.includes(split)) throw new InputError(`${path}: row ${i} has unknown split '${split}'.`);
    rows.push({
      image: table.getChild('image')!.get(i) as Uint8Array,
      label: table.getChild('label')!.get(i) as number,
      height: table.getChild('height')!.get(i) as number,
      width: table.getChild('width')!.get(i) as number,
      channels: table.getChild('channels')!.get(i) as number,
      origin,
      sourceIndex: table.getChild('source_index')!.get(i) as number | null,
      view: table.getChild('view')!.get(i) as number,
      seed: table.getChild('seed')!.get(i) as number,
      params: params === null ? null : (JSON.parse(params) as Record<string, unknown>),
      split,
    });
  }
  return { classNames, rows, encoding };
}

/**
 * Reads the schema metadata and the first `maxRows` rows of a shard without reading the rest of
 * the file, so a large shard can be sampled in little memory. Images stay encoded.
 */
export async function readShardHead(path: string, maxRows: number): Promise<ShardContents & { schema: Table['schema'] }> {
  const handle = await open(path, 'r');
  try {
    let reader;
    try {
      reader = await RecordBatchReader.from(handle);
      await reader.open();
    } catch (error) {
      throw new InputError(`${path} is not an Arrow IPC file (${(error as Error).message}). Rewrite the shard.`);
    }
    const schema = reader.schema;
    const batches: RecordBatch[] = [];
    let rows = 0;
    for await (const batch of reader) {
      if (rows >= maxRows) break;
      batches.push(batch);
      rows += batch.numRows;
    }
    await reader.cancel();
    const table = new Table(schema, batches);
    const contents = tableToContents(table.slice(0, maxRows), path);
    return { ...contents, schema };
  } finally {
    await handle.close();
  }
}

/** Decodes shard rows into records, checking each image against its declared shape. */
export async function decodeShardRows(
  rows: readonly ShardRow[],
  source: string,
  concurrency = 8,
  encoding: ImageEncoding = 'png',
): Promise<ImageRecord[]> {
  const limit = pLimit(concurrency);
  return Promise.all(
    rows.map((row, index) =>
      limit(async () => {
        const { image, ...rest } = row;
        const decoded = await decodeStoredImage(image, encoding, row, `${source}: row ${index}`);
        return { ...rest, pixels: decoded.pixels };
      }),
    ),
  );
}

/** Reads shard files into one dataset; all shards must share the same class names. */
export async function readShardFiles(paths: readonly string[]): Promise<LabelledDataset> {
  let classNames: string[] | undefined;
  const records: ImageRecord[] = [];
  for (const path of paths) {
    const contents = await readShard(path);
    if (classNames === undefined) classNames = contents.classNames;
    else if (JSON.stringify(classNames) !== JSON.stringify(contents.classNames)) {
      throw new InputError(
        `${path} has classes ${JSON.stringify(contents.classNames)} but ${basename(paths[0])} has ` +
          `${JSON.stringify(classNames)}. Shards read together must share their class names.`,
      );
    }
    records.push(...(await decodeShardRows(contents.rows, path, 8, contents.encoding)));
  }
  return { classNames: classNames ?? [], records };
}
