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
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_MAYSHARE, VM_PFNMAP, VM_SHARED } from '../../mm/mmap.ts';
import { PAGE_SIZE } from '../../mm/page.ts';
import { sgAllocTableFromPages } from '../../mm/scatterlist.ts';
import { traceMemInUse } from '../../trace.ts';
import { type DmaBuf, type DmaBufOps, dmaBufExport } from '../dma-buf.ts';
import { type DmaHeap, dmaHeapAdd, dmaHeapGetDrvdata, dmaHeapGetName } from '../dma-heap.ts';
import {
  HeapAttachment,
  heapAttachAdd,
  heapBeginCpuAccess,
  heapDetach,
  heapEndCpuAccess,
  heapMapDmaBuf,
  heapUnmapDmaBuf,
} from './heap-attachment.ts';

/** A CMA heap (struct cma_heap). */
export class CmaHeap {
  /** The registered heap. */
  heap: DmaHeap | null = null;
  /** Bytes of live buffers (what the `mem_in_use` tracepoint reports for pool `cma`). */
  inUse = 0;

  /** Created by `addDefaultCmaHeap`. */
  constructor(
    /** The area it allocates from. */
    readonly cma: Cma,
  ) {}
}

/** A CMA heap buffer (struct cma_heap_buffer). */
export class CmaHeapBuffer {
  /** Attachments (newest first). */
  readonly attachments: HeapAttachment[] = [];
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

function bufferOf(dmabuf: DmaBuf): CmaHeapBuffer {
  return dmabuf.priv as CmaHeapBuffer;
}

const cmaHeapBufOps: DmaBufOps = {
  attach(dmabuf, attachment): number {
    const buffer = bufferOf(dmabuf);
    const a = new HeapAttachment(attachment.dev);
    const pages = buffer.alloc.pages;
    const ret = sgAllocTableFromPages(a.table, pages, pages.length, 0, pages.length * PAGE_SIZE);
    if (ret) return ret;
    heapAttachAdd(buffer, attachment, a);
    return 0;
  },

  detach: (dmabuf, attachment) => heapDetach(bufferOf(dmabuf), attachment),
  // cma_heap_map_dma_buf() reports any mapping failure as -ENOMEM.
  mapDmaBuf: (attachment, dir) => heapMapDmaBuf(attachment, dir, () => -errno.ENOMEM),
  unmapDmaBuf: heapUnmapDmaBuf,
  beginCpuAccess: (dmabuf, dir) => heapBeginCpuAccess(bufferOf(dmabuf), dir),
  endCpuAccess: (dmabuf, dir) => heapEndCpuAccess(bufferOf(dmabuf), dir),

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
    cmaHeapInUse(dmabuf.kernel, buffer.heap, -buffer.len);
  },
};

/** Accounts `delta` bytes to the heap and emits `mem_in_use` for pool `cma`. */
function cmaHeapInUse(k: DmaBuf['kernel'], cmaHeap: CmaHeap, delta: number): void {
  cmaHeap.inUse += delta;
  traceMemInUse(k.engine, k.name, 'cma', cmaHeap.inUse);
}

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
  else cmaHeapInUse(dmabuf.kernel, cmaHeap, size);
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
