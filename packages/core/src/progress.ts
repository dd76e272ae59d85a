/** Options of `Progress`. */
export interface ProgressOptions {
  /** Stream the progress goes to; default stderr. */
  stream?: NodeJS.WriteStream;
  /** Print nothing; default false. */
  quiet?: boolean;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  return minutes > 0 ? `${minutes}m${String(rest).padStart(2, '0')}s` : `${rest}s`;
}

/**
 * Progress of a counted loop: a redrawn bar with the count and time left on a terminal, and a
 * plain line at every tenth of the way otherwise (logs, CI).
 */
export class Progress {
  private done = 0;
  private readonly startedAt = Date.now();
  private lastDecile = -1;
  private readonly stream: NodeJS.WriteStream;
  private readonly quiet: boolean;

  constructor(private readonly label: string, private readonly total: number, options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.quiet = options.quiet ?? false;
  }

  /** Advances by `count` steps, with an optional note (e.g. the current loss). */
  tick(count = 1, note = ''): void {
    this.done = Math.min(this.total, this.done + count);
    if (this.quiet) return;
    const fraction = this.total === 0 ? 1 : this.done / this.total;
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const left = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : Infinity;
    const status = `${this.label} ${this.done}/${this.total} ${(fraction * 100).toFixed(0)}% ${formatSeconds(elapsed)} elapsed, ${formatSeconds(left)} left${note ? ` ${note}` : ''}`;

    if (this.stream.isTTY) {
      const width = 24;
      const filled = Math.round(fraction * width);
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${status}\x1b[K`);
      if (this.done === this.total) this.stream.write('\n');
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(`${status}\n`);
    }
  }
}
