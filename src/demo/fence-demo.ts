/**
 * The built-in default run, until scenario files arrive: two device timelines each
 * complete a job (their fences signal from hard-IRQ timers), a program merges the two
 * fences into one (dma_fence_unwrap_merge gives a dma_fence_array), one thread waits
 * for the merged fence and another for the first fence only. The result is the event
 * log of the run in virtual time, with the run's reports.
 */
import { DmaFence, type DmaFenceOps, dmaFenceContextAlloc } from '../kernel/dma-buf/dma-fence.ts';
import { dmaFenceUnwrapMerge } from '../kernel/dma-buf/dma-fence-unwrap.ts';
import { SpinLock } from '../kernel/locking/spinlock.ts';
import { tracepoint } from '../kernel/trace.ts';
import { Machine } from '../machine.ts';
import type { LogEntry, RunResult, SchedulerOptions } from '../sim/index.ts';
import type { Report } from '../sim/report.ts';

/** Options of the demo run. */
export interface FenceDemoOptions {
  /** Seed (default 1). */
  seed?: number;
  /** Scheduler strategy (default fifo). */
  scheduler?: SchedulerOptions;
}

/** What the demo run produced. */
export interface FenceDemoResult {
  /** Seed used. */
  seed: number;
  /** How the run ended. */
  run: RunResult;
  /** The demo program's exit code. */
  exitCode: number | null;
  /** The event log entries (every tracepoint and scheduling event), in order. */
  log: LogEntry[];
  /** Digest of the event log: equal for equal seeds. */
  logHash: string;
  /** Virtual time at which the merged-fence waiter woke, ns. */
  mergedWokeAt: number;
  /** Virtual time at which the first-fence waiter woke, ns. */
  firstWokeAt: number;
  /** Rule reports and warnings raised. */
  reports: Report[];
}

/** Completion times of the two device jobs, ns. */
export const DEMO_JOB_DONE = { compute: 1_500_000, copy: 2_500_000 } as const;

/** Runs the demo and returns its log and outcome. */
export async function runFenceDemo(opts: FenceDemoOptions = {}): Promise<FenceDemoResult> {
  const seed = opts.seed ?? 1;
  // The demo's timeline starts at virtual time 0 (no boot delay), so job times read as given.
  const m = await Machine.create({ seed, scheduler: opts.scheduler, bootTime: 0 });
  const engine = m.engine;
  const note = (msg: string) => tracepoint(engine, 'note', { msg });
  let mergedWokeAt = -1;
  let firstWokeAt = -1;

  const p = m.spawn('demo', async (sys) => {
    const timelines = new Map<number, string>();
    const ops: DmaFenceOps = {
      getDriverName: () => 'demo-accel',
      getTimelineName: (f) => timelines.get(f.context) ?? 'unknown',
    };
    const lock = new SpinLock('demo_fence_lock');
    const compute = dmaFenceContextAlloc(1);
    const copy = dmaFenceContextAlloc(1);
    timelines.set(compute, 'compute');
    timelines.set(copy, 'copy');

    const a = new DmaFence(ops, lock, compute, 1);
    const b = new DmaFence(ops, lock, copy, 1);
    note(`submitted a compute job (fence ctx ${compute} seqno 1) and a copy job (fence ctx ${copy} seqno 1)`);
    // The device engines finish their jobs and signal from their interrupt handlers.
    engine.after(DEMO_JOB_DONE.compute, () => a.signal());
    engine.after(DEMO_JOB_DONE.copy, () => b.signal());

    const merged = dmaFenceUnwrapMerge(a, b);
    if (merged === null) return 1;
    note(`merged both fences into ${merged.driverName} ctx ${merged.context}: signals when both have`);

    const tid = sys.spawnThread(async () => {
      await a.wait(true);
      firstWokeAt = engine.now;
      note('compute fence signalled: the first waiter goes on');
      return 0;
    });
    await merged.wait(true);
    mergedWokeAt = engine.now;
    note(`merged fence signalled, status ${merged.getStatus()}: the main thread goes on`);
    await sys.joinThread(tid);
    merged.put();
    a.put();
    b.put();
    return 0;
  });

  const run = await m.run();
  return {
    seed,
    run,
    exitCode: p.exitCode,
    log: engine.log.entries,
    logHash: engine.log.hash(),
    mergedWokeAt,
    firstWokeAt,
    reports: m.reports,
  };
}
