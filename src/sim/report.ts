/**
 * Reports: what the model says about a run, as typed data.
 *
 * A report is raised by the engine (a deadlock), by the kernel model (a `WARN`, a
 * `BUG`) or by a rule checker (lockdep, fence signalling, dma-buf locking). Rendering
 * them as text, JSON or trace markers is separate (see `src/report/`). The shape is
 * the contract in DESIGN.md "Rules and reports".
 */

/** What kind of finding a report is. */
export type ReportType = 'warn' | 'lockdep' | 'violation' | 'leak' | 'deadlock' | 'bug';

/** An object a report is about (a fence, a lock, a task, a buffer). */
export interface ReportObject {
  /** The object's kind, as the kernel names it: `dma_fence`, `spinlock`, `task`. */
  kind: string;
  /** A human-readable identity: `mock:mock ctx 3 seqno 1`, a lock class name, a thread name. */
  name: string;
  /** A stable numeric or textual id where the object has one. */
  id?: number | string;
}

/** Where a report was raised. */
export interface ReportContext {
  /** Execution context: a task (thread), hard-IRQ, or none (outside any simulated context). */
  kind: 'task' | 'hardirq' | 'none';
  /** The task's or context's name. */
  name: string;
  /** The task id, for tasks. */
  tid?: number;
  /** The machine the context belongs to, when there is more than one. */
  machine?: string;
}

/** One finding about a run. */
export interface Report {
  /** Kind of finding. */
  type: ReportType;
  /** The rule's stable identifier, e.g. `dma_fence.release_pending_signals` or `deadlock`. */
  rule: string;
  /** A sentence (or a few lines, for lockdep) saying what happened. */
  message: string;
  /** Virtual time of the finding, in nanoseconds. */
  simTime: number;
  /** The objects involved. */
  objects: ReportObject[];
  /** Where it was raised. */
  context: ReportContext;
}

/**
 * Thrown to stop a run: the kernel's `BUG()`, or a detected self-deadlock that would
 * hang a real machine. The report is recorded before the throw.
 */
export class KernelBug extends Error {
  /** The report that describes the failure. */
  readonly report: Report;

  /** Wraps `report`; its message becomes the error's message. */
  constructor(report: Report) {
    super(report.message);
    this.name = 'KernelBug';
    this.report = report;
  }
}
