/**
 * sync_file: a file that wraps one dma_fence so userspace can pass it around, merge
 * it, query it and poll it (drivers/dma-buf/sync_file.c, include/linux/sync_file.h,
 * include/uapi/linux/sync_file.h, Linux 6.12).
 *
 * The file is an anonymous-inode file named `sync_file`, opened read-only with no
 * flags; it has no fdinfo lines of its own and no read, write, seek or mmap.
 *
 * ioctls, with their checks in the kernel's order:
 * - SYNC_IOC_MERGE: reserve a close-on-exec fd (its error first); copy in (-EFAULT);
 *   flags or pad set (-EINVAL); fd2 not a sync_file (-ENOENT, also for closed or
 *   negative fds); the new fence is dma_fence_unwrap_merge of both; name[31] forced to
 *   NUL; copy out (-EFAULT, the new file is dropped); then the fd is installed.
 * - SYNC_IOC_FILE_INFO: copy in; flags or pad (-EINVAL); with num_fences 0 only the
 *   status of the whole fence, the count and the name are written back; otherwise
 *   num_fences below the count is -EINVAL, then one sync_fence_info per leaf fence
 *   (timeline and driver names from the ops whether signalled or not, status,
 *   flags 0, the signal time or 0) is written to the user array (-EFAULT), and the
 *   file's status is the first leaf status that is not 1 (or 1).
 * - SYNC_IOC_SET_DEADLINE: pad set (-EINVAL); passes the hint to the fence.
 * - anything else: -ENOTTY.
 *
 * poll: the first poll arms one callback on the fence that wakes the file's pollers;
 * the mask is POLLIN once the fence has signalled (an error also counts), nothing
 * else ever. Releasing the file removes that callback and drops the fence.
 */
import { SYNC_IOC_FILE_INFO, SYNC_IOC_MERGE, SYNC_IOC_SET_DEADLINE } from '../../uapi/ioctl.ts';
import {
  bytesToCString,
  stringBytes,
  syncFenceInfo,
  syncFileInfo,
  syncMergeData,
  syncSetDeadline,
} from '../../uapi/structs.ts';
import { anonInodeGetfile } from '../anon-inodes.ts';
import { errno } from '../errno.ts';
import { fdInstall, fget, getUnusedFdFlags, O_CLOEXEC_FLAG, putUnusedFd } from '../fdtable.ts';
import { type File, type FileOperations, fput } from '../file.ts';
import { EPOLLIN, type PollTable, pollWait } from '../poll.ts';
import { copyStructFromUser, copyToUser, memdupUser } from '../uaccess.ts';
import { WaitQueueHead } from '../wait.ts';
import { type DmaFence, DmaFenceCb, dmaFenceGet, dmaFencePut } from './dma-fence.ts';
import { dmaFenceUnwrapForEach, dmaFenceUnwrapMerge } from './dma-fence-unwrap.ts';

/** Length of sync_file names, including the NUL. */
export const SYNC_NAME_LEN = 32;

/** A sync_file (struct sync_file). */
export class SyncFile {
  /** The file wrapping this object. */
  readonly file: File;
  /** The wrapped fence (the sync_file holds a reference). */
  fence: DmaFence | null = null;
  /** The name given at merge time ('' if none: the name is then derived from the fence). */
  userName = '';
  /** Pollers wait here. */
  readonly wq = new WaitQueueHead('sync_file');
  /** The callback armed by the first poll. */
  readonly cb = new DmaFenceCb();
  /** POLL_ENABLED: the first poll has armed `cb`. */
  pollEnabled = false;

  /** sync_file_alloc(): the object and its anonymous file. */
  constructor() {
    this.file = anonInodeGetfile('sync_file', syncFileFops, this, 0);
  }
}

/** True if `file` is a sync_file. */
export function isSyncFile(file: File): boolean {
  return file.fOp === syncFileFops;
}

/**
 * sync_file_create(): a new sync_file holding its own reference to `fence`. The caller
 * installs `file` in an fd or drops it with fput. Returns null on allocation failure
 * (never in the model).
 */
export function syncFileCreate(fence: DmaFence): SyncFile | null {
  const sf = new SyncFile();
  sf.fence = dmaFenceGet(fence);
  return sf;
}

/** sync_file_fdget(): the sync_file at `fd` with a reference on its file (fput it), or null. */
export function syncFileFdget(fd: number): SyncFile | null {
  const file = fget(fd);
  if (!file) return null;
  if (!isSyncFile(file)) {
    fput(file);
    return null;
  }
  return file.privateData as SyncFile;
}

/** sync_file_get_fence(): a new reference to the fence of the sync_file at `fd`, or null. */
export function syncFileGetFence(fd: number): DmaFence | null {
  const sf = syncFileFdget(fd);
  if (!sf) return null;
  const fence = dmaFenceGet(sf.fence);
  fput(sf.file);
  return fence;
}

function truncate(s: string, len: number): string {
  return s.length >= len ? s.slice(0, len - 1) : s;
}

/**
 * sync_file_get_name(): the user's name, or `<driver>-<timeline><context>-<seqno>`
 * (context unsigned, seqno as a signed 64-bit value), cut to `len - 1` characters.
 */
export function syncFileGetName(sf: SyncFile, len = SYNC_NAME_LEN): string {
  if (sf.userName) return truncate(sf.userName, len);
  const f = sf.fence!;
  const seq = BigInt.asIntN(64, BigInt(f.seqno));
  return truncate(`${f.driverName}-${f.timelineName}${f.context}-${seq}`, len);
}

/** sync_file_merge(): a new sync_file whose fence merges those of `a` and `b`; null on failure. */
function syncFileMerge(name: string, a: SyncFile, b: SyncFile): SyncFile | null {
  const sf = new SyncFile();
  const fence = dmaFenceUnwrapMerge(a.fence, b.fence);
  if (!fence) {
    fput(sf.file);
    return null;
  }
  sf.fence = fence;
  sf.userName = truncate(name, SYNC_NAME_LEN);
  return sf;
}

function syncFileRelease(_inode: unknown, file: File): void {
  const sf = file.privateData as SyncFile;
  if (sf.pollEnabled && sf.fence) sf.fence.removeCallback(sf.cb);
  dmaFencePut(sf.fence);
  sf.fence = null;
}

function syncFilePoll(file: File, pt: PollTable | null): number {
  const sf = file.privateData as SyncFile;
  pollWait(file, sf.wq, pt);
  const fence = sf.fence!;
  if (sf.cb.queuedOn === null && !sf.pollEnabled) {
    sf.pollEnabled = true;
    if (fence.addCallback(sf.cb, () => sf.wq.wakeUp(null)) < 0) sf.wq.wakeUp(null);
  }
  return fence.isSignaled() ? EPOLLIN : 0;
}

/** Writes `name` and its NUL at the start of `buf` (strscpy / snprintf: later bytes stay as they were). */
function putName(buf: Uint8Array, name: string): void {
  const b = stringBytes(name).subarray(0, SYNC_NAME_LEN - 1);
  buf.set(b, 0);
  buf[b.length] = 0;
}

function ioctlMerge(sf: SyncFile, arg: number): number {
  const fd = getUnusedFdFlags(O_CLOEXEC_FLAG);
  if (fd < 0) return fd;
  const fail = (e: number) => {
    putUnusedFd(fd);
    return e;
  };
  const raw = memdupUser(arg, syncMergeData.size);
  if (!raw) return fail(-errno.EFAULT);
  const data = syncMergeData.decode(raw);
  if (data.flags || data.pad) return fail(-errno.EINVAL);
  const fence2 = syncFileFdget(data.fd2);
  if (!fence2) return fail(-errno.ENOENT);
  raw[SYNC_NAME_LEN - 1] = 0;
  const merged = syncFileMerge(bytesToCString(raw.subarray(0, SYNC_NAME_LEN)), sf, fence2);
  if (!merged) {
    fput(fence2.file);
    return fail(-errno.ENOMEM);
  }
  new DataView(raw.buffer).setInt32(syncMergeData.offsetOf('fence'), fd, true);
  if (copyToUser(arg, raw)) {
    fput(merged.file);
    fput(fence2.file);
    return fail(-errno.EFAULT);
  }
  fdInstall(fd, merged.file);
  fput(fence2.file);
  return 0;
}

function ioctlFenceInfo(sf: SyncFile, arg: number): number {
  const raw = memdupUser(arg, syncFileInfo.size);
  if (!raw) return -errno.EFAULT;
  const info = syncFileInfo.decode(raw);
  if (info.flags || info.pad) return -errno.EINVAL;
  const fence = sf.fence!;
  const leaves = [...dmaFenceUnwrapForEach(fence)];
  const num = leaves.length;
  let status: number;
  if (!info.num_fences) {
    status = fence.getStatus();
  } else {
    status = 1;
    if (info.num_fences < num) return -errno.EINVAL;
    const buf = new Uint8Array(num * syncFenceInfo.size);
    leaves.forEach((leaf, i) => {
      const st = leaf.getStatus();
      syncFenceInfo.encode(
        {
          obj_name: truncate(leaf.timelineName, 32),
          driver_name: truncate(leaf.driverName, 32),
          status: st,
          flags: 0,
          timestamp_ns: leaf.isSignaled() ? BigInt(leaf.getTimestamp()) : 0n,
        },
        buf,
        i * syncFenceInfo.size,
      );
      status = status <= 0 ? status : st;
    });
    if (copyToUser(Number(info.sync_fence_info), buf)) return -errno.EFAULT;
  }
  putName(raw, syncFileGetName(sf));
  const dv = new DataView(raw.buffer);
  dv.setInt32(syncFileInfo.offsetOf('status'), status, true);
  dv.setUint32(syncFileInfo.offsetOf('num_fences'), num, true);
  return copyToUser(arg, raw) ? -errno.EFAULT : 0;
}

function ioctlSetDeadline(sf: SyncFile, arg: number): number {
  const ts = copyStructFromUser(syncSetDeadline, arg);
  if (!ts) return -errno.EFAULT;
  if (ts.pad) return -errno.EINVAL;
  sf.fence!.setDeadline(Number(BigInt.asIntN(64, ts.deadline_ns)));
  return 0;
}

function syncFileIoctl(file: File, cmd: number, arg: number): number {
  const sf = file.privateData as SyncFile;
  switch (cmd) {
    case SYNC_IOC_MERGE:
      return ioctlMerge(sf, arg);
    case SYNC_IOC_FILE_INFO:
      return ioctlFenceInfo(sf, arg);
    case SYNC_IOC_SET_DEADLINE:
      return ioctlSetDeadline(sf, arg);
    default:
      return -errno.ENOTTY;
  }
}

/** sync_file_fops. */
export const syncFileFops: FileOperations = {
  name: 'sync_file',
  release: syncFileRelease,
  poll: syncFilePoll,
  ioctl: syncFileIoctl,
};
