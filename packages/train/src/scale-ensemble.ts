import { trainHead, type ClassifierHead, type FeatureSet, type HeadOptions, type HeadTraining } from './head.js';

/**
 * Heads of one image seen at several input sizes, one head per size, whose class probabilities
 * are averaged. Each feature row concatenates the image's features at every size, in the order
 * of `widths`. Head i reads block i, which is `widths[i]` columns wide.
 */
export class ScaleEnsemble {
  constructor(
    readonly heads: readonly ClassifierHead[],
    readonly widths: readonly number[],
  ) {
    if (heads.length === 0 || heads.length !== widths.length) throw new Error(`A scale ensemble needs one head per feature block but has ${heads.length} heads for ${widths.length} blocks.`);
  }

  get numClasses(): number {
    return this.heads[0].numClasses;
  }

  /** Class probabilities, row-major `[rows, numClasses]`: the mean over the heads. */
  predict(features: Float32Array): Float32Array {
    if (this.heads.length === 1) return this.heads[0].predict(features);
    const sum = new Float32Array((features.length / totalWidth(this.widths)) * this.numClasses);
    this.heads.forEach((head, i) => head.predict(columnBlock(features, this.widths, i)).forEach((value, j) => (sum[j] += value)));
    return sum.map((value) => value / this.heads.length);
  }

  dispose(): void {
    for (const head of this.heads) head.dispose();
  }
}

const totalWidth = (widths: readonly number[]) => widths.reduce((sum, width) => sum + width, 0);

/** Returns block `index` of every row of a matrix whose rows are blocks of `widths` columns. */
export function columnBlock(features: Float32Array, widths: readonly number[], index: number): Float32Array {
  const rowWidth = totalWidth(widths);
  const offset = totalWidth(widths.slice(0, index));
  const width = widths[index];
  const rows = features.length / rowWidth;
  const block = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) block.set(features.subarray(row * rowWidth + offset, row * rowWidth + offset + width), row * width);
  return block;
}

/** Result of `trainScaleEnsemble`: the heads, and their training merged into one record. */
export interface ScaleEnsembleTraining extends Omit<HeadTraining, 'head'> {
  ensemble: ScaleEnsemble;
}

/**
 * Trains one head per feature block with the same options and seed, each stopping on its own
 * block of the validation rows. With one block this is `trainHead`. With several, `history` holds
 * each epoch's logged values averaged over the heads that ran it, `epochsRun` and `bestEpoch` are
 * the largest over the heads, `stoppedEpoch` is set only when every head stopped early, and
 * `summary` names each block by `labels`.
 */
export async function trainScaleEnsemble(
  train: FeatureSet,
  validation: FeatureSet,
  numClasses: number,
  options: HeadOptions,
  widths: readonly number[],
  labels: readonly string[] = widths.map((_, i) => `block ${i + 1}`),
): Promise<ScaleEnsembleTraining> {
  const trainings: HeadTraining[] = [];
  for (let i = 0; i < widths.length; i++) {
    const block = (set: FeatureSet): FeatureSet => (widths.length === 1 ? set : { features: columnBlock(set.features, widths, i), labels: set.labels });
    trainings.push(await trainHead(block(train), block(validation), numClasses, options));
  }
  const ensemble = new ScaleEnsemble(trainings.map((training) => training.head), widths);
  if (trainings.length === 1) {
    const { head: _head, ...rest } = trainings[0];
    return { ...rest, ensemble };
  }
  const epochsRun = Math.max(...trainings.map((training) => training.epochsRun));
  const history = Array.from({ length: epochsRun }, (_, epoch) => {
    const ran = trainings.map((training) => training.history[epoch]).filter((logs) => logs !== undefined);
    const merged: Record<string, number> = {};
    for (const key of Object.keys(ran[0])) merged[key] = ran.reduce((sum, logs) => sum + logs[key], 0) / ran.length;
    return merged;
  });
  const stopped = trainings.map((training) => training.stoppedEpoch);
  return {
    ensemble,
    history,
    epochsRun,
    bestEpoch: Math.max(...trainings.map((training) => training.bestEpoch)),
    stoppedEpoch: stopped.every((epoch) => epoch !== null) ? Math.max(...(stopped as number[])) : null,
    summary: trainings.map((training, i) => `${labels[i]}: ${training.summary}`).join('; '),
  };
}
