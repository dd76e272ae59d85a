import { clearProgressBar, setProgressDefaults } from '@scarce/core';

/** Output flags shared by the commands that run for a while. */
export interface OutputOptions {
  /** Print no progress; log lines and errors still appear. Default false. */
  quiet?: boolean;
  /** Write JSON lines on stdout in place of text on stderr. Default false. */
  json?: boolean;
}

/** Writers of a command's log lines and events. */
export interface CommandOutput {
  /** Writes one log line: text on stderr, or a `log` event on stdout with `--json`. */
  log: (line: string) => void;
  /** Writes a machine-readable event on stdout with `--json`; does nothing otherwise. */
  event: (name: string, fields?: Record<string, unknown>) => void;
  json: boolean;
}

let jsonActive = false;

function writeJsonLine(name: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ event: name, time: new Date().toISOString(), ...fields })}\n`);
}

/**
 * Sets up a command's output from its `--quiet` and `--json` flags. With `--json`, every log line,
 * progress step and event is one JSON object on stdout with an `event` field (`log`, `progress`,
 * `plan`, `done` or `error`), so stdout can be piped to a JSON-lines reader. Without it, log lines
 * and progress go to stderr as text.
 */
export function configureOutput(options: OutputOptions): CommandOutput {
  const json = options.json ?? false;
  const quiet = options.quiet ?? false;
  jsonActive = json;
  setProgressDefaults(json ? { format: 'json', stream: process.stdout, quiet } : { quiet });
  if (json) {
    return { json, log: (line) => writeJsonLine('log', { message: line }), event: (name, fields = {}) => writeJsonLine(name, fields) };
  }
  const log = (line: string) => {
    clearProgressBar(process.stderr);
    process.stderr.write(`${line}\n`);
  };
  return { json, log, event: () => {} };
}

/** Writes an `error` event on stdout when the command runs with `--json`, beside the message on stderr. */
export function writeErrorEvent(message: string, exitCode: number): void {
  if (jsonActive) writeJsonLine('error', { message, exitCode });
}
