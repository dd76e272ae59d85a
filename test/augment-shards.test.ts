import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  readManifest,
  readMedMnistNpz,
  readShard,
  readShardFolder,
  recordsOfSplit,
  type ImageRecord,
  type LabelledDataset,
  type Manifest,
} from '@scarce/core';
import { applyTransform, augmentToShards, mergeShardParts, parseShardSize, type TransformOptions } from '@scarce/augment';
import { BREASTMNIST, temporaryFolder } from './helpers.js';

const QUIET = { quiet: true };
const TRANSFORMS: TransformOptions = {
  rotation: 20,
  widthShift: 0.1,
  heightShift: { range: 2, unit: 'pixels' },
  zoom: 0.1,
  shear: 8,
  horizontalFlip: true,
  verticalFlip: { probability: 0.2 },
  brightness: 0.2,
  contrast: 0.3,
  blur: { range: 1, probability: 0.3 },
  noise: { range: 6, probability: 0.5 },
  cutout: { size: [0.1, 0.3], probability: 0.5 },
  fill: 'reflect',
};

async function shardBytes(directory: string): Promise<Map<string, Buffer>> {
  const files = (await readdir(directory)).filter((name) => name.endsWith('.arrow')).sort();
  return new Map(await Promise.all(files.map(async (name) => [name, await readFile(join(directory, name))] as const)));
}

describe('augmentToShards at scale', () => {
  let root: string;
  let dataset: LabelledDataset;
  let train: ImageRecord[];
  let reference: Manifest;
  let referenceDir: string;
  const base = { viewsPerImage: 3, seed: 17, transforms: TRANSFORMS, shardSize: 30, progress: QUIET };

  before(async () => {
    root = await temporaryFolder('scarce-shards-');
    const full = await readMedMnistNpz(BREASTMNIST);
    train = recordsOfSplit(full, 'train').slice(0, 40);
    dataset = { classNames: full.classNames, records: [...train, ...recordsOfSplit(full, 'val').slice(0, 4)] };
    referenceDir = join(root, 'reference');
    reference = await augmentToShards(dataset, { ...base, outDir: referenceDir, concurrency: 1 });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('plan holds whole sources per shard', () => {
    assert.deepEqual(reference.shards.map((shard) => shard.rows), [30, 30, 30, 30]);
    assert.equal(reference.totals.rows, 120);
    assert.deepEqual(reference.totals.originCounts, { real: 0, augmented: 120, synthetic: 0 });
    assert.equal(reference.encoding, 'png');
  });

  test('worker threads give identical bytes', async () => {
    const outDir = join(root, 'threads');
    const manifest = await augmentToShards(dataset, { ...base, outDir, concurrency: 3 });
    assert.deepEqual(manifest.shards, reference.shards);
    assert.deepEqual(await shardBytes(outDir), await shardBytes(referenceDir));
  });

  for (const encoding of ['png', 'raw'] as const) {
    test(`stored params replay every row, ${encoding}`, async () => {
      const outDir = join(root, `replay-${encoding}`);
      const manifest = await augmentToShards(dataset, { ...base, outDir, encoding, concurrency: 2 });
      assert.equal(manifest.encoding, encoding);
      const back = await readShardFolder(outDir);
      assert.equal(back.records.length, 120);
      const bySourceIndex = new Map(train.map((record) => [record.sourceIndex, record]));
      for (const [index, row] of back.records.entries()) {
        const replayed = await applyTransform(bySourceIndex.get(row.sourceIndex)!, row.params!);
        assert.deepEqual(replayed.pixels, row.pixels, `row ${index}`);
        assert.equal(row.label, bySourceIndex.get(row.sourceIndex)!.label, `row ${index} label`);
      }
    });
  }

  test('raw and png rows hold the same pixels', async () => {
    const png = await readShardFolder(referenceDir);
    const raw = await readShardFolder(join(root, 'replay-raw'));
    assert.equal(raw.records.length, png.records.length);
    for (let i = 0; i < png.records.length; i++) assert.deepEqual(raw.records[i].pixels, png.records[i].pixels, `row ${i}`);
    const first = await readShard(join(root, 'replay-raw', 'augmented-00000.arrow'));
    assert.equal(first.encoding, 'raw');
    assert.equal(first.rows[0].image.byteLength, 28 * 28);
  });

  test('byte shard size is met on average', async () => {
    const outDir = join(root, 'bytes');
    const manifest = await augmentToShards(dataset, { ...base, outDir, shardSize: '20kB', concurrency: 1 });
    assert.ok(manifest.shards.length >= 3, `${manifest.shards.length} shards`);
    for (const shard of manifest.shards) assert.equal(shard.rows % 3, 0, `${shard.file} holds whole sources`);
    const full = manifest.shards.slice(0, -1);
    const mean = full.reduce((sum, shard) => sum + shard.bytes, 0) / full.length;
    assert.ok(mean > 10_000, `mean shard bytes ${mean}`);
    assert.ok(mean < 30_000, `mean shard bytes ${mean}`);
  });

  test('shard size parses rows and units', () => {
    assert.deepEqual(parseShardSize('4096'), { rows: 4096 });
    assert.deepEqual(parseShardSize('256MB'), { bytes: 256_000_000 });
    assert.deepEqual(parseShardSize('1GiB'), { bytes: 1024 ** 3 });
    assert.deepEqual(parseShardSize(12), { rows: 12 });
    assert.throws(() => parseShardSize('12 parsecs'), /Invalid shard size '12 parsecs'/);
    assert.throws(() => parseShardSize(0), /positive whole number of rows/);
  });

  test('parts in one folder merge to the single run', async () => {
    const outDir = join(root, 'parts-shared');
    for (const shardIndex of [2, 0, 1]) {
      const part = await augmentToShards(dataset, { ...base, outDir, shardIndex, numShards: 3, concurrency: 1 });
      assert.ok(part.shards.length >= 1, `part ${shardIndex} writes shards`);
    }
    assert.ok(!(await readdir(outDir)).includes('manifest.json'), 'no manifest before the merge');
    const merged = await mergeShardParts([outDir]);
    assert.deepEqual(merged.shards, reference.shards);
    assert.deepEqual(merged.totals, reference.totals);
    assert.deepEqual(await readManifest(outDir), merged);
    assert.deepEqual(await shardBytes(outDir), await shardBytes(referenceDir));
  });

  test('parts in separate folders merge by copying', async () => {
    const folders = [0, 1].map((index) => join(root, `machine-${index}`));
    for (const [shardIndex, outDir] of folders.entries()) {
      await augmentToShards(dataset, { ...base, outDir, shardIndex, numShards: 2, concurrency: 1 });
    }
    const outDir = join(root, 'merged');
    const merged = await mergeShardParts(folders, { outDir });
    assert.deepEqual(merged.shards, reference.shards);
    assert.equal((await readShardFolder(outDir)).records.length, 120);
    assert.ok((await readdir(outDir)).includes('examples.png'));
  });

  test('merge rejects a missing or foreign part', async () => {
    const outDir = join(root, 'parts-missing');
    await augmentToShards(dataset, { ...base, outDir, shardIndex: 0, numShards: 3, concurrency: 1 });
    await assert.rejects(mergeShardParts([outDir]), /Parts 1, 2 of 3 have no manifest in the merged folders. Run them/);
    await augmentToShards(dataset, { ...base, seed: 18, outDir: join(root, 'parts-other'), shardIndex: 1, numShards: 3, concurrency: 1 });
    await assert.rejects(mergeShardParts([outDir, join(root, 'parts-other')]), /other inputs or settings/);
  });

  test('part options are checked', async () => {
    const outDir = join(root, 'bad-part');
    await assert.rejects(augmentToShards(dataset, { ...base, outDir, shardIndex: 3, numShards: 3 }), /Invalid shard index 3: expected an integer in \[0, 2\]/);
    await assert.rejects(augmentToShards(dataset, { ...base, outDir, numShards: 0 }), /Invalid number of shards 0/);
  });

  test('interrupted run resumes to the same bytes', async () => {
    const outDir = join(root, 'interrupted');
    const controller = new AbortController();
    let written = 0;
    await assert.rejects(
      augmentToShards(dataset, {
        ...base,
        outDir,
        concurrency: 1,
        signal: controller.signal,
        onShardWritten: () => {
          written++;
          if (written === 2) controller.abort(new Error('simulated interruption'));
        },
      }),
      /simulated interruption.*2 shard\(s\) written before it are kept/,
    );
    const files = await readdir(outDir);
    assert.ok(!files.includes('manifest.json'), 'an interrupted run writes no manifest');
    assert.deepEqual(files.filter((name) => name.endsWith('.arrow')).sort(), ['augmented-00000.arrow', 'augmented-00001.arrow']);

    // A crash mid-write leaves a temporary file; a damaged shard must be redone. A leftover of a
    // shard beyond this plan (from a run with other settings) goes too.
    await writeFile(join(outDir, 'augmented-00002.arrow.tmp-999-abcd'), 'partial');
    await writeFile(join(outDir, 'augmented-00099.arrow.tmp-999-abcd'), 'partial');
    await truncate(join(outDir, 'augmented-00001.arrow'), 100);

    const rewritten: string[] = [];
    const manifest = await augmentToShards(dataset, { ...base, outDir, concurrency: 2, onShardWritten: (info) => rewritten.push(info.file) });
    assert.deepEqual(rewritten.sort(), ['augmented-00001.arrow', 'augmented-00002.arrow', 'augmented-00003.arrow']);
    assert.deepEqual(manifest.shards, reference.shards);
    assert.deepEqual(await shardBytes(outDir), await shardBytes(referenceDir));
    assert.deepEqual((await readdir(outDir)).filter((name) => name.includes('.tmp-')), []);
  });

  test('killed CLI run resumes identically', async () => {
    // A real interruption: the process gets SIGKILL once three shards are on disk, so no cleanup runs.
    const cli = new URL('../packages/cli/dist/main.js', import.meta.url).pathname;
    const args = (out: string, workers: number) => [
      cli, 'augment', BREASTMNIST, '--out', out, '--views', '20', '--shard-size', '500', '--seed', '5',
      '--rotation', '15', '--zoom', '0.1', '--horizontal-flip', '--brightness', '0.2', '--workers', String(workers), '--quiet',
    ];
    const killedDir = join(root, 'killed');
    const child = spawn(process.execPath, args(killedDir, 2), { stdio: 'ignore' });
    const shardsOnDisk = async () => (await readdir(killedDir).catch(() => [] as string[])).filter((name) => /^augmented-\d+\.arrow$/.test(name));
    const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    while ((await shardsOnDisk()).length < 3 && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGKILL');
    assert.equal(await exit, 'SIGKILL', 'the run was still going when it was killed');
    const completeAtKill = (await shardsOnDisk()).length;
    assert.ok(completeAtKill >= 3, `${completeAtKill} shards were complete at the kill`);
    assert.ok(completeAtKill < 22, `${completeAtKill} shards were complete at the kill`);
    assert.ok(!(await readdir(killedDir)).includes('manifest.json'), 'a killed run writes no manifest');

    const resumed = spawnSync(process.execPath, args(killedDir, 2), { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    const referenceDirectory = join(root, 'never-killed');
    const uninterrupted = spawnSync(process.execPath, args(referenceDirectory, 1), { encoding: 'utf8' });
    assert.equal(uninterrupted.status, 0, uninterrupted.stderr);
    const resumedShards = await shardBytes(killedDir);
    assert.equal(resumedShards.size, 22);
    assert.deepEqual(resumedShards, await shardBytes(referenceDirectory));
    assert.deepEqual((await readManifest(killedDir)).shards, (await readManifest(referenceDirectory)).shards);
    assert.deepEqual((await readdir(killedDir)).filter((name) => name.includes('.tmp-')), []);
  });

  test('polars reads the shards', async () => {
    // nodejs-polars is a second Arrow implementation (Rust), so this checks the files, not our reader.
    const polars = createRequire(import.meta.url)('nodejs-polars') as typeof import('nodejs-polars');
    for (const encoding of ['png', 'raw'] as const) {
      const directory = join(root, encoding === 'png' ? 'reference' : 'replay-raw');
      const manifest = await readManifest(directory);
      let rows = 0;
      const labels: number[] = [];
      for (const shard of manifest.shards) {
        // `frame.height` would return the column named height, hence `shape.height`. readIPC of a
        // path string fails in nodejs-polars 0.24.0 and 0.25.2 even for files polars wrote itself,
        // so the bytes are passed; scanIPC takes the path.
        const frame = polars.readIPC(await readFile(join(directory, shard.file)));
        assert.equal(polars.scanIPC(join(directory, shard.file)).collectSync().shape.height, shard.rows, `${encoding} ${shard.file} lazy scan`);
        assert.equal(frame.shape.height, shard.rows, `${encoding} ${shard.file} rows`);
        assert.deepEqual(frame.columns, ['image', 'label', 'height', 'width', 'channels', 'origin', 'source_index', 'view', 'seed', 'params', 'split']);
        rows += frame.shape.height;
        labels.push(...(frame.getColumn('label').toArray() as number[]));
      }
      assert.equal(rows, 120, `${encoding} rows`);
      const expected = train.flatMap((record) => [record.label, record.label, record.label]);
      assert.deepEqual(labels, expected, `${encoding} labels`);
    }
  });
});
