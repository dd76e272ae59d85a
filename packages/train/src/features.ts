import * as tf from '@tensorflow/tfjs';
import { Progress, type RawImage } from '@scarce/core';
import type { Backbone } from './backbone.js';
import { toBackboneInput } from './preprocess.js';

/** Options of `extractFeatures`. */
export interface ExtractFeaturesOptions {
  /** Images per forward pass; default 64. */
  batchSize?: number;
  /** Label of the progress bar; default `features`. */
  label?: string;
  quiet?: boolean;
}

/**
 * Runs the frozen backbone in inference mode (BatchNorm uses its moving statistics) and
 * global-average-pools its output: one `featureSize` vector per record, row-major.
 */
export function extractFeatures(backbone: Backbone, records: readonly RawImage[], options: ExtractFeaturesOptions = {}): Float32Array {
  const batchSize = options.batchSize ?? 64;
  const features = new Float32Array(records.length * backbone.featureSize);
  const progress = new Progress(options.label ?? 'features', records.length, { quiet: options.quiet });

  for (let start = 0; start < records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    const pooled = tf.tidy(() => {
      const output = backbone.model.predict(toBackboneInput(batch, backbone)) as tf.Tensor4D;
      return output.mean([1, 2]);
    });
    features.set(pooled.dataSync() as Float32Array, start * backbone.featureSize);
    pooled.dispose();
    progress.tick(batch.length);
  }
  return features;
}
