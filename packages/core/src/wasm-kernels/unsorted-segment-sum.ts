import * as tf from '@tensorflow/tfjs';

import { readInputs, wrapTensorInfo } from './kernel-inputs.js';

/**
 * Computes `UnsortedSegmentSum` with one scatter-add (wasm's ScatterNd, which
 * sums rows sent to the same index), in time proportional to the size of
 * `x`. Rows with a negative or out-of-range id go to an extra segment that is
 * sliced off, so they contribute nothing, as in the cpu backend. The ids may
 * have any rank that matches the leading axes of `x`, and all of those axes
 * are summed. Supports float32 and int32 data; the output has `x`'s dtype.
 */
export const unsortedSegmentSum: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const { x, segmentIds } = readInputs(tf.UnsortedSegmentSum, inputs, ['x', 'segmentIds']);
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  const idsShape = segmentIds.shape;
  const leadingShape = x.shape.slice(0, idsShape.length);
  if (leadingShape.length !== idsShape.length || leadingShape.some((size, axis) => size !== idsShape[axis])) {
    throw new Error(
      `UnsortedSegmentSum: expected segmentIds of shape [${leadingShape.join(', ')}] ` +
        `(the leading axes of x [${x.shape.join(', ')}]) but received [${idsShape.join(', ')}].`,
    );
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: expected x of dtype float32 or int32 but received ${x.dtype}.`);
  }

  const idCount = idsShape.reduce((product, size) => product * size, 1);
  const rowShape = x.shape.slice(idsShape.length);
  const rowSize = rowShape.reduce((product, size) => product * size, 1);
  if (idCount === 0 || rowSize === 0) {
    return tf.zeros([numSegments, ...rowShape], x.dtype);
  }

  const wasm = backend as tf.KernelBackend;
  return tf.tidy(() => {
    const ids = wrapTensorInfo<tf.Tensor>(segmentIds, wasm).reshape([idCount]);
    const intIds = ids.dtype === 'int32' ? ids : ids.toInt();
    const inRange = tf.logicalAnd(tf.greaterEqual(intIds, 0), tf.less(intIds, numSegments));
    const targets = tf.where(inRange, intIds, tf.scalar(numSegments, 'int32')).reshape([idCount, 1]);

    const rows = wrapTensorInfo<tf.Tensor>(x, wasm).reshape([idCount, rowSize]);
    const sums = tf.scatterND(targets, rows, [numSegments + 1, rowSize]);
    return tf.slice(sums, [0, 0], [numSegments, rowSize]).reshape([numSegments, ...rowShape]);
  });
};
