import { InputError } from './errors.js';
import { loadSharp } from './sharp-loader.js';
import { decodePng, encodePngSync, type PngEncodeOptions } from './png.js';
import type { ImageEncoding } from './shard-schema.js';

/** Pixel dimensions of an 8-bit image held channels last. */
export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

/** 8-bit pixels with their shape. */
export interface RawImage extends ImageShape {
  pixels: Uint8Array;
}

/** Options of `encodePng` and `encodeImage`: those of `encodePngSync`. */
export type EncodePngOptions = PngEncodeOptions;

function toBuffer(pixels: Uint8Array): Buffer {
  return Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

/**
 * Encodes raw pixels as PNG with the TypeScript codec in `png.ts`: grayscale stays one channel,
 * and rows are filtered adaptively unless `filter` sets another.
 */
export async function encodePng(image: RawImage, options: EncodePngOptions = {}): Promise<Uint8Array> {
  checkChannels(image.channels);
  return encodePngSync(image, options);
}

/** Encodes an image for a shard's `image` column: PNG bytes, or a copy of the raw pixels. */
export function encodeImage(image: RawImage, encoding: ImageEncoding, options: EncodePngOptions = {}): Uint8Array {
  checkChannels(image.channels);
  if (encoding === 'raw') return image.pixels.slice();
  return encodePngSync(image, options);
}

/**
 * Decodes a shard's `image` value. Raw values must hold exactly height x width x channels
 * bytes; PNG values must decode to that shape. Throws an `InputError` naming `source` otherwise.
 */
export async function decodeStoredImage(bytes: Uint8Array, encoding: ImageEncoding, shape: ImageShape, source: string): Promise<RawImage> {
  const { height, width, channels } = shape;
  if (encoding === 'raw') {
    if (bytes.length !== height * width * channels) {
      throw new InputError(`${source} declares ${height}x${width}x${channels} but contains ${bytes.length} raw bytes where ${height * width * channels} are needed.`);
    }
    return { pixels: bytes.slice(), height, width, channels };
  }
  const decoded = await decodeImage(bytes);
  if (decoded.height !== height || decoded.width !== width || decoded.channels !== channels) {
    throw new InputError(
      `${source} declares ${height}x${width}x${channels} but its image decodes to ${decoded.height}x${decoded.width}x${decoded.channels}.`,
    );
  }
  return decoded;
}

/**
 * Decodes PNG, JPEG or WebP bytes to 8-bit pixels, applying EXIF orientation and dropping alpha.
 * The result keeps one channel for grayscale images and three for colour ones; CMYK is converted
 * to sRGB. Plain 8-bit PNGs are decoded in TypeScript, everything else by sharp. Rejects images
 * of more than 8 bits per sample, because scaling them to 8 bits needs a window that only the
 * data's owner can choose.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RawImage> {
  const fast = decodePng(bytes);
  if (fast !== undefined) return fast;

  const sharp = await loadSharp();
  const metadata = await sharp(toBuffer(bytes)).metadata();
  if (metadata.depth !== undefined && metadata.depth !== 'uchar' && metadata.depth !== 'char') {
    const depth = metadata.depth === 'ushort' ? '16-bit' : String(metadata.depth);
    throw new InputError(
      `the image has ${depth} samples where 8-bit ones are expected. ` +
        'Convert it to 8 bits per channel with the intensity window your data needs, then rerun.',
    );
  }
  const pipeline = sharp(toBuffer(bytes)).rotate().removeAlpha();
  const grayscale = metadata.channels !== undefined && metadata.channels <= 2 && metadata.space !== 'cmyk';
  if (grayscale) pipeline.toColourspace('b-w');
  else pipeline.toColourspace('srgb');
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  return {
    pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    height: info.height,
    width: info.width,
    channels: info.channels,
  };
}

export function checkChannels(channels: number): void {
  if (channels !== 1 && channels !== 3) {
    throw new InputError(`Expected 1 (grayscale) or 3 (RGB) channels but received ${channels}.`);
  }
}

/**
 * Returns a copy of `image` mirrored left to right, with every other field kept. Test-time flips
 * average a classifier's probabilities over an image and this mirror.
 */
export function mirrorImage<T extends RawImage>(image: T): T {
  const { width, channels, pixels } = image;
  const mirrored = new Uint8Array(pixels.length);
  const rowLength = width * channels;
  for (let rowStart = 0; rowStart < pixels.length; rowStart += rowLength) {
    for (let x = 0; x < width; x++) {
      const from = rowStart + x * channels;
      mirrored.set(pixels.subarray(from, from + channels), rowStart + (width - 1 - x) * channels);
    }
  }
  return { ...image, pixels: mirrored };
}
