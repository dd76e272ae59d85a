import { InputError } from './errors.js';
import { readFile } from 'node:fs/promises';
import { unzipSync } from 'fflate';
import type { ImageRecord, LabelledDataset, Split } from './records.js';
import { realRecord, SPLITS } from './records.js';

/** An n-dimensional array read from a `.npy` file, widened to a typed array. */
export interface NpyArray {
  shape: number[];
  dtype: string;
  data: Uint8Array | Int32Array | Float64Array;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** Parses the bytes of one `.npy` array (format versions 1 to 3, C order, integer or float dtypes). */
export function parseNpy(bytes: Uint8Array, name = 'array'): NpyArray {
  if (!NPY_MAGIC.every((value, i) => bytes[i] === value)) {
    throw new InputError(`${name} is not a .npy array (missing the \\x93NUMPY magic).`);
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLength));

  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`${name}: cannot parse the .npy header ${JSON.stringify(header.trim())}.`);
  }
  if (fortran === 'True') throw new InputError(`${name} is stored in Fortran order; save it with C order (np.ascontiguousarray).`);
  const shape = shapeText.split(',').map((part) => part.trim()).filter((part) => part.length > 0).map(Number);
  const count = shape.reduce((product, size) => product * size, 1);

  const start = headerStart + headerLength;
  const body = bytes.subarray(start);
  const order = descr[0];
  const kind = descr.slice(1);
  const bigEndian = order === '>';
  const itemSize = Number(kind.slice(1));
  if (body.byteLength < count * itemSize) {
    throw new InputError(`${name} is truncated: shape ${JSON.stringify(shape)} needs ${count * itemSize} bytes but has ${body.byteLength}.`);
  }
  const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);

  if (kind === 'u1' || kind === 'b1') return { shape, dtype: kind, data: body.slice(0, count) };
  const readers: Record<string, (offset: number) => number> = {
    i1: (offset) => bodyView.getInt8(offset),
    u2: (offset) => bodyView.getUint16(offset, !bigEndian),
    i2: (offset) => bodyView.getInt16(offset, !bigEndian),
    u4: (offset) => bodyView.getUint32(offset, !bigEndian),
    i4: (offset) => bodyView.getInt32(offset, !bigEndian),
    i8: (offset) => Number(bodyView.getBigInt64(offset, !bigEndian)),
    u8: (offset) => Number(bodyView.getBigUint64(offset, !bigEndian)),
    f4: (offset) => bodyView.getFloat32(offset, !bigEndian),
    f8: (offset) => bodyView.getFloat64(offset, !bigEndian),
  };
  const read = readers[kind];
  if (read === undefined) throw new InputError(`${name} has dtype '${descr}', which scarce does not read; use uint8 or an integer type.`);
  const data = kind.startsWith('f') ? new Float64Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) data[i] = read(i * itemSize);
  return { shape, dtype: kind, data };
}

/** Reads every array of an `.npz` archive, keyed by name without the `.npy` suffix. */
export async function readNpz(path: string): Promise<Map<string, NpyArray>> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(await readFile(path));
  } catch (error) {
    throw new InputError(`${path} is not a readable .npz (zip) archive: ${(error as Error).message}.`);
  }
  const arrays = new Map<string, NpyArray>();
  for (const [entry, bytes] of Object.entries(entries)) {
    if (!entry.endsWith('.npy')) continue;
    const key = entry.slice(0, -'.npy'.length);
    arrays.set(key, parseNpy(bytes, `${path}:${entry}`));
  }
  return arrays;
}

/** Options of `readMedMnistNpz`. */
export interface MedMnistOptions {
  /** Class names in label order; default the label numbers as strings. */
  classNames?: string[];
}

/**
 * Reads a MedMNIST `.npz`: uint8 images `(N,H,W)` or `(N,H,W,C)` and labels `(N,)` or `(N,1)`
 * under `train_`, `val_` and `test_` keys. A split whose keys are absent is skipped.
 */
export async function readMedMnistNpz(path: string, options: MedMnistOptions = {}): Promise<LabelledDataset> {
  const arrays = await readNpz(path);
  const records: ImageRecord[] = [];
  let maxLabel = -1;

  for (const split of SPLITS) {
    const images = arrays.get(`${split}_images`);
    const labels = arrays.get(`${split}_labels`);
    if (images === undefined && labels === undefined) continue;
    if (images === undefined || labels === undefined) {
      throw new InputError(`${path} has only one of '${split}_images' and '${split}_labels'; both are needed.`);
    }
    const shape = checkImageArray(images, `${path}:${split}_images`);
    const labelValues = checkLabelArray(labels, shape.count, `${path}:${split}_labels`);
    const size = shape.height * shape.width * shape.channels;
    for (let i = 0; i < shape.count; i++) {
      const label = labelValues[i];
      maxLabel = Math.max(maxLabel, label);
      const pixels = (images.data as Uint8Array).slice(i * size, (i + 1) * size);
      records.push(realRecord(pixels, shape, label, split as Split, i));
    }
  }
  if (records.length === 0) {
    throw new InputError(`${path} has no train_images/val_images/test_images arrays; found ${[...arrays.keys()].join(', ')}.`);
  }

  const classNames = options.classNames ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  if (maxLabel >= classNames.length) {
    throw new InputError(`${path} has label ${maxLabel} but only ${classNames.length} class names were given.`);
  }
  return { classNames, records };
}

function checkImageArray(array: NpyArray, name: string) {
  if (array.dtype !== 'u1') throw new InputError(`${name} has dtype ${array.dtype}; expected uint8 images.`);
  const [count, height, width, channels = 1] = array.shape;
  if (array.shape.length !== 3 && array.shape.length !== 4) {
    throw new InputError(`${name} has shape (${array.shape.join(', ')}); expected (N,H,W) or (N,H,W,C).`);
  }
  if (channels !== 1 && channels !== 3) throw new InputError(`${name} has ${channels} channels; expected 1 or 3.`);
  return { count, height, width, channels };
}

function checkLabelArray(array: NpyArray, count: number, name: string): ArrayLike<number> {
  const shapeOk = (array.shape.length === 1 || (array.shape.length === 2 && array.shape[1] === 1)) && array.shape[0] === count;
  if (!shapeOk) {
    throw new InputError(`${name} has shape (${array.shape.join(', ')}); expected (${count},) or (${count}, 1) to match the images.`);
  }
  for (let i = 0; i < count; i++) {
    const label = array.data[i];
    if (!Number.isInteger(label) || label < 0) throw new InputError(`${name}[${i}] is ${label}; labels must be non-negative integers.`);
  }
  return array.data;
}
