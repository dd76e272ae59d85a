import { crc32 as zlibCrc32, deflateSync, inflateSync } from 'node:zlib';
import type { RawImage } from './image-codec.js';

/**
 * A PNG codec in TypeScript on node:zlib for 8-bit, non-interlaced images. It saves the fixed
 * cost of a sharp call (about 0.5 ms), which dominates at small image sizes, and it is the
 * codec of every shard scarce writes. Inputs outside its reach (palette, 16-bit, interlaced,
 * an ICC profile or EXIF data) are left to sharp by `decodePng` returning undefined.
 */

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** Row filters of the PNG specification, and `adaptive`, which picks one per row. */
export type PngFilter = 'none' | 'sub' | 'up' | 'average' | 'paeth' | 'adaptive';
export const PNG_FILTERS: readonly PngFilter[] = ['none', 'sub', 'up', 'average', 'paeth', 'adaptive'];

/** Options of `encodePngSync`. */
export interface PngEncodeOptions {
  /** zlib level 0-9; default 6, the level libpng, PIL and sharp use by default. */
  compressionLevel?: number;
  /**
   * Row filter; default `adaptive`: per row, the filter whose output has the smallest sum of
   * absolute values, the heuristic of libpng and PIL.
   */
  filter?: PngFilter;
  /** Base-2 logarithm of zlib's window, 9-15; default `DEFAULT_PNG_WINDOW_BITS`. */
  windowBits?: number;
}

/**
 * Default deflate window: 4 KiB, where zlib's own default is 32 KiB. On augmented scans and
 * photos at level 6 it wrote 1-2% smaller files in about half the time (a third at 512 px). A
 * likely cause, not verified: distant matches in noisy pixels cost more bits than they save.
 * Flat-colour drawings came out about 6% larger than with 15, so set 15 for those.
 */
export const DEFAULT_PNG_WINDOW_BITS = 12;

const FILTER_CODES: Record<Exclude<PngFilter, 'adaptive'>, number> = { none: 0, sub: 1, up: 2, average: 3, paeth: 4 };

let crcTable: Uint32Array | undefined;

/** CRC-32 of the PNG specification; node:zlib has one from Node 20.15 on. */
function crc32(data: Uint8Array, initial = 0): number {
  if (typeof zlibCrc32 === 'function') return zlibCrc32(data, initial);
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~initial >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * Returns the Paeth predictor of the PNG specification: of left, up and upper left, the one
 * closest to left + up - upper left, ties going in that order. It selects with masks instead of
 * branches, because branches mispredict on noisy rows. Paeth-filtering a 224 px RGB photo took
 * 0.7 ms this way, against 1.7 ms with branches.
 */
function paeth(left: number, up: number, upperLeft: number): number {
  const toLeft = Math.abs(up - upperLeft);
  const toUp = Math.abs(left - upperLeft);
  const toUpperLeft = Math.abs(left + up - upperLeft - upperLeft);
  // -1 (all bits set) where left is not the closest, and where upper left is closer than up.
  const notLeft = ((toUp - toLeft) | (toUpperLeft - toLeft)) >> 31;
  const upperLeftOverUp = (toUpperLeft - toUp) >> 31;
  const second = up ^ ((up ^ upperLeft) & upperLeftOverUp);
  return left ^ ((left ^ second) & notLeft);
}

/** |b| of a byte b read as a signed value, without a branch (random filter output mispredicts one). */
function signedMagnitude(byte: number): number {
  const signed = (byte << 24) >> 24;
  const mask = signed >> 31;
  return (signed ^ mask) - mask;
}

/** Bytes skipped between the samples that `chooseFilter` scores, for rows long enough to sample. */
const SAMPLE_STRIDE = 3;

/**
 * Picks a row's filter as libpng's heuristic does, the one whose output has the smallest sum of
 * absolute signed values, but scores every third byte of rows over 64 bytes. On the 224 px
 * test photos of scripts/bench-augment.ts that made the files 0.2% larger at a third of the cost.
 */
function chooseFilter(row: Uint8Array, previous: Uint8Array | null, bytesPerPixel: number): number {
  const stride = row.length > 64 ? SAMPLE_STRIDE : 1;
  let none = 0;
  let sub = 0;
  let up = 0;
  let average = 0;
  let paethCost = 0;
  for (let i = 0; i < row.length; i += stride) {
    const value = row[i];
    const left = i >= bytesPerPixel ? row[i - bytesPerPixel] : 0;
    const above = previous === null ? 0 : previous[i];
    const upperLeft = previous !== null && i >= bytesPerPixel ? previous[i - bytesPerPixel] : 0;
    none += signedMagnitude(value);
    sub += signedMagnitude((value - left) & 0xff);
    up += signedMagnitude((value - above) & 0xff);
    average += signedMagnitude((value - ((left + above) >> 1)) & 0xff);
    paethCost += signedMagnitude((value - paeth(left, above, upperLeft)) & 0xff);
  }
  let best = 0;
  let bestCost = none;
  for (const [code, cost] of [[1, sub], [2, up], [3, average], [4, paethCost]] as const) {
    if (cost < bestCost) {
      best = code;
      bestCost = cost;
    }
  }
  return best;
}

/**
 * Writes row `row` filtered with `code` into `target` from `at` on. One loop per filter keeps the
 * per-byte work free of branches on the filter type.
 */
function filterRow(code: number, row: Uint8Array, previous: Uint8Array | null, bytesPerPixel: number, target: Uint8Array, at: number): void {
  const length = row.length;
  if (code === 0 || (previous === null && code === 2)) {
    for (let i = 0; i < length; i++) {
      target[at + i] = row[i];
    }
  } else if (code === 1 || (previous === null && code === 4)) {
    for (let i = 0; i < bytesPerPixel; i++) {
      target[at + i] = row[i];
    }
    for (let i = bytesPerPixel; i < length; i++) {
      target[at + i] = (row[i] - row[i - bytesPerPixel]) & 0xff;
    }
  } else if (code === 2) {
    const up = previous as Uint8Array;
    for (let i = 0; i < length; i++) {
      target[at + i] = (row[i] - up[i]) & 0xff;
    }
  } else if (code === 3) {
    for (let i = 0; i < length; i++) {
      const left = i >= bytesPerPixel ? row[i - bytesPerPixel] : 0;
      const up = previous === null ? 0 : previous[i];
      target[at + i] = (row[i] - ((left + up) >> 1)) & 0xff;
    }
  } else {
    const up = previous as Uint8Array;
    for (let i = 0; i < bytesPerPixel; i++) {
      target[at + i] = (row[i] - up[i]) & 0xff;
    }
    for (let i = bytesPerPixel; i < length; i++) {
      target[at + i] = (row[i] - paeth(row[i - bytesPerPixel], up[i], up[i - bytesPerPixel])) & 0xff;
    }
  }
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(12 + data.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) bytes[4 + i] = type.charCodeAt(i);
  bytes.set(data, 8);
  view.setUint32(8 + data.length, crc32(bytes.subarray(4, 8 + data.length)));
  return bytes;
}

/** Encodes 8-bit grayscale or RGB pixels as PNG. The output depends only on the pixels, the options and zlib's version. */
export function encodePngSync(image: RawImage, options: PngEncodeOptions = {}): Uint8Array {
  const { pixels, height, width, channels } = image;
  if (channels !== 1 && channels !== 3) throw new Error(`encodePngSync encodes 1 or 3 channels but received ${channels}.`);
  if (pixels.length !== height * width * channels) {
    throw new Error(`encodePngSync received ${pixels.length} pixel values for a ${height}x${width}x${channels} image.`);
  }
  const level = options.compressionLevel ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new Error(`PNG compression level must be an integer in 0-9 but received ${level}.`);
  const filter = options.filter ?? 'adaptive';
  const windowBits = options.windowBits ?? DEFAULT_PNG_WINDOW_BITS;
  if (!Number.isInteger(windowBits) || windowBits < 9 || windowBits > 15) {
    throw new Error(`PNG window bits must be an integer in 9-15 but received ${windowBits}.`);
  }

  const rowBytes = width * channels;
  const filtered = new Uint8Array(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) {
    const row = pixels.subarray(y * rowBytes, (y + 1) * rowBytes);
    const previous = y === 0 ? null : pixels.subarray((y - 1) * rowBytes, y * rowBytes);
    const at = y * (rowBytes + 1);
    if (filter !== 'adaptive') {
      const code = FILTER_CODES[filter];
      filtered[at] = code;
      filterRow(code, row, previous, channels, filtered, at + 1);
      continue;
    }
    const code = chooseFilter(row, previous, channels);
    filtered[at] = code;
    filterRow(code, row, previous, channels, filtered, at + 1);
  }

  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  header[9] = channels === 1 ? 0 : 2;
  const parts = [SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(filtered, { level, windowBits })), chunk('IEND', new Uint8Array(0))];
  const output = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    output.set(part, offset);
    offset += part.length;
  }
  return output;
}

/** Returns whether the bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((byte, i) => bytes[i] === byte);
}

/** The IHDR fields of a PNG. */
export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA. */
  colorType: number;
  interlace: number;
}

/** Reads the IHDR of a PNG, or returns undefined when the bytes are not a PNG with a complete header. */
export function readPngHeader(bytes: Uint8Array): PngHeader | undefined {
  if (!isPng(bytes) || bytes.length < 33) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8) !== 13 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return undefined;
  return { width: view.getUint32(16), height: view.getUint32(20), bitDepth: bytes[24], colorType: bytes[25], interlace: bytes[28] };
}

const CHANNELS_BY_COLOR_TYPE: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };
/** Chunks that change how pixels should be read; a PNG with one of them goes to sharp. */
const CHUNKS_LEFT_TO_SHARP = new Set(['iCCP', 'eXIf', 'PLTE', 'tRNS']);

/** Reverses the row filters in place of a copy; one loop per filter type, as in `filterRow`. */
function unfilter(data: Uint8Array, height: number, rowBytes: number, bytesPerPixel: number): Uint8Array {
  const output = new Uint8Array(height * rowBytes);
  for (let y = 0; y < height; y++) {
    const code = data[y * (rowBytes + 1)];
    const input = y * (rowBytes + 1) + 1;
    const at = y * rowBytes;
    const previous = at - rowBytes;
    const first = y === 0;
    if (code === 0) {
      output.set(data.subarray(input, input + rowBytes), at);
    } else if (code === 1) {
      for (let i = 0; i < bytesPerPixel; i++) output[at + i] = data[input + i];
      for (let i = bytesPerPixel; i < rowBytes; i++) output[at + i] = (data[input + i] + output[at + i - bytesPerPixel]) & 0xff;
    } else if (code === 2) {
      if (first) output.set(data.subarray(input, input + rowBytes), at);
      else for (let i = 0; i < rowBytes; i++) output[at + i] = (data[input + i] + output[previous + i]) & 0xff;
    } else if (code === 3) {
      for (let i = 0; i < rowBytes; i++) {
        const left = i >= bytesPerPixel ? output[at + i - bytesPerPixel] : 0;
        const up = first ? 0 : output[previous + i];
        output[at + i] = (data[input + i] + ((left + up) >> 1)) & 0xff;
      }
    } else if (code === 4) {
      for (let i = 0; i < rowBytes; i++) {
        const left = i >= bytesPerPixel ? output[at + i - bytesPerPixel] : 0;
        const up = first ? 0 : output[previous + i];
        const upperLeft = !first && i >= bytesPerPixel ? output[previous + i - bytesPerPixel] : 0;
        output[at + i] = (data[input + i] + paeth(left, up, upperLeft)) & 0xff;
      }
    } else {
      throw new Error(`invalid PNG row filter ${code} in row ${y}`);
    }
  }
  return output;
}

/**
 * Decodes an 8-bit, non-interlaced grayscale or RGB PNG, with or without alpha, dropping the
 * alpha channel as sharp's `removeAlpha` does. Returns undefined for a PNG that needs sharp
 * (see the file comment), and throws for a damaged one: a bad chunk CRC, truncated data or an
 * invalid zlib stream.
 */
export function decodePng(bytes: Uint8Array): RawImage | undefined {
  const header = readPngHeader(bytes);
  if (header === undefined) return undefined;
  const sourceChannels = CHANNELS_BY_COLOR_TYPE[header.colorType];
  if (header.bitDepth !== 8 || sourceChannels === undefined || header.interlace !== 0) return undefined;

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let offset = 8;
  let ended = false;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (offset + 12 + length > bytes.length) throw new Error(`truncated PNG: chunk ${type} runs past the end of the file`);
    const stored = view.getUint32(offset + 8 + length);
    if (crc32(bytes.subarray(offset + 4, offset + 8 + length)) !== stored) throw new Error(`damaged PNG: chunk ${type} fails its CRC check`);
    if (CHUNKS_LEFT_TO_SHARP.has(type)) return undefined;
    if (type === 'IDAT') idat.push(bytes.subarray(offset + 8, offset + 8 + length));
    offset += 12 + length;
    if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!ended) throw new Error('truncated PNG: no IEND chunk');
  if (idat.length === 0) throw new Error('damaged PNG: no IDAT chunk');

  const { width, height } = header;
  const rowBytes = width * sourceChannels;
  const compressed = idat.length === 1 ? idat[0] : Buffer.concat(idat);
  const inflated = inflateSync(compressed);
  if (inflated.length < height * (rowBytes + 1)) throw new Error(`truncated PNG: ${inflated.length} bytes of image data where ${height * (rowBytes + 1)} are needed`);
  const decoded = unfilter(inflated, height, rowBytes, sourceChannels);

  const channels = sourceChannels === 1 || sourceChannels === 2 ? 1 : 3;
  if (channels === sourceChannels) return { pixels: decoded, height, width, channels };
  const pixels = new Uint8Array(height * width * channels);
  for (let i = 0, j = 0; i < pixels.length; i += channels, j += sourceChannels) {
    for (let k = 0; k < channels; k++) pixels[i + k] = decoded[j + k];
  }
  return { pixels, height, width, channels };
}
