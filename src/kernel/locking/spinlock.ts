/**
 * Spinlocks (include/linux/spinlock.h, kernel/locking/spinlock_debug.c).
 *
 * In the model a thread gives up the CPU only at an await, so code between two awaits
 * is atomic: a spinlock is never found held by another context unless that context
 * slept while holding it (itself a reported bug) or the current context already holds
 * it. Both are lock-ups on a real machine; the model reports them with the kernel's
 * debug wording and stops the run instead of hanging.
 *
 * Taking a spinlock disables preemption; the `_irqsave` / `_irq` variants also disable
 * interrupts, and restoring them runs pending irq_work, as the self-IPI would.
 *
 * Lockdep (kernel/locking/lockdep.c) sees every acquisition before the lock is taken
 * (spin_acquire, then do_raw_spin_lock, as include/linux/spinlock_api_smp.h orders
 * them), every release, and interrupts coming back on while locks are held. A lock's
 * class is its explicit key, else its name (every lock created with the same name is one
 * class, like locks initialised at one site in the kernel), else the lock alone.
 */
import type { ExecContext } from '../../sim/engine.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { type LockClassKey, LockdepMap } from './lockdep.ts';

/** Saved interrupt state returned by `spinLockIrqsave`. */
export type IrqFlags = number;

/** A spinning lock. */
export class SpinLock {
  /** The context holding the lock, or null. */
  owner: ExecContext | null = null;
  /** The lock's lockdep identity. */
  readonly depMap: LockdepMap;
  /** The lock's name in reports. */
  readonly name: string;

  /**
   * spin_lock_init(): `name` is the lock's class name in reports (the kernel uses the
   * variable name); `key` overrides the class (default: the name, or a class of its own
   * for an unnamed lock).
   */
  constructor(name?: string, key?: LockClassKey) {
    this.name = name ?? 'spinlock';
    this.depMap = new LockdepMap(this.name, key ?? name ?? null);
  }

  /** True while some context holds the lock. */
  get locked(): boolean {
    return this.owner !== null;
  }
}

function acquire(k: Kernel, lock: SpinLock, trylock = false): void {
  const ctx = k.ctx;
  k.lockdep?.acquire(ctx, lock.depMap, 0, trylock, 0, true, null);
  if (lock.owner !== null) {
    const obj = [{ kind: 'spinlock', name: lock.name }];
    if (lock.owner === ctx) {
      k.bug(
        'spinlock.recursion',
        `BUG: spinlock recursion: ${ctx.label} takes ${lock.name}, which it already holds; ` +
          'on a real machine this CPU spins forever',
        obj,
        'deadlock',
      );
    }
    k.bug(
      'spinlock.lockup',
      `BUG: spinlock lockup: ${ctx.label} takes ${lock.name}, held by ${lock.owner.label}, ` +
        'which can never release it (it slept or was interrupted while holding it)',
      obj,
      'deadlock',
    );
  }
  ctx.preemptCount++;
  lock.owner = ctx;
}

function release(k: Kernel, lock: SpinLock): void {
  const ctx = k.ctx;
  if (lock.owner !== ctx) {
    k.bug(
      'spinlock.wrong_owner',
      `BUG: spinlock wrong owner: ${ctx.label} releases ${lock.name}, ` +
        `held by ${lock.owner === null ? 'nobody' : lock.owner.label}`,
      [{ kind: 'spinlock', name: lock.name }],
    );
  }
  lock.owner = null;
  ctx.preemptCount--;
  k.lockdep?.release(ctx, lock.depMap);
}

/** spin_lock(). */
export function spinLock(lock: SpinLock): void {
  acquire(currentKernel(), lock);
}

/** spin_unlock(). */
export function spinUnlock(lock: SpinLock): void {
  release(currentKernel(), lock);
}

/** spin_trylock(): takes the lock if free; true on success. */
export function spinTrylock(lock: SpinLock): boolean {
  if (lock.owner !== null) return false;
  acquire(currentKernel(), lock, true);
  return true;
}

/** spin_lock_irqsave(): disables interrupts, takes the lock, returns the previous interrupt state. */
export function spinLockIrqsave(lock: SpinLock): IrqFlags {
  const k = currentKernel();
  const ctx = k.ctx;
  const flags = ctx.irqsDisabled;
  ctx.irqsDisabled = 1;
  acquire(k, lock);
  return flags;
}

/** spin_unlock_irqrestore(): releases the lock and restores the interrupt state. */
export function spinUnlockIrqrestore(lock: SpinLock, flags: IrqFlags): void {
  const k = currentKernel();
  release(k, lock);
  irqRestore(k, flags);
}

/** spin_lock_irq(): disables interrupts unconditionally and takes the lock. */
export function spinLockIrq(lock: SpinLock): void {
  const k = currentKernel();
  k.ctx.irqsDisabled = 1;
  acquire(k, lock);
}

/** spin_unlock_irq(): releases the lock and enables interrupts. */
export function spinUnlockIrq(lock: SpinLock): void {
  const k = currentKernel();
  release(k, lock);
  irqRestore(k, 0);
}

/** local_irq_save(). */
export function localIrqSave(): IrqFlags {
  const ctx = currentKernel().ctx;
  const flags = ctx.irqsDisabled;
  ctx.irqsDisabled = 1;
  return flags;
}

/** local_irq_restore(): when interrupts come back on, pending irq_work runs. */
export function localIrqRestore(flags: IrqFlags): void {
  irqRestore(currentKernel(), flags);
}

function irqRestore(k: Kernel, flags: IrqFlags): void {
  const ctx = k.ctx;
  const wasOff = ctx.irqsDisabled > 0;
  ctx.irqsDisabled = flags;
  if (flags === 0 && ctx.kind !== 'hardirq') {
    if (wasOff && k.lockdep !== null && ctx.kdata !== null) k.lockdep.hardirqsOn(ctx);
    k.engine.irqWorkPoint();
  }
}

/** lockdep_assert_held() for a spinlock: WARN unless the current context holds it. */
export function assertSpinLockHeld(lock: SpinLock): void {
  const k = currentKernel();
  if (lock.owner !== k.ctx) {
    k.warn('lockdep.assert_held', `WARNING: lockdep_assert_held(${lock.name}) failed in ${k.ctx.label}`, [
      { kind: 'spinlock', name: lock.name },
    ]);
  }
}
