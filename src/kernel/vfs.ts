/**
 * The VFS name space: paths to inodes, and open(2) (fs/namei.c, fs/open.c,
 * fs/char_dev.c, fs/debugfs/inode.c, mm/shmem.c for tmpfs).
 *
 * The model has no real directory tree. Drivers register the files they provide with
 * `registerDevice(path, fops)`: character devices under /dev (devtmpfs), debugfs files
 * under /sys/kernel/debug, sysfs files under /sys. Directories exist implicitly as
 * the ancestors of registered paths. /tmp and /dev/shm are tmpfs directories where
 * O_CREAT makes shmem files. /proc is resolved by `registerLookup` handlers
 * (proc-fd.ts). Opening follows do_sys_openat2: flags are masked to the valid ones
 * (O_LARGEFILE forced), an fd is reserved first (so -EMFILE wins), then the path is
 * resolved and the file opened (do_dentry_open: FMODE bits, the driver's `open`).
 *
 * Processes run as root: permission bits do not refuse opens.
 *
 * Mount ids and the inode numbers of well-known files are the ones the oracle's 6.12
 * kernel showed where it showed them (devtmpfs 18, debugfs 19, sw_sync inode 51);
 * both depend on boot order in Linux.
 */
import { errno } from './errno.ts';
import {
  __O_TMPFILE,
  O_ACCMODE,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_LARGEFILE,
  O_NOCTTY,
  O_PATH,
  O_PATH_FLAGS,
  O_RDONLY,
  O_TRUNC,
  VALID_OPEN_FLAGS,
} from './fcntl.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from './fdtable.ts';
import {
  File,
  type FileOperations,
  FMODE_ATOMIC_POS,
  FMODE_CREATED,
  FMODE_LSEEK,
  FMODE_OPENED,
  FMODE_PATH,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_WRITE,
  fput,
  Inode,
  S_IFCHR,
  S_IFDIR,
  S_IFREG,
  S_ISDIR,
  S_ISREG,
  SuperBlock,
} from './file.ts';
import { currentKernel, type Kernel } from './kernel.ts';
import { shmemFileOperations, shmemNewInode, shmemSetSize } from './mm/shmem.ts';

/** PATH_MAX, including the NUL. */
export const PATH_MAX = 4096;
/** NAME_MAX: longest path component. */
export const NAME_MAX = 255;

/** What a path resolves to. */
export interface VfsEntry {
  /** The inode. */
  inode: Inode;
  /** Operations a new open gets (null for directories, which get the directory operations). */
  fops: FileOperations | null;
  /** Private data the driver's `open` can find in `inode.priv`. */
  priv?: unknown;
}

/** A handler that resolves paths under a prefix (/proc); returns an entry, null (not found) or -errno. */
export type LookupHandler = (path: string) => VfsEntry | number | null;

/** Options of `registerDevice`. */
export interface DeviceOptions {
  /** Permission bits (default 0600 for /dev, 0644 for debugfs, 0444 for sysfs). */
  mode?: number;
  /** Inode number (default: the filesystem's next). */
  ino?: number;
  /** Private data, available as `inode.priv` in `open`. */
  priv?: unknown;
  /** Device number for fstat's st_rdev (`major << 8 | minor`). */
  rdev?: number;
}

interface MountInfo {
  prefix: string;
  sb: SuperBlock;
  type: number;
  creatable: boolean;
}

interface VfsState {
  mounts: MountInfo[];
  root: SuperBlock;
  entries: Map<string, VfsEntry>;
  lookups: { prefix: string; fn: LookupHandler }[];
  tmpfs: Map<string, Inode>;
}

const VFS = Symbol('vfs');

function vfs(k: Kernel = currentKernel()): VfsState {
  let s = k.singletons.get(VFS) as VfsState | undefined;
  if (!s) {
    const tmp = new SuperBlock('tmpfs', 25, '00:19', 4096, 2);
    s = {
      root: new SuperBlock('rootfs', 1, '00:02', 4096, 2),
      mounts: [
        { prefix: '/dev/shm', sb: tmp, type: S_IFREG, creatable: true },
        { prefix: '/tmp', sb: tmp, type: S_IFREG, creatable: true },
        {
          prefix: '/dev',
          sb: new SuperBlock('devtmpfs', 18, '00:05', 4096, 500),
          type: S_IFCHR,
          creatable: false,
        },
        {
          prefix: '/sys/kernel/debug',
          sb: new SuperBlock('debugfs', 19, '00:07', 4096, 40),
          type: S_IFREG,
          creatable: false,
        },
        {
          prefix: '/sys',
          sb: new SuperBlock('sysfs', 17, '00:12', 4096, 1000),
          type: S_IFREG,
          creatable: false,
        },
        {
          prefix: '/proc',
          sb: new SuperBlock('proc', 20, '00:13', 1024, 4026531840),
          type: S_IFREG,
          creatable: false,
        },
      ],
      entries: new Map(),
      lookups: [],
      tmpfs: new Map(),
    };
    k.singletons.set(VFS, s);
  }
  return s;
}

/** The mount a path lives on. */
function mountOf(s: VfsState, path: string): MountInfo | null {
  for (const m of s.mounts) if (path === m.prefix || path.startsWith(`${m.prefix}/`)) return m;
  return null;
}

/** The superblock of the filesystem mounted at `prefix` (`/dev`, `/sys/kernel/debug`, `/proc`, ...). */
export function superBlockAt(prefix: string): SuperBlock | null {
  return vfs().mounts.find((m) => m.prefix === prefix)?.sb ?? null;
}

/**
 * Normalises an absolute or relative path (cwd is `/`): collapses `//` and `.`,
 * resolves `..`. Returns -ENOENT for an empty path, -ENAMETOOLONG for a path of
 * PATH_MAX bytes or more or a component longer than NAME_MAX.
 */
export function normalizePath(path: string): string | number {
  if (path.length === 0) return -errno.ENOENT;
  if (path.length >= PATH_MAX) return -errno.ENAMETOOLONG;
  const out: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c.length > NAME_MAX) return -errno.ENAMETOOLONG;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return `/${out.join('/')}`;
}

/**
 * Registers a file a driver provides at `path`: a character device under /dev, a
 * debugfs file under /sys/kernel/debug, a sysfs file under /sys. Every open gets
 * `fops`. Returns the inode. Registering an existing path replaces it.
 */
export function registerDevice(path: string, fops: FileOperations, opts: DeviceOptions = {}): Inode {
  const s = vfs();
  const p = normalizePath(path);
  if (typeof p === 'number') throw new Error(`registerDevice: bad path ${path}`);
  const m = mountOf(s, p);
  const sb = m?.sb ?? s.root;
  const type = m?.type ?? S_IFREG;
  const defMode = m?.prefix === '/sys/kernel/debug' ? 0o644 : m?.prefix === '/sys' ? 0o444 : 0o600;
  const inode = new Inode(sb, opts.ino ?? sb.nextIno++, type | (opts.mode ?? defMode));
  inode.fop = fops;
  inode.priv = opts.priv ?? null;
  inode.rdev = opts.rdev ?? 0;
  s.entries.set(p, { inode, fops, priv: opts.priv });
  return inode;
}

/** Removes a registered path; open files stay open. True if it existed. */
export function unregisterDevice(path: string): boolean {
  const p = normalizePath(path);
  if (typeof p === 'number') return false;
  return vfs().entries.delete(p);
}

/** Registers a handler for every path under `prefix` (used for /proc). */
export function registerLookup(prefix: string, fn: LookupHandler): void {
  vfs().lookups.push({ prefix, fn });
}

/** The registered paths, sorted (what `ls -R` would show). */
export function registeredPaths(): string[] {
  const s = vfs();
  return [...s.entries.keys(), ...s.tmpfs.keys()].sort();
}

const dirInodes = new WeakMap<SuperBlock, Map<string, Inode>>();

function dirInode(s: VfsState, path: string): Inode {
  const sb = mountOf(s, path)?.sb ?? s.root;
  let m = dirInodes.get(sb);
  if (!m) {
    m = new Map();
    dirInodes.set(sb, m);
  }
  let i = m.get(path);
  if (!i) {
    i = new Inode(sb, sb.nextIno++, S_IFDIR | 0o755);
    m.set(path, i);
  }
  return i;
}

function isDir(s: VfsState, path: string): boolean {
  if (path === '/') return true;
  for (const m of s.mounts) if (m.prefix === path || m.prefix.startsWith(`${path}/`)) return true;
  const pre = `${path}/`;
  for (const k of s.entries.keys()) if (k.startsWith(pre)) return true;
  for (const k of s.tmpfs.keys()) if (k.startsWith(pre)) return true;
  for (const l of s.lookups) if (l.prefix === path || l.prefix.startsWith(pre)) return true;
  return false;
}

/** Resolves a normalised path: an entry, null if it does not exist, or -errno (-ENOTDIR). */
export function lookupPath(path: string): VfsEntry | number | null {
  const s = vfs();
  const e = s.entries.get(path);
  if (e) return e;
  const t = s.tmpfs.get(path);
  if (t) return { inode: t, fops: shmemFileOperations };
  for (const l of s.lookups) {
    if (path === l.prefix || path.startsWith(`${l.prefix}/`)) {
      const r = l.fn(path);
      if (r !== null) return r;
    }
  }
  if (isDir(s, path)) return { inode: dirInode(s, path), fops: null };
  // A file used as a directory?
  let parent = path;
  while (parent.lastIndexOf('/') > 0) {
    parent = parent.slice(0, parent.lastIndexOf('/'));
    if (s.entries.has(parent) || s.tmpfs.has(parent)) return -errno.ENOTDIR;
  }
  return null;
}

const dirFops: FileOperations = {
  name: 'dir',
  read: () => -errno.EISDIR,
  llseek: (file, offset, whence) => {
    if (whence !== 0 || offset < 0) return -errno.EINVAL;
    file.fPos = offset;
    return offset;
  },
};

const pathFops: FileOperations = { name: 'O_PATH' };

/**
 * do_filp_open() + do_dentry_open(): opens `path` with open(2) flags (already masked)
 * and returns a file holding one reference, or -errno.
 */
export async function vfsOpen(path: string, flags: number, mode = 0): Promise<File | number> {
  const k = currentKernel();
  const s = vfs(k);
  const p = normalizePath(path);
  if (typeof p === 'number') return p;
  const acc = flags & O_ACCMODE;
  let entry = lookupPath(p);
  if (typeof entry === 'number') return entry;
  let created = false;
  if (flags & __O_TMPFILE) {
    if (!entry || !S_ISDIR(entry.inode.mode)) return entry ? -errno.ENOTDIR : -errno.ENOENT;
    const m = mountOf(s, p);
    if (!m?.creatable) return -errno.EOPNOTSUPP;
    const inode = shmemNewInode(m.sb, S_IFREG | (mode & 0o7777));
    entry = { inode, fops: shmemFileOperations };
    created = true;
  } else if (!entry) {
    if (!(flags & O_CREAT)) return -errno.ENOENT;
    const parent = p.slice(0, p.lastIndexOf('/')) || '/';
    const pe = lookupPath(parent);
    if (pe === null) return -errno.ENOENT;
    if (typeof pe === 'number') return pe;
    if (!S_ISDIR(pe.inode.mode)) return -errno.ENOTDIR;
    const m = mountOf(s, p);
    if (!m?.creatable || m.prefix === p) return -errno.EACCES;
    const inode = shmemNewInode(m.sb, S_IFREG | (mode & 0o7777));
    s.tmpfs.set(p, inode);
    entry = { inode, fops: shmemFileOperations };
    created = true;
  } else if (flags & O_CREAT && flags & O_EXCL) {
    return -errno.EEXIST;
  }
  const inode = entry.inode;
  if (flags & O_PATH) {
    const f = new File(k, inode, p, flags & O_PATH_FLAGS & ~O_CLOEXEC, pathFops);
    f.fMode = FMODE_PATH | FMODE_OPENED;
    return f;
  }
  if (S_ISDIR(inode.mode)) {
    if (flags & O_CREAT || acc !== O_RDONLY) return -errno.EISDIR;
  } else if (flags & O_DIRECTORY && !(flags & __O_TMPFILE)) {
    return -errno.ENOTDIR;
  }
  const fops = entry.fops ?? dirFops;
  const file = new File(k, inode, p, flags & ~O_CLOEXEC, fops);
  if (created) file.fMode |= FMODE_CREATED;
  if (S_ISREG(inode.mode) || S_ISDIR(inode.mode)) file.fMode |= FMODE_ATOMIC_POS;
  file.fMode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  if (fops.open) {
    const r = await fops.open(inode, file);
    if (r < 0) {
      // Never opened (no FMODE_OPENED): no release runs.
      fput(file);
      return r;
    }
  }
  file.markOpened();
  if (flags & O_TRUNC && S_ISREG(inode.mode) && file.fMode & FMODE_WRITE && fops === shmemFileOperations) {
    const r = shmemSetSize(inode, 0);
    if (r < 0) {
      fput(file);
      return r;
    }
  }
  file.fFlags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
  return file;
}

/**
 * open(2): `flags` as the syscall gets them; returns the new fd or -errno. Unknown
 * flags are ignored; O_LARGEFILE is forced as on 64-bit.
 */
export async function doSysOpen(path: string, flags: number, mode: number): Promise<number> {
  flags = (flags | O_LARGEFILE) & VALID_OPEN_FLAGS;
  if (flags & O_PATH) flags &= O_PATH_FLAGS;
  const willCreate = flags & O_CREAT || (flags & __O_TMPFILE) === __O_TMPFILE;
  if (!willCreate) mode = 0;
  if ((flags & (O_DIRECTORY | O_CREAT)) === (O_DIRECTORY | O_CREAT)) return -errno.EINVAL;
  if (flags & __O_TMPFILE) {
    if (!(flags & O_DIRECTORY)) return -errno.EINVAL;
    const acc = flags & O_ACCMODE;
    if (acc !== 1 && acc !== 2) return -errno.EINVAL;
  }
  if (typeof path !== 'string' || path.length === 0) return -errno.ENOENT;
  if (path.length >= PATH_MAX) return -errno.ENAMETOOLONG;
  const fd = getUnusedFdFlags(flags & O_CLOEXEC);
  if (fd < 0) return fd;
  const f = await vfsOpen(path, flags, mode);
  if (typeof f === 'number') {
    putUnusedFd(fd);
    return f;
  }
  fdInstall(fd, f);
  return fd;
}

/** unlink(2) for tmpfs files: removes the name; open files keep the inode. */
export function doUnlink(path: string): number {
  const s = vfs();
  const p = normalizePath(path);
  if (typeof p === 'number') return p;
  if (s.tmpfs.delete(p)) return 0;
  const e = lookupPath(p);
  if (typeof e === 'number') return e;
  if (!e) return -errno.ENOENT;
  if (S_ISDIR(e.inode.mode)) return -errno.EISDIR;
  return -errno.EPERM;
}
