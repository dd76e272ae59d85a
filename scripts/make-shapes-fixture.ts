/**
 * Draws fixtures/shapes/: a small folder of images, one subfolder per class, for the example
 * config of a plain image folder and its test.
 *
 *   node --import tsx scripts/make-shapes-fixture.ts [--out fixtures/shapes] [--per-class 20]
 *
 * Each image is a grayscale PNG of 36 to 48 pixels a side (height and width drawn separately,
 * so a run needs data.size) with a bright filled circle or square on a noisy dark background.
 * The drawing is seeded, so a rerun writes the same bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodePngSync, Random } from '@scarce/core';

const CLASSES = ['circle', 'square'] as const;
const SEED = 20240;

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

function drawShape(shape: (typeof CLASSES)[number], random: Random): { pixels: Uint8Array; height: number; width: number } {
  const height = random.integer(36, 49);
  const width = random.integer(36, 49);
  const background = random.uniform(40, 80);
  const foreground = random.uniform(170, 230);
  const radius = random.uniform(0.2, 0.32) * Math.min(height, width);
  const centreY = random.uniform(radius + 2, height - radius - 2);
  const centreX = random.uniform(radius + 2, width - radius - 2);

  const pixels = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dy = y + 0.5 - centreY;
      const dx = x + 0.5 - centreX;
      const inside = shape === 'circle' ? dx * dx + dy * dy <= radius * radius : Math.abs(dx) <= radius && Math.abs(dy) <= radius;
      const level = (inside ? foreground : background) + 12 * random.normal();
      pixels[y * width + x] = Math.max(0, Math.min(255, Math.round(level)));
    }
  }
  return { pixels, height, width };
}

const out = option('out', 'fixtures/shapes');
const perClass = Number(option('per-class', '20'));
const random = new Random(SEED);
for (const shape of CLASSES) {
  await mkdir(join(out, shape), { recursive: true });
  for (let i = 0; i < perClass; i++) {
    const image = drawShape(shape, random);
    await writeFile(join(out, shape, `${shape}-${String(i).padStart(2, '0')}.png`), encodePngSync({ ...image, channels: 1 }));
  }
}
process.stdout.write(`wrote ${perClass} images of each of ${CLASSES.join(', ')} to ${out}\n`);
