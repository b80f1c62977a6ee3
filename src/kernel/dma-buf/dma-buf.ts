/**
 * dma-buf: the shared buffer object and its file (drivers/dma-buf/dma-buf.c,
 * include/linux/dma-buf.h, include/uapi/linux/dma-buf.h, Linux 6.12 with
 * CONFIG_DMABUF_DEBUG, CONFIG_DMABUF_MOVE_NOTIFY and CONFIG_DEBUG_FS, as the oracle
 * kernel was built).
 *
 * Kernel side. An exporter wraps its buffer with `dmaBufExport` (the ops table is checked
 * in 6.12's order: priv and the three mandatory ops, then cache_sgt_mapping together with
 * pin/unpin, then pin without unpin or the reverse) and hands out fds with `dmaBufFd`.
 * Importers get the buffer from an fd (`dmaBufGet`), attach a device (`dmaBufAttach`,
 * static, or `dmaBufDynamicAttach` with `DmaBufAttachOps`), map the attachment for DMA
 * and unmap it, detach, and put the buffer. 6.12's rules, all here:
 * - an attachment whose dynamism differs from the exporter's (a static importer of a
 *   dynamic exporter, or the reverse) is mapped once, bidirectionally, at attach time,
 *   pinning a dynamic exporter first; the table is cached in `attach.sgt` until detach;
 * - an exporter with `cacheSgtMapping` has its first mapping of each attachment cached;
 *   a later map in another direction gets -EBUSY unless the cached one is bidirectional;
 * - a static importer's mapping waits for the buffer's KERNEL fences;
 * - with CONFIG_DMABUF_MOVE_NOTIFY mapping never pins: dynamic importers rely on
 *   `move_notify`, which only dynamic attachments receive, newest attachment first;
 * - every table lent out is mangled (page links poisoned) until it comes back, so an
 *   importer calling `sgPage` on it stops the run with `dma_buf.sg_page_access`.
 *
 * The locking convention (DOC "locking convention") is checked: map, unmap, pin, unpin,
 * vmap, vunmap and move_notify without the reservation lock each raise a `violation`
 * (`dma_buf.map_without_resv_lock`, ...); attach, detach, the CPU-access calls, mmap and
 * the `_unlocked` variants called with it held raise `dma_buf.resv_lock_held` (they would
 * take it again). A buffer released with attachments left is a `leak`
 * (`dma_buf.release_with_attachments`, a WARN in Linux).
 *
 * Userspace side: the file (an inode of the `dmabuf` pseudo filesystem, numbered from 1
 * per boot, mode 0600 with no type bits, file flags = the export flags' access mode and
 * O_NONBLOCK, link `/dmabuf:<name>`), its ioctls (SYNC, SET_NAME A and B, EXPORT and
 * IMPORT_SYNC_FILE, in the kernel's order of checks), llseek (offset 0 with SEEK_SET or
 * SEEK_END only), mmap (bounds-checked, then the exporter's), poll (POLLIN: no pending
 * KERNEL/WRITE fence, POLLOUT: no pending KERNEL/WRITE/READ fence; one armed callback per
 * direction, each holding a file reference), fdinfo (`size`, `count`, `exp_name`, and
 * `name` once one is set) and /sys/kernel/debug/dma_buf/bufinfo in 6.12's format.
 *
 * Model notes:
 * - exporters are not kernel modules: there is no module reference to fail (-ENOENT);
 * - export and release are atomic in the model, so the debugfs list needs no mutex;
 *   bufinfo walks a snapshot and skips buffers released while it waited for a lock;
 * - poll reads the fence list without the reservation lock: a poll method cannot sleep
 *   in the model and nothing can change the list while it runs;
 * - the fdinfo `count` is the file's reference count: the model's procfs takes no
 *   temporary reference, where 6.12 subtracts the one seq_show holds;
 * - an interrupted wait in an ioctl returns -EINTR (there are no signal handlers to
 *   restart for);
 * - tracepoints (kernel/trace.ts): dma_buf_export, dma_buf_fd and dma_buf_mmap as in
 *   include/trace/events/dma_buf.h (after 6.12), and the model's attach, detach, pin,
 *   unpin, map_attachment, unmap_attachment, move_notify and release, all keyed by ino.
 */

import type { ReportObject } from '../../sim/report.ts';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_NAME_LEN,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  DMA_BUF_SYNC_WRITE,
  dmaBufExportSyncFile,
  dmaBufImportSyncFile,
  dmaBufSync,
} from '../../uapi/dma-buf.ts';
import { bytesToCString } from '../../uapi/structs.ts';
import type { Device } from '../device.ts';
import { type ErrPtr, errPtr, isErr, isErrOrNull } from '../err.ts';
import { errno } from '../errno.ts';
import { O_ACCMODE, O_NONBLOCK } from '../fcntl.ts';
import { fdInstall, fdObservers, fget, getUnusedFdFlags, O_CLOEXEC_FLAG, putUnusedFd } from '../fdtable.ts';
import {
  allocFilePseudo,
  type File,
  type FileOperations,
  FMODE_LSEEK,
  fput,
  Inode,
  SEEK_END,
  SEEK_SET,
  SuperBlock,
} from '../file.ts';
import { IosysMap, iosysMapClear, iosysMapIsEqual, iosysMapIsNull, iosysMapIsSet } from '../iosys-map.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../jiffies.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
} from '../mm/dma-mapping.ts';
import type { VmAreaStruct } from '../mm/mmap.ts';
import { PAGE_SHIFT } from '../mm/page.ts';
import type { SgTable } from '../mm/scatterlist.ts';
import { EPOLLERR, EPOLLIN, EPOLLOUT, type PollTable, pollWait } from '../poll.ts';
import { current } from '../sched.ts';
import { type SeqFile, singleOpen } from '../seq-file.ts';
import { type TraceArgs, tracepoint } from '../trace.ts';
import { copyFromUser, copyToUser, memdupUser, strncpyFromUser, strnlenUser } from '../uaccess.ts';
import { registerDevice } from '../vfs.ts';
import { WaitQueueHead } from '../wait.ts';
import { dmaBufStatsSetup, dmaBufStatsTeardown } from './dma-buf-sysfs-stats.ts';
import { type DmaFence, DmaFenceCb, dmaFenceGetStub, dmaFencePut } from './dma-fence.ts';
import { dmaFenceUnwrapForEach } from './dma-fence-unwrap.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  DmaResv,
  DmaResvIter,
  dmaResvAddFence,
  dmaResvDescribe,
  dmaResvFini,
  dmaResvForEachFenceUnlocked,
  dmaResvGetSingleton,
  dmaResvHeld,
  dmaResvIterBegin,
  dmaResvIterEnd,
  dmaResvLock,
  dmaResvLockInterruptible,
  dmaResvReserveFences,
  dmaResvUnlock,
  dmaResvUsageRw,
  dmaResvWaitTimeout,
} from './dma-resv.ts';
import { syncFileCreate, syncFileGetFence } from './sync-file.ts';

/** CONFIG_DMABUF_DEBUG: tables lent to importers have their page links poisoned. */
export const CONFIG_DMABUF_DEBUG = true;
/** CONFIG_DMABUF_MOVE_NOTIFY: dynamic exporters are not pinned while mapped. */
export const CONFIG_DMABUF_MOVE_NOTIFY = true;

/** Path of the debugfs file listing every dma-buf. */
export const DMA_BUF_BUFINFO_PATH = '/sys/kernel/debug/dma_buf/bufinfo';

/** A value or a promise of it: ops that may sleep can be async. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The exporter's operations (struct dma_buf_ops). "Locked" members run with the
 * buffer's reservation lock held by the caller and must not take it; "unlocked" members
 * run without it and may take it. Every member may sleep unless it says otherwise.
 */
export interface DmaBufOps {
  /**
   * Optional, default false. When true the core caches the first mapping of each
   * attachment and returns it to later maps (-EBUSY for another direction unless it is
   * bidirectional); unmapping it is a no-op until detach. Mutually exclusive with
   * `pin`/`unpin`: export fails with a WARN and -EINVAL.
   */
  readonly cacheSgtMapping?: boolean;
  /**
   * Optional. Called unlocked from dma_buf_attach/dma_buf_dynamic_attach, before the
   * attachment is listed: check that `attach.dev` can reach the buffer (or that it can
   * move somewhere it can) and set up `attach.priv`. Returns 0 or a negative errno
   * (-EBUSY: the backing storage is incompatible and cannot move), which the attach
   * returns.
   */
  attach?(dmabuf: DmaBuf, attach: DmaBufAttachment): MaybePromise<number>;
  /** Optional. Called unlocked from dma_buf_detach after the attachment was unlisted: free `attach.priv`. */
  detach?(dmabuf: DmaBuf, attach: DmaBufAttachment): MaybePromise<void>;
  /**
   * Optional, but set exactly when `unpin` is (export checks): its presence makes the
   * exporter dynamic. Called locked (reservation lock held), from dma_buf_pin and for
   * static importers at attach time: the buffer may not move until `unpin`, and its
   * memory must be ready (moves and clears finished) when it returns. 0 or -errno.
   */
  pin?(attach: DmaBufAttachment): MaybePromise<number>;
  /** Optional, paired with `pin`. Called locked: the buffer may move again (after `move_notify`). */
  unpin?(attach: DmaBufAttachment): MaybePromise<void>;
  /**
   * Mandatory. Called locked for dynamic exporters (and from the attach-time mapping),
   * after `attach` succeeded: return an sg_table of the backing storage already mapped
   * for `attach.dev` (page-aligned DMA addresses and lengths), an error pointer (-EINTR
   * when interrupted), or null (the core makes it -ENOMEM). A non-dynamic exporter must
   * have the memory ready and cleared when it returns. Entries may lack a struct page
   * only when `attach.peer2peer` is true. Ownership of the table passes to the caller
   * until `unmapDmaBuf`; do not hand out one table twice.
   */
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): MaybePromise<SgTable | ErrPtr | null>;
  /** Mandatory. Called locked: unmap and free a table returned by `mapDmaBuf` (its page links are restored first). */
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): MaybePromise<void>;
  /** Mandatory. Called unlocked once the last reference to the buffer is gone: free everything. */
  release(dmabuf: DmaBuf): MaybePromise<void>;
  /**
   * Optional. Called unlocked from dma_buf_begin_cpu_access (DMA_BUF_IOCTL_SYNC START and
   * kernel CPU access): make the memory coherent for the CPU in `dir`. 0 or -errno
   * (-EINTR/-ERESTARTSYS when interrupted); the core then waits for the implicit fences.
   */
  beginCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): MaybePromise<number>;
  /** Optional. Called unlocked from dma_buf_end_cpu_access: hand the memory back to devices. 0 or -errno. */
  endCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): MaybePromise<number>;
  /**
   * Optional (without it mmap fails with -EINVAL). Called unlocked from mmap(2) and
   * dma_buf_mmap after the core checked that the range fits the buffer: set up `vma`
   * (insert pages or install a fault handler). The mapping is not coherent; userspace
   * brackets access with DMA_BUF_IOCTL_SYNC. 0 or -errno.
   */
  mmap?(dmabuf: DmaBuf, vma: VmAreaStruct): MaybePromise<number>;
  /** Optional (without it vmap fails with -EINVAL). Called locked, only for the first vmap: fill `map`. 0 or -errno. */
  vmap?(dmabuf: DmaBuf, map: IosysMap): MaybePromise<number>;
  /** Optional. Called locked when the last vmap goes away. */
  vunmap?(dmabuf: DmaBuf, map: IosysMap): MaybePromise<void>;
}

/** The importer's operations (struct dma_buf_attach_ops): their presence makes an attachment dynamic. */
export interface DmaBufAttachOps {
  /**
   * Optional, default false. True when the importer can use entries that refer to peer
   * device memory with no struct page (sets `attach.peer2peer`).
   */
  readonly allowPeer2peer?: boolean;
  /**
   * Required by dma_buf_dynamic_attach (the header calls it optional; 6.12 refuses
   * importer ops without it with a WARN and -EINVAL). Called with the reservation lock
   * held, from dma_buf_move_notify, when the buffer is moving: existing mappings stay
   * valid for now but must be torn down and recreated as soon as possible; new mappings
   * point at the new place. Must not take the reservation lock.
   */
  moveNotify?(attach: DmaBufAttachment): MaybePromise<void>;
}

/** What an exporter passes to `dmaBufExport` (struct dma_buf_export_info). */
export interface DmaBufExportInfo {
  /** The exporter's name (exp_name; KBUILD_MODNAME with DEFINE_DMA_BUF_EXPORT_INFO). Shown in fdinfo and bufinfo. */
  expName: string;
  /** The operations. */
  ops: DmaBufOps;
  /** Size in bytes, fixed for the buffer's life. */
  size: number;
  /** File flags of the dma-buf file (only O_ACCMODE and O_NONBLOCK are kept). Default O_RDONLY. */
  flags?: number;
  /** A reservation object to share (a GEM object's); null or absent: the buffer embeds its own. */
  resv?: DmaResv | null;
  /** The exporter's object (must not be null). */
  priv: unknown;
}

/** One of the two poll callbacks of a buffer (struct dma_buf_poll_cb_t). */
export class DmaBufPollCb extends DmaFenceCb {
  /** The EPOLL bit being waited for while armed, 0 when idle. */
  active = 0;
}

/** A device's attachment to a buffer (struct dma_buf_attachment). */
export class DmaBufAttachment {
  /** The cached mapping (attach-time or cache_sgt_mapping), or null. */
  sgt: SgTable | null = null;
  /** Direction of the cached mapping. */
  dir: DmaDataDirection = DMA_BIDIRECTIONAL;
  /** The importer can handle entries without struct page. */
  readonly peer2peer: boolean;
  /** The exporter's data for this attachment. */
  priv: unknown = null;
  /** Set once detached (the kernel frees the attachment). */
  detached = false;
  /** Tables mapped through this attachment and not unmapped yet (cached ones excluded). */
  readonly mapped = new Set<SgTable>();
  /** An id for reports and tracepoints, unique per kernel (numbered from 1 per boot, so runs repeat exactly). */
  readonly id: number;

  /** Use `dmaBufAttach` / `dmaBufDynamicAttach`. */
  constructor(
    /** The buffer. */
    readonly dmabuf: DmaBuf,
    /** The attached device. */
    readonly dev: Device,
    /** The importer's operations (dynamic importer), or null (static importer). */
    readonly importerOps: DmaBufAttachOps | null,
    /** The importer's data. */
    readonly importerPriv: unknown,
  ) {
    this.peer2peer = importerOps?.allowPeer2peer ?? false;
    this.id = ++state(dmabuf.kernel).attachSeq;
  }

  /** This attachment as a report object. */
  reportObject(): ReportObject {
    return { kind: 'dma_buf_attachment', name: `${this.dev.name} on ${this.dmabuf}`, id: this.id };
  }
}

/** A shared buffer (struct dma_buf). */
export class DmaBuf {
  /** The file that represents the buffer and counts its references. */
  readonly file: File;
  /** Attachments, newest first (protected by the reservation lock). */
  readonly attachments: DmaBufAttachment[] = [];
  /** Number of active kernel vmaps. */
  vmappingCounter = 0;
  /** The kernel mapping shared by the vmaps. */
  readonly vmapPtr = new IosysMap();
  /** The name userspace gave (DMA_BUF_SET_NAME), or null. */
  name: string | null = null;
  /** The reservation object (embedded or the exporter's). */
  readonly resv: DmaResv;
  /** True when `resv` is the buffer's own. */
  readonly embeddedResv: boolean;
  /** Pollers sleep here. */
  readonly poll = new WaitQueueHead('dma_buf.poll');
  /** The POLLIN callback. */
  readonly cbIn = new DmaBufPollCb();
  /** The POLLOUT callback. */
  readonly cbOut = new DmaBufPollCb();
  /** Set once released. */
  released = false;
  /** The kernel the buffer lives in. */
  readonly kernel: Kernel;
  /** The exporter's operations. */
  readonly ops: DmaBufOps;
  /** Size in bytes. */
  readonly size: number;
  /** The exporter's name. */
  readonly expName: string;
  /** The exporter's object. */
  readonly priv: unknown;

  /** Use `dmaBufExport`. */
  constructor(info: DmaBufExportInfo, file: File) {
    this.kernel = currentKernel();
    this.file = file;
    this.ops = info.ops;
    this.size = info.size;
    this.expName = info.expName;
    this.priv = info.priv;
    this.embeddedResv = !info.resv;
    this.resv = info.resv ?? new DmaResv();
  }

  /** The inode number (unique per boot; names the sysfs directory). */
  get ino(): number {
    return this.file.inode.ino;
  }

  /** `dma_buf <ino> (<exp_name>)`. */
  toString(): string {
    return `dma_buf ${this.ino} (${this.expName})`;
  }

  /** This buffer as a report object. */
  reportObject(): ReportObject {
    return { kind: 'dma_buf', name: this.toString(), id: this.ino };
  }
}

// ------------------------------------------------------------ per-kernel state

interface DmaBufState {
  /** The dmabuf pseudo filesystem (dma_buf_mnt). */
  sb: SuperBlock;
  /** The last inode number given out (dmabuf_inode). */
  ino: number;
  /** The debugfs list, newest first. */
  list: DmaBuf[];
  /** WARN_ON_ONCE state. */
  warnedVmap: boolean;
  /** The last attachment id given out. */
  attachSeq: number;
}

const STATE = Symbol('dma_buf');

function state(k: Kernel = currentKernel()): DmaBufState {
  let s = k.singletons.get(STATE) as DmaBufState | undefined;
  if (!s) {
    // mnt_id 9 and device 00:08 are what the oracle kernel showed for dma-buf files.
    s = { sb: new SuperBlock('dmabuf', 9, '00:08'), ino: 0, list: [], warnedVmap: false, attachSeq: 0 };
    k.singletons.set(STATE, s);
  }
  return s;
}

/** The live dma-bufs of a kernel, newest first (the debugfs list). */
export function dmaBufList(k: Kernel = currentKernel()): readonly DmaBuf[] {
  return state(k).list;
}

// ------------------------------------------------------------ rule checks

/** Rules of the locking convention raised when a function needing the reservation lock runs without it. */
export const DMA_BUF_LOCK_RULES = {
  map: 'dma_buf.map_without_resv_lock',
  unmap: 'dma_buf.unmap_without_resv_lock',
  pin: 'dma_buf.pin_without_resv_lock',
  unpin: 'dma_buf.unpin_without_resv_lock',
  vmap: 'dma_buf.vmap_without_resv_lock',
  vunmap: 'dma_buf.vunmap_without_resv_lock',
  moveNotify: 'dma_buf.move_notify_without_resv_lock',
} as const;

/** Rule raised when a function that takes the reservation lock itself is called with it held. */
export const DMA_BUF_RESV_HELD_RULE = 'dma_buf.resv_lock_held';

function requireResvHeld(dmabuf: DmaBuf, fn: string, rule: string): void {
  if (dmaResvHeld(dmabuf.resv)) return;
  const k = currentKernel();
  k.report(
    'violation',
    rule,
    `${fn}() called by ${k.ctx.label} without the reservation lock of ${dmabuf}: the dma-buf locking ` +
      `convention requires ${rule === DMA_BUF_LOCK_RULES.moveNotify ? 'exporters' : 'importers'} to hold it`,
    [dmabuf.reportObject(), { kind: 'dma_resv', name: dmabuf.resv.toString(), id: dmabuf.resv.id }],
  );
}

function forbidResvHeld(dmabuf: DmaBuf, fn: string): void {
  if (!dmaResvHeld(dmabuf.resv)) return;
  const k = currentKernel();
  k.report(
    'violation',
    DMA_BUF_RESV_HELD_RULE,
    `${fn}() called by ${k.ctx.label} with the reservation lock of ${dmabuf} held: the dma-buf ` +
      'locking convention forbids it (the function takes the lock itself)',
    [dmabuf.reportObject(), { kind: 'dma_resv', name: dmabuf.resv.toString(), id: dmabuf.resv.id }],
  );
}

function warnOn(rule: string, message: string, objects: ReportObject[] = []): void {
  currentKernel().warn(rule, `WARNING: ${message}`, objects);
}

// ------------------------------------------------------------ export, fd, get, put

/**
 * Emits a dma_buf_* tracepoint of `dmabuf` (the ino is the id every view and trace uses;
 * `host`, the kernel's name, tells machines of a cluster apart).
 */
function traceDmaBuf(dmabuf: DmaBuf, name: string, args: TraceArgs = {}): void {
  const engine = dmabuf.kernel.engine;
  if (!engine.log.enabled) return;
  tracepoint(engine, name, { ino: dmabuf.ino, ...args, host: dmabuf.kernel.name });
}

/** The topology endpoint id (`nic0`) of a device on the PCIe topology, or of its nearest such parent. */
function topologyEndpoint(dev: Device): string | undefined {
  for (let d: unknown = dev; d && typeof d === 'object'; d = (d as { parent?: unknown }).parent) {
    const x = d as { id?: unknown; role?: unknown; topology?: unknown };
    if (x.role === 'endpoint' && typeof x.id === 'string' && x.topology) return x.id;
  }
  return undefined;
}

/** Emits `dma_buf_map_attachment`: entries mapped, and whether they carry struct pages (false for P2P). */
function traceMap(attach: DmaBufAttachment, sgt: SgTable): void {
  if (!attach.dmabuf.kernel.engine.log.enabled) return;
  traceAttach(attach, 'dma_buf_map_attachment', {
    nents: sgt.nents,
    pages: sgt.sgl.some((sg) => sg.pageLink !== null),
  });
}

/** Emits a dma_buf_* tracepoint of an attachment. */
function traceAttach(attach: DmaBufAttachment, name: string, args: TraceArgs = {}): void {
  traceDmaBuf(attach.dmabuf, name, { attach: attach.id, ...args });
}

/** is_dma_buf_file(). */
export function isDmaBufFile(file: File): boolean {
  return file.fOp === dmaBufFops;
}

/** dma_buf_getfile(): a file on a fresh inode of the dmabuf filesystem. */
function dmaBufGetfile(size: number, flags: number): File {
  const s = state();
  const inode = new Inode(s.sb, ++s.ino, 0o600);
  inode.size = size;
  const file = allocFilePseudo(inode, 'dmabuf', flags & (O_ACCMODE | O_NONBLOCK), dmaBufFops);
  // 6.12's file_init_path: a file with an llseek operation is seekable.
  file.fMode |= FMODE_LSEEK;
  return file;
}

/**
 * dma_buf_export(): wraps the exporter's object in a new dma-buf with its file (one
 * reference, owned by the caller until `dmaBufFd` or `dmaBufPut`). Returns the buffer,
 * or an error pointer: -EINVAL with a WARN for a missing priv or mandatory op, for
 * cache_sgt_mapping combined with pin/unpin, or for pin without unpin (or the reverse).
 */
export function dmaBufExport(info: DmaBufExportInfo): DmaBuf | ErrPtr {
  const ops = info.ops;
  if (
    info.priv === null ||
    info.priv === undefined ||
    !ops ||
    !ops.mapDmaBuf ||
    !ops.unmapDmaBuf ||
    !ops.release
  ) {
    warnOn(
      'dma_buf.export_invalid_info',
      `dma_buf_export(${info.expName}): priv, ops, map_dma_buf, unmap_dma_buf and release are required`,
    );
    return errPtr(-errno.EINVAL);
  }
  if (ops.cacheSgtMapping && (ops.pin || ops.unpin)) {
    warnOn(
      'dma_buf.export_cache_with_pin',
      `dma_buf_export(${info.expName}): cache_sgt_mapping cannot be combined with pin/unpin`,
    );
    return errPtr(-errno.EINVAL);
  }
  if (!ops.pin !== !ops.unpin) {
    warnOn('dma_buf.export_pin_unpin', `dma_buf_export(${info.expName}): pin and unpin must come together`);
    return errPtr(-errno.EINVAL);
  }
  const file = dmaBufGetfile(info.size, info.flags ?? 0);
  const dmabuf = new DmaBuf(info, file);
  dmaBufStatsSetup(dmabuf);
  file.privateData = dmabuf;
  state(dmabuf.kernel).list.unshift(dmabuf);
  traceDmaBuf(dmabuf, 'dma_buf_export', { exp_name: dmabuf.expName, size: dmabuf.size });
  return dmabuf;
}

/**
 * dma_buf_fd(): installs the buffer's file (its reference moves to the fd table) at
 * the lowest free fd, with `flags` (O_CLOEXEC). Returns the fd, -EINVAL without a
 * buffer, or the fd allocation's error (the caller still owns the reference then).
 */
export function dmaBufFd(dmabuf: DmaBuf | null, flags: number): number {
  if (!dmabuf?.file) return -errno.EINVAL;
  const fd = getUnusedFdFlags(flags);
  if (fd < 0) return fd;
  fdInstall(fd, dmabuf.file);
  return fd;
}

// `dma_buf_fd` {ino, fd, pid} whenever a dma-buf's file lands in an fd table, whoever
// installs it: dma_buf_fd(), exporters that fd_install it themselves (dma-heap,
// habanalabs, DRM PRIME in 6.12), SCM_RIGHTS, dup. Upstream fires it only in
// dma_buf_fd(); `dma_buf_fd_close` {ino, fd, pid} when such an fd is closed is a model
// addition. Together they say who holds a buffer's fds over time.
fdObservers.install.push((file, fd) => {
  if (isDmaBufFile(file))
    traceDmaBuf(file.privateData as DmaBuf, 'dma_buf_fd', { fd, pid: current()?.tgid ?? 0 });
});
fdObservers.close.push((file, fd) => {
  if (isDmaBufFile(file))
    traceDmaBuf(file.privateData as DmaBuf, 'dma_buf_fd_close', { fd, pid: current()?.tgid ?? 0 });
});

/** dma_buf_get(): the buffer behind `fd` with one more reference; -EBADF or -EINVAL (not a dma-buf) as error pointers. */
export function dmaBufGet(fd: number): DmaBuf | ErrPtr {
  const file = fget(fd);
  if (!file) return errPtr(-errno.EBADF);
  if (!isDmaBufFile(file)) {
    fput(file);
    return errPtr(-errno.EINVAL);
  }
  return file.privateData as DmaBuf;
}

/** dma_buf_put(): drops a reference (the last one releases the buffer); WARN for null. */
export function dmaBufPut(dmabuf: DmaBuf | null): void {
  if (!dmabuf?.file) {
    warnOn('dma_buf.put_null', 'dma_buf_put(NULL)');
    return;
  }
  fput(dmabuf.file);
}

/** get_dma_buf(): takes a reference. */
export function getDmaBuf(dmabuf: DmaBuf): void {
  dmabuf.file.get();
}

/** dma_buf_is_dynamic(): the exporter has pin/unpin and expects map/unmap under the reservation lock. */
export function dmaBufIsDynamic(dmabuf: DmaBuf): boolean {
  return !!dmabuf.ops.pin;
}

/** dma_buf_attachment_is_dynamic(): the importer gave attach ops and maps under the reservation lock. */
export function dmaBufAttachmentIsDynamic(attach: DmaBufAttachment): boolean {
  return attach.importerOps !== null;
}

/** dma_buf_release() (the dentry release): the last reference is gone. */
async function dmaBufRelease(dmabuf: DmaBuf): Promise<void> {
  const k = dmabuf.kernel;
  if (dmabuf.vmappingCounter) {
    k.bug('dma_buf.release_vmapped', `kernel BUG at dma_buf_release: ${dmabuf} released while vmapped`, [
      dmabuf.reportObject(),
    ]);
  }
  if (dmabuf.cbIn.active || dmabuf.cbOut.active) {
    k.bug(
      'dma_buf.release_poll_active',
      `kernel BUG at dma_buf_release: ${dmabuf} has a poll callback armed`,
      [dmabuf.reportObject()],
    );
  }
  dmaBufStatsTeardown(dmabuf);
  await dmabuf.ops.release(dmabuf);
  if (dmabuf.embeddedResv) dmaResvFini(dmabuf.resv);
  if (dmabuf.attachments.length > 0) {
    k.report(
      'leak',
      'dma_buf.release_with_attachments',
      `WARNING: dma_buf_release: ${dmabuf} released with ${dmabuf.attachments.length} attachment(s) left ` +
        `(${dmabuf.attachments.map((a) => a.dev.name).join(', ')}): importers must dma_buf_detach before the last put`,
      [dmabuf.reportObject(), ...dmabuf.attachments.map((a) => a.reportObject())],
    );
  }
  dmabuf.name = null;
}

async function dmaBufFileRelease(_inode: Inode, file: File): Promise<number> {
  if (!isDmaBufFile(file)) return -errno.EINVAL;
  const dmabuf = file.privateData as DmaBuf;
  const list = state(dmabuf.kernel).list;
  const i = list.indexOf(dmabuf);
  if (i >= 0) list.splice(i, 1);
  dmabuf.released = true;
  traceDmaBuf(dmabuf, 'dma_buf_release');
  await dmaBufRelease(dmabuf);
  return 0;
}

// ------------------------------------------------------------ attachments and mappings

/**
 * mangle_sg_table(): XOR of every page link (applying it twice undoes it). Linux walks
 * the CPU entries (orig_nents); a page-less exporter such as habanalabs sets orig_nents
 * to 0, so there an importer's sg_page() gets NULL and oopses on it. The model poisons
 * every entry of the table instead, so both faults give the same `dma_buf.sg_page_access`
 * report (spec/driver-side.md §8 pitfall 1).
 */
function mangleSgTable(sgt: SgTable): void {
  if (!CONFIG_DMABUF_DEBUG) return;
  for (const sg of sgt.sgl) sg.pageLinkMangled = !sg.pageLinkMangled;
}

/** __map_dma_buf(): the exporter's map, the static importer's wait for KERNEL fences, the mangling. */
async function mapDmaBufInternal(
  attach: DmaBufAttachment,
  dir: DmaDataDirection,
): Promise<SgTable | ErrPtr | null> {
  const dmabuf = attach.dmabuf;
  const sgt = await dmabuf.ops.mapDmaBuf(attach, dir);
  if (isErrOrNull(sgt)) return sgt;
  if (!dmaBufAttachmentIsDynamic(attach)) {
    const ret = await dmaResvWaitTimeout(dmabuf.resv, DMA_RESV_USAGE_KERNEL, true, MAX_SCHEDULE_TIMEOUT);
    if (ret < 0) {
      await dmabuf.ops.unmapDmaBuf(attach, sgt, dir);
      return errPtr(ret);
    }
  }
  mangleSgTable(sgt);
  return sgt;
}

/** __unmap_dma_buf(): un-mangle, then the exporter's unmap. */
async function unmapDmaBufInternal(
  attach: DmaBufAttachment,
  sgt: SgTable,
  dir: DmaDataDirection,
): Promise<void> {
  mangleSgTable(sgt);
  await attach.dmabuf.ops.unmapDmaBuf(attach, sgt, dir);
}

/**
 * dma_buf_dynamic_attach(): attaches `dev` to the buffer. With `importerOps` the
 * attachment is dynamic (maps under the reservation lock, gets `moveNotify`). Returns
 * the attachment or an error pointer: -EINVAL (WARN) for a missing buffer or device or
 * ops without `moveNotify`; the exporter's attach error; for an attachment whose
 * dynamism differs from the exporter's, the pin or map error of the attach-time mapping.
 * Call without the reservation lock; may sleep.
 */
export async function dmaBufDynamicAttach(
  dmabuf: DmaBuf | null,
  dev: Device | null,
  importerOps: DmaBufAttachOps | null,
  importerPriv: unknown = null,
): Promise<DmaBufAttachment | ErrPtr> {
  if (!dmabuf || !dev) {
    warnOn('dma_buf.attach_null', 'dma_buf_dynamic_attach without a buffer or device');
    return errPtr(-errno.EINVAL);
  }
  if (importerOps && !importerOps.moveNotify) {
    warnOn(
      'dma_buf.attach_no_move_notify',
      `dma_buf_dynamic_attach(${dev.name}): importer ops without move_notify`,
      [dmabuf.reportObject()],
    );
    return errPtr(-errno.EINVAL);
  }
  forbidResvHeld(dmabuf, 'dma_buf_dynamic_attach');
  const attach = new DmaBufAttachment(dmabuf, dev, importerOps, importerPriv);
  if (dmabuf.ops.attach) {
    const ret = await dmabuf.ops.attach(dmabuf, attach);
    if (ret) return errPtr(ret);
  }
  await dmaResvLock(dmabuf.resv, null);
  dmabuf.attachments.unshift(attach);
  dmaResvUnlock(dmabuf.resv);
  const endpoint = topologyEndpoint(dev);
  traceAttach(attach, 'dma_buf_attach', {
    dev: dev.name,
    ...(endpoint === undefined ? {} : { endpoint }),
    dynamic: importerOps !== null,
    peer2peer: attach.peer2peer,
  });

  // Importer and exporter disagree on dynamism: map once now, keep it until detach.
  if (dmaBufAttachmentIsDynamic(attach) !== dmaBufIsDynamic(dmabuf)) {
    await dmaResvLock(dmabuf.resv, null);
    if (dmaBufIsDynamic(dmabuf)) {
      const ret = await dmabuf.ops.pin!(attach);
      if (ret) {
        dmaResvUnlock(dmabuf.resv);
        await dmaBufDetach(dmabuf, attach);
        return errPtr(ret);
      }
    }
    let sgt = await mapDmaBufInternal(attach, DMA_BIDIRECTIONAL);
    if (!sgt) sgt = errPtr(-errno.ENOMEM);
    if (isErr(sgt)) {
      if (dmaBufIsDynamic(dmabuf)) await dmabuf.ops.unpin!(attach);
      dmaResvUnlock(dmabuf.resv);
      await dmaBufDetach(dmabuf, attach);
      return sgt;
    }
    dmaResvUnlock(dmabuf.resv);
    attach.sgt = sgt;
    attach.dir = DMA_BIDIRECTIONAL;
  }
  return attach;
}

/** dma_buf_attach(): a static attachment (no importer ops). See `dmaBufDynamicAttach`. */
export function dmaBufAttach(dmabuf: DmaBuf | null, dev: Device | null): Promise<DmaBufAttachment | ErrPtr> {
  return dmaBufDynamicAttach(dmabuf, dev, null, null);
}

/**
 * dma_buf_detach(): unmaps a cached table (unpinning a dynamic exporter), unlists the
 * attachment and calls the exporter's detach. WARN and nothing done for a null or
 * mismatched argument. Call without the reservation lock, after unmapping everything.
 */
export async function dmaBufDetach(dmabuf: DmaBuf | null, attach: DmaBufAttachment | null): Promise<void> {
  if (!dmabuf || !attach || dmabuf !== attach.dmabuf) {
    warnOn('dma_buf.detach_mismatch', 'dma_buf_detach with a null or foreign attachment');
    return;
  }
  forbidResvHeld(dmabuf, 'dma_buf_detach');
  if (attach.mapped.size > 0) {
    dmabuf.kernel.report(
      'violation',
      'dma_buf.detach_with_mappings',
      `dma_buf_detach(${attach.dev.name}) on ${dmabuf} with ${attach.mapped.size} mapping(s) not unmapped: ` +
        'importers must dma_buf_unmap_attachment first',
      [dmabuf.reportObject(), attach.reportObject()],
    );
  }
  await dmaResvLock(dmabuf.resv, null);
  if (attach.sgt) {
    await unmapDmaBufInternal(attach, attach.sgt, attach.dir);
    if (dmaBufIsDynamic(dmabuf)) await dmabuf.ops.unpin!(attach);
    attach.sgt = null;
  }
  const i = dmabuf.attachments.indexOf(attach);
  if (i >= 0) dmabuf.attachments.splice(i, 1);
  dmaResvUnlock(dmabuf.resv);
  traceAttach(attach, 'dma_buf_detach');
  if (dmabuf.ops.detach) await dmabuf.ops.detach(dmabuf, attach);
  attach.detached = true;
}

/**
 * dma_buf_pin(): keeps the buffer from moving (long-term uses such as scanout).
 * Dynamic importers only (WARN otherwise); reservation lock held. 0 or the exporter's error.
 */
export async function dmaBufPin(attach: DmaBufAttachment): Promise<number> {
  const dmabuf = attach.dmabuf;
  if (!dmaBufAttachmentIsDynamic(attach)) {
    warnOn('dma_buf.pin_static', `dma_buf_pin by static importer ${attach.dev.name}`, [
      attach.reportObject(),
    ]);
  }
  requireResvHeld(dmabuf, 'dma_buf_pin', DMA_BUF_LOCK_RULES.pin);
  traceAttach(attach, 'dma_buf_pin');
  if (dmabuf.ops.pin) return await dmabuf.ops.pin(attach);
  return 0;
}

/** dma_buf_unpin(): undoes `dmaBufPin`. Dynamic importers only; reservation lock held. */
export async function dmaBufUnpin(attach: DmaBufAttachment): Promise<void> {
  const dmabuf = attach.dmabuf;
  if (!dmaBufAttachmentIsDynamic(attach)) {
    warnOn('dma_buf.unpin_static', `dma_buf_unpin by static importer ${attach.dev.name}`, [
      attach.reportObject(),
    ]);
  }
  requireResvHeld(dmabuf, 'dma_buf_unpin', DMA_BUF_LOCK_RULES.unpin);
  traceAttach(attach, 'dma_buf_unpin');
  if (dmabuf.ops.unpin) await dmabuf.ops.unpin(attach);
}

/**
 * dma_buf_map_attachment(): the attachment's sg_table mapped for its device, or an
 * error pointer (-EINVAL with a WARN for a null attachment, -EBUSY for a cached
 * mapping in another direction, -ENOMEM for a null table, -EINTR, the exporter's
 * error). The reservation lock must be held (a `dma_buf.map_without_resv_lock`
 * violation otherwise). Dynamic importers must wait for the fences they need
 * themselves; static importers' maps wait for KERNEL fences. Use only the DMA
 * addresses of the result: its page links are poisoned.
 */
export async function dmaBufMapAttachment(
  attach: DmaBufAttachment | null,
  dir: DmaDataDirection,
): Promise<SgTable | ErrPtr> {
  const k = currentKernel();
  k.checkMightSleep(k.ctx, 'dma_buf_map_attachment');
  if (!attach?.dmabuf) {
    warnOn('dma_buf.map_null', 'dma_buf_map_attachment without an attachment');
    return errPtr(-errno.EINVAL);
  }
  const dmabuf = attach.dmabuf;
  requireResvHeld(dmabuf, 'dma_buf_map_attachment', DMA_BUF_LOCK_RULES.map);
  if (attach.sgt) {
    if (attach.dir !== dir && attach.dir !== DMA_BIDIRECTIONAL) return errPtr(-errno.EBUSY);
    traceMap(attach, attach.sgt);
    return attach.sgt;
  }
  const pinOnMap = dmaBufIsDynamic(dmabuf) && !CONFIG_DMABUF_MOVE_NOTIFY;
  if (pinOnMap) {
    const r = await dmabuf.ops.pin!(attach);
    if (r) return errPtr(r);
  }
  let sgt = await mapDmaBufInternal(attach, dir);
  if (!sgt) sgt = errPtr(-errno.ENOMEM);
  if (isErr(sgt)) {
    if (pinOnMap) await dmabuf.ops.unpin!(attach);
    return sgt;
  }
  if (dmabuf.ops.cacheSgtMapping) {
    attach.sgt = sgt;
    attach.dir = dir;
  } else {
    attach.mapped.add(sgt);
  }
  traceMap(attach, sgt);
  return sgt;
}

/** dma_buf_map_attachment_unlocked(): `dmaBufMapAttachment` under the reservation lock it takes itself. */
export async function dmaBufMapAttachmentUnlocked(
  attach: DmaBufAttachment | null,
  dir: DmaDataDirection,
): Promise<SgTable | ErrPtr> {
  const k = currentKernel();
  k.checkMightSleep(k.ctx, 'dma_buf_map_attachment_unlocked');
  if (!attach?.dmabuf) {
    warnOn('dma_buf.map_null', 'dma_buf_map_attachment_unlocked without an attachment');
    return errPtr(-errno.EINVAL);
  }
  forbidResvHeld(attach.dmabuf, 'dma_buf_map_attachment_unlocked');
  await dmaResvLock(attach.dmabuf.resv, null);
  try {
    return await dmaBufMapAttachment(attach, dir);
  } finally {
    dmaResvUnlock(attach.dmabuf.resv);
  }
}

/**
 * dma_buf_unmap_attachment(): gives back a table from `dmaBufMapAttachment` (a cached
 * one stays until detach). WARN for null arguments; reservation lock held (a
 * `dma_buf.unmap_without_resv_lock` violation otherwise).
 */
export async function dmaBufUnmapAttachment(
  attach: DmaBufAttachment | null,
  sgt: SgTable | null,
  dir: DmaDataDirection,
): Promise<void> {
  const k = currentKernel();
  k.checkMightSleep(k.ctx, 'dma_buf_unmap_attachment');
  if (!attach?.dmabuf || !sgt) {
    warnOn('dma_buf.unmap_null', 'dma_buf_unmap_attachment with a null argument');
    return;
  }
  const dmabuf = attach.dmabuf;
  requireResvHeld(dmabuf, 'dma_buf_unmap_attachment', DMA_BUF_LOCK_RULES.unmap);
  traceAttach(attach, 'dma_buf_unmap_attachment');
  if (attach.sgt === sgt) return;
  attach.mapped.delete(sgt);
  await unmapDmaBufInternal(attach, sgt, dir);
  if (dmaBufIsDynamic(dmabuf) && !CONFIG_DMABUF_MOVE_NOTIFY) await dmaBufUnpin(attach);
}

/** dma_buf_unmap_attachment_unlocked(): `dmaBufUnmapAttachment` under the reservation lock it takes itself. */
export async function dmaBufUnmapAttachmentUnlocked(
  attach: DmaBufAttachment | null,
  sgt: SgTable | null,
  dir: DmaDataDirection,
): Promise<void> {
  const k = currentKernel();
  k.checkMightSleep(k.ctx, 'dma_buf_unmap_attachment_unlocked');
  if (!attach?.dmabuf || !sgt) {
    warnOn('dma_buf.unmap_null', 'dma_buf_unmap_attachment_unlocked with a null argument');
    return;
  }
  forbidResvHeld(attach.dmabuf, 'dma_buf_unmap_attachment_unlocked');
  await dmaResvLock(attach.dmabuf.resv, null);
  try {
    await dmaBufUnmapAttachment(attach, sgt, dir);
  } finally {
    dmaResvUnlock(attach.dmabuf.resv);
  }
}

/**
 * dma_buf_move_notify(): the exporter is moving the buffer; every dynamic attachment's
 * `moveNotify` runs, newest attachment first. The exporter must hold the reservation
 * lock (a `dma_buf.move_notify_without_resv_lock` violation otherwise).
 */
export async function dmaBufMoveNotify(dmabuf: DmaBuf): Promise<void> {
  requireResvHeld(dmabuf, 'dma_buf_move_notify', DMA_BUF_LOCK_RULES.moveNotify);
  traceDmaBuf(dmabuf, 'dma_buf_move_notify');
  for (const attach of [...dmabuf.attachments]) {
    if (attach.importerOps) await attach.importerOps.moveNotify!(attach);
  }
}

// ------------------------------------------------------------ CPU access

/**
 * dma_buf_begin_cpu_access(): the exporter's begin_cpu_access, then a wait for the
 * implicit fences the access needs (writers wait for all, readers for writers). 0 or
 * -errno (-ERESTARTSYS when interrupted). Call without the reservation lock.
 */
export async function dmaBufBeginCpuAccess(dmabuf: DmaBuf | null, dir: DmaDataDirection): Promise<number> {
  if (!dmabuf) {
    warnOn('dma_buf.cpu_access_null', 'dma_buf_begin_cpu_access(NULL)');
    return -errno.EINVAL;
  }
  forbidResvHeld(dmabuf, 'dma_buf_begin_cpu_access');
  let ret = 0;
  if (dmabuf.ops.beginCpuAccess) ret = await dmabuf.ops.beginCpuAccess(dmabuf, dir);
  if (ret === 0) {
    const write = dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE;
    const r = await dmaResvWaitTimeout(dmabuf.resv, dmaResvUsageRw(write), true, MAX_SCHEDULE_TIMEOUT);
    if (r < 0) return r;
  }
  return ret;
}

/** dma_buf_end_cpu_access(): the exporter's end_cpu_access, or 0. Call without the reservation lock. */
export async function dmaBufEndCpuAccess(dmabuf: DmaBuf | null, dir: DmaDataDirection): Promise<number> {
  if (!dmabuf) {
    warnOn('dma_buf.cpu_access_null', 'dma_buf_end_cpu_access(NULL)');
    return -errno.EINVAL;
  }
  forbidResvHeld(dmabuf, 'dma_buf_end_cpu_access');
  if (dmabuf.ops.endCpuAccess) return await dmabuf.ops.endCpuAccess(dmabuf, dir);
  return 0;
}

/**
 * dma_buf_mmap(): maps the buffer from page `pgoff` into `vma` (an importer's own mmap
 * forwarding to the exporter). -EINVAL (WARN for null arguments, no mmap op, range beyond
 * the buffer), -EOVERFLOW; then the vma points at the buffer's file and the exporter's
 * mmap runs. Call without the reservation lock.
 */
export async function dmaBufMmap(
  dmabuf: DmaBuf | null,
  vma: VmAreaStruct | null,
  pgoff: number,
): Promise<number> {
  if (!dmabuf || !vma) {
    warnOn('dma_buf.mmap_null', 'dma_buf_mmap with a null argument');
    return -errno.EINVAL;
  }
  forbidResvHeld(dmabuf, 'dma_buf_mmap');
  if (!dmabuf.ops.mmap) return -errno.EINVAL;
  if (pgoff + vma.npages > Number.MAX_SAFE_INTEGER) return -errno.EOVERFLOW;
  if (pgoff + vma.npages > Math.floor(dmabuf.size / 2 ** PAGE_SHIFT)) return -errno.EINVAL;
  // vma_set_file()
  const old = vma.vmFile;
  vma.vmFile = dmabuf.file.get();
  if (old) fput(old);
  vma.vmPgoff = pgoff;
  traceDmaBuf(dmabuf, 'dma_buf_mmap');
  return await dmabuf.ops.mmap(dmabuf, vma);
}

/**
 * dma_buf_vmap(): a kernel mapping of the whole buffer in `map` (shared and counted:
 * the exporter's vmap runs for the first one only). Reservation lock held. 0, or
 * -EINVAL (WARN for null, no vmap op), or the exporter's error (WARN once).
 */
export async function dmaBufVmap(dmabuf: DmaBuf | null, map: IosysMap): Promise<number> {
  iosysMapClear(map);
  if (!dmabuf) {
    warnOn('dma_buf.vmap_null', 'dma_buf_vmap(NULL)');
    return -errno.EINVAL;
  }
  requireResvHeld(dmabuf, 'dma_buf_vmap', DMA_BUF_LOCK_RULES.vmap);
  if (!dmabuf.ops.vmap) return -errno.EINVAL;
  const k = dmabuf.kernel;
  if (dmabuf.vmappingCounter) {
    dmabuf.vmappingCounter++;
    if (iosysMapIsNull(dmabuf.vmapPtr))
      k.bug('dma_buf.vmap_null_ptr', `kernel BUG at dma_buf_vmap: ${dmabuf}`);
    map.vaddr = dmabuf.vmapPtr.vaddr;
    map.isIomem = dmabuf.vmapPtr.isIomem;
    return 0;
  }
  if (iosysMapIsSet(dmabuf.vmapPtr)) k.bug('dma_buf.vmap_stale_ptr', `kernel BUG at dma_buf_vmap: ${dmabuf}`);
  const ptr = new IosysMap();
  const ret = await dmabuf.ops.vmap(dmabuf, ptr);
  if (ret) {
    const s = state(k);
    if (!s.warnedVmap) {
      s.warnedVmap = true;
      warnOn('dma_buf.vmap_failed', `dma_buf_vmap: the exporter's vmap of ${dmabuf} failed with ${ret}`);
    }
    return ret;
  }
  dmabuf.vmapPtr.vaddr = ptr.vaddr;
  dmabuf.vmapPtr.isIomem = ptr.isIomem;
  dmabuf.vmappingCounter = 1;
  map.vaddr = ptr.vaddr;
  map.isIomem = ptr.isIomem;
  return 0;
}

/** dma_buf_vmap_unlocked(): `dmaBufVmap` under the reservation lock it takes itself. */
export async function dmaBufVmapUnlocked(dmabuf: DmaBuf | null, map: IosysMap): Promise<number> {
  iosysMapClear(map);
  if (!dmabuf) {
    warnOn('dma_buf.vmap_null', 'dma_buf_vmap_unlocked(NULL)');
    return -errno.EINVAL;
  }
  forbidResvHeld(dmabuf, 'dma_buf_vmap_unlocked');
  await dmaResvLock(dmabuf.resv, null);
  try {
    return await dmaBufVmap(dmabuf, map);
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

/** dma_buf_vunmap(): drops one vmap; BUG for a map that is not the buffer's. Reservation lock held. */
export async function dmaBufVunmap(dmabuf: DmaBuf | null, map: IosysMap): Promise<void> {
  if (!dmabuf) {
    warnOn('dma_buf.vunmap_null', 'dma_buf_vunmap(NULL)');
    return;
  }
  requireResvHeld(dmabuf, 'dma_buf_vunmap', DMA_BUF_LOCK_RULES.vunmap);
  const k = dmabuf.kernel;
  if (
    iosysMapIsNull(dmabuf.vmapPtr) ||
    dmabuf.vmappingCounter === 0 ||
    !iosysMapIsEqual(dmabuf.vmapPtr, map)
  ) {
    k.bug(
      'dma_buf.vunmap_unmapped',
      `kernel BUG at dma_buf_vunmap: ${dmabuf} is not vmapped at this address`,
      [dmabuf.reportObject()],
    );
  }
  if (--dmabuf.vmappingCounter === 0) {
    if (dmabuf.ops.vunmap) await dmabuf.ops.vunmap(dmabuf, map);
    iosysMapClear(dmabuf.vmapPtr);
  }
}

/** dma_buf_vunmap_unlocked(): `dmaBufVunmap` under the reservation lock it takes itself. */
export async function dmaBufVunmapUnlocked(dmabuf: DmaBuf | null, map: IosysMap): Promise<void> {
  if (!dmabuf) {
    warnOn('dma_buf.vunmap_null', 'dma_buf_vunmap_unlocked(NULL)');
    return;
  }
  forbidResvHeld(dmabuf, 'dma_buf_vunmap_unlocked');
  await dmaResvLock(dmabuf.resv, null);
  try {
    await dmaBufVunmap(dmabuf, map);
  } finally {
    dmaResvUnlock(dmabuf.resv);
  }
}

// ------------------------------------------------------------ the file: mmap, llseek, poll

async function dmaBufMmapInternal(file: File, vma: VmAreaStruct): Promise<number> {
  if (!isDmaBufFile(file)) return -errno.EINVAL;
  const dmabuf = file.privateData as DmaBuf;
  if (!dmabuf.ops.mmap) return -errno.EINVAL;
  if (vma.vmPgoff + vma.npages > Math.floor(dmabuf.size / 2 ** PAGE_SHIFT)) return -errno.EINVAL;
  traceDmaBuf(dmabuf, 'dma_buf_mmap');
  return await dmabuf.ops.mmap(dmabuf, vma);
}

function dmaBufLlseek(file: File, offset: number, whence: number): number {
  if (!isDmaBufFile(file)) return -errno.EBADF;
  const dmabuf = file.privateData as DmaBuf;
  let base: number;
  if (whence === SEEK_END) base = dmabuf.size;
  else if (whence === SEEK_SET) base = 0;
  else return -errno.EINVAL;
  if (offset !== 0) return -errno.EINVAL;
  return base + offset;
}

/** dma_buf_poll_cb(): wakes pollers, disarms the slot, drops the fence and the file reference. */
function dmaBufPollCb(dmabuf: DmaBuf, dcb: DmaBufPollCb, fence: DmaFence | null): void {
  const active = dcb.active;
  dcb.active = 0;
  dmabuf.poll.wakeUp(active);
  dmaFencePut(fence);
  fput(dmabuf.file);
}

/** dma_buf_poll_add_cb(): arms `dcb` on the first pending fence of the direction; false if none. */
function dmaBufPollAddCb(dmabuf: DmaBuf, write: boolean, dcb: DmaBufPollCb): boolean {
  const cursor = new DmaResvIter();
  dmaResvIterBegin(cursor, dmabuf.resv, dmaResvUsageRw(write));
  try {
    for (const fence of dmaResvForEachFenceUnlocked(cursor)) {
      const f = fence.get();
      if (f.addCallback(dcb, (signalled) => dmaBufPollCb(dmabuf, dcb, signalled)) === 0) return true;
      f.put();
    }
    return false;
  } finally {
    dmaResvIterEnd(cursor);
  }
}

function dmaBufPollDirection(dmabuf: DmaBuf, events: number, bit: number, dcb: DmaBufPollCb): number {
  if (!(events & bit)) return events;
  if (dcb.active) return events & ~bit;
  dcb.active = bit;
  // Paired with the fput in the callback.
  dmabuf.file.get();
  if (!dmaBufPollAddCb(dmabuf, bit === EPOLLOUT, dcb)) {
    dmaBufPollCb(dmabuf, dcb, null);
    return events;
  }
  return events & ~bit;
}

function dmaBufPoll(file: File, pt: PollTable | null): number {
  const dmabuf = file.privateData as DmaBuf | null;
  if (!dmabuf?.resv) return EPOLLERR;
  pollWait(file, dmabuf.poll, pt);
  // poll_requested_events()
  let events = (pt ? pt.key : ~0) & (EPOLLIN | EPOLLOUT);
  if (!events) return 0;
  events = dmaBufPollDirection(dmabuf, events, EPOLLOUT, dmabuf.cbOut);
  events = dmaBufPollDirection(dmabuf, events, EPOLLIN, dmabuf.cbIn);
  return events;
}

// ------------------------------------------------------------ the file: ioctls, fdinfo

/** dma_buf_set_name(): strndup_user of at most DMA_BUF_NAME_LEN bytes (NUL included). */
function dmaBufSetName(dmabuf: DmaBuf, ubuf: number): number {
  const len = strnlenUser(ubuf, DMA_BUF_NAME_LEN);
  if (len === 0) return -errno.EFAULT;
  if (len > DMA_BUF_NAME_LEN) return -errno.EINVAL;
  const s = strncpyFromUser(ubuf, len);
  if (typeof s === 'number') return s;
  dmabuf.name = bytesToCString(s.bytes);
  return 0;
}

function dmaBufExportSyncFileIoctl(dmabuf: DmaBuf, arg: number): number {
  const raw = memdupUser(arg, dmaBufExportSyncFile.size);
  if (!raw) return -errno.EFAULT;
  const data = dmaBufExportSyncFile.decode(raw);
  if (data.flags & ~DMA_BUF_SYNC_RW) return -errno.EINVAL;
  if ((data.flags & DMA_BUF_SYNC_RW) === 0) return -errno.EINVAL;
  const fd = getUnusedFdFlags(O_CLOEXEC_FLAG);
  if (fd < 0) return fd;
  const usage = dmaResvUsageRw((data.flags & DMA_BUF_SYNC_WRITE) !== 0);
  const out: { fence: DmaFence | null } = { fence: null };
  const ret = dmaResvGetSingleton(dmabuf.resv, usage, out);
  if (ret) {
    putUnusedFd(fd);
    return ret;
  }
  const fence = out.fence ?? dmaFenceGetStub();
  const syncFile = syncFileCreate(fence);
  dmaFencePut(fence);
  if (!syncFile) {
    putUnusedFd(fd);
    return -errno.ENOMEM;
  }
  if (copyToUser(arg, dmaBufExportSyncFile.encode({ flags: data.flags, fd }))) {
    fput(syncFile.file);
    putUnusedFd(fd);
    return -errno.EFAULT;
  }
  fdInstall(fd, syncFile.file);
  return 0;
}

async function dmaBufImportSyncFileIoctl(dmabuf: DmaBuf, arg: number): Promise<number> {
  const raw = memdupUser(arg, dmaBufImportSyncFile.size);
  if (!raw) return -errno.EFAULT;
  const data = dmaBufImportSyncFile.decode(raw);
  if (data.flags & ~DMA_BUF_SYNC_RW) return -errno.EINVAL;
  if ((data.flags & DMA_BUF_SYNC_RW) === 0) return -errno.EINVAL;
  const fence = syncFileGetFence(data.fd);
  if (!fence) return -errno.EINVAL;
  const usage = data.flags & DMA_BUF_SYNC_WRITE ? DMA_RESV_USAGE_WRITE : DMA_RESV_USAGE_READ;
  let ret = 0;
  const leaves = [...dmaFenceUnwrapForEach(fence)];
  if (leaves.length > 0) {
    await dmaResvLock(dmabuf.resv, null);
    ret = dmaResvReserveFences(dmabuf.resv, leaves.length);
    if (!ret) for (const f of dmaFenceUnwrapForEach(fence)) dmaResvAddFence(dmabuf.resv, f, usage);
    dmaResvUnlock(dmabuf.resv);
  }
  dmaFencePut(fence);
  return ret;
}

async function dmaBufSyncIoctl(dmabuf: DmaBuf, arg: number): Promise<number> {
  const raw = new Uint8Array(dmaBufSync.size);
  if (copyFromUser(raw, arg)) return -errno.EFAULT;
  const flags = dmaBufSync.decode(raw).flags;
  if (flags & ~BigInt(DMA_BUF_SYNC_VALID_FLAGS_MASK)) return -errno.EINVAL;
  let dir: DmaDataDirection;
  switch (Number(flags & BigInt(DMA_BUF_SYNC_RW))) {
    case DMA_BUF_SYNC_READ:
      dir = DMA_FROM_DEVICE;
      break;
    case DMA_BUF_SYNC_WRITE:
      dir = DMA_TO_DEVICE;
      break;
    case DMA_BUF_SYNC_RW:
      dir = DMA_BIDIRECTIONAL;
      break;
    default:
      return -errno.EINVAL;
  }
  if (flags & BigInt(DMA_BUF_SYNC_END)) return dmaBufEndCpuAccess(dmabuf, dir);
  return dmaBufBeginCpuAccess(dmabuf, dir);
}

async function dmaBufIoctl(file: File, cmd: number, arg: number): Promise<number> {
  const dmabuf = file.privateData as DmaBuf;
  let ret: number;
  switch (cmd) {
    case DMA_BUF_IOCTL_SYNC:
      ret = await dmaBufSyncIoctl(dmabuf, arg);
      break;
    case DMA_BUF_SET_NAME_A:
    case DMA_BUF_SET_NAME_B:
      ret = dmaBufSetName(dmabuf, arg);
      break;
    case DMA_BUF_IOCTL_EXPORT_SYNC_FILE:
      ret = dmaBufExportSyncFileIoctl(dmabuf, arg);
      break;
    case DMA_BUF_IOCTL_IMPORT_SYNC_FILE:
      ret = await dmaBufImportSyncFileIoctl(dmabuf, arg);
      break;
    default:
      return -errno.ENOTTY;
  }
  return ret === -errno.ERESTARTSYS ? -errno.EINTR : ret;
}

function dmaBufShowFdinfo(m: SeqFile, file: File): void {
  const dmabuf = file.privateData as DmaBuf;
  m.printf(`size:\t${dmabuf.size}\n`);
  m.printf(`count:\t${file.count}\n`);
  m.printf(`exp_name:\t${dmabuf.expName}\n`);
  if (dmabuf.name !== null) m.printf(`name:\t${dmabuf.name}\n`);
}

/** dmabuffs_dname(): `/dmabuf:<name>`. */
function dmaBufDname(file: File): string {
  const dmabuf = file.privateData as DmaBuf | null;
  return `/dmabuf:${dmabuf?.name?.slice(0, DMA_BUF_NAME_LEN - 1) ?? ''}`;
}

/** dma_buf_fops. */
export const dmaBufFops: FileOperations = {
  name: 'dmabuf',
  release: dmaBufFileRelease,
  mmap: dmaBufMmapInternal,
  llseek: dmaBufLlseek,
  poll: dmaBufPoll,
  ioctl: dmaBufIoctl,
  showFdinfo: dmaBufShowFdinfo,
  dname: dmaBufDname,
};

// ------------------------------------------------------------ debugfs

function pad8(s: string): string {
  return s.padEnd(8);
}

function zero8(n: number, radix = 10): string {
  return n.toString(radix).padStart(8, '0');
}

/**
 * dma_buf_debug_show(): the text of /sys/kernel/debug/dma_buf/bufinfo. Each buffer is
 * printed under its reservation lock (taken interruptibly: a signal aborts with -EINTR).
 */
export async function dmaBufDebugShow(m: SeqFile, k: Kernel = currentKernel()): Promise<number> {
  m.puts('\nDma-buf Objects:\n');
  m.printf(
    `${pad8('size')}\t${pad8('flags')}\t${pad8('mode')}\t${pad8('count')}\texp_name\t${pad8('ino')}\tname\n`,
  );
  let count = 0;
  let size = 0;
  for (const buf of [...state(k).list]) {
    if (buf.released) continue;
    const ret = await dmaResvLockInterruptible(buf.resv, null);
    if (ret) return ret;
    if (buf.released) {
      dmaResvUnlock(buf.resv);
      continue;
    }
    m.printf(
      `${zero8(buf.size)}\t${zero8(buf.file.fFlags >>> 0, 16)}\t${zero8(buf.file.fMode >>> 0, 16)}\t` +
        `${zero8(buf.file.count)}\t${buf.expName}\t${zero8(buf.ino)}\t${buf.name ?? '<none>'}\n`,
    );
    m.puts(dmaResvDescribe(buf.resv));
    m.puts('\tAttached Devices:\n');
    for (const a of buf.attachments) m.printf(`\t${a.dev.name}\n`);
    const attached = buf.attachments.length;
    dmaResvUnlock(buf.resv);
    m.printf(`Total ${attached} devices attached\n\n`);
    count++;
    size += buf.size;
  }
  m.printf(`\nTotal ${count} objects, ${size} bytes\n`);
  return 0;
}

/** dma_buf_init(): creates /sys/kernel/debug/dma_buf/bufinfo (an initcall). */
export function dmaBufInit(): void {
  registerDevice(
    DMA_BUF_BUFINFO_PATH,
    singleOpen((m, file) => dmaBufDebugShow(m, file.kernel), 'dma_buf_debug'),
    { mode: 0o444 },
  );
}
