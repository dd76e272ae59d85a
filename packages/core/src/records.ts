/** Source of a record. */
export type Origin = 'real' | 'augmented' | 'synthetic';

/** Split a record belongs to. Validation and test records are always real. */
export type Split = 'train' | 'val' | 'test';

export const ORIGINS: readonly Origin[] = ['real', 'augmented', 'synthetic'];
export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** One labelled image held in memory as 8-bit pixels, row-major, channels last (HWC). */
export interface ImageRecord {
  pixels: Uint8Array;
  height: number;
  width: number;
  /** 1 for grayscale, 3 for RGB. */
  channels: number;
  /** Class index into the dataset's `classNames`. */
  label: number;
  origin: Origin;
  /**
   * Index of the real image this record derives from, within its split.
   * A real record points at itself; synthetic records have none.
   */
  sourceIndex: number | null;
  /** 0 for real and synthetic records; 1..K for the K augmented views of one real image. */
  view: number;
  /** Seed that produced this record (0 for real records). */
  seed: number;
  /** Transform or generator settings that produced this record, or null for real records. */
  params: Record<string, unknown> | null;
  split: Split;
}

/** Labelled images with their class names. */
export interface LabelledDataset {
  classNames: string[];
  records: ImageRecord[];
}

/** Returns the records of one split, in their original order. */
export function recordsOfSplit(dataset: LabelledDataset, split: Split): ImageRecord[] {
  return dataset.records.filter((record) => record.split === split);
}

/** Counts records per class index, as an array of length `numClasses`. */
export function countByClass(records: readonly ImageRecord[], numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const record of records) counts[record.label]++;
  return counts;
}

/** Counts records per origin. */
export function countByOrigin(records: readonly ImageRecord[]): Record<Origin, number> {
  const counts: Record<Origin, number> = { real: 0, augmented: 0, synthetic: 0 };
  for (const record of records) counts[record.origin]++;
  return counts;
}

/** Builds a real record from raw pixels. */
export function realRecord(
  pixels: Uint8Array,
  shape: { height: number; width: number; channels: number },
  label: number,
  split: Split,
  index: number,
): ImageRecord {
  return {
    pixels,
    ...shape,
    label,
    origin: 'real',
    sourceIndex: index,
    view: 0,
    seed: 0,
    params: null,
    split,
  };
}
