/**
 * fcntl(2) and the open flags (fs/fcntl.c, include/uapi/asm-generic/fcntl.h,
 * include/linux/fcntl.h).
 *
 * Implemented commands: F_DUPFD, F_DUPFD_CLOEXEC, F_DUPFD_QUERY, F_CREATED_QUERY,
 * F_GETFD, F_SETFD, F_GETFL, F_SETFL (O_APPEND, O_NONBLOCK, O_NDELAY, O_DIRECT,
 * O_NOATIME, FASYNC), F_ADD_SEALS, F_GET_SEALS, F_GETOWN/F_SETOWN and F_GETSIG/F_SETSIG
 * (recorded, no signals are sent). Record locks and leases are not modelled: those
 * commands return -EINVAL like unknown ones. O_PATH files accept only the commands
 * fs/fcntl.c allows them (-EBADF otherwise).
 */
import { errno } from './errno.ts';
import { fDupfd, fdLookup } from './fdtable.ts';
import { type File, FMODE_CREATED, FMODE_PATH, S_ISREG } from './file.ts';
import { memfdFcntl } from './mm/memfd.ts';
import { current } from './sched.ts';

/** Open for reading only. */
export const O_RDONLY = 0o0;
/** Open for writing only. */
export const O_WRONLY = 0o1;
/** Open for reading and writing. */
export const O_RDWR = 0o2;
/** Access mode mask. */
export const O_ACCMODE = 0o3;
/** Create if missing. */
export const O_CREAT = 0o100;
/** With O_CREAT: fail if it exists. */
export const O_EXCL = 0o200;
/** Do not become the controlling terminal. */
export const O_NOCTTY = 0o400;
/** Truncate. */
export const O_TRUNC = 0o1000;
/** Append. */
export const O_APPEND = 0o2000;
/** Non-blocking I/O. */
export const O_NONBLOCK = 0o4000;
/** Same as O_NONBLOCK. */
export const O_NDELAY = O_NONBLOCK;
/** Synchronous data writes. */
export const O_DSYNC = 0o10000;
/** Signal-driven I/O. */
export const FASYNC = 0o20000;
/** Direct I/O. */
export const O_DIRECT = 0o40000;
/** Large files (always set on 64-bit). */
export const O_LARGEFILE = 0o100000;
/** Must be a directory. */
export const O_DIRECTORY = 0o200000;
/** Do not follow a final symlink. */
export const O_NOFOLLOW = 0o400000;
/** Do not update the access time. */
export const O_NOATIME = 0o1000000;
/** Close on exec. */
export const O_CLOEXEC = 0o2000000;
/** Synchronous writes (with O_DSYNC). */
export const __O_SYNC = 0o4000000;
/** O_SYNC. */
export const O_SYNC = __O_SYNC | O_DSYNC;
/** A path-only descriptor. */
export const O_PATH = 0o10000000;
/** Unnamed temporary file (bit). */
export const __O_TMPFILE = 0o20000000;
/** Unnamed temporary file. */
export const O_TMPFILE = __O_TMPFILE | O_DIRECTORY;

/** Flags open(2) looks at; others are silently dropped. */
export const VALID_OPEN_FLAGS =
  O_RDONLY |
  O_WRONLY |
  O_RDWR |
  O_CREAT |
  O_EXCL |
  O_NOCTTY |
  O_TRUNC |
  O_APPEND |
  O_NDELAY |
  O_NONBLOCK |
  __O_SYNC |
  O_DSYNC |
  FASYNC |
  O_DIRECT |
  O_LARGEFILE |
  O_DIRECTORY |
  O_NOFOLLOW |
  O_NOATIME |
  O_CLOEXEC |
  O_PATH |
  __O_TMPFILE;

/** Flags O_PATH keeps. */
export const O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC;

/** Flags F_SETFL may change. */
export const SETFL_MASK = O_APPEND | O_NONBLOCK | O_NDELAY | FASYNC | O_DIRECT | O_NOATIME;

/** Duplicate to the lowest fd >= arg. */
export const F_DUPFD = 0;
/** Get the fd flags. */
export const F_GETFD = 1;
/** Set the fd flags. */
export const F_SETFD = 2;
/** Get the file status flags. */
export const F_GETFL = 3;
/** Set the file status flags. */
export const F_SETFL = 4;
/** Get a record lock. */
export const F_GETLK = 5;
/** Set a record lock. */
export const F_SETLK = 6;
/** Set a record lock, waiting. */
export const F_SETLKW = 7;
/** Set the SIGIO owner. */
export const F_SETOWN = 8;
/** Get the SIGIO owner. */
export const F_GETOWN = 9;
/** Set the signal sent for I/O. */
export const F_SETSIG = 10;
/** Get the signal sent for I/O. */
export const F_GETSIG = 11;
/** Whether two fds refer to the same file (6.10+). */
export const F_DUPFD_QUERY = 1027;
/** Whether the open created the file (6.12). */
export const F_CREATED_QUERY = 1028;
/** Duplicate with close-on-exec set. */
export const F_DUPFD_CLOEXEC = 1030;
/** Add seals (memfd). */
export const F_ADD_SEALS = 1033;
/** Get seals (memfd). */
export const F_GET_SEALS = 1034;
/** The close-on-exec fd flag. */
export const FD_CLOEXEC = 1;

/** _NSIG on x86_64. */
const NSIG = 64;

interface Owner {
  pid: number;
  sig: number;
}
const owners = new WeakMap<File, Owner>();

function owner(f: File): Owner {
  let o = owners.get(f);
  if (!o) {
    o = { pid: 0, sig: 0 };
    owners.set(f, o);
  }
  return o;
}

function setfl(file: File, arg: number): number {
  if (arg & O_DIRECT && !S_ISREG(file.inode.mode)) return -errno.EINVAL;
  if ((arg ^ file.fFlags) & FASYNC && file.fOp.fasync) {
    const r = file.fOp.fasync(-1, file, (arg & FASYNC) !== 0);
    if (r < 0) return r;
  }
  file.fFlags = (arg & SETFL_MASK) | (file.fFlags & ~SETFL_MASK);
  return 0;
}

const PATH_OK = new Set([
  F_CREATED_QUERY,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_DUPFD_QUERY,
  F_GETFD,
  F_SETFD,
  F_GETFL,
]);

/** fcntl(2): `fd` and `cmd` as unsigned ints, `arg` the raw argument. */
export async function doFcntl(fd: number, cmd: number, arg: number): Promise<number> {
  const file = fdLookup(fd);
  if (!file) return -errno.EBADF;
  if (file.fMode & FMODE_PATH && !PATH_OK.has(cmd)) return -errno.EBADF;
  const files = current()!.files!;
  const argi = arg | 0;
  switch (cmd) {
    case F_CREATED_QUERY:
      return file.fMode & FMODE_CREATED ? 1 : 0;
    case F_DUPFD:
      return fDupfd(argi >>> 0, file, false);
    case F_DUPFD_CLOEXEC:
      return fDupfd(argi >>> 0, file, true);
    case F_DUPFD_QUERY: {
      const other = fdLookup(argi);
      if (!other) return -errno.EBADF;
      return other === file ? 1 : 0;
    }
    case F_GETFD:
      return files.getCloexec(fd) ? FD_CLOEXEC : 0;
    case F_SETFD:
      files.setCloexec(fd, (argi & FD_CLOEXEC) !== 0);
      return 0;
    case F_GETFL:
      return file.fFlags;
    case F_SETFL:
      return setfl(file, argi >>> 0);
    case F_GETOWN:
      return owner(file).pid;
    case F_SETOWN:
      owner(file).pid = argi;
      return 0;
    case F_GETSIG:
      return owner(file).sig;
    case F_SETSIG:
      if (argi < 0 || argi > NSIG) return -errno.EINVAL;
      owner(file).sig = argi;
      return 0;
    case F_ADD_SEALS:
    case F_GET_SEALS:
      return memfdFcntl(file, cmd, argi >>> 0);
    default:
      return -errno.EINVAL;
  }
}
