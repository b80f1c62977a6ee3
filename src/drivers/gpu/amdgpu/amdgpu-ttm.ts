/**
 * Placement changes of amdgpu BOs: validation into a placement list, moves with real
 * bytes, and LRU eviction under VRAM pressure (drivers/gpu/drm/ttm/ttm_bo.c
 * ttm_bo_validate / ttm_bo_evict / ttm_mem_evict_first, drivers/gpu/drm/amd/amdgpu/
 * amdgpu_ttm.c amdgpu_bo_move / amdgpu_move_blit, amdgpu_object.c amdgpu_bo_move_notify,
 * Linux 6.12).
 *
 * `amdgpuBoValidate` (reservation lock held) keeps the BO where it is when that
 * satisfies a place of the list; otherwise it tries each place in order. VRAM that does
 * not fit is made by evicting the least recently used unpinned BOs resident in VRAM
 * (in the visible window when the place asks for it) to GTT; a victim whose
 * reservation cannot be trylocked is skipped, as ttm_bo_evict_swapout_allowable does.
 * -ENOMEM when no place can be had.
 *
 * `amdgpuBoMove` is amdgpu_bo_move for a BO with memory: first amdgpu_bo_move_notify —
 * dma_buf_move_notify on its exported dma-buf under the reservation lock, and the CPU
 * mappings zapped — then a wait for every fence of the reservation object
 * (DMA_RESV_USAGE_BOOKKEEP: importers' work included; the exporter must not touch or
 * reuse the memory before they finished, spec/driver-side.md §8 pitfall 5), then an SDMA
 * copy on the GPU's ring whose fence is added as a KERNEL fence (so importers that
 * re-map wait for the move), then the old memory is freed. New VRAM is cleared
 * (AMDGPU_GEM_CREATE_VRAM_CLEARED is forced by GEM_CREATE).
 */
import { dmaBufMoveNotify } from '../../../kernel/dma-buf/dma-buf.ts';
import type { DmaFence } from '../../../kernel/dma-buf/dma-fence.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DmaResvIter,
  dmaResvAddFence,
  dmaResvAssertHeld,
  dmaResvForEachFence,
  dmaResvReserveFences,
  dmaResvTrylock,
  dmaResvUnlock,
  dmaResvWaitTimeout,
} from '../../../kernel/dma-buf/dma-resv.ts';
import { errno } from '../../../kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../../kernel/jiffies.ts';
import { allocPages, PAGE_SIZE } from '../../../kernel/mm/page.ts';
import type { AmdgpuDevice } from './amdgpu.ts';
import {
  type AmdgpuBo,
  type AmdgpuMem,
  type AmdgpuPlace,
  amdgpuBoTouch,
  amdgpuBoUnmapVirtual,
  amdgpuPlaceCompatible,
} from './amdgpu-object.ts';
import { AMDGPU_SDMA_GBPS } from './amdgpu-ring.ts';

/** The unsignalled fences of `bo`'s reservation object (any usage), with references. */
function pendingFences(bo: AmdgpuBo): DmaFence[] {
  const out: DmaFence[] = [];
  const cursor = new DmaResvIter();
  for (const f of dmaResvForEachFence(cursor, bo.resv, DMA_RESV_USAGE_BOOKKEEP)) {
    if (!f.isSignaled()) out.push(f.get());
  }
  return out;
}

/** Allocates new memory of `bo`'s size in `place` without evicting, or null. */
function allocIn(adev: AmdgpuDevice, bo: AmdgpuBo, place: AmdgpuPlace): AmdgpuMem | null {
  if (place.type === 'vram') {
    const start = adev.vramMgr.alloc(bo.size, place);
    if (start < 0) return null;
    adev.vram.clear(start, bo.size);
    return { type: 'vram', start };
  }
  if (place.type === 'gtt') {
    if (adev.gttUsed + bo.size > adev.opts.gttSize) return null;
    const pages = allocPages(bo.size / PAGE_SIZE);
    if (!pages) return null;
    adev.gttUsed += bo.size;
    return { type: 'gtt', pages };
  }
  return { type: 'system' };
}

/** Gives back memory that `bo` no longer uses; `pending`: fences not waited for (a buggy move). */
function freeMem(adev: AmdgpuDevice, bo: AmdgpuBo, mem: AmdgpuMem, pending: DmaFence[]): void {
  if (mem.type === 'vram') adev.vramMgr.release(mem.start, bo.size, pending, bo.toString());
  else if (mem.type === 'gtt') adev.gttUsed -= bo.size;
}

/** Copies `size` bytes from one placement to another, 1 MiB at a time (the blit's bytes). */
function amdgpuMemCopy(adev: AmdgpuDevice, from: AmdgpuMem, to: AmdgpuMem, size: number): void {
  const step = 2 ** 20;
  const buf = new Uint8Array(Math.min(step, size));
  for (let off = 0; off < size; off += step) {
    const piece = buf.subarray(0, Math.min(step, size - off));
    memAccess(adev, from, off, piece, false);
    memAccess(adev, to, off, piece, true);
  }
}

/** Reads or writes `buf` at byte `off` of a placement. */
function memAccess(adev: AmdgpuDevice, mem: AmdgpuMem, off: number, buf: Uint8Array, write: boolean): void {
  if (mem.type === 'vram') {
    if (write) adev.vram.write(mem.start + off, buf);
    else adev.vram.read(mem.start + off, buf);
    return;
  }
  if (mem.type !== 'gtt') return;
  for (let at = 0; at < buf.length; ) {
    const o = off + at;
    const po = o % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - po, buf.length - at);
    const page = mem.pages[Math.floor(o / PAGE_SIZE)].data;
    if (write) page.set(buf.subarray(at, at + n), po);
    else buf.set(page.subarray(po, po + n), at);
    at += n;
  }
}

/**
 * amdgpu_bo_move_notify(): the BO is about to move: importers of its dma-buf are told
 * (dma_buf_move_notify, reservation lock held) and CPU mappings are zapped.
 */
export async function amdgpuBoMoveNotify(bo: AmdgpuBo): Promise<void> {
  dmaResvAssertHeld(bo.resv, 'amdgpu_bo_move_notify');
  if (bo.dmaBuf && bo.importAttach === null) await dmaBufMoveNotify(bo.dmaBuf);
  amdgpuBoUnmapVirtual(bo);
}

/**
 * amdgpu_bo_move(): moves `bo` (reservation lock held) into `newMem`, already allocated:
 * notify, wait for every fence, copy on the ring (a KERNEL fence), free the old memory.
 * Returns 0 or -errno (-EINTR, -EIO when the copy failed; then `newMem` is freed).
 */
export async function amdgpuBoMove(bo: AmdgpuBo, newMem: AmdgpuMem): Promise<number> {
  const adev = bo.adev;
  const old = bo.mem;
  dmaResvAssertHeld(bo.resv, 'amdgpu_bo_move');
  if (old.type === 'system') {
    bo.mem = newMem;
    amdgpuBoTouch(bo);
    adev.traceMem();
    return 0;
  }
  await amdgpuBoMoveNotify(bo);
  let pending: DmaFence[] = [];
  if (adev.opts.skipMoveWait) {
    pending = pendingFences(bo);
  } else {
    const r = await dmaResvWaitTimeout(bo.resv, DMA_RESV_USAGE_BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT);
    if (r < 0) {
      freeMem(adev, bo, newMem, []);
      return r;
    }
  }
  // amdgpu_move_blit(): the copy runs on SDMA; its fence guards the new placement.
  const size = bo.size;
  const endOf = (m: AmdgpuMem) => (m.type === 'vram' ? adev.pdev : adev.pdev.socket);
  const fence = adev.ring.submit(
    (onComplete) =>
      adev.transfers.start({
        src: endOf(old),
        dst: endOf(newMem),
        bytes: size,
        initiator: 'src',
        maxRateGBps: old.type === 'vram' && newMem.type === 'vram' ? AMDGPU_SDMA_GBPS : undefined,
        label: `${adev.name} TTM move ${old.type} -> ${newMem.type} ${size} B`,
        copy: () => amdgpuMemCopy(adev, old, newMem, size),
        onComplete,
      }),
    [],
  );
  if (dmaResvReserveFences(bo.resv, 1) === 0) dmaResvAddFence(bo.resv, fence, DMA_RESV_USAGE_KERNEL);
  const w = await fence.wait(false);
  const err = fence.error;
  fence.put();
  if (w < 0 || err) {
    freeMem(adev, bo, newMem, []);
    for (const f of pending) f.put();
    return w < 0 ? w : err;
  }
  bo.mem = newMem;
  bo.moves++;
  freeMem(adev, bo, old, pending);
  for (const f of pending) f.put();
  amdgpuBoTouch(bo);
  adev.traceMem();
  return 0;
}

/** ttm_bo_evict(): moves an unpinned VRAM BO to GTT (its reservation lock held). 0 or -errno. */
export async function amdgpuBoEvict(bo: AmdgpuBo): Promise<number> {
  const gtt = allocIn(bo.adev, bo, { type: 'gtt', visibleOnly: false, topdown: false });
  if (!gtt) return -errno.ENOMEM;
  return amdgpuBoMove(bo, gtt);
}

/** Evicts LRU BOs until `place` has room for `bo` (ttm_mem_evict_first in a loop). The memory, or null. */
async function allocEvicting(
  adev: AmdgpuDevice,
  bo: AmdgpuBo,
  place: AmdgpuPlace,
): Promise<AmdgpuMem | null> {
  for (;;) {
    const mem = allocIn(adev, bo, place);
    if (mem || place.type !== 'vram') return mem;
    let evicted = false;
    for (const v of [...adev.lru]) {
      if (v === bo || v.pinCount > 0 || v.mem.type !== 'vram') continue;
      if (place.visibleOnly && v.mem.start >= adev.visibleVramSize) continue;
      const own = v.resv === bo.resv;
      if (!own && !dmaResvTrylock(v.resv)) continue;
      const r = await amdgpuBoEvict(v);
      if (!own) dmaResvUnlock(v.resv);
      if (r) return null;
      evicted = true;
      break;
    }
    if (!evicted) return null;
  }
}

/**
 * ttm_bo_validate(): makes the BO satisfy one place of `places` (reservation lock held),
 * moving it (and evicting others) when needed. 0, -EINVAL for a pinned BO that would have
 * to move, -ENOMEM when nothing fits.
 */
export async function amdgpuBoValidate(bo: AmdgpuBo, places: AmdgpuPlace[]): Promise<number> {
  dmaResvAssertHeld(bo.resv, 'ttm_bo_validate');
  if (places.some((p) => amdgpuPlaceCompatible(bo, p))) {
    amdgpuBoTouch(bo);
    return 0;
  }
  if (bo.pinCount > 0) return -errno.EINVAL;
  for (const place of places) {
    const mem = await allocEvicting(bo.adev, bo, place);
    if (mem) return amdgpuBoMove(bo, mem);
  }
  return -errno.ENOMEM;
}
