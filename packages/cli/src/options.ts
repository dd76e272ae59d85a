import { InvalidArgumentError } from 'commander';

/** Parses a finite number option. */
export function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError(`expected a number but received '${value}'.`);
  return parsed;
}

/** Parses a non-negative integer option. */
export function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError(`expected a non-negative integer but received '${value}'.`);
  return parsed;
}

/** Parses a comma-separated list of non-negative integers. */
export function integerList(value: string): number[] {
  return value.split(',').map((part) => integer(part.trim()));
}
