import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';

/** Encodes a uint8 or int64 array as `.npy` (format 1.0, C order). */
export function npyBytes(values: ArrayLike<number>, shape: number[], dtype: '|u1' | '<i8'): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The magic, version and length take 10 bytes; numpy pads the header so the data starts on a 64-byte boundary.
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1, ' ') + '\n';
  const itemSize = dtype === '|u1' ? 1 : 8;
  const out = new Uint8Array(10 + header.length + values.length * itemSize);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < values.length; i++) {
    if (itemSize === 1) view.setUint8(i, values[i]);
    else view.setBigInt64(i * 8, BigInt(values[i]), true);
  }
  return out;
}

/** Writes an `.npz` archive of `.npy` arrays. */
export async function writeNpz(path: string, arrays: Record<string, Uint8Array>): Promise<void> {
  const entries = Object.fromEntries(Object.entries(arrays).map(([name, bytes]) => [`${name}.npy`, bytes]));
  await writeFile(path, zipSync(entries));
}

/** Makes a fresh temporary folder. */
export function temporaryFolder(prefix = 'scarce-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export const BREASTMNIST = 'fixtures/breastmnist/breastmnist.npz';
export const MOBILENET = 'fixtures/mobilenet_v2_0.35_224_notop';

/**
 * Writes the first images of each BreastMNIST split as an .npz in `dir` (default 48 train, 16 val
 * and 24 test); returns its path. `trainFrom` fills the train split from another split's images.
 */
export async function writeBreastMnistSubset(
  dir: string,
  counts: Record<'train' | 'val' | 'test', number> = { train: 48, val: 16, test: 24 },
  trainFrom: 'train' | 'val' | 'test' = 'train',
): Promise<string> {
  const { readMedMnistNpz, recordsOfSplit } = await import('@scarce/core');
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const arrays: Record<string, Uint8Array> = {};
  for (const split of ['train', 'val', 'test'] as const) {
    const records = recordsOfSplit(dataset, split === 'train' ? trainFrom : split).slice(0, counts[split]);
    const pixels = new Uint8Array(records.length * 28 * 28);
    records.forEach((record, i) => pixels.set(record.pixels, i * 28 * 28));
    arrays[`${split}_images`] = npyBytes(pixels, [records.length, 28, 28], '|u1');
    arrays[`${split}_labels`] = npyBytes(records.map((record) => record.label), [records.length, 1], '<i8');
  }
  const path = join(dir, 'subset.npz');
  await writeNpz(path, arrays);
  return path;
}

/** Returns the largest absolute difference between two arrays of one length. */
export function largestDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, 'arrays of one length');
  let largest = 0;
  for (let i = 0; i < expected.length; i++) largest = Math.max(largest, Math.abs(actual[i] - expected[i]));
  return largest;
}
