import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '@scarce/core';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT, UnsupportedLayerError } from './onnx-export.js';

/**
 * Runtime of a frozen model's forward pass: `onnxruntime` (onnxruntime-node on every core, used by
 * `auto` when tfjs runs on wasm or cpu) or `tfjs` (the current tfjs backend).
 */
export type InferenceRuntime = 'auto' | 'onnxruntime' | 'tfjs';

export const INFERENCE_RUNTIMES: readonly InferenceRuntime[] = ['auto', 'onnxruntime', 'tfjs'];

/** A frozen model compiled for onnxruntime: NHWC float images in, its output (or pooled vectors) out. */
export interface OnnxRunner {
  /** Runs `count` images packed in `input`; the output is row-major, `outputSize` values per image. */
  run(input: Float32Array, count: number): Promise<Float32Array>;
  /** Values per image in the output. */
  outputSize: number;
}

type OnnxModule = typeof import('onnxruntime-node');

let onnxModule: Promise<OnnxModule | Error> | undefined;

/** Loads onnxruntime-node once, or returns an Error with the reason it did not load. */
function loadOnnxRuntime(): Promise<OnnxModule | Error> {
  onnxModule ??= import('onnxruntime-node').then(
    (module) => module,
    (error: Error) => new Error(`onnxruntime-node did not load (${error.message.split('\n')[0]})`),
  );
  return onnxModule;
}

/**
 * Runners already built, per model and output form, with the weights they were built from. tfjs
 * gives a variable new data on every assignment, so a model whose weights changed gets a new
 * runner. Fine-tuning trains layers that the whole backbone shares.
 */
const runners = new WeakMap<tf.LayersModel, Map<string, { weights: object[]; runner: Promise<OnnxRunner | Error> }>>();

/** Returns the data of every weight of the model, whose identity changes whenever a weight is assigned. */
function weightState(model: tf.LayersModel): object[] {
  return model.weights.map((weight) => weight.read().dataId);
}

async function buildRunner(model: tf.LayersModel, pooled: boolean): Promise<OnnxRunner | Error> {
  const ort = await loadOnnxRuntime();
  if (ort instanceof Error) return ort;
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx(model, { pooled });
  } catch (error) {
    if (error instanceof UnsupportedLayerError) return new Error(`the ONNX exporter does not translate ${error.message}`);
    throw error;
  }
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const [, height, width, channels] = model.inputs[0].shape as number[];
  const outputSize = pooled
    ? model.outputs.reduce((sum, output) => sum + (output.shape.at(-1) as number), 0)
    : (model.outputs[0].shape.slice(1) as number[]).reduce((product, size) => product * size, 1);
  return {
    outputSize,
    async run(input, count) {
      const feeds = { [ONNX_INPUT]: new ort.Tensor('float32', input, [count, height, width, channels]) };
      const result = await session.run(feeds);
      return result[ONNX_OUTPUT].data as Float32Array;
    },
  };
}

/**
 * Returns an onnxruntime runner of the model's forward pass in inference mode, or undefined when
 * tfjs should run it: `tfjs` requested, or `auto` on a native tfjs backend, without
 * onnxruntime-node, or with a layer the exporter does not translate. `onnxruntime` asked for and
 * not available throws.
 */
export async function onnxRunnerFor(model: tf.LayersModel, pooled: boolean, runtime: InferenceRuntime = 'auto'): Promise<OnnxRunner | undefined> {
  if (runtime === 'tfjs' || (runtime === 'auto' && tf.getBackend() !== 'wasm' && tf.getBackend() !== 'cpu')) return undefined;
  let forModel = runners.get(model);
  if (forModel === undefined) runners.set(model, (forModel = new Map()));
  const key = pooled ? 'pooled' : 'map';
  const weights = weightState(model);
  let entry = forModel.get(key);
  if (entry === undefined || entry.weights.length !== weights.length || entry.weights.some((data, i) => data !== weights[i])) {
    entry = { weights, runner: buildRunner(model, pooled) };
    forModel.set(key, entry);
  }
  const built = await entry.runner;
  if (!(built instanceof Error)) return built;
  if (runtime === 'onnxruntime') throw new InputError(`The onnxruntime runtime was requested but ${built.message}; use runtime 'auto' or 'tfjs' (train.runtime in a run config).`);
  return undefined;
}

/**
 * Returns which runtime runs the model's pooled forward pass under `runtime`, building the
 * onnxruntime runner to find out. Throws as `onnxRunnerFor` does.
 */
export async function resolveInferenceRuntime(model: tf.LayersModel, runtime: InferenceRuntime = 'auto'): Promise<'onnxruntime' | 'tfjs'> {
  return (await onnxRunnerFor(model, true, runtime)) === undefined ? 'tfjs' : 'onnxruntime';
}
