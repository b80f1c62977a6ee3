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
import { formatIssue, loadScenarioFile, loadScenarioText } from '../src/scenario/load.ts';
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
        { name: 'h', cat: 'x', ph: 'n', ts: 23, pid: 1, id: 7 },
        { name: 'mem.cma', ph: 'C', ts: 24, pid: 1, args: { bytes: 'many' } },
        { name: 'dma', cat: 'y', ph: 'b', ts: 25, pid: 1, tid: 1, id: 3 },
        { name: 'dma', cat: 'y', ph: 'e', ts: 26, pid: 1, tid: 2, id: 3 },
        { name: 'dma2', cat: 'y', ph: 'b', ts: 27, pid: 1, id: 4 },
        { name: 'dma2', cat: 'y', ph: 'e', ts: 26.5, pid: 1, id: 4 },
      ],
    };
    const p = traceProblems(bad);
    expect(p).toContain('1/1: "b" [5, 15] overlaps "a" [0, 10]');
    expect(p).toContain('1/1: 1 B without E');
    expect(p).toContain('async 1|x|g|2 ends without a begin');
    expect(p).toContain('async 1|x|f|1 never ends');
    expect(p).toContain('flow x|w|9: f');
    expect(p).toContain('async instant outside its slice: 1|x|h|7');
    expect(p).toContain(
      'counter without finite numeric values: {"name":"mem.cma","ph":"C","ts":24,"pid":1,"args":{"bytes":"many"}}',
    );
    expect(p).toContain('async 1|y|dma|3 ends on another track (tid 2, not 1)');
    expect(p).toContain('async 1|y|dma2|4 ends before it begins');
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
    'implicit-sync.yaml',
    'accel-p2p-export.yaml',
    'udmabuf-memfd.yaml',
    'cma-heap-exhausted.yaml',
    'seed-flow.yaml',
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

/** The X slices of one thread. */
function slicesOf(ev: TraceEvent[], pid: number, tid: number, cat: string): TraceEvent[] {
  return ev.filter((e) => e.ph === 'X' && e.cat === cat && e.pid === pid && e.tid === tid);
}

describe('syscalls, dma-bufs and memory in the trace', () => {
  test('every syscall of a scenario process is a slice nested in the step that made it', async () => {
    const { trace: t, artifacts } = await trace('implicit-sync.yaml');
    const ev = t.traceEvents;
    let checked = 0;
    for (const p of artifacts.result.processes.filter((x) => !x.harness)) {
      for (const th of p.threads) {
        const steps = slicesOf(ev, p.pid, th.tid, 'step');
        for (const c of slicesOf(ev, p.pid, th.tid, 'syscall')) {
          const inside = steps.filter((s) => s.ts! <= c.ts! && c.ts! + c.dur! <= s.ts! + s.dur!);
          expect(inside.length, `${c.name} at ${c.ts} on ${p.name}/${th.name}`).toBeGreaterThan(0);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10);
    // The ioctl's request is in the slice name; the fd and the result are in args.
    const renderer = artifacts.result.processes.find((p) => p.name === 'renderer')!;
    const syncs = ev.filter(
      (e) => e.cat === 'syscall' && e.pid === renderer.pid && e.name === 'ioctl DMA_BUF_IOCTL_SYNC',
    );
    expect(syncs).toHaveLength(2);
    expect(syncs[0].args).toMatchObject({ nr: 16, ret: 0 });
    const step = ev.find(
      (e) => e.cat === 'step' && e.pid === renderer.pid && e.name.startsWith('dma_buf_sync'),
    )!;
    expect(syncs[0].ts).toBeGreaterThanOrEqual(step.ts!);
    // A failing call carries its errno: the compositor's poll with a 1 ms timeout returns 0,
    // and sync-file-errors' bad merge fails.
    const { trace: bad } = await trace('sync-file-errors.yaml');
    const failed = bad.traceEvents.filter((e) => e.cat === 'syscall' && typeof e.args?.errno === 'string');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0].args?.ret).toBeLessThan(0);
  });

  test('memory in use is a counter per pool, never negative, back to 0 when the buffers are gone', async () => {
    const { trace: t } = await trace('implicit-sync.yaml');
    const heap = t.traceEvents.filter((e) => e.ph === 'C' && e.name === 'mem.system-heap');
    expect(heap.map((e) => e.args?.bytes)).toEqual([65536, 0]);
    const { trace: acc } = await trace('accel-p2p-export.yaml');
    const hbm = acc.traceEvents.filter((e) => e.ph === 'C' && e.name === 'mem.hbm');
    expect(hbm.length).toBeGreaterThanOrEqual(2);
    for (const c of hbm) expect(c.args?.bytes).toBeGreaterThanOrEqual(0);
    expect(hbm[0].args?.bytes).toBeGreaterThan(0);
    expect(hbm[hbm.length - 1].args?.bytes).toBe(0);
    // Device memory sits on a process named after the device's topology id.
    const dev = acc.traceEvents.find((e) => e.name === 'process_name' && e.pid === hbm[0].pid);
    expect(dev?.args?.name).toBe('accel0 (device)');
    // The BAR mapped for the NIC while it reads peer-to-peer, on the same device.
    const bar = acc.traceEvents.filter((e) => e.ph === 'C' && e.name === 'mem.bar');
    expect(bar.map((e) => [e.pid, e.args?.bytes])).toEqual([
      [hbm[0].pid, 64 * 1024 * 1024],
      [hbm[0].pid, 0],
    ]);
  });

  test('a dma-buf lives from dma_buf_export to dma_buf_release, with its driver calls as instants', async () => {
    const { trace: t, artifacts } = await trace('accel-p2p-export.yaml');
    const ev = t.traceEvents;
    const life = ev.filter((e) => e.cat === 'dma_buf' && (e.ph === 'b' || e.ph === 'e'));
    expect(life.map((e) => [e.ph, e.name])).toEqual([
      ['b', 'dma_buf 1 (habanalabs)'],
      ['e', 'dma_buf 1 (habanalabs)'],
    ]);
    const events = ev.filter((e) => e.cat === 'dma_buf' && e.ph === 'n').map((e) => e.args?.event);
    expect(events).toEqual([
      'dma_buf_fd',
      'dma_buf_attach',
      'dma_buf_map_attachment',
      'dma_buf_unmap_attachment',
      'dma_buf_detach',
      // The process exits holding its fd: the close releases the last reference.
      'dma_buf_fd_close',
    ]);
    const attach = ev.find((e) => e.ph === 'n' && e.args?.event === 'dma_buf_attach')!;
    expect(attach.args).toMatchObject({ endpoint: 'nic0', dynamic: true, peer2peer: true });
    const map = ev.find((e) => e.ph === 'n' && e.args?.event === 'dma_buf_map_attachment')!;
    expect(map.args?.pages).toBe(false);
    // The driver calls are instants on the thread that made them too.
    const trainer = artifacts.result.processes.find((p) => p.name === 'trainer')!;
    const calls = ev.filter((e) => e.ph === 'i' && e.cat === 'dma_buf' && e.pid === trainer.pid);
    expect(calls.map((e) => e.name)).toContain('dma_buf_map_attachment');
  });

  test('the same seed gives a byte-identical file with syscalls, buffers and counters', async () => {
    const a = chromeTraceJson((await trace('implicit-sync.yaml', 5, { strategy: 'random' })).trace);
    const b = chromeTraceJson((await trace('implicit-sync.yaml', 5, { strategy: 'random' })).trace);
    expect(a).toBe(b);
    expect(a).toContain('"cat":"syscall"');
    expect(a).toContain('"ph":"C"');
    // Ids in the events (attachments, flows) restart with each machine.
    const c = chromeTraceJson((await trace('accel-p2p-export.yaml')).trace);
    const d = chromeTraceJson((await trace('accel-p2p-export.yaml')).trace);
    expect(c).toBe(d);
  });
});

describe('a trace of two hosts', () => {
  test('processes, buffers and memory counters say which host they belong to', async () => {
    const r = loadScenarioText(
      `
name: two-hosts
hosts:
  - {name: host1, topology: workstation}
  - {name: host2, topology: workstation}
processes:
  - name: a
    host: host1
    steps:
      - heap_alloc: {heap: system, size: 64KiB}
      - sleep: 1ms
  - name: b
    host: host2
    steps:
      - heap_alloc: {heap: system, size: 8KiB}
      - sleep: 1ms
`,
      'two-hosts.yaml',
    );
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const t = buildChromeTrace(await runScenario(r.scenario));
    expect(traceProblems(t)).toEqual([]);
    const names = t.traceEvents.filter((e) => e.name === 'process_name').map((e) => e.args?.name);
    expect(names).toEqual(expect.arrayContaining(['a on host1', 'b on host2']));
    const bufs = t.traceEvents.filter((e) => e.cat === 'dma_buf' && e.ph === 'b').map((e) => e.name);
    expect(bufs.sort()).toEqual(['dma_buf 1 (system) on host1', 'dma_buf 1 (system) on host2']);
    const heap = t.traceEvents.filter((e) => e.ph === 'C').map((e) => `${e.name}=${e.args?.bytes}`);
    expect(heap).toEqual(
      expect.arrayContaining(['mem.system-heap on host1=65536', 'mem.system-heap on host2=8192']),
    );
  });
});

/** The pid of the process named `name` (throws when there is none). */
function pidNamed(ev: TraceEvent[], name: string): number {
  const m = ev.find((e) => e.ph === 'M' && e.name === 'process_name' && e.args?.name === name);
  if (!m) throw new Error(`no process ${name}`);
  return m.pid;
}

/** Async b/e pairs of category `cat`, matched by id, as [begin, end]. */
function asyncPairs(ev: TraceEvent[], cat: string): [TraceEvent, TraceEvent][] {
  const begins = ev.filter((e) => e.cat === cat && e.ph === 'b');
  return begins.map((b) => {
    const ends = ev.filter((e) => e.cat === cat && e.ph === 'e' && e.id === b.id);
    expect(ends, `${b.name} ends once`).toHaveLength(1);
    return [b, ends[0]];
  });
}

describe('a trace of seed-flow (two hosts, RDMA between their accelerators)', () => {
  test('each host has its own kernel process, with its own fence context and kernel threads', async () => {
    const { trace: t, artifacts } = await trace('seed-flow.yaml');
    const ev = t.traceEvents;
    const processes = ev.filter((e) => e.name === 'process_name').map((e) => e.args?.name);
    expect(processes).toEqual(expect.arrayContaining(['kernel on host1', 'kernel on host2']));
    expect(processes).not.toContain('kernel');
    const k1 = pidNamed(ev, 'kernel on host1');
    const k2 = pidNamed(ev, 'kernel on host2');
    expect(k1).not.toBe(k2);
    // Both hosts' accel0 DMA timeline is fence context 1: one thread on each kernel.
    const ctx1 = ev.filter(
      (e) => e.name === 'thread_name' && e.args?.name === 'fence ctx 1 (habanalabs:accel0-dma)',
    );
    expect(ctx1.map((e) => e.pid).sort()).toEqual([k1, k2].sort());
    expect(new Set(ctx1.map((e) => e.tid)).size).toBe(2);
    // Each host's fence is initialised and signalled on its own host's thread, and its
    // lifetime is a pair on its own kernel (the host2 one signalled from host2's IRQ).
    for (const [pid, th] of ctx1.map((e) => [e.pid, e.tid] as const)) {
      const marks = ev.filter((e) => e.ph === 'i' && e.cat === 'dma_fence' && e.pid === pid && e.tid === th);
      expect(marks.map((e) => e.name)).toEqual(
        expect.arrayContaining(['dma_fence_init', 'dma_fence_signaled', 'dma_fence_destroy']),
      );
    }
    const lives = asyncPairs(ev, 'dma_fence');
    expect(lives.map(([b, e]) => [b.pid, e.pid, e.args?.end])).toEqual(
      expect.arrayContaining([
        [k1, k1, 'dma_fence_signaled'],
        [k2, k2, 'dma_fence_signaled'],
      ]),
    );
    // The host1 consumer of host2's fence waited on host2 (the consumer runs there):
    // its process is named for its host and its dma-buf sits on host2's kernel.
    const bufs = ev.filter((e) => e.cat === 'dma_buf' && e.ph === 'b');
    expect(bufs.map((e) => [e.name, e.pid]).sort()).toEqual(
      [
        ['dma_buf 1 (habanalabs) on host1', k1],
        ['dma_buf 1 (habanalabs) on host2', k2],
      ].sort(),
    );
    // The NIC's kernel thread was spawned by rdma-writer, a host1 process.
    const writer = artifacts.result.processes.find((p) => p.name === 'rdma-writer')!;
    expect(writer.host).toBe('host1');
    const hca = ev.filter((e) => e.name === 'thread_name' && String(e.args?.name).startsWith('mlx5_0_hca/'));
    expect(hca.length).toBeGreaterThan(0);
    expect(hca.some((e) => e.pid === k1)).toBe(true);
    // Wake-ups from host2's interrupts start on host2's hardirq thread.
    const consumer = artifacts.result.processes.find((p) => p.name === 'consumer')!;
    const toConsumer = ev.filter((e) => e.ph === 'f' && e.pid === consumer.pid);
    for (const f of toConsumer) {
      const s = ev.find((e) => e.ph === 's' && e.id === f.id)!;
      if (s.pid === k1 || s.pid === k2) expect(s.pid).toBe(k2);
    }
    expect(traceProblems(t)).toEqual([]);
  });

  test('DMA transfers are async slices on the source device, network ones on the fabric', async () => {
    const { trace: t } = await trace('seed-flow.yaml');
    const ev = t.traceEvents;
    const dma = asyncPairs(ev, 'dma');
    const processName = (pid: number) =>
      ev.find((e) => e.name === 'process_name' && e.pid === pid)?.args?.name as string;
    const threadName = (pid: number, tid: number | undefined) =>
      ev.find((e) => e.name === 'thread_name' && e.pid === pid && e.tid === tid)?.args?.name as string;
    for (const [b, e] of dma) {
      expect([e.name, e.pid, e.tid]).toEqual([b.name, b.pid, b.tid]);
      expect(e.ts!).toBeGreaterThanOrEqual(b.ts!);
      expect(b.name).toMatch(/^DMA \S+ -> \S+ \d+(\.\d)? [KMG]?i?B$/);
      expect(processName(b.pid)).toMatch(/ \(device\)$/);
      expect(threadName(b.pid, b.tid)).toBe(`DMA from ${b.args?.src}`);
      expect(e.args?.state).toBe('done');
      expect(e.args?.GBps).toBeCloseTo(Number(e.args?.bytes) / Number(e.args?.ns), 3);
    }
    const where = dma.map(([b]) => `${b.name} @ ${processName(b.pid)}`);
    expect(where).toEqual([
      'DMA accel0 -> accel0 64 MiB @ accel0 on host1 (device)',
      'DMA accel0 -> nic0 64 MiB @ accel0 on host1 (device)',
      'DMA nic0 -> accel0 64 MiB @ nic0 on host2 (device)',
      'DMA accel0 -> cpu0 64 MiB @ accel0 on host2 (device)',
    ]);
    // The fill reuses the accel0 process of host1's HBM counter.
    const hbm = ev.find((e) => e.ph === 'C' && e.name === 'mem.hbm')!;
    expect(processName(hbm.pid)).toBe('accel0 on host1 (device)');
    expect(dma[0][0].pid).toBe(hbm.pid);
    // The RDMA write crosses the network: one slice on the sending port's fabric track.
    const net = asyncPairs(ev, 'fabric');
    expect(net).toHaveLength(1);
    const [b, e] = net[0];
    expect(processName(b.pid)).toBe('fabric');
    expect(threadName(b.pid, b.tid)).toBe('host1/mlx5_0 port 1');
    expect(b.name).toBe('host1/mlx5_0 port 1 -> host2/mlx5_0 port 1 64 MiB');
    expect(e.ts!).toBeGreaterThan(b.ts!);
    // 64 MiB at about 0.92 x 200 Gb/s = 23 GB/s.
    expect(e.args?.GBps).toBeGreaterThan(20);
    expect(e.args?.GBps).toBeLessThan(25);
  });

  test('the same seed gives a byte-identical file', async () => {
    const a = chromeTraceJson((await trace('seed-flow.yaml', 7)).trace);
    const b = chromeTraceJson((await trace('seed-flow.yaml', 7)).trace);
    expect(a).toBe(b);
  });

  test('a run of one machine keeps one kernel process at pid 0, and draws its DMA too', async () => {
    const { trace: t } = await trace('accel-p2p-export.yaml');
    const ev = t.traceEvents;
    const kernels = ev.filter((e) => e.name === 'process_name' && String(e.args?.name).startsWith('kernel'));
    expect(kernels.map((e) => [e.pid, e.args?.name])).toEqual([[0, 'kernel']]);
    const dma = asyncPairs(ev, 'dma');
    expect(dma.length).toBeGreaterThan(0);
    for (const [b, e] of dma) expect(e.ts!).toBeGreaterThanOrEqual(b.ts!);
    expect(ev.some((e) => e.cat === 'pcie')).toBe(false);
  });
});
