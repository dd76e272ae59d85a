import { join } from 'node:path';
import { InputError, loadLayersModelFrom, MODEL_JSON_FILE, saveLayersModel } from '@scarce/core';
import type { GeneratorProvenance, SamplingGenerator } from './sample.js';


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
  const metadata: GeneratorMetadata = {
    classNames: trained.classNames,
    imageShape: trained.imageShape,
    latentSize: trained.latentSize,
    provenance: trained.provenance,
  };
  return saveLayersModel(directory, trained.generator, metadata as unknown as Record<string, unknown>);
}

/** Loads a generator written by `saveGenerator`, ready for `sampleSynthetic`. */
export async function loadGenerator(directory: string): Promise<SamplingGenerator> {
  const { model, metadata } = await loadLayersModelFrom(directory);
  const generator = metadata as unknown as Partial<GeneratorMetadata>;
  if (generator.classNames === undefined || generator.imageShape === undefined || generator.latentSize === undefined) {
    throw new InputError(`${join(directory, MODEL_JSON_FILE)} has no generator metadata (classNames, imageShape, latentSize); it was not written by saveGenerator.`);
  }
  return { generator: model, ...(generator as GeneratorMetadata) };
}
