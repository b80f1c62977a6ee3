/**
 * IDR: small integer ids mapped to pointers (lib/idr.c, include/linux/idr.h).
 *
 * `alloc` hands out the lowest free id in [start, end) — ids are reused as soon as they
 * are removed, which is why a GEM handle or a syncobj handle closed and created again
 * comes back with the same number. A slot can hold null (idr_replace(NULL) keeps the id
 * allocated: DRM reserves a handle first and fills it in later; vgem leaves signalled
 * fence ids allocated this way). `replace` on an id that was never allocated returns
 * ERR_PTR(-ENOENT); the model returns the errno as a number.
 */
import { errno } from '../errno.ts';

/** INT_MAX: the largest id (end 0 means "up to INT_MAX"). */
export const IDR_MAX = 0x7fffffff;

/** An id allocator (struct idr). */
export class Idr<T> {
  private readonly slots = new Map<number, T | null>();

  /** idr_init_base(): `base` is the lowest id `alloc` considers by default. */
  constructor(readonly base = 0) {}

  /** Number of allocated ids. */
  get size(): number {
    return this.slots.size;
  }

  /**
   * idr_alloc(): stores `ptr` at the lowest free id >= max(start, base) and < end (0:
   * INT_MAX + 1). Returns the id, or -ENOSPC.
   */
  alloc(ptr: T | null, start: number, end = 0): number {
    const last = end <= 0 ? IDR_MAX : end - 1;
    for (let id = Math.max(start, this.base); id <= last; id++) {
      if (!this.slots.has(id)) {
        this.slots.set(id, ptr);
        return id;
      }
    }
    return -errno.ENOSPC;
  }

  /** idr_find(): the pointer at `id`, or null (also for an id holding null). */
  find(id: number): T | null {
    return this.slots.get(id) ?? null;
  }

  /** True when `id` is allocated (even if it holds null). */
  has(id: number): boolean {
    return this.slots.has(id);
  }

  /** idr_replace(): stores `ptr` at an allocated `id` and returns the old pointer, or -ENOENT (a number). */
  replace(id: number, ptr: T | null): T | null | number {
    if (!this.slots.has(id)) return -errno.ENOENT;
    const old = this.slots.get(id) ?? null;
    this.slots.set(id, ptr);
    return old;
  }

  /** idr_remove(): frees `id` and returns what it held (null if nothing). */
  remove(id: number): T | null {
    if (!this.slots.has(id)) return null;
    const old = this.slots.get(id) ?? null;
    this.slots.delete(id);
    return old;
  }

  /** idr_for_each() order: the allocated ids and their pointers, lowest id first. */
  entries(): [number, T | null][] {
    return [...this.slots.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** idr_destroy(): forgets every id. */
  destroy(): void {
    this.slots.clear();
  }
}
