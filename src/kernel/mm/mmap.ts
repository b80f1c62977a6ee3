/**
 * A process address space: mm_struct and its VMAs (mm/mmap.c, mm/vma.c, mm/memory.c,
 * mm/mprotect.c, arch/x86/kernel/sys_x86_64.c, include/linux/mm.h,
 * include/uapi/asm-generic/mman-common.h).
 *
 * Mappings are page granular and hold real bytes: a VMA maps a range of user virtual
 * addresses to pages, found on first access through its `fault` handler (anonymous
 * memory, a shmem file's page cache, or whatever a driver's `mmap` set up). A file
 * mapping holds a reference on its file for as long as it exists; removing the VMA
 * calls the driver's `close` and drops that reference, as remove_vma() does.
 *
 * The layout is x86_64 with 4-level paging and no ASLR: user addresses below
 * TASK_SIZE (0x7ffffffff000), mappings placed top-down from 0x7f0000000000, a hint
 * used when the range is free. Processes run as root, so MAP_FIXED below
 * mmap_min_addr is allowed (CAP_SYS_RAWIO).
 *
 * MAP_PRIVATE file mappings that can be written get a private copy of each page when
 * it is first touched (the model cannot see individual CPU stores, so copy-on-write
 * is resolved at fault time); read-only private mappings share the file's pages.
 */
import { errno } from '../errno.ts';
import { fget } from '../fdtable.ts';
import type { File } from '../file.ts';
import { fput } from '../file.ts';
import { PAGE_SHIFT, PAGE_SIZE, Page, pageAlign, pagesContiguous } from './page.ts';
import { shmemInfo } from './shmem.ts';

// ------------------------------------------------------------ uapi constants

/** Page cannot be accessed. */
export const PROT_NONE = 0x0;
/** Page can be read. */
export const PROT_READ = 0x1;
/** Page can be written. */
export const PROT_WRITE = 0x2;
/** Page can be executed. */
export const PROT_EXEC = 0x4;
/** Page may be used for atomic ops (ignored). */
export const PROT_SEM = 0x8;
/** mprotect: extend change to the start of a growsdown VMA. */
export const PROT_GROWSDOWN = 0x01000000;
/** mprotect: extend change to the end of a growsup VMA. */
export const PROT_GROWSUP = 0x02000000;

/** Share changes. */
export const MAP_SHARED = 0x01;
/** Changes are private. */
export const MAP_PRIVATE = 0x02;
/** Share changes and validate extension flags. */
export const MAP_SHARED_VALIDATE = 0x03;
/** Droppable anonymous memory (6.11+). */
export const MAP_DROPPABLE = 0x08;
/** Mask for the mapping type. */
export const MAP_TYPE = 0x0f;
/** Interpret addr exactly. */
export const MAP_FIXED = 0x10;
/** Not backed by a file. */
export const MAP_ANONYMOUS = 0x20;
/** x86: map in the first 2 GiB. */
export const MAP_32BIT = 0x40;
/** Stack-like segment. */
export const MAP_GROWSDOWN = 0x0100;
/** Ignored. */
export const MAP_DENYWRITE = 0x0800;
/** Ignored. */
export const MAP_EXECUTABLE = 0x1000;
/** Lock the mapping. */
export const MAP_LOCKED = 0x2000;
/** Do not reserve swap space. */
export const MAP_NORESERVE = 0x4000;
/** Prefault the page tables. */
export const MAP_POPULATE = 0x8000;
/** Do not block on IO. */
export const MAP_NONBLOCK = 0x10000;
/** Address suitable for a stack. */
export const MAP_STACK = 0x20000;
/** Create a huge page mapping. */
export const MAP_HUGETLB = 0x40000;
/** Synchronous page faults (DAX). */
export const MAP_SYNC = 0x80000;
/** MAP_FIXED that does not replace existing mappings. */
export const MAP_FIXED_NOREPLACE = 0x100000;
/** Anonymous memory may be uninitialised (nommu only). */
export const MAP_UNINITIALIZED = 0x4000000;
/** Shift of the huge page size encoding in the flags. */
export const MAP_HUGE_SHIFT = 26;
/** Mask of the huge page size encoding. */
export const MAP_HUGE_MASK = 0x3f;

/** Flags accepted with MAP_SHARED (everything else is ignored there, refused with MAP_SHARED_VALIDATE). */
export const LEGACY_MAP_MASK =
  MAP_SHARED |
  MAP_PRIVATE |
  MAP_FIXED |
  MAP_ANONYMOUS |
  MAP_DENYWRITE |
  MAP_EXECUTABLE |
  MAP_UNINITIALIZED |
  MAP_GROWSDOWN |
  MAP_LOCKED |
  MAP_NORESERVE |
  MAP_POPULATE |
  MAP_NONBLOCK |
  MAP_STACK |
  MAP_HUGETLB;

/** VMA may be read. */
export const VM_READ = 0x1;
/** VMA may be written. */
export const VM_WRITE = 0x2;
/** VMA may be executed. */
export const VM_EXEC = 0x4;
/** Shared mapping. */
export const VM_SHARED = 0x8;
/** mprotect may add VM_READ. */
export const VM_MAYREAD = 0x10;
/** mprotect may add VM_WRITE. */
export const VM_MAYWRITE = 0x20;
/** mprotect may add VM_EXEC. */
export const VM_MAYEXEC = 0x40;
/** Mapped with MAP_SHARED. */
export const VM_MAYSHARE = 0x80;
/** Grows down. */
export const VM_GROWSDOWN = 0x100;
/** Raw PFN mapping (no struct page behind it). */
export const VM_PFNMAP = 0x400;
/** Locked. */
export const VM_LOCKED = 0x2000;
/** Memory-mapped I/O. */
export const VM_IO = 0x4000;
/** Not copied on fork. */
export const VM_DONTCOPY = 0x20000;
/** Cannot be expanded with mremap. */
export const VM_DONTEXPAND = 0x40000;
/** No swap accounting. */
export const VM_NORESERVE = 0x200000;
/** Huge TLB pages. */
export const VM_HUGETLB = 0x400000;
/** Not included in core dumps. */
export const VM_DONTDUMP = 0x4000000;
/** Mix of struct-page and PFN mappings. */
export const VM_MIXEDMAP = 0x10000000;

/** Highest user address + 1 on x86_64 with 4-level paging (TASK_SIZE_MAX). */
export const TASK_SIZE = 0x7ffffffff000;
/** Lowest address a non-fixed mapping may use (vm.mmap_min_addr default). */
export const MMAP_MIN_ADDR = 65536;
/** Where top-down placement starts (mm->mmap_base; fixed, no ASLR). */
export const MMAP_BASE = 0x7f0000000000;
/** vm.max_map_count default. */
export const MAX_MAP_COUNT = 65530;
/** Default huge page size (x86_64, 2 MiB). */
export const HPAGE_SIZE = 2 * 1024 * 1024;

// ------------------------------------------------------------ VMAs

/** A page fault handed to a VMA's `fault` handler (struct vm_fault). */
export interface VmFault {
  /** The faulting VMA. */
  readonly vma: VmAreaStruct;
  /** The page offset in the mapped object (vma.vmPgoff + page index in the VMA). */
  readonly pgoff: number;
  /** The faulting user address, page aligned. */
  readonly address: number;
  /** A write access. */
  readonly write: boolean;
}

/**
 * What a mapping's owner provides (struct vm_operations_struct). All members are
 * optional and run in the faulting or unmapping task with the mmap lock held.
 */
export interface VmOperations {
  /** Called when a VMA is duplicated (split by munmap/mprotect); the copy holds its own file reference. */
  open?(vma: VmAreaStruct): void;
  /** Called when a VMA is removed (munmap, exit), before its file reference is dropped. */
  close?(vma: VmAreaStruct): void;
  /**
   * Resolves a page the first time it is touched: return the page, or a negative errno
   * (the access then faults: SIGBUS for a program, -EFAULT for the kernel's uaccess).
   */
  fault?(vmf: VmFault): Page | number;
  /** May refuse to split the VMA at `addr` with a negative errno. */
  maySplit?(vma: VmAreaStruct, addr: number): number;
  /** The name /proc/pid/maps shows, or null. */
  name?(vma: VmAreaStruct): string | null;
}

/** Anonymous memory shared by the pieces of one anonymous mapping (the model's anon_vma + pages). */
class AnonObject {
  private bytes: Uint8Array | null = null;
  private readonly pages = new Map<number, Page>();

  constructor(readonly npages: number) {}

  page(index: number): Page | null {
    let p = this.pages.get(index);
    if (p) return p;
    if (this.bytes === null) {
      try {
        this.bytes = new Uint8Array(this.npages * PAGE_SIZE);
      } catch {
        return null;
      }
    }
    p = new Page(this.bytes.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE));
    this.pages.set(index, p);
    return p;
  }
}

/** A virtual memory area (struct vm_area_struct): [vmStart, vmEnd) with one set of permissions. */
export class VmAreaStruct {
  /** VM_* flags. */
  vmFlags: number;
  /** Offset of vmStart in the mapped object, in pages. */
  vmPgoff: number;
  /** The mapped file (holds a reference), or null for anonymous memory. */
  vmFile: File | null;
  /** The owner's operations. */
  vmOps: VmOperations | null = null;
  /** The owner's private data. */
  vmPrivateData: unknown = null;
  /** Pages mapped so far, by page index from vmStart (the page table). */
  ptes = new Map<number, Page>();
  /** @internal anonymous backing. */
  anon: AnonObject | null = null;
  /** @internal page index of vmStart in `anon`. */
  anonOffset = 0;

  /** Use `MmStruct#mmap`. */
  constructor(
    /** The address space. */
    readonly mm: MmStruct,
    /** First address. */
    public vmStart: number,
    /** One past the last address. */
    public vmEnd: number,
    vmFlags: number,
    vmPgoff: number,
    vmFile: File | null,
  ) {
    this.vmFlags = vmFlags;
    this.vmPgoff = vmPgoff;
    this.vmFile = vmFile;
  }

  /** Length in bytes. */
  get length(): number {
    return this.vmEnd - this.vmStart;
  }

  /** Number of pages. */
  get npages(): number {
    return this.length / PAGE_SIZE;
  }

  /**
   * vm_insert_page() / remap_pfn_range() for one page: maps `page` at `addr` now, so
   * no fault handler is needed for it. Returns 0 or -EINVAL (address outside the VMA).
   */
  insertPage(addr: number, page: Page): number {
    if (addr < this.vmStart || addr >= this.vmEnd || addr % PAGE_SIZE !== 0) return -errno.EINVAL;
    const idx = (addr - this.vmStart) / PAGE_SIZE;
    const old = this.ptes.get(idx);
    if (old) old.mapcount--;
    page.mapcount++;
    this.ptes.set(idx, page);
    return 0;
  }

  /** vma_set_anonymous(): backs the VMA with fresh zeroed anonymous memory (as /dev/zero does). */
  setAnonymous(): void {
    this.anon = new AnonObject(this.npages);
    this.anonOffset = 0;
    this.vmOps = null;
  }

  /** Removes every page-table entry (zap_vma_ptes); pages are found again through `fault`. */
  zapPtes(): void {
    for (const p of this.ptes.values()) p.mapcount--;
    this.ptes.clear();
  }

  /** The name /proc/pid/maps would show. */
  get name(): string {
    const n = this.vmOps?.name?.(this);
    if (n) return n;
    if (this.vmFile) return this.vmFile.dPath();
    return '';
  }
}

/** Result of a translation: a page, or a negative errno. */
type Resolved = Page | number;

/** A process's address space (struct mm_struct). */
export class MmStruct {
  /** The VMAs, sorted by address. */
  readonly vmas: VmAreaStruct[] = [];
  /** Threads using this address space (mm_users). */
  users = 1;

  /** Number of VMAs (map_count). */
  get mapCount(): number {
    return this.vmas.length;
  }

  /** find_vma_intersection(): the first VMA overlapping [start, end), or null. */
  findIntersection(start: number, end: number): VmAreaStruct | null {
    for (const v of this.vmas) {
      if (v.vmStart >= end) break;
      if (v.vmEnd > start) return v;
    }
    return null;
  }

  /** The VMA containing `addr`, or null. */
  findVma(addr: number): VmAreaStruct | null {
    const vs = this.vmas;
    let lo = 0;
    let hi = vs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = vs[mid];
      if (addr < v.vmStart) hi = mid - 1;
      else if (addr >= v.vmEnd) lo = mid + 1;
      else return v;
    }
    return null;
  }

  /** get_unmapped_area() for a non-fixed mapping: the hint if free, else top-down from mmap_base. */
  getUnmappedArea(hint: number, len: number): number {
    if (len > TASK_SIZE) return -errno.ENOMEM;
    if (hint) {
      hint = pageAlign(hint);
      if (TASK_SIZE - len >= hint && hint >= MMAP_MIN_ADDR && !this.findIntersection(hint, hint + len)) {
        return hint;
      }
    }
    // Top-down: the highest gap below MMAP_BASE that fits.
    let high = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= 0; i--) {
      const v = this.vmas[i];
      if (v.vmStart >= high) continue;
      if (v.vmEnd < high && high - v.vmEnd >= len) return high - len;
      high = v.vmStart;
    }
    if (high - len >= MMAP_MIN_ADDR) return high - len;
    // Bottom-up fallback above mmap_base.
    let low = MMAP_BASE;
    for (const v of this.vmas) {
      if (v.vmEnd <= low) continue;
      if (v.vmStart - low >= len) return low;
      low = Math.max(low, v.vmEnd);
    }
    if (TASK_SIZE - low >= len) return low;
    return -errno.ENOMEM;
  }

  /** @internal Adds a VMA in address order. */
  insert(vma: VmAreaStruct): void {
    const vs = this.vmas;
    let i = vs.length;
    while (i > 0 && vs[i - 1].vmStart > vma.vmStart) i--;
    vs.splice(i, 0, vma);
  }

  /**
   * Creates a mapping (the core of do_mmap/mmap_region, after the syscall's checks).
   * For a file, `setup` is the file's mmap operation; it may refuse with a negative
   * errno, in which case nothing stays mapped. Returns the address or -errno.
   */
  async mapRegion(
    addr: number,
    len: number,
    vmFlags: number,
    pgoff: number,
    file: File | null,
    setup: ((file: File, vma: VmAreaStruct) => number | Promise<number>) | null,
    fixed: boolean,
  ): Promise<number> {
    if (fixed) {
      const r = this.unmap(addr, len);
      if (r < 0) return r;
    }
    if (this.mapCount + 1 > MAX_MAP_COUNT) return -errno.ENOMEM;
    const vma = new VmAreaStruct(this, addr, addr + len, vmFlags, pgoff, file ? file.get() : null);
    if (file && setup) {
      let ret: number;
      try {
        ret = await setup(file, vma);
      } catch (e) {
        if (vma.vmFile) fput(vma.vmFile);
        throw e;
      }
      if (ret < 0) {
        vma.zapPtes();
        if (vma.vmFile) fput(vma.vmFile);
        return ret;
      }
    } else if (!file) {
      vma.anon = new AnonObject(len / PAGE_SIZE);
    }
    // A driver may have grown the range by pre-mapping pages; it may not move it.
    this.insert(vma);
    return addr;
  }

  /** Splits `vma` at `addr` (inside it); returns the new upper part or a negative errno. */
  private split(vma: VmAreaStruct, addr: number): VmAreaStruct | number {
    if (vma.vmOps?.maySplit) {
      const r = vma.vmOps.maySplit(vma, addr);
      if (r < 0) return r;
    }
    const upper = new VmAreaStruct(
      this,
      addr,
      vma.vmEnd,
      vma.vmFlags,
      vma.vmPgoff + (addr - vma.vmStart) / PAGE_SIZE,
      vma.vmFile ? vma.vmFile.get() : null,
    );
    upper.vmOps = vma.vmOps;
    upper.vmPrivateData = vma.vmPrivateData;
    upper.anon = vma.anon;
    const cut = (addr - vma.vmStart) / PAGE_SIZE;
    upper.anonOffset = vma.anonOffset + cut;
    const lowPtes = new Map<number, Page>();
    for (const [i, p] of vma.ptes) {
      if (i < cut) lowPtes.set(i, p);
      else upper.ptes.set(i - cut, p);
    }
    vma.ptes = lowPtes;
    vma.vmEnd = addr;
    upper.vmOps?.open?.(upper);
    this.insert(upper);
    return upper;
  }

  /** Removes one VMA: zap its pages, then close and drop the file (remove_vma). */
  private remove(vma: VmAreaStruct): void {
    const i = this.vmas.indexOf(vma);
    if (i >= 0) this.vmas.splice(i, 1);
    vma.zapPtes();
    vma.vmOps?.close?.(vma);
    const f = vma.vmFile;
    vma.vmFile = null;
    if (f) fput(f);
  }

  /** do_vmi_munmap() after argument checks: unmaps [start, start+len). Returns 0 or -errno. */
  unmap(start: number, len: number): number {
    const end = start + len;
    const first = this.findIntersection(start, end);
    if (!first) return 0;
    // Split at the boundaries first; nothing is removed if a split is refused.
    if (first.vmStart < start) {
      const r = this.split(first, start);
      if (typeof r === 'number') return r;
    }
    const last = this.findVma(end - 1);
    if (last && last.vmEnd > end && last.vmStart < end) {
      const r = this.split(last, end);
      if (typeof r === 'number') return r;
    }
    const victims = this.vmas.filter((v) => v.vmStart >= start && v.vmEnd <= end);
    for (const v of victims) this.remove(v);
    return 0;
  }

  /**
   * mprotect(): changes permissions of [start, start+len). Checks as mm/mprotect.c:
   * the range must be fully mapped (-ENOMEM), each VMA must allow the new rights
   * (-EACCES).
   */
  mprotect(start: number, len: number, prot: number): number {
    if (start % PAGE_SIZE !== 0) return -errno.EINVAL;
    if (!len) return 0;
    len = pageAlign(len);
    const end = start + len;
    if (end <= start || end > TASK_SIZE) return -errno.ENOMEM;
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP))
      return -errno.EINVAL;
    if ((prot & (PROT_GROWSDOWN | PROT_GROWSUP)) === (PROT_GROWSDOWN | PROT_GROWSUP)) return -errno.EINVAL;
    // Fully mapped?
    let cursor = start;
    const touched: VmAreaStruct[] = [];
    for (const v of this.vmas) {
      if (v.vmEnd <= cursor) continue;
      if (v.vmStart >= end) break;
      if (v.vmStart > cursor) return -errno.ENOMEM;
      touched.push(v);
      cursor = v.vmEnd;
    }
    if (cursor < end) return -errno.ENOMEM;
    const newBits = protToVmFlags(prot);
    for (const v of touched) {
      if (newBits & ~(v.vmFlags >> 4) & (VM_READ | VM_WRITE | VM_EXEC)) return -errno.EACCES;
    }
    for (const v0 of touched) {
      let v = v0;
      if (v.vmStart < start) {
        const r = this.split(v, start);
        if (typeof r === 'number') return r;
        v = r;
      }
      if (v.vmEnd > end) {
        const r = this.split(v, end);
        if (typeof r === 'number') return r;
      }
      const becomesPrivateWritable =
        !(v.vmFlags & VM_SHARED) && newBits & VM_WRITE && !(v.vmFlags & VM_WRITE);
      v.vmFlags = (v.vmFlags & ~(VM_READ | VM_WRITE | VM_EXEC)) | newBits;
      if (becomesPrivateWritable && v.vmFile) {
        // Shared file pages must be copied before a private mapping may write them.
        v.zapPtes();
      }
    }
    return 0;
  }

  /** exit_mmap(): removes every mapping, lowest address first. */
  exitMmap(): void {
    while (this.vmas.length > 0) this.remove(this.vmas[0]);
  }

  /**
   * Resolves the page at `addr` (handle_mm_fault). `access` is 'read', 'write' or 'none'
   * (the kernel touching the page for a pin: no permission check). Returns the page or
   * -EFAULT/-errno.
   */
  resolve(addr: number, access: 'read' | 'write' | 'none'): Resolved {
    if (!(addr >= 0 && addr < TASK_SIZE)) return -errno.EFAULT;
    const vma = this.findVma(addr);
    if (!vma) return -errno.EFAULT;
    if (access === 'read' && !(vma.vmFlags & VM_READ)) return -errno.EFAULT;
    if (access === 'write' && !(vma.vmFlags & VM_WRITE)) return -errno.EFAULT;
    const idx = Math.floor((addr - vma.vmStart) / PAGE_SIZE);
    const p = vma.ptes.get(idx);
    if (p) return p;
    const page = this.faultIn(vma, idx);
    if (typeof page === 'number') return page;
    page.mapcount++;
    vma.ptes.set(idx, page);
    return page;
  }

  private faultIn(vma: VmAreaStruct, idx: number): Resolved {
    if (vma.anon) {
      const p = vma.anon.page(vma.anonOffset + idx);
      return p ?? -errno.ENOMEM;
    }
    const handler = vma.vmOps?.fault;
    if (!handler) return -errno.EFAULT;
    const r = handler({
      vma,
      pgoff: vma.vmPgoff + idx,
      address: vma.vmStart + idx * PAGE_SIZE,
      write: (vma.vmFlags & VM_WRITE) !== 0,
    });
    if (typeof r === 'number') return r < 0 ? r : -errno.EFAULT;
    if (!(vma.vmFlags & VM_SHARED) && vma.vmFlags & VM_WRITE) {
      // Private writable file mapping: break copy-on-write now.
      const copy = new Page(new Uint8Array(PAGE_SIZE));
      copy.data.set(r.data);
      return copy;
    }
    return r;
  }

  /**
   * A live view of [addr, addr+len): faults every page in and returns one Uint8Array
   * over them. Throws (as the access would fault) if a page is unmapped or cannot be
   * read, or if the pages are not one contiguous buffer.
   */
  view(addr: number, len: number): Uint8Array {
    if (!(Number.isInteger(addr) && Number.isInteger(len)) || len < 0) {
      throw new RangeError(`memory(${addr}, ${len}): address and length must be whole numbers`);
    }
    if (len === 0) return new Uint8Array(0);
    const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
    let prev: Page | null = null;
    let start: Page | null = null;
    for (let a = first; a < addr + len; a += PAGE_SIZE) {
      const p = this.resolve(a, 'read');
      if (typeof p === 'number') {
        throw new RangeError(
          `memory(0x${addr.toString(16)}, ${len}): address 0x${Math.max(a, addr).toString(16)} is not mapped readable (SIGSEGV)`,
        );
      }
      if (prev && !pagesContiguous(prev, p)) {
        throw new RangeError(
          `memory(0x${addr.toString(16)}, ${len}): the range spans pages that are not one contiguous buffer; ` +
            'read or write it in pieces',
        );
      }
      if (!start) start = p;
      prev = p;
    }
    const s = start!;
    return new Uint8Array(s.data.buffer, s.data.byteOffset + (addr - first), len);
  }

  /**
   * Copies bytes out of user memory as the kernel's uaccess does: stops at the first
   * page that cannot be read. Returns the number of bytes NOT copied (0 on success).
   */
  copyOut(addr: number, dst: Uint8Array, access: 'read' | 'none' = 'read'): number {
    let done = 0;
    const n = dst.length;
    while (done < n) {
      const a = addr + done;
      const p = this.resolve(Math.floor(a / PAGE_SIZE) * PAGE_SIZE, access);
      if (typeof p === 'number') break;
      const off = a % PAGE_SIZE;
      const chunk = Math.min(PAGE_SIZE - off, n - done);
      dst.set(p.data.subarray(off, off + chunk), done);
      done += chunk;
    }
    return n - done;
  }

  /** Copies bytes into user memory; returns the number of bytes NOT copied (0 on success). */
  copyIn(addr: number, src: Uint8Array, access: 'write' | 'none' = 'write'): number {
    let done = 0;
    const n = src.length;
    while (done < n) {
      const a = addr + done;
      const p = this.resolve(Math.floor(a / PAGE_SIZE) * PAGE_SIZE, access);
      if (typeof p === 'number') break;
      const off = a % PAGE_SIZE;
      const chunk = Math.min(PAGE_SIZE - off, n - done);
      p.data.set(src.subarray(done, done + chunk), off);
      done += chunk;
    }
    return n - done;
  }

  /** The /proc/pid/maps lines (with real addresses). */
  maps(): string[] {
    return this.vmas.map((v) => {
      const perms =
        (v.vmFlags & VM_READ ? 'r' : '-') +
        (v.vmFlags & VM_WRITE ? 'w' : '-') +
        (v.vmFlags & VM_EXEC ? 'x' : '-') +
        (v.vmFlags & VM_MAYSHARE ? 's' : 'p');
      const ino = v.vmFile ? v.vmFile.inode.ino : 0;
      const dev = v.vmFile ? v.vmFile.inode.sb.dev : '00:00';
      const off = (v.vmPgoff * PAGE_SIZE).toString(16).padStart(8, '0');
      const head = `${v.vmStart.toString(16)}-${v.vmEnd.toString(16)} ${perms} ${off} ${dev} ${ino}`;
      const name = v.name;
      if (!name) return head;
      return head.length >= 72 ? `${head} ${name}` : `${head.padEnd(72)} ${name}`;
    });
  }
}

/** calc_vm_prot_bits(): PROT_* to VM_READ/WRITE/EXEC. */
export function protToVmFlags(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}

/** Pages needed for `len` bytes. */
export function pagesFor(len: number): number {
  return Math.ceil(len / PAGE_SIZE);
}

/** Page index of an address. */
export function pfnOfAddr(addr: number): number {
  return Math.floor(addr / 2 ** PAGE_SHIFT);
}

// ------------------------------------------------------------ the syscalls

/** Reads a 64-bit syscall argument as an unsigned value (negative numbers wrap, as in C). */
export function ulong(x: number | bigint): bigint {
  if (typeof x === 'bigint') return BigInt.asUintN(64, x);
  if (!Number.isFinite(x)) return 0n;
  return BigInt.asUintN(64, BigInt(Math.trunc(x)));
}

/** Anonymous mapping for the model's own use (sys.alloc): read/write, private, anywhere. */
export function mapAnonymous(mm: MmStruct, len: number): number {
  len = pageAlign(len);
  if (!len || len > TASK_SIZE) return -errno.ENOMEM;
  const addr = mm.getUnmappedArea(0, len);
  if (addr < 0) return addr;
  if (mm.mapCount + 1 > MAX_MAP_COUNT) return -errno.ENOMEM;
  const vma = new VmAreaStruct(
    mm,
    addr,
    addr + len,
    VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC,
    addr / PAGE_SIZE,
    null,
  );
  vma.anon = new AnonObject(len / PAGE_SIZE);
  mm.insert(vma);
  return addr;
}

/**
 * mmap(2) on x86_64 (sys_mmap -> ksys_mmap_pgoff -> vm_mmap_pgoff -> do_mmap). The
 * offset must be page aligned (-EINVAL) before the fd is looked up (-EBADF); then the
 * length (0: -EINVAL; too large: -ENOMEM), offset overflow (-EOVERFLOW), placement,
 * the file's access mode against the protection (-EACCES), the mapping type
 * (-EINVAL), and the file's mmap operation (-ENODEV without one).
 */
export async function ksysMmap(
  mm: MmStruct,
  addrArg: number | bigint,
  lenArg: number | bigint,
  protArg: number,
  flagsArg: number,
  fd: number,
  offArg: number | bigint,
): Promise<number> {
  const off = ulong(offArg);
  if (off & 0xfffn) return -errno.EINVAL;
  let flags = Number(ulong(flagsArg) & 0xffffffffn);
  const prot = Number(ulong(protArg) & 0xffffffffn);
  let lenBig = ulong(lenArg);
  let addr = ulong(addrArg);
  let file: File | null = null;
  try {
    if (!(flags & MAP_ANONYMOUS)) {
      file = fget(fd | 0);
      if (!file) return -errno.EBADF;
      const info = shmemInfo(file.inode);
      if (info?.hugetlb) {
        const h = BigInt(info.hpageSize);
        lenBig = ((lenBig + h - 1n) / h) * h;
      } else if (flags & MAP_HUGETLB) {
        return -errno.EINVAL;
      }
    } else if (flags & MAP_HUGETLB) {
      const log = (flags >>> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
      if (log !== 0 && log !== 21 && log !== 30) return -errno.EINVAL;
      const h = log === 30 ? 1n << 30n : BigInt(HPAGE_SIZE);
      lenBig = ((lenBig + h - 1n) / h) * h;
    }
    // do_mmap()
    if (lenBig === 0n) return -errno.EINVAL;
    if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
    if (!(flags & MAP_FIXED)) {
      addr &= ~0xfffn;
      if (addr !== 0n && addr < BigInt(MMAP_MIN_ADDR)) addr = BigInt(MMAP_MIN_ADDR);
    }
    lenBig = (lenBig + 0xfffn) & ~0xfffn;
    if (lenBig === 0n || lenBig >= 1n << 64n) return -errno.ENOMEM;
    const pgoff = off >> 12n;
    if (pgoff + (lenBig >> 12n) >= 1n << 64n) return -errno.EOVERFLOW;
    if (mm.mapCount > MAX_MAP_COUNT) return -errno.ENOMEM;
    let vmFlags = protToVmFlags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;
    // get_unmapped_area()
    if (lenBig > BigInt(TASK_SIZE)) return -errno.ENOMEM;
    const len = Number(lenBig);
    let start: number;
    if (flags & MAP_FIXED) {
      if (addr > BigInt(TASK_SIZE - len)) return -errno.ENOMEM;
      if (addr & 0xfffn) return -errno.EINVAL;
      start = Number(addr);
    } else {
      const hint = addr > BigInt(TASK_SIZE) ? 0 : Number(addr);
      start = mm.getUnmappedArea(hint, len);
      if (start < 0) return start;
    }
    if (flags & MAP_FIXED_NOREPLACE && mm.findIntersection(start, start + len)) return -errno.EEXIST;
    let pg = Number(pgoff);
    if (file) {
      // file_mmap_ok(): regular files are limited to MAX_LFS_FILESIZE.
      if ((file.inode.mode & 0o170000) === 0o100000) {
        const max = (1n << 63n) - 1n - lenBig;
        if (pgoff > max >> 12n) return -errno.EOVERFLOW;
      }
      switch (flags & MAP_TYPE) {
        case MAP_SHARED:
        case MAP_SHARED_VALIDATE:
          if ((flags & MAP_TYPE) === MAP_SHARED) flags &= LEGACY_MAP_MASK;
          if (flags & ~LEGACY_MAP_MASK) return -errno.EOPNOTSUPP;
          if (prot & PROT_WRITE && !(file.fMode & FMODE_WRITE_BIT)) return -errno.EACCES;
          vmFlags |= VM_SHARED | VM_MAYSHARE;
          if (!(file.fMode & FMODE_WRITE_BIT)) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
          if (!(file.fMode & FMODE_READ_BIT)) return -errno.EACCES;
          if (!file.fOp.mmap) return -errno.ENODEV;
          break;
        case MAP_PRIVATE:
          if (!(file.fMode & FMODE_READ_BIT)) return -errno.EACCES;
          if (!file.fOp.mmap) return -errno.ENODEV;
          break;
        default:
          return -errno.EINVAL;
      }
    } else {
      switch (flags & MAP_TYPE) {
        case MAP_SHARED:
          pg = 0;
          vmFlags |= VM_SHARED | VM_MAYSHARE;
          break;
        case MAP_DROPPABLE:
          if (flags & (MAP_LOCKED | MAP_HUGETLB)) return -errno.EINVAL;
          pg = start / PAGE_SIZE;
          break;
        case MAP_PRIVATE:
          pg = start / PAGE_SIZE;
          break;
        default:
          return -errno.EINVAL;
      }
      if (flags & MAP_HUGETLB) vmFlags |= VM_HUGETLB;
    }
    const f = file;
    return await mm.mapRegion(
      start,
      len,
      vmFlags,
      pg,
      f,
      f ? (fl, vma) => fl.fOp.mmap!(fl, vma) : null,
      (flags & MAP_FIXED) !== 0,
    );
  } finally {
    if (file) fput(file);
  }
}

const FMODE_READ_BIT = 1;
const FMODE_WRITE_BIT = 2;

/** munmap(2): the address must be page aligned and the range inside TASK_SIZE (-EINVAL). */
export function ksysMunmap(mm: MmStruct, addrArg: number | bigint, lenArg: number | bigint): number {
  const start = ulong(addrArg);
  const len = ulong(lenArg);
  if (start & 0xfffn || start > BigInt(TASK_SIZE) || len > BigInt(TASK_SIZE) - start) return -errno.EINVAL;
  const alen = (len + 0xfffn) & ~0xfffn;
  if (alen === 0n) return -errno.EINVAL;
  return mm.unmap(Number(start), Number(alen));
}

/** mprotect(2). */
export function ksysMprotect(
  mm: MmStruct,
  addrArg: number | bigint,
  lenArg: number | bigint,
  prot: number,
): number {
  const start = ulong(addrArg);
  const len = ulong(lenArg);
  if (start & 0xfffn) return -errno.EINVAL;
  if (len === 0n) return 0;
  const alen = (len + 0xfffn) & ~0xfffn;
  if (alen === 0n || start + alen > BigInt(TASK_SIZE)) return -errno.ENOMEM;
  return mm.mprotect(Number(start), Number(alen), prot >>> 0);
}
