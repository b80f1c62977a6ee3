/**
 * PCI peer-to-peer DMA: whether, and how, a client device can DMA to a provider's
 * memory (drivers/pci/p2pdma.c, include/linux/pci-p2pdma.h; the map-type enum is in
 * include/linux/dma-map-ops.h), as Linux 6.12 decides it:
 *
 * - walk the provider's upstream bridges; for each, walk the client's; the first
 *   bridge they share gives the distance `dist_a + dist_b` (0 for the same function,
 *   2 for two functions of one device, 4 for two devices on one switch);
 * - every device visited on the provider's side (up to and including the shared
 *   bridge) and on the client's side (below it) whose ACS control has P2P Request
 *   Redirect, Completion Redirect or Egress Control set counts as a redirect;
 * - a shared bridge and no redirect: `PCI_P2PDMA_MAP_BUS_ADDR`;
 * - otherwise the traffic goes through the host bridge: `PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`
 *   if the CPU is an x86 AMD of family 0x17 (Zen) or later, or the host bridges are on
 *   the whitelist (read from the first device of the root bus if it is at 00.0 or is a
 *   root port; some entries require both devices behind the same host bridge); else
 *   `PCI_P2PDMA_MAP_NOT_SUPPORTED`. Without a shared bridge the distance is the sum
 *   of both full upstream chains.
 *
 * With `verbose` the kernel logs why (pci_warn on the client); the lines go to the
 * topology's log and, when given, to the caller's array. The "Host bridge not in
 * P2PDMA whitelist" line is printed only when an ACS redirect was found, because the
 * kernel passes `acs_redirects` as the whitelist check's `warn` argument.
 */
import {
  type Device,
  devIsPci,
  PCI_ACS_CR,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_DEVFN,
  PCI_EXP_TYPE_ROOT_PORT,
  type PciDev,
  type PciHostBridge,
  type PciP2pdma,
  pciDevId,
  pciDomainNr,
  pciFindHostBridge,
  pciIds,
  pciName,
  pciPcieType,
  pciUpstreamBridge,
} from './pci.ts';
import type { Cpu } from './topology.ts';

/** Map type: not computed yet (internal; never returned by the functions that return a map type). */
export const PCI_P2PDMA_MAP_UNKNOWN = 0;
/** Map type: the path crosses a host bridge that is not allowed; DMA mapping must fail. */
export const PCI_P2PDMA_MAP_NOT_SUPPORTED = 1;
/** Map type: both devices share an upstream bridge with no ACS redirect; program PCI bus addresses. */
export const PCI_P2PDMA_MAP_BUS_ADDR = 2;
/** Map type: the traffic goes through an allowed host bridge; map normally (CPU physical or IOVA). */
export const PCI_P2PDMA_MAP_THRU_HOST_BRIDGE = 3;

/** enum pci_p2pdma_map_type (6.12 values: no MAP_NONE). */
export type PciP2pdmaMapType =
  | typeof PCI_P2PDMA_MAP_UNKNOWN
  | typeof PCI_P2PDMA_MAP_NOT_SUPPORTED
  | typeof PCI_P2PDMA_MAP_BUS_ADDR
  | typeof PCI_P2PDMA_MAP_THRU_HOST_BRIDGE;

/** The constant's name for a map type (`PCI_P2PDMA_MAP_BUS_ADDR`). */
export function pciP2pdmaMapTypeName(t: PciP2pdmaMapType): string {
  return [
    'PCI_P2PDMA_MAP_UNKNOWN',
    'PCI_P2PDMA_MAP_NOT_SUPPORTED',
    'PCI_P2PDMA_MAP_BUS_ADDR',
    'PCI_P2PDMA_MAP_THRU_HOST_BRIDGE',
  ][t];
}

/** Whitelist flag: both devices must be behind the same host bridge. */
export const REQ_SAME_HOST_BRIDGE = 1 << 0;

/** One host bridge allowed to forward P2P traffic (struct pci_p2pdma_whitelist_entry). */
export interface PciP2pdmaWhitelistEntry {
  /** Vendor id of the root bus's first device. */
  readonly vendor: number;
  /** Device id of the root bus's first device. */
  readonly device: number;
  /** `REQ_SAME_HOST_BRIDGE` or 0. */
  readonly flags: number;
}

/** The 6.12 whitelist: Intel Xeon E5 (v2, v3) behind one host bridge, Skylake-E and Ice Lake anywhere. */
export const PCI_P2PDMA_WHITELIST: readonly PciP2pdmaWhitelistEntry[] = Object.freeze([
  // Intel Xeon E5 / Core i7 (Sandy/Ivy Bridge-E)
  { vendor: 0x8086, device: 0x3c00, flags: REQ_SAME_HOST_BRIDGE },
  { vendor: 0x8086, device: 0x3c01, flags: REQ_SAME_HOST_BRIDGE },
  // Intel Xeon E7 v3 / Xeon E5 v3 / Core i7 (Haswell-E)
  { vendor: 0x8086, device: 0x2f00, flags: REQ_SAME_HOST_BRIDGE },
  { vendor: 0x8086, device: 0x2f01, flags: REQ_SAME_HOST_BRIDGE },
  // Intel Skylake-E
  { vendor: 0x8086, device: 0x2030, flags: 0 },
  { vendor: 0x8086, device: 0x2031, flags: 0 },
  { vendor: 0x8086, device: 0x2032, flags: 0 },
  { vendor: 0x8086, device: 0x2033, flags: 0 },
  { vendor: 0x8086, device: 0x2020, flags: 0 },
  { vendor: 0x8086, device: 0x09a2, flags: 0 },
]);

/** pci_bridge_has_acs_redir(): the device's ACS control redirects P2P upstream (RR, CR or EC set). */
export function pciBridgeHasAcsRedir(dev: PciDev): boolean {
  if (!dev.acsCap) return false;
  return (dev.acsCtrl & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)) !== 0;
}

/** cpu_supports_p2pdma(): any x86 AMD CPU of family 0x17 (Zen) or newer. */
export function cpuSupportsP2pdma(cpu: Cpu): boolean {
  return cpu.arch === 'x86_64' && cpu.vendor === 'amd' && cpu.family >= 0x17;
}

/** pci_host_bridge_dev(): the root bus's first device if it is at 00.0 or is a root port, else null. */
export function pciHostBridgeDev(host: PciHostBridge): PciDev | null {
  const root = host.bus.devices[0];
  if (root === undefined) return null;
  if (root.devfn === PCI_DEVFN(0, 0)) return root;
  if (pciPcieType(root) === PCI_EXP_TYPE_ROOT_PORT) return root;
  return null;
}

function hostBridgeOnWhitelist(host: PciHostBridge, sameHostBridge: boolean, warn: boolean): boolean {
  const root = pciHostBridgeDev(host);
  if (root === null) return false;
  for (const entry of PCI_P2PDMA_WHITELIST) {
    if (root.vendor !== entry.vendor || root.device !== entry.device) continue;
    if (entry.flags & REQ_SAME_HOST_BRIDGE && !sameHostBridge) return false;
    return true;
  }
  if (warn) {
    root.topology.devLog(root, `Host bridge not in P2PDMA whitelist: ${pciIds(root.vendor, root.device)}`);
  }
  return false;
}

/**
 * host_bridge_whitelist(): both devices' host bridges are allowed (the same one checked
 * once with "same host bridge" true; two different ones each with it false).
 */
export function hostBridgeWhitelist(a: PciDev, b: PciDev, warn: boolean): boolean {
  const hostA = pciFindHostBridge(a.bus);
  const hostB = pciFindHostBridge(b.bus);
  if (hostA === hostB) return hostBridgeOnWhitelist(hostA, true, warn);
  return hostBridgeOnWhitelist(hostA, false, warn) && hostBridgeOnWhitelist(hostB, false, warn);
}

/** The upstream-bridge walk between a provider and a client. */
export interface P2pdmaWalk {
  /** The first bridge (or the device itself) both share; null when they share none. */
  readonly common: PciDev | null;
  /** `dist_a + dist_b` as the kernel computes it. */
  readonly distance: number;
  /** Devices with ACS redirect on the path, in the order the kernel lists them. */
  readonly acsRedirects: readonly PciDev[];
}

/** The walk at the heart of calc_map_type_and_dist, without logging or caching. */
export function p2pdmaWalk(provider: PciDev, client: PciDev): P2pdmaWalk {
  const acs: PciDev[] = [];
  let a: PciDev | null = provider;
  let distA = 0;
  let distB = 0;
  while (a !== null) {
    distB = 0;
    if (pciBridgeHasAcsRedir(a)) acs.push(a);
    let bb: PciDev | null = client;
    while (bb !== null) {
      if (a === bb) {
        // check_b_path_acs: the client's side below the shared bridge.
        let cb: PciDev | null = client;
        while (cb !== null && cb !== a) {
          if (pciBridgeHasAcsRedir(cb)) acs.push(cb);
          cb = pciUpstreamBridge(cb);
        }
        return { common: a, distance: distA + distB, acsRedirects: acs };
      }
      bb = pciUpstreamBridge(bb);
      distB++;
    }
    a = pciUpstreamBridge(a);
    distA++;
  }
  return { common: null, distance: distA + distB, acsRedirects: acs };
}

/** The seq_buf list of ACS devices as the kernel prints it: `bdf;bdf`, within a 128-byte buffer. */
function acsListString(devs: readonly PciDev[]): string {
  const full = devs.map((d) => `${pciName(d)};`).join('');
  // The kernel drops the final byte (the last ';'); an overflowing buffer keeps 127 bytes.
  return full.length < 128 ? full.slice(0, -1) : full.slice(0, 127);
}

/** A map type with its distance. */
export interface P2pdmaMapTypeAndDist {
  /** The map type (never UNKNOWN). */
  readonly mapType: PciP2pdmaMapType;
  /** The distance (meaningful for every map type; the caller ignores it on NOT_SUPPORTED). */
  readonly distance: number;
}

/**
 * calc_map_type_and_dist(): the map type and distance between a provider and a client,
 * logging why with `verbose`, and caching the type in the provider's p2pdma state.
 */
export function calcMapTypeAndDist(
  provider: PciDev,
  client: PciDev,
  verbose: boolean,
  log?: string[],
): P2pdmaMapTypeAndDist {
  const topo = client.topology;
  const warn = (dev: PciDev, text: string) => {
    const line = topo.devLog(dev, text);
    log?.push(line);
  };
  const walk = p2pdmaWalk(provider, client);
  let mapType: PciP2pdmaMapType = PCI_P2PDMA_MAP_THRU_HOST_BRIDGE;
  let acsRedirects = false;
  if (walk.common !== null && walk.acsRedirects.length === 0) {
    mapType = PCI_P2PDMA_MAP_BUS_ADDR;
  } else {
    if (walk.common !== null) {
      if (verbose) {
        warn(client, `ACS redirect is set between the client and provider (${pciName(provider)})`);
        warn(
          client,
          `to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${acsListString(walk.acsRedirects)}`,
        );
      }
      acsRedirects = true;
    }
    const before = topo.log.length;
    const ok = cpuSupportsP2pdma(topo.cpu) || hostBridgeWhitelist(provider, client, acsRedirects);
    if (log) for (const line of topo.log.slice(before)) log.push(line);
    if (!ok) {
      if (verbose) {
        warn(
          client,
          `cannot be used for peer-to-peer DMA as the client and provider (${pciName(provider)}) do not share an upstream bridge or whitelisted host bridge`,
        );
      }
      mapType = PCI_P2PDMA_MAP_NOT_SUPPORTED;
    }
  }
  provider.p2pdma?.mapTypes.set(mapTypesIdx(client), mapType);
  return { mapType, distance: walk.distance };
}

/**
 * The decision calc_map_type_and_dist makes, without logging or caching: for the
 * transfer model and for tools that print a whole matrix.
 */
export function pciP2pdmaClassify(provider: PciDev, client: PciDev): P2pdmaMapTypeAndDist {
  const walk = p2pdmaWalk(provider, client);
  if (walk.common !== null && walk.acsRedirects.length === 0) {
    return { mapType: PCI_P2PDMA_MAP_BUS_ADDR, distance: walk.distance };
  }
  const ok = cpuSupportsP2pdma(client.topology.cpu) || hostBridgeWhitelist(provider, client, false);
  return {
    mapType: ok ? PCI_P2PDMA_MAP_THRU_HOST_BRIDGE : PCI_P2PDMA_MAP_NOT_SUPPORTED,
    distance: walk.distance,
  };
}

/** map_types_idx(): the cache key of a client, `(domain << 16) | dev_id`. */
export function mapTypesIdx(client: PciDev): number {
  return pciDomainNr(client.bus) * 0x10000 + pciDevId(client);
}

/** find_parent_pci_dev(): the device itself if it is a PCI function, else its nearest PCI ancestor. */
export function findParentPciDev(dev: Device | null): PciDev | null {
  let d = dev;
  while (d !== null) {
    if (devIsPci(d)) return d;
    d = d.parent;
  }
  return null;
}

/**
 * pci_p2pdma_distance_many(): the summed distance from `provider` to every client, or
 * -1 if there are none or any cannot reach it. With `verbose` every client's reason is
 * logged (the loop goes on after the first failure); lines also go to `log` if given.
 */
export function pciP2pdmaDistanceMany(
  provider: PciDev,
  clients: readonly Device[],
  verbose: boolean,
  log?: string[],
): number {
  if (clients.length === 0) return -1;
  let notSupported = false;
  let total = 0;
  for (const c of clients) {
    const pciClient = findParentPciDev(c);
    if (pciClient === null) {
      if (verbose) {
        const line = provider.topology.devLog(
          c,
          'cannot be used for peer-to-peer DMA as it is not a PCI device',
        );
        log?.push(line);
      }
      return -1;
    }
    const { mapType, distance } = calcMapTypeAndDist(provider, pciClient, verbose, log);
    if (mapType === PCI_P2PDMA_MAP_NOT_SUPPORTED) notSupported = true;
    if (notSupported && !verbose) break;
    total += distance;
  }
  return notSupported ? -1 : total;
}

/** pci_p2pdma_distance(): the distance to one client (pci-p2pdma.h). */
export function pciP2pdmaDistance(
  provider: PciDev,
  client: Device,
  verbose: boolean,
  log?: string[],
): number {
  return pciP2pdmaDistanceMany(provider, [client], verbose, log);
}

/** Creates the provider's p2pdma state (the part of pci_p2pdma_setup the map-type cache needs). */
export function pciP2pdmaSetup(provider: PciDev): PciP2pdma {
  provider.p2pdma ??= { mapTypes: new Map() };
  return provider.p2pdma;
}

/**
 * pci_p2pdma_map_type(): the map type for DMA from `dev` to the provider's p2p memory:
 * NOT_SUPPORTED without p2pdma state or for a non-PCI device, else the cached type, or
 * a fresh (verbose) computation.
 */
export function pciP2pdmaMapType(provider: PciDev, dev: Device): PciP2pdmaMapType {
  if (provider.p2pdma === null) return PCI_P2PDMA_MAP_NOT_SUPPORTED;
  if (!devIsPci(dev)) return PCI_P2PDMA_MAP_NOT_SUPPORTED;
  const cached = provider.p2pdma.mapTypes.get(mapTypesIdx(dev)) ?? PCI_P2PDMA_MAP_UNKNOWN;
  if (cached !== PCI_P2PDMA_MAP_UNKNOWN) return cached as PciP2pdmaMapType;
  return calcMapTypeAndDist(provider, dev, true).mapType;
}
