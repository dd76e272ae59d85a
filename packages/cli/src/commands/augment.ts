import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_MAX_INPUT_PIXELS, DEFAULT_PNG_WINDOW_BITS, InputError, loadDataset, MANIFEST_FILE, RESIZE_FITS, type ResizeFit } from '@scarce/core';
import {
  augmentFolderToShards,
  augmentToShards,
  FILL_MODES,
  resolveTransformConfig,
  type AugmentFolderOptions,
  type TransformOptions,
} from '@scarce/augment';
import { parse as parseYaml } from 'yaml';
import { integer, number, pixelSize } from '../options.js';
import { describeUnknownKeys } from '../config-issues.js';
import { configureOutput } from '../output.js';

/** Parses a shift bound: a fraction (`0.1`) or pixels (`4px`). */
function shift(value: string): TransformOptions['widthShift'] {
  const pixels = /^(\d+(?:\.\d+)?)px$/i.exec(value.trim());
  if (pixels !== null) return { range: Number(pixels[1]), unit: 'pixels' };
  return number(value);
}

/** Fields of a `--config` file that contains augmentation settings only. */
const AUGMENT_CONFIG_FIELDS = ['transforms', 'viewsPerImage', 'seed'];

/**
 * Reads the transforms (and views and seed, when set) of a config file: a JSON or YAML file
 * with them at the top level or under `augment`, as in a run config.
 */
async function readAugmentConfig(path: string): Promise<{ transforms: TransformOptions; viewsPerImage?: number; seed?: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`Cannot read config ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  const yaml = /\.ya?ml$/i.test(path);
  let value: unknown;
  try {
    value = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new InputError(`Config ${path} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  const root = (value ?? {}) as Record<string, unknown>;
  if (root.augment === undefined) {
    // A file of augmentation settings alone; a run config's other sections are checked by `scarce run`.
    const unknown = Object.keys(root).filter((key) => !AUGMENT_CONFIG_FIELDS.includes(key));
    if (unknown.length > 0) throw new InputError(`Config ${path}: ${describeUnknownKeys(unknown, AUGMENT_CONFIG_FIELDS)}`);
  }
  const section = (typeof root.augment === 'object' && root.augment !== null ? root.augment : root) as Record<string, unknown>;
  const transforms = (section.transforms ?? {}) as TransformOptions;
  try {
    resolveTransformConfig(transforms);
  } catch (error) {
    throw new InputError(`Config ${path}, ${root.augment === undefined ? '' : 'augment.'}transforms: ${(error as Error).message}`);
  }
  return {
    transforms,
    viewsPerImage: typeof section.viewsPerImage === 'number' ? section.viewsPerImage : undefined,
    seed: [root.seed, section.seed].find((value): value is number => typeof value === 'number'),
  };
}

/** Builds the fill from --fill and --fill-value; a value alone means the constant fill, as Keras' cval. */
function fillFromFlags(mode: (typeof FILL_MODES)[number] | undefined, value: number | undefined): TransformOptions['fill'] {
  if (mode === undefined && value === undefined) return undefined;
  if (mode !== undefined && mode !== 'constant' && value !== undefined) {
    throw new InputError(`--fill-value applies to --fill constant only, but --fill is ${mode}. Drop --fill-value or use --fill constant.`);
  }
  return { mode: mode ?? 'constant', value: value ?? 0 };
}

/** Transforms set by flags; a flag overrides the same transform in --config. */
function transformsFromFlags(options: Record<string, unknown>): TransformOptions {
  const flags: TransformOptions = {
    rotation: options.rotation as number | undefined,
    widthShift: options.widthShift as TransformOptions['widthShift'],
    heightShift: options.heightShift as TransformOptions['heightShift'],
    zoom: options.zoom as number | undefined,
    shear: options.shear as number | undefined,
    horizontalFlip: options.horizontalFlip === true ? true : undefined,
    verticalFlip: options.verticalFlip === true ? true : undefined,
    crop: options.crop as [number, number] | undefined,
    resizedCrop: options.resizedCrop as [number, number] | undefined,
    brightness: options.brightness as number | undefined,
    contrast: options.contrast as number | undefined,
    saturation: options.saturation as number | undefined,
    hue: options.hue as number | undefined,
    blur: options.blur as number | undefined,
    noise: options.noise as number | undefined,
    cutout: options.cutout as number | undefined,
    fill: fillFromFlags(options.fill as (typeof FILL_MODES)[number] | undefined, options.fillValue as number | undefined),
    interpolation: options.interpolation as TransformOptions['interpolation'],
    engine: options.engine as TransformOptions['engine'],
  };
  return Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined)) as TransformOptions;
}

export function registerAugment(program: Command): void {
  program
    .command('augment')
    .description('Write K augmented views of every train image as Arrow shards, streaming, on every core.')
    .argument('<data>', 'a folder with one subfolder per class (read image by image), an .npz archive, or a shard folder')
    .requiredOption('--out <dir>', 'output folder for the shards, manifest.json and examples.png')
    .option('--config <file>', 'JSON or YAML file with the transforms (top level or under augment.transforms); flags override it')
    .option('--views <k>', 'views per train image (default: 4, or viewsPerImage in --config)', integer)
    .option('--seed <n>', 'seed of every random choice (default: 0, or seed in --config)', integer)
    .option('--rotation <degrees>', 'rotation: the angle is drawn from [-d, d] (default: off)', number)
    .option('--width-shift <amount>', 'horizontal shift bound: a fraction of the width (0.1) or pixels (4px) (default: off)', shift)
    .option('--height-shift <amount>', 'vertical shift bound: a fraction of the height (0.1) or pixels (4px) (default: off)', shift)
    .option('--zoom <fraction>', 'zoom: the scale is drawn from [1 - z, 1 + z] (default: off)', number)
    .option('--shear <degrees>', 'horizontal shear angle drawn from [-d, d] (default: off)', number)
    .option('--horizontal-flip', 'mirror half of the views left to right (default: off)')
    .option('--vertical-flip', 'mirror half of the views top to bottom (default: off)')
    .option('--crop <HxW>', 'random crop to HxW pixels (default: off)', pixelSize)
    .option('--resized-crop <HxW>', 'random resized crop to HxW, scale [0.08, 1], ratio [3/4, 4/3] (default: off)', pixelSize)
    .option('--brightness <fraction>', 'brightness factor drawn from [1 - b, 1 + b] (default: off)', number)
    .option('--contrast <fraction>', 'contrast factor drawn from [1 - c, 1 + c] (default: off)', number)
    .option('--saturation <fraction>', 'saturation factor drawn from [1 - s, 1 + s], colour images only (default: off)', number)
    .option('--hue <fraction>', 'hue shift drawn from [-h, h] of the colour circle, h <= 0.5, colour images only (default: off)', number)
    .option('--blur <sigma>', 'Gaussian blur, standard deviation drawn from [0, s] pixels (default: off)', number)
    .option('--noise <std>', 'Gaussian noise, standard deviation drawn from [0, s] levels of 255 (default: off)', number)
    .option('--cutout <fraction>', 'erase one rectangle with sides f times the image sides (default: off)', number)
    .addOption(new Option('--fill <mode>', 'fill of pixels from outside the image (default: nearest)').choices([...FILL_MODES]))
    .option('--fill-value <level>', 'value of the constant fill, 0-255; alone it selects --fill constant (default: 0)', integer)
    .addOption(new Option('--interpolation <mode>', 'sampling of the warp (default: bilinear)').choices(['bilinear', 'nearest']))
    .addOption(new Option('--engine <name>', 'warp engine (default: auto)').choices(['auto', 'typescript', 'sharp']))
    .addOption(new Option('--encoding <kind>', 'image storage in the shards').choices(['png', 'raw']).default('png'))
    .option('--compression-level <level>', 'zlib level of PNG images, 0-9', integer, 6)
    .option('--png-window-bits <bits>', 'zlib window of PNG images, 2^bits bytes, 9-15 (15 suits flat-colour drawings)', integer, DEFAULT_PNG_WINDOW_BITS)
    .option('--shard-size <size>', 'rows per shard (4096), or a byte target (256MB, 1GiB)', '4096')
    .option('--workers <n>', 'worker threads (default: the number of CPU cores; 1 runs on the main thread)', integer)
    .option('--shard-index <i>', 'this machine\'s part, 0-based, when --num-shards machines split the work', integer)
    .option('--num-shards <n>', 'machines splitting the work; each writes a part manifest for scarce merge', integer)
    .addOption(new Option('--on-error <policy>', 'bad input images: stop with an error, or skip them and list them in the manifest').choices(['error', 'skip']).default('error'))
    .option('--size <HxW>', 'resize every image to HxW (default: every image must have the size of the first)', pixelSize)
    .addOption(new Option('--fit <mode>', 'how --size is reached: stretch, crop the centre, or pad').choices([...RESIZE_FITS]).default('fill'))
    .addOption(new Option('--channels <n>', 'output channels (default: those of the first image)').choices(['1', '3']))
    .option('--max-pixels <n>', 'largest height x width of an input image', integer, DEFAULT_MAX_INPUT_PIXELS)
    .option('--force', 'replace shards written with other settings in --out', false)
    .option('--quiet', 'print no progress bar', false)
    .option('--json', 'write log lines and progress as JSON lines on stdout', false)
    .addHelpText(
      'after',
      [
        '',
        'A rerun into the same --out keeps the complete shards and redoes the rest, so an interrupted',
        'run resumes. Outputs are byte-identical for the same data, settings and seed, whatever --workers.',
        '',
        'Examples:',
        '  scarce augment photos/ --out out/aug --views 4 --rotation 15 --width-shift 0.1 --horizontal-flip --brightness 0.2',
        '  scarce augment photos/ --out out/aug --config augment.yaml --size 224x224 --fit cover --on-error skip',
        '  scarce augment photos/ --out shared/aug --shard-index $JOB_COMPLETION_INDEX --num-shards 8 && scarce merge shared/aug',
      ].join('\n'),
    )
    .action(async (data: string, options: Record<string, unknown>) => {
      const fromFile = options.config === undefined ? { transforms: {} } : await readAugmentConfig(options.config as string);
      const transforms = { ...fromFile.transforms, ...transformsFromFlags(options) };
      const viewsPerImage = (options.views as number | undefined) ?? fromFile.viewsPerImage ?? 4;
      const seed = (options.seed as number | undefined) ?? fromFile.seed ?? 0;
      const output = configureOutput({ quiet: options.quiet as boolean, json: options.json as boolean });
      const common: AugmentFolderOptions = {
        outDir: options.out as string,
        viewsPerImage,
        seed,
        transforms,
        shardSize: options.shardSize as string,
        encoding: options.encoding as 'png' | 'raw',
        compressionLevel: options.compressionLevel as number,
        pngWindowBits: options.pngWindowBits as number,
        concurrency: options.workers as number | undefined,
        shardIndex: options.shardIndex as number | undefined,
        numShards: options.numShards as number | undefined,
        config: { data, transforms, views: viewsPerImage, seed, config: options.config ?? null },
        overwrite: options.force as boolean,
        progress: { quiet: options.quiet as boolean },
        log: output.log,
      };
      if ((options.shardIndex === undefined) !== (options.numShards === undefined)) {
        throw new InputError('--shard-index and --num-shards go together: give both, or neither for a single-machine run.');
      }

      const info = await stat(data).catch(() => undefined);
      if (info === undefined) throw new InputError(`Dataset ${data} not found.`);
      const isClassFolder = info.isDirectory() && !(await stat(join(data, MANIFEST_FILE)).then(() => true, () => false));
      const manifest = isClassFolder
        ? await augmentFolderToShards(data, {
            ...common,
            onError: options.onError as 'error' | 'skip',
            size: options.size as [number, number] | undefined,
            fit: options.fit as ResizeFit,
            channels: options.channels === undefined ? undefined : (Number(options.channels) as 1 | 3),
            maxPixels: options.maxPixels as number,
          })
        : await augmentToShards(await loadDataset(data), common);
      output.event('done', {
        outDir: common.outDir,
        rows: manifest.totals.rows,
        shards: manifest.shards.map((shard) => shard.file),
        skipped: manifest.skipped?.length ?? 0,
      });
    });
}
