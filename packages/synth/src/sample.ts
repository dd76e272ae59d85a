import * as tf from '@tensorflow/tfjs';
import { deriveSeed, Random, type ImageRecord, type ImageShape } from '@scarce/core';
import { latentBatch } from './latents.js';

/** Generator settings copied into the `params` of every synthetic record, so a row records where it came from. */
export interface GeneratorProvenance {
  generator: 'conditional-dcgan';
  latentSize: number;
  generatorWidths: number[];
  discriminatorWidths: number[];
  batchSize: number;
  loss: string;
  labelSmoothing: number;
  /** Weight of the auxiliary classification loss; absent in records written before it existed. */
  classifierWeight?: number;
  r1Gamma: number;
  diffAugment: boolean;
  emaDecay: number;
  trainingSeed: number;
  /** The last epoch trained, counting any epoch cut short by the time budget. */
  epochsTrained: number;
  steps: number;
}

/** A generator taking [latent, one-hot label] to images in [-1, 1], with the facts sampling needs. */
export interface SamplingGenerator {
  generator: tf.LayersModel;
  classNames: string[];
  imageShape: ImageShape;
  latentSize: number;
  provenance: GeneratorProvenance;
}

/** Options of `sampleSynthetic`. */
export interface SampleOptions {
  /** Synthetic images per class. */
  perClass: number;
  /** Seed of the latents; each record's latent is drawn from deriveSeed(seed, label, index). Default 0. */
  seed?: number;
  /** Images generated per forward pass; default 256. It bounds memory and does not change the images. */
  batchSize?: number;
}

/** Converts a generator output in [-1, 1] to 8-bit pixels, rounding and clipping. */
export function toUint8Pixels(values: Float32Array | Int32Array | Uint8Array): Uint8Array {
  const pixels = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) pixels[i] = Math.min(255, Math.max(0, Math.round((values[i] + 1) * 127.5)));
  return pixels;
}

/**
 * Samples `perClass` labelled synthetic images per class from a generator, class by class. Each
 * record's latent comes from its own seed (stored in `seed`), so one record can be regenerated
 * alone. The generator runs in inference mode, so an image does not depend on the other images
 * of its batch.
 * Records are `origin: 'synthetic'`, `split: 'train'`, `sourceIndex: null`, `view: 0`, and their
 * `params` hold the generator's provenance with the sampling seed and the latent index.
 */
export function sampleSynthetic(trained: SamplingGenerator, options: SampleOptions): ImageRecord[] {
  const { perClass } = options;
  const samplingSeed = options.seed ?? 0;
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(perClass) || perClass < 0) throw new Error(`perClass must be a non-negative integer but received ${perClass}.`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer but received ${batchSize}.`);

  const { height, width, channels } = trained.imageShape;
  const imageSize = height * width * channels;
  const wanted = trained.classNames.flatMap((_, label) => Array.from({ length: perClass }, (__, index) => ({ label, index })));
  const records: ImageRecord[] = [];

  for (let start = 0; start < wanted.length; start += batchSize) {
    const chunk = wanted.slice(start, start + batchSize);
    const seeds = chunk.map(({ label, index }) => deriveSeed(samplingSeed, 'synthetic', label, index));
    const output = tf.tidy(() => {
      const latents = tf.concat(seeds.map((seed) => latentBatch(new Random(seed), 1, trained.latentSize)), 0);
      const labels = tf.oneHot(tf.tensor1d(chunk.map(({ label }) => label), 'int32'), trained.classNames.length).toFloat();
      return trained.generator.predict([latents, labels]) as tf.Tensor4D;
    });
    const values = output.dataSync() as Float32Array;
    output.dispose();

    chunk.forEach(({ label, index }, row) => {
      records.push({
        pixels: toUint8Pixels(values.subarray(row * imageSize, (row + 1) * imageSize)),
        height,
        width,
        channels,
        label,
        origin: 'synthetic',
        sourceIndex: null,
        view: 0,
        seed: seeds[row],
        params: { ...trained.provenance, samplingSeed, latentIndex: index },
        split: 'train',
      });
    });
  }
  return records;
}
