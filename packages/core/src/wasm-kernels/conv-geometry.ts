import * as tf from '@tensorflow/tfjs';

/** Conv2D geometry as tfjs-core computes it for the forward pass. */
export type ConvInfo = tf.backend_util.Conv2DInfo;

/** Explicit NHWC padding: `[[0, 0], [top, bottom], [left, right], [0, 0]]`. */
export type ExplicitPadding = tf.backend_util.ExplicitPadding;

/**
 * Rows and columns to add to each side of the spatial axes of an NHWC
 * tensor. A negative amount removes that many rows or columns instead.
 */
export interface SpatialPadding {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * A convolution (stride 1, the given dilations) of an NHWC input by a filter
 * in the layout the caller chose, for example `tf.conv2d` or
 * `tf.depthwiseConv2d` with explicit padding.
 */
export type ConvFunc = (
  input: tf.Tensor4D,
  filter: tf.Tensor4D,
  padding: ExplicitPadding,
  dilations: [number, number],
) => tf.Tensor4D;

/** Axis permutation from NCHW to NHWC. */
export const NCHW_TO_NHWC = [0, 2, 3, 1];

/** Axis permutation from NHWC to NCHW. */
export const NHWC_TO_NCHW = [0, 3, 1, 2];

/**
 * Removes the negative sides of `padding` from `x` by slicing and returns the
 * rest as explicit padding for a convolution, because the wasm convolution
 * takes only non-negative padding. Returns null when nothing of `x` is left.
 */
export function cropToExplicitPadding(
  x: tf.Tensor4D,
  padding: SpatialPadding,
): { cropped: tf.Tensor4D; explicitPadding: ExplicitPadding } | null {
  const [batch, height, width, channels] = x.shape;
  const cropTop = Math.max(-padding.top, 0);
  const cropLeft = Math.max(-padding.left, 0);
  const keptHeight = height - cropTop - Math.max(-padding.bottom, 0);
  const keptWidth = width - cropLeft - Math.max(-padding.right, 0);
  if (keptHeight <= 0 || keptWidth <= 0) {
    return null;
  }

  const cropped =
    keptHeight === height && keptWidth === width
      ? x
      : tf.slice(x, [0, cropTop, cropLeft, 0], [batch, keptHeight, keptWidth, channels]);
  const explicitPadding: ExplicitPadding = [
    [0, 0],
    [Math.max(padding.top, 0), Math.max(padding.bottom, 0)],
    [Math.max(padding.left, 0), Math.max(padding.right, 0)],
    [0, 0],
  ];
  return { cropped, explicitPadding };
}

/** Checks that a kernel input has the shape the forward geometry implies. */
export function assertShape(
  kernelName: string,
  inputName: string,
  actual: readonly number[],
  expected: readonly number[],
): void {
  if (actual.length !== expected.length || actual.some((size, axis) => size !== expected[axis])) {
    throw new Error(
      `${kernelName}: expected ${inputName} of shape [${expected.join(', ')}] ` +
        `for the given strides, padding and filter, but received [${actual.join(', ')}].`,
    );
  }
}

/**
 * Checks whether a convolution is a 1x1 filter at stride 1 without padding,
 * so that each output pixel is the input pixel times the filter matrix.
 */
export function isPointwise(info: ConvInfo): boolean {
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, padInfo } = info;
  return (
    filterHeight === 1 &&
    filterWidth === 1 &&
    strideHeight === 1 &&
    strideWidth === 1 &&
    dilationHeight === 1 &&
    dilationWidth === 1 &&
    padInfo.top === 0 &&
    padInfo.bottom === 0 &&
    padInfo.left === 0 &&
    padInfo.right === 0
  );
}
