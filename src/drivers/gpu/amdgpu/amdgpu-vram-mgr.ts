/**
 * The VRAM manager: ranges of device memory for BOs, the CPU-visible window, and the
 * page-less sg tables an importer gets for a VRAM placement
 * (drivers/gpu/drm/amd/amdgpu/amdgpu_vram_mgr.c, Linux 6.12: amdgpu_vram_mgr_new,
 * amdgpu_vram_mgr_alloc_sgt / amdgpu_vram_mgr_free_sgt, the visible-VRAM accounting).
 *
 * VRAM is one `DeviceMemory` ("gpu0 VRAM", device addresses from 0). Its first
 * `visibleSize` bytes are what BAR 0 decodes (the CPU-visible window, 256 MiB on a
 * small-BAR system): only that part is reachable by the CPU and by peers. A placement
 * may be limited to the visible window (`lpfn`, what CPU_ACCESS_REQUIRED asks for) or
 * taken top-down (TTM_PL_FLAG_TOPDOWN, which amdgpu sets for BOs without CPU access so
 * the visible window stays free). Allocation is first fit over one free list (drm_buddy
 * in the kernel; the model keeps placements contiguous).
 *
 * alloc_sgt builds one entry per contiguous run (split at 2 GiB, AMDGPU_MAX_SG_SEGMENT_SIZE
 * in the kernel), each `sg_set_page(sg, NULL, ...)` with the BAR address mapped for the
 * importer by dma_map_resource; a range outside the visible window cannot be reached
 * through the BAR (-EINVAL in the model; the kernel's map path moved it into the
 * window first by setting CPU_ACCESS_REQUIRED).
 *
 * Model rule `amdgpu.vram_reused_before_idle` (spec/driver-side.md §8 pitfall 5): a
 * range freed while fences of its last user were still pending (an exporter that moved
 * a buffer without waiting for its importers) is recorded; handing it out again before
 * those fences signal is a `violation` — TTM parks such memory on a ghost object until
 * the fences signal.
 */
import type { Device } from '../../../kernel/device.ts';
import type { DmaFence } from '../../../kernel/dma-buf/dma-fence.ts';
import { type ErrPtr, errPtr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { currentKernel } from '../../../kernel/kernel.ts';
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDataDirection } from '../../../kernel/mm/dma-mapping.ts';
import { DeviceMemory } from '../../../kernel/mm/iomem.ts';
import {
  dmaChargeMappingCost,
  dmaMappingError,
  dmaMapResource,
  dmaUnmapResource,
} from '../../../kernel/mm/iommu.ts';
import { PAGE_SIZE, Page } from '../../../kernel/mm/page.ts';
import { forEachSgtableDmaSg, SgTable, sgAllocTable, sgFreeTable } from '../../../kernel/mm/scatterlist.ts';

/** AMDGPU_MAX_SG_SEGMENT_SIZE: the largest entry of a VRAM sg table. */
export const AMDGPU_MAX_SG_SEGMENT_SIZE = 2 * 2 ** 30;

/** Rule of the violation raised when VRAM is reused before its last user's fences signalled. */
export const VRAM_REUSED_BEFORE_IDLE_RULE = 'amdgpu.vram_reused_before_idle';

/**
 * VRAM bytes, stored per 4 KiB page so a CPU mapping through the BAR can map the very
 * bytes devices read and write (the pages have no struct page: `noStructPage`).
 */
export class VramMemory extends DeviceMemory {
  private readonly store = new Map<number, Page>();

  /** The page of device address `addr` (page aligned), created zeroed on first use. */
  page(addr: number): Page {
    const i = Math.floor(addr / PAGE_SIZE);
    let p = this.store.get(i);
    if (!p) {
      p = new Page(new Uint8Array(PAGE_SIZE));
      p.noStructPage = true;
      this.store.set(i, p);
    }
    return p;
  }

  private inRange(addr: number, len: number): void {
    if (!(addr >= this.base && len >= 0 && addr + len <= this.base + this.size)) {
      throw new RangeError(
        `${this.name}: access [0x${addr.toString(16)}, +0x${len.toString(16)}) outside VRAM`,
      );
    }
  }

  private span(
    addr: number,
    len: number,
    create: boolean,
    fn: (page: Page | undefined, inPage: number, at: number, n: number) => void,
  ): void {
    this.inRange(addr, len);
    let at = 0;
    while (at < len) {
      const a = addr + at;
      const inPage = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, len - at);
      fn(create ? this.page(a - inPage) : this.store.get(Math.floor(a / PAGE_SIZE)), inPage, at, n);
      at += n;
    }
  }

  /** Copies `len` bytes at `addr` into `dst` at `dstOffset` (never-written bytes read as 0). */
  override read(addr: number, dst: Uint8Array, dstOffset = 0, len = dst.length - dstOffset): void {
    this.span(addr, len, false, (p, o, at, n) => {
      if (p) dst.set(p.data.subarray(o, o + n), dstOffset + at);
      else dst.fill(0, dstOffset + at, dstOffset + at + n);
    });
  }

  /** Copies `src` to `addr`. */
  override write(addr: number, src: Uint8Array): void {
    this.span(addr, src.length, true, (p, o, at, n) => p!.data.set(src.subarray(at, at + n), o));
  }

  /** Fills `len` bytes at `addr` with a repeating pattern. */
  override fill(addr: number, len: number, pattern: Uint8Array): void {
    this.span(addr, len, true, (p, o, at, n) => {
      for (let i = 0; i < n; i++) p!.data[o + i] = pattern[(at + i) % pattern.length];
    });
  }

  /** Clears `[addr, +len)` (page aligned) by forgetting its pages: the cost of a clear, not of the size. */
  clear(addr: number, len: number): void {
    this.inRange(addr, len);
    const lo = Math.floor(addr / PAGE_SIZE);
    const hi = Math.ceil((addr + len) / PAGE_SIZE);
    for (const [i, p] of [...this.store]) {
      if (i < lo || i >= hi) continue;
      if (p.mapcount > 0) p.data.fill(0);
      else this.store.delete(i);
    }
  }
}

/** Where a placement may go. */
export interface VramPlace {
  /** Only inside the CPU-visible window (CPU_ACCESS_REQUIRED). */
  visibleOnly: boolean;
  /** Allocate from the top (TTM_PL_FLAG_TOPDOWN). */
  topdown: boolean;
}

interface BusyRange {
  start: number;
  size: number;
  fences: DmaFence[];
  owner: string;
}

/** struct amdgpu_vram_mgr: the free ranges of one GPU's VRAM. */
export class AmdgpuVramMgr {
  private readonly free: { start: number; size: number }[];
  private readonly busy: BusyRange[] = [];
  /** Bytes in use. */
  used = 0;

  /** A manager over `size` bytes of VRAM whose first `visibleSize` bytes are CPU-visible. */
  constructor(
    /** VRAM size. */
    readonly size: number,
    /** Size of the CPU-visible window (BAR 0). */
    readonly visibleSize: number,
    /** The GPU's name, for reports. */
    readonly name: string,
  ) {
    this.free = [{ start: 0, size }];
  }

  /** Bytes of the visible window in use. */
  get visibleUsed(): number {
    let free = 0;
    for (const f of this.free) {
      const hi = Math.min(f.start + f.size, this.visibleSize);
      if (hi > f.start) free += hi - f.start;
    }
    return this.visibleSize - free;
  }

  /** amdgpu_vram_mgr_new(): the start of `size` free bytes in `place`, or -1 (-ENOSPC). */
  alloc(size: number, place: VramPlace): number {
    const len = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    const limit = place.visibleOnly ? this.visibleSize : this.size;
    const order = place.topdown ? [...this.free.keys()].reverse() : [...this.free.keys()];
    for (const i of order) {
      const f = this.free[i];
      const hi = Math.min(f.start + f.size, limit);
      if (hi - f.start < len) continue;
      const start = place.topdown ? hi - len : f.start;
      const parts: { start: number; size: number }[] = [];
      if (start > f.start) parts.push({ start: f.start, size: start - f.start });
      if (start + len < f.start + f.size)
        parts.push({ start: start + len, size: f.start + f.size - start - len });
      this.free.splice(i, 1, ...parts);
      this.used += len;
      this.checkReuse(start, len);
      return start;
    }
    return -1;
  }

  /**
   * amdgpu_vram_mgr_del(): gives `[start, +size)` back. `pendingFences` are the fences of
   * the last user that had not signalled (none when the caller waited, as it must).
   */
  release(start: number, size: number, pendingFences: DmaFence[] = [], owner = ''): void {
    const len = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    this.free.push({ start, size: len });
    this.free.sort((a, b) => a.start - b.start);
    for (let i = 0; i + 1 < this.free.length; ) {
      const a = this.free[i];
      const b = this.free[i + 1];
      if (a.start + a.size === b.start) this.free.splice(i, 2, { start: a.start, size: a.size + b.size });
      else i++;
    }
    this.used -= len;
    const live = pendingFences.filter((f) => !f.isSignaled());
    if (live.length > 0) this.busy.push({ start, size: len, fences: live.map((f) => f.get()), owner });
  }

  private checkReuse(start: number, len: number): void {
    for (let i = 0; i < this.busy.length; ) {
      const b = this.busy[i];
      const pending = b.fences.filter((f) => !f.isSignaled());
      if (pending.length === 0) {
        for (const f of b.fences) f.put();
        this.busy.splice(i, 1);
        continue;
      }
      if (start < b.start + b.size && b.start < start + len) {
        currentKernel().report(
          'violation',
          VRAM_REUSED_BEFORE_IDLE_RULE,
          `${this.name}: VRAM [0x${b.start.toString(16)}, +0x${b.size.toString(16)}) of ${b.owner} is handed out again ` +
            `while ${pending.length} fence(s) of its previous user are still pending (${pending.join(', ')}): ` +
            'after dma_buf_move_notify the exporter must wait for every fence of the reservation object ' +
            '(DMA_RESV_USAGE_BOOKKEEP) before it reuses the memory (spec/driver-side.md §8 pitfall 5)',
          [{ kind: 'device', name: this.name }],
        );
        for (const f of b.fences) f.put();
        this.busy.splice(i, 1);
        continue;
      }
      i++;
    }
  }

  /** Drops the records of freed-while-busy ranges (device teardown). */
  dropBusy(): void {
    for (const b of this.busy) for (const f of b.fences) f.put();
    this.busy.length = 0;
  }
}

/**
 * amdgpu_vram_mgr_alloc_sgt(): a page-less table for `[start, +size)` of VRAM, each
 * entry the BAR address (`barStart` + offset) mapped for `dev`. -EINVAL outside the
 * visible window, -ENOMEM when a mapping fails.
 */
export async function amdgpuVramMgrAllocSgt(
  mgr: AmdgpuVramMgr,
  barStart: number,
  start: number,
  size: number,
  dev: Device,
  dir: DmaDataDirection,
): Promise<SgTable | ErrPtr> {
  if (start + size > mgr.visibleSize) return errPtr(-errno.EINVAL);
  const n = Math.ceil(size / AMDGPU_MAX_SG_SEGMENT_SIZE);
  const sgt = new SgTable();
  const r = sgAllocTable(sgt, n);
  if (r) return errPtr(r);
  for (let i = 0; i < n; i++) {
    const off = i * AMDGPU_MAX_SG_SEGMENT_SIZE;
    const len = Math.min(AMDGPU_MAX_SG_SEGMENT_SIZE, size - off);
    const addr = dmaMapResource(dev, barStart + start + off, len, dir, DMA_ATTR_SKIP_CPU_SYNC);
    if (dmaMappingError(dev, addr)) {
      for (let j = 0; j < i; j++) {
        dmaUnmapResource(dev, sgt.sgl[j].dmaAddress, sgt.sgl[j].dmaLength, dir, DMA_ATTR_SKIP_CPU_SYNC);
      }
      sgFreeTable(sgt);
      return errPtr(-errno.ENOMEM);
    }
    const sg = sgt.sgl[i];
    sg.pageLink = null;
    sg.length = len;
    sg.dmaAddress = addr;
    sg.dmaLength = len;
  }
  await dmaChargeMappingCost(dev);
  return sgt;
}

/** amdgpu_vram_mgr_free_sgt(): unmaps every entry and frees the table. */
export async function amdgpuVramMgrFreeSgt(dev: Device, dir: DmaDataDirection, sgt: SgTable): Promise<void> {
  for (const sg of forEachSgtableDmaSg(sgt)) {
    dmaUnmapResource(dev, sg.dmaAddress, sg.dmaLength, dir, DMA_ATTR_SKIP_CPU_SYNC);
  }
  sgFreeTable(sgt);
  await dmaChargeMappingCost(dev);
}
