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
 * - syscalls (`sys_enter`..`sys_exit`) as complete slices on the caller's thread, nested
 *   in the step that made them, named after the call (`ioctl DMA_BUF_IOCTL_SYNC`,
 *   `close`) with the fd and the return value (and errno) in args;
 * - dma-buf lifetimes (dma_buf_export -> dma_buf_release) as async `b`/`e` pairs in
 *   category `dma_buf`, named `dma_buf <ino> (<exporter>)`, with the buffer's other
 *   tracepoints (fd installed, attach, map, move_notify, mmap...) as async instants
 *   (`n`) on the same track; the driver calls among them (attach, detach, pin, unpin,
 *   map, unmap, move_notify, mmap) are also instants on the thread that made them;
 * - memory in use as counters (`C`), one per pool (`mem.system-heap`, `mem.cma`,
 *   `mem.hbm`, `mem.vram`...): host pools on the kernel process, device pools on a
 *   process per device (named after its topology id), the value before the scenario
 *   started carried to time 0;
 * - rule reports as global instants with the rule id and context in args.
 *
 * Timestamps are microseconds since the scenario started (virtual ns / 1000). Events
 * are generated from the event log in order and sorted stably by time, slices before
 * the flows and instants of the same instant, so the same seed gives a byte-identical
 * file.
 */

import { errnoName } from '../kernel/errno.ts';
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
/** Pids of the per-device processes (counters of device memory). */
const DEVICE_PID_BASE = 1_000_000;

/** The dma_buf tracepoints that are driver calls (instants on the calling thread too). */
const DMA_BUF_DRIVER_CALLS = new Set([
  'dma_buf_attach',
  'dma_buf_detach',
  'dma_buf_pin',
  'dma_buf_unpin',
  'dma_buf_map_attachment',
  'dma_buf_unmap_attachment',
  'dma_buf_move_notify',
  'dma_buf_mmap',
]);

/** The slice name of a syscall: its name, and for ioctl the request's name. */
export function syscallSliceName(args: Record<string, unknown> | undefined): string {
  const name = String(args?.name ?? 'syscall');
  return args?.cmd === undefined ? name : `${name} ${args.cmd}`;
}

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
  /** Device processes: key (host/device) -> pid and name. */
  private readonly devices = new Map<string, { pid: number; name: string }>();
  /** Events come from more than one machine: counter and buffer names carry the host. */
  private readonly multiHost: boolean;
  private seq = 0;
  private readonly t0: number;
  private readonly end: number;

  constructor(private readonly a: RunArtifacts) {
    this.t0 = a.result.t0;
    this.end = a.result.t0 + a.result.duration;
    const hosts = new Set<unknown>();
    for (const e of a.log) if (e.args?.host !== undefined) hosts.add(e.args.host);
    const declared = (a.result as { hosts?: unknown[] }).hosts?.length ?? 1;
    this.multiHost = hosts.size > 1 || declared > 1;
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
    // Open syscalls per context (a stack: the model never nests them, but be safe).
    const calls = new Map<string, LogEntry[]>();
    // dma-buf lifetimes by host/ino.
    const bufs = new Map<string, { id: number; name: string }>();
    let bufIds = 0;
    // Counter values reached before the scenario started, emitted at time 0.
    const before = new Map<string, LogEntry>();
    for (const e of log) {
      if (e.t < this.t0) {
        if (e.name === 'mem_in_use') before.set(this.counterKey(e), e);
        continue;
      }
      if (before.size > 0) {
        for (const b of before.values()) this.counter(b, 0);
        before.clear();
      }
      const ts = this.ts(e.t);
      const w = this.where(e.ctx);
      if (e.name === 'sys_enter') {
        calls.set(e.ctx, [...(calls.get(e.ctx) ?? []), e]);
        continue;
      }
      if (e.name === 'sys_exit') {
        const start = calls.get(e.ctx)?.pop();
        if (start) this.syscall(start, w, ts, e.args?.ret);
        continue;
      }
      if (e.name === 'mem_in_use') {
        this.counter(e, ts);
        continue;
      }
      if (e.name.startsWith('dma_buf_')) {
        const key = `${e.args?.host ?? ''}/${e.args?.ino}`;
        if (e.name === 'dma_buf_export') {
          const id = ++bufIds;
          const on = this.multiHost ? ` on ${e.args?.host}` : '';
          const name = `dma_buf ${e.args?.ino} (${e.args?.exp_name})${on}`;
          bufs.set(key, { id, name });
          this.push(
            { name, cat: 'dma_buf', ph: 'b', ts, pid: KERNEL_PID, id, args: { ...e.args, begin: e.name } },
            1,
          );
        } else {
          const b = bufs.get(key);
          if (b && e.name === 'dma_buf_release') {
            bufs.delete(key);
            this.push(
              { name: b.name, cat: 'dma_buf', ph: 'e', ts, pid: KERNEL_PID, id: b.id, args: { end: e.name } },
              3,
            );
          } else if (b) {
            this.push(
              {
                name: b.name,
                cat: 'dma_buf',
                ph: 'n',
                ts,
                pid: KERNEL_PID,
                id: b.id,
                args: { event: e.name, ...e.args },
              },
              2,
            );
          }
        }
        if (DMA_BUF_DRIVER_CALLS.has(e.name)) {
          this.push(
            {
              name: e.name,
              cat: 'dma_buf',
              ph: 'i',
              s: 't',
              ts,
              pid: w.pid,
              tid: w.tid,
              args: { ...e.args },
            },
            2,
          );
        }
        continue;
      }
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
    // Counters of a run that had no event after the scenario started.
    for (const b of before.values()) this.counter(b, 0);
    // Syscalls that never returned and buffers never released end with the trace.
    const endTs = this.ts(this.end);
    for (const [ctx, list] of calls) {
      for (const start of list) this.syscall(start, this.where(ctx), endTs, undefined);
    }
    for (const b of bufs.values()) {
      this.push(
        {
          name: b.name,
          cat: 'dma_buf',
          ph: 'e',
          ts: endTs,
          pid: KERNEL_PID,
          id: b.id,
          args: { end: 'not released' },
        },
        3,
      );
    }
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

  /** A syscall slice from `start` (its sys_enter) to `endTs`. */
  private syscall(start: LogEntry, w: Where, endTs: number, ret: unknown): void {
    const t = this.ts(start.t);
    const args: Record<string, unknown> = { nr: start.args?.nr };
    if (start.args?.fd !== undefined) args.fd = start.args.fd;
    if (ret === undefined) args.ret = 'did not return';
    else {
      args.ret = ret;
      if (typeof ret === 'number' && ret < 0 && ret > -4096) {
        const name = errnoName(ret);
        if (name) args.errno = name;
      }
    }
    this.push(
      {
        name: syscallSliceName(start.args),
        cat: 'syscall',
        ph: 'X',
        ts: t,
        dur: endTs - t,
        pid: w.pid,
        tid: w.tid,
        args,
      },
      0,
    );
  }

  private counterKey(e: LogEntry): string {
    return `${e.args?.host ?? ''}|${e.args?.device ?? ''}|${e.args?.pool}`;
  }

  /** A `C` event for a mem_in_use tracepoint. */
  private counter(e: LogEntry, ts: number): void {
    const a = e.args ?? {};
    const host = this.multiHost && a.host !== undefined ? ` on ${a.host}` : '';
    let pid = KERNEL_PID;
    if (a.device !== undefined) {
      const key = `${a.host ?? ''}/${a.device}`;
      let d = this.devices.get(key);
      if (!d) {
        d = { pid: DEVICE_PID_BASE + this.devices.size, name: `${a.device}${host}` };
        this.devices.set(key, d);
      }
      pid = d.pid;
    }
    this.push(
      {
        name: `mem.${a.pool}${a.device === undefined ? host : ''}`,
        cat: 'memory',
        ph: 'C',
        ts,
        pid,
        args: { bytes: a.bytes },
      },
      1,
    );
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
      const host = (p as { host?: string }).host;
      const on = this.multiHost && host !== undefined ? ` on ${host}` : '';
      m('process_name', p.pid, undefined, { name: `${p.name}${p.harness ? ' (harness)' : ''}${on}` });
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
    let i = 0;
    for (const d of [...this.devices.values()].sort((x, y) => x.pid - y.pid)) {
      m('process_name', d.pid, undefined, { name: `${d.name} (device)` });
      m('process_sort_index', d.pid, undefined, { sort_index: result.processes.length + 1 + i++ });
    }
    for (const [ctx, label] of [...this.fenceThreads].sort((x, y) => x[0] - y[0])) {
      m('thread_name', KERNEL_PID, FENCE_TID_BASE + ctx, { name: label });
      m('thread_sort_index', KERNEL_PID, FENCE_TID_BASE + ctx, { sort_index: FENCE_TID_BASE + ctx });
    }
  }
}
