/**
 * Device memory without struct pages, and the physical address ranges (PCI BARs) that
 * expose it (kernel/resource.c iomem_resource / request_mem_region, drivers/pci/pci.c
 * pci_resource_start, include/linux/io.h memremap of MMIO, and the habanalabs
 * `dram_pci_bar_start` / `dram_pci_bar_size` pair in
 * drivers/accel/habanalabs/common/habanalabs.h).
 *
 * `DeviceMemory` is a device's own memory (an accelerator's HBM): real bytes, addressed
 * by the device's physical addresses from `base`, stored sparsely in 2 MiB chunks so a
 * 96 GB part costs host memory only where it was written. There is no `Page` for it:
 * the kernel never creates struct pages for such memory unless p2pdma asks
 * (pci_p2pdma_add_resource), which habanalabs does not.
 *
 * `IomemRegion` is a window of the CPU/bus physical address space (a BAR) that decodes
 * to part of a `DeviceMemory`: `[start, start + size)` maps to device addresses
 * `[deviceBase, deviceBase + size)`. The window can be smaller than the memory behind
 * it (a 256 MiB BAR in front of 16 GiB), in which case only what it covers is reachable
 * from the bus. Regions are registered per kernel; `iomemLookup` finds the region
 * holding a bus address, which is how a peer's DMA reaches the bytes.
 */
import { currentKernel, type Kernel } from '../kernel.ts';

/** Size of one lazily allocated chunk of device memory. */
export const DEVICE_MEMORY_CHUNK = 2 * 1024 * 1024;

/** Memory that belongs to a device and has no struct page (an accelerator's DRAM/HBM). */
export class DeviceMemory {
  private readonly chunks = new Map<number, Uint8Array>();

  /** Creates `size` bytes of zeroed device memory at device physical address `base`. */
  constructor(
    /** A name for reports (`accel0 HBM`). */
    readonly name: string,
    /** Device physical address of the first byte. */
    readonly base: number,
    /** Size in bytes. */
    readonly size: number,
  ) {}

  /** Bytes of host memory currently backing written chunks. */
  get residentBytes(): number {
    return this.chunks.size * DEVICE_MEMORY_CHUNK;
  }

  private check(addr: number, len: number): number {
    const off = addr - this.base;
    if (!(off >= 0 && len >= 0 && off + len <= this.size)) {
      throw new RangeError(
        `${this.name}: access [0x${addr.toString(16)}, +0x${len.toString(16)}) outside the device memory`,
      );
    }
    return off;
  }

  private chunk(i: number, create: boolean): Uint8Array | undefined {
    let c = this.chunks.get(i);
    if (c === undefined && create) {
      c = new Uint8Array(DEVICE_MEMORY_CHUNK);
      this.chunks.set(i, c);
    }
    return c;
  }

  /** Copies `len` bytes at device address `addr` into `dst` at `dstOffset`. */
  read(addr: number, dst: Uint8Array, dstOffset = 0, len = dst.length - dstOffset): void {
    let off = this.check(addr, len);
    let at = dstOffset;
    let left = len;
    while (left > 0) {
      const i = Math.floor(off / DEVICE_MEMORY_CHUNK);
      const inChunk = off - i * DEVICE_MEMORY_CHUNK;
      const n = Math.min(left, DEVICE_MEMORY_CHUNK - inChunk);
      const c = this.chunk(i, false);
      if (c) dst.set(c.subarray(inChunk, inChunk + n), at);
      else dst.fill(0, at, at + n);
      off += n;
      at += n;
      left -= n;
    }
  }

  /** Copies `src` to device address `addr`. */
  write(addr: number, src: Uint8Array): void {
    let off = this.check(addr, src.length);
    let at = 0;
    while (at < src.length) {
      const i = Math.floor(off / DEVICE_MEMORY_CHUNK);
      const inChunk = off - i * DEVICE_MEMORY_CHUNK;
      const n = Math.min(src.length - at, DEVICE_MEMORY_CHUNK - inChunk);
      this.chunk(i, true)!.set(src.subarray(at, at + n), inChunk);
      off += n;
      at += n;
    }
  }

  /** Fills `len` bytes at `addr` with a repeating pattern. */
  fill(addr: number, len: number, pattern: Uint8Array): void {
    let off = this.check(addr, len);
    if (pattern.length === 0) throw new RangeError('fill with an empty pattern');
    let done = 0;
    while (done < len) {
      const i = Math.floor(off / DEVICE_MEMORY_CHUNK);
      const inChunk = off - i * DEVICE_MEMORY_CHUNK;
      const n = Math.min(len - done, DEVICE_MEMORY_CHUNK - inChunk);
      const c = this.chunk(i, true)!;
      // Pattern phase follows the byte's distance from the start of the fill.
      const phase = done % pattern.length;
      let k = 0;
      if (phase !== 0) {
        const head = Math.min(n, pattern.length - phase);
        c.set(pattern.subarray(phase, phase + head), inChunk);
        k = head;
      }
      if (k < n) {
        const firstLen = Math.min(pattern.length, n - k);
        c.set(pattern.subarray(0, firstLen), inChunk + k);
        let filled = firstLen;
        while (k + filled < n) {
          const m = Math.min(filled, n - k - filled);
          c.copyWithin(inChunk + k + filled, inChunk + k, inChunk + k + m);
          filled += m;
        }
      }
      off += n;
      done += n;
    }
  }
}

/** A bus address window (a BAR) decoding to part of a device's memory. */
export class IomemRegion {
  /** Creates a window; register it with `requestMemRegion`. */
  constructor(
    /** Name (`0000:01:00.0 BAR4`). */
    readonly name: string,
    /** Bus/CPU physical address of the first byte (pci_resource_start). */
    readonly start: number,
    /** Size of the window in bytes. */
    readonly size: number,
    /** The memory behind it. */
    readonly memory: DeviceMemory,
    /** Device address the first byte of the window decodes to. */
    readonly deviceBase: number,
    /** The device decoding the window (a PCI function), for routing transfers; null if none. */
    readonly owner: { readonly name: string } | null = null,
  ) {}

  /** Whether `[addr, addr + len)` lies inside the window. */
  contains(addr: number, len: number): boolean {
    return addr >= this.start && len >= 0 && addr + len <= this.start + this.size;
  }

  /** The device address a bus address in the window decodes to. */
  toDevice(addr: number): number {
    return this.deviceBase + (addr - this.start);
  }
}

const IOMEM = Symbol('iomem');

function regions(k: Kernel): IomemRegion[] {
  let r = k.singletons.get(IOMEM) as IomemRegion[] | undefined;
  if (!r) {
    r = [];
    k.singletons.set(IOMEM, r);
  }
  return r;
}

/**
 * request_mem_region(): claims a bus address window. Returns the region, or null when it
 * overlaps one already claimed (-EBUSY in the kernel).
 */
export function requestMemRegion(region: IomemRegion, k: Kernel = currentKernel()): IomemRegion | null {
  const list = regions(k);
  for (const r of list) {
    if (region.start < r.start + r.size && r.start < region.start + region.size) return null;
  }
  list.push(region);
  return region;
}

/** release_mem_region(). */
export function releaseMemRegion(region: IomemRegion, k: Kernel = currentKernel()): void {
  const list = regions(k);
  const i = list.indexOf(region);
  if (i >= 0) list.splice(i, 1);
}

/** The claimed window holding all of `[addr, addr + len)`, or null. */
export function iomemLookup(addr: number, len = 1, k: Kernel = currentKernel()): IomemRegion | null {
  for (const r of regions(k)) if (r.contains(addr, len)) return r;
  return null;
}
