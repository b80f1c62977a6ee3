/**
 * struct page: one 4 KiB page frame holding real bytes (include/linux/mm_types.h,
 * include/linux/mm.h).
 *
 * A page is a 4096-byte view into an ArrayBuffer. Pages allocated together
 * (`allocPages`) are views into one buffer, in order, so a range of them can be seen
 * as one contiguous `Uint8Array` (that is how `sys.memory` gives a live view of a
 * mapping). Buffers are zero-filled and, being allocated with calloc by the runtime,
 * cost host memory only once touched.
 *
 * `refcount` counts references beyond the owner's (get_page/put_page, pins taken by
 * importers such as udmabuf); `mapcount` counts user page-table entries. Pages that
 * stand for device memory with no `struct page` in the kernel (a PCI BAR exposed
 * peer-to-peer) carry `noStructPage` so importers can be checked for touching them.
 */

/** log2 of the page size. */
export const PAGE_SHIFT = 12;
/** Page size in bytes. */
export const PAGE_SIZE = 4096;
/** Mask of the page-aligned part of an address (as a number; valid below 2^53). */
export const PAGE_MASK = -PAGE_SIZE;

/** PAGE_ALIGN(x): rounds up to a page boundary. */
export function pageAlign(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}

/** True if `x` is a multiple of the page size. */
export function pageAligned(x: number): boolean {
  return x % PAGE_SIZE === 0;
}

let nextPfn = 0x1000;

/** A page frame. */
export class Page {
  /** The page's 4096 bytes (a view into the buffer it was allocated from). */
  readonly data: Uint8Array;
  /** Page frame number: unique per page in a run, for messages and physical addresses. */
  readonly pfn: number;
  /** Extra references (get_page, pins); 0 when only the owner holds it. */
  refcount = 0;
  /** Number of user mappings (page-table entries) of this page. */
  mapcount = 0;
  /** Device memory without a kernel `struct page` (e.g. a BAR exposed by p2pdma). */
  noStructPage = false;

  /** Wraps 4096 bytes of `data`. */
  constructor(data: Uint8Array) {
    if (data.length !== PAGE_SIZE)
      throw new RangeError(`a page holds ${PAGE_SIZE} bytes, got ${data.length}`);
    this.data = data;
    this.pfn = nextPfn++;
  }

  /** get_page(): takes a reference. */
  get(): this {
    this.refcount++;
    return this;
  }

  /** put_page(): drops a reference taken with `get`. */
  put(): void {
    if (this.refcount > 0) this.refcount--;
  }

  /** page_to_phys(): the page's physical address. */
  get physAddr(): number {
    return this.pfn * PAGE_SIZE;
  }
}

/**
 * alloc_pages(): `count` zeroed pages backed by one buffer, in order. Returns null
 * when the host cannot provide the memory (the model's -ENOMEM).
 */
export function allocPages(count: number): Page[] | null {
  if (!Number.isInteger(count) || count < 0) return null;
  let buf: ArrayBuffer;
  try {
    buf = new ArrayBuffer(count * PAGE_SIZE);
  } catch {
    return null;
  }
  const pages = new Array<Page>(count);
  for (let i = 0; i < count; i++) pages[i] = new Page(new Uint8Array(buf, i * PAGE_SIZE, PAGE_SIZE));
  return pages;
}

/** True if page `b` directly follows page `a` in the same buffer. */
export function pagesContiguous(a: Page, b: Page): boolean {
  return a.data.buffer === b.data.buffer && a.data.byteOffset + PAGE_SIZE === b.data.byteOffset;
}
