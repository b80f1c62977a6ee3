/**
 * ioctl request numbers: the `_IOC` encoding of include/uapi/asm-generic/ioctl.h (x86_64
 * uses the generic layout) and the numbers of the interfaces the model implements.
 *
 * A request is `nr | type << 8 | size << 16 | dir << 30`, with direction `_IOW` = 1
 * (userspace writes, the kernel reads), `_IOR` = 2 and `_IOWR` = 3. Requests are
 * unsigned 32-bit values; the kernel truncates the syscall argument to `unsigned int`.
 *
 * Numbers for sync_file come from include/uapi/linux/sync_file.h; sw_sync's are
 * private to drivers/dma-buf/sw_sync.c (they are not uapi); the generic file ioctls
 * come from include/uapi/asm-generic/ioctls.h and include/uapi/linux/fs.h.
 */

/** Width of the number field. */
export const _IOC_NRBITS = 8;
/** Width of the type (magic) field. */
export const _IOC_TYPEBITS = 8;
/** Width of the size field. */
export const _IOC_SIZEBITS = 14;
/** Width of the direction field. */
export const _IOC_DIRBITS = 2;
/** Shift of the number field. */
export const _IOC_NRSHIFT = 0;
/** Shift of the type field. */
export const _IOC_TYPESHIFT = 8;
/** Shift of the size field. */
export const _IOC_SIZESHIFT = 16;
/** Shift of the direction field. */
export const _IOC_DIRSHIFT = 30;
/** Direction: no data. */
export const _IOC_NONE = 0;
/** Direction: userspace writes (copy_from_user). */
export const _IOC_WRITE = 1;
/** Direction: userspace reads (copy_to_user). */
export const _IOC_READ = 2;

/** Builds a request number from its four fields. `type` may be a one-character string. */
export function _IOC(dir: number, type: number | string, nr: number, size: number): number {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  return (
    ((dir << _IOC_DIRSHIFT) | (t << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)) >>> 0
  );
}

/** `_IO(type, nr)`: a request without data. */
export function _IO(type: number | string, nr: number): number {
  return _IOC(_IOC_NONE, type, nr, 0);
}

/** `_IOR(type, nr, size)`: the kernel writes `size` bytes to the argument. */
export function _IOR(type: number | string, nr: number, size: number): number {
  return _IOC(_IOC_READ, type, nr, size);
}

/** `_IOW(type, nr, size)`: the kernel reads `size` bytes from the argument. */
export function _IOW(type: number | string, nr: number, size: number): number {
  return _IOC(_IOC_WRITE, type, nr, size);
}

/** `_IOWR(type, nr, size)`: both directions. */
export function _IOWR(type: number | string, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}

/** The direction field of a request. */
export function _IOC_DIR(req: number): number {
  return (req >>> _IOC_DIRSHIFT) & ((1 << _IOC_DIRBITS) - 1);
}

/** The type (magic) field of a request. */
export function _IOC_TYPE(req: number): number {
  return (req >>> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1);
}

/** The number field of a request. */
export function _IOC_NR(req: number): number {
  return (req >>> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1);
}

/** The size field of a request. */
export function _IOC_SIZE(req: number): number {
  return (req >>> _IOC_SIZESHIFT) & ((1 << _IOC_SIZEBITS) - 1);
}

// ------------------------------------------------------------ generic file ioctls

/** FIONCLEX: clear close-on-exec (include/uapi/asm-generic/ioctls.h). */
export const FIONCLEX = 0x5450;
/** FIOCLEX: set close-on-exec. */
export const FIOCLEX = 0x5451;
/** FIONBIO: set or clear O_NONBLOCK from an `int` argument. */
export const FIONBIO = 0x5421;
/** FIOASYNC: set or clear FASYNC from an `int` argument. */
export const FIOASYNC = 0x5452;
/** FIOQSIZE: the size of a regular file, directory or link, as a 64-bit value. */
export const FIOQSIZE = 0x5460;
/** FIONREAD: bytes readable (file size minus position for regular files). */
export const FIONREAD = 0x541b;
/** FIGETBSZ: the filesystem block size (include/uapi/linux/fs.h). */
export const FIGETBSZ = _IO(0x00, 2);
/** FIFREEZE: freeze the filesystem. */
export const FIFREEZE = _IOWR('X', 119, 4);
/** FITHAW: thaw the filesystem. */
export const FITHAW = _IOWR('X', 120, 4);
/** FS_IOC_FIEMAP: extent map. */
export const FS_IOC_FIEMAP = _IOWR('f', 11, 32);

// ------------------------------------------------------------ sync_file (include/uapi/linux/sync_file.h)

/** Magic of the sync_file ioctls. */
export const SYNC_IOC_MAGIC = '>';
/** SYNC_IOC_MERGE: merge two sync_files into a new one (struct sync_merge_data, 48 bytes). */
export const SYNC_IOC_MERGE = _IOWR(SYNC_IOC_MAGIC, 3, 48);
/** SYNC_IOC_FILE_INFO: status and fences of a sync_file (struct sync_file_info, 56 bytes). */
export const SYNC_IOC_FILE_INFO = _IOWR(SYNC_IOC_MAGIC, 4, 56);
/** SYNC_IOC_SET_DEADLINE: deadline hint for the wrapped fence (struct sync_set_deadline, 16 bytes). */
export const SYNC_IOC_SET_DEADLINE = _IOW(SYNC_IOC_MAGIC, 5, 16);

// ------------------------------------------------------------ sw_sync (drivers/dma-buf/sw_sync.c)

/** Magic of the sw_sync ioctls. */
export const SW_SYNC_IOC_MAGIC = 'W';
/** SW_SYNC_IOC_CREATE_FENCE: new point on the timeline (struct sw_sync_create_fence_data, 40 bytes). */
export const SW_SYNC_IOC_CREATE_FENCE = _IOWR(SW_SYNC_IOC_MAGIC, 0, 40);
/** SW_SYNC_IOC_INC: advance the timeline by a `u32`. */
export const SW_SYNC_IOC_INC = _IOW(SW_SYNC_IOC_MAGIC, 1, 4);
/** SW_SYNC_GET_DEADLINE: a point's earliest deadline hint (struct sw_sync_get_deadline, 16 bytes). */
export const SW_SYNC_GET_DEADLINE = _IOWR(SW_SYNC_IOC_MAGIC, 2, 16);
