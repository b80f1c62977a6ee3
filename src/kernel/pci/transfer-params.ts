/**
 * The transfer-time model's parameters: every default in one place, each with the
 * figure it comes from (spec/performance.md §1 and §7). A topology overrides any of
 * them (`TopologySpec.params`), and single elements override the per-element ones
 * (a host bridge's P2P factor, the socket link's capacity, a switch's latency).
 *
 * Units: bandwidth in GB/s (10^9 bytes/s), which is also bytes per nanosecond, the
 * unit the flow model computes in; latency in ns; sizes in bytes.
 *
 * Not a kernel concept: the kernel has no timing model. The PCIe facts behind the
 * numbers (encodings, TLP overheads, max payload size negotiation) are from the PCIe
 * specification as summarised in performance.md §1.1-§1.2.
 */
import type { CpuGeneration, PcieGen } from './topology.ts';

/** How a root complex forwards peer-to-peer traffic between its root ports. */
export interface RootComplexP2p {
  /** Fraction of the egress root port's link rate that P2P traffic through the root complex reaches. */
  factor: number;
  /** The root complex forwards P2P writes only; P2P reads fail. */
  writesOnly: boolean;
}

/** Every parameter of the transfer model. */
export interface TransferParams {
  /** Per-lane, per-direction data rate after line encoding (FLIT overhead for Gen6), GB/s. */
  laneGBps: Record<PcieGen, number>;
  /** Bytes of framing, sequence number, header and LCRC per TLP (header only in Gen6 FLIT mode). */
  tlpOverheadBytes: Record<PcieGen, number>;
  /** What DLLPs (ACK/NAK, flow-control credits) and SKP ordered sets leave of the link. */
  dllpEfficiency: number;
  /** If set, every link's efficiency is this instead of the TLP/DLLP computation. */
  linkEfficiency: number | null;
  /** Payload bytes per completion TLP when a device reads (read completions are smaller than MPS). */
  readCompletionBytes: number;
  /** One-way latency of a PCIe switch traversal, port to port, ns. */
  switchLatencyNs: number;
  /** One-way latency of a path through the CPU root complex, ns (once per path). */
  rootComplexLatencyNs: number;
  /** Latency added per PCIe link crossed, ns. */
  linkLatencyNs: number;
  /** Latency of crossing the socket link (UPI/xGMI), ns. */
  socketLinkLatencyNs: number;
  /** Latency of host memory behind the root complex, ns. */
  memoryLatencyNs: number;
  /** DMA bandwidth of one socket's memory, GB/s; null for no limit. */
  memoryGBps: number | null;
  /** Root-complex P2P behaviour by CPU generation. */
  rootComplexP2p: Record<CpuGeneration, RootComplexP2p>;
  /** Bandwidth consumed by P2P traffic leaving an Intel root complex, per byte of payload. */
  intelP2pInflation: number;
  /** Per-direction capacity of the link between two sockets by CPU generation, GB/s. */
  socketLinkGBps: Record<CpuGeneration, number>;
  /** Max payload size supported by elements that do not state one, bytes. */
  mps: { rootPort: number; switchPort: number; endpoint: number };
}

/** A partial `TransferParams`; nested tables (and root-complex entries) may be given in part. */
export type TransferParamsOverride = {
  [K in Exclude<keyof TransferParams, 'rootComplexP2p'>]?: TransferParams[K] extends number | null
    ? TransferParams[K]
    : Partial<TransferParams[K]>;
} & {
  /** Root-complex P2P behaviour by CPU generation, each entry in part. */
  rootComplexP2p?: Partial<Record<CpuGeneration, Partial<RootComplexP2p>>>;
};

const server = (factor: number): RootComplexP2p => ({ factor, writesOnly: false });

/** The defaults. */
export const TRANSFER_DEFAULTS: Readonly<TransferParams> = Object.freeze({
  laneGBps: { 1: 0.25, 2: 0.5, 3: 15.75 / 16, 4: 31.5 / 16, 5: 63 / 16, 6: 118 / 16 },
  tlpOverheadBytes: { 1: 24, 2: 24, 3: 24, 4: 24, 5: 24, 6: 16 },
  dllpEfficiency: 0.95,
  linkEfficiency: null,
  readCompletionBytes: 128,
  switchLatencyNs: 120,
  rootComplexLatencyNs: 300,
  linkLatencyNs: 0,
  socketLinkLatencyNs: 80,
  memoryLatencyNs: 100,
  memoryGBps: null,
  rootComplexP2p: {
    haswell: server(0.56),
    broadwell: server(0.56),
    skylake: server(0.7),
    'cascade-lake': server(0.7),
    'ice-lake': server(0.7),
    'sapphire-rapids': server(0.7),
    'emerald-rapids': server(0.7),
    'intel-client': { factor: 0.7, writesOnly: true },
    'pre-zen': { factor: 0.7, writesOnly: true },
    zen1: server(0.51),
    zen2: server(0.82),
    zen3: server(0.82),
    zen4: server(1.0),
    zen5: server(1.0),
    arm: server(0.7),
    other: server(0.7),
  },
  intelP2pInflation: 1.2,
  socketLinkGBps: {
    haswell: 6,
    broadwell: 6,
    skylake: 10,
    'cascade-lake': 10,
    'ice-lake': 10,
    'sapphire-rapids': 22,
    'emerald-rapids': 40,
    'intel-client': 10,
    'pre-zen': 16,
    zen1: 16,
    zen2: 16,
    zen3: 24,
    zen4: 24,
    zen5: 32,
    arm: 6,
    other: 6,
  },
  mps: { rootPort: 256, switchPort: 512, endpoint: 256 },
});

/** Where each default comes from (spec/performance.md sections; [derived] = arithmetic on them). */
export const TRANSFER_DEFAULT_SOURCES: Readonly<Record<keyof TransferParams, string>> = Object.freeze({
  laneGBps:
    '§1.1: x16 per direction after 128b/130b is Gen3 15.75, Gen4 31.5, Gen5 63.0 GB/s; Gen6 ~118 GB/s ' +
    'after FLIT overhead; Gen1/Gen2 2.5/5 GT/s with 8b/10b [spec]',
  tlpOverheadBytes:
    '§1.2: 5 to 7 dwords (20-28 B) per TLP without ECRC (Intel AN 708), 24 B gives the §7 MPS table ' +
    '(128 B 0.84, 256 B 0.91, 512 B 0.95); Gen6 FLIT mode moves sequence/LCRC into the flit, leaving ' +
    'the 16 B header [derived]',
  dllpEfficiency:
    '§1.2-§1.3 [derived]: DLLP/SKP traffic; with the TLP term a bulk stream reaches 0.80 (128 B) to ' +
    '0.87 (256 B) of the post-encoding rate, inside the 0.77-0.89 rule of thumb',
  linkEfficiency: '§7 "bulk-DMA efficiency on a link 0.85 (0.77-0.91)": set to use one flat figure',
  readCompletionBytes:
    '§1.2: reads cost more than writes (completions bounded by the completion boundary) [derived]: ' +
    '128 B completions give Gen3 x16 host->device 12.6 GB/s (measured 12.1-12.56, §1.3)',
  switchLatencyNs: '§1.4/§7: switch port to port 85-140 ns (pcie-lat #4), default 120 ns one way',
  rootComplexLatencyNs: '§1.4/§7 [derived]: root-complex hop 200-400 ns one way, default 300 ns',
  linkLatencyNs: '§1.4: included in the hop latencies [derived]',
  socketLinkLatencyNs:
    '§1.4 [derived]: GPU P2P 0.44 us cross-socket vs 0.36 us same NUMA (rtx6kpro); §1.6 remote DRAM +40-50 ns',
  memoryLatencyNs: '§1.4 [derived]: endpoint<->host RTT ~850 ns, minus two root-complex hops, rounded down',
  memoryGBps: 'no figure in performance.md: unlimited unless a topology sets it',
  rootComplexP2p:
    '§1.5/§7: Intel client writes only (open-gpu-kernel-modules #1253), pre-Zen AMD writes only ' +
    '(p2pdma.c patch discussion); server factors fitted to the measured cases: Haswell MI25 8.2 GB/s ' +
    'and Broadwell E5-2650v4 7.1 GB/s (0.56), EPYC 7261 7.0 GB/s (0.51), EPYC 7302 A40 40-50 GB/s ' +
    'bidirectional (0.82), Genoa/Turin direct-attach 53-56 GB/s (1.0); others the middle of the ' +
    '0.45-0.9 range (0.7) [derived]',
  intelP2pInflation: '§1.2/§7: NCCL INTEL_P2P_OVERHEAD, x1.2 bandwidth consumed (64-byte TLPs)',
  socketLinkGBps:
    '§1.6/§7: NCCL topo.h socket bandwidth: BDW QPI 6, SKL 10, SPR 22, EMR 40, AMD Zen1/2 16, ' +
    'Zen3/4 24, Zen5 32, ARM 6 GB/s (Haswell takes the BDW figure, Ice Lake the SKL one)',
  mps: '§1.2: MPS 128, 256 or 512 B on most systems, negotiated to the smallest on the path [community]',
});

/** The defaults with `override` applied (nested tables merge key by key). */
export function resolveTransferParams(override: TransferParamsOverride = {}): TransferParams {
  const d = TRANSFER_DEFAULTS;
  const o = override;
  const merged: TransferParams = {
    laneGBps: { ...d.laneGBps, ...o.laneGBps },
    tlpOverheadBytes: { ...d.tlpOverheadBytes, ...o.tlpOverheadBytes },
    dllpEfficiency: o.dllpEfficiency ?? d.dllpEfficiency,
    linkEfficiency: o.linkEfficiency === undefined ? d.linkEfficiency : o.linkEfficiency,
    readCompletionBytes: o.readCompletionBytes ?? d.readCompletionBytes,
    switchLatencyNs: o.switchLatencyNs ?? d.switchLatencyNs,
    rootComplexLatencyNs: o.rootComplexLatencyNs ?? d.rootComplexLatencyNs,
    linkLatencyNs: o.linkLatencyNs ?? d.linkLatencyNs,
    socketLinkLatencyNs: o.socketLinkLatencyNs ?? d.socketLinkLatencyNs,
    memoryLatencyNs: o.memoryLatencyNs ?? d.memoryLatencyNs,
    memoryGBps: o.memoryGBps === undefined ? d.memoryGBps : o.memoryGBps,
    rootComplexP2p: { ...d.rootComplexP2p },
    intelP2pInflation: o.intelP2pInflation ?? d.intelP2pInflation,
    socketLinkGBps: { ...d.socketLinkGBps, ...o.socketLinkGBps },
    mps: { ...d.mps, ...o.mps },
  };
  for (const [gen, v] of Object.entries(o.rootComplexP2p ?? {})) {
    const key = gen as CpuGeneration;
    merged.rootComplexP2p[key] = { ...merged.rootComplexP2p[key], ...v };
  }
  return merged;
}

/** Raw per-direction capacity of a link of `gen` and `width` lanes, GB/s (after encoding). */
export function linkRawGBps(params: TransferParams, gen: PcieGen, width: number): number {
  return params.laneGBps[gen] * width;
}

/**
 * Fraction of a link's raw rate left for payload when TLPs carry `payloadBytes` each:
 * payload / (payload + per-TLP overhead), times the DLLP share; or the flat override.
 */
export function linkEfficiency(params: TransferParams, gen: PcieGen, payloadBytes: number): number {
  if (params.linkEfficiency !== null) return params.linkEfficiency;
  return (payloadBytes / (payloadBytes + params.tlpOverheadBytes[gen])) * params.dllpEfficiency;
}
