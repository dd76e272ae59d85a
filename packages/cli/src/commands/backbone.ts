import type { Command } from 'commander';
import { parseBackendChoice, selectBackend } from '@scarce/core';
import { describeBackbone, loadBackbone } from '@scarce/train';
import { integer } from '../options.js';

export function registerBackbone(program: Command): void {
  const backbone = program
    .command('backbone')
    .description('Work with pretrained backbones.')
    .addHelpText('after', '\nExample:\n  scarce backbone inspect fixtures/mobilenet_v2_0.35_224_notop --input-size 128');
  backbone
    .command('inspect')
    .description('List a TF.js layers model\'s layers grouped into blocks, with output shapes and parameter counts.')
    .argument('<model>', 'a folder with model.json, a model.json path or an http(s) URL')
    .option('--input-size <px>', 'input side in pixels to build the model at', integer)
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu')
    .addHelpText('after', '\nExample:\n  scarce backbone inspect fixtures/mobilenet_v2_0.35_224_notop --input-size 128')
    .action(async (source: string, options: { inputSize?: number; backend?: string }) => {
      await selectBackend({ backend: parseBackendChoice(options.backend, '--backend'), log: () => {} });
      const loaded = await loadBackbone(source, { inputSize: options.inputSize });
      process.stdout.write(`${describeBackbone(loaded.model)}\n`);
    });
}
