/**
 * Output style of `Progress`: `auto` draws a bar on a terminal and plain lines elsewhere, `bar`
 * and `lines` force one of those, and `json` writes one JSON object per line for other programs.
 */
export type ProgressFormat = 'auto' | 'bar' | 'lines' | 'json';

/** Options of `Progress`. Fields left out take the process-wide defaults of `setProgressDefaults`. */
export interface ProgressOptions {
  /** Stream the progress goes to; default stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Print nothing; default false. */
  quiet?: boolean;
  /** Output format; default `auto`. */
  format?: ProgressFormat;
}

/** One progress record as the `json` format writes it, one per line. */
export interface ProgressEvent {
  event: 'progress';
  label: string;
  done: number;
  total: number;
  /** Whole percent done, 0-100. */
  percent: number;
  elapsedSeconds: number;
  /** Estimated seconds left at the average rate so far, or null before the first step. */
  etaSeconds: number | null;
  note?: string;
}

/** Minimum time between two redraws of a terminal bar, so fast loops do not flood the terminal. */
const BAR_REDRAW_MS = 100;
const BAR_WIDTH = 24;

let defaults: ProgressOptions = {};
/** The terminal bar drawn last and not finished, which a log line must clear first. */
let openBar: Progress | undefined;

/**
 * Sets the options that every later `Progress` uses for the fields its own options leave out.
 * A command line sets them once from flags such as `--quiet` and `--json`, so the progress of
 * every stage follows them.
 */
export function setProgressDefaults(options: ProgressOptions): void {
  defaults = { ...options };
}

/**
 * Clears an unfinished progress bar drawn on `stream`, so that a log line written next starts
 * on a clean line. The bar is drawn again at its next step.
 */
export function clearProgressBar(stream: NodeJS.WritableStream = process.stderr): void {
  openBar?.clear(stream);
}

/** Formats seconds as `42s` or `3m05s`, or `?` when not finite. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  const rest = whole % 60;
  return minutes > 0 ? `${minutes}m${String(rest).padStart(2, '0')}s` : `${rest}s`;
}

/**
 * Progress of a counted loop: a redrawn bar with the count and time left on a terminal, a plain
 * line at every tenth of the way otherwise (logs, CI), or a JSON line at every whole percent.
 */
export class Progress {
  private done = 0;
  private readonly startedAt = Date.now();
  private lastStep = -1;
  private lastDrawAt = 0;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly quiet: boolean;
  private readonly format: Exclude<ProgressFormat, 'auto'>;

  constructor(private readonly label: string, private readonly total: number, options: ProgressOptions = {}) {
    this.stream = options.stream ?? defaults.stream ?? process.stderr;
    this.quiet = options.quiet ?? defaults.quiet ?? false;
    const format = options.format ?? defaults.format ?? 'auto';
    const terminalFormat = this.stream.isTTY === true ? 'bar' : 'lines';
    this.format = format === 'auto' ? terminalFormat : format;
  }

  /** Advances by `count` steps, with an optional note (e.g. the current loss). */
  tick(count = 1, note = ''): void {
    this.done = Math.min(this.total, this.done + count);
    if (this.quiet) return;
    const fraction = this.total === 0 ? 1 : this.done / this.total;
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const left = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : Infinity;
    const finished = this.done === this.total;

    if (this.format === 'bar') {
      if (!finished && Date.now() - this.lastDrawAt < BAR_REDRAW_MS) return;
      this.lastDrawAt = Date.now();
      const filled = Math.round(fraction * BAR_WIDTH);
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${this.status(fraction, elapsed, left, note)}\x1b[K`);
      if (finished) this.stream.write('\n');
      openBar = finished ? undefined : this;
      return;
    }

    // Lines and JSON records are written once per step: a tenth of the way, or a whole percent.
    const step = Math.floor(fraction * (this.format === 'json' ? 100 : 10));
    if (step <= this.lastStep) return;
    this.lastStep = step;
    if (this.format === 'lines') {
      this.stream.write(`${this.status(fraction, elapsed, left, note)}\n`);
      return;
    }
    const record: ProgressEvent = {
      event: 'progress',
      label: this.label,
      done: this.done,
      total: this.total,
      percent: Math.floor(fraction * 100),
      elapsedSeconds: Number(elapsed.toFixed(1)),
      etaSeconds: Number.isFinite(left) ? Number(left.toFixed(1)) : null,
      ...(note ? { note } : {}),
    };
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  /** Erases this bar's line when it is drawn on `stream`, and redraws it at the next step. */
  clear(stream: NodeJS.WritableStream): void {
    if (stream !== this.stream || openBar !== this) return;
    this.stream.write('\r\x1b[K');
    this.lastDrawAt = 0;
    openBar = undefined;
  }

  private status(fraction: number, elapsed: number, left: number, note: string): string {
    const percent = (fraction * 100).toFixed(0);
    return `${this.label} ${this.done}/${this.total} ${percent}% ${formatSeconds(elapsed)} elapsed, ${formatSeconds(left)} left${note ? ` ${note}` : ''}`;
  }
}
