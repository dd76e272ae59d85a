import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '@scarce/core';
import type { GeneratorProvenance, SamplingGenerator } from './sample.js';

export const MODEL_JSON_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

/** Metadata that `saveGenerator` stores in model.json's `userDefinedMetadata`, enough to sample again. */
interface GeneratorMetadata {
  classNames: string[];
  imageShape: SamplingGenerator['imageShape'];
  latentSize: number;
  provenance: GeneratorProvenance;
}

/**
 * Saves a generator in the TF.js layers format: `model.json` (topology, weight manifest, and the
 * class names, image shape and provenance as user-defined metadata) and one `weights.bin`, each
 * written to a temporary name and renamed. `loadGenerator` reads it back. Returns the path of
 * model.json.
 */
export async function saveGenerator(directory: string, trained: SamplingGenerator): Promise<string> {
  await mkdir(directory, { recursive: true });
  const metadata: GeneratorMetadata = {
    classNames: trained.classNames,
    imageShape: trained.imageShape,
    latentSize: trained.latentSize,
    provenance: trained.provenance,
  };

  const modelJsonPath = join(directory, MODEL_JSON_FILE);
  await trained.generator.save(
    tf.io.withSaveHandler(async (artifacts) => {
      if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) {
        throw new Error('The generator produced no weights to save.');
      }
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
        userDefinedMetadata: metadata as unknown as Record<string, object>,
      };
      await writeFileAtomic(join(directory, WEIGHTS_FILE), weights);
      await writeFileAtomic(modelJsonPath, JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return modelJsonPath;
}

/** Loads a generator written by `saveGenerator`, ready for `sampleSynthetic`. */
export async function loadGenerator(directory: string): Promise<SamplingGenerator> {
  const modelJsonPath = join(directory, MODEL_JSON_FILE);
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse(await readFile(modelJsonPath, 'utf8')) as tf.io.ModelJSON;
  } catch (error) {
    throw new Error(`Cannot read ${modelJsonPath}: ${(error as Error).message}. Point at a folder written by saveGenerator.`);
  }
  const metadata = modelJson.userDefinedMetadata as unknown as GeneratorMetadata | undefined;
  if (metadata?.classNames === undefined || metadata.imageShape === undefined || metadata.latentSize === undefined) {
    throw new Error(`${modelJsonPath} has no generator metadata (classNames, imageShape, latentSize); it was not written by saveGenerator.`);
  }
  const paths = modelJson.weightsManifest.flatMap((group) => group.paths);
  const weights = await Promise.all(paths.map(async (path) => {
    const bytes = await readFile(join(directory, path));
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  }));

  const generator = await tf.loadLayersModel({
    load: async () => ({
      modelTopology: modelJson.modelTopology,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
      weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
      weightData: tf.io.CompositeArrayBuffer.join(weights),
      userDefinedMetadata: modelJson.userDefinedMetadata,
    }),
  });
  return { generator, ...metadata };
}
