/**
 * Scatter-gather tables (include/linux/scatterlist.h, lib/scatterlist.c, Linux 6.12).
 *
 * An `SgTable` is a list of `Scatterlist` entries. Each entry describes one piece of a
 * buffer twice: for the CPU, a page link (the first `struct page`), an offset and a
 * length; for a device, the DMA address and DMA length that `dma_map_sgtable` filled
 * in. `origNents` counts the CPU entries, `nents` the DMA-mapped ones. An entry may
 * cover several physically contiguous pages (a 1 MiB chunk of the system heap is one
 * entry); the model keeps the covered pages in `pages`, since a `Page` is an object and
 * not a pointer one can step through.
 *
 * Entries without a struct page exist: an exporter handing out peer-to-peer memory (a
 * PCI BAR) to an importer that set `allow_peer2peer` fills in only the DMA address and
 * length, and marks the entry as a bus address (`sgDmaMarkBusAddress`). Importers must
 * only ever use `sgDmaAddress`/`sgDmaLen`.
 *
 * The dma-buf core enforces that with CONFIG_DMABUF_DEBUG: while a table is mapped for an
 * importer it XORs every page link with ~0xff (drivers/dma-buf/dma-buf.c
 * mangle_sg_table). The model keeps the XOR as the `pageLinkMangled` bit; `sgPage` (and
 * page iteration) on a mangled entry is the oops the poisoned pointer would cause in
 * Linux: a `violation` report with rule `dma_buf.sg_page_access`, and the run stops.
 */
import { errno } from '../errno.ts';
import { currentKernel } from '../kernel.ts';
import { PAGE_SIZE, type Page, pagesContiguous } from './page.ts';

/** The largest segment sg_alloc_table_from_pages builds (UINT_MAX rounded down to a page). */
export const SCATTERLIST_MAX_SEGMENT = 0xffffffff - (PAGE_SIZE - 1);

/** Rule id of an importer dereferencing the page link of a mangled (debug) dma-buf table. */
export const SG_PAGE_ACCESS_RULE = 'dma_buf.sg_page_access';

/** One entry of a scatter-gather table (struct scatterlist). */
export class Scatterlist {
  /** The page link: the first page of the entry, or null for memory without struct page. */
  pageLink: Page | null = null;
  /** CONFIG_DMABUF_DEBUG's XOR of the page link: set while the dma-buf core lends the table out. */
  pageLinkMangled = false;
  /** The pages the entry covers, in order (the model's `page + i`). */
  pages: readonly Page[] = [];
  /** Offset of the data in the first page. */
  offset = 0;
  /** Length of the data, bytes (CPU view). */
  length = 0;
  /** The device address once mapped (sg_dma_address). */
  dmaAddress = 0;
  /** The mapped length (sg_dma_len). */
  dmaLength = 0;
  /** SG_DMA_BUS_ADDRESS: the DMA address is a PCI bus address (peer-to-peer, no IOMMU mapping). */
  dmaBusAddress = false;
}

/** A scatter-gather table (struct sg_table). */
export class SgTable {
  /** The entries (sgl). */
  sgl: Scatterlist[] = [];
  /** Number of DMA-mapped entries (nents; 0 before mapping). */
  nents = 0;
  /** Number of CPU entries (orig_nents). */
  origNents = 0;
}

/**
 * sg_alloc_table(): gives `sgt` `nents` empty entries. 0, or -EINVAL for 0 entries,
 * -ENOMEM when the host cannot hold them.
 */
export function sgAllocTable(sgt: SgTable, nents: number): number {
  sgFreeTable(sgt);
  if (!Number.isInteger(nents) || nents <= 0) return -errno.EINVAL;
  try {
    sgt.sgl = Array.from({ length: nents }, () => new Scatterlist());
  } catch {
    return -errno.ENOMEM;
  }
  sgt.origNents = nents;
  sgt.nents = nents;
  return 0;
}

/** sg_free_table(): drops the entries. */
export function sgFreeTable(sgt: SgTable): void {
  sgt.sgl = [];
  sgt.nents = 0;
  sgt.origNents = 0;
}

/**
 * sg_set_page(): points `sg` at `length` bytes from `offset` in `page` (a page, or the
 * physically contiguous pages the entry spans, first one first).
 */
export function sgSetPage(
  sg: Scatterlist,
  page: Page | readonly Page[],
  length: number,
  offset: number,
): void {
  const pages = Array.isArray(page) ? (page as readonly Page[]) : [page as Page];
  sg.pageLink = pages[0] ?? null;
  sg.pageLinkMangled = false;
  sg.pages = pages;
  sg.offset = offset;
  sg.length = length;
}

function poisoned(sg: Scatterlist, what: string): never {
  const k = currentKernel();
  return k.bug(
    SG_PAGE_ACCESS_RULE,
    `BUG: unable to handle page fault: ${what} on a scatterlist entry of an sg_table lent out by ` +
      'dma_buf_map_attachment(): CONFIG_DMABUF_DEBUG poisons the page link (page_link ^= ~0xff); ' +
      'importers must use only sg_dma_address() and sg_dma_len()',
    [{ kind: 'scatterlist', name: `dma ${sg.dmaAddress.toString(16)} len ${sg.dmaLength}` }],
    'violation',
  );
}

/** sg_page(): the entry's page, or null when it has none. A mangled entry stops the run (see module comment). */
export function sgPage(sg: Scatterlist): Page | null {
  if (sg.pageLinkMangled) poisoned(sg, 'sg_page()');
  return sg.pageLink;
}

/** sg_phys(): physical address of the entry's data; needs a struct page. */
export function sgPhys(sg: Scatterlist): number {
  const p = sgPage(sg);
  if (p === null) throw new Error('sg_phys() of a scatterlist entry without struct page');
  return p.physAddr + sg.offset;
}

/** sg_dma_address(). */
export function sgDmaAddress(sg: Scatterlist): number {
  return sg.dmaAddress;
}

/** sg_dma_len(). */
export function sgDmaLen(sg: Scatterlist): number {
  return sg.dmaLength;
}

/** sg_dma_mark_bus_address(): the entry's DMA address is a PCI bus address. */
export function sgDmaMarkBusAddress(sg: Scatterlist): void {
  sg.dmaBusAddress = true;
}

/** sg_dma_unmark_bus_address(). */
export function sgDmaUnmarkBusAddress(sg: Scatterlist): void {
  sg.dmaBusAddress = false;
}

/** sg_dma_is_bus_address(). */
export function sgDmaIsBusAddress(sg: Scatterlist): boolean {
  return sg.dmaBusAddress;
}

/** for_each_sgtable_sg(): the CPU entries (orig_nents). */
export function* forEachSgtableSg(sgt: SgTable): Generator<Scatterlist, void, undefined> {
  for (let i = 0; i < sgt.origNents; i++) yield sgt.sgl[i];
}

/** for_each_sgtable_dma_sg(): the DMA-mapped entries (nents). */
export function* forEachSgtableDmaSg(sgt: SgTable): Generator<Scatterlist, void, undefined> {
  for (let i = 0; i < sgt.nents; i++) yield sgt.sgl[i];
}

/**
 * for_each_sgtable_page(): every page of the table's CPU entries, from page `pgoffset`
 * on (sg_page_iter_page). Needs struct pages; a mangled entry stops the run.
 */
export function* forEachSgtablePage(sgt: SgTable, pgoffset = 0): Generator<Page, void, undefined> {
  let skip = pgoffset;
  for (const sg of forEachSgtableSg(sgt)) {
    const first = Math.floor(sg.offset / PAGE_SIZE);
    const n = Math.ceil((sg.offset + sg.length) / PAGE_SIZE) - first;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    if (sg.pageLinkMangled) poisoned(sg, 'sg_page_iter_page()');
    for (let i = first + skip; i < first + n; i++) {
      const p = sg.pages[i];
      if (p === undefined) throw new Error('scatterlist entry covers more pages than it holds');
      yield p;
    }
    skip = 0;
  }
}

/**
 * for_each_sgtable_dma_page(): the DMA address of every page-sized piece of the mapped
 * entries, from page `pgoffset` on (sg_page_iter_dma_address). What importers use.
 */
export function* forEachSgtableDmaPage(sgt: SgTable, pgoffset = 0): Generator<number, void, undefined> {
  let skip = pgoffset;
  for (const sg of forEachSgtableDmaSg(sgt)) {
    const n = Math.ceil(sg.dmaLength / PAGE_SIZE);
    for (let i = 0; i < n; i++) {
      if (skip > 0) {
        skip--;
        continue;
      }
      yield sg.dmaAddress + i * PAGE_SIZE;
    }
  }
}

/**
 * sg_alloc_table_from_pages_segment(): a table for `size` bytes starting `offset` bytes
 * into `pages[0]`, merging physically contiguous pages into one entry of at most
 * `maxSegment` bytes. 0, or -EINVAL / -ENOMEM.
 */
export function sgAllocTableFromPagesSegment(
  sgt: SgTable,
  pages: readonly Page[],
  nPages: number,
  offset: number,
  size: number,
  maxSegment: number,
): number {
  maxSegment -= maxSegment % PAGE_SIZE;
  if (maxSegment < PAGE_SIZE) {
    currentKernel().warn('scatterlist.max_segment', 'WARNING: max_segment < PAGE_SIZE in sg_alloc_table');
    return -errno.EINVAL;
  }
  // Chunks of contiguous pages, each no longer than maxSegment.
  const chunks: [number, number][] = [];
  let start = 0;
  let segLen = 0;
  for (let i = 1; i < nPages; i++) {
    segLen += PAGE_SIZE;
    if (segLen >= maxSegment || !pagesContiguous(pages[i - 1], pages[i])) {
      chunks.push([start, i]);
      start = i;
      segLen = 0;
    }
  }
  if (nPages > 0) chunks.push([start, nPages]);
  const r = sgAllocTable(sgt, chunks.length);
  if (r) return r;
  let left = size;
  chunks.forEach(([from, to], i) => {
    const len = Math.min((to - from) * PAGE_SIZE - offset, left);
    sgSetPage(sgt.sgl[i], pages.slice(from, to), len, offset);
    left -= len;
    offset = 0;
  });
  return 0;
}

/** sg_alloc_table_from_pages(): as the segment variant with the largest segment size. */
export function sgAllocTableFromPages(
  sgt: SgTable,
  pages: readonly Page[],
  nPages: number,
  offset: number,
  size: number,
): number {
  return sgAllocTableFromPagesSegment(sgt, pages, nPages, offset, size, SCATTERLIST_MAX_SEGMENT);
}
