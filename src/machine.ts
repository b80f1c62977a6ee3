/**
 * A Machine: one host running one kernel, with the processes users run on it.
 *
 * This is the entry point of the userspace ABI (DESIGN.md "The userspace ABI"):
 *
 * ```ts
 * const m = await Machine.create({ seed: 1 });
 * const p = m.spawn('app', async (sys) => { ...; return 0; });
 * await m.run();
 * p.exitCode; m.reports;
 * ```
 *
 * Booting registers the built-in devices (/dev/null, /dev/zero, /proc, the sync debugfs
 * files with sw_sync), enumerates the PCIe topology (`topology`, default the
 * `workstation` preset) and binds its functions to the PCI drivers (the habanalabs-like
 * accelerators appear as /dev/accel/accel<N>), and lets `bootTime` of virtual time pass,
 * so a program never sees CLOCK_MONOTONIC at 0 (as on a real machine, where the clock
 * counts from boot). DMA between devices and memory takes its time from the topology's
 * transfer model (`machine.transfers`).
 *
 * A process is a simulated thread group: its main thread runs the function given to
 * `spawn` with a `Sys`; `sys.spawnThread` adds threads sharing its fd table and address
 * space, `sys.spawn` starts a child process (fork + exec). A process starts with fd 0 on
 * /dev/null and fds 1, 2 on the console, captured in `process.stdout` / `stderr`, so its
 * first open returns 3 as on Linux. The process exits (exit_group) when the main function returns, when any thread
 * calls `sys.exit`, or when a thread throws (a crash: exit code 139 for a memory fault
 * from the helpers, 1 otherwise, and the error kept in `process.error`). Other threads
 * then unwind at their next syscall (blocked interruptible calls are woken), and the
 * last one releases everything the process held, in the kernel's order (kernel/exit.ts).
 * When every process has exited, leak checks run and report anything still alive.
 */

import { habanalabsInit } from './drivers/accel/habanalabs/habanalabs-drv.ts';
import { memDevicesInit, nullFops } from './drivers/char/mem.ts';
import { amdgpuInit } from './drivers/gpu/amdgpu/amdgpu-drv.ts';
import { vgemInit } from './drivers/gpu/vgem/vgem-drv.ts';
import { scanoutInit } from './drivers/media/display-importer.ts';
import { rdmaNicInit } from './drivers/rdma/rdma-nic.ts';
import { consoleInit, openConsole } from './drivers/tty/console.ts';
import { unixGc } from './kernel/af-unix.ts';
import { dmaBufInit } from './kernel/dma-buf/dma-buf.ts';
import { addDefaultCmaHeap } from './kernel/dma-buf/heaps/cma-heap.ts';
import { systemHeapCreate } from './kernel/dma-buf/heaps/system-heap.ts';
import { syncDebugfsInit } from './kernel/dma-buf/sync-debug.ts';
import { udmabufDevInit } from './kernel/dma-buf/udmabuf.ts';
import { doExit } from './kernel/exit.ts';
import { FilesStruct } from './kernel/fdtable.ts';
import { File } from './kernel/file.ts';
import { Kernel } from './kernel/kernel.ts';
import { runLeakChecks } from './kernel/leak-check.ts';
import { MmStruct, mapAnonymous } from './kernel/mm/mmap.ts';
import { FlowNetwork } from './kernel/pci/flow.ts';
import { pciBusAttach } from './kernel/pci/pci-driver.ts';
import { buildTopology, Topology, type TopologySpec } from './kernel/pci/topology.ts';
import { type PresetName, topologyPreset } from './kernel/pci/topology-presets.ts';
import { TransferModel } from './kernel/pci/transfer.ts';
import { procFdInit } from './kernel/proc-fd.ts';
import { attachTask, TaskStruct, threadGroups } from './kernel/sched.ts';
import { lookupPath } from './kernel/vfs.ts';
import { WaitQueueHead } from './kernel/wait.ts';
import { Engine, type RunResult, type SchedulerOptions, type Task } from './sim/index.ts';
import { KernelBug, type Report } from './sim/report.ts';
import { ProcessExit, SegmentationFault, Sys } from './uapi/sys.ts';

/** Options for `Machine.create`. */
export interface MachineOptions {
  /** Seed of every random choice in the run (default 1). */
  seed?: number;
  /** Scheduling strategy (default fifo). */
  scheduler?: SchedulerOptions;
  /** The host's name in reports (default `host`). */
  name?: string;
  /** Kernel tick rate (default 250). */
  hz?: number;
  /** Record the event log (default true). */
  log?: boolean;
  /** Virtual time that passes while booting, ns (default 1 s). */
  bootTime?: number;
  /**
   * The PCIe topology: a preset name, a spec, or a built topology (default
   * `workstation`: one Gaudi2-like accelerator and one NIC that reaches it peer-to-peer).
   * Its functions are bound to the registered PCI drivers at boot.
   */
  topology?: PresetName | TopologySpec | Topology;
  /** An engine to share with other machines (a fabric Cluster); default: a new one. */
  engine?: Engine;
  /** A flow network to share with other machines (transfers then also share network links); default: a new one on the engine. */
  flowNetwork?: FlowNetwork;
  /** The first pid handed out (default 100); machines of one cluster may use disjoint ranges so traces tell their processes apart. */
  firstPid?: number;
}

/** A program's main function: gets the syscall ABI, returns its exit code. */
export type ProgramMain = (sys: Sys) => Promise<number | undefined | void>;

/** A machine-wide initcall: registers a driver's devices while the machine boots. */
export type Initcall = () => void;

const builtinInitcalls: Initcall[] = [
  memDevicesInit,
  consoleInit,
  procFdInit,
  syncDebugfsInit,
  // dma-buf (subsys_initcall), then the heaps and udmabuf (module_init), in 6.12's order.
  dmaBufInit,
  systemHeapCreate,
  addDefaultCmaHeap,
  udmabufDevInit,
  vgemInit,
  // PCI drivers (module_init): they bind when the bus is probed after the initcalls.
  habanalabsInit,
  rdmaNicInit,
  scanoutInit,
  amdgpuInit,
];

/** Adds an initcall every Machine runs at boot, after the built-in ones (drivers register themselves here). */
export function registerInitcall(fn: Initcall): void {
  if (!builtinInitcalls.includes(fn)) builtinInitcalls.push(fn);
}

/** Exit code of a process killed by a memory fault (128 + SIGSEGV). */
export const EXIT_SEGV = 139;

/** A process on a machine. */
export class Process {
  /** Exit code once the process has exited, else null. */
  exitCode: number | null = null;
  /** The process's threads (simulated tasks), main thread first. */
  readonly threads: Task[] = [];
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number>;
  /** The exception that crashed the process, if one did. */
  error: unknown = undefined;
  /** exit_group has started: threads unwind at their next syscall. */
  exiting = false;
  /** The code exit_group was called with. */
  exitGroupCode = 0;
  /** The fd table its threads share. */
  readonly files: FilesStruct;
  /** The process that spawned it with `sys.spawn`, or null. */
  parent: Process | null = null;
  /** Children not yet reaped with `sys.waitpid`. */
  readonly children: Process[] = [];
  /** Where `waitpid` sleeps until a child exits. */
  readonly childWait = new WaitQueueHead('wait_chldexit');
  /** The address space its threads share. */
  readonly mm = new MmStruct();
  /** Threads that have not exited yet. */
  liveThreads = 0;
  /** Everything the process wrote to fd 1 while it was the console. */
  stdout = '';
  /** Everything the process wrote to fd 2 while it was the console. */
  stderr = '';
  private readonly byTid = new Map<number, Task>();
  private readonly kernelTasks = new Map<Task, TaskStruct>();
  private arenaNext = 0;
  private arenaEnd = 0;
  private resolveExit!: (code: number) => void;

  /** Use `Machine#spawn`. */
  constructor(
    /** The machine the process runs on. */
    readonly machine: Machine,
    /** Process id. */
    readonly pid: number,
    /** Command name (comm; the kernel keeps its first 15 characters). */
    readonly name: string,
    files: FilesStruct = new FilesStruct(),
  ) {
    this.files = files;
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  /** The simulated task of thread `tid`, if it belongs to this process. */
  threadByTid(tid: number): Task | undefined {
    return this.byTid.get(tid);
  }

  /** @internal registers a new thread. */
  addThread(tid: number, task: Task, ts: TaskStruct): void {
    this.threads.push(task);
    this.byTid.set(tid, task);
    this.kernelTasks.set(task, ts);
    this.liveThreads++;
  }

  /** @internal starts exit_group: marks the process exiting and wakes its threads' interruptible waits. */
  exitGroup(code: number, from: Task): void {
    if (this.exiting) return;
    this.exiting = true;
    this.exitGroupCode = code & 0xff;
    const engine = this.machine.engine;
    for (const t of this.threads) {
      const ts = this.kernelTasks.get(t);
      if (ts) ts.exiting = true;
      if (t !== from && t.state !== 'exited') engine.signal(t);
    }
  }

  /** @internal the malloc-like helper behind `sys.alloc`. */
  alloc(mm: MmStruct, size: number, align: number): number {
    const a = Math.max(1, align);
    let at = Math.ceil(this.arenaNext / a) * a;
    if (this.arenaNext === 0 || at + size > this.arenaEnd) {
      const len = Math.max(1 << 20, size + a);
      const base = mapAnonymous(mm, len);
      if (base < 0) throw new Error(`sys.alloc(${size}): out of memory (${base})`);
      this.arenaNext = base;
      this.arenaEnd = base + Math.ceil(len / 4096) * 4096;
      at = Math.ceil(base / a) * a;
    }
    this.arenaNext = at + size;
    return at;
  }

  /** @internal records the exit code; the first exit wins. */
  exit(code: number): void {
    if (this.exitCode !== null) return;
    this.exitCode = code;
    this.resolveExit(code);
    this.parent?.childWait.wakeUp(null);
  }
}

/** One host. */
export class Machine {
  /** The simulation engine (shared clock, events, scheduler). */
  readonly engine: Engine;
  /** The kernel running on this host. */
  readonly kernel: Kernel;
  /** Every process spawned, in order. */
  readonly processes: Process[] = [];
  /** The PCIe topology (enumerated). */
  readonly topology: Topology;
  /** DMA transfers in virtual time on the topology. */
  readonly transfers: TransferModel;
  private nextPid = 100;

  private constructor(opts: MachineOptions) {
    this.engine = opts.engine ?? new Engine({ seed: opts.seed, scheduler: opts.scheduler, log: opts.log });
    this.kernel = new Kernel(this.engine, { name: opts.name, hz: opts.hz });
    const t = opts.topology ?? 'workstation';
    this.topology = t instanceof Topology ? t : typeof t === 'string' ? topologyPreset(t) : buildTopology(t);
    this.transfers = new TransferModel(
      this.topology,
      opts.flowNetwork ?? new FlowNetwork(this.engine),
      this.kernel.name,
    );
    this.nextPid = opts.firstPid ?? 100;
  }

  /** Boots a machine: registers the built-in devices and lets `bootTime` pass. */
  static async create(opts: MachineOptions = {}): Promise<Machine> {
    const m = new Machine(opts);
    m.kernel.enter();
    for (const init of builtinInitcalls) init();
    pciBusAttach(m.topology, m.transfers, m.kernel);
    const boot = opts.bootTime ?? 1_000_000_000;
    if (boot > 0) {
      m.engine.at(m.engine.now + boot, () => {});
      await m.engine.run();
    }
    return m;
  }

  /** Virtual time now, ns (CLOCK_MONOTONIC). */
  get now(): bigint {
    return BigInt(this.engine.now);
  }

  /** Everything reported so far: warnings, rule violations, leaks, deadlocks, bugs. */
  get reports(): Report[] {
    return this.engine.reports;
  }

  /** Starts a process running `main`; it runs when `run()` is called. */
  spawn(name: string, main: ProgramMain): Process {
    const p = new Process(this, this.nextPid++, name);
    this.processes.push(p);
    this.kernel.enter();
    this.installStdio(p);
    this.startThread(p, main);
    return p;
  }

  /** fd 0 = /dev/null, fds 1 and 2 = the console captured into `stdout` / `stderr`. */
  private installStdio(p: Process): void {
    const e = lookupPath('/dev/null');
    if (!e || typeof e === 'number') return;
    const stdin = new File(this.kernel, e.inode, '/dev/null', 0o100000, nullFops);
    stdin.fMode |= 0x4 | 0x8 | 0x10;
    stdin.markOpened();
    const t = p.files;
    t.install(t.allocFd(0, t.nofile, false), stdin);
    t.install(
      t.allocFd(0, t.nofile, false),
      openConsole(0o1, (s) => {
        p.stdout += s;
      }),
    );
    t.install(
      t.allocFd(0, t.nofile, false),
      openConsole(0o1, (s) => {
        p.stderr += s;
      }),
    );
  }

  /**
   * @internal fork + exec of `main` as a child of `parent` (`sys.spawn`): the child gets
   * the parent's fds without close-on-exec, a fresh address space, and its own stdio
   * only through what it inherits.
   */
  spawnChild(parent: Process, name: string, main: ProgramMain): Process {
    const p = new Process(this, this.nextPid++, name, parent.files.dupForExec());
    p.parent = parent;
    parent.children.push(p);
    this.processes.push(p);
    this.startThread(p, main);
    return p;
  }

  /** @internal starts a thread of `p` running `main`; returns its task and tid. */
  startThread(p: Process, main: ProgramMain): { task: Task; tid: number } {
    const isMain = p.threads.length === 0;
    const tid = isMain ? p.pid : this.nextPid++;
    let ts: TaskStruct | null = null;
    const task = this.engine.spawn(
      p.name,
      async (t) => {
        const kt = ts!;
        attachTask(kt);
        if (isMain) threadGroups(this.kernel).set(p.pid, kt);
        const sys = new Sys(this, p, t, kt);
        let result = 0;
        try {
          if (p.exiting) throw new ProcessExit(p.exitGroupCode);
          const r = await main(sys);
          result = typeof r === 'number' ? r : 0;
          if (isMain) p.exitGroup(result, t);
        } catch (e) {
          if (e instanceof KernelBug) throw e;
          if (e instanceof ProcessExit) {
            result = e.code;
            p.exitGroup(e.code, t);
          } else {
            if (p.error === undefined) p.error = e;
            result = e instanceof SegmentationFault ? EXIT_SEGV : 1;
            p.exitGroup(result, t);
          }
        }
        p.liveThreads--;
        const last = p.liveThreads === 0;
        await doExit(kt, last);
        if (last) {
          threadGroups(this.kernel).delete(p.pid);
          p.exit(p.exiting ? p.exitGroupCode : result);
        }
        return result;
      },
      { owner: this.kernel },
    );
    ts = new TaskStruct(this.kernel, task, p.pid, tid, p.name, p.files, p.mm);
    p.addThread(tid, task, ts);
    return { task, tid };
  }

  /**
   * Runs until every process has exited (or a deadlock, a BUG, or the time limit in
   * ns). When all processes have exited, leak checks report anything still alive.
   */
  async run(opts: { until?: number } = {}): Promise<RunResult> {
    this.kernel.enter();
    let r = await this.engine.run(opts);
    if (r.status === 'completed' && this.processes.every((p) => p.exitCode !== null)) {
      this.kernel.enter();
      // Collect unix socket cycles left in flight, and let deferred releases finish.
      unixGc(this.kernel);
      if (this.engine.pendingEvents > 0) r = await this.engine.run(opts);
      this.kernel.enter();
      if (r.status === 'completed') runLeakChecks(this.kernel);
    }
    return r;
  }
}
