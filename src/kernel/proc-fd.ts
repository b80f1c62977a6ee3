/**
 * /proc/<pid>/fdinfo/<fd>, /proc/<pid>/fd/<fd> and /proc/<pid>/maps (fs/proc/fd.c,
 * fs/proc/base.c, fs/proc/task_mmu.c). `self` names the calling process.
 *
 * An fdinfo file shows the generic lines exactly as 6.12 prints them —
 *
 *     pos:\t<f_pos>\nflags:\t0<f_flags in octal, plus O_CLOEXEC if set on the fd>\n
 *     mnt_id:\t<mount id>\nino:\t<inode number>\n
 *
 * — followed by the file type's own lines (`showFdinfo`). The text is produced when
 * the file is first read, so an fd closed in between makes that read fail with
 * -ENOENT; opening the fdinfo of an fd that is not open fails with -ENOENT.
 * /proc/<pid>/fd/<fd> entries are symbolic links (readlink) to the file's path.
 */
import { errno } from './errno.ts';
import { O_CLOEXEC } from './fcntl.ts';
import { type File, Inode, S_IFDIR, S_IFLNK, S_IFREG } from './file.ts';
import { current, type TaskStruct, threadGroups } from './sched.ts';
import { SeqFile, singleOpen } from './seq-file.ts';
import { registerLookup, superBlockAt, type VfsEntry } from './vfs.ts';

interface FdinfoTarget {
  tgid: number;
  fd: number;
}

/** The fdinfo text of `fd` in `task`'s table, or -ENOENT. */
export function fdinfoText(task: TaskStruct, fd: number): string | number {
  const files = task.files;
  const file = files?.lookup(fd) ?? null;
  if (!files || !file) return -errno.ENOENT;
  let flags = file.fFlags;
  if (files.getCloexec(fd)) flags |= O_CLOEXEC;
  const m = new SeqFile();
  m.printf(
    `pos:\t${file.fPos}\nflags:\t0${flags.toString(8)}\nmnt_id:\t${file.inode.sb.mntId}\nino:\t${file.inode.ino}\n`,
  );
  file.fOp.showFdinfo?.(m, file);
  return m.text;
}

const fdinfoFops = singleOpen((m, file: File) => {
  const t = file.inode.priv as FdinfoTarget;
  const task = threadGroups(file.kernel).get(t.tgid);
  if (!task) return -errno.ESRCH;
  const text = fdinfoText(task, t.fd);
  if (typeof text === 'number') return text;
  m.puts(text);
}, 'proc_fdinfo');

const mapsFops = singleOpen((m, file: File) => {
  const tgid = file.inode.priv as number;
  const task = threadGroups(file.kernel).get(tgid);
  if (!task?.mm) return 0;
  for (const l of task.mm.maps()) m.puts(`${l}\n`);
}, 'proc_maps');

function procTask(pidPart: string): TaskStruct | null {
  if (pidPart === 'self' || pidPart === 'thread-self') {
    const c = current();
    if (!c) return null;
    return threadGroups(c.kernel).get(c.tgid) ?? null;
  }
  if (!/^[0-9]+$/.test(pidPart)) return null;
  return threadGroups().get(Number(pidPart)) ?? null;
}

function procEntry(path: string): VfsEntry | number | null {
  const sb = superBlockAt('/proc')!;
  const parts = path.split('/').slice(2); // ['', 'proc', ...]
  if (parts.length === 0) return null;
  const task = procTask(parts[0]);
  if (!task) return parts[0] === 'self' ? -errno.ENOENT : null;
  if (parts.length === 1)
    return { inode: new Inode(sb, 4026531840 + task.tgid, S_IFDIR | 0o555), fops: null };
  if (parts[1] === 'fdinfo' || parts[1] === 'fd') {
    if (parts.length === 2) return { inode: new Inode(sb, sb.nextIno++, S_IFDIR | 0o500), fops: null };
    if (parts.length !== 3 || !/^[0-9]+$/.test(parts[2])) return null;
    const fd = Number(parts[2]);
    if (!task.files?.lookup(fd)) return null;
    if (parts[1] === 'fd') return -errno.ENXIO;
    const inode = new Inode(sb, sb.nextIno++, S_IFREG | 0o444);
    inode.priv = { tgid: task.tgid, fd } satisfies FdinfoTarget;
    return { inode, fops: fdinfoFops };
  }
  if (parts[1] === 'maps' && parts.length === 2) {
    const inode = new Inode(sb, sb.nextIno++, S_IFREG | 0o444);
    inode.priv = task.tgid;
    return { inode, fops: mapsFops };
  }
  return null;
}

/** readlink() of a /proc path: /proc/self, /proc/<pid>/fd/<fd>. Returns the target or -errno. */
export function procReadlink(path: string): string | number {
  const parts = path.split('/').slice(2);
  if (parts[0] === 'self' && parts.length === 1) {
    const c = current();
    return c ? String(c.tgid) : -errno.ENOENT;
  }
  const task = procTask(parts[0] ?? '');
  if (!task) return -errno.ENOENT;
  if (parts.length === 3 && parts[1] === 'fd' && /^[0-9]+$/.test(parts[2])) {
    const f = task.files?.lookup(Number(parts[2]));
    return f ? f.dPath() : -errno.ENOENT;
  }
  return -errno.EINVAL;
}

/** Mode of the /proc/<pid>/fd/<n> links. */
export const PROC_FD_LINK_MODE = S_IFLNK | 0o700;

/** Installs the /proc handlers in the current kernel's VFS. */
export function procFdInit(): void {
  registerLookup('/proc', procEntry);
}
