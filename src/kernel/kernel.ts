/**
 * One running kernel: the state a Linux instance keeps globally (the clock and HZ,
 * the fence context counter, the stub fence, reports) bound to a simulation engine.
 *
 * Kernel functions in the model are called the way kernel code calls them, without a
 * "which kernel" argument. The kernel that is executing is tracked from the engine's
 * current context (each task and IRQ context belongs to one kernel); outside any
 * context it is the kernel created last. `currentKernel()` returns it.
 *
 * Failure styles follow the kernel: `warn()` records a report and goes on (WARN),
 * `bug()` records a report and throws `KernelBug`, stopping the run (BUG).
 */
import { type Engine, type ExecContext, Task } from '../sim/engine.ts';
import {
  KernelBug,
  type Report,
  type ReportContext,
  type ReportObject,
  type ReportType,
} from '../sim/report.ts';
import { Jiffies, MAX_SCHEDULE_TIMEOUT } from './jiffies.ts';
import { Lockdep } from './locking/lockdep.ts';

/** Per-context state the kernel model keeps (held locks, signalling depth). */
export class KernelContextState {
  /** Depth of fence-signalling critical sections entered with a real acquisition. */
  signalling = 0;
  /** Locks held, innermost last (filled by the locking layer). */
  readonly held: unknown[] = [];
}

/**
 * Hooks through which the lock checker (lockdep) observes the fence-signalling
 * annotations. Null until a checker is installed; the annotations are then only counted.
 */
export interface LockdepHooks {
  /** A context entered a fence-signalling critical section (dma_fence_begin_signalling). */
  signallingBegin(ctx: ExecContext): void;
  /** A context left its signalling section (dma_fence_end_signalling). */
  signallingEnd(ctx: ExecContext): void;
  /** A context is about to wait on a fence (__dma_fence_might_wait). */
  fenceMightWait(ctx: ExecContext): void;
}

/** Options for a kernel. */
export interface KernelOptions {
  /** Machine name used in reports and contexts (default `host`). */
  name?: string;
  /** Tick rate (default 250). */
  hz?: number;
  /** Run the lock validator (CONFIG_PROVE_LOCKING; default true). Locks work either way. */
  lockdep?: boolean;
}

let active: Kernel | null = null;

/** The kernel whose code is executing (see the module comment). */
export function currentKernel(): Kernel {
  if (active === null) throw new Error('no kernel: create a Kernel (or a Machine) first');
  return active;
}

/** A kernel instance. */
export class Kernel {
  /** Machine name. */
  readonly name: string;
  /** Jiffies conversions at this kernel's HZ. */
  readonly jiffies: Jiffies;
  /** Next fence context id (dma_fence_context_alloc; starts at 1 in 6.12.117). */
  fenceContextCounter = 1;
  /** The lock checker's hooks, when one is installed. */
  lockdepHooks: LockdepHooks | null = null;
  /** The lock validator, or null when this kernel runs without lockdep. */
  readonly lockdep: Lockdep | null;
  /** Lazily created per-kernel singletons, keyed by the module that owns them. */
  readonly singletons = new Map<symbol, unknown>();

  /** Binds a new kernel to `engine`; it becomes the current kernel. */
  constructor(
    /** The engine this kernel runs on. */
    readonly engine: Engine,
    opts: KernelOptions = {},
  ) {
    this.name = opts.name ?? 'host';
    this.jiffies = new Jiffies(opts.hz);
    if (engine.irqContext.owner === null) engine.irqContext.owner = this;
    if (engine.noContext.owner === null) engine.noContext.owner = this;
    if (engine.onSwitch === null) {
      engine.onSwitch = (ctx) => {
        if (ctx.owner instanceof Kernel) active = ctx.owner;
      };
    }
    if (engine.beforeBlock === null) {
      engine.beforeBlock = (task) => {
        if (task.owner instanceof Kernel) task.owner.checkMightSleep(task, 'schedule');
      };
    }
    if (engine.onTaskExit === null) {
      engine.onTaskExit = (task) => {
        if (task.owner instanceof Kernel) task.owner.lockdep?.checkNoLocksHeld(task);
      };
    }
    active = this;
    this.lockdep = opts.lockdep === false ? null : new Lockdep(this);
  }

  /** Makes this kernel the current one (for code running outside the engine). */
  enter(): void {
    active = this;
  }

  /** CLOCK_MONOTONIC in ns (ktime_get). */
  ktimeGet(): number {
    return this.engine.now;
  }

  /** The jiffies counter now. */
  get jiffiesNow(): number {
    return this.jiffies.at(this.engine.now);
  }

  /** The executing context. */
  get ctx(): ExecContext {
    return this.engine.current;
  }

  /** The kernel's private state for a context. */
  state(ctx: ExecContext = this.engine.current): KernelContextState {
    let s = ctx.kdata as KernelContextState | null;
    if (s === null) {
      s = new KernelContextState();
      ctx.kdata = s;
    }
    return s;
  }

  /** in_atomic(): preemption or interrupts disabled, or in hard-IRQ. */
  inAtomic(ctx: ExecContext = this.engine.current): boolean {
    return ctx.kind === 'hardirq' || ctx.preemptCount > 0 || ctx.irqsDisabled > 0;
  }

  /** might_sleep(): reports a sleep attempted from atomic context. */
  checkMightSleep(ctx: ExecContext, what: string): void {
    if (!this.inAtomic(ctx)) return;
    const held = this.lockdep !== null ? `\n${this.lockdep.heldLocksText(ctx)}` : '';
    this.report(
      'violation',
      'sched.sleep_in_atomic',
      `BUG: sleeping function called from invalid context: ${what} in ${ctx.label} ` +
        `(in_atomic ${ctx.preemptCount > 0 ? 1 : 0}, irqs_disabled ${ctx.irqsDisabled > 0 ? 1 : 0}, ` +
        `${ctx.kind === 'hardirq' ? 'hard-IRQ' : 'process'} context)${held}`,
      [],
    );
  }

  /** Where a report is raised from. */
  reportContext(ctx: ExecContext = this.engine.current): ReportContext {
    const c: ReportContext = { kind: ctx.kind, name: ctx.name, machine: this.name };
    if (ctx instanceof Task) c.tid = ctx.id;
    return c;
  }

  /** Records a report of any type and returns it. */
  report(type: ReportType, rule: string, message: string, objects: ReportObject[] = []): Report {
    const r: Report = {
      type,
      rule,
      message,
      simTime: this.engine.now,
      objects,
      context: this.reportContext(),
    };
    this.engine.report(r);
    return r;
  }

  /** WARN(): records a warning; execution goes on. Returns true so it can sit in a condition. */
  warn(rule: string, message: string, objects: ReportObject[] = []): true {
    this.report('warn', rule, message, objects);
    return true;
  }

  /** BUG(): records the report and throws `KernelBug`, which stops the run. */
  bug(rule: string, message: string, objects: ReportObject[] = [], type: ReportType = 'bug'): never {
    throw new KernelBug(this.report(type, rule, message, objects));
  }

  /**
   * schedule_timeout(): sleeps the current task for up to `timeout` jiffies or until
   * woken; returns the jiffies left (0 when the time ran out). `interruptible` makes a
   * signal end the sleep early (TASK_INTERRUPTIBLE). A timeout of
   * MAX_SCHEDULE_TIMEOUT sleeps with no timer.
   */
  async scheduleTimeout(
    timeout: number,
    what: string,
    opts: { interruptible?: boolean; objects?: ReportObject[] } = {},
  ): Promise<number> {
    const desc = { what, objects: opts.objects };
    if (timeout >= MAX_SCHEDULE_TIMEOUT) {
      await this.engine.block(desc, { interruptible: opts.interruptible });
      return MAX_SCHEDULE_TIMEOUT;
    }
    if (timeout < 0) {
      this.warn('sched.schedule_timeout_negative', `schedule_timeout: wrong timeout value ${timeout}`);
      return 0;
    }
    // The timer fires on the jiffy boundary `expire`, as a timer-wheel timer does.
    const expire = this.jiffiesNow + timeout;
    await this.engine.block(desc, {
      deadline: this.jiffies.toNsecs(expire),
      interruptible: opts.interruptible,
    });
    const left = expire - this.jiffiesNow;
    return Math.max(left, 0);
  }

  /** Whether the current task has a signal pending (signal_pending(current)). */
  signalPending(): boolean {
    const c = this.engine.current;
    return c instanceof Task && c.signalPending;
  }
}
