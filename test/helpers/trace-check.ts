/**
 * Test helper: the structural rules the Perfetto UI's JSON importer enforces on a Chrome
 * trace-event file (trace_processor's json parser and slice tracker): B/E balanced per
 * thread; complete (X) slices on one thread nested or disjoint, intervals closed on the
 * left and open on the right; async b/e pairs matched by pid, category, name and id,
 * never ending before they begin nor on another thread than they began on (when they
 * name one), and async instants (`n`) inside an open pair of the same key (else they land on a
 * track of their own); counters (`C`) with finite numeric values; flows with numeric
 * ids that start with `s` and end with `f`; every pid and thread named; events after
 * the metadata in time order.
 */
import type { ChromeTrace, TraceEvent } from '../../src/report/chrome-trace.ts';

/** The structural problems Perfetto's importer would have with `t` (empty if none). */
export function traceProblems(t: ChromeTrace): string[] {
  const problems: string[] = [];
  const key = (e: TraceEvent) => `${e.pid}/${e.tid}`;
  const named = new Set<string>();
  const namedPids = new Set<number>();
  for (const e of t.traceEvents) {
    if (e.ph === 'M' && e.name === 'thread_name') named.add(key(e));
    if (e.ph === 'M' && e.name === 'process_name') namedPids.add(e.pid);
    if (e.ph !== 'M' && (typeof e.ts !== 'number' || !Number.isFinite(e.ts) || e.ts < 0)) {
      problems.push(`bad ts in ${JSON.stringify(e)}`);
    }
  }
  // B/E balanced, and X nested, per thread.
  const byThread = new Map<string, TraceEvent[]>();
  for (const e of t.traceEvents) {
    if (e.ph === 'B' || e.ph === 'E' || e.ph === 'X')
      byThread.set(key(e), [...(byThread.get(key(e)) ?? []), e]);
    if (e.ph !== 'M' && !namedPids.has(e.pid)) problems.push(`pid ${e.pid} has no process_name`);
    if ((e.ph === 'X' || e.ph === 'i' || e.ph === 's' || e.ph === 'f') && e.s !== 'g' && !named.has(key(e))) {
      problems.push(`thread ${key(e)} has no thread_name`);
    }
  }
  for (const [thread, evs] of byThread) {
    let depth = 0;
    for (const e of evs) {
      if (e.ph === 'B') depth++;
      if (e.ph === 'E' && --depth < 0) problems.push(`${thread}: E without B`);
    }
    if (depth !== 0) problems.push(`${thread}: ${depth} B without E`);
    const xs = evs
      .filter((e) => e.ph === 'X')
      .map((e) => ({ s: e.ts!, end: e.ts! + (e.dur ?? -1), e }))
      .sort((a, b) => a.s - b.s || b.end - a.end);
    const stack: { s: number; end: number; e: TraceEvent }[] = [];
    for (const x of xs) {
      if (!(x.e.dur! >= 0)) problems.push(`${thread}: X without a duration: ${x.e.name}`);
      // Intervals are closed on the left and open on the right (zero-length ones nest).
      for (;;) {
        const top = stack[stack.length - 1];
        if (!top) break;
        const bothInstant = top.end === top.s && x.end === x.s;
        if (top.end < x.s || (top.end === x.s && !bothInstant)) stack.pop();
        else break;
      }
      const top = stack[stack.length - 1];
      if (top && x.end > top.end) {
        problems.push(
          `${thread}: "${x.e.name}" [${x.s}, ${x.end}] overlaps "${top.e.name}" [${top.s}, ${top.end}]`,
        );
      }
      stack.push(x);
    }
  }
  // Async pairs.
  const open = new Map<string, { ts: number; tid: number | undefined }>();
  for (const e of t.traceEvents) {
    if (e.ph === 'C') {
      const values = Object.values(e.args ?? {});
      if (values.length === 0 || !values.every((v) => typeof v === 'number' && Number.isFinite(v)))
        problems.push(`counter without finite numeric values: ${JSON.stringify(e)}`);
    }
    if (e.ph === 'n' && !open.has(`${e.pid}|${e.cat}|${e.name}|${e.id}`))
      problems.push(`async instant outside its slice: ${e.pid}|${e.cat}|${e.name}|${e.id}`);
    if (e.ph !== 'b' && e.ph !== 'e') continue;
    const k = `${e.pid}|${e.cat}|${e.name}|${e.id}`;
    if (e.id === undefined) problems.push(`async event without id: ${e.name}`);
    if (e.ph === 'b') {
      if (open.has(k)) problems.push(`async ${k} begun twice`);
      open.set(k, { ts: e.ts!, tid: e.tid });
    } else {
      const s = open.get(k);
      if (s === undefined) problems.push(`async ${k} ends without a begin`);
      else if (e.ts! < s.ts) problems.push(`async ${k} ends before it begins`);
      else if (s.tid !== e.tid)
        problems.push(`async ${k} ends on another track (tid ${e.tid}, not ${s.tid})`);
      open.delete(k);
    }
  }
  for (const k of open.keys()) problems.push(`async ${k} never ends`);
  // Flows.
  const flows = new Map<string, string[]>();
  for (const e of t.traceEvents) {
    if (e.ph === 's' || e.ph === 'f' || e.ph === 't') {
      if (typeof e.id !== 'number') problems.push(`flow id must be a number: ${JSON.stringify(e)}`);
      const k = `${e.cat}|${e.name}|${e.id}`;
      flows.set(k, [...(flows.get(k) ?? []), e.ph]);
    }
  }
  for (const [k, phases] of flows) {
    if (phases[0] !== 's' || phases[phases.length - 1] !== 'f')
      problems.push(`flow ${k}: ${phases.join('')}`);
  }
  // Timestamps are sorted after the metadata.
  let last = -1;
  for (const e of t.traceEvents) {
    if (e.ph === 'M') continue;
    if (e.ts! < last) problems.push(`events out of order at ${e.name} (${e.ts} < ${last})`);
    last = e.ts!;
  }
  return problems;
}
