import { deriveSeed, Random } from '@scarce/core';
import {
  FILL_MODES,
  INTERPOLATIONS,
  SHARP_ENGINE_MIN_PIXELS,
  WARP_ENGINES,
  type FillMode,
  type Interpolation,
  type RandomTransform,
  type TransformConfig,
  type WarpEngine,
} from './config.js';

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
  /** Mirrored left to right before the other geometric transforms. */
  flip: boolean;
  /** Factor multiplying every pixel value after the warp. */
  brightness: number;
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
    flip: false,
    brightness: 1,
    fill: { mode: 'nearest', value: 0 },
    interpolation: 'bilinear',
    engine,
  };
}

/** Returns the engine a config selects, resolving `auto` by the interpolation and the image's pixel count. */
export function chooseEngine(config: TransformConfig, height: number, width: number): WarpEngine {
  if (config.engine !== 'auto') return config.engine;
  return config.interpolation === 'bilinear' && height * width >= SHARP_ENGINE_MIN_PIXELS ? 'sharp' : 'typescript';
}

/** Draws a value of `transform`, or returns `identity` when the transform is not drawn. */
function draw(transform: RandomTransform, random: Random, identity: number): number {
  if (transform.probability === 0 || !random.chance(transform.probability)) return identity;
  return random.uniform(transform.range[0], transform.range[1]);
}

/**
 * Draws the params of one view of a `height` x `width` image. Each transform draws from its own
 * generator, derived from `seed` and the transform's name, so adding a transform to a config
 * does not change the values the others draw.
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

  const flipProbability = config.horizontalFlip.probability;
  return {
    angle: draw(config.rotation, generator('rotation'), 0),
    shiftX: draw(config.widthShift, generator('widthShift'), 0) * width,
    shiftY: draw(config.heightShift, generator('heightShift'), 0) * height,
    zoomX,
    zoomY,
    flip: flipProbability > 0 && generator('horizontalFlip').chance(flipProbability),
    brightness: draw(config.brightness, generator('brightness'), 1),
    fill: { ...config.fill },
    interpolation: config.interpolation,
    engine: chooseEngine(config, height, width),
  };
}

function invalidParams(field: string, expected: string, value: unknown): Error {
  return new Error(
    `Invalid transform params '${field}': expected ${expected} but received ${JSON.stringify(value)}. ` +
      'Params must be the object that augmentRecord stored in the row.',
  );
}

function finiteNumber(params: Record<string, unknown>, field: string, check: (value: number) => boolean, expected: string): number {
  const value = params[field];
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) throw invalidParams(field, expected, value);
  return value;
}

/** Checks params read back from a row (JSON) before they are replayed. */
export function parseTransformParams(value: unknown): TransformParams {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidParams('params', 'an object', value);
  }
  const params = value as Record<string, unknown>;
  const any = () => true;

  const fill = params.fill as Record<string, unknown> | undefined;
  if (typeof fill !== 'object' || fill === null || !FILL_MODES.includes(fill.mode as FillMode)) {
    throw invalidParams('fill', `{ mode, value } with mode one of ${FILL_MODES.join(', ')}`, fill);
  }
  if (typeof fill.value !== 'number' || !Number.isInteger(fill.value) || fill.value < 0 || fill.value > 255) {
    throw invalidParams('fill.value', 'an integer in [0, 255]', fill.value);
  }
  if (typeof params.flip !== 'boolean') throw invalidParams('flip', 'true or false', params.flip);
  if (!INTERPOLATIONS.includes(params.interpolation as Interpolation)) {
    throw invalidParams('interpolation', `one of ${INTERPOLATIONS.join(', ')}`, params.interpolation);
  }
  if (!WARP_ENGINES.includes(params.engine as WarpEngine)) {
    throw invalidParams('engine', `one of ${WARP_ENGINES.join(', ')}`, params.engine);
  }
  if (params.engine === 'sharp' && params.interpolation !== 'bilinear') {
    throw invalidParams('interpolation', "'bilinear', the only interpolation of the 'sharp' engine", params.interpolation);
  }

  return {
    angle: finiteNumber(params, 'angle', any, 'a finite number of degrees'),
    shiftX: finiteNumber(params, 'shiftX', any, 'a finite number of pixels'),
    shiftY: finiteNumber(params, 'shiftY', any, 'a finite number of pixels'),
    zoomX: finiteNumber(params, 'zoomX', (zoom) => zoom > 0, 'a scale > 0'),
    zoomY: finiteNumber(params, 'zoomY', (zoom) => zoom > 0, 'a scale > 0'),
    flip: params.flip,
    brightness: finiteNumber(params, 'brightness', (factor) => factor >= 0, 'a factor >= 0'),
    fill: { mode: fill.mode as FillMode, value: fill.value },
    interpolation: params.interpolation as Interpolation,
    engine: params.engine as WarpEngine,
  };
}
