/**
 * User memory registered with an RDMA device (struct ib_umem): the pinned pages behind
 * an `ibv_reg_mr` of process memory, mapped for the HCA's DMA, and the HCA's byte access
 * through the DMA addresses of any umem (ordinary or dma-buf).
 *
 * Follows drivers/infiniband/core/umem.c (ib_umem_get: pin_user_pages of the page-aligned
 * range, FOLL_WRITE when the access needs writes, sg_alloc_table_from_pages with the
 * device's max segment, ib_dma_map_sgtable_attrs; ib_umem_release: unmap, unpin) and
 * include/rdma/ib_umem.h (`address`, `length`, `writable`, `is_dmabuf`, ib_umem_offset)
 * of Linux 6.12.
 *
 * `umemDmaCopy` is the HCA's data path: it reads or writes bytes at an offset of the
 * umem's DMA segments. Each piece goes through `dmaDeviceAccess` (an address never
 * mapped for the HCA is a violation and fails), then is decoded the way the host bridge
 * decodes a bus address: a BAR window (`iomemLookup`, peer device memory) or system RAM.
 * The RAM decoder is the model's memory controller: it is built from the pages the
 * exporter or the pin put behind the mapping, never from `sg_page` of a lent table.
 */
import type { Device } from '../../kernel/device.ts';
import { errno } from '../../kernel/errno.ts';
import { DMA_BIDIRECTIONAL, dmaMapSgtable, dmaUnmapSgtable } from '../../kernel/mm/dma-mapping.ts';
import { iomemLookup } from '../../kernel/mm/iomem.ts';
import { dmaDeviceAccess, dmaGetMaxSegSize } from '../../kernel/mm/iommu.ts';
import type { MmStruct } from '../../kernel/mm/mmap.ts';
import { PAGE_SIZE, type Page } from '../../kernel/mm/page.ts';
import {
  forEachSgtableDmaSg,
  SgTable,
  sgAllocTableFromPagesSegment,
  sgFreeTable,
} from '../../kernel/mm/scatterlist.ts';
import { IB_ACCESS_LOCAL_WRITE, IB_ACCESS_REMOTE_ATOMIC, IB_ACCESS_REMOTE_WRITE } from './ib-verbs.ts';

/** One DMA segment the HCA's translation table (MTT) holds. */
export interface UmemDmaSegment {
  /** Device (DMA) address. */
  dma: number;
  /** Length in bytes. */
  len: number;
}

/** What both kinds of umem offer the HCA. */
export interface IbUmemBase {
  /** The device the memory is mapped for. */
  readonly dev: Device;
  /** Start: a user virtual address, or the offset inside the dma-buf. */
  readonly address: number;
  /** Length in bytes. */
  readonly length: number;
  /** The HCA may write it. */
  readonly writable: boolean;
  /** A dma-buf umem. */
  readonly isDmabuf: boolean;
  /** Page frame number -> page for system RAM behind the mapping (the memory controller's view). */
  readonly ram: Map<number, Page>;
  /** The mapped DMA segments, starting at ALIGN_DOWN(address), or null while unmapped. */
  segments: UmemDmaSegment[] | null;
}

/** ib_umem_offset(): the offset of `address` in its first page. */
export function ibUmemOffset(umem: IbUmemBase): number {
  return umem.address % PAGE_SIZE;
}

/** The DMA segments of a mapped table (sg_dma_address/sg_dma_len over nents only). */
export function sgtDmaSegments(sgt: SgTable): UmemDmaSegment[] {
  return [...forEachSgtableDmaSg(sgt)].map((sg) => ({ dma: sg.dmaAddress, len: sg.dmaLength }));
}

/**
 * Teaches a RAM decoder the pages of one mapped entry. An entry's physical range is
 * `[first.physAddr, + pages * PAGE_SIZE)` as the DMA layer mapped it, so page `i` of
 * the entry answers for frame `first.pfn + i` (the model's pages are contiguous by
 * buffer, which need not mean consecutive frame numbers).
 */
export function ramAddEntry(ram: Map<number, Page>, pages: readonly Page[]): void {
  if (pages.length === 0 || pages[0].noStructPage) return;
  const base = pages[0].pfn;
  for (let i = 0; i < pages.length; i++) ram.set(base + i, pages[i]);
}

/** An ordinary (process memory) umem. */
export class IbUmem implements IbUmemBase {
  /** Not a dma-buf. */
  readonly isDmabuf = false;
  /** The pinned pages, first page of the range first. */
  readonly pages: Page[];
  /** The mapped table. */
  readonly sgt = new SgTable();
  /** RAM decoder. */
  readonly ram = new Map<number, Page>();
  /** DMA segments. */
  segments: UmemDmaSegment[] | null = null;
  /** Set once released. */
  released = false;

  /** Use `ibUmemGet`. */
  constructor(
    /** The HCA's DMA device. */
    readonly dev: Device,
    /** User virtual address. */
    readonly address: number,
    /** Length. */
    readonly length: number,
    /** HCA writes allowed. */
    readonly writable: boolean,
    pages: Page[],
  ) {
    this.pages = pages;
  }
}

/** ib_access_writable(): whether an access mask lets the HCA write the memory. */
export function ibAccessWritable(access: number): boolean {
  return (access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC)) !== 0;
}

/**
 * ib_umem_get(): pins the pages of `[addr, addr + size)` of `mm` (-EFAULT when a page is
 * not mapped or lacks the needed permission, -EINVAL for an empty or wrapping range) and
 * maps them for `dev`. Returns the umem or a negative errno.
 */
export function ibUmemGet(
  dev: Device,
  mm: MmStruct,
  addr: number,
  size: number,
  access: number,
): IbUmem | number {
  if (!(size > 0) || !(addr >= 0) || addr + size > Number.MAX_SAFE_INTEGER) return -errno.EINVAL;
  const writable = ibAccessWritable(access);
  const first = addr - (addr % PAGE_SIZE);
  const npages = Math.ceil((addr + size - first) / PAGE_SIZE);
  const pages: Page[] = [];
  for (let i = 0; i < npages; i++) {
    const p = mm.resolve(first + i * PAGE_SIZE, writable ? 'write' : 'read');
    if (typeof p === 'number') {
      for (const q of pages) q.put();
      return -errno.EFAULT;
    }
    pages.push(p.get());
  }
  const umem = new IbUmem(dev, addr, size, writable, pages);
  let r = sgAllocTableFromPagesSegment(umem.sgt, pages, npages, 0, npages * PAGE_SIZE, dmaGetMaxSegSize(dev));
  if (r === 0) r = dmaMapSgtable(dev, umem.sgt, DMA_BIDIRECTIONAL);
  if (r < 0) {
    sgFreeTable(umem.sgt);
    for (const q of pages) q.put();
    return r;
  }
  for (const sg of umem.sgt.sgl) ramAddEntry(umem.ram, sg.pages);
  umem.segments = sgtDmaSegments(umem.sgt);
  return umem;
}

/** ib_umem_release() for an ordinary umem: unmap, unpin. */
export function ibUmemRelease(umem: IbUmem): void {
  if (umem.released) return;
  umem.released = true;
  dmaUnmapSgtable(umem.dev, umem.sgt, DMA_BIDIRECTIONAL);
  sgFreeTable(umem.sgt);
  umem.segments = null;
  for (const p of umem.pages) p.put();
}

/**
 * The HCA reads (`write` false: memory -> `buf`) or writes (`write` true: `buf` ->
 * memory) `len` bytes at byte `off` of the umem's DMA stream (offset 0 = `address`).
 * Returns 0, or -EFAULT when the umem is unmapped, the range is outside it, or an
 * address does not decode (reported by `dmaDeviceAccess`).
 */
export function umemDmaCopy(
  umem: IbUmemBase,
  off: number,
  buf: Uint8Array,
  bufOff: number,
  len: number,
  write: boolean,
): number {
  const segs = umem.segments;
  if (segs === null) return -errno.EFAULT;
  if (off < 0 || off + len > umem.length) return -errno.EFAULT;
  let skip = off + ibUmemOffset(umem);
  let done = 0;
  for (const s of segs) {
    if (done >= len) break;
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    const n = Math.min(s.len - skip, len - done);
    const phys = dmaDeviceAccess(umem.dev, s.dma + skip, n, write ? 'RDMA write' : 'RDMA read');
    if (phys === null) return -errno.EFAULT;
    const r = physCopy(umem, phys, buf, bufOff + done, n, write);
    if (r < 0) return r;
    done += n;
    skip = 0;
  }
  return done === len ? 0 : -errno.EFAULT;
}

function physCopy(
  umem: IbUmemBase,
  phys: number,
  buf: Uint8Array,
  at: number,
  len: number,
  write: boolean,
): number {
  const region = iomemLookup(phys, len);
  if (region) {
    if (write) region.memory.write(region.toDevice(phys), buf.subarray(at, at + len));
    else region.memory.read(region.toDevice(phys), buf, at, len);
    return 0;
  }
  let done = 0;
  while (done < len) {
    const a = phys + done;
    const page = umem.ram.get(Math.floor(a / PAGE_SIZE));
    if (!page) return -errno.EFAULT;
    const po = a % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - po, len - done);
    if (write) page.data.set(buf.subarray(at + done, at + done + n), po);
    else buf.set(page.data.subarray(po, po + n), at + done);
    done += n;
  }
  return 0;
}
