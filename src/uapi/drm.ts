/**
 * The DRM userspace ABI the model implements (include/uapi/drm/drm.h,
 * include/uapi/drm/drm_mode.h for the dumb-buffer structs, include/uapi/drm/vgem_drm.h,
 * Linux 6.12), and a typed wrapper.
 *
 * ABI: every DRM request has type 'd'. Numbers 0x00-0x3f and 0xa0-0xd0 are core
 * ioctls; 0x40-0x9f belong to the driver (vgem: 0x41 FENCE_ATTACH, 0x42 FENCE_SIGNAL).
 * The core matches a request on its number only: a struct shorter than the kernel's is
 * zero-extended, a longer one truncated (drivers/gpu/drm/drm_ioctl.c). In 6.12 the
 * syncobj handle struct is 16 bytes (no `point`), and only the two SYNC_FILE flags of
 * HANDLE_TO_FD / FD_TO_HANDLE exist.
 *
 * Wrapper: `Drm.open(sys, '/dev/dri/renderD128')` gives typed calls (dumb buffers, PRIME,
 * syncobjs, vgem fences) that throw `ErrnoError` on failure.
 */
import { O_CLOEXEC, O_RDWR } from '../kernel/fcntl.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.ts';
import { DmaBuf } from './dma-buf.ts';
import { checkErrno } from './errno-error.ts';
import { _IO, _IOR, _IOW, _IOWR } from './ioctl.ts';
import { defineStruct } from './structs.ts';
import type { Sys } from './sys.ts';

// ------------------------------------------------------------ request encoding

/** The type byte of every DRM request ('d'). */
export const DRM_IOCTL_BASE = 'd';
/** First driver-private request number. */
export const DRM_COMMAND_BASE = 0x40;
/** One past the last driver-private request number. */
export const DRM_COMMAND_END = 0xa0;

/** DRM_IO(nr). */
export function DRM_IO(nr: number): number {
  return _IO(DRM_IOCTL_BASE, nr);
}

/** DRM_IOR(nr, size). */
export function DRM_IOR(nr: number, size: number): number {
  return _IOR(DRM_IOCTL_BASE, nr, size);
}

/** DRM_IOW(nr, size). */
export function DRM_IOW(nr: number, size: number): number {
  return _IOW(DRM_IOCTL_BASE, nr, size);
}

/** DRM_IOWR(nr, size). */
export function DRM_IOWR(nr: number, size: number): number {
  return _IOWR(DRM_IOCTL_BASE, nr, size);
}

// ------------------------------------------------------------ core structs

/** struct drm_version: 64 bytes; the three strings are user buffers the kernel fills. */
export const drmVersion = defineStruct('drm_version', [
  ['version_major', 's32'],
  ['version_minor', 's32'],
  ['version_patchlevel', 's32'],
  ['name_len', 'u64'],
  ['name', 'ptr'],
  ['date_len', 'u64'],
  ['date', 'ptr'],
  ['desc_len', 'u64'],
  ['desc', 'ptr'],
] as const);

/** struct drm_unique: 16 bytes. */
export const drmUnique = defineStruct('drm_unique', [
  ['unique_len', 'u64'],
  ['unique', 'ptr'],
] as const);

/** struct drm_auth: 4 bytes. */
export const drmAuth = defineStruct('drm_auth', [['magic', 'u32']] as const);

/** struct drm_client: 40 bytes. */
export const drmClient = defineStruct('drm_client', [
  ['idx', 's32'],
  ['auth', 's32'],
  ['pid', 'u64'],
  ['uid', 'u64'],
  ['magic', 'u64'],
  ['iocs', 'u64'],
] as const);

/** struct drm_stats: 248 bytes (a count and 15 value/type pairs), all zero in 6.12. */
export const drmStats = defineStruct('drm_stats', [
  ['count', 'u64'],
  ['data', { bytes: 240 }],
] as const);

/** struct drm_set_version: 16 bytes. */
export const drmSetVersion = defineStruct('drm_set_version', [
  ['drm_di_major', 's32'],
  ['drm_di_minor', 's32'],
  ['drm_dd_major', 's32'],
  ['drm_dd_minor', 's32'],
] as const);

/** struct drm_gem_close: 8 bytes. */
export const drmGemClose = defineStruct('drm_gem_close', [
  ['handle', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct drm_gem_flink: 8 bytes. */
export const drmGemFlink = defineStruct('drm_gem_flink', [
  ['handle', 'u32'],
  ['name', 'u32'],
] as const);

/** struct drm_gem_open: 16 bytes. */
export const drmGemOpen = defineStruct('drm_gem_open', [
  ['name', 'u32'],
  ['handle', 'u32'],
  ['size', 'u64'],
] as const);

/** struct drm_get_cap: 16 bytes. */
export const drmGetCap = defineStruct('drm_get_cap', [
  ['capability', 'u64'],
  ['value', 'u64'],
] as const);

/** struct drm_set_client_cap: 16 bytes. */
export const drmSetClientCap = defineStruct('drm_set_client_cap', [
  ['capability', 'u64'],
  ['value', 'u64'],
] as const);

/** struct drm_prime_handle: 12 bytes. */
export const drmPrimeHandle = defineStruct('drm_prime_handle', [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['fd', 's32'],
] as const);

/** struct drm_mode_create_dumb: 32 bytes; handle, pitch and size are written back. */
export const drmModeCreateDumb = defineStruct('drm_mode_create_dumb', [
  ['height', 'u32'],
  ['width', 'u32'],
  ['bpp', 'u32'],
  ['flags', 'u32'],
  ['handle', 'u32'],
  ['pitch', 'u32'],
  ['size', 'u64'],
] as const);

/** struct drm_mode_map_dumb: 16 bytes; `offset` is the fake mmap offset written back. */
export const drmModeMapDumb = defineStruct('drm_mode_map_dumb', [
  ['handle', 'u32'],
  ['pad', 'u32'],
  ['offset', 'u64'],
] as const);

/** struct drm_mode_destroy_dumb: 4 bytes. */
export const drmModeDestroyDumb = defineStruct('drm_mode_destroy_dumb', [['handle', 'u32']] as const);

// ------------------------------------------------------------ syncobj structs

/** struct drm_syncobj_create: 8 bytes. */
export const drmSyncobjCreate = defineStruct('drm_syncobj_create', [
  ['handle', 'u32'],
  ['flags', 'u32'],
] as const);

/** struct drm_syncobj_destroy: 8 bytes. */
export const drmSyncobjDestroy = defineStruct('drm_syncobj_destroy', [
  ['handle', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct drm_syncobj_handle: 16 bytes in 6.12 (no `point` field). */
export const drmSyncobjHandle = defineStruct('drm_syncobj_handle', [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['fd', 's32'],
  ['pad', 'u32'],
] as const);

/** struct drm_syncobj_transfer: 32 bytes. */
export const drmSyncobjTransfer = defineStruct('drm_syncobj_transfer', [
  ['src_handle', 'u32'],
  ['dst_handle', 'u32'],
  ['src_point', 'u64'],
  ['dst_point', 'u64'],
  ['flags', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct drm_syncobj_wait: 40 bytes; `timeout_nsec` is absolute CLOCK_MONOTONIC. */
export const drmSyncobjWait = defineStruct('drm_syncobj_wait', [
  ['handles', 'u64'],
  ['timeout_nsec', 's64'],
  ['count_handles', 'u32'],
  ['flags', 'u32'],
  ['first_signaled', 'u32'],
  ['pad', 'u32'],
  ['deadline_nsec', 'u64'],
] as const);

/** struct drm_syncobj_timeline_wait: 48 bytes. */
export const drmSyncobjTimelineWait = defineStruct('drm_syncobj_timeline_wait', [
  ['handles', 'u64'],
  ['points', 'u64'],
  ['timeout_nsec', 's64'],
  ['count_handles', 'u32'],
  ['flags', 'u32'],
  ['first_signaled', 'u32'],
  ['pad', 'u32'],
  ['deadline_nsec', 'u64'],
] as const);

/** struct drm_syncobj_eventfd: 24 bytes. */
export const drmSyncobjEventfd = defineStruct('drm_syncobj_eventfd', [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['point', 'u64'],
  ['fd', 's32'],
  ['pad', 'u32'],
] as const);

/** struct drm_syncobj_array: 16 bytes (RESET, SIGNAL). */
export const drmSyncobjArray = defineStruct('drm_syncobj_array', [
  ['handles', 'u64'],
  ['count_handles', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct drm_syncobj_timeline_array: 24 bytes (QUERY, TIMELINE_SIGNAL). */
export const drmSyncobjTimelineArray = defineStruct('drm_syncobj_timeline_array', [
  ['handles', 'u64'],
  ['points', 'u64'],
  ['count_handles', 'u32'],
  ['flags', 'u32'],
] as const);

// ------------------------------------------------------------ vgem structs

/** struct drm_vgem_fence_attach: 16 bytes. */
export const drmVgemFenceAttach = defineStruct('drm_vgem_fence_attach', [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['out_fence', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct drm_vgem_fence_signal: 8 bytes. */
export const drmVgemFenceSignal = defineStruct('drm_vgem_fence_signal', [
  ['fence', 'u32'],
  ['flags', 'u32'],
] as const);

// ------------------------------------------------------------ request numbers

/** DRM_IOCTL_VERSION. */
export const DRM_IOCTL_VERSION = DRM_IOWR(0x00, drmVersion.size);
/** DRM_IOCTL_GET_UNIQUE. */
export const DRM_IOCTL_GET_UNIQUE = DRM_IOWR(0x01, drmUnique.size);
/** DRM_IOCTL_GET_MAGIC. */
export const DRM_IOCTL_GET_MAGIC = DRM_IOR(0x02, drmAuth.size);
/** DRM_IOCTL_GET_CLIENT. */
export const DRM_IOCTL_GET_CLIENT = DRM_IOWR(0x05, drmClient.size);
/** DRM_IOCTL_GET_STATS. */
export const DRM_IOCTL_GET_STATS = DRM_IOR(0x06, drmStats.size);
/** DRM_IOCTL_SET_VERSION. */
export const DRM_IOCTL_SET_VERSION = DRM_IOWR(0x07, drmSetVersion.size);
/** DRM_IOCTL_GEM_CLOSE. */
export const DRM_IOCTL_GEM_CLOSE = DRM_IOW(0x09, drmGemClose.size);
/** DRM_IOCTL_GEM_FLINK. */
export const DRM_IOCTL_GEM_FLINK = DRM_IOWR(0x0a, drmGemFlink.size);
/** DRM_IOCTL_GEM_OPEN. */
export const DRM_IOCTL_GEM_OPEN = DRM_IOWR(0x0b, drmGemOpen.size);
/** DRM_IOCTL_GET_CAP. */
export const DRM_IOCTL_GET_CAP = DRM_IOWR(0x0c, drmGetCap.size);
/** DRM_IOCTL_SET_CLIENT_CAP. */
export const DRM_IOCTL_SET_CLIENT_CAP = DRM_IOW(0x0d, drmSetClientCap.size);
/** DRM_IOCTL_SET_UNIQUE. */
export const DRM_IOCTL_SET_UNIQUE = DRM_IOW(0x10, drmUnique.size);
/** DRM_IOCTL_AUTH_MAGIC. */
export const DRM_IOCTL_AUTH_MAGIC = DRM_IOW(0x11, drmAuth.size);
/** DRM_IOCTL_SET_MASTER. */
export const DRM_IOCTL_SET_MASTER = DRM_IO(0x1e);
/** DRM_IOCTL_DROP_MASTER. */
export const DRM_IOCTL_DROP_MASTER = DRM_IO(0x1f);
/** DRM_IOCTL_PRIME_HANDLE_TO_FD. */
export const DRM_IOCTL_PRIME_HANDLE_TO_FD = DRM_IOWR(0x2d, drmPrimeHandle.size);
/** DRM_IOCTL_PRIME_FD_TO_HANDLE. */
export const DRM_IOCTL_PRIME_FD_TO_HANDLE = DRM_IOWR(0x2e, drmPrimeHandle.size);
/** DRM_IOCTL_MODE_GETRESOURCES (a KMS request: -EOPNOTSUPP on vgem). */
export const DRM_IOCTL_MODE_GETRESOURCES = DRM_IOWR(0xa0, 64);
/** DRM_IOCTL_MODE_CREATE_DUMB. */
export const DRM_IOCTL_MODE_CREATE_DUMB = DRM_IOWR(0xb2, drmModeCreateDumb.size);
/** DRM_IOCTL_MODE_MAP_DUMB. */
export const DRM_IOCTL_MODE_MAP_DUMB = DRM_IOWR(0xb3, drmModeMapDumb.size);
/** DRM_IOCTL_MODE_DESTROY_DUMB. */
export const DRM_IOCTL_MODE_DESTROY_DUMB = DRM_IOWR(0xb4, drmModeDestroyDumb.size);
/** DRM_IOCTL_SYNCOBJ_CREATE. */
export const DRM_IOCTL_SYNCOBJ_CREATE = DRM_IOWR(0xbf, drmSyncobjCreate.size);
/** DRM_IOCTL_SYNCOBJ_DESTROY. */
export const DRM_IOCTL_SYNCOBJ_DESTROY = DRM_IOWR(0xc0, drmSyncobjDestroy.size);
/** DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD. */
export const DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD = DRM_IOWR(0xc1, drmSyncobjHandle.size);
/** DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE. */
export const DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE = DRM_IOWR(0xc2, drmSyncobjHandle.size);
/** DRM_IOCTL_SYNCOBJ_WAIT. */
export const DRM_IOCTL_SYNCOBJ_WAIT = DRM_IOWR(0xc3, drmSyncobjWait.size);
/** DRM_IOCTL_SYNCOBJ_RESET. */
export const DRM_IOCTL_SYNCOBJ_RESET = DRM_IOWR(0xc4, drmSyncobjArray.size);
/** DRM_IOCTL_SYNCOBJ_SIGNAL. */
export const DRM_IOCTL_SYNCOBJ_SIGNAL = DRM_IOWR(0xc5, drmSyncobjArray.size);
/** DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT. */
export const DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT = DRM_IOWR(0xca, drmSyncobjTimelineWait.size);
/** DRM_IOCTL_SYNCOBJ_QUERY. */
export const DRM_IOCTL_SYNCOBJ_QUERY = DRM_IOWR(0xcb, drmSyncobjTimelineArray.size);
/** DRM_IOCTL_SYNCOBJ_TRANSFER. */
export const DRM_IOCTL_SYNCOBJ_TRANSFER = DRM_IOWR(0xcc, drmSyncobjTransfer.size);
/** DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL. */
export const DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL = DRM_IOWR(0xcd, drmSyncobjTimelineArray.size);
/** DRM_IOCTL_SYNCOBJ_EVENTFD. */
export const DRM_IOCTL_SYNCOBJ_EVENTFD = DRM_IOWR(0xcf, drmSyncobjEventfd.size);
/** DRM_VGEM_FENCE_ATTACH: the driver-relative number. */
export const DRM_VGEM_FENCE_ATTACH = 0x1;
/** DRM_VGEM_FENCE_SIGNAL: the driver-relative number. */
export const DRM_VGEM_FENCE_SIGNAL = 0x2;
/** DRM_IOCTL_VGEM_FENCE_ATTACH. */
export const DRM_IOCTL_VGEM_FENCE_ATTACH = DRM_IOWR(
  DRM_COMMAND_BASE + DRM_VGEM_FENCE_ATTACH,
  drmVgemFenceAttach.size,
);
/** DRM_IOCTL_VGEM_FENCE_SIGNAL. */
export const DRM_IOCTL_VGEM_FENCE_SIGNAL = DRM_IOW(
  DRM_COMMAND_BASE + DRM_VGEM_FENCE_SIGNAL,
  drmVgemFenceSignal.size,
);

// ------------------------------------------------------------ flags and capabilities

/** PRIME_HANDLE_TO_FD flag: the dma-buf file is read-write (O_RDWR). */
export const DRM_RDWR = O_RDWR;
/** PRIME_HANDLE_TO_FD flag: the fd is close-on-exec (O_CLOEXEC). */
export const DRM_CLOEXEC = O_CLOEXEC;
/** GET_CAP: dumb buffers (KMS drivers only). */
export const DRM_CAP_DUMB_BUFFER = 0x1;
/** GET_CAP: PRIME import/export bits. */
export const DRM_CAP_PRIME = 0x5;
/** DRM_CAP_PRIME bit: can import. */
export const DRM_PRIME_CAP_IMPORT = 0x1;
/** DRM_CAP_PRIME bit: can export. */
export const DRM_PRIME_CAP_EXPORT = 0x2;
/** GET_CAP: timestamps are CLOCK_MONOTONIC. */
export const DRM_CAP_TIMESTAMP_MONOTONIC = 0x6;
/** GET_CAP: binary syncobjs. */
export const DRM_CAP_SYNCOBJ = 0x13;
/** GET_CAP: timeline syncobjs. */
export const DRM_CAP_SYNCOBJ_TIMELINE = 0x14;
/** SYNCOBJ_CREATE flag: start with a signalled fence. */
export const DRM_SYNCOBJ_CREATE_SIGNALED = 1 << 0;
/** SYNCOBJ_FD_TO_HANDLE flag: `fd` is a sync_file to import into `handle`. */
export const DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE = 1 << 0;
/** SYNCOBJ_HANDLE_TO_FD flag: export the fence as a sync_file. */
export const DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE = 1 << 0;
/** Wait flag: every syncobj must be done (default: any). */
export const DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL = 1 << 0;
/** Wait flag: wait for missing fences (points) to be submitted. */
export const DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT = 1 << 1;
/** Wait flag: a present fence counts as done (TIMELINE_WAIT and EVENTFD only). */
export const DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE = 1 << 2;
/** Wait flag: pass `deadline_nsec` to the fences. */
export const DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE = 1 << 3;
/** QUERY flag: the last submitted point instead of the last signalled one. */
export const DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED = 1 << 0;
/** VGEM_FENCE_ATTACH flag: a write (exclusive) fence. */
export const VGEM_FENCE_WRITE = 0x1;

// ------------------------------------------------------------ wrapper

/** A dumb buffer created with `Drm#createDumb`. */
export interface DumbBuffer {
  /** GEM handle. */
  handle: number;
  /** Bytes per line. */
  pitch: number;
  /** Size in bytes (page aligned). */
  size: number;
}

/** Options of the syncobj waits. */
export interface SyncobjWaitOptions {
  /** Absolute CLOCK_MONOTONIC deadline in ns (0 or past: just poll). Default 0. */
  timeoutNsec?: bigint | number;
  /** DRM_SYNCOBJ_WAIT_FLAGS_*. Default 0. */
  flags?: number;
  /** `deadline_nsec` (with WAIT_DEADLINE). */
  deadlineNsec?: bigint | number;
}

/** An open DRM device node (`/dev/dri/card0`, `/dev/dri/renderD128`) with typed calls. */
export class Drm {
  /** Use `Drm.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The device fd. */
    readonly fd: number,
  ) {}

  /** Opens a DRM node read-write and close-on-exec. */
  static async open(sys: Sys, path = '/dev/dri/renderD128'): Promise<Drm> {
    return new Drm(sys, checkErrno(await sys.open(path, O_RDWR | O_CLOEXEC), `open(${path})`));
  }

  private async ioctl(name: string, request: number, arg: number): Promise<void> {
    checkErrno(await this.sys.ioctl(this.fd, request, arg), `ioctl(${name})`);
  }

  private u32Array(values: readonly number[]): number {
    const p = this.sys.alloc(Math.max(4, values.length * 4), 8);
    values.forEach((v, i) => {
      this.sys.writeU32(p + i * 4, v);
    });
    return p;
  }

  private u64Array(values: readonly (bigint | number)[]): number {
    const p = this.sys.alloc(Math.max(8, values.length * 8), 8);
    const b = new Uint8Array(values.length * 8);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => {
      dv.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(v)), true);
    });
    this.sys.poke(p, b);
    return p;
  }

  private readU64Array(p: number, n: number): bigint[] {
    const dv = new DataView(this.sys.peek(p, n * 8).buffer);
    return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  }

  /** DRM_IOCTL_VERSION: driver name, date, description and version. */
  async version(): Promise<{
    name: string;
    date: string;
    desc: string;
    major: number;
    minor: number;
    patch: number;
  }> {
    const bufs = [this.sys.alloc(64), this.sys.alloc(64), this.sys.alloc(256)];
    const arg = this.sys.allocStruct(drmVersion, {
      name: bufs[0],
      name_len: 63,
      date: bufs[1],
      date_len: 63,
      desc: bufs[2],
      desc_len: 255,
    });
    await this.ioctl('DRM_IOCTL_VERSION', DRM_IOCTL_VERSION, arg);
    const v = this.sys.readStruct(drmVersion, arg);
    const str = (p: number, len: bigint, max: number) =>
      String.fromCharCode(...this.sys.peek(p, Math.min(Number(len), max)));
    return {
      name: str(bufs[0], v.name_len, 63),
      date: str(bufs[1], v.date_len, 63),
      desc: str(bufs[2], v.desc_len, 255),
      major: v.version_major,
      minor: v.version_minor,
      patch: v.version_patchlevel,
    };
  }

  /** DRM_IOCTL_GET_CAP. */
  async getCap(capability: number): Promise<bigint> {
    const arg = this.sys.allocStruct(drmGetCap, { capability });
    await this.ioctl('DRM_IOCTL_GET_CAP', DRM_IOCTL_GET_CAP, arg);
    return this.sys.readStruct(drmGetCap, arg).value;
  }

  /** DRM_IOCTL_MODE_CREATE_DUMB: a `width` x `height` buffer of `bpp` bits per pixel. */
  async createDumb(width: number, height: number, bpp: number): Promise<DumbBuffer> {
    const arg = this.sys.allocStruct(drmModeCreateDumb, { width, height, bpp });
    await this.ioctl('DRM_IOCTL_MODE_CREATE_DUMB', DRM_IOCTL_MODE_CREATE_DUMB, arg);
    const r = this.sys.readStruct(drmModeCreateDumb, arg);
    return { handle: r.handle, pitch: r.pitch, size: Number(r.size) };
  }

  /** DRM_IOCTL_MODE_MAP_DUMB: the fake offset to mmap the DRM fd at. */
  async mapDumb(handle: number): Promise<bigint> {
    const arg = this.sys.allocStruct(drmModeMapDumb, { handle });
    await this.ioctl('DRM_IOCTL_MODE_MAP_DUMB', DRM_IOCTL_MODE_MAP_DUMB, arg);
    return this.sys.readStruct(drmModeMapDumb, arg).offset;
  }

  /** MAP_DUMB then mmap(2) of `size` bytes, shared; returns the address. */
  async mmapDumb(handle: number, size: number, prot = PROT_READ | PROT_WRITE): Promise<number> {
    const offset = await this.mapDumb(handle);
    return checkErrno(await this.sys.mmap(0, size, prot, MAP_SHARED, this.fd, offset), 'mmap(drm)');
  }

  /** DRM_IOCTL_GEM_CLOSE. */
  async gemClose(handle: number): Promise<void> {
    await this.ioctl(
      'DRM_IOCTL_GEM_CLOSE',
      DRM_IOCTL_GEM_CLOSE,
      this.sys.allocStruct(drmGemClose, { handle }),
    );
  }

  /** DRM_IOCTL_PRIME_HANDLE_TO_FD: the GEM object as a dma-buf fd (flags default DRM_CLOEXEC|DRM_RDWR). */
  async primeHandleToFd(handle: number, flags = DRM_CLOEXEC | DRM_RDWR): Promise<number> {
    const arg = this.sys.allocStruct(drmPrimeHandle, { handle, flags, fd: -1 });
    await this.ioctl('DRM_IOCTL_PRIME_HANDLE_TO_FD', DRM_IOCTL_PRIME_HANDLE_TO_FD, arg);
    return this.sys.readStruct(drmPrimeHandle, arg).fd;
  }

  /** `primeHandleToFd` wrapped as a `DmaBuf`. */
  async exportDmaBuf(handle: number, flags = DRM_CLOEXEC | DRM_RDWR): Promise<DmaBuf> {
    return DmaBuf.fromFd(this.sys, await this.primeHandleToFd(handle, flags));
  }

  /** DRM_IOCTL_PRIME_FD_TO_HANDLE: the GEM handle of a dma-buf fd. */
  async primeFdToHandle(fd: number): Promise<number> {
    const arg = this.sys.allocStruct(drmPrimeHandle, { fd });
    await this.ioctl('DRM_IOCTL_PRIME_FD_TO_HANDLE', DRM_IOCTL_PRIME_FD_TO_HANDLE, arg);
    return this.sys.readStruct(drmPrimeHandle, arg).handle;
  }

  /** DRM_IOCTL_SYNCOBJ_CREATE. */
  async syncobjCreate(flags = 0): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjCreate, { flags });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_CREATE', DRM_IOCTL_SYNCOBJ_CREATE, arg);
    return this.sys.readStruct(drmSyncobjCreate, arg).handle;
  }

  /** DRM_IOCTL_SYNCOBJ_DESTROY. */
  async syncobjDestroy(handle: number): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjDestroy, { handle });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_DESTROY', DRM_IOCTL_SYNCOBJ_DESTROY, arg);
  }

  /** DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD without flags: a syncobj fd. */
  async syncobjHandleToFd(handle: number): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjHandle, { handle, fd: -1 });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD', DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, arg);
    return this.sys.readStruct(drmSyncobjHandle, arg).fd;
  }

  /** DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE without flags: a new handle for a syncobj fd. */
  async syncobjFdToHandle(fd: number): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjHandle, { fd });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE', DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, arg);
    return this.sys.readStruct(drmSyncobjHandle, arg).handle;
  }

  /** HANDLE_TO_FD with EXPORT_SYNC_FILE: a sync_file fd of the syncobj's current fence. */
  async syncobjExportSyncFile(handle: number): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjHandle, {
      handle,
      flags: DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
      fd: -1,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD', DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, arg);
    return this.sys.readStruct(drmSyncobjHandle, arg).fd;
  }

  /** FD_TO_HANDLE with IMPORT_SYNC_FILE: replaces the syncobj's fence with the sync_file's. */
  async syncobjImportSyncFile(handle: number, syncFileFd: number): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjHandle, {
      handle,
      flags: DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
      fd: syncFileFd,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE', DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, arg);
  }

  /** DRM_IOCTL_SYNCOBJ_WAIT; returns `first_signaled`. */
  async syncobjWait(handles: readonly number[], opts: SyncobjWaitOptions = {}): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjWait, {
      handles: this.u32Array(handles),
      count_handles: handles.length,
      timeout_nsec: opts.timeoutNsec ?? 0,
      flags: opts.flags ?? 0,
      deadline_nsec: opts.deadlineNsec ?? 0,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_WAIT', DRM_IOCTL_SYNCOBJ_WAIT, arg);
    return this.sys.readStruct(drmSyncobjWait, arg).first_signaled;
  }

  /** DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT; returns `first_signaled`. */
  async syncobjTimelineWait(
    handles: readonly number[],
    points: readonly (bigint | number)[],
    opts: SyncobjWaitOptions = {},
  ): Promise<number> {
    const arg = this.sys.allocStruct(drmSyncobjTimelineWait, {
      handles: this.u32Array(handles),
      points: this.u64Array(points),
      count_handles: handles.length,
      timeout_nsec: opts.timeoutNsec ?? 0,
      flags: opts.flags ?? 0,
      deadline_nsec: opts.deadlineNsec ?? 0,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT', DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, arg);
    return this.sys.readStruct(drmSyncobjTimelineWait, arg).first_signaled;
  }

  /** DRM_IOCTL_SYNCOBJ_RESET: removes the fences. */
  async syncobjReset(handles: readonly number[]): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjArray, {
      handles: this.u32Array(handles),
      count_handles: handles.length,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_RESET', DRM_IOCTL_SYNCOBJ_RESET, arg);
  }

  /** DRM_IOCTL_SYNCOBJ_SIGNAL: installs signalled fences. */
  async syncobjSignal(handles: readonly number[]): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjArray, {
      handles: this.u32Array(handles),
      count_handles: handles.length,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_SIGNAL', DRM_IOCTL_SYNCOBJ_SIGNAL, arg);
  }

  /** DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL: signals `points` (0: binary) of `handles`. */
  async syncobjTimelineSignal(
    handles: readonly number[],
    points: readonly (bigint | number)[],
  ): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjTimelineArray, {
      handles: this.u32Array(handles),
      points: this.u64Array(points),
      count_handles: handles.length,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL', DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, arg);
  }

  /** DRM_IOCTL_SYNCOBJ_QUERY: the timeline values (or last submitted points with the flag). */
  async syncobjQuery(handles: readonly number[], flags = 0): Promise<bigint[]> {
    const points = this.u64Array(handles.map(() => 0));
    const arg = this.sys.allocStruct(drmSyncobjTimelineArray, {
      handles: this.u32Array(handles),
      points,
      count_handles: handles.length,
      flags,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_QUERY', DRM_IOCTL_SYNCOBJ_QUERY, arg);
    return this.readU64Array(points, handles.length);
  }

  /** DRM_IOCTL_SYNCOBJ_TRANSFER: copies `src`@`srcPoint` to `dst`@`dstPoint` (0: binary). */
  async syncobjTransfer(
    dst: number,
    dstPoint: bigint | number,
    src: number,
    srcPoint: bigint | number,
    flags = 0,
  ): Promise<void> {
    const arg = this.sys.allocStruct(drmSyncobjTransfer, {
      src_handle: src,
      dst_handle: dst,
      src_point: srcPoint,
      dst_point: dstPoint,
      flags,
    });
    await this.ioctl('DRM_IOCTL_SYNCOBJ_TRANSFER', DRM_IOCTL_SYNCOBJ_TRANSFER, arg);
  }

  /** DRM_IOCTL_VGEM_FENCE_ATTACH: a new vgem fence on the object; returns its id. */
  async vgemFenceAttach(handle: number, flags = 0): Promise<number> {
    const arg = this.sys.allocStruct(drmVgemFenceAttach, { handle, flags });
    await this.ioctl('DRM_IOCTL_VGEM_FENCE_ATTACH', DRM_IOCTL_VGEM_FENCE_ATTACH, arg);
    return this.sys.readStruct(drmVgemFenceAttach, arg).out_fence;
  }

  /** DRM_IOCTL_VGEM_FENCE_SIGNAL. */
  async vgemFenceSignal(fence: number): Promise<void> {
    const arg = this.sys.allocStruct(drmVgemFenceSignal, { fence });
    await this.ioctl('DRM_IOCTL_VGEM_FENCE_SIGNAL', DRM_IOCTL_VGEM_FENCE_SIGNAL, arg);
  }

  /** close(2) of the device fd. */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), 'close(drm)');
  }
}
