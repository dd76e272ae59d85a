import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeImage, decodePng, encodePngSync, readImageFile, readManifest, readShardFolder, type RawImage } from '@scarce/core';
import { augmentFolderToShards } from '@scarce/augment';
import { temporaryFolder } from './helpers.js';

// The workspace root does not depend on sharp, so load the copy that augment uses.
const sharp = createRequire(new URL('../packages/augment/package.json', import.meta.url))('sharp') as typeof import('sharp');
const QUIET = { quiet: true };

function gradient(height: number, width: number, channels: 1 | 3, offset = 0): RawImage {
  const pixels = new Uint8Array(height * width * channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + offset) % 256;
  return { pixels, height, width, channels };
}

async function png(image: RawImage): Promise<Uint8Array> {
  return encodePngSync(image);
}

/** Writes a two-class folder of good 16x16 gray images: 3 per class. */
async function goodFolder(root: string): Promise<void> {
  for (const [label, name] of ['benign', 'malignant'].entries()) {
    await mkdir(join(root, name), { recursive: true });
    for (let i = 0; i < 3; i++) await writeFile(join(root, name, `good-${i}.png`), await png(gradient(16, 16, 1, label * 50 + i)));
  }
}

/** One bad input: how it is made in the class folder `benign`, and the error it must give. */
interface BadInput {
  name: string;
  file: string;
  make(path: string): Promise<void>;
  message: RegExp;
  /** Extra options the case needs. */
  options?: { maxPixels?: number };
}

const BAD_INPUTS: BadInput[] = [
  {
    name: 'text file with an image extension',
    file: 'notes.png',
    make: (path) => writeFile(path, 'not an image at all'),
    message: /notes\.png is not a readable PNG, JPEG or WebP image: its first bytes are/,
  },
  {
    name: 'truncated PNG',
    file: 'truncated.png',
    make: async (path) => {
      const bytes = await png(gradient(16, 16, 1));
      await writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    },
    message: /truncated\.png is not a readable PNG, JPEG or WebP image: its PNG data is damaged or truncated/,
  },
  {
    name: 'PNG with a damaged chunk',
    file: 'corrupt.png',
    make: async (path) => {
      const bytes = (await png(gradient(16, 16, 1))).slice();
      bytes[45] ^= 0xff;
      await writeFile(path, bytes);
    },
    message: /corrupt\.png is not a readable PNG, JPEG or WebP image: its PNG data is damaged or truncated \(damaged PNG: chunk IDAT fails its CRC check\)/,
  },
  {
    name: 'truncated JPEG',
    file: 'cut.jpg',
    make: async (path) => {
      const bytes = await sharp(Buffer.from(gradient(64, 64, 3).pixels), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
      await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    },
    message: /cut\.jpg is not a readable PNG, JPEG or WebP image: its JPEG data is damaged or truncated/,
  },
  {
    name: '16-bit PNG',
    file: 'deep.png',
    make: async (path) => {
      const samples = Buffer.alloc(16 * 16 * 2);
      for (let i = 0; i < 256; i++) samples.writeUInt16LE(i * 200, i * 2);
      await sharp(samples, { raw: { width: 16, height: 16, channels: 1 } }).toColourspace('grey16').png().toFile(path);
    },
    message: /deep\.png: the image has 16-bit samples where 8-bit ones are expected\. Convert it to 8 bits/,
  },
  {
    name: 'image over the pixel limit',
    file: 'big.png',
    make: async (path) => writeFile(path, await png(gradient(40, 40, 1))),
    message: /big\.png is 40x40 \(1600 pixels\), over the limit of 1000 pixels/,
    options: { maxPixels: 1000 },
  },
  {
    name: 'unreadable file',
    file: 'gone.png',
    make: (path) => symlink(join(path, '..', 'missing-target.png'), path),
    message: /Cannot read .*gone\.png: ENOENT/,
  },
  {
    name: 'folder with an image name',
    file: 'album.png',
    make: (path) => mkdir(path),
    message: /album\.png is not a regular file/,
  },
  {
    name: 'image of another size',
    file: 'wide.png',
    make: async (path) => writeFile(path, await png(gradient(16, 24, 1))),
    message: /wide\.png is 16x24 but the dataset's images are 16x16\. Declare a size/,
  },
];

describe('augment folder inputs', () => {
  let root: string;

  before(async () => {
    root = await temporaryFolder('scarce-inputs-');
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (const [index, bad] of BAD_INPUTS.entries()) {
    test(`${bad.name} stops or is skipped`, async () => {
      const data = join(root, `case-${index}`);
      await goodFolder(data);
      // Named to sort after the good images, so the first image fixes the expected size.
      const path = join(data, 'benign', `z-${bad.file}`);
      await bad.make(path);

      const outDir = join(root, `out-${index}`);
      const options = { outDir, viewsPerImage: 2, progress: QUIET, concurrency: 1, ...bad.options };
      await assert.rejects(augmentFolderToShards(data, options), bad.message);
      const afterError = await readdir(outDir);
      assert.ok(!afterError.includes('manifest.json'), 'a failed run writes no manifest');
      assert.deepEqual(afterError.filter((name) => name.includes('.tmp-')), [], 'no temporary file is left');

      const manifest = await augmentFolderToShards(data, { ...options, onError: 'skip' });
      assert.equal(manifest.totals.rows, 12, 'the six good images, two views each');
      assert.deepEqual(manifest.skipped?.map((entry) => entry.file), [path]);
      assert.match(manifest.skipped![0].reason, bad.message);
      const listed = manifest.shards.map((shard) => shard.file).sort();
      assert.deepEqual((await readdir(outDir)).filter((name) => name.endsWith('.arrow')).sort(), listed, 'every shard is in the manifest');
      assert.equal((await readShardFolder(outDir)).records.length, 12);
    });
  }

  test('empty class folder stops or is skipped', async () => {
    const data = join(root, 'empty-class');
    await goodFolder(data);
    await mkdir(join(data, 'normal'));
    const outDir = join(root, 'out-empty');
    await assert.rejects(augmentFolderToShards(data, { outDir, viewsPerImage: 1, progress: QUIET }), /normal has no images.*--on-error skip/);
    const manifest = await augmentFolderToShards(data, { outDir, viewsPerImage: 1, progress: QUIET, onError: 'skip' });
    assert.deepEqual(manifest.classNames, ['benign', 'malignant', 'normal']);
    assert.deepEqual(manifest.totals.classCounts, [3, 3, 0]);
    assert.deepEqual(manifest.skipped, [{ file: join(data, 'normal'), reason: 'class folder without images' }]);
  });

  test('mixed sizes follow the declared fit', async () => {
    const data = join(root, 'mixed');
    await goodFolder(data);
    await writeFile(join(data, 'benign', 'wide.png'), await png(gradient(16, 24, 3)));
    for (const fit of ['fill', 'cover', 'contain'] as const) {
      const outDir = join(root, `out-mixed-${fit}`);
      const manifest = await augmentFolderToShards(data, { outDir, viewsPerImage: 1, progress: QUIET, size: [12, 12], fit, channels: 1 });
      assert.equal(manifest.totals.rows, 7, fit);
      for (const record of (await readShardFolder(outDir)).records) {
        assert.deepEqual([record.height, record.width, record.channels], [12, 12, 1], `${fit}: shape`);
      }
    }
  });

  test('EXIF orientation is applied', async () => {
    const path = join(root, 'rotated.jpg');
    // Stored 2 wide and 3 tall; orientation 6 shows it turned a quarter, 3 wide and 2 tall.
    const stored = await sharp(Buffer.alloc(2 * 3 * 3, 90), { raw: { width: 2, height: 3, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    await writeFile(path, stored);
    const image = await readImageFile(path);
    assert.deepEqual([image.height, image.width, image.channels], [2, 3, 3]);
  });

  test('CMYK JPEG reads as sRGB', async () => {
    const path = join(root, 'cmyk.jpg');
    const red = Buffer.alloc(8 * 8 * 3);
    for (let i = 0; i < red.length; i += 3) red[i] = 220;
    await sharp(red, { raw: { width: 8, height: 8, channels: 3 } }).toColourspace('cmyk').jpeg({ quality: 100 }).toFile(path);
    assert.equal((await sharp(path).metadata()).space, 'cmyk');
    const image = await readImageFile(path);
    assert.equal(image.channels, 3);
    const [r, g, b] = image.pixels;
    assert.ok(r > 150, `red ${r}`);
    assert.ok(g < 90, `green ${g}`);
    assert.ok(b < 90, `blue ${b}`);
  });

  test('PNG codec matches sharp decoding', async () => {
    for (const [channels, colorType] of [
      [1, 'gray'],
      [2, 'gray + alpha'],
      [3, 'RGB'],
      [4, 'RGBA'],
    ] as const) {
      const pixels = Buffer.alloc(13 * 9 * channels);
      for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + (i >> 3)) % 256;
      const pipeline = sharp(pixels, { raw: { width: 13, height: 9, channels } });
      if (channels <= 2) pipeline.toColourspace('b-w');
      const written = await pipeline.png({ adaptiveFiltering: true }).toBuffer();
      const fast = decodePng(written);
      assert.ok(fast !== undefined, `${colorType}: fast path`);
      const reader = sharp(written).removeAlpha();
      if (channels <= 2) reader.toColourspace('b-w');
      const viaSharp = await reader.raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([fast.height, fast.width, fast.channels], [viaSharp.info.height, viaSharp.info.width, channels <= 2 ? 1 : 3], colorType);
      assert.deepEqual(Buffer.from(fast.pixels), viaSharp.data, `${colorType}: pixels`);
    }
    for (const filter of ['none', 'sub', 'up', 'average', 'paeth', 'adaptive'] as const) {
      const image = gradient(11, 17, 3, 5);
      const encoded = encodePngSync(image, { filter });
      const decoded = await sharp(encoded).raw().toBuffer();
      assert.deepEqual(new Uint8Array(decoded), image.pixels, `filter ${filter} decodes in sharp`);
      assert.deepEqual((await decodeImage(encoded)).pixels, image.pixels, `filter ${filter} decodes here`);
    }
  });

  test('PNG window sizes decode alike', async () => {
    // 60 x 60 RGB rows are 181 bytes, so a 512-byte window and a 32 KiB one find different matches.
    const image = gradient(60, 60, 3, 11);
    const sizes = new Set<number>();
    for (const windowBits of [9, 12, 15]) {
      const encoded = encodePngSync(image, { windowBits });
      sizes.add(encoded.length);
      assert.deepEqual(new Uint8Array(await sharp(encoded).raw().toBuffer()), image.pixels, `window bits ${windowBits} decode in sharp`);
      assert.deepEqual(decodePng(encoded)?.pixels, image.pixels, `window bits ${windowBits} decode here`);
    }
    assert.ok(sizes.size > 1, 'the window size reaches zlib');
    assert.throws(() => encodePngSync(image, { windowBits: 16 }), /window bits must be an integer in 9-15 but received 16/);
    assert.throws(() => encodePngSync(image, { windowBits: 8 }), /received 8/);
  });

  test('augment rejects PNG settings out of range', async () => {
    const data = join(root, 'png-settings');
    await goodFolder(data);
    const out = join(root, 'png-settings-out');
    await assert.rejects(
      augmentFolderToShards(data, { outDir: out, viewsPerImage: 1, pngWindowBits: 16, progress: QUIET }),
      /pngWindowBits \(--png-window-bits\) must be an integer in 9-15 but received 16/,
    );
    await assert.rejects(
      augmentFolderToShards(data, { outDir: out, viewsPerImage: 1, compressionLevel: 10, progress: QUIET }),
      /compressionLevel \(--compression-level\) must be an integer in 0-9 but received 10/,
    );
    const manifest = await augmentFolderToShards(data, { outDir: out, viewsPerImage: 1, pngWindowBits: 15, progress: QUIET });
    const recorded = manifest.config as { augment: { png: { windowBits: number } } };
    assert.equal(recorded.augment.png.windowBits, 15);
  });

  test('CLI exits 2 naming the bad file', async () => {
    const data = join(root, 'cli');
    await goodFolder(data);
    await writeFile(join(data, 'malignant', 'z-notes.png'), 'text');
    const { spawnSync } = await import('node:child_process');
    const cli = new URL('../packages/cli/dist/main.js', import.meta.url).pathname;
    const failed = spawnSync(process.execPath, [cli, 'augment', data, '--out', join(root, 'cli-out'), '--quiet', '--workers', '1'], { encoding: 'utf8' });
    assert.equal(failed.status, 2);
    assert.match(failed.stderr, /z-notes\.png is not a readable PNG, JPEG or WebP image/);
    const skipped = spawnSync(process.execPath, [cli, 'augment', data, '--out', join(root, 'cli-out'), '--quiet', '--on-error', 'skip', '--views', '1'], { encoding: 'utf8' });
    assert.equal(skipped.status, 0, skipped.stderr);
    assert.match(skipped.stderr, /6 train images, 1 skipped/);
    const manifest = await readManifest(join(root, 'cli-out'));
    assert.equal(manifest.skipped?.length, 1);
    const inspect = spawnSync(process.execPath, [cli, 'inspect', join(root, 'cli-out'), '--sheet', join(root, 'sheet.png')], { encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.match(inspect.stdout, /rows by class:\n\s+0 benign\s+3\n\s+1 malignant\s+3/);
    assert.match(inspect.stdout, /skipped inputs: 1/);
    assert.equal((await sharp(await readFile(join(root, 'sheet.png'))).metadata()).format, 'png');
  });
});
