/**
 * drm_syncobj: a DRM file's handle to a container for a fence, binary or timeline
 * (drivers/gpu/drm/drm_syncobj.c, include/drm/drm_syncobj.h, include/uapi/drm/drm.h,
 * Linux 6.12).
 *
 * A syncobj holds one fence pointer (maybe null). Binary use replaces it (import of a
 * sync_file, SIGNAL, RESET, transfer to point 0). Timeline use appends
 * `dma_fence_chain` nodes (TIMELINE_SIGNAL, transfer to a point): the pointer is the
 * newest node and point p is found with dma_fence_chain_find_seqno. Point 0 always means
 * "the current fence". A point that completed and was garbage-collected resolves to the
 * signalled stub fence. Replacing the fence or adding a point wakes WAIT_FOR_SUBMIT /
 * WAIT_AVAILABLE waiters.
 *
 * ioctls, with 6.12's checks in order (every one first needs DRIVER_SYNCOBJ, or
 * DRIVER_SYNCOBJ_TIMELINE for TRANSFER, TIMELINE_WAIT, QUERY, TIMELINE_SIGNAL and EVENTFD,
 * else -EOPNOTSUPP):
 * - CREATE: flags other than CREATE_SIGNALED -EINVAL. Handles are the lowest free from 1.
 * - DESTROY: pad -EINVAL; unknown handle -EINVAL.
 * - HANDLE_TO_FD: pad -EINVAL; flags not 0 or EXPORT_SYNC_FILE -EINVAL. EXPORT_SYNC_FILE
 *   reserves a close-on-exec fd first, then looks up point 0 without waiting (unknown
 *   handle -ENOENT, no fence -EINVAL) and returns a sync_file of that fence. Otherwise an
 *   unknown handle is -EINVAL and the result is a close-on-exec syncobj fd
 *   (`anon_inode:syncobj_file`).
 * - FD_TO_HANDLE: pad, flags as above. IMPORT_SYNC_FILE: not a sync_file -EINVAL, then
 *   unknown handle -ENOENT; replaces the fence. Otherwise the fd must be a syncobj fd
 *   (-EINVAL, also for a closed fd) and a new handle to the same syncobj is returned.
 * - WAIT: flags beyond WAIT_ALL | WAIT_FOR_SUBMIT | WAIT_DEADLINE -EINVAL (WAIT_AVAILABLE
 *   too); count 0 returns 0; then the handle array (-EFAULT, -ENOENT). TIMELINE_WAIT also
 *   accepts WAIT_AVAILABLE and reads a point per handle. `timeout_nsec` is an absolute
 *   CLOCK_MONOTONIC time (signed 64-bit: 0, the past, or UINT64_MAX (-1) only poll). A
 *   syncobj without a fence (or point) is -EINVAL unless WAIT_FOR_SUBMIT/WAIT_AVAILABLE;
 *   a timeout is -ETIME; without WAIT_ALL the index of the first done syncobj goes to
 *   `first_signaled`. A wait snapshots the fences it found: a later replacement does not
 *   change what it waits for.
 * - RESET / SIGNAL: pad -EINVAL; count 0 -EINVAL; then the array; nothing changes if a
 *   handle is unknown.
 * - TIMELINE_SIGNAL: flags -EINVAL; count 0 -EINVAL; array; points (null: all 0); each
 *   point gets a chain node around the signalled stub (out-of-order points accepted).
 * - QUERY: flags beyond LAST_SUBMITTED -EINVAL; count 0 -EINVAL; array; per handle the
 *   last signalled point of the timeline (LAST_SUBMITTED: the newest point), 0 for a
 *   binary syncobj.
 * - TRANSFER: pad -EINVAL; destination -ENOENT; then the source fence at `src_point`
 *   (`flags` may only hold WAIT_FOR_SUBMIT, which waits up to 5 s: -ETIME); to a point it
 *   is flattened (dma_fence_unwrap_merge) and added as a chain node, to point 0 it
 *   replaces the destination's fence.
 * - EVENTFD: flags beyond WAIT_AVAILABLE -EINVAL; pad -EINVAL; unknown handle -ENOENT;
 *   then the eventfd: the model has no eventfd files, so an open fd is -EINVAL (not an
 *   eventfd) and a closed one -EBADF, exactly what 6.12 answers for such fds.
 *
 * Model notes: timeline points are JS numbers (exact up to 2^53, as the chain seqnos);
 * waits sleep interruptibly in jiffies of the kernel's HZ; an interrupted wait returns
 * -ERESTARTSYS, which the DRM ioctl layer hands to userspace as -EINTR. The arrays the
 * ioctls allocate go through kmalloc, so a huge `count_handles` gets the kernel's
 * allocation WARN and -ENOMEM.
 */
import { anonInodeGetfile } from '../../../kernel/anon-inodes.ts';
import {
  type DmaFence,
  DmaFenceCb,
  dmaFenceAllocatePrivateStub,
  dmaFenceGet,
  dmaFenceGetStub,
  dmaFencePut,
} from '../../../kernel/dma-buf/dma-fence.ts';
import {
  type DmaFenceChainAllocation,
  dmaFenceChainAlloc,
  dmaFenceChainFindSeqno,
  dmaFenceChainForEach,
  dmaFenceChainInit,
  toDmaFenceChain,
} from '../../../kernel/dma-buf/dma-fence-chain.ts';
import { dmaFenceUnwrapMerge } from '../../../kernel/dma-buf/dma-fence-unwrap.ts';
import { syncFileCreate, syncFileGetFence } from '../../../kernel/dma-buf/sync-file.ts';
import { errno } from '../../../kernel/errno.ts';
import { fdget, fdInstall, getUnusedFdFlags, O_CLOEXEC_FLAG, putUnusedFd } from '../../../kernel/fdtable.ts';
import type { File, FileOperations } from '../../../kernel/file.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../../kernel/jiffies.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import { registerLeakCheck } from '../../../kernel/leak-check.ts';
import { SpinLock, spinLock, spinUnlock } from '../../../kernel/locking/spinlock.ts';
import { GFP_KERNEL } from '../../../kernel/mm/gfp.ts';
import { kfree, kmallocArray } from '../../../kernel/mm/slab.ts';
import { copyToUser, memdupUser } from '../../../kernel/uaccess.ts';
import type { Task } from '../../../sim/engine.ts';
import type { ReportObject } from '../../../sim/report.ts';
import {
  DRM_SYNCOBJ_CREATE_SIGNALED,
  DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
  DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
  DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
  drmSyncobjArray,
  drmSyncobjCreate as drmSyncobjCreateArgs,
  drmSyncobjDestroy,
  drmSyncobjEventfd,
  drmSyncobjHandle,
  drmSyncobjTimelineArray,
  drmSyncobjTimelineWait,
  drmSyncobjTransfer,
  drmSyncobjWait,
} from '../../../uapi/drm.ts';
import { DRIVER_SYNCOBJ, DRIVER_SYNCOBJ_TIMELINE, type DrmDevice, drmCoreCheckFeature } from './drm-drv.ts';
import type { DrmFile } from './drm-file.ts';

/** How long WAIT_FOR_SUBMIT waits for a point to appear in drm_syncobj_find_fence (5 s). */
export const DRM_SYNCOBJ_WAIT_FOR_SUBMIT_TIMEOUT_NS = 5_000_000_000;

/** sizeof(struct syncobj_wait_entry) on x86_64, for the kcalloc of a wait. */
const SYNCOBJ_WAIT_ENTRY_SIZE = 64;

const SYNCOBJ_IDS = Symbol('drm_syncobj ids');
/** One waiter on a syncobj (struct syncobj_wait_entry). */
class SyncobjWaitEntry {
  /** The fence found (a reference), or null until submitted. */
  fence: DmaFence | null = null;
  /** The callback slot on `fence`. */
  readonly fenceCb = new DmaFenceCb();
  /** The callback is queued (fence_cb.func set). */
  cbAdded = false;
  /** The entry is on a syncobj's cb_list. */
  queued = false;

  constructor(
    readonly task: Task,
    readonly point: number,
  ) {}
}

/** A sync object (struct drm_syncobj). */
export class DrmSyncobj {
  /** kref. */
  refcount = 1;
  /** The current fence (a reference), or null. */
  fence: DmaFence | null = null;
  /** WAIT_FOR_SUBMIT / WAIT_AVAILABLE waiters (cb_list). */
  readonly cbList: SyncobjWaitEntry[] = [];
  /** Protects `fence` and `cbList`. */
  readonly lock = new SpinLock('drm_syncobj.lock');
  /** A unique id for reports (per kernel). */
  readonly id: number;
  /** The kernel the syncobj lives in. */
  readonly kernel: Kernel;

  /** kzalloc + kref_init; use `drmSyncobjCreate`. */
  constructor() {
    const k = currentKernel();
    this.kernel = k;
    this.id = ((k.singletons.get(SYNCOBJ_IDS) as number | undefined) ?? 0) + 1;
    k.singletons.set(SYNCOBJ_IDS, this.id);
    liveSyncobjs(k).add(this);
  }

  /** `drm_syncobj N`. */
  toString(): string {
    return `drm_syncobj ${this.id}`;
  }

  /** This syncobj as a report object. */
  reportObject(): ReportObject {
    return { kind: 'drm_syncobj', name: this.toString(), id: this.id };
  }
}

const LIVE = Symbol('drm_syncobjs');

function liveSyncobjs(k: Kernel): Set<DrmSyncobj> {
  let s = k.singletons.get(LIVE) as Set<DrmSyncobj> | undefined;
  if (!s) {
    s = new Set();
    k.singletons.set(LIVE, s);
    registerLeakCheck(k, (kk) =>
      [...liveSyncobjs(kk)].map((o) => ({
        rule: 'drm_syncobj.leak',
        message: `${o} still has ${o.refcount} reference(s) after every process exited`,
        objects: [o.reportObject()],
        key: o,
      })),
    );
  }
  return s;
}

/** drm_syncobj_get(). */
export function drmSyncobjGet(syncobj: DrmSyncobj): DrmSyncobj {
  syncobj.refcount++;
  return syncobj;
}

/** drm_syncobj_put(): the last reference frees the syncobj (drops its fence). */
export function drmSyncobjPut(syncobj: DrmSyncobj): void {
  if (syncobj.refcount <= 0) {
    syncobj.kernel.warn('drm_syncobj.put_underflow', `WARNING: refcount_t: underflow for ${syncobj}`);
    return;
  }
  if (--syncobj.refcount > 0) return;
  drmSyncobjReplaceFence(syncobj, null);
  liveSyncobjs(syncobj.kernel).delete(syncobj);
}

/** drm_syncobj_fence_get(): a new reference to the current fence, or null. */
export function drmSyncobjFenceGet(syncobj: DrmSyncobj): DmaFence | null {
  return dmaFenceGet(syncobj.fence);
}

/** drm_syncobj_find(): the syncobj of `handle` with a new reference, or null. */
export function drmSyncobjFind(file: DrmFile, handle: number): DrmSyncobj | null {
  const s = file.syncobjIdr.find(handle);
  return s ? drmSyncobjGet(s) : null;
}

/** The fence at `point` (find_seqno semantics): `{ ret, fence }`; consumes the reference to `fence`. */
function findSeqno(fence: DmaFence, point: number): { ret: number; fence: DmaFence | null } {
  const p = { value: fence as DmaFence | null };
  const ret = dmaFenceChainFindSeqno(p, point);
  return { ret, fence: ret ? fence : p.value };
}

/** syncobj_wait_syncobj_func(): a waiter's point may have appeared (syncobj lock held). */
function waitSyncobjFunc(syncobj: DrmSyncobj, wait: SyncobjWaitEntry): void {
  const fence = dmaFenceGet(syncobj.fence);
  if (!fence) return;
  const r = findSeqno(fence, wait.point);
  if (r.ret) {
    dmaFencePut(fence);
    return;
  }
  wait.fence = r.fence ?? dmaFenceGetStub();
  syncobj.kernel.engine.wakeUp(wait.task);
  unlistWait(syncobj, wait);
}

function unlistWait(syncobj: DrmSyncobj, wait: SyncobjWaitEntry): void {
  const i = syncobj.cbList.indexOf(wait);
  if (i >= 0) syncobj.cbList.splice(i, 1);
  wait.queued = false;
}

/** drm_syncobj_fence_add_wait(): queues `wait` unless its point is already there. */
function fenceAddWait(syncobj: DrmSyncobj, wait: SyncobjWaitEntry): void {
  if (wait.fence) return;
  spinLock(syncobj.lock);
  const fence = dmaFenceGet(syncobj.fence);
  const r = fence ? findSeqno(fence, wait.point) : { ret: -errno.EINVAL, fence: null };
  if (!fence || r.ret) {
    dmaFencePut(fence);
    syncobj.cbList.push(wait);
    wait.queued = true;
  } else {
    wait.fence = r.fence ?? dmaFenceGetStub();
  }
  spinUnlock(syncobj.lock);
}

/** drm_syncobj_remove_wait(). */
function removeWait(syncobj: DrmSyncobj, wait: SyncobjWaitEntry): void {
  if (!wait.queued) return;
  spinLock(syncobj.lock);
  unlistWait(syncobj, wait);
  spinUnlock(syncobj.lock);
}

/**
 * drm_syncobj_add_point(): appends `fence` as timeline point `point` (a chain node made
 * in `chain`), wakes waiters, then walks the chain once to collect finished nodes.
 */
export function drmSyncobjAddPoint(
  syncobj: DrmSyncobj,
  chain: DmaFenceChainAllocation,
  fence: DmaFence,
  point: number,
): void {
  fence.get();
  spinLock(syncobj.lock);
  const prev = drmSyncobjFenceGet(syncobj);
  // An out-of-order point (prev.seqno >= point) is accepted; 6.12 only logs it.
  syncobj.fence = dmaFenceChainInit(chain, prev, fence, point);
  for (const w of [...syncobj.cbList]) waitSyncobjFunc(syncobj, w);
  spinUnlock(syncobj.lock);
  // Walk the chain once to trigger garbage collection.
  for (const _ of dmaFenceChainForEach(prev)) {
    // nothing: walking unlinks signalled nodes
  }
  dmaFencePut(prev);
}

/** drm_syncobj_replace_fence(): sets the fence (null to reset) and wakes waiters when it changed. */
export function drmSyncobjReplaceFence(syncobj: DrmSyncobj, fence: DmaFence | null): void {
  if (fence) fence.get();
  spinLock(syncobj.lock);
  const old = syncobj.fence;
  syncobj.fence = fence;
  if (fence !== old) for (const w of [...syncobj.cbList]) waitSyncobjFunc(syncobj, w);
  spinUnlock(syncobj.lock);
  dmaFencePut(old);
}

/** drm_syncobj_assign_null_handle(): installs a fresh signalled stub fence. */
function assignNullHandle(syncobj: DrmSyncobj): number {
  const fence = dmaFenceAllocatePrivateStub(syncobj.kernel.ktimeGet());
  drmSyncobjReplaceFence(syncobj, fence);
  dmaFencePut(fence);
  return 0;
}

/**
 * drm_syncobj_find_fence(): the fence of `handle` at `point`, optionally waiting up to
 * 5 s for it to be submitted (WAIT_FOR_SUBMIT, the only flag allowed). `{ ret, fence }`
 * with ret 0 and a fence reference, or -ENOENT / -EINVAL / -ETIME / -ERESTARTSYS.
 */
export async function drmSyncobjFindFence(
  file: DrmFile,
  handle: number,
  point: number,
  flags: number,
): Promise<{ ret: number; fence: DmaFence | null }> {
  const syncobj = drmSyncobjFind(file, handle);
  if (!syncobj) return { ret: -errno.ENOENT, fence: null };
  const k = syncobj.kernel;
  try {
    if (flags & ~DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT) return { ret: -errno.EINVAL, fence: null };
    let ret: number;
    const fence = drmSyncobjFenceGet(syncobj);
    if (fence) {
      const r = findSeqno(fence, point);
      // A point already signalled and collected may come back as null: use the stub.
      if (!r.ret) return { ret: 0, fence: r.fence ?? dmaFenceGetStub() };
      dmaFencePut(fence);
      ret = r.ret;
    } else {
      ret = -errno.EINVAL;
    }
    if (!(flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT)) return { ret, fence: null };
    const wait = new SyncobjWaitEntry(k.engine.currentTask(), point);
    fenceAddWait(syncobj, wait);
    let timeout = k.jiffies.fromNsecs(DRM_SYNCOBJ_WAIT_FOR_SUBMIT_TIMEOUT_NS);
    for (;;) {
      if (wait.fence) {
        ret = 0;
        break;
      }
      if (timeout === 0) {
        ret = -errno.ETIME;
        break;
      }
      if (k.signalPending()) {
        ret = -errno.ERESTARTSYS;
        break;
      }
      timeout = await k.scheduleTimeout(timeout, `drm_syncobj_find_fence on ${syncobj} point ${point}`, {
        interruptible: true,
        objects: [syncobj.reportObject()],
      });
    }
    removeWait(syncobj, wait);
    return { ret, fence: wait.fence };
  } finally {
    drmSyncobjPut(syncobj);
  }
}

/** drm_syncobj_create(): a new syncobj (signalled with CREATE_SIGNALED), optionally holding `fence`. */
export function drmSyncobjCreate(flags: number, fence: DmaFence | null = null): DrmSyncobj {
  const syncobj = new DrmSyncobj();
  if (flags & DRM_SYNCOBJ_CREATE_SIGNALED) assignNullHandle(syncobj);
  if (fence) drmSyncobjReplaceFence(syncobj, fence);
  return syncobj;
}

/** drm_syncobj_get_handle(): a new handle in `file` (holding a reference). The handle or -errno. */
export function drmSyncobjGetHandle(file: DrmFile, syncobj: DrmSyncobj): number {
  drmSyncobjGet(syncobj);
  const ret = file.syncobjIdr.alloc(syncobj, 1);
  if (ret < 0) drmSyncobjPut(syncobj);
  return ret;
}

function syncobjFileRelease(_inode: unknown, file: File): void {
  drmSyncobjPut(file.privateData as DrmSyncobj);
}

/** drm_syncobj_file_fops: the file of an exported syncobj (no operations but release). */
export const drmSyncobjFileFops: FileOperations = {
  name: 'syncobj_file',
  release: syncobjFileRelease,
};

/** drm_syncobj_get_fd(): a close-on-exec fd for `syncobj`. The fd or -errno. */
export function drmSyncobjGetFd(syncobj: DrmSyncobj): number {
  const fd = getUnusedFdFlags(O_CLOEXEC_FLAG);
  if (fd < 0) return fd;
  const file = anonInodeGetfile('syncobj_file', drmSyncobjFileFops, syncobj, 0);
  drmSyncobjGet(syncobj);
  fdInstall(fd, file);
  return fd;
}

/** drm_syncobj_open(): a new file's syncobj table (created with the file). */
export function drmSyncobjOpen(_file: DrmFile): void {}

/** drm_syncobj_release(): drops every handle of a closing file. */
export async function drmSyncobjRelease(file: DrmFile): Promise<void> {
  for (const [, s] of file.syncobjIdr.entries()) if (s) drmSyncobjPut(s);
  file.syncobjIdr.destroy();
}

// ------------------------------------------------------------ ioctls

function noSyncobj(dev: DrmDevice): boolean {
  return !drmCoreCheckFeature(dev, DRIVER_SYNCOBJ);
}

function noTimeline(dev: DrmDevice): boolean {
  return !drmCoreCheckFeature(dev, DRIVER_SYNCOBJ_TIMELINE);
}

/** DRM_IOCTL_SYNCOBJ_CREATE. */
export function drmSyncobjCreateIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjCreateArgs.decode(data);
  if (args.flags & ~DRM_SYNCOBJ_CREATE_SIGNALED) return -errno.EINVAL;
  const syncobj = drmSyncobjCreate(args.flags);
  const handle = drmSyncobjGetHandle(file, syncobj);
  drmSyncobjPut(syncobj);
  if (handle < 0) return handle;
  drmSyncobjCreateArgs.encode({ ...args, handle }, data);
  return 0;
}

/** DRM_IOCTL_SYNCOBJ_DESTROY. */
export function drmSyncobjDestroyIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjDestroy.decode(data);
  if (args.pad) return -errno.EINVAL;
  const syncobj = file.syncobjIdr.remove(args.handle);
  if (!syncobj) return -errno.EINVAL;
  drmSyncobjPut(syncobj);
  return 0;
}

/** drm_syncobj_export_sync_file(). The sync_file fd or -errno. */
async function exportSyncFile(file: DrmFile, handle: number): Promise<number> {
  const fd = getUnusedFdFlags(O_CLOEXEC_FLAG);
  if (fd < 0) return fd;
  const { ret, fence } = await drmSyncobjFindFence(file, handle, 0, 0);
  if (ret) {
    putUnusedFd(fd);
    return ret;
  }
  const sf = syncFileCreate(fence!);
  dmaFencePut(fence);
  if (!sf) {
    putUnusedFd(fd);
    return -errno.EINVAL;
  }
  fdInstall(fd, sf.file);
  return fd;
}

/** DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD. */
export async function drmSyncobjHandleToFdIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjHandle.decode(data);
  if (args.pad) return -errno.EINVAL;
  if (args.flags !== 0 && args.flags !== DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE)
    return -errno.EINVAL;
  let fd: number;
  if (args.flags & DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE) {
    fd = await exportSyncFile(file, args.handle);
  } else {
    const syncobj = drmSyncobjFind(file, args.handle);
    if (!syncobj) return -errno.EINVAL;
    fd = drmSyncobjGetFd(syncobj);
    drmSyncobjPut(syncobj);
  }
  if (fd < 0) return fd;
  drmSyncobjHandle.encode({ ...args, fd }, data);
  return 0;
}

/** DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE. */
export function drmSyncobjFdToHandleIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjHandle.decode(data);
  if (args.pad) return -errno.EINVAL;
  if (args.flags !== 0 && args.flags !== DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE)
    return -errno.EINVAL;
  if (args.flags & DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE) {
    // drm_syncobj_import_sync_file_fence()
    const fence = syncFileGetFence(args.fd);
    if (!fence) return -errno.EINVAL;
    const syncobj = drmSyncobjFind(file, args.handle);
    if (!syncobj) {
      dmaFencePut(fence);
      return -errno.ENOENT;
    }
    drmSyncobjReplaceFence(syncobj, fence);
    dmaFencePut(fence);
    drmSyncobjPut(syncobj);
    return 0;
  }
  // drm_syncobj_fd_to_handle()
  const f = fdget(args.fd);
  if (!f || f.fOp !== drmSyncobjFileFops) return -errno.EINVAL;
  const syncobj = drmSyncobjGet(f.privateData as DrmSyncobj);
  const handle = file.syncobjIdr.alloc(syncobj, 1);
  if (handle < 0) {
    drmSyncobjPut(syncobj);
    return handle;
  }
  drmSyncobjHandle.encode({ ...args, handle }, data);
  return 0;
}

/** DRM_IOCTL_SYNCOBJ_TRANSFER. */
export async function drmSyncobjTransferIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  if (noTimeline(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjTransfer.decode(data);
  if (args.pad) return -errno.EINVAL;
  const dst = drmSyncobjFind(file, args.dst_handle);
  if (!dst) return -errno.ENOENT;
  try {
    const { ret, fence } = await drmSyncobjFindFence(
      file,
      args.src_handle,
      Number(args.src_point),
      args.flags,
    );
    if (ret) return ret;
    if (args.dst_point) {
      // drm_syncobj_transfer_to_timeline()
      const flat = dmaFenceUnwrapMerge(fence);
      dmaFencePut(fence);
      if (!flat) return -errno.ENOMEM;
      drmSyncobjAddPoint(dst, dmaFenceChainAlloc(), flat, Number(args.dst_point));
      dmaFencePut(flat);
    } else {
      // drm_syncobj_transfer_to_binary()
      drmSyncobjReplaceFence(dst, fence);
      dmaFencePut(fence);
    }
    return 0;
  } finally {
    drmSyncobjPut(dst);
  }
}

/** drm_timeout_abs_to_jiffies(): jiffies until the absolute CLOCK_MONOTONIC `timeoutNsec` (0: poll). */
export function drmTimeoutAbsToJiffies(k: Kernel, timeoutNsec: bigint): number {
  if (timeoutNsec === 0n) return 0;
  const now = BigInt(k.ktimeGet());
  if (!(timeoutNsec > now)) return 0;
  const j = Number((timeoutNsec - now) / BigInt(k.jiffies.tickNs));
  if (j >= MAX_SCHEDULE_TIMEOUT - 1) return MAX_SCHEDULE_TIMEOUT - 1;
  return j + 1;
}

/** Reads `count` u64 points from user memory (`addr` 0: all points 0); null on a fault. */
function readPoints(addr: number, count: number): number[] | null {
  if (!addr) return new Array<number>(count).fill(0);
  const raw = memdupUser(addr, count * 8);
  if (!raw) return null;
  const dv = new DataView(raw.buffer);
  return Array.from({ length: count }, (_, i) => Number(dv.getBigUint64(i * 8, true)));
}

/**
 * drm_syncobj_array_wait_timeout(): waits on `syncobjs` at `points` (user address, 0 for
 * all zero). Returns the jiffies left (>= 0) or -errno; `idx.value` gets the first done
 * index.
 */
async function arrayWaitTimeout(
  syncobjs: DrmSyncobj[],
  userPoints: number,
  flags: number,
  timeout: number,
  idx: { value: number },
  deadline: number | null,
): Promise<number> {
  const k = currentKernel();
  const count = syncobjs.length;
  const submitOrAvail =
    flags & (DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT | DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE);
  const pointsBlock = kmallocArray(count, 8, GFP_KERNEL);
  if (!pointsBlock) return -errno.ENOMEM;
  const points = readPoints(userPoints, count);
  if (!points) {
    kfree(pointsBlock);
    return -errno.EFAULT;
  }
  const entriesBlock = kmallocArray(count, SYNCOBJ_WAIT_ENTRY_SIZE, GFP_KERNEL);
  if (!entriesBlock) {
    kfree(pointsBlock);
    return -errno.ENOMEM;
  }
  const task = k.engine.currentTask();
  const entries = syncobjs.map((_, i) => new SyncobjWaitEntry(task, points[i]));
  const wake = () => {
    k.engine.wakeUp(task);
  };
  try {
    // Find every fence up front, so a missing one is -EINVAL before any waiting.
    let signaled = 0;
    for (let i = 0; i < count; i++) {
      const fence = drmSyncobjFenceGet(syncobjs[i]);
      const r = fence ? findSeqno(fence, points[i]) : { ret: -errno.EINVAL, fence: null };
      if (!fence || r.ret) {
        dmaFencePut(fence);
        if (submitOrAvail) continue;
        return -errno.EINVAL;
      }
      entries[i].fence = r.fence ?? dmaFenceGetStub();
      if (flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE || entries[i].fence!.isSignaled()) {
        if (signaled === 0) idx.value = i;
        signaled++;
      }
    }
    if (signaled === count || (signaled > 0 && !(flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL))) return timeout;

    if (submitOrAvail) for (let i = 0; i < count; i++) fenceAddWait(syncobjs[i], entries[i]);
    if (deadline !== null) for (const e of entries) e.fence?.setDeadline(deadline);

    for (;;) {
      signaled = 0;
      for (let i = 0; i < count; i++) {
        const e = entries[i];
        const fence = e.fence;
        if (!fence) continue;
        let done = (flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE) !== 0 || fence.isSignaled();
        if (!done && !e.cbAdded) {
          if (fence.addCallback(e.fenceCb, wake) === 0) e.cbAdded = true;
          else done = true;
        }
        if (done) {
          if (flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL) {
            signaled++;
          } else {
            idx.value = i;
            return timeout;
          }
        }
      }
      if (signaled === count) return timeout;
      if (timeout === 0) return -errno.ETIME;
      if (k.signalPending()) return -errno.ERESTARTSYS;
      timeout = await k.scheduleTimeout(timeout, `drm_syncobj wait on ${count} syncobj(s)`, {
        interruptible: true,
        objects: syncobjs.map((s) => s.reportObject()),
      });
    }
  } finally {
    for (let i = 0; i < count; i++) {
      removeWait(syncobjs[i], entries[i]);
      if (entries[i].cbAdded) entries[i].fence!.removeCallback(entries[i].fenceCb);
      dmaFencePut(entries[i].fence);
    }
    kfree(entriesBlock);
    kfree(pointsBlock);
  }
}

/** drm_syncobj_array_find(): the syncobjs of `count` user handles, with references, or -errno. */
function arrayFind(file: DrmFile, userHandles: number, count: number): DrmSyncobj[] | number {
  const handlesBlock = kmallocArray(count, 4, GFP_KERNEL);
  if (!handlesBlock) return -errno.ENOMEM;
  try {
    const raw = memdupUser(userHandles, count * 4);
    if (!raw) return -errno.EFAULT;
    const block = kmallocArray(count, 8, GFP_KERNEL);
    if (!block) return -errno.ENOMEM;
    kfree(block);
    const dv = new DataView(raw.buffer);
    const out: DrmSyncobj[] = [];
    for (let i = 0; i < count; i++) {
      const s = drmSyncobjFind(file, dv.getUint32(i * 4, true));
      if (!s) {
        for (const o of out) drmSyncobjPut(o);
        return -errno.ENOENT;
      }
      out.push(s);
    }
    return out;
  } finally {
    kfree(handlesBlock);
  }
}

function arrayFree(syncobjs: DrmSyncobj[]): void {
  for (const s of syncobjs) drmSyncobjPut(s);
}

const WAIT_FLAGS =
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL |
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT |
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE;
const TIMELINE_WAIT_FLAGS = WAIT_FLAGS | DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE;

/** DRM_IOCTL_SYNCOBJ_WAIT. */
export async function drmSyncobjWaitIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjWait.decode(data);
  if (args.flags & ~WAIT_FLAGS) return -errno.EINVAL;
  if (args.count_handles === 0) return 0;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  try {
    const deadline = args.flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE ? Number(args.deadline_nsec) : null;
    const idx = { value: 0xffffffff };
    const timeout = drmTimeoutAbsToJiffies(dev.kernel, args.timeout_nsec);
    const ret = await arrayWaitTimeout(syncobjs, 0, args.flags, timeout, idx, deadline);
    if (ret < 0) return ret;
    drmSyncobjWait.encode({ ...args, first_signaled: idx.value }, data);
    return 0;
  } finally {
    arrayFree(syncobjs);
  }
}

/** DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT. */
export async function drmSyncobjTimelineWaitIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  if (noTimeline(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjTimelineWait.decode(data);
  if (args.flags & ~TIMELINE_WAIT_FLAGS) return -errno.EINVAL;
  if (args.count_handles === 0) return 0;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  try {
    const deadline = args.flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE ? Number(args.deadline_nsec) : null;
    const idx = { value: 0xffffffff };
    const timeout = drmTimeoutAbsToJiffies(dev.kernel, args.timeout_nsec);
    const ret = await arrayWaitTimeout(syncobjs, Number(args.points), args.flags, timeout, idx, deadline);
    if (ret < 0) return ret;
    drmSyncobjTimelineWait.encode({ ...args, first_signaled: idx.value }, data);
    return 0;
  } finally {
    arrayFree(syncobjs);
  }
}

/** DRM_IOCTL_SYNCOBJ_EVENTFD (see the module comment: the model has no eventfd files). */
export function drmSyncobjEventfdIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noTimeline(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjEventfd.decode(data);
  if (args.flags & ~DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE) return -errno.EINVAL;
  if (args.pad) return -errno.EINVAL;
  const syncobj = drmSyncobjFind(file, args.handle);
  if (!syncobj) return -errno.ENOENT;
  // eventfd_ctx_fdget(): -EBADF for no file, -EINVAL for a file that is not an eventfd.
  const f = fdget(args.fd);
  drmSyncobjPut(syncobj);
  return f ? -errno.EINVAL : -errno.EBADF;
}

/** DRM_IOCTL_SYNCOBJ_RESET. */
export function drmSyncobjResetIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjArray.decode(data);
  if (args.pad !== 0) return -errno.EINVAL;
  if (args.count_handles === 0) return -errno.EINVAL;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  for (const s of syncobjs) drmSyncobjReplaceFence(s, null);
  arrayFree(syncobjs);
  return 0;
}

/** DRM_IOCTL_SYNCOBJ_SIGNAL. */
export function drmSyncobjSignalIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noSyncobj(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjArray.decode(data);
  if (args.pad !== 0) return -errno.EINVAL;
  if (args.count_handles === 0) return -errno.EINVAL;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  let ret = 0;
  for (const s of syncobjs) {
    ret = assignNullHandle(s);
    if (ret < 0) break;
  }
  arrayFree(syncobjs);
  return ret;
}

/** DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL. */
export function drmSyncobjTimelineSignalIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noTimeline(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjTimelineArray.decode(data);
  if (args.flags !== 0) return -errno.EINVAL;
  if (args.count_handles === 0) return -errno.EINVAL;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  const count = args.count_handles;
  try {
    const pointsBlock = kmallocArray(count, 8, GFP_KERNEL);
    if (!pointsBlock) return -errno.ENOMEM;
    const points = readPoints(Number(args.points), count);
    if (!points) {
      kfree(pointsBlock);
      return -errno.EFAULT;
    }
    const chainsBlock = kmallocArray(count, 8, GFP_KERNEL);
    if (!chainsBlock) {
      kfree(pointsBlock);
      return -errno.ENOMEM;
    }
    const chains = syncobjs.map(() => dmaFenceChainAlloc());
    for (let i = 0; i < count; i++) {
      const fence = dmaFenceGetStub();
      drmSyncobjAddPoint(syncobjs[i], chains[i], fence, points[i]);
      dmaFencePut(fence);
    }
    kfree(chainsBlock);
    kfree(pointsBlock);
    return 0;
  } finally {
    arrayFree(syncobjs);
  }
}

/** DRM_IOCTL_SYNCOBJ_QUERY. */
export function drmSyncobjQueryIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  if (noTimeline(dev)) return -errno.EOPNOTSUPP;
  const args = drmSyncobjTimelineArray.decode(data);
  if (args.flags & ~DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED) return -errno.EINVAL;
  if (args.count_handles === 0) return -errno.EINVAL;
  const syncobjs = arrayFind(file, Number(args.handles), args.count_handles);
  if (typeof syncobjs === 'number') return syncobjs;
  const points = Number(args.points);
  let ret = 0;
  for (let i = 0; i < syncobjs.length; i++) {
    const fence = drmSyncobjFenceGet(syncobjs[i]);
    let point = 0;
    if (toDmaFenceChain(fence)) {
      const head = fence!;
      let lastSignaled: DmaFence = head.get();
      if (args.flags & DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED) {
        point = head.seqno;
      } else {
        for (const iter of dmaFenceChainForEach(head)) {
          if (iter.context !== head.context) {
            // Most likely the timeline has out-of-order points.
            iter.put();
            break;
          }
          lastSignaled.put();
          lastSignaled = iter.get();
        }
        point = lastSignaled.isSignaled()
          ? lastSignaled.seqno
          : (toDmaFenceChain(lastSignaled)?.prevSeqno ?? 0);
      }
      lastSignaled.put();
    }
    dmaFencePut(fence);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(point)), true);
    if (copyToUser(points + i * 8, b)) {
      ret = -errno.EFAULT;
      break;
    }
  }
  arrayFree(syncobjs);
  return ret;
}

/** The syncobjs of a kernel not yet freed (for tests and leak checks). */
export function drmSyncobjLive(k: Kernel = currentKernel()): ReadonlySet<DrmSyncobj> {
  return liveSyncobjs(k);
}
