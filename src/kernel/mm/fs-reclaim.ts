/**
 * The fs_reclaim lockdep annotation and might_alloc() (mm/page_alloc.c,
 * include/linux/sched/mm.h, Linux 6.12).
 *
 * Memory reclaim can wait on almost anything (writeback, shrinkers, MMU notifiers, and
 * through them dma_fence waits), so lockdep models "may enter reclaim" as a pseudo-lock:
 * an allocation that may sleep takes and drops `fs_reclaim` (when __GFP_FS) and the
 * MMU-notifier map. Any lock held across such an allocation is then ordered before
 * reclaim; dma_resv_lockdep() orders reclaim before the fence-wait annotation, so a
 * blocking allocation inside a fence signalling section is a reported cycle.
 *
 * GFP_NOWAIT and GFP_ATOMIC (no __GFP_DIRECT_RECLAIM) and __GFP_NOLOCKDEP do not touch
 * the maps. PF_MEMALLOC and the memalloc_no{fs,io} scopes are not modelled.
 */
import { currentKernel } from '../kernel.ts';
import { LockdepMap, lockAcquire, lockMapAcquire, lockMapRelease, lockRelease } from '../locking/lockdep.ts';
import {
  __GFP_DIRECT_RECLAIM,
  __GFP_FS,
  __GFP_NOLOCKDEP,
  type GfpFlags,
  gfpflagsAllowBlocking,
  gfpName,
} from './gfp.ts';
import { mmuNotifierInvalidateRangeStartMap } from './mmu-notifier.ts';

/** __fs_reclaim_map: "this context may enter filesystem reclaim". */
export const fsReclaimMap = new LockdepMap('fs_reclaim', null, {
  signallingRule: 'lockdep.reclaim_in_signalling',
});

function needReclaim(gfp: GfpFlags): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0 && (gfp & __GFP_NOLOCKDEP) === 0;
}

/** fs_reclaim_acquire(): enter the reclaim annotation for an allocation with `gfp`. */
export function fsReclaimAcquire(gfp: GfpFlags): void {
  if (!needReclaim(gfp)) return;
  if (gfp & __GFP_FS) lockAcquire(fsReclaimMap, 0, false, 0, true, null);
  lockMapAcquire(mmuNotifierInvalidateRangeStartMap);
  lockMapRelease(mmuNotifierInvalidateRangeStartMap);
}

/** fs_reclaim_release(). */
export function fsReclaimRelease(gfp: GfpFlags): void {
  if (!needReclaim(gfp)) return;
  if (gfp & __GFP_FS) lockRelease(fsReclaimMap);
}

/**
 * might_alloc(): the annotations of an allocation with `gfp`, made whether or not it
 * then needs memory: the reclaim maps, and might_sleep when it may block.
 */
export function mightAlloc(gfp: GfpFlags): void {
  fsReclaimAcquire(gfp);
  fsReclaimRelease(gfp);
  if (gfpflagsAllowBlocking(gfp)) {
    const k = currentKernel();
    k.checkMightSleep(k.ctx, `memory allocation (${gfpName(gfp)})`);
  }
}
