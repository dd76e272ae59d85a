import * as tf from '@tensorflow/tfjs';

import { fusedBatchNorm } from './batch-norm.js';
import { conv2DBackpropFilter } from './conv2d-backprop-filter.js';
import { conv2DBackpropInput } from './conv2d-backprop-input.js';
import { depthwiseConv2dNativeBackpropFilter } from './depthwise-backprop-filter.js';
import { depthwiseConv2dNativeBackpropInput } from './depthwise-backprop-input.js';
import { reduceByMatMul } from './reduce-by-mat-mul.js';
import { unsortedSegmentSum } from './unsorted-segment-sum.js';
import { uprightMatMul } from './upright-mat-mul.js';

const BACKEND = 'wasm';

/** Kernels that tfjs-backend-wasm 4.22.0 does not have, and that training needs. */
const MISSING_KERNELS: ReadonlyMap<string, tf.KernelFunc> = new Map([
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropFilter],
  [tf.DepthwiseConv2dNativeBackpropInput, depthwiseConv2dNativeBackpropInput],
  [tf.UnsortedSegmentSum, unsortedSegmentSum],
]);

/** Kernels that wasm has but runs slowly where training needs them; each replacement gets wasm's own kernel. */
const SLOW_KERNELS: ReadonlyMap<string, (own: tf.KernelFunc) => tf.KernelFunc> = new Map([
  [tf.Conv2DBackpropInput, () => conv2DBackpropInput],
  [tf.BatchMatMul, (own: tf.KernelFunc) => uprightMatMul(tf.BatchMatMul, own)],
  [tf._FusedMatMul, (own: tf.KernelFunc) => uprightMatMul(tf._FusedMatMul, own)],
  [tf.FusedBatchNorm, () => fusedBatchNorm],
  [tf.Sum, (own: tf.KernelFunc) => reduceByMatMul(tf.Sum, own)],
  [tf.Mean, (own: tf.KernelFunc) => reduceByMatMul(tf.Mean, own)],
]);

/** Names of every kernel this module can register for the wasm backend. */
export const WASM_TRAINING_KERNEL_NAMES: readonly string[] = [...MISSING_KERNELS.keys(), ...SLOW_KERNELS.keys()];

/** Options for `registerWasmTrainingKernels`. */
export interface RegisterWasmTrainingKernelsOptions {
  /**
   * Whether to replace wasm's own `Conv2DBackpropInput` (the input gradient
   * of conv2d and the forward pass of conv2dTranspose), a scalar C++ loop, with
   * this module's, which runs on wasm's conv2d. Default: true.
   */
  replaceConv2DBackpropInput?: boolean;
}

/** wasm's own kernels while this module's replace them, with the replacements. */
const replaced = new Map<string, { own: tf.KernelConfig | undefined; replacement: tf.KernelFunc }>();

/** Checks whether `kernelFunc` is the kernel registered for wasm under `kernelName`. */
function isRegistered(kernelName: string, kernelFunc: tf.KernelFunc | undefined): boolean {
  return kernelFunc !== undefined && tf.getKernel(kernelName, BACKEND)?.kernelFunc === kernelFunc;
}

/**
 * Registers gradient kernels for the wasm backend so that conv2d,
 * conv2dTranspose, depthwiseConv2d and embedding lookups (gather) can be
 * trained on it, and replaces wasm kernels that are slow where training
 * needs them: `Conv2DBackpropInput` (unless `replaceConv2DBackpropInput` is
 * false), matrix products with a transposed operand, `FusedBatchNorm`, and
 * `Sum` and `Mean` over leading axes. Missing kernels
 * that some other code has already registered for wasm are left in place.
 * Calling it again is harmless, and it may be called before or after
 * `tf.setBackend('wasm')`.
 *
 * `@tensorflow/tfjs-backend-wasm` must be imported first: it registers its
 * own kernels when it loads, and would otherwise overwrite the replaced
 * ones. This module does not import it, because loading it makes wasm the
 * default backend before it is initialised.
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
  for (const [kernelName, makeReplacement] of SLOW_KERNELS) {
    if (kernelName === tf.Conv2DBackpropInput && !replaceConv2DBackpropInput) {
      restoreKernel(kernelName);
    } else {
      replaceKernel(kernelName, makeReplacement);
    }
  }

  return WASM_TRAINING_KERNEL_NAMES.filter((kernelName) => isRegistered(kernelName, ownKernelFunc(kernelName)));
}

/**
 * Removes the kernels `registerWasmTrainingKernels` registered and restores
 * the wasm kernels it replaced. Kernels registered by other code are left
 * in place.
 */
export function unregisterWasmTrainingKernels(): void {
  for (const [kernelName, kernelFunc] of MISSING_KERNELS) {
    if (isRegistered(kernelName, kernelFunc)) {
      tf.unregisterKernel(kernelName, BACKEND);
    }
  }
  for (const kernelName of SLOW_KERNELS.keys()) {
    restoreKernel(kernelName);
  }
}

function ownKernelFunc(kernelName: string): tf.KernelFunc | undefined {
  return MISSING_KERNELS.get(kernelName) ?? replaced.get(kernelName)?.replacement;
}

function replaceKernel(kernelName: string, makeReplacement: (own: tf.KernelFunc) => tf.KernelFunc): void {
  if (isRegistered(kernelName, replaced.get(kernelName)?.replacement)) {
    return;
  }
  const own = tf.getKernel(kernelName, BACKEND);
  if (own === undefined && kernelName !== tf.Conv2DBackpropInput) {
    return;
  }
  if (own !== undefined) {
    tf.unregisterKernel(kernelName, BACKEND);
  }
  const replacement = makeReplacement(own?.kernelFunc ?? (() => {
    throw new Error(`${kernelName}: wasm has no kernel of its own to call.`);
  }));
  // wasm's setupFunc binds, when the backend starts, the C++ function that its kernelFunc calls.
  tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc: replacement, setupFunc: own?.setupFunc, disposeFunc: own?.disposeFunc });
  replaced.set(kernelName, { own, replacement });
}

function restoreKernel(kernelName: string): void {
  const entry = replaced.get(kernelName);
  if (entry === undefined || !isRegistered(kernelName, entry.replacement)) {
    return;
  }
  tf.unregisterKernel(kernelName, BACKEND);
  replaced.delete(kernelName);
  if (entry.own === undefined) {
    return;
  }
  tf.registerKernel(entry.own);
  // The engine runs a kernel's setupFunc when the backend is selected, which
  // may have happened while the kernel was unregistered.
  const backend = tf.engine().registry[BACKEND];
  if (backend !== undefined) {
    entry.own.setupFunc?.(backend);
  }
}
