import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '@scarce/core';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT, UnsupportedLayerError } from './onnx-export.js';
import {
  exportTailFeatures,
  exportTrainingStep,
  STEP_ACTIVATIONS,
  STEP_DROPOUT_MASK,
  STEP_LOSS,
  STEP_SAMPLE_WEIGHTS,
  STEP_TARGETS,
  stepGradient,
  stepWeight,
  TAIL_FEATURES,
  type TrainingStepOptions,
} from './onnx-training.js';
import type { ClassifierHead } from './head.js';

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

/** Returns whether `runtime` requests onnxruntime: always for `onnxruntime`, and for `auto` when tfjs runs on wasm or cpu. */
function wantsOnnx(runtime: InferenceRuntime): boolean {
  return runtime === 'onnxruntime' || (runtime === 'auto' && (tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu'));
}

/** Exports a graph with `write` and opens an onnxruntime session on `threads` threads (default every core), or returns why it cannot. */
async function openSession<T>(write: () => T, bytesOf: (written: T) => Uint8Array, threads = availableParallelism()) {
  const ort = await loadOnnxRuntime();
  if (ort instanceof Error) return ort;
  let written: T;
  try {
    written = write();
  } catch (error) {
    if (error instanceof UnsupportedLayerError) return new Error(`the ONNX exporter does not translate ${error.message}`);
    throw error;
  }
  const session = await ort.InferenceSession.create(bytesOf(written), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  return { ort, session, written };
}

/** Turns a failed session into undefined (tfjs runs instead), or throws when onnxruntime was asked for by name. */
function fallBack(runtime: InferenceRuntime, error: Error): undefined {
  if (runtime === 'onnxruntime') throw new InputError(`The onnxruntime runtime was requested but ${error.message}; use runtime 'auto' or 'tfjs' (train.runtime in a run config).`);
  return undefined;
}

async function buildRunner(model: tf.LayersModel, pooled: boolean): Promise<OnnxRunner | Error> {
  const opened = await openSession(() => exportOnnx(model, { pooled }), (bytes) => bytes);
  if (opened instanceof Error) return opened;
  const { ort, session } = opened;
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
  if (!wantsOnnx(runtime)) return undefined;
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
  return built instanceof Error ? fallBack(runtime, built) : built;
}

/**
 * Returns which runtime runs the model's pooled forward pass under `runtime`, building the
 * onnxruntime runner to find out. Throws as `onnxRunnerFor` does.
 */
export async function resolveInferenceRuntime(model: tf.LayersModel, runtime: InferenceRuntime = 'auto'): Promise<'onnxruntime' | 'tfjs'> {
  return (await onnxRunnerFor(model, true, runtime)) === undefined ? 'tfjs' : 'onnxruntime';
}

/** One batch of a training step: tail inputs (or features), one-hot targets, the dropout mask and row weights. */
export interface StepBatch {
  rows: number;
  /** Tail inputs, row-major NHWC, or feature rows for a head-only step. */
  activations: Float32Array;
  /** One-hot targets, `[rows, classes]`. */
  targets: Float32Array;
  /** The scaled keep mask `[rows, hidden units]`, or null for a linear head. */
  dropoutMask: Float32Array | null;
  /** Loss weight of each row, for a step built with `sampleWeights`. */
  sampleWeights?: Float32Array;
}

/** A training step compiled for onnxruntime: the loss and its gradient for given weights. */
export interface OnnxTrainingStep {
  /** Runs the step with `weights` in the order of the tail's trainable weights then the head's. */
  run(batch: StepBatch, weights: readonly Float32Array[]): Promise<{ loss: number; gradients: Float32Array[] }>;
}

/**
 * Returns one training step of `tail` (or of the head alone on features of that size) and `head`
 * in onnxruntime. Returns undefined when tfjs should train them: `tfjs` requested, `auto` on a
 * native tfjs backend, without onnxruntime-node, or with a layer that `exportTrainingStep` does
 * not differentiate. Throws when `onnxruntime` is requested and not available. The frozen weights
 * are compiled into the graph, so a new step is needed when they change.
 */
export async function onnxTrainingStepFor(
  tail: tf.LayersModel | number,
  head: ClassifierHead,
  runtime: InferenceRuntime = 'auto',
  options: TrainingStepOptions = {},
): Promise<OnnxTrainingStep | undefined> {
  if (!wantsOnnx(runtime)) return undefined;
  const opened = await openSession(() => exportTrainingStep(tail, head, options), (graph) => graph.bytes);
  if (opened instanceof Error) return fallBack(runtime, opened);
  const { ort, session, written } = opened;
  const inputShape = typeof tail === 'number' ? [tail] : (tail.inputs[0].shape.slice(1) as number[]);
  const outputs = [STEP_LOSS, ...written.weightShapes.map((_, i) => stepGradient(i))];
  return {
    async run(batch, weights) {
      const feeds: Record<string, InstanceType<OnnxModule['Tensor']>> = {
        [STEP_ACTIVATIONS]: new ort.Tensor('float32', batch.activations, [batch.rows, ...inputShape]),
        [STEP_TARGETS]: new ort.Tensor('float32', batch.targets, [batch.rows, head.numClasses]),
      };
      if (written.takesDropoutMask) feeds[STEP_DROPOUT_MASK] = new ort.Tensor('float32', batch.dropoutMask!, [batch.rows, head.hiddenUnits]);
      if (options.sampleWeights) feeds[STEP_SAMPLE_WEIGHTS] = new ort.Tensor('float32', batch.sampleWeights!, [batch.rows]);
      weights.forEach((values, i) => (feeds[stepWeight(i)] = new ort.Tensor('float32', values, written.weightShapes[i])));
      const result = await session.run(feeds, outputs);
      return { loss: (result[STEP_LOSS].data as Float32Array)[0], gradients: outputs.slice(1).map((name) => result[name].data as Float32Array) };
    },
  };
}

/** A float32 tensor fed to a compiled graph: its values and dimensions. */
export interface GraphFeed {
  data: Float32Array;
  dims: readonly number[];
}

/** A compiled graph in onnxruntime, fed and read by value name. */
export interface OnnxGraphSession {
  run(feeds: Readonly<Record<string, GraphFeed>>, outputs: readonly string[]): Promise<Record<string, Float32Array>>;
}

/**
 * Opens an onnxruntime session on the graph that `write` encodes, on `threads` threads (default
 * every core), or returns undefined when tfjs should run the computation instead, as
 * `onnxTrainingStepFor` decides. Throws when `onnxruntime` is requested and not available.
 */
export async function onnxGraphSession(write: () => Uint8Array, runtime: InferenceRuntime = 'auto', threads?: number): Promise<OnnxGraphSession | undefined> {
  if (!wantsOnnx(runtime)) return undefined;
  const opened = await openSession(write, (bytes) => bytes, threads);
  if (opened instanceof Error) return fallBack(runtime, opened);
  const { ort, session } = opened;
  return {
    async run(feeds, outputs) {
      const tensors = Object.fromEntries(Object.entries(feeds).map(([name, feed]) => [name, new ort.Tensor('float32', feed.data, feed.dims as number[])]));
      const result = await session.run(tensors, outputs as string[]);
      return Object.fromEntries(outputs.map((name) => [name, result[name].data as Float32Array]));
    },
  };
}

/** The tail's pooled features in onnxruntime, for weights given at each call. */
export interface OnnxTailFeatures {
  /** Runs `rows` activations with the tail's trainable weights in `weights` (extra trailing arrays are ignored). */
  run(activations: Float32Array, rows: number, weights: readonly Float32Array[]): Promise<Float32Array>;
}

/**
 * Returns the tail's inference pass to pooled features in onnxruntime. It takes the trainable
 * weights as inputs, so one session serves every epoch. Returns undefined and throws as
 * `onnxTrainingStepFor` does.
 */
export async function onnxTailFeaturesFor(tail: tf.LayersModel, runtime: InferenceRuntime = 'auto'): Promise<OnnxTailFeatures | undefined> {
  if (!wantsOnnx(runtime)) return undefined;
  const opened = await openSession(() => exportTailFeatures(tail), (bytes) => bytes);
  if (opened instanceof Error) return fallBack(runtime, opened);
  const { ort, session } = opened;
  const inputShape = tail.inputs[0].shape.slice(1) as number[];
  const shapes = tail.trainableWeights.map((weight) => weight.shape as number[]);
  return {
    async run(activations, rows, weights) {
      if (rows === 0) return new Float32Array(0);
      const feeds: Record<string, InstanceType<OnnxModule['Tensor']>> = { [STEP_ACTIVATIONS]: new ort.Tensor('float32', activations, [rows, ...inputShape]) };
      shapes.forEach((shape, i) => (feeds[stepWeight(i)] = new ort.Tensor('float32', weights[i], shape)));
      return (await session.run(feeds))[TAIL_FEATURES].data as Float32Array;
    },
  };
}

/**
 * Returns which runtime runs the training steps under `runtime`: of heads alone when `tail` is
 * null, or of a fine-tuned tail and its head. It translates the tail to find out, so an
 * undifferentiable layer is found before training starts. Throws as `onnxTrainingStepFor` does.
 */
export async function resolveTrainingRuntime(tail: tf.LayersModel | null, runtime: InferenceRuntime = 'auto'): Promise<'onnxruntime' | 'tfjs'> {
  if (!wantsOnnx(runtime)) return 'tfjs';
  const ort = await loadOnnxRuntime();
  if (ort instanceof Error) return fallBack(runtime, ort) ?? 'tfjs';
  if (tail === null) return 'onnxruntime';
  try {
    exportTailFeatures(tail);
    return 'onnxruntime';
  } catch (error) {
    if (!(error instanceof UnsupportedLayerError)) throw error;
    return fallBack(runtime, new Error(`the ONNX exporter does not translate ${error.message}`)) ?? 'tfjs';
  }
}
