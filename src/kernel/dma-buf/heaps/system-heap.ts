/**
 * The system heap, /dev/dma_heap/system (drivers/dma-buf/heaps/system_heap.c, Linux 6.12).
 *
 * A buffer is zero-filled system memory allocated largest chunk first from page orders
 * 8, 4 and 0 (1 MiB, 64 KiB, 4 KiB), never using a larger order than the chunk before;
 * its sg_table has one entry per chunk. The exporter name is the heap's name, `system`.
 * It is a static exporter (no pin/unpin):
 * - attach duplicates the table for the attachment; map DMA-maps that copy for the
 *   attached device, unmap unmaps it;
 * - begin/end_cpu_access sync every attachment that is currently mapped;
 * - mmap inserts the pages from the vma's offset on, one remap_pfn_range per page, so a
 *   private (copy-on-write) mapping of more than one page fails with -EINVAL, as in
 *   Linux; a shared one of any size works;
 * - vmap is counted (one kernel mapping for all users); release frees the pages.
 *
 * Model notes: the chunks of one buffer are carved out of one host buffer, so a CPU
 * mapping of the whole buffer is one contiguous range of bytes. The model has no OOM
 * killer: an allocation larger than the memory left for the heap (the oracle VM's 3 GiB
 * of RAM, less what the heap's live buffers use) fails with -ENOMEM, where Linux
 * allocates until the OOM killer SIGKILLs the caller. The buffer lock is not modelled:
 * none of the sections it protects can sleep.
 */

import { type ErrPtr, errPtr, isErr } from '../../err.ts';
import { errno } from '../../errno.ts';
import { iosysMapClear, iosysMapSetVaddr } from '../../iosys-map.ts';
import { currentKernel, type Kernel } from '../../kernel.ts';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_MAYWRITE, VM_PFNMAP, VM_SHARED } from '../../mm/mmap.ts';
import { allocPages, PAGE_SIZE, type Page } from '../../mm/page.ts';
import {
  forEachSgtablePage,
  forEachSgtableSg,
  SgTable,
  sgAllocTable,
  sgFreeTable,
  sgSetPage,
} from '../../mm/scatterlist.ts';
import { current } from '../../sched.ts';
import { traceMemInUse } from '../../trace.ts';
import { type DmaBuf, type DmaBufAttachment, type DmaBufOps, dmaBufExport } from '../dma-buf.ts';
import { type DmaHeap, dmaHeapAdd, dmaHeapGetName } from '../dma-heap.ts';
import {
  HeapAttachment,
  heapAttachAdd,
  heapBeginCpuAccess,
  heapDetach,
  heapEndCpuAccess,
  heapMapDmaBuf,
  heapUnmapDmaBuf,
} from './heap-attachment.ts';

/** The page orders chunks are allocated from, largest first. */
export const SYSTEM_HEAP_ORDERS = [8, 4, 0] as const;

/** Memory the system heap may hand out before allocations fail (the oracle VM's RAM). */
export const SYSTEM_HEAP_MEMORY = 3 * 1024 * 1024 * 1024;

/** A system heap buffer (struct system_heap_buffer). */
export class SystemHeapBuffer {
  /** Attachments of the buffer (newest first). */
  readonly attachments: HeapAttachment[] = [];
  /** The buffer's own table: one entry per chunk. */
  readonly sgTable = new SgTable();
  /** Number of kernel vmaps. */
  vmapCnt = 0;
  /** The kernel mapping while vmapped. */
  vaddr: readonly Page[] | null = null;

  /** Created by the heap's allocate. */
  constructor(
    /** The heap. */
    readonly heap: DmaHeap,
    /** Length in bytes. */
    readonly len: number,
  ) {}
}

const USED = Symbol('system_heap_used');

function memoryUsed(k: Kernel, delta = 0): number {
  const v = ((k.singletons.get(USED) as number | undefined) ?? 0) + delta;
  k.singletons.set(USED, v);
  // mem_in_use (a model tracepoint): the system heap's bytes, for counters in traces.
  if (delta !== 0) traceMemInUse(k.engine, k.name, 'system-heap', v);
  return v;
}

/** dup_sg_table(): a new table with the same page entries. */
function dupSgTable(src: SgTable, dst: SgTable): number {
  const r = sgAllocTable(dst, src.origNents);
  if (r) return r;
  let i = 0;
  for (const sg of forEachSgtableSg(src)) sgSetPage(dst.sgl[i++], sg.pages, sg.length, sg.offset);
  return 0;
}

function bufferOf(dmabuf: DmaBuf): SystemHeapBuffer {
  return dmabuf.priv as SystemHeapBuffer;
}

const systemHeapBufOps: DmaBufOps = {
  attach(dmabuf: DmaBuf, attachment: DmaBufAttachment): number {
    const buffer = bufferOf(dmabuf);
    const a = new HeapAttachment(attachment.dev);
    if (dupSgTable(buffer.sgTable, a.table)) return -errno.ENOMEM;
    heapAttachAdd(buffer, attachment, a);
    return 0;
  },

  detach: (dmabuf, attachment) => heapDetach(bufferOf(dmabuf), attachment),
  mapDmaBuf: (attachment, dir) => heapMapDmaBuf(attachment, dir),
  unmapDmaBuf: heapUnmapDmaBuf,
  beginCpuAccess: (dmabuf, dir) => heapBeginCpuAccess(bufferOf(dmabuf), dir),
  endCpuAccess: (dmabuf, dir) => heapEndCpuAccess(bufferOf(dmabuf), dir),

  mmap(dmabuf, vma): number {
    const buffer = bufferOf(dmabuf);
    // remap_pfn_range() of one page at a time: a COW mapping must be mapped whole at once.
    const cow = (vma.vmFlags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
    let addr = vma.vmStart;
    for (const page of forEachSgtablePage(buffer.sgTable, vma.vmPgoff)) {
      if (cow && (addr !== vma.vmStart || addr + PAGE_SIZE !== vma.vmEnd)) return -errno.EINVAL;
      vma.vmFlags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
      const r = vma.insertPage(addr, page);
      if (r) return r;
      addr += PAGE_SIZE;
      if (addr >= vma.vmEnd) return 0;
    }
    return 0;
  },

  vmap(dmabuf, map): number {
    const buffer = bufferOf(dmabuf);
    if (!buffer.vmapCnt) buffer.vaddr = [...forEachSgtablePage(buffer.sgTable, 0)];
    buffer.vmapCnt++;
    iosysMapSetVaddr(map, buffer.vaddr!);
    return 0;
  },

  vunmap(dmabuf, map): void {
    const buffer = bufferOf(dmabuf);
    if (!--buffer.vmapCnt) buffer.vaddr = null;
    iosysMapClear(map);
  },

  release(dmabuf): void {
    const buffer = bufferOf(dmabuf);
    sgFreeTable(buffer.sgTable);
    memoryUsed(dmabuf.kernel, -buffer.len);
  },
};

/** The order of the next chunk (alloc_largest_available; allocation failures come earlier in the model). */
function largestOrder(sizeRemaining: number, maxOrder: number): number {
  for (const order of SYSTEM_HEAP_ORDERS) {
    if (sizeRemaining < PAGE_SIZE << order) continue;
    if (maxOrder < order) continue;
    return order;
  }
  // Unreachable: the length is page aligned, so order 0 always fits.
  return 0;
}

/** system_heap_allocate(). */
function systemHeapAllocate(heap: DmaHeap, len: number, fdFlags: number): DmaBuf | ErrPtr {
  const k = currentKernel();
  if (len > SYSTEM_HEAP_MEMORY - memoryUsed(k)) return errPtr(-errno.ENOMEM);
  const buffer = new SystemHeapBuffer(heap, len);
  const npages = len / PAGE_SIZE;
  const pages = allocPages(npages);
  if (!pages) return errPtr(-errno.ENOMEM);
  const chunks: [number, number][] = [];
  let sizeRemaining = len;
  let maxOrder: number = SYSTEM_HEAP_ORDERS[0];
  let at = 0;
  while (sizeRemaining > 0) {
    // Do not go on allocating for a task that is being killed.
    if (current()?.exiting) return errPtr(-errno.EINTR);
    const order = largestOrder(sizeRemaining, maxOrder);
    chunks.push([at, 1 << order]);
    at += 1 << order;
    sizeRemaining -= PAGE_SIZE << order;
    maxOrder = order;
  }
  if (sgAllocTable(buffer.sgTable, chunks.length)) return errPtr(-errno.ENOMEM);
  chunks.forEach(([from, n], i) => {
    sgSetPage(buffer.sgTable.sgl[i], pages.slice(from, from + n), n * PAGE_SIZE, 0);
  });
  const dmabuf = dmaBufExport({
    expName: dmaHeapGetName(heap),
    ops: systemHeapBufOps,
    size: buffer.len,
    flags: fdFlags,
    priv: buffer,
  });
  if (isErr(dmabuf)) {
    sgFreeTable(buffer.sgTable);
    return dmabuf;
  }
  memoryUsed(k, len);
  return dmabuf;
}

/** system_heap_create(): registers the `system` heap (an initcall). */
export function systemHeapCreate(): void {
  const heap = dmaHeapAdd({
    name: 'system',
    ops: { allocate: (h, len, fdFlags) => systemHeapAllocate(h, len, fdFlags) },
    // The inode number the oracle kernel showed for /dev/dma_heap/system.
    ino: 532,
  });
  if (isErr(heap)) throw new Error(`system heap: dma_heap_add failed (${heap})`);
}
