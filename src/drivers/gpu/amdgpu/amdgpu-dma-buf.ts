/**
 * amdgpu as a dma-buf exporter and importer (drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c,
 * Linux 6.12, with the 6.15 pin of f5e7fabd1f5c behind the `pinVramIfAllP2P` option).
 *
 * Export (PRIME_HANDLE_TO_FD): a VM_ALWAYS_VALID BO is refused (-EPERM); otherwise
 * drm_gem_prime_export with amdgpu's ops (exporter name "drm", the BO's reservation
 * object). The ops have pin/unpin, so the exporter is dynamic:
 * - attach: pci_p2pdma_distance(GPU, importer) < 0 (no warnings) clears `peer2peer`;
 *   attach never fails.
 * - pin (reservation lock held): 6.12 always pins into GTT, so a pinning importer (an
 *   RDMA NIC without ODP, a static importer) pushes the buffer out of VRAM and kills
 *   peer-to-peer (spec/driver-side.md §8 pitfall 4, uGDS#18). With `pinVramIfAllP2P`
 *   (6.15): start from the allowed domains, drop VRAM when any attachment lacks
 *   peer2peer, set CPU_ACCESS_REQUIRED when VRAM stays (the BAR must reach it), pin there.
 * - map (locked): an unpinned BO is validated into GTT, plus VRAM when it prefers VRAM
 *   and the attachment can do peer2peer (setting CPU_ACCESS_REQUIRED: only the visible
 *   window is reachable); 6.12 refuses a BO pinned outside GTT (-EBUSY; removed in 6.15).
 *   Then by placement: GTT -> a page-backed table (drm_prime_pages_to_sg +
 *   dma_map_sgtable; a mapping failure is -EBUSY), VRAM -> the VRAM manager's page-less
 *   table of BAR addresses, anything else -EINVAL.
 * - unmap tells the two apart by the first entry's page link.
 *
 * Import (PRIME_FD_TO_HANDLE): our own dma-buf gives back the same GEM object (so the
 * same handle in the exporting file); a foreign one becomes an SG BO sharing the
 * exporter's reservation object, attached dynamically with allow_peer2peer and
 * move_notify. The mapping is made when the GPU first uses the BO (ttm_tt bind) and
 * dropped by move_notify — after waiting for the GPU's own work on it, as the
 * TT -> SYSTEM move does (ttm_bo_wait_ctx) — and made again on the next use.
 */
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  type DmaBufOps,
  dmaBufDynamicAttach,
  dmaBufExport,
  dmaBufMapAttachment,
  dmaBufUnmapAttachment,
  getDmaBuf,
} from '../../../kernel/dma-buf/dma-buf.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  dmaResvAssertHeld,
  dmaResvLock,
  dmaResvUnlock,
  dmaResvWaitTimeout,
} from '../../../kernel/dma-buf/dma-resv.ts';
import { type ErrPtr, errPtr, isErr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../../kernel/jiffies.ts';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  type DmaDataDirection,
  dmaMapSgtable,
  dmaUnmapSgtable,
} from '../../../kernel/mm/dma-mapping.ts';
import { dmaChargeMappingCost } from '../../../kernel/mm/iommu.ts';
import { PAGE_SIZE } from '../../../kernel/mm/page.ts';
import { type SgTable, sgFreeTable } from '../../../kernel/mm/scatterlist.ts';
import { pciP2pdmaDistance } from '../../../kernel/pci/p2pdma.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_VM_ALWAYS_VALID,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
} from '../../../uapi/amdgpu.ts';
import type { DrmDevice } from '../drm/drm-drv.ts';
import {
  type DrmGemObject,
  drmGemObjectGet,
  drmGemObjectPut,
  drmGemObjectRelease,
  drmGemPrivateObjectInit,
} from '../drm/drm-gem.ts';
import {
  DRM_PRIME_EXP_NAME,
  drmGemDmabufMmap,
  drmGemDmabufRelease,
  drmPrimeGemDestroy,
  drmPrimePagesToSg,
} from '../drm/drm-prime.ts';
import { drmToAdev } from './amdgpu.ts';
import {
  AmdgpuBo,
  amdgpuBoPlacementFromDomain,
  amdgpuExportHook,
  amdgpuGemObjectFuncs,
  amdgpuImportHooks,
  amdgpuMemTypeToDomain,
} from './amdgpu-object.ts';
import { amdgpuBoValidate } from './amdgpu-ttm.ts';
import { amdgpuVramMgrAllocSgt, amdgpuVramMgrFreeSgt } from './amdgpu-vram-mgr.ts';

function boOf(dmabuf: DmaBuf): AmdgpuBo {
  return dmabuf.priv as AmdgpuBo;
}

/** amdgpu_dma_buf_attach(): no P2P route clears `peer2peer`; never fails. */
function amdgpuDmaBufAttach(dmabuf: DmaBuf, attach: DmaBufAttachment): number {
  const bo = boOf(dmabuf);
  if (pciP2pdmaDistance(bo.adev.pdev, attach.dev, false) < 0) {
    (attach as { peer2peer: boolean }).peer2peer = false;
  }
  return 0;
}

/**
 * amdgpu_bo_pin(): validates into `domains` and counts the pin. A BO already pinned must
 * lie in `domains` (-EINVAL). Reservation lock held.
 */
export async function amdgpuBoPin(bo: AmdgpuBo, domains: number): Promise<number> {
  dmaResvAssertHeld(bo.resv, 'amdgpu_bo_pin');
  if (bo.pinCount > 0) {
    if (!(domains & amdgpuMemTypeToDomain(bo.mem))) return -errno.EINVAL;
    bo.pinCount++;
    return 0;
  }
  // amdgpu_bo_pin_restricted(): only what the BO allows.
  const r = await amdgpuBoValidate(bo, amdgpuBoPlacementFromDomain(bo, domains & bo.allowedDomains));
  if (r) return r;
  bo.pinCount++;
  return 0;
}

/** amdgpu_bo_unpin(). */
export function amdgpuBoUnpin(bo: AmdgpuBo): void {
  if (bo.pinCount === 0) {
    bo.adev.kernel.warn('amdgpu.unpin_unpinned', `WARNING: amdgpu_bo_unpin: ${bo} is not pinned`, [
      bo.reportObject(),
    ]);
    return;
  }
  bo.pinCount--;
}

/** amdgpu_dma_buf_pin(): 6.12 pins into GTT; 6.15 into VRAM when every attachment is P2P. */
async function amdgpuDmaBufPin(attach: DmaBufAttachment): Promise<number> {
  const dmabuf = attach.dmabuf;
  const bo = boOf(dmabuf);
  if (!bo.adev.opts.pinVramIfAllP2P) return amdgpuBoPin(bo, AMDGPU_GEM_DOMAIN_GTT);
  dmaResvAssertHeld(dmabuf.resv, 'amdgpu_dma_buf_pin');
  let domains = bo.allowedDomains;
  if (domains & AMDGPU_GEM_DOMAIN_VRAM && dmabuf.attachments.some((a) => !a.peer2peer)) {
    domains &= ~AMDGPU_GEM_DOMAIN_VRAM;
  }
  if (domains & AMDGPU_GEM_DOMAIN_VRAM) bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
  if (!domains) {
    bo.adev.kernel.warn('amdgpu.pin_no_domain', `WARNING: amdgpu_dma_buf_pin: ${bo} has no domain left`);
    return -errno.EINVAL;
  }
  return amdgpuBoPin(bo, domains);
}

/** amdgpu_dma_buf_unpin(). */
function amdgpuDmaBufUnpin(attach: DmaBufAttachment): void {
  amdgpuBoUnpin(boOf(attach.dmabuf));
}

/** amdgpu_dma_buf_map(): validates, then a table by placement. */
async function amdgpuDmaBufMap(attach: DmaBufAttachment, dir: DmaDataDirection): Promise<SgTable | ErrPtr> {
  const bo = boOf(attach.dmabuf);
  const adev = bo.adev;
  if (bo.pinCount === 0) {
    let domains = AMDGPU_GEM_DOMAIN_GTT;
    if (bo.preferredDomains & AMDGPU_GEM_DOMAIN_VRAM && attach.peer2peer) {
      bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
      domains |= AMDGPU_GEM_DOMAIN_VRAM;
    }
    const r = await amdgpuBoValidate(bo, amdgpuBoPlacementFromDomain(bo, domains));
    if (r) return errPtr(r);
  } else if (!adev.opts.pinVramIfAllP2P && bo.mem.type !== 'gtt') {
    return errPtr(-errno.EBUSY);
  }
  const m = bo.mem;
  if (m.type === 'gtt') {
    const sgt = drmPrimePagesToSg(adev.ddev, m.pages, m.pages.length);
    if (isErr(sgt)) return sgt;
    if (dmaMapSgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC)) {
      sgFreeTable(sgt);
      return errPtr(-errno.EBUSY);
    }
    await dmaChargeMappingCost(attach.dev);
    return sgt;
  }
  if (m.type === 'vram') {
    if (!attach.peer2peer) return errPtr(-errno.EINVAL);
    return amdgpuVramMgrAllocSgt(adev.vramMgr, adev.barStart, m.start, bo.size, attach.dev, dir);
  }
  return errPtr(-errno.EINVAL);
}

/** amdgpu_dma_buf_unmap(): page-backed tables are dma-unmapped, page-less ones go back to the VRAM manager. */
async function amdgpuDmaBufUnmap(
  attach: DmaBufAttachment,
  sgt: SgTable,
  dir: DmaDataDirection,
): Promise<void> {
  if (sgt.sgl[0]?.pageLink) {
    dmaUnmapSgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
    sgFreeTable(sgt);
    await dmaChargeMappingCost(attach.dev);
  } else {
    await amdgpuVramMgrFreeSgt(attach.dev, dir, sgt);
  }
}

/** amdgpu_dmabuf_ops. */
export const amdgpuDmabufOps: DmaBufOps = {
  attach: amdgpuDmaBufAttach,
  pin: amdgpuDmaBufPin,
  unpin: amdgpuDmaBufUnpin,
  mapDmaBuf: amdgpuDmaBufMap,
  unmapDmaBuf: amdgpuDmaBufUnmap,
  release: drmGemDmabufRelease,
  mmap: drmGemDmabufMmap,
};

/** amdgpu_gem_prime_export(): -EPERM for a per-VM BO, else a dynamic dma-buf over the BO. */
export function amdgpuGemPrimeExport(obj: DrmGemObject, flags: number): DmaBuf | ErrPtr {
  const bo = obj as AmdgpuBo;
  if (bo.flags & AMDGPU_GEM_CREATE_VM_ALWAYS_VALID) return errPtr(-errno.EPERM);
  const dmabuf = dmaBufExport({
    expName: DRM_PRIME_EXP_NAME,
    ops: amdgpuDmabufOps,
    size: obj.size,
    flags,
    priv: obj,
    resv: obj.resv,
  });
  if (isErr(dmabuf)) return dmabuf;
  drmGemObjectGet(obj);
  return dmabuf;
}
amdgpuExportHook.export = amdgpuGemPrimeExport;

// ------------------------------------------------------------ the importer side

/**
 * amdgpu_dma_buf_move_notify(): the exporter moves the buffer (its reservation lock
 * held): wait for the GPU's own work on the BO, then drop the mapping; the next use maps
 * again.
 */
async function amdgpuDmaBufMoveNotify(attach: DmaBufAttachment): Promise<void> {
  const bo = attach.importerPriv as AmdgpuBo;
  if (bo.importSgt === null) return;
  await dmaResvWaitTimeout(bo.resv, DMA_RESV_USAGE_BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT);
  const sgt = bo.importSgt;
  bo.importSgt = null;
  await dmaBufUnmapAttachment(attach, sgt, DMA_BIDIRECTIONAL);
}

/** amdgpu_dma_buf_attach_ops. */
export const amdgpuDmaBufAttachOps: DmaBufAttachOps = {
  allowPeer2peer: true,
  moveNotify: amdgpuDmaBufMoveNotify,
};

/** amdgpu_ttm_backend_bind() for an imported BO: maps it if needed (reservation lock held). 0 or -errno. */
export async function amdgpuSgBoBind(bo: AmdgpuBo): Promise<number> {
  dmaResvAssertHeld(bo.resv, 'amdgpu_ttm_backend_bind');
  if (bo.importSgt) return 0;
  const sgt = await dmaBufMapAttachment(bo.importAttach, DMA_BIDIRECTIONAL);
  if (isErr(sgt)) return sgt.err;
  bo.importSgt = sgt;
  return 0;
}

/** The free of an imported BO: unmap (lock taken here), detach, drop the dma-buf. */
async function amdgpuSgBoDestroy(bo: AmdgpuBo): Promise<void> {
  const attach = bo.importAttach!;
  if (bo.importSgt) {
    await dmaResvLock(bo.resv, null);
    const sgt = bo.importSgt;
    bo.importSgt = null;
    if (sgt) await dmaBufUnmapAttachment(attach, sgt, DMA_BIDIRECTIONAL);
    dmaResvUnlock(bo.resv);
  }
  await drmPrimeGemDestroy(bo, null);
}
amdgpuImportHooks.destroy = amdgpuSgBoDestroy;

/** amdgpu_gem_prime_import(): the same object for our own dma-buf, else an SG BO over a dynamic attachment. */
export async function amdgpuGemPrimeImport(dev: DrmDevice, dmabuf: DmaBuf): Promise<DrmGemObject | ErrPtr> {
  if (dmabuf.ops === amdgpuDmabufOps) {
    const obj = dmabuf.priv as DrmGemObject;
    if (obj.dev === dev) return drmGemObjectGet(obj);
  }
  const adev = drmToAdev(dev);
  if (!adev) return errPtr(-errno.EINVAL);
  // amdgpu_dma_buf_create_obj(): an SG BO sharing the exporter's reservation object.
  const bo = new AmdgpuBo();
  drmGemPrivateObjectInit(dev, bo, Math.ceil(dmabuf.size / PAGE_SIZE) * PAGE_SIZE);
  bo.adev = adev;
  bo.kind = 'sg';
  bo.preferredDomains = AMDGPU_GEM_DOMAIN_GTT;
  bo.allowedDomains = AMDGPU_GEM_DOMAIN_GTT;
  bo.funcs = amdgpuGemObjectFuncs;
  bo.resv = dmabuf.resv;
  const attach = await dmaBufDynamicAttach(dmabuf, adev.dev, amdgpuDmaBufAttachOps, bo);
  if (isErr(attach)) {
    bo.funcs = { free: (o) => drmGemObjectRelease(o) };
    await drmGemObjectPut(bo);
    return attach;
  }
  getDmaBuf(dmabuf);
  bo.importAttach = attach;
  return bo;
}
