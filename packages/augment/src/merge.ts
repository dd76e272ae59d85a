import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildManifest, InputError, MANIFEST_FILE, readManifestFile, sha256Hex, writeManifest, type Manifest } from '@scarce/core/io';
import { EXAMPLES_FILE } from './to-shards.js';

/** Options of `mergeShardParts`. */
export interface MergeOptions {
  /** Folder that receives `manifest.json` and any shard not already in it; default the first folder. */
  outDir?: string;
  /** Check every shard's sha256 against its part manifest; default true. */
  verify?: boolean;
  log?: (line: string) => void;
}

const PART_MANIFEST = /^manifest\.part-(\d{5})-of-(\d{5})\.json$/;

interface FoundPart {
  directory: string;
  file: string;
  index: number;
  count: number;
  manifest: Manifest;
}

interface AugmentRecord {
  runFingerprint?: string;
  totalShards?: number;
  part?: { index: number; count: number } | null;
}

function augmentConfigOf(manifest: Manifest): AugmentRecord {
  return ((manifest.config as { augment?: AugmentRecord } | null)?.augment ?? {}) as AugmentRecord;
}

/**
 * Joins the partial manifests that the parts of a split run wrote (`manifest.part-*-of-*.json`,
 * in one shared folder or in one folder per part) into one `manifest.json`. It checks that every
 * part is present once, that all come from the same inputs and settings, and that the shards
 * are complete and intact, and copies shards from other folders into `outDir`. The result lists
 * the same shards, with the same bytes, as a run on one machine would.
 */
export async function mergeShardParts(directories: readonly string[], options: MergeOptions = {}): Promise<Manifest> {
  if (directories.length === 0) throw new InputError('merge needs at least one folder with part manifests.');
  const parts: FoundPart[] = [];
  for (const directory of directories) {
    const entries = await readdir(directory).catch(() => {
      throw new InputError(`Cannot read folder ${directory}. Give the folders the parts wrote to.`);
    });
    for (const file of entries.sort()) {
      const match = PART_MANIFEST.exec(file);
      if (match === null) continue;
      parts.push({ directory, file, index: Number(match[1]), count: Number(match[2]), manifest: await readManifestFile(join(directory, file)) });
    }
  }
  if (parts.length === 0) throw new InputError(`No part manifests (manifest.part-NNNNN-of-NNNNN.json) in ${directories.join(', ')}.`);

  // The parts must be one run: same count, same settings, each index once.
  const first = parts[0];
  const count = first.count;
  const run = augmentConfigOf(first.manifest).runFingerprint;
  for (const part of parts) {
    const where = join(part.directory, part.file);
    if (part.count !== count) throw new InputError(`${where} is one of ${part.count} parts but ${first.file} is one of ${count}. Merge the parts of one run.`);
    if (augmentConfigOf(part.manifest).runFingerprint !== run) {
      throw new InputError(`${where} was written with other inputs or settings than ${join(first.directory, first.file)}. Merge the parts of one run.`);
    }
  }
  const byIndex = new Map<number, FoundPart>();
  for (const part of parts) {
    const earlier = byIndex.get(part.index);
    if (earlier !== undefined) throw new InputError(`Part ${part.index} appears twice: in ${earlier.directory} and in ${part.directory}.`);
    byIndex.set(part.index, part);
  }
  const missing = Array.from({ length: count }, (_, index) => index).filter((index) => !byIndex.has(index));
  if (missing.length > 0) {
    const parts = missing.length === 1 ? `Part ${missing[0]} of ${count} has` : `Parts ${missing.join(', ')} of ${count} have`;
    throw new InputError(`${parts} no manifest in the merged folders. Run ${missing.length === 1 ? 'it' : 'them'} (--shard-index) or also pass the folder that contains ${missing.length === 1 ? 'it' : 'them'}.`);
  }

  // Gather the shards in part order, copying those in other folders, and check each.
  const outDir = options.outDir ?? directories[0];
  await mkdir(outDir, { recursive: true });
  const ordered = [...byIndex.values()].sort((a, b) => a.index - b.index);
  const shards = ordered.flatMap((part) => part.manifest.shards.map((shard) => ({ shard, directory: part.directory })));
  const total = augmentConfigOf(first.manifest).totalShards;
  if (total !== undefined && shards.length !== total) {
    throw new InputError(`The parts list ${shards.length} shards but the run planned ${total}.`);
  }
  for (const { shard, directory } of shards) {
    const source = join(directory, shard.file);
    const target = join(outDir, shard.file);
    const size = await stat(source).then((info) => info.size, () => undefined);
    if (size === undefined) throw new InputError(`${source} is listed by its part manifest but missing. Rerun that part.`);
    if (options.verify ?? true) {
      const digest = sha256Hex(await readFile(source));
      if (digest !== shard.sha256) throw new InputError(`${source} does not match the sha256 in its part manifest; it was changed or truncated. Rerun that part.`);
    }
    if (resolve(source) !== resolve(target)) await copyFile(source, target);
  }
  const examples = join(ordered[0].directory, EXAMPLES_FILE);
  if (resolve(ordered[0].directory) !== resolve(outDir) && (await stat(examples).then(() => true, () => false))) {
    await copyFile(examples, join(outDir, EXAMPLES_FILE));
  }

  const config = first.manifest.config as { augment?: AugmentRecord } | null;
  const merged = buildManifest(
    first.manifest.classNames,
    shards.map(({ shard }) => shard),
    config?.augment === undefined ? config : { ...config, augment: { ...config.augment, part: null, mergedParts: count } },
    { encoding: first.manifest.encoding, skipped: ordered.flatMap((part) => part.manifest.skipped ?? []) },
  );
  await writeManifest(outDir, merged);
  options.log?.(`merged ${count} part(s): ${merged.totals.rows} rows in ${shards.length} shard(s); wrote ${join(outDir, MANIFEST_FILE)}`);
  return merged;
}
