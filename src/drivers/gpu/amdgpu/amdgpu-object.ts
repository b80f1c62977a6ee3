/**
 * amdgpu buffer objects (drivers/gpu/drm/amd/amdgpu/amdgpu_object.c, amdgpu_object.h,
 * amdgpu_gem.c amdgpu_gem_object_free / amdgpu_gem_object_mmap, amdgpu_ttm.c
 * amdgpu_ttm_fault, Linux 6.12).
 *
 * A BO is a GEM object with a placement: a VRAM range, GTT pages (system pages the GPU
 * reaches through the GART), or nothing (SYSTEM: an invalidated imported BO). It
 * remembers the domains userspace preferred and allowed and its creation flags.
 * `amdgpuBoPlacementFromDomain` turns domains into an ordered list of places as 6.12
 * does: VRAM first (limited to the CPU-visible window with CPU_ACCESS_REQUIRED, else
 * taken top-down), then GTT, then CPU. `amdgpuBoPin` validates into the domains (must
 * already lie in them when pinned: -EINVAL) and counts pins; pinned BOs are never
 * evicted.
 *
 * CPU mappings (GEM_MMAP offset on the render node, or mmap of an exported dma-buf)
 * resolve each page at fault time from the BO's current placement — a VRAM page through
 * the BAR (no struct page), or the GTT page — and every move zaps them, so the next
 * access faults the new place in (ttm_bo_unmap_virtual). Model note: the fault handler
 * cannot migrate (it cannot sleep in the model), so a BO outside the visible window
 * faults with SIGBUS; CPU_ACCESS_REQUIRED BOs are always inside it.
 */
import { dmaResvLock, dmaResvUnlock } from '../../../kernel/dma-buf/dma-resv.ts';
import { errno } from '../../../kernel/errno.ts';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_SHARED,
  type VmAreaStruct,
  type VmOperations,
} from '../../../kernel/mm/mmap.ts';
import { PAGE_SHIFT, PAGE_SIZE, type Page } from '../../../kernel/mm/page.ts';
import type { SgTable } from '../../../kernel/mm/scatterlist.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_DOMAIN_CPU,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
} from '../../../uapi/amdgpu.ts';
import {
  DrmGemObject,
  type DrmGemObjectFuncs,
  drmGemObjectRelease,
  drmGemPrivateObjectInit,
  drmGemVmClose,
  drmGemVmOpen,
} from '../drm/drm-gem.ts';
import { drmVmaNodeStart } from '../drm/drm-vma-manager.ts';
import type { AmdgpuDevice } from './amdgpu.ts';

/** Where a BO's bytes are. */
export type AmdgpuMem =
  | { readonly type: 'vram'; readonly start: number }
  | { readonly type: 'gtt'; readonly pages: Page[] }
  | { readonly type: 'system' };

/** One place of a placement list (struct ttm_place, reduced). */
export interface AmdgpuPlace {
  /** TTM_PL_VRAM, TTM_PL_TT or TTM_PL_SYSTEM. */
  readonly type: 'vram' | 'gtt' | 'system';
  /** VRAM only inside the CPU-visible window (lpfn = visible_vram_size). */
  readonly visibleOnly: boolean;
  /** TTM_PL_FLAG_TOPDOWN. */
  readonly topdown: boolean;
}

/** A buffer object (struct amdgpu_bo). */
export class AmdgpuBo extends DrmGemObject {
  /** The GPU. */
  adev!: AmdgpuDevice;
  /** The domains userspace prefers (AMDGPU_GEM_DOMAIN_*). */
  preferredDomains = 0;
  /** The domains the BO may live in. */
  allowedDomains = 0;
  /** AMDGPU_GEM_CREATE_* flags. */
  flags = 0;
  /** The current placement. */
  mem: AmdgpuMem = { type: 'system' };
  /** Pin count (tbo.pin_count). */
  pinCount = 0;
  /** `device`: the GPU's own memory; `sg`: an imported dma-buf (ttm_bo_type_sg). */
  kind: 'device' | 'sg' = 'device';
  /** The mapping of an imported BO while valid (ttm->sg), else null. */
  importSgt: SgTable | null = null;
  /** User mappings, zapped on every move. */
  readonly vmas = new Set<VmAreaStruct>();
  /** Number of moves (placement changes after creation). */
  moves = 0;
}

/** gem_to_amdgpu_bo(): the BO of a GEM object of an amdgpu device, or null. */
export function gemToAmdgpuBo(obj: DrmGemObject | null | undefined): AmdgpuBo | null {
  return obj instanceof AmdgpuBo ? obj : null;
}

/** amdgpu_mem_type_to_domain(). */
export function amdgpuMemTypeToDomain(mem: AmdgpuMem): number {
  return mem.type === 'vram'
    ? AMDGPU_GEM_DOMAIN_VRAM
    : mem.type === 'gtt'
      ? AMDGPU_GEM_DOMAIN_GTT
      : AMDGPU_GEM_DOMAIN_CPU;
}

/** amdgpu_bo_placement_from_domain(): the ordered places for `domains` under the BO's flags. */
export function amdgpuBoPlacementFromDomain(bo: AmdgpuBo, domains: number): AmdgpuPlace[] {
  const places: AmdgpuPlace[] = [];
  const cpuAccess = (bo.flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) !== 0;
  if (domains & AMDGPU_GEM_DOMAIN_VRAM)
    places.push({ type: 'vram', visibleOnly: cpuAccess, topdown: !cpuAccess });
  if (domains & AMDGPU_GEM_DOMAIN_GTT) places.push({ type: 'gtt', visibleOnly: false, topdown: false });
  if (domains & AMDGPU_GEM_DOMAIN_CPU || places.length === 0) {
    places.push({ type: 'system', visibleOnly: false, topdown: false });
  }
  return places;
}

/** Whether the BO's placement satisfies `place` (ttm_resource_compatible). */
export function amdgpuPlaceCompatible(bo: AmdgpuBo, place: AmdgpuPlace): boolean {
  const m = bo.mem;
  if (m.type !== place.type) return false;
  if (m.type === 'vram' && place.visibleOnly) return m.start + bo.size <= bo.adev.visibleVramSize;
  return true;
}

/** Moves the BO to the most recently used end of the VRAM LRU (ttm_bo_move_to_lru_tail). */
export function amdgpuBoTouch(bo: AmdgpuBo): void {
  const lru = bo.adev.lru;
  const i = lru.indexOf(bo);
  if (i >= 0) lru.splice(i, 1);
  if (bo.mem.type === 'vram') lru.push(bo);
}

/** ttm_bo_unmap_virtual(): drops every CPU page-table entry of the BO. */
export function amdgpuBoUnmapVirtual(bo: AmdgpuBo): void {
  for (const vma of bo.vmas) vma.zapPtes();
}

/** The page backing byte `offset` of the BO in its current placement, or null. */
export function amdgpuBoPage(bo: AmdgpuBo, offset: number): Page | null {
  const m = bo.mem;
  if (m.type === 'vram') return bo.adev.vram.page(m.start + offset);
  if (m.type === 'gtt') return m.pages[Math.floor(offset / PAGE_SIZE)] ?? null;
  return null;
}

/** The VMA operations of BO mappings (amdgpu_gem_vm_ops: ttm_bo_vm_open/close, amdgpu_gem_fault). */
export const amdgpuGemVmOps: VmOperations = {
  fault(vmf) {
    const vma = vmf.vma;
    const bo = vma.vmPrivateData as AmdgpuBo;
    const index = ((vmf.address - vma.vmStart) >>> PAGE_SHIFT) + vma.vmPgoff - drmVmaNodeStart(bo.vmaNode);
    const offset = index * PAGE_SIZE;
    if (offset >= bo.size) return -errno.EFAULT;
    if (bo.mem.type === 'vram' && bo.mem.start + offset >= bo.adev.visibleVramSize) return -errno.EFAULT;
    return amdgpuBoPage(bo, offset) ?? -errno.EFAULT;
  },
  open(vma) {
    (vma.vmPrivateData as AmdgpuBo).vmas.add(vma);
    drmGemVmOpen(vma);
  },
  close(vma) {
    (vma.vmPrivateData as AmdgpuBo).vmas.delete(vma);
    drmGemVmClose(vma);
  },
};

/** amdgpu_gem_object_mmap(): a shared mapping resolved at fault time. -EINVAL for a COW mapping. */
export function amdgpuGemObjectMmap(obj: DrmGemObject, vma: VmAreaStruct): number {
  const bo = obj as AmdgpuBo;
  if ((vma.vmFlags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE) return -errno.EINVAL;
  if (bo.kind === 'sg') return -errno.EPERM;
  vma.vmFlags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  bo.vmas.add(vma);
  return 0;
}

/** Releases the BO's memory (amdgpu_bo_release_notify + ttm_resource_free); resv held or BO dead. */
export function amdgpuBoFreeMem(bo: AmdgpuBo): void {
  const adev = bo.adev;
  const m = bo.mem;
  if (m.type === 'vram') adev.vramMgr.release(m.start, bo.size, [], bo.toString());
  else if (m.type === 'gtt') adev.gttUsed -= bo.size;
  bo.mem = { type: 'system' };
  amdgpuBoTouch(bo);
  adev.traceMem();
}

/** The hooks an imported BO's free calls (set by amdgpu-dma-buf.ts, which owns the import side). */
export const amdgpuImportHooks: { destroy: ((bo: AmdgpuBo) => Promise<void>) | null } = { destroy: null };

/** amdgpu_gem_object_free(): frees the memory (or detaches an imported buffer), then the object. */
async function amdgpuGemObjectFree(obj: DrmGemObject): Promise<void> {
  const bo = obj as AmdgpuBo;
  if (bo.kind === 'sg') {
    await amdgpuImportHooks.destroy?.(bo);
  } else {
    await dmaResvLock(bo.resv, null);
    amdgpuBoFreeMem(bo);
    dmaResvUnlock(bo.resv);
  }
  drmGemObjectRelease(bo);
}

/** The export hook (set by amdgpu-dma-buf.ts). */
export const amdgpuExportHook: { export: DrmGemObjectFuncs['export'] } = { export: undefined };

/** amdgpu_gem_object_funcs. */
export const amdgpuGemObjectFuncs: DrmGemObjectFuncs = {
  free: amdgpuGemObjectFree,
  export: (obj, flags) => amdgpuExportHook.export!(obj, flags),
  mmap: amdgpuGemObjectMmap,
  vmOps: amdgpuGemVmOps,
};

/** A new BO of `size` (page aligned) bytes on `adev`, not placed yet (amdgpu_bo_create, first half). */
export function amdgpuBoAlloc(adev: AmdgpuDevice, size: number, domains: number, flags: number): AmdgpuBo {
  const bo = new AmdgpuBo();
  drmGemPrivateObjectInit(adev.ddev, bo, size);
  bo.adev = adev;
  bo.preferredDomains = domains;
  bo.allowedDomains = domains;
  // amdgpu_bo_create: a VRAM-only BO may also go to GTT (allowed_domains) unless it is a kernel BO.
  if (bo.allowedDomains === AMDGPU_GEM_DOMAIN_VRAM) bo.allowedDomains |= AMDGPU_GEM_DOMAIN_GTT;
  bo.flags = flags;
  bo.funcs = amdgpuGemObjectFuncs;
  return bo;
}
