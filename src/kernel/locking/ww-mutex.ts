/**
 * Wound/wait mutexes and acquire contexts (include/linux/ww_mutex.h,
 * kernel/locking/ww_mutex.h, kernel/locking/mutex.c, Linux 6.12, with
 * CONFIG_DEBUG_MUTEXES, so DEBUG_WW_MUTEXES checks are on).
 *
 * A thread that must take several locks of one class in no fixed order (dma_resv locks
 * of many buffers) does so inside an acquire context. The context's stamp, taken from a
 * class-wide counter, orders contexts: smaller is older and wins.
 * - Wait-Die classes (DEFINE_WD_CLASS, reservation_ww_class): a context that already
 *   holds a lock and finds this one held by an older context, or an older context
 *   queued ahead, dies: -EDEADLK. It must drop every lock, sleep on the contended one
 *   with `wwMutexLockSlow`, and start over. Waiters are kept in stamp order; a younger
 *   waiter holding locks is woken to die when an older context queues or takes the lock.
 * - Wound-Wait classes (DEFINE_WW_CLASS): an older context that must wait wounds a
 *   younger owner holding locks; the wounded context gets -EDEADLK the next time it
 *   would sleep for a lock.
 * - -EALREADY when the context already holds the lock; a context holding nothing never
 *   gets -EDEADLK; without a context a ww_mutex is a plain mutex.
 *
 * Lockdep sees the acquire context as a held pseudo-lock of class `<class>_acquire` from
 * ww_acquire_init to ww_acquire_fini, and every ww_mutex as class `<class>_mutex` taken
 * with the context as nest lock (so several of them may be held together).
 *
 * Model choices: stamps count per kernel (each kernel has its own class counter), the
 * wound path wakes a wounded owner only when it sleeps on a mutex (the kernel wakes it
 * wherever it sleeps; other sleeps in the model do not expect spurious wake-ups), and
 * CONFIG_DEBUG_WW_MUTEX_SLOWPATH deadlock injection is not modelled.
 */
import { type ExecContext, Task } from '../../sim/engine.ts';
import { errno } from '../errno.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { LockdepMap } from './lockdep.ts';
import {
  Mutex,
  type MutexWaiter,
  mutexAddWaiter,
  mutexBlockedOn,
  mutexLockPrologue,
  mutexRemoveWaiter,
  mutexSchedule,
  mutexTrylockCommon,
  mutexUnlockCommon,
  mutexWaiterTask,
} from './mutex.ts';

/** struct ww_class: a family of ww_mutexes that may be taken together under one context. */
export class WwClass {
  /** Lockdep class name of the acquire contexts (`<name>_acquire`). */
  readonly acquireName: string;
  /** Lockdep class name of the mutexes (`<name>_mutex`). */
  readonly mutexName: string;
  /** Lockdep key of the acquire contexts. */
  readonly acquireKey: object = {};
  /** Lockdep key of the mutexes. */
  readonly mutexKey: object = {};
  private readonly stamps = new WeakMap<Kernel, number>();

  /** Use `defineWdClass` / `defineWwClass`. */
  constructor(
    /** The class name (`reservation_ww_class`). */
    readonly name: string,
    /** Wait-Die (true) or Wound-Wait (false). */
    readonly isWaitDie: boolean,
  ) {
    this.acquireName = `${name}_acquire`;
    this.mutexName = `${name}_mutex`;
  }

  /** atomic_long_inc_return(&class->stamp) for kernel `k` (the first stamp is 1). */
  nextStamp(k: Kernel): number {
    const s = (this.stamps.get(k) ?? 0) + 1;
    this.stamps.set(k, s);
    return s;
  }
}

/** DEFINE_WD_CLASS(): a Wait-Die class. */
export function defineWdClass(name: string): WwClass {
  return new WwClass(name, true);
}

/** DEFINE_WW_CLASS(): a Wound-Wait class. */
export function defineWwClass(name: string): WwClass {
  return new WwClass(name, false);
}

/** struct ww_acquire_ctx: one multi-lock transaction; create with `wwAcquireInit`. */
export class WwAcquireCtx {
  /** The thread that owns the context. */
  task: ExecContext | null = null;
  /** Age: smaller is older and wins. */
  stamp = 0;
  /** Number of ww_mutexes held under this context. */
  acquired = 0;
  /** Wound-Wait: an older context asked this one to back off. */
  wounded = false;
  /** Copied from the class. */
  isWaitDie = true;
  /** ww_acquire_done() was called. */
  doneAcquire = false;
  /** The class the context was initialised with. */
  wwClass: WwClass | null = null;
  /** The lock that returned -EDEADLK, until it is taken with the slow path. */
  contendingLock: WwMutex | null = null;
  /** The context's lockdep identity (the `<class>_acquire` pseudo-lock). */
  depMap: LockdepMap | null = null;
}

/** struct ww_mutex. */
export class WwMutex {
  /** The underlying mutex. */
  readonly base: Mutex;
  /** The acquire context holding the lock, if it was taken with one. */
  ctx: WwAcquireCtx | null = null;

  /** ww_mutex_init(): `instance` labels the lock in reports (its class is the class's `_mutex`). */
  constructor(
    /** The lock's class. */
    readonly wwClass: WwClass,
    instance?: string,
  ) {
    this.base = new Mutex(wwClass.mutexName, wwClass.mutexKey);
    if (instance !== undefined) this.base.depMap.instance = instance;
  }

  /** The lock's label in reports. */
  get label(): string {
    return this.base.label;
  }
}

function warn(k: Kernel, rule: string, what: string, lock?: WwMutex): void {
  k.warn(
    rule,
    `WARNING: DEBUG_LOCKS_WARN_ON(${what}) in ${k.ctx.label}`,
    lock !== undefined ? [lock.base.reportObject('ww_mutex')] : [],
  );
}

// ------------------------------------------------------------ acquire contexts

/**
 * ww_acquire_init(): starts a transaction for the current thread: a new stamp from the
 * class, and the `<class>_acquire` pseudo-lock held until `wwAcquireFini`.
 */
export function wwAcquireInit(ctx: WwAcquireCtx, wwClass: WwClass): void {
  const k = currentKernel();
  ctx.task = k.ctx;
  ctx.stamp = wwClass.nextStamp(k);
  ctx.acquired = 0;
  ctx.wounded = false;
  ctx.isWaitDie = wwClass.isWaitDie;
  ctx.wwClass = wwClass;
  ctx.doneAcquire = false;
  ctx.contendingLock = null;
  ctx.depMap = new LockdepMap(wwClass.acquireName, wwClass.acquireKey);
  k.lockdep?.acquire(k.ctx, ctx.depMap, 0, false, 0, true, null);
}

/** ww_acquire_done(): no more locks will be taken in this context (WARN if called twice). */
export function wwAcquireDone(ctx: WwAcquireCtx): void {
  const k = currentKernel();
  if (ctx.depMap !== null && k.lockdep !== null && !k.lockdep.isHeld(k.ctx, ctx.depMap)) {
    warn(k, 'ww_mutex.acquire_done_not_held', 'lockdep_assert_held(ctx)');
  }
  if (ctx.doneAcquire) warn(k, 'ww_mutex.acquire_done_twice', 'ctx->done_acquire');
  ctx.doneAcquire = true;
}

/** ww_acquire_fini(): ends the transaction; WARN if locks are still held in it. */
export function wwAcquireFini(ctx: WwAcquireCtx): void {
  const k = currentKernel();
  if (ctx.depMap !== null) k.lockdep?.release(k.ctx, ctx.depMap);
  if (ctx.acquired) warn(k, 'ww_mutex.fini_with_locks_held', 'ctx->acquired');
  ctx.doneAcquire = true;
}

// ------------------------------------------------------------ kernel/locking/ww_mutex.h

/** __ww_ctx_less(): `a` is younger than `b` (larger stamp). */
function ctxLess(a: WwAcquireCtx, b: WwAcquireCtx): boolean {
  return a.stamp > b.stamp;
}

function wwOf(w: MutexWaiter): WwAcquireCtx | null {
  return w.wwCtx as WwAcquireCtx | null;
}

/** ww_mutex_lock_acquired(): binds the lock to the context. */
function lockAcquired(k: Kernel, ww: WwMutex, ctx: WwAcquireCtx): void {
  if (ww.ctx !== null) warn(k, 'ww_mutex.acquired_with_ctx', 'ww->ctx', ww);
  if (ctx.doneAcquire) warn(k, 'ww_mutex.lock_after_done', 'ww_ctx->done_acquire', ww);
  if (ctx.contendingLock !== null) {
    if (ctx.contendingLock !== ww)
      warn(k, 'ww_mutex.wrong_contended_lock', 'ww_ctx->contending_lock != ww', ww);
    if (ctx.acquired > 0) warn(k, 'ww_mutex.slow_with_locks_held', 'ww_ctx->acquired > 0', ww);
    ctx.contendingLock = null;
  }
  if (ctx.wwClass !== ww.wwClass) warn(k, 'ww_mutex.wrong_class', 'ww_ctx->ww_class != ww->ww_class', ww);
  ctx.acquired++;
  ww.ctx = ctx;
}

/** Wakes a thread sleeping on a mutex wait list (wake_q_add + wake_up_q). */
function wake(k: Kernel, t: ExecContext | null): void {
  if (t instanceof Task && mutexBlockedOn(t) !== null) k.engine.wakeUp(t);
}

/** __ww_mutex_die(): Wait-Die: wake a younger waiter holding locks so it can die. */
function wwDie(k: Kernel, waiter: MutexWaiter, ctx: WwAcquireCtx): boolean {
  if (!ctx.isWaitDie) return false;
  const wctx = wwOf(waiter)!;
  if (wctx.acquired > 0 && ctxLess(wctx, ctx)) k.engine.wakeUp(waiter.task);
  return true;
}

/** __ww_mutex_wound(): Wound-Wait: wound a younger holder when an older waiter holds locks. */
function wwWound(k: Kernel, lock: WwMutex, ctx: WwAcquireCtx, holdCtx: WwAcquireCtx | null): boolean {
  if (holdCtx === null) return false;
  const owner = lock.base.owner;
  if (owner === null) return false;
  if (ctx.acquired > 0 && ctxLess(holdCtx, ctx)) {
    holdCtx.wounded = true;
    if (owner !== k.ctx) wake(k, owner);
    return true;
  }
  return false;
}

/** __ww_mutex_check_waiters(): after taking the lock, let waiters die or wound us. */
function checkWaiters(k: Kernel, lock: WwMutex, ctx: WwAcquireCtx): void {
  for (const cur of lock.base.waiters) {
    const cctx = wwOf(cur);
    if (cctx === null) continue;
    if (wwDie(k, cur, ctx) || wwWound(k, lock, cctx, ctx)) break;
  }
}

/** ww_mutex_set_context_fastpath(). */
function setContextFastpath(k: Kernel, lock: WwMutex, ctx: WwAcquireCtx): void {
  lockAcquired(k, lock, ctx);
  if (lock.base.waiters.length > 0) checkWaiters(k, lock, ctx);
}

/** __ww_mutex_kill(): -EDEADLK when the context holds locks, recording the contended lock. */
function wwKill(k: Kernel, lock: WwMutex, ctx: WwAcquireCtx): number {
  if (ctx.acquired > 0) {
    if (ctx.contendingLock !== null) warn(k, 'ww_mutex.deadlk_twice', 'ww_ctx->contending_lock', lock);
    ctx.contendingLock = lock;
    return -errno.EDEADLK;
  }
  return 0;
}

/** __ww_mutex_check_kill(). */
function checkKill(k: Kernel, lock: WwMutex, waiter: MutexWaiter, ctx: WwAcquireCtx): number {
  if (ctx.acquired === 0) return 0;
  if (!ctx.isWaitDie) return ctx.wounded ? wwKill(k, lock, ctx) : 0;
  const hold = lock.ctx;
  if (hold !== null && ctxLess(ctx, hold)) return wwKill(k, lock, ctx);
  const waiters = lock.base.waiters;
  for (let i = waiters.indexOf(waiter) - 1; i >= 0; i--) {
    if (wwOf(waiters[i]) !== null) return wwKill(k, lock, ctx);
  }
  return 0;
}

/** __ww_mutex_add_waiter(): queue in stamp order; Wait-Die may die at once. */
function addWaiter(k: Kernel, lock: WwMutex, waiter: MutexWaiter, ctx: WwAcquireCtx | null): number {
  const waiters = lock.base.waiters;
  if (ctx === null) {
    mutexAddWaiter(lock.base, waiter);
    return 0;
  }
  let pos = -1;
  for (let i = waiters.length - 1; i >= 0; i--) {
    const cur = waiters[i];
    const cctx = wwOf(cur);
    if (cctx === null) continue;
    if (ctxLess(ctx, cctx)) {
      if (ctx.isWaitDie) {
        const ret = wwKill(k, lock, ctx);
        if (ret) return ret;
      }
      break;
    }
    pos = i;
    wwDie(k, cur, ctx);
  }
  mutexAddWaiter(lock.base, waiter, pos);
  if (!ctx.isWaitDie) wwWound(k, lock, ctx, lock.ctx);
  return 0;
}

/** __ww_mutex_unlock(). */
function wwMutexUnlockCtx(k: Kernel, lock: WwMutex): void {
  const ctx = lock.ctx;
  if (ctx === null) return;
  if (!ctx.acquired) warn(k, 'ww_mutex.unlock_not_acquired', '!lock->ctx->acquired', lock);
  if (ctx.acquired > 0) ctx.acquired--;
  lock.ctx = null;
}

/** __mutex_lock_common() with use_ww_ctx. */
async function wwMutexLockCommon(
  lock: WwMutex,
  ctx: WwAcquireCtx | null,
  interruptible: boolean,
): Promise<number> {
  const k = currentKernel();
  const cur = await mutexLockPrologue(k, 'ww_mutex_lock');
  if (ctx !== null) {
    if (ctx === lock.ctx) return -errno.EALREADY;
    if (ctx.acquired === 0) ctx.wounded = false;
  }
  const m = lock.base;
  k.lockdep?.acquire(cur, m.depMap, 0, false, 0, true, ctx?.depMap ?? null);
  if (mutexTrylockCommon(m, cur, false)) {
    if (ctx !== null) setContextFastpath(k, lock, ctx);
    return 0;
  }
  const task = mutexWaiterTask(k, cur, m, 'ww_mutex');
  const waiter: MutexWaiter = { task, wwCtx: ctx };
  let ret = addWaiter(k, lock, waiter, ctx);
  if (ret) {
    k.lockdep?.release(task, m.depMap);
    return ret;
  }
  for (;;) {
    if (mutexTrylockCommon(m, task, false)) break;
    if (interruptible && task.signalPending) {
      ret = -errno.EINTR;
      break;
    }
    if (ctx !== null) {
      ret = checkKill(k, lock, waiter, ctx);
      if (ret) break;
    }
    await mutexSchedule(k, m, task, interruptible, 'ww_mutex');
    if (mutexTrylockCommon(m, task, m.waiters[0] === waiter)) break;
  }
  if (ret) {
    mutexRemoveWaiter(m, waiter);
    k.lockdep?.release(task, m.depMap);
    return ret;
  }
  // Wound-Wait: we took the lock out of turn, anyone queued may want to wound us.
  if (ctx !== null && !ctx.isWaitDie && m.waiters[0] !== waiter) checkWaiters(k, lock, ctx);
  mutexRemoveWaiter(m, waiter);
  if (ctx !== null) lockAcquired(k, lock, ctx);
  return 0;
}

// ------------------------------------------------------------ the API

/**
 * ww_mutex_lock(): 0 when taken; -EALREADY when `ctx` already holds it; -EDEADLK when
 * `ctx` holds other locks and must back off (drop them all, then `wwMutexLockSlow`).
 * With a null `ctx` it is a plain mutex lock. Must be awaited.
 */
export function wwMutexLock(lock: WwMutex, ctx: WwAcquireCtx | null): Promise<number> {
  return wwMutexLockCommon(lock, ctx, false);
}

/** ww_mutex_lock_interruptible(): as `wwMutexLock`, or -EINTR when a signal arrives. */
export function wwMutexLockInterruptible(lock: WwMutex, ctx: WwAcquireCtx | null): Promise<number> {
  return wwMutexLockCommon(lock, ctx, true);
}

/**
 * ww_mutex_lock_slow(): after -EDEADLK and dropping every lock, sleeps until the
 * contended lock is taken (a context holding nothing cannot be told to back off).
 */
export async function wwMutexLockSlow(lock: WwMutex, ctx: WwAcquireCtx): Promise<void> {
  if (ctx.contendingLock === null)
    warn(currentKernel(), 'ww_mutex.slow_without_contention', '!ctx->contending_lock', lock);
  await wwMutexLockCommon(lock, ctx, false);
}

/** ww_mutex_lock_slow_interruptible(): as `wwMutexLockSlow`; 0 or -EINTR. */
export function wwMutexLockSlowInterruptible(lock: WwMutex, ctx: WwAcquireCtx): Promise<number> {
  if (ctx.contendingLock === null)
    warn(currentKernel(), 'ww_mutex.slow_without_contention', '!ctx->contending_lock', lock);
  return wwMutexLockCommon(lock, ctx, true);
}

/**
 * ww_mutex_trylock(): takes the lock if free, with or without a context; no deadlock
 * handling (a lock already held by `ctx` is simply not free).
 */
export function wwMutexTrylock(lock: WwMutex, ctx: WwAcquireCtx | null): boolean {
  const k = currentKernel();
  const cur = k.ctx;
  if (ctx === null) {
    if (!mutexTrylockCommon(lock.base, cur, false)) return false;
    k.lockdep?.acquire(cur, lock.base.depMap, 0, true, 0, true, null);
    return true;
  }
  if (ctx.acquired === 0) ctx.wounded = false;
  if (!mutexTrylockCommon(lock.base, cur, false)) return false;
  setContextFastpath(k, lock, ctx);
  k.lockdep?.acquire(cur, lock.base.depMap, 0, true, 0, true, ctx.depMap);
  return true;
}

/** ww_mutex_unlock(): releases the lock and its context binding. */
export function wwMutexUnlock(lock: WwMutex): void {
  const k = currentKernel();
  wwMutexUnlockCtx(k, lock);
  mutexUnlockCommon(k, lock.base, 'ww_mutex');
}

/** ww_mutex_is_locked(). */
export function wwMutexIsLocked(lock: WwMutex): boolean {
  return lock.base.owner !== null;
}

/** ww_mutex_destroy(): WARN when the lock is still held. */
export function wwMutexDestroy(lock: WwMutex): void {
  if (lock.base.owner === null) return;
  const k = currentKernel();
  k.warn(
    'mutex.destroy_locked',
    `WARNING: DEBUG_LOCKS_WARN_ON(mutex_is_locked(lock)): ww_mutex ${lock.label} destroyed while held by ${lock.base.owner.label}`,
    [lock.base.reportObject('ww_mutex')],
  );
}
