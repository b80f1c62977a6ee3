/**
 * udmabuf: dma-bufs made of memfd pages (drivers/dma-buf/udmabuf.c,
 * include/uapi/linux/udmabuf.h, Linux 6.12).
 *
 * /dev/udmabuf (a misc device, mode 0600) has two ioctls. UDMABUF_CREATE is a one-item
 * UDMABUF_CREATE_LIST; a list first copies its 8-byte header (-EFAULT), refuses more than
 * `list_limit` (1024) items (-EINVAL), then copies the items (-EFAULT). Creation checks,
 * in order:
 * 1. every item: offset and size page aligned, and the running page total within
 *    `size_limit_mb` (64 MiB) — else -EINVAL; a total of 0 pages: -EINVAL;
 * 2. per item: the memfd must be an open fd (-EBADFD), a shmem or hugetlbfs file whose
 *    seals can be read (-EBADFD), sealed with F_SEAL_SHRINK and with neither F_SEAL_WRITE
 *    nor F_SEAL_FUTURE_WRITE (-EINVAL); its pages [offset, offset+size) are then pinned
 *    (memfd_pin_folios: -EINVAL for an empty range or one reaching past the end of the
 *    file; missing pages are allocated).
 * The buffer (exporter `udmabuf`, O_RDWR, size = pages × 4 KiB, fd close-on-exec iff
 * UDMABUF_FLAGS_CLOEXEC; other flag bits are ignored) is made of the memfd's own pages:
 * writes through either side are seen through the other, and the pages outlive the memfd.
 *
 * Ops: cache_sgt_mapping (the first map of each attachment is kept); map builds one
 * entry per page and DMA-maps it for the importer; mmap needs a shared mapping
 * (-EINVAL) and inserts pages on fault; begin_cpu_access maps a table for the misc
 * device on first use and syncs it for the CPU; end_cpu_access fails with -EINVAL if no
 * begin ever happened, else syncs for the device; vmap maps every page (reservation lock
 * held); release unpins the pages.
 *
 * Model notes: pages are 4 KiB `Page`s also for hugetlb memfds (a 2 MiB folio is 512 of
 * them); pinning takes a page reference (what F_SEAL_WRITE's pin check looks for). Linux
 * may migrate a page out of a movable zone when pinning it long term; the model has no
 * zones, so pages never move.
 */
import {
  UDMABUF_CREATE,
  UDMABUF_CREATE_LIST,
  UDMABUF_FLAGS_CLOEXEC,
  udmabufCreateItem,
  udmabufCreateList,
  udmabufCreate as udmabufCreateStruct,
} from '../../uapi/udmabuf.ts';
import { Device, dmaBitMask, dmaCoerceMaskAndCoherent } from '../device.ts';
import { type ErrPtr, errPtr, isErr } from '../err.ts';
import { errno } from '../errno.ts';
import { O_CLOEXEC, O_RDWR } from '../fcntl.ts';
import { fget } from '../fdtable.ts';
import { type File, type FileOperations, fput } from '../file.ts';
import { iosysMapSetVaddr } from '../iosys-map.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  type DmaDataDirection,
  dmaMapSgtable,
  dmaSyncSgtableForCpu,
  dmaSyncSgtableForDevice,
  dmaUnmapSgtable,
} from '../mm/dma-mapping.ts';
import { memfdGetSeals } from '../mm/memfd.ts';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_MAYSHARE, VM_PFNMAP, VM_SHARED } from '../mm/mmap.ts';
import { PAGE_SHIFT, PAGE_SIZE, type Page } from '../mm/page.ts';
import { SgTable, sgAllocTable, sgFreeTable, sgSetPage } from '../mm/scatterlist.ts';
import { F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK, F_SEAL_WRITE, isShmemFile, shmemInfo } from '../mm/shmem.ts';
import { copyFromUser, memdupUser } from '../uaccess.ts';
import { registerDevice } from '../vfs.ts';
import { type DmaBuf, type DmaBufOps, dmaBufExport, dmaBufFd, dmaBufPut } from './dma-buf.ts';
import { dmaResvAssertHeld } from './dma-resv.ts';

/** Module parameter list_limit: the most items of a UDMABUF_CREATE_LIST. */
export const UDMABUF_LIST_LIMIT = 1024;
/** Module parameter size_limit_mb: the largest udmabuf, MiB. */
export const UDMABUF_SIZE_LIMIT_MB = 64;
/** Seals a memfd must have. */
export const UDMABUF_SEALS_WANTED = F_SEAL_SHRINK;
/** Seals a memfd must not have. */
export const UDMABUF_SEALS_DENIED = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

/** A udmabuf (struct udmabuf). */
export class Udmabuf {
  /** The pinned pages, in buffer order (folios + offsets). */
  readonly pages: Page[] = [];
  /** The table begin_cpu_access made for the misc device, or null. */
  sg: SgTable | null = null;
  /** Its direction. */
  sgDir: DmaDataDirection = 0;

  /** Created by UDMABUF_CREATE(_LIST). */
  constructor(
    /** The misc device (its DMA context maps the CPU-access table). */
    readonly device: Device,
  ) {}

  /** Number of pages. */
  get pagecount(): number {
    return this.pages.length;
  }
}

/** One range of a create request. */
interface UdmabufCreateItem {
  memfd: number;
  offset: bigint;
  size: bigint;
}

function ubufOf(dmabuf: DmaBuf): Udmabuf {
  return dmabuf.priv as Udmabuf;
}

/** get_sg_table(): one entry per page, DMA-mapped for `dev`. */
function getSgTable(dev: Device, ubuf: Udmabuf, dir: DmaDataDirection): SgTable | ErrPtr {
  const sg = new SgTable();
  let ret = sgAllocTable(sg, ubuf.pagecount);
  if (ret < 0) return errPtr(ret);
  for (const [i, page] of ubuf.pages.entries()) sgSetPage(sg.sgl[i], page, PAGE_SIZE, 0);
  ret = dmaMapSgtable(dev, sg, dir, DMA_ATTR_SKIP_CPU_SYNC);
  if (ret < 0) {
    sgFreeTable(sg);
    return errPtr(ret);
  }
  return sg;
}

/** put_sg_table(). */
function putSgTable(dev: Device, sg: SgTable, dir: DmaDataDirection): void {
  dmaUnmapSgtable(dev, sg, dir, DMA_ATTR_SKIP_CPU_SYNC);
  sgFreeTable(sg);
}

const udmabufOps: DmaBufOps = {
  cacheSgtMapping: true,

  mapDmaBuf: (at, dir) => getSgTable(at.dev, ubufOf(at.dmabuf), dir),

  unmapDmaBuf: (at, sg, dir) => putSgTable(at.dev, sg, dir),

  release(dmabuf): void {
    const ubuf = ubufOf(dmabuf);
    if (ubuf.sg) putSgTable(ubuf.device, ubuf.sg, ubuf.sgDir);
    unpinAll(ubuf.pages);
  },

  mmap(dmabuf, vma): number {
    const ubuf = ubufOf(dmabuf);
    if ((vma.vmFlags & (VM_SHARED | VM_MAYSHARE)) === 0) return -errno.EINVAL;
    vma.vmPrivateData = ubuf;
    vma.vmOps = {
      fault: (vmf) => (vmf.pgoff >= ubuf.pagecount ? -errno.EFAULT : ubuf.pages[vmf.pgoff]),
    };
    vma.vmFlags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    return 0;
  },

  vmap(dmabuf, map): number {
    dmaResvAssertHeld(dmabuf.resv, 'vmap_udmabuf');
    iosysMapSetVaddr(map, [...ubufOf(dmabuf).pages]);
    return 0;
  },

  vunmap(dmabuf): void {
    dmaResvAssertHeld(dmabuf.resv, 'vunmap_udmabuf');
  },

  beginCpuAccess(dmabuf, dir): number {
    const ubuf = ubufOf(dmabuf);
    if (!ubuf.sg) {
      const sg = getSgTable(ubuf.device, ubuf, dir);
      if (isErr(sg)) return sg.err;
      ubuf.sg = sg;
      ubuf.sgDir = dir;
    }
    dmaSyncSgtableForCpu(ubuf.device, ubuf.sg, dir);
    return 0;
  },

  endCpuAccess(dmabuf, dir): number {
    const ubuf = ubufOf(dmabuf);
    if (!ubuf.sg) return -errno.EINVAL;
    dmaSyncSgtableForDevice(ubuf.device, ubuf.sg, dir);
    return 0;
  },
};

function unpinAll(pages: Page[]): void {
  for (const p of pages) p.put();
  pages.length = 0;
}

/** check_memfd_seals(). */
function checkMemfdSeals(memfd: File): number {
  if (!isShmemFile(memfd)) return -errno.EBADFD;
  const seals = memfdGetSeals(memfd);
  if (seals === -errno.EINVAL) return -errno.EBADFD;
  if ((seals & UDMABUF_SEALS_WANTED) !== UDMABUF_SEALS_WANTED || (seals & UDMABUF_SEALS_DENIED) !== 0) {
    return -errno.EINVAL;
  }
  return 0;
}

/**
 * memfd_pin_folios() + udmabuf_pin_folios(): pins the pages of [start, start+size) of
 * `memfd` onto `ubuf`. 0, -EINVAL (empty range, or past the end of the file), -ENOMEM.
 */
function udmabufPinFolios(ubuf: Udmabuf, memfd: File, start: bigint, size: bigint): number {
  const pgcnt = size >> BigInt(PAGE_SHIFT);
  const end = start + (pgcnt << BigInt(PAGE_SHIFT)) - 1n;
  if (start > end || pgcnt === 0n) return -errno.EINVAL;
  const info = shmemInfo(memfd.inode)!;
  if (end >= BigInt(memfd.inode.size)) return -errno.EINVAL;
  const npages = Math.ceil(memfd.inode.size / PAGE_SIZE);
  const first = Number(start >> BigInt(PAGE_SHIFT));
  for (let i = 0; i < Number(pgcnt); i++) {
    const page = info.getPage(first + i, npages);
    if (!page) return -errno.ENOMEM;
    ubuf.pages.push(page.get());
  }
  return 0;
}

/** udmabuf_create(): returns the new dma-buf fd or -errno. */
function udmabufCreate(device: Device, flags: number, list: readonly UdmabufCreateItem[]): number {
  const pglimit = BigInt((UDMABUF_SIZE_LIMIT_MB * 1024 * 1024) >> PAGE_SHIFT);
  const mask = BigInt(PAGE_SIZE - 1);
  let pgcnt = 0n;
  for (const item of list) {
    if (item.offset & mask) return -errno.EINVAL;
    if (item.size & mask) return -errno.EINVAL;
    pgcnt += item.size >> BigInt(PAGE_SHIFT);
    if (pgcnt > pglimit) return -errno.EINVAL;
  }
  if (!pgcnt) return -errno.EINVAL;
  const ubuf = new Udmabuf(device);
  for (const item of list) {
    const memfd = fget(item.memfd);
    if (!memfd) {
      unpinAll(ubuf.pages);
      return -errno.EBADFD;
    }
    let ret = checkMemfdSeals(memfd);
    if (!ret) ret = udmabufPinFolios(ubuf, memfd, item.offset, item.size);
    fput(memfd);
    if (ret) {
      unpinAll(ubuf.pages);
      return ret;
    }
  }
  const dmabuf = dmaBufExport({
    expName: 'udmabuf',
    ops: udmabufOps,
    size: ubuf.pagecount * PAGE_SIZE,
    flags: O_RDWR,
    priv: ubuf,
  });
  if (isErr(dmabuf)) {
    unpinAll(ubuf.pages);
    return dmabuf.err;
  }
  // From here the dma-buf owns the udmabuf: a failed fd is cleaned up by its release.
  const ret = dmaBufFd(dmabuf, flags & UDMABUF_FLAGS_CLOEXEC ? O_CLOEXEC : 0);
  if (ret < 0) dmaBufPut(dmabuf);
  return ret;
}

function udmabufIoctlCreate(file: File, arg: number): number {
  const raw = memdupUser(arg, udmabufCreateStruct.size);
  if (!raw) return -errno.EFAULT;
  const c = udmabufCreateStruct.decode(raw);
  return udmabufCreate(file.privateData as Device, c.flags, [
    { memfd: c.memfd, offset: c.offset, size: c.size },
  ]);
}

function udmabufIoctlCreateList(file: File, arg: number): number {
  const raw = new Uint8Array(udmabufCreateList.size);
  if (copyFromUser(raw, arg)) return -errno.EFAULT;
  const head = udmabufCreateList.decode(raw);
  if (head.count > UDMABUF_LIST_LIMIT) return -errno.EINVAL;
  const items = memdupUser(arg + udmabufCreateList.size, head.count * udmabufCreateItem.size);
  if (!items) return -errno.EFAULT;
  const list: UdmabufCreateItem[] = [];
  for (let i = 0; i < head.count; i++) {
    const it = udmabufCreateItem.decode(items, i * udmabufCreateItem.size);
    list.push({ memfd: it.memfd, offset: it.offset, size: it.size });
  }
  return udmabufCreate(file.privateData as Device, head.flags, list);
}

function udmabufIoctl(file: File, cmd: number, arg: number): number {
  switch (cmd) {
    case UDMABUF_CREATE:
      return udmabufIoctlCreate(file, arg);
    case UDMABUF_CREATE_LIST:
      return udmabufIoctlCreateList(file, arg);
    default:
      return -errno.ENOTTY;
  }
}

const MISC = Symbol('udmabuf_misc');

/** The misc device behind /dev/udmabuf (udmabuf_misc.this_device). */
export function udmabufDevice(k: Kernel = currentKernel()): Device {
  let dev = k.singletons.get(MISC) as Device | undefined;
  if (!dev) {
    dev = new Device('udmabuf', { driverString: 'misc' });
    dmaCoerceMaskAndCoherent(dev, dmaBitMask(64));
    k.singletons.set(MISC, dev);
  }
  return dev;
}

/** udmabuf_fops (misc_open sets the private data to the misc device). */
export const udmabufFops: FileOperations = {
  name: 'udmabuf',
  open(inode, file): number {
    file.privateData = inode.priv;
    return 0;
  },
  ioctl: udmabufIoctl,
};

/** udmabuf_dev_init(): registers /dev/udmabuf (an initcall). */
export function udmabufDevInit(): void {
  registerDevice('/dev/udmabuf', udmabufFops, { mode: 0o600, priv: udmabufDevice() });
}
