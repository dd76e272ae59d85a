/**
 * Augmentation throughput, side by side with torchvision + PIL, from decode to shard written.
 *
 *   pnpm build && node --import tsx scripts/bench-augment.ts [--workers 2] [--repeats 5] [--small 4000] [--large 600]
 *
 * It writes its inputs itself into a temporary folder: BreastMNIST train images (28 x 28 gray)
 * repeated to --small images, and --large synthetic 224 x 224 RGB photos (smooth shading, shapes,
 * edges and sensor-like noise). Both sides read the same PNG files and apply the same five
 * transforms (rotation 20 degrees, width and height shift 0.1, zoom 0.1, horizontal flip,
 * brightness 0.2, constant fill 0). Each makes one view per image with the same number of
 * worker processes or threads, and encodes each view as PNG at zlib level 6. scarce writes Arrow shards;
 * the peer (scripts/bench-augment-peer.py) writes length-prefixed records because Debian 12 has
 * no pyarrow. Raw pixel output is measured on its own line. Needs Debian's python3-torchvision.
 * Each measurement is repeated, the sides alternating. Rates are medians, and a ratio is the median
 * (and range) of the repeats' ratios, each from two runs back to back. Wall-clock rates depend on
 * what else the machine runs, so it also prints images per CPU-second (every thread or process of the run
 * counted), which other load disturbs less; run it when the machine is otherwise idle.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PNG_WINDOW_BITS, encodePngSync, Random, readMedMnistNpz, recordsOfSplit, type RawImage } from '@scarce/core';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** Draws a 224 px RGB image with shading, shapes, edges and noise, so PNG compression works as on photos. */
function syntheticPhoto(random: Random, size: number): RawImage {
  const pixels = new Uint8Array(size * size * 3);
  const base = [0, 1, 2].map(() => [random.uniform(60, 200), random.uniform(-1, 1), random.uniform(-1, 1), random.uniform(10, 40)]);
  const shapes = Array.from({ length: 6 }, () => ({
    x: random.uniform(0, size),
    y: random.uniform(0, size),
    radius: random.uniform(10, 60),
    colour: [random.uniform(0, 255), random.uniform(0, 255), random.uniform(0, 255)],
  }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const shape = shapes.find((candidate) => (x - candidate.x) ** 2 + (y - candidate.y) ** 2 < candidate.radius ** 2);
      for (let k = 0; k < 3; k++) {
        const [level, slopeX, slopeY, wave] = base[k];
        const shaded = shape === undefined ? level + slopeX * (x - size / 2) * 0.3 + slopeY * (y - size / 2) * 0.3 + 20 * Math.sin(x / wave) : shape.colour[k];
        pixels[(y * size + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(shaded + 3 * random.normal())));
      }
    }
  }
  return { pixels, height: size, width: size, channels: 3 };
}

async function writeInputs(root: string, small: number, large: number): Promise<{ small: string; large: string }> {
  const smallDir = join(root, 'in-28');
  const largeDir = join(root, 'in-224');
  const dataset = await readMedMnistNpz('fixtures/breastmnist/breastmnist.npz');
  const train = recordsOfSplit(dataset, 'train');
  for (const label of [0, 1]) await mkdir(join(smallDir, `class-${label}`), { recursive: true });
  for (let i = 0; i < small; i++) {
    const record = train[i % train.length];
    await writeFile(join(smallDir, `class-${record.label}`, `${String(i).padStart(6, '0')}.png`), encodePngSync(record));
  }
  const random = new Random(7);
  for (const label of [0, 1]) await mkdir(join(largeDir, `class-${label}`), { recursive: true });
  for (let i = 0; i < large; i++) {
    await writeFile(join(largeDir, `class-${i % 2}`, `${String(i).padStart(6, '0')}.png`), encodePngSync(syntheticPhoto(random, 224)));
  }
  return { small: smallDir, large: largeDir };
}

async function folderBytes(directory: string, suffix: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(directory)) if (name.endsWith(suffix)) total += (await stat(join(directory, name))).size;
  return total;
}

interface Measurement {
  seconds: number;
  /** CPU time of the whole run, every thread or process included. */
  cpuSeconds: number;
  bytes: number;
}

/** Times one scarce run in a plain Node process (see bench-augment-run.mjs), from its first read to its manifest. */
async function runScarce(input: string, outDir: string, workers: number, encoding: 'png' | 'raw'): Promise<Measurement> {
  await rm(outDir, { recursive: true, force: true });
  const output = execFileSync(process.execPath, ['scripts/bench-augment-run.mjs', input, outDir, String(workers), encoding], { encoding: 'utf8' });
  const { seconds, cpuSeconds } = JSON.parse(output.trim()) as { seconds: number; cpuSeconds: number };
  return { seconds, cpuSeconds, bytes: await folderBytes(outDir, '.arrow') };
}

function runPeer(input: string, outDir: string, workers: number, encoding: 'png' | 'raw'): Measurement {
  const output = execFileSync('/usr/bin/python3', ['scripts/bench-augment-peer.py', '--input', input, '--output', outDir, '--workers', String(workers), '--encoding', encoding, '--level', '6'], {
    encoding: 'utf8',
  });
  const result = JSON.parse(output.trim().split('\n').pop()!) as { seconds: number; cpu_seconds: number; bytes: number };
  return { seconds: result.seconds, cpuSeconds: result.cpu_seconds, bytes: result.bytes };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median ratio of the repeats, with their range. */
function ratioCell(ratios: number[]): string {
  return `${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
}

async function main(): Promise<void> {
  const workers = option('workers', 2);
  const repeats = option('repeats', 5);
  const counts = { small: option('small', 4000), large: option('large', 600) };
  const root = join(tmpdir(), `scarce-bench-augment-${process.pid}`);
  await mkdir(root, { recursive: true });
  const inputs = await writeInputs(root, counts.small, counts.large);
  const peerVersions = execFileSync('/usr/bin/python3', ['-c', 'import torch, torchvision, PIL; print(torch.__version__, torchvision.__version__, PIL.__version__)'], { encoding: 'utf8' }).trim();
  process.stdout.write(`workers ${workers}, median of ${repeats}, PNG window 2^${DEFAULT_PNG_WINDOW_BITS} bytes on scarce's side; node ${process.version} (zlib ${process.versions.zlib}); torch, torchvision, Pillow ${peerVersions}\n\n`);
  process.stdout.write(
    '| images | output | scarce img/s | torchvision img/s | ratio (range) | scarce img/CPU-s | torchvision img/CPU-s | CPU ratio (range) | scarce bytes/img | torchvision bytes/img |\n' +
      '|---|---|---|---|---|---|---|---|---|---|\n',
  );

  for (const [label, input, count] of [['28 x 28 gray', inputs.small, counts.small], ['224 x 224 RGB', inputs.large, counts.large]] as const) {
    for (const encoding of ['png', 'raw'] as const) {
      const ours: Measurement[] = [];
      const peer: Measurement[] = [];
      for (let repeat = 0; repeat < repeats; repeat++) {
        ours.push(await runScarce(input, join(root, 'out-scarce'), workers, encoding));
        peer.push(runPeer(input, join(root, 'out-peer'), workers, encoding));
        await rm(join(root, 'out-peer'), { recursive: true, force: true });
      }
      const oursRate = count / median(ours.map((m) => m.seconds));
      const peerRate = count / median(peer.map((m) => m.seconds));
      const oursCpuRate = count / median(ours.map((m) => m.cpuSeconds));
      const peerCpuRate = count / median(peer.map((m) => m.cpuSeconds));
      // Each repeat runs the two sides back to back, so both runs of a ratio meet the same load.
      const ratios = ours.map((m, i) => peer[i].seconds / m.seconds);
      const cpuRatios = ours.map((m, i) => peer[i].cpuSeconds / m.cpuSeconds);
      const row = [
        label,
        encoding === 'png' ? 'PNG level 6' : 'raw uint8',
        oursRate.toFixed(0),
        peerRate.toFixed(0),
        ratioCell(ratios),
        oursCpuRate.toFixed(0),
        peerCpuRate.toFixed(0),
        ratioCell(cpuRatios),
        (ours[0].bytes / count).toFixed(0),
        (peer[0].bytes / count).toFixed(0),
      ];
      process.stdout.write(`| ${row.join(' | ')} |\n`);
    }
  }
  await rm(root, { recursive: true, force: true });
}

await main();
