import { Random, type RawImage } from '@scarce/core/codec';
import type { PixelRegion } from './params.js';
import { fillIndex } from './warp-typescript.js';

/**
 * Pixel transforms applied after the warp, each on 8-bit pixels channels last. Each returns a
 * new array and leaves its input unchanged.
 */

/**
 * Multiplies every pixel value by `factor`, dropping the fraction and clipping at 255, as sharp's
 * `linear(factor, 0)` and torchvision's ColorJitter on uint8 tensors do. Writes into `output`,
 * which may be `pixels` itself.
 */
export function scaleBrightness(pixels: Uint8Array, factor: number, output: Uint8Array = new Uint8Array(pixels.length)): Uint8Array {
  const table = new Uint8Array(256);
  // libvips computes linear() on 8-bit images in single precision; rounding the same way matches it exactly.
  const singleFactor = Math.fround(factor);
  for (let value = 0; value < 256; value++) table[value] = Math.min(255, Math.floor(Math.fround(value * singleFactor)));
  return applyTable(pixels, table, output);
}

function applyTable(pixels: Uint8Array, table: Uint8Array, output: Uint8Array = new Uint8Array(pixels.length)): Uint8Array {
  for (let i = 0; i < pixels.length; i++) output[i] = table[pixels[i]];
  return output;
}

/** Gray level of an RGB pixel with torchvision's weights, truncated to 8 bits as its uint8 path does. */
function grayOf(red: number, green: number, blue: number): number {
  return Math.floor(0.2989 * red + 0.587 * green + 0.114 * blue);
}

/**
 * Scales each value's distance from the image's mean gray level by `factor`, clipping to
 * [0, 255] and dropping the fraction, as torchvision's `adjust_contrast` does on uint8 images.
 */
export function adjustContrast(image: RawImage, factor: number): Uint8Array {
  const { pixels, channels } = image;
  let sum = 0;
  if (channels === 3) for (let i = 0; i < pixels.length; i += 3) sum += grayOf(pixels[i], pixels[i + 1], pixels[i + 2]);
  else for (let i = 0; i < pixels.length; i++) sum += pixels[i];
  const mean = sum / (pixels.length / channels);

  const table = new Uint8Array(256);
  const offset = (1 - factor) * mean;
  for (let value = 0; value < 256; value++) table[value] = Math.min(255, Math.max(0, Math.floor(factor * value + offset)));
  return applyTable(pixels, table);
}

/**
 * Scales each value's distance from its pixel's gray level by `factor`, as torchvision's
 * `adjust_saturation` does on uint8 images. Grayscale images are returned unchanged.
 */
export function adjustSaturation(image: RawImage, factor: number): Uint8Array {
  const { pixels, channels } = image;
  if (channels !== 3) return pixels.slice();
  const output = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 3) {
    const gray = grayOf(pixels[i], pixels[i + 1], pixels[i + 2]) * (1 - factor);
    for (let k = 0; k < 3; k++) output[i + k] = Math.min(255, Math.max(0, Math.floor(factor * pixels[i + k] + gray)));
  }
  return output;
}

/**
 * Adds `shift` (a fraction of the colour circle) to every pixel's hue in HSV, keeping saturation
 * and value, and rounds back to 8 bits. Grayscale images are returned unchanged.
 */
export function adjustHue(image: RawImage, shift: number): Uint8Array {
  const { pixels, channels } = image;
  if (channels !== 3) return pixels.slice();
  const output = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 3) {
    const red = pixels[i];
    const green = pixels[i + 1];
    const blue = pixels[i + 2];
    const maximum = Math.max(red, green, blue);
    const minimum = Math.min(red, green, blue);
    const chroma = maximum - minimum;
    if (chroma === 0) {
      output[i] = red;
      output[i + 1] = green;
      output[i + 2] = blue;
      continue;
    }
    let hue: number;
    if (maximum === red) hue = (green - blue) / chroma;
    else if (maximum === green) hue = 2 + (blue - red) / chroma;
    else hue = 4 + (red - green) / chroma;
    hue = (((hue / 6 + shift) % 1) + 1) % 1;

    // Back from hue, chroma and value (the maximum) to RGB.
    const sector = hue * 6;
    const secondary = chroma * (1 - Math.abs((sector % 2) - 1));
    let r = 0;
    let g = 0;
    let b = 0;
    if (sector < 1) [r, g, b] = [chroma, secondary, 0];
    else if (sector < 2) [r, g, b] = [secondary, chroma, 0];
    else if (sector < 3) [r, g, b] = [0, chroma, secondary];
    else if (sector < 4) [r, g, b] = [0, secondary, chroma];
    else if (sector < 5) [r, g, b] = [secondary, 0, chroma];
    else [r, g, b] = [chroma, 0, secondary];
    output[i] = Math.round(r + minimum);
    output[i + 1] = Math.round(g + minimum);
    output[i + 2] = Math.round(b + minimum);
  }
  return output;
}

/**
 * Blurs with a Gaussian of standard deviation `sigma` pixels, truncated at 3 sigma, as two 1-D
 * passes. Pixels beyond the edges mirror the image (abcd|dcba). Values are rounded half up.
 */
export function gaussianBlur(image: RawImage, sigma: number): Uint8Array {
  const { pixels, height, width, channels } = image;
  if (sigma <= 0) return pixels.slice();
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float64Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++) total += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;

  const horizontal = new Float32Array(pixels.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) {
        let value = 0;
        for (let i = -radius; i <= radius; i++) value += kernel[i + radius] * pixels[(row + fillIndex(x + i, width, 'reflect')) * channels + k];
        horizontal[(row + x) * channels + k] = value;
      }
    }
  }
  const output = new Uint8Array(pixels.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) {
        let value = 0;
        for (let i = -radius; i <= radius; i++) value += kernel[i + radius] * horizontal[(fillIndex(y + i, height, 'reflect') * width + x) * channels + k];
        output[(y * width + x) * channels + k] = Math.min(255, value + 0.5);
      }
    }
  }
  return output;
}

/**
 * Adds Gaussian noise of standard deviation `std` levels to every value, drawn from a generator
 * seeded with `seed`, then rounds and clips to [0, 255].
 */
export function addGaussianNoise(pixels: Uint8Array, std: number, seed: number): Uint8Array {
  const random = new Random(seed);
  const output = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) output[i] = Math.min(255, Math.max(0, Math.round(pixels[i] + std * random.normal())));
  return output;
}

/** Sets every value inside the regions to `value`. */
export function applyCutout(image: RawImage, regions: readonly PixelRegion[], value: number): Uint8Array {
  const { pixels, width, channels } = image;
  const output = pixels.slice();
  for (const region of regions) {
    for (let y = region.y; y < region.y + region.height; y++) {
      output.fill(value, (y * width + region.x) * channels, (y * width + region.x + region.width) * channels);
    }
  }
  return output;
}
