import { deriveSeed, InputError, Random } from '@scarce/core/codec';
import {
  changesSize,
  SHARP_ENGINE_MIN_PIXELS,
  type FillMode,
  type Interpolation,
  type RandomTransform,
  type ResizedCropConfig,
  type TransformConfig,
  type WarpEngine,
} from './config-values.js';

/** A rectangle in pixels: left, top, width and height. */
export interface PixelRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The values drawn for one view. They are stored as the row's `params`, and `applyTransform`
 * rebuilds the same pixels from them. A transform that was not drawn has its identity value.
 */
export type TransformParams = {
  /** Rotation in degrees, counter-clockwise as displayed. */
  angle: number;
  /** Horizontal shift in pixels; positive moves the content right. */
  shiftX: number;
  /** Vertical shift in pixels; positive moves the content down. */
  shiftY: number;
  /** Horizontal scale of the content; above 1 enlarges. */
  zoomX: number;
  /** Vertical scale of the content; above 1 enlarges. */
  zoomY: number;
  /** Horizontal shear in degrees: a point below the centre moves right by tan(shear) times its distance. */
  shear: number;
  /** Mirrored left to right before the other geometric transforms. */
  flip: boolean;
  /** Mirrored top to bottom before the other geometric transforms. */
  flipVertical: boolean;
  /**
   * Region of the warped image that becomes the output, resampled to `outputSize`; null keeps
   * the whole image at its size.
   */
  crop: PixelRegion | null;
  /** [height, width] of the output; null keeps the source size. */
  outputSize: [number, number] | null;
  /** Factor multiplying every pixel value after the warp. */
  brightness: number;
  /** Factor scaling each value's distance from the image's mean gray level. */
  contrast: number;
  /** Factor scaling each value's distance from its pixel's gray level; colour images only. */
  saturation: number;
  /** Fraction of the colour circle added to each pixel's hue; colour images only. */
  hue: number;
  /** Standard deviation of the Gaussian blur in pixels; 0 leaves the image unblurred. */
  blur: number;
  /** Standard deviation of the added Gaussian noise in 8-bit levels, and the seed of its samples. */
  noise: { std: number; seed: number };
  /** Rectangles set to `cutoutValue`, in output pixels. */
  cutout: PixelRegion[];
  cutoutValue: number;
  fill: { mode: FillMode; value: number };
  interpolation: Interpolation;
  engine: WarpEngine;
};

/** Returns the params of a view that leaves the image unchanged. */
export function identityParams(engine: WarpEngine = 'typescript'): TransformParams {
  return {
    angle: 0,
    shiftX: 0,
    shiftY: 0,
    zoomX: 1,
    zoomY: 1,
    shear: 0,
    flip: false,
    flipVertical: false,
    crop: null,
    outputSize: null,
    brightness: 1,
    contrast: 1,
    saturation: 1,
    hue: 0,
    blur: 0,
    noise: { std: 0, seed: 0 },
    cutout: [],
    cutoutValue: 0,
    fill: { mode: 'nearest', value: 0 },
    interpolation: 'bilinear',
    engine,
  };
}

/** Returns the engine a config selects, resolving `auto` by the interpolation, the output size and the image's pixel count. */
export function chooseEngine(config: TransformConfig, height: number, width: number): WarpEngine {
  if (config.engine !== 'auto') return config.engine;
  if (changesSize(config)) return 'typescript';
  return config.interpolation === 'bilinear' && height * width >= SHARP_ENGINE_MIN_PIXELS ? 'sharp' : 'typescript';
}

/** Draws a value of `transform`, or returns `identity` when the transform is not drawn. */
function draw(transform: RandomTransform, random: Random, identity: number): number {
  if (transform.probability === 0 || !random.chance(transform.probability)) return identity;
  return random.uniform(transform.range[0], transform.range[1]);
}

/**
 * Draws the region of torchvision's RandomResizedCrop: up to 10 tries at a region of the drawn
 * area share and log-uniform aspect ratio that fits, then the centre crop with the ratio clamped.
 */
function drawResizedCrop(config: ResizedCropConfig, random: Random, height: number, width: number): PixelRegion {
  const area = height * width;
  const [logLow, logHigh] = [Math.log(config.ratio[0]), Math.log(config.ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * random.uniform(config.scale[0], config.scale[1]);
    const aspect = Math.exp(random.uniform(logLow, logHigh));
    const regionWidth = Math.round(Math.sqrt(targetArea * aspect));
    const regionHeight = Math.round(Math.sqrt(targetArea / aspect));
    if (regionWidth > 0 && regionHeight > 0 && regionWidth <= width && regionHeight <= height) {
      const y = random.integer(0, height - regionHeight + 1);
      const x = random.integer(0, width - regionWidth + 1);
      return { x, y, width: regionWidth, height: regionHeight };
    }
  }
  const inputRatio = width / height;
  let regionWidth = width;
  let regionHeight = height;
  if (inputRatio < config.ratio[0]) regionHeight = Math.round(width / config.ratio[0]);
  else if (inputRatio > config.ratio[1]) regionWidth = Math.round(height * config.ratio[1]);
  return { x: Math.floor((width - regionWidth) / 2), y: Math.floor((height - regionHeight) / 2), width: regionWidth, height: regionHeight };
}

/** Draws the crop region and output size, or nulls when the config keeps the whole image. */
function drawCrop(config: TransformConfig, random: Random, height: number, width: number): Pick<TransformParams, 'crop' | 'outputSize'> {
  if (config.crop !== null) {
    const [cropHeight, cropWidth] = config.crop.size;
    if (cropHeight > height || cropWidth > width) {
      throw new InputError(`Invalid transform setting 'crop': the crop ${cropHeight}x${cropWidth} is larger than the ${height}x${width} image. Choose a crop no larger than the images.`);
    }
    const drawn = config.crop.probability > 0 && random.chance(config.crop.probability);
    const x = drawn ? random.integer(0, width - cropWidth + 1) : Math.floor((width - cropWidth) / 2);
    const y = drawn ? random.integer(0, height - cropHeight + 1) : Math.floor((height - cropHeight) / 2);
    return { crop: { x, y, width: cropWidth, height: cropHeight }, outputSize: [cropHeight, cropWidth] };
  }
  if (config.resizedCrop !== null) {
    const drawn = config.resizedCrop.probability > 0 && random.chance(config.resizedCrop.probability);
    const region = drawn ? drawResizedCrop(config.resizedCrop, random, height, width) : { x: 0, y: 0, width, height };
    return { crop: region, outputSize: [config.resizedCrop.size[0], config.resizedCrop.size[1]] };
  }
  return { crop: null, outputSize: null };
}

/** Draws the cutout rectangles, centred uniformly in the output and clipped at its edges, as in DeVries and Taylor's Cutout. */
function drawCutout(config: TransformConfig, random: Random, height: number, width: number): PixelRegion[] {
  const { cutout } = config;
  if (cutout.probability === 0 || !random.chance(cutout.probability)) return [];
  const regions: PixelRegion[] = [];
  for (let i = 0; i < cutout.count; i++) {
    const fraction = random.uniform(cutout.size[0], cutout.size[1]);
    const sideY = Math.round(fraction * height);
    const sideX = Math.round(fraction * width);
    const centreY = random.integer(0, height);
    const centreX = random.integer(0, width);
    const top = Math.max(0, centreY - Math.floor(sideY / 2));
    const left = Math.max(0, centreX - Math.floor(sideX / 2));
    const bottom = Math.min(height, centreY - Math.floor(sideY / 2) + sideY);
    const right = Math.min(width, centreX - Math.floor(sideX / 2) + sideX);
    if (bottom > top && right > left) regions.push({ x: left, y: top, width: right - left, height: bottom - top });
  }
  return regions;
}

/**
 * Draws the params of one view of a `height` x `width` image. Each transform draws from its own
 * generator, derived from `seed` and the transform's name, so adding a transform to a config
 * does not change the values the others draw. Throws an `InputError` when a crop is larger than
 * the image.
 */
export function sampleTransformParams(config: TransformConfig, height: number, width: number, seed: number): TransformParams {
  const generator = (name: string) => new Random(deriveSeed(seed, name));

  const zoomRandom = generator('zoom');
  let zoomX = 1;
  let zoomY = 1;
  if (config.zoom.probability > 0 && zoomRandom.chance(config.zoom.probability)) {
    const [low, high] = config.zoom.range;
    zoomX = zoomRandom.uniform(low, high);
    zoomY = config.zoom.perAxis ? zoomRandom.uniform(low, high) : zoomX;
  }

  const shiftScaleX = config.widthShift.unit === 'pixels' ? 1 : width;
  const shiftScaleY = config.heightShift.unit === 'pixels' ? 1 : height;
  const { crop, outputSize } = drawCrop(config, generator('crop'), height, width);
  const [outputHeight, outputWidth] = outputSize ?? [height, width];
  const noiseStd = draw(config.noise, generator('noise'), 0);
  const flipProbability = config.horizontalFlip.probability;
  const verticalFlipProbability = config.verticalFlip.probability;
  return {
    angle: draw(config.rotation, generator('rotation'), 0),
    shiftX: draw(config.widthShift, generator('widthShift'), 0) * shiftScaleX,
    shiftY: draw(config.heightShift, generator('heightShift'), 0) * shiftScaleY,
    zoomX,
    zoomY,
    shear: draw(config.shear, generator('shear'), 0),
    flip: flipProbability > 0 && generator('horizontalFlip').chance(flipProbability),
    flipVertical: verticalFlipProbability > 0 && generator('verticalFlip').chance(verticalFlipProbability),
    crop,
    outputSize,
    brightness: draw(config.brightness, generator('brightness'), 1),
    contrast: draw(config.contrast, generator('contrast'), 1),
    saturation: draw(config.saturation, generator('saturation'), 1),
    hue: draw(config.hue, generator('hue'), 0),
    blur: draw(config.blur, generator('blur'), 0),
    noise: { std: noiseStd, seed: noiseStd === 0 ? 0 : deriveSeed(seed, 'noise samples') },
    cutout: drawCutout(config, generator('cutout'), outputHeight, outputWidth),
    cutoutValue: config.cutout.value,
    fill: { ...config.fill },
    interpolation: config.interpolation,
    engine: chooseEngine(config, height, width),
  };
}

/** Returns the seed of view `view` of the record with source index `sourceIndex`, for a run seed. */
export function viewSeed(seed: number, sourceIndex: number, view: number): number {
  return deriveSeed(seed, 'augment', sourceIndex, view);
}
