/**
 * struct device, the part of it DMA needs (include/linux/device.h, drivers/base/core.c,
 * include/linux/dma-map-ops.h for `dma_ops`).
 *
 * A device has a name (dev_name), a parent, the bound driver's name and a DMA context:
 * the masks it can address and the mapping operations between CPU physical addresses
 * and the addresses the device puts on the bus. With no `dmaOps` the device uses
 * dma-direct with an identity mapping (DMA address = physical address), as on an x86
 * machine without an IOMMU; an IOMMU model plugs in through `dmaOps`.
 *
 * The class satisfies the PCI code's `Device` shape (pci/pci.ts), so any device of the
 * model can be a p2pdma client.
 */
import type { Device as DeviceLike } from './pci/pci.ts';

/** DMA_BIT_MASK(n) as a bigint. */
export function dmaBitMask(n: number): bigint {
  return n >= 64 ? (1n << 64n) - 1n : (1n << BigInt(n)) - 1n;
}

/**
 * The mapping operations of a device that does not use dma-direct (struct
 * dma_map_ops, reduced to what the model uses). Called from dma_map_* in the mapping
 * task's context; may not sleep.
 */
export interface DmaMapOps {
  /** Mandatory. Maps `size` bytes at CPU physical address `phys`; returns the DMA address or null on failure. */
  mapPhys(dev: Device, phys: number, size: number, dir: number): number | null;
  /** Mandatory. Undoes `mapPhys` for the mapping at `dmaAddr`. */
  unmapPhys(dev: Device, dmaAddr: number, size: number, dir: number): void;
}

/** Options of a new device. */
export interface DeviceInfo {
  /** The parent device (a PCI function's bridge, a platform bus), default none. */
  parent?: DeviceLike | null;
  /** dev_driver_string(): the bound driver's name. */
  driverString?: string;
  /** The streaming DMA mask (default 32 bits, as for a fresh device). */
  dmaMask?: bigint;
  /** Mapping operations; null (default) means dma-direct with an identity mapping. */
  dmaOps?: DmaMapOps | null;
}

/** A device (struct device). */
export class Device implements DeviceLike {
  /** The parent device, or null. */
  readonly parent: DeviceLike | null;
  /** dev_driver_string(). */
  readonly driverString?: string;
  /** *dev->dma_mask: the addresses streaming mappings may use. */
  dmaMask: bigint;
  /** dev->coherent_dma_mask. */
  coherentDmaMask: bigint;
  /** dev->dma_ops, or null for dma-direct. */
  dmaOps: DmaMapOps | null;

  /** device_initialize() with a name. */
  constructor(
    /** dev_name(). */
    readonly name: string,
    opts: DeviceInfo = {},
  ) {
    this.parent = opts.parent ?? null;
    if (opts.driverString !== undefined) this.driverString = opts.driverString;
    this.dmaMask = opts.dmaMask ?? dmaBitMask(32);
    this.coherentDmaMask = this.dmaMask;
    this.dmaOps = opts.dmaOps ?? null;
  }

  /** dev_name(). */
  toString(): string {
    return this.name;
  }
}

/** dma_coerce_mask_and_coherent(): sets both masks; 0. */
export function dmaCoerceMaskAndCoherent(dev: Device, mask: bigint): number {
  dev.dmaMask = mask;
  dev.coherentDmaMask = mask;
  return 0;
}
