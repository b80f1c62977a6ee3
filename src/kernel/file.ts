/**
 * struct file, struct inode, struct super_block and file_operations (include/linux/fs.h,
 * fs/file_table.c, fs/open.c do_dentry_open, fs/read_write.c).
 *
 * A `File` is one open file description: flags, mode, position, the operations of its
 * file type and that type's private data, and a reference count (f_count). Every fd
 * that points at it, every mapping of it and every kernel user holds a reference;
 * `fput` of the last one releases it. As in fs/file_table.c the release is deferred:
 * from a user thread it runs as task_work when the thread returns from its syscall
 * (or exits); from IRQ context or a kernel thread it runs from a delayed work item one
 * jiffy later (delayed_fput).
 *
 * Drivers plug in by providing `FileOperations` and registering a device path with the
 * VFS (`registerDevice` in vfs.ts) or by creating anonymous files
 * (`anonInodeGetfile` in anon-inodes.ts).
 */
import type { ReportObject } from '../sim/report.ts';
import { errno } from './errno.ts';
import { currentKernel, type Kernel } from './kernel.ts';
import type { VmAreaStruct } from './mm/mmap.ts';
import type { PollTable } from './poll.ts';
import { current, taskWorkAdd } from './sched.ts';
import type { SeqFile } from './seq-file.ts';
import { DelayedWork, queueDelayedWork, systemWq } from './workqueue.ts';

// ------------------------------------------------------------ f_mode bits (include/linux/fs.h, 6.12)

/** File is open for reading. */
export const FMODE_READ = 1 << 0;
/** File is open for writing. */
export const FMODE_WRITE = 1 << 1;
/** File is seekable. */
export const FMODE_LSEEK = 1 << 2;
/** pread allowed. */
export const FMODE_PREAD = 1 << 3;
/** pwrite allowed. */
export const FMODE_PWRITE = 1 << 4;
/** Opened for execution. */
export const FMODE_EXEC = 1 << 5;
/** O_PATH descriptor. */
export const FMODE_PATH = 1 << 14;
/** f_pos updates are atomic (regular files, directories). */
export const FMODE_ATOMIC_POS = 1 << 15;
/** Holds write access to the inode. */
export const FMODE_WRITER = 1 << 16;
/** Has a read method. */
export const FMODE_CAN_READ = 1 << 17;
/** Has a write method. */
export const FMODE_CAN_WRITE = 1 << 18;
/** The file was opened (its release must run). */
export const FMODE_OPENED = 1 << 19;
/** The open created the file. */
export const FMODE_CREATED = 1 << 20;
/** Stream: no position. */
export const FMODE_STREAM = 1 << 21;
/** Supports non-blocking I/O. */
export const FMODE_NOWAIT = 1 << 27;

// ------------------------------------------------------------ i_mode (include/uapi/linux/stat.h)

/** File type mask. */
export const S_IFMT = 0o170000;
/** Socket. */
export const S_IFSOCK = 0o140000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Block device. */
export const S_IFBLK = 0o060000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Character device. */
export const S_IFCHR = 0o020000;
/** FIFO. */
export const S_IFIFO = 0o010000;

/** True for a regular file mode. */
export function S_ISREG(mode: number): boolean {
  return (mode & S_IFMT) === S_IFREG;
}

/** True for a directory mode. */
export function S_ISDIR(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

// ------------------------------------------------------------ seek

/** lseek from the start. */
export const SEEK_SET = 0;
/** lseek from the current position. */
export const SEEK_CUR = 1;
/** lseek from the end. */
export const SEEK_END = 2;
/** lseek to the next data. */
export const SEEK_DATA = 3;
/** lseek to the next hole. */
export const SEEK_HOLE = 4;

/** MAX_RW_COUNT: the most one read/write transfers (INT_MAX rounded down to a page). */
export const MAX_RW_COUNT = 0x7ffff000;
/** MAX_LFS_FILESIZE on 64-bit: LLONG_MAX (as the nearest number). */
export const MAX_LFS_FILESIZE = Number.MAX_SAFE_INTEGER;

// ------------------------------------------------------------ superblocks and inodes

/** A mounted filesystem instance (struct super_block + its vfsmount). */
export class SuperBlock {
  /** Next inode number for inodes this superblock numbers itself. */
  nextIno: number;

  /** Creates a superblock. */
  constructor(
    /** Filesystem type name (`anon_inodefs`, `debugfs`, `devtmpfs`, `proc`, `tmpfs`, `sockfs`, ...). */
    readonly fsName: string,
    /** mnt_id shown in fdinfo. */
    readonly mntId: number,
    /** Device `major:minor` shown in /proc/pid/maps. */
    readonly dev: string,
    /** s_blocksize (FIGETBSZ). */
    readonly blocksize = 4096,
    firstIno = 1,
  ) {
    this.nextIno = firstIno;
  }
}

/** An inode (struct inode): identity, type and size of a file object. */
export class Inode {
  /** i_size. */
  size = 0;
  /** i_private: the owner's data. */
  priv: unknown = null;
  /** i_fop: the operations a fresh open gets (character devices: the driver's). */
  fop: FileOperations | null = null;
  /** Number of shared writable mappings (i_mmap_writable). */
  mmapWritable = 0;
  /** i_nlink: names pointing at the inode (0 for unlinked files such as memfds). */
  nlink = 1;
  /** i_rdev: the device number of a device node, `major << 8 | minor` (new_encode_dev). */
  rdev = 0;

  /** Creates an inode. */
  constructor(
    /** The filesystem it lives on. */
    readonly sb: SuperBlock,
    /** Inode number. */
    public ino: number,
    /** i_mode: type and permission bits. */
    public mode: number,
  ) {}
}

const NEXT_INO = Symbol('get_next_ino');

/** get_next_ino(): a fresh inode number from the kernel-wide counter used by pseudo filesystems. */
export function getNextIno(k: Kernel = currentKernel()): number {
  const n = ((k.singletons.get(NEXT_INO) as number | undefined) ?? 100) + 1;
  k.singletons.set(NEXT_INO, n);
  return n;
}

// ------------------------------------------------------------ file operations

/** A file position passed by reference (loff_t *ppos). */
export interface FilePos {
  /** The position; the operation advances it. */
  pos: number;
}

/**
 * The operations of a file type (struct file_operations). Every member is optional;
 * a missing one gives the VFS default (noted per member). Members run in the calling
 * task, which may sleep in those that return a Promise.
 */
export interface FileOperations {
  /** The file type's name, for messages and reports. */
  readonly name?: string;
  /**
   * Called when a path is opened (character devices: from chrdev_open). Sets up
   * `file.privateData`; a negative errno fails the open. Default: nothing to do.
   */
  open?(inode: Inode, file: File): number | Promise<number>;
  /** Called when the last reference to the file is dropped. Default: nothing. */
  release?(inode: Inode, file: File): void | number | Promise<void | number>;
  /** Called on every close() of an fd (filp_close). Default: nothing. */
  flush?(file: File): number;
  /**
   * read(): copy at most `count` bytes to user address `buf` from `ppos.pos`, advance it,
   * return the bytes read or -errno. Default: read() fails with -EINVAL.
   */
  read?(file: File, buf: number, count: number, ppos: FilePos): number | Promise<number>;
  /** write(): as read, from user memory. Default: write() fails with -EINVAL. */
  write?(file: File, buf: number, count: number, ppos: FilePos): number | Promise<number>;
  /** lseek(): returns the new position or -errno. Default: -ESPIPE. */
  llseek?(file: File, offset: number, whence: number): number;
  /**
   * ioctl() (unlocked_ioctl): `cmd` is the 32-bit request, `arg` the raw argument
   * (usually a user address). Returns >= 0 or -errno; -ENOIOCTLCMD becomes -ENOTTY.
   * Default: -ENOTTY.
   */
  ioctl?(file: File, cmd: number, arg: number): number | Promise<number>;
  /**
   * poll(): register on wait queues with `pollWait(file, wq, pt)` and return the
   * current EPOLL* mask. Default: always readable and writable.
   */
  poll?(file: File, pt: PollTable | null): number;
  /**
   * mmap(): set up `vma` (its `vmOps` fault handler, or pages with `insertPage`), may
   * adjust its flags; return 0 or -errno. Default: mmap() fails with -ENODEV.
   */
  mmap?(file: File, vma: VmAreaStruct): number | Promise<number>;
  /** show_fdinfo(): the file type's own lines of /proc/pid/fdinfo/N. */
  showFdinfo?(m: SeqFile, file: File): void;
  /** fasync(): turn SIGIO delivery on or off (FIOASYNC). Default: FIOASYNC fails with -ENOTTY. */
  fasync?(fd: number, file: File, on: boolean): number;
  /** Model extension of d_dname: the path /proc/pid/fd/N links to (default: the open path). */
  dname?(file: File): string;
}

// ------------------------------------------------------------ struct file

let nextFileId = 1;

/** An open file description (struct file). */
export class File {
  /** f_flags: O_* flags (without O_CLOEXEC, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC). */
  fFlags: number;
  /** f_mode: FMODE_* bits. */
  fMode: number;
  /** f_pos. */
  fPos = 0;
  /** f_op. */
  fOp: FileOperations;
  /** private_data: the file type's object. */
  privateData: unknown = null;
  /** f_count. */
  private refs = 1;
  /** Set once the release has run. */
  released = false;
  /** A unique id for reports. */
  readonly id = nextFileId++;

  /** alloc_empty_file(): a file with one reference; use the VFS or anonInodeGetfile instead. */
  constructor(
    /** The kernel the file lives in. */
    readonly kernel: Kernel,
    /** The inode. */
    readonly inode: Inode,
    /** The path it was opened by (d_path), e.g. `/dev/null` or `anon_inode:sync_file`. */
    readonly pathName: string,
    flags: number,
    fops: FileOperations,
  ) {
    this.fFlags = flags;
    this.fMode = openFmode(flags);
    this.fOp = fops;
    liveFiles(kernel).add(this);
  }

  /** file_count(): the number of references. */
  get count(): number {
    return this.refs;
  }

  /** get_file(): takes a reference; returns the file. */
  get(): this {
    if (this.refs <= 0) {
      this.kernel.warn('file.get_after_free', `get_file on released file ${this.pathName}`, [
        this.reportObject(),
      ]);
    }
    this.refs++;
    return this;
  }

  /** @internal drops one reference; true when it was the last. */
  dropRef(): boolean {
    if (this.refs <= 0) {
      this.kernel.warn('file.put_underflow', `fput underflow on ${this.pathName}`, [this.reportObject()]);
      return false;
    }
    return --this.refs === 0;
  }

  /** The path /proc/pid/fd/N links to. */
  dPath(): string {
    return this.fOp.dname ? this.fOp.dname(this) : this.pathName;
  }

  /** This file as a report object. */
  reportObject(): ReportObject {
    return { kind: 'file', name: this.dPath(), id: this.id };
  }

  /** Sets FMODE_OPENED and the CAN_READ/CAN_WRITE bits from the operations (alloc_file / do_dentry_open). */
  markOpened(): void {
    this.fMode |= FMODE_OPENED;
    if (this.fMode & FMODE_READ && this.fOp.read) this.fMode |= FMODE_CAN_READ;
    if (this.fMode & FMODE_WRITE && this.fOp.write) this.fMode |= FMODE_CAN_WRITE;
    if (this.fMode & FMODE_LSEEK && !this.fOp.llseek) this.fMode &= ~FMODE_LSEEK;
  }
}

/** OPEN_FMODE(flags): O_RDONLY/O_WRONLY/O_RDWR to FMODE_READ/FMODE_WRITE. */
export function openFmode(flags: number): number {
  return ((flags >>> 0) + 1) & 3;
}

const LIVE = Symbol('live_files');

/** Every file of a kernel not yet released (for leak checks). */
export function liveFiles(k: Kernel): Set<File> {
  let s = k.singletons.get(LIVE) as Set<File> | undefined;
  if (!s) {
    s = new Set();
    k.singletons.set(LIVE, s);
  }
  return s;
}

/**
 * alloc_file_pseudo(): a file on a pseudo filesystem, already opened, with the given
 * flags (O_ACCMODE, O_NONBLOCK, ...) and operations.
 */
export function allocFilePseudo(inode: Inode, pathName: string, flags: number, fops: FileOperations): File {
  const f = new File(currentKernel(), inode, pathName, flags, fops);
  f.markOpened();
  return f;
}

/** __fput(): runs the release and frees the file. */
async function finalFput(file: File): Promise<void> {
  if (file.released) {
    liveFiles(file.kernel).delete(file);
    return;
  }
  file.released = true;
  try {
    if (file.fMode & FMODE_OPENED && file.fOp.release) await file.fOp.release(file.inode, file);
  } finally {
    liveFiles(file.kernel).delete(file);
  }
}

interface DelayedFput {
  list: File[];
  work: DelayedWork;
}

const DELAYED = Symbol('delayed_fput');

function delayedFput(k: Kernel): DelayedFput {
  let d = k.singletons.get(DELAYED) as DelayedFput | undefined;
  if (!d) {
    const state: DelayedFput = {
      list: [],
      work: new DelayedWork(async () => {
        while (state.list.length > 0) {
          const files = state.list;
          state.list = [];
          // llist_add() pushes at the head: the newest file goes first.
          for (let i = files.length - 1; i >= 0; i--) await finalFput(files[i]);
        }
      }),
    };
    d = state;
    k.singletons.set(DELAYED, d);
  }
  return d;
}

/**
 * fput(): drops a reference. The last one releases the file: from a user thread at its
 * return to userspace (task_work), otherwise from delayed work one jiffy later.
 */
export function fput(file: File): void {
  if (!file.dropRef()) return;
  const task = current();
  if (task && file.kernel.ctx.kind === 'task') {
    taskWorkAdd(task, () => finalFput(file));
    return;
  }
  const d = delayedFput(file.kernel);
  d.list.push(file);
  queueDelayedWork(systemWq(), d.work, 1);
}

/** __fput_sync(): drops a reference and, if it was the last, releases at once (awaitable). */
export async function fputSync(file: File): Promise<void> {
  if (file.dropRef()) await finalFput(file);
}

/** -ESPIPE: the default llseek for files that cannot seek (no_llseek). */
export function noLlseek(): number {
  return -errno.ESPIPE;
}

/**
 * generic_file_llseek_size(): SEEK_SET/CUR/END within [0, maxsize], SEEK_DATA and
 * SEEK_HOLE treating the whole file as data. Returns the new position or -EINVAL/-ENXIO.
 */
export function genericFileLlseekSize(
  file: File,
  offset: number,
  whence: number,
  maxsize: number,
  eof: number,
): number {
  let pos: number;
  switch (whence) {
    case SEEK_SET:
      pos = offset;
      break;
    case SEEK_CUR:
      if (offset === 0) return file.fPos;
      pos = file.fPos + offset;
      break;
    case SEEK_END:
      pos = eof + offset;
      break;
    case SEEK_DATA:
      if (offset < 0 || offset >= eof) return -errno.ENXIO;
      pos = offset;
      break;
    case SEEK_HOLE:
      if (offset < 0 || offset >= eof) return -errno.ENXIO;
      pos = eof;
      break;
    default:
      return -errno.EINVAL;
  }
  if (pos < 0 || pos > maxsize) return -errno.EINVAL;
  file.fPos = pos;
  return pos;
}
