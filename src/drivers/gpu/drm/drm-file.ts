/**
 * DRM files: one per open() of a DRM node (drivers/gpu/drm/drm_file.c,
 * include/drm/drm_file.h, Linux 6.12).
 *
 * `drmOpen` (the nodes' open) refuses O_EXCL with -EBUSY, allocates a `DrmFile` (root is
 * always authenticated), sets up its GEM handle table, its syncobj table (DRIVER_SYNCOBJ)
 * and PRIME cache, calls the driver's `open`, and for a primary node runs the master
 * logic (drm-auth.ts). `drmRelease` (the last fput) frees it in 6.12's order: pending
 * events, syncobjs, GEM handles, the master, the driver's `postclose`, the PRIME cache.
 *
 * read() returns queued DRM events (vblank, page flip: never for vgem), blocking
 * interruptibly without O_NONBLOCK and failing with -EAGAIN with it; poll() reports
 * EPOLLIN only when an event is queued; llseek is noop_llseek (returns the position).
 * Drivers without `show_fdinfo` (vgem) print only the generic fdinfo lines, as the
 * oracle showed.
 */
import { errno } from '../../../kernel/errno.ts';
import { O_EXCL, O_NONBLOCK } from '../../../kernel/fcntl.ts';
import type { File, FilePos, Inode } from '../../../kernel/file.ts';
import { Idr } from '../../../kernel/lib/idr.ts';
import { EPOLLIN, EPOLLRDNORM, type PollTable, pollWait } from '../../../kernel/poll.ts';
import { current } from '../../../kernel/sched.ts';
import { copyToUser } from '../../../kernel/uaccess.ts';
import { WaitQueueHead } from '../../../kernel/wait.ts';
import { type DrmMaster, drmMasterOpen, drmMasterRelease } from './drm-auth.ts';
import {
  DRIVER_GEM,
  DRIVER_MODESET,
  DRIVER_SYNCOBJ,
  DRM_MINOR_PRIMARY,
  DRM_MINOR_RENDER,
  type DrmDevice,
  type DrmMinor,
  drmCoreCheckFeature,
  drmMinorAcquire,
} from './drm-drv.ts';
import { type DrmGemObject, drmGemOpen, drmGemRelease } from './drm-gem.ts';
import { DrmPrimeFilePrivate, drmPrimeDestroyFilePrivate } from './drm-prime.ts';
import { type DrmSyncobj, drmSyncobjOpen, drmSyncobjRelease } from './drm-syncobj.ts';

/** A DRM event waiting to be read (struct drm_pending_event, reduced to its bytes). */
export interface DrmPendingEvent {
  /** The struct drm_event and its payload as userspace reads them. */
  readonly bytes: Uint8Array;
}

/** The DRM state of one open file (struct drm_file). */
export class DrmFile {
  /** Authenticated (root always is). */
  authenticated: boolean;
  /** Holds a master object it created (is_master). */
  isMaster = false;
  /** Has been master at some point (was_master). */
  wasMaster = false;
  /** The master it belongs to (primary nodes), or null. */
  master: DrmMaster | null = null;
  /** GET_MAGIC number, 0 until asked for. */
  magic = 0;
  /** GEM handles (object_idr, from 1): null while a handle is being set up or torn down. */
  readonly objectIdr = new Idr<DrmGemObject>(1);
  /** Syncobj handles (syncobj_idr, from 1). */
  readonly syncobjIdr = new Idr<DrmSyncobj>(1);
  /** The PRIME import/export cache. */
  readonly prime = new DrmPrimeFilePrivate();
  /** The driver's per-file data. */
  driverPriv: unknown = null;
  /** The opener's thread group id (updated to the caller's by each ioctl). */
  pid: number;
  /** The struct file, once opened. */
  filp: File | null = null;
  /** Events to read. */
  readonly eventList: DrmPendingEvent[] = [];
  /** Readers and pollers wait here. */
  readonly eventWait = new WaitQueueHead('drm_file.event_wait');
  /** Unique id of the client (client_id, from 1 per device). */
  readonly clientId: number;

  /** drm_file_alloc(), without the driver hooks; use `drmFileAlloc`. */
  constructor(
    /** The node it was opened through. */
    readonly minor: DrmMinor,
  ) {
    this.authenticated = true;
    this.pid = current()?.tgid ?? 0;
    this.clientId = ++minor.dev.lastClientId;
  }
}

/** drm_is_render_client(). */
export function drmIsRenderClient(file: DrmFile): boolean {
  return file.minor.type === DRM_MINOR_RENDER;
}

/** drm_is_primary_client(). */
export function drmIsPrimaryClient(file: DrmFile): boolean {
  return file.minor.type === DRM_MINOR_PRIMARY;
}

/** drm_file_alloc(): a new DRM file with its tables, after the driver's `open`. A file or -errno. */
export async function drmFileAlloc(minor: DrmMinor): Promise<DrmFile | number> {
  const dev = minor.dev;
  const file = new DrmFile(minor);
  if (drmCoreCheckFeature(dev, DRIVER_GEM)) drmGemOpen(dev, file);
  if (drmCoreCheckFeature(dev, DRIVER_SYNCOBJ)) drmSyncobjOpen(file);
  if (dev.driver.open) {
    const ret = await dev.driver.open(dev, file);
    if (ret < 0) {
      drmPrimeDestroyFilePrivate(file.prime);
      if (drmCoreCheckFeature(dev, DRIVER_SYNCOBJ)) await drmSyncobjRelease(file);
      if (drmCoreCheckFeature(dev, DRIVER_GEM)) await drmGemRelease(dev, file);
      return ret;
    }
  }
  return file;
}

/** drm_file_free(): tears a DRM file down in 6.12's order. */
export async function drmFileFree(file: DrmFile): Promise<void> {
  const dev = file.minor.dev;
  file.eventList.length = 0;
  if (drmCoreCheckFeature(dev, DRIVER_MODESET)) {
    // Framebuffers and property blobs: no KMS in the model.
  }
  if (drmCoreCheckFeature(dev, DRIVER_SYNCOBJ)) await drmSyncobjRelease(file);
  if (drmCoreCheckFeature(dev, DRIVER_GEM)) await drmGemRelease(dev, file);
  if (drmIsPrimaryClient(file)) await drmMasterRelease(file);
  if (dev.driver.postclose) await dev.driver.postclose(dev, file);
  drmPrimeDestroyFilePrivate(file.prime);
}

/** The DRM file behind a struct file (filp->private_data). */
export function drmFileOf(filp: File): DrmFile {
  return filp.privateData as DrmFile;
}

/** drm_open_helper(). */
async function drmOpenHelper(filp: File, minor: DrmMinor): Promise<number> {
  const dev: DrmDevice = minor.dev;
  if (filp.fFlags & O_EXCL) return -errno.EBUSY;
  const priv = await drmFileAlloc(minor);
  if (typeof priv === 'number') return priv;
  if (drmIsPrimaryClient(priv)) {
    const ret = await drmMasterOpen(priv);
    if (ret) {
      await drmFileFree(priv);
      return ret;
    }
  }
  filp.privateData = priv;
  priv.filp = filp;
  dev.filelist.unshift(priv);
  return 0;
}

/** drm_open(): the open of /dev/dri/cardN and renderDN. */
export async function drmOpen(inode: Inode, filp: File): Promise<number> {
  const node = inode.priv as DrmMinor | null;
  const minor = node ? drmMinorAcquire(node.index, node.dev.kernel) : null;
  if (!minor) return -errno.ENODEV;
  const dev = minor.dev;
  dev.openCount++;
  const ret = await drmOpenHelper(filp, minor);
  if (ret) dev.openCount--;
  return ret;
}

/** drm_release(): the last reference to a DRM file is gone. */
export async function drmRelease(_inode: Inode, filp: File): Promise<number> {
  const file = drmFileOf(filp);
  const dev = file.minor.dev;
  const i = dev.filelist.indexOf(file);
  if (i >= 0) dev.filelist.splice(i, 1);
  await drmFileFree(file);
  dev.openCount--;
  return 0;
}

/** drm_read(): copies whole queued events; blocks (interruptibly) without O_NONBLOCK. */
export async function drmRead(filp: File, buf: number, count: number, _ppos: FilePos): Promise<number> {
  const file = drmFileOf(filp);
  let ret = 0;
  for (;;) {
    const e = file.eventList.shift();
    if (!e) {
      if (ret) break;
      if (filp.fFlags & O_NONBLOCK) return -errno.EAGAIN;
      const r = await file.eventWait.waitEvent(() => file.eventList.length > 0, {
        interruptible: true,
        desc: { what: 'drm_read: waiting for a DRM event' },
      });
      if (r < 0) return -errno.EINTR;
      continue;
    }
    if (e.bytes.length > count - ret) {
      file.eventList.unshift(e);
      break;
    }
    if (copyToUser(buf + ret, e.bytes)) {
      file.eventList.unshift(e);
      if (ret === 0) ret = -errno.EFAULT;
      break;
    }
    ret += e.bytes.length;
  }
  return ret;
}

/** drm_poll(): EPOLLIN | EPOLLRDNORM when an event is queued. */
export function drmPoll(filp: File, pt: PollTable | null): number {
  const file = drmFileOf(filp);
  pollWait(filp, file.eventWait, pt);
  return file.eventList.length > 0 ? EPOLLIN | EPOLLRDNORM : 0;
}

/** noop_llseek(): the position, unchanged. */
export function drmLlseek(filp: File, _offset: number, _whence: number): number {
  return filp.fPos;
}
