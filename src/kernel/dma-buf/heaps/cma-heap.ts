/**
 * The CMA heap: dma-bufs of physically contiguous memory from the kernel's default CMA
 * area (drivers/dma-buf/heaps/cma_heap.c, Linux 6.12). The heap is named after the area,
 * `reserved`, so its device is /dev/dma_heap/reserved, and so is its exporter name.
 *
 * A buffer is one cma_alloc of the page-aligned length, aligned to its size order capped
 * at CONFIG_CMA_ALIGNMENT, zero-filled by the heap; when the area has no such run the
 * allocation fails with -ENOMEM (the oracle's 64 MiB area takes one 64 MiB buffer, not
 * 128 MiB). Static exporter:
 * - attach builds an sg_table from the pages (contiguous pages merge into one entry);
 *   map DMA-maps it for the attached device (any failure: -ENOMEM);
 * - begin/end_cpu_access sync the mapped attachments;
 * - mmap needs a shared mapping (-EINVAL otherwise) and inserts pages on fault (SIGBUS
 *   beyond the buffer);
 * - vmap is counted; release WARNs if a vmap is left, then gives the pages back.
 */
import type { Device } from '../../device.ts';
import { type ErrPtr, errPtr, isErr } from '../../err.ts';
import { errno } from '../../errno.ts';
import { iosysMapClear, iosysMapSetVaddr } from '../../iosys-map.ts';
import {
  type Cma,
  type CmaAllocation,
  CONFIG_CMA_ALIGNMENT,
  cmaAlloc,
  cmaGetName,
  cmaRelease,
  dmaContiguousDefaultArea,
} from '../../mm/cma.ts';
import {
  dmaMapSgtable,
  dmaSyncSgtableForCpu,
  dmaSyncSgtableForDevice,
  dmaUnmapSgtable,
} from '../../mm/dma-mapping.ts';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_MAYSHARE, VM_PFNMAP, VM_SHARED } from '../../mm/mmap.ts';
import { PAGE_SIZE } from '../../mm/page.ts';
import { SgTable, sgAllocTableFromPages, sgFreeTable } from '../../mm/scatterlist.ts';
import { type DmaBuf, type DmaBufOps, dmaBufExport } from '../dma-buf.ts';
import { type DmaHeap, dmaHeapAdd, dmaHeapGetDrvdata, dmaHeapGetName } from '../dma-heap.ts';

/** A CMA heap (struct cma_heap). */
export class CmaHeap {
  /** The registered heap. */
  heap: DmaHeap | null = null;

  /** Created by `addDefaultCmaHeap`. */
  constructor(
    /** The area it allocates from. */
    readonly cma: Cma,
  ) {}
}

/** A CMA heap buffer (struct cma_heap_buffer). */
export class CmaHeapBuffer {
  /** Attachments (newest first). */
  readonly attachments: CmaHeapAttachment[] = [];
  /** Number of kernel vmaps. */
  vmapCnt = 0;
  /** The kernel mapping while vmapped. */
  vaddr: CmaAllocation['pages'] | null = null;

  /** Created by the heap's allocate. */
  constructor(
    /** The heap. */
    readonly heap: CmaHeap,
    /** Length in bytes. */
    readonly len: number,
    /** The contiguous pages. */
    readonly alloc: CmaAllocation,
  ) {}

  /** Number of pages. */
  get pagecount(): number {
    return this.alloc.pages.length;
  }
}

/** Per-attachment state (struct dma_heap_attachment). */
export class CmaHeapAttachment {
  /** The attachment's table. */
  readonly table = new SgTable();
  /** The table is DMA-mapped now. */
  mapped = false;

  /** Created by attach. */
  constructor(
    /** The attached device. */
    readonly dev: Device,
  ) {}
}

function bufferOf(dmabuf: DmaBuf): CmaHeapBuffer {
  return dmabuf.priv as CmaHeapBuffer;
}

const cmaHeapBufOps: DmaBufOps = {
  attach(dmabuf, attachment): number {
    const buffer = bufferOf(dmabuf);
    const a = new CmaHeapAttachment(attachment.dev);
    const pages = buffer.alloc.pages;
    const ret = sgAllocTableFromPages(a.table, pages, pages.length, 0, pages.length * PAGE_SIZE);
    if (ret) return ret;
    attachment.priv = a;
    buffer.attachments.unshift(a);
    return 0;
  },

  detach(dmabuf, attachment): void {
    const buffer = bufferOf(dmabuf);
    const a = attachment.priv as CmaHeapAttachment;
    const i = buffer.attachments.indexOf(a);
    if (i >= 0) buffer.attachments.splice(i, 1);
    sgFreeTable(a.table);
  },

  mapDmaBuf(attachment, dir): SgTable | ErrPtr {
    const a = attachment.priv as CmaHeapAttachment;
    if (dmaMapSgtable(attachment.dev, a.table, dir, 0)) return errPtr(-errno.ENOMEM);
    a.mapped = true;
    return a.table;
  },

  unmapDmaBuf(attachment, table, dir): void {
    const a = attachment.priv as CmaHeapAttachment;
    a.mapped = false;
    dmaUnmapSgtable(attachment.dev, table, dir, 0);
  },

  beginCpuAccess(dmabuf, dir): number {
    for (const a of bufferOf(dmabuf).attachments) if (a.mapped) dmaSyncSgtableForCpu(a.dev, a.table, dir);
    return 0;
  },

  endCpuAccess(dmabuf, dir): number {
    for (const a of bufferOf(dmabuf).attachments) if (a.mapped) dmaSyncSgtableForDevice(a.dev, a.table, dir);
    return 0;
  },

  mmap(dmabuf, vma): number {
    const buffer = bufferOf(dmabuf);
    if ((vma.vmFlags & (VM_SHARED | VM_MAYSHARE)) === 0) return -errno.EINVAL;
    vma.vmFlags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    vma.vmPrivateData = buffer;
    vma.vmOps = {
      fault: (vmf) => {
        // VM_FAULT_SIGBUS beyond the buffer.
        if (vmf.pgoff >= buffer.pagecount) return -errno.EFAULT;
        return buffer.alloc.pages[vmf.pgoff];
      },
    };
    return 0;
  },

  vmap(dmabuf, map): number {
    const buffer = bufferOf(dmabuf);
    if (!buffer.vmapCnt) buffer.vaddr = [...buffer.alloc.pages];
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
    if (buffer.vmapCnt > 0) {
      dmabuf.kernel.warn(
        'cma_heap.release_vmapped',
        'WARNING: cma_heap_dma_buf_release: buffer still mapped in the kernel',
        [dmabuf.reportObject()],
      );
      buffer.vaddr = null;
    }
    cmaRelease(buffer.heap.cma, buffer.alloc);
  },
};

/** get_order(): the smallest order whose pages hold `size` bytes. */
function getOrder(size: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < size) order++;
  return order;
}

/** cma_heap_allocate(). */
function cmaHeapAllocate(heap: DmaHeap, len: number, fdFlags: number): DmaBuf | ErrPtr {
  const cmaHeap = dmaHeapGetDrvdata(heap) as CmaHeap;
  const size = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const pagecount = size / PAGE_SIZE;
  const align = Math.min(getOrder(size), CONFIG_CMA_ALIGNMENT);
  if (pagecount > cmaHeap.cma.count) return errPtr(-errno.ENOMEM);
  const alloc = cmaAlloc(cmaHeap.cma, pagecount, align);
  if (!alloc) return errPtr(-errno.ENOMEM);
  // Clear the pages: cma_alloc leaves old data (x86_64 has no highmem: one memset).
  for (const page of alloc.pages) page.data.fill(0);
  const buffer = new CmaHeapBuffer(cmaHeap, size, alloc);
  const dmabuf = dmaBufExport({
    expName: dmaHeapGetName(heap),
    ops: cmaHeapBufOps,
    size: buffer.len,
    flags: fdFlags,
    priv: buffer,
  });
  if (isErr(dmabuf)) cmaRelease(cmaHeap.cma, alloc);
  return dmabuf;
}

/** add_default_cma_heap(): registers a heap for the default CMA area (an initcall). */
export function addDefaultCmaHeap(): void {
  const cma = dmaContiguousDefaultArea();
  const cmaHeap = new CmaHeap(cma);
  const heap = dmaHeapAdd({
    name: cmaGetName(cma),
    ops: { allocate: (h, len, fdFlags) => cmaHeapAllocate(h, len, fdFlags) },
    priv: cmaHeap,
  });
  if (isErr(heap)) throw new Error(`cma heap: dma_heap_add failed (${heap})`);
  cmaHeap.heap = heap;
}
