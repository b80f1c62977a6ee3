/**
 * Small text formatters shared by the readable reports: virtual times, sizes, rates.
 */

/** Formats a virtual time in ns with a unit that fits: `750 ns`, `12.500 us`, `1.500 ms`, `2.000000 s`. */
export function formatNs(ns: number): string {
  if (ns < 1_000) return `${ns} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(3)} us`;
  if (ns < 1_000_000_000) return `${(ns / 1_000_000).toFixed(3)} ms`;
  return `${(ns / 1_000_000_000).toFixed(6)} s`;
}

/** Formats a virtual time in ns as milliseconds with microsecond precision, right-aligned to `width`. */
export function formatMs(ns: number, width = 10): string {
  return `${(ns / 1_000_000).toFixed(3)} ms`.padStart(width);
}

/** Formats a byte count with binary units: `512 B`, `4.0 KiB`, `1.5 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}
