/**
 * rdma-core's tests/test_dmabuf_mr.py (DmaBufMRTest, DmaBufTestCase) with the amdgpu-like
 * GPU as the buffer provider, as rdma-core's DrmDmaBuf (pyverbs/dmabuf_alloc.c) sets it
 * up: amdgpu GEM_CREATE in VRAM with CPU_ACCESS_REQUIRED (or, for the `gtt` config, GTT
 * with CPU_GTT_USWC), PRIME_HANDLE_TO_FD with O_RDWR, and the GEM_MMAP offset for CPU
 * access — so test_dmabuf_write / test_dmabuf_read run for real here (the accelerator's
 * dma-buf cannot be mmapped). Each case runs in both configs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMDGPU_DEFAULT_OPTIONS, amdgpuInit, amdgpuProbeConfig } from '../src/drivers/gpu/amdgpu/index.ts';
import { ibDevices } from '../src/drivers/rdma/ib-core.ts';
import { Cluster } from '../src/fabric/cluster.ts';
import { dmaBufGet, dmaBufPut } from '../src/kernel/dma-buf/dma-buf.ts';
import { isErr } from '../src/kernel/err.ts';
import { O_RDWR } from '../src/kernel/fcntl.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_CPU_GTT_USWC,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  AMDGPU_MODEL_COPY_BO_TO_HOST,
  AmdgpuDevice,
} from '../src/uapi/amdgpu.ts';
import type { Sys } from '../src/uapi/sys.ts';
import * as v from '../src/uapi/verbs.ts';
import { boOf } from './helpers/amdgpu.ts';
import { runToCompletion } from './helpers/cluster.ts';
import {
  dmabufAccessFlags,
  errnoOf,
  exchangeAndConnect,
  pattern,
  peekUser,
  pokeUser,
  rcSide,
  rdmaWriteWr,
} from './helpers/rdma.ts';

const MIB = 2 ** 20;
const LW = v.IBV_ACCESS_LOCAL_WRITE;
const RW = v.IBV_ACCESS_REMOTE_WRITE;
const RR = v.IBV_ACCESS_REMOTE_READ;
const RA = v.IBV_ACCESS_REMOTE_ATOMIC;

afterEach(() => {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS);
});

/** rdma-core's DrmDmaBuf on the GPU: the BO, its dma-buf fd, and a CPU mapping of it. */
interface DrmDmaBuf {
  gpu: AmdgpuDevice;
  handle: number;
  fd: number;
  map: number;
  size: number;
}

async function drmDmaBuf(sys: Sys, size: number, gtt: boolean): Promise<DrmDmaBuf> {
  const gpu = await AmdgpuDevice.open(sys, 0);
  const handle = gtt
    ? await gpu.gemCreate(size, AMDGPU_GEM_DOMAIN_GTT, AMDGPU_GEM_CREATE_CPU_GTT_USWC)
    : await gpu.gemCreate(size, AMDGPU_GEM_DOMAIN_VRAM, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED);
  const fd = await gpu.primeHandleToFd(handle, O_RDWR);
  const map = await gpu.mmap(handle, size);
  return { gpu, handle, fd, map, size };
}

/** DmaBufMR.write(): CPU stores through the mapping. */
function mrWrite(sys: Sys, b: DrmDmaBuf, off: number, data: Uint8Array): void {
  pokeUser(sys, b.map + off, data);
}

/** DmaBufMR.read(): CPU loads through the mapping. */
function mrRead(sys: Sys, b: DrmDmaBuf, off: number, len: number): Buffer {
  return peekUser(sys, b.map + off, len);
}

async function gpuCluster(n: number, linkGbps = 100): Promise<Cluster> {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 256 * MIB });
  amdgpuInit();
  return Cluster.create({
    machines: Array.from({ length: n }, () => ({ topology: 'gpu-workstation' as const })),
    linkGbps,
  });
}

async function single(main: (sys: Sys, c: Cluster) => Promise<void>): Promise<Cluster> {
  const c = await gpuCluster(1);
  const p = c.machines[0].spawn('dmabuf-mr-gpu', async (sys) => {
    await main(sys, c);
    return 0;
  });
  await c.run();
  if (p.error) throw p.error;
  expect(p.exitCode).toBe(0);
  expect(c.reports.filter((r) => r.type !== 'warn').map((r) => `${r.rule}: ${r.message}`)).toEqual([]);
  return c;
}

for (const gtt of [false, true]) {
  const cfg = gtt ? 'gtt' : 'vram';

  describe(`DmaBufMRTest with the GPU as DrmDmaBuf (${cfg})`, () => {
    it('test_dmabuf_reg_mr: every supported access flag x offset in {0, len/2}', async () => {
      const len = 64 * 1024;
      await single(async (sys) => {
        const s = await rcSide(sys);
        for (const off of [0, len / 2]) {
          const b = await drmDmaBuf(sys, len + off, gtt);
          for (const f of dmabufAccessFlags()) {
            const mr = await v.ibv_reg_dmabuf_mr(s.pd, off, len, off, b.fd, f);
            expect(mr.length).toBe(len);
            await v.ibv_dereg_mr(mr);
          }
          // An ODP NIC maps without pinning: the buffer stays where it was created.
          expect(boOf(b.fd).mem.type).toBe(cfg);
        }
      });
    });

    it('test_dmabuf_dereg_mr and test_dmabuf_dereg_mr_twice', async () => {
      await single(async (sys) => {
        const s = await rcSide(sys);
        const b = await drmDmaBuf(sys, 8192, gtt);
        const k = dmaBufGet(b.fd);
        if (isErr(k)) throw new Error('not a dma-buf');
        dmaBufPut(k);
        const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, b.fd, LW);
        expect(k.attachments.length).toBe(1);
        await v.ibv_dereg_mr(mr);
        expect(k.attachments.length).toBe(0);
        await v.ibv_dereg_mr(mr);
      });
    });

    it('test_dmabuf_reg_mr_bad_flags: REMOTE_WRITE and/or REMOTE_ATOMIC without LOCAL_WRITE fail with EINVAL', async () => {
      await single(async (sys) => {
        const s = await rcSide(sys);
        const b = await drmDmaBuf(sys, 8192, gtt);
        for (const f of [RW, RA, RW | RA, RW | RR]) {
          expect(await errnoOf(v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, b.fd, f))).toBe('EINVAL');
        }
      });
    });

    it('test_dmabuf_write and test_dmabuf_read: CPU writes through the mapping, reads them back; the GPU sees them', async () => {
      const len = 64 * 1024;
      await single(async (sys) => {
        const s = await rcSide(sys);
        for (const off of [0, len / 2]) {
          const b = await drmDmaBuf(sys, len + off, gtt);
          const mr = await v.ibv_reg_dmabuf_mr(s.pd, off, len, off, b.fd, LW);
          const data = Buffer.alloc(len, 'a');
          mrWrite(sys, b, off, data);
          expect(mrRead(sys, b, off, len).equals(data)).toBe(true);
          const host = sys.alloc(len, 4096);
          expect(
            await b.gpu.copySync({
              op: AMDGPU_MODEL_COPY_BO_TO_HOST,
              src: b.handle,
              srcOffset: off,
              size: len,
              host,
            }),
          ).toBe(1);
          expect(Buffer.from(sys.memory(host, len)).equals(data)).toBe(true);
          await v.ibv_dereg_mr(mr);
        }
      });
    });

    it('test_dmabuf_lkey and test_dmabuf_rkey: distinct, equal per MR, valid keys', async () => {
      await single(async (sys) => {
        const s = await rcSide(sys);
        const b = await drmDmaBuf(sys, 16384, gtt);
        const a = await v.ibv_reg_dmabuf_mr(s.pd, 0, 8192, 0, b.fd, LW | RW | RR);
        const c = await v.ibv_reg_dmabuf_mr(s.pd, 8192, 8192, 8192, b.fd, LW | RW | RR);
        expect(a.lkey).toBe(a.rkey);
        expect(a.lkey).not.toBe(c.lkey);
        expect(a.lkey).toBeGreaterThan(0);
      });
    });
  });

  describe(`DmaBufTestCase with the GPU as DrmDmaBuf (${cfg})`, () => {
    for (const send of [false, true]) {
      const name = send ? 'test_dmabuf_rc_traffic' : 'test_dmabuf_rdma_traffic';
      it(`${name}: ${send ? 'SEND/RECV' : 'RDMA WRITE'} between GPU dma-buf MRs on two hosts, bytes verified through the mapping`, async () => {
        const c = await gpuCluster(2);
        const len = 256 * 1024;
        const acc = LW | RW | RR;
        let got: Buffer | null = null;
        const data = pattern(len, 21);
        const a = c.machines[0].spawn('client', async (sys) => {
          const s = await rcSide(sys);
          const b = await drmDmaBuf(sys, len, gtt);
          mrWrite(sys, b, 0, data);
          const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, len, 0, b.fd, acc);
          const peer = await exchangeAndConnect(c.oob, s, 'a', 'b', mr, acc);
          await c.oob.recv('b-ready');
          v.ibv_post_send(s.qp, {
            ...rdmaWriteWr(1, { addr: mr.addr, length: len, lkey: mr.lkey }, peer),
            opcode: send ? v.IBV_WR_SEND : v.IBV_WR_RDMA_WRITE,
          });
          const [wc] = await v.ibv_poll_cq_wait(s.cq, 1);
          expect(wc.status).toBe(v.IBV_WC_SUCCESS);
          c.oob.send('a-done', 1);
          return 0;
        });
        const b = c.machines[1].spawn('server', async (sys) => {
          const s = await rcSide(sys);
          const buf = await drmDmaBuf(sys, len, gtt);
          const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, len, 0, buf.fd, acc);
          await exchangeAndConnect(c.oob, s, 'b', 'a', mr, acc);
          if (send)
            v.ibv_post_recv(s.qp, { wr_id: 2, sg_list: [{ addr: mr.addr, length: len, lkey: mr.lkey }] });
          c.oob.send('b-ready', 1);
          await c.oob.recv('a-done');
          if (send) expect((await v.ibv_poll_cq_wait(s.cq, 1))[0].status).toBe(v.IBV_WC_SUCCESS);
          got = mrRead(sys, buf, 0, len);
          return 0;
        });
        await runToCompletion(c, a, b);
        expect(got!.equals(Buffer.from(data))).toBe(true);
        expect(c.reports.filter((x) => x.type !== 'warn').map((x) => x.rule)).toEqual([]);
      });
    }
  });
}

describe('a NIC without ODP pins the GPU buffer (ib_umem_dmabuf_get_pinned)', () => {
  it('6.12: the pin moves the VRAM buffer to GTT, so the MR is page-backed host memory (pitfall 4)', async () => {
    const c = await gpuCluster(1);
    ibDevices(c.machines[0].kernel)[0].caps.odp = false;
    const places: string[] = [];
    const p = c.machines[0].spawn('pinned', async (sys) => {
      const s = await rcSide(sys);
      const b = await drmDmaBuf(sys, MIB, false);
      places.push(boOf(b.fd).mem.type);
      const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, MIB, 0, b.fd, LW);
      places.push(boOf(b.fd).mem.type);
      await v.ibv_dereg_mr(mr);
      return 0;
    });
    await c.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(places).toEqual(['vram', 'gtt']);
  });

  it('6.15 (pinVramIfAllP2P): the pinned MR keeps the buffer in VRAM, peer-to-peer', async () => {
    Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 256 * MIB, pinVramIfAllP2P: true });
    amdgpuInit();
    const c2 = await Cluster.create({ machines: [{ topology: 'gpu-workstation' }] });
    ibDevices(c2.machines[0].kernel)[0].caps.odp = false;
    const places: string[] = [];
    const p = c2.machines[0].spawn('pinned', async (sys) => {
      const s = await rcSide(sys);
      const b = await drmDmaBuf(sys, MIB, false);
      const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, MIB, 0, b.fd, LW);
      places.push(boOf(b.fd).mem.type);
      await v.ibv_dereg_mr(mr);
      return 0;
    });
    await c2.run();
    expect(p.exitCode, String(p.error)).toBe(0);
    expect(places).toEqual(['vram']);
  });
});
