/**
 * Trains the class-conditional GAN on the BreastMNIST train split and writes synthetic shards,
 * samples.png, history.jsonl and the generator into an output folder.
 *
 *   node --import tsx scripts/try-synth.ts [--backend wasm] [--out runs/synth-try] [--per-class 500]
 *     [--budget 240] [--epochs N] [--batch N] [--generator 64,32] [--discriminator 32,64] [--seed N]
 *
 * Flags left out keep the defaults of DEFAULT_SYNTH_CONFIG; --budget 0 removes the time budget.
 */
import { parseArgs } from 'node:util';
import { parseBackendChoice, readMedMnistNpz, recordsOfSplit, selectBackend } from '@scarce/core';
import { synthToShards, trainConditionalGan, type SynthConfig } from '@scarce/synth';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    data: { type: 'string', default: 'fixtures/breastmnist/breastmnist.npz' },
    out: { type: 'string', default: 'runs/synth-try' },
    'per-class': { type: 'string', default: '500' },
    budget: { type: 'string' },
    epochs: { type: 'string' },
    batch: { type: 'string' },
    generator: { type: 'string' },
    discriminator: { type: 'string' },
    seed: { type: 'string' },
  },
});

function parseWidths(text: string | undefined, flag: string): [number, number] | undefined {
  if (text === undefined) return undefined;
  const widths = text.split(',').map(Number);
  if (widths.length !== 2 || !widths.every((width) => Number.isInteger(width) && width > 0)) {
    throw new Error(`Invalid --${flag} '${text}'; expected two positive integers such as 64,32.`);
  }
  return widths as [number, number];
}

const optionalNumber = (text: string | undefined) => (text === undefined ? undefined : Number(text));
const budget = optionalNumber(values.budget);
const config: Partial<SynthConfig> = {
  timeBudgetSeconds: budget === 0 ? null : budget,
  epochs: optionalNumber(values.epochs),
  batchSize: optionalNumber(values.batch),
  generatorWidths: parseWidths(values.generator, 'generator'),
  discriminatorWidths: parseWidths(values.discriminator, 'discriminator'),
  seed: optionalNumber(values.seed),
};

await selectBackend({ backend: parseBackendChoice(values.backend, '--backend') });
const dataset = await readMedMnistNpz(values.data, { classNames: ['malignant', 'normal_benign'] });
const trainRecords = recordsOfSplit(dataset, 'train');

const trained = await trainConditionalGan(trainRecords, dataset.classNames, config, {
  log: (line) => process.stdout.write(`${line}\n`),
  progress: false,
});
const outputs = await synthToShards(trained, {
  directory: values.out,
  perClass: Number(values['per-class']),
  overwrite: true,
  log: (line) => process.stdout.write(`${line}\n`),
});
const stepsPerSecond = trained.steps / trained.seconds;
process.stdout.write(`${stepsPerSecond.toFixed(2)} steps/s of batch ${Math.min(trained.config.batchSize, trainRecords.length)}; samples: ${outputs.samplesPath}\n`);
trained.dispose();
