import * as tf from '@tensorflow/tfjs';
import type { RawImage } from '@scarce/core';
import type { Backbone } from './backbone.js';

/** Source rows (or columns) and weights of a bilinear resize along one axis, as tf.image.resizeBilinear samples. */
function bilinearTaps(from: number, to: number): { low: Int32Array; high: Int32Array; fraction: Float32Array } {
  const low = new Int32Array(to);
  const high = new Int32Array(to);
  const fraction = new Float32Array(to);
  const ratio = from / to;
  for (let i = 0; i < to; i++) {
    const source = ratio * i;
    low[i] = Math.floor(source);
    high[i] = Math.min(from - 1, Math.ceil(source));
    fraction[i] = source - low[i];
  }
  return { low, high, fraction };
}

/**
 * The backbone's input for records, as row-major NHWC floats: each resized with bilinear
 * interpolation to the input size (the sampling of tf.image.resizeBilinear without corner
 * alignment), grayscale repeated to RGB, and scaled as the backbone's spec sets. All records
 * must share one shape.
 */
export function backboneInputValues(records: readonly RawImage[], backbone: Backbone): Float32Array {
  const { height, width, channels } = records[0];
  if (channels !== 1 && channels !== 3) {
    throw new Error(`The backbone takes grayscale or RGB images; got ${channels} channels.`);
  }
  const size = backbone.inputSize;
  const [scale, offset] = backbone.spec.scaling === '[-1, 1]' ? [1 / 127.5, -1] : [1 / 255, 0];
  const rows = bilinearTaps(height, size);
  const columns = bilinearTaps(width, size);
  const out = new Float32Array(records.length * size * size * 3);
  let index = 0;
  for (const record of records) {
    if (record.height !== height || record.width !== width || record.channels !== channels) {
      throw new Error(
        `Records of one batch must share a shape; got ${height}x${width}x${channels} and ${record.height}x${record.width}x${record.channels}.`,
      );
    }
    const pixels = record.pixels;
    for (let y = 0; y < size; y++) {
      const top = rows.low[y] * width;
      const bottom = rows.high[y] * width;
      const down = rows.fraction[y];
      for (let x = 0; x < size; x++) {
        const left = columns.low[x];
        const right = columns.high[x];
        const across = columns.fraction[x];
        for (let c = 0; c < channels; c++) {
          const topLeft = pixels[(top + left) * channels + c];
          const topRight = pixels[(top + right) * channels + c];
          const bottomLeft = pixels[(bottom + left) * channels + c];
          const bottomRight = pixels[(bottom + right) * channels + c];
          const upper = topLeft + (topRight - topLeft) * across;
          const lower = bottomLeft + (bottomRight - bottomLeft) * across;
          out[index++] = (upper + (lower - upper) * down) * scale + offset;
        }
        if (channels === 1) {
          out[index] = out[index + 1] = out[index - 1];
          index += 2;
        }
      }
    }
  }
  return out;
}

/** Returns `backboneInputValues` as a tensor of shape [records, inputSize, inputSize, 3]. */
export function toBackboneInput(records: readonly RawImage[], backbone: Backbone): tf.Tensor4D {
  return tf.tensor4d(backboneInputValues(records, backbone), [records.length, backbone.inputSize, backbone.inputSize, 3]);
}
