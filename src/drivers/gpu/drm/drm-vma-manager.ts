/**
 * drm_vma_offset_manager: the fake mmap offsets of GEM objects
 * (drivers/gpu/drm/drm_vma_manager.c, include/drm/drm_vma_manager.h, Linux 6.12).
 *
 * Every GEM object that userspace may mmap through the DRM fd gets a range of page
 * offsets in a per-device address space that starts at DRM_FILE_PAGE_OFFSET_START
 * (page 0x100000, byte offset 4 GiB, on 64-bit). MAP_DUMB returns the byte offset;
 * mmap of the DRM fd at that offset finds the object again (an exact match on the first
 * page, the mapping no longer than the range). A node also keeps the set of DRM files
 * that may map it (refcounted per file: one count per handle the file holds).
 *
 * The range allocator follows drm_mm's DRM_MM_INSERT_BEST as vma offsets use it: the
 * smallest hole that fits (ties to the most recently created hole), allocated from the
 * hole's start, so a fresh device hands out consecutive ranges (the oracle's second
 * object of 4 pages after a 4-page one mapped at 0x100004000).
 */
import { errno } from '../../../kernel/errno.ts';
import { PAGE_SHIFT } from '../../../kernel/mm/page.ts';

/** First page offset of the fake offset space (64-bit: 4 GiB >> PAGE_SHIFT). */
export const DRM_FILE_PAGE_OFFSET_START = (0xffffffff >>> PAGE_SHIFT) + 1;
/** Number of pages in the fake offset space (64-bit). */
export const DRM_FILE_PAGE_OFFSET_SIZE = (0xffffffff >>> PAGE_SHIFT) * 256;

/** A range of fake offsets owned by one object (struct drm_vma_offset_node). */
export class DrmVmaOffsetNode {
  /** Creates the node embedded in `owner` (container_of finds the owner from the node). */
  constructor(
    /** The object the node belongs to. */
    readonly owner: unknown = null,
  ) {}

  /** First page offset, valid while `allocated`. */
  start = 0;
  /** Number of pages. */
  size = 0;
  /** drm_mm_node_allocated(). */
  allocated = false;
  /** The files allowed to map the range, with their counts (vm_files). */
  readonly files = new Map<object, number>();
}

interface Hole {
  start: number;
  size: number;
  seq: number;
}

/** The per-device offset space (struct drm_vma_offset_manager). */
export class DrmVmaOffsetManager {
  private holes: Hole[];
  private nodes: DrmVmaOffsetNode[] = [];
  private seq = 0;

  /** drm_vma_offset_manager_init(): the space [pageOffset, pageOffset + size). */
  constructor(pageOffset = DRM_FILE_PAGE_OFFSET_START, size = DRM_FILE_PAGE_OFFSET_SIZE) {
    this.holes = [{ start: pageOffset, size, seq: this.seq++ }];
  }

  /** drm_vma_offset_add(): gives `node` a range of `pages` pages unless it has one. 0 or -ENOSPC. */
  add(node: DrmVmaOffsetNode, pages: number): number {
    if (node.allocated) return 0;
    if (!Number.isInteger(pages) || pages <= 0) return -errno.ENOSPC;
    let best: Hole | null = null;
    for (const h of this.holes) {
      if (h.size < pages) continue;
      if (best === null || h.size < best.size || (h.size === best.size && h.seq > best.seq)) best = h;
    }
    if (best === null) return -errno.ENOSPC;
    node.start = best.start;
    node.size = pages;
    node.allocated = true;
    best.start += pages;
    best.size -= pages;
    if (best.size === 0) this.holes.splice(this.holes.indexOf(best), 1);
    this.nodes.push(node);
    return 0;
  }

  /** drm_vma_offset_remove(): returns the node's range to the space. */
  remove(node: DrmVmaOffsetNode): void {
    if (!node.allocated) return;
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
    let start = node.start;
    let size = node.size;
    // Merge with the neighbouring holes.
    for (const h of [...this.holes]) {
      if (h.start + h.size === start) {
        start = h.start;
        size += h.size;
        this.holes.splice(this.holes.indexOf(h), 1);
      } else if (start + size === h.start) {
        size += h.size;
        this.holes.splice(this.holes.indexOf(h), 1);
      }
    }
    this.holes.push({ start, size, seq: this.seq++ });
    node.allocated = false;
    node.start = 0;
    node.size = 0;
  }

  /** drm_vma_offset_lookup_locked(): the node whose range covers [start, start + pages), or null. */
  lookup(start: number, pages: number): DrmVmaOffsetNode | null {
    let best: DrmVmaOffsetNode | null = null;
    for (const n of this.nodes) {
      if (n.start <= start && (best === null || n.start > best.start)) best = n;
    }
    if (best && best.start + best.size < start + pages) return null;
    return best;
  }

  /** drm_vma_offset_exact_lookup_locked(): as `lookup`, but the range must start at `start`. */
  exactLookup(start: number, pages: number): DrmVmaOffsetNode | null {
    const n = this.lookup(start, pages);
    return n && n.start === start ? n : null;
  }
}

/** drm_vma_node_offset_addr(): the node's byte offset for mmap (0 without a range). */
export function drmVmaNodeOffsetAddr(node: DrmVmaOffsetNode): bigint {
  return node.allocated ? BigInt(node.start) << BigInt(PAGE_SHIFT) : 0n;
}

/** drm_vma_node_start(): the node's first page offset (0 without a range). */
export function drmVmaNodeStart(node: DrmVmaOffsetNode): number {
  return node.allocated ? node.start : 0;
}

/** drm_vma_node_allow(): lets `tag` (a DRM file) map the node; counted per call. */
export function drmVmaNodeAllow(node: DrmVmaOffsetNode, tag: object): number {
  node.files.set(tag, (node.files.get(tag) ?? 0) + 1);
  return 0;
}

/** drm_vma_node_revoke(): undoes one `drmVmaNodeAllow` of `tag`. */
export function drmVmaNodeRevoke(node: DrmVmaOffsetNode, tag: object): void {
  const n = node.files.get(tag);
  if (n === undefined) return;
  if (n <= 1) node.files.delete(tag);
  else node.files.set(tag, n - 1);
}

/** drm_vma_node_is_allowed(). */
export function drmVmaNodeIsAllowed(node: DrmVmaOffsetNode, tag: object): boolean {
  return node.files.has(tag);
}
