import { InputError } from './errors.js';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import fg from 'fast-glob';
import pLimit from 'p-limit';
import { convertChannels } from './channels.js';
import { readImageFile } from './image-file.js';
import type { ImageRecord, LabelledDataset, Split } from './records.js';
import { realRecord, SPLITS } from './records.js';
import { Random } from './random.js';

export const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'webp'];

/** Options of `readImageFolder`. */
export interface ImageFolderOptions {
  /**
   * Size every image is resized to, as [height, width]. Without it all images must share one
   * size, and the first mismatch is an error naming the file.
   */
  size?: [number, number];
  /** Channels of the output: 1 (grayscale) or 3 (RGB); default 3 when any image is colour, else 1. */
  channels?: 1 | 3;
  /** Images decoded at once; default 8. */
  concurrency?: number;
}

/** An image file found in a class folder, with its label, split and index within the split. */
export interface FoundImage {
  path: string;
  label: number;
  split: Split;
  /** Position within its split in listing order: the record's `sourceIndex`. */
  sourceIndex: number;
}

/** The result of `listImageFolder`. */
export interface ImageFolderListing {
  classNames: string[];
  /** Every image, by split folder, then class, then sorted path. */
  images: FoundImage[];
  /** Class folders of the train split without images. */
  emptyClassFolders: string[];
}

/**
 * Lists the images of a class folder (see `readImageFolder` for the layouts) without reading
 * them. Files whose extension is not an image extension are left out.
 */
export async function listImageFolder(root: string): Promise<ImageFolderListing> {
  const topLevel = await listFolders(root);
  const hasSplits = topLevel.length > 0 && topLevel.every((name) => (SPLITS as readonly string[]).includes(name));
  const splitFolders: Array<[Split, string]> = hasSplits
    ? topLevel.map((name) => [name as Split, join(root, name)])
    : [['train', root]];

  const classNames = hasSplits ? await unionOfClassFolders(splitFolders.map(([, dir]) => dir)) : topLevel;
  if (classNames.length === 0) {
    throw new InputError(`${root} has no class subfolders. Put each class's images in a folder named after the class, e.g. ${join(root, 'benign', 'img001.png')}.`);
  }

  const images: FoundImage[] = [];
  const emptyClassFolders: string[] = [];
  const indexInSplit: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const [split, dir] of splitFolders) {
    for (const [label, className] of classNames.entries()) {
      const classDir = join(dir, className);
      const paths = await fg(`**/*.{${IMAGE_EXTENSIONS.join(',')}}`, {
        cwd: classDir,
        caseSensitiveMatch: false,
        absolute: true,
        onlyFiles: false,
        followSymbolicLinks: false,
      }).catch(() => [] as string[]);
      if (paths.length === 0 && split === 'train') emptyClassFolders.push(classDir);
      for (const path of paths.sort()) images.push({ path, label, split, sourceIndex: indexInSplit[split]++ });
    }
  }
  return { classNames, images, emptyClassFolders };
}

/**
 * Reads labelled images from a folder with one subfolder per class (`root/<class>/*.png`), or
 * with split folders above those (`root/train/<class>/...`, `root/val/...`, `root/test/...`).
 * Class names are the subfolder names in sorted order. Without split folders every record is in
 * the train split; use `assignSplits` to hold some out.
 */
export async function readImageFolder(root: string, options: ImageFolderOptions = {}): Promise<LabelledDataset> {
  const { classNames, images: found, emptyClassFolders } = await listImageFolder(root);
  if (emptyClassFolders.length > 0) {
    throw new InputError(`${emptyClassFolders[0]} has no images (.${IMAGE_EXTENSIONS.join(', .')}). Add images or remove the empty class folder.`);
  }

  const limit = pLimit(options.concurrency ?? 8);
  const decoded = await Promise.all(found.map((image) => limit(() => readImageFile(image.path, { size: options.size }))));
  const channels = options.channels ?? (decoded.some((image) => image.channels === 3) ? 3 : 1);
  const first = decoded[0];

  const records: ImageRecord[] = found.map((image, i) => {
    const pixels = decoded[i];
    if (pixels.height !== first.height || pixels.width !== first.width) {
      throw new InputError(
        `${image.path} is ${pixels.height}x${pixels.width} but ${relative(root, found[0].path)} is ` +
          `${first.height}x${first.width}. Set a size to resize all images: data.size in a run config (e.g. [${first.height}, ${first.width}]) or --size ${first.height}x${first.width} on the command line.`,
      );
    }
    const converted = convertChannels(pixels.pixels, pixels.channels, channels);
    const shape = { height: pixels.height, width: pixels.width, channels };
    return realRecord(converted, shape, image.label, image.split, image.sourceIndex);
  });
  return { classNames, records };
}

async function listFolders(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new InputError(`Cannot read image folder ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name).sort();
}

async function unionOfClassFolders(dirs: string[]): Promise<string[]> {
  const names = new Set<string>();
  for (const dir of dirs) for (const name of await listFolders(dir)) names.add(name);
  return [...names].sort();
}

export { convertChannels } from './channels.js';

/** Fractions of the records to move out of the train split. */
export interface SplitFractions {
  val: number;
  test: number;
  seed: number;
}

/**
 * Moves a seeded, class-stratified share of the train records into val and test. Records
 * already in val or test stay where they are, so a dataset with its own splits is unchanged
 * when both fractions are 0.
 */
export function assignSplits(dataset: LabelledDataset, fractions: SplitFractions): LabelledDataset {
  if (fractions.val < 0 || fractions.test < 0 || fractions.val + fractions.test >= 1) {
    throw new InputError(`Split fractions val=${fractions.val}, test=${fractions.test} must be ≥ 0 and sum to less than 1.`);
  }
  const random = new Random(fractions.seed);
  const records = dataset.records.map((record) => ({ ...record }));
  for (let label = 0; label < dataset.classNames.length; label++) {
    const train = random.shuffle(records.filter((record) => record.split === 'train' && record.label === label));
    const testCount = Math.round(train.length * fractions.test);
    const valCount = Math.round(train.length * fractions.val);
    train.slice(0, testCount).forEach((record) => (record.split = 'test'));
    train.slice(testCount, testCount + valCount).forEach((record) => (record.split = 'val'));
  }

  const indexInSplit: Record<Split, number> = { train: 0, val: 0, test: 0 };
  for (const record of records) record.sourceIndex = indexInSplit[record.split]++;
  return { classNames: dataset.classNames, records };
}
