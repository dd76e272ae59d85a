/**
 * An error caused by the caller's input (a missing or malformed file, an invalid option) rather
 * than by scarce itself. The CLI exits with code 2 for these and 1 for anything else.
 */
export class InputError extends Error {
  override name = 'InputError';
}
