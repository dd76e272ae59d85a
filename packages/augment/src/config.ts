/**
 * Transform settings: what a caller writes (`TransformOptions`), the checked form every other
 * module reads (`TransformConfig`), and the defaults of both in `DEFAULT_TRANSFORMS`. The
 * options are checked with zod, and every error names the field, what was expected, what was
 * found, and an example.
 */
import { InputError } from '@scarce/core/io';
import { z } from 'zod';
import {
  FILL_MODES,
  INTERPOLATIONS,
  type CropConfig,
  type FillMode,
  type Interpolation,
  type RandomTransform,
  type Range,
  type ResizedCropConfig,
  type ShiftUnit,
  type TransformConfig,
  type WarpEngine,
} from './config-values.js';

export * from './config-values.js';


/** A random transform with a range: a bound, an explicit [low, high], or either with a probability. */
export type RangeOption = number | Range | { range: number | Range; probability?: number };

/** A transform that is applied to a share of the views. */
export type FlipOption = boolean | { probability: number };

/** Random crop of a fixed output size, [height, width] in pixels. */
export type CropOption = readonly [number, number] | { size: readonly [number, number]; probability?: number };

/** Random resized crop, as torchvision's RandomResizedCrop. */
export type ResizedCropOption =
  | readonly [number, number]
  | { size: readonly [number, number]; scale?: Range; ratio?: Range; probability?: number };

/** Cutout: `count` rectangles filled with `value`, each side a fraction of the image side. */
export type CutoutOption = number | { size: number | Range; count?: number; value?: number; probability?: number };

/**
 * Transform settings as a caller writes them, in the spirit of Keras' ImageDataGenerator and
 * torchvision's transforms. Every field is optional and every transform is off unless set. A
 * transform given as a number or a pair is applied to every view (probability 1), except the
 * flips, which `true` applies to half of the views.
 */
export interface TransformOptions {
  /** Rotation in degrees, counter-clockwise: r draws the angle from [-r, r]. Default off. */
  rotation?: RangeOption;
  /**
   * Horizontal shift, positive to the right: f draws from [-f, f]. A fraction of the width
   * unless `unit: 'pixels'`. Default off.
   */
  widthShift?: RangeOption | { range: number | Range; probability?: number; unit?: ShiftUnit };
  /** Vertical shift, positive downwards; as `widthShift` with the height. Default off. */
  heightShift?: RangeOption | { range: number | Range; probability?: number; unit?: ShiftUnit };
  /**
   * Zoom as a scale of the content (above 1 enlarges): z draws from [1 - z, 1 + z], as Keras'
   * `zoom_range` does. Default off. `perAxis: true` draws the horizontal and vertical scale
   * separately, as Keras does; the default draws one scale for both, which keeps the aspect ratio.
   */
  zoom?: RangeOption | { range: number | Range; probability?: number; perAxis?: boolean };
  /** Horizontal shear angle in degrees: s draws from [-s, s]. Default off. */
  shear?: RangeOption;
  /** Mirror left to right: `true` flips half of the views, as Keras does. Default off. */
  horizontalFlip?: FlipOption;
  /** Mirror top to bottom: `true` flips half of the views. Default off. */
  verticalFlip?: FlipOption;
  /**
   * Random crop to [height, width] pixels at a uniformly drawn position. Views that do not draw
   * it (probability below 1) get the centre crop, so every view has the same size. Default off.
   */
  crop?: CropOption | null;
  /**
   * Random resized crop to [height, width] pixels, as torchvision's RandomResizedCrop: a region
   * of `scale` (default [0.08, 1]) times the area and aspect ratio in `ratio` (default [3/4, 4/3])
   * is resampled to the size. Views that do not draw it get the whole image resized. Default off.
   */
  resizedCrop?: ResizedCropOption | null;
  /**
   * Brightness as a factor that multiplies every pixel, as torchvision's ColorJitter does:
   * b draws from [max(0, 1 - b), 1 + b]. Default off.
   */
  brightness?: RangeOption;
  /** Contrast factor about the mean gray level, as ColorJitter: c draws from [max(0, 1 - c), 1 + c]. Default off. */
  contrast?: RangeOption;
  /** Saturation factor, as ColorJitter: s draws from [max(0, 1 - s), 1 + s]. Colour images only. Default off. */
  saturation?: RangeOption;
  /** Hue shift as a fraction of the colour circle: h in [0, 0.5] draws from [-h, h]. Colour images only. Default off. */
  hue?: RangeOption;
  /** Gaussian blur: s draws the standard deviation in pixels from [0, s]. Default off. */
  blur?: RangeOption;
  /** Gaussian noise: s draws the standard deviation in 8-bit levels from [0, s]. Default off. */
  noise?: RangeOption;
  /** Cutout: f erases one square-ish rectangle whose sides are f times the image sides. Default off. */
  cutout?: CutoutOption;
  /** Fill of pixels that come from outside the image: a mode, or `{ mode, value }`. Default `nearest`. */
  fill?: FillMode | { mode: FillMode; value?: number };
  /** Default `bilinear`. The sharp engine supports bilinear only. */
  interpolation?: Interpolation;
  /** Warp engine, or `auto` to pick by image size (see `SHARP_ENGINE_MIN_PIXELS`). Default `auto`. */
  engine?: WarpEngine | 'auto';
}


/** Builds a transform that is off: probability 0, and a range that leaves the image unchanged. */
function off(identity: number): RandomTransform {
  return { probability: 0, range: [identity, identity] };
}

/**
 * The defaults: every transform off, fill `nearest` with value 0, bilinear interpolation and
 * the engine picked by image size. A transform that is set without a probability is applied to
 * every view, except the flips, which `true` applies with probability 0.5.
 */
export const DEFAULT_TRANSFORMS: Readonly<TransformConfig> = Object.freeze({
  rotation: off(0),
  widthShift: { ...off(0), unit: 'fraction' as ShiftUnit },
  heightShift: { ...off(0), unit: 'fraction' as ShiftUnit },
  zoom: { ...off(1), perAxis: false },
  shear: off(0),
  horizontalFlip: { probability: 0 },
  verticalFlip: { probability: 0 },
  crop: null,
  resizedCrop: null,
  brightness: off(1),
  contrast: off(1),
  saturation: off(1),
  hue: off(0),
  blur: off(0),
  noise: off(0),
  cutout: { probability: 0, size: [0, 0] as Range, count: 1, value: 0 },
  fill: { mode: 'nearest' as FillMode, value: 0 },
  interpolation: 'bilinear' as Interpolation,
  engine: 'auto' as const,
});


/** Probability of `horizontalFlip: true` and `verticalFlip: true`. */
export const DEFAULT_FLIP_PROBABILITY = 0.5;

/** Default `scale` and `ratio` of `resizedCrop`, torchvision's. */
export const DEFAULT_RESIZED_CROP_SCALE: Range = [0.08, 1];
export const DEFAULT_RESIZED_CROP_RATIO: Range = [3 / 4, 4 / 3];

/** Rules of one range transform: how a bound becomes an interval, and which pairs are valid. */
interface RangeRule {
  /** Unit and limits, for error messages. */
  expected: string;
  example: string;
  /** Turns a bound b into an interval, or returns undefined when b is out of bounds. */
  fromBound(bound: number): Range | undefined;
  /** Whether an explicit interval is within the limits. */
  acceptsPair(range: Range): boolean;
  /** Value that leaves the image unchanged. */
  identity: number;
}

function symmetricRule(unit: string, maximumBound: number, example: string, pairLimit = maximumBound): RangeRule {
  return {
    expected: `a bound in ${unit} in [0, ${maximumBound}], or a pair [low, high] in [-${pairLimit}, ${pairLimit}] with low <= high`,
    example,
    fromBound: (bound) => (bound >= 0 && bound <= maximumBound ? [-bound, bound] : undefined),
    acceptsPair: ([low, high]) => low >= -pairLimit && high <= pairLimit,
    identity: 0,
  };
}

function factorRule(name: string): RangeRule {
  return {
    expected: 'a bound b >= 0 giving factors [max(0, 1 - b), 1 + b], or a pair of factors [low, high] with 0 <= low <= high',
    example: `{ "${name}": 0.2 } or { "${name}": [0.8, 1.3] }`,
    fromBound: (bound) => (bound >= 0 ? [Math.max(0, 1 - bound), 1 + bound] : undefined),
    acceptsPair: ([low]) => low >= 0,
    identity: 1,
  };
}

function fromZeroRule(name: string, unit: string, maximum: number, example: number): RangeRule {
  return {
    expected: `a bound s in [0, ${maximum}] ${unit} giving [0, s], or a pair [low, high] with 0 <= low <= high <= ${maximum}`,
    example: `{ "${name}": ${example} } or { "${name}": [${example / 2}, ${example}] }`,
    fromBound: (bound) => (bound >= 0 && bound <= maximum ? [0, bound] : undefined),
    acceptsPair: ([low, high]) => low >= 0 && high <= maximum,
    identity: 0,
  };
}

const RULES = {
  rotation: symmetricRule('degrees', 180, `{ "rotation": 15 } or { "rotation": [-10, 30] }`, 360),
  shiftFraction: (name: string) => symmetricRule('fractions of the image side', 1, `{ "${name}": 0.1 } or { "${name}": [-0.05, 0.2] }`),
  shiftPixels: (name: string): RangeRule => ({
    expected: 'a bound in pixels >= 0, or a pair [low, high] of pixels with low <= high',
    example: `{ "${name}": { "range": 4, "unit": "pixels" } }`,
    fromBound: (bound) => (bound >= 0 ? [-bound, bound] : undefined),
    acceptsPair: () => true,
    identity: 0,
  }),
  zoom: {
    expected: 'a bound z in [0, 1) giving scales [1 - z, 1 + z], or a pair of scales [low, high] with 0 < low <= high <= 10',
    example: `{ "zoom": 0.1 } or { "zoom": [0.8, 1.25] }`,
    fromBound: (bound: number): Range | undefined => (bound >= 0 && bound < 1 ? [1 - bound, 1 + bound] : undefined),
    acceptsPair: ([low, high]: Range) => low > 0 && high <= 10,
    identity: 1,
  },
  // Beyond about 80 degrees the shear factor tan(angle) grows without bound.
  shear: symmetricRule('degrees', 80, `{ "shear": 10 } or { "shear": [-5, 15] }`),
  hue: symmetricRule('fractions of the colour circle', 0.5, `{ "hue": 0.05 } or { "hue": [-0.1, 0.1] }`),
  blur: fromZeroRule('blur', 'pixels', 50, 1.5),
  noise: fromZeroRule('noise', 'levels of 255', 255, 8),
} satisfies Record<string, RangeRule | ((name: string) => RangeRule)>;

const finite = z.number().refine(Number.isFinite, 'expected a finite number');
const pair = z.tuple([finite, finite]).refine(([low, high]) => low <= high, 'expected a pair [low, high] with low <= high');
const probability = z.number().min(0, 'expected a probability in [0, 1]').max(1, 'expected a probability in [0, 1]');
const size = z.tuple([z.number().int().positive(), z.number().int().positive()], {
  error: 'expected [height, width] in whole pixels, e.g. [24, 24]',
});

/**
 * Dispatches on the JavaScript type of a value, so the issues of the matching form are reported
 * with their own paths rather than as one union failure.
 */
function byType(forms: { number?: z.ZodType; array?: z.ZodType; object?: z.ZodType; boolean?: z.ZodType; string?: z.ZodType }, expected: string) {
  return z.unknown().transform((value, context) => {
    if (value === undefined || value === false || value === null) return undefined;
    const kind = Array.isArray(value) ? 'array' : typeof value;
    const schema = forms[kind as keyof typeof forms];
    if (schema === undefined) {
      context.addIssue({ code: 'custom', message: expected, input: value });
      return z.NEVER;
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) context.addIssue({ ...issue, path: issue.path } as Parameters<typeof context.addIssue>[0]);
      return z.NEVER;
    }
    return parsed.data as unknown;
  }).optional();
}

function rangeObject(extra: z.ZodRawShape = {}) {
  return z.object({ range: byType({ number: finite, array: pair }, 'expected a bound or a pair [low, high]'), probability: probability.optional(), ...extra }).strict();
}

const rangeForm = (extra: z.ZodRawShape = {}) =>
  byType({ number: finite, array: pair, object: rangeObject(extra) }, 'expected a bound, a pair [low, high] or { "range": ..., "probability": ... }');
const flipForm = byType({ boolean: z.literal(true), object: z.object({ probability }).strict() }, 'expected true, false or { "probability": p }');
const cropObject = z.object({ size, probability: probability.optional() }).strict();
const resizedCropObject = z
  .object({ size, scale: pair.optional(), ratio: pair.optional(), probability: probability.optional() })
  .strict();
const cutoutObject = z
  .object({
    size: byType({ number: finite, array: pair }, 'expected a fraction or a pair of fractions of the image side'),
    count: z.number().int().min(1).max(100).optional(),
    value: z.number().int().min(0).max(255).optional(),
    probability: probability.optional(),
  })
  .strict();
const fillObject = z.object({ mode: z.enum(FILL_MODES as [FillMode, ...FillMode[]]), value: z.number().int().min(0).max(255).optional() }).strict();

const optionsSchema = z
  .object({
    rotation: rangeForm(),
    widthShift: rangeForm({ unit: z.enum(['fraction', 'pixels']).optional() }),
    heightShift: rangeForm({ unit: z.enum(['fraction', 'pixels']).optional() }),
    zoom: rangeForm({ perAxis: z.boolean().optional() }),
    shear: rangeForm(),
    horizontalFlip: flipForm,
    verticalFlip: flipForm,
    crop: byType({ array: size, object: cropObject }, 'expected [height, width] or { "size": [height, width], "probability": p }'),
    resizedCrop: byType({ array: size, object: resizedCropObject }, 'expected [height, width] or { "size": [height, width], "scale": [low, high], "ratio": [low, high] }'),
    brightness: rangeForm(),
    contrast: rangeForm(),
    saturation: rangeForm(),
    hue: rangeForm(),
    blur: rangeForm(),
    noise: rangeForm(),
    cutout: byType({ number: finite, object: cutoutObject }, 'expected a fraction of the image side or { "size": f, "count": n, "value": v }'),
    fill: byType(
      { string: z.enum(FILL_MODES as [FillMode, ...FillMode[]]).transform((mode) => ({ mode })), object: fillObject },
      `expected one of ${FILL_MODES.join(', ')} or { "mode": ..., "value": 0-255 }`,
    ),
    interpolation: z.enum(INTERPOLATIONS as [Interpolation, ...Interpolation[]]).optional(),
    engine: z.enum(['typescript', 'sharp', 'auto']).optional(),
  })
  .strict();

const EXAMPLES: Record<string, string> = {
  rotation: RULES.rotation.example,
  widthShift: RULES.shiftFraction('widthShift').example,
  heightShift: RULES.shiftFraction('heightShift').example,
  zoom: RULES.zoom.example,
  shear: RULES.shear.example,
  horizontalFlip: `{ "horizontalFlip": true } or { "horizontalFlip": { "probability": 0.3 } }`,
  verticalFlip: `{ "verticalFlip": true }`,
  crop: `{ "crop": [24, 24] }`,
  resizedCrop: `{ "resizedCrop": { "size": [224, 224], "scale": [0.5, 1] } }`,
  brightness: factorRule('brightness').example,
  contrast: factorRule('contrast').example,
  saturation: factorRule('saturation').example,
  hue: RULES.hue.example,
  blur: RULES.blur.example,
  noise: RULES.noise.example,
  cutout: `{ "cutout": 0.25 } or { "cutout": { "size": [0.1, 0.3], "count": 2, "value": 0 } }`,
  fill: `{ "fill": "nearest" } or { "fill": { "mode": "constant", "value": 0 } }`,
  interpolation: `{ "interpolation": "bilinear" }`,
  engine: `{ "engine": "auto" }`,
};

export const TRANSFORM_FIELDS = Object.keys(optionsSchema.shape) as ReadonlyArray<keyof TransformOptions>;

function describe(value: unknown): string {
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

/** Builds the error for one bad field: its path, what was expected, what was received, and an example. */
function invalid(field: string, expected: string, value: unknown): InputError {
  const example = EXAMPLES[field.split('.')[0]];
  return new InputError(
    `Invalid transform setting '${field}': ${expected.replace(/^expected /, 'expected ')} but received ${describe(value)}.` +
      (example === undefined ? '' : ` For example: ${example}.`),
  );
}

function issueToError(issue: z.core.$ZodIssue, options: unknown): InputError {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const prefix = path.length > 0 ? `${path.join('.')}.` : '';
    const keys = issue.keys.map((key) => `'${prefix}${key}'`).join(', ');
    const allowed = path.length === 0 ? TRANSFORM_FIELDS.join(', ') : Object.keys((valueAt(options, path) ?? {}) as object).join(', ');
    return new InputError(
      `Unknown transform setting(s) ${keys}; ` +
        (path.length === 0 ? `expected some of ${allowed}.` : `check the spelling against the documented fields of '${path.join('.')}'.`),
    );
  }
  const expected = issue.code === 'invalid_value' && 'values' in issue ? `expected one of ${(issue.values as unknown[]).join(', ')}` : issue.message;
  return invalid(path.join('.'), expected, valueAt(options, issue.path));
}

type Parsed = z.output<typeof optionsSchema>;
type RangeForm = number | [number, number] | { range: number | [number, number]; probability?: number; unit?: ShiftUnit; perAxis?: boolean };

/** Splits a parsed range option into its range and probability, applying the rule. */
function resolveRange(field: string, option: unknown, rule: RangeRule): RandomTransform {
  if (option === undefined) return off(rule.identity);
  const form = option as RangeForm;
  let range: number | [number, number];
  let chance = 1;
  let path = field;
  if (typeof form === 'object' && !Array.isArray(form)) {
    range = form.range;
    chance = form.probability ?? 1;
    path = `${field}.range`;
  } else {
    range = form;
  }

  const interval = typeof range === 'number' ? rule.fromBound(range) : rule.acceptsPair(range) ? ([range[0], range[1]] as const) : undefined;
  if (interval === undefined) throw invalid(path, `expected ${rule.expected}`, range);
  const leavesImageUnchanged = interval[0] === rule.identity && interval[1] === rule.identity;
  return { probability: leavesImageUnchanged ? 0 : chance, range: interval };
}

function resolveShift(field: 'widthShift' | 'heightShift', option: unknown): RandomTransform & { unit: ShiftUnit } {
  const unit = (typeof option === 'object' && option !== null && !Array.isArray(option) ? (option as { unit?: ShiftUnit }).unit : undefined) ?? 'fraction';
  const rule = unit === 'pixels' ? RULES.shiftPixels(field) : RULES.shiftFraction(field);
  return { ...resolveRange(field, option, rule), unit };
}

function resolveFlip(option: unknown): { probability: number } {
  if (option === undefined) return { probability: 0 };
  if (option === true) return { probability: DEFAULT_FLIP_PROBABILITY };
  return { probability: (option as { probability: number }).probability };
}

function resolveCrop(option: unknown): CropConfig | null {
  if (option === undefined) return null;
  if (Array.isArray(option)) return { probability: 1, size: [option[0], option[1]] };
  const form = option as z.output<typeof cropObject>;
  return { probability: form.probability ?? 1, size: form.size };
}

function resolveResizedCrop(option: unknown): ResizedCropConfig | null {
  if (option === undefined) return null;
  if (Array.isArray(option)) return { probability: 1, size: [option[0], option[1]], scale: DEFAULT_RESIZED_CROP_SCALE, ratio: DEFAULT_RESIZED_CROP_RATIO };
  const form = option as z.output<typeof resizedCropObject>;
  const scale = form.scale ?? DEFAULT_RESIZED_CROP_SCALE;
  const ratio = form.ratio ?? DEFAULT_RESIZED_CROP_RATIO;
  if (scale[0] <= 0 || scale[1] > 1) throw invalid('resizedCrop.scale', 'expected a pair of area shares in (0, 1]', scale);
  if (ratio[0] <= 0) throw invalid('resizedCrop.ratio', 'expected a pair of aspect ratios above 0', ratio);
  return { probability: form.probability ?? 1, size: form.size, scale, ratio };
}

function resolveCutout(option: unknown): TransformConfig['cutout'] {
  if (option === undefined) return { ...DEFAULT_TRANSFORMS.cutout };
  const form = typeof option === 'number' ? { size: option } : (option as z.output<typeof cutoutObject>);
  const sizeValue = form.size as number | [number, number];
  const range: Range = typeof sizeValue === 'number' ? [sizeValue, sizeValue] : sizeValue;
  if (range[0] < 0 || range[1] > 1) {
    throw invalid(typeof option === 'number' ? 'cutout' : 'cutout.size', 'expected a fraction of the image side in [0, 1], or a pair of them', sizeValue);
  }
  const leavesImageUnchanged = range[1] === 0;
  return { probability: leavesImageUnchanged ? 0 : (form.probability ?? 1), size: range, count: form.count ?? 1, value: form.value ?? 0 };
}

/**
 * Checks transform options and fills in the defaults. Throws an `InputError` naming the field,
 * what was expected and what was found. Unknown fields are errors too, so a misspelt transform is
 * not silently left off. A resolved config is accepted as options and comes back unchanged.
 */
export function resolveTransformConfig(options: TransformOptions = {}): TransformConfig {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InputError(`Invalid transform settings: expected an object but received ${describe(options)}.`);
  }
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw issueToError(parsed.error.issues[0], options);
  const fields: Parsed = parsed.data;

  const zoomForm = fields.zoom as RangeForm | undefined;
  const perAxis = typeof zoomForm === 'object' && !Array.isArray(zoomForm) ? (zoomForm.perAxis ?? false) : false;
  const fill = (fields.fill as { mode: FillMode; value?: number } | undefined) ?? DEFAULT_TRANSFORMS.fill;
  const config: TransformConfig = {
    rotation: resolveRange('rotation', fields.rotation, RULES.rotation),
    widthShift: resolveShift('widthShift', fields.widthShift),
    heightShift: resolveShift('heightShift', fields.heightShift),
    zoom: { ...resolveRange('zoom', fields.zoom, RULES.zoom), perAxis },
    shear: resolveRange('shear', fields.shear, RULES.shear),
    horizontalFlip: resolveFlip(fields.horizontalFlip),
    verticalFlip: resolveFlip(fields.verticalFlip),
    crop: resolveCrop(fields.crop),
    resizedCrop: resolveResizedCrop(fields.resizedCrop),
    brightness: resolveRange('brightness', fields.brightness, factorRule('brightness')),
    contrast: resolveRange('contrast', fields.contrast, factorRule('contrast')),
    saturation: resolveRange('saturation', fields.saturation, factorRule('saturation')),
    hue: resolveRange('hue', fields.hue, RULES.hue),
    blur: resolveRange('blur', fields.blur, RULES.blur),
    noise: resolveRange('noise', fields.noise, RULES.noise),
    cutout: resolveCutout(fields.cutout),
    fill: { mode: fill.mode, value: fill.value ?? DEFAULT_TRANSFORMS.fill.value },
    interpolation: fields.interpolation ?? DEFAULT_TRANSFORMS.interpolation,
    engine: fields.engine ?? DEFAULT_TRANSFORMS.engine,
  };

  if (config.crop !== null && config.resizedCrop !== null) {
    throw new InputError(`Invalid transform settings: 'crop' and 'resizedCrop' both set the output size; keep one of them.`);
  }
  if (config.engine === 'sharp' && config.interpolation !== 'bilinear') {
    throw new InputError(
      `Invalid transform settings: the 'sharp' engine supports bilinear interpolation only, but interpolation is ` +
        `'${config.interpolation}'. Set engine to 'typescript' or 'auto'.`,
    );
  }
  if (config.engine === 'sharp' && (config.crop !== null || config.resizedCrop !== null)) {
    throw new InputError(
      `Invalid transform settings: the 'sharp' engine keeps the image size, so it cannot apply 'crop' or 'resizedCrop'. ` +
        `Set engine to 'typescript' or 'auto'.`,
    );
  }
  return config;
}

