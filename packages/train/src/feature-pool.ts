import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { Progress, type RawImage } from '@scarce/core';
import type { Backbone } from './backbone.js';
import { extractFeatures, runOnnxBatches, type ExtractFeaturesOptions } from './features.js';
import { onnxRunnerFor } from './onnx-runner.js';
import type { FeatureBatch, FeatureWorkerData, FeatureWorkerResponse } from './feature-worker.js';

/** Options of `extractFeaturesParallel`. */
export interface ParallelFeatureOptions extends ExtractFeaturesOptions {
  /** Threads that run the backbone, the calling thread included; default the number of CPU cores. */
  threads?: number;
}

/** Batches queued at each worker, so it starts the next without waiting for the main thread. */
const BATCHES_PER_WORKER = 2;

/** Yields to the event loop, so worker messages that arrived during a synchronous batch are handled. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Concatenates the pixels of a batch of images that share one shape. */
function packBatch(images: readonly RawImage[], id: number): FeatureBatch {
  const { height, width, channels } = images[0];
  const size = height * width * channels;
  const pixels = new Uint8Array(images.length * size);
  images.forEach((image, i) => {
    if (image.height !== height || image.width !== width || image.channels !== channels) {
      throw new Error(`Records of one batch must share a shape; got ${height}x${width}x${channels} and ${image.height}x${image.width}x${image.channels}.`);
    }
    pixels.set(image.pixels, i * size);
  });
  return { id, pixels, count: images.length, height, width, channels };
}

/**
 * Computes the same features as `extractFeatures` on every core. On the wasm and cpu backends it
 * runs the backbone in onnxruntime, which has its own thread pool, unless `runtime` is `tfjs` or
 * onnxruntime-node is not available. Otherwise, as the wasm and cpu backends run on one thread,
 * each worker thread loads its own copy of the backbone and takes batches from a shared queue
 * while the calling thread works through the queue too. With a native backend (which has its own
 * thread pool), a backbone from a URL (each worker would download it again), one thread or fewer
 * than two batches, it runs `extractFeatures`.
 */
export async function extractFeaturesParallel(backbone: Backbone, images: readonly RawImage[], options: ParallelFeatureOptions = {}): Promise<Float32Array> {
  const batchSize = options.batchSize ?? 64;
  const runner = await onnxRunnerFor(backbone.model, true, options.runtime);
  if (runner !== undefined) {
    const progress = new Progress(options.label ?? 'features', images.length, { quiet: options.quiet });
    return runOnnxBatches(runner, backbone, images, batchSize, progress);
  }
  const threads = options.threads ?? availableParallelism();
  const backend = tf.getBackend();
  const isUrl = /^https?:\/\//i.test(backbone.source);
  if (threads <= 1 || (backend !== 'wasm' && backend !== 'cpu') || isUrl || images.length < 2 * batchSize) {
    return extractFeatures(backbone, images, options);
  }

  const size = backbone.featureSize;
  const output = new Float32Array(images.length * size);
  const batchStarts = Array.from({ length: Math.ceil(images.length / batchSize) }, (_, i) => i * batchSize);
  const progress = new Progress(options.label ?? 'features', images.length, { quiet: options.quiet });
  let next = 0;
  let finished = 0;
  let failure: Error | undefined;
  const store = (id: number, features: Float32Array) => {
    output.set(features, batchStarts[id] * size);
    finished++;
    progress.tick(Math.min(batchSize, images.length - batchStarts[id]));
  };
  /** Returns the next batch's index, or undefined when none is left or a worker failed. */
  const take = (): number | undefined => (next >= batchStarts.length || failure !== undefined ? undefined : next++);
  const batchImages = (id: number) => images.slice(batchStarts[id], batchStarts[id] + batchSize);

  const workerData: FeatureWorkerData = {
    source: backbone.source,
    inputSize: backbone.inputSize,
    featureLayer: backbone.featureLayer,
    spec: backbone.spec,
    backend,
    batchSize,
  };
  const workers = Array.from({ length: threads - 1 }, () => new Worker(new URL('./feature-worker.js', import.meta.url), { workerData }));
  let allDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const send = (worker: Worker) => {
    const id = take();
    if (id === undefined) return;
    const batch = packBatch(batchImages(id), id);
    worker.postMessage(batch, [batch.pixels.buffer as ArrayBuffer]);
  };
  for (const worker of workers) {
    worker.on('message', (response: FeatureWorkerResponse) => {
      if (response.kind === 'ready') {
        for (let i = 0; i < BATCHES_PER_WORKER; i++) send(worker);
      } else if (response.kind === 'done') {
        store(response.id, response.features);
        send(worker);
      } else {
        failure ??= Object.assign(new Error(`A feature worker failed: ${response.error.message}`), { stack: response.error.stack });
      }
      if (finished === batchStarts.length || failure !== undefined) allDone();
    });
    worker.on('error', (error) => {
      failure ??= error;
      allDone();
    });
  }

  try {
    // The calling thread takes batches too, so work starts while the workers load the backbone.
    for (let id = take(); id !== undefined; id = take()) {
      store(id, extractFeatures(backbone, batchImages(id), { batchSize, quiet: true }));
      await yieldToEventLoop();
    }
    if (finished < batchStarts.length && failure === undefined) await done;
    if (failure !== undefined) throw failure;
    return output;
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
