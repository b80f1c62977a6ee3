/**
 * The amdgpu-like GPU as a dma-buf exporter and importer
 * (drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c, amdgpu_gem.c, amdgpu_ttm.c of Linux 6.12;
 * spec/driver-side.md §3, §6 and §8 pitfalls 4-5). Cases are named after what they
 * mirror: the PRIME round trip and self-import (IGT prime_self_import), GEM_CREATE's
 * checks, attach/map by placement, the 6.12 pin to GTT vs 6.15's pin to VRAM when every
 * attachment is P2P, eviction under VRAM pressure with move_notify and the wait for
 * importers' fences (and the model catching an exporter that does not wait), the GPU
 * importing the accelerator's dma-buf, and process exit leaking nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { habanalabsInit, hlDevices } from '../src/drivers/accel/habanalabs/habanalabs-drv.ts';
import {
  AMDGPU_DEFAULT_OPTIONS,
  type AmdgpuBo,
  type AmdgpuOptions,
  amdgpuDevices,
  amdgpuInit,
  amdgpuProbeConfig,
  VRAM_REUSED_BEFORE_IDLE_RULE,
} from '../src/drivers/gpu/amdgpu/index.ts';
import { Device } from '../src/kernel/device.ts';
import {
  dmaBufAttach,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnpin,
  type DmaBuf as KDmaBuf,
} from '../src/kernel/dma-buf/dma-buf.ts';
import { dmaResvLock, dmaResvUnlock } from '../src/kernel/dma-buf/dma-resv.ts';
import { isErr } from '../src/kernel/err.ts';
import { DMA_BIDIRECTIONAL } from '../src/kernel/mm/dma-mapping.ts';
import { deviceSetupDma } from '../src/kernel/mm/iommu.ts';
import { pciBus, pciDevDevice } from '../src/kernel/pci/pci-driver.ts';
import type { TopologySpec } from '../src/kernel/pci/topology.ts';
import { presetSpec, topologyPreset } from '../src/kernel/pci/topology-presets.ts';
import { Machine } from '../src/machine.ts';
import { formatIssue, loadScenarioText } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_CPU_GTT_USWC,
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS,
  AMDGPU_GEM_CREATE_VM_ALWAYS_VALID,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  AMDGPU_MODEL_COPY_BO_TO_BO,
  AMDGPU_MODEL_COPY_BO_TO_HOST,
  AMDGPU_MODEL_COPY_FILL,
  AMDGPU_MODEL_COPY_HOST_TO_BO,
  AmdgpuDevice,
} from '../src/uapi/amdgpu.ts';
import { DmaBuf } from '../src/uapi/dma-buf.ts';
import { HL_MODEL_DMA_HOST_TO_DEVICE, HlDevice } from '../src/uapi/habanalabs.ts';
import type { Sys } from '../src/uapi/sys.ts';
import {
  sleepNsec,
  swSyncTimelineCreate,
  swSyncTimelineCreateFence,
  swSyncTimelineInc,
} from './helpers/drm.ts';
import { errnoOf, pattern, peekUser, pokeUser } from './helpers/rdma.ts';

const MIB = 2 ** 20;
const VRAM = AMDGPU_GEM_DOMAIN_VRAM;
const GTT = AMDGPU_GEM_DOMAIN_GTT;
const CPU_ACCESS = AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;

afterEach(() => {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS);
});

/** A `gpu-workstation` machine whose GPU has `vramMiB` of VRAM (and a BAR of `barMiB`). */
async function gpuMachine(opts: Partial<AmdgpuOptions> & { barMiB?: number } = {}): Promise<Machine> {
  Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 64 * MIB }, opts);
  amdgpuInit();
  habanalabsInit();
  const spec: TopologySpec = presetSpec('gpu-workstation');
  if (opts.barMiB) spec.endpoints[0].bars![0].size = opts.barMiB * MIB;
  return Machine.create({ seed: 1, topology: spec });
}

/** Runs `main` on `m` and checks it exited 0 with no violation, leak or bug. */
async function run(m: Machine, main: (sys: Sys) => Promise<void>): Promise<void> {
  const p = m.spawn('gpu-test', async (sys) => {
    await main(sys);
    return 0;
  });
  await m.run();
  if (p.error) throw p.error;
  expect(p.exitCode).toBe(0);
  expect(m.reports.filter((r) => r.type !== 'warn').map((r) => `${r.rule}: ${r.message}`)).toEqual([]);
}

/** The kernel BO behind a handle's dma-buf fd. */
function boOfFd(fd: number): { bo: AmdgpuBo; k: KDmaBuf } {
  const k = dmaBufGet(fd);
  if (isErr(k)) throw new Error('not a dma-buf');
  dmaBufPut(k);
  return { bo: k.priv as AmdgpuBo, k };
}

describe('amdgpu GEM and PRIME', () => {
  it('DRM_IOCTL_VERSION names the driver amdgpu; GEM_CREATE refuses bad flags and domains with EINVAL', async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      expect(gpu.path).toBe('/dev/dri/renderD129');
      const raw = (size: number, d: number | bigint, f: number | bigint) =>
        gpu.gemCreateRaw(size, d, f).then((r) => r.rc);
      expect(await raw(4096, VRAM, 1 << 20)).toBe(-22);
      expect(await raw(4096, 0x100, 0)).toBe(-22);
      expect(await raw(4096, VRAM, 1 << 10)).toBe(-22); // ENCRYPTED without TMZ
      expect(await raw(0, VRAM, 0)).toBe(-22);
      expect(await raw(128 * MIB, VRAM, 0)).toBe(-12); // larger than VRAM: amdgpu_bo_validate_size
      const h = await gpu.gemCreate(4096 + 1, VRAM, CPU_ACCESS);
      expect(h).toBe(1);
      const nocpu = await gpu.gemCreate(4096, VRAM, AMDGPU_GEM_CREATE_NO_CPU_ACCESS);
      expect(await errnoOf(gpu.mmapOffset(nocpu))).toBe('EPERM');
      expect(await errnoOf(gpu.mmapOffset(77))).toBe('ENOENT');
      const perVm = await gpu.gemCreate(4096, VRAM, AMDGPU_GEM_CREATE_VM_ALWAYS_VALID);
      expect(await errnoOf(gpu.primeHandleToFd(perVm))).toBe('EPERM');
    });
  });

  it('prime_self_import: export/import round trip; importing our own dma-buf gives back the same handle and object', async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      const h = await gpu.gemCreate(2 * MIB, VRAM, CPU_ACCESS);
      const map = await gpu.mmap(h, 2 * MIB);
      const data = pattern(2 * MIB, 3);
      pokeUser(sys, map, data);
      const fd = await gpu.primeHandleToFd(h);
      expect(await gpu.primeFdToHandle(fd)).toBe(h);
      // Another open of the same GPU imports the same GEM object (no attachment).
      const other = await AmdgpuDevice.open(sys, 0);
      const h2 = await other.primeFdToHandle(fd);
      const { bo, k } = boOfFd(fd);
      expect(k.attachments.length).toBe(0);
      expect(bo.mem.type).toBe('vram');
      // CPU access through the dma-buf mmap sees the same bytes.
      const dm = await sys.mmap(0, 2 * MIB, 1, 1, fd, 0);
      expect(peekUser(sys, dm, 2 * MIB).equals(Buffer.from(data))).toBe(true);
      // And the second file's handle copies the same bytes out.
      const host = sys.alloc(2 * MIB, 4096);
      expect(await other.copySync({ op: AMDGPU_MODEL_COPY_BO_TO_HOST, src: h2, size: 2 * MIB, host })).toBe(
        1,
      );
      expect(Buffer.from(sys.memory(host, 2 * MIB)).equals(Buffer.from(data))).toBe(true);
    });
  });
});

/** A dynamic test importer: counts move_notify calls and drops its mapping then. */
function testImporter(allowPeer2peer = true) {
  const state = { notifies: 0, sgt: null as import('../src/kernel/mm/scatterlist.ts').SgTable | null };
  const ops = {
    allowPeer2peer,
    async moveNotify(attach: import('../src/kernel/dma-buf/dma-buf.ts').DmaBufAttachment) {
      state.notifies++;
      if (state.sgt) {
        const s = state.sgt;
        state.sgt = null;
        await dmaBufUnmapAttachment(attach, s, DMA_BIDIRECTIONAL);
      }
    },
  };
  return { state, ops };
}

/** The struct device of topology endpoint `id` (the NIC: P2P-capable), or a platform device with no PCIe route. */
function importerDevice(m: Machine, id: string | null): Device {
  if (id === null) {
    const d = new Device('platform-importer');
    deviceSetupDma(d);
    return d;
  }
  const pdev = pciBus(m.kernel)!.topology.endpoints.find((e) => e.id === id)!;
  return pciDevDevice(pdev, m.kernel);
}

describe('device memory from the topology', () => {
  it("an endpoint's memory sizes the GPU's VRAM (over amdgpuProbeConfig) and the accelerator's HBM", async () => {
    Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 64 * MIB });
    amdgpuInit();
    habanalabsInit();
    const m = await Machine.create({
      seed: 1,
      topology: topologyPreset('gpu-workstation', { memory: { gpu0: 32 * MIB, accel0: 4 * 2 ** 30 } }),
    });
    const adev = amdgpuDevices(m.kernel)[0];
    expect([adev.vram.size, adev.opts.vramSize, adev.visibleVramSize]).toEqual([
      32 * MIB,
      32 * MIB,
      32 * MIB,
    ]);
    expect(hlDevices(m.kernel)[0].prop.dramSize).toBe(4 * 2 ** 30);
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      expect((await gpu.gemCreateRaw(48 * MIB, VRAM, 0)).rc).toBe(-12); // larger than the 32 MiB of VRAM
    });
    // Without `memory` the probe config still decides.
    const d = await gpuMachine();
    expect(amdgpuDevices(d.kernel)[0].vram.size).toBe(64 * MIB);
  });
});

describe('amdgpu_dma_buf_ops', () => {
  it('attach: a P2P-capable importer keeps peer2peer, one without a PCIe route loses it; map by placement', async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      const fd = await gpu.primeHandleToFd(await gpu.gemCreate(MIB, VRAM, CPU_ACCESS));
      const { bo, k } = boOfFd(fd);
      const nic = testImporter();
      const a = await dmaBufDynamicAttach(k, importerDevice(m, 'nic0'), nic.ops, null);
      if (isErr(a)) throw new Error('attach failed');
      expect(a.peer2peer).toBe(true);
      await dmaResvLock(k.resv, null);
      const sgt = await dmaBufMapAttachment(a, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) throw new Error('map failed');
      nic.state.sgt = sgt;
      // VRAM: a page-less table of BAR addresses inside the visible window.
      expect(bo.mem.type).toBe('vram');
      expect(sgt.sgl[0].pageLink).toBe(null);
      const gpuBar = amdgpuDevices(m.kernel)[0].barStart;
      expect(sgt.sgl[0].dmaAddress).toBe(gpuBar + (bo.mem as { start: number }).start);
      dmaResvUnlock(k.resv);
      // A platform device cannot reach the GPU: peer2peer cleared, its map moves the BO to GTT.
      const plat = testImporter();
      const b = await dmaBufDynamicAttach(k, importerDevice(m, null), plat.ops, null);
      if (isErr(b)) throw new Error('attach failed');
      expect(b.peer2peer).toBe(false);
      await dmaResvLock(k.resv, null);
      const sgt2 = await dmaBufMapAttachment(b, DMA_BIDIRECTIONAL);
      if (isErr(sgt2)) throw new Error('map failed');
      expect(bo.mem.type).toBe('gtt');
      expect(sgt2.sgl[0].pages.length).toBeGreaterThan(0);
      expect(nic.state.notifies).toBe(1); // the move told the NIC, which dropped its mapping
      expect(plat.state.notifies).toBe(1);
      await dmaBufUnmapAttachment(b, sgt2, DMA_BIDIRECTIONAL);
      dmaResvUnlock(k.resv);
      await dmaBufDetach(k, b);
      await dmaBufDetach(k, a);
    });
  });

  it('small BAR: a BO placed outside the CPU-visible window moves into it when a P2P importer maps it', async () => {
    const m = await gpuMachine({ barMiB: 16 });
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      expect(amdgpuDevices(m.kernel)[0].visibleVramSize).toBe(16 * MIB);
      // No CPU access asked: amdgpu places it top-down, beyond the BAR.
      const h = await gpu.gemCreate(4 * MIB, VRAM, 0);
      const fd = await gpu.primeHandleToFd(h);
      const { bo, k } = boOfFd(fd);
      const start = () => (bo.mem as { start: number }).start;
      expect(start()).toBeGreaterThanOrEqual(16 * MIB);
      // The CPU cannot reach it through the BAR either: a fault there is SIGBUS.
      const map = await gpu.mmap(h, 4 * MIB);
      expect(() => sys.memory(map, 4096)).toThrow();
      const nic = testImporter();
      const a = await dmaBufDynamicAttach(k, importerDevice(m, 'nic0'), nic.ops, null);
      if (isErr(a)) throw new Error('attach failed');
      await dmaResvLock(k.resv, null);
      const sgt = await dmaBufMapAttachment(a, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) throw new Error('map failed');
      // amdgpu_dma_buf_map set CPU_ACCESS_REQUIRED: validated into the visible window.
      expect(bo.mem.type).toBe('vram');
      expect(start() + bo.size).toBeLessThanOrEqual(16 * MIB);
      expect(sgt.sgl[0].dmaAddress).toBe(amdgpuDevices(m.kernel)[0].barStart + start());
      await dmaBufUnmapAttachment(a, sgt, DMA_BIDIRECTIONAL);
      dmaResvUnlock(k.resv);
      await dmaBufDetach(k, a);
      // Now inside the window, the CPU mapping faults the page in.
      expect(sys.memory(map, 4096).length).toBe(4096);
    });
  });

  it('pin in 6.12 moves a VRAM buffer to GTT, even for a P2P importer (pitfall 4, uGDS#18)', async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      const fd = await gpu.primeHandleToFd(await gpu.gemCreate(MIB, VRAM, CPU_ACCESS));
      const { bo, k } = boOfFd(fd);
      const nic = testImporter();
      const a = await dmaBufDynamicAttach(k, importerDevice(m, 'nic0'), nic.ops, null);
      if (isErr(a)) throw new Error('attach failed');
      await dmaResvLock(k.resv, null);
      expect(await dmaBufPin(a)).toBe(0);
      expect(bo.mem.type).toBe('gtt');
      expect(bo.pinCount).toBe(1);
      const sgt = await dmaBufMapAttachment(a, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) throw new Error('map failed');
      expect(sgt.sgl[0].pages.length).toBeGreaterThan(0); // page-backed: P2P is gone
      await dmaBufUnmapAttachment(a, sgt, DMA_BIDIRECTIONAL);
      await dmaBufUnpin(a);
      dmaResvUnlock(k.resv);
      await dmaBufDetach(k, a);
      // A static importer of the dynamic exporter is pinned (and mapped) at attach time.
      const s = await dmaBufAttach(k, importerDevice(m, 'nic0'));
      if (isErr(s)) throw new Error('attach failed');
      expect(bo.pinCount).toBe(1);
      await dmaBufDetach(k, s);
      expect(bo.pinCount).toBe(0);
    });
  });

  it('pin with the 6.15 behaviour (pinVramIfAllP2P) keeps VRAM when every attachment is P2P, else GTT', async () => {
    const m = await gpuMachine({ pinVramIfAllP2P: true });
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      const fd = await gpu.primeHandleToFd(await gpu.gemCreate(MIB, VRAM, 0));
      const { bo, k } = boOfFd(fd);
      const nic = testImporter();
      const a = await dmaBufDynamicAttach(k, importerDevice(m, 'nic0'), nic.ops, null);
      if (isErr(a)) throw new Error('attach failed');
      await dmaResvLock(k.resv, null);
      expect(await dmaBufPin(a)).toBe(0);
      expect(bo.mem.type).toBe('vram');
      // CPU_ACCESS_REQUIRED was set: the pinned BO lies in the BAR window.
      expect(bo.flags & CPU_ACCESS).toBe(CPU_ACCESS);
      const sgt = await dmaBufMapAttachment(a, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) throw new Error('map failed');
      expect(sgt.sgl[0].pageLink).toBe(null);
      await dmaBufUnmapAttachment(a, sgt, DMA_BIDIRECTIONAL);
      await dmaBufUnpin(a);
      dmaResvUnlock(k.resv);
      // A non-P2P attachment present: the pin drops VRAM and the buffer goes to GTT.
      const plat = testImporter();
      const b = await dmaBufDynamicAttach(k, importerDevice(m, null), plat.ops, null);
      if (isErr(b)) throw new Error('attach failed');
      await dmaResvLock(k.resv, null);
      expect(await dmaBufPin(a)).toBe(0);
      expect(bo.mem.type).toBe('gtt');
      await dmaBufUnpin(a);
      dmaResvUnlock(k.resv);
      await dmaBufDetach(k, b);
      await dmaBufDetach(k, a);
    });
  });
});

/**
 * VRAM pressure: BO A (24 MiB, exported, mapped by a dynamic importer, an importer
 * write fence pending) and then a 48 MiB allocation that only fits once A is evicted.
 */
async function evictionRun(opts: Partial<AmdgpuOptions>) {
  const m = await gpuMachine(opts);
  const seen: Record<string, unknown> = {};
  const p = m.spawn('evict', async (sys) => {
    const gpu = await AmdgpuDevice.open(sys, 0);
    const a = await gpu.gemCreate(24 * MIB, VRAM, CPU_ACCESS);
    const data = pattern(24 * MIB, 7);
    const host = sys.alloc(24 * MIB, 4096);
    sys.memory(host, 24 * MIB).set(data);
    expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_HOST_TO_BO, dst: a, size: 24 * MIB, host })).toBe(1);
    const fd = await gpu.primeHandleToFd(a);
    const { bo, k } = boOfFd(fd);
    const imp = testImporter();
    const at = await dmaBufDynamicAttach(k, importerDevice(m, 'nic0'), imp.ops, null);
    if (isErr(at)) throw new Error('attach failed');
    await dmaResvLock(k.resv, null);
    const sgt = await dmaBufMapAttachment(at, DMA_BIDIRECTIONAL);
    dmaResvUnlock(k.resv);
    if (isErr(sgt)) throw new Error('map failed');
    imp.state.sgt = sgt;
    // The importer's DMA in flight: a write fence it added (here from a sw_sync timeline).
    const tl = await swSyncTimelineCreate(sys);
    const fence = await swSyncTimelineCreateFence(sys, tl, 1);
    await (await DmaBuf.fromFd(sys, fd)).importSyncFile(fence, 'write');
    let allocated = false;
    const tid = sys.spawnThread(async (ts) => {
      const g2 = new AmdgpuDevice(ts, gpu.fd, gpu.path);
      await g2.gemCreate(48 * MIB, VRAM, 0);
      allocated = true;
      return 0;
    });
    await sleepNsec(sys, 1_000_000n);
    seen.notifiesBeforeSignal = imp.state.notifies;
    seen.allocatedBeforeSignal = allocated;
    seen.placeBeforeSignal = bo.mem.type;
    await swSyncTimelineInc(sys, tl, 1);
    await sys.joinThread(tid);
    seen.allocated = allocated;
    seen.place = bo.mem.type;
    seen.moves = bo.moves;
    const back = sys.alloc(24 * MIB, 4096);
    expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_BO_TO_HOST, src: a, size: 24 * MIB, host: back })).toBe(
      1,
    );
    seen.intact = Buffer.from(sys.memory(back, 24 * MIB)).equals(Buffer.from(data));
    await dmaBufDetach(k, at);
    return 0;
  });
  const r = await m.run();
  if (p.error) throw p.error;
  expect(r.status, m.reports.map((x) => x.message).join('\n')).toBe('completed');
  return { m, seen };
}

describe('eviction under VRAM pressure', () => {
  it('evicts the LRU BO to GTT: move_notify on the importer, no reuse before its fence signals, bytes intact', async () => {
    const { m, seen } = await evictionRun({});
    expect(seen).toEqual({
      notifiesBeforeSignal: 1,
      allocatedBeforeSignal: false,
      placeBeforeSignal: 'vram',
      allocated: true,
      place: 'gtt',
      moves: 1,
      intact: true,
    });
    expect(m.reports.filter((r) => r.type !== 'warn').map((r) => r.rule)).toEqual([]);
    const mem = m.engine.log.entries.filter((e) => e.name === 'mem_in_use' && e.args?.device === 'gpu0');
    expect(mem.some((e) => e.args?.pool === 'gtt' && e.args?.bytes === 24 * MIB)).toBe(true);
    expect(mem.some((e) => e.args?.pool === 'vram' && e.args?.bytes === 48 * MIB)).toBe(true);
  });

  it('pitfall 5: an exporter that does not wait for the fences after move_notify is caught (amdgpu.vram_reused_before_idle)', async () => {
    const { m, seen } = await evictionRun({ skipMoveWait: true });
    expect(seen.allocatedBeforeSignal).toBe(true);
    expect(m.reports.filter((r) => r.type === 'violation').map((r) => r.rule)).toEqual([
      VRAM_REUSED_BEFORE_IDLE_RULE,
    ]);
  });
});

describe('amdgpu as an importer', () => {
  it("imports the accelerator's dma-buf (dynamic attach, peer-to-peer) and copies from it, bytes verified", async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const hl = await HlDevice.open(sys, 0);
      const size = 2 * MIB;
      const va = await hl.map(await hl.alloc(size));
      const data = pattern(size, 5);
      const host = sys.alloc(size, 4096);
      sys.memory(host, size).set(data);
      expect(
        await hl.waitFence(await hl.dmaJob({ op: HL_MODEL_DMA_HOST_TO_DEVICE, dst: va, src: host, size })),
      ).toBe(1);
      const fd = await hl.exportDmabufFd(va, size);
      const gpu = await AmdgpuDevice.open(sys, 0);
      const imported = await gpu.primeFdToHandle(fd);
      expect(await gpu.primeFdToHandle(fd)).toBe(imported);
      const { k } = boOfFd(fd);
      expect(k.attachments.map((a) => [a.peer2peer, a.importerOps !== null])).toEqual([[true, true]]);
      const own = await gpu.gemCreate(size, VRAM, 0);
      expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_BO_TO_BO, dst: own, src: imported, size })).toBe(1);
      const back = sys.alloc(size, 4096);
      expect(await gpu.copySync({ op: AMDGPU_MODEL_COPY_BO_TO_HOST, src: own, size, host: back })).toBe(1);
      expect(Buffer.from(sys.memory(back, size)).equals(Buffer.from(data))).toBe(true);
      // And a fill through the import reaches the accelerator's memory.
      expect(
        await gpu.copySync({
          op: AMDGPU_MODEL_COPY_FILL,
          dst: imported,
          size: 4096,
          pattern: 0x1122334455667788n,
        }),
      ).toBe(1);
      expect(await hl.waitFence(await hl.dmaJob({ op: 2, dst: back, src: va, size: 4096 }))).toBe(1);
      expect([...sys.memory(back, 8)]).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    });
  });

  it('process exit releases BOs, exports and imports: no leak, VRAM and GTT back to 0', async () => {
    const m = await gpuMachine();
    await run(m, async (sys) => {
      const gpu = await AmdgpuDevice.open(sys, 0);
      const a = await gpu.gemCreate(4 * MIB, VRAM, CPU_ACCESS);
      await gpu.gemCreate(MIB, GTT, AMDGPU_GEM_CREATE_CPU_GTT_USWC);
      const fd = await gpu.primeHandleToFd(a);
      await gpu.mmap(a, 4 * MIB);
      await sys.mmap(0, 4 * MIB, 3, 1, fd, 0);
      const hl = await HlDevice.open(sys, 0);
      const va = await hl.map(await hl.alloc(2 * MIB));
      await gpu.primeFdToHandle(await hl.exportDmabufFd(va, 2 * MIB));
      // no close, no unmap
    });
    const adev = amdgpuDevices(m.kernel)[0];
    expect([adev.vramMgr.used, adev.gttUsed]).toEqual([0, 0]);
  });
});

describe('scenario steps gpu_alloc, gpu_export, gpu_evict', () => {
  it('a scenario allocates, exports and evicts a VRAM buffer: it ends in GTT, the pressure buffer in VRAM', async () => {
    Object.assign(amdgpuProbeConfig, AMDGPU_DEFAULT_OPTIONS, { vramSize: 64 * MIB });
    amdgpuInit();
    const r = loadScenarioText(
      `name: gpu-evict
topology: gpu-workstation
processes:
  - name: app
    steps:
      - gpu_alloc: {size: 24MiB}
        as: a
      - gpu_export: {bo: a}
        as: buf
      - gpu_evict: {size: 48MiB}
        as: pressure
      - gpu_alloc: {size: 1MiB, domain: gtt}
        as: g
expect:
  - run: completed
`,
      't.yaml',
    );
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const { result } = await runScenario(r.scenario);
    expect(result.steps.map((s) => [s.label, s.outcome])).toEqual([
      ['gpu_alloc 24MiB vram', 'ok'],
      ['gpu_export a', 'ok'],
      ['gpu_evict 48MiB', 'ok'],
      ['gpu_alloc 1MiB gtt', 'ok'],
    ]);
    // After the eviction the 24 MiB buffer lives in GTT and the pressure buffer in VRAM.
    expect(result.steps[2].summary).toContain('VRAM 48MiB, GTT 24MiB in use');
    expect(result.ok).toBe(true);
  });
});
