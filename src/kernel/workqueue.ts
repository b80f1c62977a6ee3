/**
 * Workqueues: deferred work run by kernel worker threads (kernel/workqueue.c,
 * include/linux/workqueue.h).
 *
 * Each workqueue has one worker, a daemon kernel thread named `kworker/<wq>`, that runs
 * queued items in order in process context, so a work function may sleep (take
 * mutexes, wait on fences). One worker per queue keeps runs deterministic; it models an
 * ordered workqueue (max_active 1), which is also what the kernel's guarantees reduce to
 * for a single work item: it never runs concurrently with itself and runs at least once
 * after each successful queue_work.
 */
import { Task } from '../sim/engine.ts';
import { currentKernel, type Kernel } from './kernel.ts';

/** A work function; may be async (it runs in a worker thread and may sleep). */
export type WorkFunc = (work: WorkStruct) => void | Promise<void>;

/** A work item (struct work_struct). */
export class WorkStruct {
  /** True between a successful queue and the start of its run (WORK_STRUCT_PENDING). */
  pending = false;
  /** The queue the item was last queued on. */
  wq: Workqueue | null = null;

  /** INIT_WORK(). */
  constructor(public func: WorkFunc) {}
}

/** A work item that is queued after a delay (struct delayed_work). */
export class DelayedWork {
  /** The embedded work item. */
  readonly work: WorkStruct;
  /** The pending timer's handle, or -1. */
  timer = -1;

  /** INIT_DELAYED_WORK(). */
  constructor(func: WorkFunc) {
    this.work = new WorkStruct(func);
  }
}

/** A workqueue with one worker thread. */
export class Workqueue {
  private readonly items: WorkStruct[] = [];
  private worker: Task | null = null;
  private idle = false;
  /** The item being run now. */
  running: WorkStruct | null = null;
  private waiters: Task[] = [];
  /** Increases each time an item finishes; flushers wait for it to pass a mark. */
  private done = 0;
  private queuedTotal = 0;

  /** alloc_workqueue(); `name` names the worker thread. */
  constructor(
    /** The kernel the queue belongs to. */
    readonly kernel: Kernel,
    /** Queue name. */
    readonly name: string,
  ) {}

  /** queue_work(): false if the item was already pending. */
  queue(work: WorkStruct): boolean {
    if (work.pending) return false;
    work.pending = true;
    work.wq = this;
    this.items.push(work);
    this.queuedTotal++;
    this.kick();
    return true;
  }

  /** Number of items waiting to run. */
  get length(): number {
    return this.items.length;
  }

  /** flush_workqueue(): waits until every item queued before the call has run. */
  async flush(): Promise<void> {
    const mark = this.queuedTotal;
    const e = this.kernel.engine;
    const me = e.currentTask();
    while (this.done < mark) {
      this.waiters.push(me);
      await e.block({ what: `flush_workqueue ${this.name}` });
    }
  }

  /** Removes a pending item that has not started; true if it was removed. */
  cancelPending(work: WorkStruct): boolean {
    const i = this.items.indexOf(work);
    if (i < 0) return false;
    this.items.splice(i, 1);
    work.pending = false;
    this.done++;
    this.wakeWaiters();
    return true;
  }

  /** Waits until `work` is neither pending nor running on this queue. */
  async waitIdle(work: WorkStruct): Promise<void> {
    const e = this.kernel.engine;
    const me = e.currentTask();
    while (work.pending || this.running === work) {
      this.waiters.push(me);
      await e.block({ what: `flush_work on ${this.name}` });
    }
  }

  private kick(): void {
    const e = this.kernel.engine;
    if (this.worker === null) {
      this.worker = e.spawn(`kworker/${this.name}`, () => this.workerLoop(), {
        daemon: true,
        owner: this.kernel,
      });
    } else if (this.idle) {
      e.wakeUp(this.worker);
    }
  }

  private async workerLoop(): Promise<number> {
    const e = this.kernel.engine;
    for (;;) {
      const work = this.items.shift();
      if (work === undefined) {
        this.idle = true;
        await e.block({ what: `worker_thread idle (${this.name})` });
        this.idle = false;
        continue;
      }
      work.pending = false;
      this.running = work;
      await work.func(work);
      this.running = null;
      this.done++;
      this.wakeWaiters();
    }
  }

  private wakeWaiters(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const t of ws) this.kernel.engine.wakeUp(t);
  }
}

const SYSTEM_WQ = Symbol('system_wq');

/** alloc_workqueue(): a new queue in the current kernel. */
export function allocWorkqueue(name: string): Workqueue {
  return new Workqueue(currentKernel(), name);
}

/** system_wq of the current kernel. */
export function systemWq(): Workqueue {
  const k = currentKernel();
  let wq = k.singletons.get(SYSTEM_WQ) as Workqueue | undefined;
  if (!wq) {
    wq = new Workqueue(k, 'events');
    k.singletons.set(SYSTEM_WQ, wq);
  }
  return wq;
}

/** queue_work(). */
export function queueWork(wq: Workqueue, work: WorkStruct): boolean {
  return wq.queue(work);
}

/** schedule_work(): queue on system_wq. */
export function scheduleWork(work: WorkStruct): boolean {
  return systemWq().queue(work);
}

/** flush_work(): waits for the item's pending run to finish; true if it had to wait. */
export async function flushWork(work: WorkStruct): Promise<boolean> {
  const wq = work.wq;
  if (wq === null || (!work.pending && wq.running !== work)) return false;
  await wq.waitIdle(work);
  return true;
}

/** cancel_work_sync(): removes a pending run and waits for a running one; true if it was pending. */
export async function cancelWorkSync(work: WorkStruct): Promise<boolean> {
  const wq = work.wq;
  if (wq === null) return false;
  const wasPending = wq.cancelPending(work);
  if (wq.running === work) await wq.waitIdle(work);
  return wasPending;
}

/** queue_delayed_work(): queues after `delay` jiffies; false if already pending. */
export function queueDelayedWork(wq: Workqueue, dwork: DelayedWork, delay: number): boolean {
  if (dwork.work.pending || dwork.timer !== -1) return false;
  if (delay <= 0) return wq.queue(dwork.work);
  const k = wq.kernel;
  const at = k.jiffies.toNsecs(k.jiffiesNow + delay);
  dwork.timer = k.engine.at(at, () => {
    dwork.timer = -1;
    wq.queue(dwork.work);
  });
  return true;
}

/** cancel_delayed_work_sync(): stops the timer or the pending run and waits for a running one. */
export async function cancelDelayedWorkSync(dwork: DelayedWork): Promise<boolean> {
  let ret = false;
  if (dwork.timer !== -1) {
    ret = currentKernel().engine.cancel(dwork.timer);
    dwork.timer = -1;
  }
  return (await cancelWorkSync(dwork.work)) || ret;
}

/** True when the current context is a workqueue worker. */
export function currentIsWorker(): boolean {
  const c = currentKernel().ctx;
  return c instanceof Task && c.daemon && c.name.startsWith('kworker/');
}
