/**
 * The `dmabuf-lab topo` view, after `nvidia-smi topo -m`: for every pair of endpoints
 * of a topology, the p2pdma map type and distance the kernel would compute
 * (calc_map_type_and_dist, drivers/pci/p2pdma.c) with the provider in the row and the
 * client in the column, and the predicted time and bandwidth of a lone 1 GiB
 * peer-to-peer transfer from the row to the column on the modelled links.
 */
import {
  PCI_P2PDMA_MAP_BUS_ADDR,
  PCI_P2PDMA_MAP_NOT_SUPPORTED,
  PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
  pciP2pdmaClassify,
  pciP2pdmaMapTypeName,
} from '../kernel/pci/p2pdma.ts';
import type { Topology } from '../kernel/pci/topology.ts';
import { predictTransfer } from '../kernel/pci/transfer.ts';

/** Bytes of the predicted transfer. */
export const TOPO_TRANSFER_BYTES = 2 ** 30;

/** One ordered pair of endpoints. */
export interface TopoPair {
  /** The provider (exporter, source). */
  from: string;
  /** The client (importer, destination). */
  to: string;
  /** The map type's constant name. */
  mapType: string;
  /** The short code shown in the matrix: BUS, HB or NS. */
  code: string;
  /** The p2pdma distance. */
  distance: number;
  /** The route the transfer takes (switch, root-complex...). */
  route: string;
  /** Predicted time of 1 GiB, ns (null when it cannot run). */
  timeNs: number | null;
  /** Predicted bandwidth, GB/s (null when it cannot run). */
  bandwidthGBps: number | null;
  /** Why the transfer cannot run, if it cannot. */
  unsupported: string | null;
}

/** The data behind the view. */
export interface TopoMatrix {
  /** Topology name. */
  name: string;
  /** The CPU. */
  cpu: string;
  /** Endpoints in enumeration order. */
  devices: { id: string; bdf: string; kind: string; link: string }[];
  /** Every ordered pair of distinct endpoints. */
  pairs: TopoPair[];
  /** The `lspci -tv`-like tree. */
  tree: string;
}

const CODES: Record<number, string> = {
  [PCI_P2PDMA_MAP_BUS_ADDR]: 'BUS',
  [PCI_P2PDMA_MAP_THRU_HOST_BRIDGE]: 'HB',
  [PCI_P2PDMA_MAP_NOT_SUPPORTED]: 'NS',
};

/** Computes the matrix of a topology. */
export function topoMatrix(topo: Topology): TopoMatrix {
  const eps = topo.endpoints;
  const pairs: TopoPair[] = [];
  for (const a of eps) {
    for (const b of eps) {
      if (a === b) continue;
      const c = pciP2pdmaClassify(a, b);
      let p: ReturnType<typeof predictTransfer> | null = null;
      let why: string | null = null;
      try {
        p = predictTransfer(topo, a, b, TOPO_TRANSFER_BYTES);
        why = p.unsupported;
      } catch (e) {
        why = (e as Error).message;
      }
      const ok = p !== null && why === null;
      pairs.push({
        from: a.id,
        to: b.id,
        mapType: pciP2pdmaMapTypeName(c.mapType),
        code: CODES[c.mapType] ?? '?',
        distance: c.distance,
        route: p?.path.route ?? 'none',
        timeNs: ok ? p!.timeNs : null,
        bandwidthGBps: ok ? p!.bandwidthGBps : null,
        unsupported: why,
      });
    }
  }
  return {
    name: topo.name,
    cpu: topo.cpu.name,
    devices: eps.map((d) => ({
      id: d.id,
      bdf: d.name,
      kind: d.kind ?? 'other',
      link: d.upLink ? `Gen${d.upLink.gen} x${d.upLink.width}` : 'root bus',
    })),
    pairs,
    tree: topo.describe(),
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
}

/** Renders the matrix as text. */
export function renderTopoMatrix(t: TopoMatrix): string {
  const ids = t.devices.map((d) => d.id);
  const pair = (a: string, b: string) => t.pairs.find((p) => p.from === a && p.to === b)!;
  const out: string[] = [];
  out.push(`topology ${t.name}: ${t.cpu}, ${t.devices.length} endpoints`);
  out.push('');
  out.push(
    ...table([
      ['', ...ids, 'BDF', 'kind', 'link'],
      ...t.devices.map((d) => [
        d.id,
        ...ids.map((b) => (b === d.id ? 'X' : `${pair(d.id, b).code} ${pair(d.id, b).distance}`)),
        d.bdf,
        d.kind,
        d.link,
      ]),
    ]),
  );
  out.push('');
  out.push('Legend (p2pdma map type and distance, provider in the row, client in the column):');
  out.push('  X    = self');
  out.push(
    '  BUS  = PCI_P2PDMA_MAP_BUS_ADDR: both below one switch without ACS redirect; P2P through the switch',
  );
  out.push('  HB   = PCI_P2PDMA_MAP_THRU_HOST_BRIDGE: P2P through an allowed host bridge (the root complex)');
  out.push(
    '  NS   = PCI_P2PDMA_MAP_NOT_SUPPORTED: p2pdma refuses the pair (host bridge not on the whitelist)',
  );
  out.push('  the number is the p2pdma distance (hops to the common upstream bridge)');
  out.push('');
  out.push(
    `Predicted ${TOPO_TRANSFER_BYTES / 2 ** 30} GiB peer-to-peer transfer, row to column, alone on the links (GB/s):`,
  );
  out.push('');
  out.push(
    ...table([
      ['', ...ids],
      ...t.devices.map((d) => [
        d.id,
        ...ids.map((b) => {
          if (b === d.id) return 'X';
          const p = pair(d.id, b);
          return p.bandwidthGBps === null ? '-' : p.bandwidthGBps.toFixed(1);
        }),
      ]),
    ]),
  );
  const failing = t.pairs.filter((p) => p.unsupported !== null);
  if (failing.length > 0) {
    out.push('');
    out.push('  - = the transfer cannot run:');
    const reasons = new Map<string, string[]>();
    for (const p of failing)
      reasons.set(p.unsupported!, [...(reasons.get(p.unsupported!) ?? []), `${p.from}->${p.to}`]);
    for (const [why, ps] of reasons)
      out.push(`      ${why} (${ps.length > 6 ? `${ps.slice(0, 6).join(', ')}, ...` : ps.join(', ')})`);
  }
  out.push('');
  out.push('Tree:');
  for (const l of t.tree.split('\n')) out.push(`  ${l}`);
  return `${out.join('\n')}\n`;
}
