/**
 * The habanalabs accelerator userspace ABI (include/uapi/drm/habanalabs_accel.h, Linux
 * 6.12) and an hl-thunk-like typed wrapper.
 *
 * ABI: /dev/accel/accel<N> (major 261). DRM_IOCTL_HL_INFO (struct hl_info_args, 24
 * bytes) with HL_INFO_HW_IP_INFO and HL_INFO_DRAM_USAGE; DRM_IOCTL_HL_MEMORY (union
 * hl_mem_args, 40 bytes) with HL_MEM_OP_ALLOC, FREE, MAP, UNMAP and EXPORT_DMABUF_FD.
 * For EXPORT_DMABUF_FD the `flags` word carries the dma-buf file flags (O_RDWR |
 * O_CLOEXEC as hl-thunk passes them), and the driver writes `out.fd` even on failure
 * (-EBADF then).
 *
 * Model extension, not in Linux: DRM_IOCTL_HL_MODEL_DMA (nr DRM_COMMAND_BASE + 0x20,
 * struct hl_model_dma_job) submits one DMA job to the device's DMA engine — fill a
 * device VA range with an 8-byte pattern, or copy between host memory and device
 * memory — waiting for an optional in-fence (a sync_file fd) and returning an out-fence
 * as a sync_file fd. Real Gaudi userspace builds LIN_DMA packets in a command buffer and
 * submits them with HL_IOCTL_CS; the model keeps only what the dma-buf flow needs.
 *
 * Wrapper: `HlDevice.open(sys, n)`, then `info()`, `alloc`, `map`, `exportDmabufFd`,
 * `dmaFill`, `dmaHostToDevice`, ...; failures throw `ErrnoError`.
 */
import { O_CLOEXEC, O_RDWR } from '../kernel/fcntl.ts';
import { DRM_IOWR } from './drm.ts';
import { checkErrno } from './errno-error.ts';
import { SYNC_IOC_FILE_INFO } from './ioctl.ts';
import { bytes, defineStruct, pollfd, syncFileInfo } from './structs.ts';
import type { Sys } from './sys.ts';

/** Major number of accel char devices (ACCEL_MAJOR). */
export const ACCEL_MAJOR = 261;

/** Path of accelerator `n`. */
export function accelPath(n: number): string {
  return `/dev/accel/accel${n}`;
}

/** HL_IOCTL_INFO. */
export const HL_IOCTL_INFO = 0x00;
/** HL_IOCTL_CB. */
export const HL_IOCTL_CB = 0x01;
/** HL_IOCTL_CS. */
export const HL_IOCTL_CS = 0x02;
/** HL_IOCTL_WAIT_CS. */
export const HL_IOCTL_WAIT_CS = 0x03;
/** HL_IOCTL_MEMORY. */
export const HL_IOCTL_MEMORY = 0x04;
/** HL_IOCTL_DEBUG. */
export const HL_IOCTL_DEBUG = 0x05;
/** Model extension: the DMA-job ioctl's nr (outside 6.12's HL_COMMAND range). */
export const HL_IOCTL_MODEL_DMA = 0x20;

/** HL_MEM_OP_ALLOC. */
export const HL_MEM_OP_ALLOC = 0;
/** HL_MEM_OP_FREE. */
export const HL_MEM_OP_FREE = 1;
/** HL_MEM_OP_MAP. */
export const HL_MEM_OP_MAP = 2;
/** HL_MEM_OP_UNMAP. */
export const HL_MEM_OP_UNMAP = 3;
/** HL_MEM_OP_MAP_BLOCK. */
export const HL_MEM_OP_MAP_BLOCK = 4;
/** HL_MEM_OP_EXPORT_DMABUF_FD. */
export const HL_MEM_OP_EXPORT_DMABUF_FD = 5;
/** HL_MEM_OP_TS_ALLOC. */
export const HL_MEM_OP_TS_ALLOC = 6;

/** HL_MEM_CONTIGUOUS: one physically contiguous allocation. */
export const HL_MEM_CONTIGUOUS = 0x1;
/** HL_MEM_SHARED: other contexts may map the handle. */
export const HL_MEM_SHARED = 0x2;
/** HL_MEM_USERPTR: MAP of host memory. */
export const HL_MEM_USERPTR = 0x4;
/** HL_MEM_FORCE_HINT: MAP must use the hint address. */
export const HL_MEM_FORCE_HINT = 0x8;
/** HL_MEM_PREFETCH. */
export const HL_MEM_PREFETCH = 0x40;

/** HL_INFO_HW_IP_INFO. */
export const HL_INFO_HW_IP_INFO = 0;
/** HL_INFO_DRAM_USAGE. */
export const HL_INFO_DRAM_USAGE = 2;

/** struct hl_info_args: 24 bytes. */
export const hlInfoArgs = defineStruct('hl_info_args', [
  ['return_pointer', 'u64'],
  ['return_size', 'u32'],
  ['op', 'u32'],
  ['ctx_id', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct hl_info_hw_ip_info (6.12 layout, 304 bytes). */
export const hlInfoHwIpInfo = defineStruct('hl_info_hw_ip_info', [
  ['sram_base_address', 'u64'],
  ['dram_base_address', 'u64'],
  ['dram_size', 'u64'],
  ['sram_size', 'u32'],
  ['num_of_events', 'u32'],
  ['device_id', 'u32'],
  ['module_id', 'u32'],
  ['decoder_enabled_mask', 'u32'],
  ['first_available_interrupt_id', 'u16'],
  ['server_type', 'u16'],
  ['cpld_version', 'u32'],
  ['psoc_pci_pll_nr', 'u32'],
  ['psoc_pci_pll_nf', 'u32'],
  ['psoc_pci_pll_od', 'u32'],
  ['psoc_pci_pll_div_factor', 'u32'],
  ['tpc_enabled_mask', 'u8'],
  ['dram_enabled', 'u8'],
  ['security_enabled', 'u8'],
  ['mme_master_slave_mode', 'u8'],
  ['cpucp_version', bytes(128)],
  ['card_name', bytes(16)],
  ['tpc_enabled_mask_ext', 'u64'],
  ['dram_page_size', 'u64'],
  ['edma_enabled_mask', 'u32'],
  ['number_of_user_interrupts', 'u16'],
  ['reserved1', 'u8'],
  ['reserved2', 'u8'],
  ['reserved3', 'u64'],
  ['device_mem_alloc_default_page_size', 'u64'],
  ['reserved4', 'u64'],
  ['reserved5', 'u64'],
  ['reserved6', 'u32'],
  ['reserved7', 'u8'],
  ['revision_id', 'u8'],
  ['tpc_interrupt_id', 'u16'],
  ['rotator_enabled_mask', 'u32'],
  ['reserved9', 'u32'],
  ['engine_core_interrupt_reg_addr', 'u64'],
  ['reserved_dram_size', 'u64'],
] as const);

/** struct hl_info_dram_usage: 16 bytes. */
export const hlInfoDramUsage = defineStruct('hl_info_dram_usage', [
  ['dram_free_mem', 'u64'],
  ['ctx_dram_mem', 'u64'],
] as const);

/**
 * struct hl_mem_in (40 bytes). The 24-byte union is seen as three u64 words: `alloc`
 * {mem_size, page_size}, `free` {handle}, `map_device` {hint_addr, handle}, `unmap`
 * {device_virt_addr}, `export_dmabuf_fd` {addr, mem_size, offset}.
 */
export const hlMemIn = defineStruct('hl_mem_in', [
  ['arg0', 'u64'],
  ['arg1', 'u64'],
  ['arg2', 'u64'],
  ['op', 'u32'],
  ['flags', 'u32'],
  ['ctx_id', 'u32'],
  ['num_of_elements', 'u32'],
] as const);

/** union hl_mem_args as written back: `out` over the same 40 bytes (handle/device_virt_addr or fd at offset 0). */
export const hlMemOut = defineStruct('hl_mem_out', [
  ['handle', 'u64'],
  ['block_size', 'u32'],
  ['pad', 'u32'],
  ['rest0', 'u64'],
  ['rest1', 'u64'],
  ['rest2', 'u64'],
] as const);

/** DRM_IOCTL_HL_INFO. */
export const DRM_IOCTL_HL_INFO = DRM_IOWR(0x40 + HL_IOCTL_INFO, hlInfoArgs.size);
/** DRM_IOCTL_HL_MEMORY (0xc0286444). */
export const DRM_IOCTL_HL_MEMORY = DRM_IOWR(0x40 + HL_IOCTL_MEMORY, hlMemIn.size);

/** Model DMA job: fill a device VA range with the 8-byte `pattern`. */
export const HL_MODEL_DMA_FILL = 0;
/** Model DMA job: copy `size` bytes from host user memory `src_addr` to device VA `dst_addr`. */
export const HL_MODEL_DMA_HOST_TO_DEVICE = 1;
/** Model DMA job: copy `size` bytes from device VA `src_addr` to host user memory `dst_addr`. */
export const HL_MODEL_DMA_DEVICE_TO_HOST = 2;

/** Model extension: struct hl_model_dma_job (48 bytes); `out_fence` is written back. */
export const hlModelDmaJob = defineStruct('hl_model_dma_job', [
  ['dst_addr', 'u64'],
  ['src_addr', 'u64'],
  ['size', 'u64'],
  ['pattern', 'u64'],
  ['op', 'u32'],
  ['in_fence', 's32'],
  ['out_fence', 's32'],
  ['flags', 'u32'],
] as const);

/** Model extension: DRM_IOCTL_HL_MODEL_DMA. */
export const DRM_IOCTL_HL_MODEL_DMA = DRM_IOWR(0x40 + HL_IOCTL_MODEL_DMA, hlModelDmaJob.size);

/** What `HlDevice#info` returns. */
export interface HlHwIpInfo {
  /** PCI device id. */
  deviceId: number;
  /** Device physical address of DRAM. */
  dramBaseAddress: bigint;
  /** DRAM size available to users, bytes. */
  dramSize: bigint;
  /** DRAM page size, bytes. */
  dramPageSize: bigint;
  /** Whether the device has DRAM. */
  dramEnabled: boolean;
  /** Card name. */
  cardName: string;
}

/** An open accelerator, with hl-thunk-like typed calls. */
export class HlDevice {
  /** Use `HlDevice.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The device fd. */
    readonly fd: number,
  ) {}

  /** Opens /dev/accel/accel<n>. */
  static async open(sys: Sys, n = 0): Promise<HlDevice> {
    return new HlDevice(
      sys,
      checkErrno(await sys.open(accelPath(n), O_RDWR | O_CLOEXEC), `open(${accelPath(n)})`),
    );
  }

  /** HL_INFO_HW_IP_INFO. */
  async info(): Promise<HlHwIpInfo> {
    const out = this.sys.alloc(hlInfoHwIpInfo.size, 8);
    const arg = this.sys.allocStruct(hlInfoArgs, {
      return_pointer: out,
      return_size: hlInfoHwIpInfo.size,
      op: HL_INFO_HW_IP_INFO,
    });
    checkErrno(await this.sys.ioctl(this.fd, DRM_IOCTL_HL_INFO, arg), 'ioctl(HL_INFO_HW_IP_INFO)');
    const v = this.sys.readStruct(hlInfoHwIpInfo, out);
    const name = v.card_name as Uint8Array;
    const nul = name.indexOf(0);
    return {
      deviceId: Number(v.device_id),
      dramBaseAddress: v.dram_base_address as bigint,
      dramSize: v.dram_size as bigint,
      dramPageSize: v.dram_page_size as bigint,
      dramEnabled: Number(v.dram_enabled) !== 0,
      cardName: new TextDecoder().decode(name.subarray(0, nul < 0 ? name.length : nul)),
    };
  }

  /** Raw DRM_IOCTL_HL_MEMORY: returns the ioctl result and the written-back args. */
  async memory(
    op: number,
    args: { arg0?: bigint | number; arg1?: bigint | number; arg2?: bigint | number; flags?: number },
  ): Promise<{ rc: number; out: bigint; fd: number }> {
    const addr = this.sys.allocStruct(hlMemIn, {
      arg0: args.arg0 ?? 0,
      arg1: args.arg1 ?? 0,
      arg2: args.arg2 ?? 0,
      op,
      flags: args.flags ?? 0,
    });
    const rc = await this.sys.ioctl(this.fd, DRM_IOCTL_HL_MEMORY, addr);
    const out = this.sys.readStruct(hlMemOut, addr).handle as bigint;
    return { rc, out, fd: Number(BigInt.asIntN(32, out & 0xffffffffn)) };
  }

  /** HL_MEM_OP_ALLOC: a handle for `size` bytes of device memory. */
  async alloc(size: number, opts: { contiguous?: boolean; shared?: boolean } = {}): Promise<bigint> {
    const flags = (opts.contiguous ? HL_MEM_CONTIGUOUS : 0) | (opts.shared ? HL_MEM_SHARED : 0);
    const r = await this.memory(HL_MEM_OP_ALLOC, { arg0: size, flags });
    checkErrno(r.rc, 'ioctl(HL_MEM_OP_ALLOC)');
    return r.out;
  }

  /** HL_MEM_OP_FREE. */
  async free(handle: bigint): Promise<void> {
    checkErrno((await this.memory(HL_MEM_OP_FREE, { arg0: handle })).rc, 'ioctl(HL_MEM_OP_FREE)');
  }

  /** HL_MEM_OP_MAP of device memory: the device VA. */
  async map(handle: bigint, hint = 0n): Promise<bigint> {
    const r = await this.memory(HL_MEM_OP_MAP, { arg0: hint, arg1: handle });
    checkErrno(r.rc, 'ioctl(HL_MEM_OP_MAP)');
    return r.out;
  }

  /** HL_MEM_OP_UNMAP. */
  async unmap(va: bigint): Promise<void> {
    checkErrno((await this.memory(HL_MEM_OP_UNMAP, { arg0: va })).rc, 'ioctl(HL_MEM_OP_UNMAP)');
  }

  /** HL_MEM_OP_EXPORT_DMABUF_FD (flags O_RDWR | O_CLOEXEC, as hl-thunk forces): the dma-buf fd. */
  async exportDmabufFd(va: bigint, size: number, offset = 0, flags = O_RDWR | O_CLOEXEC): Promise<number> {
    const r = await this.memory(HL_MEM_OP_EXPORT_DMABUF_FD, { arg0: va, arg1: size, arg2: offset, flags });
    checkErrno(r.rc, 'ioctl(HL_MEM_OP_EXPORT_DMABUF_FD)');
    return r.fd;
  }

  /** Model DMA job; returns the out-fence sync_file fd. */
  async dmaJob(job: {
    op: number;
    dst: bigint | number;
    src?: bigint | number;
    size: number;
    pattern?: bigint;
    inFence?: number;
  }): Promise<number> {
    const addr = this.sys.allocStruct(hlModelDmaJob, {
      dst_addr: job.dst,
      src_addr: job.src ?? 0,
      size: job.size,
      pattern: job.pattern ?? 0n,
      op: job.op,
      in_fence: job.inFence ?? -1,
      out_fence: -1,
    });
    const rc = await this.sys.ioctl(this.fd, DRM_IOCTL_HL_MODEL_DMA, addr);
    checkErrno(rc, 'ioctl(HL_MODEL_DMA)');
    return Number(this.sys.readStruct(hlModelDmaJob, addr).out_fence);
  }

  /**
   * Waits for a job's out-fence (poll for POLLIN) and returns its sync_file status:
   * 1 signalled, a negative errno if the job failed (-EIO after a device reset).
   */
  async waitFence(fenceFd: number, timeoutMs = -1): Promise<number> {
    const p = this.sys.allocStruct(pollfd, { fd: fenceFd, events: 0x1 | 0x8 });
    checkErrno(await this.sys.poll(p, 1, timeoutMs), 'poll(out-fence)');
    const info = this.sys.allocStruct(syncFileInfo);
    checkErrno(await this.sys.ioctl(fenceFd, SYNC_IOC_FILE_INFO, info), 'ioctl(SYNC_IOC_FILE_INFO)');
    return Number(this.sys.readStruct(syncFileInfo, info).status);
  }

  /** close(2) of the device fd. */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), 'close(accel)');
  }
}
