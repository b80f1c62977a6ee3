/**
 * The run's event log: every scheduling decision and every tracepoint, in order.
 *
 * Entries are plain data named after kernel tracepoints (`sched_switch`,
 * `dma_fence_signaled`, ...). The log is what makes determinism checkable: the same
 * seed and inputs produce the same entries, and `hash()` condenses them to compare runs.
 * Recording can be switched off for speed; code that builds arguments should test
 * `enabled` first.
 */

/** One logged event. */
export interface LogEntry {
  /** Virtual time, ns. */
  t: number;
  /** The context that emitted it (task name and id, or `irq`). */
  ctx: string;
  /** Tracepoint-style name. */
  name: string;
  /** Event arguments (numbers, strings, booleans only, so the log serialises exactly). */
  args?: Record<string, number | string | boolean>;
  /**
   * The machine (kernel name) whose code emitted it, for tracepoints (src/kernel/trace.ts);
   * absent on scheduler events. Not part of the text form or the hash.
   */
  host?: string;
}

/** An append-only log of `LogEntry` values with an order-sensitive hash. */
export class EventLog {
  /** When false, `emit` records nothing. */
  enabled: boolean;
  /** The entries recorded so far (kept only when `keep` is true). */
  readonly entries: LogEntry[] = [];
  /** Whether entries are kept in memory (the hash is always updated while enabled). */
  readonly keep: boolean;
  private h1 = 0x811c9dc5;
  private h2 = 0x01000193;
  private count = 0;

  /** Creates a log; `keep` false keeps only the running hash and count. */
  constructor(enabled = true, keep = true) {
    this.enabled = enabled;
    this.keep = keep;
  }

  /** Number of entries recorded. */
  get length(): number {
    return this.count;
  }

  /** Records an entry (no-op when disabled). */
  add(entry: LogEntry): void {
    if (!this.enabled) return;
    this.count++;
    if (this.keep) this.entries.push(entry);
    const line = formatEntry(entry);
    let a = this.h1;
    let b = this.h2;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
    }
    a = Math.imul(a ^ 10, 0x01000193);
    this.h1 = a;
    this.h2 = b;
  }

  /** A 64-bit hex digest of everything recorded so far, in order. */
  hash(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, '0') + (this.h2 >>> 0).toString(16).padStart(8, '0');
  }

  /** The kept entries as text, one line each (`time ctx name k=v ...`). */
  toText(): string {
    return this.entries.map(formatEntry).join('\n');
  }
}

/** Formats an entry as one line of text: `<t> <ctx> <name> k=v ...`. */
export function formatEntry(e: LogEntry): string {
  let s = `${e.t} ${e.ctx} ${e.name}`;
  if (e.args) {
    for (const k in e.args) s += ` ${k}=${e.args[k]}`;
  }
  return s;
}
