/**
 * vgem fences: software fences userspace attaches to a vgem buffer and signals by hand,
 * to test implicit synchronisation (drivers/gpu/drm/vgem/vgem_fence.c,
 * include/uapi/drm/vgem_drm.h, Linux 6.12).
 *
 * VGEM_FENCE_ATTACH, checks in order: flags other than VGEM_FENCE_WRITE -EINVAL; pad
 * -EINVAL; unknown handle -ENOENT. A new fence (its own context, seqno 1, driver `vgem`,
 * timeline `unbound`) is created before the conflict check, so a refused attach still
 * uses up a fence context. A WRITE fence needs every fence of the buffer's reservation
 * object signalled, a read fence every write fence (dma_resv_usage_rw): otherwise -EBUSY.
 * The fence is added to the reservation object as a WRITE or READ fence and its id (the
 * lowest free per file, from 1) returned in `out_fence`; on any failure after creation the
 * fence is signalled and dropped.
 *
 * VGEM_FENCE_SIGNAL: flags -EINVAL; an id that was never handed out, or was signalled
 * through this ioctl already, -ENOENT (the id stays used: vgem replaces the entry with
 * NULL); otherwise the fence is signalled (-ETIMEDOUT if its timer had already done it).
 *
 * Every fence signals by itself VGEM_FENCE_TIMEOUT (10 s of virtual time) after it was
 * created, from a timer in IRQ context, so a forgotten fence cannot hang its waiters.
 * Closing the DRM file signals and drops the fences it still holds.
 */
import {
  type DmaFence,
  DmaFence as DmaFenceClass,
  type DmaFenceOps,
  dmaFenceContextAlloc,
} from '../../../kernel/dma-buf/dma-fence.ts';
import {
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvTestSignaled,
  dmaResvUnlock,
  dmaResvUsageRw,
} from '../../../kernel/dma-buf/dma-resv.ts';
import { errno } from '../../../kernel/errno.ts';
import { currentKernel } from '../../../kernel/kernel.ts';
import { Idr } from '../../../kernel/lib/idr.ts';
import { Mutex, mutexLock, mutexUnlock } from '../../../kernel/locking/mutex.ts';
import { SpinLock } from '../../../kernel/locking/spinlock.ts';
import type { EventHandle } from '../../../sim/index.ts';
import { drmVgemFenceAttach, drmVgemFenceSignal, VGEM_FENCE_WRITE } from '../../../uapi/drm.ts';
import type { DrmDevice } from '../drm/drm-drv.ts';
import type { DrmFile } from '../drm/drm-file.ts';
import { drmGemObjectLookup, drmGemObjectPut } from '../drm/drm-gem.ts';

/** Seconds after which a vgem fence signals by itself (VGEM_FENCE_TIMEOUT = 10 * HZ jiffies). */
export const VGEM_FENCE_TIMEOUT_SECONDS = 10;

/** The per-file state of vgem (struct vgem_file). */
export class VgemFile {
  /** Fence ids (from 1); signalled-by-ioctl entries stay allocated as null. */
  readonly fenceIdr = new Idr<DmaFence>(1);
  /** fence_mutex. */
  readonly fenceMutex = new Mutex('vgem_file.fence_mutex');
}

/** A vgem fence (struct vgem_fence): a dma_fence with its own lock and a timeout timer. */
export class VgemFence extends DmaFenceClass {
  /** The pending timer event, or null once it ran or was cancelled. */
  timer: EventHandle | null = null;
}

/** vgem_fence_ops. */
export const vgemFenceOps: DmaFenceOps = Object.freeze({
  getDriverName: () => 'vgem',
  getTimelineName: () => 'unbound',
  release: (fence: DmaFence) => {
    // del_timer_sync()
    const f = fence as VgemFence;
    if (f.timer !== null) {
      f.kernel.engine.cancel(f.timer);
      f.timer = null;
    }
  },
  fenceValueStr: (fence: DmaFence) => `${fence.seqno}`,
  timelineValueStr: (fence: DmaFence) => `${fence.isSignaled() ? fence.seqno : 0}`,
});

/** vgem_fence_create(): a new fence that signals by itself after VGEM_FENCE_TIMEOUT. */
export function vgemFenceCreate(_vfile: VgemFile, _flags: number): VgemFence {
  const fence = new VgemFence(vgemFenceOps, new SpinLock('vgem_fence.lock'), dmaFenceContextAlloc(1), 1);
  const k = currentKernel();
  const expire = k.jiffiesNow + VGEM_FENCE_TIMEOUT_SECONDS * k.jiffies.hz;
  fence.timer = k.engine.at(
    k.jiffies.toNsecs(expire),
    () => {
      fence.timer = null;
      fence.signal();
    },
    k.engine.irqContextFor(k),
  );
  return fence;
}

/** DRM_IOCTL_VGEM_FENCE_ATTACH. */
export async function vgemFenceAttachIoctl(
  _dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  const arg = drmVgemFenceAttach.decode(data);
  const vfile = file.driverPriv as VgemFile;
  if (arg.flags & ~VGEM_FENCE_WRITE) return -errno.EINVAL;
  if (arg.pad) return -errno.EINVAL;
  const obj = drmGemObjectLookup(file, arg.handle);
  if (!obj) return -errno.ENOENT;
  const fence = vgemFenceCreate(vfile, arg.flags);
  const write = (arg.flags & VGEM_FENCE_WRITE) !== 0;
  const resv = obj.resv;
  let ret = 0;
  // Check for a conflicting fence.
  if (!dmaResvTestSignaled(resv, dmaResvUsageRw(write))) {
    ret = -errno.EBUSY;
  } else {
    // Expose the fence via the dma-buf.
    await dmaResvLock(resv, null);
    ret = dmaResvReserveFences(resv, 1);
    if (!ret) dmaResvAddFence(resv, fence, write ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ);
    dmaResvUnlock(resv);
    // Record the fence in our idr for later signaling.
    if (ret === 0) {
      await mutexLock(vfile.fenceMutex);
      ret = vfile.fenceIdr.alloc(fence, 1);
      mutexUnlock(vfile.fenceMutex);
      if (ret > 0) {
        drmVgemFenceAttach.encode({ ...arg, out_fence: ret }, data);
        ret = 0;
      }
    }
  }
  if (ret) {
    fence.signal();
    fence.put();
  }
  await drmGemObjectPut(obj);
  return ret;
}

/** DRM_IOCTL_VGEM_FENCE_SIGNAL. */
export async function vgemFenceSignalIoctl(
  _dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  const vfile = file.driverPriv as VgemFile;
  const arg = drmVgemFenceSignal.decode(data);
  if (arg.flags) return -errno.EINVAL;
  await mutexLock(vfile.fenceMutex);
  const fence = vfile.fenceIdr.replace(arg.fence, null);
  mutexUnlock(vfile.fenceMutex);
  if (fence === null) return -errno.ENOENT;
  if (typeof fence === 'number') return fence;
  let ret = 0;
  if (fence.isSignaled()) ret = -errno.ETIMEDOUT;
  fence.signal();
  fence.put();
  return ret;
}

/** vgem_fence_open(): the file's fence table (created with the VgemFile). */
export function vgemFenceOpen(_vfile: VgemFile): number {
  return 0;
}

/** vgem_fence_close(): signals and drops every fence the file still holds. */
export function vgemFenceClose(vfile: VgemFile): void {
  for (const [, fence] of vfile.fenceIdr.entries()) {
    if (!fence) continue;
    fence.signal();
    fence.put();
  }
  vfile.fenceIdr.destroy();
}
