import { InputError } from '@scarce/core';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** How a backbone expects its input. */
export interface BackboneSpec {
  /** Side of the square input the weights were trained at, in pixels. */
  nativeSize: number;
  channelOrder: 'rgb';
  /** Pixel scaling: `[-1, 1]` is x / 127.5 - 1, `[0, 1]` is x / 255. */
  scaling: '[-1, 1]' | '[0, 1]';
}

/** The scaling and size of MobileNetV2 as Keras Applications ships it. */
export const MOBILENET_V2_SPEC: BackboneSpec = { nativeSize: 224, channelOrder: 'rgb', scaling: '[-1, 1]' };

/** A loaded backbone: a model from images to a feature map, and how to feed it. */
export interface Backbone {
  model: tf.LayersModel;
  spec: BackboneSpec;
  /** Side of the square input the model was built for, in pixels. */
  inputSize: number;
  /** Channels of the feature map (the features after global average pooling). */
  featureSize: number;
  /** Where it was loaded from. */
  source: string;
}

/** Options of `loadBackbone`. */
export interface LoadBackboneOptions {
  /** Input side in pixels; default the spec's native size. Fully convolutional backbones take any size ≥ 32. */
  inputSize?: number;
  spec?: BackboneSpec;
}

interface ModelJson {
  modelTopology: { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
  weightsManifest: tf.io.WeightsManifestConfig;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

async function readSource(source: string, relative?: string): Promise<Uint8Array> {
  if (isUrl(source)) {
    const url = relative === undefined ? source : new URL(relative, source).toString();
    const response = await fetch(url);
    if (!response.ok) throw new InputError(`GET ${url} failed with HTTP ${response.status} ${response.statusText}.`);
    return new Uint8Array(await response.arrayBuffer());
  }
  const path = relative === undefined ? source : join(dirname(source), relative);
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new InputError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
}

/**
 * Reads a TF.js layers model (model.json and its weight files) from a local path or an http(s)
 * URL, with the input layer resized to `inputSize` x `inputSize`.
 */
export async function readModelArtifacts(source: string, inputSize?: number): Promise<tf.io.ModelArtifacts> {
  const jsonSource = isUrl(source) || source.endsWith('.json') ? source : join(source, 'model.json');
  let modelJson: ModelJson;
  try {
    modelJson = JSON.parse(new TextDecoder().decode(await readSource(jsonSource))) as ModelJson;
  } catch (error) {
    throw new InputError(`${jsonSource} is not a TF.js model.json: ${(error as Error).message}`);
  }
  if (modelJson.modelTopology === undefined || modelJson.weightsManifest === undefined) {
    throw new InputError(`${jsonSource} has no modelTopology or weightsManifest; expected a TF.js layers model (tfjs-converter --output_format tfjs_layers_model).`);
  }

  if (inputSize !== undefined) {
    const inputLayer = modelJson.modelTopology.config.layers.find((layer) => layer.class_name === 'InputLayer');
    const shape = inputLayer?.config.batch_input_shape as Array<number | null> | undefined;
    if (shape === undefined || shape.length !== 4) {
      throw new InputError(`${jsonSource} has no 4-D InputLayer; cannot set its input size to ${inputSize}.`);
    }
    inputLayer!.config.batch_input_shape = [shape[0], inputSize, inputSize, shape[3]];
  }

  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const path of group.paths) buffers.push(await readSource(jsonSource, path));
  }
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  const weightData = new Uint8Array(total);
  let offset = 0;
  for (const buffer of buffers) {
    weightData.set(buffer, offset);
    offset += buffer.byteLength;
  }

  return {
    modelTopology: modelJson.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs,
    weightData: weightData.buffer,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy ?? undefined,
  };
}

/** Loads a backbone from a folder holding model.json, a model.json path, or a URL. */
export async function loadBackbone(source: string, options: LoadBackboneOptions = {}): Promise<Backbone> {
  const spec = options.spec ?? MOBILENET_V2_SPEC;
  const inputSize = options.inputSize ?? spec.nativeSize;
  if (!Number.isInteger(inputSize) || inputSize < 32) {
    throw new InputError(`Backbone input size must be an integer of at least 32 pixels but received ${inputSize}.`);
  }
  const artifacts = await readModelArtifacts(source, inputSize);
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const outputShape = model.outputs[0].shape;
  const featureSize = outputShape[outputShape.length - 1];
  if (featureSize === null) throw new InputError(`${source}: the output has an unknown channel count.`);
  return { model, spec, inputSize, featureSize, source };
}
