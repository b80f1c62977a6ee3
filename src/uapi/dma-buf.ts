/**
 * The dma-buf userspace ABI (include/uapi/linux/dma-buf.h) and a typed wrapper over it.
 *
 * ABI: the four ioctls of a dma-buf fd with their structs and flags. SET_NAME has two
 * request numbers, `_IOW('b', 1, u32)` and `_IOW('b', 1, u64)`; the kernel accepts both
 * (the argument is a pointer to the name either way) and `DMA_BUF_SET_NAME` is the
 * 64-bit one on x86_64.
 *
 * Wrapper: `DmaBuf` holds a dma-buf fd of a process and offers its calls with types,
 * throwing `ErrnoError` on failure:
 *
 * ```ts
 * const buf = await DmaHeap.open(sys, 'system').then((h) => h.alloc(1 << 20));
 * const map = await buf.mmap();
 * await buf.withCpuAccess('write', () => map.bytes().fill(0xff));
 * ```
 */
import { SEEK_END, SEEK_SET } from '../kernel/file.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.ts';
import { checkErrno } from './errno-error.ts';
import { _IOW, _IOWR } from './ioctl.ts';
import { defineStruct, pollfd } from './structs.ts';
import type { Sys } from './sys.ts';

/** Sync for CPU reads. */
export const DMA_BUF_SYNC_READ = 1 << 0;
/** Sync for CPU writes. */
export const DMA_BUF_SYNC_WRITE = 2 << 0;
/** Sync for CPU reads and writes. */
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
/** Start of a CPU access (the value 0). */
export const DMA_BUF_SYNC_START = 0 << 2;
/** End of a CPU access. */
export const DMA_BUF_SYNC_END = 1 << 2;
/** Every flag DMA_BUF_IOCTL_SYNC accepts. */
export const DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;
/** Size of a dma-buf name buffer, NUL included: names have at most 31 characters. */
export const DMA_BUF_NAME_LEN = 32;
/** The ioctl type byte of dma-buf ('b'). */
export const DMA_BUF_BASE = 'b';

/** struct dma_buf_sync: 8 bytes. */
export const dmaBufSync = defineStruct('dma_buf_sync', [['flags', 'u64']] as const);

/** struct dma_buf_export_sync_file: 8 bytes; `fd` is written back. */
export const dmaBufExportSyncFile = defineStruct('dma_buf_export_sync_file', [
  ['flags', 'u32'],
  ['fd', 's32'],
] as const);

/** struct dma_buf_import_sync_file: 8 bytes. */
export const dmaBufImportSyncFile = defineStruct('dma_buf_import_sync_file', [
  ['flags', 'u32'],
  ['fd', 's32'],
] as const);

/** DMA_BUF_IOCTL_SYNC: bracket CPU access (struct dma_buf_sync). */
export const DMA_BUF_IOCTL_SYNC = _IOW(DMA_BUF_BASE, 0, dmaBufSync.size);
/** DMA_BUF_SET_NAME_A: set the name, 32-bit request number. */
export const DMA_BUF_SET_NAME_A = _IOW(DMA_BUF_BASE, 1, 4);
/** DMA_BUF_SET_NAME_B: set the name, 64-bit request number. */
export const DMA_BUF_SET_NAME_B = _IOW(DMA_BUF_BASE, 1, 8);
/** DMA_BUF_SET_NAME on x86_64 (`_IOW('b', 1, const char *)`). */
export const DMA_BUF_SET_NAME = DMA_BUF_SET_NAME_B;
/** DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a sync_file of the buffer's implicit fences. */
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = _IOWR(DMA_BUF_BASE, 2, dmaBufExportSyncFile.size);
/** DMA_BUF_IOCTL_IMPORT_SYNC_FILE: add a sync_file's fences to the buffer's implicit fences. */
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = _IOW(DMA_BUF_BASE, 3, dmaBufImportSyncFile.size);

/** How a CPU or a fence uses the buffer. */
export type DmaBufAccess = 'read' | 'write' | 'rw';

/** DMA_BUF_SYNC_* direction bits of an access. */
export function dmaBufAccessFlags(access: DmaBufAccess): number {
  return access === 'read' ? DMA_BUF_SYNC_READ : access === 'write' ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_RW;
}

/** A CPU mapping of a dma-buf in the process. */
export class DmaBufMapping {
  /** Use `DmaBuf#mmap`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The mapping's user address. */
    readonly addr: number,
    /** Its length in bytes. */
    readonly length: number,
  ) {}

  /** A live view of the mapped bytes (throws if they are not one contiguous buffer; use peek/poke then). */
  bytes(): Uint8Array {
    return this.sys.memory(this.addr, this.length);
  }

  /** munmap(2). */
  async unmap(): Promise<void> {
    checkErrno(await this.sys.munmap(this.addr, this.length), 'munmap(dma-buf mapping)');
  }
}

/** A dma-buf fd of a process, with typed calls. */
export class DmaBuf {
  /** Use `DmaBuf.fromFd` or an allocator's wrapper (`DmaHeap#alloc`, `Udmabuf#create`). */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The dma-buf fd. */
    readonly fd: number,
    /** The buffer's size in bytes. */
    readonly size: number,
  ) {}

  /** Wraps a dma-buf fd; the size comes from lseek(SEEK_END). */
  static async fromFd(sys: Sys, fd: number): Promise<DmaBuf> {
    const size = checkErrno(await sys.lseek(fd, 0, SEEK_END), 'lseek(dma-buf, 0, SEEK_END)');
    checkErrno(await sys.lseek(fd, 0, SEEK_SET), 'lseek(dma-buf, 0, SEEK_SET)');
    return new DmaBuf(sys, fd, size);
  }

  /** mmap(2) of the buffer: by default all of it, shared, read-write. */
  async mmap(
    opts: { prot?: number; flags?: number; offset?: number; length?: number } = {},
  ): Promise<DmaBufMapping> {
    const offset = opts.offset ?? 0;
    const length = opts.length ?? this.size - offset;
    const addr = checkErrno(
      await this.sys.mmap(
        0,
        length,
        opts.prot ?? PROT_READ | PROT_WRITE,
        opts.flags ?? MAP_SHARED,
        this.fd,
        offset,
      ),
      'mmap(dma-buf)',
    );
    return new DmaBufMapping(this.sys, addr, length);
  }

  /** DMA_BUF_IOCTL_SYNC with raw flags. */
  async sync(flags: number | bigint): Promise<void> {
    const arg = this.sys.allocStruct(dmaBufSync, { flags });
    checkErrno(await this.sys.ioctl(this.fd, DMA_BUF_IOCTL_SYNC, arg), 'ioctl(DMA_BUF_IOCTL_SYNC)');
  }

  /** DMA_BUF_IOCTL_SYNC START: waits for the implicit fences the access needs. */
  beginCpuAccess(access: DmaBufAccess = 'rw'): Promise<void> {
    return this.sync(DMA_BUF_SYNC_START | dmaBufAccessFlags(access));
  }

  /** DMA_BUF_IOCTL_SYNC END. */
  endCpuAccess(access: DmaBufAccess = 'rw'): Promise<void> {
    return this.sync(DMA_BUF_SYNC_END | dmaBufAccessFlags(access));
  }

  /** Runs `fn` between a START and an END sync. */
  async withCpuAccess<T>(access: DmaBufAccess, fn: () => T | Promise<T>): Promise<T> {
    await this.beginCpuAccess(access);
    try {
      return await fn();
    } finally {
      await this.endCpuAccess(access);
    }
  }

  /** DMA_BUF_SET_NAME: at most 31 characters. */
  async setName(name: string): Promise<void> {
    const p = this.sys.allocCString(name);
    checkErrno(await this.sys.ioctl(this.fd, DMA_BUF_SET_NAME, p), 'ioctl(DMA_BUF_SET_NAME)');
  }

  /**
   * DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a sync_file fd (close-on-exec) that signals when the
   * fences a CPU `access` would wait for have signalled.
   */
  async exportSyncFile(access: DmaBufAccess): Promise<number> {
    const arg = this.sys.allocStruct(dmaBufExportSyncFile, { flags: dmaBufAccessFlags(access), fd: -1 });
    checkErrno(
      await this.sys.ioctl(this.fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg),
      'ioctl(DMA_BUF_IOCTL_EXPORT_SYNC_FILE)',
    );
    return this.sys.readStruct(dmaBufExportSyncFile, arg).fd;
  }

  /** DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds the sync_file's fences as read or write fences. */
  async importSyncFile(syncFileFd: number, access: DmaBufAccess): Promise<void> {
    const arg = this.sys.allocStruct(dmaBufImportSyncFile, {
      flags: dmaBufAccessFlags(access),
      fd: syncFileFd,
    });
    checkErrno(
      await this.sys.ioctl(this.fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, arg),
      'ioctl(DMA_BUF_IOCTL_IMPORT_SYNC_FILE)',
    );
  }

  /** poll(2) on the buffer: POLLIN waits for writers, POLLOUT for every implicit fence. Returns revents. */
  async poll(events: number, timeoutMs = 0): Promise<number> {
    const p = this.sys.allocStruct(pollfd, { fd: this.fd, events });
    checkErrno(await this.sys.poll(p, 1, timeoutMs), 'poll(dma-buf)');
    return this.sys.readStruct(pollfd, p).revents;
  }

  /** close(2). */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), 'close(dma-buf)');
  }
}
