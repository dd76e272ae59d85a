import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError, writeFileAtomic } from '@scarce/core';
import type { SynthConfig } from './config.js';
import type { TrainerState } from './gan-trainer.js';
import { saveGenerator } from './generator-io.js';
import type { SamplingGenerator } from './sample.js';

/** Folder under a run's output folder that contains one subfolder per checkpoint. */
export const CHECKPOINTS_FOLDER = 'checkpoints';
/** Training state of a checkpoint: epoch, history, config and the weight layout. */
export const CHECKPOINT_STATE_FILE = 'state.json';
/** Weights and optimiser moments of a checkpoint, laid out as `state.json` lists them. */
export const CHECKPOINT_WEIGHTS_FILE = 'state.bin';
const CHECKPOINT_FORMAT_VERSION = 1;

/** Tensor groups of a checkpoint, in file order. */
const GROUPS = ['generator', 'discriminator', 'averagedGenerator', 'generatorOptimizer', 'discriminatorOptimizer'] as const;

/** The facts of a checkpoint besides its tensors. */
export interface CheckpointInfo<History = unknown> {
  /** 1-based epoch after which it was written. */
  epoch: number;
  steps: number;
  /** Training seconds up to this checkpoint, summed over resumed runs. */
  elapsedSeconds: number;
  config: SynthConfig;
  /** sha256 of the train records' labels and pixels; a resumed run must train on the same records. */
  trainDigest: string;
  /**
   * Continuation of the random draws: latents, augmentation and batch order of epoch e come from
   * deriveSeed(seed, ..., e), so resuming at `nextEpoch` repeats an uninterrupted run's draws.
   */
  random: { scheme: 'seed-and-epoch'; seed: number; nextEpoch: number };
  history: History[];
}

interface StateFile<History> extends CheckpointInfo<History> {
  formatVersion: number;
  adamPowers: TrainerState['adamPowers'];
  /** Per group: each tensor's original name, shape and dtype, in file order. */
  layout: Record<(typeof GROUPS)[number], Array<{ name: string; shape: number[]; dtype: string }>>;
}

/** Name of the checkpoint folder written after `epoch`, e.g. epoch-000040, so names sort by epoch. */
export function checkpointName(epoch: number): string {
  return `epoch-${String(epoch).padStart(6, '0')}`;
}

/** Groups the trainer state's tensors as named tensors in file order, with unique names. */
function namedTensors(state: TrainerState): { named: tf.NamedTensorMap; layout: StateFile<unknown>['layout'] } {
  const named: tf.NamedTensorMap = {};
  const layout = {} as StateFile<unknown>['layout'];
  for (const group of GROUPS) {
    const entries = state[group].map((entry, index) =>
      entry instanceof tf.Tensor ? { name: `${group}/${index}`, tensor: entry } : { name: entry.name, tensor: entry.tensor },
    );
    layout[group] = entries.map(({ name, tensor }) => ({ name, shape: tensor.shape, dtype: tensor.dtype }));
    entries.forEach(({ tensor }, index) => (named[`${group}/${index}`] = tensor));
  }
  return { named, layout };
}

/**
 * Writes a checkpoint folder `<checkpoints>/epoch-NNNNNN/` with `state.json`, `state.bin` and the
 * averaged generator under `generator/` (ready for `loadGenerator`). Everything is written into
 * a temporary folder that is renamed into place at the end, so a folder with an epoch name is
 * always complete. Removes `state.bin` from earlier checkpoints, whose generators stay. Returns
 * the folder.
 */
export async function writeCheckpoint<History>(
  checkpointsDirectory: string,
  info: CheckpointInfo<History>,
  state: TrainerState,
  sampling: SamplingGenerator,
): Promise<string> {
  const name = checkpointName(info.epoch);
  const finalPath = join(checkpointsDirectory, name);
  const temporaryPath = join(checkpointsDirectory, `.${name}.partial-${process.pid}`);
  await rm(temporaryPath, { recursive: true, force: true });
  await mkdir(temporaryPath, { recursive: true });

  const { named, layout } = namedTensors(state);
  const encoded = await tf.io.encodeWeights(named);
  const stateFile: StateFile<History> = { formatVersion: CHECKPOINT_FORMAT_VERSION, ...info, adamPowers: state.adamPowers, layout };
  await writeFileAtomic(join(temporaryPath, CHECKPOINT_WEIGHTS_FILE), new Uint8Array(encoded.data));
  await writeFileAtomic(join(temporaryPath, CHECKPOINT_STATE_FILE), `${JSON.stringify(stateFile)}\n`);
  await saveGenerator(join(temporaryPath, 'generator'), sampling);

  // A checkpoint of the same epoch from an earlier, interrupted run is replaced.
  await rm(finalPath, { recursive: true, force: true });
  await rename(temporaryPath, finalPath);

  for (const older of await listCheckpoints(checkpointsDirectory)) {
    if (older.epoch < info.epoch) await rm(join(older.path, CHECKPOINT_WEIGHTS_FILE), { force: true });
  }
  return finalPath;
}

/** A checkpoint folder found on disk. */
export interface CheckpointEntry {
  epoch: number;
  path: string;
  /** Whether it still has its training state (`state.bin`), so training can resume from it. */
  resumable: boolean;
}

/** Lists the complete checkpoint folders under `checkpointsDirectory`, oldest first; none when it is missing. */
export async function listCheckpoints(checkpointsDirectory: string): Promise<CheckpointEntry[]> {
  const names = await readdir(checkpointsDirectory).catch(() => [] as string[]);
  const entries: CheckpointEntry[] = [];
  for (const name of names) {
    const match = /^epoch-(\d{6,})$/.exec(name);
    if (match === null) continue;
    const path = join(checkpointsDirectory, name);
    const hasState = await stat(join(path, CHECKPOINT_STATE_FILE)).then(() => true, () => false);
    if (!hasState) continue;
    const resumable = await stat(join(path, CHECKPOINT_WEIGHTS_FILE)).then(() => true, () => false);
    entries.push({ epoch: Number(match[1]), path, resumable });
  }
  return entries.sort((a, b) => a.epoch - b.epoch);
}

/** Reads `state.json` of a checkpoint folder. */
export async function readCheckpointInfo<History>(path: string): Promise<CheckpointInfo<History>> {
  const stateFile = JSON.parse(await readFile(join(path, CHECKPOINT_STATE_FILE), 'utf8')) as StateFile<History>;
  if (stateFile.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new InputError(`${join(path, CHECKPOINT_STATE_FILE)} has format version ${stateFile.formatVersion}; this version of scarce reads ${CHECKPOINT_FORMAT_VERSION}.`);
  }
  const { formatVersion: _version, layout: _layout, adamPowers: _powers, ...info } = stateFile;
  return info;
}

/** Reads a checkpoint's training state; the caller disposes its tensors once restored. */
export async function readCheckpointState<History>(path: string): Promise<{ info: CheckpointInfo<History>; state: TrainerState }> {
  const info = await readCheckpointInfo<History>(path);
  const stateFile = JSON.parse(await readFile(join(path, CHECKPOINT_STATE_FILE), 'utf8')) as StateFile<History>;
  const bytes = await readFile(join(path, CHECKPOINT_WEIGHTS_FILE));
  const specs: tf.io.WeightsManifestEntry[] = GROUPS.flatMap((group) =>
    stateFile.layout[group].map((entry, index) => ({ name: `${group}/${index}`, shape: entry.shape, dtype: entry.dtype as tf.DataType })),
  );
  const tensors = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), specs);
  const group = (name: (typeof GROUPS)[number]) => stateFile.layout[name].map((_, index) => tensors[`${name}/${index}`]);
  const optimizer = (name: 'generatorOptimizer' | 'discriminatorOptimizer') =>
    stateFile.layout[name].map((entry, index) => ({ name: entry.name, tensor: tensors[`${name}/${index}`] }));
  return {
    info,
    state: {
      generator: group('generator'),
      discriminator: group('discriminator'),
      averagedGenerator: group('averagedGenerator'),
      generatorOptimizer: optimizer('generatorOptimizer'),
      discriminatorOptimizer: optimizer('discriminatorOptimizer'),
      adamPowers: stateFile.adamPowers,
      steps: info.steps,
    },
  };
}

/** Disposes every tensor of a trainer state read from a checkpoint. */
export function disposeTrainerState(state: TrainerState): void {
  tf.dispose([...state.generator, ...state.discriminator, ...state.averagedGenerator]);
  tf.dispose([...state.generatorOptimizer, ...state.discriminatorOptimizer].map((entry) => entry.tensor));
}
