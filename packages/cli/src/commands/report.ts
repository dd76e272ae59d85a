import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '@scarce/core';
import { InputError } from '../errors.js';
import type { RunMetrics } from '../pipeline.js';
import { renderMarkdownReport } from '../report.js';
import { writeHtmlReport } from '../report-html.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('Rebuild report.md and the self-contained report.html of a run folder from its metrics.json and images.')
    .argument('<run>', 'a run folder, as written by scarce run')
    .addHelpText('after', '\nExample:\n  scarce report runs/demo')
    .action(async (runDir: string) => {
      const metricsPath = join(runDir, 'metrics.json');
      const text = await readFile(metricsPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new InputError(`Cannot read ${metricsPath} (${error.code ?? error.message}). Give a folder that a finished scarce run wrote.`);
      });
      let metrics: RunMetrics;
      try {
        metrics = JSON.parse(text) as RunMetrics;
      } catch (error) {
        throw new InputError(`${metricsPath} is not valid JSON: ${(error as Error).message}`);
      }
      if (!Array.isArray(metrics.mixes) || metrics.config === undefined) throw new InputError(`${metricsPath} has no mixes or config, so it is not the metrics of a scarce run.`);

      await writeFileAtomic(join(runDir, 'report.md'), renderMarkdownReport(metrics));
      const html = await writeHtmlReport(runDir, metrics);
      process.stderr.write(`report: ${join(runDir, 'report.md')}\nreport with plots: ${html}\n`);
    });
}
