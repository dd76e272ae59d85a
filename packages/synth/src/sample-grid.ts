import sharp from 'sharp';
import { writeFileAtomic, type ImageRecord } from '@scarce/core';

/** Options of `renderSampleGrid`. */
export interface SampleGridOptions {
  /** Images per class row; default 10. A class with fewer images leaves its row short. */
  columns?: number;
  /** Whole-number upscaling of each image, nearest neighbour; default 2. */
  scale?: number;
}

const GAP_PIXELS = 2;
const FONT_SIZE = 14;
/** A rough width of one character at FONT_SIZE in DejaVu Sans, to size the label column. */
const CHARACTER_WIDTH = 8.5;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** Renders a class name as right-aligned text in an SVG of the given size. */
function labelSvg(text: string, width: number, height: number): Buffer {
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
      `<text x="${width - 6}" y="${height / 2}" text-anchor="end" dominant-baseline="central" ` +
      `font-family="DejaVu Sans, sans-serif" font-size="${FONT_SIZE}" fill="#000">${escapeXml(text)}</text></svg>`,
  );
}

/**
 * Renders a PNG with one row per class (the first `columns` records of that label, in order) and
 * the class name at the left of each row, on a white background.
 */
export async function renderSampleGrid(
  records: readonly ImageRecord[],
  classNames: readonly string[],
  options: SampleGridOptions = {},
): Promise<Uint8Array> {
  const columns = options.columns ?? 10;
  const scale = options.scale ?? 2;
  if (!Number.isInteger(columns) || columns < 1) throw new Error(`columns must be a positive integer but received ${columns}.`);
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`scale must be a positive integer but received ${scale}.`);
  if (records.length === 0) throw new Error('renderSampleGrid received no records to draw.');

  const { height, width } = records[0];
  const cellHeight = height * scale;
  const cellWidth = width * scale;
  const labelWidth = Math.ceil(Math.max(...classNames.map((name) => name.length)) * CHARACTER_WIDTH) + 12;
  const canvasWidth = labelWidth + columns * (cellWidth + GAP_PIXELS) + GAP_PIXELS;
  const canvasHeight = classNames.length * (cellHeight + GAP_PIXELS) + GAP_PIXELS;

  const overlays: sharp.OverlayOptions[] = [];
  for (const [label, name] of classNames.entries()) {
    const top = GAP_PIXELS + label * (cellHeight + GAP_PIXELS);
    overlays.push({ input: labelSvg(name, labelWidth, cellHeight), top, left: 0 });
    const classRecords = records.filter((record) => record.label === label).slice(0, columns);
    for (const [column, record] of classRecords.entries()) {
      const raw = { width: record.width, height: record.height, channels: record.channels as 1 | 3 };
      const cell = await sharp(Buffer.from(record.pixels.buffer, record.pixels.byteOffset, record.pixels.byteLength), { raw })
        .resize(cellWidth, cellHeight, { kernel: 'nearest' })
        .toColourspace('srgb')
        .png()
        .toBuffer();
      overlays.push({ input: cell, top, left: labelWidth + GAP_PIXELS + column * (cellWidth + GAP_PIXELS) });
    }
  }

  const png = await sharp({ create: { width: canvasWidth, height: canvasHeight, channels: 3, background: '#ffffff' } })
    .composite(overlays)
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Renders the sample grid and writes it to `path`, atomically. */
export async function writeSampleGrid(
  path: string,
  records: readonly ImageRecord[],
  classNames: readonly string[],
  options: SampleGridOptions = {},
): Promise<string> {
  await writeFileAtomic(path, await renderSampleGrid(records, classNames, options));
  return path;
}
