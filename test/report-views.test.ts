/**
 * The report's views: a `snapshot` step captures debugfs bufinfo (the same text a `cat`
 * of /sys/kernel/debug/dma_buf/bufinfo gets at that instant), a dmabuf_dump-style
 * per-process table (Android's libdmabufinfo: fd and map references, Rss, Pss,
 * nr_procs, kernel_rss) and the fdinfo of every dma-buf fd (the same text as
 * /proc/<pid>/fdinfo/<fd>); the summary prints them and `--json` carries them as data.
 * The transfers section gives bytes, virtual duration and achieved bandwidth.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { renderDmabufDump, type SnapshotData } from '../src/report/dmabuf-views.ts';
import { renderSummary, summaryData } from '../src/report/summary.ts';
import { buildTransfers } from '../src/report/transfers.ts';
import { SCENARIOS_DIR } from '../src/scenario/builtin.ts';
import { formatIssue, loadScenarioFile, loadScenarioText } from '../src/scenario/load.ts';
import { type RunArtifacts, runScenario } from '../src/scenario/runner.ts';

const plain = { bold: String, dim: String, red: String, green: String, yellow: String, cyan: String };

async function run(text: string): Promise<RunArtifacts> {
  const r = loadScenarioText(text, 'views.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return runScenario(r.scenario);
}

/** The views the `snapshot` step with id `id` took. */
function snapOf(a: RunArtifacts, id: string): SnapshotData {
  const snap = a.result.steps.find((s) => s.id === id)?.detail?.snapshot;
  if (!snap) throw new Error(`no snapshot step "${id}"`);
  return snap as SnapshotData;
}

/** Two processes share a 64 KiB system-heap buffer; the producer also holds an 8 KiB one and a mapping. */
const SHARED = `
name: views
requires: [/dev/dma_heap/system]
channels:
  share: [producer, consumer]
processes:
  - name: producer
    steps:
      - heap_alloc: {heap: system, size: 64KiB}
        as: big
      - heap_alloc: {heap: system, size: 8KiB}
        as: small
      - mmap: small
        as: map
      - send: {channel: share, fd: big}
      - sleep: 1ms
      - snapshot: {}
        id: snap
      - cat: /sys/kernel/debug/dma_buf/bufinfo
        id: bufinfo
      - fdinfo: big
        id: fdinfo_big
      - close: small
      - snapshot: {views: [dmabuf_dump]}
        id: after_close
      - sleep: 1ms
  - name: consumer
    steps:
      - recv: share
        as: big
      - sleep: 3ms
`;

describe('snapshot step', () => {
  test('its bufinfo is the text /sys/kernel/debug/dma_buf/bufinfo serves at that instant', async () => {
    const a = await run(SHARED);
    const snap = a.result.steps.find((s) => s.id === 'snap')!;
    const cat = a.result.steps.find((s) => s.id === 'bufinfo')!;
    expect(snap.outcome).toBe('ok');
    expect(snap.end).toBe(cat.start);
    const bufinfo = snapOf(a, 'snap').bufinfo;
    expect(bufinfo).toBe(cat.text);
    expect(bufinfo).toContain('\nDma-buf Objects:\n');
    expect(bufinfo).toContain('Total 2 objects, 73728 bytes');
  });

  test('dmabuf_dump lists each process with its dma-buf fds, sizes, exporters and shares', async () => {
    const a = await run(SHARED);
    const d = snapOf(a, 'snap').dmabuf_dump!;
    const producer = a.result.processes.find((p) => p.name === 'producer')!;
    const consumer = a.result.processes.find((p) => p.name === 'consumer')!;
    expect(d.processes.map((p) => [p.name, p.pid])).toEqual([
      ['producer', producer.pid],
      ['consumer', consumer.pid],
    ]);
    const [pr, co] = d.processes;
    expect(
      pr.rows.map((r) => [r.inode, r.size, r.exporter, r.name, r.fds.length, r.maps, r.nrProcs]),
    ).toEqual([
      [1, 65536, 'system', '<unknown>', 1, 0, 2],
      [2, 8192, 'system', '<unknown>', 1, 1, 1],
    ]);
    expect(co.rows.map((r) => [r.inode, r.size, r.nrProcs, r.pss])).toEqual([[1, 65536, 2, 32768]]);
    expect([pr.rss, pr.pss, co.rss, co.pss]).toEqual([73728, 32768 + 8192, 65536, 32768]);
    expect(d).toMatchObject({
      buffers: 2,
      total: 73728,
      kernelRss: 0,
      userspaceRss: 73728,
      userspacePss: 73728,
    });
    // The fds are the processes' real fds.
    const big = a.result.steps.find((s) => s.process === 'producer' && s.as === 'big')!;
    expect(pr.rows[0].fds).toEqual([big.ret]);
    const text = renderDmabufDump(d);
    expect(text).toContain('PROCESS TOTAL');
    expect(text).toContain(
      'dmabuf total: 72 kB kernel_rss: 0 kB userspace_rss: 72 kB userspace_pss: 72 kB (2 buffers)',
    );
  });

  test('a buffer held only by a mapping stays in the table, with no fd', async () => {
    const a = await run(SHARED);
    const d = snapOf(a, 'after_close').dmabuf_dump!;
    const small = d.processes[0].rows.find((r) => r.inode === 2)!;
    expect([small.fds, small.maps]).toEqual([[], 1]);
    expect(renderDmabufDump(d)).toMatch(/8 kB .* system {2}- \(\+1 map\)/);
  });

  test('its fdinfo of each dma-buf fd is what /proc/<pid>/fdinfo/<fd> shows', async () => {
    const a = await run(SHARED);
    const fdinfo = snapOf(a, 'snap').fdinfo!;
    expect(fdinfo.map((e) => [e.process, e.inode])).toEqual([
      ['producer', 1],
      ['producer', 2],
      ['consumer', 1],
    ]);
    const own = a.result.steps.find((s) => s.id === 'fdinfo_big')!;
    expect(fdinfo[0].text).toBe(own.text);
    expect(fdinfo[0].text).toMatch(
      /^pos:\t0\nflags:\t0\d+\nmnt_id:\t9\nino:\t1\nsize:\t65536\ncount:\t\d+\nexp_name:\tsystem\n$/,
    );
  });

  test('views can be chosen; an unknown view is refused with the names that exist', async () => {
    const a = await run(SHARED);
    const only = a.result.steps.find((s) => s.id === 'after_close')!.detail?.snapshot as Record<
      string,
      unknown
    >;
    expect(Object.keys(only)).toEqual(['dmabuf_dump']);
    const r = loadScenarioText(
      SHARED.replace('snapshot: {views: [dmabuf_dump]}', 'snapshot: {views: [bufinfos]}'),
      'bad.yaml',
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map(formatIssue).join('\n')).toMatch(/bufinfo.*dmabuf_dump.*fdinfo/s);
  });

  test('the summary prints the snapshot and --json carries the same views as data', async () => {
    const a = await run(SHARED);
    const d = summaryData(a);
    expect(d.snapshots.map((s) => s.id)).toEqual(['snap', 'after_close']);
    const snap = a.result.steps.find((s) => s.id === 'snap')!;
    expect(d.snapshots[0]).toMatchObject({ process: 'producer', t: snap.start });
    expect(d.snapshots[0].bufinfo).toBe(snapOf(a, 'snap').bufinfo);
    const json = JSON.parse(JSON.stringify(d));
    expect(json.snapshots[0].dmabuf_dump.processes[1].rows[0].inode).toBe(1);
    const text = renderSummary(d, plain);
    expect(text).toContain('| # cat /sys/kernel/debug/dma_buf/bufinfo');
    expect(text).toContain('| # dmabuf_dump');
    expect(text).toContain('| # fdinfo of every dma-buf fd');
    expect(text).toContain('| Total 2 objects, 73728 bytes');
  });
});

describe('timeline', () => {
  test('dma-bufs exported, attached, detached and released are in the timeline', async () => {
    const r = loadScenarioFile(join(SCENARIOS_DIR, 'accel-p2p-export.yaml'));
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const d = summaryData(await runScenario(r.scenario));
    const bufs = d.timeline.filter((e) => e.event.startsWith('dma_buf_')).map((e) => `${e.event}: ${e.text}`);
    expect(bufs).toEqual([
      'dma_buf_export: ino 1 exported by habanalabs, 67108864 bytes',
      'dma_buf_attach: ino 1 attached to 0000:02:00.0 (nic0), dynamic, peer2peer',
      'dma_buf_detach: ino 1 attachment 1 detached',
      'dma_buf_release: ino 1 released',
    ]);
  });
});

describe('transfers section', () => {
  async function accel(): Promise<RunArtifacts> {
    const r = loadScenarioFile(join(SCENARIOS_DIR, 'accel-p2p-export.yaml'));
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    return runScenario(r.scenario);
  }

  test('each transfer has its bytes, virtual duration and achieved rate in GB/s and Gb/s', async () => {
    const a = await accel();
    const rows = buildTransfers(a);
    const p2p = rows.find((r) => r.kind === 'p2p_read')!;
    expect(p2p.bytes).toBe(64 * 1024 * 1024);
    expect(p2p.ns).toBeGreaterThan(0);
    expect(p2p.gbps).toBeCloseTo((p2p.bytes * 8) / p2p.ns, 9);
    expect(p2p.gBps).toBeCloseTo(p2p.gbps / 8, 9);
    const d = summaryData(a);
    expect(d.transfers).toEqual(rows);
    const text = renderSummary(d, plain);
    expect(text).toContain('\ntransfers (bytes moved, virtual duration, achieved bandwidth)\n');
    expect(text).toMatch(/p2p_read .* -> .*: 64\.0 MiB in \d+\.\d{3} ms, \d+\.\d\d GB\/s \(\d+\.\d Gb\/s\)/);
  });

  test('without step records the PCIe flows of the event log are the transfers', async () => {
    const a = await accel();
    const steps = a.result.steps.map(({ transfer: _t, ...s }) => s);
    const rows = buildTransfers({ ...a, result: { ...a.result, steps } });
    expect(rows.map((r) => [r.kind, r.from, r.to, r.bytes, r.by])).toEqual([
      ['pcie', 'accel0', 'accel0', 67108864, 'device-internal'],
      ['pcie', 'accel0', 'nic0', 67108864, 'root-complex'],
    ]);
    for (const r of rows) expect(r.ns).toBeGreaterThan(0);
  });

  test('the share of the line rate is given when the link has one', () => {
    const a = {
      result: {
        t0: 0,
        steps: [
          {
            seq: 0,
            process: 'client',
            label: 'rdma_write',
            kind: 'rdma_write',
            start: 0,
            transfer: {
              kind: 'rdma_write',
              bytes: 1_000_000,
              ns: 100_000,
              gbps: 80,
              lineRateGbps: 100,
              from: 'a',
              to: 'b',
            },
          },
        ],
      },
      log: [],
    } as unknown as RunArtifacts;
    const [r] = buildTransfers(a);
    expect([r.gbps, r.gBps, r.percentOfLine]).toEqual([80, 10, 80]);
  });
});
