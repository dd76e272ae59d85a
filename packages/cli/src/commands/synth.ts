import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InputError, loadDataset, MANIFEST_FILE, parseBackendChoice, recordsOfSplit, selectBackend } from '@scarce/core';
import { CHECKPOINT_SCORES, loadGenerator, resolveSynthConfig, runSynth, sampleToShards, type CheckpointScore, type SynthConfig } from '@scarce/synth';
import { integer, number, pixelSize } from '../options.js';
import { configureOutput } from '../output.js';

/** Reads a JSON file of GAN settings and checks it, naming the file in any error. */
async function readGanConfig(path: string): Promise<Partial<SynthConfig>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new InputError(`Invalid --gan-config ${path}: ${(error as Error).message}. Give a JSON object of GAN settings, e.g. { "generatorWidths": [64, 32] }.`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InputError(`Invalid --gan-config ${path}: expected a JSON object of GAN settings but found ${Array.isArray(parsed) ? 'an array' : typeof parsed}.`);
  }
  return parsed as Partial<SynthConfig>;
}

function checkpointScore(value: string): CheckpointScore {
  if (!CHECKPOINT_SCORES.includes(value as CheckpointScore)) {
    throw new InputError(`Invalid --select-by '${value}': expected one of ${CHECKPOINT_SCORES.join(', ')}.`);
  }
  return value as CheckpointScore;
}

/** Reads which stage wrote a shard folder's manifest (`augment` or `synth`), or undefined when unreadable. */
async function manifestStage(directory: string): Promise<unknown> {
  try {
    const manifest = JSON.parse(await readFile(join(directory, MANIFEST_FILE), 'utf8')) as { config?: { stage?: unknown } };
    return manifest.config?.stage;
  } catch {
    return undefined;
  }
}

/** Rejects an output folder of augment's shards, and one with shards or a manifest unless `force` is set. */
async function checkOutputFolder(directory: string, force: boolean, hint: string): Promise<void> {
  const existing = await readdir(directory).catch(() => [] as string[]);
  const stage = existing.includes(MANIFEST_FILE) ? await manifestStage(directory) : undefined;
  // --force removes only synth's files, so augment's journal and pictures would stay beside synthetic shards.
  if (stage === 'augment' || existing.some((file) => file.startsWith('augment-journal'))) {
    throw new InputError(`${directory} contains the shards of scarce augment, and --force replaces only synth outputs. Choose another --out.`);
  }
  if (!force && existing.some((file) => file === MANIFEST_FILE || file.endsWith('.arrow'))) {
    throw new InputError(`${directory} already has shards or a manifest. Choose another --out or pass ${hint}.`);
  }
}

/** Samples a saved generator into shards: the `scarce synth sample` form of the command. */
async function sampleGenerator(generatorPath: string, out: string, options: Record<string, unknown>, log: (line: string) => void): Promise<void> {
  await checkOutputFolder(out, options.force as boolean, '--force to replace them');
  await selectBackend({ backend: parseBackendChoice(options.backend as string | undefined, '--backend'), log });
  const generator = await loadGenerator(generatorPath);
  try {
    await sampleToShards(generator, {
      directory: out,
      perClass: options.perClass as number,
      seed: options.seed as number,
      overwrite: options.force as boolean,
      source: generatorPath,
      log,
    });
  } finally {
    generator.generator.dispose();
  }
}

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Train a class-conditional GAN on the train split, measure its checkpoints and write labelled synthetic images as Arrow shards.')
    .argument('<data>', "an .npz archive, a folder with one subfolder per class, or a shard folder; or 'sample' to sample a saved generator")
    .argument('[generator]', "with 'sample': a generator folder (with model.json), e.g. out/synth/generator or out/synth/checkpoints/epoch-000040/generator")
    .requiredOption('--out <dir>', 'output folder for the shards, manifest.json, checkpoints, quality logs and pictures')
    .option('--per-class <n>', 'synthetic images per class', integer, 500)
    .option('--seconds <s>', 'training time budget in seconds, counted over resumed runs', number, 240)
    .option('--epochs <n>', 'maximum epochs', integer)
    .option('--seed <n>', 'seed of initialisation, batches and latents', integer, 0)
    .option('--gan-config <file>', 'JSON file of GAN settings (fields of SynthConfig); the flags here override it')
    .option('--checkpoint-every <n>', 'write and measure a checkpoint every n epochs (0: none; default 10)', integer)
    .option('--select-by <score>', `checkpoint to sample from: ${CHECKPOINT_SCORES.join(', ')} (default frechetDistance)`, checkpointScore)
    .option('--no-quality', 'measure no checkpoint quality; sample from the last epoch')
    .option('--backbone <path>', 'backbone for the quality metrics (default: the shipped MobileNetV2)')
    .option('--quality-size <px>', 'backbone input side for the quality metrics, at least 32', integer, 64)
    .option('--size <HxW>', 'resize every image of a class folder to HxW (default: every image must have the size of the first)', pixelSize)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu')
    .option('--resume', 'continue from the latest checkpoint in --out', false)
    .option('--force', 'replace an earlier run in --out', false)
    .option('--quiet', 'print no progress bar', false)
    .option('--json', 'write log lines and progress as JSON lines on stdout', false)
    .addHelpText(
      'after',
      '\nExamples:\n  scarce synth fixtures/breastmnist/breastmnist.npz --out out/synth --per-class 500 --seconds 300\n' +
        '  scarce synth fixtures/breastmnist/breastmnist.npz --out out/synth --seconds 600 --resume\n' +
        '  scarce synth sample out/synth/generator --per-class 200 --out out/more',
    )
    .action(async (data: string, generatorPath: string | undefined, options: Record<string, unknown>) => {
      const { log } = configureOutput({ quiet: options.quiet as boolean, json: options.json as boolean });
      const out = options.out as string;
      if (data === 'sample') {
        if (generatorPath === undefined) throw new InputError("Missing generator folder: write 'scarce synth sample <generator> --out <dir>'.");
        await sampleGenerator(generatorPath, out, options, log);
        return;
      }
      if (generatorPath !== undefined) throw new InputError(`Unexpected argument '${generatorPath}': only 'scarce synth sample' takes a generator folder.`);
      if (options.resume && options.force) throw new InputError('--resume continues the run in --out and --force replaces it; pass only one.');
      // Check the output folder and settings before training, which takes minutes.
      if (!options.resume) await checkOutputFolder(out, options.force as boolean, '--force to replace them, or --resume to continue');
      const fromFile = options.ganConfig === undefined ? {} : await readGanConfig(options.ganConfig as string);
      const config: Partial<SynthConfig> = {
        ...fromFile,
        seed: options.seed as number,
        timeBudgetSeconds: options.seconds as number,
        ...(options.epochs === undefined ? {} : { epochs: options.epochs as number }),
        ...(options.checkpointEvery === undefined ? {} : { checkpointEvery: options.checkpointEvery as number }),
        ...(options.selectBy === undefined ? {} : { selectCheckpointBy: options.selectBy as CheckpointScore }),
      };
      try {
        resolveSynthConfig(config);
      } catch (error) {
        throw new InputError(`${(error as Error).message}${options.ganConfig === undefined ? '' : ` (settings from ${options.ganConfig} and the flags)`}`);
      }

      await selectBackend({ backend: parseBackendChoice(options.backend as string | undefined, '--backend'), log });
      const dataset = await loadDataset(data, { size: options.size as [number, number] | undefined });
      const result = await runSynth(
        { train: recordsOfSplit(dataset, 'train'), validation: recordsOfSplit(dataset, 'val'), test: recordsOfSplit(dataset, 'test') },
        dataset.classNames,
        config,
        {
          directory: out,
          perClass: options.perClass as number,
          seed: options.seed as number,
          overwrite: options.force as boolean,
          resume: options.resume as boolean,
          quality: options.quality === false ? false : { inputSize: options.qualitySize as number, ...(options.backbone === undefined ? {} : { backbone: options.backbone as string }) },
          log,
          progress: options.quiet ? false : {},
        },
      );
      result.trained.dispose();
    });
}
