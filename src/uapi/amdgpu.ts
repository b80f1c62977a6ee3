/**
 * The amdgpu userspace ABI that dma-buf sharing needs (include/uapi/drm/amdgpu_drm.h,
 * Linux 6.12) and a libdrm_amdgpu-like typed wrapper.
 *
 * ABI: the GPU's DRM render node (/dev/dri/renderD<128+N>, DRM_IOCTL_VERSION name
 * "amdgpu"). DRM_IOCTL_AMDGPU_GEM_CREATE (nr 0x40, union drm_amdgpu_gem_create, 32
 * bytes: in {bo_size, alignment, domains, domain_flags}, out {handle}) and
 * DRM_IOCTL_AMDGPU_GEM_MMAP (nr 0x41, union drm_amdgpu_gem_mmap, 8 bytes: in {handle},
 * out {addr_ptr}: the fake offset to mmap the render node at). PRIME goes through the
 * DRM core ioctls (PRIME_HANDLE_TO_FD / FD_TO_HANDLE).
 *
 * Model extension, not in Linux: DRM_IOCTL_AMDGPU_MODEL_COPY (nr DRM_COMMAND_BASE +
 * 0x50, struct drm_amdgpu_model_copy, 64 bytes) runs one SDMA-like job on the GPU —
 * fill a BO range with an 8-byte pattern, copy between two BOs (own or imported), or
 * copy between host memory and a BO — after an optional in-fence (sync_file fd), adds
 * its fence to the BOs' reservation objects (WRITE for the destination, READ for the
 * source) and returns a sync_file out-fence. Real userspace builds IBs and submits them
 * with DRM_IOCTL_AMDGPU_CS; the model keeps only what the dma-buf flows need.
 *
 * Wrapper: `AmdgpuDevice.open(sys, n)` (the n-th amdgpu render node), `gemCreate`,
 * `mmapOffset`, `mmap`, `primeHandleToFd`, `primeFdToHandle`, `copy`, `waitFence`;
 * failures throw `ErrnoError`.
 */
import { O_CLOEXEC, O_RDWR } from '../kernel/fcntl.ts';
import {
  DRM_CLOEXEC,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_VERSION,
  DRM_IOWR,
  DRM_RDWR,
  drmGemClose,
  drmPrimeHandle,
  drmVersion,
} from './drm.ts';
import { checkErrno, ErrnoError } from './errno-error.ts';
import { SYNC_IOC_FILE_INFO } from './ioctl.ts';
import { defineStruct, pollfd, syncFileInfo } from './structs.ts';
import type { Sys } from './sys.ts';

/** PCI vendor id of AMD/ATI graphics functions (PCI_VENDOR_ID_ATI). */
export const PCI_VENDOR_ID_ATI = 0x1002;

/** DRM_AMDGPU_GEM_CREATE. */
export const DRM_AMDGPU_GEM_CREATE = 0x00;
/** DRM_AMDGPU_GEM_MMAP. */
export const DRM_AMDGPU_GEM_MMAP = 0x01;
/** Model extension: the copy-job ioctl's nr (outside 6.12's amdgpu range). */
export const DRM_AMDGPU_MODEL_COPY = 0x50;

/** AMDGPU_GEM_DOMAIN_CPU: system memory the GPU cannot reach. */
export const AMDGPU_GEM_DOMAIN_CPU = 0x1;
/** AMDGPU_GEM_DOMAIN_GTT: system memory mapped through the GART. */
export const AMDGPU_GEM_DOMAIN_GTT = 0x2;
/** AMDGPU_GEM_DOMAIN_VRAM: device memory. */
export const AMDGPU_GEM_DOMAIN_VRAM = 0x4;
/** AMDGPU_GEM_DOMAIN_GDS. */
export const AMDGPU_GEM_DOMAIN_GDS = 0x8;
/** AMDGPU_GEM_DOMAIN_GWS. */
export const AMDGPU_GEM_DOMAIN_GWS = 0x10;
/** AMDGPU_GEM_DOMAIN_OA. */
export const AMDGPU_GEM_DOMAIN_OA = 0x20;
/** AMDGPU_GEM_DOMAIN_DOORBELL. */
export const AMDGPU_GEM_DOMAIN_DOORBELL = 0x40;
/** AMDGPU_GEM_DOMAIN_MASK (6.12: CPU through DOORBELL). */
export const AMDGPU_GEM_DOMAIN_MASK = 0x7f;

/** AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED: VRAM placement must be CPU-visible (inside the BAR). */
export const AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED = 1 << 0;
/** AMDGPU_GEM_CREATE_NO_CPU_ACCESS: never mapped by the CPU. */
export const AMDGPU_GEM_CREATE_NO_CPU_ACCESS = 1 << 1;
/** AMDGPU_GEM_CREATE_CPU_GTT_USWC: write-combined GTT. */
export const AMDGPU_GEM_CREATE_CPU_GTT_USWC = 1 << 2;
/** AMDGPU_GEM_CREATE_VRAM_CLEARED. */
export const AMDGPU_GEM_CREATE_VRAM_CLEARED = 1 << 3;
/** AMDGPU_GEM_CREATE_VRAM_CONTIGUOUS (kernel-internal for userspace: refused by GEM_CREATE). */
export const AMDGPU_GEM_CREATE_VRAM_CONTIGUOUS = 1 << 5;
/** AMDGPU_GEM_CREATE_VM_ALWAYS_VALID: a per-VM BO (cannot be exported). */
export const AMDGPU_GEM_CREATE_VM_ALWAYS_VALID = 1 << 6;
/** AMDGPU_GEM_CREATE_EXPLICIT_SYNC. */
export const AMDGPU_GEM_CREATE_EXPLICIT_SYNC = 1 << 7;
/** AMDGPU_GEM_CREATE_ENCRYPTED (TMZ). */
export const AMDGPU_GEM_CREATE_ENCRYPTED = 1 << 10;
/** AMDGPU_GEM_CREATE_DISCARDABLE. */
export const AMDGPU_GEM_CREATE_DISCARDABLE = 1 << 12;
/** AMDGPU_GEM_CREATE_GFX12_DCC. */
export const AMDGPU_GEM_CREATE_GFX12_DCC = 1 << 16;

/** union drm_amdgpu_gem_create, as `in` (32 bytes). */
export const drmAmdgpuGemCreateIn = defineStruct('drm_amdgpu_gem_create_in', [
  ['bo_size', 'u64'],
  ['alignment', 'u64'],
  ['domains', 'u64'],
  ['domain_flags', 'u64'],
] as const);
/** union drm_amdgpu_gem_create, as `out` (handle, then padding to the union's 32 bytes). */
export const drmAmdgpuGemCreateOut = defineStruct('drm_amdgpu_gem_create_out', [
  ['handle', 'u32'],
  ['_pad', 'u32'],
  ['_rest0', 'u64'],
  ['_rest1', 'u64'],
  ['_rest2', 'u64'],
] as const);
/** union drm_amdgpu_gem_mmap, as `in` (8 bytes). */
export const drmAmdgpuGemMmapIn = defineStruct('drm_amdgpu_gem_mmap_in', [
  ['handle', 'u32'],
  ['_pad', 'u32'],
] as const);
/** union drm_amdgpu_gem_mmap, as `out` (8 bytes). */
export const drmAmdgpuGemMmapOut = defineStruct('drm_amdgpu_gem_mmap_out', [['addr_ptr', 'u64']] as const);

/** DRM_IOCTL_AMDGPU_GEM_CREATE (0xc0206440). */
export const DRM_IOCTL_AMDGPU_GEM_CREATE = DRM_IOWR(0x40 + DRM_AMDGPU_GEM_CREATE, drmAmdgpuGemCreateIn.size);
/** DRM_IOCTL_AMDGPU_GEM_MMAP (0xc0086441). */
export const DRM_IOCTL_AMDGPU_GEM_MMAP = DRM_IOWR(0x40 + DRM_AMDGPU_GEM_MMAP, drmAmdgpuGemMmapIn.size);

/** Model copy job: fill `size` bytes of the destination BO with the 8-byte `pattern`. */
export const AMDGPU_MODEL_COPY_FILL = 0;
/** Model copy job: BO `src_handle` -> BO `dst_handle`. */
export const AMDGPU_MODEL_COPY_BO_TO_BO = 1;
/** Model copy job: host user memory `host_addr` -> BO `dst_handle`. */
export const AMDGPU_MODEL_COPY_HOST_TO_BO = 2;
/** Model copy job: BO `src_handle` -> host user memory `host_addr`. */
export const AMDGPU_MODEL_COPY_BO_TO_HOST = 3;

/** Model extension: struct drm_amdgpu_model_copy (64 bytes); `out_fence` is written back. */
export const drmAmdgpuModelCopy = defineStruct('drm_amdgpu_model_copy', [
  ['dst_handle', 'u32'],
  ['src_handle', 'u32'],
  ['dst_offset', 'u64'],
  ['src_offset', 'u64'],
  ['size', 'u64'],
  ['pattern', 'u64'],
  ['host_addr', 'u64'],
  ['op', 'u32'],
  ['in_fence', 's32'],
  ['out_fence', 's32'],
  ['flags', 'u32'],
] as const);
/** Model extension: DRM_IOCTL_AMDGPU_MODEL_COPY. */
export const DRM_IOCTL_AMDGPU_MODEL_COPY = DRM_IOWR(0x40 + DRM_AMDGPU_MODEL_COPY, drmAmdgpuModelCopy.size);

/** What `AmdgpuDevice#copy` takes. */
export interface AmdgpuCopyJob {
  /** AMDGPU_MODEL_COPY_*. */
  op: number;
  /** Destination BO handle (FILL, BO_TO_BO, HOST_TO_BO). */
  dst?: number;
  /** Source BO handle (BO_TO_BO, BO_TO_HOST). */
  src?: number;
  /** Byte offset in the destination BO. */
  dstOffset?: number;
  /** Byte offset in the source BO. */
  srcOffset?: number;
  /** Bytes. */
  size: number;
  /** FILL pattern (8 bytes, little-endian). */
  pattern?: bigint;
  /** Host user address (HOST_TO_BO, BO_TO_HOST). */
  host?: number;
  /** In-fence sync_file fd, or -1. */
  inFence?: number;
}

/** Reads the driver name of an open DRM fd with DRM_IOCTL_VERSION, or null. */
async function drmDriverName(sys: Sys, fd: number): Promise<string | null> {
  const name = sys.alloc(64);
  const v = sys.allocStruct(drmVersion, { name_len: 64, name });
  if ((await sys.ioctl(fd, DRM_IOCTL_VERSION, v)) < 0) return null;
  return sys.cstring(name);
}

/** An open amdgpu render node, with libdrm_amdgpu-like typed calls. */
export class AmdgpuDevice {
  /** Use `AmdgpuDevice.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The render-node fd. */
    readonly fd: number,
    /** The node's path. */
    readonly path: string,
  ) {}

  /**
   * Opens the render node of the `n`-th amdgpu GPU (as drmGetDevices + amdgpu_device_initialize
   * find it: every render node whose DRM_IOCTL_VERSION name is "amdgpu", in minor order).
   */
  static async open(sys: Sys, n = 0): Promise<AmdgpuDevice> {
    let seen = 0;
    for (let minor = 128; minor < 192; minor++) {
      const path = `/dev/dri/renderD${minor}`;
      const fd = await sys.open(path, O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;
      if ((await drmDriverName(sys, fd)) === 'amdgpu' && seen++ === n) return new AmdgpuDevice(sys, fd, path);
      await sys.close(fd);
    }
    throw new ErrnoError(
      2,
      `open(amdgpu GPU ${n}): no such render node; give the machine a GPU with vendor 0x1002 (topology preset "gpu-workstation") and register the driver with amdgpuInit()`,
    );
  }

  /** DRM_IOCTL_AMDGPU_GEM_CREATE: the new BO's handle. */
  async gemCreate(size: number, domains: number, flags = 0, alignment = 0): Promise<number> {
    const r = await this.gemCreateRaw(size, domains, flags, alignment);
    checkErrno(r.rc, 'ioctl(DRM_IOCTL_AMDGPU_GEM_CREATE)');
    return r.handle;
  }

  /** DRM_IOCTL_AMDGPU_GEM_CREATE without throwing: the ioctl's result and the handle. */
  async gemCreateRaw(
    size: number | bigint,
    domains: number | bigint,
    flags: number | bigint = 0,
    alignment: number | bigint = 0,
  ): Promise<{ rc: number; handle: number }> {
    const a = this.sys.allocStruct(drmAmdgpuGemCreateIn, {
      bo_size: size,
      alignment,
      domains,
      domain_flags: flags,
    });
    const rc = await this.sys.ioctl(this.fd, DRM_IOCTL_AMDGPU_GEM_CREATE, a);
    return { rc, handle: Number(this.sys.readStruct(drmAmdgpuGemCreateOut, a).handle) };
  }

  /** DRM_IOCTL_AMDGPU_GEM_MMAP: the fake offset to mmap the render node at. */
  async mmapOffset(handle: number): Promise<number> {
    const a = this.sys.allocStruct(drmAmdgpuGemMmapIn, { handle });
    checkErrno(
      await this.sys.ioctl(this.fd, DRM_IOCTL_AMDGPU_GEM_MMAP, a),
      'ioctl(DRM_IOCTL_AMDGPU_GEM_MMAP)',
    );
    return Number(this.sys.readStruct(drmAmdgpuGemMmapOut, a).addr_ptr);
  }

  /** GEM_MMAP then a shared read/write mmap of `size` bytes: the user address. */
  async mmap(handle: number, size: number): Promise<number> {
    const off = await this.mmapOffset(handle);
    return checkErrno(await this.sys.mmap(0, size, 3, 1, this.fd, off), 'mmap(amdgpu BO)');
  }

  /** DRM_IOCTL_PRIME_HANDLE_TO_FD (default flags O_RDWR | O_CLOEXEC, as rdma-core's DrmDmaBuf passes): the dma-buf fd. */
  async primeHandleToFd(handle: number, flags = DRM_RDWR | DRM_CLOEXEC): Promise<number> {
    const a = this.sys.allocStruct(drmPrimeHandle, { handle, flags, fd: -1 });
    checkErrno(
      await this.sys.ioctl(this.fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, a),
      'ioctl(DRM_IOCTL_PRIME_HANDLE_TO_FD)',
    );
    return Number(this.sys.readStruct(drmPrimeHandle, a).fd);
  }

  /** DRM_IOCTL_PRIME_FD_TO_HANDLE: a handle for the dma-buf at `fd`. */
  async primeFdToHandle(fd: number): Promise<number> {
    const a = this.sys.allocStruct(drmPrimeHandle, { handle: 0, flags: 0, fd });
    checkErrno(
      await this.sys.ioctl(this.fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, a),
      'ioctl(DRM_IOCTL_PRIME_FD_TO_HANDLE)',
    );
    return Number(this.sys.readStruct(drmPrimeHandle, a).handle);
  }

  /** DRM_IOCTL_GEM_CLOSE. */
  async gemClose(handle: number): Promise<void> {
    const a = this.sys.allocStruct(drmGemClose, { handle });
    checkErrno(await this.sys.ioctl(this.fd, DRM_IOCTL_GEM_CLOSE, a), 'ioctl(DRM_IOCTL_GEM_CLOSE)');
  }

  /** Model copy job; returns the out-fence sync_file fd. */
  async copy(job: AmdgpuCopyJob): Promise<number> {
    const a = this.sys.allocStruct(drmAmdgpuModelCopy, {
      dst_handle: job.dst ?? 0,
      src_handle: job.src ?? 0,
      dst_offset: job.dstOffset ?? 0,
      src_offset: job.srcOffset ?? 0,
      size: job.size,
      pattern: job.pattern ?? 0n,
      host_addr: job.host ?? 0,
      op: job.op,
      in_fence: job.inFence ?? -1,
      out_fence: -1,
    });
    checkErrno(
      await this.sys.ioctl(this.fd, DRM_IOCTL_AMDGPU_MODEL_COPY, a),
      'ioctl(DRM_IOCTL_AMDGPU_MODEL_COPY)',
    );
    return Number(this.sys.readStruct(drmAmdgpuModelCopy, a).out_fence);
  }

  /** Waits for an out-fence (poll for POLLIN): 1 signalled, or the job's negative errno. Closes the fd. */
  async waitFence(fenceFd: number): Promise<number> {
    const p = this.sys.allocStruct(pollfd, { fd: fenceFd, events: 0x1 });
    checkErrno(await this.sys.poll(p, 1, -1), 'poll(out-fence)');
    const info = this.sys.allocStruct(syncFileInfo);
    checkErrno(await this.sys.ioctl(fenceFd, SYNC_IOC_FILE_INFO, info), 'ioctl(SYNC_IOC_FILE_INFO)');
    await this.sys.close(fenceFd);
    return Number(this.sys.readStruct(syncFileInfo, info).status);
  }

  /** Runs a copy job and waits for it: 1 on success. */
  async copySync(job: AmdgpuCopyJob): Promise<number> {
    return this.waitFence(await this.copy(job));
  }

  /** close(2) of the render node. */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), `close(${this.path})`);
  }
}
