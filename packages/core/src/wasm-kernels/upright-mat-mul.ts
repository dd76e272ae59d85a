import * as tf from '@tensorflow/tfjs';

import { readInputs, wrapTensorInfo } from './kernel-inputs.js';

/**
 * Wraps wasm's `BatchMatMul` or `_FusedMatMul` so that a transposed operand
 * is transposed into a new tensor first and wasm's kernel then multiplies
 * upright operands. wasm multiplies a transposed operand in place about 13
 * times slower (70 ms against 5 ms for 112x512 by 512x1280), and every
 * dense layer's gradient multiplies by one.
 */
export function uprightMatMul(kernelName: string, own: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) {
      return own({ inputs, attrs, backend });
    }
    const { a, b } = readInputs(kernelName, inputs, ['a', 'b']);
    const wasm = backend as tf.KernelBackend;
    const created: tf.Tensor[] = [];
    const upright = (info: tf.TensorInfo, transposed: boolean): tf.TensorInfo => {
      if (!transposed) return info;
      const wrapped = wrapTensorInfo<tf.Tensor>(info, wasm);
      const axes = info.shape.map((_, axis) => axis);
      axes.push(...axes.splice(-2).reverse());
      const swapped = tf.transpose(wrapped, axes);
      created.push(wrapped, swapped);
      return swapped;
    };
    try {
      return own({
        inputs: { ...inputs, a: upright(a, transposeA), b: upright(b, transposeB) },
        attrs: { ...attrs, transposeA: false, transposeB: false },
        backend,
      });
    } finally {
      created.forEach((tensor) => tensor.dispose());
    }
  };
}
