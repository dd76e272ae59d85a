import * as tf from '@tensorflow/tfjs';
import { adamRange, type AdamArrays, type AdamStep } from './adam-update.js';
import type { OnnxTrainingStep } from './onnx-runner.js';

/** Arrays of more elements than this are split between two threads by `ArrayAdam.applyWith`. */
const SPLIT_SIZE = 65_536;

/** Averages that an Adam step moves along with the weights, and their decay. */
export interface ArrayAverage {
  values: readonly Float32Array[];
  decay: number;
}

/** A thread that runs `adamRange` on shared arrays: `OnnxThread`. */
export interface AdamHelper {
  adam(arrays: AdamArrays, step: AdamStep, start: number, end: number, gradientOffset: number): Promise<void>;
}

/** Allocates a Float32Array on shared memory, which a worker thread reads and writes without a copy. */
export function sharedFloats(size: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(size * Float32Array.BYTES_PER_ELEMENT));
}

/**
 * Adam as tfjs's `tf.train.adam` computes it (epsilon 1e-7, bias correction from running products
 * of the betas), on weights kept in JavaScript arrays.
 */
export class ArrayAdam {
  private readonly first: Float32Array[];
  private readonly second: Float32Array[];
  private beta1Power: number;
  private beta2Power: number;

  constructor(
    /** Step size; a caller may change it between steps, as a learning-rate schedule does. */
    public learningRate: number,
    sizes: readonly number[],
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
    /** Makes each moment array; `sharedFloats` puts them where a worker thread can update them too. */
    allocate: (size: number) => Float32Array = (size) => new Float32Array(size),
  ) {
    this.first = sizes.map(allocate);
    this.second = sizes.map(allocate);
    [this.beta1Power, this.beta2Power] = [beta1, beta2];
  }

  /** Returns the constants of the next step and advances the running products past it. */
  private nextStep(): AdamStep {
    const step = {
      beta1: this.beta1,
      beta2: this.beta2,
      stepSize: this.learningRate / (1 - this.beta1Power),
      varianceScale: 1 / (1 - this.beta2Power),
      epsilon: this.epsilon,
    };
    this.beta1Power *= this.beta1;
    this.beta2Power *= this.beta2;
    return step;
  }

  private arrays(weights: readonly Float32Array[], gradients: readonly Float32Array[], i: number, average?: ArrayAverage): AdamArrays {
    return { weight: weights[i], gradient: gradients[i], first: this.first[i], second: this.second[i], average: average === undefined ? undefined : { values: average.values[i], decay: average.decay } };
  }

  /**
   * Moves each weight array against its gradient, in place. With `average`, each updated weight
   * also moves its exponential moving average: a = a d + w (1 - d), in the same pass.
   */
  apply(weights: readonly Float32Array[], gradients: readonly Float32Array[], average?: ArrayAverage): void {
    const step = this.nextStep();
    weights.forEach((weight, i) => adamRange(this.arrays(weights, gradients, i, average), step, 0, weight.length));
  }

  /**
   * `apply` with a second thread: `helper` updates the upper half of every array of more than
   * `SPLIT_SIZE` elements while this thread does the rest. The weights, moments and averages must
   * be on shared memory (`sharedFloats`); the result equals `apply`'s.
   */
  async applyWith(helper: AdamHelper, weights: readonly Float32Array[], gradients: readonly Float32Array[], average?: ArrayAverage): Promise<void> {
    const step = this.nextStep();
    const handedOver: Array<Promise<void>> = [];
    weights.forEach((weight, i) => {
      const arrays = this.arrays(weights, gradients, i, average);
      const half = weight.length > SPLIT_SIZE ? Math.floor(weight.length / 2) : weight.length;
      if (half < weight.length) handedOver.push(helper.adam({ ...arrays, gradient: arrays.gradient.slice(half) }, step, half, weight.length, half));
      adamRange(arrays, step, 0, half);
    });
    await Promise.all(handedOver);
  }

  /** The first and second moments of each weight array and the running products beta1^t and beta2^t that the next step divides by. */
  get state(): { first: readonly Float32Array[]; second: readonly Float32Array[]; powers: [number, number] } {
    return { first: this.first, second: this.second, powers: [this.beta1Power, this.beta2Power] };
  }

  /** Puts back moments and running products as `state` gives them (or as tfjs's Adam keeps them). */
  restore(first: ArrayLike<number>[], second: ArrayLike<number>[], powers: [number, number]): void {
    first.forEach((values, i) => this.first[i].set(values));
    second.forEach((values, i) => this.second[i].set(values));
    [this.beta1Power, this.beta2Power] = powers;
  }
}

/** Weights of an onnxruntime training run, kept in JavaScript arrays, with their optimiser. */
export interface ArrayTraining {
  variables: readonly tf.Variable[];
  weights: Float32Array[];
  adam: ArrayAdam;
}

/** Copies the variables' values into arrays that an `ArrayAdam` with `learningRate` trains. */
export function startArrayTraining(variables: readonly tf.Variable[], learningRate: number): ArrayTraining {
  return {
    variables,
    weights: variables.map((variable) => (variable.dataSync() as Float32Array).slice()),
    adam: new ArrayAdam(learningRate, variables.map((variable) => variable.size)),
  };
}

/** Training rows, row-major, with their labels and an optional loss weight per class. */
export interface StepRows {
  values: Float32Array;
  labels: readonly number[];
  numClasses: number;
  classWeights?: readonly number[];
  /** Share of each one-hot target spread evenly over the classes, as Keras' `label_smoothing`; default 0. */
  labelSmoothing?: number;
}

/** One step's rows, as indices into `StepRows`, with the dropout mask of the head's hidden layer. */
export interface TrainingBatch {
  rows: readonly number[];
  mask: Float32Array | null;
  /**
   * Mixup (Zhang et al., 2018): the step trains on row i of the batch blended with row
   * `partners[i]` of the batch, inputs and targets alike, weighted `lambda` and 1 - `lambda`.
   */
  mix?: { partners: readonly number[]; lambda: number };
}

/** Gathers a batch's inputs, targets and sample weights from the training rows, blending rows for mixup. */
export function assembleBatch(data: StepRows, batch: TrainingBatch): { activations: Float32Array; targets: Float32Array; sampleWeights?: Float32Array } {
  const { values, labels, numClasses, classWeights } = data;
  const { rows, mix } = batch;
  const rowSize = values.length / labels.length;
  const smoothing = data.labelSmoothing ?? 0;
  const activations = new Float32Array(rows.length * rowSize);
  const targets = new Float32Array(rows.length * numClasses).fill(smoothing / numClasses);
  rows.forEach((row, i) => {
    activations.set(values.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
    targets[i * numClasses + labels[row]] += 1 - smoothing;
  });
  const sampleWeights = classWeights === undefined ? undefined : Float32Array.from(rows, (row) => classWeights[labels[row]]);
  if (mix === undefined) return { activations, targets, sampleWeights };

  const { partners, lambda } = mix;
  const blend = (own: Float32Array, size: number) => {
    const blended = new Float32Array(own.length);
    for (let i = 0; i < rows.length; i++) {
      const partner = partners[i] * size;
      for (let c = 0; c < size; c++) blended[i * size + c] = lambda * own[i * size + c] + (1 - lambda) * own[partner + c];
    }
    return blended;
  };
  return { activations: blend(activations, rowSize), targets: blend(targets, numClasses), sampleWeights: sampleWeights === undefined ? undefined : blend(sampleWeights, 1) };
}

/**
 * Trains for one epoch in onnxruntime, one step per batch of row indices, and writes the weights
 * back to the variables at its end. Returns the sum of each batch's loss times its row count.
 */
export async function runOnnxEpoch(step: OnnxTrainingStep, training: ArrayTraining, data: StepRows, batches: readonly TrainingBatch[]): Promise<number> {
  let lossSum = 0;
  for (const batch of batches) {
    const { activations, targets, sampleWeights } = assembleBatch(data, batch);
    const { loss, gradients } = await step.run({ rows: batch.rows.length, activations, targets, dropoutMask: batch.mask, sampleWeights }, training.weights);
    training.adam.apply(training.weights, gradients);
    lossSum += loss * batch.rows.length;
  }
  tf.tidy(() => training.variables.forEach((variable, i) => variable.assign(tf.tensor(training.weights[i], variable.shape))));
  return lossSum;
}
