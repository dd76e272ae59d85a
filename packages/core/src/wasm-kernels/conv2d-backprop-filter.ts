import * as tf from '@tensorflow/tfjs';

import { assertShape, isPointwise } from './conv-geometry.js';
import { readInputs, wrapTensorInfo } from './kernel-inputs.js';

/**
 * Computes `Conv2DBackpropFilter` (the filter gradient of conv2d) as one
 * conv2d. The input, with batch and channels swapped, is convolved by `dy`
 * used as a filter: `[outHeight, outWidth, batch, outChannels]`, dilated by
 * the forward stride so that it reads the input positions the forward pass
 * read. Each output pixel of that convolution is one filter tap.
 */
export const conv2DBackpropFilter: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const { x, dy } = readInputs(tf.Conv2DBackpropFilter, inputs, ['x', 'dy']);
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const channelsFirst = dataFormat === 'NCHW';
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  assertShape(tf.Conv2DBackpropFilter, 'dy', dy.shape, info.outShape);

  const { filterHeight, filterWidth, strideHeight, strideWidth, padInfo } = info;
  const wasm = backend as tf.KernelBackend;
  if (!channelsFirst && isPointwise(info)) {
    // A 1x1 filter at stride 1 is a matrix product over every pixel: x^T dy.
    return tf.tidy(() => {
      const pixels = info.batchSize * info.inHeight * info.inWidth;
      const xRows = tf.reshape(wrapTensorInfo(x, wasm), [pixels, info.inChannels]);
      const dyRows = tf.reshape(wrapTensorInfo(dy, wasm), [pixels, info.outChannels]);
      return tf.reshape(tf.matMul(xRows, dyRows, true, false), filterShape);
    });
  }

  // Rows past the input that the last forward window reads (negative when
  // 'valid' padding leaves rows unread). Padding by that many keeps the
  // output at exactly filterHeight rows; unread rows are sliced off below.
  const bottom = filterHeight + (info.outHeight - 1) * strideHeight - info.inHeight - padInfo.top;
  const right = filterWidth + (info.outWidth - 1) * strideWidth - info.inWidth - padInfo.left;

  return tf.tidy(() => {
    const xTensor = wrapTensorInfo<tf.Tensor4D>(x, wasm);
    const dyTensor = wrapTensorInfo<tf.Tensor4D>(dy, wasm);
    // [inChannels, inHeight, inWidth, batch]
    const xSwapped = tf.transpose(xTensor, channelsFirst ? [1, 2, 3, 0] : [3, 1, 2, 0]);
    // [outHeight, outWidth, batch, outChannels]
    const dyFilter = tf.transpose(dyTensor, channelsFirst ? [2, 3, 0, 1] : [1, 2, 0, 3]);

    const taps = tf.conv2d(
      xSwapped,
      dyFilter,
      1,
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
        : tf.slice(taps, [0, 0, 0, 0], [info.inChannels, filterHeight, filterWidth, info.outChannels]);
    return tf.transpose(trimmed, [1, 2, 0, 3]);
  });
};
