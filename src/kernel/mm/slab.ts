/**
 * kmalloc: the general-purpose allocator's observable behaviour (include/linux/slab.h,
 * mm/slab_common.c, mm/slub.c, Linux 6.12, SLUB on x86_64 with 4 KiB pages).
 *
 * JavaScript owns the memory; what the model keeps is what kernel code can see: the
 * size an allocation really gets (kmalloc buckets 8..8192 bytes, then whole pages up to
 * KMALLOC_MAX_SIZE), the annotations every allocation makes (might_alloc: the
 * fs_reclaim lockdep map and might_sleep for blocking flags), and failure. Allocations
 * fail only when larger than KMALLOC_MAX_SIZE or when a test injects failures with
 * `kmallocInjectFailures` (like the kernel's failslab fault injection); __GFP_NOFAIL
 * allocations never fail.
 */
import { currentKernel, type Kernel } from '../kernel.ts';
import { mightAlloc } from './fs-reclaim.ts';
import { __GFP_NOFAIL, __GFP_NOWARN, type GfpFlags, gfpName } from './gfp.ts';
import { PAGE_SIZE } from './page.ts';

/** Smallest kmalloc object (x86_64). */
export const KMALLOC_MIN_SIZE = 8;
/** Largest size served from a kmalloc cache (SLUB: two pages). */
export const KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE;
/** Largest kmalloc (PAGE_SIZE << MAX_PAGE_ORDER, MAX_PAGE_ORDER = 10). */
export const KMALLOC_MAX_SIZE = PAGE_SIZE << 10;

const BUCKETS = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];

/** A block returned by `kmalloc`. */
export interface KmallocBlock {
  /** The size asked for. */
  readonly requested: number;
  /** The size actually usable (ksize). */
  readonly size: number;
  /** Freed with `kfree`. */
  freed: boolean;
}

interface SlabState {
  failNext: number;
  allocated: number;
}

const SLAB = Symbol('slab');

function slabState(k: Kernel): SlabState {
  let s = k.singletons.get(SLAB) as SlabState | undefined;
  if (s === undefined) {
    s = { failNext: 0, allocated: 0 };
    k.singletons.set(SLAB, s);
  }
  return s;
}

/** kmalloc_size_roundup(): the size kmalloc(size) really provides. */
export function kmallocSizeRoundup(size: number): number {
  if (size > 0 && size <= KMALLOC_MAX_CACHE_SIZE) {
    for (const b of BUCKETS) if (b >= size) return b;
  }
  if (size > 0 && size <= KMALLOC_MAX_SIZE) {
    let pages = PAGE_SIZE;
    while (pages < size) pages *= 2;
    return pages;
  }
  return size;
}

/**
 * kmalloc(): `size` bytes with `gfp`, or null on failure. Makes the might_alloc
 * annotations first, so a GFP_KERNEL allocation in atomic context or inside a fence
 * signalling section is reported even when memory is plentiful.
 */
export function kmalloc(size: number, gfp: GfpFlags): KmallocBlock | null {
  const k = currentKernel();
  mightAlloc(gfp);
  const st = slabState(k);
  if (size > KMALLOC_MAX_SIZE) {
    if (!(gfp & __GFP_NOWARN)) {
      k.warn(
        'slab.kmalloc_too_large',
        `WARNING: kmalloc(${size}, ${gfpName(gfp)}): larger than KMALLOC_MAX_SIZE`,
      );
    }
    return null;
  }
  if (st.failNext > 0 && !(gfp & __GFP_NOFAIL)) {
    st.failNext--;
    return null;
  }
  st.allocated++;
  return { requested: size, size: kmallocSizeRoundup(size), freed: false };
}

/** kmalloc_array(): `n * size` bytes, null on overflow or failure. */
export function kmallocArray(n: number, size: number, gfp: GfpFlags): KmallocBlock | null {
  const bytes = n * size;
  if (!Number.isSafeInteger(bytes) || bytes > Number.MAX_SAFE_INTEGER) return null;
  return kmalloc(bytes, gfp);
}

/** kfree(): frees a block (null is fine); a double free is a BUG as with slub_debug. */
export function kfree(block: KmallocBlock | null): void {
  if (block === null) return;
  const k = currentKernel();
  if (block.freed) k.bug('slab.double_free', `BUG: double free of a ${block.size}-byte kmalloc object`);
  block.freed = true;
  slabState(k).allocated--;
}

/** Makes the next `count` allocations of kernel `k` (without __GFP_NOFAIL) fail (failslab). */
export function kmallocInjectFailures(k: Kernel, count: number): void {
  slabState(k).failNext = count;
}

/** Number of live kmalloc blocks of kernel `k` (allocated and not freed). */
export function kmallocLiveBlocks(k: Kernel): number {
  return slabState(k).allocated;
}
