/**
 * A static importer that needs pages: the scan-out engine of
 * src/drivers/media/display-importer.ts (dma_buf_attach without importer ops, as
 * drm_gem_prime_import_dev does in Linux 6.12) scans dma-bufs out through
 * /dev/scanout0. Page-backed exporters (system heap, CMA heap, udmabuf) work and the
 * frame's CRC-32 matches the bytes written; habanalabs refuses the page-less mapping with
 * -EPERM (hl_map_dmabuf: peer2peer is false for a static attachment) and nothing is left
 * behind; the buggy variant that reads pixels through sg_page() is caught.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { scanoutDevices } from '../src/drivers/media/display-importer.ts';
import {
  F_ADD_SEALS,
  F_SEAL_SHRINK,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.ts';
import { dmaBufList } from '../src/kernel/dma-buf/dma-buf.ts';
import { errno } from '../src/kernel/errno.ts';
import { presetSpec } from '../src/kernel/pci/topology-presets.ts';
import { Machine } from '../src/machine.ts';
import { DmaHeap } from '../src/uapi/dma-heap.ts';
import { HL_MODEL_DMA_HOST_TO_DEVICE, HlDevice } from '../src/uapi/habanalabs.ts';
import {
  SCANOUT_FRAME_MODEL_P2P,
  SCANOUT_FRAME_MODEL_SG_PAGE,
  SCANOUT_IOCTL_FRAME,
  Scanout,
  scanoutPath,
} from '../src/uapi/scanout.ts';
import type { Sys } from '../src/uapi/sys.ts';
import { Udmabuf } from '../src/uapi/udmabuf.ts';
import { pattern } from './helpers/rdma.ts';

const SIZE = 256 * 1024;

/** The workstation preset plus a display controller (an `other` function) on its own root port. */
async function displayMachine(): Promise<Machine> {
  const spec = presetSpec('workstation');
  spec.rootPorts?.push({ id: 'rp2', hostBridge: 'hb0', link: { gen: 4, width: 16 } });
  spec.endpoints.push({
    id: 'disp0',
    kind: 'other',
    parent: 'rp2',
    link: { gen: 4, width: 16 },
    bars: [{ index: 0, size: 16 * 1024 * 1024, prefetchable: false }],
  });
  return Machine.create({ seed: 1, topology: spec });
}

function nonLeakIssues(m: Machine) {
  return m.reports.filter((r) => r.type !== 'warn').map((r) => `${r.type} ${r.rule}: ${r.message}`);
}

async function fillAndScan(sys: Sys, fd: number, size: number, seed: number) {
  const data = pattern(size, seed);
  const addr = await sys.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  expect(addr).toBeGreaterThan(0);
  sys.memory(addr, size).set(data);
  expect(await sys.munmap(addr, size)).toBe(0);
  const so = await Scanout.open(sys, 0);
  const whole = await so.frame(fd);
  const part = await so.frame(fd, { offset: 4096 + 100, length: 10_000 });
  await so.close();
  return { data, whole, part };
}

describe('static importer that needs pages (scan-out engine)', () => {
  it('binds the display function and creates /dev/scanout0', async () => {
    const m = await displayMachine();
    const devs = scanoutDevices(m.kernel);
    expect(devs.map((d) => d.pdev.id)).toEqual(['disp0']);
    let rc = -1;
    m.spawn('open', async (sys) => {
      rc = await sys.open(scanoutPath(0), O_RDWR);
      return 0;
    });
    await m.run();
    expect(rc).toBeGreaterThanOrEqual(3);
  });

  for (const heap of ['system', 'reserved']) {
    it(`scans a ${heap === 'system' ? 'system' : 'CMA'}-heap buffer out: CRC-32 of every byte matches`, async () => {
      const m = await displayMachine();
      let res: Awaited<ReturnType<typeof fillAndScan>> | null = null;
      const p = m.spawn('scan', async (sys) => {
        const buf = await (await DmaHeap.open(sys, heap)).alloc(SIZE);
        res = await fillAndScan(sys, buf.fd, SIZE, 3);
        await buf.close();
        return 0;
      });
      await m.run();
      expect(p.exitCode, String(p.error)).toBe(0);
      const r = res!;
      expect(r.whole.crc32).toBe(zlibCrc32(r.data));
      expect(r.whole.nents).toBeGreaterThan(0);
      expect(r.part.crc32).toBe(zlibCrc32(r.data.subarray(4196, 4196 + 10_000)));
      expect(scanoutDevices(m.kernel)[0].frames).toBe(2);
      expect(nonLeakIssues(m)).toEqual([]);
      expect(dmaBufList(m.kernel)).toEqual([]);
    });
  }

  it('scans a udmabuf (sealed memfd pages) out: CRC-32 matches', async () => {
    const m = await displayMachine();
    let res: Awaited<ReturnType<typeof fillAndScan>> | null = null;
    const p = m.spawn('scan', async (sys) => {
      const memfd = await sys.memfd_create(sys.allocCString('frame'), MFD_ALLOW_SEALING);
      expect(await sys.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(0);
      // ftruncate before the seal would be usual; growing stays allowed under F_SEAL_SHRINK.
      expect(await sys.ftruncate(memfd, SIZE)).toBe(0);
      const buf = await (await Udmabuf.open(sys)).create(memfd, 0, SIZE);
      res = await fillAndScan(sys, buf.fd, SIZE, 5);
      return 0;
    });
    await m.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(res!.whole.crc32).toBe(zlibCrc32(res!.data));
    expect(nonLeakIssues(m)).toEqual([]);
  });

  it('habanalabs device memory is refused with -EPERM at map; the attachment is gone and nothing leaks', async () => {
    const m = await displayMachine();
    let rc = 0;
    let attachmentsAfter = -1;
    let closeRc = -1;
    const p = m.spawn('scan-hl', async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const va = await hl.map(await hl.alloc(2 * 1024 * 1024));
      const host = sys.alloc(4096, 4096);
      sys.memory(host, 4096).fill(7);
      expect(
        await hl.waitFence(
          await hl.dmaJob({ op: HL_MODEL_DMA_HOST_TO_DEVICE, dst: va, src: host, size: 4096 }),
        ),
      ).toBe(1);
      const fd = await hl.exportDmabufFd(va, 2 * 1024 * 1024);
      const so = await Scanout.open(sys, 0);
      const r = await so.frameRaw(fd);
      rc = typeof r === 'number' ? r : 0;
      attachmentsAfter = dmaBufList(m.kernel)[0]?.attachments.length ?? -1;
      closeRc = await sys.close(fd);
      await so.close();
      return 0;
    });
    await m.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(rc).toBe(-errno.EPERM);
    expect(attachmentsAfter).toBe(0);
    expect(closeRc).toBe(0);
    expect(scanoutDevices(m.kernel)[0].frames).toBe(0);
    // hl_map_dmabuf only dev_dbg()s the refusal: no report at all.
    expect(m.reports).toEqual([]);
    expect(dmaBufList(m.kernel)).toEqual([]);
  });

  it('bad input gets Linux errnos: bad pointer -EFAULT, bad fd -EBADF, not a dma-buf -EINVAL, range outside -EINVAL, unknown flag -EINVAL', async () => {
    const m = await displayMachine();
    const rcs: number[] = [];
    m.spawn('bad', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(8192);
      const so = await Scanout.open(sys, 0);
      for (const [fd, o] of [
        [99, {}],
        [so.fd, {}],
        [buf.fd, { offset: 8192 }],
        [buf.fd, { offset: 4096, length: 8192 }],
        [buf.fd, { flags: 0x80 }],
      ] as const) {
        const r = await so.frameRaw(fd, o);
        rcs.push(typeof r === 'number' ? r : 0);
      }
      expect(await sys.ioctl(so.fd, 0x5401, 0)).toBe(-errno.ENOTTY);
      expect(await sys.ioctl(so.fd, SCANOUT_IOCTL_FRAME, 0)).toBe(-errno.EFAULT);
      return 0;
    });
    await m.run();
    expect(rcs).toEqual([-errno.EBADF, -errno.EINVAL, -errno.EINVAL, -errno.EINVAL, -errno.EINVAL]);
    expect(nonLeakIssues(m)).toEqual([]);
  });

  it('the buggy variant (claims peer2peer, reads pixels through sg_page) is caught with dma_buf.sg_page_access on habanalabs memory', async () => {
    const m = await displayMachine();
    m.spawn('buggy', async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const va = await hl.map(await hl.alloc(2 * 1024 * 1024));
      const fd = await hl.exportDmabufFd(va, 2 * 1024 * 1024);
      const so = await Scanout.open(sys, 0);
      await so.frameRaw(fd, { flags: SCANOUT_FRAME_MODEL_P2P | SCANOUT_FRAME_MODEL_SG_PAGE });
      return 0;
    });
    await m.run();
    expect(m.reports.map((r) => [r.type, r.rule])).toContainEqual(['violation', 'dma_buf.sg_page_access']);
  });

  it('with peer2peer claimed, the correct engine scans habanalabs memory peer-to-peer by DMA address only', async () => {
    const m = await displayMachine();
    let crc = 0;
    let nents = 0;
    const data = pattern(64 * 1024, 9);
    const p = m.spawn('p2p', async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const size = 2 * 1024 * 1024;
      const va = await hl.map(await hl.alloc(size));
      const host = sys.alloc(data.length, 4096);
      sys.memory(host, data.length).set(data);
      expect(
        await hl.waitFence(
          await hl.dmaJob({ op: HL_MODEL_DMA_HOST_TO_DEVICE, dst: va, src: host, size: data.length }),
        ),
      ).toBe(1);
      const fd = await hl.exportDmabufFd(va, size);
      const so = await Scanout.open(sys, 0);
      const r = await so.frame(fd, { length: data.length, flags: SCANOUT_FRAME_MODEL_P2P });
      crc = r.crc32;
      nents = r.nents;
      return 0;
    });
    await m.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(crc).toBe(zlibCrc32(data));
    // The engine sets no segment limit: habanalabs cuts the 2 MiB export at the 64 KiB default.
    expect(nents).toBe(32);
    expect(nonLeakIssues(m)).toEqual([]);
  });

  it('the buggy variant is caught on a page-backed buffer too (CONFIG_DMABUF_DEBUG poisons every lent table)', async () => {
    const m = await displayMachine();
    m.spawn('buggy', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(8192);
      const so = await Scanout.open(sys, 0);
      await so.frameRaw(buf.fd, { flags: SCANOUT_FRAME_MODEL_SG_PAGE });
      return 0;
    });
    await m.run();
    expect(m.reports.map((r) => [r.type, r.rule])).toContainEqual(['violation', 'dma_buf.sg_page_access']);
  });
});
