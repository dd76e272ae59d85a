import { loadSharp, type RawImage } from '@scarce/core/codec';
import { invertAffine, type AffineMatrix } from './geometry.js';
import { fillIndex, type WarpSettings } from './warp-typescript.js';

/** Source pixels added around the area the output reads, so bilinear taps never reach libvips' own edge. */
const MARGIN_PIXELS = 2;

interface Padding {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Output canvas of libvips' affine: its origin in output space and its size. */
interface Canvas {
  left: number;
  top: number;
  width: number;
  height: number;
}

function toBuffer(pixels: Uint8Array): Buffer {
  return Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

/** Copies an image into a larger one, filling the border as the fill mode reads outside pixels. */
function padImage(image: RawImage, padding: Padding, settings: WarpSettings): RawImage {
  const { pixels, height, width, channels } = image;
  const paddedWidth = width + padding.left + padding.right;
  const paddedHeight = height + padding.top + padding.bottom;
  const padded = new Uint8Array(paddedHeight * paddedWidth * channels);
  const { mode, value } = settings.fill;
  const sourceRowBytes = width * channels;

  for (let y = 0; y < paddedHeight; y++) {
    const row = fillIndex(y - padding.top, height, mode);
    const target = y * paddedWidth * channels;
    if (row < 0) {
      padded.fill(value, target, target + paddedWidth * channels);
      continue;
    }
    const sourceRow = row * sourceRowBytes;
    padded.set(pixels.subarray(sourceRow, sourceRow + sourceRowBytes), target + padding.left * channels);
    for (let x = 0; x < paddedWidth; x++) {
      if (x === padding.left) x += width;
      if (x >= paddedWidth) break;
      const column = fillIndex(x - padding.left, width, mode);
      for (let k = 0; k < channels; k++) {
        padded[target + x * channels + k] = column < 0 ? value : pixels[sourceRow + column * channels + k];
      }
    }
  }
  return { pixels: padded, height: paddedHeight, width: paddedWidth, channels };
}

/**
 * Predicts the canvas libvips 8.17 gives `affine` without an output area. It is the bounding box
 * of the input rectangle [0, width] x [0, height] mapped by the matrix alone, because the offsets
 * move the content, not the canvas. Its origin and size are each rounded half up, as JavaScript's
 * Math.round does. The rule was found by probing sharp 0.34.5, so `warpWithSharp` checks the size.
 */
function predictCanvas(matrix: AffineMatrix, height: number, width: number): Canvas {
  const xs = [0, matrix.a * width, matrix.b * height, matrix.a * width + matrix.b * height];
  const ys = [0, matrix.c * width, matrix.d * height, matrix.c * width + matrix.d * height];
  const minX = Math.min(...xs);
  const minY = Math.min(...ys);
  return {
    left: Math.round(minX),
    top: Math.round(minY),
    width: Math.round(Math.max(...xs) - minX),
    height: Math.round(Math.max(...ys) - minY),
  };
}

/**
 * Padding that lets every output pixel read real or filled source pixels. With `constant` fill a
 * thin border is enough, because libvips fills the rest with the same value. The other modes
 * need the whole area that the output reads, so that libvips never fills.
 */
function paddingFor(forward: AffineMatrix, height: number, width: number, settings: WarpSettings): Padding {
  if (settings.fill.mode === 'constant') {
    return { left: MARGIN_PIXELS, right: MARGIN_PIXELS, top: MARGIN_PIXELS, bottom: MARGIN_PIXELS };
  }
  const inverse = invertAffine(forward);
  const corners = [
    [0, 0],
    [width - 1, 0],
    [0, height - 1],
    [width - 1, height - 1],
  ];
  const sourceXs = corners.map(([x, y]) => inverse.a * x + inverse.b * y + inverse.tx);
  const sourceYs = corners.map(([x, y]) => inverse.c * x + inverse.d * y + inverse.ty);
  return {
    left: Math.max(0, Math.ceil(-Math.min(...sourceXs))) + MARGIN_PIXELS,
    right: Math.max(0, Math.ceil(Math.max(...sourceXs) - (width - 1))) + MARGIN_PIXELS,
    top: Math.max(0, Math.ceil(-Math.min(...sourceYs))) + MARGIN_PIXELS,
    bottom: Math.max(0, Math.ceil(Math.max(...sourceYs) - (height - 1))) + MARGIN_PIXELS,
  };
}

/**
 * Warps an image with libvips' affine through sharp, with bilinear interpolation. Its values
 * match `warpWithTypeScript` to within one level, because libvips interpolates 8-bit images in
 * fixed point. sharp cannot crop after an affine in the same pipeline, and its canvas grows to
 * hold the whole turned image. So the source is padded here first, the affine offsets put the
 * output window at the canvas origin, and the window is cut out afterwards.
 */
export async function warpWithSharp(image: RawImage, forward: AffineMatrix, settings: WarpSettings): Promise<Uint8Array> {
  const { height, width, channels } = image;
  // libvips' nearest-neighbour sampling did not follow one rounding rule in probes with sharp
  // 0.34.5, so it would not match the TypeScript engine.
  if (settings.interpolation !== 'bilinear') {
    throw new Error(
      `The sharp engine warps with bilinear interpolation only, but '${settings.interpolation}' was requested. ` +
        "Use the 'typescript' engine.",
    );
  }
  const { a, b, c, d } = forward;

  let padding = paddingFor(forward, height, width, settings);
  let canvas = predictCanvas(forward, height + padding.top + padding.bottom, width + padding.left + padding.right);
  // libvips renders only the canvas, which does not move with the offsets, so the canvas must be
  // at least as large as the output window. A shrunk source maps to a smaller canvas, so pad further.
  while (canvas.width < width || canvas.height < height) {
    padding = { ...padding, right: padding.right + MARGIN_PIXELS, bottom: padding.bottom + MARGIN_PIXELS };
    canvas = predictCanvas(forward, height + padding.top + padding.bottom, width + padding.left + padding.right);
  }
  const padded = padImage(image, padding, settings);

  // Output pixel (x, y) is at A (p - padding) + t for source point p of the padded image, and
  // libvips puts A p + offset at canvas pixel (A p + offset - canvas origin).
  const offsetX = canvas.left + forward.tx - (a * padding.left + b * padding.top);
  const offsetY = canvas.top + forward.ty - (c * padding.left + d * padding.top);
  const fill = settings.fill.value;
  const raw = { width: padded.width, height: padded.height, channels: channels as 1 | 3 };
  const sharp = await loadSharp();
  let pipeline = sharp(toBuffer(padded.pixels), { raw }).affine([a, b, c, d], {
    odx: offsetX,
    ody: offsetY,
    interpolator: sharp.interpolators.bilinear,
    background: { r: fill, g: fill, b: fill },
  });
  if (channels === 1) pipeline = pipeline.toColourspace('b-w');
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== canvas.width || info.height !== canvas.height || info.channels !== channels) {
    throw new Error(
      `sharp's affine returned a ${info.width}x${info.height}x${info.channels} canvas where ` +
        `${canvas.width}x${canvas.height}x${channels} was expected, so this sharp/libvips version places ` +
        `its canvas differently. Use the 'typescript' engine.`,
    );
  }

  const output = new Uint8Array(height * width * channels);
  const rowBytes = width * channels;
  for (let y = 0; y < height; y++) {
    const start = y * canvas.width * channels;
    output.set(data.subarray(start, start + rowBytes), y * rowBytes);
  }
  return output;
}
