/**
 * dma_fence: a one-shot completion signal shared between drivers
 * (drivers/dma-buf/dma-fence.c, include/linux/dma-fence.h, Linux 6.12).
 *
 * Follows 6.12, not later kernels, wherever they differ:
 * - flag bits: SIGNALED 0, TIMESTAMP 1, ENABLE_SIGNAL 2, USER_BITS 3 (no SEQNO64 bit);
 *   64-bit seqno comparison is chosen by `ops.use64bitSeqno`;
 * - the context counter starts at 1 (6.12.117), so context 0 is left to stub fences;
 * - `dma_fence_signal(NULL)` returns -EINVAL without a WARN;
 * - names always come from the ops, before and after signalling.
 *
 * Failure styles as in the kernel: negative errno returns, WARNs recorded as reports
 * (execution goes on), BUG as a thrown `KernelBug`. A callback that takes the fence's
 * own lock again is a self-deadlock: reported, and the run stops instead of hanging.
 *
 * Sequence numbers are JS numbers: exact up to 2^53. The 32-bit wrap-around compare
 * uses the low 32 bits, as the kernel does.
 */
import type { ReportObject } from '../../sim/report.ts';
import { errno, MAX_ERRNO } from '../errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../jiffies.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import {
  SpinLock,
  spinLock,
  spinLockIrqsave,
  spinUnlock,
  spinUnlockIrqrestore,
} from '../locking/spinlock.ts';
import { tracepoint } from '../trace.ts';

/** Flag bit: the fence has signalled. */
export const DMA_FENCE_FLAG_SIGNALED_BIT = 0;
/** Flag bit: `timestamp` is valid. */
export const DMA_FENCE_FLAG_TIMESTAMP_BIT = 1;
/** Flag bit: software signalling was enabled. */
export const DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 2;
/** First flag bit free for the fence's implementer (sw_sync: "has deadline"). */
export const DMA_FENCE_FLAG_USER_BITS = 3;

const SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT;
const TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT;
const ENABLE_SIGNAL = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT;

/**
 * The operations a fence implementer provides (struct dma_fence_ops). Ops run in the
 * context of whoever calls into the fence; the notes say which lock is held.
 */
export interface DmaFenceOps {
  /** Compare seqnos as 64-bit values instead of 32-bit wrap-around (chains set it). */
  use64bitSeqno?: boolean;
  /** Mandatory. The driver's name. Called without locks. */
  getDriverName(fence: DmaFence): string;
  /**
   * Mandatory. The timeline's name. Called without locks, and already from the
   * constructor (the dma_fence_init tracepoint), before a subclass's own fields are set:
   * take the name from the ops or the context, not from a field of the subclass.
   */
  getTimelineName(fence: DmaFence): string;
  /**
   * Optional. Called once, with the fence lock held and interrupts off, the first time
   * someone needs a software signal. Return false when the fence has already passed
   * (the core then signals it at once); may set `error` only when returning false.
   * Without it the implementer must always signal.
   */
  enableSignaling?(fence: DmaFence): boolean;
  /**
   * Optional. Fast peek at completion, called with or without the lock. Once it has
   * returned true it must keep doing so; may set `error` when returning true.
   */
  signaled?(fence: DmaFence): boolean;
  /**
   * Optional, deprecated. A custom wait: must return -ERESTARTSYS when interrupted, the
   * remaining jiffies when signalled, 0 on timeout. Called without locks, may sleep.
   */
  wait?(fence: DmaFence, intr: boolean, timeout: number): Promise<number>;
  /** Optional. Destructor, called when the last reference goes (default: nothing to free). */
  release?(fence: DmaFence): void;
  /** Optional. Fills the fence's value in debug dumps (sync_file info). */
  fenceValueStr?(fence: DmaFence): string;
  /** Optional. Fills the timeline's current value in debug dumps. */
  timelineValueStr?(fence: DmaFence): string;
  /**
   * Optional. Deadline hint (absolute CLOCK_MONOTONIC ns). Called without the fence
   * lock, possibly several times and concurrently; honour the earliest.
   */
  setDeadline?(fence: DmaFence, deadline: number): void;
}

/** A fence callback function (dma_fence_func_t). Runs with the fence lock held. */
export type DmaFenceFunc = (fence: DmaFence, cb: DmaFenceCb) => void;

/** A callback slot (struct dma_fence_cb); it can be queued on one fence at a time. */
export class DmaFenceCb {
  /** The function to call. */
  func: DmaFenceFunc | null = null;
  /** The fence whose list holds this callback, or null when not queued. */
  queuedOn: DmaFence | null = null;
}

/** A fence. Drivers extend it the way C drivers embed `struct dma_fence`. */
export class DmaFence {
  /** The operations table. */
  ops: DmaFenceOps;
  /** The spinlock protecting the callback list; may be shared by many fences. */
  readonly lock: SpinLock;
  /** Timeline (context) id. */
  context: number;
  /** Position on the timeline. */
  seqno: number;
  /** DMA_FENCE_FLAG_* bits. */
  flags = 0;
  /** Reference count. */
  refcount = 1;
  /** Completion error (negative errno) or 0. */
  error = 0;
  /** Signal time, CLOCK_MONOTONIC ns; valid once the TIMESTAMP bit is set. */
  timestamp = 0;
  /** Pending callbacks in registration order (the default wait adds at the head). */
  cbList: DmaFenceCb[] = [];
  /** The kernel the fence was created in. */
  readonly kernel: Kernel;

  /**
   * dma_fence_init(): a new fence holding one reference. BUG when `lock` or `ops` or
   * either name op is missing.
   */
  constructor(ops: DmaFenceOps, lock: SpinLock, context: number, seqno: number) {
    const k = currentKernel();
    this.kernel = k;
    if (!(lock instanceof SpinLock))
      k.bug('dma_fence.init_no_lock', 'kernel BUG at dma_fence_init: lock is NULL');
    if (!ops || typeof ops.getDriverName !== 'function' || typeof ops.getTimelineName !== 'function') {
      k.bug(
        'dma_fence.init_bad_ops',
        'kernel BUG at dma_fence_init: ops, get_driver_name and get_timeline_name are mandatory',
      );
    }
    this.ops = ops;
    this.lock = lock;
    this.context = context;
    this.seqno = seqno;
    if (k.engine.log.enabled) this.trace('dma_fence_init');
  }

  /** The driver name from the ops. */
  get driverName(): string {
    return this.ops.getDriverName(this);
  }

  /** The timeline name from the ops. */
  get timelineName(): string {
    return this.ops.getTimelineName(this);
  }

  /** `driver:timeline:context:seqno` (hex), the kernel's way of naming a fence in warnings. */
  toString(): string {
    return `${this.driverName}:${this.timelineName}:${this.context.toString(16)}:${this.seqno.toString(16)}`;
  }

  /** This fence as a report object. */
  reportObject(): ReportObject {
    return { kind: 'dma_fence', name: this.toString() };
  }

  /** True once SIGNALED_BIT is set (test_bit, without asking the ops). */
  get signaledBit(): boolean {
    return (this.flags & SIGNALED) !== 0;
  }

  /** Emits a dma_fence tracepoint for this fence. */
  trace(name: string): void {
    tracepoint(
      this.kernel.engine,
      name,
      { driver: this.driverName, timeline: this.timelineName, context: this.context, seqno: this.seqno },
      this.kernel.name,
    );
  }

  // ------------------------------------------------------------ references

  /** dma_fence_get(): takes a reference; returns the fence. */
  get(): this {
    if (this.refcount <= 0) {
      this.kernel.warn(
        'refcount.addition_on_0',
        `refcount_t: addition on 0; use-after-free of fence ${this.toString()}`,
        [this.reportObject()],
      );
    }
    this.refcount++;
    return this;
  }

  /** dma_fence_put(): drops a reference; the last one releases the fence. */
  put(): void {
    if (this.refcount <= 0) {
      this.kernel.warn(
        'refcount.underflow',
        `refcount_t: underflow; use-after-free of fence ${this.toString()}`,
        [this.reportObject()],
      );
      return;
    }
    if (--this.refcount === 0) this.release();
  }

  /** dma_fence_release(): WARN and signal with -EDEADLK if callbacks are still pending. */
  private release(): void {
    if (this.kernel.engine.log.enabled) this.trace('dma_fence_destroy');
    if (this.cbList.length > 0 && !this.signaledBit) {
      this.kernel.warn(
        'dma_fence.release_pending_signals',
        `Fence ${this.toString()} released with pending signals!`,
        [this.reportObject()],
      );
      const flags = spinLockIrqsave(this.lock);
      this.error = -errno.EDEADLK;
      this.signalLocked();
      spinUnlockIrqrestore(this.lock, flags);
    }
    if (this.ops.release) this.ops.release(this);
  }

  // ------------------------------------------------------------ signalling

  /**
   * dma_fence_signal_timestamp_locked(): the fence lock must be held. Returns -EINVAL
   * if already signalled (nothing runs); otherwise records the timestamp and runs the
   * callbacks in registration order, and returns 0.
   */
  signalTimestampLocked(timestamp: number): number {
    if (this.flags & SIGNALED) return -errno.EINVAL;
    this.flags |= SIGNALED;
    const list = this.cbList;
    this.cbList = [];
    this.timestamp = timestamp;
    this.flags |= TIMESTAMP;
    if (this.kernel.engine.log.enabled) this.trace('dma_fence_signaled');
    for (let i = 0; i < list.length; i++) {
      const cb = list[i];
      cb.queuedOn = null;
      cb.func!(this, cb);
    }
    return 0;
  }

  /** dma_fence_signal_timestamp(): takes the lock and signals with `timestamp`. */
  signalTimestamp(timestamp: number): number {
    const flags = spinLockIrqsave(this.lock);
    const ret = this.signalTimestampLocked(timestamp);
    spinUnlockIrqrestore(this.lock, flags);
    return ret;
  }

  /** dma_fence_signal_locked(): the lock must be held; timestamp is now. */
  signalLocked(): number {
    return this.signalTimestampLocked(this.kernel.ktimeGet());
  }

  /** dma_fence_signal(): a signalling section around taking the lock and signalling now. */
  signal(): number {
    const cookie = dmaFenceBeginSignalling();
    const flags = spinLockIrqsave(this.lock);
    const ret = this.signalTimestampLocked(this.kernel.ktimeGet());
    spinUnlockIrqrestore(this.lock, flags);
    dmaFenceEndSignalling(cookie);
    return ret;
  }

  // ------------------------------------------------------------ queries

  /**
   * dma_fence_is_signaled(): true if signalled, or if `ops.signaled` says so (then the
   * fence is signalled now). Does not enable signalling.
   */
  isSignaled(): boolean {
    if (this.flags & SIGNALED) return true;
    if (this.ops.signaled?.(this)) {
      this.signal();
      return true;
    }
    return false;
  }

  /** dma_fence_is_signaled_locked(): as `isSignaled`, with the lock already held. */
  isSignaledLocked(): boolean {
    if (this.flags & SIGNALED) return true;
    if (this.ops.signaled?.(this)) {
      this.signalLocked();
      return true;
    }
    return false;
  }

  /** dma_fence_get_status_locked(): 0 while pending, then `error` or 1. */
  getStatusLocked(): number {
    if (this.isSignaledLocked()) return this.error || 1;
    return 0;
  }

  /** dma_fence_get_status(): takes the lock; 0 while pending, then `error` or 1. */
  getStatus(): number {
    const flags = spinLockIrqsave(this.lock);
    const status = this.getStatusLocked();
    spinUnlockIrqrestore(this.lock, flags);
    return status;
  }

  /**
   * dma_fence_set_error(): WARNs when already signalled or when `error` is not a
   * negative errno, and stores the value anyway.
   */
  setError(error: number): void {
    if (this.flags & SIGNALED) {
      this.kernel.warn(
        'dma_fence.set_error_signaled',
        `WARNING: dma_fence_set_error on signalled fence ${this}`,
        [this.reportObject()],
      );
    }
    if (error >= 0 || error < -MAX_ERRNO) {
      this.kernel.warn(
        'dma_fence.set_error_invalid',
        `WARNING: dma_fence_set_error(${error}) on fence ${this}: the error must be a negative errno`,
        [this.reportObject()],
      );
    }
    this.error = error;
  }

  /** dma_fence_timestamp(): the signal time; WARN and now when not signalled. */
  getTimestamp(): number {
    if (!(this.flags & SIGNALED)) {
      this.kernel.warn(
        'dma_fence.timestamp_unsignaled',
        `WARNING: dma_fence_timestamp on unsignalled fence ${this}`,
        [this.reportObject()],
      );
      return this.kernel.ktimeGet();
    }
    return this.timestamp;
  }

  /** dma_fence_describe(): `<driver> <timeline> seq <n> [un]signalled` and a newline. */
  describe(): string {
    return `${this.driverName} ${this.timelineName} seq ${this.seqno} ${this.isSignaled() ? '' : 'un'}signalled\n`;
  }

  // ------------------------------------------------------------ callbacks

  /** __dma_fence_enable_signaling(): lock held. False when the fence is (now) signalled. */
  enableSignalingLocked(): boolean {
    const wasSet = (this.flags & ENABLE_SIGNAL) !== 0;
    this.flags |= ENABLE_SIGNAL;
    if (this.flags & SIGNALED) return false;
    if (!wasSet && this.ops.enableSignaling) {
      if (this.kernel.engine.log.enabled) this.trace('dma_fence_enable_signal');
      if (!this.ops.enableSignaling(this)) {
        this.signalLocked();
        return false;
      }
    }
    return true;
  }

  /** dma_fence_enable_sw_signaling(). */
  enableSwSignaling(): void {
    const flags = spinLockIrqsave(this.lock);
    this.enableSignalingLocked();
    spinUnlockIrqrestore(this.lock, flags);
  }

  /**
   * dma_fence_add_callback(): queues `func` to run when the fence signals. Returns 0,
   * or -ENOENT when the fence has already signalled (the callback is not called), or
   * -EINVAL (with a WARN) without a function. Always enables signalling.
   */
  addCallback(cb: DmaFenceCb, func: DmaFenceFunc | null): number {
    if (!func) {
      this.kernel.warn('dma_fence.add_callback_null', 'WARNING: dma_fence_add_callback without a function', [
        this.reportObject(),
      ]);
      return -errno.EINVAL;
    }
    if (this.flags & SIGNALED) {
      cb.queuedOn = null;
      return -errno.ENOENT;
    }
    const flags = spinLockIrqsave(this.lock);
    let ret = 0;
    if (this.enableSignalingLocked()) {
      cb.func = func;
      cb.queuedOn = this;
      this.cbList.push(cb);
    } else {
      cb.queuedOn = null;
      ret = -errno.ENOENT;
    }
    spinUnlockIrqrestore(this.lock, flags);
    return ret;
  }

  /** dma_fence_remove_callback(): true if `cb` was still queued here (it is removed). */
  removeCallback(cb: DmaFenceCb): boolean {
    const flags = spinLockIrqsave(this.lock);
    const ret = cb.queuedOn === this;
    if (ret) {
      const i = this.cbList.indexOf(cb);
      if (i >= 0) this.cbList.splice(i, 1);
      cb.queuedOn = null;
    }
    spinUnlockIrqrestore(this.lock, flags);
    return ret;
  }

  // ------------------------------------------------------------ waiting

  /**
   * dma_fence_wait_timeout(): sleeps until signalled, `timeout` jiffies pass, or (if
   * `intr`) a signal arrives. Returns the remaining jiffies (> 0), 0 on timeout,
   * -ERESTARTSYS when interrupted, or -EINVAL (with a WARN) for a negative timeout.
   */
  async waitTimeout(intr: boolean, timeout: number): Promise<number> {
    const k = this.kernel;
    if (timeout < 0) {
      k.warn(
        'dma_fence.wait_negative_timeout',
        `WARNING: dma_fence_wait_timeout(${timeout}) on fence ${this}`,
        [this.reportObject()],
      );
      return -errno.EINVAL;
    }
    k.checkMightSleep(k.ctx, 'dma_fence_wait_timeout');
    dmaFenceMightWait();
    this.enableSwSignaling();
    if (k.engine.log.enabled) this.trace('dma_fence_wait_start');
    const ret = this.ops.wait
      ? await this.ops.wait(this, intr, timeout)
      : await dmaFenceDefaultWait(this, intr, timeout);
    if (k.engine.log.enabled) this.trace('dma_fence_wait_end');
    return ret;
  }

  /** dma_fence_wait(): waits forever; 0 when signalled or a negative error (-ERESTARTSYS). */
  async wait(intr: boolean): Promise<number> {
    const ret = await this.waitTimeout(intr, MAX_SCHEDULE_TIMEOUT);
    return Math.min(ret, 0);
  }

  /** dma_fence_set_deadline(): passes the hint to `ops.setDeadline` unless signalled. */
  setDeadline(deadline: number): void {
    if (this.ops.setDeadline && !this.isSignaled()) this.ops.setDeadline(this, deadline);
  }
}

// ------------------------------------------------------------ free functions

/** dma_fence_get(): NULL-safe reference get. */
export function dmaFenceGet<F extends DmaFence>(fence: F | null | undefined): F | null {
  return fence ? fence.get() : null;
}

/** dma_fence_put(): NULL-safe reference put. */
export function dmaFencePut(fence: DmaFence | null | undefined): void {
  if (fence) fence.put();
}

/** dma_fence_signal(): -EINVAL for NULL (6.12: no WARN). */
export function dmaFenceSignal(fence: DmaFence | null | undefined): number {
  if (!fence) return -errno.EINVAL;
  return fence.signal();
}

/**
 * dma_fence_context_alloc(): reserves `num` consecutive context ids and returns the
 * first. WARN when `num` is 0.
 */
export function dmaFenceContextAlloc(num: number): number {
  const k = currentKernel();
  if (num === 0) k.warn('dma_fence.context_alloc_zero', 'WARNING: dma_fence_context_alloc(0)');
  const first = k.fenceContextCounter;
  k.fenceContextCounter += num;
  return first;
}

/** __dma_fence_is_later(): seqno `f1` after `f2`, 64-bit or 32-bit wrap-around as `ops` says. */
export function dmaFenceSeqnoIsLater(f1: number, f2: number, ops: DmaFenceOps): boolean {
  if (ops.use64bitSeqno) return f1 > f2;
  return (((f1 >>> 0) - (f2 >>> 0)) | 0) > 0;
}

/** dma_fence_is_later(): WARN and false when the contexts differ. */
export function dmaFenceIsLater(f1: DmaFence, f2: DmaFence): boolean {
  if (f1.context !== f2.context) {
    f1.kernel.warn(
      'dma_fence.is_later_context',
      `WARNING: dma_fence_is_later on fences of different contexts (${f1}, ${f2})`,
      [f1.reportObject(), f2.reportObject()],
    );
    return false;
  }
  return dmaFenceSeqnoIsLater(f1.seqno, f2.seqno, f1.ops);
}

/** dma_fence_is_later_or_same(). */
export function dmaFenceIsLaterOrSame(f1: DmaFence, f2: DmaFence): boolean {
  return f1 === f2 || dmaFenceIsLater(f1, f2);
}

/**
 * dma_fence_later(): the later of two fences of one context, or null when that one has
 * already signalled (WARN and null when contexts differ). No reference is taken.
 */
export function dmaFenceLater(f1: DmaFence, f2: DmaFence): DmaFence | null {
  if (f1.context !== f2.context) {
    f1.kernel.warn(
      'dma_fence.later_context',
      `WARNING: dma_fence_later on fences of different contexts (${f1}, ${f2})`,
      [f1.reportObject(), f2.reportObject()],
    );
    return null;
  }
  if (dmaFenceIsLater(f1, f2)) return f1.isSignaled() ? null : f1;
  return f2.isSignaled() ? null : f2;
}

/**
 * dma_fence_default_wait(): the wait used when the ops have none. Returns `timeout`
 * (or 1 for a zero timeout) when already signalled, 0 when the time runs out,
 * -ERESTARTSYS when interrupted, otherwise the jiffies left.
 */
export async function dmaFenceDefaultWait(fence: DmaFence, intr: boolean, timeout: number): Promise<number> {
  const k = fence.kernel;
  let ret = timeout ? timeout : 1;
  let flags = spinLockIrqsave(fence.lock);
  if (fence.flags & SIGNALED) {
    spinUnlockIrqrestore(fence.lock, flags);
    return ret;
  }
  if (intr && k.signalPending()) {
    spinUnlockIrqrestore(fence.lock, flags);
    return -errno.ERESTARTSYS;
  }
  if (!timeout) {
    spinUnlockIrqrestore(fence.lock, flags);
    return 0;
  }
  const task = k.engine.currentTask();
  const cb = new DmaFenceCb();
  cb.func = () => {
    k.engine.wakeUp(task);
  };
  cb.queuedOn = fence;
  fence.cbList.unshift(cb); // list_add: the waiter goes to the head
  while (!(fence.flags & SIGNALED) && ret > 0) {
    spinUnlockIrqrestore(fence.lock, flags);
    ret = await k.scheduleTimeout(ret, `dma_fence_wait on ${fence}`, {
      interruptible: intr,
      objects: [fence.reportObject()],
    });
    flags = spinLockIrqsave(fence.lock);
    if (ret > 0 && intr && k.signalPending()) ret = -errno.ERESTARTSYS;
  }
  if (cb.queuedOn === fence) {
    const i = fence.cbList.indexOf(cb);
    if (i >= 0) fence.cbList.splice(i, 1);
    cb.queuedOn = null;
  }
  spinUnlockIrqrestore(fence.lock, flags);
  return ret;
}

/**
 * dma_fence_wait_any_timeout(): waits until any of `fences` signals. Returns 1/0 for a
 * zero timeout (signalled or not), otherwise the jiffies left, 0 on timeout,
 * -ERESTARTSYS when interrupted, -EINVAL (with a WARN) for bad arguments. `idx.value`
 * is set to the index of a signalled fence when the result is positive.
 */
export async function dmaFenceWaitAnyTimeout(
  fences: readonly DmaFence[] | null,
  count: number,
  intr: boolean,
  timeout: number,
  idx?: { value: number },
): Promise<number> {
  const k = currentKernel();
  if (!fences || !count || timeout < 0) {
    k.warn(
      'dma_fence.wait_any_invalid',
      'WARNING: dma_fence_wait_any_timeout with no fences or a negative timeout',
    );
    return -errno.EINVAL;
  }
  if (timeout === 0) {
    for (let i = 0; i < count; i++) {
      if (fences[i].isSignaled()) {
        if (idx) idx.value = i;
        return 1;
      }
    }
    return 0;
  }
  const task = k.engine.currentTask();
  const cbs: DmaFenceCb[] = [];
  const wake: DmaFenceFunc = () => {
    k.engine.wakeUp(task);
  };
  let ret = timeout;
  let i = 0;
  let added = 0;
  for (; i < count; i++) {
    const cb = new DmaFenceCb();
    cbs.push(cb);
    if (fences[i].addCallback(cb, wake)) {
      if (idx) idx.value = i;
      break;
    }
    added++;
  }
  if (added === count) {
    while (ret > 0) {
      let hit = -1;
      for (let j = 0; j < count; j++) {
        if (fences[j].signaledBit) {
          hit = j;
          break;
        }
      }
      if (hit >= 0) {
        if (idx) idx.value = hit;
        break;
      }
      ret = await k.scheduleTimeout(ret, `dma_fence_wait_any on ${count} fences`, {
        interruptible: intr,
        objects: fences.slice(0, count).map((f) => f.reportObject()),
      });
      if (ret > 0 && intr && k.signalPending()) ret = -errno.ERESTARTSYS;
    }
  }
  for (let j = added - 1; j >= 0; j--) fences[j].removeCallback(cbs[j]);
  return ret;
}

// ------------------------------------------------------------ stub fences

const stubOps: DmaFenceOps = {
  getDriverName: () => 'stub',
  getTimelineName: () => 'stub',
};

const STUB = Symbol('dma_fence_stub');

interface StubState {
  lock: SpinLock;
  fence: DmaFence | null;
}

function stubState(k: Kernel): StubState {
  let s = k.singletons.get(STUB) as StubState | undefined;
  if (!s) {
    s = { lock: new SpinLock('dma_fence_stub_lock'), fence: null };
    k.singletons.set(STUB, s);
  }
  return s;
}

/**
 * dma_fence_get_stub(): the kernel's one always-signalled fence (context 0, seqno 0),
 * signalled on first use; returns a new reference.
 */
export function dmaFenceGetStub(): DmaFence {
  const s = stubState(currentKernel());
  spinLock(s.lock);
  if (s.fence === null) {
    const f = new DmaFence(stubOps, s.lock, 0, 0);
    // A static object: its count never reaches zero.
    f.refcount = Number.MAX_SAFE_INTEGER / 2;
    f.flags |= ENABLE_SIGNAL;
    f.signalLocked();
    s.fence = f;
  }
  spinUnlock(s.lock);
  return s.fence.get();
}

/** dma_fence_allocate_private_stub(): a fresh signalled fence with the given timestamp. */
export function dmaFenceAllocatePrivateStub(timestamp: number): DmaFence {
  const s = stubState(currentKernel());
  const f = new DmaFence(stubOps, s.lock, 0, 0);
  f.flags |= ENABLE_SIGNAL;
  f.signalTimestamp(timestamp);
  return f;
}

// ------------------------------------------------------------ signalling annotations

/**
 * dma_fence_begin_signalling(): marks the start of a fence-signalling critical section
 * for the current context. Returns true (nothing to end) when already inside one or in
 * atomic context; otherwise enters and returns false. Pass the result to
 * `dmaFenceEndSignalling`.
 */
export function dmaFenceBeginSignalling(): boolean {
  const k = currentKernel();
  const ctx = k.ctx;
  const st = k.state(ctx);
  if (st.signalling > 0) return true;
  if (k.inAtomic(ctx)) return true;
  st.signalling++;
  k.lockdepHooks?.signallingBegin(ctx);
  return false;
}

/** dma_fence_end_signalling(): leaves the section entered by the matching begin. */
export function dmaFenceEndSignalling(cookie: boolean): void {
  if (cookie) return;
  const k = currentKernel();
  const ctx = k.ctx;
  const st = k.state(ctx);
  st.signalling--;
  k.lockdepHooks?.signallingEnd(ctx);
}

/**
 * __dma_fence_might_wait(): the "may wait on a fence" annotation made by every wait.
 * Lockdep reports it inside a signalling section, or under a lock also taken in one.
 */
export function dmaFenceMightWait(): void {
  const k = currentKernel();
  k.lockdepHooks?.fenceMightWait(k.ctx);
}
