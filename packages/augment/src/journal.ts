import { appendFile, open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex, writeFileAtomic, type ShardInfo, type SkippedInput } from '@scarce/core/io';

/**
 * The journal of a run: one JSON line per finished shard, after a first line with the run's
 * fingerprint. A rerun into the same folder keeps a shard only when the journal lists it with
 * the same fingerprint and the file's sha256 still matches. So an interrupted run resumes where
 * it stopped, and its outputs equal those of a run that was never interrupted.
 */

/** A finished shard as the journal records it. */
export interface JournalEntry {
  shard: number;
  /** Digest of the run settings and the shard's sources. */
  fingerprint: string;
  info: ShardInfo;
  skipped: SkippedInput[];
}

/** Name of the journal file of part `index` of `count` (one part: the whole run). */
export function journalFileName(part: { index: number; count: number }): string {
  return part.count === 1 ? 'augment-journal.jsonl' : `augment-journal.${partSuffix(part)}.jsonl`;
}

/** `part-00001-of-00004`, the suffix of a part's files. */
export function partSuffix(part: { index: number; count: number }): string {
  return `part-${String(part.index).padStart(5, '0')}-of-${String(part.count).padStart(5, '0')}`;
}

/** Contents of a journal: the run fingerprint of its first line and the finished shards. */
export interface Journal {
  run: string;
  entries: Map<number, JournalEntry>;
}

/** Reads a journal, ignoring a last line cut short by an interruption. Returns undefined when there is none. */
export async function readJournal(path: string): Promise<Journal | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const entries = new Map<number, JournalEntry>();
  let run: string | undefined;
  for (const line of lines) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (run === undefined) {
      run = (value as { run?: string }).run;
      continue;
    }
    const entry = value as JournalEntry;
    if (typeof entry.shard === 'number' && typeof entry.fingerprint === 'string') entries.set(entry.shard, entry);
  }
  return run === undefined ? undefined : { run, entries };
}

/** Starts a journal with the run fingerprint and the entries that are kept. */
export async function writeJournal(path: string, run: string, kept: readonly JournalEntry[]): Promise<void> {
  const lines = [JSON.stringify({ run }), ...kept.map((entry) => JSON.stringify(entry))];
  await writeFileAtomic(path, `${lines.join('\n')}\n`);
}

/** Appends one finished shard and syncs it to disk, so a crash right after still counts it. */
export async function appendJournal(path: string, entry: JournalEntry): Promise<void> {
  await appendFile(path, `${JSON.stringify(entry)}\n`);
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Returns whether a shard file is present and its bytes still have the recorded sha256. */
export async function shardIsIntact(directory: string, info: ShardInfo): Promise<boolean> {
  const bytes = await readFile(join(directory, info.file)).catch(() => undefined);
  return bytes !== undefined && bytes.byteLength === info.bytes && sha256Hex(bytes) === info.sha256;
}

/** Removes temporary files that an interrupted write left behind, of the shard files that `owns` accepts. */
export async function removeTemporaryFiles(directory: string, owns: (shardFile: string) => boolean): Promise<void> {
  const entries = await readdir(directory);
  const stale = entries.filter((name) => {
    const at = name.indexOf('.tmp-');
    return at > 0 && owns(name.slice(0, at));
  });
  await Promise.all(stale.map((name) => rm(join(directory, name), { force: true })));
}
