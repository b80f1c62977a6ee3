/**
 * The visualiser's data (src/report/view-data.ts) and page (src/report/html.ts): well
 * formed for every scenario, deterministic (the page of a seed is byte-identical across
 * runs), and the `run --html`, `run --view-json` and `view` commands.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { topologyPreset } from '../src/kernel/pci/topology-presets.ts';
import { buildChromeTrace } from '../src/report/chrome-trace.ts';
import { renderHtml } from '../src/report/html.ts';
import { buffersOfLog, buildViewData, topologyGraph, type ViewData } from '../src/report/view-data.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import type { LogEntry } from '../src/sim/event-log.ts';

async function run(file: string, seed?: number) {
  const r = loadScenarioFile(file);
  if (!r.ok) throw new Error(`${file}: ${r.issues.map((i) => i.message).join('; ')}`);
  return runScenario(r.scenario, { seed });
}

function wellFormed(d: ViewData): void {
  const rows = d.rows.length;
  expect(new Set(d.rows.map((r) => r.id)).size).toBe(rows);
  for (const s of d.slices) {
    expect(s.row).toBeGreaterThanOrEqual(0);
    expect(s.row).toBeLessThan(rows);
    expect(d.rows[s.row].kind).toBe('thread');
    expect(s.start).toBeLessThanOrEqual(s.end);
    expect(s.end).toBeLessThanOrEqual(d.duration);
    for (const b of s.bufs) expect(d.buffers[b]).toBeDefined();
  }
  for (const f of d.fences) {
    expect(d.rows[f.row].kind).toBe('fence');
    expect(d.rows[f.by]).toBeDefined();
    expect(f.start).toBeLessThanOrEqual(f.end);
  }
  for (const a of d.arrows) {
    expect(d.rows[a.from]).toBeDefined();
    expect(d.rows[a.to]).toBeDefined();
    expect(a.from).not.toBe(a.to);
  }
  for (const r of d.reports) expect(r.row).toBeLessThan(rows);
  for (const c of d.calls) {
    expect(d.rows[c.row]).toBeDefined();
    expect(c.start).toBeLessThanOrEqual(c.end);
  }
  // Rows are grouped: each group's rows are consecutive.
  const groups = d.rows.map((r) => r.group).filter((g, i, a) => i === 0 || a[i - 1] !== g);
  expect(new Set(groups).size).toBe(groups.length);
  d.buffers.forEach((b, i) => {
    expect(b.id).toBe(i);
    expect(b.holders.length).toBeGreaterThan(0);
    for (const u of b.uses) expect(d.slices[u].bufs).toContain(i);
  });
}

const scenarios = readdirSync('scenarios')
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('view data', () => {
  test.each(scenarios)('%s: well formed and deterministic', async (f) => {
    const a = await run(`scenarios/${f}`);
    const d = buildViewData(a);
    wellFormed(d);
    expect(d.slices.length).toBe(a.result.steps.length);
    expect(d.reports.length).toBe(a.result.reports.length);
    const again = buildViewData(await run(`scenarios/${f}`));
    // The view is compared without the log's digest: the digest covers the kernel's own
    // ids (dma_buf_attach's `attach`), which the view renumbers per run.
    const view = (x: ViewData) => JSON.stringify({ ...x, logHash: '' });
    expect(view(again)).toBe(view(d));
  });

  test('fence-merge: a row per thread, three fences all signalled, wake-up arrows', async () => {
    const a = await run('scenarios/fence-merge.yaml');
    const d = buildViewData(a);
    for (const p of a.result.processes) {
      for (const t of p.threads) expect(d.rows.map((r) => r.id)).toContain(`t:${p.pid}:${t.tid}`);
    }
    expect(d.fences).toHaveLength(3);
    expect(d.fences.every((f) => f.signalled)).toBe(true);
    expect(d.arrows.length).toBeGreaterThan(0);
  });

  test('seed-flow: fence contexts are per host (context 1 on host1 and on host2 are two rows)', async () => {
    const r = loadScenarioFile('scenarios/seed-flow.yaml');
    if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('; '));
    const d = buildViewData(await runScenario(r.scenario), r.scenario);
    wellFormed(d);
    const fenceRows = d.rows.filter((x) => x.kind === 'fence').map((x) => x.id);
    expect(fenceRows).toEqual(expect.arrayContaining(['f:host1:1', 'f:host2:1']));
    const rowOf = (id: string) => d.rows.findIndex((x) => x.id === id);
    // The producer's fill is host1's fence; the consumer's copy back is host2's.
    expect(d.fences.filter((f) => f.row === rowOf('f:host1:1'))).toHaveLength(1);
    expect(d.fences.filter((f) => f.row === rowOf('f:host2:1'))).toHaveLength(1);
    expect(d.fences.every((f) => f.signalled)).toBe(true);
    // fd holders over time: the producer closes its fd right after passing it on; the
    // writer's copy arrived over SCM_RIGHTS and is held until it exits.
    const sent = d.buffers.find((b) => b.host === 'host1')!;
    const holders = sent.holders.map((h) => [h.process, h.since, h.until]);
    expect(holders).toHaveLength(2);
    expect(holders[0][0]).toBe('producer');
    expect(holders[0][2]).toBe(holders[1][1]);
    expect(holders[1][0]).toBe('rdma-writer');
    expect(holders[1][2]).toBe(sent.released);
  });

  test('fence-deadlock: the report, and fences never signalled end with the run', async () => {
    const d = buildViewData(await run('scenarios/fence-deadlock.yaml'));
    expect(d.reports).toHaveLength(1);
    expect(d.reports[0].rule).toBe('deadlock');
    expect(d.fences.length).toBeGreaterThan(0);
    for (const f of d.fences) {
      expect(f.signalled).toBe(false);
      expect(f.end).toBe(d.duration);
    }
  });

  test('implicit-sync: the heap buffer, passed to the compositor, and its uses', async () => {
    const d = buildViewData(await run('scenarios/implicit-sync.yaml'));
    expect(d.buffers).toHaveLength(1);
    const [b] = d.buffers;
    // The name is the step's binding; exporter and size are the kernel's (dma_buf_export).
    expect(b).toMatchObject({ name: 'renderer:buf', exporter: 'system', size: '64KiB', bytes: 65536 });
    expect(b.released).not.toBeNull();
    expect(b.mmaps.length).toBeGreaterThan(0);
    expect(b.holders.map((h) => `${h.process}:${h.as}`)).toEqual(['renderer:buf', 'compositor:buf']);
    const labels = b.uses.map((i) => `${d.rows[d.slices[i].row].group}: ${d.slices[i].label}`);
    expect(labels).toContain('renderer: mmap buf');
    expect(labels).toContain('compositor: recv share');
    expect(labels).toContain('compositor: poll buf in');
    // Syscalls (sys_enter/sys_exit) as slices on the threads' rows.
    expect(d.calls.length).toBeGreaterThan(0);
    expect(d.calls.map((c) => c.label)).toContain('mmap(fd 5)');
    for (const c of d.calls) expect(d.rows[c.row].kind).toBe('thread');
  });

  test('the topology the scenario names: its endpoints and every ordered pair', async () => {
    const a = await run('scenarios/fence-merge.yaml');
    expect(buildViewData(a).topology).toBeNull();
    const t = buildViewData(a, topologyPreset('workstation')).topology!;
    expect(t.name).toBe('workstation');
    const n = t.devices.length;
    expect(n).toBeGreaterThan(1);
    expect(t.pairs).toHaveLength(n * (n - 1));
  });

  test('dma_buf_* tracepoints: export, fd, dynamic P2P attachment, pin, page-less map, move_notify, release', () => {
    const e = (t: number, name: string, args: LogEntry['args']): LogEntry => ({ t, ctx: 'p/7', name, args });
    const log: LogEntry[] = [
      e(10, 'dma_buf_export', { ino: 5, exp_name: 'habanalabs', size: 2 ** 20 }),
      e(11, 'dma_buf_fd', { ino: 5, fd: 4, pid: 101 }),
      e(20, 'dma_buf_attach', {
        ino: 5,
        attach: 0xdead,
        dev: '0000:02:00.0',
        endpoint: 'nic0',
        dynamic: true,
        peer2peer: true,
      }),
      e(21, 'dma_buf_pin', { ino: 5, attach: 0xdead }),
      e(22, 'dma_buf_map_attachment', { ino: 5, attach: 0xdead, nents: 1, pages: false }),
      e(30, 'dma_buf_move_notify', { ino: 5 }),
      e(40, 'dma_buf_unmap_attachment', { ino: 5, attach: 0xdead }),
      e(41, 'dma_buf_unpin', { ino: 5, attach: 0xdead }),
      e(42, 'dma_buf_detach', { ino: 5, attach: 0xdead }),
      e(43, 'dma_buf_attach', { ino: 9, attach: 1, dev: 'x', dynamic: false, peer2peer: false }),
      e(50, 'dma_buf_release', { ino: 5 }),
    ];
    const [b, ...rest] = buffersOfLog(log, 0, 100, [{ pid: 101, name: 'trainer' }]);
    // An event on an inode never exported is ignored.
    expect(rest).toEqual([]);
    expect(b).toMatchObject({
      ino: 5,
      exporter: 'habanalabs',
      size: '1MiB',
      created: 10,
      released: 50,
      moves: [30],
    });
    expect(b.holders).toEqual([{ process: 'trainer', pid: 101, as: 'fd 4', since: 11, until: 50 }]);
    expect(b.attachments).toEqual([
      {
        attach: 1,
        dev: '0000:02:00.0',
        endpoint: 'nic0',
        dynamic: true,
        peer2peer: true,
        since: 20,
        until: 42,
        pins: [{ since: 21, until: 41 }],
        maps: [{ since: 22, until: 40, nents: 1, pages: false }],
      },
    ]);
  });

  test('transfers: starts and ends pair by flow id per host (ends raised in an interrupt too), fabric messages, mem_in_use, syscalls', () => {
    const e = (t: number, ctx: string, name: string, args: LogEntry['args']): LogEntry => ({
      t,
      ctx,
      name,
      args,
    });
    const log: LogEntry[] = [
      e(0, 'a/1', 'mem_in_use', { pool: 'hbm', bytes: 100, device: 'accel0', host: 'h1' }),
      e(0, 'a/1', 'sys_enter', { nr: 16, name: 'ioctl', cmd: 'DRM_IOCTL_HL_MEMORY' }),
      e(5, 'a/1', 'sys_exit', { nr: 16, name: 'ioctl', ret: -22 }),
      e(10, 'a/1', 'pcie_transfer_start', {
        flow: 1,
        src: 'accel0',
        dst: 'nic0',
        bytes: 1000,
        route: 'switch',
      }),
      e(12, 'b/2', 'pcie_transfer_start', {
        flow: 1,
        src: 'accel0',
        dst: 'cpu0',
        bytes: 500,
        route: 'host-memory',
      }),
      e(20, 'irq', 'pcie_transfer_end', { flow: 1, state: 'done', bytes: 1000 }),
      e(21, 'x/9', 'fabric_transfer_start', {
        flow: 4,
        src: 'h1/mlx5_0 port 1',
        dst: 'h2/mlx5_0 port 1',
        bytes: 64,
      }),
      e(30, 'b/2', 'pcie_transfer_end', { flow: 1, state: 'failed', bytes: 0 }),
      e(40, 'a/1', 'mem_in_use', { pool: 'hbm', bytes: 0, device: 'accel0', host: 'h1' }),
    ];
    const tasks = new Map([
      [1, { process: 'a', host: 'h1', thread: 'main', pid: 1, tid: 1 }],
      [2, { process: 'b', host: 'h2', thread: 'main', pid: 1, tid: 2 }],
    ]);
    const result = {
      scenario: { name: 's', file: 's.yaml' },
      seed: 1,
      status: 'completed',
      ok: true,
      t0: 0,
      duration: 50,
      logHash: '0',
      processes: [],
      steps: [],
      reports: [],
      hosts: [{ name: 'h1' }, { name: 'h2' }],
    };
    const d = buildViewData({ result, log, tasks } as unknown as Parameters<typeof buildViewData>[0]);
    expect(d.transfers.map((x) => [x.host, x.src, x.dst, x.start, x.end, x.state])).toEqual([
      ['h1', 'accel0', 'nic0', 10, 20, 'done'],
      ['h2', 'accel0', 'cpu0', 12, 30, 'failed'],
      ['', 'h1/mlx5_0 port 1', 'h2/mlx5_0 port 1', 21, 50, 'active'],
    ]);
    expect(d.transfers[0].gbps).toBe(100);
    expect(d.transfers[1].gbps).toBeNull();
    for (const x of d.transfers) expect(d.rows[x.row].kind).toBe('engine');
    expect(d.memory).toEqual([{ host: 'h1', pool: 'accel0 hbm', node: 'h:h1', t: [0, 40], bytes: [100, 0] }]);
    expect(d.calls).toEqual([
      { row: d.calls[0].row, start: 0, end: 5, label: 'ioctl(DRM_IOCTL_HL_MEMORY)', ret: -22 },
    ]);
  });

  test('accel-p2p-export on its topology: nested graph, hbm in use on accel0, the transfer on its route', async () => {
    const r = loadScenarioFile('scenarios/accel-p2p-export.yaml');
    if (!r.ok) throw new Error('does not load');
    const d = buildViewData(await runScenario(r.scenario), r.scenario);
    wellFormed(d);
    const g = d.graph!;
    const ids = new Set(g.nodes.map((n) => n.id));
    // Parents come before their children; every edge joins known nodes.
    g.nodes.forEach((n, i) => {
      if (n.parent !== null) expect(g.nodes.findIndex((p) => p.id === n.parent)).toBeLessThan(i);
    });
    for (const e of g.edges) expect(ids.has(e.source) && ids.has(e.target)).toBe(true);
    for (const dev of d.topology!.devices) expect(ids).toContain(`d:${d.hosts[0].name}:${dev.id}`);
    expect(d.memory.some((m) => m.node.endsWith(':accel0') && Math.max(...m.bytes) > 0)).toBe(true);
    expect(d.transfers.length).toBeGreaterThan(0);
    for (const x of d.transfers) {
      expect(d.rows[x.row].kind).toBe('engine');
      expect(x.start).toBeLessThanOrEqual(x.end);
      for (const e of x.edges) expect(g.edges.map((y) => y.id)).toContain(e);
    }
    const p2p = d.transfers.find((x) => x.route === 'switch' || x.route === 'root-complex');
    if (p2p) expect(p2p.edges.length).toBeGreaterThan(1);
    expect(d.buffers.some((b) => b.attachments.some((a) => a.peer2peer))).toBe(true);
  });

  test('a topology graph of two hosts: one compound per host and a fabric switch cabled to their NICs', () => {
    const t = topologyPreset('workstation');
    const g = topologyGraph([
      { name: 'a', topology: t },
      { name: 'b', topology: topologyPreset('workstation') },
    ]);
    expect(g.nodes.filter((n) => n.kind === 'host').map((n) => n.id)).toEqual(['h:a', 'h:b']);
    // With no fabric traffic in the log, each host's first NIC is drawn cabled.
    expect(g.edges.filter((e) => e.kind === 'fabric').map((e) => e.target)).toEqual([
      `d:a:${t.endpointsOf('nic')[0].id}`,
      `d:b:${t.endpointsOf('nic')[0].id}`,
    ]);
    expect(g.nodes.filter((n) => n.kind === 'endpoint')).toHaveLength(2 * t.endpoints.length);
  });

  test('the page of a seed is byte-identical across runs and inlines everything', async () => {
    const page = async () => {
      const a = await run('scenarios/implicit-sync.yaml', 7);
      return renderHtml(buildViewData(a), buildChromeTrace(a));
    };
    const [x, y] = [await page(), await page()];
    expect(x).toBe(y);
    expect(x).toContain('<script type="application/json" id="run-data">');
    expect(x).toContain('<script type="application/json" id="trace-data">');
    expect(x).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    // No "</script" inside the inlined JSON or script.
    expect(x.match(/<\/script/g)).toHaveLength(3);
  });
});

const tsx = 'node_modules/.bin/tsx';
const tmp = mkdtempSync(join(tmpdir(), 'dmabuf-lab-view-'));

function cli(
  args: string[],
  until?: RegExp,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, ['src/cli/main.ts', ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (until?.test(stdout)) child.kill('SIGTERM');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.concurrent('dmabuf-lab run --html, --view-json and view', () => {
  test('run --html writes the page; run --view-json the data', async () => {
    const html = join(tmp, 'out.html');
    const json = join(tmp, 'run.json');
    const r = await cli(['run', 'scenarios/implicit-sync.yaml', '--html', html, '--view-json', json]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`html: the visualiser written to ${html}`);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain('"name":"implicit-sync"');
    const d = JSON.parse(readFileSync(json, 'utf8')) as ViewData;
    expect(d.version).toBe(1);
    expect(d.buffers).toHaveLength(1);
  });

  test('view serves the page on 127.0.0.1 and prints its address', async () => {
    let page = '';
    const r = await new Promise<{ stdout: string }>((resolve, reject) => {
      const child = spawn(tsx, ['src/cli/main.ts', 'view', '--no-open', 'scenarios/fence-merge.yaml']);
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', async (d: string) => {
        stdout += d;
        const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(stdout);
        if (m && !page) {
          try {
            page = await (await fetch(m[0])).text();
          } finally {
            child.kill('SIGTERM');
          }
        }
      });
      child.on('error', reject);
      child.on('close', () => resolve({ stdout }));
    });
    expect(r.stdout).toMatch(/^visualiser: http:\/\/127\.0\.0\.1:\d+\/ {2}\(Ctrl-C to stop\)/);
    expect(page).toContain('<title>fence-merge - dmabuf-lab</title>');
  });

  test('view refuses a JSON file that is not a saved run, and a bad port', async () => {
    const bad = await cli(['view', '--no-open', 'package.json']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a run saved by "dmabuf-lab run --view-json"');
    const port = await cli(['view', '--no-open', '--port', '70000']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('the port is a whole number');
  });
});
