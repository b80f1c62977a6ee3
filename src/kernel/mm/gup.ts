/**
 * Pinning user pages for device DMA: the model's `pin_user_pages_fast` (mm/gup.c). A
 * driver that lets a device read or write a user buffer resolves every page of the
 * page-aligned range in the calling process's address space and takes a reference on
 * each, so the pages stay put until the driver drops them after the DMA.
 */
import { current } from '../sched.ts';
import { PAGE_SIZE, type Page } from './page.ts';

/** A pinned user range: its pages in order and the offset of `addr` in the first one. */
export interface PinnedUserRange {
  /** The pages of the page-aligned range, each with a reference the caller must put. */
  pages: Page[];
  /** Offset of the start address within `pages[0]`. */
  first: number;
}

/**
 * Pins the pages under `[addr, addr + size)` of the current process (pin_user_pages_fast
 * without FOLL_WRITE: the pages must be present or faultable for reading). Returns null
 * (with nothing pinned) when the process has no address space, the address is not a
 * valid user address, or a page cannot be resolved — the callers' -EFAULT.
 */
export function pinUserPages(addr: number, size: number): PinnedUserRange | null {
  const mm = current()?.mm;
  if (!mm || !Number.isSafeInteger(addr) || addr < 0) return null;
  const start = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  const pages: Page[] = [];
  for (let a = start; a < addr + size; a += PAGE_SIZE) {
    const p = mm.resolve(a, 'none');
    if (typeof p === 'number') {
      for (const q of pages) q.put();
      return null;
    }
    pages.push(p.get());
  }
  return { pages, first: addr - start };
}
