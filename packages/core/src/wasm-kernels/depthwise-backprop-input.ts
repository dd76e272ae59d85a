import * as tf from '@tensorflow/tfjs';

import { assertShape } from './conv-geometry.js';
import { readInputs, wrapTensorInfo } from './kernel-inputs.js';
import { convolveTransposedZeroSpread } from './zero-spread-conv.js';

/**
 * Computes `DepthwiseConv2dNativeBackpropInput` as one stride-1 depthwise
 * conv2d of the zero-spread `dy` by the rotated filter, taken as
 * `[filterHeight, filterWidth, channels * multiplier, 1]`, followed by a sum
 * over the channel multiplier.
 */
export const depthwiseConv2dNativeBackpropInput: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const { dy, filter } = readInputs(tf.DepthwiseConv2dNativeBackpropInput, inputs, ['dy', 'filter']);
  const { strides, dilations, pad, dimRoundingMode, inputShape } =
    attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const [filterHeight, filterWidth, channels, multiplier] = filter.shape as [number, number, number, number];
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    [filterHeight, filterWidth, channels, multiplier],
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
  assertShape(tf.DepthwiseConv2dNativeBackpropInput, 'dy', dy.shape, info.outShape);

  const wasm = backend as tf.KernelBackend;
  return tf.tidy(() => {
    // [filterHeight, filterWidth, channels * multiplier, 1], reversed spatially.
    const rotated = tf
      .reverse(wrapTensorInfo<tf.Tensor4D>(filter, wasm), [0, 1])
      .reshape([filterHeight, filterWidth, channels * multiplier, 1]) as tf.Tensor4D;

    // [batch, inHeight, inWidth, channels * multiplier]
    const dxPerOutput = convolveTransposedZeroSpread(
      wrapTensorInfo<tf.Tensor4D>(dy, wasm),
      rotated,
      info,
      channels * multiplier,
      (input, rotatedFilter, padding, dilations) =>
        tf.depthwiseConv2d(input, rotatedFilter, 1, padding, 'NHWC', dilations),
    );
    if (multiplier === 1) {
      return dxPerOutput;
    }
    return tf.sum(dxPerOutput.reshape([info.batchSize, info.inHeight, info.inWidth, channels, multiplier]), 4);
  });
};
