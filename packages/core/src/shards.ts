import { InputError } from './errors.js';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  Binary,
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
import { decodeImage, encodePng } from './image-codec.js';
import type { ImageRecord, LabelledDataset, Origin, Split } from './records.js';
import { countByClass, countByOrigin, ORIGINS, SPLITS } from './records.js';
import {
  METADATA_CLASS_NAMES,
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

/** What the manifest records about one written shard. */
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
    if (row.label < 0 || row.label >= this.options.classNames.length || !Number.isInteger(row.label)) {
      throw new InputError(
        `Row label ${row.label} is not a class index in 0..${this.options.classNames.length - 1}.`,
      );
    }
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
    this.written.push({
      file,
      rows: rows.length,
      bytes: bytes.byteLength,
      sha256: sha256Hex(bytes),
      classCounts: countByClass(rows as unknown as ImageRecord[], this.options.classNames.length),
      originCounts: countByOrigin(rows as unknown as ImageRecord[]),
      splitCounts: countBySplit(rows),
    });
  }
}

function countBySplit(rows: readonly { split: Split }[]): Record<Split, number> {
  const counts: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const row of rows) counts[row.split]++;
  return counts;
}

function rowsToTable(rows: readonly ShardRow[], classNames: readonly string[], encoding?: ImageEncoding): Table {
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
  return new Table(schema, [new RecordBatch(schema, data)]);
}

/** Options of `writeRecordsAsShards`. */
export interface WriteRecordsOptions extends ShardWriterOptions {
  /** PNG encodes running at once; default 8 (sharp runs them on libuv's thread pool). */
  concurrency?: number;
  compressionLevel?: number;
}

/** Encodes records as PNG (concurrently, written in input order) and writes them as shards. */
export async function writeRecordsAsShards(
  records: readonly ImageRecord[],
  options: WriteRecordsOptions,
): Promise<ShardInfo[]> {
  const writer = new ShardWriter(options);
  const limit = pLimit(options.concurrency ?? 8);
  const chunkSize = options.rowsPerShard ?? 4096;

  for (let start = 0; start < records.length; start += chunkSize) {
    const chunk = records.slice(start, start + chunkSize);
    const rows = await Promise.all(
      chunk.map((record) =>
        limit(async () => {
          const { pixels, ...rest } = record;
          const image = await encodePng(record, { compressionLevel: options.compressionLevel });
          return { ...rest, image } satisfies ShardRow;
        }),
      ),
    );
    for (const row of rows) await writer.add(row);
  }
  return writer.close();
}

/** A shard's rows with their images still encoded, and the class names from its metadata. */
export interface ShardContents {
  classNames: string[];
  rows: ShardRow[];
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

  const metadata = table.schema.metadata;
  const version = metadata.get(METADATA_FORMAT_VERSION);
  if (version !== String(SHARD_FORMAT_VERSION)) {
    throw new InputError(
      `${path}: expected shard format version ${SHARD_FORMAT_VERSION} in schema metadata ` +
        `'${METADATA_FORMAT_VERSION}' but found ${version ?? 'none'}. Rewrite it with this version of scarce.`,
    );
  }
  const classNames = JSON.parse(metadata.get(METADATA_CLASS_NAMES) ?? '[]') as string[];
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
  return { classNames, rows };
}

/** Decodes shard rows into records, checking each image against its declared shape. */
export async function decodeShardRows(rows: readonly ShardRow[], source: string, concurrency = 8): Promise<ImageRecord[]> {
  const limit = pLimit(concurrency);
  return Promise.all(
    rows.map((row, index) =>
      limit(async () => {
        const { image, ...rest } = row;
        const decoded = await decodeImage(image);
        if (decoded.height !== row.height || decoded.width !== row.width || decoded.channels !== row.channels) {
          throw new InputError(
            `${source}: row ${index} declares ${row.height}x${row.width}x${row.channels} but its image ` +
              `decodes to ${decoded.height}x${decoded.width}x${decoded.channels}.`,
          );
        }
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
    records.push(...(await decodeShardRows(contents.rows, path)));
  }
  return { classNames: classNames ?? [], records };
}
