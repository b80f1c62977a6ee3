/**
 * The verbs objects of the RDMA NIC model between two machines of a cluster: the RC QP
 * state machine, post/poll, RDMA WRITE / READ / SEND with the bytes verified, and the
 * completion errors (remote access error for a bad rkey or range, flush after error).
 */
import { describe, expect, it } from 'vitest';
import { ibDevices } from '../src/drivers/rdma/ib-core.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { Machine } from '../src/machine.ts';
import * as v from '../src/uapi/verbs.ts';
import { exchange, pattern, rcConnect, rcSide } from './helpers/rdma.ts';

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
      const s = await rcSide(sys);
      const buf = sys.alloc(len * 2, 4096);
      sys.memory(buf, len).set(src);
      const mr = v.ibv_reg_mr(s.pd, buf, len * 2, RW);
      const peer = await exchange(c.oob, 'a', 'b', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, RW);
      await c.oob.recv('b-ready');
      v.ibv_post_send(s.qp, {
        wr_id: 1,
        opcode: v.IBV_WR_RDMA_WRITE,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: buf, length: len, lkey: mr.lkey }],
        wr: { rdma: { remote_addr: peer.addr, rkey: peer.rkey } },
      });
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
      const wcs: v.IbvWc[] = [];
      while (wcs.length < 3) wcs.push(...(await v.ibv_poll_cq_wait(s.cq, 8)));
      got.a = wcs.map((w) => [w.wr_id, w.status, w.opcode, w.byte_len]);
      got.read = Buffer.from(sys.memory(buf + len, len)).equals(Buffer.from(back));
      c.oob.send('a-done', 1);
      return 0;
    });
    const b = c.machines[1].spawn('server', async (sys) => {
      const s = await rcSide(sys);
      const buf = sys.alloc(len * 2 + 4096, 4096);
      sys.memory(buf + len, len).set(back);
      const mr = v.ibv_reg_mr(s.pd, buf, len * 2 + 4096, RW);
      const peer = await exchange(c.oob, 'b', 'a', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, RW);
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
      const s = await rcSide(sys);
      const buf = sys.alloc(8192, 4096);
      sys.memory(buf, 8192).fill(0xab);
      const mr = v.ibv_reg_mr(s.pd, buf, 8192, RW);
      const peer = await exchange(c.oob, 'a', 'b', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, RW);
      await c.oob.recv('b-ready');
      const t = mutate({ addr: peer.addr, rkey: peer.rkey });
      const w = (id: number) => ({
        wr_id: id,
        opcode: v.IBV_WR_RDMA_WRITE,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: buf, length: 4096, lkey: mr.lkey }],
        wr: { rdma: { remote_addr: t.addr, rkey: t.rkey } },
      });
      v.ibv_post_send(s.qp, [w(1), w(2), w(3)]);
      const wcs: v.IbvWc[] = [];
      while (wcs.length < 3) wcs.push(...(await v.ibv_poll_cq_wait(s.cq, 8)));
      // Posting to a QP in ERR completes at once with a flush error.
      v.ibv_post_send(s.qp, w(4));
      wcs.push(...v.ibv_poll_cq(s.cq, 8));
      out.a = wcs.map((x) => [x.wr_id, x.status]);
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const s = await rcSide(sys);
      const buf = sys.alloc(8192, 4096);
      const mr = v.ibv_reg_mr(s.pd, buf, 4096, RW);
      const peer = await exchange(c.oob, 'b', 'a', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, qpAccess);
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
      v.ibv_post_send(s.qp, {
        wr_id: 5,
        opcode: v.IBV_WR_RDMA_WRITE,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: 0x1000, length: 8, lkey: 0x4242 }],
        wr: { rdma: { remote_addr: 0, rkey: 0 } },
      });
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
      const s = await rcSide(sys);
      const buf = sys.alloc(len, 4096);
      const mr = v.ibv_reg_mr(s.pd, buf, len, RW);
      const peer = await exchange(c.oob, 'a', 'b', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, RW);
      await c.oob.recv('b-ready');
      v.ibv_post_send(s.qp, {
        wr_id: 1,
        opcode: v.IBV_WR_RDMA_WRITE,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: buf, length: len, lkey: mr.lkey }],
        wr: { rdma: { remote_addr: peer.addr, rkey: peer.rkey } },
      });
      c.oob.send('posted', 1);
      status = (await v.ibv_poll_cq_wait(s.cq, 1))[0].status;
      c.oob.send('a-done', 1);
      return 0;
    });
    c.machines[1].spawn('server', async (sys) => {
      const s = await rcSide(sys);
      const buf = sys.alloc(len, 4096);
      const mr = v.ibv_reg_mr(s.pd, buf, len, RW);
      const peer = await exchange(c.oob, 'b', 'a', {
        lid: s.lid,
        qpn: s.qp.qp_num,
        addr: buf,
        rkey: mr.rkey,
      });
      rcConnect(s.qp, peer, RW);
      c.oob.send('b-ready', 1);
      await c.oob.recv('posted');
      await v.ibv_dereg_mr(mr);
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
