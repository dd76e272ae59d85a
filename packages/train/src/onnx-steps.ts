import * as tf from '@tensorflow/tfjs';
import type { OnnxTrainingStep } from './onnx-runner.js';

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
  ) {
    this.first = sizes.map((size) => new Float32Array(size));
    this.second = sizes.map((size) => new Float32Array(size));
    [this.beta1Power, this.beta2Power] = [beta1, beta2];
  }

  /**
   * Moves each weight array against its gradient, in place. With `average`, each updated weight
   * also moves its exponential moving average: a = a d + w (1 - d), in the same pass.
   */
  apply(weights: readonly Float32Array[], gradients: readonly Float32Array[], average?: { values: readonly Float32Array[]; decay: number }): void {
    // w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon), with the corrections hoisted.
    const stepSize = this.learningRate / (1 - this.beta1Power);
    const varianceScale = 1 / (1 - this.beta2Power);
    for (let i = 0; i < weights.length; i++) {
      const moments = [this.first[i], this.second[i]] as const;
      if (average === undefined) adamUpdate(weights[i], gradients[i], ...moments, this.beta1, this.beta2, stepSize, varianceScale, this.epsilon);
      else averagedAdamUpdate(weights[i], gradients[i], ...moments, this.beta1, this.beta2, stepSize, varianceScale, this.epsilon, average.values[i], average.decay);
    }
    this.beta1Power *= this.beta1;
    this.beta2Power *= this.beta2;
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

/** Updates one weight array and its moments; a plain function over typed arrays, which V8 compiles to a tight loop. */
function adamUpdate(
  weight: Float32Array,
  gradient: Float32Array,
  first: Float32Array,
  second: Float32Array,
  beta1: number,
  beta2: number,
  stepSize: number,
  varianceScale: number,
  epsilon: number,
): void {
  const [keep1, keep2] = [1 - beta1, 1 - beta2];
  for (let k = 0; k < weight.length; k++) {
    const g = gradient[k];
    const m = beta1 * first[k] + keep1 * g;
    const v = beta2 * second[k] + keep2 * g * g;
    first[k] = m;
    second[k] = v;
    weight[k] -= (stepSize * m) / (Math.sqrt(v * varianceScale) + epsilon);
  }
}

/** `adamUpdate` that also moves each weight's exponential moving average, so the weights are read once. */
function averagedAdamUpdate(
  weight: Float32Array,
  gradient: Float32Array,
  first: Float32Array,
  second: Float32Array,
  beta1: number,
  beta2: number,
  stepSize: number,
  varianceScale: number,
  epsilon: number,
  average: Float32Array,
  decay: number,
): void {
  const [keep1, keep2, keep] = [1 - beta1, 1 - beta2, 1 - decay];
  for (let k = 0; k < weight.length; k++) {
    const g = gradient[k];
    const m = beta1 * first[k] + keep1 * g;
    const v = beta2 * second[k] + keep2 * g * g;
    first[k] = m;
    second[k] = v;
    const updated = weight[k] - (stepSize * m) / (Math.sqrt(v * varianceScale) + epsilon);
    weight[k] = updated;
    average[k] = average[k] * decay + Math.fround(updated) * keep;
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
}

/**
 * Trains for one epoch in onnxruntime, one step per batch of row indices, and writes the weights
 * back to the variables at its end. Returns the sum of each batch's loss times its row count.
 */
export async function runOnnxEpoch(step: OnnxTrainingStep, training: ArrayTraining, data: StepRows, batches: ReadonlyArray<{ rows: readonly number[]; mask: Float32Array | null }>): Promise<number> {
  const { values, labels, numClasses, classWeights } = data;
  const rowSize = values.length / labels.length;
  let lossSum = 0;
  for (const { rows, mask } of batches) {
    const activations = new Float32Array(rows.length * rowSize);
    const targets = new Float32Array(rows.length * numClasses);
    rows.forEach((row, i) => {
      activations.set(values.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
      targets[i * numClasses + labels[row]] = 1;
    });
    const sampleWeights = classWeights === undefined ? undefined : Float32Array.from(rows, (row) => classWeights[labels[row]]);
    const { loss, gradients } = await step.run({ rows: rows.length, activations, targets, dropoutMask: mask, sampleWeights }, training.weights);
    training.adam.apply(training.weights, gradients);
    lossSum += loss * rows.length;
  }
  tf.tidy(() => training.variables.forEach((variable, i) => variable.assign(tf.tensor(training.weights[i], variable.shape))));
  return lossSum;
}
