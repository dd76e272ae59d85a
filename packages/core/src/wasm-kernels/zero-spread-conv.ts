import * as tf from '@tensorflow/tfjs';

import { type ConvFunc, type ConvInfo, cropToExplicitPadding } from './conv-geometry.js';

/**
 * Computes the input gradient of a convolution with geometry `info` (any
 * stride and dilation) from its output gradient `dy` (NHWC) as one stride-1
 * convolution by `conv`. `dy` gets `stride - 1` zeros after every row and
 * column and is padded so that the output has the forward input's size.
 * `rotatedFilter` is the forward filter reversed along both spatial axes.
 * Returns `[batch, inHeight, inWidth, channels]`.
 *
 * It does `strideHeight * strideWidth` times the multiply-adds of the
 * forward pass, but keeps the filter size, which matters for depthwise
 * filters: XNNPACK's fast depthwise path only takes some filter sizes.
 */
export function convolveTransposedZeroSpread(
  dy: tf.Tensor4D,
  rotatedFilter: tf.Tensor4D,
  info: ConvInfo,
  channels: number,
  conv: ConvFunc,
): tf.Tensor4D {
  const [batch, dyHeight, dyWidth, dyChannels] = dy.shape;
  const { strideHeight, strideWidth } = info;
  const spread =
    strideHeight === 1 && strideWidth === 1
      ? dy
      : (tf
          .pad(dy.reshape([batch, dyHeight, 1, dyWidth, 1, dyChannels]), [
            [0, 0],
            [0, 0],
            [0, strideHeight - 1],
            [0, 0],
            [0, strideWidth - 1],
            [0, 0],
          ])
          .reshape([batch, dyHeight * strideHeight, dyWidth * strideWidth, dyChannels]) as tf.Tensor4D);

  // The padded gradient must span inHeight + reach rows for a stride-1
  // convolution to produce inHeight rows, where reach is the dilated filter
  // height minus one, and likewise for the width.
  const reachHeight = (info.filterHeight - 1) * info.dilationHeight;
  const reachWidth = (info.filterWidth - 1) * info.dilationWidth;
  const top = reachHeight - info.padInfo.top;
  const left = reachWidth - info.padInfo.left;
  const padded = cropToExplicitPadding(spread, {
    top,
    bottom: info.inHeight + reachHeight - top - dyHeight * strideHeight,
    left,
    right: info.inWidth + reachWidth - left - dyWidth * strideWidth,
  });
  if (padded === null) {
    return tf.zeros([batch, info.inHeight, info.inWidth, channels]);
  }
  return conv(padded.cropped, rotatedFilter, padded.explicitPadding, [info.dilationHeight, info.dilationWidth]);
}
