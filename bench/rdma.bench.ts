/**
 * RDMA benchmarks on a two-machine `gaudi-hls` cluster joined by a 200 Gb/s link:
 * accelerator memory on host 1, exported as a dma-buf and registered with the NIC
 * (ibv_reg_dmabuf_mr), RDMA-WRITTEN into accelerator memory on host 2 (also a dma-buf
 * MR), 1 GiB in one work request, with real bytes.
 *
 * - `rdma.write.dmabuf.1gib`: the predicted bandwidth (virtual time from post to
 *   completion), GB/s; compare with 0.92 x 25 GB/s = 23 GB/s (performance.md §2.1).
 * - `rdma.write.dmabuf.1gib.wall`: wall seconds the model takes to simulate it.
 */
import { habanalabsInit } from '../src/drivers/accel/habanalabs/habanalabs-drv.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { HlDevice } from '../src/uapi/habanalabs.ts';
import * as v from '../src/uapi/verbs.ts';
import { rcDmabufSide, rdmaWriteWait } from '../test/helpers/rdma.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const GIB = 2 ** 30;

async function writeDmabuf1Gib(): Promise<{ gbps: number; wall: number }> {
  habanalabsInit();
  const c = await Cluster.create({
    machines: [{ topology: 'gaudi-hls' }, { topology: 'gaudi-hls' }],
    linkGbps: 200,
    log: false,
  });
  const acc = v.IBV_ACCESS_LOCAL_WRITE | v.IBV_ACCESS_REMOTE_WRITE;
  let ns = 0;
  let wall = 0;
  c.machines[0].spawn('writer', async (sys) => {
    const hl = await HlDevice.open(sys, 0);
    const va = await hl.map(await hl.alloc(GIB, { contiguous: true }));
    const fd = await hl.exportDmabufFd(va, GIB);
    const s = await rcDmabufSide(sys, c.oob, 'a', 'b', fd, GIB, acc);
    await c.oob.recv('ready');
    const w0 = performance.now();
    const t0 = sys.now();
    const wc = await rdmaWriteWait(s, 1, { addr: s.mr.addr, length: GIB, lkey: s.mr.lkey }, s.peer);
    if (wc.status !== v.IBV_WC_SUCCESS)
      throw new Error(`RDMA WRITE failed: ${v.ibv_wc_status_str(wc.status)}`);
    ns = Number(sys.now() - t0);
    wall = secondsSince(w0);
    c.oob.send('done', 1);
    return 0;
  });
  c.machines[1].spawn('target', async (sys) => {
    const hl = await HlDevice.open(sys, 0);
    const va = await hl.map(await hl.alloc(GIB, { contiguous: true }));
    const fd = await hl.exportDmabufFd(va, GIB);
    await rcDmabufSide(sys, c.oob, 'b', 'a', fd, GIB, acc);
    c.oob.send('ready', 1);
    await c.oob.recv('done');
    return 0;
  });
  await c.run();
  if (ns === 0) throw new Error('rdma.write.dmabuf.1gib: the write did not complete');
  return { gbps: GIB / ns, wall };
}

/** The benchmarks. */
export const benchmarks: Benchmark[] = [
  { name: 'rdma.write.dmabuf.1gib', unit: 'GB/s', run: async () => (await writeDmabuf1Gib()).gbps },
  {
    name: 'rdma.write.dmabuf.1gib.wall',
    unit: 's',
    higherIsBetter: false,
    run: async () => (await writeDmabuf1Gib()).wall,
  },
];
