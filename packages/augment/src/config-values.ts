/**
 * Transform types and constants without zod, for code that runs in worker threads and must
 * start fast; `config.ts` re-exports them with the option checking.
 */

/** A closed interval [low, high] that a value is drawn from uniformly. */
export type Range = readonly [number, number];

/**
 * Fill of pixels that map from outside the source image, as Keras' `fill_mode` defines it:
 * `nearest` repeats the edge pixel (aaaa|abcd|dddd, the Keras default),
 * `constant` uses `fill.value`,
 * `reflect` mirrors about the edge (dcba|abcd|dcba),
 * `wrap` repeats the image (abcd|abcd|abcd).
 */
export type FillMode = 'nearest' | 'constant' | 'reflect' | 'wrap';
export const FILL_MODES: readonly FillMode[] = ['nearest', 'constant', 'reflect', 'wrap'];

/** Sampling between source pixels in the warp. */
export type Interpolation = 'bilinear' | 'nearest';
export const INTERPOLATIONS: readonly Interpolation[] = ['bilinear', 'nearest'];

/** Code that computes the geometric warp: a TypeScript loop on raw pixels, or libvips through sharp. */
export type WarpEngine = 'typescript' | 'sharp';
export const WARP_ENGINES: readonly WarpEngine[] = ['typescript', 'sharp'];

/** Unit of a shift: a fraction of the image side, or pixels. */
export type ShiftUnit = 'fraction' | 'pixels';

/** A transform drawn from `range` with the given probability, and left out otherwise. */
export interface RandomTransform {
  /** Chance that a view gets this transform, in [0, 1]; 0 turns the transform off. */
  probability: number;
  /** Interval the value is drawn from, in the unit of the transform. */
  range: Range;
}

/** Checked crop settings. */
export interface CropConfig {
  probability: number;
  /** Output [height, width] in pixels. */
  size: readonly [number, number];
}

/** Checked random resized crop settings. */
export interface ResizedCropConfig extends CropConfig {
  /** Share of the image area the region covers. */
  scale: Range;
  /** Width / height of the region. */
  ratio: Range;
}

/** Checked transform settings with every field filled in. */
export interface TransformConfig {
  /** Degrees, counter-clockwise as displayed. */
  rotation: RandomTransform;
  /** Positive moves the content right; in `unit`. */
  widthShift: RandomTransform & { unit: ShiftUnit };
  /** Positive moves the content down; in `unit`. */
  heightShift: RandomTransform & { unit: ShiftUnit };
  /** Scale of the content; above 1 enlarges. */
  zoom: RandomTransform & { perAxis: boolean };
  /** Degrees of horizontal shear. */
  shear: RandomTransform;
  horizontalFlip: { probability: number };
  verticalFlip: { probability: number };
  crop: CropConfig | null;
  resizedCrop: ResizedCropConfig | null;
  /** Factor multiplying every pixel value. */
  brightness: RandomTransform;
  /** Factor scaling the distance from the mean gray level. */
  contrast: RandomTransform;
  /** Factor scaling the distance from each pixel's gray level. */
  saturation: RandomTransform;
  /** Fraction of the hue circle added to every pixel's hue. */
  hue: RandomTransform;
  /** Standard deviation of the Gaussian kernel, in pixels. */
  blur: RandomTransform;
  /** Standard deviation of the added noise, in 8-bit levels. */
  noise: RandomTransform;
  /** Rectangle sides as fractions of the image sides (drawn from `size`), how many, and their 8-bit fill value. */
  cutout: { probability: number; size: Range; count: number; value: number };
  /** Fill mode, and the 8-bit value that `constant` writes into every channel. */
  fill: { mode: FillMode; value: number };
  interpolation: Interpolation;
  engine: WarpEngine | 'auto';
}

/**
 * Pixel count (height x width) from which the `auto` engine warps bilinear views with sharp
 * instead of TypeScript. On a 2-core machine the TypeScript warp used less CPU time at every
 * size measured (28 to 768 px), and it was as fast or faster in wall time up to 512 x 512.
 * sharp only gains by running on libuv's thread pool. At 768 x 768 the two were even on 2 cores,
 * and sharp should pull ahead with more cores (an estimate, not measured).
 */
export const SHARP_ENGINE_MIN_PIXELS = 768 * 768;


/** Returns whether a config changes the output size, which only the TypeScript engine supports. */
export function changesSize(config: TransformConfig): boolean {
  return config.crop !== null || config.resizedCrop !== null;
}
