import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  WASM_TRAINING_KERNEL_NAMES,
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
} from '../packages/core/src/wasm-kernels/index.js';

// tfjs is a dependency of @scarce/core, not of the workspace root, so load
// it (the same module instance the kernels register into) from there.
const coreRequire = createRequire(new URL('../packages/core/package.json', import.meta.url));
const tf: typeof import('@tensorflow/tfjs') = coreRequire('@tensorflow/tfjs');
const { setWasmPaths }: typeof import('@tensorflow/tfjs-backend-wasm') = coreRequire('@tensorflow/tfjs-backend-wasm');

type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Padding = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/** Max abs difference allowed between the wasm and cpu results. */
const TOLERANCE = 1e-4;

/** wasm's own Conv2DBackpropInput and BatchMatMul, read before anything replaces them. */
let wasmConv2DBackpropInput: ReturnType<typeof tf.getKernel>;
let wasmBatchMatMul: ReturnType<typeof tf.getKernel>;

before(async () => {
  wasmConv2DBackpropInput = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
  wasmBatchMatMul = tf.getKernel(tf.BatchMatMul, 'wasm');
  registerWasmTrainingKernels();

  setWasmPaths(path.dirname(coreRequire.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist/');
  // The threaded build starts workers from blob URLs, which Node cannot do.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  // Makes the engine throw when a kernel leaves intermediate tensors behind.
  tf.env().set('IS_TEST', true);
  assert.equal(await tf.setBackend('wasm'), true);
});

after(() => {
  console.log(`largest wasm-cpu difference: ${largestDifference.toExponential(2)} (tolerance ${TOLERANCE})`);
});

/** Deterministic values in [-1, 1) from a 32-bit seed (mulberry32). */
function uniformValues(size: number, seed: number): Float32Array {
  const values = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    values[i] = (((mixed ^ (mixed >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  }
  return values;
}

/** Input data shared by both backends, as a shape and values per input name. */
type Inputs = Record<string, { shape: number[]; values: Float32Array }>;

function makeInputs(shapes: Record<string, number[]>): Inputs {
  const inputs: Inputs = {};
  let seed = 1;
  for (const [name, shape] of Object.entries(shapes)) {
    inputs[name] = { shape, values: uniformValues(shape.reduce((a, b) => a * b, 1), seed++) };
  }
  return inputs;
}

interface BackendResult {
  shapes: number[][];
  values: Float32Array[];
}

/** Runs `compute` on `backendName` with tensors made from `inputs` and reads the outputs back. */
async function runOn(
  backendName: 'cpu' | 'wasm',
  inputs: Inputs,
  compute: (tensors: Record<string, Tensor>) => Tensor[],
): Promise<BackendResult> {
  assert.equal(await tf.setBackend(backendName), true);
  return tf.tidy(() => {
    const tensors: Record<string, Tensor> = {};
    for (const [name, { shape, values }] of Object.entries(inputs)) {
      tensors[name] = tf.tensor(values, shape);
    }
    const outputs = compute(tensors);
    assert.equal(tf.getBackend(), backendName);
    return {
      shapes: outputs.map((output) => output.shape),
      values: outputs.map((output) => Float32Array.from(output.dataSync())),
    };
  });
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]));
  }
  return max;
}

/** Largest difference seen by `assertMatchesCpu` in this file. */
let largestDifference = 0;

/**
 * Computes the outputs on wasm and on cpu and checks that they have the same
 * shapes and agree within TOLERANCE. Also checks that each output is not all
 * zeros, so that a kernel returning zeros cannot pass.
 */
async function assertMatchesCpu(
  shapes: Record<string, number[]>,
  compute: (tensors: Record<string, Tensor>) => Tensor[],
): Promise<void> {
  const inputs = makeInputs(shapes);
  const wasm = await runOn('wasm', inputs, compute);
  const cpu = await runOn('cpu', inputs, compute);

  assert.deepEqual(wasm.shapes, cpu.shapes);
  for (let i = 0; i < cpu.values.length; i++) {
    const difference = maxAbsDifference(wasm.values[i], cpu.values[i]);
    largestDifference = Math.max(largestDifference, difference);
    assert.ok(difference <= TOLERANCE, `output ${i}: max abs difference ${difference} > ${TOLERANCE}`);
    assert.ok(
      cpu.values[i].some((value) => Math.abs(value) > 1e-3),
      `output ${i} is all zeros, so the comparison proves nothing`,
    );
  }
}

/** Sum of `output` weighted by fixed values, so that dy is not constant. */
function weightedSum(output: Tensor): Tensor {
  const weights = tf.tensor(uniformValues(output.size, 99), output.shape);
  return tf.sum(tf.mul(output, weights));
}

function describeCase(shape: number[], filter: number[], strides: number | [number, number], pad: Padding): string {
  return `x [${shape}] filter [${filter}] strides ${JSON.stringify(strides)} pad ${JSON.stringify(pad)}`;
}

describe('registerWasmTrainingKernels', () => {
  test('registers every kernel for wasm', () => {
    for (const kernelName of WASM_TRAINING_KERNEL_NAMES) {
      assert.notEqual(tf.getKernel(kernelName, 'wasm'), undefined, kernelName);
    }
    assert.equal(WASM_TRAINING_KERNEL_NAMES.length, 10);
  });

  test('second call is harmless', () => {
    const first = tf.getKernel(tf.Conv2DBackpropFilter, 'wasm');
    const names = registerWasmTrainingKernels();
    assert.deepEqual([...names].sort(), [...WASM_TRAINING_KERNEL_NAMES].sort());
    assert.equal(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm'), first);
    assert.notEqual(tf.getKernel(tf.Conv2DBackpropInput, 'wasm'), wasmConv2DBackpropInput);
  });

  test('option keeps wasm Conv2DBackpropInput', async () => {
    const names = registerWasmTrainingKernels({ replaceConv2DBackpropInput: false });
    assert.equal(names.includes(tf.Conv2DBackpropInput), false);
    assert.equal(names.length, 9);
    assert.equal(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc, wasmConv2DBackpropInput?.kernelFunc);

    // wasm's own kernel must still run, although it was unregistered when wasm set its kernels up.
    await assertMatchesCpu({ dy: [1, 3, 3, 2], filter: [3, 3, 1, 2] }, ({ dy, filter }) => [
      tf.conv2dTranspose(dy as Tensor4D, filter as Tensor4D, [1, 6, 6, 1], 2, 'same'),
    ]);
    registerWasmTrainingKernels();
    assert.notEqual(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc, wasmConv2DBackpropInput?.kernelFunc);
  });

  test('unregister restores wasm state', () => {
    unregisterWasmTrainingKernels();
    assert.equal(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm'), undefined);
    assert.equal(tf.getKernel(tf.UnsortedSegmentSum, 'wasm'), undefined);
    assert.equal(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc, wasmConv2DBackpropInput?.kernelFunc);
    assert.equal(tf.getKernel(tf.BatchMatMul, 'wasm')?.kernelFunc, wasmBatchMatMul?.kernelFunc);

    registerWasmTrainingKernels();
    assert.notEqual(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm'), undefined);
    assert.notEqual(tf.getKernel(tf.BatchMatMul, 'wasm')?.kernelFunc, wasmBatchMatMul?.kernelFunc);
  });
});

describe('batch normalisation and reductions', () => {
  test('batchNorm with scale and offset', async () => {
    await assertMatchesCpu({ x: [2, 3, 3, 4], mean: [4], variance: [4], offset: [4], scale: [4] }, ({ x, mean, variance, offset, scale }) => [
      tf.batchNorm(x, mean, tf.add(tf.abs(variance), 0.1), offset, scale, 1e-3),
    ]);
  });

  test('batchNorm without scale or offset, broadcast statistics', async () => {
    await assertMatchesCpu({ x: [2, 3, 3, 4], mean: [1, 1, 1, 4], variance: [1, 1, 1, 4] }, ({ x, mean, variance }) => [
      tf.batchNorm(x, mean, tf.add(tf.abs(variance), 0.1), undefined, undefined, 1e-3),
    ]);
  });

  const reductions: Array<{ shape: number[]; axes: number[]; keepDims: boolean }> = [
    { shape: [4, 3, 3, 5], axes: [0, 1, 2], keepDims: false },
    { shape: [4, 3, 3, 5], axes: [1, 2], keepDims: false },
    { shape: [4, 3, 3, 5], axes: [1, 2], keepDims: true },
    { shape: [6, 5], axes: [0], keepDims: true },
    // Handled by wasm's own kernel: the last axis, and axes that are not adjacent.
    { shape: [4, 3, 5], axes: [2], keepDims: false },
    { shape: [4, 3, 5], axes: [0, 2], keepDims: false },
  ];
  for (const { shape, axes, keepDims } of reductions) {
    test(`sum, mean [${shape}] axes [${axes}] keepDims ${keepDims}`, async () => {
      await assertMatchesCpu({ x: shape }, ({ x }) => [tf.sum(x, axes, keepDims), tf.mean(x, axes, keepDims)]);
    });
  }

  test('int32 and empty sums keep their results', async () => {
    const integers = tf.tensor2d([[1, 2], [3, 4], [5, 6]], [3, 2], 'int32');
    const sum = tf.sum(integers, 0);
    assert.equal(sum.dtype, 'int32');
    assert.deepEqual(Array.from(await sum.data()), [9, 12]);
    const empty = tf.sum(tf.zeros([3, 0]), 0);
    assert.deepEqual(empty.shape, [0]);
    tf.dispose([integers, sum, empty]);
  });
});

describe('matrix products with transposed operands', () => {
  const cases: Array<{ a: number[]; b: number[]; transposeA: boolean; transposeB: boolean }> = [
    { a: [5, 3], b: [5, 4], transposeA: true, transposeB: false },
    { a: [3, 5], b: [4, 5], transposeA: false, transposeB: true },
    { a: [5, 3], b: [4, 5], transposeA: true, transposeB: true },
    { a: [2, 6, 3], b: [2, 6, 4], transposeA: true, transposeB: false },
  ];
  for (const { a, b, transposeA, transposeB } of cases) {
    test(`matMul [${a}] x [${b}] transposed ${transposeA}/${transposeB}`, async () => {
      await assertMatchesCpu({ a, b }, (inputs) => {
        const product = (left: Tensor, right: Tensor) => weightedSum(tf.matMul(left, right, transposeA, transposeB));
        return [tf.matMul(inputs.a, inputs.b, transposeA, transposeB), ...tf.grads(product)([inputs.a, inputs.b])];
      });
    });
  }

  test('fused matMul with bias and relu, transposed', async () => {
    await assertMatchesCpu({ a: [6, 4], b: [5, 6], bias: [5] }, ({ a, b, bias }) => {
      const product = (left: Tensor, right: Tensor, offset: Tensor) =>
        weightedSum(tf.fused.matMul({ a: left as Tensor2D, b: right as Tensor2D, transposeA: true, transposeB: true, bias: offset, activation: 'relu' }));
      return tf.grads(product)([a, b, bias]);
    });
  });
});

const conv2dCases: Array<{ x: number[]; filter: number[]; strides: number | [number, number]; pad: Padding }> = [
  { x: [2, 5, 6, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 6, 7, 3], filter: [2, 3, 3, 4], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 5], strides: 2, pad: 'same' },
  { x: [2, 7, 7, 2], filter: [3, 3, 2, 3], strides: 2, pad: 'valid' },
  { x: [2, 9, 8, 3], filter: [3, 4, 3, 2], strides: 2, pad: 'valid' },
  { x: [2, 9, 8, 3], filter: [4, 3, 3, 2], strides: 2, pad: 'same' },
  // One input channel: the input gradient runs all phases as one convolution.
  { x: [2, 9, 9, 1], filter: [5, 5, 1, 8], strides: 2, pad: 'same' },
  // Sixteen input channels: the input gradient runs one convolution per phase.
  { x: [2, 6, 6, 16], filter: [5, 5, 16, 4], strides: 2, pad: 'same' },
  // A filter shorter than the stride leaves phases with no taps.
  { x: [2, 7, 7, 3], filter: [1, 1, 3, 4], strides: 2, pad: 'valid' },
  { x: [2, 8, 7, 2], filter: [2, 2, 2, 3], strides: 3, pad: 'valid' },
  { x: [2, 7, 6, 2], filter: [3, 3, 2, 3], strides: [2, 1], pad: 'same' },
  { x: [2, 6, 6, 2], filter: [3, 3, 2, 3], strides: 2, pad: 1 },
  { x: [2, 6, 7, 2], filter: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  // 1x1 filters at stride 1: both gradients are one matrix product.
  { x: [2, 5, 6, 3], filter: [1, 1, 3, 4], strides: 1, pad: 'same' },
  { x: [3, 4, 4, 7], filter: [1, 1, 7, 5], strides: 1, pad: 'valid' },
  // Padding wider than the filter reach: the input gradient crops dy.
  { x: [1, 4, 5, 2], filter: [2, 2, 2, 3], strides: 1, pad: [[0, 0], [3, 0], [0, 3], [0, 0]] },
];

describe('conv2d gradients', () => {
  for (const { x, filter, strides, pad } of conv2dCases) {
    test(`conv2d ${describeCase(x, filter, strides, pad)}`, async () => {
      await assertMatchesCpu({ x, filter }, (inputs) => {
        const gradients = tf.grads((input: Tensor, weights: Tensor) =>
          weightedSum(tf.conv2d(input as Tensor4D, weights as Tensor4D, strides, pad)),
        );
        return gradients([inputs.x, inputs.filter]);
      });
    });
  }
});

const depthwiseCases: Array<{ x: number[]; filter: number[]; strides: number; pad: 'same' | 'valid' }> = [];
for (const multiplier of [1, 2, 3]) {
  for (const strides of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      depthwiseCases.push({ x: [2, 7, 7, 3], filter: [3, 3, 3, multiplier], strides, pad });
    }
  }
}
depthwiseCases.push(
  { x: [2, 6, 9, 2], filter: [2, 3, 2, 2], strides: 2, pad: 'valid' },
  { x: [2, 8, 7, 2], filter: [5, 3, 2, 1], strides: 2, pad: 'same' },
  // dy of 12x12 and 4x4: filter gradients with and without the fast-size padding.
  { x: [2, 12, 12, 2], filter: [3, 3, 2, 1], strides: 1, pad: 'same' },
  { x: [2, 4, 4, 4], filter: [3, 3, 4, 2], strides: 1, pad: 'same' },
);

describe('depthwiseConv2d gradients', () => {
  for (const { x, filter, strides, pad } of depthwiseCases) {
    test(`depthwiseConv2d ${describeCase(x, filter, strides, pad)}`, async () => {
      await assertMatchesCpu({ x, filter }, (inputs) => {
        const gradients = tf.grads((input: Tensor, weights: Tensor) =>
          weightedSum(tf.depthwiseConv2d(input as Tensor4D, weights as Tensor4D, strides, pad)),
        );
        return gradients([inputs.x, inputs.filter]);
      });
    });
  }
});

type Shape4D = [number, number, number, number];

const conv2dTransposeCases: Array<{
  x: number[];
  filter: number[];
  output: Shape4D;
  strides: number;
  pad: 'same' | 'valid';
}> = [
  { x: [2, 4, 4, 6], filter: [5, 5, 3, 6], output: [2, 8, 8, 3], strides: 2, pad: 'same' },
  { x: [2, 3, 3, 4], filter: [3, 3, 2, 4], output: [2, 7, 7, 2], strides: 2, pad: 'valid' },
  { x: [2, 5, 5, 8], filter: [4, 4, 1, 8], output: [2, 10, 10, 1], strides: 2, pad: 'same' },
  { x: [2, 3, 4, 4], filter: [5, 5, 16, 4], output: [2, 6, 8, 16], strides: 2, pad: 'same' },
  { x: [2, 5, 4, 3], filter: [3, 2, 2, 3], output: [2, 5, 4, 2], strides: 1, pad: 'same' },
];

describe('conv2dTranspose', () => {
  for (const { x, filter, output, strides, pad } of conv2dTransposeCases) {
    const name = `${describeCase(x, filter, strides, pad)} output [${output}]`;
    test(`forward ${name}`, async () => {
      await assertMatchesCpu({ x, filter }, (inputs) => [
        tf.conv2dTranspose(inputs.x as Tensor4D, inputs.filter as Tensor4D, output, strides, pad),
      ]);
    });

    test(`gradients ${name}`, async () => {
      await assertMatchesCpu({ x, filter }, (inputs) => {
        const gradients = tf.grads((input: Tensor, weights: Tensor) =>
          weightedSum(
            tf.conv2dTranspose(input as Tensor4D, weights as Tensor4D, output, strides, pad),
          ),
        );
        return gradients([inputs.x, inputs.filter]);
      });
    });
  }
});

describe('kernels called directly', () => {
  /** Runs one kernel through the engine, as ops do. */
  const runKernel = (kernelName: string, inputs: Record<string, Tensor>, attrs: Record<string, unknown>) =>
    tf.engine().runKernel(kernelName, inputs, attrs as never) as Tensor;

  test('Conv2DBackpropInput NCHW', async () => {
    await assertMatchesCpu({ dy: [2, 4, 3, 3], filter: [3, 3, 2, 4] }, (inputs) => [
      runKernel(tf.Conv2DBackpropInput, inputs, {
        strides: 2,
        pad: 'same',
        dataFormat: 'NCHW',
        inputShape: [2, 2, 6, 5],
      }),
    ]);
  });

  test('Conv2DBackpropFilter NCHW', async () => {
    await assertMatchesCpu({ x: [2, 2, 6, 5], dy: [2, 4, 3, 3] }, (inputs) => [
      runKernel(tf.Conv2DBackpropFilter, inputs, {
        strides: 2,
        pad: 'same',
        dataFormat: 'NCHW',
        filterShape: [3, 3, 2, 4],
      }),
    ]);
  });

  test('Conv2DBackpropFilter ceil rounding', async () => {
    // With pad 1 and 'ceil', the last window reads a row past the padding.
    await assertMatchesCpu({ x: [2, 6, 6, 2], dy: [2, 4, 4, 3] }, (inputs) => [
      runKernel(tf.Conv2DBackpropFilter, inputs, {
        strides: 2,
        pad: 1,
        dataFormat: 'NHWC',
        dimRoundingMode: 'ceil',
        filterShape: [3, 3, 2, 3],
      }),
    ]);
  });

  test('Conv2DBackpropInput ceil rounding', async () => {
    await assertMatchesCpu({ dy: [2, 4, 4, 3], filter: [3, 3, 2, 3] }, (inputs) => [
      runKernel(tf.Conv2DBackpropInput, inputs, {
        strides: 2,
        pad: 1,
        dataFormat: 'NHWC',
        dimRoundingMode: 'ceil',
        inputShape: [2, 6, 6, 2],
      }),
    ]);
  });

  // tfjs-backend-cpu 4.22.0 gives wrong results in these two kernels with
  // dilations above 1, so they are checked against a direct summation.
  for (const dilations of [[2, 2], [2, 3], [1, 2]] as const) {
    test(`depthwise gradients dilations [${dilations}]`, async () => {
      const [batch, height, width, channels, multiplier, filterSize] = [2, 7, 8, 3, 2, 3];
      const outHeight = height - (filterSize - 1) * dilations[0];
      const outWidth = width - (filterSize - 1) * dilations[1];
      const inputs = makeInputs({
        x: [batch, height, width, channels],
        filter: [filterSize, filterSize, channels, multiplier],
        dy: [batch, outHeight, outWidth, channels * multiplier],
      });

      const expectedFilter = new Float32Array(inputs.filter.values.length);
      const expectedInput = new Float32Array(inputs.x.values.length);
      for (let n = 0; n < batch; n++) {
        for (let row = 0; row < outHeight; row++) {
          for (let column = 0; column < outWidth; column++) {
            for (let i = 0; i < filterSize; i++) {
              for (let j = 0; j < filterSize; j++) {
                for (let c = 0; c < channels; c++) {
                  const inRow = row + i * dilations[0];
                  const inColumn = column + j * dilations[1];
                  const xIndex = ((n * height + inRow) * width + inColumn) * channels + c;
                  const dyPixel = ((n * outHeight + row) * outWidth + column) * channels * multiplier;
                  for (let m = 0; m < multiplier; m++) {
                    const gradient = inputs.dy.values[dyPixel + c * multiplier + m];
                    const filterIndex = ((i * filterSize + j) * channels + c) * multiplier + m;
                    expectedFilter[filterIndex] += inputs.x.values[xIndex] * gradient;
                    expectedInput[xIndex] += inputs.filter.values[filterIndex] * gradient;
                  }
                }
              }
            }
          }
        }
      }

      const attrs = { strides: 1, pad: 'valid', dilations };
      const wasm = await runOn('wasm', inputs, ({ x, filter, dy }) => [
        runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, { ...attrs, filterShape: filter.shape }),
        runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter }, { ...attrs, inputShape: x.shape }),
      ]);
      assert.deepEqual(wasm.shapes, [inputs.filter.shape, inputs.x.shape]);
      assert.ok(maxAbsDifference(wasm.values[0], expectedFilter) <= TOLERANCE);
      assert.ok(maxAbsDifference(wasm.values[1], expectedInput) <= TOLERANCE);
    });
  }

  test('rejects dy of the wrong shape', async () => {
    assert.equal(await tf.setBackend('wasm'), true);
    tf.tidy(() => {
      const x = tf.zeros([1, 6, 6, 2]);
      const dy = tf.zeros([1, 5, 5, 3]);
      assert.throws(
        () =>
          runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
            strides: 2,
            pad: 'same',
            dataFormat: 'NHWC',
            filterShape: [3, 3, 2, 3],
          }),
        /Conv2DBackpropFilter: expected dy of shape \[1, 3, 3, 3\].*received \[1, 5, 5, 3\]/,
      );
    });
  });
});

describe('UnsortedSegmentSum', () => {
  test('gather gradient, repeated indices', async () => {
    await assertMatchesCpu({ params: [6, 4] }, ({ params }) => {
      const indices = tf.tensor1d([0, 2, 2, 5, 1, 2], 'int32');
      return [tf.grad((table: Tensor) => weightedSum(tf.gather(table, indices)))(params)];
    });
  });

  test('gather gradient, axis 1 and 2-D indices', async () => {
    await assertMatchesCpu({ params: [3, 5, 2] }, ({ params }) => {
      const indices = tf.tensor2d([[4, 0], [4, 4]], [2, 2], 'int32');
      return [tf.grad((table: Tensor) => weightedSum(tf.gather(table, indices, 1)))(params)];
    });
  });

  test('direct, repeated and out-of-range ids', async () => {
    const ids = [0, -1, 3, 3, 9, 1, 4];
    await assertMatchesCpu({ x: [7, 3] }, ({ x }) => [tf.unsortedSegmentSum(x, tf.tensor1d(ids, 'int32'), 4)]);

    assert.equal(await tf.setBackend('wasm'), true);
    const powersOfTwo = [[1], [2], [4], [8], [16], [32], [64]];
    const sums = tf.tidy(() =>
      tf.unsortedSegmentSum(tf.tensor2d(powersOfTwo), tf.tensor1d(ids, 'int32'), 4).arraySync(),
    );
    // Rows with ids -1, 9 and 4 (values 2, 16, 64) are dropped.
    assert.deepEqual(sums, [[1], [32], [0], [12]]);
  });

  test('int32 data keeps its dtype', async () => {
    assert.equal(await tf.setBackend('wasm'), true);
    tf.tidy(() => {
      const sums = tf.unsortedSegmentSum(
        tf.tensor2d([[16777217, 1], [1, 2], [3, 4]], [3, 2], 'int32'),
        tf.tensor1d([1, 1, 0], 'int32'),
        2,
      );
      assert.equal(sums.dtype, 'int32');
      // 16777217 has no float32 representation, so a float32 sum would give 16777216.
      assert.deepEqual(sums.arraySync(), [[3, 4], [16777218, 3]]);
    });
  });

  test('empty data gives zeros', async () => {
    assert.equal(await tf.setBackend('wasm'), true);
    tf.tidy(() => {
      const sums = tf.unsortedSegmentSum(tf.zeros([0, 3]), tf.tensor1d([], 'int32'), 2);
      assert.deepEqual(sums.shape, [2, 3]);
      assert.deepEqual(sums.arraySync(), [[0, 0, 0], [0, 0, 0]]);
    });
  });
});

describe('memory', () => {
  test('tensor count flat across steps', async () => {
    assert.equal(await tf.setBackend('wasm'), true);
    const x = tf.tensor(uniformValues(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]) as Tensor4D;
    const filter = tf.tensor(uniformValues(3 * 3 * 3 * 4, 2), [3, 3, 3, 4]) as Tensor4D;
    const depthwiseFilter = tf.tensor(uniformValues(3 * 3 * 3 * 2, 3), [3, 3, 3, 2]) as Tensor4D;
    const table = tf.tensor(uniformValues(10 * 4, 4), [10, 4]);
    const indices = tf.tensor1d([1, 1, 7], 'int32');
    const step = () =>
      tf.tidy(() => {
        const loss = (input: Tensor, weights: Tensor, depthwiseWeights: Tensor, embedding: Tensor) => {
          const image = input as Tensor4D;
          const transposeWeights = weights.transpose([0, 1, 3, 2]) as Tensor4D;
          return tf.addN([
            weightedSum(tf.conv2d(image, weights as Tensor4D, 2, 'same')),
            weightedSum(tf.depthwiseConv2d(image, depthwiseWeights as Tensor4D, 2, 'same')),
            weightedSum(tf.conv2dTranspose(image, transposeWeights, [2, 16, 16, 4], 2, 'same')),
            weightedSum(tf.gather(embedding, indices)),
          ]);
        };
        const gradients = tf.grads(loss)([x, filter, depthwiseFilter, table]);
        return gradients.map((gradient) => gradient.sum().dataSync()[0]);
      });

    step();
    const tensorsBefore = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const sums = step();
      assert.equal(sums.length, 4);
    }
    assert.equal(tf.memory().numTensors, tensorsBefore);
    tf.dispose([x, filter, depthwiseFilter, table, indices]);
  });

});
