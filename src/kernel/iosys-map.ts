/**
 * iosys_map: a pointer to memory mapped into the kernel, in system memory or I/O memory
 * (include/linux/iosys-map.h). dma_buf_vmap returns one.
 *
 * The model's kernel virtual mapping is the list of pages mapped in order (what
 * vmap()/vm_map_ram() would make contiguous); its identity is the mapping's address,
 * so two maps are equal when they hold the same mapping. `iosysMapMemcpyTo` and
 * `iosysMapMemcpyFrom` move bytes through it.
 */
import { PAGE_SIZE, type Page } from './mm/page.ts';

/** A kernel mapping of a buffer (struct iosys_map). */
export class IosysMap {
  /** The mapping (vaddr / vaddr_iomem): the pages in order, or null when cleared. */
  vaddr: readonly Page[] | null = null;
  /** The mapping is I/O memory (is_iomem). */
  isIomem = false;
}

/** iosys_map_set_vaddr(): points `map` at a system-memory mapping. */
export function iosysMapSetVaddr(map: IosysMap, vaddr: readonly Page[]): void {
  map.vaddr = vaddr;
  map.isIomem = false;
}

/** iosys_map_set_vaddr_iomem(): points `map` at an I/O-memory mapping. */
export function iosysMapSetVaddrIomem(map: IosysMap, vaddr: readonly Page[]): void {
  map.vaddr = vaddr;
  map.isIomem = true;
}

/** iosys_map_clear(). */
export function iosysMapClear(map: IosysMap): void {
  map.vaddr = null;
  map.isIomem = false;
}

/** iosys_map_is_null(). */
export function iosysMapIsNull(map: IosysMap): boolean {
  return map.vaddr === null;
}

/** iosys_map_is_set(). */
export function iosysMapIsSet(map: IosysMap): boolean {
  return map.vaddr !== null;
}

/** iosys_map_is_equal(): both point at the same mapping. */
export function iosysMapIsEqual(a: IosysMap, b: IosysMap): boolean {
  return a.vaddr === b.vaddr && a.isIomem === b.isIomem;
}

function span(
  map: IosysMap,
  offset: number,
  len: number,
  fn: (page: Page, at: number, n: number, done: number) => void,
) {
  const pages = map.vaddr;
  if (pages === null) throw new Error('iosys_map access through a cleared map');
  if (offset < 0 || offset + len > pages.length * PAGE_SIZE) {
    throw new RangeError(`iosys_map access [${offset}, ${offset + len}) beyond the mapping`);
  }
  let done = 0;
  while (done < len) {
    const pos = offset + done;
    const at = pos % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - at, len - done);
    fn(pages[Math.floor(pos / PAGE_SIZE)], at, n, done);
    done += n;
  }
}

/** iosys_map_memcpy_to(): copies `src` into the mapping at `offset`. */
export function iosysMapMemcpyTo(dst: IosysMap, offset: number, src: Uint8Array): void {
  span(dst, offset, src.length, (page, at, n, done) => page.data.set(src.subarray(done, done + n), at));
}

/** iosys_map_memcpy_from(): copies `dst.length` bytes from the mapping at `offset` into `dst`. */
export function iosysMapMemcpyFrom(dst: Uint8Array, src: IosysMap, offset: number): void {
  span(src, offset, dst.length, (page, at, n, done) => dst.set(page.data.subarray(at, at + n), done));
}
