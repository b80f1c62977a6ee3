/**
 * dma-buf memory regions (ibv_reg_dmabuf_mr through ib_umem_dmabuf), with the system
 * DMA-BUF heap as the exporter. Cases are named after rdma-core's
 * tests/test_dmabuf_mr.py (DmaBufMRTest, DmaBufTestCase) where they apply, plus the
 * checks of uverbs_std_types_mr.c (spec/driver-side.md §4.2-4.3), invalidation through
 * move_notify with re-map on the next access (ODP HCA), the pinned variant (HCA without
 * ODP), and process exit releasing the attachment.
 */
import { describe, expect, it } from 'vitest';
import { habanalabsInit } from '../src/drivers/accel/habanalabs/habanalabs-drv.ts';
import { ibDevices } from '../src/drivers/rdma/ib-core.ts';
import type { IbUmemDmabuf } from '../src/drivers/rdma/umem-dmabuf.ts';
import { UMEM_DMABUF_PINNED_INVALIDATE_RULE } from '../src/drivers/rdma/umem-dmabuf.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import {
  dmaBufGet,
  dmaBufMoveNotify,
  dmaBufPut,
  type DmaBuf as KDmaBuf,
} from '../src/kernel/dma-buf/dma-buf.ts';
import { dmaResvLock, dmaResvUnlock } from '../src/kernel/dma-buf/dma-resv.ts';
import { isErr } from '../src/kernel/err.ts';
import { DmaHeap } from '../src/uapi/dma-heap.ts';
import { HlDevice } from '../src/uapi/habanalabs.ts';
import type { Sys } from '../src/uapi/sys.ts';
import * as v from '../src/uapi/verbs.ts';
import {
  dmabufAccessFlags,
  errnoOf,
  exchange,
  exchangeAndConnect,
  pattern,
  rcConnect,
  rcSide,
  rdmaWriteWr,
} from './helpers/rdma.ts';

const LW = v.IBV_ACCESS_LOCAL_WRITE;
const RW = v.IBV_ACCESS_REMOTE_WRITE;
const RR = v.IBV_ACCESS_REMOTE_READ;
const RA = v.IBV_ACCESS_REMOTE_ATOMIC;

/** Runs `main` on a one-machine cluster; returns the cluster after the run. */
async function single(main: (sys: Sys, c: Cluster) => Promise<number | undefined>): Promise<Cluster> {
  const c = await Cluster.create({ machines: 1 });
  const p = c.machines[0].spawn('dmabuf-mr', (sys) => main(sys, c));
  await c.run();
  expect(p.exitCode, String(p.error)).toBe(0);
  return c;
}

async function heapBuf(sys: Sys, len: number) {
  const heap = await DmaHeap.open(sys, 'system');
  return heap.alloc(len);
}

describe('DmaBufMRTest with the accelerator as the provider (HabanaLabsDmaBuf)', () => {
  it('test_dmabuf_reg_mr: every supported access flag x offset in {0, len/2} on exported device memory', async () => {
    habanalabsInit();
    const len = 64 * 1024;
    const c = await Cluster.create({ machines: 1 });
    const p = c.machines[0].spawn('hl-mr', async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const s = await rcSide(sys);
      for (const off of [0, len / 2]) {
        const va = await hl.map(await hl.alloc(2 * 1024 * 1024));
        const fd = await hl.exportDmabufFd(va, len + off);
        for (const f of dmabufAccessFlags()) {
          const mr = await v.ibv_reg_dmabuf_mr(s.pd, off, len, off, fd, f);
          expect(mr.length).toBe(len);
          await v.ibv_dereg_mr(mr);
        }
        await sys.close(fd);
      }
      return 0;
    });
    await c.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });

  it('test_dmabuf_write / test_dmabuf_read are skipped: the accelerator dma-buf cannot be mmapped (EINVAL)', async () => {
    habanalabsInit();
    const c = await Cluster.create({ machines: 1 });
    let rc = 0;
    c.machines[0].spawn('hl-mmap', async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const va = await hl.map(await hl.alloc(2 * 1024 * 1024));
      const fd = await hl.exportDmabufFd(va, 65536);
      rc = await sys.mmap(0, 65536, 3, 1, fd, 0);
      return 0;
    });
    await c.run();
    expect(rc).toBe(-22);
  });
});

describe('DmaBufMRTest', () => {
  it('test_dmabuf_reg_mr: every supported access flag x offset in {0, len/2}', async () => {
    const len = 64 * 1024;
    const c = await single(async (sys) => {
      const s = await rcSide(sys);
      for (const off of [0, len / 2]) {
        const buf = await heapBuf(sys, len + off);
        for (const f of dmabufAccessFlags()) {
          const mr = await v.ibv_reg_dmabuf_mr(s.pd, off, len, off, buf.fd, f);
          expect(mr.length).toBe(len);
          expect(mr.addr).toBe(off);
          await v.ibv_dereg_mr(mr);
        }
      }
      return 0;
    });
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });

  it('test_dmabuf_dereg_mr and test_dmabuf_dereg_mr_twice', async () => {
    let kbuf: KDmaBuf | null = null;
    await single(async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 8192);
      const k = dmaBufGet(buf.fd);
      if (isErr(k)) return 1;
      kbuf = k;
      dmaBufPut(k);
      const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, LW);
      expect(k.attachments.length).toBe(1);
      await v.ibv_dereg_mr(mr);
      expect(k.attachments.length).toBe(0);
      await v.ibv_dereg_mr(mr);
      return 0;
    });
    expect(kbuf!.attachments.length).toBe(0);
  });

  it('test_dmabuf_reg_mr_bad_flags: REMOTE_WRITE and/or REMOTE_ATOMIC without LOCAL_WRITE fail with EINVAL', async () => {
    await single(async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 8192);
      for (const f of [RW, RA, RW | RA, RW | RR]) {
        expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, f))).toBe('EINVAL');
      }
      // Bits outside the REG_DMABUF_MR mask (ON_DEMAND, MW_BIND) are refused too.
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, LW | v.IBV_ACCESS_ON_DEMAND))).toBe(
        'EINVAL',
      );
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, LW | v.IBV_ACCESS_MW_BIND))).toBe(
        'EINVAL',
      );
      return 0;
    });
  });

  it('test_dmabuf_lkey and test_dmabuf_rkey: distinct, equal per MR, valid keys', async () => {
    await single(async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 16384);
      const a = await v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, LW | RW | RR);
      const b = await v.ibv_reg_dmabuf_mr(s.pd, 8192, 8192, 8192, buf.fd, LW | RW | RR);
      expect(a.lkey).toBe(a.rkey);
      expect(a.lkey).not.toBe(b.lkey);
      expect(a.lkey).toBeGreaterThan(0);
      return 0;
    });
  });

  it('offset and iova must share their page offset (uverbs_std_types_mr.c)', async () => {
    await single(async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 16384);
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 4096, 0x100, buf.fd, LW))).toBe('EINVAL');
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0x100, 4096, 0x7000100, buf.fd, LW))).toBe('ok');
      // A range past the end of the buffer, an fd that is not open, an fd that is not a dma-buf.
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 8192, 16384, 8192, buf.fd, LW))).toBe('EINVAL');
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 4096, 0, 999, LW))).toBe('EBADF');
      expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 4096, 0, s.ctx.cmd_fd, LW))).toBe('EINVAL');
      return 0;
    });
  });

  it('EOPNOTSUPP when the driver has no reg_user_mr_dmabuf (the tests skip there)', async () => {
    const c = await Cluster.create({ machines: 1 });
    ibDevices(c.machines[0].kernel)[0].caps.dmabufMr = false;
    let code = '';
    c.machines[0].spawn('nosupp', async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 8192);
      code = await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, buf.fd, LW));
      return 0;
    });
    await c.run();
    expect(code).toBe('EOPNOTSUPP');
  });
});

/** Two machines: A writes `len` bytes into B's dma-buf MR; `between` runs on B after each write. */
async function rdmaIntoDmabuf(opts: {
  odp: boolean;
  rounds: number;
  between?: (sys: Sys, fd: number, mr: v.IbvMr) => Promise<void>;
  send?: boolean;
}) {
  const c = await Cluster.create({ machines: 2, linkGbps: 100 });
  ibDevices(c.machines[1].kernel)[0].caps.odp = opts.odp;
  const len = 128 * 1024;
  const results: { ok: boolean; status: number }[] = [];
  let umem: IbUmemDmabuf | null = null;
  const a = c.machines[0].spawn('writer', async (sys) => {
    const s = await rcSide(sys);
    const buf = sys.alloc(len, 4096);
    const mr = v.ibv_reg_mr(s.pd, buf, len, LW);
    const peer = await exchangeAndConnect(c.oob, s, 'a', 'b', { addr: buf, rkey: mr.rkey }, LW | RW);
    for (let r = 0; r < opts.rounds; r++) {
      sys.memory(buf, len).set(pattern(len, r + 1));
      await c.oob.recv('b-ready');
      v.ibv_post_send(s.qp, {
        ...rdmaWriteWr(r, { addr: buf, length: len, lkey: mr.lkey }, peer),
        opcode: opts.send ? v.IBV_WR_SEND : v.IBV_WR_RDMA_WRITE,
      });
      const [wc] = await v.ibv_poll_cq_wait(s.cq, 1);
      c.oob.send('a-wrote', wc.status);
    }
    return 0;
  });
  const b = c.machines[1].spawn('target', async (sys) => {
    const s = await rcSide(sys);
    const dbuf = await heapBuf(sys, len + 4096);
    // MR at offset 4096 of the buffer, as test_dmabuf_rdma_traffic's raddr = MR offset.
    const mr = await v.ibv_reg_dmabuf_mr(s.pd, 4096, len, 4096, dbuf.fd, LW | RW);
    umem = mr.mr.umem as IbUmemDmabuf;
    await exchange(c.oob, 'b', 'a', { lid: s.lid, qpn: s.qp.qp_num, addr: mr.addr, rkey: mr.rkey });
    rcConnect(
      s.qp,
      { lid: (await Promise.resolve(v.ibv_query_port(s.ctx, 1))).lid === 2 ? 1 : 2, qpn: 0x100 },
      LW | RW,
    );
    const map = await dbuf.mmap();
    for (let r = 0; r < opts.rounds; r++) {
      if (opts.send)
        v.ibv_post_recv(s.qp, { wr_id: 100 + r, sg_list: [{ addr: mr.addr, length: len, lkey: mr.lkey }] });
      c.oob.send('b-ready', r);
      const status = await c.oob.recv<number>('a-wrote');
      if (opts.send) await v.ibv_poll_cq_wait(s.cq, 1);
      const got = await dbuf.withCpuAccess('read', () => Buffer.from(map.bytes().subarray(4096, 4096 + len)));
      results.push({ ok: got.equals(Buffer.from(pattern(len, r + 1))), status });
      if (opts.between) await opts.between(sys, dbuf.fd, mr);
    }
    return 0;
  });
  await c.run();
  expect(a.exitCode, String(a.error)).toBe(0);
  expect(b.exitCode, String(b.error)).toBe(0);
  return { c, results, umem: umem as IbUmemDmabuf | null };
}

/** The exporter moves the buffer: move_notify under the reservation lock (what an exporter does before moving). */
async function moveNotify(fd: number): Promise<void> {
  const k = dmaBufGet(fd);
  if (isErr(k)) throw new Error('not a dma-buf');
  await dmaResvLock(k.resv, null);
  await dmaBufMoveNotify(k);
  dmaResvUnlock(k.resv);
  dmaBufPut(k);
}

describe('DmaBufTestCase', () => {
  it('test_dmabuf_rdma_traffic: RDMA WRITE into a dma-buf MR at raddr = MR offset, bytes verified through mmap', async () => {
    const { results, c } = await rdmaIntoDmabuf({ odp: true, rounds: 2 });
    expect(results).toEqual([
      { ok: true, status: v.IBV_WC_SUCCESS },
      { ok: true, status: v.IBV_WC_SUCCESS },
    ]);
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });

  it('test_dmabuf_rc_traffic: SEND/RECV into a dma-buf MR', async () => {
    const { results } = await rdmaIntoDmabuf({ odp: true, rounds: 1, send: true });
    expect(results).toEqual([{ ok: true, status: v.IBV_WC_SUCCESS }]);
  });

  it('move_notify invalidates the dynamic MR, the next access re-maps it, no byte is lost', async () => {
    const seen: (number | null)[] = [];
    const { results, umem, c } = await rdmaIntoDmabuf({
      odp: true,
      rounds: 3,
      between: async (_sys, fd, mr) => {
        await moveNotify(fd);
        seen.push((mr.mr.umem as IbUmemDmabuf).segments === null ? 0 : 1);
      },
    });
    expect(results.every((r) => r.ok && r.status === v.IBV_WC_SUCCESS)).toBe(true);
    expect(umem!.invalidations).toBe(3);
    expect(umem!.mapCount).toBe(3); // the registration's map and one re-map per later write
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
    expect(seen).toEqual([0, 0, 0]); // unmapped right after every move_notify
  });

  it('an HCA without ODP pins the exporter (ib_umem_dmabuf_get_pinned); move_notify only warns', async () => {
    const { results, umem, c } = await rdmaIntoDmabuf({
      odp: false,
      rounds: 2,
      between: async (_sys, fd) => moveNotify(fd),
    });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(umem!.mapCount).toBe(1);
    expect(c.reports.filter((r) => r.rule === UMEM_DMABUF_PINNED_INVALIDATE_RULE).length).toBe(2);
    expect(umem!.revoked).toBe(true); // released at process exit: unmapped and unpinned once
  });

  it('process exit releases the MR, detaches the dma-buf and leaks nothing', async () => {
    let kbuf: KDmaBuf | null = null;
    const c = await Cluster.create({ machines: 1 });
    c.machines[0].spawn('exits', async (sys) => {
      const s = await rcSide(sys);
      const buf = await heapBuf(sys, 65536);
      const k = dmaBufGet(buf.fd);
      if (isErr(k)) return 1;
      kbuf = k;
      dmaBufPut(k);
      await v.ibv_reg_dmabuf_mr(s.pd, 0, 65536, 0, buf.fd, LW | RW | RR);
      // (A second MR of the same pages from the same device would trip iommu.ts's
      // dma-direct bookkeeping, which keys mappings by address; reported to its owner.)
      const other = await heapBuf(sys, 16384);
      await v.ibv_reg_dmabuf_mr(s.pd, 4096, 8192, 4096, other.fd, LW);
      expect(k.attachments.length).toBe(1);
      return 0; // no dereg, no close
    });
    await c.run();
    expect(kbuf!.attachments.length).toBe(0);
    expect(kbuf!.file.released).toBe(true);
    expect(ibDevices(c.machines[0].kernel)[0].mrs.size).toBe(0);
    expect(
      c.reports.filter((r) => r.type === 'leak' || r.type === 'violation').map((r) => r.message),
    ).toEqual([]);
  });
});
