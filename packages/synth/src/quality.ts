import { fileURLToPath } from 'node:url';
import { countByClass, deriveSeed, Random, type ImageRecord } from '@scarce/core';
import { evaluateProbabilities, extractFeatures, loadBackbone, trainHead, type Backbone, type ClassifierHead } from '@scarce/train';
import {
  classDiversity,
  COLLAPSE_THRESHOLD,
  featureMatrix,
  frechetDistance,
  memorisation,
  NEAR_COPY_PERCENTILE,
  precisionRecall,
  kthNeighbourDistances,
  squaredDistances,
  type ClassDiversity,
  type FeatureMatrix,
} from './feature-metrics.js';
import { sampleSynthetic, type SamplingGenerator } from './sample.js';

/** Options of `prepareQuality`. Every field has a default. */
export interface QualityOptions {
  /** Backbone whose pooled features the metrics compare, or the path to load it from; default the shipped MobileNetV2. */
  backbone?: Backbone | string;
  /** Backbone input side in pixels when `backbone` is a path; default 64. */
  inputSize?: number;
  /**
   * Most real train images in the reference set, drawn per class in proportion; default 1000.
   * The synthetic set of each checkpoint has the same class counts. The Fréchet distance is
   * biased by the number of images, so compare values only at equal counts.
   */
  maxReferenceImages?: number;
  /** Neighbour rank k of the precision and recall manifolds; default 3, as Kynkäänniemi et al. use. */
  k?: number;
  /** Share of real diversity below which a class is warned about as collapsed; default 0.5. */
  collapseThreshold?: number;
  /** Percentile of real-to-real nearest distances that defines a near copy; default 5. */
  nearCopyPercentile?: number;
  /** Maximum epochs of the classifier heads (class consistency and TSTR); default 60. */
  headEpochs?: number;
  /** Hidden units of those heads; default 64. */
  headUnits?: number;
  /** Seed of the reference draw, the sampling latents and the heads; default 0. */
  seed?: number;
}

/** Defaults of `QualityOptions`. */
export const QUALITY_DEFAULTS = {
  backbone: fileURLToPath(new URL('../../../fixtures/mobilenet_v2_0.35_224_notop', import.meta.url)),
  inputSize: 64,
  maxReferenceImages: 1000,
  k: 3,
  collapseThreshold: COLLAPSE_THRESHOLD,
  nearCopyPercentile: NEAR_COPY_PERCENTILE,
  headEpochs: 60,
  headUnits: 64,
  seed: 0,
} as const;

/**
 * Pixels whose standard deviation over the reference images, on [0, 1], is below this are left
 * out of the pixel classifier. `trainHead` scales every column to unit variance, so a pixel that
 * real images almost never change would turn faint noise in a synthetic image into a value of
 * dozens of standard deviations.
 */
export const PIXEL_MIN_STD = 0.1;

/**
 * Largest number of train images the pixel head trains on, drawn stratified when there are more.
 * Fewer are drawn when their pixel values would exceed `MAX_PIXEL_HEAD_VALUES` (64 million floats, 256 MB).
 */
const MAX_PIXEL_HEAD_IMAGES = 10_000;
const MAX_PIXEL_HEAD_VALUES = 64_000_000;

/** The class consistency classifier: a head on the backbone's features or on the images' pixels. */
export interface ConsistencyClassifier {
  head: ClassifierHead;
  input: 'features' | 'pixels';
  /** Pixel indexes the head reads when `input` is `pixels`. */
  columns: number[];
  /** Accuracy on the real validation images, which chose between the two inputs. */
  validationAccuracy: number;
}

/** Real images and everything computed from them once per run. */
export interface QualityContext {
  backbone: Backbone;
  /** Whether the context loaded the backbone itself, so `disposeQuality` frees it. */
  ownsBackbone: boolean;
  classNames: string[];
  settings: Required<Omit<QualityOptions, 'backbone'>>;
  /** The real train images of the reference set. */
  reference: ImageRecord[];
  referenceFeatures: FeatureMatrix;
  referenceLabels: number[];
  /** Each reference image's feature distance to its k-th and to its nearest other reference image. */
  referenceRadii: Float64Array;
  referenceNearest: Float64Array;
  validation: { features: Float32Array; labels: number[] };
  test: { features: Float32Array; labels: number[] } | null;
  /** Classifier trained on real train images, which labels synthetic images for class consistency. */
  consistencyClassifier: ConsistencyClassifier;
  /** Synthetic images per class in every evaluation: the reference set's class counts. */
  samplesPerClass: number[];
}

/** Accuracy and ROC AUC of a classifier on one real split. */
export interface SplitScores {
  accuracy: number;
  auc: number;
}

/** Quality of one checkpoint's samples, as written to quality.jsonl. */
export interface QualityRecord {
  epoch: number;
  /** Backbone and feature size of the feature-space metrics. */
  features: { backbone: string; inputSize: number; size: number };
  referenceImages: number;
  samplesPerClass: number[];
  /** Fréchet distance on the backbone's pooled features, real train reference against synthetic; lower is closer. */
  frechetDistance: number;
  precision: number;
  recall: number;
  k: number;
  diversity: ClassDiversity[];
  /** One sentence per class whose synthetic diversity is below the collapse threshold. */
  collapseWarnings: string[];
  memorisation: { threshold: number; percentile: number; nearCopyShare: number; medianDistanceRatio: number };
  /**
   * Accuracy of a classifier trained on real train images at recognising each conditioned class
   * in the samples, with the input that classifier reads and its accuracy on real validation images.
   */
  classConsistency: {
    accuracy: number;
    perClass: Array<{ className: string; accuracy: number }>;
    classifier: { input: ConsistencyClassifier['input']; validationAccuracy: number };
  };
  /** Train on synthetic, test on real: a head trained on the samples alone, scored on real splits. */
  tstr: { validation: SplitScores; test?: SplitScores };
  seconds: number;
}

/** A quality record with the samples it measured and each sample's nearest real image, for pictures. */
export interface QualityEvaluation {
  record: QualityRecord;
  samples: ImageRecord[];
  /** The reference images, as `nearestReal` indexes them. */
  reference: ImageRecord[];
  nearestReal: number[];
}

/** Draws up to `maximum` records, each class in proportion to its count and at least 2 per class. */
function stratifiedDraw(records: readonly ImageRecord[], numClasses: number, maximum: number, seed: number): ImageRecord[] {
  if (records.length <= maximum) return [...records];
  const random = new Random(deriveSeed(seed, 'quality reference'));
  return Array.from({ length: numClasses }, (_, label) => {
    const members = records.filter((record) => record.label === label);
    const take = Math.max(2, Math.round((members.length / records.length) * maximum));
    return random.shuffle([...members]).slice(0, take);
  }).flat();
}

function featuresOf(backbone: Backbone, records: readonly ImageRecord[]): Float32Array {
  return extractFeatures(backbone, records, { quiet: true });
}

/** Returns the indexes of the pixels whose standard deviation over `records`, on [0, 1], reaches `PIXEL_MIN_STD`. */
export function variedPixels(records: readonly ImageRecord[]): number[] {
  const size = records[0].pixels.length;
  const sum = new Float64Array(size);
  const sumOfSquares = new Float64Array(size);
  for (const record of records) {
    for (let i = 0; i < size; i++) {
      const value = record.pixels[i] / 255;
      sum[i] += value;
      sumOfSquares[i] += value * value;
    }
  }
  const columns: number[] = [];
  for (let i = 0; i < size; i++) {
    const mean = sum[i] / records.length;
    if (Math.sqrt(Math.max(0, sumOfSquares[i] / records.length - mean * mean)) >= PIXEL_MIN_STD) columns.push(i);
  }
  return columns;
}

/** Returns the pixel values at `columns`, scaled to [0, 1], one row per record, with the labels. */
export function pixelFeatures(records: readonly ImageRecord[], columns: readonly number[]): { features: Float32Array; labels: number[] } {
  const features = new Float32Array(records.length * columns.length);
  records.forEach((record, row) => columns.forEach((column, i) => (features[row * columns.length + i] = record.pixels[column] / 255)));
  return { features, labels: records.map((record) => record.label) };
}

function accuracyOf(head: ClassifierHead, split: { features: Float32Array; labels: number[] }, numClasses: number): number {
  return evaluateProbabilities(head.predict(split.features), split.labels, numClasses).accuracy;
}

/**
 * Trains the class consistency classifier twice and keeps the one more accurate on the real
 * validation images, features on a tie. One reads the backbone's features of the reference
 * images. The other reads the pixels of up to 10,000 train images, which need no backbone pass,
 * and is tried only when every image has one shape. On MNIST digits the pixels scored 0.957 and the
 * ImageNet features 0.861; on BreastMNIST the features won.
 */
async function trainConsistencyClassifier(
  reference: readonly ImageRecord[],
  referenceFeatures: Float32Array,
  trainImages: readonly ImageRecord[],
  validationImages: readonly ImageRecord[],
  validationFeatures: { features: Float32Array; labels: number[] },
  numClasses: number,
  settings: QualityContext['settings'],
): Promise<ConsistencyClassifier> {
  const headOptions = { units: settings.headUnits, epochs: settings.headEpochs, seed: settings.seed };
  const labels = reference.map((record) => record.label);
  const featureHead = (await trainHead({ features: referenceFeatures, labels }, validationFeatures, numClasses, headOptions)).head;
  const byFeatures: ConsistencyClassifier = { head: featureHead, input: 'features', columns: [], validationAccuracy: accuracyOf(featureHead, validationFeatures, numClasses) };

  const size = trainImages[0].pixels.length;
  const oneShape = (records: readonly ImageRecord[]) => records.every((record) => record.pixels.length === size);
  if (!oneShape(trainImages) || !oneShape(validationImages)) return byFeatures;
  const columns = variedPixels(trainImages);
  if (columns.length === 0) return byFeatures;
  const validationPixels = pixelFeatures(validationImages, columns);
  const maxImages = Math.min(MAX_PIXEL_HEAD_IMAGES, Math.floor(MAX_PIXEL_HEAD_VALUES / columns.length));
  const pixelTrain = stratifiedDraw(trainImages, numClasses, maxImages, settings.seed);
  const pixelHead = (await trainHead(pixelFeatures(pixelTrain, columns), validationPixels, numClasses, headOptions)).head;
  const pixelAccuracy = accuracyOf(pixelHead, validationPixels, numClasses);
  if (pixelAccuracy <= byFeatures.validationAccuracy) {
    pixelHead.dispose();
    return byFeatures;
  }
  featureHead.dispose();
  return { head: pixelHead, input: 'pixels', columns, validationAccuracy: pixelAccuracy };
}

/**
 * Prepares the quality metrics of a run. Loads the backbone when given a path, and extracts the
 * features of a stratified reference draw of the real train images and of the validation and
 * test images. Trains the real-data classifier that measures class consistency, stopped early on
 * the validation split (see `trainConsistencyClassifier`). Only `evaluateQuality` with `includeTest` reads the test features.
 */
export async function prepareQuality(
  splits: { train: readonly ImageRecord[]; validation: readonly ImageRecord[]; test?: readonly ImageRecord[] },
  classNames: readonly string[],
  options: QualityOptions = {},
): Promise<QualityContext> {
  const { backbone: backboneOption, ...rest } = options;
  const settings = { ...QUALITY_DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined)) } as QualityContext['settings'];
  if (splits.validation.length === 0) throw new Error('The quality metrics need validation images for the classifier heads; the validation split is empty.');
  const source = backboneOption ?? QUALITY_DEFAULTS.backbone;
  const backbone = typeof source === 'string' ? await loadBackbone(source, { inputSize: settings.inputSize }) : source;

  const reference = stratifiedDraw(splits.train, classNames.length, settings.maxReferenceImages, settings.seed);
  const referenceLabels = reference.map((record) => record.label);
  const referenceFeatures = featureMatrix(featuresOf(backbone, reference), backbone.featureSize);
  const referenceSquared = squaredDistances(referenceFeatures, referenceFeatures);
  const validation = { features: featuresOf(backbone, splits.validation), labels: splits.validation.map((record) => record.label) };
  const test =
    splits.test === undefined || splits.test.length === 0
      ? null
      : { features: featuresOf(backbone, splits.test), labels: splits.test.map((record) => record.label) };
  const consistencyClassifier = await trainConsistencyClassifier(
    reference,
    referenceFeatures.values as Float32Array,
    splits.train,
    splits.validation,
    validation,
    classNames.length,
    settings,
  );

  return {
    backbone,
    ownsBackbone: typeof source === 'string',
    classNames: [...classNames],
    settings,
    reference,
    referenceFeatures,
    referenceLabels,
    referenceRadii: kthNeighbourDistances(referenceSquared, reference.length, settings.k),
    referenceNearest: kthNeighbourDistances(referenceSquared, reference.length, 1),
    validation,
    test,
    consistencyClassifier,
    samplesPerClass: countByClass(reference, classNames.length),
  };
}

/** Frees the classifier and, when the context loaded it, the backbone. */
export function disposeQuality(context: QualityContext): void {
  context.consistencyClassifier.head.dispose();
  if (context.ownsBackbone) context.backbone.model.dispose();
}

/**
 * Samples a generator and measures the samples against the real images. Every call draws the
 * same latents, so checkpoints are compared on equal draws. The metrics are the Fréchet distance
 * on the backbone's features, precision and recall, per-class diversity, memorisation, class
 * consistency, and train-on-synthetic test-on-real scores on the validation split (and on the
 * test split when `includeTest` is set).
 */
export async function evaluateQuality(context: QualityContext, generator: SamplingGenerator, epoch: number, includeTest = false): Promise<QualityEvaluation> {
  const startedAt = performance.now();
  const { settings, classNames } = context;
  const numClasses = classNames.length;
  const perClass = Math.max(...context.samplesPerClass);
  const samplingSeed = deriveSeed(settings.seed, 'quality samples');
  // Sample the largest class count for every class, then keep each class's own count, so a class's latents do not depend on the others' counts.
  const samples = sampleSynthetic(generator, { perClass, seed: samplingSeed }).filter(
    (record) => (record.params?.latentIndex as number) < context.samplesPerClass[record.label],
  );
  const sampleLabels = samples.map((record) => record.label);
  const sampleFeatures = featureMatrix(featuresOf(context.backbone, samples), context.backbone.featureSize);

  const frechet = frechetDistance(context.referenceFeatures, sampleFeatures);
  const { precision, recall, k } = precisionRecall(context.referenceFeatures, sampleFeatures, settings.k, context.referenceRadii);
  const diversity = classDiversity(context.referenceFeatures, context.referenceLabels, sampleFeatures, sampleLabels, classNames, settings.collapseThreshold);
  const nearest = memorisation(context.referenceFeatures, sampleFeatures, settings.nearCopyPercentile, context.referenceNearest);

  const classifier = context.consistencyClassifier;
  if (classifier.input === 'pixels' && samples[0].pixels.length !== context.reference[0].pixels.length) {
    throw new Error(
      `The samples have ${samples[0].pixels.length} pixel values but the real images have ${context.reference[0].pixels.length}. ` +
        'The pixel classifier needs samples of the real images\' shape.',
    );
  }
  const predicted = classifier.head.predict(
    classifier.input === 'features' ? (sampleFeatures.values as Float32Array) : pixelFeatures(samples, classifier.columns).features,
  );
  const consistency = evaluateProbabilities(predicted, sampleLabels, numClasses);
  const perClassConsistency = classNames.map((className, label) => {
    const row = consistency.confusion[label];
    const total = row.reduce((sum, count) => sum + count, 0);
    return { className, accuracy: total === 0 ? NaN : row[label] / total };
  });

  // The TSTR head trains on synthetic images only and monitors its own training loss, so the validation split is measured, never fitted to.
  const tstrHead = (await trainHead({ features: sampleFeatures.values as Float32Array, labels: sampleLabels }, context.validation, numClasses, {
    units: settings.headUnits,
    epochs: settings.headEpochs,
    seed: settings.seed,
    earlyStopping: { monitor: 'loss', patience: 5, restoreBestWeights: false },
  })).head;
  const score = (split: { features: Float32Array; labels: number[] }): SplitScores => {
    const report = evaluateProbabilities(tstrHead.predict(split.features), split.labels, numClasses);
    return { accuracy: report.accuracy, auc: report.auc };
  };
  const tstr: QualityRecord['tstr'] = { validation: score(context.validation) };
  if (includeTest && context.test !== null) tstr.test = score(context.test);
  tstrHead.dispose();

  const record: QualityRecord = {
    epoch,
    features: { backbone: context.backbone.source, inputSize: context.backbone.inputSize, size: context.backbone.featureSize },
    referenceImages: context.reference.length,
    samplesPerClass: context.samplesPerClass,
    frechetDistance: frechet,
    precision,
    recall,
    k,
    diversity: diversity.classes,
    collapseWarnings: diversity.warnings,
    memorisation: {
      threshold: nearest.threshold,
      percentile: nearest.percentile,
      nearCopyShare: nearest.nearCopyShare,
      medianDistanceRatio: nearest.medianDistanceRatio,
    },
    classConsistency: {
      accuracy: consistency.accuracy,
      perClass: perClassConsistency,
      classifier: { input: classifier.input, validationAccuracy: classifier.validationAccuracy },
    },
    tstr,
    seconds: (performance.now() - startedAt) / 1000,
  };
  return { record, samples, reference: context.reference, nearestReal: nearest.nearestReal };
}

/** Formats a quality record as one line for the person running the job. */
export function formatQuality(record: QualityRecord): string {
  const parts = [
    `quality at epoch ${record.epoch}: Fréchet distance ${record.frechetDistance.toFixed(2)}`,
    `precision ${record.precision.toFixed(3)}`,
    `recall ${record.recall.toFixed(3)}`,
    `class consistency ${record.classConsistency.accuracy.toFixed(3)}`,
    `TSTR val AUC ${record.tstr.validation.auc.toFixed(3)}`,
    `near copies ${(record.memorisation.nearCopyShare * 100).toFixed(1)}%`,
  ];
  if (record.tstr.test !== undefined) parts.push(`TSTR test AUC ${record.tstr.test.auc.toFixed(3)}`);
  return `${parts.join(', ')} (${record.seconds.toFixed(1)}s)`;
}
