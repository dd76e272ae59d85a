import { mkdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import fg from 'fast-glob';
import pLimit from 'p-limit';
import { IMAGE_EXTENSIONS, InputError, parseBackendChoice, readImageFile, selectBackend, writeFileAtomic, type RawImage } from '@scarce/core';
import { argmaxRows, loadClassifier, predictImages } from '@scarce/train';

/** Quotes a CSV field when it contains a comma, quote or line break (RFC 4180). */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('Write class probabilities of every image under a folder as CSV, with a saved scarce classifier.')
    .argument('<model>', 'classifier folder (with model.json), model.json path or URL, as written by scarce run or scarce train --save')
    .argument('<folder>', 'folder of PNG, JPEG or WebP images, searched recursively')
    .option('--out <file>', 'CSV file to write', 'predictions.csv')
    .option('--no-test-time-flip', "score each image alone, even when the classifier was trained and measured with test-time flips")
    .addOption(new Option('--on-error <policy>', 'unreadable images: stop with an error, or skip them and name each on stderr').choices(['error', 'skip']).default('error'))
    .option('--backend <name>', 'tfjs backend: auto, node-gpu, node, wasm or cpu')
    .addHelpText('after', '\nExample:\n  scarce predict runs/demo/models/real my-scans --out my-scans.csv')
    .action(async (modelSource: string, folder: string, options: { out: string; backend?: string; testTimeFlip: boolean; onError: 'error' | 'skip' }) => {
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const folderKind = await stat(folder).then((found) => (found.isDirectory() ? 'folder' : 'file'), () => 'missing');
      if (folderKind === 'missing') throw new InputError(`Image folder ${folder} not found. Give the folder of images to predict.`);
      if (folderKind === 'file') throw new InputError(`${folder} is a file, not a folder. Give the folder that contains it, or a folder of images.`);
      if (await stat(options.out).then((found) => found.isDirectory(), () => false)) {
        throw new InputError(`--out ${options.out} is a folder. Give a CSV file path, e.g. --out ${join(options.out, 'predictions.csv')}.`);
      }
      await selectBackend({ backend: parseBackendChoice(options.backend, '--backend'), log });
      const loaded = await loadClassifier(modelSource);
      const testTimeFlip = loaded.metadata.testTimeFlip === true && options.testTimeFlip;
      const classifier = { ...loaded, metadata: { ...loaded.metadata, testTimeFlip } };
      if (testTimeFlip) log('averaging each image\'s probabilities with its mirror\'s (test-time flips), as the classifier was measured; --no-test-time-flip scores each image alone');
      const found = (await fg(`**/*.{${IMAGE_EXTENSIONS.join(',')}}`, { cwd: folder, absolute: true, caseSensitiveMatch: false })).sort();
      if (found.length === 0) throw new InputError(`${folder} has no images (.${IMAGE_EXTENSIONS.join(', .')}).`);

      // Images are read as in training: resized to the training size and converted to its channels.
      const { size, channels } = classifier.metadata.preprocess ?? {};
      if (size !== undefined) log(`resizing every image to ${size[0]}x${size[1]} first, as in training`);
      const limit = pLimit(8);
      const read = await Promise.all(
        found.map((path) =>
          limit(async () => {
            try {
              return await readImageFile(path, { size, channels });
            } catch (error) {
              if (options.onError !== 'skip' || !(error instanceof InputError)) throw error;
              return error;
            }
          }),
        ),
      );
      const paths = found.filter((_, i) => !(read[i] instanceof InputError));
      const images = read.filter((image): image is RawImage => !(image instanceof InputError));
      for (const error of read.filter((image): image is InputError => image instanceof InputError)) log(`skipped ${error.message}`);
      if (images.length === 0) throw new InputError(`None of the ${found.length} images under ${folder} could be read; the log lists why.`);
      const trainedSize = classifier.metadata.preprocess?.imageSize;
      if (size === undefined && trainedSize !== undefined) {
        const [height, width] = trainedSize;
        const others = images.filter((image) => image.height !== height || image.width !== width).length;
        if (others > 0) {
          log(
            `warning: ${others} of ${images.length} images are not ${height}x${width} like the training images, so they reach the backbone at another scale and their predictions may shift. ` +
              `Resize them to ${height}x${width} first.`,
          );
        }
      }
      const probabilities = predictImages(classifier, images);
      const { classNames } = classifier.metadata;
      const predicted = argmaxRows(probabilities, classNames.length);

      const header = ['path', 'predicted', ...classNames.map((name) => `p_${name}`)].map(csvField).join(',');
      const rows = paths.map((path, i) => {
        const scores = classNames.map((_, k) => probabilities[i * classNames.length + k].toFixed(6));
        return [csvField(relative(resolve(folder), path)), csvField(classNames[predicted[i]]), ...scores].join(',');
      });
      await mkdir(dirname(resolve(options.out)), { recursive: true });
      await writeFileAtomic(options.out, `${[header, ...rows].join('\n')}\n`);
      const skipped = found.length - paths.length;
      log(`wrote predictions for ${paths.length} ${paths.length === 1 ? 'image' : 'images'} to ${options.out}${skipped > 0 ? ` and skipped ${skipped}` : ''}`);
    });
}
