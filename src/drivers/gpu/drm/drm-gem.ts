/**
 * GEM: DRM buffer objects, their per-file handles, flink names and fake-offset mmap
 * (drivers/gpu/drm/drm_gem.c, include/drm/drm_gem.h, Linux 6.12).
 *
 * A `DrmGemObject` is refcounted (`drmGemObjectGet`/`Put`; the last put calls the
 * driver's `free`) and counts its handles separately: the first handle takes an object
 * reference, and when the last handle goes the flink name is removed and the exported
 * dma-buf cached in `obj.dmaBuf` is put, which breaks the object <-> dma-buf cycle.
 * Handles are per DRM file, the lowest free number from 1; creating one also allows the
 * file to mmap the object's fake offset and runs the object's `open`. GEM_CLOSE of an
 * unknown handle is -EINVAL (not -ENOENT, unlike the lookups of other ioctls).
 *
 * mmap of a DRM fd finds the object by an exact match of the offset's first page
 * (-EINVAL otherwise), requires the file to hold a handle (-EACCES), refuses a mapping
 * larger than the object (-EINVAL), takes an object reference for the VMA (dropped by
 * the VMA's close) and calls the object's `mmap`.
 *
 * Model notes: an object's `free` may be asynchronous (freeing an imported object
 * unmaps and detaches the dma-buf, which takes the reservation lock), so
 * `drmGemObjectPut` returns a promise when it frees; callers in process context await it.
 * A VMA's close runs synchronously in the model's mm; the objects a VMA pins are never
 * imported ones (those map through the exporter), so their free never needs to wait.
 * Live objects are tracked per kernel for the leak check `drm_gem.leak`.
 */
import type { DmaBuf, DmaBufAttachment } from '../../../kernel/dma-buf/dma-buf.ts';
import { dmaBufPut } from '../../../kernel/dma-buf/dma-buf.ts';
import {
  DmaResv,
  dmaResvAssertHeld,
  dmaResvFini,
  dmaResvLock,
  dmaResvUnlock,
} from '../../../kernel/dma-buf/dma-resv.ts';
import type { ErrPtr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { type File, type FileOperations, fput } from '../../../kernel/file.ts';
import type { IosysMap } from '../../../kernel/iosys-map.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import { registerLeakCheck } from '../../../kernel/leak-check.ts';
import { mutexLock, mutexUnlock } from '../../../kernel/locking/mutex.ts';
import type { VmAreaStruct, VmOperations } from '../../../kernel/mm/mmap.ts';
import { PAGE_SHIFT, PAGE_SIZE } from '../../../kernel/mm/page.ts';
import type { SgTable } from '../../../kernel/mm/scatterlist.ts';
import { shmemFileSetup } from '../../../kernel/mm/shmem.ts';
import { current, taskWorkAdd } from '../../../kernel/sched.ts';
import type { ReportObject } from '../../../sim/report.ts';
import { drmGemClose, drmGemFlink, drmGemOpen as drmGemOpenArgs } from '../../../uapi/drm.ts';
import { DRIVER_GEM, type DrmDevice, drmCoreCheckFeature } from './drm-drv.ts';
import { type DrmFile, drmFileOf, drmLlseek, drmOpen, drmPoll, drmRead, drmRelease } from './drm-file.ts';
import { drmIoctl } from './drm-ioctl.ts';
import { drmPrimeRemoveBufHandle } from './drm-prime.ts';
import {
  DrmVmaOffsetNode,
  drmVmaNodeAllow,
  drmVmaNodeIsAllowed,
  drmVmaNodeOffsetAddr,
  drmVmaNodeRevoke,
} from './drm-vma-manager.ts';

/**
 * The operations of a GEM object (struct drm_gem_object_funcs). Unless noted they run in
 * the calling task and may sleep.
 */
export interface DrmGemObjectFuncs {
  /** Mandatory. The last reference is gone: release everything (drm_gem_object_release included). */
  free(obj: DrmGemObject): void | Promise<void>;
  /** Optional. A handle to the object is being created in `file`. 0 or -errno. */
  open?(obj: DrmGemObject, file: DrmFile): number | Promise<number>;
  /** Optional. A handle in `file` is being deleted. */
  close?(obj: DrmGemObject, file: DrmFile): void;
  /** Optional (default drm_gem_prime_export). Exports the object as a dma-buf. */
  export?(obj: DrmGemObject, flags: number): DmaBuf | ErrPtr;
  /** Optional. Keeps the backing storage in place; reservation lock held. 0 or -errno. */
  pin?(obj: DrmGemObject): number | Promise<number>;
  /** Optional. Undoes `pin`; reservation lock held. */
  unpin?(obj: DrmGemObject): void | Promise<void>;
  /** Optional (required for PRIME export through drm_gem_map_dma_buf). An sg_table of the pages. */
  getSgTable?(obj: DrmGemObject): SgTable | ErrPtr;
  /** Optional. A kernel mapping in `map`; reservation lock held. 0 or -errno. */
  vmap?(obj: DrmGemObject, map: IosysMap): number | Promise<number>;
  /** Optional. Undoes `vmap`; reservation lock held. */
  vunmap?(obj: DrmGemObject, map: IosysMap): void | Promise<void>;
  /** Optional. Sets up a user mapping (vm_private_data is the object). 0 or -errno. */
  mmap?(obj: DrmGemObject, vma: VmAreaStruct): number | Promise<number>;
  /** Optional. The VMA operations installed on user mappings. */
  readonly vmOps?: VmOperations;
}

const OBJECT_IDS = Symbol('drm_gem_object ids');

/** The next object id of the current kernel (ids are per kernel, so runs are reproducible). */
function nextObjectId(): number {
  const k = currentKernel();
  const n = ((k.singletons.get(OBJECT_IDS) as number | undefined) ?? 0) + 1;
  k.singletons.set(OBJECT_IDS, n);
  return n;
}

/** A GEM buffer object (struct drm_gem_object). Drivers extend it. */
export class DrmGemObject {
  /** kref. */
  refcount = 1;
  /** Number of handles, over all files (handle_count). */
  handleCount = 0;
  /** flink name, 0 if none. */
  name = 0;
  /** Size in bytes, page aligned. */
  size = 0;
  /** The device (set by drmGemPrivateObjectInit). */
  dev!: DrmDevice;
  /** The shmem file backing the object (drm_gem_object_init), or null. */
  filp: File | null = null;
  /** The object's own reservation object (_resv). */
  readonly ownResv = new DmaResv();
  /** The reservation object in use: the own one, or an imported buffer's. */
  resv: DmaResv = this.ownResv;
  /** The fake mmap offset. */
  readonly vmaNode = new DrmVmaOffsetNode(this);
  /** The dma-buf exported from or imported into this object (a reference), or null. */
  dmaBuf: DmaBuf | null = null;
  /** The attachment of an imported object, or null. */
  importAttach: DmaBufAttachment | null = null;
  /** The operations (set by the driver or the helper library). */
  funcs: DrmGemObjectFuncs | null = null;
  /** Set once freed. */
  freed = false;
  /** A unique id for reports. */
  readonly id = nextObjectId();

  /** `drm_gem_object N (<driver>, <size> bytes)`. */
  toString(): string {
    return `drm_gem_object ${this.id} (${this.dev?.driver.name ?? '?'}, ${this.size} bytes)`;
  }

  /** This object as a report object. */
  reportObject(): ReportObject {
    return { kind: 'drm_gem_object', name: this.toString(), id: this.id };
  }
}

const LIVE = Symbol('drm_gem_objects');

function liveObjects(k: Kernel): Set<DrmGemObject> {
  let s = k.singletons.get(LIVE) as Set<DrmGemObject> | undefined;
  if (!s) {
    s = new Set();
    k.singletons.set(LIVE, s);
    registerLeakCheck(k, (kk) =>
      [...liveObjects(kk)].map((o) => ({
        rule: 'drm_gem.leak',
        message: `${o} still has ${o.refcount} reference(s) and ${o.handleCount} handle(s) after every process exited`,
        objects: [o.reportObject()],
        key: o,
      })),
    );
  }
  return s;
}

/** The GEM objects of a kernel not yet freed. */
export function drmGemLiveObjects(k: Kernel = currentKernel()): ReadonlySet<DrmGemObject> {
  return liveObjects(k);
}

/** drm_gem_private_object_init(): an object of `size` bytes without backing storage. BUG if `size` is not page aligned. */
export function drmGemPrivateObjectInit(dev: DrmDevice, obj: DrmGemObject, size: number): void {
  if (size % PAGE_SIZE !== 0) {
    dev.kernel.bug(
      'drm_gem.unaligned_size',
      `kernel BUG at drm_gem_private_object_init: size ${size} not page aligned`,
    );
  }
  obj.dev = dev;
  obj.filp = null;
  obj.refcount = 1;
  obj.handleCount = 0;
  obj.size = size;
  obj.resv = obj.ownResv;
  liveObjects(dev.kernel).add(obj);
}

/** drm_gem_object_init(): as the private init, plus a shmem file of `size` bytes for the pages. */
export function drmGemObjectInit(dev: DrmDevice, obj: DrmGemObject, size: number): number {
  drmGemPrivateObjectInit(dev, obj, size);
  obj.filp = shmemFileSetup('drm mm object', size);
  return 0;
}

/** drm_gem_private_object_fini(): WARN if a dma-buf is still attached; finalises the own resv. */
export function drmGemPrivateObjectFini(obj: DrmGemObject): void {
  if (obj.dmaBuf) {
    obj.dev.kernel.warn(
      'drm_gem.fini_with_dma_buf',
      `WARNING: drm_gem_private_object_fini: ${obj} still has a dma-buf`,
      [obj.reportObject()],
    );
  }
  dmaResvFini(obj.ownResv);
}

/** drm_gem_object_release(): drops the shmem file, the resv and the mmap offset. Called from `free`. */
export function drmGemObjectRelease(obj: DrmGemObject): void {
  if (obj.filp) {
    fput(obj.filp);
    obj.filp = null;
  }
  drmGemPrivateObjectFini(obj);
  drmGemFreeMmapOffset(obj);
  obj.freed = true;
  liveObjects(obj.dev.kernel).delete(obj);
}

/** drm_gem_object_get(). */
export function drmGemObjectGet<T extends DrmGemObject>(obj: T): T {
  if (obj.refcount <= 0) {
    obj.dev.kernel.warn('drm_gem.get_after_free', `WARNING: refcount_t: addition on 0 for ${obj}`, [
      obj.reportObject(),
    ]);
  }
  obj.refcount++;
  return obj;
}

/** drm_gem_object_put(): drops a reference; the last one frees the object (a promise when the free sleeps). */
export function drmGemObjectPut(obj: DrmGemObject | null): void | Promise<void> {
  if (!obj) return;
  if (obj.refcount <= 0) {
    obj.dev.kernel.warn('drm_gem.put_underflow', `WARNING: refcount_t: underflow for ${obj}`, [
      obj.reportObject(),
    ]);
    return;
  }
  if (--obj.refcount > 0) return;
  if (!obj.funcs?.free) {
    obj.dev.kernel.warn('drm_gem.no_free', `WARNING: drm_gem_object_free: ${obj} has no free function`, [
      obj.reportObject(),
    ]);
    return;
  }
  return obj.funcs.free(obj);
}

/** drm_gem_object_lookup(): the object of `handle` in `file` with a new reference, or null. */
export function drmGemObjectLookup(file: DrmFile, handle: number): DrmGemObject | null {
  const obj = file.objectIdr.find(handle);
  return obj ? drmGemObjectGet(obj) : null;
}

/** drm_gem_object_handle_get(): object_name_lock held. */
function handleGet(obj: DrmGemObject): void {
  if (obj.handleCount++ === 0) drmGemObjectGet(obj);
}

/** drm_gem_object_handle_get_if_exists_unlocked(). */
export async function drmGemObjectHandleGetIfExistsUnlocked(obj: DrmGemObject): Promise<boolean> {
  await mutexLock(obj.dev.objectNameLock);
  const ok = obj.handleCount > 0;
  if (ok) handleGet(obj);
  mutexUnlock(obj.dev.objectNameLock);
  return ok;
}

/** drm_gem_object_handle_put_unlocked(): the last handle removes the name and the exported dma-buf. */
export async function drmGemObjectHandlePutUnlocked(obj: DrmGemObject): Promise<void> {
  const dev = obj.dev;
  if (obj.handleCount === 0) {
    dev.kernel.warn(
      'drm_gem.handle_underflow',
      `WARNING: drm_gem_object_handle_put_unlocked: ${obj} has no handle`,
    );
    return;
  }
  let final = false;
  await mutexLock(dev.objectNameLock);
  if (--obj.handleCount === 0) {
    if (obj.name) {
      dev.objectNameIdr.remove(obj.name);
      obj.name = 0;
    }
    if (obj.dmaBuf) {
      dmaBufPut(obj.dmaBuf);
      obj.dmaBuf = null;
    }
    final = true;
  }
  mutexUnlock(dev.objectNameLock);
  if (final) await drmGemObjectPut(obj);
}

/** drm_gem_object_release_handle(): what deleting `handle` of `file` does to `obj`. */
async function releaseHandle(file: DrmFile, handle: number, obj: DrmGemObject): Promise<void> {
  obj.funcs?.close?.(obj, file);
  await drmPrimeRemoveBufHandle(file.prime, handle);
  drmVmaNodeRevoke(obj.vmaNode, file);
  await drmGemObjectHandlePutUnlocked(obj);
}

/**
 * drm_gem_handle_create_tail(): a new handle for `obj` in `file`. The caller holds
 * dev.objectNameLock, which this releases. Returns the handle (> 0) or -errno.
 */
export async function drmGemHandleCreateTail(file: DrmFile, obj: DrmGemObject): Promise<number> {
  const dev = obj.dev;
  handleGet(obj);
  const handle = file.objectIdr.alloc(null, 1);
  mutexUnlock(dev.objectNameLock);
  if (handle < 0) {
    await drmGemObjectHandlePutUnlocked(obj);
    return handle;
  }
  drmVmaNodeAllow(obj.vmaNode, file);
  if (obj.funcs?.open) {
    const ret = await obj.funcs.open(obj, file);
    if (ret) {
      drmVmaNodeRevoke(obj.vmaNode, file);
      file.objectIdr.remove(handle);
      await drmGemObjectHandlePutUnlocked(obj);
      return ret;
    }
  }
  file.objectIdr.replace(handle, obj);
  return handle;
}

/** drm_gem_handle_create(): a new handle for `obj` in `file`. The handle (> 0) or -errno. */
export async function drmGemHandleCreate(file: DrmFile, obj: DrmGemObject): Promise<number> {
  await mutexLock(obj.dev.objectNameLock);
  return drmGemHandleCreateTail(file, obj);
}

/** drm_gem_handle_delete(): removes `handle` from `file`. 0, or -EINVAL for an unknown handle. */
export async function drmGemHandleDelete(file: DrmFile, handle: number): Promise<number> {
  if (!file.objectIdr.has(handle)) return -errno.EINVAL;
  const obj = file.objectIdr.replace(handle, null);
  if (obj === null || typeof obj === 'number') return -errno.EINVAL;
  await releaseHandle(file, handle, obj);
  file.objectIdr.remove(handle);
  return 0;
}

/** DRM_IOCTL_GEM_CLOSE. */
export async function drmGemCloseIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  if (!drmCoreCheckFeature(dev, DRIVER_GEM)) return -errno.EOPNOTSUPP;
  return drmGemHandleDelete(file, drmGemClose.decode(data).handle);
}

/** DRM_IOCTL_GEM_FLINK: a global name for the object (created once). */
export async function drmGemFlinkIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  if (!drmCoreCheckFeature(dev, DRIVER_GEM)) return -errno.EOPNOTSUPP;
  const args = drmGemFlink.decode(data);
  const obj = drmGemObjectLookup(file, args.handle);
  if (!obj) return -errno.ENOENT;
  await mutexLock(dev.objectNameLock);
  let ret = 0;
  if (obj.handleCount === 0) {
    ret = -errno.ENOENT;
  } else {
    if (!obj.name) {
      const id = dev.objectNameIdr.alloc(obj, 1);
      if (id < 0) ret = id;
      else obj.name = id;
    }
    if (!ret) drmGemFlink.encode({ handle: args.handle, name: obj.name }, data);
  }
  mutexUnlock(dev.objectNameLock);
  await drmGemObjectPut(obj);
  return ret;
}

/** DRM_IOCTL_GEM_OPEN: a handle for a flink name. */
export async function drmGemOpenIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  if (!drmCoreCheckFeature(dev, DRIVER_GEM)) return -errno.EOPNOTSUPP;
  const args = drmGemOpenArgs.decode(data);
  await mutexLock(dev.objectNameLock);
  const obj = dev.objectNameIdr.find(args.name | 0);
  if (!obj) {
    mutexUnlock(dev.objectNameLock);
    return -errno.ENOENT;
  }
  drmGemObjectGet(obj);
  const handle = await drmGemHandleCreateTail(file, obj);
  if (handle > 0) drmGemOpenArgs.encode({ name: args.name, handle, size: obj.size }, data);
  await drmGemObjectPut(obj);
  return Math.min(handle, 0);
}

/** drm_gem_open(): sets up a new file's handle table. */
export function drmGemOpen(_dev: DrmDevice, _file: DrmFile): void {
  // The table is created with the file (object_idr from 1).
}

/** drm_gem_release(): deletes every handle of a closing file, lowest first. */
export async function drmGemRelease(_dev: DrmDevice, file: DrmFile): Promise<void> {
  for (const [handle, obj] of file.objectIdr.entries()) {
    if (obj) await releaseHandle(file, handle, obj);
  }
  file.objectIdr.destroy();
}

/** drm_gem_create_mmap_offset(): gives the object a fake offset range of its size. 0 or -ENOSPC. */
export function drmGemCreateMmapOffset(obj: DrmGemObject): number {
  return obj.dev.vmaOffsetManager.add(obj.vmaNode, obj.size / PAGE_SIZE);
}

/** drm_gem_free_mmap_offset(). */
export function drmGemFreeMmapOffset(obj: DrmGemObject): void {
  obj.dev?.vmaOffsetManager.remove(obj.vmaNode);
}

/** drm_gem_dumb_map_offset(): the fake offset of `handle` (not for imported objects: -EINVAL). */
export async function drmGemDumbMapOffset(
  file: DrmFile,
  _dev: DrmDevice,
  handle: number,
  out: { offset: bigint },
): Promise<number> {
  const obj = drmGemObjectLookup(file, handle);
  if (!obj) return -errno.ENOENT;
  let ret = 0;
  if (obj.importAttach) {
    ret = -errno.EINVAL;
  } else {
    ret = drmGemCreateMmapOffset(obj);
    if (!ret) out.offset = drmVmaNodeOffsetAddr(obj.vmaNode);
  }
  await drmGemObjectPut(obj);
  return ret;
}

/** drm_gem_pin(): the object's `pin` under its reservation lock. */
export async function drmGemPin(obj: DrmGemObject): Promise<number> {
  await dmaResvLock(obj.resv, null);
  try {
    return obj.funcs?.pin ? await obj.funcs.pin(obj) : 0;
  } finally {
    dmaResvUnlock(obj.resv);
  }
}

/** drm_gem_unpin(). */
export async function drmGemUnpin(obj: DrmGemObject): Promise<void> {
  await dmaResvLock(obj.resv, null);
  try {
    if (obj.funcs?.unpin) await obj.funcs.unpin(obj);
  } finally {
    dmaResvUnlock(obj.resv);
  }
}

/** drm_gem_vmap(): reservation lock held; -EOPNOTSUPP without a vmap operation. */
export async function drmGemVmap(obj: DrmGemObject, map: IosysMap): Promise<number> {
  dmaResvAssertHeld(obj.resv, 'drm_gem_vmap');
  if (!obj.funcs?.vmap) return -errno.EOPNOTSUPP;
  const ret = await obj.funcs.vmap(obj, map);
  if (ret) return ret;
  if (map.vaddr === null) return -errno.ENOMEM;
  return 0;
}

/** drm_gem_vunmap(): reservation lock held. */
export async function drmGemVunmap(obj: DrmGemObject, map: IosysMap): Promise<void> {
  dmaResvAssertHeld(obj.resv, 'drm_gem_vunmap');
  if (map.vaddr === null) return;
  if (obj.funcs?.vunmap) await obj.funcs.vunmap(obj, map);
  map.vaddr = null;
  map.isIomem = false;
}

/** drm_gem_vm_open(): a VMA was duplicated; it holds its own object reference. */
export function drmGemVmOpen(vma: VmAreaStruct): void {
  drmGemObjectGet(vma.vmPrivateData as DrmGemObject);
}

/** drm_gem_vm_close(): a VMA went away; drops its object reference. */
export function drmGemVmClose(vma: VmAreaStruct): void {
  const r = drmGemObjectPut(vma.vmPrivateData as DrmGemObject);
  // An asynchronous free finishes before the unmapping task returns to userspace.
  const task = current();
  if (r && task) taskWorkAdd(task, () => r);
}

/**
 * drm_gem_mmap_obj(): maps `obj` into `vma` (not larger than `objSize`: -EINVAL), taking
 * the VMA's object reference, then the object's `mmap`.
 */
export async function drmGemMmapObj(obj: DrmGemObject, objSize: number, vma: VmAreaStruct): Promise<number> {
  if (objSize < vma.length) return -errno.EINVAL;
  drmGemObjectGet(obj);
  vma.vmPrivateData = obj;
  vma.vmOps = obj.funcs?.vmOps ?? null;
  if (obj.funcs?.mmap) {
    const ret = await obj.funcs.mmap(obj, vma);
    if (ret) {
      await drmGemObjectPut(obj);
      return ret;
    }
    return 0;
  }
  if (!vma.vmOps) {
    await drmGemObjectPut(obj);
    return -errno.EINVAL;
  }
  return 0;
}

/** drm_gem_mmap(): mmap of a DRM fd at an object's fake offset. */
export async function drmGemMmap(filp: File, vma: VmAreaStruct): Promise<number> {
  const file = drmFileOf(filp);
  const dev = file.minor.dev;
  const node = dev.vmaOffsetManager.exactLookup(vma.vmPgoff, vma.npages);
  let obj: DrmGemObject | null = null;
  if (node) {
    obj = node.owner as DrmGemObject;
    if (obj.refcount > 0) drmGemObjectGet(obj);
    else obj = null;
  }
  if (!obj || !node) return -errno.EINVAL;
  if (!drmVmaNodeIsAllowed(node, file)) {
    await drmGemObjectPut(obj);
    return -errno.EACCES;
  }
  const ret = await drmGemMmapObj(obj, node.size << PAGE_SHIFT, vma);
  await drmGemObjectPut(obj);
  return ret;
}

/** DEFINE_DRM_GEM_FOPS: the file operations of a GEM driver's device nodes. */
export const drmGemFops: FileOperations = {
  name: 'drm',
  open: drmOpen,
  release: drmRelease,
  ioctl: drmIoctl,
  poll: drmPoll,
  read: drmRead,
  llseek: drmLlseek,
  mmap: drmGemMmap,
};
