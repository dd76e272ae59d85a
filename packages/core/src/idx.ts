import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError } from './errors.js';
import type { ImageRecord, LabelledDataset } from './records.js';
import { realRecord } from './records.js';

/**
 * An n-dimensional array read from an IDX file, the format of the MNIST and Fashion-MNIST
 * distributions. Integer types are widened to `Int32Array` except uint8, which stays as read.
 */
export interface IdxArray {
  shape: number[];
  dtype: IdxType;
  data: Uint8Array | Int32Array | Float64Array;
}

/** Element types of the IDX format, by the name of their type code. */
export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The IDX type codes (third byte of the magic number) with their element size in bytes. Values are big-endian. */
const IDX_TYPES: ReadonlyMap<number, { dtype: IdxType; size: number }> = new Map([
  [0x08, { dtype: 'uint8', size: 1 }],
  [0x09, { dtype: 'int8', size: 1 }],
  [0x0b, { dtype: 'int16', size: 2 }],
  [0x0c, { dtype: 'int32', size: 4 }],
  [0x0d, { dtype: 'float32', size: 4 }],
  [0x0e, { dtype: 'float64', size: 8 }],
]);

/** Magic number of uint8 arrays of (images, rows, columns), as MNIST's image files start. */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic number of a uint8 vector, as MNIST's label files start. */
export const IDX_LABELS_MAGIC = 0x00000801;

const GZIP_MAGIC = [0x1f, 0x8b];
/** File names of IDX image files: `train-images-idx3-ubyte`, `t10k-images.idx3-ubyte`, with or without `.gz`. */
const IDX_IMAGES_NAME = /idx3-ubyte(\.gz)?$/i;
const IDX_LABELS_NAME = /idx1-ubyte(\.gz)?$/i;

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * Parses the bytes of one IDX file: a 4-byte magic number (two zero bytes, the type code, the
 * number of dimensions), one big-endian uint32 per dimension, then the values in C order.
 * `name` labels the errors, which are `InputError`s.
 */
export function parseIdx(bytes: Uint8Array, name = 'IDX file'): IdxArray {
  if (bytes.byteLength < 4) {
    throw new InputError(`${name} is truncated: it has ${bytes.byteLength} bytes, fewer than the 4 of an IDX magic number.`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const type = IDX_TYPES.get(bytes[2]);
  const dimensions = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || type === undefined || dimensions === 0) {
    throw new InputError(
      `${name} is not an IDX file: its magic number is ${magic} (${hex(magic)}), but an IDX file starts with two zero bytes, ` +
        `a type code (0x08 for uint8) and a dimension count, e.g. ${IDX_IMAGES_MAGIC} for images and ${IDX_LABELS_MAGIC} for labels.`,
    );
  }

  const headerLength = 4 + 4 * dimensions;
  if (bytes.byteLength < headerLength) {
    throw new InputError(`${name} is truncated: its magic number ${magic} announces ${plural(dimensions, 'dimension')}, which need a ${headerLength}-byte header, but the file has ${bytes.byteLength} bytes.`);
  }
  const shape = Array.from({ length: dimensions }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((product, size) => product * size, 1);
  const bodyLength = bytes.byteLength - headerLength;
  const expectedLength = count * type.size;
  if (bodyLength < expectedLength) {
    throw new InputError(
      `${name} is truncated: its header announces ${shape.join(' x ')} ${type.dtype} values (${expectedLength} bytes after the ${headerLength}-byte header) ` +
        `but the file has ${bodyLength}. Download the file again.`,
    );
  }
  if (bodyLength > expectedLength) {
    throw new InputError(`${name} has ${plural(bodyLength - expectedLength, 'byte')} after the ${shape.join(' x ')} ${type.dtype} values its header announces; it is not a valid IDX file.`);
  }

  const body = bytes.subarray(headerLength, headerLength + expectedLength);
  if (type.dtype === 'uint8') return { shape, dtype: type.dtype, data: body.slice() };
  const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const read: (offset: number) => number = {
    int8: (offset: number) => bodyView.getInt8(offset),
    int16: (offset: number) => bodyView.getInt16(offset, false),
    int32: (offset: number) => bodyView.getInt32(offset, false),
    float32: (offset: number) => bodyView.getFloat32(offset, false),
    float64: (offset: number) => bodyView.getFloat64(offset, false),
  }[type.dtype];
  const data = type.dtype.startsWith('float') ? new Float64Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) data[i] = read(i * type.size);
  return { shape, dtype: type.dtype, data };
}

/** Reads one IDX file, gunzipping it first when it starts with the gzip magic bytes. */
export async function readIdxFile(path: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new InputError(`Cannot read IDX file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  if (bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1]) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new InputError(`${path} is a damaged or truncated gzip file (${(error as Error).message}). Download it again.`);
    }
  }
  return parseIdx(bytes, path);
}

/** Paths of one IDX image file and its label file. */
export interface IdxFilePair {
  images: string;
  labels: string;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((info) => info.isFile(), () => false);
}

/** Checks whether a file name is that of an IDX image file (`...idx3-ubyte`, optionally `.gz`). */
export function isIdxImagesFileName(name: string): boolean {
  return IDX_IMAGES_NAME.test(name);
}

/** Lists the IDX image files directly inside a folder, sorted by name. */
export async function listIdxImageFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile() && isIdxImagesFileName(entry.name)).map((entry) => join(folder, entry.name)).sort();
}

/**
 * Finds the label file of an IDX image file beside it: the same name with `images` changed to
 * `labels` and `idx3` to `idx1`, with or without `.gz` (`t10k-images-idx3-ubyte.gz` pairs with
 * `t10k-labels-idx1-ubyte.gz` or `t10k-labels-idx1-ubyte`).
 */
async function findLabelsFile(imagesPath: string): Promise<string> {
  const name = basename(imagesPath);
  if (IDX_LABELS_NAME.test(name)) {
    throw new InputError(`${imagesPath} is an IDX label file. Give the image file (...-images-idx3-ubyte[.gz]) or its folder; the labels are read from beside it.`);
  }
  if (!/images/i.test(name) || !/idx3/i.test(name)) {
    throw new InputError(`Cannot derive the label file name of ${imagesPath}: an IDX image file name must contain 'images' and 'idx3' (as in t10k-images-idx3-ubyte.gz) so that the label file's name can be derived.`);
  }
  const stem = name.replace(/images/i, 'labels').replace(/idx3/i, 'idx1').replace(/\.gz$/i, '');
  const candidates = [stem, `${stem}.gz`].map((candidate) => join(dirname(imagesPath), candidate));
  for (const candidate of candidates) if (await isFile(candidate)) return candidate;
  throw new InputError(`The labels of ${imagesPath} are missing: expected ${candidates.join(' or ')}.`);
}

/** Resolves an IDX dataset path, a folder with one IDX image file or that image file, to the image and label files. */
export async function resolveIdxFiles(path: string): Promise<IdxFilePair> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new InputError(`Dataset ${path} not found.`);
  if (info.isFile()) return { images: path, labels: await findLabelsFile(path) };

  const found = await listIdxImageFiles(path);
  if (found.length === 0) throw new InputError(`${path} has no IDX image file (a name ending in idx3-ubyte or idx3-ubyte.gz).`);
  if (found.length > 1) {
    throw new InputError(`${path} has ${found.length} IDX image files (${found.map((file) => basename(file)).join(', ')}). Give the path of the one to read.`);
  }
  return { images: found[0], labels: await findLabelsFile(found[0]) };
}

/** Options of `readIdxDataset`. */
export interface IdxDatasetOptions {
  /** Class names in label order; default the label numbers as strings ('0' to '9' for MNIST). */
  classNames?: string[];
}

/**
 * Reads an IDX image file and its label file into a labelled dataset: uint8 images of
 * (N, rows, columns) or (N, rows, columns, channels) with 1 or 3 channels, and N uint8 labels.
 * `path` is the image file or a folder that has exactly one. IDX files carry no split, so every
 * record is in `train`; `assignSplits` (or `data.split` in a run) holds out val and test.
 */
export async function readIdxDataset(path: string, options: IdxDatasetOptions = {}): Promise<LabelledDataset> {
  const files = await resolveIdxFiles(path);
  const images = await readIdxFile(files.images);
  const labels = await readIdxFile(files.labels);

  const shape = checkIdxImages(images, files.images);
  checkIdxLabels(labels, shape.count, files.labels, files.images);

  const size = shape.height * shape.width * shape.channels;
  const pixels = images.data as Uint8Array;
  const records: ImageRecord[] = [];
  let maxLabel = -1;
  for (let i = 0; i < shape.count; i++) {
    const label = labels.data[i];
    maxLabel = Math.max(maxLabel, label);
    records.push(realRecord(pixels.slice(i * size, (i + 1) * size), shape, label, 'train', i));
  }

  const classNames = options.classNames ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  if (maxLabel >= classNames.length) {
    throw new InputError(`${files.labels} has label ${maxLabel} but only ${classNames.length} class names were given.`);
  }
  return { classNames, records };
}

function checkIdxImages(array: IdxArray, path: string) {
  if (array.dtype !== 'uint8') throw new InputError(`${path} contains ${array.dtype} values; expected uint8 images (magic number ${IDX_IMAGES_MAGIC}).`);
  if (array.shape.length !== 3 && array.shape.length !== 4) {
    throw new InputError(`${path} has ${plural(array.shape.length, 'dimension')} (${array.shape.join(' x ')}); expected images of (N, rows, columns) or (N, rows, columns, channels).`);
  }
  const [count, height, width, channels = 1] = array.shape;
  if (channels !== 1 && channels !== 3) throw new InputError(`${path} has ${channels} channels; expected 1 or 3.`);
  if (count === 0 || height === 0 || width === 0) throw new InputError(`${path} has no pixels: its shape is ${array.shape.join(' x ')}.`);
  return { count, height, width, channels };
}

function checkIdxLabels(array: IdxArray, imageCount: number, path: string, imagesPath: string): void {
  if (array.shape.length !== 1) {
    throw new InputError(`${path} has ${plural(array.shape.length, 'dimension')} (${array.shape.join(' x ')}); expected one label per image (magic number ${IDX_LABELS_MAGIC}).`);
  }
  if (array.dtype.startsWith('float')) throw new InputError(`${path} contains ${array.dtype} values; expected integer labels.`);
  if (array.shape[0] !== imageCount) {
    throw new InputError(`${path} has ${array.shape[0]} labels but ${imagesPath} has ${imageCount} images; the counts must be equal.`);
  }
  for (let i = 0; i < imageCount; i++) {
    if (array.data[i] < 0) throw new InputError(`${path}: label ${i} is ${array.data[i]}; labels must be non-negative integers.`);
  }
}
