/**
 * The streaming DMA API for scatter-gather tables (kernel/dma/mapping.c,
 * kernel/dma/direct.c, include/linux/dma-mapping.h, include/linux/dma-direction.h).
 *
 * `dmaMapSgtable` fills the DMA address and length of every entry for one device and
 * sets `nents`; `dmaUnmapSgtable` undoes it. A device without `dmaOps` uses dma-direct
 * with an identity mapping: the DMA address is the CPU physical address and entries are
 * never merged (nents = orig_nents). The model has no swiotlb, so addresses beyond a
 * device's mask are not bounced (masks are kept for an IOMMU model to use).
 *
 * The sync calls hand ownership of mapped memory to the CPU or back to the device. The
 * model's memory is coherent, so they only check their arguments. None of these calls
 * reads the page link of an entry: they work from the DMA addresses, which is why the
 * dma-buf debug mangling does not disturb an exporter's own syncs.
 */
import type { Device } from '../device.ts';
import { errno } from '../errno.ts';
import { forEachSgtableSg, type SgTable } from './scatterlist.ts';

/** Data moves both ways. */
export const DMA_BIDIRECTIONAL = 0;
/** Data moves from memory to the device. */
export const DMA_TO_DEVICE = 1;
/** Data moves from the device to memory. */
export const DMA_FROM_DEVICE = 2;
/** No data movement (debugging only). */
export const DMA_NONE = 3;

/** enum dma_data_direction. */
export type DmaDataDirection = 0 | 1 | 2 | 3;

/** Direction names as the kernel's traces print them. */
export const DMA_DIRECTION_NAMES = [
  'DMA_BIDIRECTIONAL',
  'DMA_TO_DEVICE',
  'DMA_FROM_DEVICE',
  'DMA_NONE',
] as const;

/** valid_dma_direction(). */
export function validDmaDirection(dir: number): dir is DmaDataDirection {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/** DMA_ATTR_SKIP_CPU_SYNC: do not sync caches when mapping or unmapping. */
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;

/**
 * dma_map_sgtable(): maps the table's CPU entries for `dev` and sets `nents`. 0, or
 * -EINVAL (bad direction, an entry without struct page), -EIO (the device's mapping
 * operations failed).
 */
export function dmaMapSgtable(dev: Device, sgt: SgTable, dir: number, _attrs = 0): number {
  if (!validDmaDirection(dir)) return -errno.EINVAL;
  const done: number[] = [];
  let i = 0;
  for (const sg of forEachSgtableSg(sgt)) {
    const page = sg.pageLink;
    if (page === null) {
      unmapDone(dev, sgt, done, dir);
      return -errno.EINVAL;
    }
    const phys = page.physAddr + sg.offset;
    const addr = dev.dmaOps ? dev.dmaOps.mapPhys(dev, phys, sg.length, dir) : phys;
    if (addr === null) {
      unmapDone(dev, sgt, done, dir);
      return -errno.EIO;
    }
    sg.dmaAddress = addr;
    sg.dmaLength = sg.length;
    done.push(i++);
  }
  sgt.nents = sgt.origNents;
  return 0;
}

function unmapDone(dev: Device, sgt: SgTable, done: number[], dir: number): void {
  for (const i of done) {
    const sg = sgt.sgl[i];
    dev.dmaOps?.unmapPhys(dev, sg.dmaAddress, sg.dmaLength, dir);
    sg.dmaAddress = 0;
    sg.dmaLength = 0;
  }
}

/** dma_unmap_sgtable(): undoes `dmaMapSgtable`. */
export function dmaUnmapSgtable(dev: Device, sgt: SgTable, dir: number, _attrs = 0): void {
  for (let i = 0; i < sgt.nents; i++) {
    const sg = sgt.sgl[i];
    dev.dmaOps?.unmapPhys(dev, sg.dmaAddress, sg.dmaLength, dir);
  }
}

/** dma_sync_sgtable_for_cpu(): the CPU may now access the mapped memory (coherent: nothing to do). */
export function dmaSyncSgtableForCpu(_dev: Device, _sgt: SgTable, _dir: number): void {}

/** dma_sync_sgtable_for_device(): the device may now access the mapped memory (coherent: nothing to do). */
export function dmaSyncSgtableForDevice(_dev: Device, _sgt: SgTable, _dir: number): void {}
