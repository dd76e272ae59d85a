import type { Command } from 'commander';
import { parseBackendChoice } from '@scarce/core';
import { loadRunConfig, runNameSchema } from '../config.js';
import { InputError } from '../errors.js';
import { runPipeline } from '../pipeline.js';

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run the whole job from a config: augment, synthesise, then train and test one classifier per mix.')
    .argument('<config>', 'run config, JSON or YAML')
    .option('--name <name>', 'run name, overriding the config; outputs go to <output>/<name>/')
    .option('--output <dir>', 'folder that holds runs, overriding the config')
    .option('--force', 'replace an earlier run of the same name', false)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu (default: config, then $SCARCE_BACKEND, then auto)')
    .option('--quiet', 'print no progress bars', false)
    .addHelpText('after', '\nExample:\n  scarce run examples/breastmnist.json --name first-try')
    .action(async (configPath: string, options: { name?: string; output?: string; force: boolean; backend?: string; quiet: boolean }) => {
      const config = await loadRunConfig(configPath);
      if (options.name !== undefined) {
        const name = runNameSchema.safeParse(options.name);
        if (!name.success) throw new InputError(`Invalid --name '${options.name}': ${name.error.issues[0].message}.`);
        config.name = name.data;
      }
      if (options.output !== undefined) config.output = options.output;
      const backend = parseBackendChoice(options.backend, '--backend');
      if (backend !== undefined) config.backend = backend;
      await runPipeline(config, { force: options.force, quiet: options.quiet });
    });
}
