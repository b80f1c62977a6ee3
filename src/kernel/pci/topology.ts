/**
 * A machine's PCIe topology as data, and the enumerated tree built from it: CPU
 * sockets joined by a socket link (UPI/xGMI), host bridges (one root complex each),
 * root ports, PCIe switches (an upstream port and downstream ports, each with an ACS
 * capability and control word), and endpoints (accelerators, NICs, GPUs, NVMe) with
 * their link generation and width, max payload size and BARs.
 *
 * `TopologySpec` is plain data with only strings, numbers, booleans, arrays and
 * records, so a YAML file can say the same thing. Elements are flat lists that name
 * their parent by id; `buildTopology` checks every reference and reports all problems
 * at once, naming the element. It then enumerates the tree the way the PCI core does:
 * bus numbers depth first from each host bridge's root bus, devfn order on each bus,
 * links trained to the lower generation and width of their two ends, max payload size
 * set to the smallest supported value up to the root port, ACS control as firmware left
 * it plus what the kernel enables when an IOMMU asks for ACS (pci_request_acs ->
 * pci_std_enable_acs: SV, RR, CR, UF where supported) minus what `pci=disable_acs_redir=`
 * on the command line clears (RR, CR, EC).
 *
 * Kernel sources: drivers/pci/probe.c (depth-first bus numbering, MPS configuration),
 * drivers/pci/pci.c (pci_enable_acs, pci_std_enable_acs, __pci_config_acs,
 * pci_dev_str_match), include/uapi/linux/pci_regs.h (ACS bits).
 */
import {
  ACS_FLAGS,
  type AcsFlag,
  type EndpointKind,
  hex,
  PCI_ACS_CR,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_UF,
  PCI_DEVFN,
  PciBus,
  PciDev,
  PciHostBridge,
  type PciRole,
} from './pci.ts';
import {
  type RootComplexP2p,
  resolveTransferParams,
  type TransferParams,
  type TransferParamsOverride,
} from './transfer-params.ts';

/** A PCIe generation. */
export type PcieGen = 1 | 2 | 3 | 4 | 5 | 6;

/** CPU vendors the model tells apart. */
export type CpuVendor = 'intel' | 'amd' | 'arm' | 'other';

/**
 * CPU generations the model knows defaults for (p2pdma identity, root-complex P2P
 * behaviour, socket-link bandwidth).
 */
export type CpuGeneration =
  | 'haswell'
  | 'broadwell'
  | 'skylake'
  | 'cascade-lake'
  | 'ice-lake'
  | 'sapphire-rapids'
  | 'emerald-rapids'
  | 'intel-client'
  | 'pre-zen'
  | 'zen1'
  | 'zen2'
  | 'zen3'
  | 'zen4'
  | 'zen5'
  | 'arm'
  | 'other';

/** A link's capability: generation and lane count. */
export interface LinkSpec {
  /** PCIe generation, 1-6. */
  gen: PcieGen;
  /** Lanes: 1, 2, 4, 8, 12, 16 or 32. */
  width: number;
}

/** An ACS capability: which controls exist and which firmware left enabled. */
export interface AcsSpec {
  /** Capability bits (default SV, RR, CR, UF). */
  cap?: AcsFlag[];
  /** Control bits as firmware left them (default none). */
  ctrl?: AcsFlag[];
}

/** The CPU of every socket. */
export interface CpuSpec {
  /** The generation; vendor, family and default ids follow from it. */
  generation: CpuGeneration;
  /** Overrides the generation's vendor. */
  vendor?: CpuVendor;
  /** Overrides the x86 family (`c->x86`): Intel 6, AMD 0x15 pre-Zen, 0x17 Zen1/2, 0x19 Zen3/4, 0x1a Zen5. */
  family?: number;
  /** Architecture (default from the generation: x86_64, or arm64 for `arm`). */
  arch?: 'x86_64' | 'arm64';
  /** A display name. */
  name?: string;
}

/** A CPU socket (NUMA node) with its memory. */
export interface SocketSpec {
  /** Unique id; also names the socket's host memory as a transfer end. */
  id: string;
  /** DMA bandwidth of this socket's memory, GB/s (default `params.memoryGBps`). */
  memoryGBps?: number | null;
}

/** The link between every pair of sockets (UPI, xGMI). */
export interface SocketLinkSpec {
  /** A display name (default `upi`/`qpi`/`xgmi` from the CPU). */
  kind?: string;
  /** Per-direction capacity, GB/s (default by CPU generation). */
  capacityGBps?: number;
  /** Latency, ns (default `params.socketLinkLatencyNs`). */
  latencyNs?: number;
}

/** A host bridge: one root complex and its root bus. */
export interface HostBridgeSpec {
  /** Unique id. */
  id: string;
  /** The socket whose root complex it is. */
  socket: string;
  /** Vendor id of the host-bridge function at 00.0 (default by CPU generation). */
  vendor?: number;
  /** Device id of the host-bridge function at 00.0 (default by CPU generation). */
  device?: number;
  /** Whether a host-bridge function sits at 00.0 of the root bus (default true). */
  hostBridgeFunction?: boolean;
  /** PCI domain (default 0). */
  domain?: number;
  /** Root bus number (default: the next free one in the domain). */
  bus?: number;
  /** Root-complex P2P behaviour, overriding the CPU generation's. */
  p2p?: Partial<RootComplexP2p> & {
    /** Capacity shared by all P2P traffic through this root complex, GB/s (default none). */
    aggregateGBps?: number | null;
  };
  /** Base bus address of the 64-bit MMIO window that BARs below this host bridge get. */
  mmioBase?: number;
}

/** A root port on a host bridge's root bus. */
export interface RootPortSpec {
  /** Unique id. */
  id: string;
  /** The host bridge it belongs to. */
  hostBridge: string;
  /** Link capability. */
  link: LinkSpec;
  /** Device number on the root bus (default: the next free one). */
  slot?: number;
  /** Vendor id (default the CPU vendor's). */
  vendor?: number;
  /** Device id (default by CPU generation). */
  device?: number;
  /** ACS capability; null for none (default SV, RR, CR, UF capable, nothing enabled). */
  acs?: AcsSpec | null;
  /** Max payload size supported, bytes (default `params.mps.rootPort`). */
  mps?: number;
}

/** A switch downstream port. */
export interface DownstreamPortSpec {
  /** Unique id (default `<switch>.dp<i>`). */
  id?: string;
  /** ACS capability (default the switch's `downstreamAcs`). */
  acs?: AcsSpec | null;
  /** Link capability (default the switch's). */
  link?: LinkSpec;
}

/** A PCIe switch: an upstream port and its downstream ports. */
export interface SwitchSpec {
  /** Unique id (also the upstream port's id). */
  id: string;
  /** The root port or downstream port it is attached to. */
  parent: string;
  /** Link capability of every port (unless a downstream port says otherwise). */
  link: LinkSpec;
  /** Downstream ports: a count, or one entry per port. */
  downstreamPorts: number | DownstreamPortSpec[];
  /** Vendor id (default Broadcom/PLX 0x1000). */
  vendor?: number;
  /** Device id (default 0xc030, a PEX890xx). */
  device?: number;
  /** Max payload size supported, bytes (default `params.mps.switchPort`). */
  mps?: number;
  /** Port-to-port latency, ns (default `params.switchLatencyNs`). */
  latencyNs?: number;
  /** ACS of the upstream port (default none). */
  upstreamAcs?: AcsSpec | null;
  /** ACS of every downstream port (default SV, RR, CR, UF capable, nothing enabled). */
  downstreamAcs?: AcsSpec | null;
}

/** A BAR of an endpoint. */
export interface BarSpec {
  /** BAR index 0-5. */
  index: number;
  /** Size in bytes, a power of two. */
  size: number;
  /** Prefetchable (default true). */
  prefetchable?: boolean;
}

/** An endpoint function. Endpoints naming the same port are functions 0, 1, ... of one device. */
export interface EndpointSpec {
  /** Unique id. */
  id: string;
  /** What it is. */
  kind: EndpointKind;
  /** A root port, a switch downstream port, or a host bridge (a root complex integrated endpoint). */
  parent: string;
  /** Link capability (required below a port; ignored on a root bus). */
  link?: LinkSpec;
  /** Vendor id (default by kind). */
  vendor?: number;
  /** Device id (default by kind). */
  device?: number;
  /** Max payload size supported, bytes (default `params.mps.endpoint`). */
  mps?: number;
  /** Device number, for an endpoint on a root bus (default: the next free one). */
  slot?: number;
  /** ACS capability (default none). */
  acs?: AcsSpec | null;
  /** Memory BARs. */
  bars?: BarSpec[];
  /**
   * On-device memory in bytes (a GPU's VRAM, an accelerator's HBM); default: the driver's
   * own (amdgpu `AmdgpuOptions.vramSize`, habanalabs 96 GiB). A positive multiple of
   * 4096. Drivers read it at probe from `PciDev.memory`; a small value keeps evictions
   * and copies cheap in scenarios (`{gpu0: 64 MiB}` makes a 16 MiB BO evictable). Note
   * habanalabs keeps the first DRAM page (768 MiB) for its driver, so an accelerator
   * needs well over 768 MiB for user allocations.
   */
  memory?: number;
}

/** A whole topology. */
export interface TopologySpec {
  /** Name (presets use their preset name). */
  name: string;
  /** A sentence for listings. */
  description?: string;
  /** The CPU. */
  cpu: CpuSpec;
  /** Sockets, at least one. */
  sockets: SocketSpec[];
  /** The link joining every pair of sockets. */
  socketLink?: SocketLinkSpec;
  /** Host bridges, at least one. */
  hostBridges: HostBridgeSpec[];
  /** Root ports. */
  rootPorts?: RootPortSpec[];
  /** Switches. */
  switches?: SwitchSpec[];
  /** Endpoints. */
  endpoints: EndpointSpec[];
  /** An IOMMU asks for ACS (pci_request_acs): ports with the capability get SV, RR, CR, UF. */
  iommu?: boolean;
  /** Kernel command line; `pci=disable_acs_redir=<bdf>[;<bdf>...]` is honoured. */
  cmdline?: string;
  /** Transfer-model parameter overrides. */
  params?: TransferParamsOverride;
}

/** The CPU as resolved from its spec. */
export interface Cpu {
  /** Generation. */
  readonly generation: CpuGeneration;
  /** Vendor. */
  readonly vendor: CpuVendor;
  /** x86 family (`cpu_data(0).x86`); 0 on arm64. */
  readonly family: number;
  /** Architecture. */
  readonly arch: 'x86_64' | 'arm64';
  /** Display name. */
  readonly name: string;
}

/** A CPU socket: a NUMA node with its memory, and a transfer end meaning that memory. */
export class Socket {
  /** Host bridges of this socket. */
  readonly hostBridges: PciHostBridge[] = [];

  /** Created by the builder. */
  constructor(
    /** Spec id. */
    readonly id: string,
    /** NUMA node number (order in the spec). */
    readonly node: number,
    /** Memory DMA bandwidth, GB/s; null for no limit. */
    readonly memoryGBps: number | null,
  ) {}
}

/** One direction-independent link between two sockets. */
export class SocketLink {
  /** Created by the builder. */
  constructor(
    /** Lower-numbered socket. */
    readonly a: Socket,
    /** Higher-numbered socket. */
    readonly b: Socket,
    /** Kind for display (upi, xgmi). */
    readonly kind: string,
    /** Per-direction capacity, GB/s. */
    readonly capacityGBps: number,
    /** Latency, ns. */
    readonly latencyNs: number,
  ) {}
}

/** A trained PCIe link between a downstream-facing port and the device below it. */
export class PcieLink {
  /** Created by the builder. */
  constructor(
    /** The root port or switch downstream port. */
    readonly port: PciDev,
    /** Function 0 of the device below (an endpoint or a switch upstream port). */
    readonly child: PciDev,
    /** Trained generation: the lower of the two ends. */
    readonly gen: PcieGen,
    /** Trained width: the lower of the two ends. */
    readonly width: number,
  ) {}

  /** `0000:00:01.0 <-> 0000:01:00.0 Gen4 x16`. */
  get label(): string {
    return `${this.port.name} <-> ${this.child.name} Gen${this.gen} x${this.width}`;
  }
}

/** A PCIe switch. */
export class PcieSwitch {
  /** Downstream ports in order. */
  readonly downstream: PciDev[] = [];

  /** Created by the builder. */
  constructor(
    /** Spec id. */
    readonly id: string,
    /** The upstream port. */
    readonly upstream: PciDev,
    /** Port-to-port latency, ns. */
    readonly latencyNs: number,
  ) {}
}

/** `64MiB`, `8GiB`, or bytes: an endpoint's memory in `describe()`. */
function memoryText(n: number): string {
  if (n % 2 ** 30 === 0) return `${n / 2 ** 30}GiB`;
  if (n % 2 ** 20 === 0) return `${n / 2 ** 20}MiB`;
  return `${n}B`;
}

/** Thrown by `buildTopology` with every problem found in a spec. */
export class TopologyError extends Error {
  /** Created with the list of problems. */
  constructor(
    /** Topology name. */
    readonly topology: string,
    /** One sentence per problem, naming the element. */
    readonly problems: string[],
  ) {
    super(`topology "${topology}" is invalid:\n  ${problems.join('\n  ')}`);
    this.name = 'TopologyError';
  }
}

/** Vendor ids used by presets and defaults. */
export const PCI_VENDOR = {
  /** Intel. */
  INTEL: 0x8086,
  /** AMD. */
  AMD: 0x1022,
  /** Habana Labs. */
  HABANALABS: 0x1da3,
  /** Mellanox (NVIDIA networking). */
  MELLANOX: 0x15b3,
  /** NVIDIA. */
  NVIDIA: 0x10de,
  /** Broadcom / LSI (PEX switches). */
  LSI: 0x1000,
  /** Red Hat (QEMU devices). */
  REDHAT: 0x1b36,
  /** Samsung (NVMe). */
  SAMSUNG: 0x144d,
  /** Arm. */
  ARM: 0x13b5,
} as const;

interface CpuDefaults {
  vendor: CpuVendor;
  family: number;
  arch: 'x86_64' | 'arm64';
  name: string;
  hostBridge: number;
  rootPort: number;
  socketLink: string;
}

// The host-bridge ids that the p2pdma whitelist reads are the ones in
// drivers/pci/p2pdma.c (0x2f00 Haswell-EP, 0x2020/0x2030 Skylake-E, 0x09a2 Ice Lake
// and its successors' memory-map/VT-d function). Ids of parts that are not on the
// list only matter for display and are placeholders (0x0000) where unknown.
const CPUS: Record<CpuGeneration, CpuDefaults> = {
  haswell: intel('Xeon E5 v3 (Haswell-EP)', 0x2f00, 0x0000, 'qpi'),
  broadwell: intel('Xeon E5 v4 (Broadwell-EP)', 0x6f00, 0x0000, 'qpi'),
  skylake: intel('Xeon Scalable (Skylake-SP)', 0x2020, 0x2030, 'upi'),
  'cascade-lake': intel('Xeon Scalable 2nd gen (Cascade Lake)', 0x2020, 0x2030, 'upi'),
  'ice-lake': intel('Xeon Scalable 3rd gen (Ice Lake-SP)', 0x09a2, 0x0000, 'upi'),
  'sapphire-rapids': intel('Xeon Scalable 4th gen (Sapphire Rapids)', 0x09a2, 0x0000, 'upi'),
  'emerald-rapids': intel('Xeon Scalable 5th gen (Emerald Rapids)', 0x09a2, 0x0000, 'upi'),
  'intel-client': intel('Intel Core (client)', 0x0000, 0x0000, 'none'),
  'pre-zen': amd('AMD Opteron (pre-Zen)', 0x15, 0x0000),
  zen1: amd('AMD EPYC 7001 (Zen 1)', 0x17, 0x1450),
  zen2: amd('AMD EPYC 7002 (Zen 2)', 0x17, 0x1480),
  zen3: amd('AMD EPYC 7003 (Zen 3)', 0x19, 0x1480),
  zen4: amd('AMD EPYC 9004 (Zen 4)', 0x19, 0x14a4),
  zen5: amd('AMD EPYC 9005 (Zen 5)', 0x1a, 0x0000),
  arm: {
    vendor: 'arm',
    family: 0,
    arch: 'arm64',
    name: 'Arm server',
    hostBridge: 0x0000,
    rootPort: 0x0000,
    socketLink: 'ccix',
  },
  other: {
    vendor: 'other',
    family: 0,
    arch: 'x86_64',
    name: 'x86 (other)',
    hostBridge: 0x0000,
    rootPort: 0x0000,
    socketLink: 'other',
  },
};

function intel(name: string, hostBridge: number, rootPort: number, socketLink: string): CpuDefaults {
  return { vendor: 'intel', family: 6, arch: 'x86_64', name, hostBridge, rootPort, socketLink };
}

function amd(name: string, family: number, hostBridge: number): CpuDefaults {
  return { vendor: 'amd', family, arch: 'x86_64', name, hostBridge, rootPort: 0x0000, socketLink: 'xgmi' };
}

const VENDOR_IDS: Record<CpuVendor, number> = {
  intel: PCI_VENDOR.INTEL,
  amd: PCI_VENDOR.AMD,
  arm: PCI_VENDOR.ARM,
  other: 0x0000,
};

const ENDPOINT_IDS: Record<EndpointKind, [number, number]> = {
  accelerator: [PCI_VENDOR.HABANALABS, 0x1020], // Gaudi2 (PCI_IDS_GAUDI2, habanalabs_drv.c)
  nic: [PCI_VENDOR.MELLANOX, 0x101d], // ConnectX-6 Dx
  gpu: [PCI_VENDOR.NVIDIA, 0x2330], // H100 SXM5
  nvme: [PCI_VENDOR.SAMSUNG, 0xa80a], // PM9A3
  other: [0x0000, 0x0000],
};

/** Every CPU generation the model knows. */
export const CPU_GENERATIONS: readonly CpuGeneration[] = Object.keys(CPUS) as CpuGeneration[];

const DEFAULT_PORT_ACS: AcsSpec = { cap: ['SV', 'RR', 'CR', 'UF'], ctrl: [] };
const VALID_WIDTHS = new Set([1, 2, 4, 8, 12, 16, 32]);
const MAX_FUNCTIONS = 8;

/** The resolved root-complex P2P behaviour of one host bridge. */
export interface HostBridgeP2p extends RootComplexP2p {
  /** Capacity shared by all P2P traffic through it, GB/s; null for none. */
  aggregateGBps: number | null;
}

/** An enumerated topology. */
export class Topology {
  /** The CPU. */
  readonly cpu: Cpu;
  /** Transfer-model parameters (defaults with the spec's overrides). */
  readonly params: TransferParams;
  /** Sockets in spec order. */
  readonly sockets: Socket[] = [];
  /** One link per pair of sockets. */
  readonly socketLinks: SocketLink[] = [];
  /** Host bridges in spec order. */
  readonly hostBridges: PciHostBridge[] = [];
  /** Every PCI function in enumeration order. */
  readonly devices: PciDev[] = [];
  /** Endpoint functions in enumeration order. */
  readonly endpoints: PciDev[] = [];
  /** Switches in enumeration order. */
  readonly switches: PcieSwitch[] = [];
  /** Trained links in enumeration order. */
  readonly links: PcieLink[] = [];
  /** Kernel log lines from enumeration and p2pdma (`pci 0000:03:00.0: ...`). */
  readonly log: string[] = [];
  /** Whether an IOMMU asked for ACS. */
  readonly iommu: boolean;
  /** Called with every line added to `log`. */
  onLog: ((line: string) => void) | null = null;

  private readonly byId = new Map<string, PciDev | Socket | PciHostBridge>();
  private readonly hbP2p = new Map<PciHostBridge, HostBridgeP2p>();

  /** Use `buildTopology`. */
  constructor(
    /** The spec this topology was built from. */
    readonly spec: TopologySpec,
  ) {
    const g = CPUS[spec.cpu.generation];
    this.cpu = {
      generation: spec.cpu.generation,
      vendor: spec.cpu.vendor ?? g.vendor,
      family: spec.cpu.family ?? g.family,
      arch: spec.cpu.arch ?? g.arch,
      name: spec.cpu.name ?? g.name,
    };
    this.params = resolveTransferParams(spec.params);
    this.iommu = spec.iommu ?? false;
  }

  /** Topology name. */
  get name(): string {
    return this.spec.name;
  }

  /** The PCI function with spec id `id` (an endpoint, port or switch); throws if there is none. */
  device(id: string): PciDev {
    const d = this.byId.get(id);
    if (d instanceof PciDev) return d;
    throw new Error(`topology "${this.name}" has no PCI device "${id}"${this.suggest(id)}`);
  }

  /** The socket with spec id `id`; throws if there is none. */
  socket(id: string): Socket {
    const s = this.byId.get(id);
    if (s instanceof Socket) return s;
    throw new Error(`topology "${this.name}" has no socket "${id}"${this.suggest(id)}`);
  }

  /** The host bridge with spec id `id`; throws if there is none. */
  hostBridge(id: string): PciHostBridge {
    const h = this.byId.get(id);
    if (h instanceof PciHostBridge) return h;
    throw new Error(`topology "${this.name}" has no host bridge "${id}"${this.suggest(id)}`);
  }

  /** A transfer end by id: a PCI function, or a socket (meaning its memory). */
  node(id: string): PciDev | Socket {
    const n = this.byId.get(id);
    if (n instanceof PciDev || n instanceof Socket) return n;
    throw new Error(`topology "${this.name}" has no device or socket "${id}"${this.suggest(id)}`);
  }

  /** The PCI function named `bdf` (`0000:03:00.0`), if any. */
  byName(bdf: string): PciDev | undefined {
    return this.devices.find((d) => d.name === bdf);
  }

  /** Endpoints of one kind, in enumeration order. */
  endpointsOf(kind: EndpointKind): PciDev[] {
    return this.endpoints.filter((e) => e.kind === kind);
  }

  /** The link between two sockets, or null for the same socket. */
  socketLink(a: Socket, b: Socket): SocketLink | null {
    if (a === b) return null;
    return this.socketLinks.find((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a)) ?? null;
  }

  /** The root-complex P2P behaviour of a host bridge. */
  rootComplexP2p(hb: PciHostBridge): HostBridgeP2p {
    return this.hbP2p.get(hb)!;
  }

  /** Adds a kernel log line `<driver> <device>: <text>` (dev_warn/dev_info). */
  devLog(dev: { name: string; driverString?: string }, text: string): string {
    const drv = dev.driverString ?? '';
    const line = `${drv === '' ? '' : `${drv} `}${dev.name}: ${text}`;
    this.log.push(line);
    this.onLog?.(line);
    return line;
  }

  /** Adds a kernel log line without a device prefix (pr_info/pr_err). */
  prLog(text: string): string {
    this.log.push(text);
    this.onLog?.(text);
    return text;
  }

  /** An `lspci -tv`-like tree of the topology, one function per line. */
  describe(): string {
    const lines: string[] = [`${this.name}: ${this.cpu.name}, ${this.sockets.length} socket(s)`];
    const walk = (bus: PciBus, indent: string) => {
      for (const d of bus.devices) {
        const link = d.upLink ? ` Gen${d.upLink.gen} x${d.upLink.width}` : '';
        const acs = d.acsCap ? ` acs=${acsNames(d.acsCtrl) || '-'}` : '';
        const mem = d.memory === null ? '' : ` memory=${memoryText(d.memory)}`;
        lines.push(
          `${indent}${d.name} [${hex(d.vendor, 4)}:${hex(d.device, 4)}] ${d.role}${d.kind ? `/${d.kind}` : ''} ${d.id}${link}${d.role === 'host-bridge' ? '' : ` mps=${d.mps}`}${acs}${mem}`,
        );
        if (d.subordinate) walk(d.subordinate, `${indent}  `);
      }
    };
    for (const hb of this.hostBridges) {
      lines.push(`${hb.name} (${hb.id}, socket ${hb.socket.id})`);
      walk(hb.bus, '  ');
    }
    return lines.join('\n');
  }

  /** @internal Registers an element by id. */
  register(id: string, el: PciDev | Socket | PciHostBridge): void {
    this.byId.set(id, el);
  }

  /** @internal Records a host bridge's resolved P2P behaviour. */
  setRootComplexP2p(hb: PciHostBridge, p: HostBridgeP2p): void {
    this.hbP2p.set(hb, p);
  }

  private suggest(id: string): string {
    const ids = [...this.byId.keys()].filter((k) => k.startsWith(id.slice(0, 2)));
    return ids.length > 0 ? ` (ids starting alike: ${ids.slice(0, 8).join(', ')})` : '';
  }
}

/** The ACS bits of `ctrl` as names, `RR|CR`. */
export function acsNames(bits: number): string {
  return (Object.keys(ACS_FLAGS) as AcsFlag[]).filter((f) => bits & ACS_FLAGS[f]).join('|');
}

/** Builds and enumerates a topology; throws `TopologyError` listing every problem. */
export function buildTopology(spec: TopologySpec): Topology {
  return new Builder(spec).build();
}

// --------------------------------------------------------------------- builder

type PortRef =
  | { kind: 'root-port'; spec: RootPortSpec }
  | { kind: 'downstream'; spec: DownstreamPortSpec; sw: SwitchSpec; index: number }
  | { kind: 'host-bridge'; spec: HostBridgeSpec };

class Builder {
  private readonly problems: string[] = [];
  private readonly ids = new Map<string, string>();
  private readonly ports = new Map<string, PortRef>();
  private readonly childSwitch = new Map<string, SwitchSpec>();
  private readonly childEndpoints = new Map<string, EndpointSpec[]>();
  private readonly usedBuses = new Map<number, Set<number>>();
  private readonly nextBus = new Map<number, number>();
  private topo!: Topology;

  constructor(private readonly spec: TopologySpec) {}

  build(): Topology {
    this.validate();
    if (this.problems.length > 0) throw new TopologyError(this.spec?.name ?? '(unnamed)', this.problems);
    this.topo = new Topology(this.spec);
    this.enumerate();
    if (this.problems.length > 0) throw new TopologyError(this.spec.name, this.problems);
    return this.topo;
  }

  private problem(msg: string): void {
    this.problems.push(msg);
  }

  private claim(id: unknown, what: string): boolean {
    if (typeof id !== 'string' || id === '') {
      this.problem(`${what} has no id (a non-empty string is required)`);
      return false;
    }
    const prev = this.ids.get(id);
    if (prev !== undefined) {
      this.problem(`duplicate id "${id}": used by ${prev} and by ${what}`);
      return false;
    }
    this.ids.set(id, what);
    return true;
  }

  private checkLink(link: LinkSpec | undefined, what: string): void {
    if (link === undefined || link === null || typeof link !== 'object') {
      this.problem(`${what}: link is required ({ gen, width })`);
      return;
    }
    if (!Number.isInteger(link.gen) || link.gen < 1 || link.gen > 6) {
      this.problem(`${what}: link gen ${String(link.gen)} is not a PCIe generation 1-6`);
    }
    if (!VALID_WIDTHS.has(link.width)) {
      this.problem(`${what}: link width ${String(link.width)} is not one of x1, x2, x4, x8, x12, x16, x32`);
    }
  }

  private checkMps(mps: number | undefined, what: string): void {
    if (mps === undefined) return;
    if (![128, 256, 512, 1024, 2048, 4096].includes(mps)) {
      this.problem(`${what}: mps ${mps} is not a max payload size (128, 256, ..., 4096 bytes)`);
    }
  }

  private checkAcs(acs: AcsSpec | null | undefined, what: string): void {
    if (acs === undefined || acs === null) return;
    for (const f of [...(acs.cap ?? []), ...(acs.ctrl ?? [])]) {
      if (!(f in ACS_FLAGS)) {
        this.problem(`${what}: "${f}" is not an ACS flag (${Object.keys(ACS_FLAGS).join(', ')})`);
      }
    }
  }

  private validate(): void {
    const s = this.spec;
    if (typeof s !== 'object' || s === null) {
      this.problem('the spec is not an object');
      return;
    }
    if (typeof s.name !== 'string' || s.name === '') this.problem('the topology has no name');
    if (!s.cpu || !(s.cpu.generation in CPUS)) {
      this.problem(
        `cpu: generation "${String(s.cpu?.generation)}" is unknown (known: ${CPU_GENERATIONS.join(', ')})`,
      );
    }
    if (!Array.isArray(s.sockets) || s.sockets.length === 0)
      this.problem('sockets: at least one is required');
    if (!Array.isArray(s.hostBridges) || s.hostBridges.length === 0) {
      this.problem('hostBridges: at least one is required');
    }
    if (!Array.isArray(s.endpoints)) this.problem('endpoints: a list is required');
    if (this.problems.length > 0) return;

    const sockets = new Set<string>();
    for (const so of s.sockets) if (this.claim(so.id, `socket "${so.id}"`)) sockets.add(so.id);
    if (s.socketLink?.capacityGBps !== undefined && !(s.socketLink.capacityGBps > 0)) {
      this.problem(`socketLink: capacityGBps must be positive, got ${s.socketLink.capacityGBps}`);
    }

    for (const hb of s.hostBridges) {
      const what = `host bridge "${hb.id}"`;
      if (!this.claim(hb.id, what)) continue;
      this.ports.set(hb.id, { kind: 'host-bridge', spec: hb });
      if (!sockets.has(hb.socket))
        this.problem(`${what}: socket "${hb.socket}" is not a socket of this topology`);
      if (hb.bus !== undefined && (!Number.isInteger(hb.bus) || hb.bus < 0 || hb.bus > 255)) {
        this.problem(`${what}: bus ${hb.bus} is not a bus number 0-255`);
      }
      if (hb.domain !== undefined && (!Number.isInteger(hb.domain) || hb.domain < 0 || hb.domain > 0xffff)) {
        this.problem(`${what}: domain ${hb.domain} is not a domain number 0-65535`);
      }
      const f = hb.p2p?.factor;
      if (f !== undefined && !(f > 0)) this.problem(`${what}: p2p.factor must be positive, got ${f}`);
    }

    for (const rp of s.rootPorts ?? []) {
      const what = `root port "${rp.id}"`;
      if (!this.claim(rp.id, what)) continue;
      this.ports.set(rp.id, { kind: 'root-port', spec: rp });
      const hb = this.ports.get(rp.hostBridge);
      if (hb?.kind !== 'host-bridge') {
        this.problem(`${what}: hostBridge "${rp.hostBridge}" is not a host bridge of this topology`);
      }
      this.checkLink(rp.link, what);
      this.checkMps(rp.mps, what);
      this.checkAcs(rp.acs, what);
    }

    for (const sw of s.switches ?? []) {
      const what = `switch "${sw.id}"`;
      if (!this.claim(sw.id, what)) continue;
      this.checkLink(sw.link, what);
      this.checkMps(sw.mps, what);
      this.checkAcs(sw.upstreamAcs, what);
      this.checkAcs(sw.downstreamAcs, what);
      const n = typeof sw.downstreamPorts === 'number' ? sw.downstreamPorts : sw.downstreamPorts?.length;
      if (!Number.isInteger(n) || n! < 1 || n! > 32) {
        this.problem(`${what}: downstreamPorts must be 1-32 ports, got ${String(sw.downstreamPorts)}`);
        continue;
      }
      for (let i = 0; i < n!; i++) {
        const dp: DownstreamPortSpec = typeof sw.downstreamPorts === 'number' ? {} : sw.downstreamPorts[i];
        const id = dp.id ?? `${sw.id}.dp${i}`;
        const dwhat = `downstream port "${id}" of switch "${sw.id}"`;
        if (!this.claim(id, dwhat)) continue;
        this.ports.set(id, { kind: 'downstream', spec: dp, sw, index: i });
        if (dp.link) this.checkLink(dp.link, dwhat);
        this.checkAcs(dp.acs, dwhat);
      }
    }

    // Parents of switches: a root port or a downstream port, holding nothing else.
    for (const sw of s.switches ?? []) {
      const p = this.ports.get(sw.parent);
      if (!p || p.kind === 'host-bridge') {
        this.problem(
          `switch "${sw.id}": parent "${sw.parent}" is not a root port or switch downstream port of this topology`,
        );
        continue;
      }
      const other = this.childSwitch.get(sw.parent);
      if (other) {
        this.problem(`switch "${sw.id}": port "${sw.parent}" already has switch "${other.id}" below it`);
        continue;
      }
      this.childSwitch.set(sw.parent, sw);
    }

    for (const ep of s.endpoints) {
      const what = `endpoint "${ep.id}"`;
      if (!this.claim(ep.id, what)) continue;
      if (!['accelerator', 'nic', 'gpu', 'nvme', 'other'].includes(ep.kind)) {
        this.problem(`${what}: kind "${ep.kind}" is not one of accelerator, nic, gpu, nvme, other`);
      }
      const p = this.ports.get(ep.parent);
      if (!p) {
        this.problem(
          `${what}: parent "${ep.parent}" is not a root port, switch downstream port or host bridge of this topology`,
        );
        continue;
      }
      if (p.kind !== 'host-bridge') this.checkLink(ep.link, what);
      this.checkMps(ep.mps, what);
      this.checkAcs(ep.acs, what);
      const sw = this.childSwitch.get(ep.parent);
      if (sw) {
        this.problem(`${what}: port "${ep.parent}" already has switch "${sw.id}" below it`);
        continue;
      }
      const list = this.childEndpoints.get(ep.parent) ?? [];
      list.push(ep);
      this.childEndpoints.set(ep.parent, list);
      if (
        ep.memory !== undefined &&
        !(Number.isSafeInteger(ep.memory) && ep.memory > 0 && ep.memory % 4096 === 0)
      ) {
        this.problem(`${what}: memory ${String(ep.memory)} is not a positive multiple of 4096 bytes`);
      }
      const seen = new Set<number>();
      for (const bar of ep.bars ?? []) {
        if (!Number.isInteger(bar.index) || bar.index < 0 || bar.index > 5 || seen.has(bar.index)) {
          this.problem(`${what}: BAR index ${bar.index} is not a distinct index 0-5`);
        }
        seen.add(bar.index);
        if (!(bar.size >= 16) || 2 ** Math.round(Math.log2(bar.size)) !== bar.size) {
          this.problem(
            `${what}: BAR ${bar.index} size ${bar.size} is not a power of two of at least 16 bytes`,
          );
        }
      }
    }
    for (const [port, eps] of this.childEndpoints) {
      if (this.ports.get(port)?.kind === 'host-bridge') continue;
      if (eps.length > MAX_FUNCTIONS) {
        this.problem(
          `port "${port}" has ${eps.length} endpoints (${eps.map((e) => e.id).join(', ')}); ` +
            `one device has at most ${MAX_FUNCTIONS} functions`,
        );
      }
      const l0 = eps[0].link;
      for (const e of eps.slice(1)) {
        if (e.link && l0 && (e.link.gen !== l0.gen || e.link.width !== l0.width)) {
          this.problem(
            `endpoint "${e.id}": function of the device below "${port}" states a different link than "${eps[0].id}"`,
          );
        }
      }
    }

    // Every switch must hang below a host bridge: a parent chain that loops is an error.
    for (const sw of s.switches ?? []) {
      const seen = new Set<string>([sw.id]);
      let cur: SwitchSpec | undefined = sw;
      while (cur) {
        const p = this.ports.get(cur.parent);
        if (p?.kind !== 'downstream') break;
        if (seen.has(p.sw.id)) {
          this.problem(`switch "${sw.id}": its parent chain loops (${[...seen].join(' -> ')} -> ${p.sw.id})`);
          break;
        }
        seen.add(p.sw.id);
        cur = p.sw;
      }
    }
    if (this.problems.length === 0 && s.cmdline !== undefined && typeof s.cmdline !== 'string') {
      this.problem('cmdline must be a string');
    }
  }

  // ----------------------------------------------------------- enumeration

  private enumerate(): void {
    const s = this.spec;
    const t = this.topo;
    s.sockets.forEach((so, i) => {
      const sock = new Socket(so.id, i, so.memoryGBps === undefined ? t.params.memoryGBps : so.memoryGBps);
      t.sockets.push(sock);
      t.register(so.id, sock);
    });
    const gen = t.cpu.generation;
    for (let i = 0; i < t.sockets.length; i++) {
      for (let j = i + 1; j < t.sockets.length; j++) {
        t.socketLinks.push(
          new SocketLink(
            t.sockets[i],
            t.sockets[j],
            s.socketLink?.kind ?? CPUS[gen].socketLink,
            s.socketLink?.capacityGBps ?? t.params.socketLinkGBps[gen],
            s.socketLink?.latencyNs ?? t.params.socketLinkLatencyNs,
          ),
        );
      }
    }

    const acsRedirOff = this.parseCmdline(s.cmdline ?? '');
    const mmio = new Map<PciHostBridge, number>();

    s.hostBridges.forEach((hbs, index) => {
      const domain = hbs.domain ?? 0;
      const used = this.usedBuses.get(domain) ?? new Set<number>();
      this.usedBuses.set(domain, used);
      let busNr = hbs.bus ?? this.nextBus.get(domain) ?? 0;
      if (hbs.bus === undefined) while (used.has(busNr)) busNr++;
      if (used.has(busNr) || busNr > 255) {
        this.problem(
          `host bridge "${hbs.id}": root bus ${hex(domain, 4)}:${hex(busNr, 2)} is taken or out of range`,
        );
        return;
      }
      const socket = t.socket(hbs.socket);
      const hb = new PciHostBridge(hbs.id, t, socket, domain, busNr);
      hb.bus = new PciBus(hb, domain, busNr, null, null);
      used.add(busNr);
      this.nextBus.set(domain, Math.max(this.nextBus.get(domain) ?? 0, busNr + 1));
      socket.hostBridges.push(hb);
      t.hostBridges.push(hb);
      t.register(hbs.id, hb);
      const base = t.params.rootComplexP2p[gen];
      t.setRootComplexP2p(hb, {
        factor: hbs.p2p?.factor ?? base.factor,
        writesOnly: hbs.p2p?.writesOnly ?? base.writesOnly,
        aggregateGBps: hbs.p2p?.aggregateGBps ?? null,
      });
      mmio.set(hb, hbs.mmioBase ?? 0x2000_0000_0000 + index * 0x0100_0000_0000);

      // The root bus: the host-bridge function, root ports, integrated endpoints.
      type Slotted = { slot: number; make: (devfn: number) => PciDev[] };
      const items: Slotted[] = [];
      const taken = new Set<number>();
      const wantSlot = (slot: number | undefined, what: string): number | null => {
        if (slot === undefined) return null;
        if (!Number.isInteger(slot) || slot < 0 || slot > 31 || taken.has(slot)) {
          this.problem(`${what}: slot ${slot} is not a free device number 0-31 on bus ${hb.bus.number}`);
          return -1;
        }
        taken.add(slot);
        return slot;
      };
      const cpuDefaults = CPUS[gen];
      if (hbs.hostBridgeFunction !== false) {
        taken.add(0);
        items.push({
          slot: 0,
          make: (devfn) => [
            this.fn(
              hbs.id,
              hb.bus,
              devfn,
              hbs.vendor ?? VENDOR_IDS[t.cpu.vendor],
              hbs.device ?? cpuDefaults.hostBridge,
              'host-bridge',
              null,
              0,
              null,
            ),
          ],
        });
      }
      const rps = (s.rootPorts ?? []).filter((rp) => rp.hostBridge === hbs.id);
      const rcieps = (this.childEndpoints.get(hbs.id) ?? []).slice();
      const explicit: { slot: number | null; el: RootPortSpec | EndpointSpec; rp: boolean }[] = [
        ...rps.map((rp) => ({ slot: wantSlot(rp.slot, `root port "${rp.id}"`), el: rp, rp: true })),
        ...rcieps.map((ep) => ({ slot: wantSlot(ep.slot, `endpoint "${ep.id}"`), el: ep, rp: false })),
      ];
      let next = 0;
      for (const x of explicit) {
        let slot = x.slot;
        if (slot === -1) continue;
        if (slot === null) {
          while (taken.has(next)) next++;
          if (next > 31) {
            this.problem(`host bridge "${hbs.id}": more than 32 devices on its root bus`);
            continue;
          }
          slot = next;
          taken.add(slot);
        }
        if (x.rp) {
          const rp = x.el as RootPortSpec;
          items.push({
            slot,
            make: (devfn) => [
              this.fn(
                rp.id,
                hb.bus,
                devfn,
                rp.vendor ?? VENDOR_IDS[t.cpu.vendor],
                rp.device ?? cpuDefaults.rootPort,
                'root-port',
                rp.acs === undefined ? DEFAULT_PORT_ACS : rp.acs,
                rp.mps ?? t.params.mps.rootPort,
                null,
              ),
            ],
          });
        } else {
          const ep = x.el as EndpointSpec;
          items.push({ slot, make: (devfn) => [this.endpointFn(ep, hb.bus, devfn)] });
        }
      }
      items.sort((a, b) => a.slot - b.slot);
      const rootDevs: PciDev[] = [];
      for (const it of items) rootDevs.push(...it.make(PCI_DEVFN(it.slot, 0)));
      for (const d of rootDevs) {
        d.mps = d.mpsSupported;
        if (d.role === 'root-port') {
          const rp = rps.find((r) => r.id === d.id)!;
          this.below(d, rp.link, domain);
        }
      }
      // BARs of everything below this host bridge, naturally aligned, in bus order.
      let cursor = mmio.get(hb)!;
      const assign = (bus: PciBus) => {
        for (const d of bus.devices) {
          const ep = d.role === 'endpoint' ? s.endpoints.find((e) => e.id === d.id) : undefined;
          for (const bar of ep?.bars ?? []) {
            cursor = Math.ceil(cursor / bar.size) * bar.size;
            d.resources.push({
              index: bar.index,
              start: cursor,
              size: bar.size,
              prefetchable: bar.prefetchable ?? true,
            });
            cursor += bar.size;
          }
          if (d.subordinate) assign(d.subordinate);
        }
      };
      assign(hb.bus);
    });

    // ACS control: firmware's setting, what an IOMMU turns on, what the command line turns off.
    for (const d of t.devices) {
      if (d.acsCapBits === null) continue;
      const fw = d.acsCtrl;
      let ctrl = fw;
      if (t.iommu) ctrl |= d.acsCapBits & (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
      if (acsRedirOff?.some((m) => m(d))) {
        const mask = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;
        ctrl = fw & ~mask;
        t.devLog(d, `Configured ACS to ${acsHex(ctrl)}`);
      }
      d.acsCtrl = ctrl;
    }
  }

  /** Creates a function on `bus` and registers it. */
  private fn(
    id: string,
    bus: PciBus,
    devfn: number,
    vendor: number,
    device: number,
    role: PciRole,
    acs: AcsSpec | null,
    mps: number,
    kind: EndpointKind | null,
    memory: number | null = null,
  ): PciDev {
    const t = this.topo;
    if (bus.number > 255) {
      this.problem(`"${id}": no bus number left in domain ${hex(bus.domain, 4)} (more than 256 buses)`);
    }
    const capBits = acs === null ? null : flagBits(acs.cap ?? DEFAULT_PORT_ACS.cap!);
    const d = new PciDev(id, t, bus, devfn, vendor, device, role, capBits, mps, kind, memory);
    if (acs !== null) d.acsCtrl = flagBits(acs.ctrl ?? []) & capBits!;
    bus.devices.push(d);
    t.devices.push(d);
    if (role === 'endpoint') t.endpoints.push(d);
    // A host-bridge function shares its host bridge's id; the id names the host bridge.
    if (role !== 'host-bridge') t.register(id, d);
    return d;
  }

  private endpointFn(ep: EndpointSpec, bus: PciBus, devfn: number): PciDev {
    const [v, dv] = ENDPOINT_IDS[ep.kind];
    return this.fn(
      ep.id,
      bus,
      devfn,
      ep.vendor ?? v,
      ep.device ?? dv,
      'endpoint',
      ep.acs ?? null,
      ep.mps ?? this.topo.params.mps.endpoint,
      ep.kind,
      ep.memory ?? null,
    );
  }

  private newBus(parent: PciDev, domain: number): PciBus {
    const nr = this.nextBus.get(domain) ?? 0;
    this.nextBus.set(domain, nr + 1);
    this.usedBuses.get(domain)?.add(nr);
    const bus = new PciBus(parent.bus.hostBridge, domain, nr, parent.bus, parent);
    parent.subordinate = bus;
    return bus;
  }

  /** Enumerates what hangs below a root port or downstream port `port` with link capability `portLink`. */
  private below(port: PciDev, portLink: LinkSpec, domain: number): void {
    const t = this.topo;
    const bus = this.newBus(port, domain);
    const sw = this.childSwitch.get(port.id);
    const train = (child: PciDev, childLink: LinkSpec) => {
      const link = new PcieLink(
        port,
        child,
        Math.min(portLink.gen, childLink.gen) as PcieGen,
        Math.min(portLink.width, childLink.width),
      );
      port.downLink = link;
      t.links.push(link);
      return link;
    };
    if (sw) {
      const usp = this.fn(
        sw.id,
        bus,
        PCI_DEVFN(0, 0),
        sw.vendor ?? PCI_VENDOR.LSI,
        sw.device ?? 0xc030,
        'switch-upstream',
        sw.upstreamAcs ?? null,
        sw.mps ?? t.params.mps.switchPort,
        null,
      );
      usp.upLink = train(usp, sw.link);
      usp.mps = Math.min(usp.mpsSupported, port.mps);
      const pcieSwitch = new PcieSwitch(sw.id, usp, sw.latencyNs ?? t.params.switchLatencyNs);
      t.switches.push(pcieSwitch);
      usp.switch = pcieSwitch;
      const inner = this.newBus(usp, domain);
      const n = typeof sw.downstreamPorts === 'number' ? sw.downstreamPorts : sw.downstreamPorts.length;
      const dps: { dev: PciDev; link: LinkSpec }[] = [];
      for (let i = 0; i < n; i++) {
        const dp: DownstreamPortSpec = typeof sw.downstreamPorts === 'number' ? {} : sw.downstreamPorts[i];
        const acs =
          dp.acs !== undefined
            ? dp.acs
            : sw.downstreamAcs !== undefined
              ? sw.downstreamAcs
              : DEFAULT_PORT_ACS;
        const dev = this.fn(
          dp.id ?? `${sw.id}.dp${i}`,
          inner,
          PCI_DEVFN(i, 0),
          sw.vendor ?? PCI_VENDOR.LSI,
          sw.device ?? 0xc030,
          'switch-downstream',
          acs,
          sw.mps ?? t.params.mps.switchPort,
          null,
        );
        dev.switch = pcieSwitch;
        dev.mps = Math.min(dev.mpsSupported, usp.mps);
        pcieSwitch.downstream.push(dev);
        dps.push({ dev, link: dp.link ?? sw.link });
      }
      for (const { dev, link } of dps) this.below(dev, link, domain);
      return;
    }
    const eps = this.childEndpoints.get(port.id) ?? [];
    let link: PcieLink | null = null;
    eps.forEach((ep, f) => {
      const d = this.endpointFn(ep, bus, PCI_DEVFN(0, f));
      if (f === 0) link = train(d, ep.link!);
      d.upLink = link;
      d.mps = Math.min(d.mpsSupported, port.mps);
    });
  }

  /** Parses `pci=disable_acs_redir=...` from a command line into device matchers. */
  private parseCmdline(cmdline: string): ((d: PciDev) => boolean)[] | null {
    let value: string | null = null;
    for (const word of cmdline.split(/\s+/)) {
      if (!word.startsWith('pci=')) continue;
      for (const opt of word.slice(4).split(',')) {
        if (opt.startsWith('disable_acs_redir=')) value = opt.slice('disable_acs_redir='.length);
      }
    }
    if (value === null) return null;
    const matchers: ((d: PciDev) => boolean)[] = [];
    for (const entry of value.split(';')) {
      const m = parsePciDevStr(entry);
      if (m === null) {
        this.topo.prLog("PCI: Can't parse ACS command line parameter");
        break;
      }
      matchers.push(m);
    }
    return matchers;
  }
}

/**
 * A device matcher from one `pci_dev_str_match` entry: `[<domain>:]<bus>:<dev>.<fn>` or
 * `pci:<vendor>:<device>`; null if it does not parse.
 */
export function parsePciDevStr(s: string): ((d: PciDev) => boolean) | null {
  const ids = /^pci:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(s);
  if (ids) {
    const v = Number.parseInt(ids[1], 16);
    const dv = Number.parseInt(ids[2], 16);
    return (d) => d.vendor === v && d.device === dv;
  }
  const bdf = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(s);
  if (!bdf) return null;
  const domain = bdf[1] === undefined ? 0 : Number.parseInt(bdf[1], 16);
  const bus = Number.parseInt(bdf[2], 16);
  const devfn = PCI_DEVFN(Number.parseInt(bdf[3], 16), Number(bdf[4]));
  return (d) => d.bus.domain === domain && d.bus.number === bus && d.devfn === devfn;
}

function flagBits(flags: AcsFlag[]): number {
  let bits = 0;
  for (const f of flags) bits |= ACS_FLAGS[f];
  return bits;
}

function acsHex(v: number): string {
  return `0x${hex(v, 4)}`;
}
