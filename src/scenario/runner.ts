/**
 * Running a scenario: a cluster of the scenario's hosts (one by default) is booted on
 * one engine with the scenario's seed and scheduler, their RDMA NIC ports cabled to one
 * switch (src/fabric/cluster.ts). On each host a harness process (`init`) creates the
 * channels between that host's processes (AF_UNIX SOCK_SEQPACKET socketpairs) and starts
 * them as its children, each inheriting only its own channel ends (the others are
 * close-on-exec while it is spawned), then closes its copies and reaps the children.
 * Processes on different hosts meet through the cluster's out-of-band channel. Each process's main thread runs its steps in order; `parallel`
 * branches run as threads of the process.
 *
 * Every step is recorded with its virtual start and end time, its thread, the raw
 * result and errno, what it bound, and the range of the event log it covers. A step
 * that fails when its file did not say it would ends the process with exit code 1, as
 * a failed assertion would; a step expecting an errno that instead succeeds, or a
 * check that finds other bytes, is recorded and the process goes on.
 *
 * `runScenario` returns the record (`ScenarioResult`, plain data for reports and JSON)
 * and the artifacts a trace needs (the whole event log and which simulated task is
 * which process and thread).
 */

import { Cluster } from '../fabric/cluster.ts';
import { SOCK_SEQPACKET } from '../kernel/af-unix.ts';
import { errno, errnoName } from '../kernel/errno.ts';
import { F_SETFD, FD_CLOEXEC } from '../kernel/fcntl.ts';
import { buildTopology } from '../kernel/pci/topology.ts';
import { AF_UNIX, SOCK_CLOEXEC } from '../kernel/socket.ts';
import { lookupPath } from '../kernel/vfs.ts';
import type { Machine, Process } from '../machine.ts';
import type { RunStatus } from '../sim/engine.ts';
import type { LogEntry } from '../sim/event-log.ts';
import type { Report } from '../sim/report.ts';
import type { SchedulerOptions } from '../sim/scheduler.ts';
import { ProcessExit, SegmentationFault, type Sys } from '../uapi/sys.ts';
import { type ExpectationResult, evaluateExpectations } from './expect.ts';
import { type CompiledProcess, type CompiledScenario, HARNESS_NAME } from './load.ts';
import type { TransferRecord } from './step-kind.ts';
import {
  type BoundValue,
  type CompiledStep,
  type MappingValue,
  type StepContext,
  StepError,
} from './step-kind.ts';

/** Options of one run; unset ones come from the scenario. */
export interface RunOptions {
  /** Seed. */
  seed?: number;
  /** Scheduler. */
  scheduler?: SchedulerOptions;
}

/** How a step ended. */
export type StepOutcomeKind =
  | 'ok'
  | 'expected-errno'
  | 'failed'
  | 'wrong-errno'
  | 'unexpected-success'
  | 'check-failed'
  | 'interrupted'
  | 'crashed';

/** One step as it ran. */
export interface StepRecord {
  /** Order in which steps started (0-based). */
  seq: number;
  /** The process's name. */
  process: string;
  /** The host the process runs on (absent in records made before hosts existed). */
  host?: string;
  /** The thread's name (`main`, or the `parallel` branch). */
  thread: string;
  /** Process id. */
  pid: number;
  /** Thread id. */
  tid: number;
  /** The step id, if it has one. */
  id?: string;
  /** The action. */
  kind: string;
  /** Short description. */
  label: string;
  /** Line in the file. */
  line: number;
  /** Round of the enclosing `repeat` (0-based), if any. */
  round?: number;
  /** The note the file gives, if any. */
  note?: string;
  /** Start, ns after the scenario started. */
  start: number;
  /** End, ns after the scenario started (null if it never ended). */
  end: number | null;
  /** The raw result (`>= 0` or `-errno`), null if there was none. */
  ret: number | null;
  /** The errno symbol, for failures. */
  errno?: string;
  /** How it ended. */
  outcome: StepOutcomeKind;
  /** A phrase describing the result. */
  summary?: string;
  /** The name bound, if any. */
  as?: string;
  /** Details (struct contents, revents...). */
  detail?: Record<string, unknown>;
  /** Text read, for `cat` and `fdinfo`. */
  text?: string;
  /** What went wrong, for failed checks and crashes. */
  problem?: string;
  /** The data the step moved (RDMA, DMA, P2P): bytes, time, achieved and line rate. */
  transfer?: TransferRecord;
  /** Index of the first event-log entry at or after its start. */
  logStart: number;
  /** Index just past the last event-log entry before its end. */
  logEnd: number;
}

/** A thread of a scenario process. */
export interface ThreadRecord {
  /** Its name (`main` or the branch name). */
  name: string;
  /** Thread id. */
  tid: number;
  /** The simulated task's id (as in event-log contexts `name/<id>`). */
  task: number;
}

/** A process as it ran. */
export interface ProcessRecord {
  /** Name. */
  name: string;
  /** The host it ran on. */
  host?: string;
  /** Process id. */
  pid: number;
  /** Exit code, or null if it did not exit. */
  exitCode: number | null;
  /** It was killed by a `kill` step. */
  killed: boolean;
  /** It crashed (an exception in its program): the message. */
  crashed?: string;
  /** Its threads. */
  threads: ThreadRecord[];
  /** The harness, not a process of the file. */
  harness?: boolean;
}

/** A report with its time relative to the scenario start. */
export interface ReportRecord extends Report {
  /** ns after the scenario started. */
  time: number;
}

/** The outcome of a run, as plain data. */
export interface ScenarioResult {
  /** The scenario. */
  scenario: { name: string; description?: string; file: string };
  /** Seed used. */
  seed: number;
  /** Scheduler used. */
  scheduler: SchedulerOptions;
  /** The topology the scenario names (the first host's PCIe tree), or null for the default machine. */
  topology: TopologyRecord | null;
  /** Every host, in boot order, with its topology (null: the default machine). */
  hosts: { name: string; topology: TopologyRecord | null }[];
  /** The RDMA network joining the hosts' NIC ports. */
  network: { gbps: number; latencyNs?: number };
  /** How the run ended, or `skipped` when the machine lacks a device the scenario requires. */
  status: RunStatus | 'skipped';
  /** Why it was skipped. */
  skipped?: string;
  /** Virtual time at which the scenario started (after boot), ns. */
  t0: number;
  /** Virtual time the run took, ns. */
  duration: number;
  /** Processes, the harness first. */
  processes: ProcessRecord[];
  /** Steps in the order they started. */
  steps: StepRecord[];
  /** Rule reports, in the order raised. */
  reports: ReportRecord[];
  /** Every expectation, explicit and implicit, with its verdict. */
  expectations: ExpectationResult[];
  /** All expectations met. */
  ok: boolean;
  /** Number of event-log entries. */
  logEntries: number;
  /** Digest of the event log (equal for equal seeds). */
  logHash: string;
}

/** A topology as a result shows it. */
export interface TopologyRecord {
  /** Its name. */
  name: string;
  /** Its endpoints. */
  devices: { id: string; bdf: string; kind: string }[];
}

/** Who a simulated task is. */
export interface TaskInfo {
  /** Process name. */
  process: string;
  /** The host it runs on. */
  host?: string;
  /** Thread name. */
  thread: string;
  /** Process id. */
  pid: number;
  /** Thread id. */
  tid: number;
}

/** What a run leaves for reports and traces. */
export interface RunArtifacts {
  /** The result. */
  result: ScenarioResult;
  /** The whole event log. */
  log: LogEntry[];
  /** Simulated task id -> process and thread. */
  tasks: Map<number, TaskInfo>;
}

/** Exit code of a process killed by a `kill` step (128 + SIGKILL). */
export const EXIT_KILLED = 137;

/** Runs a compiled scenario once. */
export async function runScenario(sc: CompiledScenario, opts: RunOptions = {}): Promise<RunArtifacts> {
  const run = new ScenarioRun(sc, opts);
  return run.run();
}

class ScenarioRun {
  readonly seed: number;
  readonly scheduler: SchedulerOptions;
  readonly steps: StepRecord[] = [];
  readonly tasks = new Map<number, TaskInfo>();
  readonly byName = new Map<string, Process>();
  readonly killed = new Set<string>();
  readonly threads = new Map<string, ThreadRecord[]>();
  cluster!: Cluster;
  /** The first host. */
  machine!: Machine;
  t0 = 0;

  constructor(
    readonly sc: CompiledScenario,
    opts: RunOptions,
  ) {
    this.seed = opts.seed ?? sc.seed;
    this.scheduler = opts.scheduler ?? sc.scheduler;
  }

  get now(): number {
    return this.machine.engine.now - this.t0;
  }

  get logLength(): number {
    return this.machine.engine.log.entries.length;
  }

  async run(): Promise<RunArtifacts> {
    const sc = this.sc;
    // Each run enumerates its own copy of each topology: a machine binds drivers to it.
    const c = await Cluster.create({
      // Host i numbers its processes from 100 + 1000 i (each host has its own pid space, as
      // separate machines do; disjoint ranges keep traces and the visualiser unambiguous).
      machines: sc.hosts.map((h, i) => ({
        name: h.name,
        firstPid: 100 + 1000 * i,
        ...(h.topology === null ? {} : { topology: buildTopology(h.topology.spec) }),
      })),
      seed: this.seed,
      scheduler: this.scheduler,
      linkGbps: sc.network.gbps,
      ...(sc.network.latencyNs === undefined ? {} : { link: { latencyNs: sc.network.latencyNs } }),
    });
    this.cluster = c;
    this.machine = c.machines[0];
    this.t0 = c.engine.now;
    for (const m of c.machines) {
      m.kernel.enter();
      const missing = sc.requires.filter((p) => {
        const e = lookupPath(p);
        return e === null || typeof e === 'number';
      });
      if (missing.length > 0) {
        const which = c.machines.length > 1 ? `host ${m.kernel.name}` : 'this machine';
        return this.finish('skipped', `${which} has no ${missing.join(', ')}`);
      }
    }
    for (const m of c.machines) {
      m.kernel.enter();
      m.spawn(HARNESS_NAME, (sys) => this.harness(sys, m.kernel.name));
    }
    const r = await c.run({ until: this.t0 + sc.limit });
    return this.finish(r.status);
  }

  /** A host's harness: its channels, then one child per process of the host, then reaping. */
  private async harness(sys: Sys, host: string): Promise<number> {
    this.register(sys, HARNESS_NAME, 'main');
    const procs = this.sc.processes.filter((p) => p.host === host);
    const mine = new Set(procs.map((p) => p.name));
    const ends = new Map<string, Map<string, number>>();
    const all: number[] = [];
    for (const c of this.sc.channels) {
      if (!mine.has(c.ends[0])) continue;
      const sv = sys.alloc(8, 4);
      const r = await sys.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
      if (r < 0) throw new Error(`harness: socketpair for channel ${c.name} failed with ${errnoName(r)}`);
      c.ends.forEach((p, i) => {
        const fd = sys.readS32(sv + 4 * i);
        all.push(fd);
        if (!ends.has(p)) ends.set(p, new Map());
        ends.get(p)!.set(c.name, fd);
      });
    }
    for (const p of procs) {
      const own = ends.get(p.name) ?? new Map<string, number>();
      for (const fd of own.values()) await sys.fcntl(fd, F_SETFD, 0);
      const pid = sys.spawn(p.name, (csys) => this.processMain(csys, p, own));
      const proc = sys.machine.processes.find((q) => q.pid === pid);
      if (proc) this.byName.set(p.name, proc);
      for (const fd of own.values()) await sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (const fd of all) await sys.close(fd);
    for (let i = 0; i < procs.length; i++) {
      const r = await sys.waitpid(-1, 0, 0);
      if (r < 0) break;
    }
    return 0;
  }

  private register(sys: Sys, process: string, thread: string): void {
    const host = sys.machine.kernel.name;
    const info = { process, host, thread, pid: sys.getpid(), tid: sys.gettid() };
    this.tasks.set(sys.task.id, info);
    const key = `${host}/${process}`;
    const list = this.threads.get(key) ?? [];
    list.push({ name: thread, tid: info.tid, task: sys.task.id });
    this.threads.set(key, list);
  }

  private async processMain(sys: Sys, p: CompiledProcess, channels: Map<string, number>): Promise<number> {
    const names = new Map<string, BoundValue>();
    const ctx = (tsys: Sys, thread: string): StepContext => {
      const self: StepContext = {
        sys: tsys,
        process: p.name,
        thread,
        host: p.host,
        oob: this.cluster.oob,
        hostOf: (name) => this.sc.processes.find((q) => q.name === name)?.host,
        fd: (name) => {
          const v = names.get(name);
          if (v === undefined) throw new StepError(`"${name}" is not bound (yet) in ${p.name}`);
          if (v.type !== 'fd') throw new StepError(`"${name}" is a mapping, not an fd`);
          return v.fd;
        },
        mapping: (name) => {
          const v = names.get(name);
          if (v === undefined) throw new StepError(`"${name}" is not bound (yet) in ${p.name}`);
          if (v.type !== 'mapping') throw new StepError(`"${name}" is an fd, not a mapping`);
          return v as MappingValue;
        },
        lookup: (name) => names.get(name),
        unbind: (name) => {
          names.delete(name);
        },
        channelFd: (name) => {
          const fd = channels.get(name);
          if (fd === undefined) throw new StepError(`${p.name} has no end of channel "${name}"`);
          return fd;
        },
        runBranches: async (branches) => {
          const tids = branches.map((b) =>
            tsys.spawnThread(async (bsys) => {
              this.register(bsys, p.name, b.name);
              await this.sequence(ctx(bsys, b.name), b.steps, names, undefined);
              return 0;
            }),
          );
          for (const tid of tids) await tsys.joinThread(tid);
          return 0;
        },
        runSequence: async (steps, round) => {
          await this.sequence(self, steps, names, round);
          return 0;
        },
        kill: (name) => this.kill(name, tsys),
        scratch: (size, align = 8) => tsys.alloc(size, align),
      };
      return self;
    };
    this.register(sys, p.name, 'main');
    await this.sequence(ctx(sys, 'main'), p.steps, names, undefined);
    return 0;
  }

  private async sequence(
    ctx: StepContext,
    steps: CompiledStep[],
    names: Map<string, BoundValue>,
    round: number | undefined,
  ): Promise<void> {
    for (const s of steps) await this.step(ctx, s, names, round);
  }

  private async step(
    ctx: StepContext,
    step: CompiledStep,
    names: Map<string, BoundValue>,
    round: number | undefined,
  ): Promise<void> {
    const sys = ctx.sys;
    const rec: StepRecord = {
      seq: this.steps.length,
      process: ctx.process,
      host: ctx.host,
      thread: ctx.thread,
      pid: sys.getpid(),
      tid: sys.gettid(),
      id: step.id,
      kind: step.kind,
      label: step.label,
      line: step.line,
      ...(round === undefined ? {} : { round }),
      ...(step.note === undefined ? {} : { note: step.note }),
      ...(step.as === undefined ? {} : { as: step.as }),
      start: this.now,
      end: null,
      ret: null,
      outcome: 'ok',
      logStart: this.logLength,
      logEnd: this.logLength,
    };
    this.steps.push(rec);
    const close = () => {
      rec.end = this.now;
      rec.logEnd = this.logLength;
    };
    let out: Awaited<ReturnType<typeof step.def.run>>;
    try {
      out = await step.def.run(ctx, step.args, step);
    } catch (e) {
      close();
      if (e instanceof ProcessExit) {
        if (step.kind === 'exit') {
          rec.ret = 0;
          rec.summary = `exit(${e.code})`;
        } else {
          rec.outcome = 'interrupted';
          rec.summary = this.killed.has(ctx.process) ? 'killed' : `process exiting (${e.code})`;
        }
        throw e;
      }
      if (e instanceof StepError) {
        rec.outcome = 'failed';
        rec.problem = e.message;
        return sys.exit(1);
      }
      rec.outcome = 'crashed';
      rec.problem =
        e instanceof SegmentationFault ? `SIGSEGV: ${e.message}` : String((e as Error)?.message ?? e);
      throw e;
    }
    close();
    rec.ret = out.ret;
    if (out.summary !== undefined) rec.summary = out.summary;
    if (out.detail !== undefined) rec.detail = out.detail;
    if (out.text !== undefined) rec.text = out.text;
    if (out.problem !== undefined) rec.problem = out.problem;
    if (out.transfer !== undefined) rec.transfer = out.transfer;
    const want = step.expectErrno;
    if (out.ret < 0) {
      rec.errno = errnoName(out.ret);
      rec.summary ??= rec.errno;
      if (want === 'any' || want === rec.errno) {
        rec.outcome = 'expected-errno';
        return;
      }
      rec.outcome = want === undefined ? 'failed' : 'wrong-errno';
      return sys.exit(1);
    }
    if (step.as !== undefined && out.value !== undefined) names.set(step.as, out.value);
    if (want !== undefined) rec.outcome = 'unexpected-success';
    else if (out.problem !== undefined) rec.outcome = 'check-failed';
  }

  private kill(name: string, from: Sys): number {
    const p = this.byName.get(name);
    // kill(2) reaches only processes of the caller's own host.
    if (!p || p.machine !== from.machine) return -errno.ESRCH;
    if (p.exitCode !== null || p.exiting) return 0;
    this.killed.add(name);
    p.exitGroup(EXIT_KILLED, from.task);
    return 0;
  }

  private finish(status: RunStatus | 'skipped', skipped?: string): RunArtifacts {
    const c = this.cluster;
    const engine = c.engine;
    const sc = this.sc;
    const processes: ProcessRecord[] = [];
    for (const m of c.machines) {
      const harness = m.processes.find((p) => p.name === HARNESS_NAME && p.parent === null);
      if (!harness) continue;
      const host = m.kernel.name;
      processes.push({
        name: HARNESS_NAME,
        host,
        pid: harness.pid,
        exitCode: harness.exitCode,
        killed: false,
        ...(harness.error === undefined
          ? {}
          : { crashed: String((harness.error as Error)?.message ?? harness.error) }),
        threads: this.threads.get(`${host}/${HARNESS_NAME}`) ?? [],
        harness: true,
      });
    }
    for (const cp of sc.processes) {
      const p = this.byName.get(cp.name);
      processes.push({
        name: cp.name,
        host: cp.host,
        pid: p?.pid ?? 0,
        exitCode: p?.exitCode ?? null,
        killed: this.killed.has(cp.name),
        ...(p?.error === undefined ? {} : { crashed: String((p.error as Error)?.message ?? p.error) }),
        threads: this.threads.get(`${cp.host}/${cp.name}`) ?? [],
      });
    }
    const reports: ReportRecord[] = engine.reports.map((r) => ({ ...r, time: r.simTime - this.t0 }));
    const topoRecord = (t: CompiledScenario['topology']): TopologyRecord | null =>
      t
        ? {
            name: t.name,
            devices: t.endpoints.map((d) => ({ id: d.id, bdf: d.name, kind: d.kind ?? 'other' })),
          }
        : null;
    const result: ScenarioResult = {
      scenario: { name: sc.name, ...(sc.description ? { description: sc.description } : {}), file: sc.file },
      seed: this.seed,
      scheduler: this.scheduler,
      topology: topoRecord(sc.topology),
      hosts: sc.hosts.map((h) => ({ name: h.name, topology: topoRecord(h.topology) })),
      network: sc.network,
      status,
      ...(skipped === undefined ? {} : { skipped }),
      t0: this.t0,
      duration: engine.now - this.t0,
      processes,
      steps: this.steps,
      reports,
      expectations: [],
      ok: true,
      logEntries: engine.log.length,
      logHash: engine.log.hash(),
    };
    if (status !== 'skipped') {
      result.expectations = evaluateExpectations(sc, result);
      result.ok = result.expectations.every((e) => e.ok);
    }
    return { result, log: engine.log.entries, tasks: this.tasks };
  }
}
