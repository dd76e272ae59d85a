import { InputError } from './errors.js';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { sha256Hex, TOOLKIT_VERSION, writeFileAtomic } from './files.js';
import type { Origin, Split } from './records.js';
import { readShardFiles, type ShardInfo } from './shards.js';
import { IMAGE_ENCODINGS, SHARD_FORMAT_VERSION, type ImageEncoding } from './shard-schema.js';
import type { LabelledDataset } from './records.js';

export const MANIFEST_FILE = 'manifest.json';

const originCounts = z.object({ real: z.number().int(), augmented: z.number().int(), synthetic: z.number().int() });
const splitCounts = z.object({ train: z.number().int(), val: z.number().int(), test: z.number().int() });

const manifestSchema = z.object({
  formatVersion: z.literal(SHARD_FORMAT_VERSION),
  toolkitVersion: z.string(),
  createdAt: z.string(),
  classNames: z.array(z.string()).min(1),
  encoding: z.enum(IMAGE_ENCODINGS as [ImageEncoding, ...ImageEncoding[]]),
  shards: z.array(
    z.object({
      file: z.string(),
      rows: z.number().int().nonnegative(),
      bytes: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      classCounts: z.array(z.number().int()),
      originCounts,
      splitCounts,
    }),
  ),
  totals: z.object({ rows: z.number().int(), classCounts: z.array(z.number().int()), originCounts, splitCounts }),
  /** Input files left out under `onError: 'skip'`, each with the reason. */
  skipped: z.array(z.object({ file: z.string(), reason: z.string() })).optional(),
  config: z.unknown(),
});

/** An input file that a run left out, and why. */
export interface SkippedInput {
  file: string;
  reason: string;
}

/** Options of `buildManifest`. */
export interface BuildManifestOptions {
  /** How the shards store images; default `png`. */
  encoding?: ImageEncoding;
  /** Inputs left out of the shards; recorded only when given. */
  skipped?: readonly SkippedInput[];
}

/** The `manifest.json` that lists the shards of one folder. */
export type Manifest = z.infer<typeof manifestSchema>;

/** Builds a manifest for written shards, with totals. */
export function buildManifest(
  classNames: readonly string[],
  shards: readonly ShardInfo[],
  config: unknown,
  options: BuildManifestOptions = {},
): Manifest {
  const classCounts = new Array<number>(classNames.length).fill(0);
  const origins: Record<Origin, number> = { real: 0, augmented: 0, synthetic: 0 };
  const splits: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const shard of shards) {
    shard.classCounts.forEach((count, label) => (classCounts[label] += count));
    for (const key of Object.keys(origins) as Origin[]) origins[key] += shard.originCounts[key];
    for (const key of Object.keys(splits) as Split[]) splits[key] += shard.splitCounts[key];
  }
  return {
    formatVersion: SHARD_FORMAT_VERSION,
    toolkitVersion: TOOLKIT_VERSION,
    createdAt: new Date().toISOString(),
    classNames: [...classNames],
    encoding: options.encoding ?? 'png',
    shards: [...shards],
    totals: { rows: shards.reduce((sum, shard) => sum + shard.rows, 0), classCounts, originCounts: origins, splitCounts: splits },
    ...(options.skipped === undefined ? {} : { skipped: [...options.skipped] }),
    config,
  };
}

/** Writes `manifest.json` (or another name, such as a part's manifest) into a shard folder, atomically. */
export async function writeManifest(directory: string, manifest: Manifest, fileName = MANIFEST_FILE): Promise<string> {
  const path = join(directory, fileName);
  await writeFileAtomic(path, `${JSON.stringify(manifest, null, 2)}\n`);
  return path;
}

/** Reads and validates a shard folder's manifest. */
export async function readManifest(directory: string): Promise<Manifest> {
  return readManifestFile(join(directory, MANIFEST_FILE));
}

/** Reads and validates one manifest file, such as the partial manifest of one part of a split run. */
export async function readManifestFile(path: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputError(`${path} not found. A shard folder needs the manifest.json that scarce writes beside its shards.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path} is not valid JSON (${(error as Error).message}).`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`${path}: invalid field '${issue.path.join('.')}': ${issue.message}.`);
  }
  return parsed.data;
}

/** Options of `readShardFolder`. */
export interface ReadShardFolderOptions {
  /** Check each shard's sha256 against the manifest; default true. */
  verify?: boolean;
}

/** Reads every shard a manifest lists, checking that each is present and intact. */
export async function readShardFolder(directory: string, options: ReadShardFolderOptions = {}): Promise<LabelledDataset> {
  const manifest = await readManifest(directory);
  const paths = manifest.shards.map((shard) => join(directory, shard.file));

  for (const [index, shard] of manifest.shards.entries()) {
    const path = paths[index];
    const size = await stat(path).then((info) => info.size).catch(() => undefined);
    if (size === undefined) throw new InputError(`${path} is listed in ${MANIFEST_FILE} but missing. Rerun the stage that wrote it.`);
    if (options.verify ?? true) {
      const digest = sha256Hex(await readFile(path));
      if (digest !== shard.sha256) {
        throw new InputError(`${path} does not match the sha256 in ${MANIFEST_FILE}; it was changed or truncated. Rerun the stage that wrote it.`);
      }
    }
  }

  const dataset = await readShardFiles(paths);
  return { classNames: dataset.classNames.length > 0 ? dataset.classNames : manifest.classNames, records: dataset.records };
}
