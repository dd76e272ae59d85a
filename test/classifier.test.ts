import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { mirrorImage, readMedMnistNpz, recordsOfSplit, selectBackend } from '@scarce/core';
import { columnBlock, composeClassifier, extractFeatures, loadBackbone, loadClassifier, predictImages, saveClassifier, trainScaleEnsemble, type Backbone } from '@scarce/train';
import { BREASTMNIST, MOBILENET, temporaryFolder } from './helpers.js';

before(async () => {
  await selectBackend({ log: () => {} });
});

test('saved classifier predicts as the head does', async () => {
  await checkRoundTrip(1);
});

test('saved ensemble predicts as the head does', async () => {
  await checkRoundTrip(3);
});

test('saved classifier on two feature layers', async () => {
  await checkRoundTrip(1, ['block_13_expand_relu', 'block_16_expand_relu']);
});

test('saved classifier with test-time flips', async () => {
  await checkRoundTrip(1, undefined, true);
});

test('saved multi-scale classifier predicts as heads do', async () => {
  await checkRoundTrip(2, undefined, true, [32, 48]);
});

test('columnBlock slices each row', () => {
  const rows = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual([...columnBlock(rows, [2, 3], 0)], [1, 2, 6, 7]);
  assert.deepEqual([...columnBlock(rows, [2, 3], 1)], [3, 4, 5, 8, 9, 10]);
});

test('mirrorImage reverses each row', () => {
  const image = { height: 2, width: 3, channels: 2, pixels: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), label: 1 };
  const mirrored = mirrorImage(image);
  assert.deepEqual([...mirrored.pixels], [5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8]);
  assert.equal(mirrored.label, 1);
  assert.deepEqual([...image.pixels], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'the source is left as it was');
  assert.deepEqual([...mirrorImage(mirrored).pixels], [...image.pixels]);
});

async function checkRoundTrip(ensemble: number, featureLayer?: string[], testTimeFlip = false, sizes = [32]): Promise<void> {
  const dataset = await readMedMnistNpz(BREASTMNIST, { classNames: ['malignant', 'benign'] });
  const train = recordsOfSplit(dataset, 'train').slice(0, 60);
  const validation = recordsOfSplit(dataset, 'val').slice(0, 20);
  const test = recordsOfSplit(dataset, 'test').slice(0, 10);
  const backbones: Backbone[] = [];
  for (const inputSize of sizes) backbones.push(await loadBackbone(MOBILENET, { inputSize, featureLayer }));
  const backbone = backbones[0];
  const widths = backbones.map((scale) => scale.featureSize);
  // Each row holds an image's features at every size, one block after another.
  const features = (records: typeof train) => {
    const blocks = backbones.map((scale) => extractFeatures(scale, records, { quiet: true }));
    const rows = records.flatMap((_, row) => blocks.flatMap((block, b) => [...block.subarray(row * widths[b], (row + 1) * widths[b])]));
    return { features: Float32Array.from(rows), labels: records.map((record) => record.label) };
  };
  const training = await trainScaleEnsemble(features(train), features(validation), 2, { epochs: 5, units: 16, ensemble }, widths);
  const head = training.ensemble;
  assert.equal(head.heads.length, sizes.length);
  const plain = head.predict(features(test).features);
  if (sizes.length > 1) {
    const perSize = head.heads.map((member, i) => member.predict(columnBlock(features(test).features, widths, i)));
    assert.ok(perSize[0].some((value, i) => Math.abs(value - perSize[1][i]) > 1e-3), 'the sizes score differently, so the average is seen');
    plain.forEach((value, i) => assert.ok(Math.abs(value - (perSize[0][i] + perSize[1][i]) / 2) < 1e-6));
  }
  let expected = plain;
  if (testTimeFlip) {
    const mirrored = head.predict(features(test.map(mirrorImage)).features);
    assert.ok(mirrored.some((value, i) => Math.abs(value - plain[i]) > 1e-3), 'the mirrors score differently, so the average is seen');
    expected = plain.map((value, i) => (value + mirrored[i]) / 2);
  }

  const dir = await temporaryFolder();
  const path = await saveClassifier(join(dir, 'model'), composeClassifier(backbone, head, sizes), {
    classNames: dataset.classNames,
    inputSize: sizes.length === 1 ? sizes[0] : sizes,
    spec: backbone.spec,
    backbone: { source: MOBILENET, fingerprint: backbone.fingerprint },
    preprocess: { size: [28, 28], channels: 1 },
    testTimeFlip,
  });
  assert.equal(path, join(dir, 'model', 'model.json'));

  const classifier = await loadClassifier(join(dir, 'model'));
  assert.deepEqual(classifier.metadata.classNames, ['malignant', 'benign']);
  const probabilities = predictImages(classifier, test);
  assert.equal(probabilities.length, 20);
  const maxDifference = Math.max(...probabilities.map((value, i) => Math.abs(value - expected[i])));
  assert.ok(maxDifference < 1e-4, `max difference ${maxDifference}`);

  // The predict command reads a folder of images of any size and writes one CSV row per image.
  const images = join(dir, 'images', 'nested');
  await mkdir(images, { recursive: true });
  for (const [i, record] of test.slice(0, 3).entries()) {
    // Saved as RGB: prediction converts back to one channel, as the model's preprocess records.
    const rgb = Buffer.from(Array.from(record.pixels, (value) => [value, value, value]).flat());
    await sharp(rgb, { raw: { width: 28, height: 28, channels: 3 } }).png().toFile(join(images, `scan,${i}.png`));
  }
  const out = join(dir, 'predictions.csv');
  const result = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), join(dir, 'images'), '--out', out], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /resizing every image to 28x28 first, as in training/);
  const lines = (await readFile(out, 'utf8')).trim().split('\n');
  assert.equal(lines[0], 'path,predicted,p_malignant,p_benign');
  assert.equal(lines.length, 4);
  assert.match(lines[1], /^"nested\/scan,0\.png",(malignant|benign),0\.\d{6},0\.\d{6}$/);
  const csvProbability = Number(lines[1].split(',').at(-1));
  assert.ok(Math.abs(csvProbability - expected[1]) < 1e-4, `${csvProbability} vs ${expected[1]}`);
  assert.equal(/test-time flips/.test(result.stderr), testTimeFlip, 'the log says when flips are averaged in');
  assert.doesNotMatch(result.stderr, /warning/, 'images resized to the training size raise no warning');

  // Without a resize, images of another size than the training images' are named in a warning.
  const unresized = join(dir, 'unresized');
  await mkdir(unresized);
  await sharp(Buffer.from(test[0].pixels), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(unresized, 'same.png'));
  await sharp(Buffer.from(test[0].pixels), { raw: { width: 28, height: 28, channels: 1 } }).resize(56, 56).png().toFile(join(unresized, 'larger.png'));
  const modelJsonPath = join(dir, 'model', 'model.json');
  const original = await readFile(modelJsonPath, 'utf8');
  const edited = JSON.parse(original);
  edited.userDefinedMetadata.scarceClassifier.preprocess = { channels: 1, imageSize: [28, 28] };
  await writeFile(modelJsonPath, JSON.stringify(edited));
  await writeFile(join(unresized, 'broken.png'), 'not a png');
  const mixed = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), unresized, '--out', out, '--on-error', 'skip'], { encoding: 'utf8' });
  assert.equal(mixed.status, 0, mixed.stderr);
  assert.match(mixed.stderr, /warning: 1 of 2 images are not 28x28 like the training images, so they reach the backbone at another scale/);
  assert.match(mixed.stderr, /skipped .*broken\.png/);
  assert.match(mixed.stderr, /wrote predictions for 2 images to .* and skipped 1/);
  assert.deepEqual((await readFile(out, 'utf8')).trim().split('\n').slice(1).map((line) => line.split(',')[0]), ['larger.png', 'same.png']);
  const stopped = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), unresized, '--out', out], { encoding: 'utf8' });
  assert.equal(stopped.status, 2, 'a bad image stops predict without --on-error skip');
  assert.match(stopped.stderr, /broken\.png/);
  await writeFile(modelJsonPath, original);
  if (sizes.length > 1) {
    // Metadata sizes that differ from the model's inputs are rejected before tfjs runs the model.
    const swapped = JSON.parse(original);
    swapped.userDefinedMetadata.scarceClassifier.inputSize = [...sizes].reverse();
    await writeFile(modelJsonPath, JSON.stringify(swapped));
    const mismatched = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), join(dir, 'images'), '--out', out], { encoding: 'utf8' });
    assert.equal(mismatched.status, 2, mismatched.stderr);
    assert.match(mismatched.stderr, new RegExp(`but its model takes inputs of ${sizes.join(', ')} px. Set inputSize to \\[${sizes.join(',')}\\] in model.json`));
    await writeFile(modelJsonPath, original);
  }
  if (testTimeFlip) {
    const alone = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), join(dir, 'images'), '--out', out, '--no-test-time-flip'], { encoding: 'utf8' });
    assert.equal(alone.status, 0, alone.stderr);
    const aloneProbability = Number((await readFile(out, 'utf8')).trim().split('\n')[1].split(',').at(-1));
    assert.ok(Math.abs(aloneProbability - plain[1]) < 1e-4, `--no-test-time-flip: ${aloneProbability} vs ${plain[1]}`);

    // A testTimeFlip that is not true or false is rejected, and the message names the file.
    const modelJson = join(dir, 'model', 'model.json');
    const saved = JSON.parse(await readFile(modelJson, 'utf8'));
    saved.userDefinedMetadata.scarceClassifier.testTimeFlip = 'true';
    await writeFile(modelJson, JSON.stringify(saved));
    const invalid = spawnSync(process.execPath, [resolve('packages/cli/dist/main.js'), 'predict', join(dir, 'model'), join(dir, 'images'), '--out', out], { encoding: 'utf8' });
    assert.equal(invalid.status, 2, invalid.stderr);
    assert.match(invalid.stderr, /has scarceClassifier\.testTimeFlip "true" in its metadata; expected true or false/);
  }
  head.dispose();
}
