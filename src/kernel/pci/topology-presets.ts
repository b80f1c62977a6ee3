/**
 * Ready-made topologies (issue 5): a workstation, a Gaudi HLS-like server, a DGX-like
 * server, and a virtual machine whose virtual root complex is not on the p2pdma
 * whitelist (so peer-to-peer fails there, as Jason Gunthorpe noted on the habanalabs
 * dma-buf series).
 *
 * Each preset is a plain `TopologySpec`: `presetSpec` hands out a fresh copy to edit,
 * `topologyPreset` builds it, with top-level overrides (parameters, IOMMU, command
 * line). Ids that the p2pdma whitelist reads come from drivers/pci/p2pdma.c; device ids
 * of endpoints are the real parts' where known (Gaudi2 0x1da3:0x1020 from
 * drivers/accel/habanalabs/common/habanalabs_drv.c, Gaudi2 BAR layout from
 * drivers/accel/habanalabs/include/gaudi2/gaudi2.h) and are otherwise for display.
 */
import type { BarSpec, EndpointSpec, LinkSpec, RootPortSpec, SwitchSpec, TopologySpec } from './topology.ts';
import { buildTopology, PCI_VENDOR, type Topology, TopologyError } from './topology.ts';
import type { TransferParamsOverride } from './transfer-params.ts';

/** The preset names. */
export type PresetName =
  | 'workstation'
  | 'gaudi-hls'
  | 'gaudi-hls-gen5'
  | 'dgx-like'
  | 'vm'
  | 'gpu-workstation';

/** Every preset, in listing order. */
export const PRESET_NAMES: readonly PresetName[] = [
  'workstation',
  'gaudi-hls',
  'gaudi-hls-gen5',
  'dgx-like',
  'vm',
  'gpu-workstation',
];

const GIB = 2 ** 30;
const MIB = 2 ** 20;
const gen4x16: LinkSpec = { gen: 4, width: 16 };
const gen5x16: LinkSpec = { gen: 5, width: 16 };

/** Gaudi2 BARs: SRAM/CFG (BAR 0, 256 MiB), MSI-X (BAR 2, 16 KiB), DRAM (BAR 4, covering the 96 GB of HBM). */
const GAUDI2_BARS: BarSpec[] = [
  { index: 0, size: 256 * MIB, prefetchable: false },
  { index: 2, size: 16 * 1024, prefetchable: false },
  { index: 4, size: 128 * GIB },
];
const NIC_BARS: BarSpec[] = [{ index: 0, size: 32 * MIB }];
const GPU_BARS: BarSpec[] = [
  { index: 0, size: 64 * MIB, prefetchable: false },
  { index: 2, size: 128 * GIB },
];

function gaudi2(id: string, parent: string): EndpointSpec {
  return {
    id,
    kind: 'accelerator',
    parent,
    link: gen4x16,
    mps: 256,
    bars: GAUDI2_BARS.map((b) => ({ ...b })),
  };
}

function connectx6(id: string, parent: string): EndpointSpec {
  return {
    id,
    kind: 'nic',
    parent,
    link: gen4x16,
    mps: 512,
    vendor: PCI_VENDOR.MELLANOX,
    device: 0x101d,
    bars: NIC_BARS.map((b) => ({ ...b })),
  };
}

/** One AMD Zen 4 socket with one Gen5 x16 root port of the CPU per endpoint (`rp0`, `rp1`, ...). */
function zen4Workstation(
  name: string,
  description: string,
  endpoints: ((parent: string) => EndpointSpec)[],
): TopologySpec {
  return {
    name,
    description,
    cpu: { generation: 'zen4' },
    sockets: [{ id: 'cpu0' }],
    hostBridges: [{ id: 'hb0', socket: 'cpu0' }],
    rootPorts: endpoints.map((_, i) => ({ id: `rp${i}`, hostBridge: 'hb0', link: gen5x16 })),
    endpoints: endpoints.map((ep, i) => ep(`rp${i}`)),
  };
}

function workstation(): TopologySpec {
  return zen4Workstation(
    'workstation',
    'one AMD Zen 4 socket; a Gaudi2-like accelerator and a ConnectX-6 Dx NIC on two root ports of the CPU',
    [(rp) => gaudi2('accel0', rp), (rp) => connectx6('nic0', rp)],
  );
}

function gaudiHls(): TopologySpec {
  const hostBridges = [];
  const rootPorts: RootPortSpec[] = [];
  const switches: SwitchSpec[] = [];
  const endpoints: EndpointSpec[] = [];
  for (let i = 0; i < 8; i++) {
    const socket = i < 4 ? 'cpu0' : 'cpu1';
    hostBridges.push({ id: `hb${i}`, socket });
    rootPorts.push({ id: `rp${i}`, hostBridge: `hb${i}`, link: gen4x16 });
    switches.push({
      id: `sw${i}`,
      parent: `rp${i}`,
      link: gen4x16,
      downstreamPorts: 2,
      vendor: PCI_VENDOR.LSI,
      device: 0xc010,
    });
    endpoints.push(gaudi2(`accel${i}`, `sw${i}.dp0`), connectx6(`nic${i}`, `sw${i}.dp1`));
  }
  return {
    name: 'gaudi-hls',
    description:
      'two Ice Lake-SP sockets; 8 Gaudi2-like accelerators, each paired with a ConnectX-6 Dx NIC under its own Gen4 switch, 4 per socket',
    cpu: { generation: 'ice-lake' },
    sockets: [{ id: 'cpu0' }, { id: 'cpu1' }],
    hostBridges,
    rootPorts,
    switches,
    endpoints,
  };
}

/**
 * gaudi-hls with every link at PCIe Gen5 x16 (Gaudi3-like accelerators, Gen5 switches and
 * ConnectX-7 NICs on Sapphire Rapids): a Gen5 x16 NIC can carry a 400 Gb/s port, which a
 * Gen4 x16 ConnectX-6 cannot. The accelerators keep Gaudi2's ids and BARs, because the
 * 6.12 habanalabs driver has no Gaudi3 support.
 */
function gaudiHlsGen5(): TopologySpec {
  const spec = gaudiHls();
  spec.name = 'gaudi-hls-gen5';
  spec.description =
    'two Sapphire Rapids sockets; 8 Gen5 Gaudi3-like accelerators, each paired with a ConnectX-7 NIC under its own Gen5 switch, 4 per socket';
  spec.cpu = { generation: 'sapphire-rapids' };
  for (const rp of spec.rootPorts ?? []) rp.link = gen5x16;
  for (const sw of spec.switches ?? []) sw.link = gen5x16;
  for (const ep of spec.endpoints) {
    ep.link = gen5x16;
    if (ep.kind === 'nic') ep.device = 0x1021; // ConnectX-7
  }
  return spec;
}

function dgxLike(): TopologySpec {
  const hostBridges = [];
  const rootPorts: RootPortSpec[] = [];
  const switches: SwitchSpec[] = [];
  const endpoints: EndpointSpec[] = [];
  for (let s = 0; s < 4; s++) {
    const socket = s < 2 ? 'cpu0' : 'cpu1';
    hostBridges.push({ id: `hb${s}`, socket });
    rootPorts.push({ id: `rp${s}`, hostBridge: `hb${s}`, link: gen5x16 });
    switches.push({ id: `sw${s}`, parent: `rp${s}`, link: gen5x16, downstreamPorts: 4 });
    for (let k = 0; k < 2; k++) {
      const n = s * 2 + k;
      endpoints.push({
        id: `gpu${n}`,
        kind: 'gpu',
        parent: `sw${s}.dp${k * 2}`,
        link: gen5x16,
        mps: 256,
        bars: GPU_BARS.map((b) => ({ ...b })),
      });
      endpoints.push({
        id: `nic${n}`,
        kind: 'nic',
        parent: `sw${s}.dp${k * 2 + 1}`,
        link: gen5x16,
        mps: 512,
        vendor: PCI_VENDOR.MELLANOX,
        device: 0x1021, // ConnectX-7
        bars: NIC_BARS.map((b) => ({ ...b })),
      });
    }
  }
  return {
    name: 'dgx-like',
    description:
      'two Sapphire Rapids sockets; 4 Gen5 switches, each with 2 GPUs and 2 ConnectX-7 NICs, 2 switches per socket',
    cpu: { generation: 'sapphire-rapids' },
    sockets: [{ id: 'cpu0' }, { id: 'cpu1' }],
    hostBridges,
    rootPorts,
    switches,
    endpoints,
  };
}

function vm(): TopologySpec {
  // QEMU q35: the host bridge at 00.0 is 8086:29c0; each passed-through device sits on a
  // pcie-root-port (1b36:000c) that supports a 128-byte max payload.
  const qemuRootPort = (id: string): RootPortSpec => ({
    id,
    hostBridge: 'hb0',
    link: gen4x16,
    vendor: PCI_VENDOR.REDHAT,
    device: 0x000c,
    mps: 128,
  });
  return {
    name: 'vm',
    description:
      'a QEMU q35 guest on a Sapphire Rapids host: the accelerator and NIC are passed through to two virtual root ports; the virtual host bridge is not whitelisted',
    cpu: { generation: 'sapphire-rapids' },
    sockets: [{ id: 'cpu0' }],
    hostBridges: [{ id: 'hb0', socket: 'cpu0', vendor: PCI_VENDOR.INTEL, device: 0x29c0 }],
    rootPorts: [qemuRootPort('rp0'), qemuRootPort('rp1')],
    endpoints: [gaudi2('accel0', 'rp0'), connectx6('nic0', 'rp1')],
  };
}

/**
 * MI210-class BARs (vendor 0x1002, device 0x740f): BAR 0 the VRAM aperture, a small
 * 256 MiB CPU-visible window without resizable BAR (edit its size for a resizable-BAR
 * system), BAR 2 the doorbells, BAR 5 the registers.
 */
const AMD_GPU_BARS: BarSpec[] = [
  { index: 0, size: 256 * MIB },
  { index: 2, size: 2 * MIB },
  { index: 5, size: 1 * MIB, prefetchable: false },
];

function gpuWorkstation(): TopologySpec {
  return zen4Workstation(
    'gpu-workstation',
    'one AMD Zen 4 socket; an MI210-like GPU (amdgpu, small 256 MiB BAR), a Gaudi2-like accelerator and a ConnectX-6 Dx NIC on three root ports of the CPU',
    [
      (rp) => ({
        id: 'gpu0',
        kind: 'gpu',
        parent: rp,
        link: gen4x16,
        mps: 256,
        vendor: 0x1002,
        device: 0x740f,
        bars: AMD_GPU_BARS.map((b) => ({ ...b })),
      }),
      (rp) => gaudi2('accel0', rp),
      (rp) => connectx6('nic0', rp),
    ],
  );
}

const PRESETS: Record<PresetName, () => TopologySpec> = {
  workstation,
  'gaudi-hls': gaudiHls,
  'gaudi-hls-gen5': gaudiHlsGen5,
  'dgx-like': dgxLike,
  vm,
  'gpu-workstation': gpuWorkstation,
};

/** A fresh, editable copy of a preset's spec. */
export function presetSpec(name: PresetName): TopologySpec {
  const make = PRESETS[name];
  if (make === undefined) {
    throw new Error(`no topology preset "${String(name)}" (presets: ${PRESET_NAMES.join(', ')})`);
  }
  return make();
}

/** Top-level overrides of a preset. */
export interface PresetOverrides {
  /** Transfer-model parameter overrides. */
  params?: TransferParamsOverride;
  /** An IOMMU asks for ACS. */
  iommu?: boolean;
  /** Kernel command line. */
  cmdline?: string;
  /**
   * On-device memory per endpoint id, bytes (`EndpointSpec.memory`): `{gpu0: 64 MiB}`
   * gives the preset's GPU 64 MiB of VRAM. An id the preset does not have is a
   * `TopologyError` naming it.
   */
  memory?: Record<string, number>;
}

/** Builds a preset, with overrides. */
export function topologyPreset(name: PresetName, overrides: PresetOverrides = {}): Topology {
  const spec = presetSpec(name);
  if (overrides.params !== undefined) spec.params = overrides.params;
  if (overrides.iommu !== undefined) spec.iommu = overrides.iommu;
  if (overrides.cmdline !== undefined) spec.cmdline = overrides.cmdline;
  const problems: string[] = [];
  for (const [id, bytes] of Object.entries(overrides.memory ?? {})) {
    const ep = spec.endpoints.find((e) => e.id === id);
    if (ep === undefined) {
      problems.push(
        `memory: preset "${name}" has no endpoint "${id}" (its endpoints: ${spec.endpoints.map((e) => e.id).join(', ')})`,
      );
    } else {
      ep.memory = bytes;
    }
  }
  if (problems.length > 0) throw new TopologyError(spec.name, problems);
  return buildTopology(spec);
}
