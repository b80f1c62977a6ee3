/**
 * The fabric's timing: a large RDMA WRITE between two machines drains at about 0.92 x
 * line rate (spec/performance.md §2.1) on 100, 200 and 400 Gb/s links; two writes
 * sharing a link split it fairly; the out-of-band channel delivers in order.
 */
import { describe, expect, it } from 'vitest';
import { Cluster } from '../src/fabric/cluster.ts';
import { ROCE_LARGE_MESSAGE_EFFICIENCY } from '../src/fabric/link.ts';
import * as v from '../src/uapi/verbs.ts';
import { exchangeAndConnect, pattern, rcSide, rdmaWriteWr } from './helpers/rdma.ts';

const ACC = v.IBV_ACCESS_LOCAL_WRITE | v.IBV_ACCESS_REMOTE_WRITE;

/** Time of one RDMA WRITE of `len` bytes from post to completion, ns, with the bytes checked. */
async function timedWrite(
  gbps: number,
  len: number,
  qps = 1,
  topology: 'workstation' | 'dgx-like' = 'workstation',
): Promise<{ ns: number; ok: boolean }> {
  const c = await Cluster.create({ machines: [{ topology }, { topology }], linkGbps: gbps });
  let ns = 0;
  let ok = false;
  const data = pattern(len, 3);
  c.machines[0].spawn('writer', async (sys) => {
    const sides = [];
    const buf = sys.alloc(len, 4096);
    sys.memory(buf, len).set(data);
    for (let i = 0; i < qps; i++) {
      const s = await rcSide(sys);
      const mr = v.ibv_reg_mr(s.pd, buf, len, ACC);
      const peer = await exchangeAndConnect(c.oob, s, `a${i}`, `b${i}`, { addr: buf, rkey: mr.rkey }, ACC);
      sides.push({ s, mr, peer });
    }
    await c.oob.recv('ready');
    const t0 = sys.now();
    for (const { s, mr, peer } of sides) {
      v.ibv_post_send(s.qp, rdmaWriteWr(1, { addr: buf, length: len, lkey: mr.lkey }, peer));
    }
    for (const { s } of sides) {
      const [wc] = await v.ibv_poll_cq_wait(s.cq, 1);
      expect(wc.status).toBe(v.IBV_WC_SUCCESS);
    }
    ns = Number(sys.now() - t0);
    c.oob.send('done', 1);
    return 0;
  });
  c.machines[1].spawn('target', async (sys) => {
    const buf = sys.alloc(len * qps, 4096);
    for (let i = 0; i < qps; i++) {
      const s = await rcSide(sys);
      const mr = v.ibv_reg_mr(s.pd, buf + i * len, len, ACC);
      await exchangeAndConnect(c.oob, s, `b${i}`, `a${i}`, { addr: buf + i * len, rkey: mr.rkey }, ACC);
    }
    c.oob.send('ready', 1);
    await c.oob.recv('done');
    ok = Buffer.from(sys.memory(buf, len)).equals(Buffer.from(data));
    return 0;
  });
  const r = await c.run();
  expect(r.status).toBe('completed');
  return { ns, ok };
}

describe('fabric timing', () => {
  // 100 and 200 Gb/s behind a Gen4 x16 NIC (workstation, ConnectX-6 Dx); 400 Gb/s needs a
  // Gen5 x16 NIC (dgx-like, ConnectX-7): a Gen4 x16 slot cannot carry 46 GB/s.
  for (const [gbps, topo] of [
    [100, 'workstation'],
    [200, 'workstation'],
    [400, 'dgx-like'],
  ] as const) {
    it(`a 32 MiB RDMA WRITE on a ${gbps} Gb/s link reaches ~0.92 x line rate (${topo})`, async () => {
      const len = 32 * 1024 * 1024;
      const { ns, ok } = await timedWrite(gbps, len, 1, topo);
      expect(ok).toBe(true);
      const achievedGbps = (len * 8) / ns;
      const target = gbps * ROCE_LARGE_MESSAGE_EFFICIENCY;
      expect(Math.abs(achievedGbps - target) / target).toBeLessThan(0.1);
      expect(achievedGbps).toBeLessThan(gbps);
    });
  }

  it('a 400 Gb/s port behind a Gen4 x16 NIC is held to the PCIe rate', async () => {
    const len = 32 * 1024 * 1024;
    const { ns } = await timedWrite(400, len);
    const achievedGbps = (len * 8) / ns;
    expect(achievedGbps).toBeLessThan(400 * ROCE_LARGE_MESSAGE_EFFICIENCY * 0.7);
    expect(achievedGbps).toBeGreaterThan(150); // Gen4 x16 carries ~25 GB/s of payload
  });

  it('two QPs writing at once share the link: each takes about twice as long', async () => {
    const len = 8 * 1024 * 1024;
    const one = await timedWrite(200, len, 1);
    const two = await timedWrite(200, len, 2);
    expect(two.ns / one.ns).toBeGreaterThan(1.8);
    expect(two.ns / one.ns).toBeLessThan(2.1);
  });

  it("a cluster's machines run their PCIe transfers on the switch's flow network (one flow can load both)", async () => {
    const c = await Cluster.create({ machines: 3 });
    for (const m of c.machines) expect(m.transfers.network).toBe(c.fabric.network);
  });

  it('a small write costs about the fabric latency (two hops + switch, the PCIe legs, and the ACK back)', async () => {
    const { ns } = await timedWrite(200, 64);
    expect(ns).toBeGreaterThan(2 * 1500);
    expect(ns).toBeLessThan(2 * 1500 + 1500);
  });
});
