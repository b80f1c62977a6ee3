/**
 * The end-to-end flow's second run (issue 6, item 6) with the amdgpu-like GPU as the
 * exporter: on host 1 a process fills a VRAM BO, exports it, registers it with the NIC
 * (ibv_reg_dmabuf_mr on an ODP HCA: a dynamic importer) and RDMA-WRITEs it to host 2's
 * GPU BO in chunks. After the first chunk completed, another VRAM allocation on host 1
 * puts VRAM under pressure and evicts the exported BO to GTT mid-stream: the exporter
 * calls dma_buf_move_notify, the NIC's umem drops its mapping (mlx5 zaps the MTTs), and
 * the next access faults it back in from the BO's new, page-backed placement
 * (ib_umem_dmabuf_map_pages after the move's KERNEL fence). Host 2 verifies every byte;
 * no violation or leak; the achieved bandwidth is reported.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMDGPU_DEFAULT_OPTIONS, amdgpuInit, amdgpuProbeConfig } from '../src/drivers/gpu/amdgpu/index.ts';
import type { IbUmemDmabuf } from '../src/drivers/rdma/umem-dmabuf.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { ROCE_LARGE_MESSAGE_EFFICIENCY } from '../src/fabric/link.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_DOMAIN_VRAM,
  AMDGPU_MODEL_COPY_BO_TO_HOST,
  AMDGPU_MODEL_COPY_HOST_TO_BO,
  AmdgpuDevice,
} from '../src/uapi/amdgpu.ts';
import * as v from '../src/uapi/verbs.ts';
import { boOf } from './helpers/amdgpu.ts';
import { runToCompletion } from './helpers/cluster.ts';
import { exchangeAndConnect, pattern, rcDmabufSide, rcSide, rdmaWriteWr } from './helpers/rdma.ts';

const MIB = 2 ** 20;

afterEach(() => {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS);
});

async function evictionStream(gbps: number, size: number, chunks: number) {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 64 * MIB });
  amdgpuInit();
  const c = await Cluster.create({
    machines: [{ topology: 'gpu-workstation' }, { topology: 'gpu-workstation' }],
    linkGbps: gbps,
  });
  const data = pattern(size, 31);
  const chunk = size / chunks;
  const acc = v.IBV_ACCESS_LOCAL_WRITE | v.IBV_ACCESS_REMOTE_WRITE;
  const out = {
    ns: 0,
    verified: false,
    placeBefore: '',
    placeAfter: '',
    invalidations: -1,
    mapCount: -1,
    statuses: [] as number[],
  };
  const a = c.machines[0].spawn('gpu-writer', async (sys) => {
    const gpu = await AmdgpuDevice.open(sys, 0);
    const h = await gpu.gemCreate(size, AMDGPU_GEM_DOMAIN_VRAM, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED);
    const host = sys.alloc(size, 4096);
    sys.memory(host, size).set(data);
    expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_HOST_TO_BO, dst: h, size, host })).toBe(1);
    const fd = await gpu.primeHandleToFd(h);
    const s = await rcSide(sys);
    const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, size, 0, fd, acc);
    out.placeBefore = boOf(fd).mem.type;
    const peer = await exchangeAndConnect(c.oob, s, 'a', 'b', mr, acc);
    await c.oob.recv('b-ready');
    const t0 = sys.now();
    for (let i = 0; i < chunks; i++) {
      v.ibv_post_send(
        s.qp,
        rdmaWriteWr(
          i,
          { addr: mr.addr + i * chunk, length: chunk, lkey: mr.lkey },
          { addr: peer.addr + i * chunk, rkey: peer.rkey },
        ),
      );
    }
    out.statuses.push((await v.ibv_poll_cq_wait(s.cq, 1))[0].status);
    // Mid-stream VRAM pressure: this allocation only fits once the exported BO is evicted.
    await gpu.gemCreate(56 * MIB, AMDGPU_GEM_DOMAIN_VRAM, 0);
    while (out.statuses.length < chunks) {
      for (const wc of await v.ibv_poll_cq_wait(s.cq, chunks - out.statuses.length))
        out.statuses.push(wc.status);
    }
    out.ns = Number(sys.now() - t0);
    out.placeAfter = boOf(fd).mem.type;
    const umem = mr.mr.umem as IbUmemDmabuf;
    out.invalidations = umem.invalidations;
    out.mapCount = umem.mapCount;
    c.oob.send('a-done', 1);
    await c.oob.recv('b-verified');
    return 0;
  });
  const b = c.machines[1].spawn('gpu-reader', async (sys) => {
    const gpu = await AmdgpuDevice.open(sys, 0);
    const h = await gpu.gemCreate(size, AMDGPU_GEM_DOMAIN_VRAM, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED);
    const fd = await gpu.primeHandleToFd(h);
    await rcDmabufSide(sys, c.oob, 'b', 'a', fd, size, acc);
    c.oob.send('b-ready', 1);
    await c.oob.recv('a-done');
    const host = sys.alloc(size, 4096);
    expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_BO_TO_HOST, src: h, size, host })).toBe(1);
    out.verified = Buffer.from(sys.memory(host, size)).equals(Buffer.from(data));
    c.oob.send('b-verified', 1);
    return 0;
  });
  await runToCompletion(c, a, b);
  return { c, out };
}

describe('GPU VRAM -> dma-buf -> RDMA -> GPU VRAM, with the exporter evicted mid-stream', () => {
  it('16 MiB in 8 RDMA WRITEs over 100 Gb/s: move_notify invalidates the MR, the NIC re-maps, every byte arrives', async () => {
    const size = 16 * MIB;
    const { c, out } = await evictionStream(100, size, 8);
    const gbps = (size * 8) / out.ns;
    // Reported measurement (virtual time): the stream includes the eviction's copy to GTT.
    console.log(
      `gpu eviction run: ${size / MIB} MiB in ${(out.ns / 1e6).toFixed(3)} ms = ${gbps.toFixed(1)} Gb/s ` +
        `(line rate 100 Gb/s, RoCE ceiling ${(100 * ROCE_LARGE_MESSAGE_EFFICIENCY).toFixed(0)} Gb/s)`,
    );
    expect(out).toMatchObject({
      verified: true,
      placeBefore: 'vram',
      placeAfter: 'gtt',
      invalidations: 1,
      mapCount: 2,
      statuses: Array(8).fill(v.IBV_WC_SUCCESS),
    });
    expect(gbps).toBeGreaterThan(10);
    expect(gbps).toBeLessThan(100 * ROCE_LARGE_MESSAGE_EFFICIENCY * 1.01);
    expect(c.reports.filter((x) => x.type === 'violation' || x.type === 'leak' || x.type === 'bug')).toEqual(
      [],
    );
    const moves = c.engine.log.entries.filter((e) => e.name === 'mem_in_use' && e.args?.pool === 'gtt');
    expect(moves.some((e) => e.args?.bytes === size)).toBe(true);
  });
});
