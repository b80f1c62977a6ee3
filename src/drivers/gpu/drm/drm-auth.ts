/**
 * DRM master and authentication (drivers/gpu/drm/drm_auth.c, Linux 6.12).
 *
 * The first open of a primary node (/dev/dri/cardN) while the device has no master
 * makes that file the master: it gets a new `DrmMaster`, is authenticated and becomes
 * `dev.master`. Later primary opens share the current master object (a reference) but
 * are not master. Render nodes take no part. GET_MAGIC gives a file a magic number
 * (from its master's table, from 1); the master's AUTH_MAGIC authenticates the file
 * holding that magic. SET_MASTER / DROP_MASTER move mastership; in the model every
 * process runs as root (CAP_SYS_ADMIN), so drm_master_check_perm always allows them.
 * Leases (KMS only) are not modelled.
 */
import { errno } from '../../../kernel/errno.ts';
import { Idr } from '../../../kernel/lib/idr.ts';
import { mutexLock, mutexUnlock } from '../../../kernel/locking/mutex.ts';
import { drmAuth } from '../../../uapi/drm.ts';
import type { DrmDevice } from './drm-drv.ts';
import type { DrmFile } from './drm-file.ts';

/** A master object (struct drm_master). */
export class DrmMaster {
  /** kref. */
  refcount = 1;
  /** Magic numbers handed out under this master (magic_map, from 1). */
  readonly magicMap = new Idr<DrmFile>(1);
  /** The bus id set through SET_VERSION (unique), or null. */
  unique: string | null = null;

  /** drm_master_create(). */
  constructor(
    /** The device. */
    readonly dev: DrmDevice,
  ) {}
}

/** drm_master_get(). */
export function drmMasterGet(master: DrmMaster): DrmMaster {
  master.refcount++;
  return master;
}

/** drm_master_put(): drops a reference (the last one destroys the master's tables). */
export function drmMasterPut(master: DrmMaster): void {
  if (--master.refcount === 0) master.magicMap.destroy();
}

/** drm_is_current_master(): `file` holds the device's current master. */
export function drmIsCurrentMaster(file: DrmFile): boolean {
  return file.isMaster && file.master !== null && file.master === file.minor.dev.master;
}

function setMaster(dev: DrmDevice, file: DrmFile): void {
  dev.master = drmMasterGet(file.master!);
  file.wasMaster = true;
}

function newSetMaster(dev: DrmDevice, file: DrmFile): number {
  const old = file.master;
  file.master = new DrmMaster(dev);
  file.isMaster = true;
  file.authenticated = true;
  setMaster(dev, file);
  if (old) drmMasterPut(old);
  return 0;
}

/** drm_master_open(): called for every new primary-node file. 0 or -errno. */
export async function drmMasterOpen(file: DrmFile): Promise<number> {
  const dev = file.minor.dev;
  await mutexLock(dev.masterMutex);
  let ret = 0;
  if (!dev.master) ret = newSetMaster(dev, file);
  else file.master = drmMasterGet(dev.master);
  mutexUnlock(dev.masterMutex);
  return ret;
}

function dropMaster(dev: DrmDevice): void {
  const m = dev.master;
  dev.master = null;
  if (m) drmMasterPut(m);
}

/** drm_master_release(): a primary-node file goes away. */
export async function drmMasterRelease(file: DrmFile): Promise<void> {
  const dev = file.minor.dev;
  await mutexLock(dev.masterMutex);
  if (file.magic && file.master) file.master.magicMap.remove(file.magic);
  if (drmIsCurrentMaster(file) && dev.master === file.master) dropMaster(dev);
  if (file.master) {
    drmMasterPut(file.master);
    file.master = null;
  }
  mutexUnlock(dev.masterMutex);
}

/** DRM_IOCTL_GET_MAGIC: the file's magic number, allocated on first use. */
export async function drmGetmagic(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  await mutexLock(dev.masterMutex);
  let ret = 0;
  if (!file.magic) {
    ret = file.master ? file.master.magicMap.alloc(file, 1) : -errno.EINVAL;
    if (ret >= 0) file.magic = ret;
  }
  drmAuth.encode({ magic: file.magic }, data);
  mutexUnlock(dev.masterMutex);
  return Math.min(ret, 0);
}

/** DRM_IOCTL_AUTH_MAGIC: authenticates the file holding `magic` (master only). */
export async function drmAuthmagic(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const { magic } = drmAuth.decode(data);
  await mutexLock(dev.masterMutex);
  const other = file.master?.magicMap.find(magic) ?? null;
  if (other) {
    other.authenticated = true;
    file.master!.magicMap.replace(magic, null);
  }
  mutexUnlock(dev.masterMutex);
  return other ? 0 : -errno.EINVAL;
}

/** DRM_IOCTL_SET_MASTER. */
export async function drmSetmasterIoctl(dev: DrmDevice, _data: Uint8Array, file: DrmFile): Promise<number> {
  await mutexLock(dev.masterMutex);
  let ret = 0;
  if (drmIsCurrentMaster(file)) ret = 0;
  else if (dev.master) ret = -errno.EBUSY;
  else if (!file.master) ret = -errno.EINVAL;
  else if (!file.isMaster) ret = newSetMaster(dev, file);
  else setMaster(dev, file);
  mutexUnlock(dev.masterMutex);
  return ret;
}

/** DRM_IOCTL_DROP_MASTER. */
export async function drmDropmasterIoctl(dev: DrmDevice, _data: Uint8Array, file: DrmFile): Promise<number> {
  await mutexLock(dev.masterMutex);
  let ret = 0;
  if (!drmIsCurrentMaster(file)) ret = -errno.EINVAL;
  else if (!dev.master) ret = -errno.EINVAL;
  else dropMaster(dev);
  mutexUnlock(dev.masterMutex);
  return ret;
}
