/**
 * memfd_create() and file seals (mm/memfd.c, include/uapi/linux/memfd.h).
 *
 * A memfd is an unlinked shmem (or, with MFD_HUGETLB, hugetlbfs) file named
 * `memfd:<name>`. With MFD_ALLOW_SEALING its seal set starts empty, otherwise it holds
 * F_SEAL_SEAL so no seal can be added; MFD_NOEXEC_SEAL starts with F_SEAL_EXEC. The
 * vm.memfd_noexec sysctl is 0 (the default): memfds without MFD_NOEXEC_SEAL behave as
 * MFD_EXEC.
 *
 * F_ADD_SEALS checks in the kernel's order: the file must be open for writing
 * (-EPERM), the seals known (-EINVAL), the file a shmem/hugetlbfs file (-EINVAL),
 * sealing not sealed (-EPERM); F_SEAL_WRITE then fails with -EBUSY while a shared
 * writable mapping exists, or — after retrying for about 150 ms of virtual time, as
 * memfd_wait_for_pins does — while pages are pinned by someone else.
 */
import { errno } from '../errno.ts';
import { fdInstall, getUnusedFdFlags, O_CLOEXEC_FLAG, putUnusedFd } from '../fdtable.ts';
import { type File, FMODE_PREAD, FMODE_PWRITE, FMODE_WRITE } from '../file.ts';
import { currentKernel } from '../kernel.ts';
import { strncpyFromUser, strnlenUser } from '../uaccess.ts';
import {
  F_SEAL_EXEC,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  shmemFileSetup,
  shmemInfo,
} from './shmem.ts';

/** Close the memfd on exec. */
export const MFD_CLOEXEC = 0x0001;
/** Allow sealing. */
export const MFD_ALLOW_SEALING = 0x0002;
/** Back the file with huge pages. */
export const MFD_HUGETLB = 0x0004;
/** Not executable, sealed so. */
export const MFD_NOEXEC_SEAL = 0x0008;
/** Executable. */
export const MFD_EXEC = 0x0010;
/** Shift of the huge page size encoding. */
export const MFD_HUGE_SHIFT = 26;
/** Mask of the huge page size encoding. */
export const MFD_HUGE_MASK = 0x3f;
/** Every defined flag. */
export const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
/** Every seal. */
export const F_ALL_SEALS =
  F_SEAL_SEAL | F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

/** fcntl command: add seals. */
export const F_ADD_SEALS = 1033;
/** fcntl command: get seals. */
export const F_GET_SEALS = 1034;

/** NAME_MAX minus the `memfd:` prefix. */
const MFD_NAME_MAX_LEN = 255 - 6;
/** O_LARGEFILE. */
const O_LARGEFILE = 0o100000;

/** Huge page sizes a hugetlb memfd may ask for (log2), x86_64: 2 MiB and 1 GiB; 0 = default. */
const HUGE_SIZES_LOG2 = new Set([0, 21, 30]);

/**
 * memfd_create(): returns a new fd or -errno (-EINVAL for bad flags or a name longer
 * than 249 bytes, -EFAULT for a bad name pointer, -EMFILE).
 */
export function memfdCreate(uname: number, flags: number): number {
  flags >>>= 0;
  if (!(flags & MFD_HUGETLB)) {
    if (flags & ~MFD_ALL_FLAGS) return -errno.EINVAL;
  } else {
    if (flags & ~(MFD_ALL_FLAGS | (MFD_HUGE_MASK << MFD_HUGE_SHIFT))) return -errno.EINVAL;
  }
  if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) return -errno.EINVAL;
  if (!(flags & (MFD_EXEC | MFD_NOEXEC_SEAL))) flags |= MFD_EXEC;

  const len = strnlenUser(uname, MFD_NAME_MAX_LEN + 1);
  if (len <= 0) return -errno.EFAULT;
  if (len > MFD_NAME_MAX_LEN + 1) return -errno.EINVAL;
  const name = strncpyFromUser(uname, len);
  if (typeof name === 'number') return name;

  const fd = getUnusedFdFlags(flags & MFD_CLOEXEC ? O_CLOEXEC_FLAG : 0);
  if (fd < 0) return fd;

  let hugetlb = false;
  if (flags & MFD_HUGETLB) {
    const log2 = (flags >>> MFD_HUGE_SHIFT) & MFD_HUGE_MASK;
    if (!HUGE_SIZES_LOG2.has(log2)) {
      putUnusedFd(fd);
      return -errno.ENODEV;
    }
    hugetlb = true;
  }
  let text = '';
  for (const b of name.bytes) text += String.fromCharCode(b);
  const file = shmemFileSetup(`memfd:${text}`, 0, hugetlb);
  if (hugetlb && ((flags >>> MFD_HUGE_SHIFT) & MFD_HUGE_MASK) === 30)
    shmemInfo(file.inode)!.hpageSize = 1 << 30;
  file.fMode |= FMODE_PREAD | FMODE_PWRITE | 0x4;
  file.fFlags |= O_LARGEFILE;
  const info = shmemInfo(file.inode)!;
  if (flags & MFD_NOEXEC_SEAL) {
    file.inode.mode &= ~0o111;
    info.seals &= ~F_SEAL_SEAL;
    info.seals |= F_SEAL_EXEC;
  } else if (flags & MFD_ALLOW_SEALING) {
    info.seals &= ~F_SEAL_SEAL;
  }
  fdInstall(fd, file);
  return fd;
}

/** The seals of a file, or -EINVAL if it cannot carry seals (memfd_get_seals). */
export function memfdGetSeals(file: File): number {
  const info = shmemInfo(file.inode);
  return info ? info.seals : -errno.EINVAL;
}

/** memfd_add_seals(); see the module comment for the order of checks. */
export async function memfdAddSeals(file: File, seals: number): Promise<number> {
  seals >>>= 0;
  if (!(file.fMode & FMODE_WRITE)) return -errno.EPERM;
  if (seals & ~F_ALL_SEALS) return -errno.EINVAL;
  const info = shmemInfo(file.inode);
  if (!info) return -errno.EINVAL;
  if (info.seals & F_SEAL_SEAL) return -errno.EPERM;
  if (seals & F_SEAL_EXEC && file.inode.mode & 0o111) {
    seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
  }
  if (seals & F_SEAL_WRITE && !(info.seals & F_SEAL_WRITE)) {
    if (file.inode.mmapWritable > 0) return -errno.EBUSY;
    if (info.hasPinnedPages()) {
      // memfd_wait_for_pins(): rescan after (HZ << scan) / 200 jiffies, scans 1..4.
      const k = currentKernel();
      for (let scan = 1; scan <= 4 && info.hasPinnedPages(); scan++) {
        await k.scheduleTimeout(Math.floor((k.jiffies.hz << scan) / 200), 'memfd_wait_for_pins');
      }
      if (info.hasPinnedPages()) return -errno.EBUSY;
    }
    info.denyWritable = true;
  }
  info.seals |= seals;
  return 0;
}

/** memfd_fcntl(): F_ADD_SEALS and F_GET_SEALS. */
export async function memfdFcntl(file: File, cmd: number, arg: number): Promise<number> {
  switch (cmd) {
    case F_ADD_SEALS:
      return memfdAddSeals(file, arg);
    case F_GET_SEALS:
      return memfdGetSeals(file);
    default:
      return -errno.EINVAL;
  }
}
