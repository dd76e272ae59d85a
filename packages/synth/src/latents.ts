import * as tf from '@tensorflow/tfjs';
import type { Random } from '@scarce/core';

/** Draws count x size values from N(0, 1), row-major. */
export function latentValues(random: Random, count: number, size: number): Float32Array {
  return Float32Array.from({ length: count * size }, () => random.normal());
}

/** Fills a tensor [count, size] with N(0, 1) draws from a seeded generator. */
export function latentBatch(random: Random, count: number, size: number): tf.Tensor2D {
  return tf.tensor2d(latentValues(random, count, size), [count, size]);
}
