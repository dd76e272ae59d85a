import { InputError } from '@scarce/core';

/**
 * Ends the script on an uncaught error: a rejected input (`InputError`, or an option that
 * `parseArgs` rejects) with its message, `hint` and exit code 2, anything else with its stack and
 * exit code 1. Call it before the tfjs backend is selected. The wasm backend then adds its own
 * handler after this one, and that handler would print the backend's minified source above the
 * message.
 */
export function exitOnInputError(hint: string): void {
  process.on('uncaughtException', (error) => {
    // node:util parseArgs rejects unknown and malformed options with these codes.
    const badOption = (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    if (error instanceof InputError || badOption) {
      console.error(`${error.message.replace(/\.?$/, '.')} ${hint}`);
      process.exit(2);
    }
    console.error(error.stack ?? String(error));
    process.exit(1);
  });
}
