/**
 * PRIME: GEM objects as dma-bufs, both ways (drivers/gpu/drm/drm_prime.c,
 * include/drm/drm_prime.h, Linux 6.12).
 *
 * Export (PRIME_HANDLE_TO_FD): flags other than DRM_CLOEXEC | DRM_RDWR are -EINVAL; an
 * fd is reserved first (with the caller's O_CLOEXEC); an unknown handle is -ENOENT. The
 * first export of an object creates the dma-buf (exporter name `drm`, the object's size
 * and reservation object, file access mode from DRM_RDWR) and caches it in `obj.dmaBuf`;
 * every later export of the object — whatever its flags — returns the same dma-buf, so
 * an export without DRM_RDWR stays read-only. Each file also caches handle <-> dma-buf
 * pairs (each pair holds a dma-buf reference): re-exporting a handle and importing a
 * buffer the file already knows both hit that cache.
 *
 * Import (PRIME_FD_TO_HANDLE): a bad fd is -EBADF, a file that is not a dma-buf -EINVAL.
 * A dma-buf exported by this device gives back a handle to the original object (for the
 * exporting file, the same handle). A foreign dma-buf is attached to the device
 * (`bufinfo` then lists it under "Attached Devices"), mapped bidirectionally once, and
 * wrapped by the driver's gem_prime_import_sg_table in an object that shares the
 * exporter's reservation object; importing it again gives the same handle. Freeing that
 * object unmaps, detaches and drops the dma-buf.
 *
 * The dma-buf operations of exported objects (drm_gem_prime_dmabuf_ops) cache the sg
 * mapping per attachment, pin the object while attached, build the table from the
 * object's pages, mmap through the object (adding its fake offset to the VMA's page
 * offset, which /proc/pid/maps then shows), and vmap through it.
 */
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
  dmaBufAttach,
  dmaBufDetach,
  dmaBufExport,
  dmaBufGet,
  dmaBufMapAttachmentUnlocked,
  dmaBufPut,
  dmaBufUnmapAttachmentUnlocked,
  getDmaBuf,
} from '../../../kernel/dma-buf/dma-buf.ts';
import { type ErrPtr, errPtr, isErr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from '../../../kernel/fdtable.ts';
import type { IosysMap } from '../../../kernel/iosys-map.ts';
import { Mutex, mutexLock, mutexUnlock } from '../../../kernel/locking/mutex.ts';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_NONE,
  type DmaDataDirection,
  dmaMapSgtable,
  dmaUnmapSgtable,
} from '../../../kernel/mm/dma-mapping.ts';
import type { VmAreaStruct } from '../../../kernel/mm/mmap.ts';
import { PAGE_SHIFT, type Page } from '../../../kernel/mm/page.ts';
import { SgTable, sgAllocTableFromPagesSegment, sgFreeTable } from '../../../kernel/mm/scatterlist.ts';
import { DRM_CLOEXEC, DRM_RDWR, drmPrimeHandle } from '../../../uapi/drm.ts';
import type { DrmDevice } from './drm-drv.ts';
import type { DrmFile } from './drm-file.ts';
import {
  type DrmGemObject,
  drmGemHandleCreateTail,
  drmGemHandleDelete,
  drmGemObjectGet,
  drmGemObjectLookup,
  drmGemObjectPut,
  drmGemPin,
  drmGemUnpin,
  drmGemVmap,
  drmGemVunmap,
} from './drm-gem.ts';
import { drmVmaNodeStart } from './drm-vma-manager.ts';

/** The exporter name PRIME gives its dma-bufs (KBUILD_MODNAME of the DRM core). */
export const DRM_PRIME_EXP_NAME = 'drm';

interface DrmPrimeMember {
  dmaBuf: DmaBuf;
  handle: number;
}

/** A file's PRIME cache (struct drm_prime_file_private). */
export class DrmPrimeFilePrivate {
  /** Serialises imports and exports of the file. */
  readonly lock = new Mutex('drm_prime_file_private.lock');
  /** The handle <-> dma-buf pairs (each holds a dma-buf reference). */
  readonly members: DrmPrimeMember[] = [];
}

/** drm_prime_add_buf_handle(): remembers `dmaBuf` as `handle` (takes a dma-buf reference). */
export function drmPrimeAddBufHandle(prime: DrmPrimeFilePrivate, dmaBuf: DmaBuf, handle: number): number {
  getDmaBuf(dmaBuf);
  prime.members.push({ dmaBuf, handle });
  return 0;
}

/** drm_prime_lookup_buf_by_handle(). */
export function drmPrimeLookupBufByHandle(prime: DrmPrimeFilePrivate, handle: number): DmaBuf | null {
  return prime.members.find((m) => m.handle === handle)?.dmaBuf ?? null;
}

/** drm_prime_lookup_buf_handle(): the handle cached for `dmaBuf`, or -ENOENT. */
export function drmPrimeLookupBufHandle(prime: DrmPrimeFilePrivate, dmaBuf: DmaBuf): number {
  return prime.members.find((m) => m.dmaBuf === dmaBuf)?.handle ?? -errno.ENOENT;
}

/** drm_prime_remove_buf_handle(): forgets `handle` and drops its dma-buf reference. */
export async function drmPrimeRemoveBufHandle(prime: DrmPrimeFilePrivate, handle: number): Promise<void> {
  await mutexLock(prime.lock);
  const i = prime.members.findIndex((m) => m.handle === handle);
  if (i >= 0) {
    const [m] = prime.members.splice(i, 1);
    dmaBufPut(m.dmaBuf);
  }
  mutexUnlock(prime.lock);
}

/** drm_prime_destroy_file_private(): WARN if pairs are left (drm_gem_release removed them). */
export function drmPrimeDestroyFilePrivate(prime: DrmPrimeFilePrivate): void {
  if (prime.members.length > 0) {
    prime.members[0].dmaBuf.kernel.warn(
      'drm_prime.destroy_not_empty',
      `WARNING: drm_prime_destroy_file_private: ${prime.members.length} cached dma-buf(s) left`,
    );
  }
}

// ------------------------------------------------------------ the exporter side

/** drm_gem_dmabuf_export(): dma_buf_export that also takes an object reference for the buffer. */
export function drmGemDmabufExport(obj: DrmGemObject, flags: number): DmaBuf | ErrPtr {
  const dmabuf = dmaBufExport({
    expName: DRM_PRIME_EXP_NAME,
    ops: drmGemPrimeDmabufOps,
    size: obj.size,
    flags,
    priv: obj,
    resv: obj.resv,
  });
  if (isErr(dmabuf)) return dmabuf;
  drmGemObjectGet(obj);
  return dmabuf;
}

/** drm_gem_prime_export(): the default export of a GEM object. */
export function drmGemPrimeExport(obj: DrmGemObject, flags: number): DmaBuf | ErrPtr {
  return drmGemDmabufExport(obj, flags);
}

/** drm_gem_dmabuf_release(): the dma-buf is gone; drops its object reference. */
export async function drmGemDmabufRelease(dmabuf: DmaBuf): Promise<void> {
  await drmGemObjectPut(dmabuf.priv as DrmGemObject);
}

/** drm_gem_map_attach(): -ENOSYS without get_sg_table, else pins the object. */
export async function drmGemMapAttach(dmabuf: DmaBuf, _attach: DmaBufAttachment): Promise<number> {
  const obj = dmabuf.priv as DrmGemObject;
  if (dmabuf.ops.mapDmaBuf === drmGemMapDmaBuf && !obj.funcs?.getSgTable) return -errno.ENOSYS;
  return drmGemPin(obj);
}

/** drm_gem_map_detach(): unpins the object. */
export async function drmGemMapDetach(dmabuf: DmaBuf, _attach: DmaBufAttachment): Promise<void> {
  await drmGemUnpin(dmabuf.priv as DrmGemObject);
}

/** drm_gem_map_dma_buf(): the object's pages as an sg_table mapped for the importer. */
export function drmGemMapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | ErrPtr {
  const obj = attach.dmabuf.priv as DrmGemObject;
  if (dir === DMA_NONE) {
    obj.dev.kernel.warn('drm_prime.map_dma_none', 'WARNING: drm_gem_map_dma_buf with DMA_NONE');
    return errPtr(-errno.EINVAL);
  }
  if (!obj.funcs?.getSgTable) {
    obj.dev.kernel.warn(
      'drm_prime.no_get_sg_table',
      `WARNING: drm_gem_map_dma_buf: ${obj} has no get_sg_table`,
    );
    return errPtr(-errno.ENOSYS);
  }
  const sgt = obj.funcs.getSgTable(obj);
  if (isErr(sgt)) return sgt;
  const ret = dmaMapSgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
  if (ret) {
    sgFreeTable(sgt);
    return errPtr(ret);
  }
  return sgt;
}

/** drm_gem_unmap_dma_buf(). */
export function drmGemUnmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
  dmaUnmapSgtable(attach.dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
  sgFreeTable(sgt);
}

/** drm_gem_dmabuf_vmap(). */
export function drmGemDmabufVmap(dmabuf: DmaBuf, map: IosysMap): Promise<number> {
  return drmGemVmap(dmabuf.priv as DrmGemObject, map);
}

/** drm_gem_dmabuf_vunmap(). */
export function drmGemDmabufVunmap(dmabuf: DmaBuf, map: IosysMap): Promise<void> {
  return drmGemVunmap(dmabuf.priv as DrmGemObject, map);
}

/**
 * drm_gem_prime_mmap(): maps the object into `vma` (the mmap of its dma-buf): the fake
 * offset is added to the VMA's page offset, the VMA holds an object reference.
 */
export async function drmGemPrimeMmap(obj: DrmGemObject, vma: VmAreaStruct): Promise<number> {
  vma.vmPgoff += drmVmaNodeStart(obj.vmaNode);
  if (!obj.funcs?.mmap) return -errno.EINVAL;
  vma.vmOps = obj.funcs.vmOps ?? null;
  drmGemObjectGet(obj);
  const ret = await obj.funcs.mmap(obj, vma);
  if (ret) {
    await drmGemObjectPut(obj);
    return ret;
  }
  vma.vmPrivateData = obj;
  return 0;
}

/** drm_gem_dmabuf_mmap(). */
export function drmGemDmabufMmap(dmabuf: DmaBuf, vma: VmAreaStruct): Promise<number> {
  return drmGemPrimeMmap(dmabuf.priv as DrmGemObject, vma);
}

/** drm_gem_prime_dmabuf_ops: the dma-buf operations of exported GEM objects. */
export const drmGemPrimeDmabufOps: DmaBufOps = {
  cacheSgtMapping: true,
  attach: drmGemMapAttach,
  detach: drmGemMapDetach,
  mapDmaBuf: drmGemMapDmaBuf,
  unmapDmaBuf: drmGemUnmapDmaBuf,
  release: drmGemDmabufRelease,
  mmap: drmGemDmabufMmap,
  vmap: drmGemDmabufVmap,
  vunmap: drmGemDmabufVunmap,
};

/** drm_prime_pages_to_sg(): an sg_table over `nPages` pages (contiguous runs merged). */
export function drmPrimePagesToSg(
  _dev: DrmDevice | null,
  pages: readonly Page[],
  nPages: number,
): SgTable | ErrPtr {
  const sgt = new SgTable();
  const err = sgAllocTableFromPagesSegment(sgt, pages, nPages, 0, nPages << PAGE_SHIFT, 0xffffffff);
  return err ? errPtr(err) : sgt;
}

/** export_and_register_object(): the first export of an object; caches the dma-buf in the object. */
function exportAndRegisterObject(obj: DrmGemObject, flags: number): DmaBuf | ErrPtr {
  if (obj.handleCount === 0) return errPtr(-errno.ENOENT);
  const dmabuf = obj.funcs?.export ? obj.funcs.export(obj, flags) : drmGemPrimeExport(obj, flags);
  if (isErr(dmabuf)) return dmabuf;
  obj.dmaBuf = dmabuf;
  getDmaBuf(dmabuf);
  return dmabuf;
}

/** drm_gem_prime_handle_to_dmabuf(): the dma-buf of `handle` with a new reference, or an error pointer. */
export async function drmGemPrimeHandleToDmabuf(
  dev: DrmDevice,
  file: DrmFile,
  handle: number,
  flags: number,
): Promise<DmaBuf | ErrPtr> {
  await mutexLock(file.prime.lock);
  try {
    const obj = drmGemObjectLookup(file, handle);
    if (!obj) return errPtr(-errno.ENOENT);
    let dmabuf: DmaBuf | ErrPtr | null = drmPrimeLookupBufByHandle(file.prime, handle);
    if (dmabuf) {
      getDmaBuf(dmabuf);
    } else {
      await mutexLock(dev.objectNameLock);
      if (obj.importAttach) {
        // Re-export the original imported dma-buf.
        dmabuf = obj.importAttach.dmabuf;
        getDmaBuf(dmabuf);
      } else if (obj.dmaBuf) {
        dmabuf = obj.dmaBuf;
        getDmaBuf(dmabuf);
      } else {
        dmabuf = exportAndRegisterObject(obj, flags);
      }
      if (!isErr(dmabuf)) drmPrimeAddBufHandle(file.prime, dmabuf, handle);
      mutexUnlock(dev.objectNameLock);
    }
    await drmGemObjectPut(obj);
    return dmabuf;
  } finally {
    mutexUnlock(file.prime.lock);
  }
}

/** drm_gem_prime_handle_to_fd(): reserves an fd (with `flags`' O_CLOEXEC), then exports. The fd or -errno. */
export async function drmGemPrimeHandleToFd(
  dev: DrmDevice,
  file: DrmFile,
  handle: number,
  flags: number,
): Promise<number> {
  const fd = getUnusedFdFlags(flags);
  if (fd < 0) return fd;
  const dmabuf = await drmGemPrimeHandleToDmabuf(dev, file, handle, flags);
  if (isErr(dmabuf)) {
    putUnusedFd(fd);
    return dmabuf.err;
  }
  fdInstall(fd, dmabuf.file);
  return fd;
}

/** DRM_IOCTL_PRIME_HANDLE_TO_FD. */
export async function drmPrimeHandleToFdIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  const args = drmPrimeHandle.decode(data);
  if (args.flags & ~(DRM_CLOEXEC | DRM_RDWR)) return -errno.EINVAL;
  const fd = await drmGemPrimeHandleToFd(dev, file, args.handle, args.flags);
  if (fd < 0) return fd;
  drmPrimeHandle.encode({ ...args, fd }, data);
  return 0;
}

/**
 * drm_gem_prime_import_dev(): a GEM object for `dmabuf`: the original object when this
 * device exported it, else a new one over an attachment of `attachDev`. An object (one
 * reference) or an error pointer.
 */
export async function drmGemPrimeImportDev(
  dev: DrmDevice,
  dmabuf: DmaBuf,
  attachDev = dev.dev,
): Promise<DrmGemObject | ErrPtr> {
  if (dmabuf.ops === drmGemPrimeDmabufOps) {
    const obj = dmabuf.priv as DrmGemObject;
    // Our own export: a reference to the object instead of one to the dma-buf.
    if (obj.dev === dev) return drmGemObjectGet(obj);
  }
  if (!dev.driver.gemPrimeImportSgTable) return errPtr(-errno.EINVAL);
  const attach = await dmaBufAttach(dmabuf, attachDev);
  if (isErr(attach)) return attach;
  getDmaBuf(dmabuf);
  const sgt = await dmaBufMapAttachmentUnlocked(attach, DMA_BIDIRECTIONAL);
  if (isErr(sgt)) {
    await dmaBufDetach(dmabuf, attach);
    dmaBufPut(dmabuf);
    return sgt;
  }
  const obj = dev.driver.gemPrimeImportSgTable(dev, attach, sgt);
  if (isErr(obj)) {
    await dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
    await dmaBufDetach(dmabuf, attach);
    dmaBufPut(dmabuf);
    return obj;
  }
  obj.importAttach = attach;
  obj.resv = dmabuf.resv;
  return obj;
}

/** drm_gem_prime_import(): `drmGemPrimeImportDev` with the device's own parent device. */
export function drmGemPrimeImport(dev: DrmDevice, dmabuf: DmaBuf): Promise<DrmGemObject | ErrPtr> {
  return drmGemPrimeImportDev(dev, dmabuf, dev.dev);
}

/** drm_gem_prime_fd_to_handle(): the handle of the dma-buf at `fd` in `file` (> 0) or -errno. */
export async function drmGemPrimeFdToHandle(dev: DrmDevice, file: DrmFile, fd: number): Promise<number> {
  const dmabuf = dmaBufGet(fd);
  if (isErr(dmabuf)) return dmabuf.err;
  await mutexLock(file.prime.lock);
  const cached = drmPrimeLookupBufHandle(file.prime, dmabuf);
  if (cached > 0) {
    mutexUnlock(file.prime.lock);
    dmaBufPut(dmabuf);
    return cached;
  }
  await mutexLock(dev.objectNameLock);
  const obj = dev.driver.gemPrimeImport
    ? await dev.driver.gemPrimeImport(dev, dmabuf)
    : await drmGemPrimeImport(dev, dmabuf);
  if (isErr(obj)) {
    mutexUnlock(dev.objectNameLock);
    mutexUnlock(file.prime.lock);
    dmaBufPut(dmabuf);
    return obj.err;
  }
  if (obj.dmaBuf) {
    if (obj.dmaBuf !== dmabuf) {
      dev.kernel.warn(
        'drm_prime.dma_buf_mismatch',
        `WARNING: ${obj} imported from a dma-buf other than its own`,
      );
    }
  } else {
    obj.dmaBuf = dmabuf;
    getDmaBuf(dmabuf);
  }
  // drm_gem_handle_create_tail releases object_name_lock.
  const handle = await drmGemHandleCreateTail(file, obj);
  await drmGemObjectPut(obj);
  if (handle < 0) {
    mutexUnlock(file.prime.lock);
    dmaBufPut(dmabuf);
    return handle;
  }
  const ret = drmPrimeAddBufHandle(file.prime, dmabuf, handle);
  mutexUnlock(file.prime.lock);
  if (ret) {
    await drmGemHandleDelete(file, handle);
    dmaBufPut(dmabuf);
    return ret;
  }
  dmaBufPut(dmabuf);
  return handle;
}

/** DRM_IOCTL_PRIME_FD_TO_HANDLE. */
export async function drmPrimeFdToHandleIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  const args = drmPrimeHandle.decode(data);
  const handle = await drmGemPrimeFdToHandle(dev, file, args.fd);
  if (handle < 0) return handle;
  drmPrimeHandle.encode({ ...args, handle }, data);
  return 0;
}

/** drm_prime_gem_destroy(): the free of an imported object: unmap, detach, drop the dma-buf. */
export async function drmPrimeGemDestroy(obj: DrmGemObject, sgt: SgTable | null): Promise<void> {
  const attach = obj.importAttach!;
  if (sgt) await dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_BIDIRECTIONAL);
  const dmabuf = attach.dmabuf;
  await dmaBufDetach(dmabuf, attach);
  dmaBufPut(dmabuf);
}
