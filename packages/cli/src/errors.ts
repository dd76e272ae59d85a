export { InputError } from '@scarce/core';

/** Exit code of a run that failed on its own (a bug, a crash, a full disk). */
export const EXIT_FAILURE = 1;
/** Exit code of a run rejected for bad input: a wrong flag, an invalid config, a missing file. */
export const EXIT_BAD_INPUT = 2;
