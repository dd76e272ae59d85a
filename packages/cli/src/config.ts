import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKEND_CHOICES, DATASET_FORMATS, ORIGINS } from '@scarce/core';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { recipeOfName, type MixRecipe } from '@scarce/train';
import { describeIssues } from './config-issues.js';
import { InputError } from './errors.js';

export { describeIssues } from './config-issues.js';

/** Values that every head and fine-tuning epoch logs, so early stopping and the learning-rate schedule can watch them. */
const monitorSchema = z.enum(['loss', 'val_loss', 'val_accuracy', 'val_auc']).default('val_loss');

const earlyStoppingSchema = z
  .object({
    monitor: monitorSchema,
    mode: z.enum(['auto', 'min', 'max']).default('auto'),
    minDelta: z.number().nonnegative().default(0),
    patience: z.number().int().nonnegative().default(15),
    baseline: z.number().optional(),
    restoreBestWeights: z.boolean().default(true),
    startFromEpoch: z.number().int().nonnegative().default(0),
  })
  .strict();

/**
 * The MobileNetV2-0.35 backbone that ships in the repository's fixtures/, as an absolute path so
 * the default works wherever a config file lives.
 */
export const SHIPPED_BACKBONE = fileURLToPath(new URL('../../../fixtures/mobilenet_v2_0.35_224_notop', import.meta.url));

/** A run name: one folder name, never `.` or `..`. */
export const runNameSchema = z
  .string()
  .regex(/^[\w][\w.-]*$/, 'use letters, digits, dot, dash or underscore, starting with a letter, digit or underscore');

/**
 * The run config: where the data is, and the settings of each stage. Every field but
 * `data.path` has a default; paths are relative to the config file.
 */
export const runConfigSchema = z
  .object({
    /** Run name; outputs go to `<output>/<name>/`. */
    name: runNameSchema.default('run'),
    /** Folder that contains runs. */
    output: z.string().default('runs'),
    /** Seed of every random choice of the run (splits, augmentation, GAN); heads use `train.seeds`. */
    seed: z.number().int().nonnegative().default(0),
    backend: z.enum(['auto', ...BACKEND_CHOICES]).default('auto'),
    /**
     * The method that chose each setting, keyed by its config path (`train.inputSize`). The report prints
     * it beside the value, so readers can tell settings chosen on train and validation data from guesses.
     */
    settingsChosenBy: z.record(z.string(), z.string()).default({}),
    data: z
      .object({
        path: z.string(),
        format: z.enum(DATASET_FORMATS).default('auto'),
        classNames: z.array(z.string()).min(2).optional(),
        /** Shares of the train split held out as val and test, for data without its own splits. */
        split: z.object({ val: z.number().min(0).max(0.5), test: z.number().min(0).max(0.5) }).strict().optional(),
        size: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
      })
      .strict(),
    augment: z
      .object({
        enabled: z.boolean().default(true),
        viewsPerImage: z.number().int().positive().default(4),
        transforms: z.record(z.string(), z.unknown()).default({}),
      })
      .strict()
      .prefault({}),
    synth: z
      .object({
        enabled: z.boolean().default(true),
        perClass: z.number().int().positive().default(500),
        /**
         * Leaves out synthetic train rows whose own class gets a probability below this from a
         * head trained on the real train images (the run's head settings). 0 keeps every row.
         */
        minConfidence: z.number().min(0).lt(1).default(0),
        gan: z.record(z.string(), z.unknown()).default({}),
      })
      .strict()
      .prefault({}),
    train: z
      .object({
        backbone: z.string().default(SHIPPED_BACKBONE),
        /**
         * Side of the backbone's input in pixels. A list such as [96, 128, 160] trains one head per
         * size, each on the features of the images resized to it, and averages their probabilities.
         */
        inputSize: z
          .union([z.number().int().min(32), z.array(z.number().int().min(32)).min(1, { error: 'expected at least one input size' })], { error: 'expected a side in pixels of 32 or more, or a list of them' })
          .default(128),
        /**
         * Input format of the backbone: the side it was trained at and its pixel scaling. Default the spec its
         * model.json declares under userDefinedMetadata.scarceBackbone, else MobileNetV2's (224, '[-1, 1]').
         */
        backboneSpec: z
          .object({ nativeSize: z.number().int().min(32), channelOrder: z.literal('rgb').default('rgb'), scaling: z.enum(['[-1, 1]', '[0, 1]']) })
          .strict()
          .optional(),
        /**
         * Layer whose pooled output is the feature vector, as `scarce backbone inspect` lists them. A list of layers
         * concatenates their pooled outputs in order. Default: the backbone's output.
         */
        featureLayer: z
          .union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'expected a layer name or a list of layer names' })
          .optional(),
        featureBatchSize: z.number().int().positive().default(64),
        /** Runtime of the frozen backbone and of training steps: onnxruntime (`auto` picks it on wasm and cpu when it loads) or tfjs. */
        runtime: z.enum(['auto', 'onnxruntime', 'tfjs']).default('auto'),
        /** Folder of the on-disk feature cache, or false for none; default $SCARCE_CACHE_DIR or ~/.cache/scarce. */
        featureCache: z.union([z.string(), z.literal(false)]).optional(),
        head: z
          .object({
            units: z.number().int().nonnegative().default(256),
            dropout: z.number().min(0).lt(1).default(0.5),
            /** Heads trained side by side from different initialisations; their probabilities are averaged. */
            ensemble: z.number().int().positive().default(1),
            learningRate: z.number().positive().default(1e-3),
            batchSize: z.number().int().positive().default(32),
            epochs: z.number().int().positive().default(200),
            classWeight: z.enum(['none', 'balanced']).default('none'),
            sampling: z.enum(['shuffle', 'balanced']).default('shuffle'),
            /** Alpha of mixup's Beta(alpha, alpha) blend of feature and target pairs; 0 (default) turns it off. */
            mixup: z.number().nonnegative().default(0),
            /** Share of each one-hot target spread evenly over the classes; default 0. */
            labelSmoothing: z.number().min(0).lt(1).default(0),
          })
          .strict()
          .prefault({}),
        earlyStopping: earlyStoppingSchema.prefault({}),
        /**
         * Train every head on its mix plus the real validation images, for exactly `head.epochs` epochs with no
         * early stopping (nothing is held out), once cross-validation has fixed the settings. Validation metrics
         * are then measured on training images. Feature extraction only; default false.
         */
        trainOnValidation: z.boolean().default(false),
        /**
         * Test-time flips: score each val and test image, and each image that a saved classifier predicts, by the
         * mean of the class probabilities for the image and for its left-right mirror. Default false.
         */
        testTimeFlip: z.boolean().default(false),
        /**
         * Training strategy. `feature-extraction` trains only the head on frozen features. `fine-tune` then trains
         * the head with the backbone's last blocks (`fineTune`), and `full` with every block of the backbone.
         */
        strategy: z.enum(['feature-extraction', 'fine-tune', 'full']).default('feature-extraction'),
        fineTune: z
          .object({
            /** Blocks at the end of the backbone that train, as `scarce backbone inspect` lists them. */
            lastBlocks: z.number().int().positive().default(2),
            /** Or the layers whose names start with these prefixes; overrides lastBlocks when not empty. */
            layerPrefixes: z.array(z.string()).default([]),
            learningRate: z.number().positive().default(1e-4),
            epochs: z.number().int().positive().default(30),
            batchSize: z.number().int().positive().default(32),
            earlyStopping: earlyStoppingSchema.extend({ patience: z.number().int().nonnegative().default(5) }).prefault({}),
          })
          .strict()
          .prefault({}),
        /** Keras ReduceLROnPlateau settings, or false for a constant learning rate. */
        reduceLrOnPlateau: z
          .union([
            z.literal(false),
            z
              .object({
                monitor: monitorSchema,
                factor: z.number().gt(0).lt(1).default(0.1),
                patience: z.number().int().nonnegative().default(10),
                mode: z.enum(['auto', 'min', 'max']).default('auto'),
                minDelta: z.number().nonnegative().default(1e-4),
                cooldown: z.number().int().nonnegative().default(0),
                minLearningRate: z.number().nonnegative().default(0),
              })
              .strict(),
          ])
          .default(false),
        /**
         * Mixes to compare: a name joining origins with '+' (every row of each), or a recipe naming its sources
         * (an origin or a shard folder) with a count of rows or a ratio to the real train rows.
         */
        mixes: z
          .array(
            z
              .union([
                z.string(),
                z
                  .object({
                    name: z.string().min(1),
                    sources: z
                      .array(
                        z
                          .object({ from: z.string().min(1), count: z.number().int().nonnegative().optional(), ratio: z.number().positive().optional() })
                          .strict()
                          .refine((source) => source.count === undefined || source.ratio === undefined, { message: 'give count or ratio, not both' }),
                      )
                      .min(1),
                  })
                  .strict(),
              ])
              .transform((mix, context): MixRecipe => {
                if (typeof mix !== 'string') return mix;
                try {
                  return recipeOfName(mix);
                } catch (error) {
                  context.issues.push({ code: 'custom', message: (error as Error).message, input: mix });
                  return z.NEVER;
                }
              }),
          )
          .min(1)
          .prefault(['real', 'real+augmented', 'real+synthetic', 'real+augmented+synthetic', 'synthetic']),
        /** Seeds of the head's initialisation, dropout and batch order: one classifier per mix and seed. */
        seeds: z.array(z.number().int().nonnegative()).min(1).default([0, 1, 2]),
      })
      .strict()
      .superRefine((train, context) => {
        if (train.trainOnValidation && train.reduceLrOnPlateau !== false && train.reduceLrOnPlateau.monitor.startsWith('val_')) {
          context.addIssue({
            code: 'custom',
            path: ['reduceLrOnPlateau', 'monitor'],
            message: `'${train.reduceLrOnPlateau.monitor}' is measured on validation images that trainOnValidation trains on; monitor 'loss', or set reduceLrOnPlateau to false`,
          });
        }
        if (train.trainOnValidation && train.strategy !== 'feature-extraction') {
          context.addIssue({
            code: 'custom',
            path: ['trainOnValidation'],
            message: `strategy '${train.strategy}' stops fine-tuning early on the validation images, so they cannot also train; use strategy 'feature-extraction' or set trainOnValidation to false`,
          });
        }
        const sizes = inputSizes(train);
        const repeated = sizes.find((size, i) => sizes.indexOf(size) !== i);
        if (repeated !== undefined) {
          context.addIssue({ code: 'custom', path: ['inputSize'], message: `input size ${repeated} is listed twice; list each size once` });
        }
        if (train.strategy !== 'feature-extraction' && sizes.length > 1) {
          context.addIssue({
            code: 'custom',
            path: ['inputSize'],
            message: `strategy '${train.strategy}' trains the backbone at one input size; give one size, or use strategy 'feature-extraction' to average heads over several`,
          });
        }
        if (train.strategy !== 'feature-extraction' && Array.isArray(train.featureLayer) && train.featureLayer.length > 1) {
          context.addIssue({
            code: 'custom',
            path: ['featureLayer'],
            message: `strategy '${train.strategy}' trains on one feature map; name one layer, or use strategy 'feature-extraction' to pool several`,
          });
        }
      })
      .prefault({}),
  })
  .strict();

export type RunConfig = z.infer<typeof runConfigSchema>;

/** Returns the backbone input sizes of a train config, one per head of a multi-scale classifier. */
export function inputSizes(train: { inputSize: number | number[] }): number[] {
  return [train.inputSize].flat();
}

/** Names the input sizes for messages and reports, e.g. `96, 128 and 160 px`. */
export function describeInputSizes(train: { inputSize: number | number[] }): string {
  const sizes = inputSizes(train);
  return `${sizes.length === 1 ? sizes[0] : `${sizes.slice(0, -1).join(', ')} and ${sizes.at(-1)}`} px`;
}

/** Validates a parsed config object; paths inside it are resolved against `baseDir`. */
export function parseRunConfig(value: unknown, source: string, baseDir: string): RunConfig {
  const parsed = runConfigSchema.safeParse(value);
  if (!parsed.success) throw new InputError(describeIssues(parsed.error, source, value, runConfigSchema));
  const config = parsed.data;
  const resolvePath = (path: string) => (isAbsolute(path) || /^https?:\/\//i.test(path) ? path : resolve(baseDir, path));
  config.data.path = resolvePath(config.data.path);
  config.output = resolvePath(config.output);
  config.train.backbone = resolvePath(config.train.backbone);
  if (typeof config.train.featureCache === 'string') config.train.featureCache = resolvePath(config.train.featureCache);
  for (const mix of config.train.mixes) {
    for (const source of mix.sources) if (!(ORIGINS as readonly string[]).includes(source.from)) source.from = resolvePath(source.from);
  }
  return config;
}

/** Reads a run config from a JSON or YAML file. */
export async function loadRunConfig(path: string): Promise<RunConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`Cannot read config ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new InputError(`Config ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  return parseRunConfig(value, path, dirname(resolve(path)));
}
