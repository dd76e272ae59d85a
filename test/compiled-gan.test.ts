import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Random, selectBackend } from '@scarce/core';
import { onnxGraphSession, stepGradient, stepWeight, type GraphFeed } from '@scarce/train';
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
  fixedWeight,
  GAN_AUGMENTED_REAL,
  GAN_FAKE_IMAGES,
  GAN_FAKE_SCORE,
  GAN_LABELS,
  GAN_LATENTS,
  GAN_LOSS,
  GAN_PENALTY,
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
 * Runs the four compiled parts of a small GAN's step on one batch: the discriminator on real and
 * on given fake images, the generator's fakes, and the generator's loss. The real part adds the
 * R1 penalty when `penaltyWeight` is set. Compares their losses, scores, gradients, images
 * and batch statistics with tfjs's on the same latents and augmentation draws.
 */
async function assertStepsMatch(overrides: Partial<SynthConfig>, channels: number, penaltyWeight = 0): Promise<void> {
  const config = resolveSynthConfig({ generatorWidths: [8, 4], discriminatorWidths: [4, 8], latentSize: 6, labelEmbeddingSize: 3, ...overrides });
  const imageShape = shapeOf(channels);
  const numClasses = 3;
  const n = 8;
  const generator = buildGenerator({ imageShape, numClasses, latentSize: config.latentSize, labelEmbeddingSize: config.labelEmbeddingSize, widths: config.generatorWidths, batchNormMomentum: 0.99, seed: 1 });
  const discriminator = buildDiscriminator({ imageShape, numClasses, widths: config.discriminatorWidths, minibatchStdGroupSize: config.minibatchStd ? 4 : null, classifier: config.classifierWeight > 0, seed: 2 });
  const augment = config.diffAugment ? { colour: config.augmentColour, translationFraction: config.translationFraction, cutoutFraction: config.cutoutFraction } : null;
  const spec = { imageShape, numClasses, latentSize: config.latentSize, batchSize: n, loss: config.loss, labelSmoothing: config.labelSmoothing, classifierWeight: config.classifierWeight, augment };

  const random = new Random(9);
  const labelValues = Array.from({ length: n }, (_, i) => (i * 5) % numClasses);
  const oneHot = new Float32Array(n * numClasses);
  labelValues.forEach((label, i) => (oneHot[i * numClasses + label] = 1));
  const real = Float32Array.from({ length: n * 16 * 16 * channels }, () => random.uniform(-1, 1));
  const latents = latentValues(random, n, config.latentSize);
  const imageDims = [n, 16, 16, channels] as [number, number, number, number];
  const weightsOf = (model: tf.LayersModel) => model.trainableWeights.map((weight) => ({ data: weight.read().dataSync() as Float32Array, dims: weight.shape as number[] }));
  const context = (part: string) => `${part} part with ${JSON.stringify(overrides)}${penaltyWeight > 0 ? ' and R1' : ''} on ${channels} channel(s)`;

  // Fakes as the generator might draw them, for the part that scores given fakes.
  const fake = Float32Array.from({ length: n * 16 * 16 * channels }, () => random.uniform(-1, 1));
  for (const part of ['real', 'fake', 'generate', 'generator'] as const) {
    const draws = augment === null || part === 'generate' ? null : drawAugmentation(random, n, imageShape, augment);
    const step = exportGanStep(part, generator, discriminator, spec, { penaltyWeight });
    const session = await onnxGraphSession(() => step.bytes, 'onnxruntime');
    assert.ok(session !== undefined);
    const scoresImages = part === 'real' || part === 'fake';
    const [trainedModel, fixedModel] = part === 'generator' ? [generator, discriminator] : part === 'generate' ? [null, generator] : [discriminator, generator];
    const images: Record<string, GraphFeed> = part === 'real' ? { [GAN_REAL_IMAGES]: { data: real, dims: imageDims } } : { [GAN_FAKE_IMAGES]: { data: fake, dims: imageDims } };
    const feeds = {
      [GAN_LABELS]: { data: oneHot, dims: [n, numClasses] },
      ...(scoresImages ? images : { [GAN_LATENTS]: { data: latents, dims: [n, config.latentSize] } }),
      ...(draws === null ? {} : augmentFeeds(draws)),
      ...Object.fromEntries((trainedModel === null ? [] : weightsOf(trainedModel)).map((feed, i) => [stepWeight(i), feed])),
      ...(scoresImages ? {} : Object.fromEntries(weightsOf(fixedModel).map((feed, i) => [fixedWeight(i), feed]))),
    };
    const actual = await session.run(feeds, step.outputs);

    // The same part in tfjs; batch statistics are recomputed from each BatchNormalization layer's input.
    const expectedValues: Record<string, tf.Tensor> = {};
    const variables = (trainedModel ?? discriminator).trainableWeights.map((weight) => weight.read() as tf.Variable);
    const expected = tf.variableGrads(() => {
      const labelTensor = tf.tensor2d(oneHot, [n, numClasses]);
      // The scores, and with a class head the weighted cross-entropy of its logits.
      const score = (images: tf.Tensor) => {
        const output = discriminator.apply([images, labelTensor], { training: true }) as tf.Tensor | tf.Tensor[];
        if (!Array.isArray(output)) return { scores: output, classLoss: tf.scalar(0) };
        return { scores: output[0], classLoss: tf.mul(tf.losses.softmaxCrossEntropy(labelTensor, output[1]), config.classifierWeight) };
      };
      const augmentImages = (images: tf.Tensor4D) => (draws === null ? images : applyAugmentation(images, draws));
      if (part === 'real') {
        const augmented = augmentImages(tf.tensor4d(real, imageDims));
        const { scores, classLoss } = score(augmented);
        expectedValues[GAN_REAL_SCORE] = tf.keep(tf.mean(scores));
        expectedValues[GAN_AUGMENTED_REAL] = tf.keep(augmented);
        // The real term alone: the fake scores are set where their hinge and softplus terms vanish.
        let loss = tf.add(discriminatorLoss(config, scores, tf.fill(scores.shape, -1e4)), classLoss) as tf.Scalar;
        if (penaltyWeight > 0) {
          const inputGradient = tf.grad((x: tf.Tensor) => tf.sum(score(x).scores))(augmented);
          const penalty = tf.mul(tf.mean(tf.sum(tf.square(inputGradient), [1, 2, 3])), penaltyWeight) as tf.Scalar;
          expectedValues[GAN_PENALTY] = tf.keep(penalty);
          loss = tf.add(loss, penalty) as tf.Scalar;
        }
        return loss;
      }
      if (part === 'fake') {
        const { scores } = score(augmentImages(tf.tensor4d(fake, imageDims)));
        expectedValues[GAN_FAKE_SCORE] = tf.keep(tf.mean(scores));
        // The fake term alone: real scores far above the margin, where the real term vanishes.
        return discriminatorLoss({ ...config, labelSmoothing: 0 }, tf.fill(scores.shape, 1e4), scores);
      }
      const latentTensor = tf.tensor2d(latents, [n, config.latentSize]);
      const fakes = generator.apply([latentTensor, labelTensor], { training: true }) as tf.Tensor4D;
      step.batchNormLayers.forEach((layer, i) => {
        const input = tf.model({ inputs: generator.inputs, outputs: layer.input as tf.SymbolicTensor }).apply([latentTensor, labelTensor], { training: true }) as tf.Tensor;
        const moments = tf.moments(input, input.shape.slice(0, -1).map((_, axis) => axis));
        expectedValues[batchMean(i)] = tf.keep(moments.mean);
        expectedValues[batchVariance(i)] = tf.keep(moments.variance);
      });
      if (part === 'generate') {
        expectedValues[GAN_FAKE_IMAGES] = tf.keep(fakes);
        // No loss: a zero that reaches every discriminator weight keeps variableGrads content.
        return tf.mul(tf.addN(variables.map((variable) => tf.sum(variable))), 0) as tf.Scalar;
      }
      const { scores, classLoss } = score(augmentImages(fakes));
      return tf.add(generatorLoss(config, scores), classLoss) as tf.Scalar;
    }, variables);

    const expectedLoss = expected.value.dataSync()[0];
    if (part !== 'generate') assert.ok(Math.abs(actual[GAN_LOSS][0] + (actual[GAN_PENALTY]?.[0] ?? 0) - expectedLoss) < 1e-4 * Math.max(1, Math.abs(expectedLoss)), `${context(part)}: loss ${actual[GAN_LOSS][0]} against ${expectedLoss}`);
    if (part !== 'generate') variables.forEach((variable, i) => {
      const difference = relativeDifference(actual[stepGradient(i)], expected.grads[variable.name]?.dataSync() ?? new Float32Array(variable.size));
      assert.ok(difference < 1e-4, `${context(part)}: gradient of ${variable.name} differs by ${difference}`);
    });
    for (const [name, tensor] of Object.entries(expectedValues)) {
      assert.ok(relativeDifference(actual[name], tensor.dataSync()) < 1e-4, `${context(part)}: ${name}`);
    }
    tf.dispose([expected.value, ...Object.values(expected.grads), ...Object.values(expectedValues)]);
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

test('compiled GAN steps with an auxiliary classifier', async () => {
  await assertStepsMatch({ classifierWeight: 0.5 }, 1);
  await assertStepsMatch({ classifierWeight: 2, loss: 'non-saturating' }, 3, 0.08);
});

test('compiled R1 penalty in the real part', async () => {
  await assertStepsMatch({}, 1, 0.08);
  await assertStepsMatch({ minibatchStd: false, loss: 'non-saturating' }, 3, 0.08);
});
