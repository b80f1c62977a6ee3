/**
 * Judging a run against its scenario's expectations.
 *
 * Explicit expectations come from the `expect` list and from steps' inline `expect`.
 * Implicit ones hold for every scenario: the run completes (unless a `run`
 * expectation says how it ends), every step succeeds unless it expects an errno,
 * every check a step makes passes, no process crashes, and no rule report is raised
 * that no `report` expectation names. A report that a `report` expectation names is
 * expected (a scenario that teaches a rule raises it on purpose); `dmabuf-lab check`
 * still counts it as a broken rule.
 */
import type { Report } from '../sim/report.ts';
import type { CompiledScenario } from './load.ts';
import type { ScenarioResult, StepRecord } from './runner.ts';
import type { ExpectationData, ReportMatcher } from './schema.ts';
import type { StepExpect } from './step-kind.ts';
import { durationText } from './units.ts';

/** One expectation and its verdict. */
export interface ExpectationResult {
  /** What was expected, in words. */
  text: string;
  /** Whether it held. */
  ok: boolean;
  /** What was observed. */
  detail: string;
  /** The line in the file that states it (implicit expectations: the step's line, or none). */
  line?: number;
  /** Stated in the file, or implied. */
  source: 'explicit' | 'implicit';
}

/** Whether `r` matches `m`. */
export function reportMatches(r: Report, m: ReportMatcher): boolean {
  if (typeof m === 'string') return r.rule === m || r.type === m;
  if (m.rule !== undefined && r.rule !== m.rule) return false;
  if (m.type !== undefined && r.type !== m.type) return false;
  if (m.message !== undefined && !r.message.includes(m.message)) return false;
  return true;
}

function ms(ns: number): string {
  return durationText(ns);
}

/** Checks one step expectation against the records of the step; null if it held. */
function stepProblem(recs: StepRecord[], e: StepExpect): string | null {
  if (recs.length === 0) return 'the step never ran';
  for (const r of recs) {
    const where = recs.length > 1 ? ` (round ${r.round ?? r.seq})` : '';
    if (r.end === null) return `it never finished${where}`;
    if (e.errno !== undefined) {
      if (r.errno === undefined) return `it succeeded${where}${r.summary ? ` (${r.summary})` : ''}`;
      if (e.errno !== 'any' && r.errno !== e.errno) return `it failed with ${r.errno}${where}`;
    } else if (r.errno !== undefined && r.outcome !== 'expected-errno') {
      return `it failed with ${r.errno}${where}`;
    }
    const took = r.end - r.start;
    if (e.within !== undefined && took > e.within) return `it took ${ms(took)}${where}`;
    if (e.by !== undefined && r.end > e.by) return `it finished at +${ms(r.end)}${where}`;
    if (e.after !== undefined && r.end < e.after) return `it finished at +${ms(r.end)}${where}`;
  }
  return null;
}

type BandwidthExpect = Extract<ExpectationData, { bandwidth: unknown }>['bandwidth'];

/** Checks a bandwidth expectation against the records of the step; null if it held. */
function bandwidthProblem(recs: StepRecord[], b: BandwidthExpect): string | null {
  if (recs.length === 0) return 'the step never ran';
  for (const r of recs) {
    const where = recs.length > 1 ? ` (round ${r.round ?? r.seq})` : '';
    const t = r.transfer;
    if (t === undefined) {
      const why = r.errno
        ? ` (it failed with ${r.errno})`
        : r.kind === 'hl_fill'
          ? ' (hl_fill measures its job only with wait: true)'
          : '';
      return `it recorded no transfer${why}${where}`;
    }
    const rate = `${t.gbps.toFixed(1)} Gb/s`;
    const fractional = b.atLeast !== undefined || b.atMost !== undefined || b.near !== undefined;
    if (fractional && !t.lineRateGbps) {
      return `it achieved ${rate}${where}, but crossed no link with a line rate; use atLeastGbps / atMostGbps`;
    }
    const line = t.lineRateGbps ?? 0;
    const f = line > 0 ? t.gbps / line : 0;
    const of = `${f.toFixed(3)} x the ${line} Gb/s line rate`;
    if (b.atLeast !== undefined && f < b.atLeast) return `it achieved ${rate} = ${of}${where}`;
    if (b.atMost !== undefined && f > b.atMost) return `it achieved ${rate} = ${of}${where}`;
    if (b.near !== undefined && Math.abs(f - b.near) > b.near * b.tolerance) {
      return `it achieved ${rate} = ${of}, more than ${Math.round(b.tolerance * 100)}% from ${b.near}${where}`;
    }
    if (b.atLeastGbps !== undefined && t.gbps < b.atLeastGbps) return `it achieved ${rate}${where}`;
    if (b.atMostGbps !== undefined && t.gbps > b.atMostGbps) return `it achieved ${rate}${where}`;
  }
  return null;
}

function stepObserved(recs: StepRecord[]): string {
  if (recs.length === 0) return 'never ran';
  const r = recs[recs.length - 1];
  const res = r.errno ?? (r.summary ? r.summary : 'ok');
  const t = r.end === null ? 'never finished' : `finished at +${ms(r.end)} after ${ms(r.end - r.start)}`;
  return `${recs.length > 1 ? `${recs.length} runs, last: ` : ''}${res}, ${t}`;
}

function inlineText(label: string, e: StepExpect): string {
  const parts: string[] = [];
  if (e.errno !== undefined) parts.push(e.errno === 'any' ? 'fails' : `fails with ${e.errno}`);
  if (e.within !== undefined) parts.push(`takes at most ${ms(e.within)}`);
  if (e.by !== undefined) parts.push(`has finished by +${ms(e.by)}`);
  if (e.after !== undefined) parts.push(`finishes no earlier than +${ms(e.after)}`);
  return `${label} ${parts.join(', ') || 'succeeds'}`;
}

/** Every expectation of `sc`, explicit and implicit, judged against `res`. */
export function evaluateExpectations(sc: CompiledScenario, res: ScenarioResult): ExpectationResult[] {
  const out: ExpectationResult[] = [];
  const byId = new Map<string, StepRecord[]>();
  const byLine = new Map<number, StepRecord[]>();
  for (const r of res.steps) {
    if (r.id !== undefined) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    byLine.set(r.line, [...(byLine.get(r.line) ?? []), r]);
  }
  const expectedReports: ReportMatcher[] = [];
  let runStated = false;

  // Inline step expectations, in file order.
  const inline: { line: number; label: string; e: StepExpect }[] = [];
  const walk = (steps: CompiledScenario['processes'][number]['steps'], proc: string) => {
    for (const s of steps) {
      if (s.expect !== undefined) {
        inline.push({ line: s.line, label: `step ${s.id ?? `"${s.label}"`} of ${proc}`, e: s.expect });
      }
      for (const b of s.branches ?? []) walk(b.steps, proc);
    }
  };
  for (const p of sc.processes) walk(p.steps, p.name);
  for (const i of inline.sort((a, b) => a.line - b.line)) {
    const recs = byLine.get(i.line) ?? [];
    const problem = stepProblem(recs, i.e);
    out.push({
      text: inlineText(i.label, i.e),
      ok: problem === null,
      detail: problem ?? stepObserved(recs),
      line: i.line,
      source: 'explicit',
    });
  }

  for (const x of sc.expect) {
    const e = x.data;
    let ok = true;
    let detail = '';
    if ('step' in e) {
      const recs = byId.get(e.step) ?? [];
      const problem = stepProblem(recs, e);
      ok = problem === null;
      detail = problem ?? stepObserved(recs);
    } else if ('report' in e) {
      expectedReports.push(e.report);
      const n = res.reports.filter((r) => reportMatches(r, e.report)).length;
      const count = typeof e.report === 'string' ? undefined : e.report.count;
      ok = count === undefined ? n > 0 : n === count;
      detail = `${n} matching report(s)`;
    } else if ('no_report' in e) {
      const hits = res.reports.filter((r) => reportMatches(r, e.no_report));
      ok = hits.length === 0;
      detail = ok ? 'none raised' : `raised: ${hits.map((r) => `[${r.type}] ${r.rule}`).join(', ')}`;
    } else if ('process' in e) {
      const p = res.processes.find((q) => q.name === e.process && !q.harness);
      const problems: string[] = [];
      if (!p || p.exitCode === null) problems.push('it did not exit');
      else if (e.exit_code !== undefined && p.exitCode !== e.exit_code)
        problems.push(`it exited with ${p.exitCode}`);
      if (p && e.killed !== undefined && p.killed !== e.killed)
        problems.push(p.killed ? 'it was killed' : 'it was not killed');
      ok = problems.length === 0;
      detail = ok ? `exit code ${p?.exitCode}${p?.killed ? ' (killed)' : ''}` : problems.join('; ');
    } else if ('bandwidth' in e) {
      const problem = bandwidthProblem(byId.get(e.bandwidth.step) ?? [], e.bandwidth);
      ok = problem === null;
      const t = byId.get(e.bandwidth.step)?.at(-1)?.transfer;
      detail =
        problem ??
        (t === undefined
          ? 'no transfer'
          : `${t.gbps.toFixed(1)} Gb/s${t.lineRateGbps ? ` = ${(t.gbps / t.lineRateGbps).toFixed(3)} x ${t.lineRateGbps} Gb/s line rate` : ''}`);
    } else {
      runStated = true;
      ok = res.status === e.run;
      detail = `the run ended ${res.status}`;
    }
    out.push({ text: x.text, ok, detail, line: x.line, source: 'explicit' });
  }

  // Implicit expectations.
  if (!runStated) {
    out.push({
      text: 'the run completes',
      ok: res.status === 'completed',
      detail: `the run ended ${res.status} at +${ms(res.duration)}`,
      source: 'implicit',
    });
  }
  const bad = res.steps.filter((r) => r.outcome === 'failed' || r.outcome === 'crashed');
  for (const r of bad) {
    out.push({
      text: `step "${r.label}" of ${r.process} (line ${r.line}) succeeds`,
      ok: false,
      detail:
        r.outcome === 'crashed'
          ? `crashed: ${r.problem}`
          : r.errno
            ? `failed with ${r.errno}; ${r.process} exited`
            : `failed: ${r.problem}`,
      line: r.line,
      source: 'implicit',
    });
  }
  for (const r of res.steps.filter((s) => s.outcome === 'check-failed')) {
    out.push({
      text: `the check of "${r.label}" (line ${r.line}) passes`,
      ok: false,
      detail: r.problem ?? 'failed',
      line: r.line,
      source: 'implicit',
    });
  }
  for (const p of res.processes) {
    if (p.crashed !== undefined) {
      out.push({ text: `${p.name} does not crash`, ok: false, detail: p.crashed, source: 'implicit' });
    }
  }
  const surprise = res.reports.filter((r) => !expectedReports.some((m) => reportMatches(r, m)));
  out.push({
    text: 'no rule report is raised that the scenario does not expect',
    ok: surprise.length === 0,
    detail:
      surprise.length === 0
        ? 'none'
        : surprise
            .map((r) => `[${r.type}] ${r.rule} at +${ms(r.time)}: ${r.message.split('\n')[0]}`)
            .join('; '),
    source: 'implicit',
  });
  return out;
}
