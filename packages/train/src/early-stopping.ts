/** Direction in which the monitored value improves. */
export type MonitorMode = 'auto' | 'min' | 'max';

/** Options of `EarlyStopping`, with Keras 3's names and defaults. */
export interface EarlyStoppingOptions {
  /** Logged value to watch, e.g. `val_loss`, `val_accuracy`, `val_auc`; default `val_loss`. */
  monitor?: string;
  /** `min`, `max`, or `auto` (minimise names ending in loss or error, maximise accuracy, auc, precision, recall, f1); default `auto`. */
  mode?: MonitorMode;
  /** Smallest change that counts as an improvement (absolute); default 0. */
  minDelta?: number;
  /** Epochs without improvement before training stops; default 0. */
  patience?: number;
  /** Value the monitor must beat for patience to reset; default none. */
  baseline?: number;
  /** Restore the weights of the best epoch when training ends, stopped early or not; default false. */
  restoreBestWeights?: boolean;
  /** Epochs (0-based count) to wait before monitoring starts; default 0. */
  startFromEpoch?: number;
}

const MINIMISED = /(^|_)(loss|error|mse|mae|crossentropy)$/;
const MAXIMISED = /(^|_)(acc|accuracy|auc|precision|recall|f1)$/;

/** Decides whether a metric is minimised or maximised, from its name, as Keras's `auto` mode does. */
export function resolveMode(monitor: string, mode: MonitorMode): 'min' | 'max' {
  if (mode !== 'auto') return mode;
  const name = monitor.replace(/^val_/, '');
  if (MINIMISED.test(name)) return 'min';
  if (MAXIMISED.test(name)) return 'max';
  throw new Error(
    `EarlyStopping cannot tell whether '${monitor}' should be minimised or maximised. Set mode to 'min' or 'max'.`,
  );
}

/** Decision for the training loop after an epoch. */
export interface EarlyStoppingDecision {
  /** True when this epoch is the best so far (its weights should be kept when restoring). */
  improved: boolean;
  /** True when the best weights should be snapshotted now. */
  snapshot: boolean;
  /** True when training should stop after this epoch. */
  stop: boolean;
}

/**
 * Early stopping with the semantics of Keras 3's `EarlyStopping` callback, independent of any
 * model: the training loop reports each epoch's logs, takes a weight snapshot when the decision requests one, and
 * restores `bestEpoch`'s snapshot at the end when `restoreBestWeights` is set.
 * Epoch numbers are 0-based here, as in Keras; messages print them 1-based.
 */
export class EarlyStopping {
  readonly monitor: string;
  readonly mode: 'min' | 'max';
  readonly minDelta: number;
  readonly patience: number;
  readonly baseline: number | undefined;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;

  /** Best monitored value so far (±Infinity before the first). */
  best: number;
  /** 0-based epoch of the best value, or of the first monitored epoch when none improved. */
  bestEpoch = 0;
  /** 0-based epoch at which training was stopped; undefined when it ran out of epochs. */
  stoppedEpoch: number | undefined;
  /** Epochs whose monitored value was compared: those from `startFromEpoch` on that were not NaN. */
  monitoredEpochs = 0;
  private wait = 0;
  private hasSnapshot = false;

  constructor(options: EarlyStoppingOptions = {}) {
    this.monitor = options.monitor ?? 'val_loss';
    this.mode = resolveMode(this.monitor, options.mode ?? 'auto');
    this.minDelta = Math.abs(options.minDelta ?? 0);
    this.patience = options.patience ?? 0;
    this.baseline = options.baseline;
    this.restoreBestWeights = options.restoreBestWeights ?? false;
    this.startFromEpoch = options.startFromEpoch ?? 0;
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  private isImprovement(value: number, reference: number): boolean {
    return this.mode === 'min' ? value + this.minDelta < reference : value - this.minDelta > reference;
  }

  /** Takes one epoch's logs and returns whether to snapshot weights and whether to stop. */
  onEpochEnd(epoch: number, logs: Record<string, number>): EarlyStoppingDecision {
    const value = logs[this.monitor];
    if (value === undefined) {
      throw new Error(
        `EarlyStopping monitors '${this.monitor}', which is not logged. Logged values: ${Object.keys(logs).join(', ')}.`,
      );
    }
    if (epoch < this.startFromEpoch || Number.isNaN(value)) return { improved: false, snapshot: false, stop: false };
    this.monitoredEpochs++;

    let snapshot = false;
    if (this.restoreBestWeights && !this.hasSnapshot) {
      // Until something improves, the first monitored epoch's weights count as the best.
      snapshot = true;
      this.hasSnapshot = true;
      this.bestEpoch = epoch;
    }

    this.wait++;
    if (this.isImprovement(value, this.best)) {
      this.best = value;
      this.bestEpoch = epoch;
      // Patience resets only when the value beats both the previous best and the baseline.
      if (this.baseline === undefined || this.isImprovement(value, this.baseline)) this.wait = 0;
      return { improved: true, snapshot: this.restoreBestWeights, stop: false };
    }

    const stop = this.wait >= this.patience && epoch > 0;
    if (stop) this.stoppedEpoch = epoch;
    return { improved: false, snapshot, stop };
  }

  /** Returns one line for the log when training ends, with 1-based epochs. */
  summary(): string {
    if (this.monitoredEpochs === 0) {
      return `early stopping: ran all epochs; no epoch had a value of ${this.monitor} to compare (startFromEpoch ${this.startFromEpoch}, or only NaN values), so the last epoch's weights were kept`;
    }
    const stopped = this.stoppedEpoch === undefined ? 'ran all epochs' : `stopped early at epoch ${this.stoppedEpoch + 1}`;
    const best = Number.isFinite(this.best) ? `${this.monitor} ${this.best.toFixed(4)}` : `${this.monitor} never improved`;
    const restored = this.restoreBestWeights ? `, restored weights of epoch ${this.bestEpoch + 1}` : '';
    return `early stopping: ${stopped}; best epoch ${this.bestEpoch + 1} (${best})${restored}`;
  }
}
