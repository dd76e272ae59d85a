import sharp from 'sharp';
import { writeFileAtomic, type ImageRecord } from '@scarce/core/io';

/** Options of `renderContactSheet`. */
export interface ContactSheetOptions {
  /** Source images shown, one per row, in the order given; default 6. */
  sources?: number;
  /** Views shown beside each source, in view order; default 8. */
  viewsPerSource?: number;
  /** Smallest side of a cell in pixels; images are enlarged by a whole factor, nearest neighbour, to reach it. Default 64. */
  minimumCellSize?: number;
}

const GAP_PIXELS = 2;
/** Extra space between a source and its first view, which sets the source apart. */
const SOURCE_GAP_PIXELS = 8;
const BACKGROUND = { r: 255, g: 255, b: 255 };

/** Enlarges an image by a whole factor (nearest neighbour) and makes it RGB. */
function toRgbCell(record: ImageRecord, scale: number): { pixels: Buffer; width: number; height: number } {
  const width = record.width * scale;
  const height = record.height * scale;
  const pixels = Buffer.alloc(height * width * 3);
  for (let y = 0; y < height; y++) {
    const sourceRow = Math.floor(y / scale) * record.width;
    for (let x = 0; x < width; x++) {
      const source = (sourceRow + Math.floor(x / scale)) * record.channels;
      const target = (y * width + x) * 3;
      for (let k = 0; k < 3; k++) pixels[target + k] = record.pixels[source + (record.channels === 3 ? k : 0)];
    }
  }
  return { pixels, width, height };
}

/**
 * Renders a PNG with one row per source record: the source at the left, then its views. Views
 * are matched to sources by source index. Cells have the size of the largest image shown, and
 * smaller images (crops) are centred in theirs.
 */
export async function renderContactSheet(
  sources: readonly ImageRecord[],
  views: readonly ImageRecord[],
  options: ContactSheetOptions = {},
): Promise<Uint8Array> {
  const sourceCount = Math.min(options.sources ?? 6, sources.length);
  const viewsPerSource = options.viewsPerSource ?? 8;
  const minimumCellSize = options.minimumCellSize ?? 64;
  for (const [name, value] of Object.entries({ sources: options.sources ?? 6, viewsPerSource, minimumCellSize })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer but received ${value}.`);
  }
  if (sourceCount < 1) throw new Error('renderContactSheet received no source records to draw.');

  const shownSources = sources.slice(0, sourceCount);
  const viewsBySource = new Map<number | null, ImageRecord[]>();
  for (const view of views) {
    const list = viewsBySource.get(view.sourceIndex) ?? [];
    list.push(view);
    viewsBySource.set(view.sourceIndex, list);
  }
  const rows = shownSources.map((source) => [
    source,
    ...(viewsBySource.get(source.sourceIndex) ?? []).sort((first, second) => first.view - second.view).slice(0, viewsPerSource),
  ]);

  return renderRows(rows, minimumCellSize, SOURCE_GAP_PIXELS);
}

/**
 * Renders rows of images as a PNG grid. Cells have the size of the largest image, enlarged by a
 * whole factor to reach `minimumCellSize`, and smaller images are centred in theirs. `firstGap`
 * is the space after the first column.
 */
async function renderRows(rows: readonly (readonly ImageRecord[])[], minimumCellSize: number, firstGap: number): Promise<Uint8Array> {
  const shown = rows.flat();
  const height = Math.max(...shown.map((record) => record.height));
  const width = Math.max(...shown.map((record) => record.width));
  const scale = Math.max(1, Math.ceil(minimumCellSize / Math.min(height, width)));
  const cellHeight = height * scale;
  const cellWidth = width * scale;
  const columns = Math.max(...rows.map((row) => row.length));
  const canvasWidth = GAP_PIXELS + cellWidth + firstGap + (columns - 1) * (cellWidth + GAP_PIXELS);
  const canvasHeight = GAP_PIXELS + rows.length * (cellHeight + GAP_PIXELS);

  const overlays: sharp.OverlayOptions[] = [];
  for (const [rowIndex, row] of rows.entries()) {
    for (const [column, record] of row.entries()) {
      const cell = toRgbCell(record, scale);
      const left = GAP_PIXELS + (column === 0 ? 0 : cellWidth + firstGap + (column - 1) * (cellWidth + GAP_PIXELS));
      overlays.push({
        input: cell.pixels,
        raw: { width: cell.width, height: cell.height, channels: 3 },
        left: left + Math.floor((cellWidth - cell.width) / 2),
        top: GAP_PIXELS + rowIndex * (cellHeight + GAP_PIXELS) + Math.floor((cellHeight - cell.height) / 2),
      });
    }
  }

  const png = await sharp({ create: { width: canvasWidth, height: canvasHeight, channels: 3, background: BACKGROUND } })
    .composite(overlays)
    .png({ compressionLevel: 6, adaptiveFiltering: true })
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Renders images in reading order as a PNG grid of `columns` columns (default 8), for a look at shard rows. */
export async function renderImageGrid(records: readonly ImageRecord[], columns = 8, minimumCellSize = 64): Promise<Uint8Array> {
  if (records.length === 0) throw new Error('renderImageGrid received no records to draw.');
  const rows: ImageRecord[][] = [];
  for (let start = 0; start < records.length; start += columns) rows.push(records.slice(start, start + columns));
  return renderRows(rows, minimumCellSize, GAP_PIXELS);
}

/** Renders the contact sheet and writes it to `path`, atomically. */
export async function writeContactSheet(
  path: string,
  sources: readonly ImageRecord[],
  views: readonly ImageRecord[],
  options: ContactSheetOptions = {},
): Promise<string> {
  await writeFileAtomic(path, await renderContactSheet(sources, views, options));
  return path;
}
