import * as tf from '@tensorflow/tfjs';
import { Progress, type RawImage } from '@scarce/core';
import { poolFeatureMaps, type Backbone } from './backbone.js';
import type { InferenceRuntime, OnnxRunner } from './onnx-runner.js';
import { backboneInputValues, toBackboneInput } from './preprocess.js';

/** Options of `extractFeatures`. */
export interface ExtractFeaturesOptions {
  /** Images per forward pass; default 64. */
  batchSize?: number;
  /** Label of the progress bar; default `features`. */
  label?: string;
  quiet?: boolean;
  /** Runtime of the backbone; default `auto` (onnxruntime when tfjs runs on wasm or cpu and it loads). */
  runtime?: InferenceRuntime;
}

/**
 * Runs the frozen backbone in inference mode (BatchNorm uses its moving statistics) and
 * global-average-pools its output (each feature layer's, concatenated): one `featureSize` vector
 * per record, row-major.
 */
export function extractFeatures(backbone: Backbone, records: readonly RawImage[], options: ExtractFeaturesOptions = {}): Float32Array {
  const batchSize = options.batchSize ?? 64;
  const features = new Float32Array(records.length * backbone.featureSize);
  const progress = new Progress(options.label ?? 'features', records.length, { quiet: options.quiet });

  for (let start = 0; start < records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    const pooled = tf.tidy(() => poolFeatureMaps(backbone.model.predict(toBackboneInput(batch, backbone)) as tf.Tensor | tf.Tensor[]));
    features.set(pooled.dataSync() as Float32Array, start * backbone.featureSize);
    pooled.dispose();
    progress.tick(batch.length);
  }
  return features;
}

/**
 * Runs records through an onnxruntime runner, `batchSize` at a time, preparing each batch's input
 * while the one before it runs. Returns the outputs row-major, `runner.outputSize` values per record.
 */
export async function runOnnxBatches(runner: OnnxRunner, backbone: Backbone, records: readonly RawImage[], batchSize: number, progress: Progress): Promise<Float32Array> {
  const out = new Float32Array(records.length * runner.outputSize);
  let running: { start: number; count: number; output: Promise<Float32Array> } | undefined;
  const finish = async () => {
    if (running === undefined) return;
    out.set(await running.output, running.start * runner.outputSize);
    progress.tick(running.count);
  };
  for (let start = 0; start < records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    const values = backboneInputValues(batch, backbone);
    await finish();
    running = { start, count: batch.length, output: runner.run(values, batch.length) };
  }
  await finish();
  return out;
}
