/**
 * Engine event-loop throughput: the classic "hold" model (spec/performance.md §4, §6.1)
 * driven through the public Engine API.
 *
 * N events are prefilled at exponentially distributed times from 0; each handler, when it
 * fires, schedules exactly one new event at an exponential increment from `engine.now`
 * with `engine.at`, so the pending population stays at N. The log is disabled
 * (`new Engine({ log: false })`). The value is events executed per second of wall time.
 *
 * Increments come from a precomputed table of seeded exponential samples (mean 1 us,
 * whole nanoseconds), so the measurement is the engine, not `Math.log`.
 *
 * `queue.hold.*` run the same model on the bare `EventQueue` (no engine): the ceiling
 * the engine path is compared with.
 */
import { Engine } from '../src/sim/engine.ts';
import { EventQueue } from '../src/sim/event-queue.ts';
import { Prng } from '../src/sim/prng.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const TABLE_BITS = 16;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
const MEAN_NS = 1000;

/** A table of exponential increments (whole ns, mean MEAN_NS) from a fixed seed. */
function incrementTable(seed: number): Float64Array {
  const prng = new Prng(seed);
  const t = new Float64Array(1 << TABLE_BITS);
  for (let i = 0; i < t.length; i++) t[i] = Math.floor(prng.nextExponential(MEAN_NS));
  return t;
}

const INCREMENTS = incrementTable(42);

/** Runs the hold model with `population` pending events for about `total` events; returns events/s. */
async function engineHold(population: number, total: number): Promise<number> {
  const engine = new Engine({ log: false });
  let k = 0;
  let fired = 0;
  const handler = (): void => {
    fired++;
    if (fired === total) {
      engine.stop();
      return;
    }
    engine.at(engine.now + INCREMENTS[k++ & TABLE_MASK], handler);
  };
  for (let i = 0; i < population; i++) engine.at(INCREMENTS[k++ & TABLE_MASK], handler);
  const start = performance.now();
  const result = await engine.run();
  const secs = secondsSince(start);
  if (result.events !== total) {
    throw new Error(`engine hold: expected ${total} events, ran ${result.events} (${result.status})`);
  }
  return result.events / secs;
}

/** The same model on the bare queue. */
function queueHold(population: number, total: number): number {
  const q = new EventQueue();
  let k = 0;
  const handler = (): void => {};
  for (let i = 0; i < population; i++) q.push(INCREMENTS[k++ & TABLE_MASK], handler);
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const fn = q.pop()!;
    fn();
    q.push(q.lastTime + INCREMENTS[k++ & TABLE_MASK], handler);
  }
  return total / secondsSince(start);
}

/** Engine and bare-queue hold-model benchmarks. */
export const benchmarks: Benchmark[] = [
  { name: 'engine.hold.1k', unit: 'events/s', run: () => engineHold(1_000, 3_000_000) },
  { name: 'engine.hold.100k', unit: 'events/s', run: () => engineHold(100_000, 3_000_000) },
  { name: 'engine.hold.1m', unit: 'events/s', run: () => engineHold(1_000_000, 2_000_000) },
  { name: 'queue.hold.1k', unit: 'events/s', run: () => queueHold(1_000, 3_000_000) },
  { name: 'queue.hold.100k', unit: 'events/s', run: () => queueHold(100_000, 3_000_000) },
];
