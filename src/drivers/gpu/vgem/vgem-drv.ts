/**
 * vgem: the virtual GEM provider, a DRM driver without hardware whose buffers are shmem
 * pages (drivers/gpu/drm/vgem/vgem_drv.c, vgem_drv.h, Linux 6.12). It is how the model
 * offers /dev/dri/card0 and /dev/dri/renderD128.
 *
 * As in 6.12: name `vgem`, description `Virtual GEM provider`, version 1.0.0, features
 * GEM and RENDER, dumb buffers and PRIME import through the shmem helpers (objects mapped
 * write-combined), two private ioctls (VGEM_FENCE_ATTACH 0x41, VGEM_FENCE_SIGNAL 0x42,
 * both allowed on the render node; number 0x40 is a hole: -EINVAL), a platform device
 * named `vgem` with a 64-bit DMA mask (the name bufinfo lists under Attached Devices when
 * vgem imports a buffer).
 *
 * Model extension: the vgem device also has DRIVER_SYNCOBJ and DRIVER_SYNCOBJ_TIMELINE,
 * so the default machine — whose only DRM device is vgem — can run drm_syncobj programs
 * (the 6.12 vgem driver has neither: its syncobj ioctls answer -EOPNOTSUPP and GET_CAP
 * reports 0). `vgemDevice().driverFeatures &= ~(DRIVER_SYNCOBJ | DRIVER_SYNCOBJ_TIMELINE)`
 * gives back the exact 6.12 device; `VGEM_6_12_FEATURES` names its mask.
 */
import { Device, dmaBitMask } from '../../../kernel/device.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import {
  DRM_COMMAND_BASE,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
} from '../../../uapi/drm.ts';
import {
  DRIVER_GEM,
  DRIVER_RENDER,
  DRIVER_SYNCOBJ,
  DRIVER_SYNCOBJ_TIMELINE,
  type DrmDevice,
  type DrmDriver,
  drmDevAlloc,
  drmDevRegister,
} from '../drm/drm-drv.ts';
import type { DrmFile } from '../drm/drm-file.ts';
import { drmGemFops } from '../drm/drm-gem.ts';
import {
  DrmGemShmemObject,
  drmGemShmemDumbCreate,
  drmGemShmemPrimeImportSgTable,
} from '../drm/drm-gem-shmem-helper.ts';
import { DRM_RENDER_ALLOW, type DrmIoctlDesc, drmIoctlDef } from '../drm/drm-ioctl.ts';
import {
  VgemFile,
  vgemFenceAttachIoctl,
  vgemFenceClose,
  vgemFenceOpen,
  vgemFenceSignalIoctl,
} from './vgem-fence.ts';

/** DRIVER_NAME. */
export const VGEM_DRIVER_NAME = 'vgem';
/** DRIVER_DESC. */
export const VGEM_DRIVER_DESC = 'Virtual GEM provider';
/** DRIVER_DATE (userspace sees "0" in 6.12). */
export const VGEM_DRIVER_DATE = '20120112';
/** The features of the 6.12 vgem driver. */
export const VGEM_6_12_FEATURES = DRIVER_GEM | DRIVER_RENDER;

/** vgem_open(): the per-file fence table. */
function vgemOpen(_dev: DrmDevice, file: DrmFile): number {
  const vfile = new VgemFile();
  file.driverPriv = vfile;
  return vgemFenceOpen(vfile);
}

/** vgem_postclose(): signals and drops the file's fences. */
function vgemPostclose(_dev: DrmDevice, file: DrmFile): void {
  vgemFenceClose(file.driverPriv as VgemFile);
  file.driverPriv = null;
}

/** vgem_ioctls[], indexed by number - DRM_COMMAND_BASE. */
const vgemIoctls: (DrmIoctlDesc | null)[] = [];
vgemIoctls[(DRM_IOCTL_VGEM_FENCE_ATTACH & 0xff) - DRM_COMMAND_BASE] = drmIoctlDef(
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  vgemFenceAttachIoctl,
  DRM_RENDER_ALLOW,
  'DRM_IOCTL_VGEM_FENCE_ATTACH',
);
vgemIoctls[(DRM_IOCTL_VGEM_FENCE_SIGNAL & 0xff) - DRM_COMMAND_BASE] = drmIoctlDef(
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  vgemFenceSignalIoctl,
  DRM_RENDER_ALLOW,
  'DRM_IOCTL_VGEM_FENCE_SIGNAL',
);
for (let i = 0; i < vgemIoctls.length; i++) vgemIoctls[i] ??= null;

/** vgem_gem_create_object(): a shmem object mapped write-combined. */
function vgemGemCreateObject(_dev: DrmDevice, _size: number): DrmGemShmemObject {
  const obj = new DrmGemShmemObject();
  // vgem has no begin/end CPU access ioctls: it must use coherent memory.
  obj.mapWc = true;
  return obj;
}

/** The vgem driver (struct drm_driver vgem_driver). */
export const vgemDriver: DrmDriver = {
  name: VGEM_DRIVER_NAME,
  desc: VGEM_DRIVER_DESC,
  date: VGEM_DRIVER_DATE,
  major: 1,
  minor: 0,
  patchlevel: 0,
  driverFeatures: VGEM_6_12_FEATURES | DRIVER_SYNCOBJ | DRIVER_SYNCOBJ_TIMELINE,
  fops: drmGemFops,
  ioctls: vgemIoctls,
  open: vgemOpen,
  postclose: vgemPostclose,
  gemCreateObject: vgemGemCreateObject,
  gemPrimeImportSgTable: drmGemShmemPrimeImportSgTable,
  dumbCreate: drmGemShmemDumbCreate,
};

const VGEM = Symbol('vgem_device');

/** The vgem DRM device of a kernel (after boot), or null. */
export function vgemDevice(k: Kernel = currentKernel()): DrmDevice | null {
  return (k.singletons.get(VGEM) as DrmDevice | undefined) ?? null;
}

/** vgem_init(): the platform device, the DRM device and its nodes (an initcall). */
export function vgemInit(): void {
  const k = currentKernel();
  const pdev = new Device('vgem', { driverString: 'vgem', dmaMask: dmaBitMask(64) });
  const dev = drmDevAlloc(vgemDriver, pdev);
  drmDevRegister(dev);
  k.singletons.set(VGEM, dev);
}
