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
import { buildViewData, type ViewData } from '../src/report/view-data.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';

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
    expect(JSON.stringify(again)).toBe(JSON.stringify(d));
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
    expect(b).toMatchObject({ name: 'renderer:buf', exporter: 'system heap', size: '64KiB' });
    expect(b.holders.map((h) => `${h.process}:${h.as}`)).toEqual(['renderer:buf', 'compositor:buf']);
    const labels = b.uses.map((i) => `${d.rows[d.slices[i].row].group}: ${d.slices[i].label}`);
    expect(labels).toContain('renderer: mmap buf');
    expect(labels).toContain('compositor: recv share');
    expect(labels).toContain('compositor: poll buf in');
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
