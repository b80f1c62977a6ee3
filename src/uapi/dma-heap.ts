/**
 * The DMA-BUF heaps userspace ABI (include/uapi/linux/dma-heap.h) and a typed wrapper.
 *
 * ABI: one ioctl on /dev/dma_heap/<name>, DMA_HEAP_IOCTL_ALLOC, whose struct the kernel
 * negotiates by size: a shorter struct (an older ABI without `heap_flags`) and a longer
 * one are both accepted.
 *
 * Wrapper: `DmaHeap.open(sys, 'system')` then `heap.alloc(len)` gives a `DmaBuf`
 * (close-on-exec, read-write by default); failures throw `ErrnoError`.
 */
import { O_CLOEXEC, O_RDWR } from '../kernel/fcntl.ts';
import { DmaBuf } from './dma-buf.ts';
import { checkErrno } from './errno-error.ts';
import { _IOWR } from './ioctl.ts';
import { defineStruct } from './structs.ts';
import type { Sys } from './sys.ts';

/** The directory of heap devices. */
export const DMA_HEAP_DEV_DIR = '/dev/dma_heap';
/** fd_flags the ALLOC ioctl accepts. */
export const DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | 0o3;
/** heap_flags the ALLOC ioctl accepts (none are defined). */
export const DMA_HEAP_VALID_HEAP_FLAGS = 0n;
/** The ioctl type byte of dma-heap ('H'). */
export const DMA_HEAP_IOC_MAGIC = 'H';

/** struct dma_heap_allocation_data: 24 bytes; `fd` is written back. */
export const dmaHeapAllocationData = defineStruct('dma_heap_allocation_data', [
  ['len', 'u64'],
  ['fd', 'u32'],
  ['fd_flags', 'u32'],
  ['heap_flags', 'u64'],
] as const);

/** DMA_HEAP_IOCTL_ALLOC: allocate a dma-buf from the heap. */
export const DMA_HEAP_IOCTL_ALLOC = _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, dmaHeapAllocationData.size);

/** An open heap device, with typed calls. */
export class DmaHeap {
  /** Use `DmaHeap.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The heap's name (`system`, `reserved`). */
    readonly name: string,
    /** The heap device's fd. */
    readonly fd: number,
  ) {}

  /** Opens /dev/dma_heap/<name> read-write and close-on-exec. */
  static async open(sys: Sys, name: string): Promise<DmaHeap> {
    const path = `${DMA_HEAP_DEV_DIR}/${name}`;
    const fd = checkErrno(await sys.open(path, O_RDWR | O_CLOEXEC), `open(${path})`);
    return new DmaHeap(sys, name, fd);
  }

  /**
   * DMA_HEAP_IOCTL_ALLOC of `len` bytes (rounded up to a page by the kernel). `fdFlags`
   * default O_RDWR|O_CLOEXEC, `heapFlags` 0.
   */
  async alloc(
    len: number | bigint,
    opts: { fdFlags?: number; heapFlags?: number | bigint } = {},
  ): Promise<DmaBuf> {
    const arg = this.sys.allocStruct(dmaHeapAllocationData, {
      len,
      fd_flags: opts.fdFlags ?? O_RDWR | O_CLOEXEC,
      heap_flags: opts.heapFlags ?? 0,
    });
    checkErrno(
      await this.sys.ioctl(this.fd, DMA_HEAP_IOCTL_ALLOC, arg),
      `ioctl(${this.name}, DMA_HEAP_IOCTL_ALLOC)`,
    );
    return DmaBuf.fromFd(this.sys, this.sys.readStruct(dmaHeapAllocationData, arg).fd);
  }

  /** close(2) of the heap fd (buffers allocated from it stay). */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), `close(${this.name} heap)`);
  }
}
