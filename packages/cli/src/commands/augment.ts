import type { Command } from 'commander';
import { loadDataset } from '@scarce/core';
import { augmentToShards, type TransformOptions } from '@scarce/augment';
import { number, integer } from '../options.js';

export function registerAugment(program: Command): void {
  program
    .command('augment')
    .description('Write K augmented views of every train image as Arrow shards.')
    .argument('<data>', 'an .npz archive, a folder with one subfolder per class, or a shard folder')
    .requiredOption('--out <dir>', 'output folder for the shards, manifest.json and examples.png')
    .option('--views <k>', 'views per train image', integer, 4)
    .option('--rotation <degrees>', 'rotation range: the angle is drawn from [-d, d] (default: off)', number)
    .option('--width-shift <fraction>', 'horizontal shift range as a fraction of the width (default: off)', number)
    .option('--height-shift <fraction>', 'vertical shift range as a fraction of the height (default: off)', number)
    .option('--zoom <fraction>', 'zoom range: the scale is drawn from [1 - z, 1 + z] (default: off)', number)
    .option('--horizontal-flip', 'mirror half of the views left to right (default: off)')
    .option('--brightness <fraction>', 'brightness factor drawn from [1 - b, 1 + b] (default: off)', number)
    .option('--fill <mode>', 'fill of pixels from outside the image: nearest, constant, reflect or wrap', 'nearest')
    .option('--seed <n>', 'seed of every random choice', integer, 0)
    .option('--force', 'replace shards of an earlier run in --out', false)
    .option('--quiet', 'print no progress bar', false)
    .addHelpText('after', '\nExample:\n  scarce augment fixtures/breastmnist/breastmnist.npz --out out/aug --views 4 --rotation 10 --width-shift 0.08 --horizontal-flip')
    .action(async (data: string, options: Record<string, unknown>) => {
      const transforms: TransformOptions = {
        rotation: options.rotation as number | undefined,
        widthShift: options.widthShift as number | undefined,
        heightShift: options.heightShift as number | undefined,
        zoom: options.zoom as number | undefined,
        horizontalFlip: options.horizontalFlip === true,
        brightness: options.brightness as number | undefined,
        fill: options.fill as TransformOptions['fill'],
      };
      const dataset = await loadDataset(data);
      await augmentToShards(dataset, {
        outDir: options.out as string,
        viewsPerImage: options.views as number,
        seed: options.seed as number,
        transforms,
        config: { data, transforms, views: options.views, seed: options.seed },
        overwrite: options.force as boolean,
        progress: { quiet: options.quiet as boolean },
        log: (line) => process.stderr.write(`${line}\n`),
      });
    });
}
