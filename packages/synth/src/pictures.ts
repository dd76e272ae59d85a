import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic, type ImageRecord } from '@scarce/core';
import type { EpochLog } from './train.js';

const GAP = 2;
/** Gap between the real and synthetic blocks, and between nearest-neighbour pairs. */
const BLOCK_GAP = 12;
const FONT_SIZE = 13;
const TEXT_HEIGHT = 20;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** A piece of text at a position of the canvas, drawn left-aligned. */
interface TextItem {
  text: string;
  left: number;
  top: number;
}

/** An image at a position of the canvas. */
interface CellItem {
  record: ImageRecord;
  left: number;
  top: number;
}

/** Draws images (upscaled by `scale`, nearest neighbour) and texts on a white canvas and returns the PNG. */
async function drawCanvas(width: number, height: number, cells: readonly CellItem[], texts: readonly TextItem[], scale: number): Promise<Buffer> {
  const overlays: sharp.OverlayOptions[] = [];
  for (const { record, left, top } of cells) {
    const raw = { width: record.width, height: record.height, channels: record.channels as 1 | 3 };
    const input = await sharp(Buffer.from(record.pixels.buffer, record.pixels.byteOffset, record.pixels.byteLength), { raw })
      .resize(record.width * scale, record.height * scale, { kernel: 'nearest' })
      .toColourspace('srgb')
      .png()
      .toBuffer();
    overlays.push({ input, left, top });
  }
  if (texts.length > 0) {
    const svgTexts = texts
      .map(({ text, left, top }) => `<text x="${left}" y="${top + TEXT_HEIGHT / 2}" dominant-baseline="central" font-family="DejaVu Sans, sans-serif" font-size="${FONT_SIZE}" fill="#000">${escapeXml(text)}</text>`)
      .join('');
    overlays.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svgTexts}</svg>`), left: 0, top: 0 });
  }
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(overlays).png().toBuffer();
}

/** Options of the comparison pictures. */
export interface PictureOptions {
  /** Images per row of each block; default 8. */
  columns?: number;
  /** Rows of each block; default 4. */
  rows?: number;
  /** Whole-number upscaling of each image; default 2 (3 for images under 32 px). */
  scale?: number;
}

function defaultScale(record: ImageRecord | undefined): number {
  return record !== undefined && Math.max(record.height, record.width) < 32 ? 3 : 2;
}

/**
 * Renders one class's real and synthetic images side by side: a block of up to rows x columns
 * real images at the left, the same number of synthetic ones at the right, with a caption above each.
 */
export async function renderRealVersusSynthetic(
  real: readonly ImageRecord[],
  synthetic: readonly ImageRecord[],
  className: string,
  options: PictureOptions = {},
): Promise<Buffer> {
  const columns = options.columns ?? 8;
  const rows = options.rows ?? 4;
  const first = real[0] ?? synthetic[0];
  if (first === undefined) throw new Error(`No images of class '${className}' to draw.`);
  const scale = options.scale ?? defaultScale(first);
  const [cellWidth, cellHeight] = [first.width * scale, first.height * scale];
  const blockWidth = columns * (cellWidth + GAP) - GAP;
  const width = GAP + blockWidth + BLOCK_GAP + blockWidth + GAP;
  const height = TEXT_HEIGHT + rows * (cellHeight + GAP) + GAP;

  const cells: CellItem[] = [];
  const place = (records: readonly ImageRecord[], offset: number) =>
    records.slice(0, rows * columns).forEach((record, index) => {
      cells.push({ record, left: offset + (index % columns) * (cellWidth + GAP), top: TEXT_HEIGHT + Math.floor(index / columns) * (cellHeight + GAP) });
    });
  place(real, GAP);
  place(synthetic, GAP + blockWidth + BLOCK_GAP);
  const texts = [
    { text: `${className}: real`, left: GAP, top: 0 },
    { text: `${className}: synthetic`, left: GAP + blockWidth + BLOCK_GAP, top: 0 },
  ];
  return drawCanvas(width, height, cells, texts, scale);
}

/**
 * Renders synthetic images beside their nearest real train images: one row per class with up to
 * `pairsPerClass` pairs, each a sample followed by its neighbour, and the class name above the row.
 */
export async function renderNearestReal(
  samples: readonly ImageRecord[],
  neighbours: readonly ImageRecord[],
  classNames: readonly string[],
  pairsPerClass = 6,
  scale?: number,
): Promise<Buffer> {
  if (samples.length === 0) throw new Error('No samples to draw beside their nearest real images.');
  const cellScale = scale ?? defaultScale(samples[0]);
  const [cellWidth, cellHeight] = [samples[0].width * cellScale, samples[0].height * cellScale];
  const pairWidth = 2 * cellWidth + GAP;
  const width = GAP + pairsPerClass * (pairWidth + BLOCK_GAP) - BLOCK_GAP + GAP;
  const rowHeight = TEXT_HEIGHT + cellHeight + GAP;
  const height = classNames.length * rowHeight + GAP;

  const cells: CellItem[] = [];
  const texts: TextItem[] = [];
  classNames.forEach((className, label) => {
    const top = label * rowHeight;
    texts.push({ text: `${className}: synthetic | nearest real`, left: GAP, top });
    const rows = samples.flatMap((record, index) => (record.label === label ? [index] : [])).slice(0, pairsPerClass);
    rows.forEach((index, pair) => {
      const left = GAP + pair * (pairWidth + BLOCK_GAP);
      cells.push({ record: samples[index], left, top: top + TEXT_HEIGHT });
      cells.push({ record: neighbours[index], left: left + cellWidth + GAP, top: top + TEXT_HEIGHT });
    });
  });
  return drawCanvas(width, height, cells, texts, cellScale);
}

/** Renders the discriminator and generator losses per epoch as a line chart. */
export async function renderLossCurves(history: readonly EpochLog[], width = 640, height = 320): Promise<Buffer> {
  const margin = { left: 56, right: 16, top: 28, bottom: 36 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const values = history.flatMap((log) => [log.discriminatorLoss, log.generatorLoss]);
  const [low, high] = values.length === 0 ? [0, 1] : [Math.min(...values), Math.max(...values)];
  const span = high - low || 1;
  const lastEpoch = history.length === 0 ? 1 : history[history.length - 1].epoch;
  const firstEpoch = history.length === 0 ? 0 : history[0].epoch;
  const x = (epoch: number) => margin.left + ((epoch - firstEpoch) / Math.max(1, lastEpoch - firstEpoch)) * plotWidth;
  const y = (value: number) => margin.top + (1 - (value - low) / span) * plotHeight;
  const line = (key: 'discriminatorLoss' | 'generatorLoss', colour: string) =>
    `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${history.map((log) => `${x(log.epoch).toFixed(1)},${y(log[key]).toFixed(1)}`).join(' ')}"/>`;
  const text = (content: string, left: number, top: number, anchor = 'start') =>
    `<text x="${left}" y="${top}" text-anchor="${anchor}" font-family="DejaVu Sans, sans-serif" font-size="12" fill="#000">${escapeXml(content)}</text>`;

  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="${width}" height="${height}" fill="#fff"/>` +
    `<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>` +
    line('discriminatorLoss', '#1f77b4') +
    line('generatorLoss', '#d62728') +
    text(high.toFixed(2), margin.left - 6, margin.top + 4, 'end') +
    text(low.toFixed(2), margin.left - 6, margin.top + plotHeight, 'end') +
    text(`epoch ${firstEpoch}`, margin.left, height - 12) +
    text(`epoch ${lastEpoch}`, margin.left + plotWidth, height - 12, 'end') +
    text('D loss', margin.left + 8, 18) +
    `<line x1="${margin.left + 52}" y1="14" x2="${margin.left + 72}" y2="14" stroke="#1f77b4" stroke-width="2"/>` +
    text('G loss', margin.left + 90, 18) +
    `<line x1="${margin.left + 134}" y1="14" x2="${margin.left + 154}" y2="14" stroke="#d62728" stroke-width="2"/>` +
    `</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** File names of the pictures `writeQualityPictures` writes. */
export const NEAREST_REAL_FILE = 'nearest-real.png';
export const LOSS_CURVES_FILE = 'losses.png';

/** Returns the file name of a class's real-versus-synthetic picture, e.g. `real-vs-synthetic-0-malignant.png`. */
export function comparisonFileName(label: number, className: string): string {
  return `real-vs-synthetic-${label}-${className.replace(/[^A-Za-z0-9_-]+/g, '_')}.png`;
}

/**
 * Writes the pictures of a run into `directory`: one real-versus-synthetic picture per class,
 * `nearest-real.png` and `losses.png`. Returns the paths written.
 */
export async function writeQualityPictures(
  directory: string,
  input: {
    classNames: readonly string[];
    real: readonly ImageRecord[];
    samples: readonly ImageRecord[];
    /** Per sample, its nearest real image. */
    nearestReal: readonly ImageRecord[];
    history: readonly EpochLog[];
  },
): Promise<string[]> {
  const paths: string[] = [];
  for (const [label, className] of input.classNames.entries()) {
    const path = join(directory, comparisonFileName(label, className));
    const real = input.real.filter((record) => record.label === label);
    const samples = input.samples.filter((record) => record.label === label);
    await writeFileAtomic(path, await renderRealVersusSynthetic(real, samples, className));
    paths.push(path);
  }
  const nearestPath = join(directory, NEAREST_REAL_FILE);
  await writeFileAtomic(nearestPath, await renderNearestReal(input.samples, input.nearestReal, input.classNames));
  const lossPath = join(directory, LOSS_CURVES_FILE);
  await writeFileAtomic(lossPath, await renderLossCurves(input.history));
  return [...paths, nearestPath, lossPath];
}
