import * as tf from '@tensorflow/tfjs';

import { NCHW_TO_NHWC, NHWC_TO_NCHW, assertShape, isPointwise } from './conv-geometry.js';
import { readInputs, wrapTensorInfo } from './kernel-inputs.js';
import { convolveTransposedByPhase } from './phase-conv.js';

/**
 * Computes `Conv2DBackpropInput` (the input gradient of conv2d, and the
 * forward pass of conv2dTranspose) with stride-1 conv2ds of `dy` by the
 * filter rotated 180 degrees with its input and output channels swapped,
 * one per output phase of the stride (see phase-conv.ts). NCHW data is
 * transposed to NHWC and back, because wasm's conv2d takes only NHWC.
 */
export const conv2DBackpropInput: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const { dy, filter } = readInputs(tf.Conv2DBackpropInput, inputs, ['dy', 'filter']);
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
    attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const channelsFirst = dataFormat === 'NCHW';
  const filterShape = filter.shape as [number, number, number, number];
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  assertShape(tf.Conv2DBackpropInput, 'dy', dy.shape, info.outShape);

  const wasm = backend as tf.KernelBackend;
  if (!channelsFirst && isPointwise(info)) {
    // A 1x1 filter at stride 1 is a matrix product over every pixel: dy W^T.
    return tf.tidy(() => {
      const pixels = info.batchSize * info.inHeight * info.inWidth;
      const dyRows = tf.reshape(wrapTensorInfo(dy, wasm), [pixels, info.outChannels]);
      const weights = tf.reshape(wrapTensorInfo(filter, wasm), [info.inChannels, info.outChannels]);
      return tf.reshape(tf.matMul(dyRows, weights, false, true), inputShape);
    });
  }
  return tf.tidy(() => {
    const dyTensor = wrapTensorInfo<tf.Tensor4D>(dy, wasm);
    const dyNhwc = channelsFirst ? tf.transpose(dyTensor, NCHW_TO_NHWC) : dyTensor;
    // [filterHeight, filterWidth, outChannels, inChannels], reversed spatially.
    const rotated = tf.transpose(tf.reverse(wrapTensorInfo<tf.Tensor4D>(filter, wasm), [0, 1]), [0, 1, 3, 2]);

    const dx = convolveTransposedByPhase(dyNhwc, rotated, info, info.inChannels, (input, phaseFilter, padding) =>
      tf.conv2d(input, phaseFilter, 1, padding, 'NHWC'),
    );
    return channelsFirst ? tf.transpose(dx, NHWC_TO_NCHW) : dx;
  });
};
