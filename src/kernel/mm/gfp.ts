/**
 * GFP flags: how an allocation may behave (include/linux/gfp_types.h, include/linux/gfp.h,
 * Linux 6.12).
 *
 * Bit positions follow the 6.12 `___GFP_*_BIT` enum for a configuration without
 * KASAN_HW_TAGS and with LOCKDEP. What the model acts on: whether an allocation may
 * sleep (`__GFP_DIRECT_RECLAIM`: might_sleep, and the fs_reclaim lockdep map) and whether
 * it may recurse into filesystems (`__GFP_FS`). In 6.12 GFP_NOWAIT is only
 * __GFP_KSWAPD_RECLAIM (later kernels add __GFP_NOWARN).
 */

/** Number type of a gfp mask (gfp_t). */
export type GfpFlags = number;

/** ZONE_DMA. */
export const __GFP_DMA = 1 << 0;
/** ZONE_HIGHMEM. */
export const __GFP_HIGHMEM = 1 << 1;
/** ZONE_DMA32. */
export const __GFP_DMA32 = 1 << 2;
/** Movable page. */
export const __GFP_MOVABLE = 1 << 3;
/** Reclaimable slab. */
export const __GFP_RECLAIMABLE = 1 << 4;
/** High priority: may use emergency reserves. */
export const __GFP_HIGH = 1 << 5;
/** May start physical I/O. */
export const __GFP_IO = 1 << 6;
/** May call into the filesystem layer. */
export const __GFP_FS = 1 << 7;
/** Zero the memory. */
export const __GFP_ZERO = 1 << 8;
/** May enter direct reclaim (so may sleep). */
export const __GFP_DIRECT_RECLAIM = 1 << 10;
/** May wake kswapd. */
export const __GFP_KSWAPD_RECLAIM = 1 << 11;
/** Likely written to soon. */
export const __GFP_WRITE = 1 << 12;
/** No failure warning. */
export const __GFP_NOWARN = 1 << 13;
/** Retry hard, may fail. */
export const __GFP_RETRY_MAYFAIL = 1 << 14;
/** Never fail. */
export const __GFP_NOFAIL = 1 << 15;
/** Do not retry. */
export const __GFP_NORETRY = 1 << 16;
/** Use emergency reserves. */
export const __GFP_MEMALLOC = 1 << 17;
/** Compound page. */
export const __GFP_COMP = 1 << 18;
/** Never use emergency reserves. */
export const __GFP_NOMEMALLOC = 1 << 19;
/** Enforce cpuset allocation policy. */
export const __GFP_HARDWALL = 1 << 20;
/** This node only. */
export const __GFP_THISNODE = 1 << 21;
/** Account to kmemcg. */
export const __GFP_ACCOUNT = 1 << 22;
/** Zero memory tags. */
export const __GFP_ZEROTAGS = 1 << 23;
/** Do not tell lockdep about reclaim. */
export const __GFP_NOLOCKDEP = 1 << 24;

/** Both reclaim kinds. */
export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
/** Atomic context: never sleeps, may use reserves. */
export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
/** Normal kernel allocation: may sleep, reclaim, do I/O and call filesystems. */
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
/** GFP_KERNEL charged to the memory cgroup. */
export const GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
/** Never sleeps, no reserves (6.12: __GFP_KSWAPD_RECLAIM only). */
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM;
/** May sleep and reclaim, but no I/O. */
export const GFP_NOIO = __GFP_RECLAIM;
/** May sleep and do I/O, but not call filesystems. */
export const GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
/** Userspace pages. */
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
/** GFP_USER, may be in DMA32. */
export const GFP_DMA32 = __GFP_DMA32;

/** gfpflags_allow_blocking(): the allocation may sleep. */
export function gfpflagsAllowBlocking(gfp: GfpFlags): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0;
}

/** A readable form of a mask (`GFP_KERNEL`, `GFP_ATOMIC|__GFP_ZERO`) for reports. */
export function gfpName(gfp: GfpFlags): string {
  const named: [string, number][] = [
    ['GFP_KERNEL', GFP_KERNEL],
    ['GFP_NOFS', GFP_NOFS],
    ['GFP_NOIO', GFP_NOIO],
    ['GFP_ATOMIC', GFP_ATOMIC],
    ['GFP_NOWAIT', GFP_NOWAIT],
  ];
  const parts: string[] = [];
  const base = gfp & (__GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HIGH);
  let rest = gfp;
  const hit = named.find(([, v]) => v === base);
  if (hit !== undefined) {
    parts.push(hit[0]);
    rest &= ~hit[1];
  }
  const bits: [string, number][] = [
    ['__GFP_DMA', __GFP_DMA],
    ['__GFP_HIGHMEM', __GFP_HIGHMEM],
    ['__GFP_DMA32', __GFP_DMA32],
    ['__GFP_MOVABLE', __GFP_MOVABLE],
    ['__GFP_RECLAIMABLE', __GFP_RECLAIMABLE],
    ['__GFP_HIGH', __GFP_HIGH],
    ['__GFP_IO', __GFP_IO],
    ['__GFP_FS', __GFP_FS],
    ['__GFP_ZERO', __GFP_ZERO],
    ['__GFP_DIRECT_RECLAIM', __GFP_DIRECT_RECLAIM],
    ['__GFP_KSWAPD_RECLAIM', __GFP_KSWAPD_RECLAIM],
    ['__GFP_WRITE', __GFP_WRITE],
    ['__GFP_NOWARN', __GFP_NOWARN],
    ['__GFP_RETRY_MAYFAIL', __GFP_RETRY_MAYFAIL],
    ['__GFP_NOFAIL', __GFP_NOFAIL],
    ['__GFP_NORETRY', __GFP_NORETRY],
    ['__GFP_MEMALLOC', __GFP_MEMALLOC],
    ['__GFP_COMP', __GFP_COMP],
    ['__GFP_NOMEMALLOC', __GFP_NOMEMALLOC],
    ['__GFP_HARDWALL', __GFP_HARDWALL],
    ['__GFP_THISNODE', __GFP_THISNODE],
    ['__GFP_ACCOUNT', __GFP_ACCOUNT],
    ['__GFP_ZEROTAGS', __GFP_ZEROTAGS],
    ['__GFP_NOLOCKDEP', __GFP_NOLOCKDEP],
  ];
  for (const [n, v] of bits) if (rest & v) parts.push(n);
  return parts.length === 0 ? '0' : parts.join('|');
}
