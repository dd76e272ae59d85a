import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import {
  buildManifest,
  readManifest,
  readMedMnistNpz,
  readShardFolder,
  writeManifest,
  writeFileAtomic,
  writeRecordsAsShards,
  type ImageRecord,
} from '@scarce/core';
import { BREASTMNIST, temporaryFolder } from './helpers.js';

async function writeSample(records: ImageRecord[], classNames: string[], rowsPerShard: number) {
  const directory = await temporaryFolder();
  const shards = await writeRecordsAsShards(records, { directory, classNames, rowsPerShard });
  await writeManifest(directory, buildManifest(classNames, shards, { note: 'test' }));
  return { directory, shards };
}

test('shards round-trip pixels, labels and metadata', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST, { classNames: ['malignant', 'benign'] });
  const records: ImageRecord[] = dataset.records.slice(0, 45).map((record, i) =>
    i % 3 === 0 ? { ...record, origin: 'augmented', view: 2, seed: 4_000_000_000 + i, params: { angle: i * 1.5 } } : record,
  );
  const { directory, shards } = await writeSample(records, dataset.classNames, 20);

  assert.deepEqual(shards.map((shard) => shard.rows), [20, 20, 5]);
  assert.deepEqual((await readdir(directory)).sort(), ['manifest.json', 'shard-00000.arrow', 'shard-00001.arrow', 'shard-00002.arrow']);
  const back = await readShardFolder(directory);
  assert.deepEqual(back.classNames, ['malignant', 'benign']);
  assert.equal(back.records.length, 45);
  back.records.forEach((record, i) => {
    assert.deepEqual(record.pixels, records[i].pixels, `pixels of row ${i}`);
    assert.equal(record.label, records[i].label);
    assert.equal(record.origin, records[i].origin);
    assert.equal(record.sourceIndex, records[i].sourceIndex);
    assert.equal(record.seed, records[i].seed);
    assert.deepEqual(record.params, records[i].params);
    assert.equal(record.channels, 1);
  });

  const manifest = await readManifest(directory);
  assert.equal(manifest.totals.rows, 45);
  assert.equal(manifest.totals.originCounts.augmented, 15);
  assert.equal(manifest.formatVersion, 1);
  assert.deepEqual(manifest.config, { note: 'test' });

  const table = tableFromIPC(await readFile(join(directory, 'shard-00000.arrow')));
  assert.equal(table.schema.metadata.get('scarce.format_version'), '1');
  assert.equal(table.schema.metadata.get('scarce.class_names'), '["malignant","benign"]');
  assert.deepEqual(table.schema.fields.map((field) => field.name), [
    'image', 'label', 'height', 'width', 'channels', 'origin', 'source_index', 'view', 'seed', 'params', 'split',
  ]);
});

test('shard folder rejects a changed shard', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const { directory } = await writeSample(dataset.records.slice(0, 5), dataset.classNames, 10);
  const path = join(directory, 'shard-00000.arrow');
  const bytes = await readFile(path);
  await writeFile(path, bytes.subarray(0, bytes.length - 10));
  await assert.rejects(readShardFolder(directory), /shard-00000\.arrow does not match the sha256 in manifest\.json/);
});

test('shard folder names a missing manifest', async () => {
  const directory = await temporaryFolder();
  await assert.rejects(readShardFolder(directory), /manifest\.json not found/);
});

test('shard writing leaves no temporary files', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const { directory } = await writeSample(dataset.records.slice(0, 30), dataset.classNames, 7);
  const files = await readdir(directory);
  assert.equal(files.filter((file) => file.includes('.tmp')).length, 0);
  assert.equal(files.filter((file) => file.endsWith('.arrow')).length, 5);
});

test('atomic write onto a folder leaves nothing', async () => {
  const dir = await temporaryFolder();
  await mkdir(join(dir, 'taken'));
  await assert.rejects(writeFileAtomic(join(dir, 'taken'), 'data'), /EISDIR|EEXIST|ENOTEMPTY|EPERM/);
  assert.deepEqual(await readdir(dir), ['taken'], 'no temporary file left');
  await writeFileAtomic(join(dir, 'file.txt'), 'data');
  assert.equal(await readFile(join(dir, 'file.txt'), 'utf8'), 'data');
  assert.deepEqual((await readdir(dir)).sort(), ['file.txt', 'taken']);
});
