/**
 * The transfers of a scenario run: for each step that moved bytes (a DMA job, an RDMA
 * write or read, a peer-to-peer read) what moved them, from where to where, how many
 * bytes, in how much virtual time, the achieved rate in GB/s and Gb/s and, when the
 * link has a known line rate, the share of it. Steps report their transfer in
 * `StepRecord.transfer`; a run whose steps report none falls back to the PCIe flows of
 * the event log (`pcie_transfer_start` .. `pcie_transfer_end`, by flow id).
 */
import type { RunArtifacts, StepRecord } from '../scenario/runner.ts';
import { formatBytes, formatNs } from './format.ts';

/** One transfer of the report. */
export interface TransferRow {
  /** Virtual time it started, ns after the scenario started. */
  t: number;
  /** The step that made it (its `seq`), when a step reported it. */
  step?: number;
  /** The step's process and label, or the flow's route. */
  by: string;
  /** What moved the bytes: `dma`, `rdma_write`, `p2p_read`, `pcie` (a flow of the log). */
  kind: string;
  /** Source. */
  from: string;
  /** Destination. */
  to: string;
  /** Bytes moved. */
  bytes: number;
  /** Virtual duration, ns. */
  ns: number;
  /** Achieved rate, GB/s (10^9 bytes per second). */
  gBps: number;
  /** Achieved rate, Gb/s. */
  gbps: number;
  /** The link's line rate, Gb/s, when known. */
  lineRateGbps?: number;
  /** Achieved share of the line rate, %, when known. */
  percentOfLine?: number;
}

/** What a step may carry about the bytes it moved (read defensively: older records lack it). */
interface TransferLike {
  kind?: unknown;
  bytes?: unknown;
  ns?: unknown;
  lineRateGbps?: unknown;
  from?: unknown;
  to?: unknown;
}

function row(
  base: Pick<TransferRow, 't' | 'step' | 'by' | 'kind' | 'from' | 'to' | 'bytes' | 'ns'>,
  lineRateGbps?: number,
): TransferRow {
  const gbps = base.ns > 0 ? (base.bytes * 8) / base.ns : 0;
  const r: TransferRow = { ...base, gBps: gbps / 8, gbps };
  if (lineRateGbps !== undefined && lineRateGbps > 0) {
    r.lineRateGbps = lineRateGbps;
    r.percentOfLine = (100 * gbps) / lineRateGbps;
  }
  return r;
}

function fromStep(s: StepRecord): TransferRow | null {
  const t = (s as StepRecord & { transfer?: TransferLike }).transfer;
  if (!t || typeof t.bytes !== 'number' || typeof t.ns !== 'number') return null;
  return row(
    {
      t: s.start,
      step: s.seq,
      by: `${s.process}: ${s.label}`,
      kind: String(t.kind ?? s.kind),
      from: String(t.from ?? '?'),
      to: String(t.to ?? '?'),
      bytes: t.bytes,
      ns: t.ns,
    },
    typeof t.lineRateGbps === 'number' ? t.lineRateGbps : undefined,
  );
}

/** The transfers of a run, in the order they started. */
export function buildTransfers(a: RunArtifacts): TransferRow[] {
  const rows = a.result.steps.map(fromStep).filter((r): r is TransferRow => r !== null);
  if (rows.length > 0) return rows;
  // No step reported one: the PCIe flows of the log.
  const t0 = a.result.t0;
  const open = new Map<unknown, { t: number; args: Record<string, unknown> }>();
  const out: TransferRow[] = [];
  for (const e of a.log) {
    if (e.t < t0) continue;
    if (e.name === 'pcie_transfer_start' && e.args?.flow !== undefined) {
      open.set(e.args.flow, { t: e.t, args: e.args });
    } else if (e.name === 'pcie_transfer_end') {
      const s = open.get(e.args?.flow);
      if (!s) continue;
      open.delete(e.args?.flow);
      if (e.args?.state !== undefined && e.args.state !== 'done') continue;
      out.push(
        row({
          t: s.t - t0,
          by: String(s.args.route ?? 'pcie'),
          kind: 'pcie',
          from: String(s.args.src),
          to: String(s.args.dst),
          bytes: Number(e.args?.bytes ?? s.args.bytes),
          ns: e.t - s.t,
        }),
      );
    }
  }
  return out;
}

/** The transfers as text lines (one per transfer), for the summary. */
export function renderTransfers(rows: TransferRow[]): string[] {
  return rows.map((r) => {
    const line =
      r.percentOfLine === undefined ? '' : `, ${r.percentOfLine.toFixed(1)}% of ${r.lineRateGbps} Gb/s`;
    return `${r.kind} ${r.from} -> ${r.to}: ${formatBytes(r.bytes)} in ${formatNs(r.ns)}, ${r.gBps.toFixed(2)} GB/s (${r.gbps.toFixed(1)} Gb/s${line})`;
  });
}
