import * as tf from '@tensorflow/tfjs';

import { conv2DBackpropFilter } from './conv2d-backprop-filter.js';
import { conv2DBackpropInput } from './conv2d-backprop-input.js';
import { depthwiseConv2dNativeBackpropFilter } from './depthwise-backprop-filter.js';
import { depthwiseConv2dNativeBackpropInput } from './depthwise-backprop-input.js';
import { unsortedSegmentSum } from './unsorted-segment-sum.js';

const BACKEND = 'wasm';

/** Kernels that tfjs-backend-wasm 4.22.0 does not have, and that training needs. */
const MISSING_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map([
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropInput, depthwiseConv2dNativeBackpropInput],
  [tf.UnsortedSegmentSum, unsortedSegmentSum],
]);

/** Names of every kernel this module can register for the wasm backend. */
export const WASM_TRAINING_KERNEL_NAMES: readonly string[] = [...MISSING_KERNELS.keys(), tf.Conv2DBackpropInput];

/** Options for `registerWasmTrainingKernels`. */
export interface RegisterWasmTrainingKernelsOptions {
  /**
   * Whether to replace wasm's own `Conv2DBackpropInput` (the input gradient
   * of conv2d and the forward pass of conv2dTranspose), a scalar C++ loop, with
   * this module's, which runs on wasm's conv2d. Default: true.
   */
  replaceConv2DBackpropInput?: boolean;
}

/** wasm's own Conv2DBackpropInput, kept while this module's replaces it. */
let replacedConv2DBackpropInput: tf.KernelConfig | undefined;

/** Checks whether `kernelFunc` is the kernel registered for wasm under `kernelName`. */
function isOwnKernel(kernelName: string, kernelFunc: tf.KernelFunc): boolean {
  return tf.getKernel(kernelName, BACKEND)?.kernelFunc === kernelFunc;
}

/**
 * Registers gradient kernels for the wasm backend so that conv2d,
 * conv2dTranspose, depthwiseConv2d and embedding lookups (gather) can be
 * trained on it. Kernels that some other code has already registered for
 * wasm are left in place, except `Conv2DBackpropInput`, which is replaced
 * unless `replaceConv2DBackpropInput` is false. Calling it again is harmless, and it
 * may be called before or after `tf.setBackend('wasm')`.
 *
 * `@tensorflow/tfjs-backend-wasm` must be imported first: it registers its
 * own kernels when it loads, and would otherwise overwrite the replaced
 * `Conv2DBackpropInput`. This module does not import it, because loading it
 * makes wasm the default backend before it is initialised.
 *
 * Returns the names of the kernels this module now provides for wasm.
 */
export function registerWasmTrainingKernels(options: RegisterWasmTrainingKernelsOptions = {}): string[] {
  const replaceConv2DBackpropInput = options.replaceConv2DBackpropInput ?? true;
  if (tf.findBackendFactory(BACKEND) === null) {
    throw new Error(
      "registerWasmTrainingKernels: the 'wasm' backend is not registered. " +
        "Import '@tensorflow/tfjs-backend-wasm' before calling it.",
    );
  }

  for (const [kernelName, kernelFunc] of MISSING_KERNELS) {
    if (tf.getKernel(kernelName, BACKEND) === undefined) {
      tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
    }
  }

  if (replaceConv2DBackpropInput && !isOwnKernel(tf.Conv2DBackpropInput, conv2DBackpropInput)) {
    const existing = tf.getKernel(tf.Conv2DBackpropInput, BACKEND);
    if (existing !== undefined) {
      replacedConv2DBackpropInput = existing;
      tf.unregisterKernel(tf.Conv2DBackpropInput, BACKEND);
    }
    tf.registerKernel({ kernelName: tf.Conv2DBackpropInput, backendName: BACKEND, kernelFunc: conv2DBackpropInput });
  } else if (!replaceConv2DBackpropInput) {
    restoreConv2DBackpropInput();
  }

  return WASM_TRAINING_KERNEL_NAMES.filter((kernelName) => isOwnKernel(kernelName, ownKernelFunc(kernelName)));
}

/**
 * Removes the kernels `registerWasmTrainingKernels` registered and restores
 * wasm's own `Conv2DBackpropInput`. Kernels registered by other code are
 * left in place.
 */
export function unregisterWasmTrainingKernels(): void {
  for (const [kernelName, kernelFunc] of MISSING_KERNELS) {
    if (isOwnKernel(kernelName, kernelFunc)) {
      tf.unregisterKernel(kernelName, BACKEND);
    }
  }
  restoreConv2DBackpropInput();
}

function ownKernelFunc(kernelName: string): tf.KernelFunc {
  return MISSING_KERNELS.get(kernelName) ?? conv2DBackpropInput;
}

function restoreConv2DBackpropInput(): void {
  if (!isOwnKernel(tf.Conv2DBackpropInput, conv2DBackpropInput)) {
    return;
  }
  tf.unregisterKernel(tf.Conv2DBackpropInput, BACKEND);
  if (replacedConv2DBackpropInput === undefined) {
    return;
  }

  tf.registerKernel(replacedConv2DBackpropInput);
  // The engine runs a kernel's setupFunc when the backend is selected, which
  // may have happened while the kernel was unregistered.
  const backend = tf.engine().registry[BACKEND];
  if (backend !== undefined) {
    replacedConv2DBackpropInput.setupFunc?.(backend);
  }
  replacedConv2DBackpropInput = undefined;
}
