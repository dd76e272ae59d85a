import * as tf from '@tensorflow/tfjs';
import { InputError, Progress, Random, type ImageRecord } from '@scarce/core';
import type { Backbone } from './backbone.js';
import { backboneBlocks } from './blocks.js';
import { EarlyStopping, type EarlyStoppingOptions } from './early-stopping.js';
import { dropoutMask, headLogits, repeatForMembers, type ClassifierHead } from './head.js';
import { evaluateProbabilities } from './metrics.js';
import { toBackboneInput } from './preprocess.js';
import { runOnnxBatches } from './features.js';
import { onnxRunnerFor, onnxTailFeaturesFor, onnxTrainingStepFor, type InferenceRuntime } from './onnx-runner.js';
import { runOnnxEpoch, startArrayTraining } from './onnx-steps.js';

/** The part of the backbone that trains. */
export interface UnfreezeOptions {
  /** Unfreeze the last N blocks (as `scarce backbone inspect` lists them). */
  lastBlocks?: number;
  /** Unfreeze the layers whose names start with one of these prefixes (e.g. `block_16_`, `Conv_1`). */
  layerPrefixes?: string[];
}

/** A backbone cut in two: a frozen front that runs once per image, and a tail that trains. */
export interface SplitBackbone {
  /** From images to the cut activations; runs in inference mode. */
  frozen: tf.LayersModel;
  /** From the cut activations to the backbone's output, sharing the backbone's layers and weights. */
  tail: tf.LayersModel;
  /** Name of the first layer of the tail. */
  cutBefore: string;
  /** Layers whose weights train. */
  trainableLayers: string[];
}

/**
 * Cuts the backbone before the first block that holds an unfrozen layer. Layers of the tail that
 * the options do not name stay frozen but are still computed per step. The cut must be a single
 * tensor, which block boundaries of sequential-by-block backbones such as MobileNetV2 are.
 */
export function splitBackbone(backbone: Backbone, unfreeze: UnfreezeOptions): SplitBackbone {
  if (backbone.model.outputs.length !== 1) {
    throw new InputError(`Fine-tuning trains on one feature map, but ${backbone.source} is cut at ${backbone.model.outputs.length} feature layers; name one featureLayer, or use feature extraction.`);
  }
  const blocks = backboneBlocks(backbone.model);
  let isUnfrozen: (name: string) => boolean;
  if (unfreeze.layerPrefixes !== undefined && unfreeze.layerPrefixes.length > 0) {
    isUnfrozen = (name) => unfreeze.layerPrefixes!.some((prefix) => name.startsWith(prefix));
  } else {
    const count = unfreeze.lastBlocks ?? 2;
    if (!Number.isInteger(count) || count < 1 || count > blocks.length) {
      throw new InputError(`lastBlocks must be an integer from 1 to ${blocks.length} for this backbone but received ${count}.`);
    }
    const names = new Set(blocks.slice(-count).flatMap((block) => block.layers.map((layer) => layer.name)));
    isUnfrozen = (name) => names.has(name);
  }

  const firstBlock = blocks.findIndex((block) => block.layers.some((layer) => isUnfrozen(layer.name)));
  if (firstBlock === -1) throw new InputError(`No layer of ${backbone.source} matches ${JSON.stringify(unfreeze.layerPrefixes)}; run 'scarce backbone inspect' for the names.`);
  const tailLayers = blocks.slice(firstBlock).flatMap((block) => block.layers);

  // Node 0 is the backbone's own graph; every split adds a node to each tail layer.
  const cut = firstBlock === 0 ? backbone.model.inputs[0] : blocks[firstBlock - 1].layers.at(-1)!.inboundNodes[0].outputTensors[0];
  const input = tf.input({ shape: cut.shape.slice(1) as number[], name: 'tail_input' });
  const mapping = new Map<number, tf.SymbolicTensor>([[cut.id, input]]);
  for (const layer of tailLayers) {
    const node = layer.inboundNodes[0];
    const inputs = node.inputTensors.map((tensor) => {
      const mapped = mapping.get(tensor.id);
      if (mapped === undefined) {
        throw new InputError(`Layer ${layer.name} reads from before the cut at ${tailLayers[0].name}, so the backbone cannot be split there; unfreeze more blocks.`);
      }
      return mapped;
    });
    const output = layer.apply(inputs.length === 1 ? inputs[0] : inputs) as tf.SymbolicTensor;
    mapping.set(node.outputTensors[0].id, output);
    layer.trainable = isUnfrozen(layer.name);
  }
  const output = mapping.get(backbone.model.outputs[0].id)!;
  return {
    frozen: tf.model({ inputs: backbone.model.inputs, outputs: cut }),
    tail: tf.model({ inputs: input, outputs: output }),
    cutBefore: tailLayers[0].name,
    trainableLayers: tailLayers.filter((layer) => isUnfrozen(layer.name)).map((layer) => layer.name),
  };
}

/** Options of `frozenActivations`. */
export interface FrozenActivationsOptions {
  /** Images per forward pass; default 64. */
  batchSize?: number;
  /** Default true. */
  quiet?: boolean;
  /** Runtime of the frozen front; default `auto` (onnxruntime when tfjs runs on wasm or cpu and it loads). */
  runtime?: InferenceRuntime;
}

/** Runs the frozen front over records in inference mode; returns their activations stacked on axis 0. */
export async function frozenActivations(split: SplitBackbone, backbone: Backbone, records: readonly ImageRecord[], options: FrozenActivationsOptions = {}): Promise<tf.Tensor> {
  const batchSize = options.batchSize ?? 64;
  const progress = new Progress('frozen activations', records.length, { quiet: options.quiet ?? true });
  const runner = await onnxRunnerFor(split.frozen, false, options.runtime);
  if (runner !== undefined) {
    const values = await runOnnxBatches(runner, backbone, records, batchSize, progress);
    return tf.tensor(values, [records.length, ...(split.frozen.outputs[0].shape.slice(1) as number[])]);
  }
  const batches: tf.Tensor[] = [];
  for (let start = 0; start < records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    batches.push(tf.tidy(() => split.frozen.predict(toBackboneInput(batch, backbone)) as tf.Tensor));
    progress.tick(batch.length);
  }
  const stacked = tf.concat(batches);
  batches.forEach((batch) => batch.dispose());
  return stacked;
}

/** Options of `tailFeatures`. */
export interface TailFeaturesOptions {
  /** Rows per forward pass; default 128. */
  batchSize?: number;
  /** Runtime of the forward pass; default `auto` (onnxruntime when tfjs runs on wasm or cpu and it loads). */
  runtime?: InferenceRuntime;
}

/** Pooled features of the tail's output for activations, in inference mode, row-major. */
export async function tailFeatures(split: SplitBackbone, activations: tf.Tensor, options: TailFeaturesOptions = {}): Promise<Float32Array> {
  const rows = activations.shape[0];
  const featureSize = split.tail.outputs[0].shape.at(-1)!;
  const batchSize = options.batchSize ?? 128;
  const runner = await onnxRunnerFor(split.tail, true, options.runtime);
  const values = runner === undefined ? null : (activations.dataSync() as Float32Array);
  const rowSize = activations.size / rows;
  const out = new Float32Array(rows * featureSize);
  for (let start = 0; start < rows; start += batchSize) {
    const size = Math.min(batchSize, rows - start);
    if (runner !== undefined) {
      out.set(await runner.run(values!.subarray(start * rowSize, (start + size) * rowSize), size), start * featureSize);
      continue;
    }
    const pooled = tf.tidy(() => (split.tail.predict(activations.slice(start, size)) as tf.Tensor4D).mean([1, 2]));
    out.set(pooled.dataSync() as Float32Array, start * featureSize);
    pooled.dispose();
  }
  return out;
}

/** Options of `fineTune`. */
export interface FineTuneOptions {
  /** Adam learning rate of the tail and head; default 1e-4, small so the pretrained weights move little. */
  learningRate?: number;
  /** Maximum epochs; default 30. */
  epochs?: number;
  /** Rows per step; default 32. */
  batchSize?: number;
  /** Dropout rate of the head; default 0.5. */
  dropout?: number;
  /** Default `val_loss`, patience 5, restore best weights. */
  earlyStopping?: EarlyStoppingOptions;
  seed?: number;
  onEpoch?: (epoch: number, logs: Record<string, number>) => void;
  /**
   * Runtime of the training steps; default `auto`. It picks onnxruntime, with the step and its
   * gradient compiled to one ONNX graph, when tfjs runs on wasm or cpu, onnxruntime-node loads and
   * the exporter differentiates every tail layer. Otherwise tfjs trains.
   */
  runtime?: InferenceRuntime;
}

/** Result of `fineTune`. When weights are restored, the tail and head hold those of the best epoch. */
export interface FineTuning {
  history: Array<Record<string, number>>;
  epochsRun: number;
  /** 1-based best epoch, or 0 when no epoch beat the head-only weights and those were kept. */
  bestEpoch: number;
  stoppedEpoch: number | null;
  summary: string;
}

/**
 * Runs the second phase of fine-tuning: trains the tail's unfrozen layers and the head (already trained
 * on frozen features) together at a small learning rate. The tail runs in inference mode, so its
 * BatchNorm layers keep their moving statistics, as Keras recommends when fine-tuning. In tfjs
 * only the tail's ops are on the gradient tape; in onnxruntime each step is one compiled graph.
 */
export async function fineTune(
  split: SplitBackbone,
  head: ClassifierHead,
  train: { activations: tf.Tensor; labels: number[] },
  validation: { activations: tf.Tensor; labels: number[] },
  options: FineTuneOptions = {},
): Promise<FineTuning> {
  const settings = { learningRate: 1e-4, epochs: 30, batchSize: 32, dropout: head.dropout, seed: 0, ...options };
  const earlyStopping = new EarlyStopping({ monitor: 'val_loss', patience: 5, restoreBestWeights: true, ...options.earlyStopping });
  const random = new Random(settings.seed);
  const variables = [...split.tail.trainableWeights.map((weight) => weight.read() as tf.Variable), ...head.weights];
  const optimizer = tf.train.adam(settings.learningRate);
  const units = head.hiddenUnits;
  const history: Array<Record<string, number>> = [];
  let snapshot: tf.Tensor[] | null = null;
  let epochsRun = 0;

  // The head-only weights are the baseline: if no epoch of fine-tuning beats them on the
  // monitored value, they are put back instead of the best fine-tuned epoch.
  const step = await onnxTrainingStepFor(split.tail, head, options.runtime);
  const onnxFeatures = step === undefined ? undefined : await onnxTailFeaturesFor(split.tail, options.runtime);
  const training = step === undefined ? null : startArrayTraining(variables, settings.learningRate);
  const trainRows = step === undefined ? null : { values: train.activations.dataSync() as Float32Array, labels: train.labels, numClasses: head.numClasses };
  const validationValues = onnxFeatures === undefined ? null : (validation.activations.dataSync() as Float32Array);
  const validationFeatures = () =>
    onnxFeatures === undefined
      ? tailFeatures(split, validation.activations, { runtime: 'tfjs' })
      : onnxFeatures.run(validationValues!, validation.labels.length, training!.weights);
  const evaluate = async () => evaluateProbabilities(head.predict(await validationFeatures()), validation.labels, head.numClasses);
  const startReport = await evaluate();
  const startLogs: Record<string, number> = { val_loss: startReport.loss, val_accuracy: startReport.accuracy, val_auc: startReport.auc };
  const startValue = startLogs[earlyStopping.monitor];
  const startWeights = variables.map((variable) => variable.clone());

  for (let epoch = 0; epoch < settings.epochs; epoch++) {
    const order = random.shuffle(train.labels.map((_, i) => i));
    const batches: Array<{ rows: number[]; mask: Float32Array | null }> = [];
    for (let start = 0; start < order.length; start += settings.batchSize) {
      const rows = order.slice(start, start + settings.batchSize);
      batches.push({ rows, mask: units > 0 ? dropoutMask(random, rows.length, units, settings.dropout) : null });
    }
    let lossSum = 0;
    if (step !== undefined) {
      lossSum = await runOnnxEpoch(step, training!, trainRows!, batches);
    } else {
      for (const { rows, mask } of batches) {
        const loss = tf.tidy(() => {
          const x = tf.gather(train.activations, tf.tensor1d(rows, 'int32'));
          const y = repeatForMembers(tf.oneHot(tf.tensor1d(rows.map((row) => train.labels[row]), 'int32'), head.numClasses), head.members);
          const maskTensor = mask === null ? null : tf.tensor2d(mask, [rows.length, units]);
          return optimizer.minimize(() => {
            const pooled = (split.tail.apply(x, { training: false }) as tf.Tensor4D).mean([1, 2]) as tf.Tensor2D;
            return tf.losses.softmaxCrossEntropy(y, headLogits(head, pooled, maskTensor)) as tf.Scalar;
          }, true, variables)!;
        });
        lossSum += loss.dataSync()[0] * rows.length;
        loss.dispose();
      }
    }
    epochsRun = epoch + 1;

    const report = await evaluate();
    const logs = { loss: lossSum / order.length, val_loss: report.loss, val_accuracy: report.accuracy, val_auc: report.auc };
    history.push({ epoch: epoch + 1, ...logs });
    settings.onEpoch?.(epoch + 1, logs);
    const decision = earlyStopping.onEpochEnd(epoch, logs);
    if (decision.snapshot) {
      snapshot?.forEach((tensor) => tensor.dispose());
      snapshot = variables.map((variable) => variable.clone());
    }
    if (decision.stop) break;
  }

  const improved =
    startValue === undefined || (earlyStopping.mode === 'min' ? earlyStopping.best + earlyStopping.minDelta < startValue : earlyStopping.best - earlyStopping.minDelta > startValue);
  if (earlyStopping.restoreBestWeights && !improved) {
    variables.forEach((variable, i) => variable.assign(startWeights[i]));
  } else if (earlyStopping.restoreBestWeights && snapshot !== null) {
    variables.forEach((variable, i) => variable.assign(snapshot![i]));
  }
  snapshot?.forEach((tensor) => tensor.dispose());
  startWeights.forEach((tensor) => tensor.dispose());
  optimizer.dispose();

  const kept = earlyStopping.restoreBestWeights && !improved;
  return {
    history,
    epochsRun,
    bestEpoch: kept ? 0 : earlyStopping.bestEpoch + 1,
    stoppedEpoch: earlyStopping.stoppedEpoch === undefined ? null : earlyStopping.stoppedEpoch + 1,
    summary: kept
      ? `${earlyStopping.summary()}; no epoch beat the head-only ${earlyStopping.monitor} ${startValue!.toFixed(4)}, so those weights were kept`
      : earlyStopping.summary(),
  };
}
