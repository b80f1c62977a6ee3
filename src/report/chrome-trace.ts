/**
 * Chrome trace-event JSON of a scenario run, for the Perfetto UI (ui.perfetto.dev opens
 * it by drag and drop) and chrome://tracing.
 *
 * Layout (ecosystem-and-style.md A4):
 * - a process per simulated process (its pid, named after it, the harness included)
 *   and one for the kernel (pid 0) holding the hard-IRQ context, kernel threads and
 *   one thread per fence context;
 * - a thread per simulated thread (its tid, named `main` or after its `parallel`
 *   branch); each step is a complete (`X`) slice on its thread, with its result in the
 *   args, and `dma_fence_wait_start`..`wait_end` nest inside as `dma_fence_wait` slices;
 * - fence lifetimes (dma_fence_init -> dma_fence_signaled) as async `b`/`e` pairs in
 *   category `dma_fence`, one track per timeline, id = a number per fence; the
 *   dma_fence tracepoints themselves are instants on the fence context's thread with
 *   the kernel's fields (driver, timeline, context, seqno);
 * - flows (`s` on the waker, `f` bound to the woken thread's open slice) for every
 *   sched_wakeup by another thread or an interrupt;
 * - rule reports as global instants with the rule id and context in args.
 *
 * Timestamps are microseconds since the scenario started (virtual ns / 1000). Events
 * are generated from the event log in order and sorted stably by time, slices before
 * the flows and instants of the same instant, so the same seed gives a byte-identical
 * file.
 */
import type { RunArtifacts, StepRecord, TaskInfo } from '../scenario/runner.ts';
import type { LogEntry } from '../sim/event-log.ts';

/** One trace event (the fields the format defines; absent ones are omitted). */
export interface TraceEvent {
  /** Name. */
  name: string;
  /** Category. */
  cat?: string;
  /** Phase: X, B, E, b, e, n, i, s, t, f, C, M. */
  ph: string;
  /** Timestamp, µs. */
  ts?: number;
  /** Duration (X), µs. */
  dur?: number;
  /** Process id. */
  pid: number;
  /** Thread id. */
  tid?: number;
  /** Async or flow id. */
  id?: number | string;
  /** Instant scope: g, p or t. */
  s?: string;
  /** Flow binding point (`e`: the enclosing slice). */
  bp?: string;
  /** Arguments. */
  args?: Record<string, unknown>;
}

/** A whole trace file. */
export interface ChromeTrace {
  /** The events. */
  traceEvents: TraceEvent[];
  /** How the UI shows times. */
  displayTimeUnit: 'ns' | 'ms';
  /** Free-form data about the run. */
  otherData: Record<string, unknown>;
}

/** The kernel's pid in the trace. */
export const KERNEL_PID = 0;
const IRQ_TID = 1;
const KERNEL_TID = 2;
const KTHREAD_TID_BASE = 1000;
const FENCE_TID_BASE = 100_000;

const us = (ns: number) => ns / 1000;

/** Builds the trace of a run. */
export function buildChromeTrace(a: RunArtifacts): ChromeTrace {
  return new TraceBuilder(a).build();
}

/** The trace as the bytes written to a file: one event per line. */
export function chromeTraceJson(t: ChromeTrace): string {
  const events = t.traceEvents.map((e) => JSON.stringify(e)).join(',\n');
  return `{"displayTimeUnit":${JSON.stringify(t.displayTimeUnit)},"otherData":${JSON.stringify(t.otherData)},"traceEvents":[\n${events}\n]}\n`;
}

interface Where {
  pid: number;
  tid: number;
}

interface Keyed {
  ev: TraceEvent;
  rank: number;
  seq: number;
}

class TraceBuilder {
  private readonly out: Keyed[] = [];
  private readonly meta: TraceEvent[] = [];
  private readonly kthreads = new Map<number, string>();
  private readonly fenceThreads = new Map<number, string>();
  private readonly irqSlices = new Set<number>();
  private seq = 0;
  private readonly t0: number;
  private readonly end: number;

  constructor(private readonly a: RunArtifacts) {
    this.t0 = a.result.t0;
    this.end = a.result.t0 + a.result.duration;
  }

  private push(ev: TraceEvent, rank: number): void {
    this.out.push({ ev, rank, seq: this.seq++ });
  }

  private ts(t: number): number {
    return us(t - this.t0);
  }

  /** Where a log context (`name/<task>`, `irq`, `none`) goes. */
  private where(ctx: string): Where {
    const m = /^(.*)\/(\d+)$/.exec(ctx);
    if (m) {
      const task = Number(m[2]);
      const info = this.a.tasks.get(task);
      if (info) return { pid: info.pid, tid: info.tid };
      this.kthreads.set(task, ctx);
      return { pid: KERNEL_PID, tid: KTHREAD_TID_BASE + task };
    }
    return { pid: KERNEL_PID, tid: ctx === 'irq' ? IRQ_TID : KERNEL_TID };
  }

  build(): ChromeTrace {
    const { result } = this.a;
    this.steps(result.steps);
    this.log(this.a.log);
    for (const r of result.reports) {
      this.push(
        {
          name: r.rule,
          cat: 'report',
          ph: 'i',
          s: 'g',
          ts: us(r.time),
          pid: KERNEL_PID,
          tid: KERNEL_TID,
          args: { type: r.type, rule: r.rule, message: r.message, context: r.context, objects: r.objects },
        },
        2,
      );
    }
    this.metadata();
    const events = this.out
      .sort(
        (x, y) =>
          (x.ev.ts ?? 0) - (y.ev.ts ?? 0) ||
          x.rank - y.rank ||
          (y.ev.dur ?? 0) - (x.ev.dur ?? 0) ||
          x.seq - y.seq,
      )
      .map((k) => k.ev);
    return {
      traceEvents: [...this.meta, ...events],
      displayTimeUnit: 'ns',
      otherData: {
        generator: 'dmabuf-lab',
        scenario: result.scenario.name,
        file: result.scenario.file,
        seed: result.seed,
        scheduler: result.scheduler,
        status: result.status,
        logHash: result.logHash,
        timeOrigin: 'the scenario start (after boot), in virtual time',
      },
    };
  }

  private steps(steps: StepRecord[]): void {
    for (const s of steps) {
      const end = s.end ?? this.end - this.t0;
      const args: Record<string, unknown> = { kind: s.kind, line: s.line, outcome: s.outcome };
      if (s.id !== undefined) args.id = s.id;
      if (s.round !== undefined) args.round = s.round;
      if (s.ret !== null) args.ret = s.ret;
      if (s.errno !== undefined) args.errno = s.errno;
      if (s.summary !== undefined) args.result = s.summary;
      if (s.as !== undefined) args.as = s.as;
      if (s.problem !== undefined) args.problem = s.problem;
      if (s.note !== undefined) args.note = s.note;
      this.push(
        {
          name: s.label,
          cat: 'step',
          ph: 'X',
          ts: us(s.start),
          dur: us(end - s.start),
          pid: s.pid,
          tid: s.tid,
          args,
        },
        0,
      );
    }
  }

  private fenceTid(e: LogEntry): number {
    const ctx = Number(e.args?.context ?? 0);
    if (!this.fenceThreads.has(ctx)) {
      this.fenceThreads.set(ctx, `fence ctx ${ctx} (${e.args?.driver}:${e.args?.timeline})`);
    }
    return FENCE_TID_BASE + ctx;
  }

  private log(log: LogEntry[]): void {
    const waits = new Map<string, LogEntry[]>();
    const open = new Map<string, { id: number; name: string }[]>();
    let fenceIds = 0;
    let flowIds = 0;
    for (const e of log) {
      if (e.t < this.t0) continue;
      const ts = this.ts(e.t);
      const w = this.where(e.ctx);
      if (e.ctx === 'irq' && !this.irqSlices.has(e.t)) {
        // An interrupt at this instant: a zero-length slice flows can start from.
        this.irqSlices.add(e.t);
        this.push({ name: 'hardirq', cat: 'irq', ph: 'X', ts, dur: 0, pid: KERNEL_PID, tid: IRQ_TID }, 0);
      }
      if (e.name.startsWith('dma_fence_')) {
        const args = {
          driver: e.args?.driver,
          timeline: e.args?.timeline,
          context: e.args?.context,
          seqno: e.args?.seqno,
        };
        const key = `${args.context}:${args.seqno}`;
        this.push(
          {
            name: e.name,
            cat: 'dma_fence',
            ph: 'i',
            s: 't',
            ts,
            pid: KERNEL_PID,
            tid: this.fenceTid(e),
            args: { ...args, by: e.ctx },
          },
          2,
        );
        if (e.name === 'dma_fence_init') {
          const id = ++fenceIds;
          const name = `${args.driver}:${args.timeline}`;
          open.set(key, [...(open.get(key) ?? []), { id, name }]);
          this.push(
            {
              name,
              cat: 'dma_fence',
              ph: 'b',
              ts,
              pid: KERNEL_PID,
              id,
              args: { ...args, begin: 'dma_fence_init' },
            },
            1,
          );
        } else if (e.name === 'dma_fence_signaled') {
          const list = open.get(key);
          const f = list?.shift();
          if (f)
            this.push(
              {
                name: f.name,
                cat: 'dma_fence',
                ph: 'e',
                ts,
                pid: KERNEL_PID,
                id: f.id,
                args: { end: 'dma_fence_signaled' },
              },
              3,
            );
        } else if (e.name === 'dma_fence_wait_start') {
          waits.set(e.ctx, [...(waits.get(e.ctx) ?? []), e]);
        } else if (e.name === 'dma_fence_wait_end') {
          const start = waits.get(e.ctx)?.pop();
          if (start) {
            const t = this.ts(start.t);
            this.push(
              {
                name: 'dma_fence_wait',
                cat: 'dma_fence',
                ph: 'X',
                ts: t,
                dur: ts - t,
                pid: w.pid,
                tid: w.tid,
                args,
              },
              0,
            );
          }
        }
      } else if (e.name === 'sched_wakeup' && e.args?.reason === 'woken') {
        const woken = Number(e.args.pid);
        const to = this.taskWhere(woken);
        if (to.pid === w.pid && to.tid === w.tid) continue;
        const id = ++flowIds;
        this.push({ name: 'sched_wakeup', cat: 'sched', ph: 's', ts, pid: w.pid, tid: w.tid, id }, 2);
        this.push(
          { name: 'sched_wakeup', cat: 'sched', ph: 'f', bp: 'e', ts, pid: to.pid, tid: to.tid, id },
          2,
        );
      } else if (e.name === 'sched_process_exit') {
        this.push(
          {
            name: 'sched_process_exit',
            cat: 'sched',
            ph: 'i',
            s: 't',
            ts,
            pid: w.pid,
            tid: w.tid,
            args: { code: e.args?.code },
          },
          2,
        );
      } else if (e.name === 'note') {
        this.push(
          { name: String(e.args?.msg ?? 'note'), cat: 'note', ph: 'i', s: 't', ts, pid: w.pid, tid: w.tid },
          2,
        );
      } else if (e.name.startsWith('pcie_transfer')) {
        this.push(
          { name: e.name, cat: 'pcie', ph: 'i', s: 't', ts, pid: w.pid, tid: w.tid, args: { ...e.args } },
          2,
        );
      }
    }
    // Fences never signalled end with the trace.
    const endTs = this.ts(this.end);
    for (const list of open.values()) {
      for (const f of list) {
        this.push(
          {
            name: f.name,
            cat: 'dma_fence',
            ph: 'e',
            ts: endTs,
            pid: KERNEL_PID,
            id: f.id,
            args: { end: 'never signalled' },
          },
          3,
        );
      }
    }
  }

  private taskWhere(task: number): Where {
    const info: TaskInfo | undefined = this.a.tasks.get(task);
    if (info) return { pid: info.pid, tid: info.tid };
    return { pid: KERNEL_PID, tid: KTHREAD_TID_BASE + task };
  }

  private metadata(): void {
    const m = (name: string, pid: number, tid: number | undefined, args: Record<string, unknown>) =>
      this.meta.push({ name, ph: 'M', pid, ...(tid === undefined ? {} : { tid }), args });
    const { result } = this.a;
    result.processes.forEach((p, i) => {
      m('process_name', p.pid, undefined, { name: p.harness ? `${p.name} (harness)` : p.name });
      m('process_sort_index', p.pid, undefined, { sort_index: i });
      for (const t of p.threads) {
        m('thread_name', p.pid, t.tid, { name: t.name });
        m('thread_sort_index', p.pid, t.tid, { sort_index: t.tid });
      }
    });
    m('process_name', KERNEL_PID, undefined, { name: 'kernel' });
    m('process_sort_index', KERNEL_PID, undefined, { sort_index: result.processes.length });
    m('thread_name', KERNEL_PID, IRQ_TID, { name: 'hardirq' });
    m('thread_name', KERNEL_PID, KERNEL_TID, { name: 'kernel' });
    for (const [task, label] of [...this.kthreads].sort((x, y) => x[0] - y[0])) {
      m('thread_name', KERNEL_PID, KTHREAD_TID_BASE + task, { name: label });
    }
    for (const [ctx, label] of [...this.fenceThreads].sort((x, y) => x[0] - y[0])) {
      m('thread_name', KERNEL_PID, FENCE_TID_BASE + ctx, { name: label });
      m('thread_sort_index', KERNEL_PID, FENCE_TID_BASE + ctx, { sort_index: FENCE_TID_BASE + ctx });
    }
  }
}
