import * as tf from '@tensorflow/tfjs';
import { InputError, loadLayersModelFrom, mirrorImage, saveLayersModel, type RawImage } from '@scarce/core';
import type { Backbone, BackboneSpec } from './backbone.js';
import type { ClassifierHead } from './head.js';
import { ScaleEnsemble } from './scale-ensemble.js';

/** Metadata a saved classifier carries about its input and classes. */
export interface ClassifierMetadata {
  classNames: string[];
  /** Side of the backbone's input in pixels, or one side per input of a multi-scale classifier (inputs `image_<size>`). */
  inputSize: number | number[];
  spec: BackboneSpec;
  /** Source and fingerprint of the backbone. */
  backbone: { source: string; fingerprint: string };
  /**
   * Preprocessing of image files before the backbone in training: a resize to `size` ([height, width])
   * and a conversion to `channels`. Prediction reads images the same way. `imageSize` is the
   * [height, width] of the training images as the backbone received them, so that prediction can
   * warn about images of another size, which reach the backbone at another scale.
   */
  preprocess?: { size?: [number, number]; channels?: 1 | 3; imageSize?: [number, number] };
  /**
   * Whether the classifier's probabilities for an image are the mean of the model's output for
   * the image and for its left-right mirror (test-time flips). `predictImages` applies this, but
   * the model file alone gives the output for the image as it is.
   */
  testTimeFlip?: boolean;
  /** Free-form provenance: the mix, seed and scores of the run that trained it. */
  provenance?: Record<string, unknown>;
}

/**
 * Builds one layers model from images to class probabilities: the backbone, global average
 * pooling and the head. The head's feature standardisation is folded into its first dense layer
 * (kernel rows divided by the feature std, bias shifted by the mean), which is exact. An
 * ensemble's output layers become one dense layer with a block-diagonal kernel, followed by a
 * softmax per member and the mean over members.
 *
 * A `ScaleEnsemble` with heads for several `inputSizes` gives a model with one image input per
 * size, named `image_<size>`. The backbone's layers run on each input with shared weights (it is
 * fully convolutional up to the pooling), each size's head reads its own pooled features, and the
 * output is the mean of the heads' class probabilities.
 */
export function composeClassifier(backbone: Backbone, head: ClassifierHead | ScaleEnsemble, inputSizes: readonly number[] = [backbone.inputSize]): tf.LayersModel {
  const heads = head instanceof ScaleEnsemble ? head.heads : [head];
  if (heads.length !== inputSizes.length) throw new Error(`The classifier has ${heads.length} heads for ${inputSizes.length} input sizes.`);
  if (heads.length === 1) {
    const [output, assign] = headLayers(heads[0], backbone.model.outputs, '');
    assign();
    return tf.model({ inputs: backbone.model.inputs, outputs: output, name: 'scarce_classifier' });
  }
  const inputs = inputSizes.map((size) => tf.input({ shape: [size, size, backbone.model.inputs[0].shape[3]!], name: `image_${size}` }));
  const built = heads.map((member, i) => {
    const maps = backbone.model.apply(inputs[i]) as tf.SymbolicTensor | tf.SymbolicTensor[];
    return headLayers(member, Array.isArray(maps) ? maps : [maps], `_${inputSizes[i]}`);
  });
  built.forEach(([, assign]) => assign());
  const output = tf.layers.average({ name: 'scale_mean' }).apply(built.map(([x]) => x)) as tf.SymbolicTensor;
  return tf.model({ inputs, outputs: output, name: 'scarce_classifier' });
}

/**
 * Adds pooling and a head's layers after `maps`, with `suffix` on every layer name. Returns the
 * class probabilities and a function that sets the layers' weights once the graph is built.
 */
function headLayers(head: ClassifierHead, maps: readonly tf.SymbolicTensor[], suffix: string): [tf.SymbolicTensor, () => void] {
  const { members, numClasses } = head;
  const weights = head.weights.map((weight) => weight.arraySync());
  const [firstKernel, firstBias] = weights as [number[][], number[]];
  const foldedKernel = firstKernel.map((row, i) => row.map((value) => value / head.std[i]));
  const foldedBias = firstBias.map((bias, j) => bias - firstKernel.reduce((sum, row, i) => sum + (head.mean[i] / head.std[i]) * row[j], 0));

  const pooled = maps.map((output, i) => tf.layers.globalAveragePooling2d({ name: `${i === 0 ? 'head_pool' : `head_pool_${i}`}${suffix}` }).apply(output) as tf.SymbolicTensor);
  let x = pooled.length === 1 ? pooled[0] : (tf.layers.concatenate({ axis: -1, name: `head_features${suffix}` }).apply(pooled) as tf.SymbolicTensor);
  const outputUnits = members * numClasses;
  const output = tf.layers.dense({ units: outputUnits, activation: members === 1 ? 'softmax' : 'linear', name: `head_output${suffix}` });
  const assignments: Array<[tf.layers.Layer, number[][], number[]]> = [];
  if (weights.length === 4) {
    const hidden = tf.layers.dense({ units: foldedBias.length, activation: 'relu', name: `head_dense${suffix}` });
    x = tf.layers.dropout({ rate: head.dropout, name: `head_dropout${suffix}` }).apply(hidden.apply(x)) as tf.SymbolicTensor;
    const [memberKernels, memberBiases] = weights.slice(2) as [number[][][], number[][]];
    const units = foldedBias.length / members;
    const kernel = Array.from({ length: members * units }, () => new Array<number>(outputUnits).fill(0));
    memberKernels.forEach((block, m) => block.forEach((row, u) => row.forEach((value, c) => (kernel[m * units + u][m * numClasses + c] = value))));
    assignments.push([hidden, foldedKernel, foldedBias], [output, kernel, memberBiases.flat()]);
  } else {
    assignments.push([output, foldedKernel, foldedBias]);
  }
  x = output.apply(x) as tf.SymbolicTensor;
  if (members > 1) {
    x = tf.layers.reshape({ targetShape: [members, numClasses], name: `head_members${suffix}` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.softmax({ axis: 2, name: `head_member_softmax${suffix}` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling1d({ name: `head_member_mean${suffix}` }).apply(x) as tf.SymbolicTensor;
  }
  // setWeights copies into the layers' own variables, so the temporary tensors can go.
  return [x, () => tf.tidy(() => assignments.forEach(([layer, kernel, bias]) => layer.setWeights([tf.tensor2d(kernel), tf.tensor1d(bias)])))];
}

/** Saves a composed classifier in the TF.js layers format with its metadata; returns model.json's path. */
export function saveClassifier(directory: string, model: tf.LayersModel, metadata: ClassifierMetadata): Promise<string> {
  return saveLayersModel(directory, model, { scarceClassifier: metadata });
}

/** A loaded classifier. */
export interface Classifier {
  model: tf.LayersModel;
  metadata: ClassifierMetadata;
}

/** Loads a classifier written by `saveClassifier` from a folder, a model.json path or a URL. */
export async function loadClassifier(source: string): Promise<Classifier> {
  const { model, metadata } = await loadLayersModelFrom(source);
  const classifier = metadata.scarceClassifier as ClassifierMetadata | undefined;
  if (classifier?.classNames === undefined || classifier.inputSize === undefined) {
    throw new InputError(`${source} is a TF.js model but not a scarce classifier (no scarceClassifier metadata). Save it with 'scarce train --save'.`);
  }
  const sizes = [classifier.inputSize].flat();
  if (sizes.length === 0 || sizes.some((size) => !Number.isInteger(size) || size < 1)) {
    throw new InputError(`${source} has scarceClassifier.inputSize ${JSON.stringify(classifier.inputSize)} in its metadata; expected a side in pixels or a list of them. Save the classifier again with scarce.`);
  }
  // Compare with the model's own inputs, so that an edited size fails here rather than inside tfjs.
  const modelSizes = model.inputs.map((input) => input.shape[1]);
  if (sizes.length !== modelSizes.length || sizes.some((size, i) => modelSizes[i] !== null && modelSizes[i] !== size)) {
    const expected = modelSizes.length === 1 ? String(modelSizes[0]) : JSON.stringify(modelSizes);
    throw new InputError(`${source} has scarceClassifier.inputSize ${JSON.stringify(classifier.inputSize)} in its metadata, but its model takes inputs of ${modelSizes.join(', ')} px. Set inputSize to ${expected} in model.json.`);
  }
  if (classifier.testTimeFlip !== undefined && typeof classifier.testTimeFlip !== 'boolean') {
    throw new InputError(`${source} has scarceClassifier.testTimeFlip ${JSON.stringify(classifier.testTimeFlip)} in its metadata; expected true or false. Set it to true or false in model.json.`);
  }
  return { model, metadata: classifier };
}

/** Returns the element-wise mean of two probability arrays of the same images, e.g. of images and their mirrors. */
export function averageProbabilities(first: Float32Array, second: Float32Array): Float32Array {
  return first.map((value, i) => (value + second[i]) / 2);
}

/**
 * Class probabilities of images of any size and channel count, row-major `[images, classes]`.
 * Each image is resized bilinearly to the input size, grayscale is repeated to RGB, and pixels
 * are scaled as the classifier's spec sets. A classifier saved with test-time flips averages
 * each image's probabilities with those of its mirror, as its scores in training were measured.
 */
export function predictImages(classifier: Classifier, images: readonly RawImage[], batchSize = 32): Float32Array {
  const probabilities = modelProbabilities(classifier, images, batchSize);
  if (classifier.metadata.testTimeFlip !== true) return probabilities;
  return averageProbabilities(probabilities, modelProbabilities(classifier, images.map(mirrorImage), batchSize));
}

/** Returns the model's output for `images`, each resized, converted to RGB and scaled as its input expects, once per input size. */
function modelProbabilities(classifier: Classifier, images: readonly RawImage[], batchSize: number): Float32Array {
  const { inputSize, spec, classNames } = classifier.metadata;
  const sizes = [inputSize].flat();
  const probabilities = new Float32Array(images.length * classNames.length);
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = images.slice(start, start + batchSize);
    const output = tf.tidy(() => {
      const inputs = sizes.map((size) => {
        const stacked = tf.stack(
          batch.map((image) => {
            const pixels = tf.image.resizeBilinear(tf.tensor3d(image.pixels, [image.height, image.width, image.channels], 'int32').toFloat(), [size, size]);
            return image.channels === 1 ? tf.tile(pixels, [1, 1, 3]) : pixels;
          }),
        ) as tf.Tensor4D;
        return spec.scaling === '[-1, 1]' ? stacked.div(127.5).sub(1) : stacked.div(255);
      });
      return classifier.model.predict(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor2D;
    });
    probabilities.set(output.dataSync() as Float32Array, start * classNames.length);
    output.dispose();
  }
  return probabilities;
}
