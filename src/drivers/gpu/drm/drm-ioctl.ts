/**
 * The DRM ioctl dispatcher and the core ioctls that are not GEM, PRIME, dumb buffers or
 * syncobjs (drivers/gpu/drm/drm_ioctl.c, include/drm/drm_ioctl.h, Linux 6.12).
 *
 * drm_ioctl(), in 6.12's order:
 * 1. the request's type byte must be 'd': -ENOTTY otherwise;
 * 2. numbers 0x40-0x9f index the driver's table (beyond it: -EINVAL), the others the
 *    core table (numbers from 0xd1 on: -EINVAL);
 * 3. sizes: the kernel buffer is the largest of the user's size (from the request) and
 *    the kernel's own struct size; data is copied in only when both the user's request and
 *    the kernel's definition have the IN direction, out only when both have OUT. A
 *    shorter user struct is zero-extended, a longer one truncated;
 * 4. a hole in a table (a retired number) is -EINVAL, before any copy;
 * 5. copy in (-EFAULT), then the permission check: DRM_ROOT_ONLY needs CAP_SYS_ADMIN,
 *    DRM_AUTH an authenticated file (render files pass), DRM_MASTER the current master,
 *    and a render node only runs DRM_RENDER_ALLOW ioctls (-EACCES each);
 * 6. the handler, then copy out — even when the handler failed (a failed copy-out makes
 *    the result -EFAULT).
 *
 * KMS ioctls of a driver without DRIVER_MODESET (vgem) fail with -EOPNOTSUPP once the
 * permission check passed; the legacy no-op ioctls (BLOCK, ADD_DRAW, FINISH,
 * ATTACHMODE, ...) return 0 and SET_UNIQUE -EINVAL. GET_CAP answers the PRIME, syncobj
 * and timestamp capabilities for every driver and -EOPNOTSUPP for the KMS ones.
 * DRM_IOCTL_VERSION reports the date as "0" whatever the driver says (6.12).
 *
 * An interrupted wait (-ERESTARTSYS) reaches userspace as -EINTR: the model has no
 * signal handlers to restart the call for.
 */
import { errno } from '../../../kernel/errno.ts';
import type { File } from '../../../kernel/file.ts';
import { mutexLock, mutexUnlock } from '../../../kernel/locking/mutex.ts';
import { current } from '../../../kernel/sched.ts';
import { copyFromUser, copyToUser } from '../../../kernel/uaccess.ts';
import {
  DRM_CAP_PRIME,
  DRM_CAP_SYNCOBJ,
  DRM_CAP_SYNCOBJ_TIMELINE,
  DRM_CAP_TIMESTAMP_MONOTONIC,
  DRM_COMMAND_BASE,
  DRM_COMMAND_END,
  DRM_IOCTL_AUTH_MAGIC,
  DRM_IOCTL_BASE,
  DRM_IOCTL_DROP_MASTER,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_GEM_FLINK,
  DRM_IOCTL_GEM_OPEN,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_GET_CLIENT,
  DRM_IOCTL_GET_MAGIC,
  DRM_IOCTL_GET_STATS,
  DRM_IOCTL_GET_UNIQUE,
  DRM_IOCTL_MODE_CREATE_DUMB,
  DRM_IOCTL_MODE_DESTROY_DUMB,
  DRM_IOCTL_MODE_MAP_DUMB,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_SET_CLIENT_CAP,
  DRM_IOCTL_SET_MASTER,
  DRM_IOCTL_SET_UNIQUE,
  DRM_IOCTL_SET_VERSION,
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_SYNCOBJ_DESTROY,
  DRM_IOCTL_SYNCOBJ_EVENTFD,
  DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_QUERY,
  DRM_IOCTL_SYNCOBJ_RESET,
  DRM_IOCTL_SYNCOBJ_SIGNAL,
  DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL,
  DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
  DRM_IOCTL_SYNCOBJ_TRANSFER,
  DRM_IOCTL_SYNCOBJ_WAIT,
  DRM_IOCTL_VERSION,
  DRM_IOW,
  DRM_IOWR,
  DRM_PRIME_CAP_EXPORT,
  DRM_PRIME_CAP_IMPORT,
  drmClient,
  drmGetCap,
  drmSetVersion,
  drmUnique,
  drmVersion,
} from '../../../uapi/drm.ts';
import { _IOC_READ, _IOC_SIZE, _IOC_TYPE, _IOC_WRITE } from '../../../uapi/ioctl.ts';
import { stringBytes } from '../../../uapi/structs.ts';
import {
  drmAuthmagic,
  drmDropmasterIoctl,
  drmGetmagic,
  drmIsCurrentMaster,
  drmSetmasterIoctl,
} from './drm-auth.ts';
import {
  DRIVER_MODESET,
  DRIVER_SYNCOBJ,
  DRIVER_SYNCOBJ_TIMELINE,
  type DrmDevice,
  drmCoreCheckFeature,
} from './drm-drv.ts';
import { drmModeCreateDumbIoctl, drmModeDestroyDumbIoctl, drmModeMmapDumbIoctl } from './drm-dumb-buffers.ts';
import { type DrmFile, drmFileOf, drmIsRenderClient } from './drm-file.ts';
import { drmGemCloseIoctl, drmGemFlinkIoctl, drmGemOpenIoctl } from './drm-gem.ts';
import { drmPrimeFdToHandleIoctl, drmPrimeHandleToFdIoctl } from './drm-prime.ts';
import {
  drmSyncobjCreateIoctl,
  drmSyncobjDestroyIoctl,
  drmSyncobjEventfdIoctl,
  drmSyncobjFdToHandleIoctl,
  drmSyncobjHandleToFdIoctl,
  drmSyncobjQueryIoctl,
  drmSyncobjResetIoctl,
  drmSyncobjSignalIoctl,
  drmSyncobjTimelineSignalIoctl,
  drmSyncobjTimelineWaitIoctl,
  drmSyncobjTransferIoctl,
  drmSyncobjWaitIoctl,
} from './drm-syncobj.ts';

/** Permission: authenticated file (render files pass). */
export const DRM_AUTH = 1 << 0;
/** Permission: the current master only. */
export const DRM_MASTER = 1 << 1;
/** Permission: CAP_SYS_ADMIN only. */
export const DRM_ROOT_ONLY = 1 << 2;
/** Permission: allowed on render nodes. */
export const DRM_RENDER_ALLOW = 1 << 5;

/** DRM interface version (DRM_IF_MAJOR). */
export const DRM_IF_MAJOR = 1;
/** DRM interface version (DRM_IF_MINOR). */
export const DRM_IF_MINOR = 4;
/** overflowuid: the uid GET_CLIENT reports. */
export const DRM_OVERFLOWUID = 65534;

/**
 * An ioctl handler (drm_ioctl_t): `data` is the kernel copy of the struct, at least as
 * large as the kernel's definition; the handler decodes it and writes its results back
 * into it. Returns 0 or -errno.
 */
export type DrmIoctlFunc = (dev: DrmDevice, data: Uint8Array, file: DrmFile) => number | Promise<number>;

/** One entry of an ioctl table (struct drm_ioctl_desc). */
export interface DrmIoctlDesc {
  /** The kernel's request number (its size and direction matter for the copies). */
  readonly cmd: number;
  /** DRM_AUTH / DRM_MASTER / DRM_ROOT_ONLY / DRM_RENDER_ALLOW. */
  readonly flags: number;
  /** The handler, or null for a retired number. */
  readonly func: DrmIoctlFunc | null;
  /** The request's name. */
  readonly name: string;
}

/** DRM_IOCTL_DEF / DRM_IOCTL_DEF_DRV: a table entry. */
export function drmIoctlDef(
  cmd: number,
  func: DrmIoctlFunc | null,
  flags: number,
  name: string,
): DrmIoctlDesc {
  return { cmd, func, flags, name };
}

// ------------------------------------------------------------ core handlers

/** drm_noop(). */
export function drmNoop(): number {
  return 0;
}

/** drm_invalid_op(). */
export function drmInvalidOp(): number {
  return -errno.EINVAL;
}

/** A KMS ioctl on a device: -EOPNOTSUPP without DRIVER_MODESET (the model has no KMS). */
function drmModesetOnly(_dev: DrmDevice): number {
  return -errno.EOPNOTSUPP;
}

/** drm_copy_field(): copies min(strlen, *len) bytes to `buf`, sets *len to strlen. -EFAULT on a fault. */
function copyField(buf: bigint, len: { value: bigint }, value: string): number {
  const bytes = stringBytes(value);
  let n = BigInt(bytes.length);
  if (n > len.value) n = len.value;
  len.value = BigInt(bytes.length);
  if (n && buf) {
    const addr = buf > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(buf);
    if (copyToUser(addr, bytes.subarray(0, Number(n)))) return -errno.EFAULT;
  }
  return 0;
}

/** DRM_IOCTL_VERSION: driver version, name, date ("0") and description. */
export function drmVersionIoctl(dev: DrmDevice, data: Uint8Array): number {
  const v = drmVersion.decode(data);
  const name = { value: v.name_len };
  const date = { value: v.date_len };
  const desc = { value: v.desc_len };
  let err = copyField(v.name, name, dev.driver.name);
  // Driver date is deprecated; userspace expects a non-empty string.
  if (!err) err = copyField(v.date, date, '0');
  if (!err) err = copyField(v.desc, desc, dev.driver.desc);
  drmVersion.encode(
    {
      ...v,
      version_major: dev.driver.major,
      version_minor: dev.driver.minor,
      version_patchlevel: dev.driver.patchlevel,
      name_len: name.value,
      date_len: date.value,
      desc_len: desc.value,
    },
    data,
  );
  return err;
}

/** DRM_IOCTL_GET_UNIQUE: the master's bus id (empty until SET_VERSION 1.1+ set it). */
export async function drmGetuniqueIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const u = drmUnique.decode(data);
  await mutexLock(dev.masterMutex);
  const unique = stringBytes(file.master?.unique ?? '');
  if (u.unique_len >= BigInt(unique.length) && unique.length > 0) {
    const addr = u.unique > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(u.unique);
    if (copyToUser(addr, unique)) {
      mutexUnlock(dev.masterMutex);
      return -errno.EFAULT;
    }
  }
  drmUnique.encode({ ...u, unique_len: unique.length }, data);
  mutexUnlock(dev.masterMutex);
  return 0;
}

/** DRM_IOCTL_GET_CLIENT: only index 0 (the caller) exists, else -EINVAL. */
export function drmGetclientIoctl(_dev: DrmDevice, data: Uint8Array, file: DrmFile): number {
  const c = drmClient.decode(data);
  if (c.idx !== 0) return -errno.EINVAL;
  drmClient.encode(
    {
      idx: 0,
      auth: file.authenticated ? 1 : 0,
      pid: current()?.pid ?? 0,
      uid: DRM_OVERFLOWUID,
      magic: 0,
      iocs: 0,
    },
    data,
  );
  return 0;
}

/** DRM_IOCTL_GET_STATS: all zero. */
export function drmGetstatsIoctl(_dev: DrmDevice, data: Uint8Array): number {
  data.fill(0, 0, 248);
  return 0;
}

/** DRM_IOCTL_GET_CAP. */
export function drmGetcapIoctl(dev: DrmDevice, data: Uint8Array): number {
  const req = drmGetCap.decode(data);
  let value = 0n;
  let ret = 0;
  switch (req.capability) {
    case BigInt(DRM_CAP_TIMESTAMP_MONOTONIC):
      value = 1n;
      break;
    case BigInt(DRM_CAP_PRIME):
      value = BigInt(DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT);
      break;
    case BigInt(DRM_CAP_SYNCOBJ):
      value = drmCoreCheckFeature(dev, DRIVER_SYNCOBJ) ? 1n : 0n;
      break;
    case BigInt(DRM_CAP_SYNCOBJ_TIMELINE):
      value = drmCoreCheckFeature(dev, DRIVER_SYNCOBJ_TIMELINE) ? 1n : 0n;
      break;
    default:
      // The other capabilities only work with KMS drivers.
      ret = drmCoreCheckFeature(dev, DRIVER_MODESET) ? -errno.EINVAL : -errno.EOPNOTSUPP;
  }
  drmGetCap.encode({ capability: req.capability, value }, data);
  return ret;
}

/** DRM_IOCTL_SET_CLIENT_CAP: every client capability needs KMS (-EOPNOTSUPP). */
export function drmSetclientcapIoctl(dev: DrmDevice): number {
  if (!drmCoreCheckFeature(dev, DRIVER_MODESET)) return -errno.EOPNOTSUPP;
  return -errno.EINVAL;
}

/** DRM_IOCTL_SET_VERSION: checks the requested interface versions; 1.1+ sets the bus id. */
export async function drmSetversionIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const sv = drmSetVersion.decode(data);
  let ret = 0;
  await mutexLock(dev.masterMutex);
  if (sv.drm_di_major !== -1) {
    if (sv.drm_di_major !== DRM_IF_MAJOR || sv.drm_di_minor < 0 || sv.drm_di_minor > DRM_IF_MINOR) {
      ret = -errno.EINVAL;
    } else if (sv.drm_di_minor >= 1 && file.master) {
      // drm_set_busid(): a platform device's bus id is the device's unique name.
      file.master.unique = dev.unique;
    }
  }
  if (!ret && sv.drm_dd_major !== -1) {
    if (sv.drm_dd_major !== dev.driver.major || sv.drm_dd_minor < 0 || sv.drm_dd_minor > dev.driver.minor) {
      ret = -errno.EINVAL;
    }
  }
  drmSetVersion.encode(
    {
      drm_di_major: DRM_IF_MAJOR,
      drm_di_minor: DRM_IF_MINOR,
      drm_dd_major: dev.driver.major,
      drm_dd_minor: dev.driver.minor,
    },
    data,
  );
  mutexUnlock(dev.masterMutex);
  return ret;
}

// ------------------------------------------------------------ the core table

const IN = 1;
const INOUT = 3;

function req(dir: number, nr: number, size: number): number {
  return dir === INOUT ? DRM_IOWR(nr, size) : DRM_IOW(nr, size);
}

const kms: DrmIoctlFunc = (dev) => drmModesetOnly(dev);
const ROOT_MASTER = DRM_AUTH | DRM_MASTER | DRM_ROOT_ONLY;

const CORE: DrmIoctlDesc[] = [
  drmIoctlDef(DRM_IOCTL_VERSION, drmVersionIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_VERSION'),
  drmIoctlDef(DRM_IOCTL_GET_UNIQUE, drmGetuniqueIoctl, 0, 'DRM_IOCTL_GET_UNIQUE'),
  drmIoctlDef(DRM_IOCTL_GET_MAGIC, drmGetmagic, 0, 'DRM_IOCTL_GET_MAGIC'),
  drmIoctlDef(DRM_IOCTL_GET_CLIENT, drmGetclientIoctl, 0, 'DRM_IOCTL_GET_CLIENT'),
  drmIoctlDef(DRM_IOCTL_GET_STATS, drmGetstatsIoctl, 0, 'DRM_IOCTL_GET_STATS'),
  drmIoctlDef(DRM_IOCTL_GET_CAP, drmGetcapIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_GET_CAP'),
  drmIoctlDef(DRM_IOCTL_SET_CLIENT_CAP, drmSetclientcapIoctl, 0, 'DRM_IOCTL_SET_CLIENT_CAP'),
  drmIoctlDef(DRM_IOCTL_SET_VERSION, drmSetversionIoctl, DRM_MASTER, 'DRM_IOCTL_SET_VERSION'),
  drmIoctlDef(DRM_IOCTL_SET_UNIQUE, drmInvalidOp, ROOT_MASTER, 'DRM_IOCTL_SET_UNIQUE'),
  drmIoctlDef(req(INOUT, 0x12, 4), drmNoop, ROOT_MASTER, 'DRM_IOCTL_BLOCK'),
  drmIoctlDef(req(INOUT, 0x13, 4), drmNoop, ROOT_MASTER, 'DRM_IOCTL_UNBLOCK'),
  drmIoctlDef(DRM_IOCTL_AUTH_MAGIC, drmAuthmagic, DRM_MASTER, 'DRM_IOCTL_AUTH_MAGIC'),
  drmIoctlDef(DRM_IOCTL_SET_MASTER, drmSetmasterIoctl, 0, 'DRM_IOCTL_SET_MASTER'),
  drmIoctlDef(DRM_IOCTL_DROP_MASTER, drmDropmasterIoctl, 0, 'DRM_IOCTL_DROP_MASTER'),
  drmIoctlDef(req(INOUT, 0x27, 4), drmNoop, ROOT_MASTER, 'DRM_IOCTL_ADD_DRAW'),
  drmIoctlDef(req(INOUT, 0x28, 4), drmNoop, ROOT_MASTER, 'DRM_IOCTL_RM_DRAW'),
  drmIoctlDef(req(IN, 0x2c, 8), drmNoop, DRM_AUTH, 'DRM_IOCTL_FINISH'),
  drmIoctlDef(req(INOUT, 0x3a, 24), kms, 0, 'DRM_IOCTL_WAIT_VBLANK'),
  drmIoctlDef(req(IN, 0x3f, 24), drmNoop, ROOT_MASTER, 'DRM_IOCTL_UPDATE_DRAW'),
  drmIoctlDef(DRM_IOCTL_GEM_CLOSE, drmGemCloseIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_GEM_CLOSE'),
  drmIoctlDef(DRM_IOCTL_GEM_FLINK, drmGemFlinkIoctl, DRM_AUTH, 'DRM_IOCTL_GEM_FLINK'),
  drmIoctlDef(DRM_IOCTL_GEM_OPEN, drmGemOpenIoctl, DRM_AUTH, 'DRM_IOCTL_GEM_OPEN'),
  drmIoctlDef(req(INOUT, 0xa0, 64), kms, 0, 'DRM_IOCTL_MODE_GETRESOURCES'),
  drmIoctlDef(
    DRM_IOCTL_PRIME_HANDLE_TO_FD,
    drmPrimeHandleToFdIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_PRIME_HANDLE_TO_FD',
  ),
  drmIoctlDef(
    DRM_IOCTL_PRIME_FD_TO_HANDLE,
    drmPrimeFdToHandleIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_PRIME_FD_TO_HANDLE',
  ),
  drmIoctlDef(req(INOUT, 0xb5, 16), kms, 0, 'DRM_IOCTL_MODE_GETPLANERESOURCES'),
  drmIoctlDef(req(INOUT, 0xa1, 104), kms, 0, 'DRM_IOCTL_MODE_GETCRTC'),
  drmIoctlDef(req(INOUT, 0xa2, 104), kms, DRM_MASTER, 'DRM_IOCTL_MODE_SETCRTC'),
  drmIoctlDef(req(INOUT, 0xb6, 32), kms, 0, 'DRM_IOCTL_MODE_GETPLANE'),
  drmIoctlDef(req(INOUT, 0xb7, 48), kms, DRM_MASTER, 'DRM_IOCTL_MODE_SETPLANE'),
  drmIoctlDef(req(INOUT, 0xa3, 28), kms, DRM_MASTER, 'DRM_IOCTL_MODE_CURSOR'),
  drmIoctlDef(req(INOUT, 0xa4, 32), kms, 0, 'DRM_IOCTL_MODE_GETGAMMA'),
  drmIoctlDef(req(INOUT, 0xa5, 32), kms, DRM_MASTER, 'DRM_IOCTL_MODE_SETGAMMA'),
  drmIoctlDef(req(INOUT, 0xa6, 20), kms, 0, 'DRM_IOCTL_MODE_GETENCODER'),
  drmIoctlDef(req(INOUT, 0xa7, 80), kms, 0, 'DRM_IOCTL_MODE_GETCONNECTOR'),
  drmIoctlDef(req(INOUT, 0xa8, 72), drmNoop, DRM_MASTER, 'DRM_IOCTL_MODE_ATTACHMODE'),
  drmIoctlDef(req(INOUT, 0xa9, 72), drmNoop, DRM_MASTER, 'DRM_IOCTL_MODE_DETACHMODE'),
  drmIoctlDef(req(INOUT, 0xaa, 64), kms, 0, 'DRM_IOCTL_MODE_GETPROPERTY'),
  drmIoctlDef(req(INOUT, 0xab, 16), kms, DRM_MASTER, 'DRM_IOCTL_MODE_SETPROPERTY'),
  drmIoctlDef(req(INOUT, 0xac, 16), kms, 0, 'DRM_IOCTL_MODE_GETPROPBLOB'),
  drmIoctlDef(req(INOUT, 0xad, 28), kms, 0, 'DRM_IOCTL_MODE_GETFB'),
  drmIoctlDef(req(INOUT, 0xce, 104), kms, 0, 'DRM_IOCTL_MODE_GETFB2'),
  drmIoctlDef(req(INOUT, 0xae, 28), kms, 0, 'DRM_IOCTL_MODE_ADDFB'),
  drmIoctlDef(req(INOUT, 0xb8, 104), kms, 0, 'DRM_IOCTL_MODE_ADDFB2'),
  drmIoctlDef(req(INOUT, 0xaf, 4), kms, 0, 'DRM_IOCTL_MODE_RMFB'),
  drmIoctlDef(req(INOUT, 0xd0, 8), kms, 0, 'DRM_IOCTL_MODE_CLOSEFB'),
  drmIoctlDef(req(INOUT, 0xb0, 24), kms, DRM_MASTER, 'DRM_IOCTL_MODE_PAGE_FLIP'),
  drmIoctlDef(req(INOUT, 0xb1, 24), kms, DRM_MASTER, 'DRM_IOCTL_MODE_DIRTYFB'),
  drmIoctlDef(DRM_IOCTL_MODE_CREATE_DUMB, drmModeCreateDumbIoctl, 0, 'DRM_IOCTL_MODE_CREATE_DUMB'),
  drmIoctlDef(DRM_IOCTL_MODE_MAP_DUMB, drmModeMmapDumbIoctl, 0, 'DRM_IOCTL_MODE_MAP_DUMB'),
  drmIoctlDef(DRM_IOCTL_MODE_DESTROY_DUMB, drmModeDestroyDumbIoctl, 0, 'DRM_IOCTL_MODE_DESTROY_DUMB'),
  drmIoctlDef(req(INOUT, 0xb9, 32), kms, 0, 'DRM_IOCTL_MODE_OBJ_GETPROPERTIES'),
  drmIoctlDef(req(INOUT, 0xba, 24), kms, DRM_MASTER, 'DRM_IOCTL_MODE_OBJ_SETPROPERTY'),
  drmIoctlDef(req(INOUT, 0xbb, 36), kms, DRM_MASTER, 'DRM_IOCTL_MODE_CURSOR2'),
  drmIoctlDef(req(INOUT, 0xbc, 56), kms, DRM_MASTER, 'DRM_IOCTL_MODE_ATOMIC'),
  drmIoctlDef(req(INOUT, 0xbd, 16), kms, 0, 'DRM_IOCTL_MODE_CREATEPROPBLOB'),
  drmIoctlDef(req(INOUT, 0xbe, 4), kms, 0, 'DRM_IOCTL_MODE_DESTROYPROPBLOB'),
  drmIoctlDef(DRM_IOCTL_SYNCOBJ_CREATE, drmSyncobjCreateIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_SYNCOBJ_CREATE'),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_DESTROY,
    drmSyncobjDestroyIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_DESTROY',
  ),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
    drmSyncobjHandleToFdIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD',
  ),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
    drmSyncobjFdToHandleIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE',
  ),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_TRANSFER,
    drmSyncobjTransferIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_TRANSFER',
  ),
  drmIoctlDef(DRM_IOCTL_SYNCOBJ_WAIT, drmSyncobjWaitIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_SYNCOBJ_WAIT'),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
    drmSyncobjTimelineWaitIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT',
  ),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_EVENTFD,
    drmSyncobjEventfdIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_EVENTFD',
  ),
  drmIoctlDef(DRM_IOCTL_SYNCOBJ_RESET, drmSyncobjResetIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_SYNCOBJ_RESET'),
  drmIoctlDef(DRM_IOCTL_SYNCOBJ_SIGNAL, drmSyncobjSignalIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_SYNCOBJ_SIGNAL'),
  drmIoctlDef(
    DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL,
    drmSyncobjTimelineSignalIoctl,
    DRM_RENDER_ALLOW,
    'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL',
  ),
  drmIoctlDef(DRM_IOCTL_SYNCOBJ_QUERY, drmSyncobjQueryIoctl, DRM_RENDER_ALLOW, 'DRM_IOCTL_SYNCOBJ_QUERY'),
  drmIoctlDef(req(INOUT, 0x3b, 24), kms, 0, 'DRM_IOCTL_CRTC_GET_SEQUENCE'),
  drmIoctlDef(req(INOUT, 0x3c, 24), kms, 0, 'DRM_IOCTL_CRTC_QUEUE_SEQUENCE'),
  drmIoctlDef(req(INOUT, 0xc6, 24), kms, DRM_MASTER, 'DRM_IOCTL_MODE_CREATE_LEASE'),
  drmIoctlDef(req(INOUT, 0xc7, 16), kms, DRM_MASTER, 'DRM_IOCTL_MODE_LIST_LESSEES'),
  drmIoctlDef(req(INOUT, 0xc8, 16), kms, DRM_MASTER, 'DRM_IOCTL_MODE_GET_LEASE'),
  drmIoctlDef(req(INOUT, 0xc9, 4), kms, DRM_MASTER, 'DRM_IOCTL_MODE_REVOKE_LEASE'),
];

/** DRM_CORE_IOCTL_COUNT: one past the highest core number (DRM_IOCTL_MODE_CLOSEFB, 0xd0). */
export const DRM_CORE_IOCTL_COUNT = Math.max(...CORE.map((d) => d.cmd & 0xff)) + 1;

/** drm_ioctls[]: the core table indexed by number (retired numbers are null). */
export const drmIoctls: readonly (DrmIoctlDesc | null)[] = (() => {
  const t: (DrmIoctlDesc | null)[] = new Array(DRM_CORE_IOCTL_COUNT).fill(null);
  for (const d of CORE) t[d.cmd & 0xff] = d;
  return t;
})();

// ------------------------------------------------------------ dispatch

/** drm_ioctl_permit(): 0 or -EACCES (every process runs as root in the model). */
export function drmIoctlPermit(flags: number, file: DrmFile): number {
  const capable = true;
  if (flags & DRM_ROOT_ONLY && !capable) return -errno.EACCES;
  if (flags & DRM_AUTH && !drmIsRenderClient(file) && !file.authenticated) return -errno.EACCES;
  if (flags & DRM_MASTER && !drmIsCurrentMaster(file)) return -errno.EACCES;
  if (!(flags & DRM_RENDER_ALLOW) && drmIsRenderClient(file)) return -errno.EACCES;
  return 0;
}

/** drm_ioctl_kernel(): the file's owner follows the caller, then the permission check, then the handler. */
export async function drmIoctlKernel(
  filp: File,
  func: DrmIoctlFunc,
  kdata: Uint8Array,
  flags: number,
): Promise<number> {
  const file = drmFileOf(filp);
  const dev = file.minor.dev;
  // drm_file_update_pid(): the file follows whoever uses it, unless it was ever master.
  const task = current();
  if (!file.wasMaster && task) file.pid = task.tgid;
  const ret = drmIoctlPermit(flags, file);
  if (ret) return ret;
  return func(dev, kdata, file);
}

const IOC_IN = _IOC_WRITE << 30;
const IOC_OUT = _IOC_READ << 30;
const DRM_TYPE = DRM_IOCTL_BASE.charCodeAt(0);

/** drm_ioctl(): the unlocked_ioctl of every DRM node (see the module comment). */
export async function drmIoctl(filp: File, cmd: number, arg: number): Promise<number> {
  const file = drmFileOf(filp);
  const dev = file.minor.dev;
  if (_IOC_TYPE(cmd) !== DRM_TYPE) return -errno.ENOTTY;
  const nr = cmd & 0xff;
  let ioctl: DrmIoctlDesc | null;
  if (nr >= DRM_COMMAND_BASE && nr < DRM_COMMAND_END) {
    const index = nr - DRM_COMMAND_BASE;
    if (index >= dev.driver.ioctls.length) return -errno.EINVAL;
    ioctl = dev.driver.ioctls[index];
  } else {
    if (nr >= DRM_CORE_IOCTL_COUNT) return -errno.EINVAL;
    ioctl = drmIoctls[nr];
  }
  const kcmd = ioctl?.cmd ?? 0;
  const drvSize = _IOC_SIZE(kcmd);
  let inSize = _IOC_SIZE(cmd);
  let outSize = inSize;
  if ((cmd & kcmd & IOC_IN) === 0) inSize = 0;
  if ((cmd & kcmd & IOC_OUT) === 0) outSize = 0;
  const ksize = Math.max(inSize, outSize, drvSize);
  if (!ioctl?.func) return -errno.EINVAL;
  const kdata = new Uint8Array(ksize);
  if (copyFromUser(kdata.subarray(0, inSize), arg)) return -errno.EFAULT;
  let ret = await drmIoctlKernel(filp, ioctl.func, kdata, ioctl.flags);
  if (copyToUser(arg, kdata.subarray(0, outSize))) ret = -errno.EFAULT;
  return ret === -errno.ERESTARTSYS ? -errno.EINTR : ret;
}
