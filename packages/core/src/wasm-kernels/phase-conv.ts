import * as tf from '@tensorflow/tfjs';

import { type ConvFunc, type ConvInfo, cropToExplicitPadding } from './conv-geometry.js';

/**
 * XNNPACK's f32 convolution in tfjs-backend-wasm 4.22.0 (SIMD) computes
 * output channels in groups of this many: 1 to 8 output channels take the
 * same time, 16 take twice as long (measured, 64 input channels, 3x3).
 */
const OUTPUT_CHANNEL_TILE = 8;

/**
 * Computes the input gradient of a conv2d with geometry `info` (dilation 1)
 * from its output gradient `dy` (NHWC) with stride-1 convolutions by `conv`,
 * one per output phase or, when that is estimated to be cheaper, one for all
 * phases. `rotatedFilter` is the forward filter reversed along both spatial
 * axes, as `[filterHeight, filterWidth, dyChannels, channels]`. Returns
 * `[batch, inHeight, inWidth, channels]`.
 */
export function convolveTransposedByPhase(
  dy: tf.Tensor4D,
  rotatedFilter: tf.Tensor4D,
  info: ConvInfo,
  channels: number,
  conv: ConvFunc,
): tf.Tensor4D {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    const dilations = `[${info.dilationHeight}, ${info.dilationWidth}]`;
    throw new Error(`convolveTransposedByPhase: expected dilations of 1 but received ${dilations}.`);
  }

  const [, dyHeight, dyWidth] = dy.shape;
  const rows = planAxis(info.filterHeight, info.strideHeight, info.padInfo.top, info.inHeight, dyHeight);
  const columns = planAxis(info.filterWidth, info.strideWidth, info.padInfo.left, info.inWidth, dyWidth);

  const output = subPixelIsCheaper(rows, columns, channels)
    ? convolveSubPixel(dy, rotatedFilter, rows, columns, channels, conv)
    : convolveByPhase(dy, rotatedFilter, rows, columns, channels, conv);

  const [batch, outputHeight, outputWidth] = output.shape;
  if (rows.offset === 0 && columns.offset === 0 && outputHeight === info.inHeight && outputWidth === info.inWidth) {
    return output;
  }
  return tf.slice(output, [0, rows.offset, columns.offset, 0], [batch, info.inHeight, info.inWidth, channels]);
}

/** One output phase along one spatial axis. */
interface AxisPhase {
  /** Filter taps that reach this phase; 0 when the filter is shorter than the stride. */
  taps: number;
  /** Index of this phase's first tap in the rotated filter; its taps are `stride` apart. */
  filterStart: number;
}

/** Phase decomposition of a transposed convolution along one spatial axis. */
interface AxisPlan {
  stride: number;
  /** Taps of the longest phase, phase 0. */
  maxTaps: number;
  /** Output rows per phase. */
  blocks: number;
  /** First block computed: the first that reaches input row 0. */
  firstBlock: number;
  /** Rows of `dy`. */
  dySize: number;
  /** Rows to drop from the start of the interleaved phases. */
  offset: number;
  phases: AxisPhase[];
}

/**
 * Splits one axis of the transposed convolution into `stride` phases. With
 * padding `padBefore`, input row `h` receives `dy[o] * w[i]` for every
 * `o * stride + i = h + padBefore`. Writing `h + padBefore = q * stride + p`,
 * phase `p` is `sum_k dy[q - k] * w[p + k * stride]`: a stride-1 convolution
 * of `dy` by every `stride`-th tap of the filter.
 */
function planAxis(filterSize: number, stride: number, padBefore: number, inSize: number, dySize: number): AxisPlan {
  const firstBlock = Math.floor(padBefore / stride);
  const phases: AxisPhase[] = [];
  for (let phase = 0; phase < stride; phase++) {
    phases.push({
      taps: phase < filterSize ? Math.ceil((filterSize - phase) / stride) : 0,
      filterStart: (filterSize - 1 - phase) % stride,
    });
  }
  return {
    stride,
    maxTaps: phases[0].taps,
    blocks: Math.ceil((padBefore + inSize) / stride) - firstBlock,
    firstBlock,
    dySize,
    offset: padBefore - firstBlock * stride,
    phases,
  };
}

/**
 * Computes the padding of `dy` (before, after) for a phase convolution with
 * `taps` taps, where block `q` reads `dy[q - taps + 1 .. q]` for the blocks
 * `firstBlock .. firstBlock + blocks - 1`.
 */
function phasePadding(plan: AxisPlan, taps: number): [number, number] {
  return [taps - 1 - plan.firstBlock, plan.blocks + plan.firstBlock - plan.dySize];
}

/** Slices the taps of a phase pair (every `stride`-th tap) from the rotated filter. */
function phaseFilter(
  rotatedFilter: tf.Tensor4D,
  rowPhase: AxisPhase,
  columnPhase: AxisPhase,
  rows: AxisPlan,
  columns: AxisPlan,
): tf.Tensor4D {
  const [filterHeight, filterWidth, filterIn, filterOut] = rotatedFilter.shape;
  if (rowPhase.taps === filterHeight && columnPhase.taps === filterWidth) {
    return rotatedFilter;
  }
  return tf.stridedSlice(
    rotatedFilter,
    [rowPhase.filterStart, columnPhase.filterStart, 0, 0],
    [
      rowPhase.filterStart + (rowPhase.taps - 1) * rows.stride + 1,
      columnPhase.filterStart + (columnPhase.taps - 1) * columns.stride + 1,
      filterIn,
      filterOut,
    ],
    [rows.stride, columns.stride, 1, 1],
  ) as tf.Tensor4D;
}

/**
 * Estimates whether one convolution over all phases costs less than one
 * convolution per phase. The single convolution pads every phase to the
 * longest phase's taps, but its output channels fill XNNPACK's tiles.
 */
function subPixelIsCheaper(rows: AxisPlan, columns: AxisPlan, channels: number): boolean {
  const roundUp = (count: number) => Math.ceil(count / OUTPUT_CHANNEL_TILE) * OUTPUT_CHANNEL_TILE;
  let byPhase = 0;
  for (const rowPhase of rows.phases) {
    for (const columnPhase of columns.phases) {
      byPhase += rowPhase.taps * columnPhase.taps * roundUp(channels);
    }
  }
  const subPixel = rows.maxTaps * columns.maxTaps * roundUp(rows.stride * columns.stride * channels);
  return subPixel < byPhase;
}

/**
 * Runs one stride-1 convolution per output phase and interleaves the
 * outputs. This does the same multiply-adds as the forward convolution,
 * where a convolution over a zero-spread `dy` does `stride^2` times as many.
 */
function convolveByPhase(
  dy: tf.Tensor4D,
  rotatedFilter: tf.Tensor4D,
  rows: AxisPlan,
  columns: AxisPlan,
  channels: number,
  conv: ConvFunc,
): tf.Tensor4D {
  const [batch] = dy.shape;
  const phaseShape: [number, number, number, number] = [batch, rows.blocks, columns.blocks, channels];

  const phaseRows: tf.Tensor4D[] = [];
  for (const rowPhase of rows.phases) {
    const phaseOutputs: tf.Tensor4D[] = [];
    for (const columnPhase of columns.phases) {
      const [top, bottom] = phasePadding(rows, rowPhase.taps);
      const [left, right] = phasePadding(columns, columnPhase.taps);
      const hasTaps = rowPhase.taps > 0 && columnPhase.taps > 0;
      const padded = hasTaps ? cropToExplicitPadding(dy, { top, bottom, left, right }) : null;
      if (padded === null) {
        phaseOutputs.push(tf.zeros(phaseShape));
        continue;
      }
      const filter = phaseFilter(rotatedFilter, rowPhase, columnPhase, rows, columns);
      phaseOutputs.push(conv(padded.cropped, filter, padded.explicitPadding, [1, 1]));
    }
    phaseRows.push(interleave(phaseOutputs, 2));
  }
  return interleave(phaseRows, 1);
}

/**
 * Interleaves equally shaped NHWC tensors along `axis` (1 or 2): element `i`
 * of part `p` goes to `i * parts + p`. Stacking on a new leading axis and a
 * 3-D transpose is much faster on wasm than stacking on an inner axis.
 */
function interleave(parts: tf.Tensor4D[], axis: 1 | 2): tf.Tensor4D {
  if (parts.length === 1) {
    return parts[0];
  }
  const shape = parts[0].shape;
  const outer = shape.slice(0, axis + 1).reduce((product, size) => product * size, 1);
  const inner = shape.slice(axis + 1).reduce((product, size) => product * size, 1);
  const interleavedShape = [...shape];
  interleavedShape[axis] *= parts.length;
  return tf
    .stack(parts, 0)
    .reshape([parts.length, outer, inner])
    .transpose([1, 0, 2])
    .reshape(interleavedShape) as tf.Tensor4D;
}

/**
 * Runs all phases as one stride-1 convolution whose output channels are
 * `(rowPhase, columnPhase, channel)`, then moves each phase to its pixels
 * (a depth-to-space). Phases with fewer taps get leading zero taps.
 */
function convolveSubPixel(
  dy: tf.Tensor4D,
  rotatedFilter: tf.Tensor4D,
  rows: AxisPlan,
  columns: AxisPlan,
  channels: number,
  conv: ConvFunc,
): tf.Tensor4D {
  const [batch] = dy.shape;
  const [, , filterIn] = rotatedFilter.shape;

  // [maxTaps, maxTaps, dyChannels, phases * channels]
  const phaseFilters: tf.Tensor4D[] = [];
  for (const rowPhase of rows.phases) {
    for (const columnPhase of columns.phases) {
      if (rowPhase.taps === 0 || columnPhase.taps === 0) {
        phaseFilters.push(tf.zeros([rows.maxTaps, columns.maxTaps, filterIn, channels]));
        continue;
      }
      const filter = phaseFilter(rotatedFilter, rowPhase, columnPhase, rows, columns);
      phaseFilters.push(
        tf.pad(filter, [
          [rows.maxTaps - rowPhase.taps, 0],
          [columns.maxTaps - columnPhase.taps, 0],
          [0, 0],
          [0, 0],
        ]),
      );
    }
  }

  const [top, bottom] = phasePadding(rows, rows.maxTaps);
  const [left, right] = phasePadding(columns, columns.maxTaps);
  const padded = cropToExplicitPadding(dy, { top, bottom, left, right });
  if (padded === null) {
    return tf.zeros([batch, rows.blocks * rows.stride, columns.blocks * columns.stride, channels]);
  }

  const phases = conv(padded.cropped, tf.concat(phaseFilters, 3), padded.explicitPadding, [1, 1]);
  return phases
    .reshape([batch * rows.blocks, columns.blocks, rows.stride, columns.stride * channels])
    .transpose([0, 2, 1, 3])
    .reshape([batch, rows.blocks * rows.stride, columns.blocks * columns.stride, channels]) as tf.Tensor4D;
}

