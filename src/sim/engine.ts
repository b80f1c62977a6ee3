/**
 * The deterministic discrete-event engine: virtual time, events, simulated threads.
 *
 * Time is an integer count of nanoseconds held in a JS number (exact up to 2^53 ns,
 * about 104 days). Events are handlers at a time, run in hard-IRQ context. Simulated
 * threads ("tasks") are async functions: they run one at a time and give the CPU back
 * only by awaiting an engine primitive (`block`, `yield`, `sleep`, `preemptionPoint`,
 * `join`), so everything between two awaits is atomic, as code under a spinlock is in
 * the kernel. A scheduler strategy (fifo, seeded random, PCT) picks the next thread.
 *
 * Ordering rules, which make runs reproducible byte for byte:
 * - events fire in (time, insertion sequence) order;
 * - at a given time, due events run before any thread, and time advances only when no
 *   thread is runnable;
 * - the only randomness is the run's seeded PRNG.
 *
 * A run ends when every non-daemon task has exited. If tasks remain blocked with no
 * event pending, nothing can ever wake them: that is a deadlock, reported with what
 * each task waits on.
 */
import { EventLog } from './event-log.ts';
import { type EventHandle, EventQueue } from './event-queue.ts';
import { Prng } from './prng.ts';
import { KernelBug, type Report, type ReportObject } from './report.ts';
import { createScheduler, type Scheduler, type SchedulerOptions } from './scheduler.ts';

/** Why a blocked task was woken. */
export type WakeReason = 'woken' | 'timeout' | 'signal';

/** What a blocked task waits on, for deadlock reports and debugging. */
export interface WaitDesc {
  /** A phrase such as `dma_fence_wait on mock:mock ctx 1 seqno 1`. */
  what: string;
  /** The objects waited on. */
  objects?: ReportObject[];
}

/** An execution context: a task (thread) or hard-IRQ. */
export class ExecContext {
  /** Preemption-disable depth (spinlocks held, preempt_disable). */
  preemptCount = 0;
  /** Nesting depth of local_irq_save / spin_lock_irqsave. */
  irqsDisabled = 0;
  /** Private per-context state of the kernel model (held locks, signalling depth). */
  kdata: unknown = null;

  /** Creates a context; `owner` is the kernel (machine) it belongs to, if any. */
  constructor(
    /** `task` for threads, `hardirq` for event handlers, `none` outside the engine. */
    readonly kind: 'task' | 'hardirq' | 'none',
    /** Display name. */
    readonly name: string,
    /** Thread id for tasks; 0 otherwise. */
    readonly id: number,
    /** The kernel model this context runs in (opaque to the engine). */
    public owner: unknown = null,
  ) {}

  /** `name/id` for tasks, the name otherwise: the context's label in logs. */
  get label(): string {
    return this.kind === 'task' ? `${this.name}/${this.id}` : this.name;
  }
}

/** A task's body: an async function returning an exit value. */
export type TaskBody = (task: Task) => Promise<number | undefined | void>;

/** Where a task is in its life. */
export type TaskState = 'runnable' | 'running' | 'blocked' | 'exited';

/** A simulated thread. */
export class Task extends ExecContext {
  /** Life-cycle state. */
  state: TaskState = 'runnable';
  /** Daemon tasks (kworkers) do not keep a run going and are not deadlock victims. */
  readonly daemon: boolean;
  /** What the task waits on while blocked. */
  waitingOn: WaitDesc | null = null;
  /** PCT priority. */
  priority = 0;
  /** A signal is pending (interruptible waits return early). */
  signalPending = false;
  /** The current block is interruptible. */
  interruptible = false;
  /** The value the body returned (0 if it returned nothing), once exited. */
  exitValue: number | undefined = undefined;
  /** @internal */
  body: TaskBody | null;
  /** @internal */
  resume: ((r: WakeReason) => void) | null = null;
  /** @internal */
  wakeReason: WakeReason = 'woken';
  /** @internal */
  timer: EventHandle = -1;
  /** @internal */
  joiners: Task[] = [];

  /** Use `Engine#spawn`. */
  constructor(id: number, name: string, body: TaskBody, daemon: boolean, owner: unknown) {
    super('task', name, id, owner);
    this.body = body;
    this.daemon = daemon;
  }
}

/** Options for an engine. */
export interface EngineOptions {
  /** Seed of every random choice (default 1). */
  seed?: number;
  /** Scheduling strategy (default fifo). */
  scheduler?: SchedulerOptions;
  /** Record the event log (default true). */
  log?: boolean;
  /** Keep log entries in memory, not only their hash (default true). */
  keepLog?: boolean;
}

/** How a call to `run` ended. */
export type RunStatus = 'completed' | 'deadlock' | 'time-limit' | 'bug' | 'stopped';

/** The result of `Engine#run`. */
export interface RunResult {
  /** How the run ended. */
  status: RunStatus;
  /** Virtual time at the end, ns. */
  now: number;
  /** Events executed during this call. */
  events: number;
  /** The deadlock or bug report, for those statuses. */
  report?: Report;
}

/** Options for one blocking wait. */
export interface BlockOptions {
  /** Absolute virtual time (ns) at which to give up with `timeout`. */
  deadline?: number;
  /** A pending or arriving signal ends the wait with `signal`. */
  interruptible?: boolean;
}

const RESOLVED: Promise<void> = Promise.resolve();

/** The simulation engine: clock, event queue, tasks and scheduler. */
export class Engine {
  /** Current virtual time, integer ns. */
  now = 0;
  /** The run's event log. */
  readonly log: EventLog;
  /** Everything reported during the run. */
  readonly reports: Report[] = [];
  /** The scheduler's random stream. */
  readonly prng: Prng;
  /** A random stream for models and tests (independent of scheduling choices). */
  readonly random: Prng;
  /** The scheduling strategy in use. */
  readonly scheduler: Scheduler;
  /** The context executing now (`none` between steps). */
  current: ExecContext;
  /** The context used outside any task or event. */
  readonly noContext = new ExecContext('none', 'none', 0);
  /** The default hard-IRQ context for events scheduled without one. */
  readonly irqContext = new ExecContext('hardirq', 'irq', 0);
  /** Called whenever `current` changes (the kernel uses it to track the active machine). */
  onSwitch: ((ctx: ExecContext) => void) | null = null;
  /** Called before a task blocks (the kernel checks "sleeping in atomic context" here). */
  beforeBlock: ((task: Task, desc: WaitDesc) => void) | null = null;
  /** Called when a task's body returns, before it is marked exited (lockdep checks held locks). */
  onTaskExit: ((task: Task) => void) | null = null;

  private readonly queue = new EventQueue();
  private readonly runQueue: Task[] = [];
  private readonly tasks: Task[] = [];
  private nextTid = 1;
  private parkResolve: (() => void) | null = null;
  private irqWork: (() => void)[] = [];
  private stopRequested = false;
  private failure: unknown = null;
  private bugReport: Report | null = null;
  private eventsRun = 0;
  private running = false;
  private lastRan: Task | null = null;

  /** Creates an engine at time 0 with no tasks. */
  constructor(opts: EngineOptions = {}) {
    const seed = opts.seed ?? 1;
    const root = new Prng(seed);
    this.prng = root.fork();
    this.random = root.fork();
    this.scheduler = createScheduler(opts.scheduler ?? { strategy: 'fifo' }, this.prng);
    this.log = new EventLog(opts.log ?? true, opts.keepLog ?? true);
    this.current = this.noContext;
  }

  // ---------------------------------------------------------------- events

  /** Schedules `fn` at absolute time `time` (ns), to run in `ctx` (hard-IRQ by default). */
  at(time: number, fn: () => void, ctx: ExecContext = this.irqContext): EventHandle {
    if (!(time >= this.now)) {
      throw new RangeError(
        `Engine.at: time ${time} is before now (${this.now}); events cannot go back in time`,
      );
    }
    if (ctx === this.irqContext) return this.queue.push(time, fn);
    return this.queue.push(time, () => this.runIn(ctx, fn));
  }

  /** Schedules `fn` after `delay` ns. */
  after(delay: number, fn: () => void, ctx?: ExecContext): EventHandle {
    return this.at(this.now + delay, fn, ctx);
  }

  /** Cancels a scheduled event; false if it already ran or was cancelled. */
  cancel(handle: EventHandle): boolean {
    return this.queue.cancel(handle);
  }

  /** Number of pending events. */
  get pendingEvents(): number {
    return this.queue.length;
  }

  /**
   * Queues deferred work that runs in hard-IRQ context as soon as interrupts are
   * enabled again (like `irq_work_queue` raising a self-IPI): at the end of the
   * current event, or when the current task's outermost irq-disabled section ends.
   * Queued from a task (or outside any context) with interrupts enabled, it runs at
   * once, as the self-IPI is taken at once.
   */
  queueIrqWork(fn: () => void): void {
    this.irqWork.push(fn);
    this.irqWorkPoint();
  }

  /**
   * Runs queued irq_work if the current context has interrupts enabled. The kernel's
   * `local_irq_restore` calls this when the last disable is undone.
   */
  irqWorkPoint(): void {
    const cur = this.current;
    if (this.irqWork.length === 0 || cur.irqsDisabled > 0 || cur.kind === 'hardirq') return;
    this.drainIrqWork(cur.owner);
  }

  private drainIrqWork(owner: unknown): void {
    const ctx = owner === this.irqContext.owner ? this.irqContext : this.irqContextFor(owner);
    while (this.irqWork.length > 0) {
      const batch = this.irqWork;
      this.irqWork = [];
      for (const fn of batch) this.runIn(ctx, fn);
    }
  }

  private readonly irqContexts = new Map<unknown, ExecContext>();

  /** The hard-IRQ context of a kernel (machine); created on first use. */
  irqContextFor(owner: unknown): ExecContext {
    if (owner === null || owner === this.irqContext.owner) return this.irqContext;
    let ctx = this.irqContexts.get(owner);
    if (!ctx) {
      ctx = new ExecContext('hardirq', 'irq', 0, owner);
      this.irqContexts.set(owner, ctx);
    }
    return ctx;
  }

  /** Runs `fn` synchronously with `ctx` as the current context, then restores. */
  runIn<T>(ctx: ExecContext, fn: () => T): T {
    const prev = this.current;
    this.setCurrent(ctx);
    try {
      return fn();
    } finally {
      this.setCurrent(prev);
    }
  }

  private setCurrent(ctx: ExecContext): void {
    this.current = ctx;
    if (this.onSwitch !== null) this.onSwitch(ctx);
  }

  // ---------------------------------------------------------------- tasks

  /** Creates a runnable task. `daemon` tasks do not keep the run alive. */
  spawn(name: string, body: TaskBody, opts: { daemon?: boolean; owner?: unknown } = {}): Task {
    const owner = opts.owner === undefined ? this.current.owner : opts.owner;
    const t = new Task(this.nextTid++, name, body, opts.daemon ?? false, owner);
    this.scheduler.onCreate(t);
    this.tasks.push(t);
    this.runQueue.push(t);
    if (this.log.enabled) {
      this.log.add({
        t: this.now,
        ctx: this.current.label,
        name: 'task_newtask',
        args: { comm: name, pid: t.id },
      });
    }
    return t;
  }

  /** All tasks ever created, in creation order. */
  get allTasks(): readonly Task[] {
    return this.tasks;
  }

  /** The running task; throws if the current context is not a task. */
  currentTask(): Task {
    const c = this.current;
    if (!(c instanceof Task)) {
      throw new Error(`a blocking call was made from ${c.kind} context; only a simulated thread can block`);
    }
    return c;
  }

  /**
   * Blocks the current task until `wakeUp`, the deadline, or (if interruptible) a
   * signal. Resolves to the reason it woke. Must be awaited at once.
   */
  block(desc: WaitDesc, opts: BlockOptions = {}): Promise<WakeReason> {
    const t = this.currentTask();
    if (this.beforeBlock !== null) this.beforeBlock(t, desc);
    if (opts.interruptible && t.signalPending) return Promise.resolve('signal');
    if (opts.deadline !== undefined && opts.deadline <= this.now) return Promise.resolve('timeout');
    t.state = 'blocked';
    t.waitingOn = desc;
    t.interruptible = opts.interruptible ?? false;
    if (opts.deadline !== undefined) {
      t.timer = this.queue.push(opts.deadline, () => this.wakeUp(t, 'timeout'));
    }
    return this.park(t);
  }

  /** Wakes a blocked task; returns false if it was not blocked. */
  wakeUp(t: Task, reason: WakeReason = 'woken'): boolean {
    if (t.state !== 'blocked') return false;
    if (t.timer !== -1) {
      this.queue.cancel(t.timer);
      t.timer = -1;
    }
    t.state = 'runnable';
    t.waitingOn = null;
    t.wakeReason = reason;
    this.runQueue.push(t);
    if (this.log.enabled) {
      this.log.add({
        t: this.now,
        ctx: this.current.label,
        name: 'sched_wakeup',
        args: { comm: t.name, pid: t.id, reason },
      });
    }
    return true;
  }

  /** Delivers a signal to `t`: it stays pending and ends an interruptible wait. */
  signal(t: Task): void {
    t.signalPending = true;
    if (t.state === 'blocked' && t.interruptible) this.wakeUp(t, 'signal');
  }

  /** Gives up the CPU: the current task goes to the back of the run queue (sched_yield). */
  yield(): Promise<void> {
    const t = this.currentTask();
    if (this.beforeBlock !== null) this.beforeBlock(t, { what: 'sched_yield' });
    return this.requeue(t);
  }

  private requeue(t: Task): Promise<void> {
    t.state = 'runnable';
    t.wakeReason = 'woken';
    this.runQueue.push(t);
    return this.park(t) as Promise<unknown> as Promise<void>;
  }

  /**
   * A point where the scheduler may switch threads (cond_resched, lock acquisition).
   * Under fifo it never switches; under random and PCT it may.
   */
  preemptionPoint(): Promise<void> {
    const cur = this.current;
    // cond_resched() checks for atomic context whatever the scheduler decides.
    if (this.beforeBlock !== null && cur instanceof Task) this.beforeBlock(cur, { what: 'cond_resched' });
    if (!this.scheduler.preempts || (this.runQueue.length === 0 && this.queue.peekTime() > this.now))
      return RESOLVED;
    return this.requeue(this.currentTask());
  }

  /** Sleeps for `ns` of virtual time (uninterruptible). */
  async sleep(ns: number): Promise<void> {
    await this.block({ what: `sleep ${ns} ns` }, { deadline: this.now + ns });
  }

  /** Waits for `t` to exit and returns its exit value. */
  async join(t: Task): Promise<number> {
    const me = this.currentTask();
    while (t.state !== 'exited') {
      t.joiners.push(me);
      await this.block({ what: `join ${t.label}`, objects: [{ kind: 'task', name: t.label, id: t.id }] });
    }
    return t.exitValue ?? 0;
  }

  private park(t: Task): Promise<WakeReason> {
    return new Promise<WakeReason>((resolve) => {
      t.resume = resolve;
      this.parkCurrent();
    });
  }

  private parkCurrent(): void {
    const r = this.parkResolve;
    this.parkResolve = null;
    if (r !== null) r();
  }

  private switchTo(t: Task): Promise<void> {
    const parked = new Promise<void>((resolve) => {
      this.parkResolve = resolve;
    });
    t.state = 'running';
    this.setCurrent(t);
    if (this.log.enabled) {
      this.log.add({
        t: this.now,
        ctx: t.label,
        name: 'sched_switch',
        args: { next_comm: t.name, next_pid: t.id },
      });
    }
    if (t.body !== null) {
      const body = t.body;
      t.body = null;
      let p: Promise<number | undefined | void>;
      try {
        p = body(t);
      } catch (e) {
        p = Promise.reject(e);
      }
      p.then(
        (v) => this.taskExit(t, typeof v === 'number' ? v : 0),
        (e) => this.taskFault(t, e),
      );
    } else {
      const r = t.resume!;
      t.resume = null;
      r(t.wakeReason);
    }
    return parked;
  }

  private taskExit(t: Task, value: number): void {
    if (this.onTaskExit !== null) this.onTaskExit(t);
    t.state = 'exited';
    t.exitValue = value;
    if (this.log.enabled) {
      this.log.add({
        t: this.now,
        ctx: t.label,
        name: 'sched_process_exit',
        args: { comm: t.name, pid: t.id, code: value },
      });
    }
    for (const j of t.joiners) this.wakeUp(j);
    t.joiners = [];
    this.parkCurrent();
  }

  private taskFault(t: Task, e: unknown): void {
    t.state = 'exited';
    t.exitValue = -1;
    if (e instanceof KernelBug) {
      this.bugReport = e.report;
    } else if (this.failure === null) {
      this.failure = e;
    }
    this.stopRequested = true;
    this.parkCurrent();
  }

  // ---------------------------------------------------------------- reports

  /** Records a report. */
  report(r: Report): void {
    this.reports.push(r);
  }

  /** Stops the run after the current step (`run` resolves with `stopped`). */
  stop(): void {
    this.stopRequested = true;
  }

  // ---------------------------------------------------------------- the loop

  /**
   * Runs until every non-daemon task has exited, a deadlock, a BUG, `stop()`, or the
   * virtual time `until` (ns). Rejects if a task or event threw an ordinary error (a
   * failed assertion in a test, a programming error in a model).
   */
  async run(opts: { until?: number } = {}): Promise<RunResult> {
    if (this.running) throw new Error('Engine.run is already running');
    this.running = true;
    const until = opts.until ?? Number.POSITIVE_INFINITY;
    const startEvents = this.eventsRun;
    let status: RunStatus = 'completed';
    try {
      for (;;) {
        if (this.stopRequested) break;
        // Interrupts first: events due now fire before any thread runs.
        if (this.queue.peekTime() <= this.now && this.fireEvents(until)) status = 'time-limit';
        if (status === 'time-limit' || this.stopRequested) break;
        if (this.runQueue.length > 0) {
          const i = this.scheduler.pick(this.runQueue, this.lastRan);
          const t = this.runQueue[i];
          this.runQueue.splice(i, 1);
          this.lastRan = t;
          await this.switchTo(t);
          this.setCurrent(this.noContext);
          continue;
        }
        // No task can run: fire events, advancing time, until one becomes runnable.
        if (this.fireEvents(until)) status = 'time-limit';
        if (status === 'time-limit') break;
        if (this.runQueue.length === 0 && !this.stopRequested) break;
      }
    } finally {
      this.running = false;
      this.setCurrent(this.noContext);
    }
    const result: RunResult = { status, now: this.now, events: this.eventsRun - startEvents };
    if (this.failure !== null) {
      const f = this.failure;
      this.failure = null;
      this.stopRequested = false;
      throw f;
    }
    if (this.bugReport !== null) {
      result.status = 'bug';
      result.report = this.bugReport;
      return result;
    }
    if (this.stopRequested) {
      this.stopRequested = false;
      result.status = 'stopped';
      return result;
    }
    if (status === 'completed') {
      const stuck = this.tasks.filter((t) => t.state === 'blocked' && !t.daemon);
      if (stuck.length > 0) {
        result.status = 'deadlock';
        result.report = this.deadlockReport(stuck);
        this.report(result.report);
      }
    }
    return result;
  }

  /**
   * Fires events in (time, seq) order, advancing the clock, until a task is runnable
   * and no further event is due at the current time, a stop is requested, the queue is
   * empty, or the next event lies beyond `until` (then the clock is set to `until` and
   * true is returned). Every event due at one instant fires before a thread woken by
   * one of them runs, as interrupts would.
   *
   * The hot path of event-heavy runs, kept in a plain synchronous method: the context
   * is set back to `none` once after the batch rather than after each event (nothing
   * runs between two events of one batch to observe it), the loop is entered once
   * under one try/catch (an exception stops the run, which ends the batch anyway), and
   * the event count is kept in a local.
   */
  private fireEvents(until: number): boolean {
    const queue = this.queue;
    const runQueue = this.runQueue;
    const irq = this.irqContext;
    let fired = 0;
    let limited = false;
    if (this.stopRequested) return false;
    try {
      for (;;) {
        const next = queue.peekTime();
        if (next === Number.POSITIVE_INFINITY) break;
        if (runQueue.length !== 0 && next > this.now) break;
        if (next > until) {
          this.now = until;
          limited = true;
          break;
        }
        const fn = queue.pop()!;
        this.now = next;
        fired++;
        this.setCurrent(irq);
        fn();
        if (this.irqWork.length > 0) this.drainIrqWork(irq.owner);
        if (this.stopRequested) break;
      }
    } catch (e) {
      if (e instanceof KernelBug) this.bugReport = e.report;
      else if (this.failure === null) this.failure = e;
      this.stopRequested = true;
    }
    this.eventsRun += fired;
    this.setCurrent(this.noContext);
    return limited;
  }

  private deadlockReport(stuck: Task[]): Report {
    const lines = stuck.map((t) => `  ${t.label} waits on ${t.waitingOn?.what ?? 'nothing known'}`);
    const objects: ReportObject[] = [];
    for (const t of stuck) {
      objects.push({ kind: 'task', name: t.label, id: t.id });
      if (t.waitingOn?.objects) objects.push(...t.waitingOn.objects);
    }
    return {
      type: 'deadlock',
      rule: 'deadlock',
      message: `${stuck.length} thread(s) blocked with nothing left that could wake them:\n${lines.join('\n')}`,
      simTime: this.now,
      objects,
      context: { kind: 'none', name: 'scheduler' },
    };
  }
}
