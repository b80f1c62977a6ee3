/**
 * The data the visualiser shows for one scenario run: rows (process threads, kernel
 * contexts, device DMA engines, fence contexts), step and syscall slices, fence
 * lifetimes, wake-up arrows, rule reports, the dma-bufs of the run with their holders,
 * attachments and mappings, and the PCIe topology of every host as a nested graph with
 * the memory each device has in use and the transfers on it over time.
 *
 * Everything is derived from the run's record and event log, in log order, so the
 * same seed gives the same data byte for byte. Times are ns after the scenario started.
 *
 * Buffers come from the dma-buf tracepoints (`dma_buf_export`, `dma_buf_fd`,
 * `dma_buf_attach`... of include/trace/events/dma_buf.h, landed after 6.12) when the log
 * has them, and from the steps otherwise: each successful `heap_alloc` or `udmabuf` step
 * creates one; an fd sent over a channel (`send <ch> fd <name>`) and received (`recv
 * <ch>`, first in first out per channel) makes the receiver a holder; every step whose
 * label names a holder's binding is a use of the buffer, and `close <name>` ends that
 * holder's hold. With both, a step-made buffer is matched to the exported one whose first
 * fd was installed in the same process during that step, and lends it its name and uses.
 *
 * Transfers come from the model's `pcie_transfer_start`/`_end` (paired by flow id) and
 * `fabric_transfer_start`/`_end` tracepoints; memory in use from `mem_in_use`; syscall
 * slices from `sys_enter`/`sys_exit`.
 */
import { type PciDev, pciUpstreamBridge } from '../kernel/pci/pci.ts';
import type { Topology } from '../kernel/pci/topology.ts';
import type { RunArtifacts, StepRecord } from '../scenario/runner.ts';
import type { LogEntry } from '../sim/event-log.ts';
import { type TopoMatrix, topoMatrix } from './topo-matrix.ts';

/** What a row shows. */
export type RowKind = 'thread' | 'irq' | 'kernel' | 'kthread' | 'engine' | 'fence';

/** One timeline row. */
export interface ViewRow {
  /** Stable key: `t:<pid>:<tid>`, `irq`, `kernel`, `k:<task>`, `e:<host>:<engine>`, `f:<context>` (`f:<host>:<context>` on several hosts). */
  id: string;
  /** The group it sits in: a process name, `kernel`, `engines` or `fences`. */
  group: string;
  /** Its label. */
  label: string;
  /** What it is. */
  kind: RowKind;
}

/** A step as a slice on its thread's row. */
export interface ViewSlice {
  /** Row index. */
  row: number;
  /** Start, ns. */
  start: number;
  /** End, ns (the run's end if the step never ended). */
  end: number;
  /** Label. */
  label: string;
  /** The step kind. */
  kind: string;
  /** How it ended. */
  outcome: string;
  /** Line in the scenario file. */
  line: number;
  /** A phrase describing the result, if any. */
  summary?: string;
  /** Indexes of the buffers this step uses. */
  bufs: number[];
}

/** A fence from `dma_fence_init` to `dma_fence_signaled` (or the end of the run). */
export interface ViewFence {
  /** Row index (its fence context). */
  row: number;
  /** `driver:timeline`. */
  name: string;
  /** Fence context. */
  context: number;
  /** Sequence number. */
  seqno: number;
  /** Created, ns. */
  start: number;
  /** Signalled, ns (the run's end if never). */
  end: number;
  /** Whether it was signalled. */
  signalled: boolean;
  /** The error it was signalled with, if any (negative errno). */
  error?: number;
  /** Who created it (row index). */
  by: number;
}

/** A wake-up of one row by another. */
export interface ViewArrow {
  /** When, ns. */
  t: number;
  /** Waker row. */
  from: number;
  /** Woken row. */
  to: number;
}

/** A rule report. */
export interface ViewReport {
  /** When, ns. */
  t: number;
  /** warning, violation, leak... */
  type: string;
  /** The rule id. */
  rule: string;
  /** The full message. */
  message: string;
  /** Where it was raised. */
  context: string;
  /** Row index, or -1 if it is not on a row. */
  row: number;
  /** The objects involved. */
  objects: string[];
}

/** One process holding a buffer. */
export interface ViewHolder {
  /** Process name. */
  process: string;
  /** Process id. */
  pid: number;
  /** The name the fd is bound to. */
  as: string;
  /** From, ns. */
  since: number;
  /** Until (closed), ns, or null while held at the end. */
  until: number | null;
}

/** A dma-buf of the run. */
export interface ViewBuffer {
  /** Index (also its id in deep links). */
  id: number;
  /** `process:binding`. */
  name: string;
  /** The exporter: `system heap`, `udmabuf`... */
  exporter: string;
  /** Size, as the step said it. */
  size: string;
  /** Created, ns. */
  created: number;
  /** Released (no holder left), ns, or null. */
  released: number | null;
  /** The processes that held an fd of it. */
  holders: ViewHolder[];
  /** Steps that used it (indexes into slices). */
  uses: number[];
  /** The dma-buf's inode number, when the log has dma-buf tracepoints. */
  ino?: number;
  /** The host it lives on (multi-host runs). */
  host?: string;
  /** Size in bytes, when known. */
  bytes?: number;
  /** Importers' attachments. */
  attachments: ViewAttachment[];
  /** `dma_buf_move_notify` times, ns. */
  moves: number[];
  /** `dma_buf_mmap` times, ns. */
  mmaps: number[];
}

/** An attachment of a dma-buf to an importing device (`dma_buf_attach` to `dma_buf_detach`). */
export interface ViewAttachment {
  /** The attachment's number in the run (1, 2... in order of attaching). */
  attach: number;
  /** The importer's kernel device name. */
  dev: string;
  /** The importer's topology endpoint (`nic0`), if it sits on the PCIe topology. */
  endpoint: string | null;
  /** Whether the importer is dynamic (has move_notify). */
  dynamic: boolean;
  /** Whether the importer allows peer-to-peer. */
  peer2peer: boolean;
  /** Attached, ns. */
  since: number;
  /** Detached, ns, or null while attached at the end. */
  until: number | null;
  /** Pinned spans, ns (`until` null: pinned at the end). */
  pins: { since: number; until: number | null }[];
  /** Mappings (`dma_buf_map_attachment` to `dma_buf_unmap_attachment`). */
  maps: { since: number; until: number | null; nents: number; pages: boolean }[];
}

/** A node of the topology graph (compound nodes nest: host > socket > root complex). */
export interface ViewTopoNode {
  /** Unique id: `h:<host>`, `s:<host>:<socket>`, `rc:<host>:<hb>`, `d:<host>:<id>`, `sw:<host>:<id>`, `fabric`. */
  id: string;
  /** The compound it sits in, or null. */
  parent: string | null;
  /** What it is. */
  kind: 'host' | 'socket' | 'root-complex' | 'root-port' | 'switch' | 'endpoint' | 'fabric';
  /** Label. */
  label: string;
  /** The host it belongs to ('' for the fabric). */
  host: string;
  /** The topology id of a PCI node (`accel0`, `sw0`, `rp0`), or the socket id. */
  ref: string;
  /** For endpoints: accelerator, nic, gpu, nvme... */
  devKind?: string;
}

/** An edge of the topology graph. */
export interface ViewTopoEdge {
  /** Unique id. */
  id: string;
  /** Upstream end. */
  source: string;
  /** Downstream end. */
  target: string;
  /** A PCIe link, a link between sockets, or a fabric cable. */
  kind: 'pcie' | 'socket-link' | 'fabric';
  /** Label (`Gen4 x16`, `upi`, `100 Gb/s`). */
  label: string;
}

/** The topology of every host of the run, as one graph. */
export interface ViewGraph {
  /** Nodes, parents before children. */
  nodes: ViewTopoNode[];
  /** Edges. */
  edges: ViewTopoEdge[];
}

/** One memory pool's bytes in use over time (`mem_in_use`). */
export interface ViewMemory {
  /** Host. */
  host: string;
  /** Pool: system-heap, cma, hbm, vram, gtt, bar... */
  pool: string;
  /** The graph node it belongs to (a device, or the host for system memory). */
  node: string;
  /** Change times, ns, ascending. */
  t: number[];
  /** Bytes in use from the matching time on. */
  bytes: number[];
}

/** A DMA transfer (PCIe or fabric) from its start to its end. */
export interface ViewTransfer {
  /** PCIe transfer or fabric message. */
  kind: 'pcie' | 'fabric';
  /** Host (the fabric's: ''). */
  host: string;
  /** Flow id within its network. */
  flow: number;
  /** Source (topology id or fabric port). */
  src: string;
  /** Destination. */
  dst: string;
  /** Bytes asked for. */
  bytes: number;
  /** Route: switch, root-complex, host-memory, device-internal, fabric. */
  route: string;
  /** Started, ns. */
  start: number;
  /** Ended, ns (the run's end if it never did). */
  end: number;
  /** done, failed, cancelled, or active (still running at the end). */
  state: string;
  /** Achieved bandwidth over its life, GB/s (bytes landed / time), or null. */
  gbps: number | null;
  /** The graph edges it crosses. */
  edges: string[];
  /** Its engine row. */
  row: number;
}

/** A syscall, from `sys_enter` to `sys_exit`, on its thread's row. */
export interface ViewCall {
  /** Row index. */
  row: number;
  /** Entered, ns. */
  start: number;
  /** Returned, ns (the run's end if it never did). */
  end: number;
  /** `ioctl(DMA_BUF_IOCTL_SYNC)`, `mmap`... */
  label: string;
  /** Return value, or null if it never returned. */
  ret: number | string | null;
}

/** The topology of one host, for the p2pdma pair view. */
export interface ViewHost {
  /** Host name. */
  name: string;
  /** Devices, map types and predicted bandwidth of every pair. */
  matrix: TopoMatrix;
}

/** Everything the visualiser shows. */
export interface ViewData {
  /** Format version. */
  version: 1;
  /** The scenario. */
  scenario: { name: string; file: string; description?: string };
  /** Seed. */
  seed: number;
  /** How the run ended. */
  status: string;
  /** All expectations met. */
  ok: boolean;
  /** Run length, ns. */
  duration: number;
  /** Event-log entries. */
  events: number;
  /** Event-log digest. */
  logHash: string;
  /** Rows. */
  rows: ViewRow[];
  /** Step slices. */
  slices: ViewSlice[];
  /** Fence lifetimes. */
  fences: ViewFence[];
  /** Wake-ups. */
  arrows: ViewArrow[];
  /** Rule reports. */
  reports: ViewReport[];
  /** dma-bufs. */
  buffers: ViewBuffer[];
  /** The topology the scenario names (devices, tree, p2pdma matrix; the first host's), or null. */
  topology: TopoMatrix | null;
  /** Every host's topology (empty when the scenario names none). */
  hosts: ViewHost[];
  /** The topologies as one nested graph, or null. */
  graph: ViewGraph | null;
  /** Memory in use per pool over time. */
  memory: ViewMemory[];
  /** DMA transfers. */
  transfers: ViewTransfer[];
  /** Syscall slices. */
  calls: ViewCall[];
}

const BUFFER_KINDS: Record<string, (label: string) => { exporter: string; size: string }> = {
  heap_alloc: (l) => {
    const [, heap = '?', size = '?'] = l.split(' ');
    return { exporter: `${heap} heap`, size };
  },
  udmabuf: (l) => ({ exporter: 'udmabuf', size: l.split(' ')[2] ?? '?' }),
};

/** The hosts of a scenario with their topologies (a `CompiledScenario` is one). */
export interface ViewHostsSource {
  /** Hosts in boot order; a null topology is the default machine (not drawn). */
  hosts: { name: string; topology: Topology | null }[];
}

/**
 * Builds the view data of a run. `topology`: the scenario's single topology, or the
 * compiled scenario itself (every host's topology), for the topology view.
 */
export function buildViewData(a: RunArtifacts, topology: Topology | ViewHostsSource | null = null): ViewData {
  const { result, log, tasks } = a;
  const firstHost = (result as { hosts?: { name: string }[] }).hosts?.[0]?.name ?? 'host1';
  const topos: { name: string; topology: Topology }[] =
    topology === null
      ? []
      : 'hosts' in topology
        ? topology.hosts.flatMap((h) => (h.topology === null ? [] : [{ name: h.name, topology: h.topology }]))
        : [{ name: firstHost, topology }];
  const graph = topos.length === 0 ? null : topologyGraph(topos, fabricNics(log));
  const t0 = result.t0;
  const duration = result.duration;
  const rows: ViewRow[] = [];
  const rowIndex = new Map<string, number>();
  const row = (id: string, group: string, label: string, kind: RowKind): number => {
    let i = rowIndex.get(id);
    if (i === undefined) {
      i = rows.length;
      rows.push({ id, group, label, kind });
      rowIndex.set(id, i);
    }
    return i;
  };
  for (const p of result.processes) {
    for (const t of p.threads) row(`t:${p.pid}:${t.tid}`, p.name, `${t.name} (${t.tid})`, 'thread');
  }
  const taskRow = (task: number, ctx: string): number => {
    const info = tasks.get(task);
    if (info) return row(`t:${info.pid}:${info.tid}`, info.process, `${info.thread} (${info.tid})`, 'thread');
    return row(`k:${task}`, 'kernel', ctx, 'kthread');
  };
  const ctxRow = (ctx: string): number => {
    const m = /^(.*)\/(\d+)$/.exec(ctx);
    if (m) return taskRow(Number(m[2]), ctx);
    return ctx === 'irq'
      ? row('irq', 'kernel', 'hardirq', 'irq')
      : row('kernel', 'kernel', 'kernel', 'kernel');
  };

  const slices: ViewSlice[] = result.steps.map((s) => ({
    row: row(`t:${s.pid}:${s.tid}`, s.process, `${s.thread} (${s.tid})`, 'thread'),
    start: s.start,
    end: s.end ?? duration,
    label: s.label,
    kind: s.kind,
    outcome: s.outcome,
    line: s.line,
    ...(s.summary === undefined ? {} : { summary: s.summary }),
    bufs: [],
  }));

  const fences: ViewFence[] = [];
  const arrows: ViewArrow[] = [];
  const open = new Map<string, number[]>();
  const hostOf = (e: LogEntry): string => {
    if (e.host !== undefined) return e.host;
    const h = e.args?.host;
    if (typeof h === 'string') return h;
    const m = /\/(\d+)$/.exec(e.ctx);
    const info = m ? tasks.get(Number(m[1])) : undefined;
    return info?.host ?? topos[0]?.name ?? firstHost;
  };
  const transfers: ViewTransfer[] = [];
  const openXfer = new Map<string, number[]>();
  const mem = new Map<string, ViewMemory>();
  const calls: ViewCall[] = [];
  const openCalls = new Map<string, number[]>();
  for (const e of log) {
    const t = Math.max(0, e.t - t0);
    const args = e.args ?? {};
    if (e.name === 'pcie_transfer_start' || e.name === 'fabric_transfer_start') {
      const fabric = e.name === 'fabric_transfer_start';
      const host = fabric ? '' : hostOf(e);
      const src = String(args.src);
      const dst = String(args.dst);
      const route = fabric ? 'fabric' : String(args.route ?? '');
      const engine = fabric
        ? `${src} tx`
        : `${src} DMA${host === '' || topos.length < 2 ? '' : ` (${host})`}`;
      const r = row(`e:${host}:${src}`, 'engines', engine, 'engine');
      if (args.flow !== undefined) {
        const key = `${fabric ? 'f' : 'p'}:${args.flow}`;
        openXfer.set(key, [...(openXfer.get(key) ?? []), transfers.length]);
      }
      transfers.push({
        kind: fabric ? 'fabric' : 'pcie',
        host,
        flow: Number(args.flow ?? -1),
        src,
        dst,
        bytes: Number(args.bytes ?? 0),
        route,
        start: t,
        end: duration,
        state: 'active',
        gbps: null,
        edges:
          graph === null
            ? []
            : fabric
              ? fabricEdges(graph, src, dst)
              : routeEdges(graph, host, src, dst, route),
        row: r,
      });
      continue;
    }
    if (e.name === 'pcie_transfer_end' || e.name === 'fabric_transfer_end') {
      const fabric = e.name === 'fabric_transfer_end';
      // Each host has its own flow network, so ids repeat across hosts; an end raised in a
      // task goes to that task's host's flow, one raised in an interrupt to the oldest open.
      const list = openXfer.get(`${fabric ? 'f' : 'p'}:${args.flow}`) ?? [];
      const mine =
        fabric || !/\/\d+$/.test(e.ctx) ? -1 : list.findIndex((j) => transfers[j].host === hostOf(e));
      const i = list.splice(Math.max(mine, 0), 1)[0];
      if (i !== undefined) {
        const x = transfers[i];
        x.end = t;
        x.state = String(args.state ?? 'done');
        const landed = Number(args.bytes ?? x.bytes);
        x.gbps = t > x.start && landed > 0 ? landed / (t - x.start) : null;
      }
      continue;
    }
    if (e.name === 'mem_in_use') {
      const host = hostOf(e);
      const pool = String(args.pool ?? '?');
      const dev = args.device === undefined ? null : String(args.device);
      const node =
        dev !== null && graph !== null && graphHas(graph, `d:${host}:${dev}`)
          ? `d:${host}:${dev}`
          : `h:${host}`;
      const key = `${host}\u0000${pool}\u0000${dev ?? ''}`;
      let m = mem.get(key);
      if (!m) {
        m = { host, pool: dev === null ? pool : `${dev} ${pool}`, node, t: [], bytes: [] };
        mem.set(key, m);
      }
      const bytes = Number(args.bytes ?? 0);
      if (m.t.length > 0 && m.t[m.t.length - 1] === t) m.bytes[m.bytes.length - 1] = bytes;
      else {
        m.t.push(t);
        m.bytes.push(bytes);
      }
      continue;
    }
    if (e.name === 'sys_enter' || e.name === 'sys_exit') {
      const stack = openCalls.get(e.ctx) ?? [];
      openCalls.set(e.ctx, stack);
      if (e.name === 'sys_enter') {
        const name = String(args.name ?? args.nr ?? '?');
        const cmd = args.cmd === undefined ? '' : String(args.cmd);
        stack.push(calls.length);
        calls.push({
          row: ctxRow(e.ctx),
          start: t,
          end: duration,
          label: `${name}(${cmd || (args.fd === undefined ? '' : `fd ${args.fd}`)})`,
          ret: null,
        });
      } else {
        const i = stack.pop();
        if (i !== undefined) {
          calls[i].end = t;
          calls[i].ret =
            args.ret === undefined ? null : typeof args.ret === 'boolean' ? Number(args.ret) : args.ret;
        }
      }
      continue;
    }
    if (e.t < t0) continue;
    if (e.name === 'dma_fence_init' || e.name === 'dma_fence_signaled') {
      const context = Number(e.args?.context ?? 0);
      const seqno = Number(e.args?.seqno ?? 0);
      // Fence contexts are numbered per kernel: on several hosts, a context is (host, number).
      const on = topos.length > 1 ? hostOf(e) : '';
      const key = `${on}|${context}:${seqno}`;
      const name = `${e.args?.driver}:${e.args?.timeline}`;
      if (e.name === 'dma_fence_init') {
        const label = on ? `ctx ${context} ${name} (${on})` : `ctx ${context} ${name}`;
        const r = row(on ? `f:${on}:${context}` : `f:${context}`, 'fences', label, 'fence');
        open.set(key, [...(open.get(key) ?? []), fences.length]);
        fences.push({
          row: r,
          name,
          context,
          seqno,
          start: t,
          end: duration,
          signalled: false,
          by: ctxRow(e.ctx),
        });
      } else {
        const i = open.get(key)?.shift();
        if (i !== undefined) {
          const f = fences[i];
          f.end = t;
          f.signalled = true;
          const err = Number(e.args?.error ?? 0);
          if (err !== 0) f.error = err;
        }
      }
    } else if (e.name === 'sched_wakeup' && e.args?.reason === 'woken') {
      const from = ctxRow(e.ctx);
      const to = taskRow(Number(e.args.pid), `task/${e.args.pid}`);
      if (from !== to) arrows.push({ t, from, to });
    }
  }

  const reports: ViewReport[] = result.reports.map((r) => ({
    t: r.time,
    type: r.type,
    rule: r.rule,
    message: r.message,
    context: r.context.name,
    row: r.context.tid === undefined ? -1 : taskRowOrMinus(r.context.tid),
    objects: r.objects.map((o) => `${o.kind} ${o.name}`),
  }));
  function taskRowOrMinus(task: number): number {
    const info = tasks.get(task);
    return info ? (rowIndex.get(`t:${info.pid}:${info.tid}`) ?? -1) : -1;
  }

  const order = displayOrder(rows);
  const at = (i: number) => order[i];
  for (const s of slices) s.row = at(s.row);
  for (const f of fences) {
    f.row = at(f.row);
    f.by = at(f.by);
  }
  for (const x of arrows) {
    x.from = at(x.from);
    x.to = at(x.to);
  }
  for (const r of reports) if (r.row >= 0) r.row = at(r.row);
  for (const x of transfers) x.row = at(x.row);
  for (const c of calls) c.row = at(c.row);
  const sorted: ViewRow[] = [];
  rows.forEach((r, i) => {
    sorted[order[i]] = r;
  });

  return {
    version: 1,
    scenario: result.scenario,
    seed: result.seed,
    status: result.status,
    ok: result.ok,
    duration,
    events: log.length,
    logHash: result.logHash,
    rows: sorted,
    slices,
    fences,
    arrows,
    reports,
    buffers: mergeBuffers(
      buffersOf(result.steps, slices),
      buffersOfLog(log, t0, duration, result.processes, hostOf),
      slices,
      result.steps,
    ),
    topology: topos.length === 0 ? null : topoMatrix(topos[0].topology),
    hosts: topos.map((h) => ({ name: h.name, matrix: topoMatrix(h.topology) })),
    graph,
    memory: [...mem.values()],
    transfers,
    calls,
  };
}

const GROUP_RANK: Record<string, number> = { kernel: 1, engines: 2, fences: 3 };

/** New index of each row: processes' threads first, then kernel contexts, engines, fence contexts (stable). */
function displayOrder(rows: ViewRow[]): number[] {
  const first = new Map<string, number>();
  rows.forEach((r, i) => {
    if (!first.has(r.group)) first.set(r.group, i);
  });
  const rank = (r: ViewRow) => (r.kind === 'thread' ? 0 : (GROUP_RANK[r.group] ?? 0));
  const idx = rows.map((_, i) => i);
  idx.sort(
    (a, b) => rank(rows[a]) - rank(rows[b]) || first.get(rows[a].group)! - first.get(rows[b].group)! || a - b,
  );
  const order: number[] = [];
  idx.forEach((old, i) => {
    order[old] = i;
  });
  return order;
}

// ---- the topology graph ----------------------------------------------------------------

/** The graph node of a PCI function: a switch's ports are the switch. */
function pciNodeId(host: string, d: PciDev): string {
  if ((d.role === 'switch-upstream' || d.role === 'switch-downstream') && d.switch !== null)
    return `sw:${host}:${d.switch.id}`;
  return `d:${host}:${d.id}`;
}

/** Every host's topology as one nested graph (see ViewTopoNode). */
export function topologyGraph(
  hosts: { name: string; topology: Topology }[],
  cabled?: Map<string, Set<number>>,
): ViewGraph {
  const nodes: ViewTopoNode[] = [];
  const edges: ViewTopoEdge[] = [];
  const seen = new Set<string>();
  const add = (n: ViewTopoNode) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    nodes.push(n);
  };
  for (const { name: host, topology: topo } of hosts) {
    add({
      id: `h:${host}`,
      parent: null,
      kind: 'host',
      label: `${host}: ${topo.name}, ${topo.cpu.name}`,
      host,
      ref: host,
    });
    for (const s of topo.sockets) {
      add({
        id: `s:${host}:${s.id}`,
        parent: `h:${host}`,
        kind: 'socket',
        label: `socket ${s.id}`,
        host,
        ref: s.id,
      });
    }
    for (const hb of topo.hostBridges) {
      const rc = `rc:${host}:${hb.id}`;
      add({
        id: rc,
        parent: `s:${host}:${hb.socket.id}`,
        kind: 'root-complex',
        label: `root complex ${hb.id} (${hb.name})`,
        host,
        ref: hb.id,
      });
      const walk = (devs: PciDev[]) => {
        for (const d of devs) {
          const id = pciNodeId(host, d);
          if (d.role === 'root-port')
            add({ id, parent: rc, kind: 'root-port', label: `${d.id} ${d.name}`, host, ref: d.id });
          else if (d.role === 'switch-upstream' && d.switch !== null)
            add({ id, parent: rc, kind: 'switch', label: `switch ${d.switch.id}`, host, ref: d.switch.id });
          else if (d.role === 'endpoint')
            add({
              id,
              parent: rc,
              kind: 'endpoint',
              label: `${d.id}\n${d.kind ?? 'other'} ${d.name}`,
              host,
              ref: d.id,
              devKind: d.kind ?? 'other',
            });
          if (d.upLink !== null) {
            const up = pciUpstreamBridge(d);
            if (up !== null) {
              edges.push({
                id: `l:${host}:${d.name}`,
                source: pciNodeId(host, up),
                target: id,
                kind: 'pcie',
                label: `Gen${d.upLink.gen} x${d.upLink.width}`,
              });
            }
          }
          if (d.subordinate) walk(d.subordinate.devices);
        }
      };
      walk(hb.bus.devices);
    }
    for (const l of topo.socketLinks) {
      edges.push({
        id: `x:${host}:${l.a.id}:${l.b.id}`,
        source: `s:${host}:${l.a.id}`,
        target: `s:${host}:${l.b.id}`,
        kind: 'socket-link',
        label: l.kind,
      });
    }
  }
  if (hosts.length > 1) {
    nodes.push({
      id: 'fabric',
      parent: null,
      kind: 'fabric',
      label: 'fabric switch',
      host: '',
      ref: 'fabric',
    });
    for (const { name: host, topology: topo } of hosts) {
      // Every NIC is cabled; only those that carry traffic (else the first) are drawn.
      const used = cabled?.get(host);
      topo.endpointsOf('nic').forEach((n, i) => {
        if (used ? !used.has(i) : i > 0) return;
        edges.push({
          id: `fab:${host}:${i}`,
          source: 'fabric',
          target: `d:${host}:${n.id}`,
          kind: 'fabric',
          label: 'RoCE',
        });
      });
    }
  }
  return { nodes, edges };
}

function graphHas(g: ViewGraph, id: string): boolean {
  return g.nodes.some((n) => n.id === id);
}

/** The edges from a node up to the top of its PCIe tree (its root port), bottom first, with the nodes. */
function chainUp(g: ViewGraph, id: string): { edges: string[]; nodes: string[] } {
  const edges: string[] = [];
  const nodes: string[] = [id];
  for (let cur = id, guard = 0; guard < 64; guard++) {
    const e = g.edges.find((x) => x.kind === 'pcie' && x.target === cur);
    if (!e) break;
    edges.push(e.id);
    nodes.push(e.source);
    cur = e.source;
  }
  return { edges, nodes };
}

/** The graph edges a PCIe transfer crosses on `route` (p2pdma's routing; see transfer-path.ts). */
function routeEdges(g: ViewGraph, host: string, src: string, dst: string, route: string): string[] {
  if (route === 'device-internal') return [];
  const endNode = (id: string) => (graphHas(g, `d:${host}:${id}`) ? `d:${host}:${id}` : null);
  const socketOf = (id: string): string | null => {
    if (graphHas(g, `s:${host}:${id}`)) return `s:${host}:${id}`;
    let n = g.nodes.find((x) => x.id === id);
    while (n && n.kind !== 'socket') n = g.nodes.find((x) => x.id === n!.parent);
    return n?.id ?? null;
  };
  const a = endNode(src);
  const b = endNode(dst);
  const ca = a === null ? { edges: [], nodes: [] } : chainUp(g, a);
  const cb = b === null ? { edges: [], nodes: [] } : chainUp(g, b);
  if (route === 'switch') {
    const common = ca.nodes.find((n) => cb.nodes.includes(n));
    if (common !== undefined) {
      return [
        ...ca.edges.slice(0, ca.nodes.indexOf(common)),
        ...cb.edges.slice(0, cb.nodes.indexOf(common)).reverse(),
      ];
    }
  }
  const out = [...ca.edges, ...[...cb.edges].reverse()];
  const sa = socketOf(a ?? src);
  const sb = socketOf(b ?? dst);
  if (sa !== null && sb !== null && sa !== sb) {
    const l = g.edges.find(
      (x) =>
        x.kind === 'socket-link' &&
        ((x.source === sa && x.target === sb) || (x.source === sb && x.target === sa)),
    );
    if (l) out.splice(ca.edges.length, 0, l.id);
  }
  return out;
}

/** A fabric port's host and NIC index (`host1/mlx5_2 port 1`: host1, 2). */
function portOf(port: string): { host: string; nic: number } {
  const [host, rest = ''] = port.split('/');
  const m = /(\d+)$/.exec(rest.replace(/ port \d+$/, ''));
  return { host, nic: m ? Number(m[1]) : 0 };
}

/** Per host, the NICs that send or receive fabric messages in the log (undefined: none do). */
function fabricNics(log: readonly LogEntry[]): Map<string, Set<number>> | undefined {
  const out = new Map<string, Set<number>>();
  for (const e of log) {
    if (e.name !== 'fabric_transfer_start') continue;
    for (const p of [e.args?.src, e.args?.dst]) {
      const { host, nic } = portOf(String(p));
      if (!out.has(host)) out.set(host, new Set());
      out.get(host)!.add(nic);
    }
  }
  return out.size === 0 ? undefined : out;
}

/** The fabric edges of a message between two ports. */
function fabricEdges(g: ViewGraph, src: string, dst: string): string[] {
  const out: string[] = [];
  for (const port of [src, dst]) {
    const { host, nic } = portOf(port);
    if (g.edges.some((x) => x.id === `fab:${host}:${nic}`)) out.push(`fab:${host}:${nic}`);
  }
  return out;
}

interface Hold {
  buf: number;
  holder: ViewHolder;
}

/** Buffers from the steps (see the module comment). */
function buffersOf(steps: StepRecord[], slices: ViewSlice[]): ViewBuffer[] {
  const buffers: ViewBuffer[] = [];
  // pid -> binding -> the hold it names.
  const bound = new Map<number, Map<string, Hold>>();
  const inFlight = new Map<string, number[]>();
  const bind = (pid: number, as: string, h: Hold) => {
    if (!bound.has(pid)) bound.set(pid, new Map());
    bound.get(pid)!.set(as, h);
  };
  // Steps in order of start time (the order they were recorded, which is start order).
  steps.forEach((s, i) => {
    const words = s.label.split(' ');
    const mine = bound.get(s.pid);
    const used = new Set<number>();
    if (mine) {
      for (const w of words.slice(1)) {
        const h = mine.get(w);
        if (h && h.holder.until === null) used.add(h.buf);
      }
    }
    if (s.kind === 'send' && words[2] === 'fd' && mine?.get(words[3])) {
      const ch = words[1];
      inFlight.set(ch, [...(inFlight.get(ch) ?? []), mine.get(words[3])!.buf]);
    }
    if (s.kind === 'recv' && s.outcome === 'ok' && s.as !== undefined && s.detail?.fd !== undefined) {
      const b = inFlight.get(words[1])?.shift();
      if (b !== undefined) {
        const holder: ViewHolder = {
          process: s.process,
          pid: s.pid,
          as: s.as,
          since: s.end ?? s.start,
          until: null,
        };
        buffers[b].holders.push(holder);
        bind(s.pid, s.as, { buf: b, holder });
        used.add(b);
      }
    }
    if (s.kind === 'close' && s.outcome === 'ok' && mine) {
      const h = mine.get(words[1]);
      if (h && h.holder.until === null) h.holder.until = s.end ?? s.start;
    }
    const make = BUFFER_KINDS[s.kind];
    if (make && s.outcome === 'ok' && s.as !== undefined) {
      const id = buffers.length;
      const holder: ViewHolder = { process: s.process, pid: s.pid, as: s.as, since: s.start, until: null };
      buffers.push({
        id,
        name: `${s.process}:${s.as}`,
        ...make(s.label),
        created: s.start,
        released: null,
        holders: [holder],
        uses: [],
        attachments: [],
        moves: [],
        mmaps: [],
      });
      bind(s.pid, s.as, { buf: id, holder });
      used.add(id);
    }
    for (const b of [...used].sort((x, y) => x - y)) {
      slices[i].bufs.push(b);
      buffers[b].uses.push(i);
    }
  });
  for (const b of buffers) {
    if (b.holders.every((h) => h.until !== null)) b.released = Math.max(...b.holders.map((h) => h.until!));
  }
  return buffers;
}

// ---- buffers from the dma-buf tracepoints -----------------------------------------------

function sizeText(bytes: number): string {
  for (const [u, m] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= m && bytes % m === 0) return `${bytes / m}${u}`;
  }
  return `${bytes}B`;
}

/** Buffers from `dma_buf_*` tracepoints, one per inode, in export order. */
export function buffersOfLog(
  log: readonly LogEntry[],
  t0: number,
  duration: number,
  procs: readonly { pid: number; name: string; host?: string }[] = [],
  hostOf: (e: LogEntry) => string = () => '',
): ViewBuffer[] {
  const out: ViewBuffer[] = [];
  // Inode numbers and pids are per machine.
  const byIno = new Map<string, ViewBuffer>();
  const names = new Map<string, string>();
  for (const p of procs) names.set(`${p.host ?? ''}:${p.pid}`, p.name);
  const procName = (host: string, pid: number) =>
    names.get(`${host}:${pid}`) ?? names.get(`:${pid}`) ?? `pid ${pid}`;
  // Attachments are numbered in order of appearance: the log's ids are the kernel's
  // (pointers, or a counter that need not restart with each run).
  const attachIds = new Map<string, number>();
  const attachId = (id: unknown) => {
    const key = String(id);
    if (!attachIds.has(key)) attachIds.set(key, attachIds.size + 1);
    return attachIds.get(key)!;
  };
  const attachOf = (b: ViewBuffer, id: unknown) => b.attachments.find((x) => x.attach === attachId(id));
  for (const e of log) {
    if (!e.name.startsWith('dma_buf_')) continue;
    const a = e.args ?? {};
    const t = Math.min(duration, Math.max(0, e.t - t0));
    const ino = Number(a.ino);
    const host = hostOf(e);
    const key = `${host}:${ino}`;
    if (e.name === 'dma_buf_export') {
      const bytes = Number(a.size ?? 0);
      const b: ViewBuffer = {
        id: out.length,
        name: `${a.exp_name ?? 'dma-buf'}#${ino}`,
        exporter: String(a.exp_name ?? '?'),
        size: sizeText(bytes),
        created: t,
        released: null,
        holders: [],
        uses: [],
        ino,
        bytes,
        attachments: [],
        moves: [],
        mmaps: [],
      };
      if (host !== '') b.host = host;
      out.push(b);
      byIno.set(key, b);
      continue;
    }
    const b = byIno.get(key);
    if (!b) continue;
    switch (e.name) {
      case 'dma_buf_fd': {
        const pid = Number(a.pid ?? 0);
        b.holders.push({
          process: procName(host, pid),
          pid,
          as: `fd ${a.fd}`,
          since: t,
          until: null,
        });
        break;
      }
      case 'dma_buf_fd_close': {
        const pid = Number(a.pid ?? 0);
        const h = b.holders.find((x) => x.pid === pid && x.as === `fd ${a.fd}` && x.until === null);
        if (h) h.until = t;
        break;
      }
      case 'dma_buf_attach':
        b.attachments.push({
          attach: attachId(a.attach),
          dev: String(a.dev ?? '?'),
          endpoint: a.endpoint === undefined ? null : String(a.endpoint),
          dynamic: a.dynamic === true,
          peer2peer: a.peer2peer === true,
          since: t,
          until: null,
          pins: [],
          maps: [],
        });
        break;
      case 'dma_buf_detach': {
        const x = attachOf(b, a.attach);
        if (x && x.until === null) x.until = t;
        break;
      }
      case 'dma_buf_pin':
        attachOf(b, a.attach)?.pins.push({ since: t, until: null });
        break;
      case 'dma_buf_unpin': {
        const p = attachOf(b, a.attach)?.pins.find((x) => x.until === null);
        if (p) p.until = t;
        break;
      }
      case 'dma_buf_map_attachment':
        attachOf(b, a.attach)?.maps.push({
          since: t,
          until: null,
          nents: Number(a.nents ?? 0),
          pages: a.pages !== false,
        });
        break;
      case 'dma_buf_unmap_attachment': {
        const m = attachOf(b, a.attach)?.maps.find((x) => x.until === null);
        if (m) m.until = t;
        break;
      }
      case 'dma_buf_move_notify':
        b.moves.push(t);
        break;
      case 'dma_buf_mmap':
        b.mmaps.push(t);
        break;
      case 'dma_buf_release':
        b.released = t;
        for (const h of b.holders) if (h.until === null) h.until = t;
        for (const x of b.attachments) if (x.until === null) x.until = t;
        break;
    }
  }
  return out;
}

/**
 * Names the fd holders of a buffer known only from the tracepoints after the steps that
 * got the fds (a step of the holder's process that bound a name, `as`, while the fd was
 * installed), and counts as uses the later steps of that process naming the binding,
 * up to its `close` or the next step binding the same name.
 */
function bindFdSteps(b: ViewBuffer, slices: ViewSlice[], steps: readonly StepRecord[]): void {
  b.holders.forEach((h, k) => {
    // The step that installed the fd: its result names the fd if it can, else the one
    // that started last around the install.
    const fd = h.as.startsWith('fd ') ? h.as.slice(3) : null;
    const score = (s: StepRecord) =>
      (fd !== null && s.summary !== undefined && new RegExp(`\\bfd ${fd}\\b`).test(s.summary) ? 1e18 : 0) +
      s.start;
    let i = -1;
    steps.forEach((s, k) => {
      const around = s.start <= h.since && (s.end ?? Number.POSITIVE_INFINITY) >= h.since;
      if (s.pid !== h.pid || s.process !== h.process || s.as === undefined || !around) return;
      if (i < 0 || score(s) >= score(steps[i])) i = k;
    });
    if (i < 0) return;
    const as = steps[i].as!;
    h.as = as;
    if (k === 0) b.name = `${h.process}:${as}`;
    const uses = [i];
    for (let j = i + 1; j < steps.length; j++) {
      const s = steps[j];
      if (s.pid !== h.pid || s.process !== h.process) continue;
      if (s.as === as) break;
      const words = s.label.split(' ');
      if (!words.slice(1).includes(as)) continue;
      uses.push(j);
      if (s.kind === 'close') break;
    }
    for (const u of uses) {
      if (!slices[u].bufs.includes(b.id)) {
        slices[u].bufs.push(b.id);
        slices[u].bufs.sort((x, y) => x - y);
      }
      if (!b.uses.includes(u)) b.uses.push(u);
    }
    b.uses.sort((x, y) => x - y);
  });
}

/**
 * Joins the buffers seen by the steps with those of the tracepoints (see the module
 * comment): a step-made buffer lends its name, holders and uses to the exported buffer
 * whose first fd went to the same process during its step; unmatched step buffers are
 * kept. Renumbers the slices' buffer indexes to the result.
 */
function mergeBuffers(
  fromSteps: ViewBuffer[],
  fromLog: ViewBuffer[],
  slices: ViewSlice[],
  steps: readonly StepRecord[],
): ViewBuffer[] {
  if (fromLog.length === 0) return fromSteps;
  const out = fromLog;
  const remap = new Map<number, number>();
  const taken = new Set<number>();
  for (const sb of fromSteps) {
    const made = sb.uses.length > 0 ? slices[sb.uses[0]] : undefined;
    const pid = sb.holders[0]?.pid;
    const lb = made
      ? out.find(
          (b) =>
            !taken.has(b.id) &&
            b.holders[0]?.pid === pid &&
            b.holders[0].process === sb.holders[0]?.process &&
            b.holders[0].since >= made.start &&
            b.holders[0].since <= made.end,
        )
      : undefined;
    if (lb) {
      taken.add(lb.id);
      remap.set(sb.id, lb.id);
      const logHolders = lb.holders.filter((h) => !sb.holders.some((x) => x.pid === h.pid));
      lb.name = sb.name;
      lb.holders = [...sb.holders, ...logHolders];
      lb.uses = sb.uses;
      if (lb.released === null) lb.released = sb.released;
      for (const h of lb.holders) if (h.until === null && lb.released !== null) h.until = lb.released;
    } else {
      const id = out.length;
      remap.set(sb.id, id);
      out.push({ ...sb, id });
    }
  }
  for (const s of slices) s.bufs = s.bufs.map((b) => remap.get(b)!).sort((x, y) => x - y);
  for (const b of out) if (!taken.has(b.id) && b.ino !== undefined) bindFdSteps(b, slices, steps);
  // Every buffer has a holder row to show, even one never installed as an fd.
  for (const b of out) {
    if (b.holders.length === 0)
      b.holders.push({ process: 'kernel', pid: 0, as: 'no fd', since: b.created, until: b.released });
  }
  return out;
}
