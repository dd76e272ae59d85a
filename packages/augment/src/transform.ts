import type { ImageRecord, RawImage } from '@scarce/core/io';
import { resolveTransformConfig, type TransformConfig, type TransformOptions } from './config.js';
import { applyCheckedTransform } from './apply-transform.js';
import { sampleTransformParams, type TransformParams } from './params.js';
import { parseTransformParams } from './params-check.js';

/**
 * Applies the transform that `params` describe, in a fixed order: the warp (mirror, zoom,
 * shear, rotation, shift and crop in one affine map, with the recorded engine), then brightness,
 * contrast, saturation, hue, blur, noise and cutout. The output has the channels of the input and
 * its size, or `params.outputSize` with a crop. Replaying the params of an augmented row (as read
 * back from a shard) on its source gives the row's pixels exactly, with the same sharp/libvips
 * version when the row was warped by sharp. Throws an error naming the field when the params are
 * not valid.
 */
export async function applyTransform(image: RawImage, params: TransformParams | Record<string, unknown>): Promise<RawImage> {
  return applyCheckedTransform(image, parseTransformParams(params));
}

/**
 * Rejects records that must not be augmented: anything but a real train record with a source
 * index. Augmented rows of validation or test images would leak them into training.
 */
export function checkAugmentable(record: ImageRecord, position?: number): void {
  const where = position === undefined ? 'The record' : `Record ${position}`;
  if (record.split !== 'train') {
    throw new Error(
      `${where} is in the '${record.split}' split; only train records can be augmented, because augmented ` +
        `rows of validation or test images would leak them into training. Pass recordsOfSplit(dataset, 'train').`,
    );
  }
  if (record.origin !== 'real') {
    throw new Error(`${where} has origin '${record.origin}'; only real records can be augmented.`);
  }
  if (!Number.isInteger(record.sourceIndex) || (record.sourceIndex as number) < 0) {
    throw new Error(`${where} has source index ${record.sourceIndex}; a real record needs its non-negative index in its split.`);
  }
}

/**
 * Draws one view of a real train record and applies it. The result keeps the label, size,
 * channels and source index, and records the seed and the drawn params so it can be replayed.
 * `view` is the view number stored on the result (1..K within a dataset).
 */
export async function augmentRecord(
  record: ImageRecord,
  transforms: TransformOptions | TransformConfig,
  seed: number,
  view = 1,
): Promise<ImageRecord> {
  checkAugmentable(record);
  const config = resolveTransformConfig(transforms);

  const params = sampleTransformParams(config, record.height, record.width, seed);
  const image = await applyTransform(record, params);
  return {
    ...image,
    label: record.label,
    origin: 'augmented',
    sourceIndex: record.sourceIndex,
    view,
    seed: seed >>> 0,
    params,
    split: 'train',
  };
}

export { viewSeed } from './params.js';
