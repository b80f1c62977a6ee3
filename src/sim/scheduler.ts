/**
 * Scheduler strategies: which runnable simulated thread runs next.
 *
 * - `fifo`: threads run in the order they became runnable; a preemption point never
 *   switches, only blocking or `yield` does. The default, and the easiest to read.
 * - `random`: at every scheduling point a runnable thread (the current one included,
 *   at a preemption point) is picked uniformly with the run's seeded PRNG.
 * - `pct`: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
 *   Nagarakatte, ASPLOS 2010). Threads get distinct random priorities above `depth`;
 *   `depth - 1` change points are drawn uniformly over the first `steps` scheduling
 *   steps, and when step k is reached the running thread's priority drops below every
 *   initial one. The highest-priority runnable thread always runs. A bug of depth d is
 *   found with probability at least 1/(n k^(d-1)) per run.
 */
import type { Prng } from './prng.ts';

/** The scheduler's view of a thread. */
export interface Schedulable {
  /** Unique thread id. */
  readonly id: number;
  /** PCT priority (higher runs first); unused by the other strategies. */
  priority: number;
}

/** Strategy selection for a run. */
export type SchedulerOptions =
  | { strategy: 'fifo' }
  | { strategy: 'random' }
  | {
      strategy: 'pct';
      /** Bug depth d: d - 1 priority change points (default 3). */
      depth?: number;
      /** Estimated number of scheduling steps k over which change points are drawn (default 10000). */
      steps?: number;
    };

/** The name of a strategy. */
export type StrategyName = SchedulerOptions['strategy'];

/** A scheduling policy. */
export interface Scheduler {
  /** The strategy's name. */
  readonly name: StrategyName;
  /** True when a preemption point may switch away from a thread that could go on running. */
  readonly preempts: boolean;
  /** Called once when a thread is created. */
  onCreate(t: Schedulable): void;
  /**
   * Picks the index in `queue` (threads in the order they became runnable) of the next
   * thread to run. `queue` is never empty. Counts one scheduling step.
   */
  pick(queue: readonly Schedulable[], current: Schedulable | null): number;
}

/** Creates the strategy described by `opts`, drawing randomness from `prng`. */
export function createScheduler(opts: SchedulerOptions, prng: Prng): Scheduler {
  switch (opts.strategy) {
    case 'fifo':
      return new FifoScheduler();
    case 'random':
      return new RandomScheduler(prng);
    case 'pct':
      return new PctScheduler(prng, opts.depth ?? 3, opts.steps ?? 10000);
  }
}

class FifoScheduler implements Scheduler {
  readonly name = 'fifo' as const;
  readonly preempts = false;
  onCreate(): void {}
  pick(): number {
    return 0;
  }
}

class RandomScheduler implements Scheduler {
  readonly name = 'random' as const;
  readonly preempts = true;
  constructor(private readonly prng: Prng) {}
  onCreate(): void {}
  pick(queue: readonly Schedulable[]): number {
    return queue.length === 1 ? 0 : this.prng.nextInt(queue.length);
  }
}

class PctScheduler implements Scheduler {
  readonly name = 'pct' as const;
  readonly preempts = true;
  private step = 0;
  /** Sorted step numbers at which the running thread is demoted, with the new priority. */
  private readonly changes: { step: number; priority: number }[] = [];

  constructor(
    private readonly prng: Prng,
    private readonly depth: number,
    steps: number,
  ) {
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`pct depth must be >= 1, got ${depth}`);
    for (let i = 1; i < depth; i++) {
      this.changes.push({ step: 1 + prng.nextInt(Math.max(1, steps)), priority: depth - i });
    }
    this.changes.sort((a, b) => a.step - b.step || b.priority - a.priority);
  }

  onCreate(t: Schedulable): void {
    // Distinct with overwhelming probability; ties are broken by queue order anyway.
    t.priority = this.depth + 1 + this.prng.nextFloat() * 1e6;
  }

  pick(queue: readonly Schedulable[], current: Schedulable | null): number {
    this.step++;
    while (this.changes.length > 0 && this.changes[0].step <= this.step) {
      const c = this.changes.shift()!;
      if (current !== null) current.priority = c.priority;
    }
    let best = 0;
    for (let i = 1; i < queue.length; i++) {
      if (queue[i].priority > queue[best].priority) best = i;
    }
    return best;
  }
}
