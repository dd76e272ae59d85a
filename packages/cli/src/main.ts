#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { TOOLKIT_VERSION } from '@scarce/core';
import { registerAugment } from './commands/augment.js';
import { registerInspect } from './commands/inspect.js';
import { registerMerge } from './commands/merge.js';
import { registerBackbone } from './commands/backbone.js';
import { registerPredict } from './commands/predict.js';
import { registerReport } from './commands/report.js';
import { registerRun } from './commands/run.js';
import { registerSynth } from './commands/synth.js';
import { registerTrain } from './commands/train.js';
import { EXIT_BAD_INPUT, EXIT_FAILURE, InputError } from './errors.js';
import { writeErrorEvent } from './output.js';

// A reader that closes the pipe early (`scarce augment --json | head -1`) stops the output only:
// the job goes on and finishes its files, rather than dying on a write error mid-shard.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
});

const program = new Command();
program
  .name('scarce')
  .description('Make a small labelled image dataset go further: synthesise, augment, and benchmark what helps.')
  .version(TOOLKIT_VERSION)
  .addHelpText('after', '\nExample:\n  scarce run examples/breastmnist.json --name first-try\n\nEvery command takes --help.')
  .exitOverride();
registerRun(program);
registerSynth(program);
registerAugment(program);
registerMerge(program);
registerInspect(program);
registerTrain(program);
registerPredict(program);
registerReport(program);
registerBackbone(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed its own message; help and version exit with code 0.
    process.exit(error.exitCode === 0 ? 0 : EXIT_BAD_INPUT);
  }
  if (error instanceof InputError) {
    process.stderr.write(`scarce: ${error.message}\n`);
    writeErrorEvent(error.message, EXIT_BAD_INPUT);
    process.exit(EXIT_BAD_INPUT);
  }
  process.stderr.write(`scarce: ${(error as Error).stack ?? String(error)}\n`);
  writeErrorEvent((error as Error).message ?? String(error), EXIT_FAILURE);
  process.exit(EXIT_FAILURE);
}
