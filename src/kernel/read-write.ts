/**
 * read(2), write(2) and lseek(2) (fs/read_write.c).
 *
 * The checks run in the kernel's order: the fd (-EBADF), the open mode (-EBADF when
 * the file is not open for that direction), a read/write operation (-EINVAL without
 * one), the user range (-EFAULT), then the operation with the file position, which is
 * written back on success. Counts are clamped to MAX_RW_COUNT. lseek needs a seekable
 * file (-ESPIPE) and a whence of at most SEEK_HOLE (-EINVAL).
 */
import { errno } from './errno.ts';
import { fdget } from './fdtable.ts';
import {
  type File,
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_LSEEK,
  FMODE_READ,
  FMODE_STREAM,
  FMODE_WRITE,
  fput,
  MAX_RW_COUNT,
  SEEK_HOLE,
} from './file.ts';
import { accessOk } from './uaccess.ts';

/** vfs_read(): returns the bytes read or -errno; advances the file position. */
export async function vfsRead(file: File, buf: number, count: number): Promise<number> {
  if (!(file.fMode & FMODE_READ)) return -errno.EBADF;
  if (!(file.fMode & FMODE_CAN_READ)) return -errno.EINVAL;
  if (!accessOk(buf, count)) return -errno.EFAULT;
  if (file.fPos < 0) return -errno.EINVAL;
  if (count > MAX_RW_COUNT) count = MAX_RW_COUNT;
  const ppos = { pos: file.fPos };
  const ret = await file.fOp.read!(file, buf, count, ppos);
  if (ret >= 0 && !(file.fMode & FMODE_STREAM)) file.fPos = ppos.pos;
  return ret;
}

/** vfs_write(): returns the bytes written or -errno; advances the file position. */
export async function vfsWrite(file: File, buf: number, count: number): Promise<number> {
  if (!(file.fMode & FMODE_WRITE)) return -errno.EBADF;
  if (!(file.fMode & FMODE_CAN_WRITE)) return -errno.EINVAL;
  if (!accessOk(buf, count)) return -errno.EFAULT;
  if (file.fPos < 0) return -errno.EINVAL;
  if (count > MAX_RW_COUNT) count = MAX_RW_COUNT;
  const ppos = { pos: file.fPos };
  const ret = await file.fOp.write!(file, buf, count, ppos);
  if (ret >= 0 && !(file.fMode & FMODE_STREAM)) file.fPos = ppos.pos;
  return ret;
}

/** ksys_read(): holds a file reference across a read that may sleep (fdget_pos). */
export async function ksysRead(fd: number, buf: number, count: number): Promise<number> {
  const f = fdget(fd);
  if (!f) return -errno.EBADF;
  f.get();
  try {
    return await vfsRead(f, buf, count);
  } finally {
    fput(f);
  }
}

/** ksys_write(). */
export async function ksysWrite(fd: number, buf: number, count: number): Promise<number> {
  const f = fdget(fd);
  if (!f) return -errno.EBADF;
  f.get();
  try {
    return await vfsWrite(f, buf, count);
  } finally {
    fput(f);
  }
}

/** vfs_llseek(). */
export function vfsLlseek(file: File, offset: number, whence: number): number {
  if (!(file.fMode & FMODE_LSEEK) || !file.fOp.llseek) return -errno.ESPIPE;
  return file.fOp.llseek(file, offset, whence);
}

/** ksys_lseek(): `whence` as an unsigned int. */
export function ksysLseek(fd: number, offset: number, whence: number): number {
  const f = fdget(fd);
  if (!f) return -errno.EBADF;
  if (whence >>> 0 > SEEK_HOLE) return -errno.EINVAL;
  return vfsLlseek(f, offset, whence >>> 0);
}
