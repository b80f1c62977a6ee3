/**
 * The amdgpu GEM ioctls: GEM_CREATE and GEM_MMAP (drivers/gpu/drm/amd/amdgpu/amdgpu_gem.c
 * amdgpu_gem_create_ioctl / amdgpu_gem_object_create / amdgpu_gem_mmap_ioctl,
 * amdgpu_object.c amdgpu_bo_create / amdgpu_bo_validate_size, Linux 6.12).
 *
 * GEM_CREATE checks in 6.12's order: domain_flags outside the flags userspace may pass
 * (CPU_ACCESS_REQUIRED, NO_CPU_ACCESS, CPU_GTT_USWC, VRAM_CLEARED, VM_ALWAYS_VALID,
 * EXPLICIT_SYNC, ENCRYPTED, GFX12_DCC, DISCARDABLE) -> -EINVAL; domains outside
 * AMDGPU_GEM_DOMAIN_MASK -> -EINVAL; ENCRYPTED without TMZ (the model's GPU has none)
 * -> -EINVAL; VRAM_CLEARED is then forced; GDS/GWS/OA BOs may not be VM_ALWAYS_VALID
 * (-EINVAL). The size is rounded up to pages; a size larger than the domain's pool is
 * -ENOMEM (amdgpu_bo_validate_size). When the placement fails, the retries of 6.12
 * follow: drop CPU_ACCESS_REQUIRED, then allow GTT for a VRAM-only request. On success
 * the handle replaces the whole union (`out.handle`).
 *
 * Model notes: size 0 is -EINVAL (TTM refuses an empty resource); GDS, GWS, OA and
 * DOORBELL placements are not modelled (-EINVAL); a CPU-domain BO is placed like GTT
 * (page-backed system memory), without a GART mapping.
 *
 * GEM_MMAP: an unknown handle is -ENOENT; a BO created NO_CPU_ACCESS (or imported, whose
 * pages belong to the exporter) is -EPERM; else the fake offset of the BO.
 */
import { dmaResvLock, dmaResvUnlock } from '../../../kernel/dma-buf/dma-resv.ts';
import { errno } from '../../../kernel/errno.ts';
import { PAGE_SIZE } from '../../../kernel/mm/page.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_CPU_GTT_USWC,
  AMDGPU_GEM_CREATE_DISCARDABLE,
  AMDGPU_GEM_CREATE_ENCRYPTED,
  AMDGPU_GEM_CREATE_EXPLICIT_SYNC,
  AMDGPU_GEM_CREATE_GFX12_DCC,
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS,
  AMDGPU_GEM_CREATE_VM_ALWAYS_VALID,
  AMDGPU_GEM_CREATE_VRAM_CLEARED,
  AMDGPU_GEM_DOMAIN_CPU,
  AMDGPU_GEM_DOMAIN_DOORBELL,
  AMDGPU_GEM_DOMAIN_GDS,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_GWS,
  AMDGPU_GEM_DOMAIN_MASK,
  AMDGPU_GEM_DOMAIN_OA,
  AMDGPU_GEM_DOMAIN_VRAM,
  drmAmdgpuGemCreateIn,
  drmAmdgpuGemCreateOut,
  drmAmdgpuGemMmapIn,
  drmAmdgpuGemMmapOut,
} from '../../../uapi/amdgpu.ts';
import type { DrmDevice } from '../drm/drm-drv.ts';
import type { DrmFile } from '../drm/drm-file.ts';
import {
  drmGemCreateMmapOffset,
  drmGemHandleCreate,
  drmGemObjectLookup,
  drmGemObjectPut,
} from '../drm/drm-gem.ts';
import { drmVmaNodeOffsetAddr } from '../drm/drm-vma-manager.ts';
import { type AmdgpuDevice, drmToAdev } from './amdgpu.ts';
import { type AmdgpuBo, amdgpuBoAlloc, amdgpuBoPlacementFromDomain, gemToAmdgpuBo } from './amdgpu-object.ts';
import { amdgpuBoValidate } from './amdgpu-ttm.ts';

/** The domain_flags GEM_CREATE accepts from userspace (6.12). */
export const AMDGPU_GEM_CREATE_USER_FLAGS =
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED |
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS |
  AMDGPU_GEM_CREATE_CPU_GTT_USWC |
  AMDGPU_GEM_CREATE_VRAM_CLEARED |
  AMDGPU_GEM_CREATE_VM_ALWAYS_VALID |
  AMDGPU_GEM_CREATE_EXPLICIT_SYNC |
  AMDGPU_GEM_CREATE_ENCRYPTED |
  AMDGPU_GEM_CREATE_GFX12_DCC |
  AMDGPU_GEM_CREATE_DISCARDABLE;

/**
 * amdgpu_bo_create() of a device BO: allocates and places it (evicting under VRAM
 * pressure). The BO (one reference) or -errno.
 */
export async function amdgpuBoCreate(
  adev: AmdgpuDevice,
  size: number,
  domains: number,
  flags: number,
): Promise<AmdgpuBo | number> {
  // amdgpu_bo_validate_size()
  const pool = domains & AMDGPU_GEM_DOMAIN_VRAM ? adev.vramMgr.size : adev.opts.gttSize;
  if (domains & (AMDGPU_GEM_DOMAIN_VRAM | AMDGPU_GEM_DOMAIN_GTT) && size > pool) return -errno.ENOMEM;
  const bo = amdgpuBoAlloc(adev, size, domains, flags);
  await dmaResvLock(bo.resv, null);
  const place = domains & (AMDGPU_GEM_DOMAIN_VRAM | AMDGPU_GEM_DOMAIN_GTT) ? domains : AMDGPU_GEM_DOMAIN_GTT;
  const r = await amdgpuBoValidate(bo, amdgpuBoPlacementFromDomain(bo, place));
  dmaResvUnlock(bo.resv);
  if (r) {
    await drmGemObjectPut(bo);
    return r;
  }
  return bo;
}

/** amdgpu_gem_create_ioctl(). */
export async function amdgpuGemCreateIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const adev = drmToAdev(dev);
  if (!adev) return -errno.ENODEV;
  const args = drmAmdgpuGemCreateIn.decode(data);
  let flags = args.domain_flags as bigint;
  const domains = args.domains as bigint;
  const rawSize = args.bo_size as bigint;
  if (flags & ~BigInt(AMDGPU_GEM_CREATE_USER_FLAGS)) return -errno.EINVAL;
  if (domains & ~BigInt(AMDGPU_GEM_DOMAIN_MASK)) return -errno.EINVAL;
  if (flags & BigInt(AMDGPU_GEM_CREATE_ENCRYPTED)) return -errno.EINVAL; // no TMZ
  flags |= BigInt(AMDGPU_GEM_CREATE_VRAM_CLEARED);
  const special = AMDGPU_GEM_DOMAIN_GDS | AMDGPU_GEM_DOMAIN_GWS | AMDGPU_GEM_DOMAIN_OA;
  if (domains & BigInt(special)) {
    if (flags & BigInt(AMDGPU_GEM_CREATE_VM_ALWAYS_VALID)) return -errno.EINVAL;
    return -errno.EINVAL; // model: GDS/GWS/OA are not modelled
  }
  if (domains & BigInt(AMDGPU_GEM_DOMAIN_DOORBELL)) return -errno.EINVAL; // model: not modelled
  if (rawSize === 0n) return -errno.EINVAL;
  if (rawSize > BigInt(Number.MAX_SAFE_INTEGER)) return -errno.ENOMEM;
  const size = Math.ceil(Number(rawSize) / PAGE_SIZE) * PAGE_SIZE;
  let f = Number(flags);
  let initial = Number(domains) & (AMDGPU_GEM_DOMAIN_CPU | AMDGPU_GEM_DOMAIN_GTT | AMDGPU_GEM_DOMAIN_VRAM);
  let bo: AmdgpuBo | number;
  for (;;) {
    bo = await amdgpuBoCreate(adev, size, initial, f);
    if (typeof bo !== 'number' || bo === -errno.EINTR) break;
    if (f & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) {
      f &= ~AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
      continue;
    }
    if (initial === AMDGPU_GEM_DOMAIN_VRAM) {
      initial |= AMDGPU_GEM_DOMAIN_GTT;
      continue;
    }
    break;
  }
  if (typeof bo === 'number') return bo;
  const handle = await drmGemHandleCreate(file, bo);
  // Drop the reference from the allocation: the handle holds it now.
  await drmGemObjectPut(bo);
  if (handle < 0) return handle;
  data.fill(0);
  drmAmdgpuGemCreateOut.encode({ handle }, data);
  return 0;
}

/** amdgpu_gem_mmap_ioctl() (amdgpu_mode_dumb_mmap). */
export async function amdgpuGemMmapIoctl(_dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const { handle } = drmAmdgpuGemMmapIn.decode(data);
  const obj = drmGemObjectLookup(file, Number(handle));
  if (!obj) return -errno.ENOENT;
  const bo = gemToAmdgpuBo(obj);
  let ret = 0;
  if (!bo || bo.kind === 'sg' || bo.flags & AMDGPU_GEM_CREATE_NO_CPU_ACCESS) {
    ret = -errno.EPERM;
  } else {
    ret = drmGemCreateMmapOffset(obj);
    if (!ret) {
      data.fill(0);
      drmAmdgpuGemMmapOut.encode({ addr_ptr: drmVmaNodeOffsetAddr(obj.vmaNode) }, data);
    }
  }
  await drmGemObjectPut(obj);
  return ret;
}
