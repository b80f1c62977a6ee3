/**
 * fstat(2) (fs/stat.c vfs_getattr / generic_fillattr, cp_new_stat).
 *
 * Fills struct stat from the inode: device (the filesystem's `major:minor`, encoded
 * as new_encode_dev), inode number, link count, mode (type and permission bits; anonymous
 * inodes have no type bits), rdev of device nodes, size, a 4096-byte block size, and
 * 512-byte blocks for the pages a shmem file holds. Times are not modelled (0).
 * Works on O_PATH fds, as fstat does.
 */
import { stat } from '../uapi/structs.ts';
import { errno } from './errno.ts';
import { fdLookup } from './fdtable.ts';
import { shmemInfo } from './mm/shmem.ts';
import { copyStructToUser } from './uaccess.ts';

/** new_encode_dev() of a `major:minor` string in hex, as /proc/pid/maps prints it. */
export function encodeDev(dev: string): number {
  const [ma, mi] = dev.split(':').map((x) => Number.parseInt(x, 16));
  return ((mi & 0xff) | (ma << 8) | ((mi & ~0xff) << 12)) >>> 0;
}

/** fstat(2): writes a struct stat at `statbuf`. */
export function sysFstat(fd: number, statbuf: number): number {
  const f = fdLookup(fd);
  if (!f) return -errno.EBADF;
  const i = f.inode;
  const info = shmemInfo(i);
  return copyStructToUser(stat, statbuf, {
    st_dev: encodeDev(i.sb.dev),
    st_ino: i.ino,
    st_nlink: i.nlink,
    st_mode: i.mode,
    st_rdev: i.rdev,
    st_size: i.size,
    st_blksize: 4096,
    st_blocks: info ? info.pages.size * 8 : 0,
  });
}
