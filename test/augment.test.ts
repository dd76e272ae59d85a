import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  countByClass,
  deriveSeed,
  readManifest,
  readMedMnistNpz,
  readShardFolder,
  realRecord,
  recordsOfSplit,
  type ImageRecord,
  type LabelledDataset,
} from '@scarce/core';
import {
  applyTransform,
  augmentDataset,
  augmentRecord,
  augmentToShards,
  EXAMPLES_FILE,
  FILL_MODES,
  identityParams,
  parseTransformParams,
  resolveTransformConfig,
  sampleTransformParams,
  type FillMode,
  type TransformOptions,
  type TransformParams,
  type WarpEngine,
} from '@scarce/augment';

// The workspace root does not depend on sharp, so load the copy that augment uses.
const augmentRequire = createRequire(new URL('../packages/augment/package.json', import.meta.url));
const sharp = augmentRequire('sharp') as typeof import('sharp');

const FIXTURE = new URL('../fixtures/breastmnist/breastmnist.npz', import.meta.url).pathname;
const ENGINES: readonly WarpEngine[] = ['typescript', 'sharp'];
const QUIET = { quiet: true };

/** Builds a train record whose value at (x, y, k) is `valueAt(x, y, k)`. */
function syntheticRecord(
  height: number,
  width: number,
  channels: 1 | 3,
  valueAt: (x: number, y: number, k: number) => number,
  sourceIndex = 0,
  label = 0,
): ImageRecord {
  const pixels = new Uint8Array(height * width * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) pixels[(y * width + x) * channels + k] = valueAt(x, y, k);
    }
  }
  return realRecord(pixels, { height, width, channels }, label, 'train', sourceIndex);
}

/** No two pixels alike and no symmetry, so any wrong mirror or turn shows. */
function asymmetric(size: number, channels: 1 | 3): ImageRecord {
  return syntheticRecord(size, size, channels, (x, y, k) => (x * 7 + y * 31 + k * 50 + x * y) % 256);
}

/** Smooth, so bilinear results of the two engines are comparable everywhere. */
function smooth(height: number, width: number, channels: 1 | 3): ImageRecord {
  return syntheticRecord(height, width, channels, (x, y, k) => Math.round(128 + 100 * Math.sin(x / 5 + k) * Math.cos(y / 7)));
}

function valueAt(record: { pixels: Uint8Array; width: number; channels: number }, x: number, y: number, k = 0): number {
  return record.pixels[(y * record.width + x) * record.channels + k];
}

function maxDifference(first: Uint8Array, second: Uint8Array): number {
  assert.equal(first.length, second.length);
  let worst = 0;
  for (let i = 0; i < first.length; i++) worst = Math.max(worst, Math.abs(first[i] - second[i]));
  return worst;
}

/** Params for one exact transform, starting from the identity. */
function paramsWith(engine: WarpEngine, changes: Partial<TransformParams>): TransformParams {
  return { ...identityParams(engine), ...changes };
}

describe('transform config', () => {
  test('defaults turn every transform off', () => {
    const config = resolveTransformConfig();
    for (const name of ['rotation', 'widthShift', 'heightShift', 'zoom', 'horizontalFlip', 'brightness'] as const) {
      assert.equal(config[name].probability, 0, name);
    }
    assert.deepEqual(config.fill, { mode: 'nearest', value: 0 });
    assert.equal(config.interpolation, 'bilinear');
    assert.equal(config.engine, 'auto');
  });

  test('shorthands expand to Keras ranges', () => {
    const config = resolveTransformConfig({
      rotation: 10,
      widthShift: 0.1,
      heightShift: [-0.05, 0.2],
      zoom: 0.2,
      horizontalFlip: true,
      brightness: 0.3,
      fill: { mode: 'constant', value: 9 },
    });
    assert.deepEqual(config.rotation, { probability: 1, range: [-10, 10] });
    assert.deepEqual(config.widthShift, { probability: 1, range: [-0.1, 0.1], unit: 'fraction' });
    assert.deepEqual(config.heightShift, { probability: 1, range: [-0.05, 0.2], unit: 'fraction' });
    assert.deepEqual(config.zoom, { probability: 1, range: [0.8, 1.2], perAxis: false });
    assert.deepEqual(config.horizontalFlip, { probability: 0.5 });
    assert.equal(config.brightness.range[0], 0.7);
    assert.equal(config.brightness.range[1], 1.3);
    assert.deepEqual(config.fill, { mode: 'constant', value: 9 });
  });

  test('resolving a resolved config changes nothing', () => {
    const config = resolveTransformConfig({
      rotation: { range: 20, probability: 0.3 },
      zoom: { range: 0.1, perAxis: true },
      horizontalFlip: true,
    });
    assert.deepEqual(resolveTransformConfig(config), config);
  });

  const invalidCases: Array<[string, unknown, RegExp]> = [
    ['negative rotation bound', { rotation: -5 }, /'rotation'.*received -5/],
    ['reversed rotation pair', { rotation: [10, -10] }, /'rotation'/],
    ['zoom bound of 1', { zoom: 1 }, /'zoom'.*received 1\b/],
    ['zoom pair through 0', { zoom: [0, 2] }, /'zoom'/],
    ['shift above 1', { widthShift: 2 }, /'widthShift'/],
    ['probability above 1', { rotation: { range: 10, probability: 2 } }, /'rotation.probability'/],
    ['flip probability as text', { horizontalFlip: { probability: 'half' } }, /'horizontalFlip.probability'/],
    ['unknown fill mode', { fill: 'mirror' }, /'fill'.*"mirror"/],
    ['unknown fill mode in object', { fill: { mode: 'mirror' } }, /'fill\.mode'.*"mirror"/],
    ['fill value above 255', { fill: { mode: 'constant', value: 300 } }, /'fill.value'/],
    ['misspelt transform', { rotaton: 10 }, /'rotaton'/],
    ['misspelt range key', { zoom: { rang: 0.1 } }, /'zoom.rang'/],
    ['nearest interpolation on sharp', { engine: 'sharp', interpolation: 'nearest' }, /bilinear/],
    ['shear of 85 degrees', { shear: 85 }, /'shear'.*received 85/],
    ['hue above one half', { hue: 0.6 }, /'hue'.*received 0\.6/],
    ['crop as text', { crop: '24x24' }, /'crop'.*\[height, width\]/],
    ['crop of fractional pixels', { crop: [10.5, 10] }, /'crop/],
    ['resized crop scale from 0', { resizedCrop: { size: [8, 8], scale: [0, 1] } }, /'resizedCrop.scale'/],
    ['crop and resized crop', { crop: [8, 8], resizedCrop: [8, 8] }, /keep one of them/],
    ['crop on sharp', { crop: [8, 8], engine: 'sharp' }, /cannot apply 'crop'/],
    ['cutout above 1', { cutout: 2 }, /'cutout'.*received 2/],
    ['cutout count 0', { cutout: { size: 0.2, count: 0 } }, /'cutout.count'/],
    ['negative noise', { noise: -1 }, /'noise'.*received -1/],
    ['shift unit misspelt', { widthShift: { range: 4, unit: 'px' } }, /'widthShift.unit'/],
    ['pixel shift as pair', { widthShift: { range: [-3, 5], unit: 'pixels', probability: 3 } }, /'widthShift.probability'/],
  ];
  for (const [name, options, message] of invalidCases) {
    test(`rejects ${name}`, () => {
      assert.throws(() => resolveTransformConfig(options as TransformOptions), message);
    });
  }
});

describe('applyTransform geometry', () => {
  const extremes: Array<[string, TransformOptions]> = [
    ['rotation 45', { rotation: [45, 45] }],
    ['zoom 0.5', { zoom: [0.5, 0.5] }],
    ['zoom 1.5 per axis', { zoom: { range: 0.5, perAxis: true } }],
    ['width shift 0.3', { widthShift: [0.3, 0.3] }],
    ['height shift -0.3', { heightShift: [-0.3, -0.3] }],
    ['flip', { horizontalFlip: { probability: 1 } }],
    ['brightness 1.5', { brightness: [1.5, 1.5] }],
    ['everything', { rotation: 45, zoom: 0.5, widthShift: 0.3, heightShift: 0.3, horizontalFlip: true, brightness: 0.5 }],
  ];
  for (const engine of ENGINES) {
    for (const channels of [1, 3] as const) {
      test(`keeps size and channels at extremes, ${engine}, ${channels} channel(s)`, async () => {
        const source = smooth(28, 33, channels);
        for (const [name, transforms] of extremes) {
          for (const fill of FILL_MODES) {
            const view = await augmentRecord(source, { ...transforms, fill, engine }, 7);
            assert.equal(view.height, 28, `${name}, ${fill}: height`);
            assert.equal(view.width, 33, `${name}, ${fill}: width`);
            assert.equal(view.channels, channels, `${name}, ${fill}: channels`);
            assert.equal(view.pixels.length, 28 * 33 * channels, `${name}, ${fill}: pixel count`);
          }
        }
      });
    }
  }

  test('identity config returns the same pixels', async () => {
    for (const channels of [1, 3] as const) {
      const source = asymmetric(28, channels);
      const view = await augmentRecord(source, {}, 123);
      assert.deepEqual(view.pixels, source.pixels);
      assert.notEqual(view.pixels, source.pixels, 'the view must not share the source buffer');
      assert.deepEqual(view.params, identityParams('typescript'));
    }
  });

  for (const engine of ENGINES) {
    test(`horizontal flip mirrors exactly, ${engine}`, async () => {
      for (const channels of [1, 3] as const) {
        const source = asymmetric(28, channels);
        const view = await augmentRecord(source, { horizontalFlip: { probability: 1 }, engine }, 5);
        assert.equal(view.params?.flip, true);
        const expected = syntheticRecord(28, 28, channels, (x, y, k) => valueAt(source, 27 - x, y, k));
        assert.deepEqual(view.pixels, expected.pixels);
      }
    });

    test(`quarter turns match the transposition, ${engine}`, async () => {
      const size = 28;
      const source = asymmetric(size, 3);
      // Counter-clockwise by 90 degrees, output (x, y) shows source (size-1-y, x); the others follow.
      const expectations: Array<[number, (x: number, y: number) => [number, number]]> = [
        [90, (x, y) => [size - 1 - y, x]],
        [180, (x, y) => [size - 1 - x, size - 1 - y]],
        [-90, (x, y) => [y, size - 1 - x]],
      ];
      for (const [angle, sourcePoint] of expectations) {
        const view = await augmentRecord(source, { rotation: [angle, angle], engine }, 1);
        const expected = syntheticRecord(size, size, 3, (x, y, k) => valueAt(source, ...sourcePoint(x, y), k));
        assert.ok(maxDifference(view.pixels, expected.pixels) <= 1, `rotation ${angle}`);
      }
    });

    test(`integer shift fills by mode, ${engine}`, async () => {
      const width = 20;
      const source = syntheticRecord(6, width, 1, (x) => 10 + 10 * x);
      const expectedLeftColumns: Record<FillMode, [number, number]> = {
        constant: [77, 77],
        nearest: [10, 10],
        reflect: [20, 10],
        wrap: [190, 200],
      };
      for (const mode of FILL_MODES) {
        const params = paramsWith(engine, { shiftX: 2, fill: { mode, value: 77 } });
        const view = await applyTransform(source, params);
        assert.deepEqual([valueAt(view, 0, 3), valueAt(view, 1, 3)], expectedLeftColumns[mode], `${mode}: columns 0 and 1`);
        for (let x = 2; x < width; x++) assert.equal(valueAt(view, x, 3), 10 + 10 * (x - 2), `${mode}: column ${x}`);
      }
    });

    test(`zoom scales distances from the centre, ${engine}`, async () => {
      // A ramp along x: bilinear sampling of a linear function is exact.
      const source = syntheticRecord(9, 29, 1, (x) => 8 * x);
      const view = await applyTransform(source, paramsWith(engine, { zoomX: 2, zoomY: 2 }));
      for (let x = 0; x < 29; x++) assert.equal(valueAt(view, x, 4), Math.round(8 * (14 + (x - 14) / 2)), `column ${x}`);
    });
  }

  test('brightness multiplies and clips at 255', async () => {
    for (const [level, factor, expected] of [
      [100, 1.5, 150],
      [101, 1.5, 151],
      [200, 1.5, 255],
      [200, 0.5, 100],
    ]) {
      const source = syntheticRecord(8, 8, 3, () => level);
      const view = await augmentRecord(source, { brightness: [factor, factor] }, 3);
      assert.equal(view.params?.brightness, factor);
      assert.ok(view.pixels.every((value) => value === expected), `${level} x ${factor} should give ${expected}`);
    }
  });

  test('brightness matches sharp linear exactly', async () => {
    const everyValue = syntheticRecord(16, 16, 1, (x, y) => y * 16 + x);
    for (const factor of [0.3, 0.7, 1.1, 1.3, 1.37, 2.3]) {
      const view = await applyTransform(everyValue, paramsWith('typescript', { brightness: factor }));
      const linear = await sharp(Buffer.from(everyValue.pixels), { raw: { width: 16, height: 16, channels: 1 } })
        .linear(factor, 0)
        .toColourspace('b-w')
        .raw()
        .toBuffer();
      assert.deepEqual(view.pixels, new Uint8Array(linear), `factor ${factor}`);
    }
  });

  test('engines agree within one level', async () => {
    for (const [height, width, channels] of [
      [28, 28, 1],
      [31, 40, 3],
    ] as const) {
      const source = smooth(height, width, channels);
      for (const mode of FILL_MODES) {
        const config = resolveTransformConfig({
          rotation: 45,
          widthShift: 0.3,
          heightShift: 0.3,
          zoom: { range: [0.5, 1.5], perAxis: true },
          horizontalFlip: true,
          fill: { mode, value: 77 },
        });
        for (let seed = 0; seed < 8; seed++) {
          const params = sampleTransformParams(config, height, width, seed);
          const typescript = await applyTransform(source, { ...params, engine: 'typescript' });
          const viaSharp = await applyTransform(source, { ...params, engine: 'sharp' });
          assert.ok(maxDifference(typescript.pixels, viaSharp.pixels) <= 1, `${height}x${width}x${channels}, ${mode}, seed ${seed}`);
        }
      }
    }
  });

  test('rejects params with a bad field', () => {
    assert.throws(() => parseTransformParams({ ...identityParams(), zoomX: 0 }), /'zoomX'/);
    assert.throws(() => parseTransformParams({ ...identityParams(), fill: { mode: 'edge', value: 0 } }), /'fill\.mode'/);
    assert.throws(() => parseTransformParams({ ...identityParams(), engine: 'gpu' }), /'engine'/);
    assert.throws(() => parseTransformParams({ ...identityParams(), flip: 'yes' }), /'flip'/);
  });
});

describe('new transforms', () => {
  test('vertical flip mirrors exactly', async () => {
    for (const engine of ENGINES) {
      const source = asymmetric(20, 3);
      const view = await applyTransform(source, paramsWith(engine, { flipVertical: true }));
      const expected = syntheticRecord(20, 20, 3, (x, y, k) => valueAt(source, x, 19 - y, k));
      assert.deepEqual(view.pixels, expected.pixels, engine);
    }
  });

  test('shear moves rows by their distance', async () => {
    // tan(45 degrees) = 1: row y moves right by y - centre, a whole number of pixels for odd heights.
    const source = syntheticRecord(9, 40, 1, (x) => 5 * x);
    for (const engine of ENGINES) {
      const view = await applyTransform(source, paramsWith(engine, { shear: 45 }));
      for (let y = 0; y < 9; y++) {
        const offset = y - 4;
        for (let x = 10; x < 30; x++) assert.ok(Math.abs(valueAt(view, x, y) - 5 * (x - offset)) <= 1, `${engine}: (${x}, ${y})`);
      }
    }
  });

  test('shift in pixels moves whole pixels', async () => {
    const config = resolveTransformConfig({ widthShift: { range: [3, 3], unit: 'pixels' }, heightShift: { range: [-2, -2], unit: 'pixels' } });
    const params = sampleTransformParams(config, 20, 30, 1);
    assert.equal(params.shiftX, 3);
    assert.equal(params.shiftY, -2);
  });

  test('crop copies its region', async () => {
    const source = asymmetric(28, 3);
    const params = paramsWith('typescript', { crop: { x: 5, y: 3, width: 10, height: 8 }, outputSize: [8, 10] });
    const view = await applyTransform(source, params);
    assert.deepEqual([view.height, view.width, view.channels], [8, 10, 3]);
    const expected = syntheticRecord(8, 10, 3, (x, y, k) => valueAt(source, x + 5, y + 3, k));
    assert.deepEqual(view.pixels, expected.pixels);
  });

  test('random crop stays inside the image', async () => {
    const config = resolveTransformConfig({ crop: { size: [20, 16], probability: 0.5 } });
    let centred = 0;
    for (let seed = 0; seed < 40; seed++) {
      const { crop, outputSize } = sampleTransformParams(config, 28, 30, seed);
      assert.deepEqual(outputSize, [20, 16]);
      assert.ok(crop!.x >= 0, `seed ${seed}: left edge`);
      assert.ok(crop!.x + crop!.width <= 30, `seed ${seed}: right edge`);
      assert.ok(crop!.y >= 0, `seed ${seed}: top edge`);
      assert.ok(crop!.y + crop!.height <= 28, `seed ${seed}: bottom edge`);
      if (crop!.x === 7 && crop!.y === 4) centred++;
    }
    assert.ok(centred >= 10, `views without the draw get the centre crop (${centred} of 40)`);
    assert.throws(() => sampleTransformParams(config, 10, 10, 0), /crop 20x16 is larger than the 10x10 image/);
  });

  test('resized crop draws torchvision regions', async () => {
    const config = resolveTransformConfig({ resizedCrop: { size: [12, 12], scale: [0.25, 0.5], ratio: [0.5, 2] } });
    for (let seed = 0; seed < 50; seed++) {
      const { crop, outputSize } = sampleTransformParams(config, 40, 60, seed);
      const area = (crop!.width * crop!.height) / (40 * 60);
      assert.deepEqual(outputSize, [12, 12]);
      assert.ok(crop!.x + crop!.width <= 60, `seed ${seed}: inside horizontally`);
      assert.ok(crop!.y + crop!.height <= 40, `seed ${seed}: inside vertically`);
      assert.ok(area > 0.2, `seed ${seed}: area share ${area}`);
      assert.ok(area < 0.56, `seed ${seed}: area share ${area}`);
    }
    const view = await augmentRecord(smooth(40, 60, 3), config, 3);
    assert.deepEqual([view.height, view.width], [12, 12]);
  });

  test('contrast scales about the mean', async () => {
    const source = syntheticRecord(2, 2, 1, (x) => (x === 0 ? 100 : 200));
    for (const [factor, expected] of [
      [0, [150, 150]],
      [0.5, [125, 175]],
      [2, [50, 250]],
    ] as const) {
      const view = await applyTransform(source, paramsWith('typescript', { contrast: factor }));
      assert.deepEqual([valueAt(view, 0, 0), valueAt(view, 1, 0)], expected, `factor ${factor}`);
    }
  });

  test('saturation and hue change colour only', async () => {
    const gray = asymmetric(8, 1);
    for (const changes of [{ saturation: 0 }, { hue: 0.3 }]) {
      const view = await applyTransform(gray, paramsWith('typescript', changes));
      assert.deepEqual(view.pixels, gray.pixels, JSON.stringify(changes));
    }
    const red = syntheticRecord(2, 2, 3, (x, y, k) => (k === 0 ? 200 : 20));
    const desaturated = await applyTransform(red, paramsWith('typescript', { saturation: 0 }));
    assert.deepEqual([...desaturated.pixels.subarray(0, 3)], [73, 73, 73]);
    const turned = await applyTransform(red, paramsWith('typescript', { hue: 1 / 3 }));
    assert.deepEqual([...turned.pixels.subarray(0, 3)], [20, 200, 20], 'a third of the circle turns red to green');
  });

  test('blur keeps flat images and smooths edges', async () => {
    const flat = syntheticRecord(9, 9, 1, () => 120);
    assert.deepEqual((await applyTransform(flat, paramsWith('typescript', { blur: 1.5 }))).pixels, flat.pixels);
    const edge = syntheticRecord(9, 20, 1, (x) => (x < 10 ? 0 : 200));
    const blurred = await applyTransform(edge, paramsWith('typescript', { blur: 1 }));
    assert.equal(valueAt(blurred, 0, 4), 0);
    assert.equal(valueAt(blurred, 19, 4), 200);
    assert.ok(valueAt(blurred, 9, 4) > 20, `left of the edge ${valueAt(blurred, 9, 4)}`);
    assert.ok(valueAt(blurred, 9, 4) < 100, `left of the edge ${valueAt(blurred, 9, 4)}`);
    assert.ok(valueAt(blurred, 10, 4) > 100, `right of the edge ${valueAt(blurred, 10, 4)}`);
    assert.ok(valueAt(blurred, 10, 4) < 180, `right of the edge ${valueAt(blurred, 10, 4)}`);
  });

  test('noise is seeded and has its spread', async () => {
    const flat = syntheticRecord(64, 64, 1, () => 128);
    const params = paramsWith('typescript', { noise: { std: 10, seed: 99 } });
    const first = await applyTransform(flat, params);
    const second = await applyTransform(flat, params);
    assert.deepEqual(first.pixels, second.pixels);
    const mean = first.pixels.reduce((sum, value) => sum + value, 0) / first.pixels.length;
    const variance = first.pixels.reduce((sum, value) => sum + (value - mean) ** 2, 0) / first.pixels.length;
    assert.ok(Math.abs(mean - 128) < 1, `mean ${mean}`);
    assert.ok(Math.abs(Math.sqrt(variance) - 10) < 0.5, `std ${Math.sqrt(variance)}`);
  });

  test('cutout fills its rectangles', async () => {
    const source = asymmetric(20, 3);
    const regions = [{ x: 2, y: 3, width: 4, height: 5 }];
    const view = await applyTransform(source, paramsWith('typescript', { cutout: regions, cutoutValue: 7 }));
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const inside = x >= 2 && x < 6 && y >= 3 && y < 8;
        assert.equal(valueAt(view, x, y, 1), inside ? 7 : valueAt(source, x, y, 1), `(${x}, ${y})`);
      }
    }
    const config = resolveTransformConfig({ cutout: { size: [0.2, 0.4], count: 3 } });
    const drawn = sampleTransformParams(config, 50, 50, 4).cutout;
    assert.ok(drawn.length >= 1, `drew ${drawn.length}`);
    assert.ok(drawn.length <= 3, `drew ${drawn.length}`);
    for (const region of drawn) assert.ok(region.x + region.width <= 50 && region.y + region.height <= 50);
  });

  test('old params without new fields replay', async () => {
    const source = asymmetric(16, 1);
    const { shear, flipVertical, crop, outputSize, contrast, saturation, hue, blur, noise, cutout, cutoutValue, ...older } = identityParams();
    const view = await applyTransform(source, { ...older, angle: 90 });
    const current = await applyTransform(source, paramsWith('typescript', { angle: 90 }));
    assert.deepEqual(view.pixels, current.pixels);
  });
});

describe('augmentDataset', () => {
  let dataset: LabelledDataset;
  let train: ImageRecord[];
  const transforms: TransformOptions = {
    rotation: 20,
    widthShift: 0.1,
    heightShift: 0.1,
    zoom: 0.2,
    horizontalFlip: true,
    brightness: 0.2,
  };

  before(async () => {
    dataset = await readMedMnistNpz(FIXTURE);
    train = recordsOfSplit(dataset, 'train').slice(0, 12);
  });

  test('same seed gives the same views', async () => {
    const first = await augmentRecord(train[0], transforms, 42);
    const second = await augmentRecord(train[0], transforms, 42);
    const other = await augmentRecord(train[0], transforms, 43);
    assert.deepEqual(second.pixels, first.pixels);
    assert.deepEqual(second.params, first.params);
    assert.notDeepEqual(other.pixels, first.pixels);
  });

  for (const engine of ENGINES) {
    test(`output does not depend on concurrency, ${engine}`, async () => {
      const options = { viewsPerImage: 3, seed: 9, transforms: { ...transforms, engine }, progress: QUIET };
      const serial = await augmentDataset(train, { ...options, concurrency: 1 });
      const parallel = await augmentDataset(train, { ...options, concurrency: 8 });
      assert.equal(serial.length, 36);
      assert.deepEqual(parallel, serial);
    });

    test(`replaying stored params gives the same pixels, ${engine}`, async () => {
      const views = await augmentDataset(train, { viewsPerImage: 2, seed: 4, transforms: { ...transforms, engine }, progress: QUIET });
      const bySourceIndex = new Map(train.map((record) => [record.sourceIndex, record]));
      for (const view of views) {
        const storedParams = JSON.parse(JSON.stringify(view.params)) as Record<string, unknown>;
        const replayed = await applyTransform(bySourceIndex.get(view.sourceIndex)!, storedParams);
        assert.deepEqual(replayed.pixels, view.pixels, `source ${view.sourceIndex} view ${view.view}`);
      }
    });
  }

  test('views keep labels and record their origin', async () => {
    const views = await augmentDataset(train, { viewsPerImage: 3, seed: 11, transforms, progress: QUIET });
    assert.equal(views.length, train.length * 3);
    for (const [index, view] of views.entries()) {
      const source = train[Math.floor(index / 3)];
      const viewNumber = (index % 3) + 1;
      assert.equal(view.label, source.label);
      assert.equal(view.sourceIndex, source.sourceIndex);
      assert.equal(view.view, viewNumber);
      assert.equal(view.origin, 'augmented');
      assert.equal(view.split, 'train');
      assert.equal(view.seed, deriveSeed(11, 'augment', source.sourceIndex!, viewNumber));
      assert.equal(view.height, source.height);
      assert.equal(view.channels, source.channels);
    }
  });

  test('rejects validation and test records', async () => {
    const validation = recordsOfSplit(dataset, 'val').slice(0, 2);
    const test = recordsOfSplit(dataset, 'test').slice(0, 1);
    const options = { viewsPerImage: 1, progress: QUIET };
    await assert.rejects(augmentDataset([...train, ...validation], options), /outside the train split.*'val'/);
    await assert.rejects(augmentDataset([...test, ...train], options), /record 0 is in 'test'/);
    await assert.rejects(augmentRecord(validation[0], transforms, 1), /'val' split/);
  });

  test('rejects records that are not real or share an index', async () => {
    const [view] = await augmentDataset(train.slice(0, 1), { viewsPerImage: 1, progress: QUIET });
    await assert.rejects(augmentDataset([view], { viewsPerImage: 1, progress: QUIET }), /origin 'augmented'/);
    const duplicate = { ...train[1], sourceIndex: train[0].sourceIndex };
    await assert.rejects(augmentDataset([train[0], duplicate], { viewsPerImage: 1, progress: QUIET }), /share source index/);
    await assert.rejects(augmentDataset(train, { viewsPerImage: 0, progress: QUIET }), /viewsPerImage must be a positive integer/);
  });
});

describe('augmentToShards', () => {
  let directory: string;
  let dataset: LabelledDataset;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'scarce-augment-'));
    const full = await readMedMnistNpz(FIXTURE);
    const train = recordsOfSplit(full, 'train').slice(0, 20);
    const heldOut = recordsOfSplit(full, 'test').slice(0, 5);
    dataset = { classNames: ['malignant', 'normal_or_benign'], records: [...train, ...heldOut] };
  });

  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  test('writes shards that read back with the same pixels', async () => {
    const outDir = join(directory, 'out');
    const transforms: TransformOptions = { rotation: 15, widthShift: 0.1, horizontalFlip: true };
    const manifest = await augmentToShards(dataset, {
      outDir,
      viewsPerImage: 3,
      seed: 5,
      transforms,
      rowsPerShard: 25,
      config: { note: 'test run' },
      progress: QUIET,
    });

    const train = recordsOfSplit(dataset, 'train');
    const sourceCounts = countByClass(train, 2);
    assert.equal(manifest.totals.rows, 60);
    assert.deepEqual(manifest.totals.originCounts, { real: 0, augmented: 60, synthetic: 0 });
    assert.deepEqual(manifest.totals.splitCounts, { train: 60, val: 0, test: 0 });
    assert.deepEqual(manifest.totals.classCounts, sourceCounts.map((count) => count * 3));
    assert.equal(manifest.shards.length, 3);
    assert.deepEqual(await readManifest(outDir), manifest);
    const recorded = manifest.config as { stage: string; augment: { seed: number; viewsPerImage: number }; run: unknown };
    assert.equal(recorded.stage, 'augment');
    assert.equal(recorded.augment.seed, 5);
    assert.equal(recorded.augment.viewsPerImage, 3);
    assert.deepEqual(recorded.run, { note: 'test run' });

    const expected = await augmentDataset(train, { viewsPerImage: 3, seed: 5, transforms, progress: QUIET });
    const readBack = await readShardFolder(outDir);
    assert.deepEqual(readBack.classNames, dataset.classNames);
    assert.equal(readBack.records.length, 60);
    for (const [index, record] of readBack.records.entries()) {
      assert.deepEqual(record.pixels, expected[index].pixels, `row ${index} pixels`);
      assert.equal(record.label, expected[index].label, `row ${index} label`);
      assert.equal(record.sourceIndex, expected[index].sourceIndex, `row ${index} source index`);
      assert.equal(record.view, expected[index].view, `row ${index} view`);
      assert.deepEqual(record.params, expected[index].params, `row ${index} params`);
    }

    const files = await readdir(outDir);
    assert.ok(files.includes(EXAMPLES_FILE));
    assert.deepEqual(files.filter((name) => name.includes('.tmp-')), []);
    const sheet = await sharp(join(outDir, EXAMPLES_FILE)).metadata();
    assert.equal(sheet.format, 'png');
    // 6 source rows of 28 px images enlarged 3 times, with 2 px gaps.
    assert.equal(sheet.height, 2 + 6 * (84 + 2));
  });

  test('rerun resumes, other settings need overwrite', async () => {
    const outDir = join(directory, 'again');
    const options = { outDir, viewsPerImage: 1, progress: QUIET, concurrency: 1 };
    const first = await augmentToShards(dataset, options);
    const again = await augmentToShards(dataset, options);
    assert.deepEqual(again.shards, first.shards);
    await assert.rejects(augmentToShards(dataset, { ...options, viewsPerImage: 2 }), /other inputs or settings.*overwrite/);

    await writeFile(join(outDir, 'notes.txt'), 'kept');
    const manifest = await augmentToShards(dataset, { ...options, viewsPerImage: 2, overwrite: true });
    assert.equal(manifest.totals.rows, 40);
    const files = await readdir(outDir);
    assert.ok(files.includes('notes.txt'));
    assert.deepEqual(
      files.filter((name) => name.endsWith('.arrow')),
      manifest.shards.map((shard) => shard.file),
    );
  });

  test('rejects outputs without a journal unless overwrite', async () => {
    const outDir = join(directory, 'foreign');
    await augmentToShards(dataset, { outDir, viewsPerImage: 1, progress: QUIET, concurrency: 1 });
    await rm(join(outDir, 'augment-journal.jsonl'));
    await assert.rejects(augmentToShards(dataset, { outDir, viewsPerImage: 1, progress: QUIET }), /already has shards or a manifest.*overwrite/);
  });

  test('rejects a dataset without train records', async () => {
    const heldOut = { classNames: dataset.classNames, records: recordsOfSplit(dataset, 'test') };
    const options = { outDir: join(directory, 'none'), viewsPerImage: 1, progress: QUIET };
    await assert.rejects(augmentToShards(heldOut, options), /no train records/);
  });
});
