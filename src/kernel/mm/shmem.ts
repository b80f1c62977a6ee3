/**
 * shmem/tmpfs files: page-cache backed memory files (mm/shmem.c, fs/hugetlbfs/inode.c
 * for MFD_HUGETLB files).
 *
 * A shmem inode owns its pages (the page cache, struct address_space) and its seals.
 * Pages are allocated on first use in chunks of up to 2 MiB (512 pages, one huge page)
 * that share one buffer, so a mapping of a chunk is one contiguous range of bytes;
 * every user — read/write, a shared mapping, udmabuf — sees the same bytes.
 *
 * Implemented: read, write (O_APPEND, seals, growth), lseek, mmap (shared: the file's
 * pages; private: copied on write), truncate (ftruncate: seals, zeroing the tail,
 * unmapping pages beyond the new end so later accesses fault), and the bookkeeping
 * seals need: the count of shared writable mappings (i_mmap_writable) and pinned
 * pages (memfd_wait_for_pins). hugetlb files require sizes in whole huge pages.
 */
import { errno } from '../errno.ts';
import {
  allocFilePseudo,
  type File,
  type FileOperations,
  type FilePos,
  genericFileLlseekSize,
  Inode,
  MAX_LFS_FILESIZE,
  S_IFREG,
  SuperBlock,
} from '../file.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import { copyFromUser, copyToUser } from '../uaccess.ts';
import {
  HPAGE_SIZE,
  VM_MAYWRITE,
  VM_SHARED,
  VM_WRITE,
  type VmAreaStruct,
  type VmOperations,
} from './mmap.ts';
import { PAGE_SIZE, Page, pageAlign } from './page.ts';

/** Seal: no more seals may be added. */
export const F_SEAL_SEAL = 0x0001;
/** Seal: the file may not shrink. */
export const F_SEAL_SHRINK = 0x0002;
/** Seal: the file may not grow. */
export const F_SEAL_GROW = 0x0004;
/** Seal: the contents may not be written. */
export const F_SEAL_WRITE = 0x0008;
/** Seal: no new writers (existing writable mappings stay). */
export const F_SEAL_FUTURE_WRITE = 0x0010;
/** Seal: the exec bits may not change. */
export const F_SEAL_EXEC = 0x0020;

/** Pages per allocation chunk (one 2 MiB huge page). */
const CHUNK_PAGES = 512;

/** The shmem part of an inode (struct shmem_inode_info). */
export class ShmemInodeInfo {
  /** F_SEAL_* bits. A fresh shmem inode is sealed against sealing. */
  seals = F_SEAL_SEAL;
  /** The page cache: page index to page. */
  readonly pages = new Map<number, Page>();
  /** VMAs mapping this file (i_mmap). */
  readonly mappings = new Set<VmAreaStruct>();
  /** A hugetlbfs file (MFD_HUGETLB). */
  hugetlb = false;
  /** Huge page size for hugetlb files. */
  hpageSize = HPAGE_SIZE;
  /** Set once F_SEAL_WRITE was added: new shared writable mappings are refused (i_mmap_writable < 0). */
  denyWritable = false;
  private readonly chunks = new Map<number, Uint8Array>();

  /** The page at `index`, allocating it (zeroed) if needed; null if the host has no memory. */
  getPage(index: number, npagesHint: number): Page | null {
    let p = this.pages.get(index);
    if (p) return p;
    const c = Math.floor(index / CHUNK_PAGES);
    let buf = this.chunks.get(c);
    const inChunk = index - c * CHUNK_PAGES;
    if (!buf) {
      const want = Math.max(1, Math.min(CHUNK_PAGES, npagesHint - c * CHUNK_PAGES));
      try {
        buf = new Uint8Array(want * PAGE_SIZE);
      } catch {
        return null;
      }
      this.chunks.set(c, buf);
    }
    if ((inChunk + 1) * PAGE_SIZE <= buf.length) {
      p = new Page(buf.subarray(inChunk * PAGE_SIZE, (inChunk + 1) * PAGE_SIZE));
    } else {
      try {
        p = new Page(new Uint8Array(PAGE_SIZE));
      } catch {
        return null;
      }
    }
    this.pages.set(index, p);
    return p;
  }

  /** True if some cached page has references beyond the cache and its mappings (pins). */
  hasPinnedPages(): boolean {
    for (const p of this.pages.values()) if (p.refcount > 0) return true;
    return false;
  }
}

const SHM = Symbol('shm_mnt');

/** The internal tmpfs mount that memfd and anonymous shared memory live on (shm_mnt). */
export function shmSuperBlock(k: Kernel = currentKernel()): SuperBlock {
  let sb = k.singletons.get(SHM) as SuperBlock | undefined;
  if (!sb) {
    sb = new SuperBlock('tmpfs', 3, '00:01', PAGE_SIZE, 1);
    k.singletons.set(SHM, sb);
  }
  return sb;
}

/** The shmem info of an inode, or null if it is not a shmem/hugetlbfs inode. */
export function shmemInfo(inode: Inode): ShmemInodeInfo | null {
  return inode.priv instanceof ShmemInodeInfo ? inode.priv : null;
}

/** shmem_file(): true for files whose pages live in a shmem page cache. */
export function isShmemFile(file: File): boolean {
  return shmemInfo(file.inode) !== null;
}

/** A new shmem inode on `sb` (shmem_get_inode), mode regular 0777 & ~umask handled by callers. */
export function shmemNewInode(sb: SuperBlock, mode = S_IFREG | 0o777): Inode {
  const inode = new Inode(sb, sb.nextIno++, mode);
  inode.priv = new ShmemInodeInfo();
  inode.fop = shmemFileOperations;
  return inode;
}

/**
 * shmem_file_setup() / hugetlb_file_setup(): an unlinked shmem file of `size` bytes
 * named `name`, opened O_RDWR.
 */
export function shmemFileSetup(name: string, size: number, hugetlb = false): File {
  const sb = shmSuperBlock();
  const inode = shmemNewInode(sb);
  const info = shmemInfo(inode)!;
  info.hugetlb = hugetlb;
  inode.size = size;
  inode.nlink = 0; // unlinked from the start
  return allocFilePseudo(inode, `/${name} (deleted)`, 0o2, shmemFileOperations);
}

function npages(inode: Inode): number {
  return Math.ceil(inode.size / PAGE_SIZE);
}

/**
 * shmem_setattr() for ATTR_SIZE: resizes the file. Seals give -EPERM; hugetlb files
 * need a whole number of huge pages (-EINVAL). Shrinking zeroes the tail of the last
 * page, drops the pages beyond it and unmaps them from every mapping.
 */
export function shmemSetSize(inode: Inode, newSize: number): number {
  const info = shmemInfo(inode);
  if (!info) return -errno.EINVAL;
  const old = inode.size;
  if (info.hugetlb && newSize % info.hpageSize !== 0) return -errno.EINVAL;
  if ((newSize < old && info.seals & F_SEAL_SHRINK) || (newSize > old && info.seals & F_SEAL_GROW)) {
    return -errno.EPERM;
  }
  if (newSize > MAX_LFS_FILESIZE) return -errno.EFBIG;
  inode.size = newSize;
  if (newSize < old) {
    const keep = Math.ceil(newSize / PAGE_SIZE);
    const partial = newSize % PAGE_SIZE;
    if (partial) {
      const p = info.pages.get(keep - 1);
      if (p) p.data.fill(0, partial);
    }
    for (const idx of [...info.pages.keys()]) if (idx >= keep) info.pages.delete(idx);
    for (const vma of info.mappings) {
      for (const [i, p] of [...vma.ptes]) {
        if (vma.vmPgoff + i >= keep && vma.vmFlags & VM_SHARED) {
          p.mapcount--;
          vma.ptes.delete(i);
        }
      }
    }
  }
  return 0;
}

function shmemRead(file: File, buf: number, count: number, ppos: FilePos): number {
  const inode = file.inode;
  const info = shmemInfo(inode)!;
  let pos = ppos.pos;
  if (pos >= inode.size || count === 0) return 0;
  const end = Math.min(inode.size, pos + count);
  let done = 0;
  while (pos < end) {
    const idx = Math.floor(pos / PAGE_SIZE);
    const off = pos % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, end - pos);
    const p = info.pages.get(idx);
    const chunk = p ? p.data.subarray(off, off + n) : new Uint8Array(n);
    const left = copyToUser(buf + done, chunk);
    done += n - left;
    pos += n - left;
    if (left) break;
  }
  ppos.pos = pos;
  return done === 0 && count > 0 ? -errno.EFAULT : done;
}

function shmemWrite(file: File, buf: number, count: number, ppos: FilePos): number {
  const inode = file.inode;
  const info = shmemInfo(inode)!;
  if (info.hugetlb) return -errno.EINVAL;
  let pos = file.fFlags & 0o2000 ? inode.size : ppos.pos;
  if (count === 0) return 0;
  if (info.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return -errno.EPERM;
  if (info.seals & F_SEAL_GROW && pos + count > inode.size) {
    if (pos >= inode.size) return -errno.EPERM;
    count = inode.size - pos;
  }
  if (pos + count > MAX_LFS_FILESIZE) return -errno.EFBIG;
  const end = pos + count;
  let done = 0;
  const want = Math.ceil(end / PAGE_SIZE);
  while (pos < end) {
    const idx = Math.floor(pos / PAGE_SIZE);
    const off = pos % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, end - pos);
    const tmp = new Uint8Array(n);
    const left = copyFromUser(tmp, buf + done);
    const got = n - left;
    if (got > 0) {
      const p = info.getPage(idx, want);
      if (!p) break;
      p.data.set(tmp.subarray(0, got), off);
      done += got;
      pos += got;
      if (pos > inode.size) inode.size = pos;
    }
    if (left) break;
  }
  ppos.pos = pos;
  if (done === 0) return -errno.EFAULT;
  return done;
}

function shmemLlseek(file: File, offset: number, whence: number): number {
  return genericFileLlseekSize(file, offset, whence, MAX_LFS_FILESIZE, file.inode.size);
}

function shmemVmOps(inode: Inode): VmOperations {
  const info = shmemInfo(inode)!;
  const sharedMayWrite = (v: VmAreaStruct) =>
    (v.vmFlags & (VM_SHARED | VM_MAYWRITE)) === (VM_SHARED | VM_MAYWRITE);
  return {
    open(vma) {
      info.mappings.add(vma);
      if (sharedMayWrite(vma)) inode.mmapWritable++;
    },
    close(vma) {
      info.mappings.delete(vma);
      if (sharedMayWrite(vma)) inode.mmapWritable--;
    },
    fault(vmf) {
      if (vmf.pgoff >= npages(inode)) return -errno.EFAULT; // VM_FAULT_SIGBUS beyond EOF
      return info.getPage(vmf.pgoff, npages(inode)) ?? -errno.ENOMEM;
    },
  };
}

function shmemMmap(file: File, vma: VmAreaStruct): number {
  const inode = file.inode;
  const info = shmemInfo(inode)!;
  // memfd_check_seals_mmap(): shared writable mappings of a write-sealed file are refused;
  // shared read-only ones may never become writable.
  if (info.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) && vma.vmFlags & VM_SHARED) {
    if (vma.vmFlags & VM_WRITE) return -errno.EPERM;
    vma.vmFlags &= ~VM_MAYWRITE;
  }
  if (
    info.hugetlb &&
    (vma.length % info.hpageSize !== 0 || (vma.vmPgoff * PAGE_SIZE) % info.hpageSize !== 0)
  ) {
    return -errno.EINVAL;
  }
  // mapping_map_writable() fails once F_SEAL_WRITE denied writers.
  if ((vma.vmFlags & (VM_SHARED | VM_MAYWRITE)) === (VM_SHARED | VM_MAYWRITE) && info.denyWritable) {
    return -errno.EPERM;
  }
  vma.vmOps = shmemVmOps(inode);
  vma.vmOps.open!(vma);
  return 0;
}

/** shmem_file_operations (and hugetlbfs_file_operations, told apart by the inode). */
export const shmemFileOperations: FileOperations = {
  name: 'shmem',
  read: shmemRead,
  write: shmemWrite,
  llseek: shmemLlseek,
  mmap: shmemMmap,
};

/** Rounds a length up for mapping a hugetlb file (ksys_mmap_pgoff aligns to the huge page size). */
export function shmemMmapLength(file: File, len: number): number {
  const info = shmemInfo(file.inode);
  if (info?.hugetlb) return Math.ceil(len / info.hpageSize) * info.hpageSize;
  return pageAlign(len);
}
