import type { TransformParams } from './params.js';

/**
 * A 2-D affine map (x, y) -> (a x + b y + tx, c x + d y + ty) in pixel-index coordinates:
 * x to the right, y down, and the centre of pixel (i, j) at (i, j).
 */
export interface AffineMatrix {
  a: number;
  b: number;
  c: number;
  d: number;
  tx: number;
  ty: number;
}

/** Cosine and sine of an angle in degrees, exact at multiples of 90 degrees. */
function cosineSine(degrees: number): [number, number] {
  if (degrees % 90 === 0) {
    const quarterTurns = (((degrees / 90) % 4) + 4) % 4;
    return ([[1, 0], [0, 1], [-1, 0], [0, -1]] as const)[quarterTurns] as [number, number];
  }
  const radians = (degrees * Math.PI) / 180;
  return [Math.cos(radians), Math.sin(radians)];
}

/**
 * Builds the map from source to output pixels: mirror (when `flip` or `flipVertical`), scale,
 * shear, rotate counter-clockwise, all about the image centre, then shift. A point right of the
 * centre moves up under a positive angle, because y points down. With a crop, the region
 * `params.crop` of that result is then scaled to `params.outputSize`, with pixel centres at
 * half-pixel offsets as image resizers place them.
 */
export function forwardMatrix(params: TransformParams, height: number, width: number): AffineMatrix {
  const [cosine, sine] = cosineSine(params.angle);
  const scaleX = params.zoomX * (params.flip ? -1 : 1);
  const scaleY = params.zoomY * (params.flipVertical ? -1 : 1);
  const shearFactor = params.shear === 0 ? 0 : Math.tan((params.shear * Math.PI) / 180);
  const a = cosine * scaleX;
  const b = (cosine * shearFactor + sine) * scaleY;
  const c = -sine * scaleX;
  const d = (cosine - sine * shearFactor) * scaleY;

  const centreX = (width - 1) / 2;
  const centreY = (height - 1) / 2;
  const tx = centreX + params.shiftX - (a * centreX + b * centreY);
  const ty = centreY + params.shiftY - (c * centreX + d * centreY);
  if (params.crop === null || params.outputSize === null) return { a, b, c, d, tx, ty };

  const scaleToOutputX = params.outputSize[1] / params.crop.width;
  const scaleToOutputY = params.outputSize[0] / params.crop.height;
  return {
    a: a * scaleToOutputX,
    b: b * scaleToOutputX,
    c: c * scaleToOutputY,
    d: d * scaleToOutputY,
    tx: (tx - params.crop.x + 0.5) * scaleToOutputX - 0.5,
    ty: (ty - params.crop.y + 0.5) * scaleToOutputY - 0.5,
  };
}

/** Inverts an affine map. The matrix part must be invertible, which zoom > 0 guarantees here. */
export function invertAffine(matrix: AffineMatrix): AffineMatrix {
  const { a, b, c, d, tx, ty } = matrix;
  const determinant = a * d - b * c;
  const ia = d / determinant;
  const ib = -b / determinant;
  const ic = -c / determinant;
  const id = a / determinant;
  return { a: ia, b: ib, c: ic, d: id, tx: -(ia * tx + ib * ty), ty: -(ic * tx + id * ty) };
}

/** Returns whether the params move no pixel, so the warp can be skipped. */
export function isIdentityGeometry(params: TransformParams): boolean {
  const unmoved = params.angle % 360 === 0 && params.shiftX === 0 && params.shiftY === 0 && params.shear === 0;
  const unscaled = params.zoomX === 1 && params.zoomY === 1 && params.crop === null;
  return unmoved && unscaled && !params.flip && !params.flipVertical;
}
