import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { assignSplits, loadDataset, readImageFolder, readMedMnistNpz, recordsOfSplit, InputError } from '@scarce/core';
import { BREASTMNIST, npyBytes, temporaryFolder, writeNpz } from './helpers.js';

const images = Uint8Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 10);

for (const labelShape of [[3], [3, 1]]) {
  test(`npz reader takes labels of shape (${labelShape.join(', ')})`, async () => {
    const dir = await temporaryFolder();
    const path = join(dir, 'tiny.npz');
    await writeNpz(path, {
      train_images: npyBytes(images, [3, 2, 2], '|u1'),
      train_labels: npyBytes([0, 1, 1], labelShape, '<i8'),
      test_images: npyBytes(images.slice(0, 4), [1, 2, 2], '|u1'),
      test_labels: npyBytes([1], labelShape.length === 1 ? [1] : [1, 1], '<i8'),
    });
    const dataset = await readMedMnistNpz(path, { classNames: ['a', 'b'] });
    assert.deepEqual(dataset.classNames, ['a', 'b']);
    assert.equal(dataset.records.length, 4);
    assert.deepEqual(dataset.records.map((record) => record.label), [0, 1, 1, 1]);
    assert.deepEqual(dataset.records.map((record) => record.split), ['train', 'train', 'train', 'test']);
    assert.deepEqual([...dataset.records[1].pixels], [40, 50, 60, 70]);
    assert.equal(dataset.records[1].channels, 1);
    assert.equal(dataset.records[2].sourceIndex, 2);
  });
}

test('npz reader reads BreastMNIST splits', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  assert.equal(recordsOfSplit(dataset, 'train').length, 546);
  assert.equal(recordsOfSplit(dataset, 'val').length, 78);
  assert.equal(recordsOfSplit(dataset, 'test').length, 156);
  assert.equal(recordsOfSplit(dataset, 'train').filter((record) => record.label === 0).length, 147);
  assert.equal(dataset.records[0].height, 28);
  assert.equal(dataset.records[0].pixels.length, 28 * 28);
});

test('npz reader rejects mismatched label count', async () => {
  const dir = await temporaryFolder();
  const path = join(dir, 'bad.npz');
  await writeNpz(path, { train_images: npyBytes(images, [3, 2, 2], '|u1'), train_labels: npyBytes([0, 1], [2], '<i8') });
  await assert.rejects(readMedMnistNpz(path), (error: Error) => error instanceof InputError && /train_labels.*\(3,\) or \(3, 1\)/.test(error.message));
});

async function writeClassFolder(root: string) {
  await mkdir(join(root, 'cat'), { recursive: true });
  await mkdir(join(root, 'dog'), { recursive: true });
  const gray = Buffer.from(Uint8Array.from({ length: 16 }, (_, i) => i * 16));
  await sharp(gray, { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(root, 'cat', 'a.png'));
  await sharp(gray, { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(root, 'cat', 'b.PNG'));
  const red = Buffer.alloc(4 * 4 * 3);
  for (let i = 0; i < 16; i++) red[3 * i] = 255;
  await sharp(red, { raw: { width: 4, height: 4, channels: 3 } }).png().toFile(join(root, 'dog', 'c.png'));
  await writeFile(join(root, 'dog', 'notes.txt'), 'not an image');
}

test('folder reader reads class subfolders', async () => {
  const root = await temporaryFolder();
  await writeClassFolder(root);
  const dataset = await readImageFolder(root);
  assert.deepEqual(dataset.classNames, ['cat', 'dog']);
  assert.deepEqual(dataset.records.map((record) => record.label), [0, 0, 1]);
  // One colour image makes every record RGB; grayscale pixels are repeated in all three channels.
  assert.equal(dataset.records[0].channels, 3);
  assert.deepEqual([...dataset.records[0].pixels.slice(3, 6)], [16, 16, 16]);
  assert.deepEqual([...dataset.records[2].pixels.slice(0, 3)], [255, 0, 0]);
  assert.ok(dataset.records.every((record) => record.split === 'train' && record.origin === 'real'));
});

test('folder reader names a mismatched size', async () => {
  const root = await temporaryFolder();
  await writeClassFolder(root);
  await sharp({ create: { width: 5, height: 4, channels: 3, background: '#000' } }).png().toFile(join(root, 'dog', 'wide.png'));
  await assert.rejects(readImageFolder(root), /wide\.png is 4x5 .* --size 4x4/);
  const resized = await readImageFolder(root, { size: [4, 4] });
  assert.equal(resized.records.length, 4);
});

test('folder reader names an empty class folder', async () => {
  const root = await temporaryFolder();
  await writeClassFolder(root);
  await mkdir(join(root, 'empty'));
  await assert.rejects(readImageFolder(root), /empty has no images/);
});

test('folder reader names a corrupt image', async () => {
  const root = await temporaryFolder();
  await writeClassFolder(root);
  await writeFile(join(root, 'cat', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\nnot really'));
  await assert.rejects(readImageFolder(root), /broken\.png is not a readable PNG, JPEG or WebP image/);
});

test('split assignment is stratified and seeded', async () => {
  const dataset = await loadDataset(BREASTMNIST);
  const trainOnly = { classNames: dataset.classNames, records: recordsOfSplit(dataset, 'train').map((record) => ({ ...record })) };
  const first = assignSplits(trainOnly, { val: 0.2, test: 0.2, seed: 3 });
  const second = assignSplits(trainOnly, { val: 0.2, test: 0.2, seed: 3 });
  assert.deepEqual(first.records.map((record) => record.split), second.records.map((record) => record.split));
  const test = recordsOfSplit(first, 'test');
  assert.equal(test.filter((record) => record.label === 0).length, Math.round(147 * 0.2));
  assert.equal(test.filter((record) => record.label === 1).length, Math.round(399 * 0.2));
  assert.deepEqual(recordsOfSplit(first, 'val').map((record) => record.sourceIndex).slice(0, 3), [0, 1, 2]);
});
