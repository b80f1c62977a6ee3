/**
 * Sleeping mutexes (kernel/locking/mutex.c, include/linux/mutex.h, Linux 6.12, with
 * CONFIG_DEBUG_MUTEXES and CONFIG_DEBUG_LOCK_ALLOC).
 *
 * A mutex is owned by one context. `mutexLock` is async: a contended lock queues the
 * thread on the lock's wait list and blocks it through the engine, with a wait
 * description naming the lock and its owner, so a deadlock report reads "T1 waits on
 * mutex B held by T2". Taking a mutex is a scheduling point (the random and PCT
 * strategies may switch threads there), may sleep (might_sleep is checked), and is seen
 * by lockdep before the lock is tried.
 *
 * As in the kernel, the unlocker wakes the first waiter but does not give it the lock,
 * so another thread may take it first; a first waiter that wakes and loses sets the
 * HANDOFF flag, and the next unlock then hands the lock to it directly (PICKUP).
 * The kernel's optimistic spinning is not modelled (it only changes timing).
 *
 * The wait-list helpers are shared with ww_mutex (ww-mutex.ts), whose lock path is the
 * same loop with the wait/wound-die rules added, as mutex.c includes ww_mutex.h.
 */
import { type ExecContext, Task, type WaitDesc } from '../../sim/engine.ts';
import type { ReportObject } from '../../sim/report.ts';
import { errno } from '../errno.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { type LockClassKey, LockdepMap } from './lockdep.ts';

/** A thread waiting for a mutex (struct mutex_waiter). */
export interface MutexWaiter {
  /** The waiting thread. */
  readonly task: Task;
  /** Its ww acquire context, for ww_mutex waiters that have one (opaque here). */
  readonly wwCtx: object | null;
}

/** A sleeping lock (struct mutex). */
export class Mutex {
  /** The owning context, or null when unlocked (also the handoff target while PICKUP). */
  owner: ExecContext | null = null;
  /** The lock's lockdep identity. */
  readonly depMap: LockdepMap;
  /** The lock's name in reports. */
  readonly name: string;
  /** @internal the wait list, first waiter first. */
  readonly waiters: MutexWaiter[] = [];
  /** @internal MUTEX_FLAG_HANDOFF: the next unlock gives the lock to the first waiter. */
  handoff = false;
  /** @internal MUTEX_FLAG_PICKUP: the lock was handed to `owner`, which has not taken it yet. */
  pickup = false;

  /**
   * mutex_init(): `name` is the class name in reports; `key` overrides the class
   * (default: the name, or a class of its own for an unnamed mutex).
   */
  constructor(name?: string, key?: LockClassKey) {
    this.name = name ?? 'mutex';
    this.depMap = new LockdepMap(this.name, key ?? name ?? null);
  }

  /** The lock's label in wait descriptions: its instance label, else its name. */
  get label(): string {
    return this.depMap.instance ?? this.name;
  }

  /** This lock as a report object. */
  reportObject(kind = 'mutex'): ReportObject {
    return { kind, name: this.label };
  }
}

/** mutex_is_locked(). */
export function mutexIsLocked(lock: Mutex): boolean {
  return lock.owner !== null;
}

// ------------------------------------------------------------ wait-list internals (shared with ww_mutex)

/**
 * __mutex_trylock_common(): takes a free lock for `cur`, or picks up a lock handed to
 * it. With `handoff`, a failed attempt asks the next unlock to hand the lock over.
 * @internal
 */
export function mutexTrylockCommon(lock: Mutex, cur: ExecContext, handoff: boolean): boolean {
  if (lock.owner !== null) {
    if (lock.pickup) {
      if (lock.owner !== cur) return false;
      lock.pickup = false;
      return true;
    }
    if (handoff) lock.handoff = true;
    return false;
  }
  lock.owner = cur;
  return true;
}

/** __mutex_add_waiter(): queues `waiter` before index `pos` (at the tail when -1). @internal */
export function mutexAddWaiter(lock: Mutex, waiter: MutexWaiter, pos = -1): void {
  if (pos < 0) lock.waiters.push(waiter);
  else lock.waiters.splice(pos, 0, waiter);
}

/** __mutex_remove_waiter(): an empty list clears HANDOFF and PICKUP. @internal */
export function mutexRemoveWaiter(lock: Mutex, waiter: MutexWaiter): void {
  const i = lock.waiters.indexOf(waiter);
  if (i >= 0) lock.waiters.splice(i, 1);
  if (lock.waiters.length === 0) {
    lock.handoff = false;
    lock.pickup = false;
  }
}

const blockedOn = new WeakMap<Task, Mutex>();

/** The mutex a thread is blocked on, or null (the ww wound path wakes owners only there). @internal */
export function mutexBlockedOn(task: Task): Mutex | null {
  return blockedOn.get(task) ?? null;
}

/** A wait description that names the current owner whenever it is read. */
function waitDesc(lock: Mutex, kind: string): WaitDesc {
  return {
    get what(): string {
      const owner = lock.owner === null ? 'nobody' : lock.owner.label;
      return `${kind} ${lock.label} held by ${owner}`;
    },
    get objects(): ReportObject[] {
      const o: ReportObject[] = [lock.reportObject(kind)];
      if (lock.owner !== null) o.push({ kind: 'task', name: lock.owner.label, id: lock.owner.id });
      return o;
    },
  };
}

/**
 * The thread that must sleep for `lock`; a context that cannot sleep is a BUG
 * ("scheduling while atomic"), which stops the run.
 * @internal
 */
export function mutexWaiterTask(k: Kernel, ctx: ExecContext, lock: Mutex, kind: string): Task {
  if (!(ctx instanceof Task)) {
    k.bug(
      'sched.scheduling_while_atomic',
      `BUG: scheduling while atomic: ${ctx.label} must sleep for ${kind} ${lock.label}, ` +
        `held by ${lock.owner?.label ?? 'nobody'}, but is not a thread`,
      [lock.reportObject(kind)],
    );
  }
  return ctx;
}

/** schedule() while on `lock`'s wait list. @internal */
export async function mutexSchedule(
  k: Kernel,
  lock: Mutex,
  task: Task,
  interruptible: boolean,
  kind: string,
) {
  blockedOn.set(task, lock);
  try {
    await k.engine.block(waitDesc(lock, kind), { interruptible });
  } finally {
    blockedOn.delete(task);
  }
}

/**
 * The start of every sleeping-lock acquisition: a scheduling point (unless atomic, where
 * sleeping is already a bug) and might_sleep(). Returns the acquiring context.
 * @internal
 */
export async function mutexLockPrologue(k: Kernel, what: string): Promise<ExecContext> {
  const cur = k.engine.current;
  if (cur instanceof Task && !k.inAtomic(cur)) await k.engine.preemptionPoint();
  const ctx = k.engine.current;
  k.checkMightSleep(ctx, what);
  return ctx;
}

/** __mutex_unlock_slowpath(): releases `lock`, waking or handing over to the first waiter. @internal */
export function mutexUnlockCommon(k: Kernel, lock: Mutex, kind = 'mutex'): void {
  const ctx = k.ctx;
  if (lock.owner !== ctx || lock.pickup) {
    k.warn(
      'mutex.unlock_not_owner',
      `WARNING: DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current): ${ctx.label} unlocks ${kind} ` +
        `${lock.label}, which is ${lock.owner === null ? 'not locked' : `held by ${lock.owner.label}`}`,
      [lock.reportObject(kind)],
    );
    if (lock.owner === null || lock.pickup) {
      k.lockdep?.release(ctx, lock.depMap);
      return;
    }
  }
  k.lockdep?.release(ctx, lock.depMap);
  if (lock.handoff) {
    const next = lock.waiters.length > 0 ? lock.waiters[0].task : null;
    lock.owner = next;
    lock.handoff = false;
    lock.pickup = next !== null;
    if (next !== null) k.engine.wakeUp(next);
    return;
  }
  lock.owner = null;
  if (lock.waiters.length > 0) k.engine.wakeUp(lock.waiters[0].task);
}

// ------------------------------------------------------------ the mutex API

async function mutexLockCommon(
  lock: Mutex,
  interruptible: boolean,
  subclass: number,
  nest: LockdepMap | null,
): Promise<number> {
  const k = currentKernel();
  const ctx = await mutexLockPrologue(k, 'mutex_lock');
  k.lockdep?.acquire(ctx, lock.depMap, subclass, false, 0, true, nest);
  if (mutexTrylockCommon(lock, ctx, false)) return 0;
  const task = mutexWaiterTask(k, ctx, lock, 'mutex');
  const waiter: MutexWaiter = { task, wwCtx: null };
  mutexAddWaiter(lock, waiter);
  for (;;) {
    if (mutexTrylockCommon(lock, task, false)) break;
    if (interruptible && task.signalPending) {
      mutexRemoveWaiter(lock, waiter);
      k.lockdep?.release(task, lock.depMap);
      return -errno.EINTR;
    }
    await mutexSchedule(k, lock, task, interruptible, 'mutex');
    if (mutexTrylockCommon(lock, task, lock.waiters[0] === waiter)) break;
  }
  mutexRemoveWaiter(lock, waiter);
  return 0;
}

/** mutex_lock(): sleeps until the lock is taken. Must be awaited. */
export async function mutexLock(lock: Mutex): Promise<void> {
  await mutexLockCommon(lock, false, 0, null);
}

/** mutex_lock_nested(): as `mutexLock`, with a lockdep subclass for ordered nesting of one class. */
export async function mutexLockNested(lock: Mutex, subclass: number): Promise<void> {
  await mutexLockCommon(lock, false, subclass, null);
}

/** mutex_lock_nest_lock(): as `mutexLock`, telling lockdep that `nest` (held) serialises this class. */
export async function mutexLockNestLock(lock: Mutex, nest: LockdepMap): Promise<void> {
  await mutexLockCommon(lock, false, 0, nest);
}

/** mutex_lock_interruptible(): 0 when taken, -EINTR when a signal arrives first. */
export function mutexLockInterruptible(lock: Mutex): Promise<number> {
  return mutexLockCommon(lock, true, 0, null);
}

/** mutex_trylock(): takes the lock if it is free; never sleeps. */
export function mutexTrylock(lock: Mutex): boolean {
  const k = currentKernel();
  const ctx = k.ctx;
  if (!mutexTrylockCommon(lock, ctx, false)) return false;
  k.lockdep?.acquire(ctx, lock.depMap, 0, true, 0, true, null);
  return true;
}

/** mutex_unlock(): releases the lock; WARN when the caller does not own it. */
export function mutexUnlock(lock: Mutex): void {
  mutexUnlockCommon(currentKernel(), lock);
}

/** mutex_destroy(): WARN when the lock is still held. */
export function mutexDestroy(lock: Mutex): void {
  if (lock.owner === null) return;
  const k = currentKernel();
  k.warn(
    'mutex.destroy_locked',
    `WARNING: DEBUG_LOCKS_WARN_ON(mutex_is_locked(lock)): mutex ${lock.label} destroyed while held by ${lock.owner.label}`,
    [lock.reportObject()],
  );
}

/** lockdep_assert_held() on a mutex: WARN unless the current context owns it. */
export function mutexAssertHeld(lock: Mutex): void {
  const k = currentKernel();
  if (lock.owner === k.ctx && !lock.pickup) return;
  k.warn('lockdep.assert_held', `WARNING: lockdep_assert_held(${lock.label}) failed in ${k.ctx.label}`, [
    lock.reportObject(),
  ]);
}
