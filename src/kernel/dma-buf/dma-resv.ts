/**
 * dma_resv: reservation objects, the fences attached to a buffer and the ww_mutex that
 * protects them (drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h, Linux 6.12).
 *
 * Each fence is stored with a usage (KERNEL < WRITE < READ < BOOKKEEP); a query for
 * usage U sees the fences with usage <= U. The list is replaced wholesale when it grows
 * (`dmaResvReserveFences`) or is copied (`dmaResvCopyFences`), which is what makes
 * unlocked iterators restart; adding a fence changes the list in place. Writers hold
 * the reservation lock (a ww_mutex of `reservationWwClass`, Wait-Die).
 *
 * As in the kernel with CONFIG_DEBUG_MUTEXES: unlocking drops the slots reserved and not
 * used (`dmaResvResetMaxFences`), so a driver that adds fences without reserving in the
 * same locked section hits the BUG in `dmaResvAddFence`. List sizes follow kmalloc: a
 * list for n fences is allocated with GFP_KERNEL (24-byte header, 8 bytes per entry)
 * and its capacity is recomputed from the kmalloc bucket it lands in (reserving 1
 * fence in an empty object gives 5 slots).
 *
 * Model choices:
 * - the "lock held" checks (dma_resv_assert_held) WARN whether or not lockdep is on;
 * - an unlocked iterator whose object's list became NULL (copy_fences from an empty
 *   object) ends instead of returning its current fence forever as 6.12 would;
 * - `DmaResvIter.invalidateForTest` stands for st-dma-resv's `cursor.fences = (void*)~0`;
 * - dma_resv_lockdep() primes lockdep at boot with the classes `&mm->mmap_lock` and
 *   `&mapping->i_mmap_rwsem` (keyed by name, for the mm layer to share).
 */
import type { ExecContext } from '../../sim/engine.ts';
import { errno } from '../errno.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { type Lockdep, LockdepMap, registerLockdepBootHook } from '../locking/lockdep.ts';
import {
  defineWdClass,
  type WwAcquireCtx,
  WwMutex,
  wwMutexDestroy,
  wwMutexIsLocked,
  wwMutexLock,
  wwMutexLockInterruptible,
  wwMutexLockSlow,
  wwMutexLockSlowInterruptible,
  wwMutexTrylock,
  wwMutexUnlock,
} from '../locking/ww-mutex.ts';
import { fsReclaimMap } from '../mm/fs-reclaim.ts';
import { GFP_KERNEL } from '../mm/gfp.ts';
import { mmuNotifierInvalidateRangeStartMap } from '../mm/mmu-notifier.ts';
import { type KmallocBlock, kfree, kmalloc, kmallocArray, kmallocSizeRoundup } from '../mm/slab.ts';
import { type DmaFence, dmaFenceContextAlloc, dmaFenceIsLaterOrSame, dmaFencePut } from './dma-fence.ts';
import { dmaFenceArrayCreate, dmaFenceIsContainer } from './dma-fence-array.ts';

/** For in-kernel memory management only: everyone must wait for these. */
export const DMA_RESV_USAGE_KERNEL = 0;
/** Implicit write synchronisation. */
export const DMA_RESV_USAGE_WRITE = 1;
/** Implicit read synchronisation. */
export const DMA_RESV_USAGE_READ = 2;
/** No implicit synchronisation (preemption fences, page-table updates, explicit sync). */
export const DMA_RESV_USAGE_BOOKKEEP = 3;

/** enum dma_resv_usage. */
export type DmaResvUsage = 0 | 1 | 2 | 3;

/** Usage names as dma_resv_describe prints them. */
export const DMA_RESV_USAGE_NAMES = ['kernel', 'write', 'read', 'bookkeep'] as const;

/**
 * dma_resv_usage_rw(): the usage to wait for before an access: a writer waits for
 * readers and writers (READ), a reader for writers (WRITE).
 */
export function dmaResvUsageRw(write: boolean): DmaResvUsage {
  return write ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE;
}

/** reservation_ww_class: the Wait-Die class of every reservation lock. */
export const reservationWwClass = defineWdClass('reservation_ww_class');

/** Bytes before the table in struct dma_resv_list (rcu_head, num_fences, max_fences). */
const LIST_HEADER = 24;
/** Bytes per table entry (a tagged pointer). */
const LIST_ENTRY = 8;

/** struct dma_resv_list: a published array of (fence, usage) entries. */
export class DmaResvList {
  /** Entries in use, from index 0. */
  numFences = 0;
  /** Capacity. */
  maxFences: number;
  /** Fences by index (slots past `numFences` are unused). */
  readonly table: (DmaFence | null)[];
  /** Usage of each entry. */
  readonly usage: DmaResvUsage[];

  /** A list with room for `maxFences` entries, backed by `block`. */
  constructor(
    maxFences: number,
    /** The allocation holding it (null for the iterator test poison). */
    readonly block: KmallocBlock | null,
  ) {
    this.maxFences = maxFences;
    this.table = new Array<DmaFence | null>(maxFences).fill(null);
    this.usage = new Array<DmaResvUsage>(maxFences).fill(DMA_RESV_USAGE_KERNEL);
  }
}

/** The identity an iterator is given by `invalidateForTest`: never a real list. */
const POISON_LIST = new DmaResvList(0, null);

function listAlloc(maxFences: number): DmaResvList | null {
  const size = kmallocSizeRoundup(LIST_HEADER + LIST_ENTRY * maxFences);
  const block = kmalloc(size, GFP_KERNEL);
  if (block === null) return null;
  return new DmaResvList(Math.floor((size - LIST_HEADER) / LIST_ENTRY), block);
}

function listSet(list: DmaResvList, i: number, fence: DmaFence, usage: DmaResvUsage): void {
  list.table[i] = fence;
  list.usage[i] = usage;
}

function listFree(list: DmaResvList | null): void {
  if (list === null) return;
  for (let i = 0; i < list.numFences; i++) dmaFencePut(list.table[i]);
  kfree(list.block);
}

const RESV_IDS = Symbol('dma_resv ids');

/** struct dma_resv. Drivers embed one per buffer object; the constructor is dma_resv_init. */
export class DmaResv {
  /** The update-side lock; use the dmaResvLock family, not the ww_mutex directly. */
  readonly lock: WwMutex;
  /** The published fence list, or null before the first reservation. */
  fences: DmaResvList | null = null;
  /** A per-kernel number naming the object in reports (`dma_resv N`). */
  readonly id: number;
  /** The kernel the object belongs to. */
  readonly kernel: Kernel;

  /** dma_resv_init(). */
  constructor() {
    const k = currentKernel();
    this.kernel = k;
    const n = ((k.singletons.get(RESV_IDS) as number | undefined) ?? 0) + 1;
    k.singletons.set(RESV_IDS, n);
    this.id = n;
    this.lock = new WwMutex(reservationWwClass, `dma_resv ${n}`);
  }

  /** `dma_resv N`. */
  toString(): string {
    return `dma_resv ${this.id}`;
  }
}

/** dma_resv_fini(): drops every fence; WARN if the object is still locked. */
export function dmaResvFini(obj: DmaResv): void {
  listFree(obj.fences);
  obj.fences = null;
  wwMutexDestroy(obj.lock);
}

// ------------------------------------------------------------ locking

/** dma_resv_held(): the current context holds the reservation lock. */
export function dmaResvHeld(obj: DmaResv): boolean {
  const base = obj.lock.base;
  return base.owner === currentKernel().ctx && !base.pickup;
}

/** dma_resv_assert_held(): WARN unless the current context holds the lock. */
export function dmaResvAssertHeld(obj: DmaResv, fn = 'dma_resv_assert_held'): void {
  if (dmaResvHeld(obj)) return;
  const k = currentKernel();
  const owner = obj.lock.base.owner;
  k.warn(
    'dma_resv.assert_held',
    `WARNING: lockdep_assert_held(&obj->lock.base) failed: ${fn} called by ${k.ctx.label} without ` +
      `the reservation lock of ${obj} (${owner === null ? 'unlocked' : `held by ${owner.label}`})`,
    [{ kind: 'dma_resv', name: obj.toString(), id: obj.id }],
  );
}

/**
 * dma_resv_lock(): ww_mutex_lock on the reservation lock. 0, -EALREADY (already held in
 * `ctx`) or -EDEADLK (back off: unlock everything, then `dmaResvLockSlow`). With a null
 * context it is a plain lock.
 */
export function dmaResvLock(obj: DmaResv, ctx: WwAcquireCtx | null): Promise<number> {
  return wwMutexLock(obj.lock, ctx);
}

/** dma_resv_lock_interruptible(): as `dmaResvLock`, or -EINTR on a signal. */
export function dmaResvLockInterruptible(obj: DmaResv, ctx: WwAcquireCtx | null): Promise<number> {
  return wwMutexLockInterruptible(obj.lock, ctx);
}

/** dma_resv_lock_slow(): after -EDEADLK, sleeps until the contended lock is taken. */
export function dmaResvLockSlow(obj: DmaResv, ctx: WwAcquireCtx): Promise<void> {
  return wwMutexLockSlow(obj.lock, ctx);
}

/** dma_resv_lock_slow_interruptible(): 0 or -EINTR. */
export function dmaResvLockSlowInterruptible(obj: DmaResv, ctx: WwAcquireCtx): Promise<number> {
  return wwMutexLockSlowInterruptible(obj.lock, ctx);
}

/** dma_resv_trylock(): takes the lock without a context if it is free. */
export function dmaResvTrylock(obj: DmaResv): boolean {
  return wwMutexTrylock(obj.lock, null);
}

/** dma_resv_is_locked(). */
export function dmaResvIsLocked(obj: DmaResv): boolean {
  return wwMutexIsLocked(obj.lock);
}

/** dma_resv_locking_ctx(): the acquire context holding the lock, or null. */
export function dmaResvLockingCtx(obj: DmaResv): WwAcquireCtx | null {
  return obj.lock.ctx;
}

/** dma_resv_unlock(): drops unused reserved slots (CONFIG_DEBUG_MUTEXES), then unlocks. */
export function dmaResvUnlock(obj: DmaResv): void {
  dmaResvResetMaxFences(obj);
  wwMutexUnlock(obj.lock);
}

/** dma_resv_reset_max_fences(): capacity := count, so reservations do not outlive the lock. */
export function dmaResvResetMaxFences(obj: DmaResv): void {
  dmaResvAssertHeld(obj, 'dma_resv_reset_max_fences');
  if (obj.fences !== null) obj.fences.maxFences = obj.fences.numFences;
}

// ------------------------------------------------------------ fences

function roundupPowOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * dma_resv_reserve_fences(): makes room for `numFences` more fences (lock held). WARN
 * and -EINVAL for 0; -ENOMEM when the allocation fails. A new list keeps the unsignalled
 * fences in order and drops the signalled ones.
 */
export function dmaResvReserveFences(obj: DmaResv, numFences: number): number {
  dmaResvAssertHeld(obj, 'dma_resv_reserve_fences');
  const k = currentKernel();
  if (!numFences) {
    k.warn('dma_resv.reserve_zero', 'WARNING: WARN_ON(!num_fences) in dma_resv_reserve_fences', [
      { kind: 'dma_resv', name: obj.toString(), id: obj.id },
    ]);
    return -errno.EINVAL;
  }
  const old = obj.fences;
  let max: number;
  if (old?.maxFences) {
    if (old.numFences + numFences <= old.maxFences) return 0;
    max = Math.max(old.numFences + numFences, old.maxFences * 2);
  } else {
    max = Math.max(4, roundupPowOfTwo(numFences));
  }
  const list = listAlloc(max);
  if (list === null) return -errno.ENOMEM;
  let j = 0;
  let kk = max;
  const n = old === null ? 0 : old.numFences;
  for (let i = 0; i < n; i++) {
    const fence = old!.table[i]!;
    if (fence.isSignaled()) list.table[--kk] = fence;
    else listSet(list, j++, fence, old!.usage[i]);
  }
  list.numFences = j;
  obj.fences = list;
  if (old === null) return 0;
  for (let i = kk; i < max; i++) {
    dmaFencePut(list.table[i]);
    list.table[i] = null;
  }
  kfree(old.block);
  return 0;
}

/**
 * dma_resv_add_fence(): adds `fence` with `usage` (lock held, slots reserved). Replaces
 * the first entry that is of the same context with a usage >= `usage` and not later
 * than `fence`, or that has signalled; otherwise appends (BUG without a free slot).
 */
export function dmaResvAddFence(obj: DmaResv, fence: DmaFence, usage: DmaResvUsage): void {
  fence.get();
  dmaResvAssertHeld(obj, 'dma_resv_add_fence');
  const k: Kernel = currentKernel();
  if (dmaFenceIsContainer(fence)) {
    k.warn(
      'dma_resv.add_container',
      `WARNING: WARN_ON(dma_fence_is_container(fence)) in dma_resv_add_fence: ${fence} added to ${obj}; add its fences one by one`,
      [fence.reportObject()],
    );
  }
  const list = obj.fences;
  if (list === null) {
    k.bug(
      'dma_resv.add_fence_no_slot',
      `BUG: kernel NULL pointer dereference in dma_resv_add_fence: ${obj} has no fence list; ` +
        'call dma_resv_reserve_fences first',
      [{ kind: 'dma_resv', name: obj.toString(), id: obj.id }, fence.reportObject()],
    );
  }
  const count = list.numFences;
  for (let i = 0; i < count; i++) {
    const old = list.table[i]!;
    const oldUsage = list.usage[i];
    if (
      (old.context === fence.context && oldUsage >= usage && dmaFenceIsLaterOrSame(fence, old)) ||
      old.isSignaled()
    ) {
      listSet(list, i, fence, usage);
      old.put();
      return;
    }
  }
  if (list.numFences >= list.maxFences) {
    k.bug(
      'dma_resv.add_fence_no_slot',
      `kernel BUG at drivers/dma-buf/dma-resv.c: BUG_ON(fobj->num_fences >= fobj->max_fences): ` +
        `${obj} has ${list.numFences} fences and no reserved slot for ${fence}`,
      [{ kind: 'dma_resv', name: obj.toString(), id: obj.id }, fence.reportObject()],
    );
  }
  listSet(list, count, fence, usage);
  list.numFences = count + 1;
}

/**
 * dma_resv_replace_fences(): every fence of `context` becomes `replacement` with
 * `usage` (lock held).
 */
export function dmaResvReplaceFences(
  obj: DmaResv,
  context: number,
  replacement: DmaFence,
  usage: DmaResvUsage,
): void {
  dmaResvAssertHeld(obj, 'dma_resv_replace_fences');
  const list = obj.fences;
  for (let i = 0; list !== null && i < list.numFences; i++) {
    const old = list.table[i]!;
    if (old.context !== context) continue;
    listSet(list, i, replacement.get(), usage);
    old.put();
  }
}

// ------------------------------------------------------------ iterators

/** struct dma_resv_iter: a cursor over an object's fences. */
export class DmaResvIter {
  /** The object iterated. */
  obj: DmaResv | null = null;
  /** Return fences with this usage or lower. */
  usage: DmaResvUsage = DMA_RESV_USAGE_KERNEL;
  /** The current fence (unlocked iteration holds a reference to it). */
  fence: DmaFence | null = null;
  /** Usage of the current fence. */
  fenceUsage: DmaResvUsage = DMA_RESV_USAGE_KERNEL;
  /** Next index in the list. */
  index = 0;
  /** The list being walked (private: identity only). */
  fences: DmaResvList | null = null;
  /** Entries of the list when the walk (re)started. */
  numFences = 0;
  /** True when the current fence is the first since a (re)start. */
  isRestarted = false;

  /**
   * Test hook: makes the cursor's list identity invalid, so the next unlocked step
   * restarts (st-dma-resv test_for_each_unlocked sets `cursor.fences = (void*)~0`).
   */
  invalidateForTest(): void {
    this.fences = POISON_LIST;
  }
}

/** dma_resv_iter_begin(). */
export function dmaResvIterBegin(cursor: DmaResvIter, obj: DmaResv, usage: DmaResvUsage): void {
  cursor.obj = obj;
  cursor.usage = usage;
  cursor.fence = null;
}

/** dma_resv_iter_end(): drops the reference to the current fence. */
export function dmaResvIterEnd(cursor: DmaResvIter): void {
  dmaFencePut(cursor.fence);
}

/** dma_resv_iter_usage(). */
export function dmaResvIterUsage(cursor: DmaResvIter): DmaResvUsage {
  return cursor.fenceUsage;
}

/** dma_resv_iter_is_restarted(): accumulators must start over when this is true. */
export function dmaResvIterIsRestarted(cursor: DmaResvIter): boolean {
  return cursor.isRestarted;
}

function restartUnlocked(c: DmaResvIter): void {
  c.index = 0;
  c.numFences = 0;
  c.fences = c.obj!.fences;
  if (c.fences !== null) c.numFences = c.fences.numFences;
  c.isRestarted = true;
}

function walkUnlocked(c: DmaResvIter): void {
  if (c.fences === null) {
    dmaFencePut(c.fence);
    c.fence = null;
    return;
  }
  for (;;) {
    dmaFencePut(c.fence);
    if (c.index >= c.numFences) {
      c.fence = null;
      break;
    }
    const i = c.index++;
    const f = c.fences.table[i];
    c.fenceUsage = c.fences.usage[i];
    // dma_fence_get_rcu(): a fence whose last reference is gone cannot be taken.
    c.fence = f !== null && f.refcount > 0 ? f.get() : null;
    if (c.fence === null) {
      restartUnlocked(c);
      continue;
    }
    if (!c.fence.isSignaled() && c.usage >= c.fenceUsage) break;
  }
}

/**
 * dma_resv_iter_first_unlocked(): the first unsignalled fence with a matching usage,
 * with a reference held by the cursor, or null. Needs no lock; may restart.
 */
export function dmaResvIterFirstUnlocked(cursor: DmaResvIter): DmaFence | null {
  do {
    restartUnlocked(cursor);
    walkUnlocked(cursor);
  } while (cursor.obj!.fences !== cursor.fences);
  return cursor.fence;
}

/**
 * dma_resv_iter_next_unlocked(): the next one; when the object's list was replaced
 * since, starts over from the first and flags the result restarted.
 */
export function dmaResvIterNextUnlocked(cursor: DmaResvIter): DmaFence | null {
  cursor.isRestarted = false;
  let restart = cursor.obj!.fences !== cursor.fences;
  do {
    if (restart) restartUnlocked(cursor);
    walkUnlocked(cursor);
    restart = true;
  } while (cursor.obj!.fences !== cursor.fences);
  return cursor.fence;
}

/** dma_resv_iter_first(): locked iteration, signalled fences included, no references. */
export function dmaResvIterFirst(cursor: DmaResvIter): DmaFence | null {
  dmaResvAssertHeld(cursor.obj!, 'dma_resv_iter_first');
  cursor.index = 0;
  cursor.fences = cursor.obj!.fences;
  const fence = dmaResvIterNext(cursor);
  cursor.isRestarted = true;
  return fence;
}

/** dma_resv_iter_next(): the next fence of a locked iteration, or null. */
export function dmaResvIterNext(cursor: DmaResvIter): DmaFence | null {
  dmaResvAssertHeld(cursor.obj!, 'dma_resv_iter_next');
  cursor.isRestarted = false;
  let fence: DmaFence | null;
  do {
    const list = cursor.fences;
    if (list === null || cursor.index >= list.numFences) return null;
    const i = cursor.index++;
    fence = list.table[i];
    cursor.fenceUsage = list.usage[i];
  } while (cursor.fenceUsage > cursor.usage);
  return fence;
}

/**
 * dma_resv_for_each_fence_unlocked(): iterates from `dmaResvIterBegin` on; call
 * `dmaResvIterEnd` after the loop (also after a `break`).
 */
export function* dmaResvForEachFenceUnlocked(cursor: DmaResvIter): Generator<DmaFence, void, undefined> {
  for (let f = dmaResvIterFirstUnlocked(cursor); f !== null; f = dmaResvIterNextUnlocked(cursor)) yield f;
}

/** dma_resv_for_each_fence(): locked iteration over fences with usage <= `usage`. */
export function* dmaResvForEachFence(
  cursor: DmaResvIter,
  obj: DmaResv,
  usage: DmaResvUsage,
): Generator<DmaFence, void, undefined> {
  dmaResvIterBegin(cursor, obj, usage);
  for (let f = dmaResvIterFirst(cursor); f !== null; f = dmaResvIterNext(cursor)) yield f;
}

// ------------------------------------------------------------ bulk helpers

/** dma_resv_copy_fences(): `dst` (locked) gets a snapshot of `src`'s unsignalled fences. 0 or -ENOMEM. */
export function dmaResvCopyFences(dst: DmaResv, src: DmaResv): number {
  dmaResvAssertHeld(dst, 'dma_resv_copy_fences');
  let list: DmaResvList | null = null;
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, src, DMA_RESV_USAGE_BOOKKEEP);
  for (const f of dmaResvForEachFenceUnlocked(cursor)) {
    if (dmaResvIterIsRestarted(cursor)) {
      listFree(list);
      list = listAlloc(cursor.numFences);
      if (list === null) {
        dmaResvIterEnd(cursor);
        return -errno.ENOMEM;
      }
      list.numFences = 0;
    }
    listSet(list!, list!.numFences++, f.get(), dmaResvIterUsage(cursor));
  }
  dmaResvIterEnd(cursor);
  const old = dst.fences;
  dst.fences = list;
  listFree(old);
  return 0;
}

/** The out-parameters of `dmaResvGetFences`. */
export interface DmaResvFences {
  /** Number of fences returned. */
  numFences: number;
  /** References to them (null when none). */
  fences: DmaFence[] | null;
}

/**
 * dma_resv_get_fences(): references to the unsignalled fences with usage <= `usage`,
 * without the lock. 0, or -ENOMEM (then none are returned).
 */
export function dmaResvGetFences(obj: DmaResv, usage: DmaResvUsage, out: DmaResvFences): number {
  out.numFences = 0;
  out.fences = null;
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, obj, usage);
  for (const fence of dmaResvForEachFenceUnlocked(cursor)) {
    if (dmaResvIterIsRestarted(cursor)) {
      while (out.numFences) out.fences![--out.numFences].put();
      const count = cursor.numFences + 1;
      const block = kmallocArray(count, 8, GFP_KERNEL);
      if (block === null) {
        out.fences = null;
        out.numFences = 0;
        dmaResvIterEnd(cursor);
        return -errno.ENOMEM;
      }
      kfree(block);
      out.fences = [];
    }
    out.fences![out.numFences++] = fence.get();
  }
  dmaResvIterEnd(cursor);
  if (out.fences !== null) out.fences.length = out.numFences;
  return 0;
}

/**
 * dma_resv_get_singleton(): one fence for all the fences with usage <= `usage`: null
 * for none, the fence itself for one, else a new signal-on-all dma_fence_array (never
 * add it back to a resv). 0 or -ENOMEM.
 */
export function dmaResvGetSingleton(
  obj: DmaResv,
  usage: DmaResvUsage,
  out: { fence: DmaFence | null },
): number {
  const got: DmaResvFences = { numFences: 0, fences: null };
  const r = dmaResvGetFences(obj, usage, got);
  if (r) return r;
  if (got.numFences === 0) {
    out.fence = null;
    return 0;
  }
  if (got.numFences === 1) {
    out.fence = got.fences![0];
    return 0;
  }
  out.fence = dmaFenceArrayCreate(got.numFences, got.fences, dmaFenceContextAlloc(1), 1, false);
  return 0;
}

/**
 * dma_resv_wait_timeout(): waits for the unsignalled fences with usage <= `usage`.
 * Returns the jiffies left (> 0; 1 for a zero timeout with nothing pending), 0 on
 * timeout, -ERESTARTSYS when interrupted. No lock needed.
 */
export async function dmaResvWaitTimeout(
  obj: DmaResv,
  usage: DmaResvUsage,
  intr: boolean,
  timeout: number,
): Promise<number> {
  let ret = timeout ? timeout : 1;
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, obj, usage);
  for (const fence of dmaResvForEachFenceUnlocked(cursor)) {
    ret = await fence.waitTimeout(intr, timeout);
    if (ret <= 0) break;
    if (timeout) timeout = ret;
  }
  dmaResvIterEnd(cursor);
  return ret;
}

/** dma_resv_set_deadline(): passes the deadline hint to every matching unsignalled fence. */
export function dmaResvSetDeadline(obj: DmaResv, usage: DmaResvUsage, deadline: number): void {
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, obj, usage);
  for (const fence of dmaResvForEachFenceUnlocked(cursor)) fence.setDeadline(deadline);
  dmaResvIterEnd(cursor);
}

/** dma_resv_test_signaled(): true when no fence with usage <= `usage` is pending. */
export function dmaResvTestSignaled(obj: DmaResv, usage: DmaResvUsage): boolean {
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, obj, usage);
  for (const _fence of dmaResvForEachFenceUnlocked(cursor)) {
    dmaResvIterEnd(cursor);
    return false;
  }
  dmaResvIterEnd(cursor);
  return true;
}

/**
 * dma_resv_describe(): one line per fence with usage <= READ (lock held):
 * `\t<usage> fence:` followed by dma_fence_describe.
 */
export function dmaResvDescribe(obj: DmaResv): string {
  let s = '';
  const cursor = new DmaResvIter();
  for (const fence of dmaResvForEachFence(cursor, obj, DMA_RESV_USAGE_READ)) {
    s += `\t${DMA_RESV_USAGE_NAMES[dmaResvIterUsage(cursor)]} fence:${fence.describe()}`;
  }
  return s;
}

// ------------------------------------------------------------ dma_resv_lockdep()

/**
 * dma_resv_lockdep(): the boot-time priming of the lock order every driver must follow:
 * mmap lock -> reservation acquire context -> reservation lock -> fs_reclaim ->
 * i_mmap lock, and fs_reclaim -> MMU-notifier map -> "might wait for a fence".
 */
export function dmaResvLockdep(ld: Lockdep, ctx: ExecContext): void {
  const mmap = new LockdepMap('&mm->mmap_lock', '&mm->mmap_lock');
  const acquire = new LockdepMap(reservationWwClass.acquireName, reservationWwClass.acquireKey);
  const resv = new LockdepMap(reservationWwClass.mutexName, reservationWwClass.mutexKey);
  const iMmap = new LockdepMap('&mapping->i_mmap_rwsem', '&mapping->i_mmap_rwsem');
  ld.acquire(ctx, mmap, 0, false, 1); // mmap_read_lock(mm)
  ld.acquire(ctx, acquire); // ww_acquire_init(&ctx, &reservation_ww_class)
  ld.acquire(ctx, resv, 0, false, 0, true, acquire); // dma_resv_lock(&obj, &ctx)
  ld.acquire(ctx, fsReclaimMap); // fs_reclaim_acquire(GFP_KERNEL)
  ld.acquire(ctx, mmuNotifierInvalidateRangeStartMap);
  ld.release(ctx, mmuNotifierInvalidateRangeStartMap);
  ld.acquire(ctx, iMmap); // i_mmap_lock_write(&mapping)
  ld.release(ctx, iMmap);
  ld.acquire(ctx, mmuNotifierInvalidateRangeStartMap);
  ld.fenceMightWait(ctx); // __dma_fence_might_wait()
  ld.release(ctx, mmuNotifierInvalidateRangeStartMap);
  ld.release(ctx, fsReclaimMap);
  ld.release(ctx, resv);
  ld.release(ctx, acquire);
  ld.release(ctx, mmap);
}

registerLockdepBootHook('dma_resv_lockdep', dmaResvLockdep);
