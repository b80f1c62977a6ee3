/**
 * pci_p2pdma_distance_many and the map type, for every case of driver-side.md §5, as
 * drivers/pci/p2pdma.c (Linux 6.12) computes them: same function, two functions, one
 * switch, nested switches, across switches and root ports, ACS redirect (and the
 * command-line and IOMMU knobs around it), whitelisted and non-whitelisted host
 * bridges, the same-host-bridge requirement, AMD Zen, and the virtual machine.
 */
import { describe, expect, test } from 'vitest';
import {
  calcMapTypeAndDist,
  cpuSupportsP2pdma,
  mapTypesIdx,
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NOT_SUPPORTED,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  PCI_P2PDMA_MAP_UNKNOWN,
  pciHostBridgeDev,
  pciP2pdmaClassify,
  pciP2pdmaDistance,
  pciP2pdmaDistanceMany,
  pciP2pdmaMapType,
  pciP2pdmaSetup,
} from '../src/kernel/pci/p2pdma.ts';
import type { Device } from '../src/kernel/pci/pci.ts';
import {
  buildTopology,
  type CpuSpec,
  type EndpointSpec,
  type HostBridgeSpec,
  type SwitchSpec,
  type Topology,
  type TopologySpec,
} from '../src/kernel/pci/topology.ts';
import { topologyPreset } from '../src/kernel/pci/topology-presets.ts';

const g4 = { gen: 4 as const, width: 16 };

/**
 * Two root ports on one host bridge; rp0 holds switch sw0 with a, b (and a 2-function
 * device f0/f1); rp1 holds switch sw1 with c.
 */
function twoSwitches(
  cpu: CpuSpec,
  opts: { hb?: Partial<HostBridgeSpec>; sw0?: Partial<SwitchSpec>; iommu?: boolean; cmdline?: string } = {},
): Topology {
  const ep = (id: string, parent: string): EndpointSpec => ({ id, kind: 'other', parent, link: g4 });
  const spec: TopologySpec = {
    name: 'two-switches',
    cpu,
    sockets: [{ id: 'cpu0' }],
    hostBridges: [{ id: 'hb0', socket: 'cpu0', ...opts.hb }],
    rootPorts: [
      { id: 'rp0', hostBridge: 'hb0', link: g4 },
      { id: 'rp1', hostBridge: 'hb0', link: g4 },
    ],
    switches: [
      { id: 'sw0', parent: 'rp0', link: g4, downstreamPorts: 3, ...opts.sw0 },
      { id: 'sw1', parent: 'rp1', link: g4, downstreamPorts: 1 },
    ],
    endpoints: [
      ep('a', 'sw0.dp0'),
      ep('b', 'sw0.dp1'),
      ep('f0', 'sw0.dp2'),
      ep('f1', 'sw0.dp2'),
      ep('c', 'sw1.dp0'),
    ],
    iommu: opts.iommu,
    cmdline: opts.cmdline,
  };
  return buildTopology(spec);
}

/** Two host bridges (one root port and one endpoint each) on the given CPU. */
function twoHostBridges(cpu: CpuSpec, hb: Partial<HostBridgeSpec> = {}): Topology {
  return buildTopology({
    name: 'two-host-bridges',
    cpu,
    sockets: [{ id: 'cpu0' }],
    hostBridges: [
      { id: 'hb0', socket: 'cpu0', ...hb },
      { id: 'hb1', socket: 'cpu0', ...hb },
    ],
    rootPorts: [
      { id: 'rp0', hostBridge: 'hb0', link: g4 },
      { id: 'rp1', hostBridge: 'hb0', link: g4 },
      { id: 'rp2', hostBridge: 'hb1', link: g4 },
    ],
    endpoints: [
      { id: 'x', kind: 'other', parent: 'rp0', link: g4 },
      { id: 'y', kind: 'other', parent: 'rp1', link: g4 },
      { id: 'z', kind: 'other', parent: 'rp2', link: g4 },
    ],
  });
}

const iceLake: CpuSpec = { generation: 'ice-lake' };

function calc(t: Topology, provider: string, client: string) {
  return calcMapTypeAndDist(t.device(provider), t.device(client), false);
}

describe('p2pdma distance and map type (drivers/pci/p2pdma.c)', () => {
  test('same function: distance 0, BUS_ADDR', () => {
    const t = twoSwitches(iceLake);
    expect(calc(t, 'a', 'a')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 0 });
    expect(pciP2pdmaDistance(t.device('a'), t.device('a'), true)).toBe(0);
  });

  test('two functions of one device behind one port: distance 2, BUS_ADDR', () => {
    const t = twoSwitches(iceLake);
    expect(t.device('f0').name).toBe('0000:05:00.0');
    expect(t.device('f1').name).toBe('0000:05:00.1');
    expect(calc(t, 'f0', 'f1')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 2 });
  });

  test('two devices on one switch: distance 4, BUS_ADDR', () => {
    const t = twoSwitches(iceLake);
    expect(calc(t, 'a', 'b')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 4 });
    expect(calc(t, 'b', 'a')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 4 });
  });

  test('two switches below a common switch: distance 8, BUS_ADDR', () => {
    const t = buildTopology({
      name: 'nested',
      cpu: { generation: 'broadwell' }, // not whitelisted: BUS_ADDR must not need the host bridge
      sockets: [{ id: 'cpu0' }],
      hostBridges: [{ id: 'hb0', socket: 'cpu0' }],
      rootPorts: [{ id: 'rp0', hostBridge: 'hb0', link: g4 }],
      switches: [
        { id: 'top', parent: 'rp0', link: g4, downstreamPorts: 2 },
        { id: 'left', parent: 'top.dp0', link: g4, downstreamPorts: 1 },
        { id: 'right', parent: 'top.dp1', link: g4, downstreamPorts: 1 },
      ],
      endpoints: [
        { id: 'a', kind: 'gpu', parent: 'left.dp0', link: g4 },
        { id: 'b', kind: 'nic', parent: 'right.dp0', link: g4 },
      ],
    });
    expect(calc(t, 'a', 'b')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 8 });
  });

  test('across switches on one whitelisted host bridge (Ice Lake 8086:09a2): THRU_HOST_BRIDGE, distance 8', () => {
    const t = twoSwitches(iceLake);
    expect(calc(t, 'a', 'c')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 8 });
    expect(pciP2pdmaDistance(t.device('a'), t.device('c'), true)).toBe(8);
    expect(t.log).toEqual([]);
  });

  test('across root ports and across whitelisted host bridges: THRU_HOST_BRIDGE, distance 4', () => {
    const t = twoHostBridges(iceLake);
    expect(calc(t, 'x', 'y')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
    expect(calc(t, 'x', 'z')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
  });

  test('ACS redirect on a switch downstream port: THRU_HOST_BRIDGE with the kernel warnings', () => {
    const t = twoSwitches(iceLake, { sw0: { downstreamPorts: [{ acs: { ctrl: ['RR', 'CR'] } }, {}, {}] } });
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), t.device('b'), true, log)).toBe(4);
    expect(calc(t, 'a', 'b').mapType).toBe(PCI_P2PDMA_MAP_THRU_HOST_BRIDGE);
    // a = 0000:03:00.0 below sw0.dp0 = 0000:02:00.0; b = 0000:04:00.0.
    expect(log).toEqual([
      'pci 0000:04:00.0: ACS redirect is set between the client and provider (0000:03:00.0)',
      'pci 0000:04:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:02:00.0',
    ]);
    expect(t.log).toEqual(log);
  });

  test('ACS control bits the capability lacks cannot be set', () => {
    const t = twoSwitches(iceLake, { sw0: { downstreamAcs: { ctrl: ['EC'] } } });
    expect(t.device('sw0.dp0').acsCtrl).toBe(0);
    expect(calc(t, 'a', 'b').mapType).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
  });

  test('ACS redirect lists the provider side up to the shared bridge, then the client side', () => {
    const t = twoSwitches(iceLake, {
      sw0: {
        downstreamAcs: { cap: ['SV', 'RR', 'CR', 'UF', 'EC'], ctrl: ['EC'] },
        upstreamAcs: { ctrl: ['RR'] },
      },
    });
    expect(t.device('sw0.dp0').acsCtrl).toBe(0x0020);
    const log: string[] = [];
    pciP2pdmaDistance(t.device('a'), t.device('b'), true, log);
    // Provider side: sw0.dp0, then the shared upstream port sw0; client side: sw0.dp1.
    expect(log[1]).toContain('pci=disable_acs_redir=0000:02:00.0;0000:01:00.0;0000:02:01.0');
  });

  test('ACS redirect list longer than the kernel 128-byte buffer is cut at 127 bytes', () => {
    const chain = (side: string, parent: string): SwitchSpec[] =>
      [0, 1, 2, 3, 4].map((i) => ({
        id: `${side}${i}`,
        parent: i === 0 ? parent : `${side}${i - 1}.dp0`,
        link: g4,
        downstreamPorts: 1,
        downstreamAcs: { ctrl: ['RR'] },
      }));
    const t = buildTopology({
      name: 'deep',
      cpu: iceLake,
      sockets: [{ id: 'cpu0' }],
      hostBridges: [{ id: 'hb0', socket: 'cpu0' }],
      rootPorts: [{ id: 'rp0', hostBridge: 'hb0', link: g4 }],
      switches: [
        { id: 'top', parent: 'rp0', link: g4, downstreamPorts: 2, downstreamAcs: { ctrl: ['RR'] } },
        ...chain('l', 'top.dp0'),
        ...chain('r', 'top.dp1'),
      ],
      endpoints: [
        { id: 'a', kind: 'other', parent: 'l4.dp0', link: g4 },
        { id: 'b', kind: 'other', parent: 'r4.dp0', link: g4 },
      ],
    });
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), t.device('b'), true, log)).toBe(24);
    const list = log[1].split('pci=disable_acs_redir=')[1];
    expect(list).toHaveLength(127);
    expect(list.startsWith(`${t.device('l4.dp0').name};${t.device('l3.dp0').name};`)).toBe(true);
  });

  test('pci=disable_acs_redir= on the command line clears the redirect: BUS_ADDR again', () => {
    const acs = { sw0: { downstreamAcs: { ctrl: ['SV', 'RR', 'CR'] as ('SV' | 'RR' | 'CR')[] } } };
    const before = twoSwitches(iceLake, acs);
    expect(calc(before, 'a', 'b').mapType).toBe(PCI_P2PDMA_MAP_THRU_HOST_BRIDGE);
    const after = twoSwitches(iceLake, {
      ...acs,
      cmdline: 'quiet pci=noaer,disable_acs_redir=0000:02:00.0;02:01.0',
    });
    expect(calc(after, 'a', 'b')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 4 });
    expect(after.device('sw0.dp0').acsCtrl).toBe(0x0001); // SV kept from firmware
    expect(after.log).toContain('pci 0000:02:00.0: Configured ACS to 0x0001');
  });

  test('an IOMMU enables ACS redirect on capable ports, so switch P2P goes through the host bridge', () => {
    const t = twoSwitches(iceLake, { iommu: true });
    expect(t.device('sw0.dp0').acsCtrl).toBe(0x001d); // SV | RR | CR | UF
    expect(t.device('sw0').acsCap).toBe(false); // upstream ports have no ACS by default
    expect(calc(t, 'a', 'b')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
    const fixed = twoSwitches(iceLake, { iommu: true, cmdline: 'pci=disable_acs_redir=pci:1000:c030' });
    expect(calc(fixed, 'a', 'b').mapType).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
  });

  test('non-whitelisted host bridge (Broadwell 8086:6f00): NOT_SUPPORTED, distance -1, and why', () => {
    const t = twoSwitches({ generation: 'broadwell' });
    expect(calc(t, 'a', 'b').mapType).toBe(PCI_P2PDMA_MAP_BUS_ADDR); // a shared switch needs no host bridge
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), t.device('c'), true, log)).toBe(-1);
    expect(log).toEqual([
      'pci 0000:08:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:03:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
    expect(pciP2pdmaDistance(t.device('a'), t.device('c'), false)).toBe(-1);
  });

  test('ACS redirect on a non-whitelisted host bridge also prints the whitelist line (warn = acs_redirects)', () => {
    const t = twoSwitches({ generation: 'broadwell' }, { sw0: { downstreamAcs: { ctrl: ['RR'] } } });
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), t.device('b'), true, log)).toBe(-1);
    expect(log).toEqual([
      'pci 0000:04:00.0: ACS redirect is set between the client and provider (0000:03:00.0)',
      'pci 0000:04:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
      'pci 0000:00:00.0: Host bridge not in P2PDMA whitelist: 8086:6f00',
      'pci 0000:04:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:03:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
    expect(calcMapTypeAndDist(t.device('a'), t.device('b'), false).mapType).toBe(
      PCI_P2PDMA_MAP_NOT_SUPPORTED,
    );
  });

  test('Intel Xeon E5 v3 (8086:2f00, REQ_SAME_HOST_BRIDGE): allowed behind one host bridge, refused across two', () => {
    const t = twoHostBridges({ generation: 'haswell' });
    expect(calc(t, 'x', 'y')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
    expect(calc(t, 'x', 'z').mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(pciP2pdmaDistance(t.device('x'), t.device('z'), false)).toBe(-1);
  });

  test('Skylake-E: a whitelisted root port at 00.0 stands in for a missing host-bridge function', () => {
    const t = twoHostBridges({ generation: 'skylake' }, { hostBridgeFunction: false });
    const root = pciHostBridgeDev(t.hostBridge('hb1'))!;
    expect([root.name, root.role, root.device]).toEqual(['0000:03:00.0', 'root-port', 0x2030]);
    expect(calc(t, 'x', 'z').mapType).toBe(PCI_P2PDMA_MAP_THRU_HOST_BRIDGE);
  });

  test('a root bus whose first device is neither 00.0 nor a root port is not whitelisted', () => {
    const t = buildTopology({
      name: 'rciep-first',
      cpu: { generation: 'skylake' },
      sockets: [{ id: 'cpu0' }],
      hostBridges: [{ id: 'hb0', socket: 'cpu0', hostBridgeFunction: false }],
      rootPorts: [
        { id: 'rp0', hostBridge: 'hb0', link: g4, slot: 2, device: 0x2030 },
        { id: 'rp1', hostBridge: 'hb0', link: g4, slot: 3, device: 0x2030 },
      ],
      endpoints: [
        { id: 'dsa', kind: 'other', parent: 'hb0', slot: 1 },
        { id: 'x', kind: 'other', parent: 'rp0', link: g4 },
        { id: 'y', kind: 'other', parent: 'rp1', link: g4 },
      ],
    });
    expect(pciHostBridgeDev(t.hostBridge('hb0'))).toBeNull();
    expect(calc(t, 'x', 'y').mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
  });

  test('AMD Zen (family 0x17 and later) passes without a whitelist; pre-Zen does not', () => {
    for (const generation of ['zen1', 'zen2', 'zen3', 'zen4', 'zen5'] as const) {
      const t = twoHostBridges({ generation });
      expect(cpuSupportsP2pdma(t.cpu)).toBe(true);
      expect(calc(t, 'x', 'z')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
    }
    const old = twoHostBridges({ generation: 'pre-zen' });
    expect(old.cpu.family).toBe(0x15);
    expect(calc(old, 'x', 'z').mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    // The check is the family number, not the generation's name.
    expect(calc(twoHostBridges({ generation: 'zen2', family: 0x16 }), 'x', 'z').mapType).toBe(
      PCI_P2PDMA_MAP_NOT_SUPPORTED,
    );
  });

  test('AMD Zen passes even with ACS redirect, and the whitelist is never consulted', () => {
    const t = twoSwitches({ generation: 'zen3' }, { sw0: { downstreamAcs: { ctrl: ['RR'] } } });
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), t.device('b'), true, log)).toBe(4);
    expect(log).toHaveLength(2);
    expect(log.join('\n')).not.toContain('whitelist');
  });

  test('arm64 and Intel client parts are not allowed through the host bridge', () => {
    expect(calc(twoHostBridges({ generation: 'arm' }), 'x', 'y').mapType).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(calc(twoHostBridges({ generation: 'intel-client' }), 'x', 'y').mapType).toBe(
      PCI_P2PDMA_MAP_NOT_SUPPORTED,
    );
  });

  test('VM: the virtual root complex (q35 8086:29c0) is not whitelisted, so P2P fails', () => {
    const t = topologyPreset('vm');
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('accel0'), t.device('nic0'), true, log)).toBe(-1);
    // No ACS redirect on the path, so the kernel does not print the whitelist line.
    expect(log).toEqual([
      'pci 0000:02:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:01:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
    // On an AMD host the guest sees an AMD Zen CPU and passes the CPU check.
    const amd = buildTopology({ ...t.spec, cpu: { generation: 'zen4' } });
    expect(pciP2pdmaDistance(amd.device('accel0'), amd.device('nic0'), false)).toBe(4);
  });

  test('the other presets let the NIC reach the accelerator', () => {
    const ws = topologyPreset('workstation');
    expect(calc(ws, 'accel0', 'nic0')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 4 });
    const hls = topologyPreset('gaudi-hls');
    expect(calc(hls, 'accel3', 'nic3')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 4 });
    expect(calc(hls, 'accel0', 'nic7')).toEqual({ mapType: PCI_P2PDMA_MAP_THRU_HOST_BRIDGE, distance: 8 });
    const dgx = topologyPreset('dgx-like');
    expect(calc(dgx, 'gpu0', 'nic1')).toEqual({ mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: 4 });
  });

  test('a client that is not a PCI device: -1, "not a PCI device"; a child of a PCI function uses that function', () => {
    const t = twoSwitches(iceLake);
    const vgem: Device = { name: 'vgem', parent: null, driverString: 'faux_driver' };
    const log: string[] = [];
    expect(pciP2pdmaDistance(t.device('a'), vgem, true, log)).toBe(-1);
    expect(log).toEqual(['faux_driver vgem: cannot be used for peer-to-peer DMA as it is not a PCI device']);
    const ibdev: Device = { name: 'mlx5_0', parent: t.device('b') };
    expect(pciP2pdmaDistance(t.device('a'), ibdev, false)).toBe(4);
  });

  test('distance_many: no clients is -1; distances add up; verbose reports every failing client', () => {
    const t = twoSwitches({ generation: 'broadwell' });
    const a = t.device('a');
    expect(pciP2pdmaDistanceMany(a, [], true)).toBe(-1);
    expect(pciP2pdmaDistanceMany(a, [t.device('a'), t.device('b'), t.device('b')], false)).toBe(8);
    const quiet: string[] = [];
    expect(pciP2pdmaDistanceMany(a, [t.device('c'), t.device('c'), t.device('b')], false, quiet)).toBe(-1);
    expect(quiet).toEqual([]);
    const loud: string[] = [];
    expect(pciP2pdmaDistanceMany(a, [t.device('c'), t.device('c'), t.device('b')], true, loud)).toBe(-1);
    expect(loud).toHaveLength(2);
  });

  test('map types are cached per provider once it has p2pdma state (pci_p2pdma_map_type)', () => {
    const t = twoSwitches({ generation: 'broadwell' });
    const a = t.device('a');
    expect(pciP2pdmaMapType(a, t.device('b'))).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED); // no p2pdma state yet
    const state = pciP2pdmaSetup(a);
    expect(state.mapTypes.get(mapTypesIdx(t.device('b'))) ?? PCI_P2PDMA_MAP_UNKNOWN).toBe(
      PCI_P2PDMA_MAP_UNKNOWN,
    );
    expect(pciP2pdmaMapType(a, t.device('b'))).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
    expect(state.mapTypes.get(mapTypesIdx(t.device('b')))).toBe(PCI_P2PDMA_MAP_BUS_ADDR);
    expect(mapTypesIdx(t.device('b'))).toBe(0x0000_0400);
    // The computation for an uncached client is verbose, as in the kernel.
    expect(pciP2pdmaMapType(a, t.device('c'))).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
    expect(t.log).toHaveLength(1);
    expect(pciP2pdmaMapType(a, { name: 'vgem', parent: null })).toBe(PCI_P2PDMA_MAP_NOT_SUPPORTED);
  });

  test('the quiet classifier agrees with the kernel computation and logs nothing', () => {
    const t = twoSwitches({ generation: 'broadwell' }, { sw0: { downstreamAcs: { ctrl: ['RR'] } } });
    for (const [p, c] of [
      ['a', 'b'],
      ['a', 'c'],
      ['f0', 'f1'],
      ['a', 'a'],
    ]) {
      const quiet = pciP2pdmaClassify(t.device(p), t.device(c));
      expect(quiet).toEqual(calcMapTypeAndDist(t.device(p), t.device(c), false));
    }
    const fresh = twoSwitches({ generation: 'broadwell' }, { sw0: { downstreamAcs: { ctrl: ['RR'] } } });
    pciP2pdmaClassify(fresh.device('a'), fresh.device('b'));
    expect(fresh.log).toEqual([]);
  });
});
