/**
 * Test helper for the locking tests: like `runKthread`, with kernel options (lockdep on
 * or off) and any number of named threads started together.
 */
import { Kernel } from '../../src/kernel/kernel.ts';
import { Engine, type EngineOptions, type RunResult, type Task } from '../../src/sim/engine.ts';
import type { Report } from '../../src/sim/report.ts';

/** Options for `runKernel`. */
export interface RunKernelOptions extends EngineOptions {
  /** Run lockdep (default true). */
  lockdep?: boolean;
  /** Virtual-time limit, ns. */
  until?: number;
}

/** What `runKernel` returns. */
export interface KernelRun {
  /** The engine. */
  engine: Engine;
  /** The kernel. */
  kernel: Kernel;
  /** How the run ended. */
  result: RunResult;
  /** The threads, in the order given. */
  tasks: Task[];
  /** Every report of the run. */
  reports: Report[];
}

/** A thread body: gets the kernel and engine. */
export type ThreadBody = (ctx: { kernel: Kernel; engine: Engine; task: Task }) => Promise<number | void>;

/**
 * Creates an engine and a kernel, then starts `threads` (name -> body) in order, runs
 * until every thread has exited (or a deadlock), and returns the run.
 */
export async function runKernel(
  threads: Record<string, ThreadBody> | [string, ThreadBody][],
  opts: RunKernelOptions = {},
): Promise<KernelRun> {
  const engine = new Engine({ ...opts, log: opts.log ?? false });
  const kernel = new Kernel(engine, { lockdep: opts.lockdep });
  const entries = Array.isArray(threads) ? threads : Object.entries(threads);
  const tasks = entries.map(([name, body]) =>
    engine.spawn(name, async (task) => body({ kernel, engine, task }), { owner: kernel }),
  );
  const result = await engine.run({ until: opts.until });
  return { engine, kernel, result, tasks, reports: engine.reports };
}

/** The rules of the reports of a run, in order. */
export function rules(reports: readonly Report[]): string[] {
  return reports.map((r) => r.rule);
}
