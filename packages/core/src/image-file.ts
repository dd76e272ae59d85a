import { readFileSync } from 'node:fs';
import { InputError } from './errors.js';
import { convertChannels } from './channels.js';
import { decodeImage, type RawImage } from './image-codec.js';
import { readPngHeader } from './png.js';
import { loadSharp } from './sharp-loader.js';

/** Fit that brings an image of another size to the declared size, as sharp's `fit` option names it. */
export type ResizeFit = 'fill' | 'cover' | 'contain';
export const RESIZE_FITS: readonly ResizeFit[] = ['fill', 'cover', 'contain'];

/** Default pixel limit (height x width) of one input image: 8,000 x 8,000. */
export const DEFAULT_MAX_INPUT_PIXELS = 8000 * 8000;

/** Options of `readImageFile`. */
export interface ReadImageFileOptions {
  /**
   * Size every image is brought to, as [height, width]; an image of another size is resized with
   * `fit`. Without it an image whose size differs from `expectedSize` is an error.
   */
  size?: readonly [number, number];
  /**
   * `fill` stretches to the size (the default), `cover` scales to cover it and crops the centre,
   * `contain` scales to fit inside it and pads with black. Resizing uses sharp's lanczos3 kernel.
   */
  fit?: ResizeFit;
  /** Size every image must have when `size` is not set, as [height, width]. */
  expectedSize?: readonly [number, number];
  /** Channels of the output: 1 (grayscale, BT.601 luma) or 3 (RGB); default the image's own. */
  channels?: 1 | 3;
  /** Largest height x width accepted; default `DEFAULT_MAX_INPUT_PIXELS`. */
  maxPixels?: number;
}

type ImageFormat = 'png' | 'jpeg' | 'webp';

function detectFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (readPngHeader(bytes) !== undefined) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  const text = (start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end));
  if (bytes.length >= 12 && text(0, 4) === 'RIFF' && text(8, 12) === 'WEBP') return 'webp';
  return undefined;
}

async function dimensions(bytes: Uint8Array, format: ImageFormat): Promise<{ width: number; height: number }> {
  const header = format === 'png' ? readPngHeader(bytes) : undefined;
  if (header !== undefined) return header;
  const sharp = await loadSharp();
  const metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  return { width: metadata.width ?? 0, height: metadata.height ?? 0 };
}

function messageOf(error: unknown): string {
  return (error as Error).message.replace(/\s+$/, '').replace(/\.$/, '');
}

/**
 * Reads one image file as a viewer shows it: EXIF orientation applied, alpha dropped, CMYK
 * converted to sRGB. Every failure is an `InputError` that names the file: a file that cannot
 * be read, one that is not a PNG, JPEG or WebP image, a damaged or truncated image, samples of
 * more than 8 bits, more than `maxPixels` pixels, or a size that differs from `expectedSize`.
 */
export async function readImageFile(path: string, options: ReadImageFileOptions = {}): Promise<RawImage> {
  let bytes: Uint8Array;
  try {
    // A synchronous read costs one system call per step where fs/promises makes four round trips
    // through libuv's thread pool; for small images that was most of the time a worker spent.
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new InputError(`${path} is not a regular file but a folder. Move it out of the class folder.`);
    throw new InputError(`Cannot read ${path}: ${code ?? messageOf(error)}. Check that the file exists and is readable.`);
  }
  if (bytes.length === 0) throw new InputError(`${path} is empty (0 bytes). Remove it or replace it with the image.`);
  const format = detectFormat(bytes);
  if (format === undefined) {
    const start = Buffer.from(bytes.subarray(0, 8)).toString('hex');
    throw new InputError(`${path} is not a readable PNG, JPEG or WebP image: its first bytes are ${start}. Remove it from the class folder.`);
  }

  const maxPixels = options.maxPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  let size: { width: number; height: number };
  try {
    size = await dimensions(bytes, format);
  } catch (error) {
    throw new InputError(`${path} is not a readable PNG, JPEG or WebP image: its ${format.toUpperCase()} header is damaged (${messageOf(error)}). Replace or remove it.`);
  }
  if (size.width * size.height > maxPixels) {
    throw new InputError(
      `${path} is ${size.width}x${size.height} (${size.width * size.height} pixels), over the limit of ${maxPixels} pixels. ` +
        'Downscale it, or raise the limit (--max-pixels) if the memory allows.',
    );
  }

  let image: RawImage;
  try {
    image = await decodeImage(bytes);
  } catch (error) {
    if (error instanceof InputError) throw new InputError(`${path}: ${error.message}`);
    throw new InputError(`${path} is not a readable PNG, JPEG or WebP image: its ${format.toUpperCase()} data is damaged or truncated (${messageOf(error)}). Replace or remove it.`);
  }

  if (options.size !== undefined && (image.height !== options.size[0] || image.width !== options.size[1])) {
    image = await resizeImage(image, options.size, options.fit ?? 'fill');
  } else if (options.size === undefined && options.expectedSize !== undefined) {
    const [height, width] = options.expectedSize;
    if (image.height !== height || image.width !== width) {
      throw new InputError(
        `${path} is ${image.height}x${image.width} but the dataset's images are ${height}x${width}. ` +
          `Declare a size to resize every image to (e.g. --size ${height}x${width} with --fit fill, cover or contain).`,
      );
    }
  }

  const channels = options.channels ?? image.channels;
  return { pixels: convertChannels(image.pixels, image.channels, channels), height: image.height, width: image.width, channels };
}

/** Resizes 8-bit pixels with sharp, keeping the channels. */
export async function resizeImage(image: RawImage, size: readonly [number, number], fit: ResizeFit): Promise<RawImage> {
  const { height, width, channels } = image;
  const sharp = await loadSharp();
  const pipeline = sharp(Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength), {
    raw: { width, height, channels: channels as 1 | 3 },
  }).resize(size[1], size[0], { fit, background: { r: 0, g: 0, b: 0 } });
  if (channels === 1) pipeline.toColourspace('b-w');
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels) throw new Error(`sharp returned ${info.channels} channels where ${channels} were expected.`);
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width, channels };
}
