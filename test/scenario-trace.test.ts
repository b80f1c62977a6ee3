/**
 * Chrome trace-event export: the same seed gives a byte-identical file, and the file
 * follows the rules the Perfetto UI's JSON importer enforces: B/E balanced per thread,
 * complete (X) slices on one thread nested or disjoint (never partly overlapping),
 * async b/e pairs matched by category, name and id, flows with a start and an end,
 * every pid and tid named by metadata.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  buildChromeTrace,
  type ChromeTrace,
  chromeTraceJson,
  type TraceEvent,
} from '../src/report/chrome-trace.ts';
import { SCENARIOS_DIR } from '../src/scenario/builtin.ts';
import { formatIssue, loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import type { SchedulerOptions } from '../src/sim/scheduler.ts';
import { traceProblems } from './helpers/trace-check.ts';

async function trace(file: string, seed?: number, scheduler?: SchedulerOptions) {
  const r = loadScenarioFile(join(SCENARIOS_DIR, file));
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  const a = await runScenario(r.scenario, { seed, scheduler });
  return { artifacts: a, trace: buildChromeTrace(a) };
}

describe('the structural check itself', () => {
  test('finds overlapping slices, unbalanced B/E, unmatched async pairs and broken flows', () => {
    const m = (pid: number, tid: number): TraceEvent[] => [
      { name: 'process_name', ph: 'M', pid, args: { name: 'p' } },
      { name: 'thread_name', ph: 'M', pid, tid, args: { name: 't' } },
    ];
    const bad: ChromeTrace = {
      displayTimeUnit: 'ns',
      otherData: {},
      traceEvents: [
        ...m(1, 1),
        { name: 'a', ph: 'X', ts: 0, dur: 10, pid: 1, tid: 1 },
        { name: 'b', ph: 'X', ts: 5, dur: 10, pid: 1, tid: 1 },
        { name: 'c', ph: 'B', ts: 20, pid: 1, tid: 1 },
        { name: 'f', cat: 'x', ph: 'b', ts: 20, pid: 1, id: 1 },
        { name: 'g', cat: 'x', ph: 'e', ts: 21, pid: 1, id: 2 },
        { name: 'w', cat: 'x', ph: 'f', ts: 22, pid: 1, tid: 1, id: 9 },
      ],
    };
    const p = traceProblems(bad);
    expect(p).toContain('1/1: "b" [5, 15] overlaps "a" [0, 10]');
    expect(p).toContain('1/1: 1 B without E');
    expect(p).toContain('async 1|x|g|2 ends without a begin');
    expect(p).toContain('async 1|x|f|1 never ends');
    expect(p).toContain('flow x|w|9: f');
    const good: ChromeTrace = {
      displayTimeUnit: 'ns',
      otherData: {},
      traceEvents: [
        ...m(1, 1),
        { name: 'outer', ph: 'X', ts: 0, dur: 10, pid: 1, tid: 1 },
        { name: 'inner', ph: 'X', ts: 0, dur: 0, pid: 1, tid: 1 },
        { name: 'inner2', ph: 'X', ts: 10, dur: 0, pid: 1, tid: 1 },
        { name: 'next', ph: 'X', ts: 10, dur: 5, pid: 1, tid: 1 },
      ],
    };
    expect(traceProblems(good)).toEqual([]);
  });
});

describe('Chrome trace export', () => {
  test('the same seed gives a byte-identical file', async () => {
    const a = chromeTraceJson((await trace('producer-consumer-ring.yaml', 3, { strategy: 'pct' })).trace);
    const b = chromeTraceJson((await trace('producer-consumer-ring.yaml', 3, { strategy: 'pct' })).trace);
    expect(a).toBe(b);
    expect(JSON.parse(a).traceEvents.length).toBeGreaterThan(100);
  });

  test.each([
    'fence-merge.yaml',
    'producer-consumer-ring.yaml',
    'fence-pipeline.yaml',
    'killed-mid-wait.yaml',
    'fence-deadlock.yaml',
    'sync-file-errors.yaml',
  ])('%s gives a structurally valid trace', async (file) => {
    const { trace: t } = await trace(file);
    const parsed = JSON.parse(chromeTraceJson(t)) as ChromeTrace;
    expect(parsed.displayTimeUnit).toBe('ns');
    expect(traceProblems(parsed)).toEqual([]);
  });

  test('processes, threads, steps, fence lifetimes and wake-up flows are all there', async () => {
    const { trace: t, artifacts } = await trace('fence-merge.yaml');
    const ev = t.traceEvents;
    const names = ev.filter((e) => e.name === 'process_name').map((e) => e.args?.name);
    expect(names).toEqual(['init (harness)', 'compute', 'copy', 'app', 'kernel']);
    const app = artifacts.result.processes.find((p) => p.name === 'app')!;
    const threads = ev.filter((e) => e.name === 'thread_name' && e.pid === app.pid).map((e) => e.args?.name);
    expect(threads).toEqual(['main', 'first', 'all']);
    const wait = ev.find((e) => e.ph === 'X' && e.name === 'sync_wait both')!;
    expect([wait.ts, wait.dur]).toEqual([0, 2500]);
    // Fences as async slices named after their driver and timeline, from init to signaled.
    const merged = ev.filter((e) => e.cat === 'dma_fence' && e.name === 'dma_fence_array:unbound');
    expect(merged.map((e) => [e.ph, e.ts])).toEqual([
      ['b', 0],
      ['e', 2500],
    ]);
    expect(merged[0].args?.begin).toBe('dma_fence_init');
    expect(merged[1].args?.end).toBe('dma_fence_signaled');
    // The tracepoints themselves, on the fence context's thread.
    expect(
      ev.some((e) => e.ph === 'i' && e.name === 'dma_fence_signaled' && e.args?.timeline === 'copy'),
    ).toBe(true);
    // A flow from the compute engine to the thread it woke.
    const first = app.threads.find((x) => x.name === 'first')!;
    const f = ev.find((e) => e.ph === 'f' && e.tid === first.tid)!;
    const s = ev.find((e) => e.ph === 's' && e.id === f.id)!;
    expect(s.pid).toBe(artifacts.result.processes.find((p) => p.name === 'compute')!.pid);
    expect([s.ts, f.ts, f.bp]).toEqual([1500, 1500, 'e']);
  });

  test('rule reports are global instants', async () => {
    const { trace: t } = await trace('fence-deadlock.yaml');
    const r = t.traceEvents.filter((e) => e.cat === 'report');
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ ph: 'i', s: 'g', name: 'deadlock', args: { type: 'deadlock' } });
  });
});
