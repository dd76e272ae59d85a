import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Random, selectBackend } from '@scarce/core';
import { onnxGraphSession, stepGradient, stepWeight } from '@scarce/train';
import {
  applyAugmentation,
  augmentFeeds,
  batchMean,
  batchVariance,
  buildDiscriminator,
  buildGenerator,
  discriminatorLoss,
  drawAugmentation,
  exportGanStep,
  exportPenaltyStep,
  fixedWeight,
  GAN_AUGMENTED_REAL,
  GAN_FAKE_SCORE,
  GAN_LABELS,
  GAN_LATENTS,
  GAN_LOSS,
  GAN_PENALTY,
  GAN_PENALTY_IMAGES,
  GAN_REAL_IMAGES,
  GAN_REAL_SCORE,
  generatorLoss,
  latentValues,
  resolveSynthConfig,
  type SynthConfig,
} from '@scarce/synth';

before(async () => {
  await selectBackend({ log: () => {} });
});

const shapeOf = (channels: number) => ({ height: 16, width: 16, channels });

/** Largest absolute difference between two arrays, relative to the reference's largest magnitude. */
function relativeDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let scale = 1e-8;
  let largest = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) largest = Math.max(largest, Math.abs(actual[i] - expected[i]));
  return largest / scale;
}

/**
 * Runs both compiled steps of a small GAN on one batch and compares the losses, scores,
 * gradients and batch statistics with tfjs's on the same latents and augmentation draws.
 */
async function assertStepsMatch(overrides: Partial<SynthConfig>, channels: number): Promise<void> {
  const config = resolveSynthConfig({ generatorWidths: [8, 4], discriminatorWidths: [4, 8], latentSize: 6, labelEmbeddingSize: 3, ...overrides });
  const imageShape = shapeOf(channels);
  const numClasses = 3;
  const n = 8;
  const generator = buildGenerator({ imageShape, numClasses, latentSize: config.latentSize, labelEmbeddingSize: config.labelEmbeddingSize, widths: config.generatorWidths, batchNormMomentum: 0.99, seed: 1 });
  const discriminator = buildDiscriminator({ imageShape, numClasses, widths: config.discriminatorWidths, minibatchStdGroupSize: config.minibatchStd ? 4 : null, seed: 2 });
  const augment = config.diffAugment ? { colour: config.augmentColour, translationFraction: config.translationFraction, cutoutFraction: config.cutoutFraction } : null;
  const spec = { imageShape, numClasses, latentSize: config.latentSize, batchSize: n, loss: config.loss, labelSmoothing: config.labelSmoothing, augment };

  const random = new Random(9);
  const labelValues = Array.from({ length: n }, (_, i) => (i * 5) % numClasses);
  const oneHot = new Float32Array(n * numClasses);
  labelValues.forEach((label, i) => (oneHot[i * numClasses + label] = 1));
  const real = Float32Array.from({ length: n * 16 * 16 * channels }, () => random.uniform(-1, 1));
  const latents = latentValues(random, n, config.latentSize);
  const draws = augment === null ? null : drawAugmentation(random, 2 * n, imageShape, augment);
  const generatorDraws = augment === null ? null : drawAugmentation(random, n, imageShape, augment);
  const weightsOf = (model: tf.LayersModel) => model.trainableWeights.map((weight) => ({ data: weight.read().dataSync() as Float32Array, dims: weight.shape as number[] }));
  const imageDims = [n, 16, 16, channels];

  for (const trained of ['discriminator', 'generator'] as const) {
    const step = exportGanStep(trained, generator, discriminator, spec);
    const session = await onnxGraphSession(() => step.bytes, 'onnxruntime');
    assert.ok(session !== undefined);
    const [trainedModel, fixedModel] = trained === 'discriminator' ? [discriminator, generator] : [generator, discriminator];
    const feeds = {
      [GAN_LATENTS]: { data: latents, dims: [n, config.latentSize] },
      [GAN_LABELS]: { data: oneHot, dims: [n, numClasses] },
      ...(trained === 'discriminator' ? { [GAN_REAL_IMAGES]: { data: real, dims: imageDims } } : {}),
      ...(augment === null ? {} : augmentFeeds(trained === 'discriminator' ? draws! : generatorDraws!, imageShape)),
      ...Object.fromEntries(weightsOf(trainedModel).map((feed, i) => [stepWeight(i), feed])),
      ...Object.fromEntries(weightsOf(fixedModel).map((feed, i) => [fixedWeight(i), feed])),
    };
    const actual = await session.run(feeds, step.outputs);

    // The same step in tfjs; batch statistics are read back from the moving statistics with momentum 0.
    const statistics: tf.Tensor[] = [];
    const variables = trainedModel.trainableWeights.map((weight) => weight.read() as tf.Variable);
    const expected = tf.variableGrads(() => {
      const labelTensor = tf.tensor2d(oneHot, [n, numClasses]);
      const fakes = generator.apply([tf.tensor2d(latents, [n, config.latentSize]), labelTensor], { training: true }) as tf.Tensor4D;
      for (const layer of step.batchNormLayers) {
        const input = tf.model({ inputs: generator.inputs, outputs: layer.input as tf.SymbolicTensor }).apply([tf.tensor2d(latents, [n, config.latentSize]), labelTensor], { training: true }) as tf.Tensor;
        const moments = tf.moments(input, input.shape.slice(0, -1).map((_, axis) => axis));
        statistics.push(tf.keep(moments.mean), tf.keep(moments.variance));
      }
      if (trained === 'discriminator') {
        const both = tf.concat([tf.tensor4d(real, imageDims as [number, number, number, number]), fakes], 0);
        const augmented = draws === null ? both : applyAugmentation(both, draws);
        const scores = discriminator.apply([augmented, tf.concat([labelTensor, labelTensor], 0)], { training: true }) as tf.Tensor;
        const [realScores, fakeScores] = tf.split(scores, 2, 0);
        statistics.push(tf.keep(tf.mean(realScores)), tf.keep(tf.mean(fakeScores)), tf.keep(tf.slice(augmented, 0, n)));
        return discriminatorLoss(config, realScores, fakeScores);
      }
      const augmented = generatorDraws === null ? fakes : applyAugmentation(fakes, generatorDraws);
      return generatorLoss(config, discriminator.apply([augmented, labelTensor], { training: true }) as tf.Tensor);
    }, variables);

    const context = `${trained} step with ${JSON.stringify(overrides)} on ${channels} channel(s)`;
    assert.ok(Math.abs(actual[GAN_LOSS][0] - expected.value.dataSync()[0]) < 1e-4, `${context}: loss ${actual[GAN_LOSS][0]} against ${expected.value.dataSync()[0]}`);
    variables.forEach((variable, i) => {
      const difference = relativeDifference(actual[stepGradient(i)], expected.grads[variable.name].dataSync());
      assert.ok(difference < 1e-4, `${context}: gradient of ${variable.name} differs by ${difference}`);
    });
    step.batchNormLayers.forEach((_, i) => {
      assert.ok(relativeDifference(actual[batchMean(i)], statistics[2 * i].dataSync()) < 1e-4, `${context}: batch mean ${i}`);
      assert.ok(relativeDifference(actual[batchVariance(i)], statistics[2 * i + 1].dataSync()) < 1e-4, `${context}: batch variance ${i}`);
    });
    if (trained === 'discriminator') {
      const [realScore, fakeScore, augmentedReal] = statistics.slice(-3);
      assert.ok(Math.abs(actual[GAN_REAL_SCORE][0] - realScore.dataSync()[0]) < 1e-4, `${context}: real score`);
      assert.ok(Math.abs(actual[GAN_FAKE_SCORE][0] - fakeScore.dataSync()[0]) < 1e-4, `${context}: fake score`);
      assert.ok(relativeDifference(actual[GAN_AUGMENTED_REAL], augmentedReal.dataSync()) < 1e-5, `${context}: augmented real images`);
    }
    tf.dispose([expected.value, ...Object.values(expected.grads), ...statistics]);
  }
  generator.dispose();
  discriminator.dispose();
}

test('compiled GAN steps on grayscale images with the defaults', async () => {
  await assertStepsMatch({}, 1);
});

test('compiled GAN steps on colour images with the non-saturating loss', async () => {
  // Label smoothing and no minibatch std too.
  await assertStepsMatch({ loss: 'non-saturating', labelSmoothing: 0.1, minibatchStd: false }, 3);
});

test('compiled GAN steps without DiffAugment or with translation alone', async () => {
  await assertStepsMatch({ diffAugment: false, labelSmoothing: 0.2 }, 1);
  await assertStepsMatch({ augmentColour: false, cutoutFraction: 0 }, 3);
});

test('compiled R1 penalty and its gradient', async () => {
  const imageShape = shapeOf(1);
  const numClasses = 2;
  const n = 8;
  const weight = 0.01 * 8;
  for (const minibatchStd of [true, false]) {
    const discriminator = buildDiscriminator({ imageShape, numClasses, widths: [4, 8], minibatchStdGroupSize: minibatchStd ? 4 : null, seed: 3 });
    const step = exportPenaltyStep(discriminator, { imageShape, numClasses, batchSize: n, weight });
    const session = await onnxGraphSession(() => step.bytes, 'onnxruntime');
    assert.ok(session !== undefined);
    const random = new Random(4);
    const images = Float32Array.from({ length: n * 16 * 16 }, () => random.uniform(-1, 1));
    const labels = Float32Array.from({ length: n * numClasses }, (_, i) => (i % numClasses === Math.floor(i / numClasses) % numClasses ? 1 : 0));
    const feeds = {
      [GAN_PENALTY_IMAGES]: { data: images, dims: [n, 16, 16, 1] },
      [GAN_LABELS]: { data: labels, dims: [n, numClasses] },
      ...Object.fromEntries(discriminator.trainableWeights.map((variable, i) => [stepWeight(i), { data: variable.read().dataSync() as Float32Array, dims: variable.shape as number[] }])),
    };
    const actual = await session.run(feeds, step.outputs);

    const variables = discriminator.trainableWeights.map((variable) => variable.read() as tf.Variable);
    const expected = tf.variableGrads(() => {
      const labelTensor = tf.tensor2d(labels, [n, numClasses]);
      const inputGradient = tf.grad((x: tf.Tensor) => tf.sum(discriminator.apply([x, labelTensor], { training: true }) as tf.Tensor))(tf.tensor4d(images, [n, 16, 16, 1]));
      return tf.mul(tf.mean(tf.sum(tf.square(inputGradient), [1, 2, 3])), weight) as tf.Scalar;
    }, variables);
    const context = minibatchStd ? 'with minibatch std' : 'without minibatch std';
    assert.ok(Math.abs(actual[GAN_PENALTY][0] - expected.value.dataSync()[0]) < 1e-5 * Math.max(1, expected.value.dataSync()[0]), `${context}: penalty ${actual[GAN_PENALTY][0]} against ${expected.value.dataSync()[0]}`);
    assert.ok(actual[GAN_PENALTY][0] > 0);
    variables.forEach((variable, i) => {
      const reference = expected.grads[variable.name]?.dataSync() ?? new Float32Array(variable.size);
      const difference = relativeDifference(actual[stepGradient(i)], reference);
      assert.ok(difference < 1e-3, `${context}: penalty gradient of ${variable.name} differs by ${difference}`);
    });
    tf.dispose([expected.value, ...Object.values(expected.grads)]);
    discriminator.dispose();
  }
});
