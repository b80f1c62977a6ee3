/**
 * The network switch joining the NIC ports of a cluster, and message delivery across it.
 *
 * Not a kernel concept. A message from port A to port B uses A's transmit direction and
 * B's receive direction (a non-blocking switch: only the edge links limit), each at
 * 1/efficiency capacity per payload byte, and lands after A's hop, the switch's
 * cut-through latency and B's hop. Flows share links max-min fairly through one
 * `FlowNetwork` for the whole fabric (src/kernel/pci/flow.ts), which a Cluster's
 * machines also use for their PCIe transfers, so that a message's flow can also load
 * the PCIe legs at both ends (`extraUses`). The landing callback runs
 * in the hard-IRQ context of the receiving machine's kernel, as a NIC's completion
 * interrupt would.
 */

import { type Flow, FlowNetwork, type FlowUse } from '../kernel/pci/flow.ts';
import { tracepoint } from '../kernel/trace.ts';
import type { Engine } from '../sim/engine.ts';
import {
  DEFAULT_LINK_LATENCY_NS,
  FabricPort,
  type LinkOptions,
  ROCE_LARGE_MESSAGE_EFFICIENCY,
} from './link.ts';

/** Default switch cut-through latency, ns. */
export const DEFAULT_SWITCH_LATENCY_NS = 300;

/** A message to carry. */
export interface FabricMessage {
  /** Payload bytes (0 for a header-only packet such as an ACK or a READ request). */
  bytes: number;
  /** Label for traces. */
  label: string;
  /** Runs when the last byte has landed at the destination. */
  onLand: () => void;
  /** The kernel whose IRQ context runs `onLand` (the receiving machine's). */
  owner: unknown;
  /**
   * Runs when the last byte has left the sending port (one-way latency before `onLand`),
   * in the hard-IRQ context of the sending port's machine: a requester streams its next
   * message then. Runs inside `send` for a message with no payload.
   */
  onSent?: () => void;
  /** A cap on the message's rate from outside the network (the PCIe legs at both ends), GB/s. */
  maxRateGBps?: number;
  /** Latency outside the network (the PCIe legs), ns. */
  extraLatencyNs?: number;
  /**
   * Resources outside the network the message also loads (the PCIe legs at both ends,
   * resources of this switch's flow network), so that its one flow runs at the max-min
   * fair rate over the legs and the wire together.
   */
  extraUses?: FlowUse[];
  /** Runs when the message's flow is over (done, failed or cancelled), before `onLand`. */
  onEnd?: (flow: Flow) => void;
}

/** A non-blocking switch with one port per NIC port. */
export class FabricSwitch {
  /** The flow network of the whole fabric. */
  readonly network: FlowNetwork;
  /** Ports by LID - 1. */
  readonly ports: FabricPort[] = [];
  /** Messages carried. */
  messages = 0;

  /** Creates an empty switch on `engine`. */
  constructor(
    /** The engine (shared clock). */
    readonly engine: Engine,
    /** Cut-through latency, ns. */
    readonly latencyNs = DEFAULT_SWITCH_LATENCY_NS,
  ) {
    this.network = new FlowNetwork(engine);
  }

  /** Cables a new port for NIC `nicIndex` of the machine whose kernel is `owner`; returns it with the next LID. */
  addPort(name: string, link: LinkOptions, owner: unknown = null, nicIndex = 0): FabricPort {
    if (!(link.gbps > 0)) throw new RangeError(`port ${name}: link rate must be positive`);
    const lid = this.ports.length + 1;
    const cap = link.gbps / 8;
    const p = new FabricPort(
      lid,
      name,
      link.gbps,
      link.latencyNs ?? DEFAULT_LINK_LATENCY_NS,
      link.efficiency ?? ROCE_LARGE_MESSAGE_EFFICIENCY,
      this.network.resource(`${name} tx`, cap),
      this.network.resource(`${name} rx`, cap),
    );
    p.fabric = this;
    p.owner = owner;
    p.nicIndex = nicIndex;
    this.ports.push(p);
    return p;
  }

  /** The port with `lid`, or null (no route). */
  port(lid: number): FabricPort | null {
    return this.ports[lid - 1] ?? null;
  }

  /** One-way latency from `a` to `b`, ns. */
  latency(a: FabricPort, b: FabricPort): number {
    return a === b ? 0 : a.latencyNs + this.latencyNs + b.latencyNs;
  }

  /** Sends `msg` from port `from` to port `to`; returns the flow. */
  send(from: FabricPort, to: FabricPort, msg: FabricMessage): Flow {
    this.messages++;
    const engine = this.engine;
    const uses: FlowUse[] =
      from === to
        ? []
        : [
            { resource: from.tx, coefficient: 1 / from.efficiency },
            { resource: to.rx, coefficient: 1 / to.efficiency },
          ];
    if (msg.extraUses) uses.push(...msg.extraUses);
    // Model tracepoints (no kernel counterpart) for messages that carry payload, so the
    // visualiser can draw a transfer on the fabric; header-only packets are left out.
    const traced = msg.bytes > 0;
    let sending = true;
    const flow = this.network.start({
      bytes: msg.bytes,
      uses,
      maxRate: capRate(from === to ? from.payloadGBps : undefined, msg.maxRateGBps),
      latencyNs: this.latency(from, to) + (msg.extraLatencyNs ?? 0),
      label: msg.label,
      onDrained: msg.onSent
        ? () => {
            // Inside `send` (no payload) it runs in the caller's context.
            if (sending) msg.onSent!();
            else engine.runIn(engine.irqContextFor(from.owner), msg.onSent!);
          }
        : undefined,
      onComplete: (f) => {
        if (traced)
          tracepoint(engine, 'fabric_transfer_end', { flow: f.id, state: f.state, bytes: f.landed });
        msg.onEnd?.(f);
        if (f.state !== 'done') return;
        engine.runIn(engine.irqContextFor(msg.owner), msg.onLand);
      },
    });
    sending = false;
    if (traced) {
      tracepoint(engine, 'fabric_transfer_start', {
        flow: flow.id,
        src: from.name,
        dst: to.name,
        bytes: msg.bytes,
        label: msg.label,
      });
    }
    return flow;
  }
}

function capRate(a: number | undefined, b: number | undefined): number | undefined {
  const r = Math.min(a ?? Number.POSITIVE_INFINITY, b ?? Number.POSITIVE_INFINITY);
  return Number.isFinite(r) && r > 0 ? r : undefined;
}

const PORTS = Symbol('fabric_ports');

/** The fabric ports cabled to a kernel's NICs, in NIC order (set by the Cluster). */
export function fabricPorts(k: { singletons: Map<symbol, unknown> }): FabricPort[] {
  let l = k.singletons.get(PORTS) as FabricPort[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(PORTS, l);
  }
  return l;
}
