/**
 * The out-of-band channel: what RDMA programs use (a TCP socket, rdma_cm, MPI) to swap
 * QP numbers, LIDs, rkeys and addresses before the first RDMA operation.
 *
 * Not a kernel concept; modelled as named mailboxes on the shared clock. `send` posts a
 * value that becomes visible `latencyNs` later (a small TCP message across the same
 * switch); `recv` blocks the calling simulated thread until a value is there and takes
 * the oldest one. Values are structured-cloned, so no object is shared between machines.
 */
import type { Engine, Task } from '../sim/engine.ts';

/** Default delivery latency of an out-of-band message, ns (a TCP round of a few us). */
export const OOB_LATENCY_NS = 10_000;

/** Named mailboxes between processes of a cluster. */
export class OobChannel {
  private readonly boxes = new Map<string, unknown[]>();
  private readonly waiters = new Map<string, Task[]>();

  /** Creates the channel on the cluster's engine. */
  constructor(
    /** The shared engine. */
    readonly engine: Engine,
    /** Delivery latency, ns. */
    readonly latencyNs = OOB_LATENCY_NS,
  ) {}

  /** Posts `value` (cloned) to mailbox `name`; it arrives after the latency. */
  send(name: string, value: unknown): void {
    const copy = structuredClone(value);
    this.engine.after(this.latencyNs, () => {
      let box = this.boxes.get(name);
      if (!box) {
        box = [];
        this.boxes.set(name, box);
      }
      box.push(copy);
      const w = this.waiters.get(name) ?? [];
      this.waiters.delete(name);
      for (const t of w) this.engine.wakeUp(t);
    });
  }

  /** Takes the oldest value of mailbox `name`, blocking the current simulated thread until one arrives. */
  async recv<T = unknown>(name: string): Promise<T> {
    for (;;) {
      const box = this.boxes.get(name);
      if (box && box.length > 0) return box.shift() as T;
      const t = this.engine.currentTask();
      const l = this.waiters.get(name) ?? [];
      l.push(t);
      this.waiters.set(name, l);
      await this.engine.block({ what: `out-of-band recv "${name}"` });
    }
  }
}
