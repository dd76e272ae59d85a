import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatSummary, inspectShardFolder } from '@scarce/augment';
import { integer } from '../options.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Print a shard folder\'s schema and its rows by class, origin and split, and write a contact sheet of its first rows.')
    .argument('<dir>', 'a shard folder with manifest.json')
    .option('--sheet <file>', 'contact sheet PNG (default: <folder name>-sheet.png in the current folder)')
    .option('--rows <n>', 'rows on the contact sheet', integer, 32)
    .option('--no-sheet', 'write no contact sheet')
    .addHelpText('after', '\nExamples:\n  scarce inspect out/aug\n  scarce inspect runs/demo/synthetic --rows 64 --sheet synthetic-sheet.png')
    .action(async (dir: string, options: { sheet?: string | false; rows: number }) => {
      // An absolute path, so the log shows where the sheet went whatever the working directory.
      const sheetPath = options.sheet === false ? undefined : resolve(options.sheet ?? `${basename(resolve(dir))}-sheet.png`);
      const summary = await inspectShardFolder(dir, { sheetPath, sheetRows: options.rows });
      process.stdout.write(`${formatSummary(dir, summary).join('\n')}\n`);
    });
}
