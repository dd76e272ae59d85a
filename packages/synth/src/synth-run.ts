import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, MANIFEST_FILE, writeFileAtomic, type ImageRecord, type ProgressOptions } from '@scarce/core';
import { CHECKPOINTS_FOLDER, listCheckpoints, type CheckpointEntry } from './checkpoint.js';
import { resolveSynthConfig, type CheckpointScore, type SynthConfig } from './config.js';
import { loadGenerator } from './generator-io.js';
import { LOSS_CURVES_FILE, NEAREST_REAL_FILE, writeQualityPictures } from './pictures.js';
import { disposeQuality, evaluateQuality, formatQuality, prepareQuality, type QualityContext, type QualityOptions, type QualityRecord } from './quality.js';
import type { SamplingGenerator } from './sample.js';
import { HISTORY_FILE, synthToShards, type SynthOutputs } from './to-shards.js';
import { trainConditionalGan, type EpochLog, type TrainedGan } from './train.js';

/** One JSON line per checkpoint with its quality record. */
export const QUALITY_LOG_FILE = 'quality.jsonl';
/** The run's quality summary: every checkpoint, the chosen one and its final scores. */
export const QUALITY_SUMMARY_FILE = 'quality.json';
/** A checkpoint's own quality record, inside its folder. */
const CHECKPOINT_QUALITY_FILE = 'quality.json';

/** Options of `runSynth`. */
export interface SynthRunOptions {
  /** Output folder for shards, manifest, checkpoints, logs and pictures; created when missing. */
  directory: string;
  /** Synthetic images per class in the shards. */
  perClass: number;
  /** Seed of the shard latents; default 0. */
  seed?: number;
  /** Replace the outputs and checkpoints of an earlier run in the folder; default false. */
  overwrite?: boolean;
  /** Continue from the folder's latest resumable checkpoint; default false. */
  resume?: boolean;
  /** Settings of the quality metrics, or false to measure nothing (sampling then uses the last epoch); default the `QUALITY_DEFAULTS`. */
  quality?: QualityOptions | false;
  log?: (line: string) => void;
  /** Options of the training progress bar, or false for none. */
  progress?: ProgressOptions | false;
}

/** The quality summary of a run, as written to quality.json and included in a run's metrics.json. */
export interface QualitySummary {
  /** The score that chose the checkpoint; 'last' when quality was not measured. */
  selectedBy: CheckpointScore;
  selectedEpoch: number;
  /** The chosen checkpoint's value of `selectedBy`, or null for 'last'. */
  selectedScore: number | null;
  /** One record per checkpoint, in epoch order, scored on the validation split only. */
  checkpoints: QualityRecord[];
  /** The chosen generator's record, with TSTR scores on the test split too. */
  final: QualityRecord;
  /** Collapse warnings of the chosen generator. */
  warnings: string[];
}

/** Outputs and measurements of `runSynth`. */
export interface SynthRunResult {
  outputs: SynthOutputs;
  trained: TrainedGan;
  /** The quality summary, or null when quality was off or there were no validation images. */
  quality: QualitySummary | null;
  /** Paths of the pictures written. */
  pictures: string[];
}

/** Real images of a run by split; only `train` reaches the GAN. */
export interface SynthRunData {
  train: readonly ImageRecord[];
  validation: readonly ImageRecord[];
  test?: readonly ImageRecord[];
}

/**
 * Creates the run folder, and rejects one with an earlier run unless resuming or overwriting. On
 * overwrite it removes that run's files.
 */
async function prepareRunDirectory(directory: string, overwrite: boolean, resume: boolean): Promise<void> {
  const entries = await readdir(directory).catch(() => [] as string[]);
  const earlier = entries.filter((name) => name.endsWith('.arrow') || name === MANIFEST_FILE || name === CHECKPOINTS_FOLDER);
  // Without checkpoints, history.jsonl is the first file written, and it needs the folder.
  await mkdir(directory, { recursive: true });
  if (resume || earlier.length === 0) return;
  if (!overwrite) {
    throw new InputError(`${directory} already has synth outputs (${earlier.join(', ')}). Choose another folder, resume the run (scarce synth --resume), or replace it (--force).`);
  }
  const generated = (name: string) =>
    [CHECKPOINTS_FOLDER, QUALITY_LOG_FILE, QUALITY_SUMMARY_FILE, NEAREST_REAL_FILE, LOSS_CURVES_FILE].includes(name) || name.startsWith('real-vs-synthetic-');
  await Promise.all(entries.filter(generated).map((name) => rm(join(directory, name), { recursive: true, force: true })));
}

async function readCheckpointQuality(checkpoint: CheckpointEntry): Promise<QualityRecord | null> {
  const text = await readFile(join(checkpoint.path, CHECKPOINT_QUALITY_FILE), 'utf8').catch(() => null);
  return text === null ? null : (JSON.parse(text) as QualityRecord);
}

/** Rewrites quality.jsonl from the quality records in the checkpoint folders, in epoch order. */
async function writeQualityLog(directory: string): Promise<QualityRecord[]> {
  const records: QualityRecord[] = [];
  for (const checkpoint of await listCheckpoints(join(directory, CHECKPOINTS_FOLDER))) {
    const record = await readCheckpointQuality(checkpoint);
    if (record !== null) records.push(record);
  }
  await writeFileAtomic(join(directory, QUALITY_LOG_FILE), records.map((record) => `${JSON.stringify(record)}\n`).join(''));
  return records;
}

/** Returns the record that `score` prefers: lowest Fréchet distance, highest validation TSTR AUC, or the last. */
export function chooseCheckpoint(records: readonly QualityRecord[], score: CheckpointScore): { record: QualityRecord; value: number | null } {
  if (records.length === 0) throw new Error('No checkpoint has a quality record to choose from.');
  if (score === 'last') return { record: records[records.length - 1], value: null };
  const value = (record: QualityRecord) => (score === 'frechetDistance' ? -record.frechetDistance : record.tstr.validation.auc);
  // Ties and NaN keep the earlier checkpoint.
  let best = records[0];
  for (const record of records.slice(1)) if (value(record) > value(best)) best = record;
  return { record: best, value: score === 'frechetDistance' ? best.frechetDistance : best.tstr.validation.auc };
}

/**
 * Trains the GAN with checkpoints, measures each checkpoint's samples against real images, and
 * samples the shards from the checkpoint that `config.selectCheckpointBy` prefers. Beside the
 * shards it writes `quality.jsonl` (one record per checkpoint), `quality.json` (the summary with
 * the chosen checkpoint's test-split scores), `history.jsonl`, the real-versus-synthetic
 * pictures, `nearest-real.png` and `losses.png`. With `resume`, it continues a run that was
 * stopped after a checkpoint.
 */
export async function runSynth(data: SynthRunData, classNames: readonly string[], config: Partial<SynthConfig>, options: SynthRunOptions): Promise<SynthRunResult> {
  const log = options.log ?? (() => {});
  const resolved = resolveSynthConfig(config);
  if (!Number.isInteger(options.perClass) || options.perClass < 1) {
    throw new InputError(`perClass must be a positive integer but received ${options.perClass}.`);
  }
  await prepareRunDirectory(options.directory, options.overwrite ?? false, options.resume ?? false);

  let context: QualityContext | null = null;
  if (options.quality !== false && data.validation.length === 0) {
    log('no validation images, so checkpoint quality is not measured and sampling uses the last epoch');
  } else if (options.quality !== false) {
    context = await prepareQuality(data, classNames, { seed: resolved.seed, ...options.quality });
    log(`quality metrics on ${context.backbone.featureSize} features of ${context.backbone.source} at ${context.backbone.inputSize} px, ${context.reference.length} real train images as reference`);
  }

  try {
    const evaluateCheckpoint = async (path: string, epoch: number, generator: SamplingGenerator) => {
      if (context === null) return;
      const { record } = await evaluateQuality(context, generator, epoch);
      await writeFileAtomic(join(path, CHECKPOINT_QUALITY_FILE), `${JSON.stringify(record)}\n`);
      await writeQualityLog(options.directory);
      log(formatQuality(record));
      for (const warning of record.collapseWarnings) log(`warning: ${warning}`);
    };
    // A run killed between writing a checkpoint and measuring it left that checkpoint unmeasured.
    if (options.resume && context !== null) {
      for (const checkpoint of await listCheckpoints(join(options.directory, CHECKPOINTS_FOLDER))) {
        if ((await readCheckpointQuality(checkpoint)) !== null) continue;
        const generator = await loadGenerator(join(checkpoint.path, 'generator'));
        await evaluateCheckpoint(checkpoint.path, checkpoint.epoch, generator);
        generator.generator.dispose();
      }
    }

    const trained = await trainConditionalGan(data.train, classNames, config, {
      log,
      progress: options.progress,
      directory: options.directory,
      resume: options.resume,
      onCheckpoint: async (checkpoint) => {
        await writeHistory(options.directory, checkpoint.history);
        await evaluateCheckpoint(checkpoint.path, checkpoint.epoch, checkpoint.generator);
      },
    });
    await writeHistory(options.directory, trained.history);

    const records = context === null ? [] : await writeQualityLog(options.directory);
    const lastEpoch = trained.history[trained.history.length - 1].epoch;
    // Only checkpoints of this run's history count; a folder may hold later ones from a longer earlier run.
    const candidates = records.filter((record) => record.epoch <= lastEpoch);
    const selectedBy: CheckpointScore = candidates.length === 0 ? 'last' : resolved.selectCheckpointBy;
    const choice = candidates.length === 0 ? null : chooseCheckpoint(candidates, selectedBy);
    const selectedEpoch = choice?.record.epoch ?? lastEpoch;

    let chosen: SamplingGenerator = trained;
    if (selectedEpoch !== lastEpoch) {
      const checkpoint = (await listCheckpoints(join(options.directory, CHECKPOINTS_FOLDER))).find((entry) => entry.epoch === selectedEpoch);
      if (checkpoint === undefined) throw new Error(`The checkpoint of epoch ${selectedEpoch} is missing from ${join(options.directory, CHECKPOINTS_FOLDER)}.`);
      chosen = await loadGenerator(join(checkpoint.path, 'generator'));
    }
    log(`sampling from epoch ${selectedEpoch}, chosen by ${selectedBy}${choice?.value == null ? '' : ` (${choice.value.toFixed(4)})`}`);

    try {
      const outputs = await synthToShards(
        { ...trained, generator: chosen.generator, provenance: chosen.provenance },
        {
          directory: options.directory,
          perClass: options.perClass,
          seed: options.seed,
          overwrite: true,
          checkpoint: { epoch: selectedEpoch, selectedBy, score: choice?.value ?? null },
          log,
        },
      );

      let quality: QualitySummary | null = null;
      let pictures: string[] = [];
      if (context !== null) {
        const final = await evaluateQuality(context, chosen, selectedEpoch, true);
        log(`chosen generator: ${formatQuality(final.record)}`);
        quality = {
          selectedBy,
          selectedEpoch,
          selectedScore: choice?.value ?? null,
          checkpoints: candidates,
          final: final.record,
          warnings: final.record.collapseWarnings,
        };
        await writeFileAtomic(join(options.directory, QUALITY_SUMMARY_FILE), `${JSON.stringify(quality, null, 2)}\n`);
        pictures = await writeQualityPictures(options.directory, {
          classNames,
          real: context.reference,
          samples: final.samples,
          nearestReal: final.nearestReal.map((index) => final.reference[index]),
          history: trained.history,
        });
      }
      return { outputs, trained, quality, pictures };
    } finally {
      if (chosen !== trained) chosen.generator.dispose();
    }
  } finally {
    if (context !== null) disposeQuality(context);
  }
}

async function writeHistory(directory: string, history: readonly EpochLog[]): Promise<void> {
  await writeFileAtomic(join(directory, HISTORY_FILE), history.map((log) => `${JSON.stringify(log)}\n`).join(''));
}
