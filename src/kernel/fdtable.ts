/**
 * File descriptor tables: files_struct and the fd calls the kernel and drivers use
 * (fs/file.c, include/linux/fdtable.h, include/linux/file.h).
 *
 * An fd is a slot pointing at a `File` plus a close-on-exec bit. A slot can also be
 * reserved (get_unused_fd_flags) before a file is installed in it (fd_install): the
 * pattern every fd-returning ioctl follows so that nothing userspace can see changes
 * until the call has succeeded. dup2() onto a reserved slot fails with -EBUSY, and
 * fget() does not see it.
 *
 * The fd calls act on the current task's table; drivers call them from their ioctl
 * handlers exactly as the kernel's do.
 */
import { errno } from './errno.ts';
import { type File, FMODE_PATH, fput } from './file.ts';
import { current } from './sched.ts';

/** O_CLOEXEC, the flag get_unused_fd_flags understands. */
export const O_CLOEXEC_FLAG = 0o2000000;
/** RLIMIT_NOFILE soft limit of a fresh process. */
export const RLIMIT_NOFILE_DEFAULT = 1024;
/** sysctl fs.nr_open: the largest table possible. */
export const NR_OPEN = 1048576;

/** Called when a file is installed at, or closed from, an fd of the current process. */
export type FdObserver = (file: File, fd: number) => void;

/**
 * Observers of fds coming and going, for tracing (a model hook: Linux has none, which is
 * why upstream's `dma_buf_fd` tracepoint misses fds received over SCM_RIGHTS or dup'ed).
 * Observers must not change the table.
 */
export const fdObservers: { install: FdObserver[]; close: FdObserver[] } = { install: [], close: [] };

function notify(list: FdObserver[], file: File, fd: number): void {
  for (const o of list) o(file, fd);
}

/** A process's fd table (struct files_struct). */
export class FilesStruct {
  private readonly fd: (File | null)[] = [];
  private readonly open = new Set<number>();
  private readonly cloexec = new Set<number>();
  /** RLIMIT_NOFILE (soft). */
  nofile = RLIMIT_NOFILE_DEFAULT;

  /** Number of fds in use (installed or reserved). */
  get openCount(): number {
    return this.open.size;
  }

  /** alloc_fd(): the lowest free fd in [start, end), reserved; -EMFILE if none. */
  allocFd(start: number, end: number, cloexec: boolean): number {
    for (let i = start; i < end; i++) {
      if (!this.open.has(i)) {
        this.open.add(i);
        this.fd[i] = null;
        if (cloexec) this.cloexec.add(i);
        else this.cloexec.delete(i);
        return i;
      }
    }
    return -errno.EMFILE;
  }

  /** put_unused_fd(): releases a reserved slot. */
  putUnused(fd: number): void {
    if (this.fd[fd]) return;
    this.open.delete(fd);
    this.cloexec.delete(fd);
  }

  /** fd_install(): puts `file` (its reference moves to the table) in a reserved slot. */
  install(fd: number, file: File): void {
    if (!this.open.has(fd) || this.fd[fd]) {
      file.kernel.warn('fdtable.install_bad_slot', `fd_install(${fd}) into a slot that was not reserved`);
    }
    this.open.add(fd);
    this.fd[fd] = file;
    notify(fdObservers.install, file, fd);
  }

  /** The file at `fd` without taking a reference (files_lookup_fd_raw), or null. */
  lookup(fd: number): File | null {
    if (!Number.isInteger(fd) || fd < 0) return null;
    return this.fd[fd] ?? null;
  }

  /** True when `fd` is reserved or installed. */
  isOpen(fd: number): boolean {
    return this.open.has(fd);
  }

  /** close_on_exec(fd). */
  getCloexec(fd: number): boolean {
    return this.cloexec.has(fd);
  }

  /** set_close_on_exec(fd, flag). */
  setCloexec(fd: number, on: boolean): void {
    if (!this.open.has(fd)) return;
    if (on) this.cloexec.add(fd);
    else this.cloexec.delete(fd);
  }

  /** file_close_fd(): empties the slot and returns the file it held (with its reference), or null. */
  pick(fd: number): File | null {
    const f = this.lookup(fd);
    if (!f) return null;
    this.fd[fd] = null;
    this.open.delete(fd);
    this.cloexec.delete(fd);
    notify(fdObservers.close, f, fd);
    return f;
  }

  /**
   * do_dup2(): installs `file` (taking a new reference) at `fd`, replacing what was
   * there (closed afterwards). -EBUSY if the slot is reserved but empty.
   */
  replace(fd: number, file: File, cloexec: boolean): number {
    const old = this.fd[fd] ?? null;
    if (!old && this.open.has(fd)) return -errno.EBUSY;
    file.get();
    this.fd[fd] = file;
    this.open.add(fd);
    if (cloexec) this.cloexec.add(fd);
    else this.cloexec.delete(fd);
    if (old) notify(fdObservers.close, old, fd);
    notify(fdObservers.install, file, fd);
    if (old) filpClose(old);
    return fd;
  }

  /** The installed fds in ascending order. */
  fds(): number[] {
    return [...this.open].filter((i) => this.fd[i]).sort((a, b) => a - b);
  }

  /**
   * dup_fd() + do_close_on_exec(): the table a child gets from fork + exec. Installed
   * fds without close-on-exec are copied (each taking a file reference); reserved slots
   * and close-on-exec fds are not.
   */
  dupForExec(): FilesStruct {
    const t = new FilesStruct();
    t.nofile = this.nofile;
    for (const i of this.fds()) {
      if (this.cloexec.has(i)) continue;
      const f = this.fd[i]!;
      t.open.add(i);
      t.fd[i] = f.get();
    }
    return t;
  }

  /** close_files(): closes every fd, lowest first (process exit). */
  closeAll(): void {
    for (const i of [...this.open].sort((a, b) => a - b)) {
      const f = this.fd[i] ?? null;
      this.fd[i] = null;
      this.open.delete(i);
      this.cloexec.delete(i);
      if (f) {
        notify(fdObservers.close, f, i);
        filpClose(f);
      }
    }
  }
}

/** filp_close(): runs the file's flush and drops the table's reference. Returns flush's result. */
export function filpClose(file: File): number {
  if (file.count <= 0) {
    file.kernel.warn('file.close_unreferenced', `VFS: Close: file count is 0 (${file.pathName})`);
    return 0;
  }
  let ret = 0;
  if (file.fOp.flush) ret = file.fOp.flush(file);
  fput(file);
  return ret;
}

function files(): FilesStruct | null {
  return current()?.files ?? null;
}

/**
 * get_unused_fd_flags(): reserves the lowest free fd of the current process; O_CLOEXEC
 * in `flags` sets close-on-exec. Returns the fd, -EMFILE, or -EBADF outside a process.
 */
export function getUnusedFdFlags(flags: number): number {
  const t = files();
  if (!t) return -errno.EBADF;
  return t.allocFd(0, t.nofile, (flags & O_CLOEXEC_FLAG) !== 0);
}

/** put_unused_fd(): gives back a reserved fd that will not be used. */
export function putUnusedFd(fd: number): void {
  files()?.putUnused(fd);
}

/** fd_install(): makes `file` visible at the reserved `fd`; the caller's reference moves to the table. */
export function fdInstall(fd: number, file: File): void {
  const t = files();
  if (!t) {
    file.kernel.warn('fdtable.install_no_process', 'fd_install outside a process');
    fput(file);
    return;
  }
  t.install(fd, file);
}

/** fget(): the file at `fd` with a new reference (drop it with fput), or null. */
export function fget(fd: number): File | null {
  const f = files()?.lookup(fd) ?? null;
  return f ? f.get() : null;
}

/** files_lookup_fd_raw() on the current table: no reference taken. */
export function fdLookup(fd: number): File | null {
  return files()?.lookup(fd) ?? null;
}

/** receive_fd(): installs a new fd for `file` (taking a reference); returns it or -errno. */
export function receiveFd(file: File, flags: number): number {
  const fd = getUnusedFdFlags(flags);
  if (fd < 0) return fd;
  fdInstall(fd, file.get());
  return fd;
}

/** close_fd() + filp_close(): the core of close(2). 0, -EBADF, or the flush error. */
export function closeFd(fd: number): number {
  const t = files();
  const f = t?.pick(fd) ?? null;
  if (!f) return -errno.EBADF;
  const r = filpClose(f);
  return r === -errno.ERESTARTSYS ? -errno.EINTR : r;
}

/** fdget(): the file at `fd` without a reference, excluding O_PATH files (which most calls refuse). */
export function fdget(fd: number): File | null {
  const f = fdLookup(fd);
  return f && !(f.fMode & FMODE_PATH) ? f : null;
}

/** f_dupfd(): a new fd >= `from` for `file`; -EINVAL if `from` is beyond RLIMIT_NOFILE, -EMFILE if full. */
export function fDupfd(from: number, file: File, cloexec: boolean): number {
  const t = files();
  if (!t) return -errno.EBADF;
  if (from >= t.nofile) return -errno.EINVAL;
  const fd = t.allocFd(from, t.nofile, cloexec);
  if (fd >= 0) t.install(fd, file.get());
  return fd;
}

/** dup(2). */
export function ksysDup(oldfd: number): number {
  const t = files();
  const f = t?.lookup(oldfd) ?? null;
  if (!t || !f) return -errno.EBADF;
  const fd = t.allocFd(0, t.nofile, false);
  if (fd < 0) return fd;
  t.install(fd, f.get());
  return fd;
}

/** dup3(2): `flags` may only hold O_CLOEXEC. */
export function ksysDup3(oldfd: number, newfd: number, flags: number): number {
  const t = files();
  if (!t) return -errno.EBADF;
  if (flags & ~O_CLOEXEC_FLAG) return -errno.EINVAL;
  if (oldfd === newfd) return -errno.EINVAL;
  if (newfd >= t.nofile) return -errno.EBADF;
  const f = t.lookup(oldfd);
  if (!f) return -errno.EBADF;
  return t.replace(newfd, f, (flags & O_CLOEXEC_FLAG) !== 0);
}

/** dup2(2): like dup3 without flags; dup2(fd, fd) checks `fd` and returns it. */
export function ksysDup2(oldfd: number, newfd: number): number {
  if (oldfd === newfd) return files()?.lookup(oldfd) ? oldfd : -errno.EBADF;
  return ksysDup3(oldfd, newfd, 0);
}
