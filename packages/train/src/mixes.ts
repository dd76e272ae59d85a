import { createHash } from 'node:crypto';
import type { ImageRecord, Origin } from '@scarce/core';
import { InputError, ORIGINS } from '@scarce/core';

/** The mixes a benchmark compares by default: real only, each addition, and synthetic only. */
export const STANDARD_MIXES = ['real', 'real+augmented', 'real+synthetic', 'real+augmented+synthetic', 'synthetic'] as const;

/** Parses a mix name such as `real+augmented` into the origins it draws training rows from. */
export function parseMix(name: string): Origin[] {
  const origins = name.split('+').map((part) => part.trim());
  for (const origin of origins) {
    if (!(ORIGINS as readonly string[]).includes(origin)) {
      throw new InputError(`Invalid mix '${name}': '${origin}' is not one of ${ORIGINS.join(', ')}. Join origins with '+', e.g. real+synthetic.`);
    }
  }
  if (new Set(origins).size !== origins.length) throw new InputError(`Invalid mix '${name}': an origin is named twice.`);
  return origins as Origin[];
}

/** Returns the training rows of a mix: every train-split record whose origin the mix names, in input order. */
export function composeMix(trainRecords: readonly ImageRecord[], origins: readonly Origin[]): ImageRecord[] {
  return trainRecords.filter((record) => record.split === 'train' && origins.includes(record.origin));
}

function pixelDigest(record: ImageRecord): string {
  return createHash('sha1').update(record.pixels).digest('hex');
}

/**
 * Rejects training rows that could leak evaluation data: augmented or synthetic rows outside the
 * train split, augmented rows whose source is not a real train record, and augmented or
 * synthetic rows whose pixels equal a validation or test image. Real training images that equal
 * an evaluation image are returned rather than rejected, because public benchmarks ship such
 * duplicates in their official splits (BreastMNIST has one between train and test).
 */
export function checkNoLeakage(trainRows: readonly ImageRecord[], evaluationRows: readonly ImageRecord[]): string[] {
  const realTrainIndices = new Set(trainRows.filter((row) => row.origin === 'real').map((row) => row.sourceIndex));
  for (const row of trainRows) {
    if (row.split !== 'train') {
      throw new InputError(`A ${row.origin} training row is in the ${row.split} split; validation and test rows must never be trained on.`);
    }
    if (row.origin === 'augmented' && !realTrainIndices.has(row.sourceIndex)) {
      throw new InputError(
        `An augmented row derives from source index ${row.sourceIndex}, which is not a real train image. ` +
          'Augment only the train split.',
      );
    }
  }
  for (const row of evaluationRows) {
    if (row.origin !== 'real') throw new InputError(`The ${row.split} split contains a ${row.origin} row; validation and test rows must be real.`);
  }

  const evaluationDigests = new Map(evaluationRows.map((row) => [pixelDigest(row), row]));
  const duplicates: string[] = [];
  for (const row of trainRows) {
    const match = evaluationDigests.get(pixelDigest(row));
    if (match === undefined) continue;
    const description = `${row.origin} train image ${row.sourceIndex ?? '(synthetic)'} equals ${match.split} image ${match.sourceIndex}`;
    if (row.origin !== 'real') throw new InputError(`A training row could leak evaluation data: ${description}.`);
    duplicates.push(description);
  }
  return duplicates;
}
