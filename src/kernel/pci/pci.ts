/**
 * PCI functions, buses and host bridges as the PCI core and p2pdma see them: the
 * identity (domain, bus, devfn, vendor/device ids), the PCIe port type, the ACS
 * capability and control word, and the tree links (`bus->self`, `bus->parent`).
 *
 * Follows include/linux/pci.h (struct pci_dev, struct pci_bus, pci_upstream_bridge,
 * pci_is_root_bus, pci_name, PCI_DEVFN/PCI_SLOT/PCI_FUNC, pci_dev_id),
 * drivers/pci/host-bridge.c (pci_find_host_bridge), include/uapi/linux/pci_regs.h
 * (PCI_EXP_TYPE_*, PCI_ACS_*) and drivers/base/core.c (dev_driver_string: the
 * `driver name` that prefixes dev_warn lines). The physical side (links, widths,
 * payload sizes, sockets) lives in topology.ts; the objects here only point at it.
 *
 * `Device` is the part of the kernel's struct device the PCI code needs: a name and a
 * parent. Any other device object of the model (an ib_device, a DRM minor, vgem) with
 * those two members can be a p2pdma client.
 */
import type { PcieLink, PcieSwitch, Socket, Topology } from './topology.ts';

/** The part of struct device the PCI code uses: a name and the parent device. */
export interface Device {
  /** dev_name(): a PCI function's BDF (`0000:03:00.0`), or any other device's name. */
  readonly name: string;
  /** The parent device (for a PCI function, its upstream bridge or host bridge), or null. */
  readonly parent: Device | null;
  /** dev_driver_string(): the bound driver's name, else the bus name (`platform`), else empty. */
  readonly driverString?: string;
}

/** ACS capability/control bit: Source Validation. */
export const PCI_ACS_SV = 0x0001;
/** ACS bit: Translation Blocking. */
export const PCI_ACS_TB = 0x0002;
/** ACS bit: P2P Request Redirect. */
export const PCI_ACS_RR = 0x0004;
/** ACS bit: P2P Completion Redirect. */
export const PCI_ACS_CR = 0x0008;
/** ACS bit: Upstream Forwarding. */
export const PCI_ACS_UF = 0x0010;
/** ACS bit: P2P Egress Control. */
export const PCI_ACS_EC = 0x0020;
/** ACS bit: Direct Translated P2P. */
export const PCI_ACS_DT = 0x0040;

/** ACS bit names as written in topology files, with their values. */
export const ACS_FLAGS = {
  SV: PCI_ACS_SV,
  TB: PCI_ACS_TB,
  RR: PCI_ACS_RR,
  CR: PCI_ACS_CR,
  UF: PCI_ACS_UF,
  EC: PCI_ACS_EC,
  DT: PCI_ACS_DT,
} as const;

/** An ACS bit name (`RR`, `CR`, ...). */
export type AcsFlag = keyof typeof ACS_FLAGS;

/** PCIe device/port type (PCI Express capability, flags 7:4): endpoint. */
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
/** PCIe port type: root port of a root complex. */
export const PCI_EXP_TYPE_ROOT_PORT = 0x4;
/** PCIe port type: switch upstream port. */
export const PCI_EXP_TYPE_UPSTREAM = 0x5;
/** PCIe port type: switch downstream port. */
export const PCI_EXP_TYPE_DOWNSTREAM = 0x6;
/** PCIe port type: root complex integrated endpoint. */
export const PCI_EXP_TYPE_RC_END = 0x9;

/** devfn from a slot (device number, 0-31) and a function number (0-7). */
export function PCI_DEVFN(slot: number, fn: number): number {
  return ((slot & 0x1f) << 3) | (fn & 0x07);
}

/** The slot (device number) of a devfn. */
export function PCI_SLOT(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}

/** The function number of a devfn. */
export function PCI_FUNC(devfn: number): number {
  return devfn & 0x07;
}

/** A PCI bus: the root bus of a host bridge or the secondary bus of a bridge. */
export class PciBus {
  /** Functions on this bus, in devfn (scan) order. */
  readonly devices: PciDev[] = [];

  /** Creates a bus; the topology builder wires it up. */
  constructor(
    /** The host bridge this bus hangs below. */
    readonly hostBridge: PciHostBridge,
    /** PCI domain (segment) number. */
    readonly domain: number,
    /** Bus number. */
    readonly number: number,
    /** The parent bus; null for a root bus. */
    readonly parent: PciBus | null,
    /** The bridge whose secondary bus this is; null for a root bus. */
    readonly self: PciDev | null,
  ) {}
}

/**
 * A host bridge (struct pci_host_bridge): the boundary between a CPU socket's root
 * complex and one PCI hierarchy. Its device name is `pci<domain>:<bus>`.
 */
export class PciHostBridge implements Device {
  /** dev_name(): `pci0000:00`. */
  readonly name: string;
  /** Host bridges have no parent device in the model. */
  readonly parent: Device | null = null;
  /** The root bus; set by the builder. */
  bus!: PciBus;

  /** Creates a host bridge; the topology builder wires it up. */
  constructor(
    /** The id this element has in the topology spec. */
    readonly id: string,
    /** The topology it belongs to. */
    readonly topology: Topology,
    /** The CPU socket whose root complex this is. */
    readonly socket: Socket,
    domain: number,
    busNumber: number,
  ) {
    this.name = `pci${hex(domain, 4)}:${hex(busNumber, 2)}`;
  }
}

/** What a function is in the PCIe tree. */
export type PciRole = 'host-bridge' | 'root-port' | 'switch-upstream' | 'switch-downstream' | 'endpoint';

/** What an endpoint is for, as the topology names it (for presets, drivers and reports). */
export type EndpointKind = 'accelerator' | 'nic' | 'gpu' | 'nvme' | 'other';

/** A BAR's assigned window (pci_resource_start/len). */
export interface PciResource {
  /** BAR index (0-5). */
  readonly index: number;
  /** Bus address of the first byte (equal to the CPU physical address in the model). */
  readonly start: number;
  /** Size in bytes (a power of two). */
  readonly size: number;
  /** Prefetchable memory BAR. */
  readonly prefetchable: boolean;
}

/** p2pdma state of a provider (struct pci_p2pdma): the cached map types per client. */
export interface PciP2pdma {
  /** Map type per client, keyed by `(domain << 16) | pci_dev_id(client)`. */
  readonly mapTypes: Map<number, number>;
}

/** One PCI function (struct pci_dev). */
export class PciDev implements Device {
  /** dev_name(): `dddd:bb:dd.f`. */
  readonly name: string;
  /** The bound driver's name (dev_driver_string); `pci` while unbound. */
  driver: string | null = null;
  /** ACS control word (PCI_ACS_CTRL) as configured after enumeration. */
  acsCtrl: number;
  /** The secondary bus of a bridge; null for endpoints. */
  subordinate: PciBus | null = null;
  /** The PCIe link above this function (endpoint or switch upstream port); null on a root bus. */
  upLink: PcieLink | null = null;
  /** The link below a root port or switch downstream port, once something is attached. */
  downLink: PcieLink | null = null;
  /** The switch this port belongs to (switch ports only). */
  switch: PcieSwitch | null = null;
  /** Max payload size configured by the PCI core: the smallest supported size up to the root port. */
  mps = 128;
  /** Assigned BAR windows. */
  readonly resources: PciResource[] = [];
  /** p2pdma state, present once the function provides p2p memory (pci_p2pdma_add_resource). */
  p2pdma: PciP2pdma | null = null;

  /** Creates a function; the topology builder wires it up. */
  constructor(
    /** The id this element has in the topology spec (`acc0`, `sw1.dp2`). */
    readonly id: string,
    /** The topology it belongs to. */
    readonly topology: Topology,
    /** The bus it sits on. */
    readonly bus: PciBus,
    /** Device and function number on the bus. */
    readonly devfn: number,
    /** Vendor id. */
    readonly vendor: number,
    /** Device id. */
    readonly device: number,
    /** Role in the tree. */
    readonly role: PciRole,
    /** ACS capability word (PCI_ACS_CAP); null when the function has no ACS capability. */
    readonly acsCapBits: number | null,
    /** Max payload size the function supports (bytes). */
    readonly mpsSupported: number,
    /** For endpoints, what kind of device it is. */
    readonly kind: EndpointKind | null = null,
    /**
     * On-device memory in bytes as the topology states it (`EndpointSpec.memory`: VRAM,
     * HBM); null when the topology leaves it to the driver's default.
     */
    readonly memory: number | null = null,
  ) {
    this.name = `${hex(bus.domain, 4)}:${hex(bus.number, 2)}:${hex(PCI_SLOT(devfn), 2)}.${PCI_FUNC(devfn)}`;
    this.acsCtrl = 0;
  }

  /** The parent device: the upstream bridge, or the host bridge for a root-bus function. */
  get parent(): Device {
    return this.bus.self ?? this.bus.hostBridge;
  }

  /** dev_driver_string(): the driver's name, or `pci` (the bus name) while unbound. */
  get driverString(): string {
    return this.driver ?? 'pci';
  }

  /** Whether the function has an ACS capability (`pdev->acs_cap != 0`). */
  get acsCap(): boolean {
    return this.acsCapBits !== null;
  }

  /** The socket (NUMA node) of this function's host bridge. */
  get socket(): Socket {
    return this.bus.hostBridge.socket;
  }
}

/** pci_name(): the BDF string of a function. */
export function pciName(dev: PciDev): string {
  return dev.name;
}

/** pci_is_root_bus(): whether `bus` has no parent bus. */
export function pciIsRootBus(bus: PciBus): boolean {
  return bus.parent === null;
}

/** pci_upstream_bridge(): the bridge above `dev`, or null for a function on a root bus. */
export function pciUpstreamBridge(dev: PciDev): PciDev | null {
  if (pciIsRootBus(dev.bus)) return null;
  return dev.bus.self;
}

/** pci_find_host_bridge(): the host bridge above `bus`. */
export function pciFindHostBridge(bus: PciBus): PciHostBridge {
  let b = bus;
  while (b.parent !== null) b = b.parent;
  return b.hostBridge;
}

/** pci_pcie_type(): the PCIe device/port type of a function. */
export function pciPcieType(dev: PciDev): number {
  switch (dev.role) {
    case 'root-port':
      return PCI_EXP_TYPE_ROOT_PORT;
    case 'switch-upstream':
      return PCI_EXP_TYPE_UPSTREAM;
    case 'switch-downstream':
      return PCI_EXP_TYPE_DOWNSTREAM;
    case 'endpoint':
      return pciIsRootBus(dev.bus) ? PCI_EXP_TYPE_RC_END : PCI_EXP_TYPE_ENDPOINT;
    case 'host-bridge':
      // A host bridge function has no PCIe capability; 0 is what pci_pcie_type reads then.
      return 0;
  }
}

/** pci_domain_nr(): the domain of a bus. */
export function pciDomainNr(bus: PciBus): number {
  return bus.domain;
}

/** pci_dev_id(): `(bus << 8) | devfn`. */
export function pciDevId(dev: PciDev): number {
  return ((dev.bus.number & 0xff) << 8) | (dev.devfn & 0xff);
}

/** dev_is_pci(): whether a device is a PCI function. */
export function devIsPci(dev: Device): dev is PciDev {
  return dev instanceof PciDev;
}

/** dev_driver_string() of any device. */
export function devDriverString(dev: Device): string {
  return dev.driverString ?? '';
}

/** `vvvv:dddd` as lspci prints an id pair. */
export function pciIds(vendor: number, device: number): string {
  return `${hex(vendor, 4)}:${hex(device, 4)}`;
}

/** Lower-case hex, zero-padded to `width` digits. */
export function hex(v: number, width: number): string {
  return v.toString(16).padStart(width, '0');
}
