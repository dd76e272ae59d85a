import * as tf from '@tensorflow/tfjs';
import type { Random } from '@scarce/core';

/** The DiffAugment transforms to apply and their strengths. */
export interface DiffAugmentOptions {
  /** Random brightness, saturation (colour images only) and contrast. */
  colour: boolean;
  /** Maximum shift as a fraction of the image side; 0 turns translation off. */
  translationFraction: number;
  /** Side of the zeroed square as a fraction of the image side; 0 turns cutout off. */
  cutoutFraction: number;
}

/** Draws one uniform [0, 1) value per image, shaped [n, 1, 1, 1] to broadcast over pixels. */
function perImageUniform(random: Random, count: number): tf.Tensor4D {
  const values = Float32Array.from({ length: count }, () => random.next());
  return tf.tensor4d(values, [count, 1, 1, 1]);
}

/** Colour jitter of DiffAugment on images in [-1, 1]: brightness ±0.5, saturation x[0, 2), contrast x[0.5, 1.5). */
function augmentColour(images: tf.Tensor4D, random: Random): tf.Tensor4D {
  const count = images.shape[0];
  let x = tf.add(images, tf.sub(perImageUniform(random, count), 0.5));
  if (images.shape[3] > 1) {
    const channelMean = tf.mean(x, 3, true);
    x = tf.add(tf.mul(tf.sub(x, channelMean), tf.mul(perImageUniform(random, count), 2)), channelMean);
  }
  const imageMean = tf.mean(x, [1, 2, 3], true);
  return tf.add(tf.mul(tf.sub(x, imageMean), tf.add(perImageUniform(random, count), 0.5)), imageMean) as tf.Tensor4D;
}

/**
 * Builds one shift matrix per image and channel: row a of matrix i has a 1 at column a - shift_i,
 * so multiplying moves rows down by shift_i and fills the gap with zeros.
 */
function shiftMatrices(shifts: readonly number[], channels: number, size: number): tf.Tensor3D {
  const values = new Float32Array(shifts.length * channels * size * size);
  shifts.forEach((shift, image) => {
    for (let channel = 0; channel < channels; channel++) {
      const offset = (image * channels + channel) * size * size;
      for (let row = 0; row < size; row++) {
        const source = row - shift;
        if (source >= 0 && source < size) values[offset + row * size + source] = 1;
      }
    }
  });
  return tf.tensor3d(values, [shifts.length * channels, size, size]);
}

/**
 * Translates each image by a random whole number of pixels in [-s, s] on each axis, with
 * s = round(side * fraction), filling with zeros. It is written as two batched matrix products
 * with 0/1 shift matrices, so the gradient needs only matMul and no gather.
 */
function augmentTranslation(images: tf.Tensor4D, random: Random, fraction: number): tf.Tensor4D {
  const [count, height, width, channels] = images.shape;
  const maxShiftY = Math.round(height * fraction);
  const maxShiftX = Math.round(width * fraction);
  const shiftsY = Array.from({ length: count }, () => random.integer(-maxShiftY, maxShiftY + 1));
  const shiftsX = Array.from({ length: count }, () => random.integer(-maxShiftX, maxShiftX + 1));

  const planes = tf.reshape(tf.transpose(images, [0, 3, 1, 2]), [count * channels, height, width]);
  const shiftedRows = tf.matMul(shiftMatrices(shiftsY, channels, height), planes);
  // (X S^T)[a][b] = X[a][b - shift], so the same construction shifts columns when transposed.
  const shifted = tf.matMul(shiftedRows, shiftMatrices(shiftsX, channels, width), false, true);
  return tf.transpose(tf.reshape(shifted, [count, channels, height, width]), [0, 2, 3, 1]);
}

/**
 * Zeroes one square of side round(side * fraction) per image, centred at a random pixel and
 * clipped at the border, as DiffAugment's cutout does.
 */
function augmentCutout(images: tf.Tensor4D, random: Random, fraction: number): tf.Tensor4D {
  const [count, height, width] = images.shape;
  const cutHeight = Math.round(height * fraction);
  const cutWidth = Math.round(width * fraction);
  const mask = new Float32Array(count * height * width).fill(1);
  for (let image = 0; image < count; image++) {
    const centreY = random.integer(0, height + (1 - (cutHeight % 2)));
    const centreX = random.integer(0, width + (1 - (cutWidth % 2)));
    const top = Math.max(0, centreY - Math.floor(cutHeight / 2));
    const bottom = Math.min(height, centreY - Math.floor(cutHeight / 2) + cutHeight);
    const left = Math.max(0, centreX - Math.floor(cutWidth / 2));
    const right = Math.min(width, centreX - Math.floor(cutWidth / 2) + cutWidth);
    for (let y = top; y < bottom; y++) mask.fill(0, (image * height + y) * width + left, (image * height + y) * width + right);
  }
  return tf.mul(images, tf.tensor4d(mask, [count, height, width, 1]));
}

/**
 * Applies DiffAugment (differentiable augmentation for data-efficient GAN training) to images
 * in [-1, 1]: colour, then translation, then cutout, with fresh random parameters per image
 * drawn from `random`. Every operation is differentiable, so the generator's gradient flows
 * through it. Call it inside `tf.tidy`, because it does not dispose its intermediate tensors.
 */
export function diffAugment(images: tf.Tensor4D, random: Random, options: DiffAugmentOptions): tf.Tensor4D {
  let x = images;
  if (options.colour) x = augmentColour(x, random);
  if (options.translationFraction > 0) x = augmentTranslation(x, random, options.translationFraction);
  if (options.cutoutFraction > 0) x = augmentCutout(x, random, options.cutoutFraction);
  return x;
}
