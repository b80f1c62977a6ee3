/**
 * The data the visualiser shows for one scenario run: rows (process threads, kernel
 * contexts, fence contexts), step slices, fence lifetimes, wake-up arrows, rule reports
 * and the dma-bufs of the run with their holders and uses.
 *
 * Everything is derived from the run's record and event log, in log order, so the
 * same seed gives the same data byte for byte. Times are ns after the scenario started.
 *
 * The event log has no dma-buf tracepoints yet, so buffers come from the steps: each
 * successful `heap_alloc` or `udmabuf` step creates one; an fd sent over a channel
 * (`send <ch> fd <name>`) and received (`recv <ch>`, first in first out per channel)
 * makes the receiver a holder; every step whose label names a holder's binding is a use
 * of the buffer, and `close <name>` ends that holder's hold.
 */
import type { Topology } from '../kernel/pci/topology.ts';
import type { RunArtifacts, StepRecord } from '../scenario/runner.ts';
import { type TopoMatrix, topoMatrix } from './topo-matrix.ts';

/** What a row shows. */
export type RowKind = 'thread' | 'irq' | 'kernel' | 'kthread' | 'fence';

/** One timeline row. */
export interface ViewRow {
  /** Stable key: `t:<pid>:<tid>`, `irq`, `kernel`, `k:<task>`, `f:<context>`. */
  id: string;
  /** The group it sits in: a process name, `kernel` or `fences`. */
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
  /** The topology the scenario names (devices, tree, p2pdma matrix), or null. */
  topology: TopoMatrix | null;
}

const BUFFER_KINDS: Record<string, (label: string) => { exporter: string; size: string }> = {
  heap_alloc: (l) => {
    const [, heap = '?', size = '?'] = l.split(' ');
    return { exporter: `${heap} heap`, size };
  },
  udmabuf: (l) => ({ exporter: 'udmabuf', size: l.split(' ')[2] ?? '?' }),
};

/** Builds the view data of a run (`topology`: the scenario's, for the topology view). */
export function buildViewData(a: RunArtifacts, topology: Topology | null = null): ViewData {
  const { result, log, tasks } = a;
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
  for (const e of log) {
    if (e.t < t0) continue;
    const t = e.t - t0;
    if (e.name === 'dma_fence_init' || e.name === 'dma_fence_signaled') {
      const context = Number(e.args?.context ?? 0);
      const seqno = Number(e.args?.seqno ?? 0);
      const key = `${context}:${seqno}`;
      const name = `${e.args?.driver}:${e.args?.timeline}`;
      if (e.name === 'dma_fence_init') {
        const r = row(`f:${context}`, 'fences', `ctx ${context} ${name}`, 'fence');
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

  return {
    version: 1,
    scenario: result.scenario,
    seed: result.seed,
    status: result.status,
    ok: result.ok,
    duration,
    events: log.length,
    logHash: result.logHash,
    rows,
    slices,
    fences,
    arrows,
    reports,
    buffers: buffersOf(result.steps, slices),
    topology: topology === null ? null : topoMatrix(topology),
  };
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
