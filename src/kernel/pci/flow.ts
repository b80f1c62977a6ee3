/**
 * Flows: bulk transfers that share capacity-limited resources (PCIe link directions,
 * root complexes, socket links, memory) max-min fairly, in virtual time.
 *
 * A flow moves `bytes` over a set of resources; it consumes `coefficient` units of a
 * resource's capacity per byte per ns of its own rate (1/efficiency on a PCIe link,
 * where the capacity is the raw rate and the flow's rate is payload). Rates follow from
 * progressive filling (SimGrid's LMM with unit weights, performance.md §4.3): all flows
 * rise together until a resource saturates or a flow reaches its own cap; the flows on
 * that resource freeze at that rate; the rest keep rising. Rates are recomputed when a
 * flow starts, finishes or is cancelled. Between those events every rate is constant,
 * so the engine only wakes at the next finish (or chunk boundary): one pending event
 * for the whole network.
 *
 * Time: a flow's bytes leave its source at its rate; once the last byte has left, the
 * flow frees its resources and its data lands `latencyNs` later, when the caller's copy
 * function runs, exactly once for the whole range (or once per chunk, in order, when
 * `chunkBytes` is set) and then `onComplete`; `onDrained` tells the sender when the
 * last byte has left (a pipelining sender starts its next message then). A lone flow of B bytes at rate R takes
 * `drainTimeNs(B, R) + latencyNs`. Event handlers run in the engine's hard-IRQ context.
 *
 * Units: bytes, ns, and rates in bytes/ns, which equal GB/s (10^9 bytes/s).
 *
 * Not a kernel concept: Linux has no timing model; this is the model's DMA engine.
 */
import type { Engine, Task } from '../../sim/engine.ts';
import type { EventHandle } from '../../sim/event-queue.ts';

/** A capacity-limited resource (one direction of a link, a root complex, memory). */
export class FlowResource {
  /** @internal Capacity left during a rebalance. */
  rem = 0;
  /** @internal Summed coefficients of unfrozen flows during a rebalance. */
  load = 0;
  /** @internal Unfrozen flows during a rebalance. */
  unfrozen = 0;
  /** @internal Rebalance generation stamp. */
  stamp = -1;
  /** @internal Flows using it during a rebalance. */
  readonly flows: Flow[] = [];
  /** Capacity in use by the current rates, bytes/ns. */
  used = 0;

  /** Use `FlowNetwork#resource`. */
  constructor(
    /** Display name (`PCIe 0000:00:01.0 <-> 0000:01:00.0 Gen4 x16 up`). */
    readonly name: string,
    /** Capacity, bytes/ns (= GB/s). */
    public capacity: number,
  ) {}

  /** Fraction of the capacity in use. */
  get utilisation(): number {
    return this.capacity > 0 ? this.used / this.capacity : 0;
  }
}

/** A flow's use of one resource. */
export interface FlowUse {
  /** The resource. */
  resource: FlowResource;
  /** Capacity consumed per unit of the flow's rate (default 1). */
  coefficient?: number;
}

/** What to start. */
export interface FlowSpec {
  /** Bytes to move (>= 0). */
  bytes: number;
  /** Resources used. A flow with none and no `maxRate` moves its bytes instantly. */
  uses: FlowUse[];
  /** Latency between a byte leaving and landing, ns (default 0). */
  latencyNs?: number;
  /** The flow's own rate cap, bytes/ns (a DMA engine's limit). */
  maxRate?: number;
  /** Moves the bytes: called with (offset, length) when they land; never for a failed or cancelled flow. */
  copy?: (offset: number, length: number) => void;
  /** Land data in chunks of this many bytes as they arrive, instead of all at the end. */
  chunkBytes?: number;
  /**
   * Called when the last byte has left the source (`latencyNs` before it lands), before
   * `onComplete`; never for a failed flow or one cancelled before. Runs inside `start`
   * for a flow with nothing to move.
   */
  onDrained?: (flow: Flow) => void;
  /** Called once the flow is done, failed or cancelled. */
  onComplete?: (flow: Flow) => void;
  /** A name for traces and reports. */
  label?: string;
  /** If set the flow does not run: it fails with this reason after its latency. */
  failure?: string;
}

/** Where a flow is in its life. */
export type FlowState = 'active' | 'landing' | 'done' | 'failed' | 'cancelled';

/** A transfer in progress. */
export class Flow {
  /** Current rate, bytes/ns (0 once drained). */
  rate = 0;
  /** Bytes that have left the source. */
  sent = 0;
  /** Bytes handed to `copy`. */
  landed = 0;
  /** Life-cycle state. */
  state: FlowState = 'active';
  /** Virtual time at which the flow finished, failed or was cancelled. */
  endTime = -1;
  /** Why it failed, for `failed`. */
  error: string | null = null;
  /** @internal */
  frozen = false;
  /** @internal */
  lastUpdate: number;
  /** @internal Offset of the next chunk boundary (or `bytes`). */
  nextChunk: number;
  /** @internal Bytes whose landing is scheduled. */
  landedScheduled = 0;
  /** @internal Pending landing events. */
  landings: EventHandle[] = [];
  /** @internal Tasks waiting in `wait`. */
  waiters: Task[] = [];
  /** @internal */
  readonly uses: { resource: FlowResource; coefficient: number }[];

  /** Use `FlowNetwork#start`. */
  constructor(
    /** Sequential id within its network. */
    readonly id: number,
    /** The spec it was started with. */
    readonly spec: FlowSpec,
    /** Virtual time it started. */
    readonly startTime: number,
    private readonly network: FlowNetwork,
  ) {
    this.lastUpdate = startTime;
    this.uses = spec.uses.map((u) => ({ resource: u.resource, coefficient: u.coefficient ?? 1 }));
    this.nextChunk =
      spec.chunkBytes && spec.chunkBytes > 0 ? Math.min(spec.chunkBytes, spec.bytes) : spec.bytes;
  }

  /** Bytes to move. */
  get bytes(): number {
    return this.spec.bytes;
  }

  /** Latency, ns. */
  get latencyNs(): number {
    return this.spec.latencyNs ?? 0;
  }

  /** Display name. */
  get label(): string {
    return this.spec.label ?? `flow ${this.id}`;
  }

  /** Whether the flow is over (done, failed or cancelled). */
  get finished(): boolean {
    return this.state === 'done' || this.state === 'failed' || this.state === 'cancelled';
  }

  /** Blocks the current simulated thread until the flow is over; returns its final state. */
  async wait(): Promise<FlowState> {
    const engine = this.network.engine;
    while (!this.finished) {
      this.waiters.push(engine.currentTask());
      await engine.block({
        what: `transfer ${this.label}`,
        objects: [{ kind: 'flow', name: this.label, id: this.id }],
      });
    }
    return this.state;
  }

  /** Stops the flow; data not landed yet never lands. False if it was already over. */
  cancel(): boolean {
    return this.network.cancel(this);
  }
}

/** Counters of a network. */
export interface FlowStats {
  /** Flows started. */
  started: number;
  /** Flows done. */
  completed: number;
  /** Rate recomputations. */
  rebalances: number;
}

/** Time to send `bytes` at `rate` bytes/ns, in whole ns as the network schedules it. */
export function drainTimeNs(bytes: number, rate: number): number {
  if (bytes <= 0 || rate === Number.POSITIVE_INFINITY) return 0;
  return Math.max(1, Math.ceil(bytes / rate - 1e-9));
}

/** A set of resources and the flows sharing them, driven by an engine. */
export class FlowNetwork {
  /** Counters. */
  readonly stats: FlowStats = { started: 0, completed: 0, rebalances: 0 };
  private readonly activeFlows: Flow[] = [];
  private nextId = 1;
  private timer: EventHandle = -1;
  private stampGen = 0;
  private readonly touched: FlowResource[] = [];
  private readonly capped: Flow[] = [];

  /** Creates an empty network on `engine`. */
  constructor(
    /** The engine whose clock and events drive the flows. */
    readonly engine: Engine,
  ) {}

  /** Creates a resource of `capacity` bytes/ns (GB/s). */
  resource(name: string, capacity: number): FlowResource {
    if (!(capacity > 0))
      throw new RangeError(`resource "${name}": capacity must be positive, got ${capacity}`);
    return new FlowResource(name, capacity);
  }

  /** Flows currently moving bytes. */
  get active(): readonly Flow[] {
    return this.activeFlows;
  }

  /** Starts a flow now. */
  start(spec: FlowSpec): Flow {
    if (!(spec.bytes >= 0) || !Number.isFinite(spec.bytes)) {
      throw new RangeError(`flow ${spec.label ?? ''}: bytes must be a finite number >= 0, got ${spec.bytes}`);
    }
    if (spec.maxRate !== undefined && !(spec.maxRate > 0)) {
      throw new RangeError(`flow ${spec.label ?? ''}: maxRate must be positive, got ${spec.maxRate}`);
    }
    const now = this.engine.now;
    const f = new Flow(this.nextId++, spec, now, this);
    this.stats.started++;
    if (spec.failure !== undefined) {
      f.error = spec.failure;
      f.state = 'landing';
      f.landings.push(this.engine.at(now + f.latencyNs, () => this.finish(f, 'failed')));
      return f;
    }
    if (spec.bytes === 0 || (f.uses.length === 0 && spec.maxRate === undefined)) {
      f.sent = spec.bytes;
      this.drained(f);
      return f;
    }
    this.advance();
    this.activeFlows.push(f);
    this.rebalance();
    this.schedule();
    return f;
  }

  /** Cancels a flow (see `Flow#cancel`). */
  cancel(f: Flow): boolean {
    if (f.finished) return false;
    for (const h of f.landings) this.engine.cancel(h);
    f.landings = [];
    if (f.state === 'active') {
      this.advance();
      this.remove(f);
      this.rebalance();
      this.schedule();
    }
    this.finish(f, 'cancelled');
    return true;
  }

  /** Brings every active flow's `sent` up to now. */
  private advance(): void {
    const now = this.engine.now;
    for (const f of this.activeFlows) {
      if (now > f.lastUpdate) {
        f.sent = Math.min(f.bytes, f.sent + f.rate * (now - f.lastUpdate));
        f.lastUpdate = now;
      }
    }
  }

  private remove(f: Flow): void {
    const i = this.activeFlows.indexOf(f);
    if (i >= 0) this.activeFlows.splice(i, 1);
    f.rate = 0;
  }

  /**
   * Progressive filling: max-min fair rates for the active flows. All unfrozen flows
   * rise together by the largest step no resource overflows (remaining capacity over
   * the summed coefficients of its unfrozen flows) and no capped flow passes its cap;
   * the flows of the resources that saturate, and the flows at their cap, freeze at
   * that level; repeat until every flow is frozen. (A heap of saturation levels does
   * fewer steps in theory but is slower at the sizes PCIe paths give: ~50 resources,
   * ~15 levels for 64 flows.)
   */
  private rebalance(): void {
    this.stats.rebalances++;
    const flows = this.activeFlows;
    const stamp = ++this.stampGen;
    const touched = this.touched;
    touched.length = 0;
    const capped = this.capped;
    capped.length = 0;
    for (const f of flows) {
      f.frozen = false;
      if (f.spec.maxRate !== undefined) capped.push(f);
      for (const u of f.uses) {
        const r = u.resource;
        if (r.stamp !== stamp) {
          r.stamp = stamp;
          r.rem = r.capacity;
          r.load = 0;
          r.unfrozen = 0;
          r.flows.length = 0;
          touched.push(r);
        }
        r.load += u.coefficient;
        r.unfrozen++;
        r.flows.push(f);
      }
    }
    let level = 0;
    let left = flows.length;
    while (left > 0) {
      let delta = Number.POSITIVE_INFINITY;
      for (const r of touched) {
        if (r.unfrozen > 0) {
          const d = r.rem / r.load;
          if (d < delta) delta = d;
        }
      }
      for (const f of capped) {
        if (!f.frozen && f.spec.maxRate! - level < delta) delta = Math.max(0, f.spec.maxRate! - level);
      }
      if (delta === Number.POSITIVE_INFINITY) break; // unreachable: every active flow has a resource or a cap
      level += delta;
      for (const r of touched) if (r.unfrozen > 0) r.rem -= delta * r.load;
      for (const r of touched) {
        if (r.unfrozen > 0 && r.rem <= r.capacity * 1e-12) {
          for (const f of r.flows) {
            if (!f.frozen) {
              this.freeze(f, level);
              left--;
            }
          }
        }
      }
      for (const f of capped) {
        if (!f.frozen && f.spec.maxRate! <= level * (1 + 1e-12)) {
          this.freeze(f, level);
          left--;
        }
      }
    }
    for (const r of touched) r.used = Math.max(0, r.capacity - Math.max(0, r.rem));
  }

  private freeze(f: Flow, rate: number): void {
    f.frozen = true;
    f.rate = rate;
    for (const u of f.uses) {
      const r = u.resource;
      r.load -= u.coefficient;
      r.unfrozen--;
      if (r.unfrozen === 0) r.load = 0;
    }
  }

  /** Schedules the single network event at the next finish or chunk boundary. */
  private schedule(): void {
    if (this.timer !== -1) {
      this.engine.cancel(this.timer);
      this.timer = -1;
    }
    let dt = Number.POSITIVE_INFINITY;
    for (const f of this.activeFlows) {
      const t = drainTimeNs(f.nextChunk - f.sent, f.rate);
      if (t < dt) dt = t;
    }
    if (dt === Number.POSITIVE_INFINITY) return;
    this.timer = this.engine.at(this.engine.now + Math.max(1, dt), () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = -1;
    this.advance();
    let changed = false;
    for (let i = 0; i < this.activeFlows.length; ) {
      const f = this.activeFlows[i];
      const eps = 1e-6 + f.bytes * 1e-12;
      if (f.bytes - f.sent <= eps) f.sent = f.bytes;
      if (f.sent >= f.bytes) {
        this.activeFlows.splice(i, 1);
        f.rate = 0;
        this.drained(f);
        changed = true;
        continue;
      }
      if (f.nextChunk - f.sent <= eps) this.landChunks(f);
      i++;
    }
    if (changed) this.rebalance();
    this.schedule();
  }

  /** Schedules the landing of every whole chunk sent so far (the final one lands in `drained`). */
  private landChunks(f: Flow): void {
    const chunk = f.spec.chunkBytes!;
    const eps = 1e-6 + f.bytes * 1e-12;
    // A multiple of `chunk` strictly below `bytes`, since the flow has not drained.
    const end = Math.floor((f.sent + eps) / chunk) * chunk;
    if (end <= f.landedScheduled) return;
    const start = f.landedScheduled;
    f.landedScheduled = end;
    f.nextChunk = Math.min(end + chunk, f.bytes);
    const h: EventHandle = this.engine.at(this.engine.now + f.latencyNs, () =>
      this.land(f, start, end - start, h),
    );
    f.landings.push(h);
  }

  /** The last byte has left: free the resources and land the rest after the latency. */
  private drained(f: Flow): void {
    f.state = 'landing';
    f.rate = 0;
    f.nextChunk = f.bytes;
    const start = f.landedScheduled;
    f.landedScheduled = f.bytes;
    const h: EventHandle = this.engine.at(this.engine.now + f.latencyNs, () => {
      this.land(f, start, f.bytes - start, h);
      this.finish(f, 'done');
    });
    f.landings.push(h);
    f.spec.onDrained?.(f);
  }

  private land(f: Flow, offset: number, length: number, h: EventHandle): void {
    const i = f.landings.indexOf(h);
    if (i >= 0) f.landings.splice(i, 1);
    if (offset !== f.landed)
      throw new Error(`flow ${f.label}: landing at ${offset} but ${f.landed} bytes landed`);
    if (length > 0 || f.bytes === 0) f.spec.copy?.(offset, length);
    f.landed = offset + length;
  }

  private finish(f: Flow, state: 'done' | 'failed' | 'cancelled'): void {
    f.state = state;
    f.endTime = this.engine.now;
    f.landings = [];
    if (state === 'done') this.stats.completed++;
    f.spec.onComplete?.(f);
    const ws = f.waiters;
    f.waiters = [];
    for (const t of ws) this.engine.wakeUp(t);
  }
}
