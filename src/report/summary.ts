/**
 * The readable report of a scenario run: the header (scenario, seed, scheduler,
 * machine, how the run ended), what each process did (its steps with virtual start
 * time, duration and result; a `snapshot` step's views under it), the transfers (bytes
 * moved, virtual duration, achieved bandwidth), the timeline of important kernel
 * events, the rule reports with their context, and every expectation with its verdict.
 *
 * `summaryData` is the same content as plain data (what `--json` prints);
 * `renderSummary` writes it as text, in colour when the `Colors` given has colour.
 */
import pc from 'picocolors';
import type { RunArtifacts, ScenarioResult, StepRecord } from '../scenario/runner.ts';
import type { SnapshotData } from './dmabuf-views.ts';
import { formatMs, formatNs } from './format.ts';
import { buildTimeline, type TimelineEvent, taskLabel } from './timeline.ts';
import { buildTransfers, renderTransfers, type TransferRow } from './transfers.ts';

/** The colour functions the renderer uses (picocolors' shape). */
export type Colors = Pick<typeof pc, 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan'>;

/** A `snapshot` step's views, with where and when it was taken. */
export interface SnapshotRecord extends SnapshotData {
  /** The step (`seq`). */
  step: number;
  /** The step id, if it has one. */
  id?: string;
  /** The process that took it. */
  process: string;
  /** Virtual time, ns after the scenario started. */
  t: number;
}

/** What `--json` prints for a run: the result plus its timeline, transfers and snapshots. */
export interface SummaryData extends ScenarioResult {
  /** The timeline of important events. */
  timeline: TimelineEvent[];
  /** Bytes moved per transfer, with the achieved bandwidth. */
  transfers: TransferRow[];
  /** The views the `snapshot` steps took (also in each step's `detail.snapshot`). */
  snapshots: SnapshotRecord[];
}

/** The snapshots taken by a run's `snapshot` steps. */
export function snapshotRecords(steps: StepRecord[]): SnapshotRecord[] {
  const out: SnapshotRecord[] = [];
  for (const s of steps) {
    const snap = s.kind === 'snapshot' ? (s.detail?.snapshot as SnapshotData | undefined) : undefined;
    if (!snap) continue;
    out.push({
      step: s.seq,
      ...(s.id === undefined ? {} : { id: s.id }),
      process: s.process,
      ...snap,
      t: s.start,
    });
  }
  return out;
}

/** The report as data. */
export function summaryData(a: RunArtifacts): SummaryData {
  return {
    ...a.result,
    timeline: buildTimeline(a),
    transfers: buildTransfers(a),
    snapshots: snapshotRecords(a.result.steps),
  };
}

/** Steps printed per process before the list is cut (the JSON has all). */
export const STEPS_MAX_LINES = 200;

/** Lines of the timeline printed before it is cut (the JSON and the trace have all). */
export const TIMELINE_MAX_LINES = 300;

function schedulerText(r: ScenarioResult): string {
  const s = r.scheduler;
  return s.strategy === 'pct' ? `pct (depth ${s.depth ?? 3})` : s.strategy;
}

function stepResult(s: StepRecord, c: Colors): string {
  const took = s.end === null ? '' : s.end > s.start ? ` after ${formatNs(s.end - s.start)}` : '';
  const bound =
    s.as !== undefined && s.errno === undefined && s.outcome !== 'interrupted' ? ` as ${s.as}` : '';
  const what = `${s.summary ?? (s.ret === null ? '' : s.ret >= 0 ? 'ok' : s.errno)}${bound}${took}`;
  switch (s.outcome) {
    case 'ok':
      return what;
    case 'expected-errno':
      return `${what} ${c.dim('(expected)')}`;
    case 'interrupted':
      return c.yellow(`interrupted: ${what}`);
    case 'unexpected-success':
      return c.red(`${what} (expected to fail)`);
    case 'check-failed':
      return c.red(`${what}: ${s.problem}`);
    case 'wrong-errno':
      return c.red(`${what} (another errno was expected)`);
    default:
      return c.red(`${what}${s.problem ? ` ${s.problem}` : ''}`.trim());
  }
}

type TopologyText = NonNullable<SummaryData['topology']>;

/** `8 accelerator, 8 nic` for a large topology; each device with its address for a small one. */
function devicesText(t: TopologyText): string {
  if (t.devices.length <= 6) return t.devices.map((x) => `${x.id} ${x.kind} ${x.bdf}`).join(', ');
  const counts = new Map<string, number>();
  for (const x of t.devices) counts.set(x.kind, (counts.get(x.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ');
}

/** The machine line: one topology, or every host and the network joining them. */
function machineText(d: SummaryData): string {
  const hosts = d.hosts ?? [];
  if (hosts.length > 1) {
    const each = hosts.map((h) =>
      h.topology ? `${h.name} ${h.topology.name} (${devicesText(h.topology)})` : `${h.name} default machine`,
    );
    return `hosts ${each.join('; ')}; network ${d.network.gbps} Gb/s`;
  }
  return d.topology ? `topology ${d.topology.name} (${devicesText(d.topology)})` : 'default machine';
}

/** Renders the report as text. */
export function renderSummary(d: SummaryData, c: Colors = pc): string {
  const out: string[] = [];
  const w = (s = '') => out.push(s);
  w(`${c.bold('dmabuf-lab')}: scenario ${c.bold(`"${d.scenario.name}"`)} (${d.scenario.file})`);
  if (d.scenario.description) {
    for (const l of wrap(d.scenario.description.trim(), 92)) w(`  ${l}`);
  }
  w(`seed ${d.seed}, scheduler ${schedulerText(d)}, ${machineText(d)}`);
  if (d.status === 'skipped') {
    w();
    w(c.yellow(`SKIPPED: ${d.skipped}; the scenario needs it.`));
    return `${out.join('\n')}\n`;
  }
  w(
    `run ${d.status === 'completed' ? d.status : c.red(d.status)} at +${formatNs(d.duration)} of virtual time; ${d.logEntries} log entries, log hash ${d.logHash}`,
  );

  w();
  w(c.bold('processes'));
  const nameW = Math.max(8, ...d.processes.map((p) => p.name.length));
  for (const p of d.processes) {
    const steps = d.steps.filter((s) => s.pid === p.pid && s.host === p.host);
    const exitText = p.killed
      ? `killed (exit ${p.exitCode})`
      : p.exitCode === null
        ? 'did not exit'
        : `exit ${p.exitCode}`;
    const exitPad = exitText.padEnd(8);
    const exit = p.killed ? c.yellow(exitPad) : p.exitCode === 0 ? exitPad : c.red(exitPad);
    const threads = p.threads.length > 1 ? `, ${p.threads.length} threads` : '';
    const what = p.harness
      ? 'the harness: creates the channels, starts the processes, reaps them'
      : `${steps.length} steps${threads}`;
    const on = (d.hosts ?? []).length > 1 && p.host ? `${p.host}  ` : '';
    w(`  ${p.name.padEnd(nameW)}  ${on}pid ${String(p.pid).padEnd(5)} ${exit}  ${c.dim(what)}`);
    if (p.crashed) w(c.red(`      crashed: ${p.crashed}`));
    for (const s of steps.slice(0, STEPS_MAX_LINES)) {
      const who = s.thread === 'main' ? '' : `${s.thread}: `;
      const round = s.round === undefined ? '' : c.dim(` #${s.round + 1}`);
      w(`    ${formatMs(s.start)}  ${who}${s.label}${round} ${c.dim('->')} ${stepResult(s, c)}`);
      if (s.note) w(c.dim(`                ${s.note}`));
      if (s.text !== undefined)
        for (const l of s.text.replace(/\n$/, '').split('\n')) w(c.dim(`                | ${l}`));
    }
    if (steps.length > STEPS_MAX_LINES) {
      w(c.dim(`    ... ${steps.length - STEPS_MAX_LINES} more steps (--json shows them all)`));
    }
  }

  const transfers = d.transfers ?? [];
  if (transfers.length > 0) {
    w();
    w(`${c.bold('transfers')} ${c.dim('(bytes moved, virtual duration, achieved bandwidth)')}`);
    const lines = renderTransfers(transfers);
    transfers.forEach((t, i) => {
      w(`  ${formatMs(t.t)}  ${lines[i]}`);
      w(c.dim(`                ${t.by}`));
    });
  }

  w();
  w(`${c.bold('timeline')} ${c.dim('(virtual time since the scenario started)')}`);
  if (d.timeline.length === 0) w(c.dim('  (no kernel events)'));
  const ctxW = Math.min(24, Math.max(8, ...d.timeline.map((e) => e.context.length)));
  for (const e of d.timeline.slice(0, TIMELINE_MAX_LINES)) {
    const text = e.event === 'report' ? c.red(e.text) : e.event === 'note' ? c.cyan(e.text) : e.text;
    w(
      `  ${formatMs(e.t)}  ${e.context.padEnd(ctxW)}  ${e.event === 'report' || e.event === 'note' ? '' : `${e.event.padEnd(20)} `}${text}`,
    );
  }
  if (d.timeline.length > TIMELINE_MAX_LINES) {
    w(c.dim(`  ... ${d.timeline.length - TIMELINE_MAX_LINES} more events (--json or --trace show them all)`));
  }

  w();
  w(c.bold('rule reports'));
  if (d.reports.length === 0) w(`  ${c.green('none')}`);
  for (const r of d.reports) {
    const ctx =
      r.context.kind === 'task'
        ? `in ${taskName(d, r.context.tid) ?? r.context.name}`
        : r.context.kind === 'hardirq'
          ? 'in hard-IRQ context'
          : 'outside any thread';
    w(`  ${c.red(`[${r.type}] ${r.rule}`)} at +${formatNs(r.time)} ${c.dim(ctx)}`);
    for (const l of r.message.split('\n')) w(`      ${l}`);
    if (r.objects.length)
      w(c.dim(`      objects: ${r.objects.map((o) => `${o.kind} ${o.name}`).join('; ')}`));
  }

  w();
  w(c.bold('expectations'));
  for (const e of d.expectations) {
    const mark = e.ok ? c.green('ok  ') : c.red('FAIL');
    const src = e.source === 'implicit' ? c.dim(' (always)') : e.line ? c.dim(` (line ${e.line})`) : '';
    w(`  ${mark} ${e.text}${src}: ${e.ok ? c.dim(e.detail) : c.red(e.detail)}`);
  }
  const failed = d.expectations.filter((e) => !e.ok).length;
  w();
  w(
    failed === 0
      ? c.green(c.bold(`PASS: all ${d.expectations.length} expectations met`))
      : c.red(c.bold(`FAIL: ${failed} of ${d.expectations.length} expectations not met`)),
  );
  return `${out.join('\n')}\n`;
}

function taskName(d: SummaryData, task: number | undefined): string | undefined {
  if (task === undefined) return undefined;
  for (const p of d.processes) {
    const t = p.threads.find((x) => x.task === task);
    if (t) return taskLabel({ process: p.name, thread: t.name, pid: p.pid, tid: t.tid });
  }
  return undefined;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const para of text.split('\n')) {
    let cur = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (cur && cur.length + 1 + word.length > width) {
        lines.push(cur);
        cur = word;
      } else {
        cur = cur ? `${cur} ${word}` : word;
      }
    }
    lines.push(cur);
  }
  return lines;
}
