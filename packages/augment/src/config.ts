/**
 * Transform settings: what a caller writes (`TransformOptions`), the checked form every other
 * module reads (`TransformConfig`), and the defaults of both in `DEFAULT_TRANSFORMS`.
 */

/** A closed interval [low, high] that a value is drawn from uniformly. */
export type Range = readonly [number, number];

/**
 * Fill of pixels that map from outside the source image:
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

/** A random transform with a range: a symmetric bound, an explicit [low, high], or both with a probability. */
export type RangeOption = number | Range | { range: number | Range; probability?: number };

/**
 * Transform settings as a caller writes them, in the spirit of Keras' ImageDataGenerator.
 * Every field is optional and every transform is off unless set. A transform given as a
 * number or a pair is applied to every view (probability 1).
 */
export interface TransformOptions {
  /** Rotation in degrees, counter-clockwise: r draws the angle from [-r, r]. Default off. */
  rotation?: RangeOption;
  /** Horizontal shift as a fraction of the width: f draws from [-f, f]. Default off. */
  widthShift?: RangeOption;
  /** Vertical shift as a fraction of the height: f draws from [-f, f]. Default off. */
  heightShift?: RangeOption;
  /**
   * Zoom as a scale of the content (above 1 enlarges): z draws from [1 - z, 1 + z], as Keras'
   * `zoom_range` does. Default off. `perAxis: true` draws the horizontal and vertical scale
   * separately, as Keras does; the default draws one scale for both, which keeps the aspect ratio.
   */
  zoom?: RangeOption | { range: number | Range; probability?: number; perAxis?: boolean };
  /** Mirror left to right: `true` flips half of the views, as Keras does. Default off. */
  horizontalFlip?: boolean | { probability: number };
  /**
   * Brightness as a factor that multiplies every pixel, as torchvision's ColorJitter does:
   * b draws from [max(0, 1 - b), 1 + b]. Default off.
   */
  brightness?: RangeOption;
  /** Fill of pixels that come from outside the image: a mode, or `{ mode, value }`. Default `nearest`. */
  fill?: FillMode | { mode: FillMode; value?: number };
  /** Default `bilinear`. The sharp engine supports bilinear only. */
  interpolation?: Interpolation;
  /** Warp engine, or `auto` to pick by image size (see `SHARP_ENGINE_MIN_PIXELS`). Default `auto`. */
  engine?: WarpEngine | 'auto';
}

/** A transform drawn from `range` with the given probability, and left out otherwise. */
export interface RandomTransform {
  /** Chance that a view gets this transform, in [0, 1]; 0 turns the transform off. */
  probability: number;
  /** Interval the value is drawn from, in the unit of the transform. */
  range: Range;
}

/** Checked transform settings with every field filled in. */
export interface TransformConfig {
  /** Degrees, counter-clockwise as displayed. */
  rotation: RandomTransform;
  /** Fraction of the width; positive moves the content right. */
  widthShift: RandomTransform;
  /** Fraction of the height; positive moves the content down. */
  heightShift: RandomTransform;
  /** Scale of the content; above 1 enlarges. */
  zoom: RandomTransform & { perAxis: boolean };
  horizontalFlip: { probability: number };
  /** Factor multiplying every pixel value. */
  brightness: RandomTransform;
  /** Fill mode, and the 8-bit value that `constant` writes into every channel. */
  fill: { mode: FillMode; value: number };
  interpolation: Interpolation;
  engine: WarpEngine | 'auto';
}

/** Builds a transform that is off: probability 0, and a range that leaves the image unchanged. */
function off(identity: number): RandomTransform {
  return { probability: 0, range: [identity, identity] };
}

/**
 * The defaults: every transform off, fill `nearest` with value 0, bilinear interpolation and
 * the engine picked by image size. A transform that is set without a probability is applied to
 * every view, except `horizontalFlip: true`, which flips with probability 0.5.
 */
export const DEFAULT_TRANSFORMS: Readonly<TransformConfig> = Object.freeze({
  rotation: off(0),
  widthShift: off(0),
  heightShift: off(0),
  zoom: { ...off(1), perAxis: false },
  horizontalFlip: { probability: 0 },
  brightness: off(1),
  fill: { mode: 'nearest' as FillMode, value: 0 },
  interpolation: 'bilinear' as Interpolation,
  engine: 'auto' as const,
});

/**
 * Pixel count (height x width) from which the `auto` engine warps bilinear views with sharp
 * instead of TypeScript. On a 2-core machine the TypeScript warp used less CPU time at every
 * size measured (28 to 768 px), and it was as fast or faster in wall time up to 512 x 512.
 * sharp only gains by running on libuv's thread pool. At 768 x 768 the two were even on 2 cores,
 * and sharp should pull ahead with more cores (an estimate, not measured).
 */
export const SHARP_ENGINE_MIN_PIXELS = 768 * 768;

/** Probability of `horizontalFlip: true`. */
export const DEFAULT_FLIP_PROBABILITY = 0.5;

const TRANSFORM_FIELDS = [
  'rotation',
  'widthShift',
  'heightShift',
  'zoom',
  'horizontalFlip',
  'brightness',
  'fill',
  'interpolation',
  'engine',
] as const;

function describe(value: unknown): string {
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

function invalid(field: string, expected: string, value: unknown, example: string): Error {
  return new Error(
    `Invalid transform setting '${field}': expected ${expected} but received ${describe(value)}. ` +
      `For example: ${example}.`,
  );
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isPair(value: unknown): value is [number, number] {
  return Array.isArray(value) && value.length === 2 && value.every(isFiniteNumber) && value[0] <= value[1];
}

function checkProbability(field: string, value: unknown): number {
  if (!isFiniteNumber(value) || value < 0 || value > 1) {
    throw invalid(field, 'a probability in [0, 1]', value, `{ "range": 10, "probability": 0.5 }`);
  }
  return value;
}

/** Rules of one range transform: how a symmetric bound becomes an interval, and which pairs are valid. */
interface RangeRule {
  /** Unit and limits, for error messages. */
  expected: string;
  example: string;
  /** Turns a bound b into an interval, or returns undefined when b is out of bounds. */
  fromBound(bound: number): Range | undefined;
  /** Whether an explicit interval is within the limits. */
  acceptsPair(range: Range): boolean;
}

function checkKeys(field: string, fields: Record<string, unknown>, allowed: readonly string[]): void {
  const unknownKeys = Object.keys(fields).filter((key) => !allowed.includes(key));
  if (unknownKeys.length > 0) {
    throw new Error(
      `Unknown transform setting(s) ${unknownKeys.map((key) => `'${field}.${key}'`).join(', ')}; ` +
        `expected some of ${allowed.join(', ')}.`,
    );
  }
}

/** Splits a range transform option into its range and probability, applying the rule. */
function resolveRange(
  field: string,
  option: unknown,
  rule: RangeRule,
  identity: number,
  extraKeys: readonly string[] = [],
): RandomTransform {
  if (option === undefined || option === false) return off(identity);

  let rangeOption: unknown = option;
  let probability = 1;
  if (typeof option === 'object' && option !== null && !Array.isArray(option)) {
    const fields = option as Record<string, unknown>;
    checkKeys(field, fields, ['range', 'probability', ...extraKeys]);
    rangeOption = fields.range;
    if (fields.probability !== undefined) probability = checkProbability(`${field}.probability`, fields.probability);
    field = `${field}.range`;
  }

  let range: Range | undefined;
  if (isFiniteNumber(rangeOption)) range = rule.fromBound(rangeOption);
  else if (isPair(rangeOption) && rule.acceptsPair(rangeOption)) range = [rangeOption[0], rangeOption[1]];
  if (range === undefined) throw invalid(field, rule.expected, rangeOption, rule.example);

  const leavesImageUnchanged = range[0] === identity && range[1] === identity;
  return { probability: leavesImageUnchanged ? 0 : probability, range };
}

const ROTATION_RULE: RangeRule = {
  expected: 'a bound in degrees in [0, 180], or a pair [low, high] of degrees in [-360, 360] with low <= high',
  example: `{ "rotation": 15 } or { "rotation": [-10, 30] }`,
  fromBound: (bound) => (bound >= 0 && bound <= 180 ? [-bound, bound] : undefined),
  acceptsPair: ([low, high]) => low >= -360 && high <= 360,
};

function shiftRule(name: string): RangeRule {
  return {
    expected: 'a fraction of the image size in [0, 1], or a pair [low, high] in [-1, 1] with low <= high',
    example: `{ "${name}": 0.1 } or { "${name}": [-0.05, 0.2] }`,
    fromBound: (bound) => (bound >= 0 && bound <= 1 ? [-bound, bound] : undefined),
    acceptsPair: ([low, high]) => low >= -1 && high <= 1,
  };
}

const ZOOM_RULE: RangeRule = {
  expected: 'a bound z in [0, 1) giving scales [1 - z, 1 + z], or a pair of scales [low, high] with 0 < low <= high <= 10',
  example: `{ "zoom": 0.1 } or { "zoom": [0.8, 1.25] }`,
  fromBound: (bound) => (bound >= 0 && bound < 1 ? [1 - bound, 1 + bound] : undefined),
  acceptsPair: ([low, high]) => low > 0 && high <= 10,
};

const BRIGHTNESS_RULE: RangeRule = {
  expected: 'a bound b >= 0 giving factors [max(0, 1 - b), 1 + b], or a pair of factors [low, high] with 0 <= low <= high',
  example: `{ "brightness": 0.2 } or { "brightness": [0.8, 1.3] }`,
  fromBound: (bound) => (bound >= 0 ? [Math.max(0, 1 - bound), 1 + bound] : undefined),
  acceptsPair: ([low]) => low >= 0,
};

function resolveFlip(option: unknown): { probability: number } {
  if (option === undefined || option === false) return { probability: 0 };
  if (option === true) return { probability: DEFAULT_FLIP_PROBABILITY };
  if (typeof option === 'object' && option !== null && !Array.isArray(option)) {
    const fields = option as Record<string, unknown>;
    checkKeys('horizontalFlip', fields, ['probability']);
    return { probability: checkProbability('horizontalFlip.probability', fields.probability) };
  }
  throw invalid('horizontalFlip', 'true, false or { probability }', option, `{ "horizontalFlip": true }`);
}

function resolveFill(option: unknown): { mode: FillMode; value: number } {
  if (option === undefined) return { ...DEFAULT_TRANSFORMS.fill };
  const fields = typeof option === 'object' && option !== null ? (option as Record<string, unknown>) : { mode: option };
  checkKeys('fill', fields, ['mode', 'value']);
  const mode = fields.mode;
  if (!FILL_MODES.includes(mode as FillMode)) {
    const example = `{ "fill": "nearest" } or { "fill": { "mode": "constant", "value": 0 } }`;
    throw invalid('fill.mode', `one of ${FILL_MODES.join(', ')}`, mode, example);
  }
  const value = fields.value ?? DEFAULT_TRANSFORMS.fill.value;
  if (!isFiniteNumber(value) || !Number.isInteger(value) || value < 0 || value > 255) {
    throw invalid('fill.value', 'an integer pixel value in [0, 255]', value, `{ "fill": { "mode": "constant", "value": 0 } }`);
  }
  return { mode: mode as FillMode, value };
}

function resolveChoice<T extends string>(field: string, option: unknown, choices: readonly T[], fallback: T): T {
  if (option === undefined) return fallback;
  if (!choices.includes(option as T)) {
    throw invalid(field, `one of ${choices.join(', ')}`, option, `{ "${field}": "${fallback}" }`);
  }
  return option as T;
}

/**
 * Checks transform options and fills in the defaults. Throws an error naming the field, what
 * was expected and what was found. Unknown fields are errors too, so a misspelt transform is
 * not silently left off.
 */
export function resolveTransformConfig(options: TransformOptions = {}): TransformConfig {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new Error(`Invalid transform settings: expected an object but received ${describe(options)}.`);
  }
  const unknownFields = Object.keys(options).filter((key) => !(TRANSFORM_FIELDS as readonly string[]).includes(key));
  if (unknownFields.length > 0) {
    throw new Error(
      `Unknown transform setting(s) ${unknownFields.map((key) => `'${key}'`).join(', ')}; ` +
        `expected some of ${TRANSFORM_FIELDS.join(', ')}.`,
    );
  }

  const zoomOption = options.zoom;
  let perAxis = DEFAULT_TRANSFORMS.zoom.perAxis;
  if (typeof zoomOption === 'object' && zoomOption !== null && !Array.isArray(zoomOption) && 'perAxis' in zoomOption) {
    if (typeof zoomOption.perAxis !== 'boolean') {
      throw invalid('zoom.perAxis', 'true or false', zoomOption.perAxis, `{ "zoom": { "range": 0.1, "perAxis": true } }`);
    }
    perAxis = zoomOption.perAxis;
  }

  const interpolation = resolveChoice('interpolation', options.interpolation, INTERPOLATIONS, DEFAULT_TRANSFORMS.interpolation);
  const engine = resolveChoice<WarpEngine | 'auto'>('engine', options.engine, [...WARP_ENGINES, 'auto'], DEFAULT_TRANSFORMS.engine);
  if (engine === 'sharp' && interpolation !== 'bilinear') {
    throw new Error(
      `Invalid transform settings: the 'sharp' engine supports bilinear interpolation only, but interpolation is ` +
        `'${interpolation}'. Set engine to 'typescript' or 'auto'.`,
    );
  }

  return {
    rotation: resolveRange('rotation', options.rotation, ROTATION_RULE, 0),
    widthShift: resolveRange('widthShift', options.widthShift, shiftRule('widthShift'), 0),
    heightShift: resolveRange('heightShift', options.heightShift, shiftRule('heightShift'), 0),
    zoom: { ...resolveRange('zoom', options.zoom, ZOOM_RULE, 1, ['perAxis']), perAxis },
    horizontalFlip: resolveFlip(options.horizontalFlip),
    brightness: resolveRange('brightness', options.brightness, BRIGHTNESS_RULE, 1),
    fill: resolveFill(options.fill),
    interpolation,
    engine,
  };
}
