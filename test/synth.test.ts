import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Random,
  readManifest,
  readMedMnistNpz,
  readShardFolder,
  recordsOfSplit,
  selectBackend,
  type ImageRecord,
  type LabelledDataset,
} from '@scarce/core';
import {
  buildDiscriminator,
  buildGenerator,
  diffAugment,
  epochMirrorFlags,
  GanTrainer,
  gatherBatchPixels,
  loadGenerator,
  MinibatchStd,
  resolveSynthConfig,
  sampleSynthetic,
  saveGenerator,
  synthToShards,
  trainConditionalGan,
  type SynthConfig,
  type TrainedGan,
} from '@scarce/synth';

// The workspace root does not depend on tfjs or sharp, so load the copies that synth uses.
const synthRequire = createRequire(new URL('../packages/synth/package.json', import.meta.url));
const tf = synthRequire('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
const sharp = synthRequire('sharp') as typeof import('sharp');

const FIXTURE = new URL('../fixtures/breastmnist/breastmnist.npz', import.meta.url).pathname;

/** Small enough for a 32-step run to take a few seconds on the wasm backend. */
const TINY_CONFIG: Partial<SynthConfig> = {
  latentSize: 16,
  labelEmbeddingSize: 4,
  generatorWidths: [8, 4],
  discriminatorWidths: [4, 8],
  batchSize: 16,
  epochs: 8,
  timeBudgetSeconds: null,
  seed: 7,
};

let dataset: LabelledDataset;
let trainSubset: ImageRecord[];
const silent = { progress: false } as const;

/** Returns the first `perClass` train records of each class, 2 x 32 = 64 by default. */
function balancedTrainRecords(perClass = 32): ImageRecord[] {
  const train = recordsOfSplit(dataset, 'train');
  return [0, 1].flatMap((label) => train.filter((record) => record.label === label).slice(0, perClass));
}

before(async () => {
  try {
    await selectBackend({ backend: 'wasm', log: () => {} });
  } catch {
    await selectBackend({ backend: 'cpu', log: () => {} });
  }
  dataset = await readMedMnistNpz(FIXTURE, { classNames: ['malignant', 'normal_benign'] });
  trainSubset = balancedTrainRecords();
});

describe('models', () => {
  const shapes = [
    { height: 28, width: 28, channels: 1 },
    { height: 32, width: 32, channels: 3 },
  ];

  for (const imageShape of shapes) {
    const name = `${imageShape.height}x${imageShape.width}x${imageShape.channels}`;

    test(`generator output ${name} in [-1, 1]`, () => {
      const generator = buildGenerator({
        imageShape, numClasses: 2, latentSize: 16, labelEmbeddingSize: 4, widths: [8, 4], batchNormMomentum: 0.99, seed: 1,
      });
      const output = tf.tidy(() => generator.predict([tf.randomNormal([5, 16]), tf.oneHot(tf.tensor1d([0, 1, 0, 1, 1], 'int32'), 2).toFloat()]) as import('@tensorflow/tfjs').Tensor);
      assert.deepEqual(output.shape, [5, imageShape.height, imageShape.width, imageShape.channels]);
      const values = output.dataSync();
      assert.ok(Math.min(...values) >= -1);
      assert.ok(Math.max(...values) <= 1);
      output.dispose();
      generator.dispose();
    });

    test(`discriminator output ${name} is [n, 1]`, () => {
      const discriminator = buildDiscriminator({ imageShape, numClasses: 2, widths: [4, 8], minibatchStdGroupSize: 4, seed: 1 });
      const output = tf.tidy(() => discriminator.predict([
        tf.randomUniform([3, imageShape.height, imageShape.width, imageShape.channels], -1, 1),
        tf.oneHot(tf.tensor1d([0, 1, 1], 'int32'), 2).toFloat(),
      ]) as import('@tensorflow/tfjs').Tensor);
      assert.deepEqual(output.shape, [3, 1]);
      output.dispose();
      discriminator.dispose();
    });
  }

  test('generator rejects sides not divisible by 4', () => {
    assert.throws(
      () => buildGenerator({
        imageShape: { height: 30, width: 30, channels: 1 }, numClasses: 2, latentSize: 4, labelEmbeddingSize: 2, widths: [4, 4], batchNormMomentum: 0.99, seed: 1,
      }),
      /divisible by 4.*30x30/,
    );
  });
});

describe('MinibatchStd', () => {
  test('groups never mix real and fake', () => {
    // Four identical images, then four that differ: with groups of 4 only the second group varies.
    const identical = new Array(4 * 2 * 2).fill(0.5);
    const varied = Array.from({ length: 4 * 2 * 2 }, (_, i) => Math.floor(i / 4) - 1.5);
    const output = tf.tidy(() => new MinibatchStd({ groupSize: 4 }).apply(tf.tensor4d([...identical, ...varied], [8, 2, 2, 1])) as import('@tensorflow/tfjs').Tensor);
    assert.deepEqual(output.shape, [8, 2, 2, 2]);
    const statistic = Array.from(output.dataSync()).filter((_, i) => i % 2 === 1);
    output.dispose();
    for (const value of statistic.slice(0, 16)) assert.ok(value < 1e-3, `identical group has std ${value}`);
    // Values -1.5, -0.5, 0.5, 1.5 have a population std of sqrt(1.25).
    for (const value of statistic.slice(16)) assert.ok(Math.abs(value - Math.sqrt(1.25)) < 1e-4, `varied group has std ${value}`);
  });

  test('odd batch falls back to a divisor', () => {
    const output = tf.tidy(() => new MinibatchStd({ groupSize: 4 }).apply(tf.randomNormal([6, 3, 3, 2])) as import('@tensorflow/tfjs').Tensor);
    assert.deepEqual(output.shape, [6, 3, 3, 3]);
    output.dispose();
  });
});

describe('diffAugment', () => {
  test('translation shifts with zero fill', () => {
    const [count, size] = [4, 8];
    const pixels = Float32Array.from({ length: count * size * size }, (_, i) => (i % 97) / 97 + 0.01);
    const shifted = tf.tidy(() => diffAugment(tf.tensor4d(pixels, [count, size, size, 1]), new Random(3), {
      colour: false, translationFraction: 0.25, cutoutFraction: 0,
    }).dataSync());

    // Replay the draws: all vertical shifts, then all horizontal ones, each in [-2, 2].
    const random = new Random(3);
    const shiftsY = Array.from({ length: count }, () => random.integer(-2, 3));
    const shiftsX = Array.from({ length: count }, () => random.integer(-2, 3));
    for (let image = 0; image < count; image++) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const [sourceY, sourceX] = [y - shiftsY[image], x - shiftsX[image]];
          const inside = sourceY >= 0 && sourceY < size && sourceX >= 0 && sourceX < size;
          const expected = inside ? pixels[(image * size + sourceY) * size + sourceX] : 0;
          assert.ok(Math.abs(shifted[(image * size + y) * size + x] - expected) < 1e-6, `image ${image} pixel (${y}, ${x})`);
        }
      }
    }
  });

  test('cutout zeroes at most half-side squares', () => {
    const zeroed = tf.tidy(() => diffAugment(tf.ones([16, 28, 28, 1]), new Random(5), {
      colour: false, translationFraction: 0, cutoutFraction: 0.5,
    }).dataSync());
    for (let image = 0; image < 16; image++) {
      const zeros = zeroed.subarray(image * 784, (image + 1) * 784).filter((value) => value === 0).length;
      assert.ok(zeros > 0, `image ${image} has no cutout`);
      assert.ok(zeros <= 14 * 14, `image ${image} has ${zeros} zeroed pixels`);
    }
  });

  test('gradient reaches the input', () => {
    const gradient = tf.tidy(() => {
      const images = tf.randomUniform([4, 28, 28, 1], -1, 1) as import('@tensorflow/tfjs').Tensor4D;
      const options = { colour: true, translationFraction: 0.125, cutoutFraction: 0.5 };
      return tf.grad((x: import('@tensorflow/tfjs').Tensor) => tf.sum(tf.square(diffAugment(x as import('@tensorflow/tfjs').Tensor4D, new Random(9), options))))(images).abs().sum().dataSync()[0];
    });
    assert.ok(Number.isFinite(gradient));
    assert.ok(gradient > 0);
  });
});

describe('resolveSynthConfig', () => {
  test('fills defaults', () => {
    const config = resolveSynthConfig({ batchSize: 8 });
    assert.equal(config.batchSize, 8);
    assert.equal(config.loss, 'hinge');
    assert.equal(config.adamBeta1, 0.5);
  });

  const invalid: Array<[string, Partial<SynthConfig> & Record<string, unknown>, RegExp]> = [
    ['unknown field', { batchsize: 8 }, /Unknown synth config field.*'batchsize'/],
    ['zero batch', { batchSize: 0 }, /'batchSize'.*integer >= 1.*0/],
    ['no widths', { generatorWidths: [] }, /'generatorWidths'.*1 to 5 positive integers/],
    ['six widths', { discriminatorWidths: [8, 8, 8, 8, 8, 8] }, /'discriminatorWidths'.*1 to 5 positive integers/],
    ['unknown loss', { loss: 'wasserstein' as SynthConfig['loss'] }, /'loss'.*'hinge', 'non-saturating'/],
    ['smoothing of 0.5', { labelSmoothing: 0.5 }, /'labelSmoothing'.*\[0, 0.5\)/],
    ['negative R1 weight', { r1Gamma: -1 }, /'r1Gamma'/],
    ['unknown checkpoint score', { selectCheckpointBy: 'fid' as SynthConfig['selectCheckpointBy'] }, /'selectCheckpointBy'.*'frechetDistance'/],
    ['beta of 1', { adamBeta2: 1 }, /'adamBeta2'.*\[0, 1\)/],
    ['negative budget', { timeBudgetSeconds: -1 }, /'timeBudgetSeconds'/],
    ['mirror as a string', { mirror: 'yes' as unknown as boolean }, /'mirror'.*true or false.*"yes"/],
  ];
  for (const [name, options, message] of invalid) {
    test(`rejects ${name}`, () => assert.throws(() => resolveSynthConfig(options), message));
  }
});

describe('mirrored real batches', () => {
  // Two images of 6 values each, and their mirrors stored apart with the values negated.
  const pixels = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const mirroredPixels = pixels.map((value) => -value);

  test('rows pick the mirrored copy', () => {
    const batch = gatherBatchPixels([1, 0, 1], pixels, 6, { mirroredPixels, mirrored: [true, false, false] });
    assert.deepEqual([...batch.subarray(0, 6)], [...mirroredPixels.subarray(6)]);
    assert.deepEqual([...batch.subarray(6, 12)], [...pixels.subarray(0, 6)]);
    assert.deepEqual([...batch.subarray(12)], [...pixels.subarray(6)]);
  });

  test('no mirror keeps every row', () => {
    assert.deepEqual([...gatherBatchPixels([1, 0], pixels, 6, null)], [...pixels.subarray(6), ...pixels.subarray(0, 6)]);
  });

  test('flags are seeded per epoch', () => {
    const flags = epochMirrorFlags(42, 3, 546);
    assert.deepEqual(epochMirrorFlags(42, 3, 546), flags);
    assert.notDeepEqual(epochMirrorFlags(42, 4, 546), flags);
    const share = flags.filter(Boolean).length / flags.length;
    assert.ok(share > 0.4, `mirrored share ${share}`);
    assert.ok(share < 0.6, `mirrored share ${share}`);
  });

  test('resume accepts checkpoints without mirror', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'scarce-mirror-resume-'));
    try {
      const records = balancedTrainRecords(16);
      const config = { ...TINY_CONFIG, epochs: 1, checkpointEvery: 1 };
      (await trainConditionalGan(records, dataset.classNames, config, { ...silent, directory })).dispose();
      // A checkpoint written before the field existed has no mirror in its config.
      const statePath = join(directory, 'checkpoints', 'epoch-000001', 'state.json');
      const state = JSON.parse(await readFile(statePath, 'utf8'));
      delete state.config.mirror;
      await writeFile(statePath, JSON.stringify(state));

      const resumed = await trainConditionalGan(records, dataset.classNames, { ...config, epochs: 2 }, { ...silent, directory, resume: true });
      assert.equal(resumed.epochsCompleted, 2);
      assert.equal(resumed.history.length, 2);
      resumed.dispose();
      const mirrored = trainConditionalGan(records, dataset.classNames, { ...config, epochs: 3, mirror: true }, { ...silent, directory, resume: true });
      await assert.rejects(mirrored, /other GAN settings \(mirror false -> true\)/);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  test('mirror changes the run and repeats', async () => {
    const records = balancedTrainRecords(16);
    const config = { ...TINY_CONFIG, epochs: 2 };
    const losses = async (mirror: boolean) => {
      const gan = await trainConditionalGan(records, dataset.classNames, { ...config, mirror }, silent);
      gan.dispose();
      return gan.history.map((log) => log.discriminatorLoss);
    };
    const mirrored = await losses(true);
    assert.deepEqual(await losses(true), mirrored);
    assert.notDeepEqual(await losses(false), mirrored);
  });
});

describe('trainConditionalGan', () => {
  let trained: TrainedGan;
  const tensorsAfterEpoch: number[] = [];

  before(async () => {
    trained = await trainConditionalGan(trainSubset, dataset.classNames, TINY_CONFIG, {
      ...silent,
      onEpochEnd: () => tensorsAfterEpoch.push(tf.memory().numTensors),
    });
  });
  after(() => trained.dispose());

  test('short run lowers the D loss', () => {
    assert.equal(trained.history.length, 8);
    assert.equal(trained.steps, 32);
    assert.equal(trained.epochsCompleted, 8);
    assert.equal(trained.stoppedBy, 'epochs');
    for (const log of trained.history) {
      assert.ok(Number.isFinite(log.discriminatorLoss), `D loss of epoch ${log.epoch}`);
      assert.ok(Number.isFinite(log.generatorLoss), `G loss of epoch ${log.epoch}`);
    }
    const first = trained.history[0].discriminatorLoss;
    const last = trained.history[trained.history.length - 1].discriminatorLoss;
    assert.ok(last < first, `D loss went from ${first} to ${last}`);
  });

  test('tensor count flat across epochs', () => {
    assert.equal(tensorsAfterEpoch.length, 8);
    assert.deepEqual(tensorsAfterEpoch, new Array(8).fill(tensorsAfterEpoch[0]));
  });

  test('tensor count flat across steps', async () => {
    const config = resolveSynthConfig(TINY_CONFIG);
    const trainer = new GanTrainer(config, { imageShape: { height: 28, width: 28, channels: 1 }, numClasses: 2 });
    const images = tf.randomUniform([8, 28, 28, 1], -1, 1) as import('@tensorflow/tfjs').Tensor4D;
    const labels = tf.oneHot(tf.tensor1d([0, 1, 0, 1, 0, 1, 0, 1], 'int32'), 2).toFloat() as import('@tensorflow/tfjs').Tensor2D;
    await trainer.step({ images, labels }); // creates the Adam moments
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      await trainer.step({ images, labels });
      counts.push(tf.memory().numTensors);
    }
    tf.dispose([images, labels]);
    trainer.disposeTraining();
    trainer.averagedGenerator.dispose();
    assert.deepEqual(counts, new Array(4).fill(counts[0]));
  });

  test('compiled and tfjs losses match', async () => {
    // The two runtimes differ only by float rounding, which grows slowly over the epochs.
    // The default runtime compiles the steps for onnxruntime when tfjs runs on wasm or cpu.
    assert.equal(trained.trainingRuntime, tf.getBackend() === 'tensorflow' ? 'tfjs' : 'onnxruntime');
    const inTfjs = await trainConditionalGan(trainSubset, dataset.classNames, { ...TINY_CONFIG, runtime: 'tfjs' }, silent);
    assert.equal(inTfjs.trainingRuntime, 'tfjs');
    inTfjs.history.forEach((log, i) => {
      for (const key of ['discriminatorLoss', 'generatorLoss', 'realScore', 'fakeScore'] as const) {
        const [ours, theirs] = [trained.history[i][key], log[key]];
        assert.ok(Math.abs(ours - theirs) < 2e-3 * Math.max(1, Math.abs(theirs)), `epoch ${log.epoch} ${key}: ${ours} in onnxruntime against ${theirs} in tfjs`);
      }
    });
    inTfjs.dispose();
  });

  test('same seed gives same losses', async () => {
    const again = await trainConditionalGan(trainSubset, dataset.classNames, TINY_CONFIG, silent);
    const losses = (gan: TrainedGan) => gan.history.map((log) => [log.discriminatorLoss, log.generatorLoss, log.realScore, log.fakeScore]);
    assert.deepEqual(losses(again), losses(trained));
    again.dispose();
  });

  test('time budget stops training', async () => {
    const cut = await trainConditionalGan(trainSubset, dataset.classNames, { ...TINY_CONFIG, epochs: 1000, timeBudgetSeconds: 0.5 }, silent);
    assert.equal(cut.stoppedBy, 'timeBudget');
    assert.ok(cut.epochsCompleted < 1000);
    assert.ok(cut.seconds < 5, `took ${cut.seconds}s`);
    cut.dispose();
  });

  for (const split of ['val', 'test'] as const) {
    test(`rejects ${split} records`, async () => {
      const records = [...trainSubset.slice(0, 8), recordsOfSplit(dataset, split)[0]];
      await assert.rejects(trainConditionalGan(records, dataset.classNames, TINY_CONFIG, silent), new RegExp(`Record 8 is in the '${split}' split`));
    });
  }

  test('rejects a class without records', async () => {
    const onlyMalignant = trainSubset.filter((record) => record.label === 0);
    await assert.rejects(trainConditionalGan(onlyMalignant, dataset.classNames, TINY_CONFIG, silent), /normal_benign have no train records/);
  });

  describe('sampleSynthetic', () => {
    test('counts and fields', () => {
      const records = sampleSynthetic(trained, { perClass: 5, seed: 3 });
      assert.equal(records.length, 10);
      assert.deepEqual(records.map((record) => record.label), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
      for (const record of records) {
        assert.equal(record.origin, 'synthetic');
        assert.equal(record.split, 'train');
        assert.equal(record.sourceIndex, null);
        assert.equal(record.view, 0);
        assert.equal(record.pixels.length, 28 * 28);
        assert.deepEqual([record.height, record.width, record.channels], [28, 28, 1]);
        assert.equal(record.params?.generator, 'conditional-dcgan');
        assert.equal(record.params?.epochsTrained, 8);
        assert.equal(record.params?.samplingSeed, 3);
      }
      assert.deepEqual(records.slice(0, 5).map((record) => record.params?.latentIndex), [0, 1, 2, 3, 4]);
      assert.equal(new Set(records.map((record) => record.seed)).size, 10);
    });

    test('pixels span more than one value', () => {
      const records = sampleSynthetic(trained, { perClass: 4, seed: 3 });
      for (const record of records) {
        assert.ok(Math.max(...record.pixels) > Math.min(...record.pixels), 'a sample is one flat colour');
      }
    });

    test('deterministic for a seed', () => {
      const first = sampleSynthetic(trained, { perClass: 3, seed: 11 });
      const second = sampleSynthetic(trained, { perClass: 3, seed: 11 });
      const other = sampleSynthetic(trained, { perClass: 3, seed: 12 });
      assert.deepEqual(second.map((record) => record.pixels), first.map((record) => record.pixels));
      assert.notDeepEqual(other.map((record) => record.pixels), first.map((record) => record.pixels));
    });

    test('independent of batch size', () => {
      const oneBatch = sampleSynthetic(trained, { perClass: 6, seed: 4 });
      const smallBatches = sampleSynthetic(trained, { perClass: 6, seed: 4, batchSize: 5 });
      assert.deepEqual(smallBatches.map((record) => record.pixels), oneBatch.map((record) => record.pixels));
    });
  });

  describe('outputs', () => {
    let directory: string;
    before(async () => {
      directory = await mkdtemp(join(tmpdir(), 'scarce-synth-'));
    });
    after(async () => rm(directory, { recursive: true, force: true }));

    test('synthToShards writes shards, manifest, grid, generator', async () => {
      const outputs = await synthToShards(trained, { directory, perClass: 6, seed: 2, gridColumns: 4 });
      assert.equal(outputs.records, 12);
      assert.deepEqual((await readdir(directory)).sort(), ['generator', 'history.jsonl', 'manifest.json', 'samples.png', 'synthetic-00000.arrow']);
      assert.deepEqual((await readdir(join(directory, 'generator'))).sort(), ['model.json', 'weights.bin']);

      const read = await readShardFolder(directory);
      assert.equal(read.records.length, 12);
      const sampled = sampleSynthetic(trained, { perClass: 6, seed: 2 });
      assert.deepEqual(read.records.map((record) => record.pixels), sampled.map((record) => record.pixels));
      assert.deepEqual(read.records.map((record) => record.origin), new Array(12).fill('synthetic'));

      const manifest = await readManifest(directory);
      const recorded = manifest.config as { stage: string; synth: SynthConfig; sampling: { perClass: number; seed: number } };
      assert.equal(recorded.stage, 'synth');
      assert.deepEqual(recorded.synth, trained.config);
      assert.deepEqual(recorded.sampling, { perClass: 6, seed: 2 });
      assert.deepEqual(manifest.totals.classCounts, [6, 6]);

      const history = (await readFile(join(directory, 'history.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
      assert.equal(history.length, 8);

      // Two rows of 2x-scaled 28 px cells with 2 px gaps; the label column comes first.
      const grid = await sharp(await readFile(join(directory, 'samples.png'))).metadata();
      assert.equal(grid.height, 2 * (56 + 2) + 2);
      assert.ok(grid.width! > 4 * (56 + 2));
    });

    test('synthToShards rejects a used folder', async () => {
      await assert.rejects(synthToShards(trained, { directory, perClass: 2 }), /already has shards or a manifest.*overwrite/);
      const outputs = await synthToShards(trained, { directory, perClass: 2, overwrite: true, saveGenerator: false });
      assert.equal(outputs.generatorPath, null);
      assert.deepEqual((await readdir(directory)).sort(), ['history.jsonl', 'manifest.json', 'samples.png', 'synthetic-00000.arrow']);
    });

    test('saved generator samples the same', async () => {
      const generatorDirectory = join(directory, 'saved-generator');
      await saveGenerator(generatorDirectory, trained);
      const loaded = await loadGenerator(generatorDirectory);
      assert.deepEqual(loaded.classNames, trained.classNames);
      assert.equal(loaded.latentSize, 16);
      const expected = sampleSynthetic(trained, { perClass: 3, seed: 8 });
      const actual = sampleSynthetic(loaded, { perClass: 3, seed: 8 });
      assert.deepEqual(actual.map((record) => record.pixels), expected.map((record) => record.pixels));
      assert.deepEqual(actual.map((record) => record.params), expected.map((record) => record.params));
      loaded.generator.dispose();
    });
  });
});
