import { join } from 'node:path';
import type { Command } from 'commander';
import { parseBackendChoice } from '@scarce/core';
import { loadRunConfig, runNameSchema, type RunConfig } from '../config.js';
import { InputError } from '../errors.js';
import { configureOutput } from '../output.js';
import { formatPlan, planRun } from '../plan.js';
import { runPipeline } from '../pipeline.js';

interface RunOptions {
  name?: string;
  output?: string;
  force: boolean;
  backend?: string;
  quiet: boolean;
  json: boolean;
  dryRun: boolean;
}

/** Reads the config and applies the command-line overrides. */
async function resolveConfig(configPath: string, options: RunOptions): Promise<RunConfig> {
  const config = await loadRunConfig(configPath);
  if (options.name !== undefined) {
    const name = runNameSchema.safeParse(options.name);
    if (!name.success) throw new InputError(`Invalid --name '${options.name}': ${name.error.issues[0].message}.`);
    config.name = name.data;
  }
  if (options.output !== undefined) config.output = options.output;
  const backend = parseBackendChoice(options.backend, '--backend');
  if (backend !== undefined) config.backend = backend;
  return config;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run the whole job from a config: augment, synthesise, then train and test one classifier per mix.')
    .argument('<config>', 'run config, JSON or YAML')
    .option('--name <name>', 'run name, overriding the config; outputs go to <output>/<name>/')
    .option('--output <dir>', 'folder that holds runs, overriding the config')
    .option('--force', 'replace an earlier run of the same name', false)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu (default: config, then $SCARCE_BACKEND, then auto)')
    .option('--dry-run', 'check the config, data and backbone, print the stages, rows per mix and split, and outputs, and write nothing', false)
    .option('--quiet', 'print no progress bars', false)
    .option('--json', 'write log lines, progress and a final done event as JSON lines on stdout (the plan, with --dry-run)', false)
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  scarce run examples/breastmnist.json --name first-try',
        '  scarce run examples/breastmnist.json --dry-run',
        '  scarce run examples/breastmnist.json --name ci --json > events.jsonl',
      ].join('\n'),
    )
    .action(async (configPath: string, options: RunOptions) => {
      const output = configureOutput(options);
      const config = await resolveConfig(configPath, options);

      if (options.dryRun) {
        const plan = await planRun(config, { force: options.force, log: output.log });
        if (output.json) output.event('plan', { plan });
        else process.stdout.write(`${formatPlan(plan)}\n`);
        return;
      }

      const metrics = await runPipeline(config, { force: options.force, quiet: options.quiet, log: output.log });
      output.event('done', {
        name: metrics.name,
        runDir: join(config.output, config.name),
        timings: metrics.timings,
        mixes: metrics.mixes.map((mix) => ({ mix: mix.mix, testAccuracy: mix.testAccuracy, testAuc: mix.testAuc })),
      });
    });
}
