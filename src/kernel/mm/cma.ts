/**
 * The Contiguous Memory Allocator (mm/cma.c, kernel/dma/contiguous.c, Linux 6.12).
 *
 * A CMA area is a range of physically contiguous pages reserved at boot; `cmaAlloc`
 * hands out runs of them aligned to a power-of-two number of pages (first fit, lowest
 * address first), `cmaRelease` gives them back. The kernel's default area
 * (CONFIG_CMA_SIZE_MBYTES, `dev_get_cma_area(NULL)`) is named `reserved`; the oracle
 * kernel had 64 MiB.
 *
 * The area's bytes are one host buffer, allocated on first use. Pages handed out are
 * fresh `Page` views of that buffer, in order, so an allocation is one contiguous range
 * (its pages have consecutive frame numbers). cma_alloc does not clear memory; callers
 * that promise zeroed memory (the CMA heap) clear it themselves.
 */
import { currentKernel, type Kernel } from '../kernel.ts';
import { PAGE_SIZE, Page } from './page.ts';

/** CONFIG_CMA_SIZE_MBYTES of the oracle kernel. */
export const CMA_SIZE_MBYTES = 64;
/** CONFIG_CMA_ALIGNMENT: the largest alignment order cma_alloc is asked for by the heap. */
export const CONFIG_CMA_ALIGNMENT = 8;

/** A CMA area (struct cma). */
export class Cma {
  /** Page-granular allocation bitmap (order_per_bit 0). */
  private readonly bitmap: Uint8Array;
  private memory: ArrayBuffer | null = null;
  /** Pages in use. */
  used = 0;

  /** cma_declare_contiguous(): an area of `count` pages. */
  constructor(
    /** The area's name (`reserved` for the default area). */
    readonly name: string,
    /** Size in pages. */
    readonly count: number,
  ) {
    this.bitmap = new Uint8Array(count);
  }

  /** @internal the area's bytes (allocated on first use), or null when the host has no room. */
  bytes(): ArrayBuffer | null {
    if (this.memory === null) {
      try {
        this.memory = new ArrayBuffer(this.count * PAGE_SIZE);
      } catch {
        return null;
      }
    }
    return this.memory;
  }

  /** @internal first free run of `count` pages starting on a multiple of `step`, or -1. */
  findRun(count: number, step: number): number {
    for (let start = 0; start + count <= this.count; start += step) {
      let free = true;
      for (let i = start; i < start + count; i++) {
        if (this.bitmap[i]) {
          free = false;
          break;
        }
      }
      if (free) return start;
    }
    return -1;
  }

  /** @internal marks a run used (1) or free (0). */
  mark(start: number, count: number, v: 0 | 1): void {
    this.bitmap.fill(v, start, start + count);
    this.used += v ? count : -count;
  }
}

/** The pages of one CMA allocation. */
export interface CmaAllocation {
  /** The first page's index in the area. */
  readonly start: number;
  /** The pages, in order. */
  readonly pages: readonly Page[];
}

/**
 * cma_alloc(): `count` contiguous pages aligned to 2^`align` pages, or null when the
 * area has no such free run (or `count` is 0).
 */
export function cmaAlloc(cma: Cma, count: number, align: number): CmaAllocation | null {
  if (!Number.isInteger(count) || count <= 0 || count > cma.count) return null;
  const start = cma.findRun(count, 1 << align);
  if (start < 0) return null;
  const mem = cma.bytes();
  if (mem === null) return null;
  cma.mark(start, count, 1);
  const pages: Page[] = [];
  for (let i = 0; i < count; i++)
    pages.push(new Page(new Uint8Array(mem, (start + i) * PAGE_SIZE, PAGE_SIZE)));
  return { start, pages };
}

/** cma_release(): gives an allocation back; false if it was not from this area. */
export function cmaRelease(cma: Cma, alloc: CmaAllocation): boolean {
  if (alloc.start < 0 || alloc.start + alloc.pages.length > cma.count) return false;
  cma.mark(alloc.start, alloc.pages.length, 0);
  return true;
}

/** cma_get_name(). */
export function cmaGetName(cma: Cma): string {
  return cma.name;
}

const DEFAULT = Symbol('dma_contiguous_default_area');

/** dev_get_cma_area(NULL): the kernel's default area, `reserved`, created on first use. */
export function dmaContiguousDefaultArea(k: Kernel = currentKernel()): Cma {
  let cma = k.singletons.get(DEFAULT) as Cma | undefined;
  if (!cma) {
    cma = new Cma('reserved', (CMA_SIZE_MBYTES << 20) / PAGE_SIZE);
    k.singletons.set(DEFAULT, cma);
  }
  return cma;
}
