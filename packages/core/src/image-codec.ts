import { InputError } from './errors.js';
import sharp from 'sharp';

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

/** Options of `encodePng`. */
export interface EncodePngOptions {
  /** zlib level 0-9; default 6, the level most PNG writers use. */
  compressionLevel?: number;
}

function toBuffer(pixels: Uint8Array): Buffer {
  return Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

/**
 * Encodes raw pixels as PNG. Grayscale stays one channel (sharp would otherwise write RGB),
 * and row filtering is on because sharp's default writes files about a third larger.
 */
export async function encodePng(image: RawImage, options: EncodePngOptions = {}): Promise<Uint8Array> {
  checkChannels(image.channels);
  const { height, width, channels } = image;
  const pipeline = sharp(toBuffer(image.pixels), { raw: { width, height, channels: channels as 1 | 3 } });
  if (channels === 1) pipeline.toColourspace('b-w');
  const png = await pipeline
    .png({ compressionLevel: options.compressionLevel ?? 6, adaptiveFiltering: true })
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/**
 * Decodes PNG, JPEG or WebP bytes to 8-bit pixels, applying EXIF orientation and dropping alpha.
 * The result keeps one channel for grayscale images and three for colour ones.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RawImage> {
  const pipeline = sharp(toBuffer(bytes)).rotate().removeAlpha();
  const metadata = await sharp(toBuffer(bytes)).metadata();
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
