/**
 * Test helpers: run kernel code inside simulated kernel threads, as the kernel's own
 * selftests run inside a kthread.
 */

import { Kernel } from '../../src/kernel/kernel.ts';
import { Engine, type EngineOptions, type RunResult, type Task } from '../../src/sim/engine.ts';
import type { Report } from '../../src/sim/report.ts';

/** What `runKthread` returns. */
export interface KthreadRun {
  /** The engine the test ran on. */
  engine: Engine;
  /** The kernel the test ran in. */
  kernel: Kernel;
  /** How the run ended. */
  result: RunResult;
  /** The body's return value. */
  ret: number;
}

/** Options for `runKthread`. */
export interface KthreadOptions extends EngineOptions {
  /** Kernel tick rate. */
  hz?: number;
  /** Virtual-time limit for the run, ns. */
  until?: number;
}

/**
 * Creates an engine and a kernel, runs `body` as a kernel thread named `selftest`,
 * and returns when the run ends. The body may spawn more threads with `spawn`.
 */
export async function runKthread(
  body: (ctx: {
    kernel: Kernel;
    engine: Engine;
    spawn: (name: string, fn: () => Promise<number | void>) => Task;
  }) => Promise<number | void> | number | void,
  opts: KthreadOptions = {},
): Promise<KthreadRun> {
  const engine = new Engine(opts);
  const kernel = new Kernel(engine, { hz: opts.hz });
  const spawn = (name: string, fn: () => Promise<number | void>) =>
    engine.spawn(name, async () => fn(), { owner: kernel });
  let ret = 0;
  engine.spawn(
    'selftest',
    async () => {
      const r = await body({ kernel, engine, spawn });
      ret = typeof r === 'number' ? r : 0;
      return ret;
    },
    { owner: kernel },
  );
  const result = await engine.run({ until: opts.until });
  return { engine, kernel, result, ret };
}

/** The reports of a run other than the given types (default: all of them). */
export function reportsOf(engine: Engine, ...types: Report['type'][]): Report[] {
  return types.length === 0 ? engine.reports : engine.reports.filter((r) => types.includes(r.type));
}
