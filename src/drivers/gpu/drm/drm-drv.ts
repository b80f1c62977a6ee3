/**
 * The DRM device and driver (drivers/gpu/drm/drm_drv.c, include/drm/drm_drv.h,
 * include/drm/drm_device.h, Linux 6.12).
 *
 * A driver describes itself with a `DrmDriver` (name, version, features, its private
 * ioctls and GEM hooks); `drmDevAlloc` creates a `DrmDevice` for it on a parent
 * `Device`, and `drmDevRegister` exposes it: a primary node /dev/dri/cardN (minor N) and,
 * for DRIVER_RENDER drivers, a render node /dev/dri/renderD(128+N), character devices of
 * major 226, plus the debugfs directory /sys/kernel/debug/dri/<unique> (with
 * dri/N and dri/128+N naming the same files, as the symlinks do).
 *
 * `dev.driverFeatures` is the per-device feature mask of 6.12 (`drm_device.driver_features`,
 * all of the driver's features unless the driver clears some): every feature check goes
 * through it, so a test can run a device without, say, DRIVER_SYNCOBJ.
 *
 * Inode numbers: the oracle's 6.12 kernel showed /dev/dri/card0 as inode 530 in devtmpfs;
 * the render node's number was not captured (the model uses the next one).
 */
import type { Device } from '../../../kernel/device.ts';
import type { DmaBuf, DmaBufAttachment } from '../../../kernel/dma-buf/dma-buf.ts';
import type { ErrPtr } from '../../../kernel/err.ts';
import type { FileOperations } from '../../../kernel/file.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import { Idr } from '../../../kernel/lib/idr.ts';
import { Mutex } from '../../../kernel/locking/mutex.ts';
import type { SgTable } from '../../../kernel/mm/scatterlist.ts';
import { registerDevice } from '../../../kernel/vfs.ts';
import type { DrmMaster } from './drm-auth.ts';
import { drmDebugfsDevRegister } from './drm-debugfs.ts';
import type { DrmFile } from './drm-file.ts';
import type { DrmGemObject } from './drm-gem.ts';
import type { DrmIoctlDesc } from './drm-ioctl.ts';
import { DrmVmaOffsetManager } from './drm-vma-manager.ts';

/** Feature: the driver uses GEM. */
export const DRIVER_GEM = 1 << 0;
/** Feature: kernel modesetting. */
export const DRIVER_MODESET = 1 << 1;
/** Feature: the driver has a render node. */
export const DRIVER_RENDER = 1 << 3;
/** Feature: atomic modesetting. */
export const DRIVER_ATOMIC = 1 << 4;
/** Feature: binary drm_syncobj. */
export const DRIVER_SYNCOBJ = 1 << 5;
/** Feature: timeline drm_syncobj. */
export const DRIVER_SYNCOBJ_TIMELINE = 1 << 6;
/** Feature: a compute accelerator (accel node). */
export const DRIVER_COMPUTE_ACCEL = 1 << 7;
/** Feature: GPU VA management. */
export const DRIVER_GEM_GPUVA = 1 << 8;
/** Feature: cursor hotspots. */
export const DRIVER_CURSOR_HOTSPOT = 1 << 9;

/** The DRM character-device major number. */
export const DRM_MAJOR = 226;
/** Minor type of /dev/dri/cardN (enum drm_minor_type). */
export const DRM_MINOR_PRIMARY = 0;
/** Minor type of /dev/dri/renderDN. */
export const DRM_MINOR_RENDER = 2;
/** devtmpfs inode number of /dev/dri/card0 on the oracle kernel. */
export const DRM_CARD0_INO = 530;

/** Arguments of the dumb-buffer hooks (struct drm_mode_create_dumb, decoded). */
export interface DrmModeCreateDumbArgs {
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
  /** Bits per pixel. */
  bpp: number;
  /** Flags (none defined). */
  flags: number;
  /** Out: the GEM handle. */
  handle: number;
  /** In/out: bytes per line. */
  pitch: number;
  /** In/out: size in bytes. */
  size: number;
}

/** What a DRM driver provides (struct drm_driver). */
export interface DrmDriver {
  /** Driver name (DRM_IOCTL_VERSION, debugfs). */
  readonly name: string;
  /** Description. */
  readonly desc: string;
  /** Date (6.12 reports "0" to userspace whatever this says). */
  readonly date: string;
  /** Major version. */
  readonly major: number;
  /** Minor version. */
  readonly minor: number;
  /** Patch level. */
  readonly patchlevel: number;
  /** DRIVER_* bits. */
  readonly driverFeatures: number;
  /** The file operations of the device nodes (DEFINE_DRM_GEM_FOPS for GEM drivers). */
  readonly fops: FileOperations;
  /** Driver-private ioctls, indexed by number - DRM_COMMAND_BASE (holes are null). */
  readonly ioctls: readonly (DrmIoctlDesc | null)[];
  /** Optional. A new DRM file: set up `file.driverPriv`. 0 or -errno (the open fails). */
  open?(dev: DrmDevice, file: DrmFile): number | Promise<number>;
  /** Optional. The file is being freed, after its GEM handles and syncobjs. */
  postclose?(dev: DrmDevice, file: DrmFile): void | Promise<void>;
  /** Optional. Allocates the driver's GEM object of `size` bytes (not yet initialised). */
  gemCreateObject?(dev: DrmDevice, size: number): DrmGemObject | ErrPtr;
  /** Optional (without it PRIME uses drm_gem_prime_import). */
  gemPrimeImport?(dev: DrmDevice, dmabuf: DmaBuf): Promise<DrmGemObject | ErrPtr>;
  /** Optional. Wraps a foreign buffer's mapped sg_table in a GEM object (PRIME import). */
  gemPrimeImportSgTable?(dev: DrmDevice, attach: DmaBufAttachment, sgt: SgTable): DrmGemObject | ErrPtr;
  /** Optional. MODE_CREATE_DUMB: fills handle, pitch and size. 0 or -errno. */
  dumbCreate?(file: DrmFile, dev: DrmDevice, args: DrmModeCreateDumbArgs): number | Promise<number>;
  /** Optional (default drm_gem_dumb_map_offset). MODE_MAP_DUMB. */
  dumbMapOffset?(
    file: DrmFile,
    dev: DrmDevice,
    handle: number,
    out: { offset: bigint },
  ): number | Promise<number>;
}

/** A device node of a DRM device (struct drm_minor). */
export class DrmMinor {
  /** Creates the minor `index` of `type`. */
  constructor(
    /** The device. */
    readonly dev: DrmDevice,
    /** Minor number. */
    readonly index: number,
    /** DRM_MINOR_PRIMARY or DRM_MINOR_RENDER. */
    readonly type: number,
  ) {}

  /** The node's path under /dev/dri. */
  get path(): string {
    return this.type === DRM_MINOR_RENDER ? `/dev/dri/renderD${this.index}` : `/dev/dri/card${this.index}`;
  }
}

/** A DRM device (struct drm_device). */
export class DrmDevice {
  /** Per-device feature mask (driver_features). */
  driverFeatures: number;
  /** The primary node, once registered. */
  primary: DrmMinor | null = null;
  /** The render node, once registered (DRIVER_RENDER). */
  render: DrmMinor | null = null;
  /** The name of the device for debugfs and busid (dev->unique: the parent's name). */
  readonly unique: string;
  /** The current master, or null (protected by masterMutex). */
  master: DrmMaster | null = null;
  /** master_mutex. */
  readonly masterMutex = new Mutex('drm_device.master_mutex');
  /** Open DRM files, youngest first (filelist). */
  readonly filelist: DrmFile[] = [];
  /** Number of open files (open_count). */
  openCount = 0;
  /** The last client id handed to a DRM file of this device. */
  lastClientId = 0;
  /** flink names (object_name_idr, from 1). */
  readonly objectNameIdr = new Idr<DrmGemObject>(1);
  /** object_name_lock: protects names and handle counts. */
  readonly objectNameLock = new Mutex('drm_device.object_name_lock');
  /** The fake mmap offset space of the device's GEM objects. */
  readonly vmaOffsetManager = new DrmVmaOffsetManager();
  /** The kernel the device lives in. */
  readonly kernel: Kernel;

  /** drm_dev_init() through devm_drm_dev_alloc(); use `drmDevAlloc`. */
  constructor(
    /** The driver. */
    readonly driver: DrmDriver,
    /** The parent device (a platform device for vgem): DMA mappings and attachments use it. */
    readonly dev: Device,
  ) {
    this.kernel = currentKernel();
    this.driverFeatures = driver.driverFeatures;
    this.unique = dev.name;
  }

  /** `drm <name>` for messages. */
  toString(): string {
    return `drm ${this.driver.name}`;
  }
}

/** drm_core_check_feature(): true when the device has `feature`. */
export function drmCoreCheckFeature(dev: DrmDevice, feature: number): boolean {
  return (dev.driverFeatures & dev.driver.driverFeatures & feature) !== 0;
}

interface DrmState {
  devices: DrmDevice[];
  minors: Map<number, DrmMinor>;
  nextPrimary: number;
}

const STATE = Symbol('drm');

function state(k: Kernel = currentKernel()): DrmState {
  let s = k.singletons.get(STATE) as DrmState | undefined;
  if (!s) {
    s = { devices: [], minors: new Map(), nextPrimary: 0 };
    k.singletons.set(STATE, s);
  }
  return s;
}

/** The registered DRM devices of a kernel, in registration order. */
export function drmDevices(k: Kernel = currentKernel()): readonly DrmDevice[] {
  return state(k).devices;
}

/** drm_minor_acquire(): the minor with number `index`, or null. */
export function drmMinorAcquire(index: number, k: Kernel = currentKernel()): DrmMinor | null {
  return state(k).minors.get(index) ?? null;
}

/** devm_drm_dev_alloc(): a device for `driver` on the parent `dev`. */
export function drmDevAlloc(driver: DrmDriver, dev: Device): DrmDevice {
  return new DrmDevice(driver, dev);
}

/**
 * drm_dev_register(): creates the device nodes (primary, and render for DRIVER_RENDER
 * drivers) and the debugfs files. Returns 0.
 */
export function drmDevRegister(dev: DrmDevice): number {
  const s = state(dev.kernel);
  const n = s.nextPrimary++;
  if (drmCoreCheckFeature(dev, DRIVER_RENDER)) {
    const render = new DrmMinor(dev, 128 + n, DRM_MINOR_RENDER);
    dev.render = render;
    s.minors.set(render.index, render);
  }
  const primary = new DrmMinor(dev, n, DRM_MINOR_PRIMARY);
  dev.primary = primary;
  s.minors.set(primary.index, primary);
  registerDevice(primary.path, dev.driver.fops, {
    rdev: (DRM_MAJOR << 8) | primary.index,
    ino: n === 0 ? DRM_CARD0_INO : undefined,
    priv: primary,
  });
  if (dev.render) {
    registerDevice(dev.render.path, dev.driver.fops, {
      rdev: (DRM_MAJOR << 8) | dev.render.index,
      ino: n === 0 ? DRM_CARD0_INO + 1 : undefined,
      priv: dev.render,
    });
  }
  s.devices.push(dev);
  drmDebugfsDevRegister(dev);
  return 0;
}
