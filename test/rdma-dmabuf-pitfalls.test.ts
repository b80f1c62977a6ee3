/**
 * Import-side pitfalls of spec/driver-side.md §8, each shown being caught by the model
 * with the RDMA importer (umem_dmabuf.c / uverbs_std_types_mr.c of Linux 6.12) and the
 * dma-buf core (drivers/dma-buf/dma-buf.c):
 * 1 (a page-less table: habanalabs refuses importers without allow_peer2peer with -EPERM;
 *   the table has only DMA addresses; touching sg_page is reported),
 * 3 (static/dynamic mismatch maps at attach time: the error comes from attach, the cached
 *   mapping is BIDIRECTIONAL — so 6.12 hands it out for any direction — and lives until
 *   detach; -EBUSY is what a cache_sgt_mapping exporter's one-direction cache gives),
 * 4 (move_notify is mandatory for dynamic importers), 7 (the importer waits for KERNEL
 * fences after every map), 11 (the pinned error path after a real pin-then-map failure:
 * unmap only what was mapped, then unpin once, only if pinned), 12 (IOVA/offset
 * page-offset equality), 13 (segment limits: habanalabs' alloc_sgt_from_device_pages
 * honours dma_get_max_seg_size of the importer, 64 KiB by default, < PAGE_SIZE is -EINVAL).
 * The dynamic exporter of cases 3 and 11 is test/helpers/dyn-exporter.ts.
 */
import { describe, expect, it } from 'vitest';
import { ibDevices } from '../src/drivers/rdma/ib-core.ts';
import { IB_ACCESS_LOCAL_WRITE } from '../src/drivers/rdma/ib-verbs.ts';
import {
  ibUmemDmabufGet,
  ibUmemDmabufGetPinned,
  ibUmemDmabufRelease,
} from '../src/drivers/rdma/umem-dmabuf.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { F_ADD_SEALS, F_SEAL_SHRINK, MFD_ALLOW_SEALING } from '../src/index.ts';
import { Device } from '../src/kernel/device.ts';
import {
  dmaBufAttach,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufMapAttachmentUnlocked,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnmapAttachmentUnlocked,
} from '../src/kernel/dma-buf/dma-buf.ts';
import {
  DmaFence,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFenceSignal,
} from '../src/kernel/dma-buf/dma-fence.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvUnlock,
} from '../src/kernel/dma-buf/dma-resv.ts';
import { isErr, ptrErr } from '../src/kernel/err.ts';
import { errno } from '../src/kernel/errno.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../src/kernel/mm/dma-mapping.ts';
import { deviceSetupDma, dmaSetMaxSegSize } from '../src/kernel/mm/iommu.ts';
import { SG_PAGE_ACCESS_RULE, sgPage } from '../src/kernel/mm/scatterlist.ts';
import { pciBus } from '../src/kernel/pci/pci-driver.ts';
import { Machine } from '../src/machine.ts';
import { KernelBug } from '../src/sim/report.ts';
import { DmaHeap } from '../src/uapi/dma-heap.ts';
import type { ErrnoError } from '../src/uapi/errno-error.ts';
import { HlDevice } from '../src/uapi/habanalabs.ts';
import type { Sys } from '../src/uapi/sys.ts';
import { Udmabuf } from '../src/uapi/udmabuf.ts';
import * as v from '../src/uapi/verbs.ts';
import { type DynExporter, dynExport } from './helpers/dyn-exporter.ts';
import { rcSide } from './helpers/rdma.ts';

const MIB = 1024 * 1024;

/** A DMA device under the machine's NIC function (P2P-reachable from the accelerator), with the default segment limit. */
function peerDevice(m: Machine, name: string): Device {
  const pdev = pciBus(m.kernel)!.topology.endpointsOf('nic')[0];
  const dev = new Device(name, { parent: pdev });
  deviceSetupDma(dev, { iommu: pdev.topology.iommu });
  return dev;
}

/** Allocates, maps and exports `size` bytes of accelerator memory; returns the dma-buf fd. */
async function hlExport(sys: Sys, size: number): Promise<{ fd: number }> {
  const hl = await HlDevice.open(sys, 0);
  const va = await hl.map(await hl.alloc(size));
  return { fd: await hl.exportDmabufFd(va, size) };
}

const ops: DmaFenceOps = { getDriverName: () => 'test', getTimelineName: () => 'kernel-move' };

describe('dma-buf import pitfalls (RDMA importer)', () => {
  it('pitfall 4: a dynamic attach without move_notify is refused with -EINVAL', async () => {
    const c = await Cluster.create({ machines: 1 });
    const rc: number[] = [];
    c.machines[0].spawn('p4', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(8192);
      const dev = ibDevices(c.machines[0].kernel)[0].dmaDevice;
      for (const o of [null, { allowPeer2peer: true }]) {
        const u = await ibUmemDmabufGet(dev, 0, 8192, buf.fd, IB_ACCESS_LOCAL_WRITE, o);
        rc.push(typeof u === 'number' ? u : 0);
      }
      return 0;
    });
    await c.run();
    expect(rc).toEqual([-errno.EINVAL, -errno.EINVAL]);
  });

  it('pitfall 7: registration waits for the KERNEL fence of a pending move before the HCA may touch the memory', async () => {
    const c = await Cluster.create({ machines: 1 });
    const k = c.machines[0].kernel;
    let regAt = 0;
    let signalAt = 0;
    c.machines[0].spawn('p7', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(8192);
      const kb = dmaBufGet(buf.fd);
      if (isErr(kb)) return 1;
      const fence = new DmaFence(ops, new SpinLock('test_fence'), dmaFenceContextAlloc(1), 1);
      await dmaResvLock(kb.resv, null);
      expect(dmaResvReserveFences(kb.resv, 1)).toBe(0);
      dmaResvAddFence(kb.resv, fence, DMA_RESV_USAGE_KERNEL);
      dmaResvUnlock(kb.resv);
      dmaBufPut(kb);
      sys.spawnThread(async () => {
        await k.engine.sleep(5_000_000);
        signalAt = k.engine.now;
        dmaFenceSignal(fence);
        return 0;
      });
      const s = await rcSide(sys);
      await v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, v.IBV_ACCESS_LOCAL_WRITE);
      regAt = k.engine.now;
      return 0;
    });
    await c.run();
    expect(signalAt).toBeGreaterThan(0);
    expect(regAt).toBeGreaterThanOrEqual(signalAt);
  });

  it('pitfall 11: a pinned import whose map fails after a successful pin (BAR window exhausted) unpins once, then detaches', async () => {
    const m = await Machine.create({ seed: 1 });
    let rcB = 0;
    let log: string[] = [];
    let pinsAfterFail = -1;
    let exp: DynExporter | null = null;
    m.spawn('p11', async () => {
      // The buffer's BAR window holds one mapping: importer A takes it.
      const e = dynExport({ size: 1024 * 1024, windowBytes: 1024 * 1024 });
      exp = e;
      const devA = peerDevice(m, 'peer-a');
      const a = await ibUmemDmabufGetPinned(devA, 0, 1024 * 1024, e.fd, IB_ACCESS_LOCAL_WRITE);
      if (typeof a === 'number') return 1;
      // Importer B (the HCA): attach and pin succeed, the exporter's map does not.
      const devB = ibDevices(m.kernel)[0].dmaDevice;
      const b = await ibUmemDmabufGetPinned(devB, 0, 1024 * 1024, e.fd, IB_ACCESS_LOCAL_WRITE);
      rcB = typeof b === 'number' ? b : 0;
      pinsAfterFail = e.pins;
      await ibUmemDmabufRelease(a);
      log = [...e.log];
      return 0;
    });
    await m.run();
    const e = exp as DynExporter | null;
    expect(rcB).toBe(-errno.ENOSPC);
    const b = ibDevices(m.kernel)[0].dmaDevice.name;
    expect(log).toEqual([
      'attach peer-a',
      'pin peer-a',
      'map peer-a',
      `attach ${b}`,
      `pin ${b}`,
      `map ${b} -${errno.ENOSPC}`,
      // ib_umem_release -> revoke: nothing was mapped, so no unmap; the pin is dropped once.
      `unpin ${b}`,
      `detach ${b}`,
      // A normal release: unmap before unpin.
      'unmap peer-a',
      'unpin peer-a',
      'detach peer-a',
    ]);
    expect(pinsAfterFail).toBe(1);
    expect(e?.pins).toBe(0);
    expect(e?.unbalancedUnpins).toBe(0);
    expect(e?.log.at(-1)).toBe('release');
    expect(m.reports).toEqual([]);
  });

  it('pitfall 11: a pinned import whose pin fails never unpins or unmaps', async () => {
    const m = await Machine.create({ seed: 1 });
    let rc = 0;
    let exp: DynExporter | null = null;
    m.spawn('p11-pin', async () => {
      const e = dynExport({ pinError: -errno.ENOMEM });
      exp = e;
      const dev = ibDevices(m.kernel)[0].dmaDevice;
      const u = await ibUmemDmabufGetPinned(dev, 0, 4096, e.fd, IB_ACCESS_LOCAL_WRITE);
      rc = typeof u === 'number' ? u : 0;
      return 0;
    });
    await m.run();
    const e = exp as DynExporter | null;
    const dev = ibDevices(m.kernel)[0].dmaDevice.name;
    expect(rc).toBe(-errno.ENOMEM);
    expect(e?.log).toEqual([`attach ${dev}`, `pin ${dev} -${errno.ENOMEM}`, `detach ${dev}`, 'release']);
    expect(e?.unbalancedUnpins).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it('pitfall 12: offset and iova with different page offsets fail with EINVAL before anything is attached', async () => {
    const c = await Cluster.create({ machines: 1 });
    let code = '';
    let attachments = -1;
    c.machines[0].spawn('p12', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(16384);
      const s = await rcSide(sys);
      try {
        await v.ibv_reg_dmabuf_mr(s.pd, 0x80, 4096, 0x1000, buf.fd, v.IBV_ACCESS_LOCAL_WRITE);
      } catch (e) {
        code = (e as ErrnoError).code;
      }
      const kb = dmaBufGet(buf.fd);
      if (!isErr(kb)) {
        attachments = kb.attachments.length;
        dmaBufPut(kb);
      }
      return 0;
    });
    await c.run();
    expect(code).toBe('EINVAL');
    expect(attachments).toBe(0);
  });
  it('pitfall 1: an importer without allow_peer2peer is refused with -EPERM by habanalabs (from attach: the mapping is made there)', async () => {
    const m = await Machine.create({ seed: 1 });
    let rc = 0;
    let attachments = -1;
    m.spawn('p1', async (sys) => {
      const { fd } = await hlExport(sys, 2 * MIB);
      const dev = ibDevices(m.kernel)[0].dmaDevice;
      const u = await ibUmemDmabufGet(dev, 0, 2 * MIB, fd, IB_ACCESS_LOCAL_WRITE, {
        allowPeer2peer: false,
        moveNotify: () => {},
      });
      rc = typeof u === 'number' ? u : 0;
      const kb = dmaBufGet(fd);
      if (!isErr(kb)) {
        attachments = kb.attachments.length;
        dmaBufPut(kb);
      }
      return 0;
    });
    await m.run();
    expect(rc).toBe(-errno.EPERM);
    expect(attachments).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it('pitfall 1: the peer-to-peer table has no pages (DMA addresses only) and touching sg_page is reported', async () => {
    const m = await Machine.create({ seed: 1 });
    let shape: unknown = null;
    let caught: unknown = null;
    m.spawn('p1-sg', async (sys) => {
      const { fd } = await hlExport(sys, 2 * MIB);
      const dev = ibDevices(m.kernel)[0].dmaDevice;
      const u = await ibUmemDmabufGetPinned(dev, 0, 2 * MIB, fd, IB_ACCESS_LOCAL_WRITE);
      if (typeof u === 'number') return 1;
      const sgt = u.sgt!;
      shape = {
        origNents: sgt.origNents,
        nents: sgt.nents > 0,
        pages: sgt.sgl.every((sg) => sg.pages.length === 0),
        dmaBytes: sgt.sgl.reduce((n, sg) => n + sg.dmaLength, 0),
      };
      try {
        sgPage(sgt.sgl[0]);
      } catch (e) {
        caught = e;
      }
      await ibUmemDmabufRelease(u);
      return 0;
    });
    await m.run();
    expect(shape).toEqual({ origNents: 0, nents: true, pages: true, dmaBytes: 2 * MIB });
    expect(caught).toBeInstanceOf(KernelBug);
    expect(m.reports.map((r) => [r.type, r.rule])).toEqual([['violation', SG_PAGE_ACCESS_RULE]]);
  });

  it('pitfall 3: a dynamic importer of a static exporter is mapped at attach time, BIDIRECTIONAL, cached until detach', async () => {
    const m = await Machine.create({ seed: 1 });
    let r: Record<string, unknown> = {};
    m.spawn('p3', async (sys) => {
      const { fd } = await hlExport(sys, 2 * MIB);
      const dev = ibDevices(m.kernel)[0].dmaDevice;
      const u = await ibUmemDmabufGet(dev, 0, 2 * MIB, fd, IB_ACCESS_LOCAL_WRITE, {
        allowPeer2peer: true,
        moveNotify: () => {},
      });
      if (typeof u === 'number') return 1;
      const at = u.attach;
      const cached = at.sgt;
      await dmaResvLock(u.dmabuf.resv, null);
      // 6.12 returns the cached table for any direction when it is BIDIRECTIONAL.
      const toDev = await dmaBufMapAttachment(at, DMA_TO_DEVICE);
      const fromDev = await dmaBufMapAttachment(at, DMA_FROM_DEVICE);
      if (!isErr(toDev)) await dmaBufUnmapAttachment(at, toDev, DMA_TO_DEVICE);
      if (!isErr(fromDev)) await dmaBufUnmapAttachment(at, fromDev, DMA_FROM_DEVICE);
      dmaResvUnlock(u.dmabuf.resv);
      r = {
        cachedAtAttach: cached !== null,
        dir: at.dir,
        sameForToDevice: toDev === cached,
        sameForFromDevice: fromDev === cached,
        stillCachedAfterUnmap: at.sgt === cached,
      };
      await ibUmemDmabufRelease(u);
      r.detachedDropsIt = at.sgt === null && at.detached;
      return 0;
    });
    await m.run();
    expect(r).toEqual({
      cachedAtAttach: true,
      dir: DMA_BIDIRECTIONAL,
      sameForToDevice: true,
      sameForFromDevice: true,
      stillCachedAfterUnmap: true,
      detachedDropsIt: true,
    });
    expect(m.reports).toEqual([]);
  });

  it('pitfall 3: a static importer of a dynamic exporter: pin + map at attach, the map error (-EPERM) comes from dma_buf_attach, unpinned again', async () => {
    const m = await Machine.create({ seed: 1 });
    let rc = 0;
    let exp: DynExporter | null = null;
    m.spawn('p3-static', async () => {
      const e = dynExport();
      exp = e;
      const at = await dmaBufAttach(e.dmabuf, peerDevice(m, 'scanout-like'));
      rc = isErr(at) ? ptrErr(at) : 0;
      return 0;
    });
    await m.run();
    const e = exp as DynExporter | null;
    expect(rc).toBe(-errno.EPERM);
    expect(e?.log).toEqual([
      'attach scanout-like',
      'pin scanout-like',
      `map scanout-like -${errno.EPERM}`,
      'unpin scanout-like',
      'detach scanout-like',
      'release',
    ]);
    expect(e?.pins).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it('pitfall 3: a cached mapping in one direction refuses another direction with -EBUSY (cache_sgt_mapping: udmabuf)', async () => {
    const m = await Machine.create({ seed: 1 });
    let r: unknown[] = [];
    m.spawn('p3-busy', async (sys) => {
      const memfd = await sys.memfd_create(sys.allocCString('p3'), MFD_ALLOW_SEALING);
      await sys.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK);
      await sys.ftruncate(memfd, 8192);
      const buf = await (await Udmabuf.open(sys)).create(memfd, 0, 8192);
      const kb = dmaBufGet(buf.fd);
      if (isErr(kb)) return 1;
      const at = await dmaBufAttach(kb, peerDevice(m, 'capture'));
      if (isErr(at)) return 1;
      const a = await dmaBufMapAttachmentUnlocked(at, DMA_TO_DEVICE);
      const b = await dmaBufMapAttachmentUnlocked(at, DMA_FROM_DEVICE);
      const c = await dmaBufMapAttachmentUnlocked(at, DMA_TO_DEVICE);
      r = [isErr(a) ? ptrErr(a) : 'table', isErr(b) ? ptrErr(b) : 'table', c === a];
      if (!isErr(a)) await dmaBufUnmapAttachmentUnlocked(at, a, DMA_TO_DEVICE);
      if (!isErr(c)) await dmaBufUnmapAttachmentUnlocked(at, c, DMA_TO_DEVICE);
      await dmaBufDetach(kb, at);
      dmaBufPut(kb);
      return 0;
    });
    await m.run();
    expect(r).toEqual(['table', -errno.EBUSY, true]);
    expect(m.reports).toEqual([]);
  });

  describe("pitfall 13: habanalabs honours the importer's dma max segment size", () => {
    const cases: [string, number | null, number | 'EINVAL'][] = [
      ['a device that sets none gets the 64 KiB default', null, 64 * 1024],
      ['1 MiB + 123 is rounded down to 1 MiB', MIB + 123, MIB],
      ['exactly PAGE_SIZE', 4096, 4096],
      ['below PAGE_SIZE is -EINVAL', 2048, 'EINVAL'],
    ];
    for (const [name, seg, want] of cases) {
      it(name, async () => {
        const m = await Machine.create({ seed: 1 });
        let got: { rc: number; lens: number[] } = { rc: 0, lens: [] };
        m.spawn('p13', async (sys) => {
          const { fd } = await hlExport(sys, 4 * MIB);
          const dev = peerDevice(m, 'seg-importer');
          if (seg !== null) dmaSetMaxSegSize(dev, seg);
          const kb = dmaBufGet(fd);
          if (isErr(kb)) return 1;
          const at = await dmaBufDynamicAttach(kb, dev, { allowPeer2peer: true, moveNotify: () => {} });
          if (isErr(at)) {
            got = { rc: ptrErr(at), lens: [] };
          } else {
            got = { rc: 0, lens: at.sgt!.sgl.slice(0, at.sgt!.nents).map((sg) => sg.dmaLength) };
            await dmaBufDetach(kb, at);
          }
          dmaBufPut(kb);
          return 0;
        });
        await m.run();
        if (want === 'EINVAL') {
          expect(got.rc).toBe(-errno.EINVAL);
        } else {
          expect(got.rc).toBe(0);
          expect(Math.max(...got.lens)).toBe(want);
          expect(got.lens.reduce((a, b) => a + b, 0)).toBe(4 * MIB);
          expect(got.lens.length).toBe((4 * MIB) / want);
        }
        expect(m.reports.filter((x) => x.type !== 'warn')).toEqual([]);
      });
    }
  });
});
