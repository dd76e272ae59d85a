import { InvalidArgumentError } from 'commander';

/** Parses a finite number option. */
export function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError(`expected a number but received '${value}'.`);
  return parsed;
}

/** Parses a non-negative integer option. */
export function integer(value: string): number {
  // Decimal digits only: Number() would also take '' (as 0), '0x0c' and '1e1'.
  if (!/^\s*\d+\s*$/.test(value)) throw new InvalidArgumentError(`expected a non-negative integer but received '${value}'.`);
  return Number(value);
}

/** Parses a comma-separated list of non-negative integers. */
export function integerList(value: string): number[] {
  return value.split(',').map((part) => integer(part.trim()));
}

/** Parses `HxW` (pixels) into [height, width]. */
export function pixelSize(value: string): [number, number] {
  const match = /^(\d+)x(\d+)$/i.exec(value.trim());
  if (match === null || Number(match[1]) < 1 || Number(match[2]) < 1) {
    throw new InvalidArgumentError(`expected HEIGHTxWIDTH in pixels, e.g. 224x224, but received '${value}'.`);
  }
  return [Number(match[1]), Number(match[2])];
}
