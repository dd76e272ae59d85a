import { resolveMode, type MonitorMode } from './early-stopping.js';

/** Options of `ReduceLrOnPlateau`, with Keras 3's names and defaults. */
export interface ReduceLrOnPlateauOptions {
  /** Logged value to watch; default `val_loss`. */
  monitor?: string;
  /** Factor the learning rate is multiplied by, in (0, 1); default 0.1. */
  factor?: number;
  /** Epochs without improvement before the rate is reduced; default 10. */
  patience?: number;
  /** `auto` decides from the metric's name as `EarlyStopping` does; default `auto`. */
  mode?: MonitorMode;
  /** Smallest change that counts as an improvement; default 1e-4. */
  minDelta?: number;
  /** Epochs after a reduction during which no further reduction happens; default 0. */
  cooldown?: number;
  /** Lower bound of the learning rate; default 0. */
  minLearningRate?: number;
}

/**
 * Reduces the learning rate when a metric stops improving, following Keras 3's
 * `ReduceLROnPlateau`. One difference: `auto` mode uses `resolveMode`, so `val_auc` is maximised
 * (Keras maximises only names containing "acc").
 */
export class ReduceLrOnPlateau {
  readonly monitor: string;
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly minDelta: number;
  readonly cooldown: number;
  readonly minLearningRate: number;
  private best: number;
  private wait = 0;
  private cooldownCounter = 0;

  constructor(options: ReduceLrOnPlateauOptions = {}) {
    this.monitor = options.monitor ?? 'val_loss';
    this.mode = resolveMode(this.monitor, options.mode ?? 'auto');
    this.factor = options.factor ?? 0.1;
    if (!(this.factor > 0 && this.factor < 1)) throw new Error(`ReduceLrOnPlateau factor must be in (0, 1) but received ${this.factor}.`);
    this.patience = options.patience ?? 10;
    this.minDelta = options.minDelta ?? 1e-4;
    this.cooldown = options.cooldown ?? 0;
    this.minLearningRate = options.minLearningRate ?? 0;
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  private improves(value: number): boolean {
    return this.mode === 'min' ? value < this.best - this.minDelta : value > this.best + this.minDelta;
  }

  /** Takes one epoch's logs and the current rate; returns the rate for the next epoch. */
  onEpochEnd(logs: Record<string, number>, learningRate: number): number {
    const value = logs[this.monitor];
    if (value === undefined) {
      throw new Error(`ReduceLrOnPlateau monitors '${this.monitor}', which is not logged. Logged values: ${Object.keys(logs).join(', ')}.`);
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.wait = 0;
    }
    if (this.improves(value)) {
      this.best = value;
      this.wait = 0;
      return learningRate;
    }
    if (this.cooldownCounter > 0) return learningRate;

    this.wait++;
    if (this.wait < this.patience || learningRate <= Math.fround(this.minLearningRate)) return learningRate;
    this.cooldownCounter = this.cooldown;
    this.wait = 0;
    return Math.max(learningRate * this.factor, this.minLearningRate);
  }
}
