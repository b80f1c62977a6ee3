/**
 * ioctl(2) (fs/ioctl.c): the generic requests every file understands, then the file
 * type's own `ioctl` operation.
 *
 * Generic requests handled before the driver sees them: FIOCLEX, FIONCLEX, FIONBIO,
 * FIOASYNC, FIOQSIZE, FIGETBSZ, FIFREEZE/FITHAW and FS_IOC_FIEMAP (-EOPNOTSUPP on the
 * model's filesystems), and FIONREAD on regular files. Everything else (including the
 * clone/dedupe and attribute requests, which the model's filesystems do not support)
 * goes to the driver; without an `ioctl` operation, or when it answers -ENOIOCTLCMD,
 * the result is -ENOTTY. The driver holds a reference on the file while it runs, so a
 * concurrent close() cannot release it mid-call.
 */
import {
  FIFREEZE,
  FIGETBSZ,
  FIOASYNC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIONREAD,
  FIOQSIZE,
  FITHAW,
  FS_IOC_FIEMAP,
} from '../uapi/ioctl.ts';
import { errno } from './errno.ts';
import { FASYNC, O_NONBLOCK } from './fcntl.ts';
import { fdget } from './fdtable.ts';
import { type File, fput, S_IFLNK, S_IFMT, S_ISDIR, S_ISREG } from './file.ts';
import { current } from './sched.ts';
import { getUserS32, putUserU32, putUserU64 } from './uaccess.ts';

/** vfs_ioctl(): the file type's handler; -ENOTTY without one. */
export async function vfsIoctl(file: File, cmd: number, arg: number): Promise<number> {
  if (!file.fOp.ioctl) return -errno.ENOTTY;
  const r = await file.fOp.ioctl(file, cmd, arg);
  return r === -errno.ENOIOCTLCMD ? -errno.ENOTTY : r;
}

function doVfsIoctl(file: File, fd: number, cmd: number, arg: number): number {
  const inode = file.inode;
  switch (cmd) {
    case FIOCLEX:
      current()?.files?.setCloexec(fd, true);
      return 0;
    case FIONCLEX:
      current()?.files?.setCloexec(fd, false);
      return 0;
    case FIONBIO: {
      const on = getUserS32(arg);
      if (on === null) return -errno.EFAULT;
      if (on) file.fFlags |= O_NONBLOCK;
      else file.fFlags &= ~O_NONBLOCK;
      return 0;
    }
    case FIOASYNC: {
      const on = getUserS32(arg);
      if (on === null) return -errno.EFAULT;
      const flag = on ? FASYNC : 0;
      if ((flag ^ file.fFlags) & FASYNC) {
        if (!file.fOp.fasync) return -errno.ENOTTY;
        const r = file.fOp.fasync(fd, file, on !== 0);
        if (r < 0) return r;
        file.fFlags = (file.fFlags & ~FASYNC) | flag;
      }
      return 0;
    }
    case FIOQSIZE:
      if (S_ISDIR(inode.mode) || S_ISREG(inode.mode) || (inode.mode & S_IFMT) === S_IFLNK) {
        return putUserU64(arg, inode.size);
      }
      return -errno.ENOTTY;
    case FIFREEZE:
    case FITHAW:
    case FS_IOC_FIEMAP:
      return -errno.EOPNOTSUPP;
    case FIGETBSZ:
      return putUserU32(arg, inode.sb.blocksize);
    case FIONREAD:
      if (!S_ISREG(inode.mode)) return -errno.ENOIOCTLCMD;
      return putUserU32(arg, Math.max(-0x80000000, Math.min(0x7fffffff, inode.size - file.fPos)));
    default:
      return -errno.ENOIOCTLCMD;
  }
}

/** ioctl(2): `fd` and `cmd` as unsigned ints, `arg` the raw argument. */
export async function ksysIoctl(fd: number, cmd: number, arg: number): Promise<number> {
  const file = fdget(fd);
  if (!file) return -errno.EBADF;
  cmd >>>= 0;
  const r = doVfsIoctl(file, fd, cmd, arg);
  if (r !== -errno.ENOIOCTLCMD) return r;
  file.get();
  try {
    return await vfsIoctl(file, cmd, arg);
  } finally {
    fput(file);
  }
}
