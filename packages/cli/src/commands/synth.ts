import { readdir } from 'node:fs/promises';
import type { Command } from 'commander';
import { InputError, loadDataset, MANIFEST_FILE, parseBackendChoice, recordsOfSplit, selectBackend } from '@scarce/core';
import { synthToShards, trainConditionalGan } from '@scarce/synth';
import { integer, number, pixelSize } from '../options.js';
import { configureOutput } from '../output.js';

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Train a class-conditional GAN on the train split and write labelled synthetic images as Arrow shards.')
    .argument('<data>', 'an .npz archive, a folder with one subfolder per class, or a shard folder')
    .requiredOption('--out <dir>', 'output folder for the shards, manifest.json, samples.png and the generator')
    .option('--per-class <n>', 'synthetic images per class', integer, 500)
    .option('--seconds <s>', 'training time budget in seconds', number, 240)
    .option('--epochs <n>', 'maximum epochs', integer)
    .option('--seed <n>', 'seed of initialisation, batches and latents', integer, 0)
    .option('--size <HxW>', 'resize every image of a class folder to HxW (default: every image must have the size of the first)', pixelSize)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu')
    .option('--force', 'replace an earlier run in --out', false)
    .option('--quiet', 'print no progress bar', false)
    .option('--json', 'write log lines and progress as JSON lines on stdout', false)
    .addHelpText('after', '\nExample:\n  scarce synth fixtures/breastmnist/breastmnist.npz --out out/synth --per-class 500 --seconds 300')
    .action(async (data: string, options: Record<string, unknown>) => {
      const { log } = configureOutput({ quiet: options.quiet as boolean, json: options.json as boolean });
      // Check the output folder before training, which takes minutes.
      const existing = await readdir(options.out as string).catch(() => [] as string[]);
      if (!options.force && existing.some((file) => file === MANIFEST_FILE || file.endsWith('.arrow'))) {
        throw new InputError(`${options.out} already has shards or a manifest. Choose another --out or pass --force to replace them.`);
      }
      await selectBackend({ backend: parseBackendChoice(options.backend as string | undefined, '--backend'), log });
      const dataset = await loadDataset(data, { size: options.size as [number, number] | undefined });
      const gan = await trainConditionalGan(
        recordsOfSplit(dataset, 'train'),
        dataset.classNames,
        {
          seed: options.seed as number,
          timeBudgetSeconds: options.seconds as number,
          ...(options.epochs === undefined ? {} : { epochs: options.epochs as number }),
        },
        { log, progress: options.quiet ? false : {} },
      );
      await synthToShards(gan, { directory: options.out as string, perClass: options.perClass as number, seed: options.seed as number, overwrite: options.force as boolean, log });
      gan.dispose();
    });
}
