/**
 * The path a DMA transfer takes through a PCIe topology, and what it costs: the
 * resources it loads (each direction of each PCIe link, the root complex's P2P
 * forwarding, the socket link, memory), how much of each per byte, and its latency.
 *
 * Routing follows the walk p2pdma does (p2pdma.ts): two devices that share an upstream
 * bridge with no ACS redirect talk through that bridge (up the source's links, across
 * the switch, down the destination's); otherwise the traffic climbs to the root port,
 * crosses the root complex (and the socket link if the two sides sit on different
 * sockets) and comes down the other side, even when both sit below the same switch.
 * Two functions of one device exchange data inside the device (a port never sends a
 * TLP back out of the port it came in by). Transfers to or from host memory always
 * cross the root complex.
 *
 * Costs (defaults in transfer-params.ts, performance.md §7):
 * - a link direction's capacity is its raw rate (generation x width after encoding);
 *   a flow consumes 1/efficiency of it per payload byte, efficiency = payload/(payload +
 *   TLP overhead) x DLLP share, with payload = the smaller max payload size of the two
 *   ends for writes and `readCompletionBytes` (if smaller) for reads;
 * - P2P through a root complex is limited to `factor` of the egress root port's link
 *   (one resource per root port, shared by all P2P flows leaving there), optionally by
 *   an aggregate per host bridge, and on Intel consumes `intelP2pInflation` times more
 *   of the links below the egress root port; a root complex that forwards writes only
 *   fails P2P reads;
 * - latency: each switch traversal, one root-complex hop when the path goes through
 *   the host, the socket link when it crosses sockets, memory when an end is host
 *   memory, and `linkLatencyNs` per link.
 *
 * The `initiator` issues the DMA: for P2P it is the source by default (posted writes);
 * with host memory it is the device (it reads host memory, or writes it).
 */
import { type P2pdmaMapTypeAndDist, p2pdmaWalk, pciP2pdmaClassify } from './p2pdma.ts';
import { type PciDev, pciFindHostBridge, pciUpstreamBridge } from './pci.ts';
import type { PcieLink, PcieSwitch, Socket, Topology } from './topology.ts';
import { linkEfficiency, linkRawGBps } from './transfer-params.ts';

/** A transfer end: a PCI function, or a socket meaning its host memory. */
export type TransferEnd = PciDev | Socket;

/** Which side issues the DMA: `src` writes to the destination, `dst` reads from the source. */
export type TransferInitiator = 'src' | 'dst';

/** A resource a path loads, identified by a key unique within its topology. */
export interface PathResource {
  /** Stable key (`link:0000:03:00.0:up`, `rc-p2p:0000:00:01.0`, `socket-link:cpu0->cpu1`, `memory:cpu0`). */
  readonly key: string;
  /** Display name. */
  readonly name: string;
  /** Capacity, GB/s (raw for PCIe links, payload for the others). */
  readonly capacityGBps: number;
  /** Capacity consumed per payload byte. */
  readonly coefficient: number;
}

/** How a path goes. */
export type PathRoute = 'device-internal' | 'switch' | 'root-complex' | 'host-memory';

/** A transfer's path and costs. */
export interface TransferPath {
  /** Source. */
  readonly src: TransferEnd;
  /** Destination. */
  readonly dst: TransferEnd;
  /** Who issues the DMA. */
  readonly initiator: TransferInitiator;
  /** How the path goes. */
  readonly route: PathRoute;
  /** The p2pdma decision (provider = src, client = dst) for transfers between two PCI functions. */
  readonly p2pdma: P2pdmaMapTypeAndDist | null;
  /** Elements crossed, in order, for display. */
  readonly hops: readonly string[];
  /** Resources loaded. */
  readonly resources: readonly PathResource[];
  /** One-way latency, ns. */
  readonly latencyNs: number;
  /** TLP payload size used, bytes. */
  readonly payloadBytes: number;
  /** Switch traversals. */
  readonly switchTraversals: number;
  /** Whether the path crosses the socket link. */
  readonly crossesSockets: boolean;
  /** Why the transfer cannot happen on this path (a writes-only root complex asked to read), or null. */
  readonly unsupported: string | null;
  /** A lone flow's rate on this path, GB/s (Infinity for a device-internal path). */
  readonly rateGBps: number;
  /** The resource that limits a lone flow, or null. */
  readonly bottleneck: PathResource | null;
}

/** What one step between a function and its upstream bridge crosses. */
type Step = { kind: 'link'; link: PcieLink } | { kind: 'switch'; sw: PcieSwitch };

/** Whether a transfer end is host memory. */
export function isSocketEnd(e: TransferEnd): e is Socket {
  return !('bus' in e);
}

/** The steps from `x` up to (excluding) `stop`, or to the root bus when `stop` is null, bottom first. */
function stepsUp(x: PciDev, stop: PciDev | null): { steps: Step[]; top: PciDev } {
  const steps: Step[] = [];
  let c: PciDev = x;
  for (;;) {
    if (c.upLink !== null) steps.push({ kind: 'link', link: c.upLink });
    else if (c.role === 'switch-downstream' && c.switch !== null)
      steps.push({ kind: 'switch', sw: c.switch });
    const up = pciUpstreamBridge(c);
    if (up === null || up === stop) return { steps, top: c };
    c = up;
  }
}

/** Computes the path of a transfer of data from `src` to `dst`. */
export function transferPath(
  topology: Topology,
  src: TransferEnd,
  dst: TransferEnd,
  initiator?: TransferInitiator,
): TransferPath {
  const p = topology.params;
  if (isSocketEnd(src) && isSocketEnd(dst)) {
    throw new Error(
      `transfer ${src.id} -> ${dst.id}: host memory to host memory is a CPU copy, not a DMA transfer`,
    );
  }
  const devEnds = [src, dst].filter((e): e is PciDev => !isSocketEnd(e));
  for (const d of devEnds) {
    if (d.role !== 'endpoint') {
      throw new Error(`transfer end "${d.id}" (${d.name}) is a ${d.role}, not an endpoint or a socket`);
    }
  }
  const init: TransferInitiator = initiator ?? (isSocketEnd(src) ? 'dst' : 'src');
  const mps = Math.min(...devEnds.map((d) => d.mps));
  const payload = init === 'dst' ? Math.min(mps, p.readCompletionBytes) : mps;

  const resources: PathResource[] = [];
  const hops: string[] = [];
  let latency = 0;
  let switches = 0;
  let crosses = false;
  let unsupported: string | null = null;
  let route: PathRoute;
  let p2p: P2pdmaMapTypeAndDist | null = null;

  const emit = (steps: Step[], dir: 'up' | 'down', inflation: number) => {
    for (const s of steps) {
      if (s.kind === 'switch') {
        switches++;
        latency += s.sw.latencyNs;
        hops.push(`switch ${s.sw.id}`);
        continue;
      }
      const l = s.link;
      resources.push({
        key: `link:${l.child.name}:${dir}`,
        name: `PCIe ${l.label} ${dir}`,
        capacityGBps: linkRawGBps(p, l.gen, l.width),
        coefficient: inflation / linkEfficiency(p, l.gen, payload),
      });
      latency += p.linkLatencyNs;
      hops.push(`link ${l.label} ${dir}`);
    }
  };
  const crossSockets = (a: Socket, b: Socket) => {
    if (a === b) return;
    const l = topology.socketLink(a, b);
    if (l === null)
      throw new Error(`topology "${topology.name}" has no link between sockets ${a.id} and ${b.id}`);
    crosses = true;
    latency += l.latencyNs;
    resources.push({
      key: `socket-link:${a.id}->${b.id}`,
      name: `${l.kind} ${a.id} -> ${b.id}`,
      capacityGBps: l.capacityGBps,
      coefficient: 1,
    });
    hops.push(`${l.kind} ${a.id} -> ${b.id}`);
  };

  if (!isSocketEnd(src) && !isSocketEnd(dst)) {
    p2p = pciP2pdmaClassify(src, dst);
    const walk = p2pdmaWalk(src, dst);
    const direct = walk.common !== null && walk.acsRedirects.length === 0;
    hops.push(src.id);
    if (src === dst || (direct && src.bus === dst.bus && src.devfn >> 3 === dst.devfn >> 3)) {
      route = 'device-internal';
    } else if (direct) {
      route = 'switch';
      const common = walk.common!;
      const up = stepsUp(src, common).steps;
      const down = stepsUp(dst, common).steps.reverse();
      // Turning inside a switch (the shared bridge is its upstream port) crosses it once.
      const last = up.at(-1);
      const first = down[0];
      if (last?.kind === 'switch' && first?.kind === 'switch' && last.sw === first.sw) down.shift();
      emit(up, 'up', 1);
      emit(down, 'down', 1);
    } else {
      route = 'root-complex';
      const hbA = pciFindHostBridge(src.bus);
      const hbB = pciFindHostBridge(dst.bus);
      emit(stepsUp(src, null).steps, 'up', 1);
      latency += p.rootComplexLatencyNs;
      hops.push(`root complex ${hbA.id}`);
      crossSockets(hbA.socket, hbB.socket);
      if (hbB !== hbA) hops.push(`root complex ${hbB.id}`);
      for (const hb of hbA === hbB ? [hbA] : [hbA, hbB]) {
        const rc = topology.rootComplexP2p(hb);
        if (rc.writesOnly && init === 'dst' && unsupported === null) {
          unsupported =
            `the root complex of ${hb.id} (${topology.cpu.name}) forwards peer-to-peer writes only: ` +
            `${dst.id} cannot read from ${src.id}`;
        }
        if (rc.aggregateGBps !== null) {
          resources.push({
            key: `rc-p2p-all:${hb.name}`,
            name: `root complex ${hb.id} P2P`,
            capacityGBps: rc.aggregateGBps,
            coefficient: 1,
          });
        }
      }
      const { steps, top: egress } = stepsUp(dst, null);
      const el = egress.downLink;
      if (egress.role === 'root-port' && el !== null) {
        resources.push({
          key: `rc-p2p:${egress.name}`,
          name: `root complex ${hbB.id} P2P out of ${egress.id}`,
          capacityGBps: topology.rootComplexP2p(hbB).factor * linkRawGBps(p, el.gen, el.width),
          coefficient: 1 / linkEfficiency(p, el.gen, payload),
        });
      }
      emit(steps.reverse(), 'down', topology.cpu.vendor === 'intel' ? p.intelP2pInflation : 1);
    }
    hops.push(dst.id);
  } else {
    route = 'host-memory';
    const toMem = isSocketEnd(dst);
    const dev = (toMem ? src : dst) as PciDev;
    const mem = (toMem ? dst : src) as Socket;
    const hb = pciFindHostBridge(dev.bus);
    latency += p.rootComplexLatencyNs + p.memoryLatencyNs;
    const memory = () => {
      hops.push(`memory ${mem.id}`);
      if (mem.memoryGBps !== null) {
        resources.push({
          key: `memory:${mem.id}`,
          name: `memory of ${mem.id}`,
          capacityGBps: mem.memoryGBps,
          coefficient: 1,
        });
      }
    };
    const steps = stepsUp(dev, null).steps;
    if (toMem) {
      hops.push(dev.id);
      emit(steps, 'up', 1);
      hops.push(`root complex ${hb.id}`);
      crossSockets(hb.socket, mem);
      memory();
    } else {
      memory();
      crossSockets(mem, hb.socket);
      hops.push(`root complex ${hb.id}`);
      emit(steps.reverse(), 'down', 1);
      hops.push(dev.id);
    }
  }

  let rate = Number.POSITIVE_INFINITY;
  let bottleneck: PathResource | null = null;
  for (const r of resources) {
    const v = r.capacityGBps / r.coefficient;
    if (v < rate) {
      rate = v;
      bottleneck = r;
    }
  }
  return {
    src,
    dst,
    initiator: init,
    route,
    p2pdma: p2p,
    hops,
    resources,
    latencyNs: latency,
    payloadBytes: payload,
    switchTraversals: switches,
    crossesSockets: crosses,
    unsupported,
    rateGBps: rate,
    bottleneck,
  };
}
