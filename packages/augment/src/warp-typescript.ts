import type { RawImage } from '@scarce/core/codec';
import type { FillMode, Interpolation } from './config-values.js';
import type { AffineMatrix } from './geometry.js';

/** Fill and interpolation of a warp. */
export interface WarpSettings {
  fill: { mode: FillMode; value: number };
  interpolation: Interpolation;
}

/**
 * Maps a pixel index that may lie outside [0, size) to the index the fill mode reads, or
 * returns -1 where the `constant` fill value applies.
 */
export function fillIndex(index: number, size: number, mode: FillMode): number {
  if (index >= 0 && index < size) return index;
  switch (mode) {
    case 'constant':
      return -1;
    case 'nearest':
      return index < 0 ? 0 : size - 1;
    case 'wrap':
      return ((index % size) + size) % size;
    case 'reflect': {
      const period = 2 * size;
      const folded = ((index % period) + period) % period;
      return folded < size ? folded : period - 1 - folded;
    }
  }
}

/**
 * For every integer coordinate in [low, low + offsets.length), the offset of the source row or
 * column the fill mode reads there (index times `stride`), or -1 where the fill value applies.
 */
interface OffsetTable {
  low: number;
  offsets: Int32Array;
}

function buildOffsetTable(low: number, high: number, size: number, mode: FillMode, stride: number): OffsetTable {
  const offsets = new Int32Array(high - low + 1);
  for (let index = low; index <= high; index++) {
    const mapped = fillIndex(index, size, mode);
    offsets[index - low] = mapped < 0 ? -1 : mapped * stride;
  }
  return { low, offsets };
}

/**
 * Tables covering every coordinate the output reads. An affine map takes its extremes over the
 * output rectangle at the corners; the two extra entries each side cover the bilinear neighbour
 * and rounding in the per-pixel arithmetic.
 */
function buildTables(
  image: RawImage,
  inverse: AffineMatrix,
  mode: FillMode,
  outputHeight: number,
  outputWidth: number,
): { columns: OffsetTable; rows: OffsetTable } {
  const { height, width, channels } = image;
  const corners = [
    [0, 0],
    [outputWidth - 1, 0],
    [0, outputHeight - 1],
    [outputWidth - 1, outputHeight - 1],
  ];
  const xs = corners.map(([x, y]) => inverse.a * x + inverse.b * y + inverse.tx);
  const ys = corners.map(([x, y]) => inverse.c * x + inverse.d * y + inverse.ty);
  return {
    columns: buildOffsetTable(Math.floor(Math.min(...xs)) - 2, Math.floor(Math.max(...xs)) + 2, width, mode, channels),
    rows: buildOffsetTable(Math.floor(Math.min(...ys)) - 2, Math.floor(Math.max(...ys)) + 2, height, mode, width * channels),
  };
}

/**
 * Warps an image in TypeScript: each output pixel (x, y) takes the source value at
 * `inverse(x, y)`, read with bilinear or nearest-neighbour interpolation. Values are rounded
 * half up to 8 bits. The output has the source's channels and, unless given, its size.
 */
export function warpWithTypeScript(
  image: RawImage,
  inverse: AffineMatrix,
  settings: WarpSettings,
  outputHeight = image.height,
  outputWidth = image.width,
): Uint8Array {
  const { pixels: source, height, width, channels } = image;
  const output = new Uint8Array(outputHeight * outputWidth * channels);
  const fillValue = settings.fill.value;
  const { a, b, c, d, tx, ty } = inverse;
  const { columns, rows } = buildTables(image, inverse, settings.fill.mode, outputHeight, outputWidth);
  const columnOffsets = columns.offsets;
  const rowOffsets = rows.offsets;
  // Stores into a Uint8Array truncate, so adding 0.5 to a value in [0, 255] rounds it half up.
  let offset = 0;

  if (settings.interpolation === 'nearest') {
    for (let y = 0; y < outputHeight; y++) {
      for (let x = 0; x < outputWidth; x++) {
        const column = columnOffsets[Math.floor(a * x + b * y + tx + 0.5) - columns.low];
        const row = rowOffsets[Math.floor(c * x + d * y + ty + 0.5) - rows.low];
        const start = column < 0 || row < 0 ? -1 : row + column;
        for (let k = 0; k < channels; k++) output[offset++] = start < 0 ? fillValue : source[start + k];
      }
    }
    return output;
  }

  for (let y = 0; y < outputHeight; y++) {
    for (let x = 0; x < outputWidth; x++) {
      const sourceX = a * x + b * y + tx;
      const sourceY = c * x + d * y + ty;
      const x0 = Math.floor(sourceX);
      const y0 = Math.floor(sourceY);
      const fx = sourceX - x0;
      const fy = sourceY - y0;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;

      if (x0 >= 0 && y0 >= 0 && x0 < width - 1 && y0 < height - 1) {
        // All four neighbours are inside the image: the common case, without table lookups.
        const top = (y0 * width + x0) * channels;
        const bottom = top + width * channels;
        for (let k = 0; k < channels; k++) {
          const value =
            source[top + k] * w00 + source[top + channels + k] * w01 + source[bottom + k] * w10 + source[bottom + channels + k] * w11;
          output[offset++] = value + 0.5;
        }
        continue;
      }

      const left = columnOffsets[x0 - columns.low];
      const right = columnOffsets[x0 + 1 - columns.low];
      const upper = rowOffsets[y0 - rows.low];
      const lower = rowOffsets[y0 + 1 - rows.low];
      const i00 = left < 0 || upper < 0 ? -1 : upper + left;
      const i01 = right < 0 || upper < 0 ? -1 : upper + right;
      const i10 = left < 0 || lower < 0 ? -1 : lower + left;
      const i11 = right < 0 || lower < 0 ? -1 : lower + right;
      for (let k = 0; k < channels; k++) {
        const value =
          (i00 < 0 ? fillValue : source[i00 + k]) * w00 +
          (i01 < 0 ? fillValue : source[i01 + k]) * w01 +
          (i10 < 0 ? fillValue : source[i10 + k]) * w10 +
          (i11 < 0 ? fillValue : source[i11 + k]) * w11;
        output[offset++] = value + 0.5;
      }
    }
  }
  return output;
}
