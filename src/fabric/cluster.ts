/**
 * A cluster: several `Machine`s sharing one engine (one virtual clock, one scheduler),
 * their RDMA NIC ports cabled to one switch, and an out-of-band channel between their
 * processes (DESIGN.md "Execution model": a Cluster holds several machines joined by a
 * modelled network).
 *
 * ```ts
 * const c = await Cluster.create({ machines: 2, linkGbps: 200 });
 * c.machines[0].spawn('a', async (sys) => { ...; c.oob.send('qp', info); });
 * await c.run();
 * ```
 *
 * Machines boot one after the other on the shared engine, their PCIe transfers on the
 * switch's flow network (one network for the cluster: a flow may load PCIe links of
 * several machines and network links); after each boot every RDMA device it bound gets
 * one fabric port (LID in boot order). `run` runs the engine until
 * every process of every machine has exited, then each kernel's leak checks.
 */

import { ibDevices } from '../drivers/rdma/ib-core.ts';
import { rdmaNicInit } from '../drivers/rdma/rdma-nic.ts';
import { unixGc } from '../kernel/af-unix.ts';
import { runLeakChecks } from '../kernel/leak-check.ts';
import { Machine, type MachineOptions } from '../machine.ts';
import { Engine, type RunResult, type SchedulerOptions } from '../sim/index.ts';
import type { LinkOptions } from './link.ts';
import { OobChannel } from './oob.ts';
import { FabricSwitch, fabricPorts } from './switch.ts';

/** Options of `Cluster.create`. */
export interface ClusterOptions {
  /** Number of machines (default 2), or each machine's options (engine and name are set by the cluster). */
  machines?: number | MachineOptions[];
  /** Seed of the shared engine (default 1). */
  seed?: number;
  /** Scheduling strategy of the shared engine. */
  scheduler?: SchedulerOptions;
  /** Link rate of every port, Gb/s (default 200). */
  linkGbps?: number;
  /** Other link parameters. */
  link?: Omit<LinkOptions, 'gbps'>;
  /** Switch latency, ns. */
  switchLatencyNs?: number;
  /** Record the event log (default true). */
  log?: boolean;
}

/** Machines on one clock joined by a network. */
export class Cluster {
  /** The out-of-band channel between processes. */
  readonly oob: OobChannel;

  private constructor(
    /** The shared engine. */
    readonly engine: Engine,
    /** The machines, host1 first. */
    readonly machines: Machine[],
    /** The switch. */
    readonly fabric: FabricSwitch,
  ) {
    this.oob = new OobChannel(engine);
  }

  /** Boots the machines and cables their RDMA ports. */
  static async create(opts: ClusterOptions = {}): Promise<Cluster> {
    rdmaNicInit();
    const engine = new Engine({ seed: opts.seed ?? 1, scheduler: opts.scheduler, log: opts.log });
    const fabric = new FabricSwitch(engine, opts.switchLatencyNs);
    const specs: MachineOptions[] =
      typeof opts.machines === 'object'
        ? opts.machines
        : Array.from({ length: opts.machines ?? 2 }, () => ({}));
    const machines: Machine[] = [];
    for (let i = 0; i < specs.length; i++) {
      // One flow network for every machine and the switch, so that an RDMA message can be
      // one flow over its PCIe legs on both hosts and the wire (rdma-nic.ts `wire`).
      const m = await Machine.create({
        ...specs[i],
        name: specs[i].name ?? `host${i + 1}`,
        engine,
        flowNetwork: specs[i].flowNetwork ?? fabric.network,
      });
      const ports = fabricPorts(m.kernel);
      for (const dev of ibDevices(m.kernel)) {
        ports.push(
          fabric.addPort(
            `${m.kernel.name}/${dev.name} port 1`,
            { ...opts.link, gbps: opts.linkGbps ?? 200 },
            m.kernel,
            dev.index,
          ),
        );
      }
      machines.push(m);
    }
    return new Cluster(engine, machines, fabric);
  }

  /** Virtual time now, ns. */
  get now(): bigint {
    return BigInt(this.engine.now);
  }

  /** Every report of every machine. */
  get reports(): Machine['reports'] {
    return this.engine.reports;
  }

  /**
   * Runs until every process of every machine has exited (or a deadlock, a BUG, or the
   * time limit); then lets deferred releases finish and runs each kernel's leak checks.
   */
  async run(opts: { until?: number } = {}): Promise<RunResult> {
    let r = await this.engine.run(opts);
    const allExited = this.machines.every((m) => m.processes.every((p) => p.exitCode !== null));
    if (r.status === 'completed' && allExited) {
      for (const m of this.machines) {
        m.kernel.enter();
        unixGc(m.kernel);
      }
      if (this.engine.pendingEvents > 0) r = await this.engine.run(opts);
      if (r.status === 'completed') {
        for (const m of this.machines) {
          m.kernel.enter();
          runLeakChecks(m.kernel);
        }
      }
    }
    return r;
  }
}
