import { createHash } from 'node:crypto';
import { InputError, readModelArtifacts } from '@scarce/core';
import * as tf from '@tensorflow/tfjs';

/** Input format a backbone expects. */
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
  /** Path or URL it was loaded from. */
  source: string;
  /** sha256 of the resized topology, the weights, the feature layer and the scaling: the key of cached features. */
  fingerprint: string;
  /** Layer (or layers, pooled and concatenated in order) whose output is pooled into features, or undefined for the model's own output. */
  featureLayer?: string | string[];
}

/** A feature layer that a backbone does not have or cannot be cut at. */
export class FeatureLayerError extends InputError {}

/** Key of a backbone's own spec in its model.json `userDefinedMetadata`. */
export const BACKBONE_SPEC_KEY = 'scarceBackbone';

/** Options of `loadBackbone`. */
export interface LoadBackboneOptions {
  /** Input side in pixels; default the spec's native size. Fully convolutional backbones take any size ≥ 32. */
  inputSize?: number;
  /**
   * Input format of the model; default the spec its model.json declares under
   * `userDefinedMetadata.scarceBackbone`, else MobileNetV2's (224 px, RGB, [-1, 1]).
   */
  spec?: BackboneSpec;
  /**
   * Name of an inner layer whose output becomes the feature map, as `scarce backbone inspect` lists
   * them, or several names: each output is pooled and the vectors are concatenated in that order.
   * The layers after the last one are cut off. Default: the model's own output.
   */
  featureLayer?: string | string[];
  /** Files already fetched from a URL source, by URL. New fetches are added, so backbones loaded together download once. */
  downloads?: Map<string, Uint8Array>;
}

/** Sets the input layer of a layers topology to `inputSize` x `inputSize`, keeping its channels. */
function resizeInputLayer(inputSize: number) {
  return (topology: Record<string, unknown>, jsonSource: string) => {
    const layers = (topology.config as { layers?: Array<{ class_name: string; config: Record<string, unknown> }> } | undefined)?.layers ?? [];
    const inputLayer = layers.find((layer) => layer.class_name === 'InputLayer');
    const shape = inputLayer?.config.batch_input_shape as Array<number | null> | undefined;
    if (shape === undefined || shape.length !== 4) {
      throw new InputError(`${jsonSource} has no 4-D InputLayer; cannot set its input size to ${inputSize}.`);
    }
    inputLayer!.config.batch_input_shape = [shape[0], inputSize, inputSize, shape[3]];
  };
}

/** Returns a spec declared in model.json metadata after checking its fields, or undefined when none is declared. */
function checkDeclaredSpec(value: unknown, jsonSource: string): BackboneSpec | undefined {
  if (value === undefined) return undefined;
  const spec = value as Partial<BackboneSpec>;
  if (!Number.isInteger(spec.nativeSize) || spec.channelOrder !== 'rgb' || (spec.scaling !== '[-1, 1]' && spec.scaling !== '[0, 1]')) {
    throw new InputError(
      `${jsonSource}: userDefinedMetadata.${BACKBONE_SPEC_KEY} must be { nativeSize: integer, channelOrder: 'rgb', scaling: '[-1, 1]' or '[0, 1]' } but is ${JSON.stringify(value)}.`,
    );
  }
  return spec as BackboneSpec;
}

/** Loads a backbone from a folder holding model.json, a model.json path, or a URL. */
export async function loadBackbone(source: string, options: LoadBackboneOptions = {}): Promise<Backbone> {
  const requestedSize = options.inputSize;
  if (requestedSize !== undefined && (!Number.isInteger(requestedSize) || requestedSize < 32)) {
    throw new InputError(`Backbone input size must be an integer of at least 32 pixels but received ${requestedSize}.`);
  }
  let declared: BackboneSpec | undefined;
  const { artifacts, fingerprint: modelFingerprint } = await readModelArtifacts(source, (topology, jsonSource, metadata) => {
    declared = checkDeclaredSpec(metadata?.[BACKBONE_SPEC_KEY], jsonSource);
    resizeInputLayer(requestedSize ?? (options.spec ?? declared ?? MOBILENET_V2_SPEC).nativeSize)(topology, jsonSource);
  }, options.downloads);
  const spec = options.spec ?? declared ?? MOBILENET_V2_SPEC;
  const inputSize = requestedSize ?? spec.nativeSize;
  let model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const featureLayers = typeof options.featureLayer === 'string' ? [options.featureLayer] : [...(options.featureLayer ?? [])];
  if (options.featureLayer !== undefined && featureLayers.length === 0) {
    throw new FeatureLayerError(`featureLayer for ${source} is an empty list; name at least one layer or leave it out for the model's output.`);
  }
  const repeated = featureLayers.find((name, i) => featureLayers.indexOf(name) !== i);
  if (repeated !== undefined) {
    throw new FeatureLayerError(`featureLayer names '${repeated}' twice; list each layer once.`);
  }
  if (featureLayers.length > 0) {
    const outputs = featureLayers.map((name) => {
      const layer = model.layers.find((candidate) => candidate.name === name);
      if (layer === undefined) {
        throw new FeatureLayerError(`${source} has no layer named '${name}'; run 'scarce backbone inspect ${source}' to list its layers.`);
      }
      const output = layer.output as tf.SymbolicTensor;
      if (Array.isArray(output) || output.shape.length !== 4) {
        throw new FeatureLayerError(`Layer '${name}' of ${source} does not output one 4-D feature map; choose a convolutional layer.`);
      }
      return output;
    });
    model = tf.model({ inputs: model.inputs, outputs: outputs.length === 1 ? outputs[0] : outputs, name: `${model.name}_to_${featureLayers.join('_')}` });
  }
  const channels = model.outputs.map((output) => output.shape.at(-1));
  if (channels.some((count) => count === null || count === undefined)) throw new InputError(`${source}: an output has an unknown channel count.`);
  const featureSize = (channels as number[]).reduce((sum, count) => sum + count, 0);
  // The feature layers and a non-default scaling change the features, so they change the cache key.
  const keyParts = [modelFingerprint, ...(featureLayers.length === 0 ? [] : [featureLayers.join('+')]), ...(spec.scaling === MOBILENET_V2_SPEC.scaling ? [] : [spec.scaling])];
  const fingerprint = keyParts.length === 1 ? modelFingerprint : createHash('sha256').update(keyParts.join('\n')).digest('hex');
  let featureLayer: string | string[] | undefined;
  if (featureLayers.length === 1) featureLayer = featureLayers[0];
  else if (featureLayers.length > 1) featureLayer = featureLayers;
  return { model, spec, inputSize, featureSize, source, fingerprint, featureLayer };
}

/** Global-average-pools each of the backbone's output maps and concatenates the vectors: [images, featureSize]. */
export function poolFeatureMaps(output: tf.Tensor | tf.Tensor[]): tf.Tensor2D {
  const maps = Array.isArray(output) ? output : [output];
  return tf.tidy(() => {
    const pooled = maps.map((map) => map.mean([1, 2]) as tf.Tensor2D);
    return pooled.length === 1 ? pooled[0] : tf.concat(pooled, 1);
  });
}
