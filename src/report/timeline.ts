/**
 * The timeline of important events of a scenario run, in virtual time: fences created
 * and signalled, waits, dma-bufs exported, attached, detached, moved and released,
 * wake-ups of scenario threads by other threads, process exits, notes and rule
 * reports, each with the context it happened in. Derived from the
 * event log (named after kernel tracepoints) and the run's reports; the text summary
 * prints it and `--json` carries it as data.
 */
import type { RunArtifacts, TaskInfo } from '../scenario/runner.ts';
import type { LogEntry } from '../sim/event-log.ts';

/** One event of the timeline. */
export interface TimelineEvent {
  /** ns after the scenario started. */
  t: number;
  /** Who: `app-101`, `app:waiter-102`, `irq`, `kernel`. */
  context: string;
  /** The tracepoint or kind: `dma_fence_signaled`, `sched_process_exit`, `report`. */
  event: string;
  /** What happened, in words. */
  text: string;
}

/** The display name of a task: `process-tid`, or `process:thread-tid` for threads. */
export function taskLabel(t: TaskInfo): string {
  return `${t.process}${t.thread === 'main' ? '' : `:${t.thread}`}-${t.tid}`;
}

/** Maps event-log contexts (`name/<task id>`, `irq`, `none`) to display names. */
export function contextNamer(tasks: Map<number, TaskInfo>): (ctx: string) => string {
  return (ctx) => {
    const m = /\/(\d+)$/.exec(ctx);
    if (m) {
      const t = tasks.get(Number(m[1]));
      if (t) return taskLabel(t);
    }
    return ctx === 'none' ? 'kernel' : ctx;
  };
}

/** The fence fields of a dma_fence tracepoint, as the kernel prints them. */
export function fenceText(e: LogEntry): string {
  const a = e.args ?? {};
  return `driver=${a.driver} timeline=${a.timeline} context=${a.context} seqno=${a.seqno}`;
}

/** The dma-buf tracepoints the timeline shows, as a sentence each. */
const DMA_BUF_EVENTS: Record<string, (a: Record<string, unknown>) => string> = {
  dma_buf_export: (a) => `ino ${a.ino} exported by ${a.exp_name}, ${a.size} bytes`,
  dma_buf_attach: (a) =>
    `ino ${a.ino} attached to ${a.dev}${a.endpoint === undefined ? '' : ` (${a.endpoint})`}` +
    `${a.dynamic ? ', dynamic' : ''}${a.peer2peer ? ', peer2peer' : ''}`,
  dma_buf_detach: (a) => `ino ${a.ino} attachment ${a.attach} detached`,
  dma_buf_move_notify: (a) => `ino ${a.ino} moves: importers are told to unmap`,
  dma_buf_release: (a) => `ino ${a.ino} released`,
};

const FENCE_EVENTS = new Set([
  'dma_fence_init',
  'dma_fence_signaled',
  'dma_fence_wait_start',
  'dma_fence_wait_end',
]);

/** Builds the timeline of a run. */
export function buildTimeline(a: RunArtifacts): TimelineEvent[] {
  const { result, log, tasks } = a;
  const t0 = result.t0;
  const name = contextNamer(tasks);
  const out: { ev: TimelineEvent; key: number }[] = [];
  let i = 0;
  for (const e of log) {
    const key = i++;
    if (e.t < t0) continue;
    const t = e.t - t0;
    if (FENCE_EVENTS.has(e.name)) {
      out.push({ key, ev: { t, context: name(e.ctx), event: e.name, text: fenceText(e) } });
    } else if (DMA_BUF_EVENTS[e.name] !== undefined) {
      out.push({
        key,
        ev: { t, context: name(e.ctx), event: e.name, text: DMA_BUF_EVENTS[e.name](e.args ?? {}) },
      });
    } else if (e.name === 'note') {
      out.push({ key, ev: { t, context: name(e.ctx), event: 'note', text: String(e.args?.msg ?? '') } });
    } else if (e.name === 'sched_wakeup' && e.args?.reason === 'woken') {
      const woken = tasks.get(Number(e.args.pid));
      const waker = name(e.ctx);
      if (woken && waker !== taskLabel(woken)) {
        out.push({
          key,
          ev: { t, context: waker, event: 'sched_wakeup', text: `wakes ${taskLabel(woken)}` },
        });
      }
    } else if (e.name === 'sched_process_exit') {
      const who = tasks.get(Number(e.args?.pid));
      if (who && who.thread === 'main') {
        const p = result.processes.find((q) => q.pid === who.pid);
        const how = p?.killed
          ? `killed (exit code ${p.exitCode})`
          : `exit code ${p?.exitCode ?? e.args?.code}`;
        out.push({
          key,
          ev: {
            t,
            context: taskLabel(who),
            event: 'sched_process_exit',
            text: `${who.process} exits: ${how}`,
          },
        });
      }
    } else if (e.name === 'pcie_transfer_start' || e.name === 'pcie_transfer_end') {
      const args = Object.entries(e.args ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      out.push({ key, ev: { t, context: name(e.ctx), event: e.name, text: args } });
    }
  }
  // Reports go after the log entries of their instant.
  for (const r of result.reports) {
    let key = log.length;
    for (let j = 0; j < log.length; j++) {
      if (log[j].t > r.simTime) {
        key = j - 0.5;
        break;
      }
    }
    const ctx =
      r.context.kind === 'task' && r.context.tid !== undefined ? name(`x/${r.context.tid}`) : r.context.name;
    out.push({
      key,
      ev: {
        t: r.time,
        context: ctx,
        event: 'report',
        text: `[${r.type}] ${r.rule}: ${r.message.split('\n')[0]}`,
      },
    });
  }
  return out.sort((x, y) => x.key - y.key).map((x) => x.ev);
}
