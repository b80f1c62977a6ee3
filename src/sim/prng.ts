/**
 * Seeded pseudo-random numbers for the simulation.
 *
 * xoshiro128** (Blackman and Vigna) seeded through splitmix32. Every source of
 * randomness in the model comes from a `Prng` derived from the run's seed, so the
 * same seed gives the same run byte for byte. `Math.random` is never used.
 */

/** One step of splitmix32: a well-mixed 32-bit value from a 32-bit state. */
function splitmix32(state: number): [next: number, out: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** A deterministic 32-bit generator (xoshiro128**). */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the generator; any integer (or the low 32 bits of a larger one) is a valid seed. */
  constructor(seed: number) {
    let st = seed >>> 0;
    let o: number;
    [st, o] = splitmix32(st);
    this.s0 = o;
    [st, o] = splitmix32(st);
    this.s1 = o;
    [st, o] = splitmix32(st);
    this.s2 = o;
    [st, o] = splitmix32(st);
    this.s3 = o;
    // The all-zero state is the one state xoshiro can never leave.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next value, uniform in [0, 2^32). */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float uniform in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer uniform in [0, n) for 1 <= n <= 2^32 (rejection sampling, no modulo bias). */
  nextInt(n: number): number {
    if (!(n >= 1 && n <= 4294967296) || !Number.isInteger(n)) {
      throw new RangeError(`Prng.nextInt needs a whole number from 1 to 2^32, got ${n}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** An integer uniform in [lo, hi] (both inclusive). */
  nextRange(lo: number, hi: number): number {
    return lo + this.nextInt(hi - lo + 1);
  }

  /** An exponentially distributed float with the given mean. */
  nextExponential(mean: number): number {
    return -Math.log(1 - this.nextFloat()) * mean;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A new independent generator seeded from this one (for a sub-component's own stream). */
  fork(): Prng {
    return new Prng(this.nextU32());
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
