/**
 * Times the wasm training kernels at the shapes the DCGAN (28 px, batch 64)
 * and MobileNetV2 fine-tuning (64-96 px, batch 32) run, against the cpu
 * backend and, for Conv2DBackpropInput, against wasm's own kernel.
 *
 *   node --import tsx scripts/bench-wasm-kernels.ts [--filter TEXT] [--min-ms MS] [--skip-cpu]
 *
 * --filter keeps the cases whose name contains TEXT. --min-ms sets how long
 * each case is timed (default 1000 ms). --skip-cpu leaves out the cpu
 * backend, whose filter gradients take minutes per call at these shapes.
 * Each row prints as its case finishes, then all rows print as a Markdown
 * table. The last column compares this module's result with the cpu
 * backend's.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { registerWasmTrainingKernels } from '../packages/core/src/wasm-kernels/index.js';

// tfjs is a dependency of @scarce/core, not of the workspace root, so load
// it (the same module instance the kernels use) from there.
const coreRequire = createRequire(new URL('../packages/core/package.json', import.meta.url));
const tf: typeof import('@tensorflow/tfjs') = coreRequire('@tensorflow/tfjs');
const { setWasmPaths }: typeof import('@tensorflow/tfjs-backend-wasm') = coreRequire('@tensorflow/tfjs-backend-wasm');

type Tensor = import('@tensorflow/tfjs').Tensor;
type NamedAttrMap = import('@tensorflow/tfjs').NamedAttrMap;

interface BenchCase {
  name: string;
  kernelName: string;
  inputs: Record<string, { shape: number[]; dtype?: 'float32' | 'int32'; maxInt?: number }>;
  attrs: Record<string, unknown>;
}

const MAX_RUNS = 20;

function dcganCases(): BenchCase[] {
  const batch = 64;
  const layers = [
    { name: 'conv 1->64 5x5 s2 28->14', x: [batch, 28, 28, 1], filter: [5, 5, 1, 64], dy: [batch, 14, 14, 64] },
    { name: 'conv 64->128 5x5 s2 14->7', x: [batch, 14, 14, 64], filter: [5, 5, 64, 128], dy: [batch, 7, 7, 128] },
  ];
  const convTransposes = [
    { name: 'convT 128->64 5x5 s2 7->14', x: [batch, 7, 7, 128], filter: [5, 5, 64, 128], out: [batch, 14, 14, 64] },
    { name: 'convT 64->1 5x5 s2 14->28', x: [batch, 14, 14, 64], filter: [5, 5, 1, 64], out: [batch, 28, 28, 1] },
  ];
  const common = { strides: 2, pad: 'same', dataFormat: 'NHWC' };

  const cases: BenchCase[] = [];
  for (const layer of layers) {
    cases.push({
      name: `DCGAN ${layer.name} filter grad`,
      kernelName: tf.Conv2DBackpropFilter,
      inputs: { x: { shape: layer.x }, dy: { shape: layer.dy } },
      attrs: { ...common, filterShape: layer.filter },
    });
    cases.push({
      name: `DCGAN ${layer.name} input grad`,
      kernelName: tf.Conv2DBackpropInput,
      inputs: { dy: { shape: layer.dy }, filter: { shape: layer.filter } },
      attrs: { ...common, inputShape: layer.x },
    });
  }
  for (const layer of convTransposes) {
    cases.push({
      name: `DCGAN ${layer.name} forward`,
      kernelName: tf.Conv2DBackpropInput,
      inputs: { dy: { shape: layer.x }, filter: { shape: layer.filter } },
      attrs: { ...common, inputShape: layer.out },
    });
    cases.push({
      name: `DCGAN ${layer.name} filter grad`,
      kernelName: tf.Conv2DBackpropFilter,
      inputs: { x: { shape: layer.out }, dy: { shape: layer.x } },
      attrs: { ...common, filterShape: layer.filter },
    });
  }
  return cases;
}

function mobileNetCases(): BenchCase[] {
  const batch = 32;
  const layers = [
    { channels: 96, size: 12, stride: 2 },
    { channels: 144, size: 12, stride: 1 },
    { channels: 192, size: 12, stride: 2 },
    { channels: 384, size: 6, stride: 1 },
    { channels: 576, size: 6, stride: 2 },
    { channels: 160, size: 4, stride: 1 },
    { channels: 960, size: 3, stride: 1 },
    { channels: 960, size: 2, stride: 1 },
  ];

  const cases: BenchCase[] = [];
  for (const { channels, size, stride } of layers) {
    const outSize = Math.ceil(size / stride);
    const x = [batch, size, size, channels];
    const dy = [batch, outSize, outSize, channels];
    const filter = [3, 3, channels, 1];
    const attrs = { strides: stride, pad: 'same', dilations: 1 };
    const name = `MobileNetV2 dw 3x3 s${stride} ${channels}ch ${size}x${size}`;
    cases.push({
      name: `${name} filter grad`,
      kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
      inputs: { x: { shape: x }, dy: { shape: dy } },
      attrs: { ...attrs, filterShape: filter },
    });
    cases.push({
      name: `${name} input grad`,
      kernelName: tf.DepthwiseConv2dNativeBackpropInput,
      inputs: { dy: { shape: dy }, filter: { shape: filter } },
      attrs: { ...attrs, inputShape: x },
    });
  }
  return cases;
}

function embeddingCases(): BenchCase[] {
  return [
    { ids: 64, segments: 10, width: 50, name: 'label embedding 10x50, 64 ids' },
    { ids: 4096, segments: 1000, width: 64, name: 'embedding 1000x64, 4096 ids' },
  ].map(({ ids, segments, width, name }) => ({
    name: `UnsortedSegmentSum ${name}`,
    kernelName: tf.UnsortedSegmentSum,
    inputs: { x: { shape: [ids, width] }, segmentIds: { shape: [ids], dtype: 'int32', maxInt: segments } },
    attrs: { numSegments: segments },
  }));
}

function makeInputs(benchCase: BenchCase, seed: number): Record<string, Tensor> {
  const inputs: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(benchCase.inputs)) {
    inputs[name] =
      spec.dtype === 'int32'
        ? tf.randomUniform(spec.shape, 0, spec.maxInt ?? 1, 'int32', seed++)
        : tf.randomNormal(spec.shape, 0, 1, 'float32', seed++);
  }
  return inputs;
}

interface Timing {
  /** Median ms per call. */
  ms: number;
  /** Timed calls. */
  runs: number;
  /** Output of the last call. */
  values: Float32Array | Int32Array | Uint8Array;
}

/**
 * Runs the kernel on the active backend: one warm-up call, then timed calls
 * until they add up to `minMs` (at least 3, at most 20). A warm-up call that
 * alone takes `minMs` or longer is the only one timed, because the cpu
 * backend's filter gradients take minutes at these shapes.
 */
function timeKernel(benchCase: BenchCase, inputs: Record<string, Tensor>, minMs: number): Timing {
  const run = () => {
    const start = performance.now();
    const result = tf.engine().runKernel(benchCase.kernelName, inputs, benchCase.attrs as NamedAttrMap) as Tensor;
    const values = result.dataSync();
    const elapsed = performance.now() - start;
    result.dispose();
    return { values, elapsed };
  };

  const warmUp = run();
  if (warmUp.elapsed >= minMs) {
    return { ms: warmUp.elapsed, runs: 1, values: warmUp.values };
  }

  const times: number[] = [];
  let total = 0;
  let values = warmUp.values;
  while (times.length < MAX_RUNS && (total < minMs || times.length < 3)) {
    const timed = run();
    times.push(timed.elapsed);
    total += timed.elapsed;
    values = timed.values;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], runs: times.length, values };
}

async function main(): Promise<void> {
  const { values: options } = parseArgs({
    options: {
      filter: { type: 'string', default: '' },
      'min-ms': { type: 'string', default: '1000' },
      'skip-cpu': { type: 'boolean', default: false },
    },
  });
  const minMs = Number(options['min-ms']);
  if (!Number.isFinite(minMs) || minMs < 0) {
    throw new Error(`--min-ms: expected a number of milliseconds >= 0 but received '${options['min-ms']}'.`);
  }

  setWasmPaths(path.dirname(coreRequire.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist/');
  // The threaded build starts workers from blob URLs, which Node cannot do.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  registerWasmTrainingKernels();
  await tf.setBackend('wasm');
  console.log(`wasm SIMD: ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads: 1, Node ${process.version}`);

  const cases = [...dcganCases(), ...mobileNetCases(), ...embeddingCases()].filter((benchCase) =>
    benchCase.name.includes(options.filter ?? ''),
  );
  const rows: string[][] = [];
  for (const benchCase of cases) {
    await tf.setBackend('wasm');
    const inputs = makeInputs(benchCase, 1);
    const ours = timeKernel(benchCase, inputs, minMs);

    let wasmOwn = '-';
    if (benchCase.kernelName === tf.Conv2DBackpropInput) {
      registerWasmTrainingKernels({ replaceConv2DBackpropInput: false });
      const timing = timeKernel(benchCase, inputs, minMs);
      registerWasmTrainingKernels();
      wasmOwn = `${timing.ms.toFixed(1)} (${(timing.ms / ours.ms).toFixed(1)}x)`;
    }

    let cpu = '-';
    let difference = '-';
    if (!options['skip-cpu']) {
      await tf.setBackend('cpu');
      const timing = timeKernel(benchCase, inputs, minMs);
      const calls = timing.runs === 1 ? ', 1 call' : '';
      cpu = `${timing.ms.toFixed(1)}${calls} (${(timing.ms / ours.ms).toFixed(0)}x)`;
      difference = describeDifference(ours.values, timing.values);
    }
    tf.dispose(Object.values(inputs));

    const row = [benchCase.name, ours.ms.toFixed(1), wasmOwn, cpu, difference];
    rows.push(row);
    console.log(row.join(' | '));
  }

  console.log();
  console.log(
    '| case | this module ms | wasm own ms (its time / ours) | cpu ms (its time / ours) ' +
      '| max abs diff vs cpu (max abs value) |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const row of rows) {
    console.log(`| ${row.join(' | ')} |`);
  }
}

function describeDifference(ours: ArrayLike<number>, reference: ArrayLike<number>): string {
  let maxDifference = 0;
  let maxMagnitude = 0;
  for (let i = 0; i < reference.length; i++) {
    maxDifference = Math.max(maxDifference, Math.abs(reference[i] - ours[i]));
    maxMagnitude = Math.max(maxMagnitude, Math.abs(reference[i]));
  }
  return `${maxDifference.toExponential(1)} (${maxMagnitude.toFixed(0)})`;
}

await main();
