import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { deriveSeed, recordsOfSplit, writeFileAtomic, type ImageRecord, type LabelledDataset } from '@scarce/core';
import { augmentRecord, renderContactSheet, type TransformOptions } from '@scarce/augment';
import { renderSampleGrid } from '@scarce/synth';
import type { RunConfig } from './config.js';

/** Folder in a run folder that contains the figures the HTML report shows beside the stages' own. */
export const FIGURES_FOLDER = 'figures';
/** Grid of real train images, one row per class. */
export const REAL_SAMPLES_FILE = 'real-samples.png';
/** Prefix of the per-transform example sheets: `transform-rotation.png`. */
export const TRANSFORM_PREFIX = 'transform-';

/** Transform settings that change how every transform samples, not transforms of their own. */
export const SHARED_TRANSFORM_SETTINGS: ReadonlySet<string> = new Set(['fill', 'interpolation', 'engine']);
const SOURCES_PER_TRANSFORM = 3;
const VIEWS_PER_TRANSFORM_SOURCE = 6;
const SAMPLES_PER_CLASS = 10;
/** Side in pixels that small images are enlarged towards, by a whole factor, in the grid of real images. */
const SAMPLE_CELL_PIXELS = 56;

/** Returns the first train record of each class, then more in order, up to `count`. */
function pickSources(train: readonly ImageRecord[], count: number): ImageRecord[] {
  const firstOfClass = new Map<number, ImageRecord>();
  for (const record of train) if (!firstOfClass.has(record.label)) firstOfClass.set(record.label, record);
  const picked = [...firstOfClass.values()].slice(0, count);
  for (const record of train) {
    if (picked.length >= count) break;
    if (!picked.includes(record)) picked.push(record);
  }
  return picked;
}

/**
 * Renders one contact sheet per configured transform: a few train images, each beside views
 * that apply only that transform (with the shared fill, interpolation and engine settings).
 * The views use seeds derived from the run seed under their own key, so they are not rows of
 * the augmented shards.
 */
export async function renderTransformExamples(
  train: readonly ImageRecord[],
  transforms: Record<string, unknown>,
  seed: number,
): Promise<Array<{ transform: string; png: Uint8Array }>> {
  const shared = Object.fromEntries(Object.entries(transforms).filter(([key]) => SHARED_TRANSFORM_SETTINGS.has(key)));
  const sources = pickSources(train, SOURCES_PER_TRANSFORM);
  const sheets: Array<{ transform: string; png: Uint8Array }> = [];
  for (const [transform, setting] of Object.entries(transforms)) {
    if (SHARED_TRANSFORM_SETTINGS.has(transform) || setting === null || setting === false) continue;
    const only = { ...shared, [transform]: setting } as TransformOptions;
    const views: ImageRecord[] = [];
    for (const source of sources) {
      for (let view = 1; view <= VIEWS_PER_TRANSFORM_SOURCE; view++) {
        views.push(await augmentRecord(source, only, deriveSeed(seed, 'report-transform', transform, source.sourceIndex ?? 0, view), view));
      }
    }
    sheets.push({ transform, png: await renderContactSheet(sources, views, { sources: sources.length, viewsPerSource: VIEWS_PER_TRANSFORM_SOURCE }) });
  }
  return sheets;
}

/**
 * Writes the run's own figures under `figures/`: a grid of real train images per class and, when
 * a mix uses augmented rows, one example sheet per configured transform. Returns the paths written.
 */
export async function writeRunFigures(runDir: string, dataset: LabelledDataset, config: RunConfig, needs: ReadonlySet<string>): Promise<string[]> {
  const directory = join(runDir, FIGURES_FOLDER);
  await mkdir(directory, { recursive: true });
  const train = recordsOfSplit(dataset, 'train');
  const written: string[] = [];

  const realSamples = join(directory, REAL_SAMPLES_FILE);
  const scale = Math.max(1, Math.round(SAMPLE_CELL_PIXELS / Math.min(train[0].height, train[0].width)));
  await writeFileAtomic(realSamples, await renderSampleGrid(train, dataset.classNames, { columns: SAMPLES_PER_CLASS, scale }));
  written.push(realSamples);

  if (config.augment.enabled && needs.has('augmented')) {
    for (const { transform, png } of await renderTransformExamples(train, config.augment.transforms, config.seed)) {
      const path = join(directory, `${TRANSFORM_PREFIX}${transform}.png`);
      await writeFileAtomic(path, png);
      written.push(path);
    }
  }
  return written;
}
