import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend, type BackendChoice, type RawImage } from '@scarce/core';
import { loadBackbone, type BackboneSpec } from './backbone.js';
import { extractFeatures } from './features.js';

/** Settings a feature worker needs to load the same backbone as the thread that starts it. */
export interface FeatureWorkerData {
  source: string;
  inputSize: number;
  featureLayer?: string | string[];
  spec: BackboneSpec;
  backend: BackendChoice;
  batchSize: number;
}

/** A batch of images of one shape, pixels concatenated, and its position in the whole. */
export interface FeatureBatch {
  id: number;
  pixels: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

export type FeatureWorkerResponse =
  | { kind: 'ready' }
  | { kind: 'done'; id: number; features: Float32Array }
  | { kind: 'failed'; error: { name: string; message: string; stack?: string } };

const settings = workerData as FeatureWorkerData;
const port = parentPort!;

/** Loads the backbone, then replies to each batch message with its features. */
async function serve(): Promise<void> {
  await selectBackend({ backend: settings.backend, log: () => {} });
  const backbone = await loadBackbone(settings.source, { inputSize: settings.inputSize, featureLayer: settings.featureLayer, spec: settings.spec });
  port.on('message', (batch: FeatureBatch) => {
    try {
      const size = batch.height * batch.width * batch.channels;
      const images = Array.from({ length: batch.count }, (_, i): RawImage => ({
        pixels: batch.pixels.subarray(i * size, (i + 1) * size),
        height: batch.height,
        width: batch.width,
        channels: batch.channels,
      }));
      const features = extractFeatures(backbone, images, { batchSize: settings.batchSize, quiet: true });
      port.postMessage({ kind: 'done', id: batch.id, features } satisfies FeatureWorkerResponse, [features.buffer as ArrayBuffer]);
    } catch (error) {
      const { name, message, stack } = error as Error;
      port.postMessage({ kind: 'failed', error: { name, message, stack } } satisfies FeatureWorkerResponse);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies FeatureWorkerResponse);
}

serve().catch((error: Error) => {
  const { name, message, stack } = error;
  port.postMessage({ kind: 'failed', error: { name, message, stack } } satisfies FeatureWorkerResponse);
});
