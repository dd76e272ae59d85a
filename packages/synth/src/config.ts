import { INFERENCE_RUNTIMES, type InferenceRuntime } from '@scarce/train';

/**
 * Loss the GAN is trained with. `hinge`: D minimises relu(1 - D(real)) + relu(1 + D(fake)) and G
 * minimises -D(fake). `non-saturating`: the logistic (binary cross-entropy) loss of the original
 * GAN, where G minimises softplus(-D(fake)).
 */
export type GanLoss = 'hinge' | 'non-saturating';

/** Quality score that picks the checkpoint to sample from. */
export type CheckpointScore = 'frechetDistance' | 'validationTstrAuc' | 'last';

/** Every loss `resolveSynthConfig` accepts. */
export const GAN_LOSSES: readonly GanLoss[] = ['hinge', 'non-saturating'];

/** Every checkpoint score `resolveSynthConfig` accepts. */
export const CHECKPOINT_SCORES: readonly CheckpointScore[] = ['frechetDistance', 'validationTstrAuc', 'last'];

/** Settings of the class-conditional GAN: model size, optimiser, augmentation and run length. */
export interface SynthConfig {
  /** Length of the generator's latent vector z, drawn from N(0, 1); default 100. */
  latentSize: number;
  /** Length of the learned label embedding concatenated to z; default 32. */
  labelEmbeddingSize: number;
  /**
   * Generator channels after the dense projection and after each transposed convolution but the
   * last; default [32, 16]. n widths make n stride-2 upsamplings, so the projection is
   * (height/2^n) x (width/2^n) x widths[0] and image sides must be divisible by 2^n. For 64 px
   * images, [64, 32, 16] keeps the projection at 8x8.
   */
  generatorWidths: number[];
  /** Discriminator channels of its stride-2 convolutions, one per entry; default [16, 32]. */
  discriminatorWidths: number[];
  /** Give the discriminator the minibatch standard deviation of groups of 4 images; default true. */
  minibatchStd: boolean;
  /** Real images per step, each paired with one fake in the discriminator batch; default 32. */
  batchSize: number;
  /** Adam learning rate of the generator; default 4e-4. */
  generatorLearningRate: number;
  /**
   * Adam learning rate of the discriminator; default 1.6e-3, four times the generator's (a
   * two time-scale update rule). With equal rates the discriminator
   * fell behind and the generator drew nearly one image per class.
   */
  discriminatorLearningRate: number;
  /** Adam beta1; default 0.5, as DCGAN uses. */
  adamBeta1: number;
  /** Adam beta2; default 0.999. */
  adamBeta2: number;
  /**
   * Decay of the exponential moving average of the generator weights used for sampling;
   * default 0.999, and 0 turns the average off (sampling then uses the trained weights). Early steps use min(decay, (1 + step) / (10 + step)), as TensorFlow's
   * ExponentialMovingAverage does with num_updates, so a short run is not dominated by the
   * initial weights.
   */
  emaDecay: number;
  /**
   * Flip each real image left-right with probability 0.5 each time a batch takes it; default
   * false. For images whose mirror keeps their label, this doubles the train set that the
   * discriminator is shown, as StyleGAN2-ADA's x-flip option does, and the generator learns to draw
   * both orientations. Leave it off where a mirror changes the class, as for digits or text.
   */
  mirror: boolean;
  /** Apply DiffAugment to real and fake images alike before the discriminator; default true. */
  diffAugment: boolean;
  /** DiffAugment colour: random brightness, saturation (colour images only) and contrast; default true. */
  augmentColour: boolean;
  /** DiffAugment translation, as a fraction of the image size, zero-padded; default 0.125. 0 turns it off. */
  translationFraction: number;
  /** DiffAugment cutout square side, as a fraction of the image size; default 0.5. 0 turns it off. */
  cutoutFraction: number;
  /** Loss; default 'hinge'. */
  loss: GanLoss;
  /**
   * One-sided label smoothing of the discriminator's real targets, in [0, 0.5); default 0 (off).
   * Fake targets stay at 0 (or -1). With the non-saturating loss, real images get the target
   * 1 - s in the cross-entropy, as Salimans et al. (2016) propose. The hinge loss has no
   * targets, so there s lowers the margin for real images instead: the real term becomes
   * relu(1 - s - D(real)), and D stops pushing a real score up once it passes 1 - s.
   */
  labelSmoothing: number;
  /**
   * Weight of an auxiliary classification loss (as in AC-GAN, Odena et al. 2017); default 0
   * (off). The discriminator gains a class head on its features, trained with the cross-entropy
   * of the real images' labels, and the generator is trained to make the head predict each
   * fake's conditioned label. It pushes the class differences into the samples further than the
   * projection term does.
   */
  classifierWeight: number;
  /**
   * Weight gamma of the R1 gradient penalty (gamma / 2) * E[|grad_x D(x)|^2] on augmented real
   * images (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?");
   * default 0.01, and 0 turns it off. It runs every `r1Interval` discriminator steps with its
   * weight multiplied by the interval, the lazy regularisation of StyleGAN2. It replaces
   * spectral normalisation, which collapsed a PyTorch version of this model to about one image
   * per class on BreastMNIST, while R1 only penalises the discriminator's slope at real images.
   * NOTE: 0.01 has not been tuned on this model.
   */
  r1Gamma: number;
  /** Discriminator steps between two R1 penalties; default 16. */
  r1Interval: number;
  /** Passes over the train records; default 2000. Training stops at the epochs or the time budget, whichever comes first. */
  epochs: number;
  /**
   * Wall-clock budget for training in seconds, or null for none; default 240. The budget is
   * checked after every step. A run stopped by it depends on the machine's speed, so set it to
   * null for a run that repeats exactly.
   */
  timeBudgetSeconds: number | null;
  /** Seed of weight initialisation, batch order, latents and augmentation; default 42. */
  seed: number;
  /**
   * Write a checkpoint every this many epochs, and after the last epoch; default 10. 0 writes
   * none. Checkpoints need an output folder, so `trainConditionalGan` writes them only when its
   * hooks name one.
   */
  checkpointEvery: number;
  /**
   * Score that chooses the checkpoint to sample from; default 'frechetDistance' (lowest wins).
   * 'validationTstrAuc' takes the highest AUC on the real validation split of a classifier
   * trained on synthetic images only, and 'last' the final checkpoint.
   */
  selectCheckpointBy: CheckpointScore;
  /**
   * Runtime of the training steps; default 'auto'. 'onnxruntime' compiles the discriminator and
   * generator steps, R1 penalty included, for onnxruntime-node and keeps weights and Adam in
   * JavaScript arrays. 'auto' does so when tfjs runs on wasm or cpu and onnxruntime-node loads,
   * and 'tfjs' trains on the tfjs backend. The runtimes differ in the last float bits, so a run
   * repeats exactly only on the same runtime.
   */
  runtime: InferenceRuntime;
}

/** The defaults of every `SynthConfig` field. */
export const DEFAULT_SYNTH_CONFIG: Readonly<SynthConfig> = Object.freeze({
  latentSize: 100,
  labelEmbeddingSize: 32,
  generatorWidths: [32, 16],
  discriminatorWidths: [16, 32],
  minibatchStd: true,
  batchSize: 32,
  generatorLearningRate: 4e-4,
  discriminatorLearningRate: 1.6e-3,
  adamBeta1: 0.5,
  adamBeta2: 0.999,
  emaDecay: 0.999,
  mirror: false,
  diffAugment: true,
  augmentColour: true,
  translationFraction: 0.125,
  cutoutFraction: 0.5,
  loss: 'hinge' as GanLoss,
  labelSmoothing: 0,
  classifierWeight: 0,
  r1Gamma: 0.01,
  r1Interval: 16,
  epochs: 2000,
  timeBudgetSeconds: 240,
  seed: 42,
  checkpointEvery: 10,
  selectCheckpointBy: 'frechetDistance' as CheckpointScore,
  runtime: 'auto' as InferenceRuntime,
});

function checkInteger(name: string, value: unknown, minimum: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new Error(`Invalid synth config '${name}': expected an integer >= ${minimum} but received ${JSON.stringify(value)}.`);
  }
}

function checkRange(name: string, value: unknown, low: number, high: number, highInclusive: boolean): void {
  const inRange = typeof value === 'number' && value >= low && (highInclusive ? value <= high : value < high);
  if (!inRange) {
    const interval = `[${low}, ${high}${highInclusive ? ']' : ')'}`;
    throw new Error(`Invalid synth config '${name}': expected a number in ${interval} but received ${JSON.stringify(value)}.`);
  }
}

/** Most stride-2 stages a generator or discriminator may have (64 px images need at most 4). */
const MAX_STAGES = 5;

function checkWidths(name: string, value: unknown): void {
  const valid = Array.isArray(value) && value.length >= 1 && value.length <= MAX_STAGES && value.every((width) => Number.isInteger(width) && width >= 1);
  if (!valid) {
    throw new Error(
      `Invalid synth config '${name}': expected 1 to ${MAX_STAGES} positive integers such as [64, 32] but received ${JSON.stringify(value)}.`,
    );
  }
}

function checkChoice<T extends string>(name: string, value: unknown, choices: readonly T[]): void {
  if (!choices.includes(value as T)) {
    throw new Error(`Invalid synth config '${name}': expected one of ${choices.map((choice) => `'${choice}'`).join(', ')} but received ${JSON.stringify(value)}.`);
  }
}

/**
 * Fills the missing fields of a partial config with the defaults and checks every field.
 * Throws an error naming the field, the expected value and the value found.
 */
export function resolveSynthConfig(options: Partial<SynthConfig> = {}): SynthConfig {
  const unknownFields = Object.keys(options).filter((key) => !(key in DEFAULT_SYNTH_CONFIG));
  if (unknownFields.length > 0) {
    throw new Error(
      `Unknown synth config field(s) ${unknownFields.map((key) => `'${key}'`).join(', ')}; ` +
        `expected some of ${Object.keys(DEFAULT_SYNTH_CONFIG).join(', ')}.`,
    );
  }
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const config: SynthConfig = {
    ...DEFAULT_SYNTH_CONFIG,
    generatorWidths: [...DEFAULT_SYNTH_CONFIG.generatorWidths],
    discriminatorWidths: [...DEFAULT_SYNTH_CONFIG.discriminatorWidths],
    ...defined,
  };

  checkInteger('latentSize', config.latentSize, 1);
  checkInteger('labelEmbeddingSize', config.labelEmbeddingSize, 1);
  checkWidths('generatorWidths', config.generatorWidths);
  checkWidths('discriminatorWidths', config.discriminatorWidths);
  checkInteger('batchSize', config.batchSize, 1);
  checkRange('generatorLearningRate', config.generatorLearningRate, Number.MIN_VALUE, 1, true);
  checkRange('discriminatorLearningRate', config.discriminatorLearningRate, Number.MIN_VALUE, 1, true);
  checkRange('adamBeta1', config.adamBeta1, 0, 1, false);
  checkRange('adamBeta2', config.adamBeta2, 0, 1, false);
  checkRange('emaDecay', config.emaDecay, 0, 1, false);
  for (const name of ['minibatchStd', 'mirror', 'diffAugment', 'augmentColour'] as const) {
    if (typeof config[name] !== 'boolean') {
      throw new Error(`Invalid synth config '${name}': expected true or false but received ${JSON.stringify(config[name])}.`);
    }
  }
  checkRange('translationFraction', config.translationFraction, 0, 0.5, true);
  checkRange('cutoutFraction', config.cutoutFraction, 0, 1, true);
  checkChoice('loss', config.loss, GAN_LOSSES);
  checkRange('labelSmoothing', config.labelSmoothing, 0, 0.5, false);
  checkRange('classifierWeight', config.classifierWeight, 0, Infinity, false);
  checkRange('r1Gamma', config.r1Gamma, 0, Infinity, false);
  checkInteger('r1Interval', config.r1Interval, 1);
  checkInteger('epochs', config.epochs, 1);
  if (config.timeBudgetSeconds !== null) checkRange('timeBudgetSeconds', config.timeBudgetSeconds, Number.MIN_VALUE, Infinity, false);
  checkInteger('seed', config.seed, 0);
  checkInteger('checkpointEvery', config.checkpointEvery, 0);
  checkChoice('selectCheckpointBy', config.selectCheckpointBy, CHECKPOINT_SCORES);
  checkChoice('runtime', config.runtime, INFERENCE_RUNTIMES);
  return config;
}
