/**
 * GEM objects backed by shmem pages (drivers/gpu/drm/drm_gem_shmem_helper.c,
 * include/drm/drm_gem_shmem_helper.h, Linux 6.12) — what vgem's buffers are.
 *
 * An object owns a shmem file of its size ("drm mm object"); its pages are the file's
 * page cache, so every user (a mapping of the DRM fd, a mapping of an exported dma-buf,
 * an importer's DMA through an sg_table) reads and writes the same bytes. Users that need
 * the pages count them in `pagesUseCount` (mmap, vmap, pin). A mapping resolves each
 * page on first touch from its position in the VMA (6.12 ignores the VMA's page offset
 * there: the fake offset is in it); a page beyond the object is SIGBUS. Copy-on-write
 * mappings (MAP_PRIVATE of a writable file) are refused with -EINVAL.
 *
 * Dumb buffers: pitch = ceil(width * bpp / 8) and size = PAGE_ALIGN(pitch * height),
 * computed in 32-bit arithmetic as the kernel does (the core already rejected sizes that
 * overflow; drm-dumb-buffers.ts).
 *
 * An imported object (PRIME of a foreign dma-buf) has no pages of its own: it keeps the
 * importer's sg_table, shares the exporter's reservation object, maps through the
 * exporter (dma_buf_mmap), and its free unmaps, detaches and puts the dma-buf.
 *
 * Model notes: the page array of a pinned object is not materialised up front (the
 * shmem cache allocates a page on first use), so a 4 GiB dumb buffer costs host memory
 * only for what is touched. The VMA open/close callbacks run synchronously in the model's
 * mm and skip the reservation lock the kernel takes around the page count; nothing can
 * contend for it there (the mmap lock is held and the count only moves under it).
 */

import type { DmaBufAttachment } from '../../../kernel/dma-buf/dma-buf.ts';
import { dmaBufMmap } from '../../../kernel/dma-buf/dma-buf.ts';
import { dmaResvAssertHeld, dmaResvLock, dmaResvUnlock } from '../../../kernel/dma-buf/dma-resv.ts';
import { type ErrPtr, errPtr, isErr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { type IosysMap, iosysMapSetVaddr } from '../../../kernel/iosys-map.ts';
import { DMA_BIDIRECTIONAL, dmaUnmapSgtable } from '../../../kernel/mm/dma-mapping.ts';
import {
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_SHARED,
  type VmAreaStruct,
  type VmOperations,
} from '../../../kernel/mm/mmap.ts';
import { PAGE_SHIFT, PAGE_SIZE, type Page, pageAlign } from '../../../kernel/mm/page.ts';
import { type SgTable, sgFreeTable } from '../../../kernel/mm/scatterlist.ts';
import { shmemInfo } from '../../../kernel/mm/shmem.ts';
import type { DrmDevice, DrmModeCreateDumbArgs } from './drm-drv.ts';
import { pageAlignU32, u32 } from './drm-dumb-buffers.ts';
import type { DrmFile } from './drm-file.ts';
import {
  DrmGemObject,
  type DrmGemObjectFuncs,
  drmGemCreateMmapOffset,
  drmGemHandleCreate,
  drmGemObjectInit,
  drmGemObjectPut,
  drmGemObjectRelease,
  drmGemPrivateObjectInit,
  drmGemVmClose,
  drmGemVmOpen,
} from './drm-gem.ts';
import { drmPrimeGemDestroy, drmPrimePagesToSg } from './drm-prime.ts';

/** A shmem-backed GEM object (struct drm_gem_shmem_object). */
export class DrmGemShmemObject extends DrmGemObject {
  /** Users of the pages (pages_use_count). */
  pagesUseCount = 0;
  /** Kernel mappings (vmap_use_count). */
  vmapUseCount = 0;
  /** The kernel mapping while vmapped. */
  vaddr: readonly Page[] | null = null;
  /** An imported object's sg_table (or a driver's own mapped table), or null. */
  sgt: SgTable | null = null;
  /** madvise state: >= 0 usable, < 0 purged. */
  madv = 0;
  /** Map write-combined (vgem sets it; dma-buf imports clear it). */
  mapWc = false;
}

/** to_drm_gem_shmem_obj(). */
export function toDrmGemShmemObj(obj: DrmGemObject): DrmGemShmemObject {
  return obj as DrmGemShmemObject;
}

/** The object's page `index` from its shmem file (allocated on first use), or null. */
export function drmGemShmemPage(shmem: DrmGemShmemObject, index: number): Page | null {
  const filp = shmem.filp;
  if (!filp) return null;
  const info = shmemInfo(filp.inode);
  return info ? info.getPage(index, shmem.size / PAGE_SIZE) : null;
}

/** All the object's pages, in order (drm_gem_get_pages materialised), or null on allocation failure. */
export function drmGemShmemPages(shmem: DrmGemShmemObject): Page[] | null {
  const n = shmem.size / PAGE_SIZE;
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const p = drmGemShmemPage(shmem, i);
    if (!p) return null;
    pages.push(p);
  }
  return pages;
}

/** drm_gem_shmem_get_pages(): counts a page user; reservation lock held (or the model's VMA path). */
export function drmGemShmemGetPages(shmem: DrmGemShmemObject): number {
  shmem.pagesUseCount++;
  return 0;
}

/** drm_gem_shmem_put_pages(): drops a page user. */
export function drmGemShmemPutPages(shmem: DrmGemShmemObject): void {
  if (shmem.pagesUseCount === 0) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.put_pages_underflow',
      `WARNING: drm_gem_shmem_put_pages on ${shmem} with no users`,
    );
    return;
  }
  shmem.pagesUseCount--;
}

/** drm_gem_shmem_pin_locked(). */
export function drmGemShmemPinLocked(shmem: DrmGemShmemObject): number {
  dmaResvAssertHeld(shmem.resv, 'drm_gem_shmem_pin_locked');
  if (shmem.importAttach) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.pin_imported',
      `WARNING: drm_gem_shmem_pin_locked on imported ${shmem}`,
    );
  }
  return drmGemShmemGetPages(shmem);
}

/** drm_gem_shmem_unpin_locked(). */
export function drmGemShmemUnpinLocked(shmem: DrmGemShmemObject): void {
  dmaResvAssertHeld(shmem.resv, 'drm_gem_shmem_unpin_locked');
  drmGemShmemPutPages(shmem);
}

/** drm_gem_shmem_vmap(): a kernel mapping of all pages; reservation lock held. */
export function drmGemShmemVmap(shmem: DrmGemShmemObject, map: IosysMap): number {
  dmaResvAssertHeld(shmem.resv, 'drm_gem_shmem_vmap');
  if (shmem.vmapUseCount++ > 0) {
    iosysMapSetVaddr(map, shmem.vaddr!);
    return 0;
  }
  drmGemShmemGetPages(shmem);
  const pages = drmGemShmemPages(shmem);
  if (!pages) {
    drmGemShmemPutPages(shmem);
    shmem.vmapUseCount = 0;
    return -errno.ENOMEM;
  }
  shmem.vaddr = pages;
  iosysMapSetVaddr(map, pages);
  return 0;
}

/** drm_gem_shmem_vunmap(). */
export function drmGemShmemVunmap(shmem: DrmGemShmemObject, _map: IosysMap): void {
  dmaResvAssertHeld(shmem.resv, 'drm_gem_shmem_vunmap');
  if (shmem.vmapUseCount === 0) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.vunmap_underflow',
      `WARNING: drm_gem_shmem_vunmap on ${shmem} not vmapped`,
    );
    return;
  }
  if (--shmem.vmapUseCount > 0) return;
  drmGemShmemPutPages(shmem);
  shmem.vaddr = null;
}

/** drm_gem_shmem_get_sg_table(): an sg_table of the pages (not for imported objects). */
export function drmGemShmemGetSgTable(shmem: DrmGemShmemObject): SgTable | ErrPtr {
  if (shmem.importAttach) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.sg_imported',
      `WARNING: drm_gem_shmem_get_sg_table on imported ${shmem}`,
    );
  }
  const pages = drmGemShmemPages(shmem);
  if (!pages) return errPtr(-errno.ENOMEM);
  return drmPrimePagesToSg(shmem.dev, pages, pages.length);
}

/** drm_gem_shmem_free(): releases an object (imported: unmap, detach and put the dma-buf). */
export function drmGemShmemFree(shmem: DrmGemShmemObject): void | Promise<void> {
  if (shmem.importAttach) {
    return (async () => {
      await drmPrimeGemDestroy(shmem, shmem.sgt);
      shmem.sgt = null;
      drmGemObjectRelease(shmem);
    })();
  }
  if (shmem.vmapUseCount) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.free_vmapped',
      `WARNING: drm_gem_shmem_free: ${shmem} still vmapped`,
    );
  }
  if (shmem.sgt) {
    dmaUnmapSgtable(shmem.dev.dev, shmem.sgt, DMA_BIDIRECTIONAL, 0);
    sgFreeTable(shmem.sgt);
    shmem.sgt = null;
  }
  if (shmem.pagesUseCount) {
    shmem.dev.kernel.warn(
      'drm_gem_shmem.free_pages_in_use',
      `WARNING: drm_gem_shmem_free: ${shmem} freed with ${shmem.pagesUseCount} page user(s)`,
    );
  }
  drmGemObjectRelease(shmem);
}

/** drm_gem_shmem_mmap(): sets up a user mapping of the object. 0 or -errno. */
export async function drmGemShmemMmap(shmem: DrmGemShmemObject, vma: VmAreaStruct): Promise<number> {
  if (shmem.importAttach) {
    // Map through the exporter; the VMA then holds the dma-buf, not this object.
    vma.vmPrivateData = null;
    vma.vmOps = null;
    const ret = await dmaBufMmap(shmem.dmaBuf, vma, 0);
    if (!ret) await drmGemObjectPut(shmem);
    return ret;
  }
  // is_cow_mapping()
  if ((vma.vmFlags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE) return -errno.EINVAL;
  await dmaResvLock(shmem.resv, null);
  const ret = drmGemShmemGetPages(shmem);
  dmaResvUnlock(shmem.resv);
  if (ret) return ret;
  vma.vmFlags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  return 0;
}

/** The VMA operations of shmem objects (drm_gem_shmem_vm_ops). */
export const drmGemShmemVmOps: VmOperations = {
  fault(vmf) {
    const vma = vmf.vma;
    const shmem = vma.vmPrivateData as DrmGemShmemObject;
    // Not vmf.pgoff: that holds the fake offset.
    const pageOffset = (vmf.address - vma.vmStart) >>> PAGE_SHIFT;
    if (pageOffset >= shmem.size / PAGE_SIZE || shmem.pagesUseCount === 0 || shmem.madv < 0) {
      return -errno.EFAULT; // VM_FAULT_SIGBUS
    }
    return drmGemShmemPage(shmem, pageOffset) ?? -errno.ENOMEM;
  },
  open(vma) {
    const shmem = vma.vmPrivateData as DrmGemShmemObject;
    if (shmem.pagesUseCount === 0) {
      shmem.dev.kernel.warn(
        'drm_gem_shmem.vm_open_unpinned',
        `WARNING: drm_gem_shmem_vm_open on ${shmem} without pages`,
      );
    } else {
      shmem.pagesUseCount++;
    }
    drmGemVmOpen(vma);
  },
  close(vma) {
    drmGemShmemPutPages(vma.vmPrivateData as DrmGemShmemObject);
    drmGemVmClose(vma);
  },
};

/** drm_gem_shmem_funcs: the default operations of shmem objects. */
export const drmGemShmemFuncs: DrmGemObjectFuncs = {
  free: (obj) => drmGemShmemFree(toDrmGemShmemObj(obj)),
  pin: (obj) => drmGemShmemPinLocked(toDrmGemShmemObj(obj)),
  unpin: (obj) => drmGemShmemUnpinLocked(toDrmGemShmemObj(obj)),
  getSgTable: (obj) => drmGemShmemGetSgTable(toDrmGemShmemObj(obj)),
  vmap: (obj, map) => drmGemShmemVmap(toDrmGemShmemObj(obj), map),
  vunmap: (obj, map) => drmGemShmemVunmap(toDrmGemShmemObj(obj), map),
  mmap: (obj, vma) => drmGemShmemMmap(toDrmGemShmemObj(obj), vma),
  vmOps: drmGemShmemVmOps,
};

/**
 * __drm_gem_shmem_create(): a new object of PAGE_ALIGN(size) bytes through the driver's
 * gem_create_object (or a plain one), with a shmem file unless `priv` (imports), and a
 * fake mmap offset. The object (one reference) or an error pointer.
 */
export function drmGemShmemCreateInternal(
  dev: DrmDevice,
  size: number,
  priv: boolean,
): DrmGemShmemObject | ErrPtr {
  size = pageAlign(size);
  let shmem: DrmGemShmemObject;
  if (dev.driver.gemCreateObject) {
    const obj = dev.driver.gemCreateObject(dev, size);
    if (isErr(obj)) return obj;
    shmem = toDrmGemShmemObj(obj);
  } else {
    shmem = new DrmGemShmemObject();
  }
  if (!shmem.funcs) shmem.funcs = drmGemShmemFuncs;
  if (priv) {
    drmGemPrivateObjectInit(dev, shmem, size);
    shmem.mapWc = false;
  } else {
    drmGemObjectInit(dev, shmem, size);
  }
  const ret = drmGemCreateMmapOffset(shmem);
  if (ret) {
    drmGemObjectRelease(shmem);
    return errPtr(ret);
  }
  return shmem;
}

/** drm_gem_shmem_create(): a shmem object of `size` bytes. */
export function drmGemShmemCreate(dev: DrmDevice, size: number): DrmGemShmemObject | ErrPtr {
  return drmGemShmemCreateInternal(dev, size, false);
}

/** drm_gem_shmem_create_with_handle(): creates an object and a handle for it (which then holds it). */
async function createWithHandle(file: DrmFile, dev: DrmDevice, size: number): Promise<number> {
  const shmem = drmGemShmemCreate(dev, size);
  if (isErr(shmem)) return shmem.err;
  const handle = await drmGemHandleCreate(file, shmem);
  await drmGemObjectPut(shmem);
  return handle;
}

/** drm_gem_shmem_dumb_create(): pitch, size and a handle for a dumb buffer. */
export async function drmGemShmemDumbCreate(
  file: DrmFile,
  dev: DrmDevice,
  args: DrmModeCreateDumbArgs,
): Promise<number> {
  const minPitch = Math.floor(u32(BigInt(args.width) * BigInt(args.bpp) + 7n) / 8);
  if (!args.pitch || !args.size) {
    args.pitch = minPitch;
    args.size = pageAlignU32(u32(BigInt(args.pitch) * BigInt(args.height)));
  } else {
    if (args.pitch < minPitch) args.pitch = minPitch;
    if (args.size < u32(BigInt(args.pitch) * BigInt(args.height))) {
      args.size = pageAlignU32(u32(BigInt(args.pitch) * BigInt(args.height)));
    }
  }
  const handle = await createWithHandle(file, dev, args.size);
  if (handle < 0) return handle;
  args.handle = handle;
  return 0;
}

/** drm_gem_shmem_prime_import_sg_table(): a private object wrapping an imported buffer's table. */
export function drmGemShmemPrimeImportSgTable(
  dev: DrmDevice,
  attach: DmaBufAttachment,
  sgt: SgTable,
): DrmGemShmemObject | ErrPtr {
  const shmem = drmGemShmemCreateInternal(dev, pageAlign(attach.dmabuf.size), true);
  if (isErr(shmem)) return shmem;
  shmem.sgt = sgt;
  return shmem;
}
