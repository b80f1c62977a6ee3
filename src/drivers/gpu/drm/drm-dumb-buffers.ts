/**
 * Dumb buffers: the generic "give me a linear buffer" ioctls (drivers/gpu/drm/
 * drm_dumb_buffers.c, Linux 6.12). They need no KMS: any driver with a `dumbCreate`
 * hook offers them (vgem through the shmem helper), others get -ENOSYS.
 *
 * CREATE_DUMB checks, in order: width, height and bpp all non-zero (-EINVAL), bpp not
 * near U32_MAX, cpp * width and height * stride fitting in 32 bits, and the 32-bit size
 * not wrapping when page aligned (-EINVAL each); then zeroes handle, pitch and size (their
 * input values are ignored) and calls the driver. MAP_DUMB returns the fake mmap offset
 * (drm_gem_dumb_map_offset: -ENOENT for an unknown handle, -EINVAL for an imported
 * object). DESTROY_DUMB is GEM_CLOSE.
 */
import { errno } from '../../../kernel/errno.ts';
import { PAGE_SIZE } from '../../../kernel/mm/page.ts';
import {
  drmModeCreateDumb,
  drmModeDestroyDumb as drmModeDestroyDumbArgs,
  drmModeMapDumb,
} from '../../../uapi/drm.ts';
import type { DrmDevice, DrmModeCreateDumbArgs } from './drm-drv.ts';
import type { DrmFile } from './drm-file.ts';
import { drmGemDumbMapOffset, drmGemHandleDelete } from './drm-gem.ts';

const U32_MAX = 0xffffffff;

/** A value truncated to 32 bits, as C's u32 arithmetic does. */
export function u32(x: bigint): number {
  return Number(BigInt.asUintN(32, x));
}

/** PAGE_ALIGN() of a u32 value, in u32 arithmetic (wraps to 0 near 4 GiB). */
export function pageAlignU32(x: number): number {
  const v = u32(BigInt(x) + BigInt(PAGE_SIZE - 1));
  return v - (v % PAGE_SIZE);
}

/** drm_mode_create_dumb(): validates `args` and calls the driver's dumb_create. 0 or -errno. */
export async function drmModeCreateDumbKernel(
  dev: DrmDevice,
  args: DrmModeCreateDumbArgs,
  file: DrmFile,
): Promise<number> {
  if (!dev.driver.dumbCreate) return -errno.ENOSYS;
  if (!args.width || !args.height || !args.bpp) return -errno.EINVAL;
  if (args.bpp > U32_MAX - 8) return -errno.EINVAL;
  const cpp = Math.ceil(args.bpp / 8);
  if (cpp > Math.floor(U32_MAX / args.width)) return -errno.EINVAL;
  const stride = cpp * args.width;
  if (args.height > Math.floor(U32_MAX / stride)) return -errno.EINVAL;
  const size = args.height * stride;
  if (pageAlignU32(size) === 0) return -errno.EINVAL;
  args.handle = 0;
  args.pitch = 0;
  args.size = 0;
  return dev.driver.dumbCreate(file, dev, args);
}

/** DRM_IOCTL_MODE_CREATE_DUMB. */
export async function drmModeCreateDumbIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> {
  const raw = drmModeCreateDumb.decode(data);
  const args: DrmModeCreateDumbArgs = {
    height: raw.height,
    width: raw.width,
    bpp: raw.bpp,
    flags: raw.flags,
    handle: raw.handle,
    pitch: raw.pitch,
    size: Number(raw.size),
  };
  const ret = await drmModeCreateDumbKernel(dev, args, file);
  // The kernel works on the struct in place: what it changed goes back even on failure.
  drmModeCreateDumb.encode({ ...raw, handle: args.handle, pitch: args.pitch, size: args.size }, data);
  return ret;
}

/** DRM_IOCTL_MODE_MAP_DUMB. */
export async function drmModeMmapDumbIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  if (!dev.driver.dumbCreate) return -errno.ENOSYS;
  const args = drmModeMapDumb.decode(data);
  const out = { offset: args.offset };
  const ret = dev.driver.dumbMapOffset
    ? await dev.driver.dumbMapOffset(file, dev, args.handle, out)
    : await drmGemDumbMapOffset(file, dev, args.handle, out);
  drmModeMapDumb.encode({ ...args, offset: out.offset }, data);
  return ret;
}

/** drm_mode_destroy_dumb(). */
export function drmModeDestroyDumb(dev: DrmDevice, handle: number, file: DrmFile): Promise<number> | number {
  if (!dev.driver.dumbCreate) return -errno.ENOSYS;
  return drmGemHandleDelete(file, handle);
}

/** DRM_IOCTL_MODE_DESTROY_DUMB. */
export function drmModeDestroyDumbIoctl(
  dev: DrmDevice,
  data: Uint8Array,
  file: DrmFile,
): Promise<number> | number {
  return drmModeDestroyDumb(dev, drmModeDestroyDumbArgs.decode(data).handle, file);
}
