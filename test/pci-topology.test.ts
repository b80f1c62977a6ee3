/**
 * Topologies: the presets are valid and hold what they promise; enumeration numbers
 * buses depth first and trains links and payload sizes as the PCI core does; the
 * builder reports every bad reference, naming the element; overrides reach the
 * parameters.
 */
import { describe, expect, test } from 'vitest';
import {
  buildTopology,
  type EndpointSpec,
  TopologyError,
  type TopologySpec,
} from '../src/kernel/pci/topology.ts';
import { PRESET_NAMES, presetSpec, topologyPreset } from '../src/kernel/pci/topology-presets.ts';
import { TRANSFER_DEFAULT_SOURCES, TRANSFER_DEFAULTS } from '../src/kernel/pci/transfer-params.ts';

const g4 = { gen: 4 as const, width: 16 };

function minimal(extra: Partial<TopologySpec> = {}): TopologySpec {
  return {
    name: 'minimal',
    cpu: { generation: 'zen4' },
    sockets: [{ id: 'cpu0' }],
    hostBridges: [{ id: 'hb0', socket: 'cpu0' }],
    rootPorts: [{ id: 'rp0', hostBridge: 'hb0', link: { gen: 5, width: 16 } }],
    endpoints: [{ id: 'e0', kind: 'gpu', parent: 'rp0', link: g4 }],
    ...extra,
  };
}

function problems(spec: TopologySpec): string[] {
  try {
    buildTopology(spec);
  } catch (e) {
    if (e instanceof TopologyError) return e.problems;
    throw e;
  }
  throw new Error('expected a TopologyError');
}

describe('topology presets', () => {
  test('every preset builds and has a description', () => {
    for (const name of PRESET_NAMES) {
      const t = topologyPreset(name);
      expect(t.name).toBe(name);
      expect(t.spec.description?.length).toBeGreaterThan(10);
      expect(t.describe()).toContain(t.hostBridges[0].name);
    }
    expect(() => presetSpec('nope' as never)).toThrow(/no topology preset "nope" \(presets: workstation/);
  });

  test('workstation: one accelerator and one NIC on two root ports of one Zen 4 socket', () => {
    const t = topologyPreset('workstation');
    expect(t.endpointsOf('accelerator').map((d) => d.name)).toEqual(['0000:01:00.0']);
    expect(t.endpointsOf('nic').map((d) => d.name)).toEqual(['0000:02:00.0']);
    expect(t.switches).toHaveLength(0);
    expect(t.sockets).toHaveLength(1);
    const acc = t.device('accel0');
    expect([acc.vendor, acc.device]).toEqual([0x1da3, 0x1020]);
    expect(acc.upLink?.port.id).toBe('rp0');
    expect([acc.upLink?.gen, acc.upLink?.width]).toEqual([4, 16]); // Gen4 device in a Gen5 slot
  });

  test('gaudi-hls: 2 sockets, 8 accelerators each paired with a NIC under its own switch', () => {
    const t = topologyPreset('gaudi-hls');
    expect(t.sockets).toHaveLength(2);
    expect(t.endpointsOf('accelerator')).toHaveLength(8);
    expect(t.endpointsOf('nic')).toHaveLength(8);
    expect(t.switches).toHaveLength(8);
    for (let i = 0; i < 8; i++) {
      const acc = t.device(`accel${i}`);
      const nic = t.device(`nic${i}`);
      expect(acc.bus.self?.switch).toBe(nic.bus.self?.switch);
      expect(acc.socket.id).toBe(i < 4 ? 'cpu0' : 'cpu1');
    }
    expect(t.socketLinks.map((l) => [l.kind, l.capacityGBps])).toEqual([['upi', 10]]);
  });

  test('dgx-like: 2 sockets, 4 Gen5 switches, 8 GPUs and 8 NICs, 2 of each per switch', () => {
    const t = topologyPreset('dgx-like');
    expect(t.sockets).toHaveLength(2);
    expect(t.switches).toHaveLength(4);
    expect(t.endpointsOf('gpu')).toHaveLength(8);
    expect(t.endpointsOf('nic')).toHaveLength(8);
    for (const sw of t.switches) {
      const kinds = sw.downstream.map((dp) => dp.subordinate!.devices[0].kind);
      expect(kinds).toEqual(['gpu', 'nic', 'gpu', 'nic']);
    }
    expect(t.links.every((l) => l.gen === 5 && l.width === 16)).toBe(true);
  });

  test('vm: a q35 host bridge (8086:29c0) and QEMU root ports with a 128-byte payload', () => {
    const t = topologyPreset('vm');
    expect(t.devices[0].name).toBe('0000:00:00.0');
    expect([t.devices[0].vendor, t.devices[0].device]).toEqual([0x8086, 0x29c0]);
    expect(t.device('rp0').vendor).toBe(0x1b36);
    expect(t.device('accel0').mps).toBe(128);
    expect(t.endpoints).toHaveLength(2);
  });

  test('accelerator BARs are assigned naturally aligned and without overlap', () => {
    const t = topologyPreset('gaudi-hls');
    const all = t.endpoints.flatMap((d) => d.resources.map((r) => ({ d, r })));
    expect(all.length).toBe(8 * 3 + 8);
    for (const { r } of all) expect(r.start % r.size).toBe(0);
    const sorted = all.map((x) => x.r).sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i].start).toBeGreaterThanOrEqual(sorted[i - 1].start + sorted[i - 1].size);
    }
    const dram = t.device('accel0').resources.find((r) => r.index === 4)!;
    expect(dram.size).toBe(128 * 2 ** 30);
  });
});

describe('enumeration', () => {
  test('buses are numbered depth first, functions in devfn order', () => {
    const t = topologyPreset('gaudi-hls');
    expect(t.device('rp0').name).toBe('0000:00:01.0');
    expect(t.device('sw0').name).toBe('0000:01:00.0');
    expect(t.device('sw0.dp1').name).toBe('0000:02:01.0');
    expect(t.device('nic0').name).toBe('0000:04:00.0');
    expect(t.hostBridge('hb1').name).toBe('pci0000:05');
    expect(t.byName('0000:08:00.0')?.id).toBe('accel1');
  });

  test('explicit domains and root bus numbers are honoured', () => {
    const t = buildTopology(
      minimal({
        hostBridges: [
          { id: 'hb0', socket: 'cpu0', bus: 0x17 },
          { id: 'hb1', socket: 'cpu0', domain: 1 },
        ],
        rootPorts: [
          { id: 'rp0', hostBridge: 'hb0', link: g4 },
          { id: 'rp1', hostBridge: 'hb1', link: g4 },
        ],
        endpoints: [
          { id: 'e0', kind: 'nic', parent: 'rp0', link: g4 },
          { id: 'e1', kind: 'nic', parent: 'rp1', link: g4 },
        ],
      }),
    );
    expect(t.device('e0').name).toBe('0000:18:00.0');
    expect(t.device('e1').name).toBe('0001:01:00.0');
  });

  test('links train to the lower generation and width of their ends', () => {
    const t = buildTopology(
      minimal({ endpoints: [{ id: 'e0', kind: 'nvme', parent: 'rp0', link: { gen: 4, width: 4 } }] }),
    );
    expect(t.links.map((l) => l.label)).toEqual(['0000:00:01.0 <-> 0000:01:00.0 Gen4 x4']);
  });

  test('max payload size is the smallest supported value up to the root port', () => {
    const t = buildTopology(
      minimal({
        rootPorts: [{ id: 'rp0', hostBridge: 'hb0', link: g4, mps: 512 }],
        switches: [{ id: 'sw', parent: 'rp0', link: g4, downstreamPorts: 2, mps: 256 }],
        endpoints: [
          { id: 'e0', kind: 'nic', parent: 'sw.dp0', link: g4, mps: 1024 },
          { id: 'e1', kind: 'gpu', parent: 'sw.dp1', link: g4, mps: 128 },
        ],
      }),
    );
    expect(t.device('e0').mps).toBe(256);
    expect(t.device('e1').mps).toBe(128);
  });

  test('functions of one device share its link', () => {
    const ep = (id: string): EndpointSpec => ({ id, kind: 'nic', parent: 'rp0', link: g4 });
    const t = buildTopology(minimal({ endpoints: [ep('p0'), ep('p1')] }));
    expect(t.device('p1').name).toBe('0000:01:00.1');
    expect(t.device('p1').upLink).toBe(t.device('p0').upLink);
  });

  test('the IOMMU and the command line set ACS control; a bad command line is logged', () => {
    const t = buildTopology(minimal({ iommu: true }));
    expect(t.device('rp0').acsCtrl).toBe(0x001d);
    const off = buildTopology(minimal({ iommu: true, cmdline: 'pci=disable_acs_redir=00:01.0' }));
    expect(off.device('rp0').acsCtrl).toBe(0);
    expect(off.log).toEqual(['pci 0000:00:01.0: Configured ACS to 0x0000']);
    const bad = buildTopology(minimal({ iommu: true, cmdline: 'pci=disable_acs_redir=zz' }));
    expect(bad.device('rp0').acsCtrl).toBe(0x001d);
    expect(bad.log).toEqual(["PCI: Can't parse ACS command line parameter"]);
  });
});

describe('builder errors name the element', () => {
  test('dangling references', () => {
    expect(
      problems(
        minimal({
          hostBridges: [{ id: 'hb0', socket: 'cpu9' }],
          rootPorts: [{ id: 'rp0', hostBridge: 'hbX', link: g4 }],
          switches: [{ id: 'sw', parent: 'nowhere', link: g4, downstreamPorts: 1 }],
          endpoints: [{ id: 'e0', kind: 'gpu', parent: 'sw.dp7', link: g4 }],
        }),
      ),
    ).toEqual([
      'host bridge "hb0": socket "cpu9" is not a socket of this topology',
      'root port "rp0": hostBridge "hbX" is not a host bridge of this topology',
      'switch "sw": parent "nowhere" is not a root port or switch downstream port of this topology',
      'endpoint "e0": parent "sw.dp7" is not a root port, switch downstream port or host bridge of this topology',
    ]);
  });

  test('duplicate ids, bad links and payload sizes, unknown ACS flags', () => {
    const ps = problems(
      minimal({
        rootPorts: [
          { id: 'rp0', hostBridge: 'hb0', link: { gen: 7 as never, width: 3 }, mps: 300 },
          { id: 'e0', hostBridge: 'hb0', link: g4, acs: { ctrl: ['XX' as never] } },
        ],
      }),
    );
    expect(ps).toEqual([
      'root port "rp0": link gen 7 is not a PCIe generation 1-6',
      'root port "rp0": link width 3 is not one of x1, x2, x4, x8, x12, x16, x32',
      'root port "rp0": mps 300 is not a max payload size (128, 256, ..., 4096 bytes)',
      'root port "e0": "XX" is not an ACS flag (SV, TB, RR, CR, UF, EC, DT)',
      'duplicate id "e0": used by root port "e0" and by endpoint "e0"',
    ]);
  });

  test('a port holds one device: not a switch and an endpoint, not more than 8 functions', () => {
    const eps: EndpointSpec[] = Array.from({ length: 9 }, (_, i) => ({
      id: `f${i}`,
      kind: 'other',
      parent: 'rp0',
      link: g4,
    }));
    expect(problems(minimal({ endpoints: eps }))[0]).toMatch(
      /^port "rp0" has 9 endpoints \(f0, f1, .*\); one device has at most 8 functions$/,
    );
    expect(
      problems(
        minimal({
          switches: [
            { id: 'sw', parent: 'rp0', link: g4, downstreamPorts: 1 },
            { id: 'sw2', parent: 'rp0', link: g4, downstreamPorts: 1 },
          ],
        }),
      ),
    ).toEqual([
      'switch "sw2": port "rp0" already has switch "sw" below it',
      'endpoint "e0": port "rp0" already has switch "sw" below it',
    ]);
  });

  test('switches whose parents loop are refused', () => {
    const ps = problems(
      minimal({
        switches: [
          { id: 'a', parent: 'b.dp0', link: g4, downstreamPorts: 1 },
          { id: 'b', parent: 'a.dp0', link: g4, downstreamPorts: 1 },
        ],
        endpoints: [],
      }),
    );
    expect(ps).toEqual([
      'switch "a": its parent chain loops (a -> b -> a)',
      'switch "b": its parent chain loops (b -> a -> b)',
    ]);
  });

  test('missing sections and unknown CPUs; the error lists everything', () => {
    const err = (() => {
      try {
        buildTopology({
          name: 'broken',
          cpu: { generation: 'pentium' as never },
          sockets: [],
          hostBridges: [],
          endpoints: [],
        });
      } catch (e) {
        return e as TopologyError;
      }
    })()!;
    expect(err).toBeInstanceOf(TopologyError);
    expect(err.message).toContain('topology "broken" is invalid:');
    expect(err.problems).toEqual([
      'cpu: generation "pentium" is unknown (known: haswell, broadwell, skylake, cascade-lake, ice-lake, sapphire-rapids, emerald-rapids, intel-client, pre-zen, zen1, zen2, zen3, zen4, zen5, arm, other)',
      'sockets: at least one is required',
      'hostBridges: at least one is required',
    ]);
  });

  test('BAR sizes must be powers of two', () => {
    const bars = [{ index: 0, size: 3000 }];
    expect(
      problems(minimal({ endpoints: [{ id: 'e0', kind: 'gpu', parent: 'rp0', link: g4, bars }] })),
    ).toEqual(['endpoint "e0": BAR 0 size 3000 is not a power of two of at least 16 bytes']);
  });

  test('endpoint memory: a positive multiple of 4096 bytes, on the built function; presets take it per id', () => {
    const ep = (memory: number): EndpointSpec => ({ id: 'e0', kind: 'gpu', parent: 'rp0', link: g4, memory });
    const t = buildTopology(minimal({ endpoints: [ep(64 * 2 ** 20)] }));
    expect(t.device('e0').memory).toBe(64 * 2 ** 20);
    expect(buildTopology(minimal()).device('e0').memory).toBeNull();
    expect(problems(minimal({ endpoints: [ep(1000)] }))).toEqual([
      'endpoint "e0": memory 1000 is not a positive multiple of 4096 bytes',
    ]);
    expect(problems(minimal({ endpoints: [ep(0)] }))).toEqual([
      'endpoint "e0": memory 0 is not a positive multiple of 4096 bytes',
    ]);
    const g = topologyPreset('gpu-workstation', { memory: { gpu0: 2 ** 26 } });
    expect([g.device('gpu0').memory, g.device('accel0').memory]).toEqual([2 ** 26, null]);
    expect(g.describe()).toContain('endpoint/gpu gpu0 Gen4 x16 mps=256 memory=64MiB');
    let err: unknown;
    try {
      topologyPreset('gpu-workstation', { memory: { gpu1: 2 ** 26 } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TopologyError);
    expect((err as TopologyError).problems).toEqual([
      'memory: preset "gpu-workstation" has no endpoint "gpu1" (its endpoints: gpu0, accel0, nic0)',
    ]);
  });

  test('a slot taken by the host-bridge function is refused', () => {
    const ps = problems(
      minimal({
        rootPorts: [
          { id: 'rp0', hostBridge: 'hb0', link: g4, slot: 0 },
          { id: 'rp1', hostBridge: 'hb0', link: g4 },
        ],
        endpoints: [{ id: 'e0', kind: 'gpu', parent: 'rp1', link: g4 }],
      }),
    );
    expect(ps).toEqual(['root port "rp0": slot 0 is not a free device number 0-31 on bus 0']);
  });

  test('lookups of unknown ids say what exists', () => {
    const t = topologyPreset('workstation');
    expect(() => t.device('accel9')).toThrow(
      'topology "workstation" has no PCI device "accel9" (ids starting alike: accel0)',
    );
    expect(() => t.socket('accel0')).toThrow('has no socket "accel0"');
    expect(t.node('cpu0')).toBe(t.sockets[0]);
  });
});

describe('parameters', () => {
  test('every default has a source', () => {
    for (const k of Object.keys(TRANSFER_DEFAULTS)) {
      expect(TRANSFER_DEFAULT_SOURCES[k as keyof typeof TRANSFER_DEFAULT_SOURCES]).toMatch(/§|figure/);
    }
  });

  test('overrides reach the topology, nested tables merge key by key, elements override their own', () => {
    const t = topologyPreset('dgx-like', {
      params: {
        switchLatencyNs: 100,
        laneGBps: { 5: 4 },
        rootComplexP2p: { 'sapphire-rapids': { factor: 0.5 } },
      },
    });
    expect(t.params.switchLatencyNs).toBe(100);
    expect(t.params.laneGBps[4]).toBe(TRANSFER_DEFAULTS.laneGBps[4]);
    expect(t.params.laneGBps[5]).toBe(4);
    expect(t.params.rootComplexP2p['sapphire-rapids']).toEqual({ factor: 0.5, writesOnly: false });
    expect(t.switches[0].latencyNs).toBe(100);
    expect(t.rootComplexP2p(t.hostBridges[0]).factor).toBe(0.5);
    const spec = presetSpec('dgx-like');
    spec.hostBridges[0].p2p = { factor: 0.3, aggregateGBps: 20 };
    spec.socketLink = { capacityGBps: 50, latencyNs: 60 };
    spec.switches![0].latencyNs = 90;
    const u = buildTopology(spec);
    expect(u.rootComplexP2p(u.hostBridges[0])).toEqual({ factor: 0.3, writesOnly: false, aggregateGBps: 20 });
    expect(u.socketLinks[0].capacityGBps).toBe(50);
    expect(u.switches.map((s) => s.latencyNs)).toEqual([90, 120, 120, 120]);
  });
});
