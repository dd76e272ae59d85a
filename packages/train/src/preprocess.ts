import * as tf from '@tensorflow/tfjs';
import type { RawImage } from '@scarce/core';
import type { Backbone } from './backbone.js';

/**
 * Stacks records into the backbone's input: resized with bilinear interpolation to its input
 * size, grayscale repeated to RGB, and scaled as its spec says. All records must share one shape.
 */
export function toBackboneInput(records: readonly RawImage[], backbone: Backbone): tf.Tensor4D {
  return tf.tidy(() => {
    const { height, width, channels } = records[0];
    const size = height * width * channels;
    const pixels = new Uint8Array(records.length * size);
    records.forEach((record, i) => {
      if (record.height !== height || record.width !== width || record.channels !== channels) {
        throw new Error(
          `Records of one batch must share a shape; got ${height}x${width}x${channels} and ${record.height}x${record.width}x${record.channels}.`,
        );
      }
      pixels.set(record.pixels, i * size);
    });

    let images: tf.Tensor4D = tf.tensor4d(pixels, [records.length, height, width, channels], 'int32').toFloat();
    if (height !== backbone.inputSize || width !== backbone.inputSize) {
      images = tf.image.resizeBilinear(images, [backbone.inputSize, backbone.inputSize]);
    }
    if (channels === 1) images = tf.tile(images, [1, 1, 1, 3]);
    return backbone.spec.scaling === '[-1, 1]' ? images.div(127.5).sub(1) : images.div(255);
  });
}
