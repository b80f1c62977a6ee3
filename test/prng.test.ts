/**
 * The seeded generator (src/sim/prng.ts): xoshiro128** seeded through splitmix32.
 * Checked against an independent BigInt implementation of both algorithms, and for the
 * properties the engine relies on: same seed, same stream; bounds; determinism of forks.
 */
import { describe, expect, test } from 'vitest';
import { Prng } from '../src/sim/prng.ts';

const M32 = 0xffffffffn;

/** Reference xoshiro128** (Blackman and Vigna) with splitmix32 seeding, in BigInt arithmetic. */
function referenceStream(seed: number, n: number): number[] {
  let st = BigInt(seed >>> 0);
  const mix = (): bigint => {
    st = (st + 0x9e3779b9n) & M32;
    let z = st;
    z = ((z ^ (z >> 16n)) * 0x85ebca6bn) & M32;
    z = ((z ^ (z >> 13n)) * 0xc2b2ae35n) & M32;
    return z ^ (z >> 16n);
  };
  const s = [mix(), mix(), mix(), mix()];
  if ((s[0] | s[1] | s[2] | s[3]) === 0n) s[0] = 1n;
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M32;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number((rotl((s[1] * 5n) & M32, 7n) * 9n) & M32));
    const t = (s[1] << 9n) & M32;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
  }
  return out;
}

function take(p: Prng, n: number): number[] {
  return Array.from({ length: n }, () => p.nextU32());
}

describe('Prng', () => {
  test('matches an independent xoshiro128** + splitmix32 implementation', () => {
    for (const seed of [0, 1, 2, 42, 0x7fffffff, 0xffffffff, 123456789]) {
      expect(take(new Prng(seed), 200)).toEqual(referenceStream(seed, 200));
    }
  });

  test('the same seed gives the same sequence; different seeds differ', () => {
    expect(take(new Prng(7), 1000)).toEqual(take(new Prng(7), 1000));
    const streams = new Set([1, 2, 3, 4, 5].map((s) => take(new Prng(s), 8).join(',')));
    expect(streams.size).toBe(5);
    // Seeds are taken modulo 2^32.
    expect(take(new Prng(2 ** 32 + 9), 10)).toEqual(take(new Prng(9), 10));
  });

  test('nextInt stays in [0, n) and reaches both ends', () => {
    const p = new Prng(11);
    for (const n of [1, 2, 3, 6, 7, 10, 1000, 2 ** 31 + 1]) {
      let min = Number.POSITIVE_INFINITY;
      let max = -1;
      let bad = 0;
      for (let i = 0; i < 2000; i++) {
        const v = p.nextInt(n);
        if (!Number.isInteger(v) || v < 0 || v >= n) bad++;
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(bad).toBe(0);
      if (n <= 10) expect([min, max]).toEqual([0, n - 1]);
    }
    const big = p.nextInt(2 ** 32);
    expect(big).toBeGreaterThanOrEqual(0);
    expect(big).toBeLessThan(2 ** 32);
  });

  test('nextInt is close to uniform', () => {
    const p = new Prng(3);
    const counts = new Array(6).fill(0);
    const n = 60000;
    for (let i = 0; i < n; i++) counts[p.nextInt(6)]++;
    // chi-square with 5 degrees of freedom; 20.5 is the 0.999 quantile.
    const chi = counts.reduce((acc, c) => acc + (c - n / 6) ** 2 / (n / 6), 0);
    expect(chi).toBeLessThan(20.5);
  });

  test('nextInt rejects bounds that are not whole numbers from 1 to 2^32', () => {
    const p = new Prng(1);
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 32 + 1, Number.POSITIVE_INFINITY]) {
      expect(() => p.nextInt(bad)).toThrow(RangeError);
    }
  });

  test('nextRange is inclusive; nextFloat is in [0, 1); nextExponential is positive with the mean asked', () => {
    const p = new Prng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(p.nextRange(-2, 2));
    expect([...seen].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2]);
    let sum = 0;
    let bad = 0;
    for (let i = 0; i < 20000; i++) {
      const f = p.nextFloat();
      if (!(f >= 0 && f < 1)) bad++;
      const x = p.nextExponential(100);
      if (!(x >= 0)) bad++;
      sum += x;
    }
    expect(bad).toBe(0);
    expect(sum / 20000).toBeGreaterThan(95);
    expect(sum / 20000).toBeLessThan(105);
  });

  test('shuffle is a seeded permutation', () => {
    const a = new Prng(9).shuffle([...Array(20).keys()]);
    const b = new Prng(9).shuffle([...Array(20).keys()]);
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
    expect(a).not.toEqual([...Array(20).keys()]);
  });

  test('forks are deterministic and independent of the parent stream that follows', () => {
    const p1 = new Prng(77);
    const p2 = new Prng(77);
    const f1 = p1.fork();
    const f2 = p2.fork();
    expect(take(f1, 50)).toEqual(take(f2, 50));
    expect(take(p1, 50)).toEqual(take(p2, 50));
    expect(take(new Prng(77).fork(), 5)).not.toEqual(take(new Prng(77), 5));
  });
});
