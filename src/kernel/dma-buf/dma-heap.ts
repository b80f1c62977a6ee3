/**
 * DMA-BUF heaps: userspace allocation of dma-bufs from named memory pools
 * (drivers/dma-buf/dma-heap.c, include/linux/dma-heap.h, include/uapi/linux/dma-heap.h,
 * Linux 6.12).
 *
 * A heap provider registers with `dmaHeapAdd({ name, ops, priv })` and gets the character
 * device /dev/dma_heap/<name> (mode 0600; up to 128 heaps, minors from 0 in registration
 * order). Its one ioctl, DMA_HEAP_IOCTL_ALLOC, is dispatched on the request's number
 * field alone (any number but 0: -EINVAL; the type byte is not checked), and the argument
 * is size-negotiated: bytes are copied in only when both the user's and the kernel's
 * request say "in" (and out only when both say "out"), the kernel buffer is the larger
 * of the two sizes, and what the user did not supply reads as zero. Then, in order:
 * `fd` must be 0, `fd_flags` within O_CLOEXEC|O_ACCMODE, `heap_flags` 0, the length
 * rounded up to a page (wrapping like PAGE_ALIGN) non-zero — each -EINVAL; the heap
 * allocates; an fd is reserved with `fd_flags`; the struct is copied back and only then
 * is the fd installed (a copy-out fault gives -EFAULT and drops the buffer: no fd leaks).
 *
 * The heap chardev itself is not seekable and has no read or write.
 */
import { DMA_HEAP_IOCTL_ALLOC, DMA_HEAP_VALID_FD_FLAGS, dmaHeapAllocationData } from '../../uapi/dma-heap.ts';
import { _IOC_DIRSHIFT, _IOC_NR, _IOC_READ, _IOC_SIZE, _IOC_WRITE } from '../../uapi/ioctl.ts';
import { type ErrPtr, errPtr, isErr, ptrErr } from '../err.ts';
import { errno } from '../errno.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from '../fdtable.ts';
import type { File, FileOperations, Inode } from '../file.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { PAGE_SIZE } from '../mm/page.ts';
import { copyFromUser, copyToUser } from '../uaccess.ts';
import { registerDevice } from '../vfs.ts';
import { type DmaBuf, dmaBufPut, type MaybePromise } from './dma-buf.ts';

/** Number of heap minors (NUM_HEAP_MINORS). */
export const NUM_HEAP_MINORS = 128;

/** The operations a heap provides (struct dma_heap_ops). */
export interface DmaHeapOps {
  /**
   * Mandatory (dma_heap_add refuses a heap without it). Called from the ALLOC ioctl in
   * the allocating task, with no lock held; may sleep. `len` is page aligned and
   * non-zero, `fdFlags` validated (O_CLOEXEC and an access mode) and `heapFlags` 0.
   * Returns a dma-buf exported with `fdFlags` as its file flags (the caller installs its
   * fd), or an error pointer (-ENOMEM; -EINTR when the task is being killed).
   */
  allocate(heap: DmaHeap, len: number, fdFlags: number, heapFlags: bigint): MaybePromise<DmaBuf | ErrPtr>;
}

/** What a provider passes to `dmaHeapAdd` (struct dma_heap_export_info). */
export interface DmaHeapExportInfo {
  /** The heap's name: its device is /dev/dma_heap/<name>; must be unique and non-empty. */
  name: string;
  /** The operations. */
  ops: DmaHeapOps;
  /** The provider's data (dma_heap_get_drvdata). */
  priv?: unknown;
  /** Model extension: the device's inode number (default: devtmpfs's next). */
  ino?: number;
}

/** A registered heap (struct dma_heap). */
export class DmaHeap {
  /** Use `dmaHeapAdd`. */
  constructor(
    /** The heap's name. */
    readonly name: string,
    /** The operations. */
    readonly ops: DmaHeapOps,
    /** The provider's data. */
    readonly priv: unknown,
    /** The device minor. */
    readonly minor: number,
  ) {}

  /** The device path. */
  get path(): string {
    return `/dev/dma_heap/${this.name}`;
  }
}

interface HeapState {
  /** Heaps, newest first (heap_list). */
  list: DmaHeap[];
  /** Heaps by minor (dma_heap_minors). */
  minors: (DmaHeap | undefined)[];
}

const STATE = Symbol('dma_heap');

function state(k: Kernel = currentKernel()): HeapState {
  let s = k.singletons.get(STATE) as HeapState | undefined;
  if (!s) {
    s = { list: [], minors: [] };
    k.singletons.set(STATE, s);
  }
  return s;
}

/** The registered heaps, newest first. */
export function dmaHeaps(k: Kernel = currentKernel()): readonly DmaHeap[] {
  return state(k).list;
}

/** dma_heap_get_drvdata(). */
export function dmaHeapGetDrvdata(heap: DmaHeap): unknown {
  return heap.priv;
}

/** dma_heap_get_name(). */
export function dmaHeapGetName(heap: DmaHeap): string {
  return heap.name;
}

function dmaHeapOpen(inode: Inode, file: File): number {
  const heap = inode.priv;
  if (!(heap instanceof DmaHeap) || state(file.kernel).minors[heap.minor] !== heap) return -errno.ENODEV;
  file.privateData = heap;
  return 0;
}

/** dma_heap_ioctl_allocate(): validates `kdata`, allocates, reserves the fd and stores it in `kdata`. */
async function dmaHeapIoctlAllocate(file: File, kdata: Uint8Array): Promise<DmaBuf | ErrPtr> {
  const heap = file.privateData as DmaHeap;
  const data = dmaHeapAllocationData.decode(kdata);
  if (data.fd) return errPtr(-errno.EINVAL);
  if (data.fd_flags & ~DMA_HEAP_VALID_FD_FLAGS) return errPtr(-errno.EINVAL);
  if (data.heap_flags) return errPtr(-errno.EINVAL);
  const len = BigInt.asUintN(64, data.len + BigInt(PAGE_SIZE - 1)) & ~BigInt(PAGE_SIZE - 1);
  if (!len) return errPtr(-errno.EINVAL);
  const dmabuf = await heap.ops.allocate(heap, Number(len), data.fd_flags, data.heap_flags);
  if (isErr(dmabuf)) return dmabuf;
  const fd = getUnusedFdFlags(data.fd_flags);
  if (fd < 0) {
    dmaBufPut(dmabuf);
    return errPtr(fd);
  }
  new DataView(kdata.buffer, kdata.byteOffset).setUint32(dmaHeapAllocationData.offsetOf('fd'), fd, true);
  return dmabuf;
}

const IOC_IN = _IOC_WRITE << _IOC_DIRSHIFT;
const IOC_OUT = _IOC_READ << _IOC_DIRSHIFT;
const HEAP_IOCTL_CMDS = [DMA_HEAP_IOCTL_ALLOC];

async function dmaHeapIoctl(file: File, ucmd: number, arg: number): Promise<number> {
  const nr = _IOC_NR(ucmd);
  if (nr >= HEAP_IOCTL_CMDS.length) return -errno.EINVAL;
  const kcmd = HEAP_IOCTL_CMDS[nr];
  const drvSize = _IOC_SIZE(kcmd);
  let outSize = _IOC_SIZE(ucmd);
  let inSize = outSize;
  if ((ucmd & kcmd & IOC_IN) === 0) inSize = 0;
  if ((ucmd & kcmd & IOC_OUT) === 0) outSize = 0;
  const kdata = new Uint8Array(Math.max(inSize, outSize, drvSize));
  if (copyFromUser(kdata.subarray(0, inSize), arg)) return -errno.EFAULT;
  const dmabuf = await dmaHeapIoctlAllocate(file, kdata);
  if (isErr(dmabuf)) return ptrErr(dmabuf);
  const fd = dmaHeapAllocationData.decode(kdata).fd;
  if (copyToUser(arg, kdata.subarray(0, outSize))) {
    putUnusedFd(fd);
    dmaBufPut(dmabuf);
    return -errno.EFAULT;
  }
  fdInstall(fd, dmabuf.file);
  return 0;
}

/** dma_heap_fops. */
export const dmaHeapFops: FileOperations = {
  name: 'dma_heap',
  open: dmaHeapOpen,
  ioctl: dmaHeapIoctl,
};

/**
 * dma_heap_add(): registers a heap and creates its device. Error pointers: -EINVAL for
 * an empty name, missing `allocate` or a name already taken; -EBUSY when all 128
 * minors are used.
 */
export function dmaHeapAdd(info: DmaHeapExportInfo): DmaHeap | ErrPtr {
  const k = currentKernel();
  if (!info.name) return errPtr(-errno.EINVAL);
  if (!info.ops?.allocate) return errPtr(-errno.EINVAL);
  const s = state(k);
  let minor = 0;
  while (minor < NUM_HEAP_MINORS && s.minors[minor]) minor++;
  if (minor >= NUM_HEAP_MINORS) return errPtr(-errno.EBUSY);
  if (s.list.some((h) => h.name === info.name)) return errPtr(-errno.EINVAL);
  const heap = new DmaHeap(info.name, info.ops, info.priv ?? null, minor);
  s.minors[minor] = heap;
  registerDevice(heap.path, dmaHeapFops, { priv: heap, mode: 0o600, ino: info.ino });
  s.list.unshift(heap);
  return heap;
}
