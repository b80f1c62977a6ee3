/**
 * The habanalabs device, its fixed properties and its DRAM
 * (drivers/accel/habanalabs/common/habanalabs.h struct hl_device, struct
 * asic_fixed_properties, struct hl_ctx, struct hl_vm, struct hl_vm_phys_pg_pack, struct
 * hl_vm_hash_node; gaudi2/gaudi2.c gaudi2_set_fixed_properties; include/gaudi2/gaudi2.h).
 *
 * One `HlDevice` per bound PCI function: the DRAM (real bytes, no struct pages), the
 * DRAM BAR (`dram_pci_bar_start` = BAR 4's bus address, `dram_pci_bar_size` = its
 * length, which may be smaller than DRAM), the physical page pool over
 * `[dram_user_base_address, dram_end_address)`, the idr of physical page packs (handles
 * from 1), and the device's operational state. Each open of /dev/accel/accelN gets an
 * `HlCtx` (the compute context: ASID, the VA hash of its mappings, its DRAM VA range).
 *
 * Gaudi2-like defaults: 96 GiB of HBM, DRAM page size 768 MiB (16 × 6 HBMs × 8 MiB, not a
 * power of two, so the pool's granularity is DRAM_POOL_PAGE_SIZE = 8 MiB), the first DRAM
 * page reserved for the driver and firmware, a DRAM MMU (dram_supports_virtual_memory).
 * Model note: Gaudi2's DRAM_PHYS_BASE (0x1001000000000000) and its VA space lie above
 * 2^53, which JS numbers cannot hold exactly; the model rebases DRAM to 2^52 and puts
 * the DRAM VA range right after it, preserving sizes, alignment and order.
 */
import type { Device } from '../../../kernel/device.ts';
import { currentKernel } from '../../../kernel/kernel.ts';
import { Idr } from '../../../kernel/lib/idr.ts';
import { DeviceMemory, type IomemRegion } from '../../../kernel/mm/iomem.ts';
import type { PciDev } from '../../../kernel/pci/pci.ts';
import type { TransferModel } from '../../../kernel/pci/transfer.ts';
import { traceMemInUse } from '../../../kernel/trace.ts';
import type { HlDmaEngine } from './command-submission.ts';

/** SZ_8M: pool granularity when the DRAM page size is not a power of two. */
export const DRAM_POOL_PAGE_SIZE = 8 * 1024 * 1024;
/** Model DRAM physical base (see the module comment). */
export const HL_MODEL_DRAM_PHYS_BASE = 2 ** 52;
/** PCI id of Gaudi2 (PCI_IDS_GAUDI2). */
export const PCI_IDS_GAUDI2 = 0x1020;
/** DRAM_BAR_ID of Gaudi2. */
export const GAUDI2_DRAM_BAR_ID = 4;
/** MEM_HANDLE_INVALID: the handle stored in hash nodes of host (userptr) mappings. */
export const MEM_HANDLE_INVALID = 2 ** 64 - 1;

/** The device's fixed properties (struct asic_fixed_properties, the fields the model uses). */
export interface AsicFixedProperties {
  /** PCI device id. */
  readonly deviceId: number;
  /** Card name for HL_INFO_HW_IP_INFO. */
  readonly cardName: string;
  /** Device physical address of DRAM. */
  readonly dramBaseAddress: number;
  /** DRAM size in bytes. */
  readonly dramSize: number;
  /** dram_base_address + dram_size. */
  readonly dramEndAddress: number;
  /** First device address users may allocate from. */
  readonly dramUserBaseAddress: number;
  /** DRAM page size (allocation granularity). */
  readonly dramPageSize: number;
  /** The device has a DRAM MMU (Gaudi2+): memory is allocated, mapped to VAs and exported by VA. */
  readonly dramSupportsVirtualMemory: boolean;
  /** Length of the DRAM PCI BAR (what the bus can reach). */
  readonly dramPciBarSize: number;
  /** First DRAM VA (dmmu.start_addr). */
  readonly dmmuStartAddr: number;
  /** End of the DRAM VA range (dmmu.end_addr). */
  readonly dmmuEndAddr: number;
  /** The DRAM MMU page size. */
  readonly dmmuPageSize: number;
  /** SRAM size, bytes (reported only). */
  readonly sramSize: number;
}

/** Overrides of the Gaudi2-like defaults (a topology's accelerator can be smaller or have a narrow BAR). */
export interface HlAsicConfig {
  /** DRAM size (default 96 GiB). */
  dramSize?: number;
  /** DRAM page size (default 768 MiB). */
  dramPageSize?: number;
  /** Whether the device has a DRAM MMU (default true; false models Gaudi1's physical export). */
  dramSupportsVirtualMemory?: boolean;
}

/** Builds Gaudi2-like fixed properties for a device whose DRAM BAR is `barSize` bytes. */
export function gaudi2FixedProperties(barSize: number, cfg: HlAsicConfig = {}): AsicFixedProperties {
  const dramSize = cfg.dramSize ?? 96 * 2 ** 30;
  const pg = cfg.dramPageSize ?? 768 * 2 ** 20;
  const base = HL_MODEL_DRAM_PHYS_BASE;
  const dmmuStart = base + pg * Math.ceil(dramSize / pg);
  return {
    deviceId: PCI_IDS_GAUDI2,
    cardName: 'HL-225',
    dramBaseAddress: base,
    dramSize,
    dramEndAddress: base + dramSize,
    dramUserBaseAddress: base + pg,
    dramPageSize: pg,
    dramSupportsVirtualMemory: cfg.dramSupportsVirtualMemory ?? true,
    dramPciBarSize: barSize,
    dmmuStartAddr: dmmuStart,
    dmmuEndAddr: dmmuStart + pg * 4096,
    dmmuPageSize: pg,
    sramSize: 48 * 2 ** 20,
  };
}

/** A first-fit allocator over a device address range (lib/genalloc.c gen_pool, reduced). */
export class GenPool {
  private readonly free: { addr: number; size: number }[];

  /** A pool over `[start, start + size)` handing out multiples of `granularity`. */
  constructor(
    start: number,
    size: number,
    /** Allocation granularity (min_alloc_order). */
    readonly granularity: number,
  ) {
    this.free = [{ addr: start, size: Math.floor(size / granularity) * granularity }];
  }

  /** Bytes still free. */
  get avail(): number {
    return this.free.reduce((s, f) => s + f.size, 0);
  }

  /** gen_pool_alloc / gen_pool_dma_alloc_align: an address, or 0 when nothing fits. */
  alloc(size: number, align = 0): number {
    const len = Math.ceil(size / this.granularity) * this.granularity;
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      const addr = align > 0 ? Math.ceil(f.addr / align) * align : f.addr;
      if (addr + len > f.addr + f.size) continue;
      const parts: { addr: number; size: number }[] = [];
      if (addr > f.addr) parts.push({ addr: f.addr, size: addr - f.addr });
      if (addr + len < f.addr + f.size) parts.push({ addr: addr + len, size: f.addr + f.size - addr - len });
      this.free.splice(i, 1, ...parts);
      return addr;
    }
    return 0;
  }

  /** gen_pool_free: gives `[addr, addr + size)` back (merging neighbours). */
  release(addr: number, size: number): void {
    const len = Math.ceil(size / this.granularity) * this.granularity;
    this.free.push({ addr, size: len });
    this.free.sort((a, b) => a.addr - b.addr);
    for (let i = 0; i + 1 < this.free.length; ) {
      const a = this.free[i];
      const b = this.free[i + 1];
      if (a.addr + a.size === b.addr) this.free.splice(i, 2, { addr: a.addr, size: a.size + b.size });
      else i++;
    }
  }
}

/** struct hl_vm_phys_pg_pack: the physical pages of one allocation. */
export interface HlVmPhysPgPack {
  /** VM_TYPE_PHYS_PACK for device memory. */
  readonly vmType: 'phys-pack' | 'userptr';
  /** Device physical address of every page. */
  readonly pages: number[];
  /** Page size. */
  readonly pageSize: number;
  /** npages × page_size. */
  readonly totalSize: number;
  /** HL_MEM_* flags of the allocation. */
  readonly flags: number;
  /** One pool allocation. */
  readonly contiguous: boolean;
  /** The allocating context's ASID. */
  readonly asid: number;
  /** The idr handle. */
  handle: number;
  /** Number of MAPs of this pack. */
  mappingCnt: number;
}

/** struct hl_vm_hash_node: one mapping of a context, keyed by its device VA. */
export interface HlVmHashNode {
  /** The device VA. */
  readonly vaddr: number;
  /** The pack handle, or MEM_HANDLE_INVALID for host memory. */
  readonly handle: number;
  /** Exported dma-bufs referencing this mapping (blocks UNMAP). */
  exportCnt: number;
}

/** struct hl_ctx: a compute context (one per open device file). */
export class HlCtx {
  /** VA hash: mappings by device VA. */
  readonly memHash = new Map<number, HlVmHashNode>();
  /** Reference count (kref): the file and every exported dma-buf. */
  refcount = 1;
  /** DRAM allocated by this context, bytes. */
  dramPhysMem = 0;
  private vaNext: number;

  /** Created when the device file is opened. */
  constructor(
    /** The device. */
    readonly hdev: HlDevice,
    /** Address space id. */
    readonly asid: number,
  ) {
    this.vaNext = hdev.prop.dmmuStartAddr;
  }

  /** Allocates a DRAM VA block of `size` (aligned to the DMMU page size), honouring a usable hint; 0 when full. */
  allocVa(size: number, hint: number): number {
    const p = this.hdev.prop;
    const len = Math.ceil(size / p.dmmuPageSize) * p.dmmuPageSize;
    const taken = (a: number) =>
      [...this.memHash.values()].some((n) => {
        const nsize = this.vaSize.get(n.vaddr) ?? 0;
        return a < n.vaddr + nsize && n.vaddr < a + len;
      });
    if (hint && hint % p.dmmuPageSize === 0 && hint >= p.dmmuStartAddr && hint + len <= p.dmmuEndAddr) {
      if (!taken(hint)) return hint;
    }
    while (this.vaNext + len <= p.dmmuEndAddr) {
      const a = this.vaNext;
      this.vaNext += len;
      if (!taken(a)) return a;
    }
    return 0;
  }

  /** Size of each VA block, by VA. */
  readonly vaSize = new Map<number, number>();
}

/** struct hl_device: one accelerator. */
export class HlDevice {
  /** The device's DRAM (no struct pages). */
  readonly dram: DeviceMemory;
  /** The physical page pool. */
  readonly dramPgPool: GenPool;
  /** Physical page packs by handle (idr from 1). */
  readonly physPgPackHandles = new Idr<HlVmPhysPgPack>();
  /** DRAM allocated by all contexts, bytes. */
  dramUsedMem = 0;
  /** Number of live exported dma-bufs (dmabuf_export_cnt). */
  dmabufExportCnt = 0;
  /** False while in reset or disabled: ioctls fail with -EBUSY. */
  operational = true;
  /** Live contexts. */
  readonly contexts = new Set<HlCtx>();
  /** The DMA engine (command submission). */
  dma!: HlDmaEngine;
  private nextAsid = 1;

  /** Created by the PCI probe. */
  constructor(
    /** The accel minor (accel<id>). */
    readonly id: number,
    /** The PCI function. */
    readonly pdev: PciDev,
    /** Its struct device. */
    readonly dev: Device,
    /** Fixed properties. */
    readonly prop: AsicFixedProperties,
    /** The DRAM BAR window. */
    readonly dramBar: IomemRegion,
    /** The machine's transfer model. */
    readonly transfers: TransferModel,
    dram: DeviceMemory,
  ) {
    this.dram = dram;
    const gran = isPowerOf2(prop.dramPageSize) ? prop.dramPageSize : DRAM_POOL_PAGE_SIZE;
    this.dramPgPool = new GenPool(
      prop.dramUserBaseAddress,
      prop.dramEndAddress - prop.dramUserBaseAddress,
      gran,
    );
  }

  /** dram_pci_bar_start: bus address of the DRAM BAR. */
  get dramPciBarStart(): number {
    return this.dramBar.start;
  }

  /** `accel<id>`. */
  get name(): string {
    return `accel${this.id}`;
  }

  /** hl_ctx_create(): a new context. */
  createCtx(): HlCtx {
    const ctx = new HlCtx(this, this.nextAsid++);
    this.contexts.add(ctx);
    return ctx;
  }
}

/** is_power_of_2(). */
export function isPowerOf2(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** hl_ctx_get(). */
export function hlCtxGet(ctx: HlCtx): void {
  ctx.refcount++;
}

/** hl_ctx_put(): the last put frees the context's memory (hl_ctx_fini: unmap everything, free packs). */
export function hlCtxPut(ctx: HlCtx): void {
  if (--ctx.refcount > 0) return;
  const hdev = ctx.hdev;
  ctx.memHash.clear();
  for (const [handle, pack] of hdev.physPgPackHandles.entries()) {
    if (!pack || pack.asid !== ctx.asid) continue;
    hdev.physPgPackHandles.remove(handle);
    freePhysPgPack(hdev, pack);
  }
  hdev.dramUsedMem -= ctx.dramPhysMem;
  if (ctx.dramPhysMem !== 0) {
    const k = currentKernel();
    traceMemInUse(k.engine, k.name, 'hbm', hdev.dramUsedMem, hdev.pdev.id);
  }
  ctx.dramPhysMem = 0;
  hdev.contexts.delete(ctx);
}

/** free_phys_pg_pack(): returns a pack's pages to the pool. */
export function freePhysPgPack(hdev: HlDevice, pack: HlVmPhysPgPack): void {
  if (pack.vmType !== 'phys-pack') return;
  if (pack.contiguous) hdev.dramPgPool.release(pack.pages[0], pack.totalSize);
  else for (const p of pack.pages) hdev.dramPgPool.release(p, pack.pageSize);
}

/** Creates the device's DRAM (sparse real bytes). */
export function hlDramCreate(name: string, prop: AsicFixedProperties): DeviceMemory {
  return new DeviceMemory(`${name} HBM`, prop.dramBaseAddress, prop.dramSize);
}
