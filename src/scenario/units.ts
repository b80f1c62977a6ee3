/**
 * Units in scenario files: durations (`250us`, `1.5ms`, `2s`, or a number of
 * nanoseconds) and sizes (`4KiB`, `2MiB`, `1GiB`, `4096`, or a number of bytes), as
 * zod schemas that accept the written form and give integers (ns, bytes).
 *
 * Not a kernel concept: this is the scenario language.
 */
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1_000,
  µs: 1_000,
  ms: 1_000_000,
  s: 1_000_000_000,
};

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** `1.5ms`, `250 us`, `2s`, `100ns`. */
export const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$/;
/** `4KiB`, `2 MiB`, `1G`, `4096`, `512B`. */
export const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$/;

/** Parses a duration written in a scenario; returns ns (an integer) or null if it does not parse. */
export function parseDuration(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : null;
  const m = DURATION_RE.exec(v);
  if (!m) return null;
  const ns = Number(m[1]) * DURATION_UNITS[m[2]];
  return Number.isFinite(ns) ? Math.round(ns) : null;
}

/** Parses a size written in a scenario; returns bytes (an integer) or null if it does not parse. */
export function parseSize(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : null;
  const m = SIZE_RE.exec(v);
  if (!m) return null;
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = SIZE_UNITS[unit];
  if (mult === undefined) return null;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : null;
}

const DURATION_ERROR = 'expected a duration such as 250us, 1.5ms or 2s, or a whole number of nanoseconds';
const SIZE_ERROR = 'expected a size such as 4096, 4KiB, 2MiB or 1GiB';

/** A duration: a string with a unit or a whole number of nanoseconds; parses to ns. */
export const duration = z
  .union(
    [
      z.number().int().nonnegative({ error: DURATION_ERROR }),
      z.string().regex(DURATION_RE, { error: DURATION_ERROR }),
    ],
    {
      error: DURATION_ERROR,
    },
  )
  .transform((v) => parseDuration(v) as number)
  .meta({
    id: 'Duration',
    description: 'A duration: 250us, 1.5ms, 2s, 100ns, or a whole number of nanoseconds.',
  });

/** A size: a string with a binary or decimal unit, or a whole number of bytes; parses to bytes. */
export const size = z
  .union(
    [z.number().int().nonnegative({ error: SIZE_ERROR }), z.string().regex(SIZE_RE, { error: SIZE_ERROR })],
    {
      error: SIZE_ERROR,
    },
  )
  .transform((v, ctx) => {
    const n = parseSize(v);
    if (n === null) {
      ctx.issues.push({ code: 'custom', message: `size ${JSON.stringify(v)} is too large`, input: v });
      return z.NEVER;
    }
    return n;
  })
  .meta({
    id: 'Size',
    description: 'A size: 4096, 4KiB, 2MiB, 1GiB (binary units), 1MB (decimal), or a number of bytes.',
  });

/** Formats ns for messages: the shortest exact unit (`1.5ms`, `250us`, `2s`, `17ns`). */
export function durationText(ns: number): string {
  if (ns === 0) return '0';
  if (ns % 1_000_000_000 === 0) return `${ns / 1_000_000_000}s`;
  if (ns >= 1_000_000) return `${+(ns / 1_000_000).toFixed(6)}ms`;
  if (ns >= 1_000) return `${+(ns / 1_000).toFixed(3)}us`;
  return `${ns}ns`;
}

/** Formats bytes for labels: the largest binary unit that divides it exactly (`16MiB`, `4KiB`, `4097 B`). */
export function sizeText(n: number): string {
  for (const [u, m] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= m && n % m === 0) return `${n / m}${u}`;
  }
  return `${n} B`;
}
