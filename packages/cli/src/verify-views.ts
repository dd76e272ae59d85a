import type { ImageRecord } from '@scarce/core';
import { InputError } from '@scarce/core';
import { applyTransform } from '@scarce/augment';

/**
 * Checks that augmented rows from another folder were made from this data's real train images:
 * each row's params are replayed on the train image its source index names, and the pixels must
 * match exactly. Matching indices and class names alone would accept views of other images,
 * including the validation or test images of another split of the same data.
 */
export async function verifyAugmentedSources(trainRecords: readonly ImageRecord[], augmented: readonly ImageRecord[], folder: string): Promise<void> {
  const sources = new Map(trainRecords.filter((record) => record.origin === 'real').map((record) => [record.sourceIndex, record]));
  for (const [row, view] of augmented.entries()) {
    const source = sources.get(view.sourceIndex);
    const fail = (reason: string) =>
      new InputError(
        `${folder}: augmented row ${row} (source index ${view.sourceIndex}, view ${view.view}) ${reason}, so it was not made from this data's train images. Augment this dataset's train split and pass that folder.`,
      );
    if (source === undefined) throw fail('names no real train image');
    if (view.params === null) throw fail('has no params to replay');
    const replayed = await applyTransform(source, view.params);
    const same =
      replayed.height === view.height &&
      replayed.width === view.width &&
      replayed.channels === view.channels &&
      replayed.pixels.length === view.pixels.length &&
      replayed.pixels.every((value, i) => value === view.pixels[i]);
    if (!same) throw fail('does not replay from the train image with that index');
  }
}
