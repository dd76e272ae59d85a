import * as tf from '@tensorflow/tfjs';

import { assertShape } from './conv-geometry.js';
import { readInputs, wrapTensorInfo } from './kernel-inputs.js';

/**
 * Square filter sizes that XNNPACK's depthwise convolution in
 * tfjs-backend-wasm 4.22.0 (SIMD) runs on its fast path. Filters of exactly
 * 4, 9 or 25 taps run about 8 times faster than other sizes (measured 5
 * against 0.6 GMAC/s with 4608 channels and a 3x3 output).
 */
const FAST_FILTER_SIZES = [2, 3, 5];

/**
 * Computes `DepthwiseConv2dNativeBackpropFilter` as one depthwise conv2d with
 * the batch folded into the channels. The input becomes
 * `[1, inHeight, inWidth, batch * channels]` and `dy` becomes the filter
 * `[outHeight, outWidth, batch * channels, multiplier]`, dilated by the
 * forward stride and strided by the forward dilation. Each output pixel is
 * one filter tap per image, summed over the batch afterwards.
 *
 * NOTE: a `dy` larger than 5x5 takes XNNPACK's slow path. At MobileNetV2
 * shapes (batch 32, 12x12, 144 channels) this kernel then takes about 15
 * times as long as the forward depthwise conv.
 */
export const depthwiseConv2dNativeBackpropFilter: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const { x, dy } = readInputs(tf.DepthwiseConv2dNativeBackpropFilter, inputs, ['x', 'dy']);
  const { strides, dilations, pad, dimRoundingMode, filterShape } =
    attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
  assertShape(tf.DepthwiseConv2dNativeBackpropFilter, 'dy', dy.shape, info.outShape);

  const { batchSize, inHeight, inWidth, outHeight, outWidth, padInfo } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const [filterHeight, filterWidth, channels, multiplier] = filterShape;
  const foldedChannels = batchSize * channels;

  // Zero taps appended to the dy filter to reach a fast size.
  const fastSize = FAST_FILTER_SIZES.find((size) => size >= outHeight && size >= outWidth);
  const isFastAlready = [4, 9, 25].includes(outHeight * outWidth);
  const kernelHeight = fastSize === undefined || isFastAlready ? outHeight : fastSize;
  const kernelWidth = fastSize === undefined || isFastAlready ? outWidth : fastSize;

  // Rows past the input that the last tap of the dy filter reads when the
  // output is filterHeight rows, and likewise for columns. It is negative
  // when 'valid' padding leaves rows unread, and the slice below drops them.
  const bottom =
    (filterHeight - 1) * dilationHeight + (kernelHeight - 1) * strideHeight + 1 - inHeight - padInfo.top;
  const right = (filterWidth - 1) * dilationWidth + (kernelWidth - 1) * strideWidth + 1 - inWidth - padInfo.left;

  const wasm = backend as tf.KernelBackend;
  return tf.tidy(() => {
    const xFolded = tf
      .transpose(wrapTensorInfo<tf.Tensor4D>(x, wasm), [1, 2, 0, 3])
      .reshape([1, inHeight, inWidth, foldedChannels]) as tf.Tensor4D;
    let dyFilter = tf
      .transpose(wrapTensorInfo<tf.Tensor4D>(dy, wasm), [1, 2, 0, 3])
      .reshape([outHeight, outWidth, foldedChannels, multiplier]) as tf.Tensor4D;
    if (kernelHeight !== outHeight || kernelWidth !== outWidth) {
      dyFilter = tf.pad(dyFilter, [
        [0, kernelHeight - outHeight],
        [0, kernelWidth - outWidth],
        [0, 0],
        [0, 0],
      ]);
    }

    const taps = tf.depthwiseConv2d(
      xFolded,
      dyFilter,
      [dilationHeight, dilationWidth],
      [
        [0, 0],
        [padInfo.top, Math.max(bottom, 0)],
        [padInfo.left, Math.max(right, 0)],
        [0, 0],
      ],
      'NHWC',
      [strideHeight, strideWidth],
    );
    const [, tapRows, tapColumns] = taps.shape;
    const trimmed =
      tapRows === filterHeight && tapColumns === filterWidth
        ? taps
        : tf.slice(taps, [0, 0, 0, 0], [1, filterHeight, filterWidth, foldedChannels * multiplier]);
    return tf.sum(trimmed.reshape([filterHeight, filterWidth, batchSize, channels, multiplier]), 2);
  });
};
