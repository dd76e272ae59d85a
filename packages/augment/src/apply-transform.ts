import { checkChannels, type RawImage } from '@scarce/core/codec';
import { forwardMatrix, invertAffine, isIdentityGeometry } from './geometry.js';
import type { TransformParams } from './params.js';
import { addGaussianNoise, adjustContrast, adjustHue, adjustSaturation, applyCutout, gaussianBlur, scaleBrightness } from './pixel-ops.js';
import { warpWithSharp } from './warp-sharp.js';
import { warpWithTypeScript } from './warp-typescript.js';

function checkImage(image: RawImage): void {
  checkChannels(image.channels);
  const expected = image.height * image.width * image.channels;
  if (image.pixels.length !== expected) {
    throw new Error(
      `Invalid image: its shape ${image.height}x${image.width}x${image.channels} needs ${expected} pixel values ` +
        `but it has ${image.pixels.length}.`,
    );
  }
}

/**
 * Applies params that `sampleTransformParams` drew, without checking them again: the check
 * costs as much as warping a 28 px image.
 */
export async function applyCheckedTransform(image: RawImage, checked: TransformParams): Promise<RawImage> {
  checkImage(image);
  const { channels } = image;
  const [height, width] = checked.outputSize ?? [image.height, image.width];

  let pixels: Uint8Array = image.pixels;
  if (!isIdentityGeometry(checked)) {
    const forward = forwardMatrix(checked, image.height, image.width);
    pixels =
      checked.engine === 'sharp'
        ? await warpWithSharp(image, forward, checked)
        : warpWithTypeScript(image, invertAffine(forward), checked, height, width);
  }
  const current = (): RawImage => ({ pixels, height, width, channels });
  // A warped image is a new array, so brightness may overwrite it. The caller's input is copied instead.
  const warped = pixels !== image.pixels;
  if (checked.brightness !== 1) pixels = scaleBrightness(pixels, checked.brightness, warped ? pixels : undefined);
  else if (!warped) pixels = pixels.slice();
  if (checked.contrast !== 1) pixels = adjustContrast(current(), checked.contrast);
  if (checked.saturation !== 1) pixels = adjustSaturation(current(), checked.saturation);
  if (checked.hue !== 0) pixels = adjustHue(current(), checked.hue);
  if (checked.blur > 0) pixels = gaussianBlur(current(), checked.blur);
  if (checked.noise.std > 0) pixels = addGaussianNoise(pixels, checked.noise.std, checked.noise.seed);
  if (checked.cutout.length > 0) pixels = applyCutout(current(), checked.cutout, checked.cutoutValue);
  return current();
}

