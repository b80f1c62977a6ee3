/**
 * DMA transfers on a PCIe topology in virtual time: a transfer is a flow (flow.ts)
 * over the resources of its path (transfer-path.ts), sharing them max-min fairly with
 * every other transfer in flight; its bytes are copied by the caller's function when
 * they land, so what arrives is exactly what was sent, when the model says it arrives.
 *
 * `TransferModel` binds one topology to a flow network (several machines may share
 * one network so that a transfer can also load network links). `predictTransfer` is
 * the analytic answer for a lone transfer, equal to what the model simulates for it.
 *
 * Not a kernel concept (the kernel has no timing model); see performance.md §1, §4.3, §7.
 */
import { tracepoint } from '../trace.ts';
import { drainTimeNs, type Flow, type FlowNetwork, type FlowResource, type FlowUse } from './flow.ts';
import type { PciDev } from './pci.ts';
import type { Socket, Topology } from './topology.ts';
import {
  type TransferEnd,
  type TransferInitiator,
  type TransferPath,
  transferPath,
} from './transfer-path.ts';

/** A transfer to start. */
export interface TransferRequest {
  /** Source: a device id, a socket id (its memory), or the object. */
  src: string | TransferEnd;
  /** Destination, as `src`. */
  dst: string | TransferEnd;
  /** Bytes to move. */
  bytes: number;
  /** Who issues the DMA (default: the source for P2P, the device for host memory). */
  initiator?: TransferInitiator;
  /** Moves the bytes: called with (offset, length) when they land. */
  copy?: (offset: number, length: number) => void;
  /** Land in chunks of this many bytes instead of all at the end. */
  chunkBytes?: number;
  /** Called when the transfer is done, failed or cancelled. */
  onComplete?: (flow: Flow) => void;
  /** The initiator's own rate cap, GB/s (a DMA engine's limit). */
  maxRateGBps?: number;
  /** Extra resources the transfer also loads (a network link, for RDMA). */
  extraUses?: FlowUse[];
  /** A name for traces. */
  label?: string;
}

/** Transfers on one topology, sharing a flow network. */
export class TransferModel {
  private readonly resources = new Map<string, FlowResource>();
  private readonly paths = new Map<string, TransferPath>();

  /** Binds `topology` to `network`. */
  constructor(
    /** The topology transfers run on. */
    readonly topology: Topology,
    /** The flow network (and through it, the engine). */
    readonly network: FlowNetwork,
    /** The machine (kernel name) the topology belongs to, for the transfer tracepoints. */
    readonly host?: string,
  ) {}

  /** The path of a transfer, cached per (src, dst, initiator). */
  path(src: string | TransferEnd, dst: string | TransferEnd, initiator?: TransferInitiator): TransferPath {
    const s = this.end(src);
    const d = this.end(dst);
    const key = `${endKey(s)}>${endKey(d)}>${initiator ?? ''}`;
    let p = this.paths.get(key);
    if (p === undefined) {
      p = transferPath(this.topology, s, d, initiator);
      this.paths.set(key, p);
    }
    return p;
  }

  /** The flow resource behind a path resource key (created on first use). */
  resource(key: string): FlowResource | undefined {
    return this.resources.get(key);
  }

  /**
   * The flow resources a transfer on `path` loads, with their coefficients (created on
   * first use), for a flow of this model's network that also crosses other resources (an
   * RDMA message: both PCIe legs and the wire as one flow).
   */
  flowUses(path: TransferPath): FlowUse[] {
    return path.resources.map((r) => {
      let res = this.resources.get(r.key);
      if (res === undefined) {
        res = this.network.resource(`${this.topology.name}: ${r.name}`, r.capacityGBps);
        this.resources.set(r.key, res);
      }
      return { resource: res, coefficient: r.coefficient };
    });
  }

  /** Starts a transfer now; returns its flow (`flow.wait()` blocks a simulated thread until it is over). */
  start(req: TransferRequest): Flow {
    const path = this.path(req.src, req.dst, req.initiator);
    const label = req.label ?? `${endId(path.src)} -> ${endId(path.dst)} ${req.bytes} B`;
    const uses = this.flowUses(path);
    if (req.extraUses) uses.push(...req.extraUses);
    const engine = this.network.engine;
    // The start tracepoint follows network.start() so it can carry the flow id that the
    // end carries (a flow never finishes inside start(): its end is always an event).
    const flow = this.network.start({
      bytes: req.bytes,
      uses,
      latencyNs: path.latencyNs,
      maxRate: req.maxRateGBps,
      copy: req.copy,
      chunkBytes: req.chunkBytes,
      label,
      failure: path.unsupported ?? undefined,
      onComplete: (f) => {
        tracepoint(engine, 'pcie_transfer_end', { flow: f.id, state: f.state, bytes: f.landed }, this.host);
        req.onComplete?.(f);
      },
    });
    tracepoint(
      engine,
      'pcie_transfer_start',
      {
        flow: flow.id,
        src: endId(path.src),
        dst: endId(path.dst),
        bytes: req.bytes,
        route: path.route,
      },
      this.host,
    );
    return flow;
  }

  /** Starts a transfer and blocks the current simulated thread until it is over. */
  async transfer(req: TransferRequest): Promise<Flow> {
    const f = this.start(req);
    await f.wait();
    return f;
  }

  private end(e: string | TransferEnd): TransferEnd {
    return typeof e === 'string' ? this.topology.node(e) : e;
  }
}

function endId(e: TransferEnd): string {
  return e.id;
}

function endKey(e: TransferEnd): string {
  return 'bus' in e ? (e as PciDev).name : `socket:${(e as Socket).id}`;
}

/** The analytic time and bandwidth of one transfer alone on a topology. */
export interface TransferPrediction {
  /** The path. */
  readonly path: TransferPath;
  /** Bytes. */
  readonly bytes: number;
  /** Steady rate, GB/s. */
  readonly rateGBps: number;
  /** Total time including latency, ns (what the flow model gives a lone transfer). */
  readonly timeNs: number;
  /** bytes / time, GB/s. */
  readonly bandwidthGBps: number;
  /** Why it cannot run (it then fails after `latencyNs`), or null. */
  readonly unsupported: string | null;
}

/** The time and bandwidth of `bytes` from `src` to `dst` with nothing else running. */
export function predictTransfer(
  topology: Topology,
  src: string | TransferEnd,
  dst: string | TransferEnd,
  bytes: number,
  opts: { initiator?: TransferInitiator; maxRateGBps?: number } = {},
): TransferPrediction {
  const s = typeof src === 'string' ? topology.node(src) : src;
  const d = typeof dst === 'string' ? topology.node(dst) : dst;
  const path = transferPath(topology, s, d, opts.initiator);
  const rate = Math.min(path.rateGBps, opts.maxRateGBps ?? Number.POSITIVE_INFINITY);
  const timeNs = drainTimeNs(bytes, rate) + path.latencyNs;
  return {
    path,
    bytes,
    rateGBps: rate,
    timeNs,
    bandwidthGBps: timeNs > 0 ? bytes / timeNs : Number.POSITIVE_INFINITY,
    unsupported: path.unsupported,
  };
}
