/**
 * A Machine: one host running one kernel, with the processes users run on it.
 *
 * This is the entry point of the userspace ABI (DESIGN.md "The userspace ABI"):
 *
 * ```ts
 * const m = await Machine.create({ seed: 1 });
 * const p = m.spawn('app', async (sys) => { ...; return 0; });
 * await m.run();
 * p.exitCode; m.reports;
 * ```
 *
 * A process is a simulated thread group: its main thread runs the function given to
 * `spawn` with a `Sys` (the syscall ABI); `sys.spawnThread` adds threads to it.
 */

import { Kernel } from './kernel/kernel.ts';
import { Engine, type RunResult, type SchedulerOptions, type Task } from './sim/index.ts';
import type { Report } from './sim/report.ts';
import { ProcessExit, Sys } from './uapi/sys.ts';

/** Options for `Machine.create`. */
export interface MachineOptions {
  /** Seed of every random choice in the run (default 1). */
  seed?: number;
  /** Scheduling strategy (default fifo). */
  scheduler?: SchedulerOptions;
  /** The host's name in reports (default `host`). */
  name?: string;
  /** Kernel tick rate (default 250). */
  hz?: number;
  /** Record the event log (default true). */
  log?: boolean;
}

/** A program's main function: gets the syscall ABI, returns its exit code. */
export type ProgramMain = (sys: Sys) => Promise<number | undefined | void>;

/** A process on a machine. */
export class Process {
  /** Exit code once the process has exited, else null. */
  exitCode: number | null = null;
  /** The process's threads, main thread first. */
  readonly threads: Task[] = [];
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number>;
  private resolveExit!: (code: number) => void;

  /** Use `Machine#spawn`. */
  constructor(
    /** The machine the process runs on. */
    readonly machine: Machine,
    /** Process id. */
    readonly pid: number,
    /** Command name (comm). */
    readonly name: string,
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  /** @internal Records the exit code; the first exit wins. */
  exit(code: number): void {
    if (this.exitCode !== null) return;
    this.exitCode = code;
    this.resolveExit(code);
  }
}

/** One host. */
export class Machine {
  /** The simulation engine (shared clock, events, scheduler). */
  readonly engine: Engine;
  /** The kernel running on this host. */
  readonly kernel: Kernel;
  /** Every process spawned, in order. */
  readonly processes: Process[] = [];
  private nextPid = 100;

  private constructor(opts: MachineOptions) {
    this.engine = new Engine({ seed: opts.seed, scheduler: opts.scheduler, log: opts.log });
    this.kernel = new Kernel(this.engine, { name: opts.name, hz: opts.hz });
  }

  /** Boots a machine. */
  static async create(opts: MachineOptions = {}): Promise<Machine> {
    return new Machine(opts);
  }

  /** Virtual time now, ns (CLOCK_MONOTONIC). */
  get now(): bigint {
    return BigInt(this.engine.now);
  }

  /** Everything reported so far: warnings, rule violations, leaks, deadlocks, bugs. */
  get reports(): Report[] {
    return this.engine.reports;
  }

  /** Starts a process running `main`; it runs when `run()` is called. */
  spawn(name: string, main: ProgramMain): Process {
    const p = new Process(this, this.nextPid++, name);
    this.processes.push(p);
    this.startThread(p, name, main);
    return p;
  }

  /** @internal Starts a thread of `p`; its return value is the thread's result. */
  startThread(p: Process, name: string, main: ProgramMain): Task {
    const isMain = p.threads.length === 0;
    const task = this.engine.spawn(
      name,
      async (t) => {
        const sys = new Sys(this, p, t);
        let code: number;
        try {
          const r = await main(sys);
          code = typeof r === 'number' ? r : 0;
        } catch (e) {
          if (!(e instanceof ProcessExit)) throw e;
          code = e.code;
          p.exit(code);
        }
        if (isMain) p.exit(code);
        return code;
      },
      { owner: this.kernel },
    );
    p.threads.push(task);
    return task;
  }

  /** Runs until every process has exited (or a deadlock, a BUG, or the time limit in ns). */
  async run(opts: { until?: number } = {}): Promise<RunResult> {
    this.kernel.enter();
    return this.engine.run(opts);
  }
}
