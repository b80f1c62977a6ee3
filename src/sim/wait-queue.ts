/**
 * Wait queues: tasks sleeping until a condition holds (the kernel's `wait_queue_head`
 * with `wait_event*` / `wake_up*`).
 *
 * A waiter re-checks its condition every time it is woken, so spurious and early
 * wake-ups are harmless, as in the kernel's `wait_event` loops.
 */
import type { Engine, Task, WaitDesc } from './engine.ts';

/** Result of a timed wait: remaining ns (> 0) when the condition became true, 0 on timeout, -1 when interrupted. */
export type WaitResult = number;

/** A FIFO list of sleeping tasks. */
export class WaitQueue {
  private waiters: Task[] = [];

  /** Creates a queue bound to `engine`; `name` appears in deadlock reports. */
  constructor(
    private readonly engine: Engine,
    /** Name used in "waits on" descriptions. */
    readonly name: string,
  ) {}

  /** Number of tasks currently waiting. */
  get length(): number {
    return this.waiters.length;
  }

  /**
   * Sleeps until `cond()` is true. With `timeoutNs`, gives up after that long
   * (returns 0); with `interruptible`, a signal ends the wait (returns -1). Otherwise
   * returns the time left (or 1 when there was no timeout).
   */
  async waitEvent(
    cond: () => boolean,
    opts: { timeoutNs?: number; interruptible?: boolean; desc?: WaitDesc } = {},
  ): Promise<WaitResult> {
    const e = this.engine;
    const deadline = opts.timeoutNs === undefined ? undefined : e.now + opts.timeoutNs;
    const desc = opts.desc ?? { what: `wait queue ${this.name}` };
    const me = e.currentTask();
    for (;;) {
      if (cond()) return deadline === undefined ? 1 : Math.max(1, deadline - e.now);
      this.waiters.push(me);
      const why = await e.block(desc, { deadline, interruptible: opts.interruptible });
      this.remove(me);
      if (why === 'timeout') return cond() ? 1 : 0;
      if (why === 'signal') return -1;
    }
  }

  /** Wakes every waiter; returns how many were woken. */
  wakeUpAll(): number {
    const ws = this.waiters;
    this.waiters = [];
    let n = 0;
    for (const t of ws) if (this.engine.wakeUp(t)) n++;
    return n;
  }

  /** Wakes the longest-waiting task; returns whether one was woken. */
  wakeUpOne(): boolean {
    while (this.waiters.length > 0) {
      const t = this.waiters.shift()!;
      if (this.engine.wakeUp(t)) return true;
    }
    return false;
  }

  private remove(t: Task): void {
    const i = this.waiters.indexOf(t);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
