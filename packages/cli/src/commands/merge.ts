import type { Command } from 'commander';
import { mergeShardParts } from '@scarce/augment';

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('Join the part manifests that `scarce augment --shard-index i --num-shards n` runs wrote into one manifest.json.')
    .argument('<dirs...>', 'the folder the parts shared, or one folder per part')
    .option('--out <dir>', 'folder for manifest.json; shards in other folders are copied there (default: the first folder)')
    .option('--no-verify', 'skip the sha256 check of every shard')
    .addHelpText('after', '\nExamples:\n  scarce merge shared/aug\n  scarce merge part-0/ part-1/ part-2/ --out aug/')
    .action(async (dirs: string[], options: { out?: string; verify: boolean }) => {
      await mergeShardParts(dirs, { outDir: options.out, verify: options.verify, log: (line) => process.stderr.write(`${line}\n`) });
    });
}
