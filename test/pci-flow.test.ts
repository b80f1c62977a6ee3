/**
 * The transfer-time model: max-min fair sharing of resources by concurrent flows
 * (progressive filling, re-balanced when flows start and end), completion times that
 * match the analytic answer, bytes that land exactly once, latency per hop on PCIe
 * paths, root-complex and socket-link limits, and run-to-run determinism.
 */
import { describe, expect, test } from 'vitest';
import { drainTimeNs, type Flow, FlowNetwork } from '../src/kernel/pci/flow.ts';
import { buildTopology, type Topology, type TopologySpec } from '../src/kernel/pci/topology.ts';
import { presetSpec, topologyPreset } from '../src/kernel/pci/topology-presets.ts';
import { predictTransfer, TransferModel } from '../src/kernel/pci/transfer.ts';
import { linkEfficiency } from '../src/kernel/pci/transfer-params.ts';
import { Engine } from '../src/sim/engine.ts';
import { Prng } from '../src/sim/prng.ts';

/** Runs `body` at time 0 on a fresh engine and network, then the engine to the end. */
async function simulate(body: (net: FlowNetwork, engine: Engine) => void): Promise<Engine> {
  const engine = new Engine({ seed: 1 });
  const net = new FlowNetwork(engine);
  body(net, engine);
  await engine.run();
  return engine;
}

describe('flow network: max-min fair sharing', () => {
  test('a lone flow takes bytes / capacity, plus its latency', async () => {
    let end = -1;
    await simulate((net) => {
      const link = net.resource('link', 2); // 2 bytes/ns
      net.start({
        bytes: 1000,
        uses: [{ resource: link }],
        latencyNs: 50,
        onComplete: (f) => (end = f.endTime),
      });
    });
    expect(end).toBe(550);
  });

  test('onDrained fires when the last byte leaves, latencyNs before onComplete; not for a failed or cancelled flow', async () => {
    const seen: string[] = [];
    await simulate((net, engine) => {
      const link = net.resource('link', 2);
      const cb = (name: string) => ({
        onDrained: () => seen.push(`${name} drained ${engine.now}`),
        onComplete: (f: Flow) => seen.push(`${name} ${f.state} ${engine.now}`),
      });
      net.start({ bytes: 1000, uses: [{ resource: link }], latencyNs: 50, ...cb('a') });
      net.start({ bytes: 0, uses: [{ resource: link }], latencyNs: 50, ...cb('empty') });
      net.start({ bytes: 10, uses: [], latencyNs: 5, failure: 'no route', ...cb('failed') });
      const c = net.start({ bytes: 1000, uses: [{ resource: link }], ...cb('cancelled') });
      engine.at(100, () => c.cancel());
    });
    expect(seen).toEqual([
      'empty drained 0',
      'failed failed 5',
      'empty done 50',
      'cancelled cancelled 100',
      // Alone on the link after the cancel: 100 bytes at 1 byte/ns, then 900 at 2.
      'a drained 550',
      'a done 600',
    ]);
  });

  test('two equal flows on one link get half each and finish at twice the lone time', async () => {
    const flows: Flow[] = [];
    await simulate((net) => {
      const link = net.resource('link', 1);
      for (let i = 0; i < 2; i++) flows.push(net.start({ bytes: 1000, uses: [{ resource: link }] }));
      expect(flows.map((f) => f.rate)).toEqual([0.5, 0.5]);
      expect(link.utilisation).toBe(1);
    });
    expect(flows.map((f) => f.endTime)).toEqual([2000, 2000]);
  });

  test('a flow joining mid-way: rates re-balance when it starts and when the first one ends', async () => {
    const ends: number[] = [];
    const rates: number[][] = [];
    await simulate((net, engine) => {
      const link = net.resource('link', 1);
      const a = net.start({
        bytes: 1000,
        uses: [{ resource: link }],
        onComplete: (f) => ends.push(f.endTime),
      });
      engine.at(200, () => {
        const b = net.start({
          bytes: 1000,
          uses: [{ resource: link }],
          onComplete: (f) => ends.push(f.endTime),
        });
        rates.push([a.rate, b.rate]);
        engine.at(1800, () => rates.push([a.rate, b.rate]));
      });
    });
    // a: 200 B alone, then 800 B at 0.5 -> ends at 1800; b: 800 B at 0.5, then 200 B alone -> 2000.
    expect(ends).toEqual([1800, 2000]);
    expect(rates).toEqual([
      [0.5, 0.5],
      [0, 1],
    ]);
  });

  test('three flows with different bottlenecks get the hand-computed max-min rates', async () => {
    const rates: number[] = [];
    await simulate((net) => {
      const A = net.resource('A', 10);
      const B = net.resource('B', 4);
      const C = net.resource('C', 3);
      const big = 1e6;
      const f1 = net.start({ bytes: big, uses: [{ resource: A }] });
      const f2 = net.start({ bytes: big, uses: [{ resource: A }, { resource: B }] });
      const f3 = net.start({ bytes: big, uses: [{ resource: B }, { resource: C }] });
      const f4 = net.start({ bytes: big, uses: [{ resource: C, coefficient: 2 }] });
      // C saturates first (f3 + 2 f4 = 3 at level 1), then B (f2 = 4 - 1 = 3), then A (f1 = 10 - 3 = 7).
      rates.push(f1.rate, f2.rate, f3.rate, f4.rate);
      expect([A.used, B.used, C.used]).toEqual([10, 4, 3]);
      for (const f of [f1, f2, f3, f4]) f.cancel();
    });
    expect(rates.map((r) => Number(r.toFixed(9)))).toEqual([7, 3, 1, 1]);
  });

  test('a flow with its own cap leaves the rest to the others', async () => {
    await simulate((net) => {
      const link = net.resource('link', 10);
      const slow = net.start({ bytes: 100, uses: [{ resource: link }], maxRate: 2 });
      const fast = net.start({ bytes: 100, uses: [{ resource: link }] });
      expect([slow.rate, fast.rate]).toEqual([2, 8]);
    });
  });

  test('the total time of N equal flows sharing a link matches the analytic answer', async () => {
    const ends: number[] = [];
    const engine = await simulate((net) => {
      const link = net.resource('link', 3);
      for (let i = 0; i < 7; i++) {
        net.start({
          bytes: 3000 * (i + 1),
          uses: [{ resource: link }],
          onComplete: (f) => ends.push(f.endTime),
        });
      }
    });
    // Staggered sizes: flow i ends when the first i+1 have each sent 3000(i+1) ... solved stepwise:
    // the k-th phase runs (7 - k) flows at 3/(7-k) each, every one sending 3000 more bytes.
    const expected: number[] = [];
    let t = 0;
    for (let k = 0; k < 7; k++) {
      t += drainTimeNs(3000, 3 / (7 - k));
      expected.push(t);
    }
    expect(ends).toEqual(expected);
    // Work-conserving: the last one ends when all 84,000 bytes have crossed the 3 B/ns link.
    expect(engine.now).toBe((3000 * 28) / 3);
  });
});

describe('flow network: bytes land exactly once', () => {
  test('copy runs once, with the whole range, when the data lands (after the latency)', async () => {
    const calls: [number, number, number][] = [];
    await simulate((net, engine) => {
      const link = net.resource('link', 4);
      net.start({
        bytes: 4096,
        uses: [{ resource: link }],
        latencyNs: 100,
        copy: (o, l) => calls.push([engine.now, o, l]),
      });
    });
    expect(calls).toEqual([[1124, 0, 4096]]);
  });

  test('chunked copies land in order and cover every byte once', async () => {
    const calls: [number, number, number][] = [];
    const engine = await simulate((net, e) => {
      const link = net.resource('link', 1);
      net.start({
        bytes: 10_000,
        uses: [{ resource: link }],
        latencyNs: 5,
        chunkBytes: 3000,
        copy: (o, l) => calls.push([e.now, o, l]),
      });
    });
    expect(calls).toEqual([
      [3005, 0, 3000],
      [6005, 3000, 3000],
      [9005, 6000, 3000],
      [10_005, 9000, 1000],
    ]);
    expect(engine.now).toBe(10_005);
  });

  test('a cancelled flow never copies and frees its share at once', async () => {
    const copies: string[] = [];
    let other: Flow | null = null;
    await simulate((net, engine) => {
      const link = net.resource('link', 1);
      const victim = net.start({
        bytes: 1000,
        uses: [{ resource: link }],
        copy: () => copies.push('victim'),
      });
      other = net.start({ bytes: 1000, uses: [{ resource: link }], copy: () => copies.push('other') });
      engine.at(400, () => {
        expect(victim.cancel()).toBe(true);
        expect(victim.cancel()).toBe(false);
        expect(victim.state).toBe('cancelled');
        expect(other!.rate).toBe(1);
      });
    });
    // other: 200 B by t=400 at 0.5, then 800 B alone.
    expect(copies).toEqual(['other']);
    expect(other!.endTime).toBe(1200);
  });

  test('zero-byte and unconstrained flows land after their latency; copy still runs once', async () => {
    const calls: [number, number, number][] = [];
    await simulate((net, engine) => {
      net.start({
        bytes: 0,
        uses: [{ resource: net.resource('l', 1) }],
        latencyNs: 30,
        copy: (o, l) => calls.push([engine.now, o, l]),
      });
      net.start({ bytes: 64, uses: [], latencyNs: 7, copy: (o, l) => calls.push([engine.now, o, l]) });
    });
    expect(calls).toEqual([
      [7, 0, 64],
      [30, 0, 0],
    ]);
  });

  test('a flow that cannot run fails after its latency and never copies', async () => {
    let f: Flow | null = null;
    let copied = false;
    await simulate((net) => {
      f = net.start({ bytes: 10, uses: [], latencyNs: 40, failure: 'no route', copy: () => (copied = true) });
    });
    expect([f!.state, f!.error, f!.endTime, copied]).toEqual(['failed', 'no route', 40, false]);
  });

  test('Flow#wait blocks a simulated thread until the data has landed', async () => {
    const engine = new Engine({ seed: 1 });
    const net = new FlowNetwork(engine);
    const link = net.resource('link', 1);
    const seen: string[] = [];
    engine.spawn('dma', async () => {
      const f = net.start({
        bytes: 500,
        uses: [{ resource: link }],
        latencyNs: 10,
        copy: () => seen.push(`copy@${engine.now}`),
      });
      const state = await f.wait();
      seen.push(`${state}@${engine.now}`);
      return 0;
    });
    const r = await engine.run();
    expect(r.status).toBe('completed');
    expect(seen).toEqual(['copy@510', 'done@510']);
  });

  test('bad arguments are programmer errors', () => {
    const net = new FlowNetwork(new Engine());
    expect(() => net.resource('x', 0)).toThrow(/capacity must be positive/);
    expect(() => net.start({ bytes: -1, uses: [] })).toThrow(/bytes must be/);
  });
});

describe('PCIe transfers', () => {
  const GIB = 2 ** 30;

  test('latency adds up per hop: switch, root complex, socket link, memory, links', () => {
    const t = topologyPreset('gaudi-hls');
    expect(predictTransfer(t, 'accel0', 'nic0', 0).path.latencyNs).toBe(120);
    expect(predictTransfer(t, 'accel0', 'accel1', 0).path.latencyNs).toBe(2 * 120 + 300);
    expect(predictTransfer(t, 'accel0', 'accel4', 0).path.latencyNs).toBe(2 * 120 + 300 + 80);
    expect(predictTransfer(t, 'accel0', 'cpu0', 0).path.latencyNs).toBe(120 + 300 + 100);
    expect(predictTransfer(t, 'cpu1', 'accel0', 0).path.latencyNs).toBe(120 + 300 + 100 + 80);
    const slow = topologyPreset('gaudi-hls', { params: { linkLatencyNs: 10, switchLatencyNs: 150 } });
    expect(predictTransfer(slow, 'accel0', 'nic0', 0).path.latencyNs).toBe(150 + 2 * 10);
    expect(predictTransfer(slow, 'accel0', 'accel1', 0).path.latencyNs).toBe(2 * 150 + 300 + 4 * 10);
  });

  test('nested switches: one traversal per switch crossed', () => {
    const g = { gen: 5 as const, width: 16 };
    const t = buildTopology({
      name: 'tree',
      cpu: { generation: 'zen4' },
      sockets: [{ id: 'cpu0' }],
      hostBridges: [{ id: 'hb0', socket: 'cpu0' }],
      rootPorts: [{ id: 'rp0', hostBridge: 'hb0', link: g }],
      switches: [
        { id: 'top', parent: 'rp0', link: g, downstreamPorts: 2 },
        { id: 'l', parent: 'top.dp0', link: g, downstreamPorts: 1 },
        { id: 'r', parent: 'top.dp1', link: g, downstreamPorts: 1 },
      ],
      endpoints: [
        { id: 'a', kind: 'gpu', parent: 'l.dp0', link: g },
        { id: 'b', kind: 'nic', parent: 'r.dp0', link: g },
      ],
    });
    const p = predictTransfer(t, 'a', 'b', GIB).path;
    expect(p.route).toBe('switch');
    expect(p.switchTraversals).toBe(3);
    expect(p.latencyNs).toBe(360);
    expect(p.resources.map((r) => r.key)).toEqual([
      'link:0000:05:00.0:up', // a
      'link:0000:03:00.0:up', // switch l
      'link:0000:06:00.0:down', // switch r
      'link:0000:08:00.0:down', // b
    ]);
  });

  test('a lone simulated transfer takes exactly the predicted time', async () => {
    for (const [preset, src, dst] of [
      ['dgx-like', 'gpu0', 'nic1'],
      ['dgx-like', 'gpu0', 'gpu2'],
      ['dgx-like', 'gpu0', 'gpu7'],
      ['gaudi-hls', 'cpu1', 'accel2'],
    ] as const) {
      const t = topologyPreset(preset);
      const engine = new Engine();
      const model = new TransferModel(t, new FlowNetwork(engine));
      const f = model.start({ src, dst, bytes: GIB });
      await engine.run();
      expect(f.endTime).toBe(predictTransfer(t, src, dst, GIB).timeNs);
    }
  });

  test('same switch runs at link speed: payload efficiency by max payload size', () => {
    const t = topologyPreset('dgx-like');
    const p = predictTransfer(t, 'gpu0', 'nic0', GIB);
    expect(p.path.route).toBe('switch');
    expect(p.path.payloadBytes).toBe(256);
    expect(p.rateGBps).toBeCloseTo(63 * (256 / 280) * 0.95, 9);
    // Reads carry 128-byte completions.
    const r = predictTransfer(t, 'gpu0', 'nic0', GIB, { initiator: 'dst' });
    expect(r.path.payloadBytes).toBe(128);
    expect(r.rateGBps).toBeCloseTo(63 * linkEfficiency(t.params, 5, 128), 9);
  });

  test('through an Intel root complex: limited to the P2P factor, egress links inflated x1.2', () => {
    const t = topologyPreset('dgx-like');
    const p = predictTransfer(t, 'gpu0', 'gpu2', GIB);
    expect(p.path.route).toBe('root-complex');
    expect(p.path.bottleneck?.key).toBe('rc-p2p:0000:07:01.0');
    expect(p.rateGBps).toBeCloseTo(0.7 * 63 * (256 / 280) * 0.95, 9);
    const down = p.path.resources.filter((r) => r.key.endsWith(':down'));
    expect(down.map((r) => r.coefficient / (1 / linkEfficiency(t.params, 5, 256)))).toEqual([1.2, 1.2]);
    // With a generous root complex the inflated egress link becomes the limit.
    const open = topologyPreset('dgx-like', {
      params: { rootComplexP2p: { 'sapphire-rapids': { factor: 1 } } },
    });
    expect(predictTransfer(open, 'gpu0', 'gpu2', GIB).rateGBps).toBeCloseTo(
      (63 * (256 / 280) * 0.95) / 1.2,
      9,
    );
  });

  test('across sockets the socket link caps the rate', () => {
    const t = topologyPreset('dgx-like');
    const p = predictTransfer(t, 'gpu0', 'gpu6', GIB);
    expect(p.path.crossesSockets).toBe(true);
    expect(p.rateGBps).toBe(22);
    expect(p.path.bottleneck?.name).toBe('upi cpu0 -> cpu1');
  });

  test('ACS redirect sends same-switch traffic up through the root complex and back', () => {
    const t = topologyPreset('dgx-like', { iommu: true });
    const p = predictTransfer(t, 'gpu0', 'nic0', GIB).path;
    expect(p.route).toBe('root-complex');
    expect(p.switchTraversals).toBe(2);
    expect(p.resources.map((r) => r.key)).toContain('link:0000:01:00.0:up');
    expect(p.resources.map((r) => r.key)).toContain('link:0000:01:00.0:down');
    // Two such flows from different GPUs now share the switch's uplink.
    const both = new TransferModel(t, new FlowNetwork(new Engine()));
    const f1 = both.start({ src: 'gpu0', dst: 'nic0', bytes: GIB });
    const f2 = both.start({ src: 'gpu1', dst: 'nic1', bytes: GIB });
    expect(f1.rate).toBeCloseTo(f2.rate, 12);
    expect(f1.rate).toBeLessThan(predictTransfer(t, 'gpu0', 'nic0', GIB).rateGBps);
  });

  test('two NICs reading one GPU share its link fairly', async () => {
    const t = topologyPreset('dgx-like');
    const engine = new Engine();
    const model = new TransferModel(t, new FlowNetwork(engine));
    const a = model.start({ src: 'gpu0', dst: 'nic0', bytes: GIB, initiator: 'dst' });
    const b = model.start({ src: 'gpu0', dst: 'nic1', bytes: GIB, initiator: 'dst' });
    const lone = predictTransfer(t, 'gpu0', 'nic0', GIB, { initiator: 'dst' });
    expect(a.rate).toBeCloseTo(lone.rateGBps / 2, 12);
    expect(b.rate).toBe(a.rate);
    await engine.run();
    expect(a.endTime).toBe(drainTimeNs(GIB, lone.rateGBps / 2) + lone.path.latencyNs);
    expect(model.resource('link:0000:03:00.0:up')?.name).toBe(
      'dgx-like: PCIe 0000:02:00.0 <-> 0000:03:00.0 Gen5 x16 up',
    );
  });

  test('a writes-only root complex (Intel client) fails P2P reads and carries writes', async () => {
    const spec: TopologySpec = { ...presetSpec('workstation'), cpu: { generation: 'intel-client' } };
    const t: Topology = buildTopology(spec);
    expect(predictTransfer(t, 'accel0', 'nic0', 4096).unsupported).toBeNull();
    const read = predictTransfer(t, 'accel0', 'nic0', 4096, { initiator: 'dst' });
    expect(read.unsupported).toMatch(/forwards peer-to-peer writes only: nic0 cannot read from accel0/);
    const engine = new Engine();
    const model = new TransferModel(t, new FlowNetwork(engine));
    let copied = false;
    const f = model.start({
      src: 'accel0',
      dst: 'nic0',
      bytes: 4096,
      initiator: 'dst',
      copy: () => (copied = true),
    });
    await engine.run();
    expect([f.state, copied, f.endTime]).toEqual(['failed', false, read.path.latencyNs]);
  });

  test('host memory: device reads use completions, remote memory crosses the socket link', () => {
    const t = topologyPreset('gaudi-hls');
    const h2d = predictTransfer(t, 'cpu0', 'accel0', GIB);
    expect([h2d.path.route, h2d.path.initiator, h2d.path.payloadBytes]).toEqual(['host-memory', 'dst', 128]);
    const d2h = predictTransfer(t, 'accel0', 'cpu0', GIB);
    expect([d2h.path.initiator, d2h.path.payloadBytes]).toEqual(['src', 256]);
    expect(predictTransfer(t, 'accel0', 'cpu1', GIB).rateGBps).toBe(10);
    expect(() => predictTransfer(t, 'cpu0', 'cpu1', 1)).toThrow(/CPU copy, not a DMA transfer/);
    expect(() => predictTransfer(t, 'sw0', 'accel0', 1)).toThrow(/is a switch-upstream, not an endpoint/);
    const capped = buildTopology({
      ...presetSpec('gaudi-hls'),
      sockets: [{ id: 'cpu0', memoryGBps: 5 }, { id: 'cpu1' }],
    });
    expect(predictTransfer(capped, 'accel0', 'cpu0', GIB).rateGBps).toBe(5);
  });

  test('the same workload gives the same times on every run', async () => {
    const run = async () => {
      const t = topologyPreset('dgx-like');
      const engine = new Engine({ seed: 7 });
      const model = new TransferModel(t, new FlowNetwork(engine));
      const rng = new Prng(42);
      const ends: number[] = [];
      const ends2: string[] = [];
      const ids = t.endpoints.map((d) => d.id);
      for (let i = 0; i < 40; i++) {
        const at = rng.nextInt(100_000);
        const src = ids[rng.nextInt(ids.length)];
        let dst = ids[rng.nextInt(ids.length)];
        if (dst === src) dst = 'cpu1';
        const bytes = 1 + rng.nextInt(8 << 20);
        engine.at(at, () => {
          model.start({ src, dst, bytes, onComplete: (f) => ends.push(f.endTime) });
        });
      }
      const r = await engine.run();
      ends2.push(engine.log.hash());
      return { ends, hash: ends2[0], now: r.now };
    };
    const a = await run();
    const b = await run();
    expect(a.ends).toHaveLength(40);
    expect(b).toEqual(a);
  });
});
