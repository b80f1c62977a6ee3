/**
 * Per-device DMA contexts with an optional IOMMU, `dma_map_resource` for peer BAR
 * addresses, segment-size limits, and the check that a device only DMAs to addresses
 * mapped for it (kernel/dma/mapping.c dma_map_resource / dma_unmap_resource,
 * kernel/dma/direct.c dma_direct_map_resource, drivers/iommu/dma-iommu.c
 * iommu_dma_map_phys / iommu_dma_map_resource / the IOVA allocator,
 * include/linux/dma-mapping.h dma_get_max_seg_size / dma_set_max_seg_size and
 * DMA_MAPPING_ERROR).
 *
 * A `DmaContext` is the `DmaMapOps` of one device (the model's `dev->dma_ops` plus its
 * IOMMU domain). Without an IOMMU it behaves as dma-direct (DMA address = physical
 * address); with one, every mapping gets an IOVA from the device's own domain, so the
 * same physical page has a different address for each device. Either way the context
 * records every live mapping: `dmaDeviceAccess` is what a device model calls before it
 * DMAs, and an address not mapped for that device is a `violation` report
 * (`dma.unmapped_address`) — the bug of the v3 habanalabs export patch, which put raw
 * BAR addresses in the table instead of mapping them for the importer. With an IOMMU the
 * access also fails (a DMAR fault); without one it "works" by accident and is still
 * reported.
 *
 * Costs: IOMMU map and unmap take 1.0 us and 1.3 us per call (performance.md §3, §7,
 * the kernel's dma_map_benchmark). Mapping calls are not allowed to sleep, so the
 * context accrues the cost per device and `dmaChargeMappingCost` lets the calling task
 * pay it in virtual time at its next sleepable point (drivers call it after building a
 * table). dma-direct mappings cost nothing.
 *
 * The segment limit (`dev->dma_parms->max_segment_size`) is kept here per device until
 * struct device carries dma_parms; the default is 64 KiB as in 6.12.
 */
import type { Device, DmaMapOps } from '../device.ts';
import { currentKernel } from '../kernel.ts';
import { PAGE_SIZE } from './page.ts';

/** DMA_MAPPING_ERROR: the address dma_map_* return on failure ((dma_addr_t)~0 in C). */
export const DMA_MAPPING_ERROR = -1;

/** IOMMU map cost per call, ns (performance.md §7). */
export const IOMMU_MAP_COST_NS = 1000;
/** IOMMU unmap cost per call, ns (performance.md §7). */
export const IOMMU_UNMAP_COST_NS = 1300;

/** Rule id: a device DMAs to an address that is not mapped in its DMA context. */
export const DMA_UNMAPPED_ADDRESS_RULE = 'dma.unmapped_address';
/** Rule id: a driver unmaps an address that was not mapped for the device. */
export const DMA_UNMAP_UNMAPPED_RULE = 'dma.unmap_unmapped';

/** 6.12's dma_get_max_seg_size() when a device set none (SZ_64K). */
export const DMA_DEFAULT_MAX_SEG_SIZE = 64 * 1024;

/** One live mapping of a DMA context. */
export interface DmaMapping {
  /** The device-visible address. */
  readonly dmaAddr: number;
  /** The physical (CPU or bus) address it reaches. */
  readonly phys: number;
  /** Length in bytes. */
  readonly size: number;
  /** DMA direction. */
  readonly dir: number;
  /** `page` for system memory (dma_map_page/sg), `resource` for MMIO (dma_map_resource). */
  readonly kind: 'page' | 'resource';
}

/** Options of a DMA context. */
export interface DmaContextOptions {
  /** Translate through an IOMMU (default false: dma-direct). */
  iommu?: boolean;
  /** First IOVA the domain hands out (default 0xfff0_0000_0000, below a 48-bit top). */
  iovaBase?: number;
  /** IOMMU map cost per call, ns. */
  mapCostNs?: number;
  /** IOMMU unmap cost per call, ns. */
  unmapCostNs?: number;
}

/** The DMA context of one device: dma-direct or an IOMMU domain, and its live mappings. */
export class DmaContext implements DmaMapOps {
  /** Whether addresses are translated by an IOMMU. */
  readonly iommu: boolean;
  /**
   * Live mappings by device address, in creation order. Without an IOMMU two mappings of
   * the same memory share an address (two MRs on one buffer), so each address holds a
   * list, as dma-debug tracks every mapping separately.
   */
  readonly mappings = new Map<number, DmaMapping[]>();
  /** Virtual time owed for map/unmap calls, ns (see `dmaChargeMappingCost`). */
  pendingCostNs = 0;
  /** Counters. */
  readonly stats = { maps: 0, unmaps: 0, faults: 0 };
  private readonly mapCost: number;
  private readonly unmapCost: number;
  private nextIova: number;
  private readonly freeIova: { addr: number; size: number }[] = [];

  /** Creates a context; install it with `deviceSetupDma`. */
  constructor(opts: DmaContextOptions = {}) {
    this.iommu = opts.iommu ?? false;
    this.mapCost = opts.mapCostNs ?? IOMMU_MAP_COST_NS;
    this.unmapCost = opts.unmapCostNs ?? IOMMU_UNMAP_COST_NS;
    this.nextIova = opts.iovaBase ?? 0xfff0_0000_0000;
  }

  /** Allocates `size` bytes of IOVA space (page granular, first fit in freed space). */
  private allocIova(size: number): number {
    const len = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    const i = this.freeIova.findIndex((f) => f.size >= len);
    if (i >= 0) {
      const f = this.freeIova[i];
      const addr = f.addr;
      if (f.size === len) this.freeIova.splice(i, 1);
      else this.freeIova[i] = { addr: f.addr + len, size: f.size - len };
      return addr;
    }
    const addr = this.nextIova;
    this.nextIova += len;
    return addr;
  }

  private map(phys: number, size: number, dir: number, kind: DmaMapping['kind']): number {
    let addr: number;
    if (this.iommu) {
      // The IOVA keeps the offset within the page, as iommu_dma_map_phys does.
      const off = phys % PAGE_SIZE;
      addr = this.allocIova(off + size) + off;
      this.pendingCostNs += this.mapCost;
    } else {
      addr = phys;
    }
    const m: DmaMapping = { dmaAddr: addr, phys, size, dir, kind };
    const list = this.mappings.get(addr);
    if (list) list.push(m);
    else this.mappings.set(addr, [m]);
    this.stats.maps++;
    return addr;
  }

  /** DmaMapOps.mapPhys: maps system memory for the device (dma_map_page/sg). */
  mapPhys(_dev: Device, phys: number, size: number, dir: number): number | null {
    return this.map(phys, size, dir, 'page');
  }

  /** Maps an MMIO range (a peer's BAR) for the device (dma_map_resource). */
  mapResource(phys: number, size: number, dir: number): number {
    return this.map(phys, size, dir, 'resource');
  }

  /** DmaMapOps.unmapPhys: undoes a mapping; an unknown address is a reported violation. */
  unmapPhys(dev: Device, dmaAddr: number, size: number, _dir: number): void {
    const list = this.mappings.get(dmaAddr);
    if (list === undefined) {
      currentKernel().report(
        'violation',
        DMA_UNMAP_UNMAPPED_RULE,
        `DMA-API: ${dev.name}: device driver tries to free DMA memory it has not allocated ` +
          `[device address=0x${dmaAddr.toString(16)}] [size=${size} bytes]`,
        [{ kind: 'device', name: dev.name }],
      );
      return;
    }
    // dma-debug matches an unmap to a mapping of the same address and size.
    let i = list.findIndex((x) => x.size === size);
    if (i < 0) i = 0;
    const m = list[i];
    list.splice(i, 1);
    if (list.length === 0) this.mappings.delete(dmaAddr);
    this.stats.unmaps++;
    if (this.iommu) {
      const off = m.phys % PAGE_SIZE;
      this.freeIova.push({ addr: dmaAddr - off, size: Math.ceil((off + m.size) / PAGE_SIZE) * PAGE_SIZE });
      this.pendingCostNs += this.unmapCost;
    }
  }

  /** The mapping covering `[dmaAddr, dmaAddr + len)`, or null. */
  lookup(dmaAddr: number, len: number): DmaMapping | null {
    const exact = this.mappings.get(dmaAddr)?.find((m) => len <= m.size);
    if (exact) return exact;
    for (const list of this.mappings.values()) {
      for (const m of list) {
        if (dmaAddr >= m.dmaAddr && dmaAddr + len <= m.dmaAddr + m.size) return m;
      }
    }
    return null;
  }
}

/** The device's DMA context, or null when it uses plain dma-direct without tracking. */
export function dmaContextOf(dev: Device): DmaContext | null {
  return dev.dmaOps instanceof DmaContext ? dev.dmaOps : null;
}

/** Gives `dev` a tracked DMA context (with or without an IOMMU) and 64-bit masks. */
export function deviceSetupDma(dev: Device, opts: DmaContextOptions = {}): DmaContext {
  const ctx = new DmaContext(opts);
  dev.dmaOps = ctx;
  dev.dmaMask = (1n << 64n) - 1n;
  dev.coherentDmaMask = dev.dmaMask;
  return ctx;
}

/**
 * dma_map_resource(): maps the MMIO range `[phys, phys + size)` (a peer device's BAR)
 * for DMA by `dev`. Returns the device address, or DMA_MAPPING_ERROR. With no IOMMU the
 * address is the bus address itself (dma_direct_map_resource).
 */
export function dmaMapResource(dev: Device, phys: number, size: number, dir: number, _attrs = 0): number {
  if (size <= 0) return DMA_MAPPING_ERROR;
  const ctx = dmaContextOf(dev);
  if (ctx) return ctx.mapResource(phys, size, dir);
  if (dev.dmaOps) return dev.dmaOps.mapPhys(dev, phys, size, dir) ?? DMA_MAPPING_ERROR;
  return phys;
}

/** dma_unmap_resource(): undoes `dmaMapResource`. */
export function dmaUnmapResource(dev: Device, addr: number, size: number, dir: number, _attrs = 0): void {
  dev.dmaOps?.unmapPhys(dev, addr, size, dir);
}

/** dma_mapping_error(): whether a returned address means failure. */
export function dmaMappingError(_dev: Device, addr: number): boolean {
  return addr === DMA_MAPPING_ERROR;
}

const maxSegSize = new WeakMap<Device, number>();

/** dma_get_max_seg_size(): the device's segment limit (64 KiB unless set). */
export function dmaGetMaxSegSize(dev: Device): number {
  return maxSegSize.get(dev) ?? DMA_DEFAULT_MAX_SEG_SIZE;
}

/** dma_set_max_seg_size(): sets the device's segment limit; 0. */
export function dmaSetMaxSegSize(dev: Device, size: number): number {
  maxSegSize.set(dev, size);
  return 0;
}

/**
 * Pays the virtual time the current task owes for IOMMU map/unmap calls on `dev`. Call
 * from sleepable context (a task); elsewhere the debt stays for the next call.
 */
export async function dmaChargeMappingCost(dev: Device): Promise<void> {
  const ctx = dmaContextOf(dev);
  if (!ctx || ctx.pendingCostNs === 0) return;
  const k = currentKernel();
  if (k.ctx.kind !== 'task' || k.inAtomic()) return;
  const ns = ctx.pendingCostNs;
  ctx.pendingCostNs = 0;
  await k.engine.sleep(ns);
}

/**
 * A device is about to DMA `len` bytes at its own address `dmaAddr`: returns the
 * physical address reached, or null after a `dma.unmapped_address` violation when the
 * range is not mapped in the device's context. Devices without a tracked context pass
 * through (the address is taken as physical).
 */
export function dmaDeviceAccess(dev: Device, dmaAddr: number, len: number, what = 'DMA'): number | null {
  const ctx = dmaContextOf(dev);
  if (!ctx) return dmaAddr;
  const m = ctx.lookup(dmaAddr, len);
  if (m) return m.phys + (dmaAddr - m.dmaAddr);
  ctx.stats.faults++;
  const consequence = ctx.iommu
    ? 'the IOMMU blocks it (DMAR fault: address not present in the device page table)'
    : 'without an IOMMU the bus would deliver it anyway, to whatever lives at that address';
  currentKernel().report(
    'violation',
    DMA_UNMAPPED_ADDRESS_RULE,
    `${dev.name}: ${what} of ${len} bytes at device address 0x${dmaAddr.toString(16)} that was never ` +
      `mapped for this device (an address is only valid in the DMA context it was mapped for); ${consequence}`,
    [{ kind: 'device', name: dev.name }],
  );
  return ctx.iommu ? null : dmaAddr;
}
