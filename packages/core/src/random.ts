/**
 * Seeded randomness. Every random choice in scarce comes from a generator made here, and
 * per-record seeds are derived from the run seed and the record's identity, so results do
 * not depend on the order or concurrency in which records are processed.
 */

/** 32-bit FNV-1a hash of a string. */
function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Mixes a 32-bit value (the finaliser of MurmurHash3). */
function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Derives an unsigned 32-bit seed from a parent seed and any number of keys. */
export function deriveSeed(seed: number, ...keys: Array<string | number>): number {
  let h = mix32(seed ^ 0x9e3779b9);
  for (const key of keys) {
    const keyHash = typeof key === 'number' ? mix32(key >>> 0) : hashString(key);
    h = mix32(h ^ (keyHash + 0x9e3779b9 + (h << 6) + (h >>> 2)));
  }
  return h;
}

/** A seeded pseudo-random generator (mulberry32), fast and good enough for augmentation and sampling. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Returns a float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Returns a float in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** Returns an integer in [low, high). */
  integer(low: number, high: number): number {
    return low + Math.floor((high - low) * this.next());
  }

  /** Returns true with the given probability. */
  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** Returns a standard normal sample (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Returns a Gamma(shape, 1) sample by Marsaglia and Tsang's method (2000). `shape` must be positive. */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`Gamma shape must be positive but received ${shape}.`);
    // The method needs a shape of at least 1, so smaller shapes use Gamma(a) = Gamma(a + 1) * U^(1 / a).
    if (shape < 1) return this.gamma(shape + 1) * (1 - this.next()) ** (1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const v = (1 + c * x) ** 3;
      if (v <= 0) continue;
      const u = 1 - this.next();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  }

  /** Returns a Beta(a, b) sample in [0, 1]. Both shapes must be positive. */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }

  /** Shuffles an array in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.integer(0, i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** Returns an unsigned 32-bit integer, for seeding another generator. */
  nextSeed(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }
}
