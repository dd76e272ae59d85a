import * as tf from '@tensorflow/tfjs';
import type { ImageShape, Random } from '@scarce/core';

/** The DiffAugment transforms to apply and their strengths. */
export interface DiffAugmentOptions {
  /** Random brightness, saturation (colour images only) and contrast. */
  colour: boolean;
  /** Maximum shift as a fraction of the image side; 0 turns translation off. */
  translationFraction: number;
  /** Side of the zeroed square as a fraction of the image side; 0 turns cutout off. */
  cutoutFraction: number;
}

/**
 * Random parameters of one DiffAugment call, drawn per image. Both the tfjs pass and the compiled
 * training steps apply the same draws, so a seed gives the same augmentation in either.
 */
export interface AugmentDraws {
  count: number;
  /** Added to every pixel: uniform in [-0.5, 0.5). */
  brightness: Float32Array | null;
  /** Saturation factor in [0, 2), colour images only. */
  saturation: Float32Array | null;
  /** Contrast factor in [0.5, 1.5). */
  contrast: Float32Array | null;
  /** Whole-pixel shifts down and right, in [-s, s]. */
  shiftsY: Int32Array | null;
  shiftsX: Int32Array | null;
  /** The cut-out square of each image, rows [top, bottom) and columns [left, right): four values per image. */
  cutout: Int32Array | null;
}

function uniforms(random: Random, count: number, scale: number, offset: number): Float32Array {
  return Float32Array.from({ length: count }, () => random.next() * scale + offset);
}

/**
 * Draws the parameters of `count` images in the order the transforms apply them: colour
 * (brightness, saturation, contrast), then translation, then cutout.
 */
export function drawAugmentation(random: Random, count: number, shape: ImageShape, options: DiffAugmentOptions): AugmentDraws {
  const { height, width, channels } = shape;
  const draws: AugmentDraws = { count, brightness: null, saturation: null, contrast: null, shiftsY: null, shiftsX: null, cutout: null };
  if (options.colour) {
    draws.brightness = uniforms(random, count, 1, -0.5);
    if (channels > 1) draws.saturation = uniforms(random, count, 2, 0);
    draws.contrast = uniforms(random, count, 1, 0.5);
  }
  if (options.translationFraction > 0) {
    const maxShiftY = Math.round(height * options.translationFraction);
    const maxShiftX = Math.round(width * options.translationFraction);
    draws.shiftsY = Int32Array.from({ length: count }, () => random.integer(-maxShiftY, maxShiftY + 1));
    draws.shiftsX = Int32Array.from({ length: count }, () => random.integer(-maxShiftX, maxShiftX + 1));
  }
  if (options.cutoutFraction > 0) draws.cutout = cutoutSquares(random, count, height, width, options.cutoutFraction);
  return draws;
}

/** Splits draws for a batch into those of its first `count` images and those of the rest. */
export function splitDraws(draws: AugmentDraws, count: number): [AugmentDraws, AugmentDraws] {
  const part = (start: number, end: number): AugmentDraws => {
    const cut = <T extends Float32Array | Int32Array>(values: T | null, size = 1) => (values === null ? null : (values.slice(start * size, end * size) as T));
    return {
      count: end - start,
      brightness: cut(draws.brightness),
      saturation: cut(draws.saturation),
      contrast: cut(draws.contrast),
      shiftsY: cut(draws.shiftsY),
      shiftsX: cut(draws.shiftsX),
      cutout: cut(draws.cutout, 4),
    };
  };
  return [part(0, count), part(count, draws.count)];
}

/**
 * Builds one shift matrix per image: row a of matrix i has a 1 at column a - shift_i, so
 * multiplying moves rows down by shift_i and fills the gap with zeros. Values are
 * [images, size, size].
 */
function shiftMatrices(shifts: ArrayLike<number>, size: number): Float32Array {
  const values = new Float32Array(shifts.length * size * size);
  for (let image = 0; image < shifts.length; image++) {
    for (let row = 0; row < size; row++) {
      const source = row - shifts[image];
      if (source >= 0 && source < size) values[(image * size + row) * size + source] = 1;
    }
  }
  return values;
}

/**
 * Draws one square of side round(side * fraction) per image, centred at a random pixel and
 * clipped at the border, as DiffAugment's cutout does: [top, bottom, left, right] per image.
 */
function cutoutSquares(random: Random, count: number, height: number, width: number, fraction: number): Int32Array {
  const cutHeight = Math.round(height * fraction);
  const cutWidth = Math.round(width * fraction);
  const squares = new Int32Array(count * 4);
  for (let image = 0; image < count; image++) {
    const centreY = random.integer(0, height + (1 - (cutHeight % 2)));
    const centreX = random.integer(0, width + (1 - (cutWidth % 2)));
    const top = centreY - Math.floor(cutHeight / 2);
    const left = centreX - Math.floor(cutWidth / 2);
    squares.set([Math.max(0, top), Math.min(height, top + cutHeight), Math.max(0, left), Math.min(width, left + cutWidth)], image * 4);
  }
  return squares;
}

/** Builds the keep mask of cut-out squares: 1 outside, 0 inside, [count, height, width]. */
function cutoutMask(squares: Int32Array, height: number, width: number): Float32Array {
  const count = squares.length / 4;
  const mask = new Float32Array(count * height * width).fill(1);
  for (let image = 0; image < count; image++) {
    const [top, bottom, left, right] = squares.subarray(image * 4, image * 4 + 4);
    for (let y = top; y < bottom; y++) mask.fill(0, (image * height + y) * width + left, (image * height + y) * width + right);
  }
  return mask;
}

const perImage = (values: Float32Array) => tf.tensor4d(values, [values.length, 1, 1, 1]);

/** Moves x towards its mean over `axes` by factor k per image: (x - mean) k + mean. */
function scaleAroundMean(x: tf.Tensor4D, factors: Float32Array, axes: number[]): tf.Tensor4D {
  const mean = tf.mean(x, axes, true);
  return tf.add(tf.mul(tf.sub(x, mean), perImage(factors)), mean);
}

/**
 * Translates each image by its whole-pixel shifts, filling with zeros. It is written as two
 * batched matrix products with 0/1 shift matrices, so the gradient needs only matMul and no gather.
 */
function translate(images: tf.Tensor4D, shiftsY: Int32Array, shiftsX: Int32Array): tf.Tensor4D {
  const [count, height, width, channels] = images.shape;
  const planes = tf.reshape(tf.transpose(images, [0, 3, 1, 2]), [count, channels, height, width]);
  // One matrix per image, shared by its channels.
  const perChannel = (matrices: Float32Array, size: number) => tf.tile(tf.tensor4d(matrices, [count, 1, size, size]), [1, channels, 1, 1]);
  const rows = perChannel(shiftMatrices(shiftsY, height), height);
  const columns = perChannel(shiftMatrices(shiftsX, width), width);
  // (X S^T)[a][b] = X[a][b - shift], so the same construction shifts columns when transposed.
  const shifted = tf.matMul(tf.matMul(rows.reshape([-1, height, height]), planes.reshape([-1, height, width])), columns.reshape([-1, width, width]), false, true);
  return tf.transpose(tf.reshape(shifted, [count, channels, height, width]), [0, 2, 3, 1]);
}

/**
 * Applies drawn DiffAugment parameters to images in [-1, 1]: brightness ±0.5, saturation
 * x[0, 2), contrast x[0.5, 1.5), translation, then cutout. Every operation is differentiable,
 * so the generator's gradient flows through it. Call it inside `tf.tidy`, because it does not
 * dispose its intermediate tensors.
 */
export function applyAugmentation(images: tf.Tensor4D, draws: AugmentDraws): tf.Tensor4D {
  const [count, height, width] = images.shape;
  let x = images;
  if (draws.brightness !== null) x = tf.add(x, perImage(draws.brightness));
  if (draws.saturation !== null) x = scaleAroundMean(x, draws.saturation, [3]);
  if (draws.contrast !== null) x = scaleAroundMean(x, draws.contrast, [1, 2, 3]);
  if (draws.shiftsY !== null && draws.shiftsX !== null) x = translate(x, draws.shiftsY, draws.shiftsX);
  if (draws.cutout !== null) x = tf.mul(x, tf.tensor4d(cutoutMask(draws.cutout, height, width), [count, height, width, 1]));
  return x;
}

/**
 * Applies DiffAugment (differentiable augmentation for data-efficient GAN training) to images
 * in [-1, 1] with fresh random parameters per image drawn from `random`. Call it inside
 * `tf.tidy`.
 */
export function diffAugment(images: tf.Tensor4D, random: Random, options: DiffAugmentOptions): tf.Tensor4D {
  const [count, height, width, channels] = images.shape;
  return applyAugmentation(images, drawAugmentation(random, count, { height, width, channels }, options));
}
