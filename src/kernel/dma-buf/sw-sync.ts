/**
 * sw_sync: software timelines for testing explicit sync, at
 * /sys/kernel/debug/sync/sw_sync (drivers/dma-buf/sw_sync.c, sync_debug.h, Linux 6.12).
 *
 * Every open() creates a timeline: a fresh fence context, named after the opening
 * task's comm, a 32-bit value starting at 0, an ordered list of pending points, and
 * one spinlock all its fences share. A point (struct sync_pt) is a dma_fence whose
 * seqno is compared with the timeline value with 32-bit wrap-around.
 *
 * ioctls on the timeline fd:
 * - SW_SYNC_IOC_CREATE_FENCE: reserve a close-on-exec fd; copy in (-EFAULT); make the
 *   point: born signalled (timestamp now, not listed) if its value is not after the
 *   timeline's, the same fence again if an unsignalled point with that seqno exists,
 *   otherwise inserted in seqno order; wrap it in a sync_file; copy out (-EFAULT);
 *   install. The `name` field is ignored.
 * - SW_SYNC_IOC_INC: add a u32 to the value (in INT_MAX steps), signalling, lowest
 *   first, every listed point that has now passed; stops at the first that has not.
 * - SW_SYNC_GET_DEADLINE: deadline_ns and pad must be 0 (-EINVAL); the fd must be a
 *   sync_file wrapping a sw_sync point (-EINVAL, any timeline); -ENOENT if no deadline
 *   was ever set; else the earliest deadline is written back.
 * - anything else: -ENOTTY.
 *
 * Closing the timeline fd signals every listed point with error -ENOENT; points stay
 * listed until released, and the timeline lives until its last point is released.
 * 6.12 gives the ops an enable_signaling that only returns true, and the debug-dump
 * value strings (`%lld` seqno, `%d` timeline value); timeline and driver names are the
 * same before and after signalling.
 */
import { SW_SYNC_GET_DEADLINE, SW_SYNC_IOC_CREATE_FENCE, SW_SYNC_IOC_INC } from '../../uapi/ioctl.ts';
import { swSyncCreateFenceData, swSyncGetDeadline } from '../../uapi/structs.ts';
import { errno } from '../errno.ts';
import { fdInstall, getUnusedFdFlags, O_CLOEXEC_FLAG, putUnusedFd } from '../fdtable.ts';
import { type File, type FileOperations, fput, type Inode } from '../file.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import {
  SpinLock,
  spinLockIrq,
  spinLockIrqsave,
  spinUnlockIrq,
  spinUnlockIrqrestore,
} from '../locking/spinlock.ts';
import { current, TASK_COMM_LEN } from '../sched.ts';
import { copyStructFromUser, copyToUser, getUserU32, memdupUser } from '../uaccess.ts';
import {
  DMA_FENCE_FLAG_USER_BITS,
  DmaFence,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFenceSeqnoIsLater,
} from './dma-fence.ts';
import { syncTimelineDebugAdd, syncTimelineDebugRemove } from './sync-debug.ts';
import { syncFileCreate, syncFileGetFence } from './sync-file.ts';

/** Path of the sw_sync debugfs file. */
export const SW_SYNC_PATH = '/sys/kernel/debug/sync/sw_sync';

/** Flag bit: the point has a deadline (SW_SYNC_HAS_DEADLINE_BIT). */
export const SW_SYNC_HAS_DEADLINE_BIT = DMA_FENCE_FLAG_USER_BITS;

const INT_MAX = 0x7fffffff;

/** A software timeline (struct sync_timeline). */
export class SyncTimeline {
  /** References: the timeline fd and every point. */
  kref = 1;
  /** The timeline's name (the opener's comm). */
  readonly name: string;
  /** Fence context of its points. */
  readonly context: number;
  /** Current value (a C int: wraps at 32 bits). */
  value = 0;
  /** Pending points in seqno order (pt_tree + pt_list). */
  readonly ptList: SyncPt[] = [];
  /** The lock every point of the timeline shares. */
  readonly lock = new SpinLock('sync_timeline.lock');
  /** The kernel the timeline lives in. */
  readonly kernel: Kernel;

  /** sync_timeline_create(). */
  constructor(name: string) {
    this.kernel = currentKernel();
    this.name = name.slice(0, 31);
    this.context = dmaFenceContextAlloc(1);
    lockOwner.set(this.lock, this);
    syncTimelineDebugAdd(this);
  }

  /** sync_timeline_get(). */
  get(): void {
    this.kref++;
  }

  /** sync_timeline_put(): the last reference frees the timeline. */
  put(): void {
    if (--this.kref === 0) syncTimelineDebugRemove(this);
  }
}

/** A point on a timeline (struct sync_pt). */
export class SyncPt extends DmaFence {
  /** The earliest deadline hint, valid with SW_SYNC_HAS_DEADLINE_BIT. */
  deadline = 0;
  /** Listed on the timeline (link not empty). */
  listed = false;

  /** dma_fence_init() of a point; takes a timeline reference. */
  constructor(timeline: SyncTimeline, value: number) {
    super(timelineFenceOps, timeline.lock, timeline.context, value >>> 0);
    timeline.get();
  }

  /** The parent timeline (dma_fence_parent). */
  get timeline(): SyncTimeline {
    return parent(this);
  }
}

const lockOwner = new WeakMap<SpinLock, SyncTimeline>();

/** dma_fence_parent(): the timeline owning the fence's lock (container_of in C). */
function parent(fence: DmaFence): SyncTimeline {
  return lockOwner.get(fence.lock)!;
}

function timelineFenceSignaled(fence: DmaFence): boolean {
  return !dmaFenceSeqnoIsLater(fence.seqno, parent(fence).value, fence.ops);
}

function unlist(pt: SyncPt): void {
  const list = pt.timeline.ptList;
  const i = list.indexOf(pt);
  if (i >= 0) list.splice(i, 1);
  pt.listed = false;
}

/** timeline_fence_ops. */
export const timelineFenceOps: DmaFenceOps = Object.freeze({
  getDriverName: () => 'sw_sync',
  getTimelineName: (fence: DmaFence) => parent(fence).name,
  enableSignaling: () => true,
  signaled: timelineFenceSignaled,
  release: (fence: DmaFence) => {
    const pt = fence as SyncPt;
    const flags = spinLockIrqsave(fence.lock);
    if (pt.listed) unlist(pt);
    spinUnlockIrqrestore(fence.lock, flags);
    pt.timeline.put();
  },
  fenceValueStr: (fence: DmaFence) => `${BigInt.asIntN(64, BigInt(fence.seqno))}`,
  timelineValueStr: (fence: DmaFence) => `${parent(fence).value | 0}`,
  setDeadline: (fence: DmaFence, deadline: number) => {
    const pt = fence as SyncPt;
    const flags = spinLockIrqsave(fence.lock);
    const bit = 1 << SW_SYNC_HAS_DEADLINE_BIT;
    if (fence.flags & bit) {
      if (deadline < pt.deadline) pt.deadline = deadline;
    } else {
      pt.deadline = deadline;
      fence.flags |= bit;
    }
    spinUnlockIrqrestore(fence.lock, flags);
  },
});

/** dma_fence_to_sync_pt(): the point behind a fence, or null if it is not a sw_sync point. */
export function dmaFenceToSyncPt(fence: DmaFence): SyncPt | null {
  return fence.ops === timelineFenceOps ? (fence as SyncPt) : null;
}

/** sync_timeline_signal(): advances the value by `inc` and signals the points that passed. */
export function syncTimelineSignal(obj: SyncTimeline, inc: number): void {
  const signalled: SyncPt[] = [];
  spinLockIrq(obj.lock);
  obj.value = (obj.value + inc) | 0;
  while (obj.ptList.length > 0) {
    const pt = obj.ptList[0];
    if (!timelineFenceSignaled(pt)) break;
    pt.get();
    obj.ptList.shift();
    pt.listed = false;
    signalled.push(pt);
    pt.signalLocked();
  }
  spinUnlockIrq(obj.lock);
  for (const pt of signalled) pt.put();
}

/** The rb-tree order: (value - other.seqno) as a C int. */
function cmp(a: number, b: number): number {
  return ((a >>> 0) - (b >>> 0)) | 0;
}

/** sync_pt_create(): a point at `value` (or the existing unsignalled one); null on failure. */
export function syncPtCreate(obj: SyncTimeline, value: number): SyncPt {
  let pt = new SyncPt(obj, value);
  spinLockIrq(obj.lock);
  if (!pt.isSignaledLocked()) {
    const list = obj.ptList;
    let i = 0;
    let reuse: SyncPt | null = null;
    while (i < list.length) {
      const c = cmp(value, list[i].seqno);
      if (c < 0) break;
      if (c === 0 && list[i].refcount > 0) {
        reuse = list[i];
        break;
      }
      i++;
    }
    if (reuse) {
      reuse.get();
      // The new point was never visible: drop it without running its release.
      pt.refcount = 0;
      obj.put();
      pt = reuse;
    } else {
      list.splice(i, 0, pt);
      pt.listed = true;
    }
  }
  spinUnlockIrq(obj.lock);
  return pt;
}

function swSyncOpen(_inode: Inode, file: File): number {
  const task = current();
  const comm = task ? task.comm : currentKernel().ctx.name.slice(0, TASK_COMM_LEN - 1);
  file.privateData = new SyncTimeline(comm);
  return 0;
}

function swSyncRelease(_inode: Inode, file: File): void {
  const obj = file.privateData as SyncTimeline;
  spinLockIrq(obj.lock);
  for (const pt of [...obj.ptList]) {
    pt.setError(-errno.ENOENT);
    pt.signalLocked();
  }
  spinUnlockIrq(obj.lock);
  obj.put();
}

function createFence(obj: SyncTimeline, arg: number): number {
  const fd = getUnusedFdFlags(O_CLOEXEC_FLAG);
  if (fd < 0) return fd;
  const raw = memdupUser(arg, swSyncCreateFenceData.size);
  if (!raw) {
    putUnusedFd(fd);
    return -errno.EFAULT;
  }
  const data = swSyncCreateFenceData.decode(raw);
  const pt = syncPtCreate(obj, data.value);
  const sf = syncFileCreate(pt);
  pt.put();
  if (!sf) {
    putUnusedFd(fd);
    return -errno.ENOMEM;
  }
  new DataView(raw.buffer).setInt32(swSyncCreateFenceData.offsetOf('fence'), fd, true);
  if (copyToUser(arg, raw)) {
    fput(sf.file);
    putUnusedFd(fd);
    return -errno.EFAULT;
  }
  fdInstall(fd, sf.file);
  return 0;
}

function inc(obj: SyncTimeline, arg: number): number {
  let value = getUserU32(arg);
  if (value === null) return -errno.EFAULT;
  while (value > INT_MAX) {
    syncTimelineSignal(obj, INT_MAX);
    value -= INT_MAX;
  }
  syncTimelineSignal(obj, value);
  return 0;
}

function getDeadline(arg: number): number {
  const data = copyStructFromUser(swSyncGetDeadline, arg);
  if (!data) return -errno.EFAULT;
  if (data.deadline_ns || data.pad) return -errno.EINVAL;
  const fence = syncFileGetFence(data.fence_fd);
  if (!fence) return -errno.EINVAL;
  const pt = dmaFenceToSyncPt(fence);
  if (!pt) {
    fence.put();
    return -errno.EINVAL;
  }
  const flags = spinLockIrqsave(fence.lock);
  if (!(fence.flags & (1 << SW_SYNC_HAS_DEADLINE_BIT))) {
    spinUnlockIrqrestore(fence.lock, flags);
    fence.put();
    return -errno.ENOENT;
  }
  const deadline = pt.deadline;
  spinUnlockIrqrestore(fence.lock, flags);
  fence.put();
  const out = swSyncGetDeadline.encode({ ...data, deadline_ns: BigInt.asUintN(64, BigInt(deadline)) });
  return copyToUser(arg, out) ? -errno.EFAULT : 0;
}

function swSyncIoctl(file: File, cmd: number, arg: number): number {
  const obj = file.privateData as SyncTimeline;
  switch (cmd) {
    case SW_SYNC_IOC_CREATE_FENCE:
      return createFence(obj, arg);
    case SW_SYNC_IOC_INC:
      return inc(obj, arg);
    case SW_SYNC_GET_DEADLINE:
      return getDeadline(arg);
    default:
      return -errno.ENOTTY;
  }
}

/** sw_sync_debugfs_fops. */
export const swSyncFops: FileOperations = {
  name: 'sw_sync',
  open: swSyncOpen,
  release: swSyncRelease,
  ioctl: swSyncIoctl,
};
