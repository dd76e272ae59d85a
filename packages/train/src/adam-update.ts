/**
 * The element loop of `ArrayAdam`, free of tfjs so that a worker thread can load it. It computes
 * Adam as tfjs's `tf.train.adam` does, with the bias corrections hoisted. It optionally moves the
 * exponential moving average of the updated weights in the same pass.
 */

/** The constants of one Adam step. */
export interface AdamStep {
  beta1: number;
  beta2: number;
  /** learning rate / (1 - beta1^t) */
  stepSize: number;
  /** 1 / (1 - beta2^t) */
  varianceScale: number;
  epsilon: number;
}

/** The arrays that one Adam step updates in place, the average optional. */
export interface AdamArrays {
  weight: Float32Array;
  gradient: Float32Array;
  first: Float32Array;
  second: Float32Array;
  average?: { values: Float32Array; decay: number };
}

/**
 * Updates elements [start, end) of one weight array, its moments and its average; `gradient` may
 * hold only that range, from `gradientOffset`. A plain loop over typed arrays, which V8 compiles
 * tightly: w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon), then
 * a = a d + w (1 - d).
 */
export function adamRange(arrays: AdamArrays, step: AdamStep, start: number, end: number, gradientOffset = 0): void {
  const { weight, gradient, first, second } = arrays;
  const { beta1, beta2, stepSize, varianceScale, epsilon } = step;
  const average = arrays.average?.values ?? null;
  const decay = arrays.average?.decay ?? 0;
  const [keep1, keep2, keep] = [1 - beta1, 1 - beta2, 1 - decay];
  for (let k = start; k < end; k++) {
    const g = gradient[k - gradientOffset];
    const m = beta1 * first[k] + keep1 * g;
    const v = beta2 * second[k] + keep2 * g * g;
    first[k] = m;
    second[k] = v;
    const updated = weight[k] - (stepSize * m) / (Math.sqrt(v * varianceScale) + epsilon);
    weight[k] = updated;
    // The average takes the weight as stored, in float32.
    if (average !== null) average[k] = average[k] * decay + Math.fround(updated) * keep;
  }
}
