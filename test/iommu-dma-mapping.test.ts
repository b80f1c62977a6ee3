/**
 * Per-device DMA contexts (kernel/dma/mapping.c, drivers/iommu/dma-iommu.c): dma-direct
 * and IOMMU address spaces, dma_map_resource for peer BARs, the map/unmap costs of
 * performance.md §7 in virtual time, segment limits, the `dma.unmapped_address` rule,
 * and device memory without struct pages behind BAR windows.
 */
import { describe, expect, test } from 'vitest';
import {
  allocPages,
  DEVICE_MEMORY_CHUNK,
  Device,
  DeviceMemory,
  DMA_BIDIRECTIONAL,
  DMA_DEFAULT_MAX_SEG_SIZE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  DMA_UNMAP_UNMAPPED_RULE,
  DMA_UNMAPPED_ADDRESS_RULE,
  deviceSetupDma,
  dmaChargeMappingCost,
  dmaContextOf,
  dmaDeviceAccess,
  dmaGetMaxSegSize,
  dmaMapResource,
  dmaMapSgtable,
  dmaSetMaxSegSize,
  dmaUnmapResource,
  dmaUnmapSgtable,
  IOMMU_MAP_COST_NS,
  IOMMU_UNMAP_COST_NS,
  IomemRegion,
  iomemLookup,
  Machine,
  releaseMemRegion,
  requestMemRegion,
  SgTable,
  sgAllocTable,
  sgSetPage,
} from '../src/index.ts';

async function kernelOf(): Promise<Machine> {
  const m = await Machine.create({ seed: 1, bootTime: 0 });
  m.kernel.enter();
  return m;
}

describe('dma-direct contexts', () => {
  test('dma_map_resource returns the bus address and records the mapping for that device only', async () => {
    const m = await kernelOf();
    const nic = new Device('nic');
    const other = new Device('other');
    deviceSetupDma(nic);
    deviceSetupDma(other);
    const bar = 0x2000_0000_0000;
    const addr = dmaMapResource(nic, bar, 1 << 20, DMA_BIDIRECTIONAL);
    expect(addr).toBe(bar);
    expect(dmaDeviceAccess(nic, bar + 4096, 4096)).toBe(bar + 4096);
    expect(m.reports).toEqual([]);
    // Same address, but never mapped for `other`: reported, and delivered (no IOMMU).
    expect(dmaDeviceAccess(other, bar, 4096)).toBe(bar);
    expect(m.reports.map((r) => [r.type, r.rule])).toEqual([['violation', DMA_UNMAPPED_ADDRESS_RULE]]);
    // Past the end of the mapping is also unmapped.
    expect(dmaDeviceAccess(nic, bar + (1 << 20) - 4096, 8192)).toBe(bar + (1 << 20) - 4096);
    expect(m.reports).toHaveLength(2);
    dmaUnmapResource(nic, addr, 1 << 20, DMA_BIDIRECTIONAL);
    expect(dmaContextOf(nic)!.mappings.size).toBe(0);
  });

  test('unmapping an address that was never mapped is a violation', async () => {
    const m = await kernelOf();
    const dev = new Device('dev');
    deviceSetupDma(dev);
    dmaUnmapResource(dev, 0x1234000, 4096, DMA_TO_DEVICE);
    expect(m.reports.map((r) => r.rule)).toEqual([DMA_UNMAP_UNMAPPED_RULE]);
  });

  test('a zero-length resource mapping fails with DMA_MAPPING_ERROR', async () => {
    await kernelOf();
    const dev = new Device('dev');
    deviceSetupDma(dev);
    expect(dmaMapResource(dev, 0x1000, 0, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
  });
});

describe('IOMMU contexts', () => {
  test('each device gets its own IOVA for the same physical range; the other device faults', async () => {
    const m = await kernelOf();
    const a = new Device('a');
    const b = new Device('b');
    deviceSetupDma(a, { iommu: true, iovaBase: 0x1_0000_0000 });
    deviceSetupDma(b, { iommu: true, iovaBase: 0x8_0000_0000 });
    const phys = 0x2000_0000_0000 + 0x100;
    const ia = dmaMapResource(a, phys, 8192, DMA_BIDIRECTIONAL);
    const ib = dmaMapResource(b, phys, 8192, DMA_BIDIRECTIONAL);
    expect(ia).toBe(0x1_0000_0100); // the offset within the page is kept
    expect(ib).toBe(0x8_0000_0100);
    expect(dmaDeviceAccess(a, ia, 8192)).toBe(phys);
    expect(dmaDeviceAccess(b, ia, 4096)).toBeNull(); // DMAR fault
    expect(dmaContextOf(b)!.stats.faults).toBe(1);
    expect(m.reports.map((r) => r.rule)).toEqual([DMA_UNMAPPED_ADDRESS_RULE]);
    expect(m.reports[0].message).toMatch(/IOMMU blocks it/);
  });

  test('freed IOVA space is reused', async () => {
    await kernelOf();
    const dev = new Device('dev');
    const ctx = deviceSetupDma(dev, { iommu: true, iovaBase: 0x10_0000 });
    const x = dmaMapResource(dev, 0x5000_0000, 3 * 4096, DMA_TO_DEVICE);
    const y = dmaMapResource(dev, 0x6000_0000, 4096, DMA_TO_DEVICE);
    expect(y).toBe(x + 3 * 4096);
    dmaUnmapResource(dev, x, 3 * 4096, DMA_TO_DEVICE);
    expect(dmaMapResource(dev, 0x7000_0000, 2 * 4096, DMA_TO_DEVICE)).toBe(x);
    expect(ctx.stats).toMatchObject({ maps: 3, unmaps: 1 });
  });

  test('map and unmap cost 1.0 us and 1.3 us of virtual time, paid by the mapping task', async () => {
    const m = await Machine.create({ seed: 1 });
    let elapsed = -1n;
    m.spawn('mapper', async (sys) => {
      const dev = new Device('dev');
      deviceSetupDma(dev, { iommu: true });
      const t0 = sys.now();
      const addrs = [0, 1, 2].map((i) => dmaMapResource(dev, 0x4000_0000 + i * 4096, 4096, DMA_TO_DEVICE));
      dmaUnmapResource(dev, addrs[0], 4096, DMA_TO_DEVICE);
      await dmaChargeMappingCost(dev);
      elapsed = sys.now() - t0;
      return 0;
    });
    await m.run();
    expect(elapsed).toBe(BigInt(3 * IOMMU_MAP_COST_NS + IOMMU_UNMAP_COST_NS));
  });

  test('dma_map_sgtable of system pages goes through the context (IOVAs, tracked)', async () => {
    await kernelOf();
    const dev = new Device('dev');
    const ctx = deviceSetupDma(dev, { iommu: true, iovaBase: 0x40_0000 });
    const pages = allocPages(2)!;
    const sgt = new SgTable();
    expect(sgAllocTable(sgt, 2)).toBe(0);
    sgSetPage(sgt.sgl[0], pages[0], 4096, 0);
    sgSetPage(sgt.sgl[1], pages[1], 4096, 0);
    expect(dmaMapSgtable(dev, sgt, DMA_BIDIRECTIONAL)).toBe(0);
    expect(sgt.sgl.map((s) => s.dmaAddress)).toEqual([0x40_0000, 0x40_1000]);
    expect(dmaDeviceAccess(dev, 0x40_1000, 4096)).toBe(pages[1].physAddr);
    dmaUnmapSgtable(dev, sgt, DMA_BIDIRECTIONAL);
    expect(ctx.mappings.size).toBe(0);
  });
});

describe('segment limits', () => {
  test('dma_get_max_seg_size defaults to 64 KiB and can be set', async () => {
    await kernelOf();
    const dev = new Device('dev');
    expect(dmaGetMaxSegSize(dev)).toBe(DMA_DEFAULT_MAX_SEG_SIZE);
    expect(DMA_DEFAULT_MAX_SEG_SIZE).toBe(65536);
    dmaSetMaxSegSize(dev, 2 ** 31);
    expect(dmaGetMaxSegSize(dev)).toBe(2 ** 31);
  });
});

describe('device memory without struct pages behind BAR windows', () => {
  test('reads, writes and pattern fills cross chunk boundaries; untouched memory reads as zero', () => {
    const mem = new DeviceMemory('hbm', 0x1000_0000, 8 * DEVICE_MEMORY_CHUNK);
    const at = 0x1000_0000 + DEVICE_MEMORY_CHUNK - 3;
    mem.write(at, new Uint8Array([1, 2, 3, 4, 5, 6]));
    const out = new Uint8Array(8);
    mem.read(at - 1, out);
    expect([...out]).toEqual([0, 1, 2, 3, 4, 5, 6, 0]);
    mem.fill(at, 10, new Uint8Array([9, 8, 7]));
    mem.read(at, out);
    expect([...out]).toEqual([9, 8, 7, 9, 8, 7, 9, 8]);
    expect(mem.residentBytes).toBe(2 * DEVICE_MEMORY_CHUNK);
    expect(() => mem.read(0x1000_0000 + 8 * DEVICE_MEMORY_CHUNK - 2, out)).toThrow(RangeError);
  });

  test('a BAR window smaller than the memory only decodes what it covers; windows cannot overlap', async () => {
    await kernelOf();
    const mem = new DeviceMemory('hbm', 0, 16 * 1024 * 1024);
    const bar = new IomemRegion('bar', 0x3000_0000_0000, 4 * 1024 * 1024, mem, 0);
    expect(requestMemRegion(bar)).toBe(bar);
    expect(iomemLookup(0x3000_0000_0000 + 4096, 4096)).toBe(bar);
    expect(iomemLookup(0x3000_0000_0000 + 4 * 1024 * 1024 - 4096, 8192)).toBeNull();
    expect(bar.toDevice(0x3000_0000_1000)).toBe(0x1000);
    expect(requestMemRegion(new IomemRegion('clash', 0x3000_0010_0000, 4096, mem, 0))).toBeNull();
    releaseMemRegion(bar);
    expect(iomemLookup(0x3000_0000_0000)).toBeNull();
  });
});

describe('dma-direct mappings of the same memory', () => {
  test('two mappings of one page share an address and unmap one by one without a violation', async () => {
    const m = await Machine.create({ seed: 1 });
    m.kernel.enter();
    const dev = new Device('twice');
    const ctx = deviceSetupDma(dev);
    const a = ctx.mapPhys(dev, 0x10000, 4096, 0);
    const b = ctx.mapPhys(dev, 0x10000, 4096, 0);
    expect(a).toBe(b);
    expect(ctx.lookup(0x10000, 4096)).not.toBeNull();
    ctx.unmapPhys(dev, a!, 4096, 0);
    expect(ctx.lookup(0x10000, 4096)).not.toBeNull();
    ctx.unmapPhys(dev, b!, 4096, 0);
    expect(ctx.mappings.size).toBe(0);
    expect(m.reports).toEqual([]);
    ctx.unmapPhys(dev, b!, 4096, 0);
    expect(m.reports.map((r) => r.rule)).toEqual(['dma.unmap_unmapped']);
  });
});
