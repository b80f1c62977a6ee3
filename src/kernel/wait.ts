/**
 * Wait queues with wake-up callbacks: wait_queue_head_t and wait_queue_entry_t
 * (include/linux/wait.h, kernel/sched/wait.c).
 *
 * Unlike the engine's task-only `WaitQueue`, an entry here carries a wake function,
 * which is what poll() needs: one polling thread hangs an entry on the wait queue of
 * every file it polls and is woken by whichever fires first. `wakeUp(key)` passes a
 * poll mask as the key; a wake function may ignore wake-ups whose key does not
 * interest it. `waitEvent` is the usual "sleep until a condition holds".
 */
import type { WaitDesc } from '../sim/engine.ts';
import { currentKernel } from './kernel.ts';

/** A wake function: returns true if it woke something. `key` is a poll mask or null. */
export type WaitQueueFunc = (entry: WaitQueueEntry, key: number | null) => boolean;

/** An entry on a wait queue (wait_queue_entry_t). */
export class WaitQueueEntry {
  /** The queue the entry is on, or null. */
  head: WaitQueueHead | null = null;

  /** init_waitqueue_func_entry(). */
  constructor(
    /** Called by `wakeUp`. */
    public func: WaitQueueFunc,
    /** Whatever the waiter needs to find itself again. */
    public priv: unknown = null,
  ) {}
}

/** A wait queue head (wait_queue_head_t). */
export class WaitQueueHead {
  private entries: WaitQueueEntry[] = [];

  /** init_waitqueue_head(); `name` appears in "waits on" descriptions. */
  constructor(readonly name: string = 'wait_queue') {}

  /** Number of entries queued. */
  get length(): number {
    return this.entries.length;
  }

  /** add_wait_queue(): appends `entry`. */
  add(entry: WaitQueueEntry): void {
    if (entry.head !== null) entry.head.remove(entry);
    entry.head = this;
    this.entries.push(entry);
  }

  /** remove_wait_queue(). */
  remove(entry: WaitQueueEntry): void {
    if (entry.head !== this) return;
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
    entry.head = null;
  }

  /** wake_up_all() / wake_up_poll(): calls every entry's wake function with `key`. */
  wakeUp(key: number | null = null): void {
    for (const e of [...this.entries]) e.func(e, key);
  }

  /**
   * wait_event_interruptible_timeout() and friends: sleeps until `cond()` holds.
   * `timeoutNs` undefined means forever. Returns 1 when the condition holds, 0 on
   * timeout, -1 when interrupted by a signal (only if `interruptible`).
   */
  async waitEvent(
    cond: () => boolean,
    opts: { timeoutNs?: number; interruptible?: boolean; desc?: WaitDesc } = {},
  ): Promise<number> {
    const engine = currentKernel().engine;
    const task = engine.currentTask();
    const deadline = opts.timeoutNs === undefined ? undefined : engine.now + opts.timeoutNs;
    const entry = new WaitQueueEntry(() => engine.wakeUp(task));
    const desc = opts.desc ?? { what: `wait_event on ${this.name}` };
    try {
      for (;;) {
        if (cond()) return 1;
        this.add(entry);
        const why = await engine.block(desc, { deadline, interruptible: opts.interruptible });
        this.remove(entry);
        if (why === 'signal') return cond() ? 1 : -1;
        if (why === 'timeout') return cond() ? 1 : 0;
      }
    } finally {
      this.remove(entry);
    }
  }
}
