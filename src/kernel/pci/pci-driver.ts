/**
 * Binding PCI functions to drivers on a machine (drivers/pci/pci-driver.c
 * pci_register_driver / pci_device_probe / pci_match_id, drivers/pci/bus.c
 * pci_bus_add_devices, include/linux/pci.h `pdev->dev`).
 *
 * A machine has one enumerated `Topology` and one `TransferModel` (its DMA engine in
 * virtual time); `pciBusAttach` records them in the kernel and probes every endpoint
 * against the registered drivers, in enumeration order, first match wins. A bound
 * function gets its struct device (`pciDevDevice`): a `Device` named by the BDF whose
 * parent is the PCI function, so p2pdma's find_parent_pci_dev reaches the function from
 * it, and whose DMA context the driver sets up in probe.
 */
import { Device } from '../device.ts';
import { currentKernel, type Kernel } from '../kernel.ts';
import type { EndpointKind, PciDev } from './pci.ts';
import type { Topology } from './topology.ts';
import type { TransferModel } from './transfer.ts';

/** One entry of a driver's id table (struct pci_device_id, reduced). */
export interface PciDeviceId {
  /** Vendor id, or undefined for any (PCI_ANY_ID). */
  vendor?: number;
  /** Device id, or undefined for any. */
  device?: number;
  /** The topology's endpoint kind, or undefined for any (the model's stand-in for a class code). */
  kind?: EndpointKind;
}

/** A PCI driver (struct pci_driver). */
export interface PciDriver {
  /** The driver's name (dev_driver_string of bound devices). */
  readonly name: string;
  /** Functions it binds to. */
  readonly idTable: readonly PciDeviceId[];
  /**
   * Mandatory. Called at boot, in kernel (no task) context, for each matching function
   * not bound yet: set up the device and return 0, or a negative errno to leave the
   * function unbound (the next matching driver is tried).
   */
  probe(pdev: PciDev, dev: Device, id: PciDeviceId): number;
  /** Optional. Called when the machine goes away or the device is unbound. */
  remove?(pdev: PciDev, dev: Device): void;
}

/** What the PCI bus of one machine holds. */
export interface PciBusState {
  /** The machine's topology. */
  readonly topology: Topology;
  /** The machine's transfer model (DMA in virtual time). */
  readonly transfers: TransferModel;
  /** The struct device of each function, once asked for. */
  readonly devices: Map<PciDev, Device>;
  /** Bound drivers by function. */
  readonly bound: Map<PciDev, PciDriver>;
}

const drivers: PciDriver[] = [];
const PCI_BUS = Symbol('pci_bus');

/** pci_register_driver(): the driver is probed against the functions of every machine booted later. */
export function pciRegisterDriver(drv: PciDriver): void {
  if (!drivers.includes(drv)) drivers.push(drv);
}

/** The PCI bus state of a kernel, or null when the machine has no topology. */
export function pciBus(k: Kernel = currentKernel()): PciBusState | null {
  return (k.singletons.get(PCI_BUS) as PciBusState | undefined) ?? null;
}

/** The machine's transfer model; throws when the kernel has no PCI bus. */
export function pciTransferModel(k: Kernel = currentKernel()): TransferModel {
  const b = pciBus(k);
  if (!b) throw new Error('this kernel has no PCI topology');
  return b.transfers;
}

/** `pdev->dev`: the struct device of a PCI function (created on first use). */
export function pciDevDevice(pdev: PciDev, k: Kernel = currentKernel()): Device {
  const b = pciBus(k);
  let d = b?.devices.get(pdev);
  if (!d) {
    d = new Device(pdev.name, { parent: pdev });
    b?.devices.set(pdev, d);
  }
  return d;
}

function matches(pdev: PciDev, id: PciDeviceId): boolean {
  return (
    (id.vendor === undefined || id.vendor === pdev.vendor) &&
    (id.device === undefined || id.device === pdev.device) &&
    (id.kind === undefined || id.kind === pdev.kind)
  );
}

/**
 * Records the machine's topology and transfer model in `k` and probes every endpoint
 * against the registered drivers. Returns the bus state.
 */
export function pciBusAttach(
  topology: Topology,
  transfers: TransferModel,
  k: Kernel = currentKernel(),
): PciBusState {
  const state: PciBusState = { topology, transfers, devices: new Map(), bound: new Map() };
  k.singletons.set(PCI_BUS, state);
  for (const pdev of topology.endpoints) {
    for (const drv of drivers) {
      const id = drv.idTable.find((i) => matches(pdev, i));
      if (!id) continue;
      const prev = pdev.driver;
      pdev.driver = drv.name;
      const dev = new Device(pdev.name, { parent: pdev, driverString: drv.name });
      state.devices.set(pdev, dev);
      if (drv.probe(pdev, dev, id) === 0) {
        state.bound.set(pdev, drv);
        break;
      }
      pdev.driver = prev;
      state.devices.delete(pdev);
    }
  }
  return state;
}
