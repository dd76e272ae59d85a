// One timed scarce run for scripts/bench-augment.ts, in plain Node so that worker threads start
// without a TypeScript loader: node scripts/bench-augment-run.mjs INPUT OUT WORKERS ENCODING
import { augmentFolderToShards } from '@scarce/augment';

const [input, outDir, workers, encoding] = process.argv.slice(2);
const transforms = {
  rotation: 20,
  widthShift: 0.1,
  heightShift: 0.1,
  zoom: 0.1,
  horizontalFlip: true,
  brightness: 0.2,
  fill: { mode: 'constant', value: 0 },
};
const start = performance.now();
const cpuStart = process.cpuUsage();
await augmentFolderToShards(input, {
  outDir,
  overwrite: true,
  viewsPerImage: 1,
  seed: 0,
  transforms,
  encoding,
  compressionLevel: 6,
  concurrency: Number(workers),
  progress: { quiet: true },
});
// process.cpuUsage covers every thread of the process, worker threads included.
const cpu = process.cpuUsage(cpuStart);
const seconds = (performance.now() - start) / 1000;
process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
