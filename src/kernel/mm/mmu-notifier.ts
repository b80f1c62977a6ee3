/**
 * The MMU-notifier lockdep map (mm/mmu_notifier.c, include/linux/mmu_notifier.h,
 * Linux 6.12).
 *
 * `__mmu_notifier_invalidate_range_start_map` is a pseudo-lock held around
 * invalidate_range_start callbacks. Reclaim takes it (fs_reclaim_acquire), and
 * dma_resv_lockdep() orders it before the fence-wait annotation, because drivers may
 * wait for fences from their notifiers: no code that signals fences may allocate with
 * reclaim. Only the map is modelled here; notifiers themselves come with the mm layer.
 */
import { LockdepMap } from '../locking/lockdep.ts';

/** __mmu_notifier_invalidate_range_start_map. */
export const mmuNotifierInvalidateRangeStartMap = new LockdepMap(
  'mmu_notifier_invalidate_range_start',
  null,
  {
    signallingRule: 'lockdep.reclaim_in_signalling',
  },
);
