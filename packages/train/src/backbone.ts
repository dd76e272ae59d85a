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
  /** Layer whose output is pooled into features, or undefined for the model's own output. */
  featureLayer?: string;
}

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
   * them. The layers after it are cut off. Default: the model's own output.
   */
  featureLayer?: string;
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
  });
  const spec = options.spec ?? declared ?? MOBILENET_V2_SPEC;
  const inputSize = requestedSize ?? spec.nativeSize;
  let model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  if (options.featureLayer !== undefined) {
    const layer = model.layers.find((candidate) => candidate.name === options.featureLayer);
    if (layer === undefined) {
      throw new InputError(`${source} has no layer named '${options.featureLayer}'; run 'scarce backbone inspect ${source}' to list its layers.`);
    }
    const output = layer.output as tf.SymbolicTensor;
    if (Array.isArray(output) || output.shape.length !== 4) {
      throw new InputError(`Layer '${options.featureLayer}' of ${source} does not output one 4-D feature map; choose a convolutional layer.`);
    }
    model = tf.model({ inputs: model.inputs, outputs: output, name: `${model.name}_to_${options.featureLayer}` });
  }
  const outputShape = model.outputs[0].shape;
  const featureSize = outputShape[outputShape.length - 1];
  if (featureSize === null) throw new InputError(`${source}: the output has an unknown channel count.`);
  // The feature layer and a non-default scaling change the features, so they change the cache key.
  const keyParts = [modelFingerprint, ...(options.featureLayer === undefined ? [] : [options.featureLayer]), ...(spec.scaling === MOBILENET_V2_SPEC.scaling ? [] : [spec.scaling])];
  const fingerprint = keyParts.length === 1 ? modelFingerprint : createHash('sha256').update(keyParts.join('\n')).digest('hex');
  return { model, spec, inputSize, featureSize, source, fingerprint, featureLayer: options.featureLayer };
}
