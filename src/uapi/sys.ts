/**
 * `Sys`: the raw Linux syscall ABI of one simulated x86_64 thread, as DESIGN.md "The
 * userspace ABI" describes. Calls return `>= 0` or `-errno` (or a Promise of one) and
 * never throw for bad arguments.
 *
 * This first version carries the process and time calls; files, memory and the
 * device interfaces join it with the uAPI work.
 */

import { errno } from '../kernel/errno.ts';
import type { Machine, Process, ProgramMain } from '../machine.ts';
import type { Task } from '../sim/engine.ts';

/** Thrown by `sys.exit` to unwind a thread; caught by the process wrapper. */
export class ProcessExit extends Error {
  /** Creates the unwinding signal for `exit(code)`. */
  constructor(readonly code: number) {
    super(`exit(${code})`);
    this.name = 'ProcessExit';
  }
}

/** The syscall interface handed to a program's thread. */
export class Sys {
  /** Use `Machine#spawn`. */
  constructor(
    /** The machine this thread runs on. */
    readonly machine: Machine,
    /** The thread's process. */
    readonly process: Process,
    /** The thread's task. */
    readonly task: Task,
  ) {}

  /** getpid(): the process id. */
  getpid(): number {
    return this.process.pid;
  }

  /** gettid(): the thread id. */
  gettid(): number {
    return this.task.id;
  }

  /** CLOCK_MONOTONIC in ns (a helper, not a syscall). */
  now(): bigint {
    return BigInt(this.machine.engine.now);
  }

  /** sched_yield(): lets other runnable threads go first. Returns 0. */
  async sched_yield(): Promise<number> {
    await this.machine.engine.yield();
    return 0;
  }

  /** exit(): ends the whole process with `code` (does not return). */
  exit(code: number): never {
    throw new ProcessExit(code & 0xff);
  }

  /** Starts a thread in this process (shares its files and memory); returns its tid. */
  spawnThread(fn: ProgramMain): number {
    const t = this.machine.startThread(this.process, `${this.process.name}`, fn);
    return t.id;
  }

  /** Waits for a thread of this process to finish; returns its result, or -ESRCH. */
  async joinThread(tid: number): Promise<number> {
    const t = this.process.threads.find((x) => x.id === tid);
    if (!t || t === this.task) return -errno.ESRCH;
    return this.machine.engine.join(t);
  }
}
