/**
 * The benchmark harness's types. A benchmark file `bench/<topic>.bench.ts` exports
 * `benchmarks: Benchmark[]`; `bench/run.ts` finds the files, runs each benchmark the
 * requested number of times and reports the median.
 */

/** One benchmark: a named measurement with a unit. */
export interface Benchmark {
  /** Dotted name, e.g. `engine.hold.1k`. */
  name: string;
  /** Unit of the value, e.g. `events/s`, `ratio`. */
  unit: string;
  /** Whether a larger value is better (for the table; default true). */
  higherIsBetter?: boolean;
  /** Runs the measurement once and returns its value. May be async. */
  run(): number | Promise<number>;
}

/** Seconds elapsed since `start` (a `performance.now()` reading). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
