/**
 * The verbs objects of the RDMA NIC model between two machines of a cluster: the RC QP
 * state machine, post/poll, RDMA WRITE / READ / SEND with the bytes verified, and the
 * completion errors (remote access error for a bad rkey or range, flush after error);
 * RNR retry (IBV_WC_RNR_RETRY_EXC_ERR after rnr_retry), atomics (FETCH_AND_ADD,
 * CMP_AND_SWP), several WRs in flight per QP (streamed back to back, executed and
 * completed in order, fair sharing between QPs), shared receive queues, and PCIe legs
 * that share the machine's PCIe links (one flow with the wire: contention at either end
 * slows the other).
 */
import { describe, expect, it } from 'vitest';
import { ibDevices } from '../src/drivers/rdma/ib-core.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { Machine } from '../src/machine.ts';
import {
  HL_MODEL_DMA_DEVICE_TO_HOST,
  HL_MODEL_DMA_HOST_TO_DEVICE,
  HlDevice,
} from '../src/uapi/habanalabs.ts';
import type { Sys } from '../src/uapi/sys.ts';
import * as v from '../src/uapi/verbs.ts';
import {
  exchange,
  pattern,
  pollCqN,
  type RcInfo,
  type RcSide,
  rcConnect,
  rcHostSide,
  rcSide,
  rdmaWriteWait,
  rdmaWriteWr,
  srqQp,
} from './helpers/rdma.ts';

const RW = v.IBV_ACCESS_LOCAL_WRITE | v.IBV_ACCESS_REMOTE_WRITE | v.IBV_ACCESS_REMOTE_READ;

describe('device list', () => {
  it('a plain Machine lists its NIC as mlx5_0 at /dev/infiniband/uverbs0, port down outside a cluster', async () => {
    const m = await Machine.create();
    let names: string[] = [];
    let state = -1;
    m.spawn('list', async (sys) => {
      const list = v.ibv_get_device_list(sys);
      names = list.map((d) => `${v.ibv_get_device_name(d)} ${d.dev_path}`);
      const ctx = await v.ibv_open_device(sys, list[0]);
      state = v.ibv_query_port(ctx, 1).state;
      await v.ibv_close_device(ctx);
      return 0;
    });
    await m.run();
    expect(names).toEqual(['mlx5_0 /dev/infiniband/uverbs0']);
    expect(state).toBe(v.IBV_PORT_DOWN);
  });
});

describe('RC QP state machine', () => {
  it('goes RESET -> INIT -> RTR -> RTS and refuses wrong transitions and masks', async () => {
    const c = await Cluster.create({ machines: 1 });
    const seen: number[] = [];
    const p = c.machines[0].spawn('qp', async (sys) => {
      const s = await rcSide(sys);
      seen.push(s.qp.state);
      // RESET -> RTR is not a transition.
      expect(() => v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_RTR }, v.IBV_QP_STATE)).toThrow(/EINVAL/);
      // INIT without its required attributes.
      expect(() => v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_INIT }, v.IBV_QP_STATE)).toThrow(/EINVAL/);
      // post_send before RTS.
      expect(() => v.ibv_post_send(s.qp, { wr_id: 1, opcode: v.IBV_WR_SEND, sg_list: [] })).toThrow(/EINVAL/);
      expect(() => v.ibv_post_recv(s.qp, { wr_id: 1, sg_list: [] })).toThrow(/EINVAL/);
      rcConnect(s.qp, { lid: s.lid, qpn: s.qp.qp_num });
      seen.push(s.qp.state);
      expect(v.ibv_query_qp(s.qp).state_name).toBe('RTS');
      // RTS -> INIT is not a transition; any state -> ERR is.
      expect(() => v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_INIT }, v.IBV_QP_STATE)).toThrow(/EINVAL/);
      v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_ERR }, v.IBV_QP_STATE);
      seen.push(s.qp.state);
      v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_RESET }, v.IBV_QP_STATE);
      seen.push(s.qp.state);
      // The CQ and PD are busy while the QP lives.
      expect(() => v.ibv_destroy_cq(s.cq)).toThrow(/EBUSY/);
      expect(() => v.ibv_dealloc_pd(s.pd)).toThrow(/EBUSY/);
      v.ibv_destroy_qp(s.qp);
      v.ibv_destroy_cq(s.cq);
      v.ibv_dealloc_pd(s.pd);
      await v.ibv_close_device(s.ctx);
      return 0;
    });
    await c.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(seen).toEqual([v.IBV_QPS_RESET, v.IBV_QPS_RTS, v.IBV_QPS_ERR, v.IBV_QPS_RESET]);
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });
});

describe('RDMA between two machines', () => {
  it('RDMA WRITE, RDMA READ and SEND/RECV move real bytes with completions', async () => {
    const c = await Cluster.create({ machines: 2, linkGbps: 200 });
    const len = 256 * 1024;
    const src = pattern(len, 7);
    const back = pattern(len, 9);
    const got: Record<string, unknown> = {};
    const a = c.machines[0].spawn('client', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'a', 'b', { len: len * 2, mrAccess: RW });
      const { buf, mr, peer } = s;
      sys.memory(buf, len).set(src);
      await c.oob.recv('b-ready');
      v.ibv_post_send(s.qp, rdmaWriteWr(1, { addr: buf, length: len, lkey: mr.lkey }, peer));
      v.ibv_post_send(s.qp, {
        wr_id: 2,
        opcode: v.IBV_WR_RDMA_READ,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: buf + len, length: len, lkey: mr.lkey }],
        wr: { rdma: { remote_addr: peer.addr + len, rkey: peer.rkey } },
      });
      v.ibv_post_send(s.qp, {
        wr_id: 3,
        opcode: v.IBV_WR_SEND,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: buf, length: 4096, lkey: mr.lkey }],
      });
      const wcs = await pollCqN(s.cq, 3);
      got.a = wcs.map((w) => [w.wr_id, w.status, w.opcode, w.byte_len]);
      got.read = Buffer.from(sys.memory(buf + len, len)).equals(Buffer.from(back));
      c.oob.send('a-done', 1);
      return 0;
    });
    const b = c.machines[1].spawn('server', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'b', 'a', { len: len * 2 + 4096, mrAccess: RW });
      const { buf, mr } = s;
      sys.memory(buf + len, len).set(back);
      v.ibv_post_recv(s.qp, { wr_id: 10, sg_list: [{ addr: buf + len * 2, length: 4096, lkey: mr.lkey }] });
      c.oob.send('b-ready', 1);
      const wcs = await v.ibv_poll_cq_wait(s.cq, 8);
      got.b = wcs.map((w) => [w.wr_id, w.status, w.opcode, w.byte_len]);
      await c.oob.recv('a-done');
      got.written = Buffer.from(sys.memory(buf, len)).equals(Buffer.from(src));
      got.sent = Buffer.from(sys.memory(buf + len * 2, 4096)).equals(Buffer.from(src.subarray(0, 4096)));
      return 0;
    });
    await c.run();
    expect(a.exitCode, String(a.error)).toBe(0);
    expect(b.exitCode, String(b.error)).toBe(0);
    expect(got.a).toEqual([
      [1, v.IBV_WC_SUCCESS, v.IBV_WC_RDMA_WRITE, len],
      [2, v.IBV_WC_SUCCESS, v.IBV_WC_RDMA_READ, len],
      [3, v.IBV_WC_SUCCESS, v.IBV_WC_SEND, 4096],
    ]);
    expect(got.b).toEqual([[10, v.IBV_WC_SUCCESS, v.IBV_WC_RECV, 4096]]);
    expect(got.written).toBe(true);
    expect(got.read).toBe(true);
    expect(got.sent).toBe(true);
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });

  async function badRemote(
    mutate: (p: { addr: number; rkey: number }) => { addr: number; rkey: number },
    qpAccess = RW,
  ) {
    const c = await Cluster.create({ machines: 2 });
    const out: { a?: [unknown, number][]; bState?: number; untouched?: boolean } = {};
    c.machines[0].spawn('client', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'a', 'b', { len: 8192, mrAccess: RW });
      const { buf, mr, peer } = s;
      sys.memory(buf, 8192).fill(0xab);
      await c.oob.recv('b-ready');
      const t = mutate({ addr: peer.addr, rkey: peer.rkey });
      const w = (id: number) => rdmaWriteWr(id, { addr: buf, length: 4096, lkey: mr.lkey }, t);
      v.ibv_post_send(s.qp, [w(1), w(2), w(3)]);
      const wcs = await pollCqN(s.cq, 3);
      // Posting to a QP in ERR completes at once with a flush error.
      v.ibv_post_send(s.qp, w(4));
      wcs.push(...v.ibv_poll_cq(s.cq, 8));
      out.a = wcs.map((x) => [x.wr_id, x.status]);
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'b', 'a', {
        len: 4096,
        allocLen: 8192,
        mrAccess: RW,
        qpAccess,
      });
      const { buf, mr } = s;
      v.ibv_post_recv(s.qp, { wr_id: 77, sg_list: [{ addr: buf, length: 64, lkey: mr.lkey }] });
      c.oob.send('b-ready', 1);
      await c.oob.recv('a-done');
      out.bState = s.qp.state;
      out.untouched = sys.memory(buf, 8192).every((x) => x === 0);
      const flushed = v.ibv_poll_cq(s.cq, 8);
      expect(flushed.map((x) => [x.wr_id, x.status, x.opcode])).toEqual([
        [77, v.IBV_WC_WR_FLUSH_ERR, v.IBV_WC_RECV],
      ]);
      return 0;
    });
    await c.run();
    return out;
  }

  it('a bad rkey completes with IBV_WC_REM_ACCESS_ERR, both QPs go to ERR, the rest is flushed', async () => {
    const out = await badRemote((p) => ({ addr: p.addr, rkey: p.rkey ^ 0x100 }));
    expect(out.a).toEqual([
      [1, v.IBV_WC_REM_ACCESS_ERR],
      [2, v.IBV_WC_WR_FLUSH_ERR],
      [3, v.IBV_WC_WR_FLUSH_ERR],
      [4, v.IBV_WC_WR_FLUSH_ERR],
    ]);
    expect(out.bState).toBe(v.IBV_QPS_ERR);
    expect(out.untouched).toBe(true);
  });

  it('a write past the end of the remote MR is a remote access error', async () => {
    const out = await badRemote((p) => ({ addr: p.addr + 2048, rkey: p.rkey }));
    expect(out.a?.[0]).toEqual([1, v.IBV_WC_REM_ACCESS_ERR]);
    expect(out.untouched).toBe(true);
  });

  it('a remote QP without REMOTE_WRITE access refuses the write', async () => {
    const out = await badRemote((p) => p, v.IBV_ACCESS_LOCAL_WRITE);
    expect(out.a?.[0]).toEqual([1, v.IBV_WC_REM_ACCESS_ERR]);
  });

  it('moving a QP to ERR flushes posted receives and later sends', async () => {
    const c = await Cluster.create({ machines: 1 });
    let wcs: v.IbvWc[] = [];
    c.machines[0].spawn('flush', async (sys) => {
      const s = await rcSide(sys);
      const buf = sys.alloc(4096, 4096);
      const mr = v.ibv_reg_mr(s.pd, buf, 4096, v.IBV_ACCESS_LOCAL_WRITE);
      rcConnect(s.qp, { lid: s.lid, qpn: 0xdead });
      v.ibv_post_recv(s.qp, [
        { wr_id: 1, sg_list: [{ addr: buf, length: 64, lkey: mr.lkey }] },
        { wr_id: 2, sg_list: [{ addr: buf, length: 64, lkey: mr.lkey }] },
      ]);
      v.ibv_modify_qp(s.qp, { qp_state: v.IBV_QPS_ERR }, v.IBV_QP_STATE);
      v.ibv_post_send(s.qp, {
        wr_id: 3,
        opcode: v.IBV_WR_SEND,
        sg_list: [{ addr: buf, length: 8, lkey: mr.lkey }],
      });
      wcs = v.ibv_poll_cq(s.cq, 8);
      return 0;
    });
    await c.run();
    expect(wcs.map((w) => [w.wr_id, w.status])).toEqual([
      [1, v.IBV_WC_WR_FLUSH_ERR],
      [2, v.IBV_WC_WR_FLUSH_ERR],
      [3, v.IBV_WC_WR_FLUSH_ERR],
    ]);
  });

  it('a local key that does not exist is a local protection error', async () => {
    const c = await Cluster.create({ machines: 1 });
    let wcs: v.IbvWc[] = [];
    c.machines[0].spawn('lkey', async (sys) => {
      const s = await rcSide(sys);
      rcConnect(s.qp, { lid: s.lid, qpn: s.qp.qp_num }, RW);
      v.ibv_post_send(s.qp, rdmaWriteWr(5, { addr: 0x1000, length: 8, lkey: 0x4242 }, { addr: 0, rkey: 0 }));
      wcs = await v.ibv_poll_cq_wait(s.cq, 8);
      return 0;
    });
    await c.run();
    expect(wcs.map((w) => [w.wr_id, w.status])).toEqual([[5, v.IBV_WC_LOC_PROT_ERR]]);
  });

  it('an MR deregistered while a write is in flight makes the write fail with a remote access error', async () => {
    const c = await Cluster.create({ machines: 2, linkGbps: 100 });
    const len = 16 * 1024 * 1024; // ~1.5 ms on the wire
    let status = -1;
    c.machines[0].spawn('client', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'a', 'b', { len, mrAccess: RW });
      await c.oob.recv('b-ready');
      v.ibv_post_send(s.qp, rdmaWriteWr(1, { addr: s.buf, length: len, lkey: s.mr.lkey }, s.peer));
      c.oob.send('posted', 1);
      status = (await v.ibv_poll_cq_wait(s.cq, 1))[0].status;
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'b', 'a', { len, mrAccess: RW });
      c.oob.send('b-ready', 1);
      await c.oob.recv('posted');
      await v.ibv_dereg_mr(s.mr);
      await c.oob.recv('a-done');
      return 0;
    });
    await c.run();
    expect(status).toBe(v.IBV_WC_REM_ACCESS_ERR);
  });

  it('process exit destroys QPs, deregisters MRs and unpins their pages, with no leak report', async () => {
    const c = await Cluster.create({ machines: 1 });
    let pages: { refcount: number }[] = [];
    c.machines[0].spawn('exits', async (sys) => {
      const s = await rcSide(sys);
      const buf = sys.alloc(16384, 4096);
      const mr = v.ibv_reg_mr(s.pd, buf, 16384, RW);
      pages = (mr.mr.umem as unknown as { pages: { refcount: number }[] }).pages;
      expect(pages.every((p) => p.refcount > 0)).toBe(true);
      rcConnect(s.qp, { lid: s.lid, qpn: s.qp.qp_num }, RW);
      return 0; // no destroy, no dereg, no close
    });
    await c.run();
    const d = ibDevices(c.machines[0].kernel)[0];
    expect(d.qps.size).toBe(0);
    expect(d.mrs.size).toBe(0);
    expect(d.contexts.size).toBe(0);
    expect(pages.length).toBe(4);
    expect(pages.every((p) => p.refcount === 0)).toBe(true);
    expect(c.reports.filter((r) => r.type === 'leak' || r.type === 'violation')).toEqual([]);
  });
});

/**
 * Two connected RC sides on a two-machine cluster: `client` runs on machine 0, `server`
 * on machine 1, each with a registered 64 KiB buffer; the server's buffer address and
 * rkey are passed to the client.
 */
async function pair(
  opts: {
    rnr?: { rnr_retry?: number; min_rnr_timer?: number };
    serverMrAccess?: number;
    serverQpAccess?: number;
  },
  client: (sys: Sys, s: Side, peer: RcInfo, c: Cluster) => Promise<void>,
  server: (sys: Sys, s: Side, c: Cluster) => Promise<void>,
) {
  const c = await Cluster.create({ machines: 2 });
  const len = 65536;
  const pa = c.machines[0].spawn('client', async (sys) => {
    const s = await rcHostSide(sys, c.oob, 'a', 'b', {
      len,
      mrAccess: RW | v.IBV_ACCESS_REMOTE_ATOMIC,
      qpAccess: RW,
      rnr: opts.rnr,
    });
    await c.oob.recv('b-ready');
    await client(sys, s, s.peer, c);
    c.oob.send('a-done', 1);
    return 0;
  });
  const pb = c.machines[1].spawn('server', async (sys) => {
    const s = await rcHostSide(sys, c.oob, 'b', 'a', {
      len,
      mrAccess: opts.serverMrAccess ?? RW | v.IBV_ACCESS_REMOTE_ATOMIC,
      qpAccess: opts.serverQpAccess ?? RW | v.IBV_ACCESS_REMOTE_ATOMIC,
      rnr: opts.rnr,
    });
    c.oob.send('b-ready', 1);
    await server(sys, s, c);
    await c.oob.recv('a-done');
    return 0;
  });
  await c.run();
  expect(pa.exitCode, String(pa.error)).toBe(0);
  expect(pb.exitCode, String(pb.error)).toBe(0);
  return c;
}

type Side = RcSide & { buf: number; mr: v.IbvMr };

describe('RNR retry (SEND without a posted RECV)', () => {
  it('rnr_retry 2: three RNR NAKs complete the SEND with IBV_WC_RNR_RETRY_EXC_ERR after 2 x min_rnr_timer, the QP goes to ERR', async () => {
    let wcs: unknown[] = [];
    let elapsed = 0n;
    let state = -1;
    await pair(
      { rnr: { rnr_retry: 2, min_rnr_timer: 14 } }, // 14 = 1.28 ms
      async (sys, s) => {
        const t0 = sys.now();
        v.ibv_post_send(s.qp, [
          {
            wr_id: 1,
            opcode: v.IBV_WR_SEND,
            send_flags: v.IBV_SEND_SIGNALED,
            sg_list: [{ addr: s.buf, length: 64, lkey: s.mr.lkey }],
          },
          {
            wr_id: 2,
            opcode: v.IBV_WR_SEND,
            send_flags: v.IBV_SEND_SIGNALED,
            sg_list: [{ addr: s.buf, length: 64, lkey: s.mr.lkey }],
          },
        ]);
        const got = await pollCqN(s.cq, 2, 4);
        elapsed = sys.now() - t0;
        wcs = got.map((w) => [w.wr_id, w.status]);
        state = s.qp.state;
      },
      async () => {},
    );
    expect(wcs).toEqual([
      [1, v.IBV_WC_RNR_RETRY_EXC_ERR],
      [2, v.IBV_WC_WR_FLUSH_ERR],
    ]);
    expect(state).toBe(v.IBV_QPS_ERR);
    // Two waits of 1.28 ms between the three tries; the wire adds only microseconds.
    expect(Number(elapsed)).toBeGreaterThanOrEqual(2 * 1_280_000);
    expect(Number(elapsed)).toBeLessThan(3 * 1_280_000);
  });

  it('a RECV posted while the requester waits out an RNR NAK: the retry lands, the SEND succeeds', async () => {
    let a: unknown[] = [];
    let b: unknown[] = [];
    let same = false;
    const msg = pattern(128, 3);
    await pair(
      { rnr: { rnr_retry: 3, min_rnr_timer: 16 } }, // 2.56 ms
      async (sys, s) => {
        sys.memory(s.buf, 128).set(msg);
        v.ibv_post_send(s.qp, {
          wr_id: 5,
          opcode: v.IBV_WR_SEND,
          send_flags: v.IBV_SEND_SIGNALED,
          sg_list: [{ addr: s.buf, length: 128, lkey: s.mr.lkey }],
        });
        a = (await v.ibv_poll_cq_wait(s.cq, 1)).map((w) => [w.wr_id, w.status, w.opcode]);
      },
      async (sys, s, c) => {
        await c.machines[1].kernel.engine.sleep(1_000_000); // the first try is NAKed meanwhile
        v.ibv_post_recv(s.qp, { wr_id: 50, sg_list: [{ addr: s.buf, length: 4096, lkey: s.mr.lkey }] });
        b = (await v.ibv_poll_cq_wait(s.cq, 1)).map((w) => [w.wr_id, w.status, w.byte_len]);
        same = Buffer.from(sys.memory(s.buf, 128)).equals(Buffer.from(msg));
      },
    );
    expect(a).toEqual([[5, v.IBV_WC_SUCCESS, v.IBV_WC_SEND]]);
    expect(b).toEqual([[50, v.IBV_WC_SUCCESS, 128]]);
    expect(same).toBe(true);
  });
});

describe('atomics (IBV_WR_ATOMIC_FETCH_AND_ADD / CMP_AND_SWP)', () => {
  const u64 = (sys: Sys, addr: number) =>
    new DataView(sys.memory(addr, 8).slice().buffer).getBigUint64(0, true);
  const setU64 = (sys: Sys, addr: number, x: bigint) =>
    new DataView(sys.memory(addr, 8).buffer, sys.memory(addr, 8).byteOffset).setBigUint64(0, x, true);

  it('fetch-and-add and compare-and-swap return the old value into the SGE and update remote memory', async () => {
    let wcs: unknown[] = [];
    let olds: bigint[] = [];
    let remote = 0n;
    await pair(
      {},
      async (sys, s, peer, c) => {
        const atomic = (wr_id: number, opcode: number, slot: number, compare_add: bigint, swap?: bigint) => ({
          wr_id,
          opcode,
          send_flags: v.IBV_SEND_SIGNALED,
          sg_list: [{ addr: s.buf + slot * 8, length: 8, lkey: s.mr.lkey }],
          wr: { atomic: { remote_addr: peer.addr + 64, compare_add, swap, rkey: peer.rkey } },
        });
        v.ibv_post_send(s.qp, [
          atomic(1, v.IBV_WR_ATOMIC_FETCH_AND_ADD, 0, 5n),
          atomic(2, v.IBV_WR_ATOMIC_CMP_AND_SWP, 1, 105n, 0xdead_beef_0000_0001n),
          atomic(3, v.IBV_WR_ATOMIC_CMP_AND_SWP, 2, 7n, 1n), // compare fails: no change
          atomic(4, v.IBV_WR_ATOMIC_FETCH_AND_ADD, 3, 0xffff_ffff_ffff_ffffn), // wraps: -1
        ]);
        const got = await pollCqN(s.cq, 4);
        wcs = got.map((w) => [w.wr_id, w.status, w.opcode, w.byte_len]);
        olds = [0, 1, 2, 3].map((i) => u64(sys, s.buf + i * 8));
        c.oob.send('read-remote', 1);
      },
      async (sys, s, c) => {
        setU64(sys, s.buf + 64, 100n);
        await c.oob.recv('read-remote');
        remote = u64(sys, s.buf + 64);
      },
    );
    expect(wcs).toEqual([
      [1, v.IBV_WC_SUCCESS, v.IBV_WC_FETCH_ADD, 8],
      [2, v.IBV_WC_SUCCESS, v.IBV_WC_COMP_SWAP, 8],
      [3, v.IBV_WC_SUCCESS, v.IBV_WC_COMP_SWAP, 8],
      [4, v.IBV_WC_SUCCESS, v.IBV_WC_FETCH_ADD, 8],
    ]);
    expect(olds).toEqual([100n, 105n, 0xdead_beef_0000_0001n, 0xdead_beef_0000_0001n]);
    expect(remote).toBe(0xdead_beef_0000_0000n);
  });

  async function atomicStatus(opts: Parameters<typeof pair>[0], remoteOff: number, localLen = 8) {
    let st: unknown[] = [];
    let remote = -1n;
    await pair(
      opts,
      async (sys, s, peer, c) => {
        v.ibv_post_send(s.qp, {
          wr_id: 9,
          opcode: v.IBV_WR_ATOMIC_FETCH_AND_ADD,
          send_flags: v.IBV_SEND_SIGNALED,
          sg_list: [{ addr: s.buf, length: localLen, lkey: s.mr.lkey }],
          wr: { atomic: { remote_addr: peer.addr + remoteOff, compare_add: 1n, rkey: peer.rkey } },
        });
        st = (await v.ibv_poll_cq_wait(s.cq, 1)).map((w) => [w.wr_id, w.status]);
        c.oob.send('read-remote', 1);
        void sys;
      },
      async (sys, s, c) => {
        await c.oob.recv('read-remote');
        remote = u64(sys, s.buf + (remoteOff & ~7));
      },
    );
    return { st, remote };
  }

  it('an address that is not 8-byte aligned is a remote invalid request; memory is untouched', async () => {
    const r = await atomicStatus({}, 68);
    expect(r.st).toEqual([[9, v.IBV_WC_REM_INV_REQ_ERR]]);
    expect(r.remote).toBe(0n);
  });

  it('an MR without REMOTE_ATOMIC is a remote access error', async () => {
    const r = await atomicStatus({ serverMrAccess: RW }, 64);
    expect(r.st).toEqual([[9, v.IBV_WC_REM_ACCESS_ERR]]);
    expect(r.remote).toBe(0n);
  });

  it('a QP without REMOTE_ATOMIC access is a remote access error', async () => {
    const r = await atomicStatus({ serverQpAccess: RW }, 64);
    expect(r.st).toEqual([[9, v.IBV_WC_REM_ACCESS_ERR]]);
  });

  it('a local SGE other than 8 bytes is a local length error', async () => {
    const r = await atomicStatus({}, 64, 16);
    expect(r.st).toEqual([[9, v.IBV_WC_LOC_LEN_ERR]]);
    expect(r.remote).toBe(0n);
  });
});

describe('several WRs in flight per QP', () => {
  async function writes(n: number, size: number, qps = 1) {
    const c = await Cluster.create({ machines: 2, linkGbps: 100 });
    const out: { order: unknown[][]; ns: number[]; same: boolean } = { order: [], ns: [], same: false };
    const data = pattern(size * n, 21);
    c.machines[0].spawn('client', async (sys) => {
      const sides = [];
      for (let q = 0; q < qps; q++) {
        const s = await rcHostSide(sys, c.oob, `a${q}`, `b${q}`, { len: size * n, mrAccess: RW });
        sys.memory(s.buf, size * n).set(data);
        sides.push({ s, buf: s.buf, mr: s.mr, peer: s.peer });
      }
      await c.oob.recv('b-ready');
      // One thread per QP, all posting at the same moment.
      const tids = sides.map(({ s, buf, mr, peer }) =>
        sys.spawnThread(async (ts) => {
          const t0 = ts.now();
          v.ibv_post_send(
            s.qp,
            Array.from({ length: n }, (_, i) =>
              rdmaWriteWr(
                i + 1,
                { addr: buf + i * size, length: size, lkey: mr.lkey },
                { addr: peer.addr + i * size, rkey: peer.rkey },
              ),
            ),
          );
          const got = await pollCqN(s.cq, n, n);
          out.ns.push(Number(ts.now() - t0));
          out.order.push(got.map((w) => Number(w.wr_id) * (w.status === v.IBV_WC_SUCCESS ? 1 : -1)));
          return 0;
        }),
      );
      for (const t of tids) await sys.joinThread(t);
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const bufs: number[] = [];
      for (let q = 0; q < qps; q++) {
        const s = await rcHostSide(sys, c.oob, `b${q}`, `a${q}`, { len: size * n, mrAccess: RW });
        bufs.push(s.buf);
      }
      c.oob.send('b-ready', 1);
      await c.oob.recv('a-done');
      out.same = bufs.every((b) => Buffer.from(sys.memory(b, size * n)).equals(Buffer.from(data)));
      return 0;
    });
    const r = await c.run();
    expect(r.status).toBe('completed');
    return out;
  }

  it('16 pipelined RDMA WRITEs of 4 KiB stream back to back: 16 x serialization + one latency, completions in order, bytes verified', async () => {
    const lone = await writes(1, 4096);
    const batch = await writes(16, 4096);
    expect(batch.order).toEqual([Array.from({ length: 16 }, (_, i) => i + 1)]);
    expect(batch.same).toBe(true);
    // One 4 KiB payload on the 100 Gb/s link at 0.92 efficiency; the rest of a lone
    // WRITE's time is latency (PCIe legs, hops, switch, the ACK back).
    const ser = 4096 / ((100 / 8) * 0.92);
    const latency = lone.ns[0] - ser;
    // The requester streams the next WRITE as soon as the previous one has left, so the
    // batch pays the latency once (n x (serialization + latency) without pipelining).
    const pipelined = 16 * ser + latency;
    expect(Math.abs(batch.ns[0] / pipelined - 1)).toBeLessThan(0.05);
    expect(batch.ns[0]).toBeLessThan(0.25 * 16 * lone.ns[0]);
    // The payloads still go one after another on the 100 Gb/s link.
    expect(batch.ns[0]).toBeGreaterThan(16 * ser);
  });

  it('two QPs with 8 x 1 MiB WRITEs in flight each share the link fairly: both end together, at about twice the lone time', async () => {
    const lone = await writes(8, 1 << 20);
    const two = await writes(8, 1 << 20, 2);
    expect(two.order).toEqual([
      [1, 2, 3, 4, 5, 6, 7, 8],
      [1, 2, 3, 4, 5, 6, 7, 8],
    ]);
    expect(two.same).toBe(true);
    expect(Math.abs(two.ns[0] - two.ns[1]) / two.ns[0]).toBeLessThan(0.05);
    const ratio = two.ns[0] / lone.ns[0];
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
  });

  it('a READ posted right behind a WRITE of the same remote bytes reads what the WRITE wrote (the responder takes requests in order)', async () => {
    // The READ request has no payload: it leaves as soon as the WRITE's payload has left
    // and would reach the responder first, but RC responders execute in PSN order.
    let wcs: unknown[] = [];
    let readBack = false;
    let remote = false;
    const data = pattern(8192, 5);
    await pair(
      {},
      async (sys, s, peer, c) => {
        sys.memory(s.buf, 8192).set(data);
        sys.memory(s.buf + 8192, 8192).fill(0);
        v.ibv_post_send(s.qp, [
          rdmaWriteWr(1, { addr: s.buf, length: 8192, lkey: s.mr.lkey }, peer),
          {
            wr_id: 2,
            opcode: v.IBV_WR_RDMA_READ,
            send_flags: v.IBV_SEND_SIGNALED,
            sg_list: [{ addr: s.buf + 8192, length: 8192, lkey: s.mr.lkey }],
            wr: { rdma: { remote_addr: peer.addr, rkey: peer.rkey } },
          },
        ]);
        const got = await pollCqN(s.cq, 2);
        wcs = got.map((w) => [w.wr_id, w.status]);
        readBack = Buffer.from(sys.memory(s.buf + 8192, 8192)).equals(Buffer.from(data));
        c.oob.send('check', 1);
      },
      async (sys, s, c) => {
        sys.memory(s.buf, 8192).fill(0);
        await c.oob.recv('check');
        remote = Buffer.from(sys.memory(s.buf, 8192)).equals(Buffer.from(data));
      },
    );
    expect(wcs).toEqual([
      [1, v.IBV_WC_SUCCESS],
      [2, v.IBV_WC_SUCCESS],
    ]);
    expect(remote).toBe(true);
    expect(readBack).toBe(true);
  });

  it('a bad rkey in the middle of a pipelined batch: earlier WRs succeed, it fails, later ones are flushed and write nothing', async () => {
    let wcs: unknown[] = [];
    let written: boolean[] = [];
    await pair(
      {},
      async (sys, s, peer, c) => {
        sys.memory(s.buf, 5 * 4096).fill(0xab);
        v.ibv_post_send(
          s.qp,
          [1, 2, 3, 4, 5].map((id, i) =>
            rdmaWriteWr(
              id,
              { addr: s.buf + i * 4096, length: 4096, lkey: s.mr.lkey },
              { addr: peer.addr + i * 4096, rkey: id === 3 ? peer.rkey ^ 0x100 : peer.rkey },
            ),
          ),
        );
        const got = await pollCqN(s.cq, 5);
        wcs = got.map((w) => [w.wr_id, w.status]);
        c.oob.send('check', 1);
      },
      async (sys, s, c) => {
        await c.oob.recv('check');
        written = [0, 1, 2, 3, 4].map((i) => sys.memory(s.buf + i * 4096, 4096).every((x) => x === 0xab));
      },
    );
    expect(wcs).toEqual([
      [1, v.IBV_WC_SUCCESS],
      [2, v.IBV_WC_SUCCESS],
      [3, v.IBV_WC_REM_ACCESS_ERR],
      [4, v.IBV_WC_WR_FLUSH_ERR],
      [5, v.IBV_WC_WR_FLUSH_ERR],
    ]);
    expect(written).toEqual([true, true, false, false, false]);
  });
});

describe('shared receive queue (ibv_create_srq / ibv_post_srq_recv)', () => {
  it('two QPs attached to one SRQ consume its receives in posting order; completions name the receiving QP; bytes land', async () => {
    const c = await Cluster.create({ machines: 2 });
    const got: { wcs: unknown[]; qpns: number[]; bytes: string[] } = { wcs: [], qpns: [], bytes: [] };
    c.machines[0].spawn('client', async (sys) => {
      for (let q = 0; q < 2; q++) {
        const s = await rcHostSide(sys, c.oob, `a${q}`, `b${q}`, { len: 4096, mrAccess: RW });
        const { buf, mr } = s;
        sys.memory(buf, 16).set(new TextEncoder().encode(`from qp ${q} .....`).subarray(0, 16));
        await c.oob.recv(`b-ready${q}`);
        v.ibv_post_send(s.qp, {
          wr_id: q,
          opcode: v.IBV_WR_SEND,
          send_flags: v.IBV_SEND_SIGNALED,
          sg_list: [{ addr: buf, length: 16, lkey: mr.lkey }],
        });
        expect((await v.ibv_poll_cq_wait(s.cq, 1))[0].status).toBe(v.IBV_WC_SUCCESS);
      }
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const [dev] = v.ibv_get_device_list(sys);
      const ctx = await v.ibv_open_device(sys, dev);
      const pd = v.ibv_alloc_pd(ctx);
      const cq = v.ibv_create_cq(ctx, 16);
      const srq = v.ibv_create_srq(pd, { attr: { max_wr: 8, max_sge: 1 } });
      const buf = sys.alloc(4 * 4096, 4096);
      const mr = v.ibv_reg_mr(pd, buf, 4 * 4096, RW);
      v.ibv_post_srq_recv(
        srq,
        [0, 1, 2, 3].map((i) => ({
          wr_id: 100 + i,
          sg_list: [{ addr: buf + i * 4096, length: 4096, lkey: mr.lkey }],
        })),
      );
      const lid = v.ibv_query_port(ctx, 1).lid;
      const qps: v.IbvQp[] = [];
      for (let q = 0; q < 2; q++) {
        const qp = srqQp(pd, cq, srq, 4);
        qps.push(qp);
        const peer = await exchange(c.oob, `b${q}`, `a${q}`, { lid, qpn: qp.qp_num, addr: 0, rkey: 0 });
        rcConnect(qp, peer, RW);
        c.oob.send(`b-ready${q}`, 1);
      }
      const wcs: v.IbvWc[] = [];
      while (wcs.length < 2) wcs.push(...(await v.ibv_poll_cq_wait(cq, 4)));
      got.wcs = wcs.map((w) => [w.wr_id, w.status, w.opcode, w.byte_len]);
      got.qpns = wcs.map((w) => (w.qp_num === qps[0].qp_num ? 0 : w.qp_num === qps[1].qp_num ? 1 : -1));
      got.bytes = [0, 1].map((i) => new TextDecoder().decode(sys.memory(buf + i * 4096, 9)));
      await c.oob.recv('a-done');
      return 0;
    });
    await c.run();
    expect(got.wcs).toEqual([
      [100, v.IBV_WC_SUCCESS, v.IBV_WC_RECV, 16],
      [101, v.IBV_WC_SUCCESS, v.IBV_WC_RECV, 16],
    ]);
    expect(got.qpns).toEqual([0, 1]);
    expect(got.bytes).toEqual(['from qp 0', 'from qp 1']);
    expect(c.reports.filter((r) => r.type !== 'warn')).toEqual([]);
  });

  it('errors: post_recv on a QP with an SRQ is EINVAL, a full SRQ is ENOMEM, destroying an SRQ in use is EBUSY; exit destroys it', async () => {
    const m = await Machine.create();
    const errs: string[] = [];
    const p = m.spawn('srq', async (sys) => {
      const [dev] = v.ibv_get_device_list(sys);
      const ctx = await v.ibv_open_device(sys, dev);
      const pd = v.ibv_alloc_pd(ctx);
      const cq = v.ibv_create_cq(ctx, 4);
      const trap = (f: () => void) => {
        try {
          f();
          errs.push('ok');
        } catch (e) {
          errs.push((e as { code: string }).code);
        }
      };
      trap(() => v.ibv_create_srq(pd, { attr: { max_wr: 0, max_sge: 1 } }));
      const srq = v.ibv_create_srq(pd, { attr: { max_wr: 2, max_sge: 1 } });
      const qp = srqQp(pd, cq, srq, 1);
      rcConnect(qp, { lid: 0, qpn: qp.qp_num });
      trap(() => v.ibv_post_recv(qp, { wr_id: 1, sg_list: [] }));
      trap(() =>
        v.ibv_post_srq_recv(srq, [
          { wr_id: 1, sg_list: [] },
          { wr_id: 2, sg_list: [] },
        ]),
      );
      trap(() => v.ibv_post_srq_recv(srq, { wr_id: 3, sg_list: [] }));
      trap(() => v.ibv_destroy_srq(srq));
      trap(() => v.ibv_dealloc_pd(pd));
      return 0; // exit: the QP, then the SRQ, then the PD go
    });
    await m.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(errs).toEqual(['EINVAL', 'EINVAL', 'ok', 'ENOMEM', 'EBUSY', 'EBUSY']);
    const d = ibDevices(m.kernel)[0];
    expect(d.contexts.size).toBe(0);
    expect(d.qps.size).toBe(0);
    expect(m.reports.filter((r) => r.type === 'leak' || r.type === 'violation')).toEqual([]);
  });
});

describe("PCIe legs share the machine's PCIe links", () => {
  /** RDMA WRITE of host memory on gaudi-hls, with or without the accelerator under the same switch copying host memory at the same time. */
  async function writeWithNeighbour(busy: boolean) {
    const c = await Cluster.create({
      machines: [{ topology: 'gaudi-hls' }, { topology: 'gaudi-hls' }],
      linkGbps: 200,
    });
    const len = 32 * 1024 * 1024;
    let ns = 0;
    c.machines[0].spawn('client', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'a', 'b', { len, mrAccess: RW });
      const buf = s.buf;
      await c.oob.recv('b-ready');
      let fence = -1;
      let hl: HlDevice | null = null;
      if (busy) {
        hl = await HlDevice.open(sys, 0);
        const va = await hl.map(await hl.alloc(len));
        fence = await hl.dmaJob({ op: HL_MODEL_DMA_HOST_TO_DEVICE, dst: va, src: buf, size: len });
      }
      const t0 = sys.now();
      const wc = await rdmaWriteWait(s, 1, { addr: buf, length: len, lkey: s.mr.lkey }, s.peer);
      expect(wc.status).toBe(v.IBV_WC_SUCCESS);
      ns = Number(sys.now() - t0);
      if (hl) expect(await hl.waitFence(fence)).toBe(1);
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      await rcHostSide(sys, c.oob, 'b', 'a', { len, mrAccess: RW });
      c.oob.send('b-ready', 1);
      await c.oob.recv('a-done');
      return 0;
    });
    const r = await c.run();
    expect(r.status).toBe('completed');
    return ns;
  }

  /**
   * An RDMA WRITE of host memory into the server's host memory on gaudi-hls, with or
   * without the server's accelerator (under the same PCIe switch as its NIC) copying
   * device memory to host memory at the same time: both go up the switch's uplink.
   * Returns the WRITE's time, its wire flow's time (fabric tracepoints) and the copy's.
   */
  async function writeIntoBusyHost(busy: boolean, linkGbps = 200) {
    const c = await Cluster.create({
      machines: [{ topology: 'gaudi-hls' }, { topology: 'gaudi-hls' }],
      linkGbps,
    });
    const len = 32 * 1024 * 1024;
    const out = { writeNs: 0, wireNs: 0, copyNs: 0 };
    c.machines[0].spawn('client', async (sys) => {
      const s = await rcHostSide(sys, c.oob, 'a', 'b', { len, mrAccess: RW });
      const buf = s.buf;
      await c.oob.recv('b-ready');
      const t0 = sys.now();
      const wc = await rdmaWriteWait(s, 1, { addr: buf, length: len, lkey: s.mr.lkey }, s.peer);
      expect(wc.status).toBe(v.IBV_WC_SUCCESS);
      out.writeNs = Number(sys.now() - t0);
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      await rcHostSide(sys, c.oob, 'b', 'a', { len, mrAccess: RW });
      if (busy) {
        const hl = await HlDevice.open(sys, 0);
        const host = sys.alloc(len, 4096);
        const va = await hl.map(await hl.alloc(len));
        const t0 = sys.now();
        const fence = await hl.dmaJob({ op: HL_MODEL_DMA_DEVICE_TO_HOST, dst: host, src: va, size: len });
        c.oob.send('b-ready', 1);
        expect(await hl.waitFence(fence)).toBe(1);
        out.copyNs = Number(sys.now() - t0);
      } else {
        c.oob.send('b-ready', 1);
      }
      await c.oob.recv('a-done');
      return 0;
    });
    const r = await c.run();
    expect(r.status).toBe('completed');
    const log = c.engine.log.entries;
    const start = log.find((e) => e.name === 'fabric_transfer_start' && e.args?.bytes === len);
    const end = log.find((e) => e.name === 'fabric_transfer_end' && e.args?.flow === start?.args?.flow);
    out.wireNs = (end?.t ?? 0) - (start?.t ?? 0);
    // The message's PCIe legs are traced on each host with the wire flow's id.
    const legs = log.filter((e) => e.name === 'pcie_transfer_start' && e.args?.flow === start?.args?.flow);
    expect(legs.map((e) => e.host)).toEqual(['host1', 'host2']);
    return out;
  }

  it('PCIe contention on the responder slows the wire transfer itself (one flow over both legs and the wire)', async () => {
    const len = 32 * 1024 * 1024;
    const alone = await writeIntoBusyHost(false);
    const busy = await writeIntoBusyHost(true);
    expect(Math.abs((len * 8) / alone.writeNs / (200 * 0.92) - 1)).toBeLessThan(0.1);
    // Alone the wire flow is the whole WRITE but the latencies (its drain at 0.92 x line rate).
    expect(Math.abs(alone.wireNs / ((len * 8) / (200 * 0.92)) - 1)).toBeLessThan(0.05);
    // Sharing the server's switch uplink with the accelerator's copy, the bytes leave the
    // client's port more slowly: the wire flow takes about as long as the WRITE.
    expect(busy.wireNs / alone.wireNs).toBeGreaterThan(1.5);
    expect(busy.wireNs / busy.writeNs).toBeGreaterThan(0.95);
  });

  it("and the other way: a slower wire leaves more of the responder's PCIe uplink to its other DMA", async () => {
    const at100 = await writeIntoBusyHost(true, 100);
    const at400 = await writeIntoBusyHost(true, 400);
    // At 100 Gb/s the incoming WRITE takes only 11.5 GB/s of the uplink; at 400 Gb/s it
    // takes its fair half, so the accelerator's copy runs slower.
    expect(at100.copyNs).toBeLessThan(0.9 * at400.copyNs);
    expect(at100.writeNs).toBeGreaterThan(at400.writeNs);
  });

  it('an RDMA WRITE of host memory slows down while the accelerator under the same switch copies host memory', async () => {
    const len = 32 * 1024 * 1024;
    const alone = await writeWithNeighbour(false);
    const shared = await writeWithNeighbour(true);
    // Alone: about 0.92 x the 200 Gb/s line rate.
    expect(Math.abs((len * 8) / alone / (200 * 0.92) - 1)).toBeLessThan(0.1);
    // Both DMA streams cross the switch's Gen4 x16 uplink, which cannot carry two of them at full rate.
    expect(shared / alone).toBeGreaterThan(1.5);
  });
});
