/**
 * Import-side pitfalls of spec/driver-side.md §8, each shown being caught by the model
 * with the RDMA importer (umem_dmabuf.c / uverbs_std_types_mr.c of Linux 6.12):
 * 4 (move_notify is mandatory for dynamic importers), 7 (the importer waits for KERNEL
 * fences after every map), 11 (the pinned error path unwinds without a double unpin),
 * 12 (IOVA/offset page-offset equality). Pitfall 1 (the HCA only uses DMA addresses of a
 * page-less peer-to-peer table) is shown by rdma-e2e-accel.test.ts running with no
 * sg_page violation. With the system heap (a static exporter) the failing map happens
 * at attach time, so case 11 exercises the attach-failure unwind, not pin-then-map.
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
import { dmaBufGet, dmaBufPut } from '../src/kernel/dma-buf/dma-buf.ts';
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
import { isErr } from '../src/kernel/err.ts';
import { errno } from '../src/kernel/errno.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import { DmaHeap } from '../src/uapi/dma-heap.ts';
import type { ErrnoError } from '../src/uapi/errno-error.ts';
import * as v from '../src/uapi/verbs.ts';
import { rcSide } from './helpers/rdma.ts';

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

  it('pitfall 11: a pinned import whose mapping fails unwinds cleanly (error returned, no attachment left, no report)', async () => {
    const c = await Cluster.create({ machines: 1 });
    let rc = 0;
    let attachments = -1;
    c.machines[0].spawn('p11', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(8192);
      const kb = dmaBufGet(buf.fd);
      if (isErr(kb)) return 1;
      // The exporter's map fails (out of IOVA space, say).
      const realMap = kb.ops.mapDmaBuf;
      (kb.ops as { mapDmaBuf: typeof realMap }).mapDmaBuf = () => null;
      const dev = ibDevices(c.machines[0].kernel)[0].dmaDevice;
      const u = await ibUmemDmabufGetPinned(dev, 0, 8192, buf.fd, IB_ACCESS_LOCAL_WRITE);
      rc = typeof u === 'number' ? u : 0;
      if (typeof u !== 'number') await ibUmemDmabufRelease(u);
      (kb.ops as { mapDmaBuf: typeof realMap }).mapDmaBuf = realMap;
      attachments = kb.attachments.length;
      dmaBufPut(kb);
      return 0;
    });
    await c.run();
    expect(rc).toBe(-errno.ENOMEM);
    expect(attachments).toBe(0);
    expect(c.reports.filter((r) => r.type !== 'leak')).toEqual([]);
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
});
