export {
  WASM_TRAINING_KERNEL_NAMES,
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
  type RegisterWasmTrainingKernelsOptions,
} from './register.js';
