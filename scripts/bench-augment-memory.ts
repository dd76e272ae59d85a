/**
 * Peak memory of `scarce augment` on large class folders, to show that it streams.
 *
 *   pnpm build && node --import tsx scripts/bench-augment-memory.ts [--small 100000] [--large 5000] [--views 2] [--workers 2]
 *
 * A count of 0 skips that case.
 *
 * It writes its inputs itself into a temporary folder: --small 28 x 28 gray PNGs (BreastMNIST
 * train images, repeated) and --large 512 x 512 RGB JPEGs (crops of synthetic photos, quality
 * 90). Then it runs the CLI on each in its own process with rotation, shifts, zoom, flip and
 * brightness, PNG output and the default shard size. It prints the wall time and the peak
 * resident set size (getrusage's ru_maxrss, which covers every worker thread of the process).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePngSync, Random, readMedMnistNpz, recordsOfSplit } from '@scarce/core';

const sharp = createRequire(new URL('../packages/core/package.json', import.meta.url))('sharp') as typeof import('sharp');

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

async function writeSmall(directory: string, count: number): Promise<void> {
  const train = recordsOfSplit(await readMedMnistNpz('fixtures/breastmnist/breastmnist.npz'), 'train');
  for (const label of [0, 1]) await mkdir(join(directory, `class-${label}`), { recursive: true });
  for (let i = 0; i < count; i++) {
    const record = train[i % train.length];
    await writeFile(join(directory, `class-${record.label}`, `${String(i).padStart(6, '0')}.png`), encodePngSync(record));
  }
}

/** JPEG photos: random 512 px crops of a few large synthetic scenes, so no two files are alike. */
async function writeLarge(directory: string, count: number): Promise<void> {
  const random = new Random(11);
  const scenes: Buffer[] = [];
  for (let s = 0; s < 8; s++) {
    const size = 1024;
    const pixels = Buffer.alloc(size * size * 3);
    const phase = [random.uniform(0, 6), random.uniform(0, 6), random.uniform(0, 6)];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let k = 0; k < 3; k++) {
          const shade = 128 + 70 * Math.sin(x / (40 + 10 * k) + phase[k]) * Math.cos(y / (55 + 7 * k)) + 30 * Math.sin((x + y) / 9 + phase[k]);
          pixels[(y * size + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(shade + 4 * random.normal())));
        }
      }
    }
    scenes.push(pixels);
  }
  for (const label of [0, 1]) await mkdir(join(directory, `class-${label}`), { recursive: true });
  for (let i = 0; i < count; i++) {
    const scene = scenes[i % scenes.length];
    const left = random.integer(0, 512);
    const top = random.integer(0, 512);
    const jpeg = await sharp(scene, { raw: { width: 1024, height: 1024, channels: 3 } })
      .extract({ left, top, width: 512, height: 512 })
      .jpeg({ quality: 90 })
      .toBuffer();
    await writeFile(join(directory, `class-${i % 2}`, `${String(i).padStart(6, '0')}.jpg`), jpeg);
  }
}

async function folderBytes(directory: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(directory)) if (name.endsWith('.arrow')) total += (await stat(join(directory, name))).size;
  return total;
}

async function main(): Promise<void> {
  const views = option('views', 2);
  const workers = option('workers', 2);
  const root = join(tmpdir(), `scarce-bench-memory-${process.pid}`);
  const cases = [
    { label: '28 x 28 gray PNG', count: option('small', 100_000), write: writeSmall, input: join(root, 'in-28') },
    { label: '512 x 512 RGB JPEG', count: option('large', 5_000), write: writeLarge, input: join(root, 'in-512') },
  ];
  process.stdout.write(`views ${views}, workers ${workers}, node ${process.version}\n\n| inputs | images | rows | wall s | rows/s | peak RSS MB | shard MB |\n|---|---|---|---|---|---|---|\n`);
  for (const { label, count, write, input } of cases) {
    if (count === 0) continue;
    await write(input, count);
    const outDir = join(root, `out-${count}`);
    const flags = ['--views', String(views), '--rotation', '15', '--width-shift', '0.1', '--height-shift', '0.1', '--zoom', '0.1', '--horizontal-flip', '--brightness', '0.2'];
    const script = [
      `const start = performance.now();`,
      `process.argv = [process.argv[0], 'scarce', 'augment', ${JSON.stringify(input)}, '--out', ${JSON.stringify(outDir)}, '--quiet', '--workers', '${workers}', ${flags.map((flag) => JSON.stringify(flag)).join(', ')}];`,
      `process.on('exit', () => process.stderr.write(JSON.stringify({ seconds: (performance.now() - start) / 1000, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\\n'));`,
      `await import(${JSON.stringify(new URL('../packages/cli/dist/main.js', import.meta.url).href)});`,
    ].join('\n');
    // A file, not --eval: worker threads inherit the process's flags, and --input-type breaks them.
    const runner = join(root, 'run.mjs');
    await writeFile(runner, script);
    const run = spawnSync(process.execPath, [runner], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`scarce augment failed on ${label}:\n${run.stderr}`);
    const result = JSON.parse(run.stderr.trim().split('\n').pop()!) as { seconds: number; maxRssBytes: number };
    const rows = count * views;
    const cells = [label, count, rows, result.seconds.toFixed(1), (rows / result.seconds).toFixed(0), (result.maxRssBytes / 2 ** 20).toFixed(0), ((await folderBytes(outDir)) / 2 ** 20).toFixed(0)];
    process.stdout.write(`| ${cells.join(' | ')} |\n`);
    await rm(input, { recursive: true, force: true });
    await rm(outDir, { recursive: true, force: true });
  }
  await rm(root, { recursive: true, force: true });
}

await main();
