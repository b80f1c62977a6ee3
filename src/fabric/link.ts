/**
 * A NIC port's network link: its signalling rate, its one-way latency to the switch and
 * the share of the rate that carries payload for large RDMA messages.
 *
 * Not a kernel concept (the kernel sees only the HCA): this is the wire. Each direction
 * of a link is a capacity-limited resource of the fabric's flow network
 * (src/kernel/pci/flow.ts solves max-min fair sharing on it exactly as on PCIe links).
 * A flow of payload rate R uses R / efficiency of the raw capacity, so a lone large
 * write drains at efficiency x line rate.
 *
 * Efficiency 0.92: spec/performance.md §2.1 (perftest/nccl-tests figures of ~90 to 96%
 * of the signalling rate for large RDMA writes: ~95.4 Gb/s on EDR 100G, ~180 Gb/s on
 * 200G RoCE). Latency default 600 ns per hop (NIC to switch), so two hops plus the
 * switch give ~1.5 us, in line with the 1.7 to 1.8 us `ib_send_lat` of the same table.
 */
import type { FlowResource } from '../kernel/pci/flow.ts';
import type { FabricSwitch } from './switch.ts';

/** Payload share of the line rate for large RDMA writes (performance.md §2.1). */
export const ROCE_LARGE_MESSAGE_EFFICIENCY = 0.92;
/** Default one-way latency of a NIC-to-switch hop, ns. */
export const DEFAULT_LINK_LATENCY_NS = 600;

/** How a port is cabled. */
export interface LinkOptions {
  /** Signalling rate, Gb/s (100, 200, 400...). */
  gbps: number;
  /** One-way latency NIC to switch, ns (default 600). */
  latencyNs?: number;
  /** Payload efficiency for large messages (default 0.92). */
  efficiency?: number;
}

/** One switch port and the NIC port cabled to it. */
export class FabricPort {
  /** Bytes per ns of raw capacity (GB/s). */
  readonly capacityGBps: number;
  /** The switch it is cabled to. */
  fabric: FabricSwitch | null = null;
  /** The kernel of the machine whose NIC owns the port (set when cabled). */
  owner: unknown = null;
  /** Index of the owning NIC among its machine's RDMA devices. */
  nicIndex = 0;

  /** Use `FabricSwitch#addPort`. */
  constructor(
    /** The local identifier (LID) the switch routes by, from 1. */
    readonly lid: number,
    /** Display name (`host1/mlx5_0 port 1`). */
    readonly name: string,
    /** Link rate, Gb/s. */
    readonly gbps: number,
    /** One-way latency to the switch, ns. */
    readonly latencyNs: number,
    /** Payload efficiency. */
    readonly efficiency: number,
    /** Capacity NIC -> switch. */
    readonly tx: FlowResource,
    /** Capacity switch -> NIC. */
    readonly rx: FlowResource,
  ) {
    this.capacityGBps = gbps / 8;
  }

  /** The payload rate of one large message alone on the link, GB/s. */
  get payloadGBps(): number {
    return this.capacityGBps * this.efficiency;
  }
}
