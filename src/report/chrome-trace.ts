/**
 * Chrome trace-event JSON of a scenario run, for the Perfetto UI (ui.perfetto.dev opens
 * it by drag and drop) and chrome://tracing.
 *
 * Layout (ecosystem-and-style.md A4):
 * - a process per simulated process (its pid, named after it, the harness included)
 *   and one for the kernel holding the hard-IRQ context, kernel threads and one thread
 *   per fence context. A run of one machine has one `kernel` (pid 0); a run of several
 *   has one per host (`kernel on host1` pid 0, `kernel on host2` pid 1000, host i at
 *   1000 i, next to that host's processes; its thread ids offset by 10^7 i), its
 *   threads keyed by (host, id) so that
 *   fence context 1 of each host is its own thread. An event's host is the one its log
 *   entry carries (`LogEntry.host`, set where the tracepoint was emitted), else its
 *   task's host, else (a wake-up from hard-IRQ) the woken task's host; a kernel
 *   thread belongs to the host of the task that spawned it (best effort for one
 *   spawned from hard-IRQ context: the first host);
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
 * - DMA transfers (`pcie_transfer_start` .. `pcie_transfer_end`) as async `b`/`e` pairs in
 *   category `dma` named `DMA <src> -> <dst> <size>` (e.g. `DMA accel0 -> nic0 64 MiB`),
 *   under the process of the source device (the device processes of the memory
 *   counters; host memory is `cpu0`...), on its `DMA from <src>` track: everything that
 *   reads out of that device's memory or BAR, whoever issues it. Perfetto lays out
 *   overlapping async slices of a process on separate rows and groups them by name.
 *   Args: flow, src, dst, bytes, route on the begin; state, bytes landed, ns and the
 *   achieved GB/s (10^9 B/s) on the end. Flow ids belong to a flow network (they
 *   restart per host, and one RDMA message is one flow with a PCIe leg on each host):
 *   pairs are keyed by (host, flow); a transfer still running when the trace ends
 *   ends there;
 * - network transfers (`fabric_transfer_start` .. `fabric_transfer_end`) the same way
 *   in category `fabric`, on a `fabric` process with a track per sending NIC port,
 *   named `<src port> -> <dst port> <size>`;
 * - rule reports as global instants with the rule id and context in args.
 *
 * Timestamps are microseconds since the scenario started (virtual ns / 1000). Events
 * are generated from the event log in order and sorted stably by time, slices before
 * the flows and instants of the same instant, so the same seed gives a byte-identical
 * file.
 */

import { errnoName } from '../kernel/errno.ts';
import type { RunArtifacts, StepRecord } from '../scenario/runner.ts';
import type { LogEntry } from '../sim/event-log.ts';
import { formatBytes } from './format.ts';

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

/** The kernel's pid in the trace (of the first host, in a run of several). */
export const KERNEL_PID = 0;
/** How far apart the kernel pids of the hosts of a multi-host run are (host i: i x this). */
export const HOST_PID_STRIDE = 1000;
/** How far apart the kernel thread ids of the hosts are (host i's tids are offset by i x this). */
const HOST_TID_STRIDE = 10_000_000;
const IRQ_TID = 1;
const KERNEL_TID = 2;
const KTHREAD_TID_BASE = 1000;
const FENCE_TID_BASE = 100_000;
/** Pids of the per-device processes (counters of device memory, DMA tracks). */
const DEVICE_PID_BASE = 1_000_000;
/** Pid of the network process (fabric transfers). */
export const FABRIC_PID = 2_000_000;

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

/** A size for a slice name: `64 MiB`, `1.5 KiB`, `100 B`. */
function sizeText(bytes: number): string {
  return formatBytes(bytes).replace('.0 ', ' ');
}

/** GB/s (10^9 bytes per second) of `bytes` in `ns`, to 3 decimals (0 for no time). */
function gbPerS(bytes: number, ns: number): number {
  return ns > 0 ? Math.round((bytes / ns) * 1000) / 1000 : 0;
}

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

/** A host's kernel process in the trace. */
interface KernelProc {
  pid: number;
  /** Added to the kernel's thread ids (0 for the first host). */
  tidOffset: number;
  /** Kernel threads: task id -> label. */
  kthreads: Map<number, string>;
  /** Fence contexts: context -> thread label. */
  fences: Map<number, string>;
}

/** A device process (memory counters, DMA track). */
interface DeviceProc {
  pid: number;
  name: string;
  /** The device id (`accel0`). */
  device: string;
  /** Whether it has a DMA track. */
  dma: boolean;
}

/** An open transfer (DMA or fabric). */
interface OpenTransfer {
  id: number;
  name: string;
  cat: string;
  pid: number;
  tid: number;
  t: number;
}

class TraceBuilder {
  private readonly out: Keyed[] = [];
  private readonly meta: TraceEvent[] = [];
  /** Kernel processes by host name ('' for a run of one machine). */
  private readonly kernels = new Map<string, KernelProc>();
  /** Host names in boot order. */
  private readonly hosts: string[];
  /** Host of each kernel thread (task id), when known. */
  private readonly kthreadHost = new Map<number, string>();
  private readonly irqSlices = new Set<string>();
  /** Device processes: key (host/device) -> pid and name. */
  private readonly devices = new Map<string, DeviceProc>();
  /** Fabric tracks: sending port -> tid. */
  private readonly ports = new Map<string, number>();
  /** Events come from more than one machine: counter and buffer names carry the host. */
  private readonly multiHost: boolean;
  private seq = 0;
  private readonly t0: number;
  private readonly end: number;

  constructor(private readonly a: RunArtifacts) {
    this.t0 = a.result.t0;
    this.end = a.result.t0 + a.result.duration;
    const declared = ((a.result as { hosts?: { name: string }[] }).hosts ?? []).map((h) => h.name);
    const seen = new Set<string>(declared);
    for (const e of a.log) {
      for (const h of [e.host, e.args?.host]) {
        if (typeof h === 'string' && !seen.has(h)) {
          seen.add(h);
          declared.push(h);
        }
      }
    }
    this.hosts = declared;
    this.multiHost = declared.length > 1;
    this.learnKthreadHosts();
  }

  /** The host of a known task (a scenario task, or a kernel thread already placed). */
  private taskHost(task: number): string | undefined {
    return this.a.tasks.get(task)?.host ?? this.kthreadHost.get(task);
  }

  /** The task id of a `name/<task>` context, or undefined. */
  private static taskOf(ctx: string): number | undefined {
    const m = /^(.*)\/(\d+)$/.exec(ctx);
    return m ? Number(m[2]) : undefined;
  }

  /** Kernel threads: the host of the task that spawned them. */
  private learnKthreadHosts(): void {
    if (!this.multiHost) return;
    for (const e of this.a.log) {
      if (e.name !== 'task_newtask') continue;
      const child = Number(e.args?.pid);
      if (this.a.tasks.has(child) || this.kthreadHost.has(child)) continue;
      const parent = TraceBuilder.taskOf(e.ctx);
      const host = e.host ?? (parent === undefined ? undefined : this.taskHost(parent));
      if (host !== undefined) this.kthreadHost.set(child, host);
    }
  }

  /** The host an entry belongs to (see the module comment), or undefined for a run of one machine. */
  private hostOf(e: LogEntry): string | undefined {
    if (!this.multiHost) return undefined;
    if (e.host !== undefined) return e.host;
    if (typeof e.args?.host === 'string') return e.args.host;
    const task = TraceBuilder.taskOf(e.ctx);
    if (task !== undefined) return this.taskHost(task);
    if (e.name === 'sched_wakeup') return this.taskHost(Number(e.args?.pid));
    return undefined;
  }

  /** The kernel process of `host` (the first host's when unknown). */
  private kernel(host: string | undefined): KernelProc {
    const name = this.multiHost ? (host ?? this.hosts[0]) : '';
    let k = this.kernels.get(name);
    if (!k) {
      const i = this.multiHost ? Math.max(0, this.hosts.indexOf(name)) : 0;
      k = {
        pid: KERNEL_PID + i * HOST_PID_STRIDE,
        tidOffset: i * HOST_TID_STRIDE,
        kthreads: new Map(),
        fences: new Map(),
      };
      this.kernels.set(name, k);
    }
    return k;
  }

  private push(ev: TraceEvent, rank: number): void {
    this.out.push({ ev, rank, seq: this.seq++ });
  }

  private ts(t: number): number {
    return us(t - this.t0);
  }

  /** Where a log context (`name/<task>`, `irq`, `none`) goes; `host` places kernel contexts. */
  private where(ctx: string, host: string | undefined): Where {
    const task = TraceBuilder.taskOf(ctx);
    if (task !== undefined) {
      const info = this.a.tasks.get(task);
      if (info) return { pid: info.pid, tid: info.tid };
      const k = this.kernel(this.multiHost ? (this.kthreadHost.get(task) ?? host) : undefined);
      k.kthreads.set(task, ctx);
      return { pid: k.pid, tid: k.tidOffset + KTHREAD_TID_BASE + task };
    }
    const k = this.kernel(host);
    return { pid: k.pid, tid: k.tidOffset + (ctx === 'irq' ? IRQ_TID : KERNEL_TID) };
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

  private fenceTid(e: LogEntry, k: KernelProc): number {
    const ctx = Number(e.args?.context ?? 0);
    if (!k.fences.has(ctx)) {
      k.fences.set(ctx, `fence ctx ${ctx} (${e.args?.driver}:${e.args?.timeline})`);
    }
    return k.tidOffset + FENCE_TID_BASE + ctx;
  }

  private log(log: LogEntry[]): void {
    const waits = new Map<string, LogEntry[]>();
    const open = new Map<string, { id: number; name: string; pid: number }[]>();
    let fenceIds = 0;
    let flowIds = 0;
    // Open syscalls per context (a stack: the model never nests them, but be safe).
    const calls = new Map<string, LogEntry[]>();
    // dma-buf lifetimes by host/ino.
    const bufs = new Map<string, { id: number; name: string; pid: number }>();
    let bufIds = 0;
    // Transfers in flight: `dma|<host>|<flow>` or `fabric|<flow>`.
    const transfers = new Map<string, OpenTransfer>();
    let transferIds = 0;
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
      const host = this.hostOf(e);
      const w = this.where(e.ctx, host);
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
      if (e.name === 'pcie_transfer_start' || e.name === 'fabric_transfer_start') {
        const fabric = e.name === 'fabric_transfer_start';
        const a = e.args ?? {};
        const key = fabric ? `fabric|${a.flow}` : `dma|${host ?? ''}|${a.flow}`;
        const src = String(a.src);
        const size = sizeText(Number(a.bytes));
        let pid: number;
        let tid: number;
        let name: string;
        if (fabric) {
          pid = FABRIC_PID;
          tid = this.portTid(src);
          name = `${src} -> ${a.dst} ${size}`;
        } else {
          const d = this.device(host, src);
          d.dma = true;
          pid = d.pid;
          tid = d.pid;
          name = `DMA ${src} -> ${a.dst} ${size}`;
        }
        const cat = fabric ? 'fabric' : 'dma';
        const id = ++transferIds;
        transfers.set(key, { id, name, cat, pid, tid, t: e.t });
        const args: Record<string, unknown> = { ...a };
        if (!fabric && this.multiHost && host !== undefined) args.host = host;
        this.push({ name, cat, ph: 'b', ts, pid, tid, id, args }, 1);
        continue;
      }
      if (e.name === 'pcie_transfer_end' || e.name === 'fabric_transfer_end') {
        const fabric = e.name === 'fabric_transfer_end';
        const key = fabric ? `fabric|${e.args?.flow}` : `dma|${host ?? ''}|${e.args?.flow}`;
        const x = transfers.get(key);
        if (x) {
          transfers.delete(key);
          const bytes = Number(e.args?.bytes ?? 0);
          const ns = e.t - x.t;
          this.push(
            {
              name: x.name,
              cat: x.cat,
              ph: 'e',
              ts,
              pid: x.pid,
              tid: x.tid,
              id: x.id,
              args: { state: e.args?.state, bytes, ns, GBps: gbPerS(bytes, ns) },
            },
            3,
          );
        }
        continue;
      }
      if (e.name.startsWith('dma_buf_')) {
        const key = `${e.args?.host ?? ''}/${e.args?.ino}`;
        if (e.name === 'dma_buf_export') {
          const id = ++bufIds;
          const on = this.multiHost ? ` on ${e.args?.host}` : '';
          const name = `dma_buf ${e.args?.ino} (${e.args?.exp_name})${on}`;
          const pid = this.kernel(host).pid;
          bufs.set(key, { id, name, pid });
          this.push({ name, cat: 'dma_buf', ph: 'b', ts, pid, id, args: { ...e.args, begin: e.name } }, 1);
        } else {
          const b = bufs.get(key);
          if (b && e.name === 'dma_buf_release') {
            bufs.delete(key);
            this.push(
              { name: b.name, cat: 'dma_buf', ph: 'e', ts, pid: b.pid, id: b.id, args: { end: e.name } },
              3,
            );
          } else if (b) {
            this.push(
              {
                name: b.name,
                cat: 'dma_buf',
                ph: 'n',
                ts,
                pid: b.pid,
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
      const irqKey = `${host ?? ''}|${e.t}`;
      if (e.ctx === 'irq' && !this.irqSlices.has(irqKey)) {
        // An interrupt at this instant: a zero-length slice flows can start from.
        this.irqSlices.add(irqKey);
        this.push({ name: 'hardirq', cat: 'irq', ph: 'X', ts, dur: 0, pid: w.pid, tid: w.tid }, 0);
      }
      if (e.name.startsWith('dma_fence_')) {
        const args = {
          driver: e.args?.driver,
          timeline: e.args?.timeline,
          context: e.args?.context,
          seqno: e.args?.seqno,
        };
        const k = this.kernel(host);
        const key = `${host ?? ''}|${args.context}:${args.seqno}`;
        this.push(
          {
            name: e.name,
            cat: 'dma_fence',
            ph: 'i',
            s: 't',
            ts,
            pid: k.pid,
            tid: this.fenceTid(e, k),
            args: { ...args, by: e.ctx },
          },
          2,
        );
        if (e.name === 'dma_fence_init') {
          const id = ++fenceIds;
          const name = `${args.driver}:${args.timeline}`;
          open.set(key, [...(open.get(key) ?? []), { id, name, pid: k.pid }]);
          this.push(
            {
              name,
              cat: 'dma_fence',
              ph: 'b',
              ts,
              pid: k.pid,
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
                pid: f.pid,
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
        const to = this.taskWhere(woken, host);
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
      }
    }
    // Counters of a run that had no event after the scenario started.
    for (const b of before.values()) this.counter(b, 0);
    // Syscalls that never returned, buffers never released and transfers still running
    // end with the trace.
    const endTs = this.ts(this.end);
    for (const [ctx, list] of calls) {
      for (const start of list) this.syscall(start, this.where(ctx, undefined), endTs, undefined);
    }
    for (const b of bufs.values()) {
      this.push(
        {
          name: b.name,
          cat: 'dma_buf',
          ph: 'e',
          ts: endTs,
          pid: b.pid,
          id: b.id,
          args: { end: 'not released' },
        },
        3,
      );
    }
    for (const x of transfers.values()) {
      this.push(
        {
          name: x.name,
          cat: x.cat,
          ph: 'e',
          ts: Math.max(endTs, this.ts(x.t)),
          pid: x.pid,
          tid: x.tid,
          id: x.id,
          args: { state: 'still running when the trace ends' },
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
            pid: f.pid,
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

  /** The process of device `device` of `host` (created on first use, in order of use). */
  private device(host: string | undefined, device: string): DeviceProc {
    const key = `${host ?? ''}/${device}`;
    let d = this.devices.get(key);
    if (!d) {
      const on = this.multiHost && host !== undefined ? ` on ${host}` : '';
      d = { pid: DEVICE_PID_BASE + this.devices.size, name: `${device}${on}`, device, dma: false };
      this.devices.set(key, d);
    }
    return d;
  }

  /** The fabric track of a sending port (created on first use). */
  private portTid(port: string): number {
    let tid = this.ports.get(port);
    if (tid === undefined) {
      tid = FABRIC_PID + 1 + this.ports.size;
      this.ports.set(port, tid);
    }
    return tid;
  }

  /** A `C` event for a mem_in_use tracepoint. */
  private counter(e: LogEntry, ts: number): void {
    const a = e.args ?? {};
    const host = this.multiHost && a.host !== undefined ? ` on ${a.host}` : '';
    const h = this.multiHost && typeof a.host === 'string' ? a.host : undefined;
    const pid = a.device === undefined ? this.kernel(h).pid : this.device(h, String(a.device)).pid;
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

  /** Where task `task` runs; a kernel thread of unknown host goes to `host`'s kernel. */
  private taskWhere(task: number, host: string | undefined): Where {
    const info = this.a.tasks.get(task);
    if (info) return { pid: info.pid, tid: info.tid };
    const k = this.kernel(this.multiHost ? (this.kthreadHost.get(task) ?? host) : undefined);
    return { pid: k.pid, tid: k.tidOffset + KTHREAD_TID_BASE + task };
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
    let sort = result.processes.length;
    // Every host's kernel (the first one even when nothing ran in it: reports go there).
    this.kernel(undefined);
    for (const h of this.multiHost ? this.hosts : []) this.kernel(h);
    for (const [host, k] of [...this.kernels].sort((x, y) => x[1].pid - y[1].pid)) {
      m('process_name', k.pid, undefined, { name: host === '' ? 'kernel' : `kernel on ${host}` });
      m('process_sort_index', k.pid, undefined, { sort_index: sort++ });
      m('thread_name', k.pid, k.tidOffset + IRQ_TID, { name: 'hardirq' });
      m('thread_name', k.pid, k.tidOffset + KERNEL_TID, { name: 'kernel' });
      for (const [task, label] of [...k.kthreads].sort((x, y) => x[0] - y[0])) {
        m('thread_name', k.pid, k.tidOffset + KTHREAD_TID_BASE + task, { name: label });
      }
      for (const [ctx, label] of [...k.fences].sort((x, y) => x[0] - y[0])) {
        const tid = k.tidOffset + FENCE_TID_BASE + ctx;
        m('thread_name', k.pid, tid, { name: label });
        m('thread_sort_index', k.pid, tid, { sort_index: FENCE_TID_BASE + ctx });
      }
    }
    for (const d of [...this.devices.values()].sort((x, y) => x.pid - y.pid)) {
      m('process_name', d.pid, undefined, { name: `${d.name} (device)` });
      m('process_sort_index', d.pid, undefined, { sort_index: sort++ });
      if (d.dma) m('thread_name', d.pid, d.pid, { name: `DMA from ${d.device}` });
    }
    if (this.ports.size > 0) {
      m('process_name', FABRIC_PID, undefined, { name: 'fabric' });
      m('process_sort_index', FABRIC_PID, undefined, { sort_index: sort++ });
      for (const [port, tid] of this.ports) m('thread_name', FABRIC_PID, tid, { name: port });
    }
  }
}
