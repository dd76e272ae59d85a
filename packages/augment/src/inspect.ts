import { join } from 'node:path';
import {
  decodeShardRows,
  readManifest,
  readShardHead,
  writeFileAtomic,
  type Manifest,
} from '@scarce/core/io';
import { renderImageGrid } from './contact-sheet.js';

/** Options of `inspectShardFolder`. */
export interface InspectOptions {
  /** Path of the contact sheet of the first rows; default none. */
  sheetPath?: string;
  /** Rows shown on the sheet, from the first shard on; default 32. */
  sheetRows?: number;
}

/** A shard folder's schema, counts and encoding, as `scarce inspect` prints them. */
export interface ShardFolderSummary {
  manifest: Manifest;
  /** Fields of the first shard: name, Arrow type and whether it may be null. */
  fields: Array<{ name: string; type: string; nullable: boolean }>;
  /** Schema metadata of the first shard. */
  metadata: Record<string, string>;
  /** Path of the contact sheet, when one was written. */
  sheetPath?: string;
}

/**
 * Reads a shard folder's manifest and the schema of its first shard, and writes a contact sheet
 * of its first rows. Reads only the head of each shard it samples, so it is quick on large folders.
 */
export async function inspectShardFolder(directory: string, options: InspectOptions = {}): Promise<ShardFolderSummary> {
  const manifest = await readManifest(directory);
  const first = manifest.shards.find((shard) => shard.rows > 0) ?? manifest.shards[0];
  const summary: ShardFolderSummary = { manifest, fields: [], metadata: {} };
  if (first === undefined) return summary;

  const head = await readShardHead(join(directory, first.file), options.sheetRows ?? 32);
  summary.fields = head.schema.fields.map((field) => ({ name: field.name, type: String(field.type), nullable: field.nullable }));
  summary.metadata = Object.fromEntries(head.schema.metadata);

  if (options.sheetPath !== undefined && head.rows.length > 0) {
    const records = await decodeShardRows(head.rows, first.file, 8, head.encoding);
    await writeFileAtomic(options.sheetPath, await renderImageGrid(records));
    summary.sheetPath = options.sheetPath;
  }
  return summary;
}

/** Formats a summary as the lines `scarce inspect` prints. */
export function formatSummary(directory: string, summary: ShardFolderSummary): string[] {
  const { manifest } = summary;
  const { totals } = manifest;
  const lines = [
    `${directory}: ${totals.rows} rows in ${manifest.shards.length} shard(s), ${manifest.encoding} images, format version ${manifest.formatVersion}, scarce ${manifest.toolkitVersion}`,
    '',
    'schema:',
    ...summary.fields.map((field) => `  ${field.name.padEnd(13)} ${field.type}${field.nullable ? ' (nullable)' : ''}`),
    ...Object.entries(summary.metadata).map(([key, value]) => `  metadata ${key} = ${value}`),
    '',
    'rows by class:',
    ...manifest.classNames.map((name, label) => `  ${String(label).padStart(3)} ${name.padEnd(24)} ${totals.classCounts[label] ?? 0}`),
    `rows by origin: ${Object.entries(totals.originCounts).map(([origin, count]) => `${origin} ${count}`).join(', ')}`,
    `rows by split: ${Object.entries(totals.splitCounts).map(([split, count]) => `${split} ${count}`).join(', ')}`,
  ];
  const skipped = manifest.skipped ?? [];
  if (skipped.length > 0) {
    lines.push(`skipped inputs: ${skipped.length}`);
    for (const entry of skipped.slice(0, 10)) lines.push(`  ${entry.file}: ${entry.reason}`);
    if (skipped.length > 10) lines.push(`  ... and ${skipped.length - 10} more (see manifest.json)`);
  }
  if (summary.sheetPath !== undefined) lines.push(`contact sheet of the first rows: ${summary.sheetPath}`);
  return lines;
}
