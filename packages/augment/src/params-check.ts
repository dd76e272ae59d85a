import { InputError } from '@scarce/core/io';
import { z } from 'zod';
import { FILL_MODES, INTERPOLATIONS, WARP_ENGINES, type FillMode, type Interpolation, type WarpEngine } from './config-values.js';
import type { TransformParams } from './params.js';

const finiteNumber = z.number().refine(Number.isFinite, 'expected a finite number');
const region = z.object({
  x: z.number().int().nonnegative(),
  y: z.number().int().nonnegative(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});

/**
 * Params as read back from a row. Fields added after the first release default to their
 * identity, so rows written before them still replay.
 */
const paramsSchema = z.object({
  angle: finiteNumber,
  shiftX: finiteNumber,
  shiftY: finiteNumber,
  zoomX: finiteNumber.refine((zoom) => zoom > 0, 'expected a scale > 0'),
  zoomY: finiteNumber.refine((zoom) => zoom > 0, 'expected a scale > 0'),
  shear: finiteNumber.refine((shear) => Math.abs(shear) < 90, 'expected degrees in (-90, 90)').default(0),
  flip: z.boolean({ error: 'expected true or false' }),
  flipVertical: z.boolean({ error: 'expected true or false' }).default(false),
  crop: region.nullable().default(null),
  outputSize: z.tuple([z.number().int().positive(), z.number().int().positive()]).nullable().default(null),
  brightness: finiteNumber.refine((factor) => factor >= 0, 'expected a factor >= 0'),
  contrast: finiteNumber.refine((factor) => factor >= 0, 'expected a factor >= 0').default(1),
  saturation: finiteNumber.refine((factor) => factor >= 0, 'expected a factor >= 0').default(1),
  hue: finiteNumber.refine((shift) => Math.abs(shift) <= 0.5, 'expected a shift in [-0.5, 0.5]').default(0),
  blur: finiteNumber.refine((sigma) => sigma >= 0, 'expected a standard deviation >= 0').default(0),
  noise: z.object({ std: finiteNumber.refine((std) => std >= 0, 'expected a standard deviation >= 0'), seed: z.number().int().nonnegative() }).default({ std: 0, seed: 0 }),
  cutout: z.array(region).default([]),
  cutoutValue: z.number().int().min(0).max(255).default(0),
  fill: z.object({
    mode: z.enum(FILL_MODES as [FillMode, ...FillMode[]], { error: `expected { mode, value } with mode one of ${FILL_MODES.join(', ')}` }),
    value: z.number().int().min(0).max(255),
  }, { error: `expected { mode, value } with mode one of ${FILL_MODES.join(', ')}` }),
  interpolation: z.enum(INTERPOLATIONS as [Interpolation, ...Interpolation[]], { error: `expected one of ${INTERPOLATIONS.join(', ')}` }),
  engine: z.enum(WARP_ENGINES as [WarpEngine, ...WarpEngine[]], { error: `expected one of ${WARP_ENGINES.join(', ')}` }),
});

/** Checks params read back from a row (JSON) before they are replayed; the error names the field. */
export function parseTransformParams(value: unknown): TransformParams {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputError(`Invalid transform params 'params': expected an object but received ${JSON.stringify(value)}.`);
  }
  const parsed = paramsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    let received: unknown = value;
    for (const key of issue.path) received = (received as Record<PropertyKey, unknown> | undefined)?.[key];
    throw new InputError(
      `Invalid transform params '${issue.path.join('.')}': ${issue.message} but received ${JSON.stringify(received)}. ` +
        'Params must be the object that augmentRecord stored in the row.',
    );
  }
  const params = parsed.data as TransformParams;
  if (params.engine === 'sharp' && params.interpolation !== 'bilinear') {
    throw new InputError(`Invalid transform params 'interpolation': expected 'bilinear', the only interpolation of the 'sharp' engine, but received "${params.interpolation}".`);
  }
  if (params.engine === 'sharp' && params.outputSize !== null) {
    throw new InputError(`Invalid transform params 'engine': the 'sharp' engine keeps the image size, but the params crop to ${params.outputSize.join('x')}.`);
  }
  if ((params.crop === null) !== (params.outputSize === null)) {
    throw new InputError(`Invalid transform params 'crop': crop and outputSize must both be set or both be null.`);
  }
  return params;
}
