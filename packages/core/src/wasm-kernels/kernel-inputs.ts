import * as tf from '@tensorflow/tfjs';

/**
 * Returns the named kernel inputs, and throws when one is missing, which
 * only a direct `runKernel` call with a wrong inputs object can cause.
 */
export function readInputs<const Name extends string>(
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  names: readonly Name[],
): Record<Name, tf.TensorInfo> {
  const found = {} as Record<Name, tf.TensorInfo>;
  for (const name of names) {
    const input = inputs[name];
    if (input === undefined) {
      throw new Error(`${kernelName}: missing input '${name}'. Expected inputs: ${names.join(', ')}.`);
    }
    found[name] = input;
  }
  return found;
}

/**
 * Wraps a kernel input in a Tensor so that tf ops accept it. The wrapper
 * shares the input's data and holds its own reference to it in `backend`,
 * so disposing the wrapper (for example at the end of a `tf.tidy`) leaves
 * the input intact.
 */
export function wrapTensorInfo<T extends tf.Tensor>(info: tf.TensorInfo, backend: tf.KernelBackend): T {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend) as T;
}
