import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  assignSplits,
  countByClass,
  detectDatasetFormat,
  InputError,
  loadDataset,
  parseIdx,
  readIdxDataset,
  recordsOfSplit,
} from '@scarce/core';
import { temporaryFolder } from './helpers.js';

const MNIST_FOLDER = 'fixtures/mnist_t10k';
const MNIST_IMAGES = join(MNIST_FOLDER, 't10k-images-idx3-ubyte.gz');
const MNIST_LABELS = join(MNIST_FOLDER, 't10k-labels-idx1-ubyte.gz');
/** Class counts of the MNIST test split, from the fixture's SOURCE.md. */
const MNIST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

/** Encodes a big-endian IDX file with the given magic number, dimensions and uint8 values. */
function idxBytes(magic: number, shape: number[], values: ArrayLike<number>): Uint8Array {
  const header = 4 + 4 * shape.length;
  const bytes = new Uint8Array(header + values.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, magic, false);
  shape.forEach((size, i) => view.setUint32(4 + 4 * i, size, false));
  bytes.set(values, header);
  return bytes;
}

/** Writes a 3-image 2x2 IDX pair, uncompressed, into a fresh folder and returns the folder. */
async function writeTinyPair(images: Uint8Array, labels: Uint8Array): Promise<string> {
  const folder = await temporaryFolder();
  await writeFile(join(folder, 'tiny-images-idx3-ubyte'), images);
  await writeFile(join(folder, 'tiny-labels-idx1-ubyte'), labels);
  return folder;
}

const TINY_PIXELS = Uint8Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20);
const TINY_IMAGES = idxBytes(0x803, [3, 2, 2], TINY_PIXELS);
const TINY_LABELS = idxBytes(0x801, [3], [2, 0, 1]);

test('idx reader reads the MNIST test split', async () => {
  const dataset = await readIdxDataset(MNIST_FOLDER);

  assert.equal(dataset.records.length, 10000);
  assert.deepEqual(dataset.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.equal(dataset.records[0].height, 28);
  assert.equal(dataset.records[0].width, 28);
  assert.equal(dataset.records[0].channels, 1);
  assert.equal(dataset.records[0].pixels.length, 28 * 28);
  assert.deepEqual(countByClass(dataset.records, 10), MNIST_CLASS_COUNTS);
  assert.equal(MNIST_CLASS_COUNTS.reduce((sum, count) => sum + count, 0), 10000);
  assert.ok(dataset.records.every((record) => record.split === 'train' && record.origin === 'real'));
  assert.deepEqual(dataset.records.slice(0, 3).map((record) => record.sourceIndex), [0, 1, 2]);
  assert.equal(dataset.records[9999].sourceIndex, 9999);
});

test('idx reader matches hand-decoded bytes', async () => {
  const dataset = await readIdxDataset(MNIST_IMAGES);
  const labelBytes = gunzipSync(await readFile(MNIST_LABELS));
  const imageBytes = gunzipSync(await readFile(MNIST_IMAGES));

  // Labels start after the magic number and one dimension (8 bytes), images after three dimensions (16 bytes).
  assert.equal(labelBytes.readUInt32BE(0), 2049);
  assert.equal(labelBytes.readUInt32BE(4), 10000);
  assert.equal(labelBytes[8], 7);
  assert.equal(dataset.records[0].label, 7);
  assert.deepEqual(dataset.records.slice(0, 10).map((record) => record.label), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  assert.equal(imageBytes.readUInt32BE(0), 2051);
  assert.deepEqual([...dataset.records[0].pixels], [...imageBytes.subarray(16, 16 + 784)]);
  assert.deepEqual([...dataset.records[9999].pixels], [...imageBytes.subarray(16 + 9999 * 784)]);
});

test('idx reader reads uncompressed files', async () => {
  const folder = await writeTinyPair(TINY_IMAGES, TINY_LABELS);
  const dataset = await readIdxDataset(folder);

  assert.deepEqual(dataset.classNames, ['0', '1', '2']);
  assert.deepEqual(dataset.records.map((record) => record.label), [2, 0, 1]);
  assert.deepEqual([...dataset.records[1].pixels], [80, 100, 120, 140]);
  assert.equal(dataset.records[1].height, 2);
  assert.equal(dataset.records[1].width, 2);
});

test('idx reader takes class names', async () => {
  const folder = await writeTinyPair(TINY_IMAGES, TINY_LABELS);
  const dataset = await readIdxDataset(folder, { classNames: ['a', 'b', 'c'] });
  assert.deepEqual(dataset.classNames, ['a', 'b', 'c']);
  await assert.rejects(readIdxDataset(folder, { classNames: ['a', 'b'] }), /label 2 but only 2 class names/);
});

test('loadDataset detects IDX folders and files', async () => {
  assert.equal(await detectDatasetFormat(MNIST_FOLDER), 'idx');
  assert.equal(await detectDatasetFormat(MNIST_IMAGES), 'idx');
  const fromFolder = await loadDataset(MNIST_FOLDER);
  const fromFile = await loadDataset(MNIST_IMAGES, { format: 'idx' });
  assert.equal(fromFolder.records.length, 10000);
  assert.equal(fromFile.records.length, 10000);
  assert.deepEqual(fromFile.records[5].pixels, fromFolder.records[5].pixels);
});

test('loadDataset splits IDX data stratified', async () => {
  const dataset = await loadDataset(MNIST_FOLDER, { split: { val: 0.1, test: 0 }, seed: 3 });
  const validation = recordsOfSplit(dataset, 'val');
  const train = recordsOfSplit(dataset, 'train');

  assert.equal(validation.length + train.length, 10000);
  assert.deepEqual(countByClass(validation, 10), MNIST_CLASS_COUNTS.map((count) => Math.round(count * 0.1)));
  assert.equal(recordsOfSplit(dataset, 'test').length, 0);
  assert.deepEqual(
    validation.slice(0, 3).map((record) => record.sourceIndex),
    [0, 1, 2],
  );
  assert.deepEqual(assignSplits(dataset, { val: 0, test: 0, seed: 0 }).records.map((record) => record.split), dataset.records.map((record) => record.split));
});

test('idx reader rejects a truncated image file', async () => {
  const folder = await writeTinyPair(TINY_IMAGES.subarray(0, TINY_IMAGES.length - 3), TINY_LABELS);
  await assert.rejects(
    readIdxDataset(folder),
    (error: Error) =>
      error instanceof InputError &&
      error.message.includes('tiny-images-idx3-ubyte is truncated') &&
      error.message.includes('3 x 2 x 2 uint8 values (12 bytes after the 16-byte header) but the file has 9'),
  );
});

test('idx reader rejects a truncated header', async () => {
  const folder = await writeTinyPair(TINY_IMAGES.subarray(0, 10), TINY_LABELS);
  await assert.rejects(readIdxDataset(folder), (error: Error) => error instanceof InputError && /tiny-images-idx3-ubyte is truncated: .*3 dimensions.*16-byte header.*10 bytes/.test(error.message));
});

test('idx reader rejects a truncated gzip file', async () => {
  const folder = await temporaryFolder();
  const compressed = await readFile(MNIST_LABELS);
  await writeFile(join(folder, 't10k-labels-idx1-ubyte.gz'), compressed.subarray(0, compressed.length / 2));
  await copyFile(MNIST_IMAGES, join(folder, 't10k-images-idx3-ubyte.gz'));
  await assert.rejects(
    readIdxDataset(folder),
    (error: Error) => error instanceof InputError && error.message.includes('t10k-labels-idx1-ubyte.gz is a damaged or truncated gzip file'),
  );
});

test('idx reader rejects a wrong magic number', async () => {
  const wrong = TINY_IMAGES.slice();
  wrong.set([0x50, 0x4b, 0x03, 0x04]);
  const folder = await writeTinyPair(wrong, TINY_LABELS);
  await assert.rejects(
    readIdxDataset(folder),
    (error: Error) =>
      error instanceof InputError &&
      error.message.includes('tiny-images-idx3-ubyte is not an IDX file: its magic number is 1347093252 (0x504b0304)') &&
      error.message.includes('2051 for images and 2049 for labels'),
  );
});

test('idx reader rejects labels as images', async () => {
  const folder = await writeTinyPair(TINY_LABELS, TINY_LABELS);
  await assert.rejects(readIdxDataset(folder), /tiny-images-idx3-ubyte has 1 dimension \(3\); expected images of \(N, rows, columns\)/);
  await assert.rejects(readIdxDataset(join(folder, 'tiny-labels-idx1-ubyte')), /is an IDX label file\. Give the image file/);
});

test('idx reader rejects a label count mismatch', async () => {
  const folder = await writeTinyPair(TINY_IMAGES, gzipSync(idxBytes(0x801, [2], [0, 1])));
  await assert.rejects(readIdxDataset(folder), /tiny-labels-idx1-ubyte has 2 labels but .*tiny-images-idx3-ubyte has 3 images/);
});

test('idx reader rejects trailing bytes', async () => {
  const folder = await writeTinyPair(TINY_IMAGES, idxBytes(0x801, [3], [2, 0, 1, 9]));
  await assert.rejects(readIdxDataset(folder), /tiny-labels-idx1-ubyte has 1 byte after the 3 uint8 values/);
});

test('idx reader names missing labels', async () => {
  const folder = await temporaryFolder();
  await writeFile(join(folder, 'tiny-images-idx3-ubyte'), TINY_IMAGES);
  await assert.rejects(readIdxDataset(folder), /labels of .*tiny-images-idx3-ubyte are missing: expected .*tiny-labels-idx1-ubyte or .*tiny-labels-idx1-ubyte\.gz/);
});

test('idx reader rejects two image files in a folder', async () => {
  const folder = await writeTinyPair(TINY_IMAGES, TINY_LABELS);
  await writeFile(join(folder, 'other-images-idx3-ubyte'), TINY_IMAGES);
  await assert.rejects(readIdxDataset(folder), /has 2 IDX image files \(other-images-idx3-ubyte, tiny-images-idx3-ubyte\)\. Give the path/);
});

test('parseIdx widens big-endian integers', () => {
  const bytes = new Uint8Array(4 + 4 + 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x0c01, false);
  view.setUint32(4, 2, false);
  view.setInt32(8, -5, false);
  view.setInt32(12, 70000, false);
  const array = parseIdx(bytes, 'ints');
  assert.equal(array.dtype, 'int32');
  assert.deepEqual(array.shape, [2]);
  assert.deepEqual([...array.data], [-5, 70000]);
});
