/**
 * The visualiser in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
 * playwright-core, headless, loading the self-contained page from file:// and from
 * `dmabuf-lab view`'s server. Checks the timeline (a row per thread, engine and fence
 * context, fence bars, transfers, report markers), the buffers view (attachments;
 * clicking a buffer selects it in every view and in the address), the topology graph
 * (Cytoscape, queried through the page's `window.__viewer` hook: a node per device of
 * every host, memory in use that follows the cursor, transfer edges while a transfer
 * runs), deep links, and that a run of 100k events stays interactive (the times are
 * measured by `npm run bench -- --filter visualiser`, not asserted here).
 * Screenshots of each view go to test-artifacts/visualiser/.
 *
 * Skipped, with a message, where /usr/bin/chromium is missing (`apt-get install -y chromium`).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveView } from '../src/cli/view.ts';
import { buildChromeTrace } from '../src/report/chrome-trace.ts';
import { renderHtml } from '../src/report/html.ts';
import { buildViewData, type ViewData } from '../src/report/view-data.ts';
import { loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import { bigRun, timeInteractions } from './helpers/big-view.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`visualiser browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

const ARTIFACTS = resolve('test-artifacts/visualiser');
/** The default scenario: the multi-host RDMA seed flow (accel-p2p-export before it existed). */
const SEED_FLOW = existsSync('scenarios/seed-flow.yaml')
  ? 'scenarios/seed-flow.yaml'
  : 'scenarios/accel-p2p-export.yaml';

/** The `ref`s (topology ids) of the graph's nodes of one kind, in graph order. */
function graphNodes(p: Page, kind: string): Promise<string[]> {
  return p.evaluate(`window.__viewer.cy().nodes('[kind="${kind}"]').map((n) => n.data('ref'))`);
}

async function page(file: string): Promise<{ data: ViewData; url: string; html: string }> {
  const r = loadScenarioFile(file);
  if (!r.ok) throw new Error(`${file} does not load`);
  const a = await runScenario(r.scenario);
  const data = buildViewData(a, r.scenario);
  const html = await renderHtml(data, buildChromeTrace(a));
  const out = join(ARTIFACTS, `${r.scenario.name}.html`);
  writeFileSync(out, html);
  return { data, url: pathToFileURL(out).href, html };
}

describe.skipIf(!haveChromium)('visualiser in Chromium', () => {
  let ctx: BrowserContext;
  let p: Page;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // A fresh profile directory each run.
    ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'dmabuf-lab-chromium-')), {
      executablePath: CHROMIUM,
      viewport: { width: 1400, height: 900 },
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    p = ctx.pages()[0] ?? (await ctx.newPage());
    // Nothing may be fetched: every request other than the page itself fails the test.
    await ctx.route(/^(?!file:|http:\/\/127\.0\.0\.1)/, (route) => {
      throw new Error(`the page fetched ${route.request().url()}`);
    });
  });

  afterAll(async () => {
    await ctx?.close();
  });

  test('default scenario from file://: a row per thread and fence context, fence bars, slices', async () => {
    const { data, url } = await page('scenarios/fence-merge.yaml');
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    const labels = await p.locator('#timeline .row-label').allTextContents();
    expect(labels).toEqual(data.rows.map((r) => r.label));
    expect(await p.locator('#timeline rect.fence').count()).toBe(data.fences.length);
    expect(await p.locator('#timeline rect.slice').count()).toBeGreaterThan(0);
    expect(await p.locator('#timeline .arrow').count()).toBeGreaterThan(0);
    await p.locator('#timeline rect.fence').first().click();
    await expect
      .poll(() => p.locator('#detail-body').textContent())
      .toContain(`fence ${data.fences[0].name} seqno`);
    await p.screenshot({ path: join(ARTIFACTS, 'timeline-fence-merge.png'), fullPage: true });
    // Playback moves the shared cursor (and the address) until paused.
    await p.locator('#play').click();
    await expect.poll(() => new URL(p.url()).hash).not.toMatch(/^#t=(0|\d{1,5})(&|$)/);
    await p.locator('#play').click();
    expect(await p.locator('#play').textContent()).toContain('play');
    expect(errors).toEqual([]);
  });

  test('d3 zoom: the wheel zooms around the pointer, a drag pans, both stay within the run', async () => {
    const { data, url } = await page('scenarios/fence-merge.yaml');
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    const view = () =>
      p.evaluate('[window.__viewer.state.v0, window.__viewer.state.v1]') as Promise<number[]>;
    const axis = () => p.locator('#timeline .axis .tick text').allTextContents();
    const before = await axis();
    const box = (await p.locator('#timeline').boundingBox())!;
    await p.mouse.move(box.x + box.width * 0.6, box.y + 60);
    await p.mouse.wheel(0, -400);
    await expect.poll(async () => (await view())[1] - (await view())[0]).toBeLessThan(data.duration);
    expect(await axis()).not.toEqual(before);
    const [v0, v1] = await view();
    await p.mouse.down();
    await p.mouse.move(box.x + box.width * 0.6 - 200, box.y + 60, { steps: 5 });
    await p.mouse.up();
    const [w0, w1] = await view();
    expect(w0).toBeGreaterThan(v0);
    expect(w1 - w0).toBeCloseTo(v1 - v0, 0);
    expect(w0).toBeGreaterThanOrEqual(0);
    expect(w1).toBeLessThanOrEqual(data.duration);
    await p.locator('#zoom-reset').click();
    expect(await view()).toEqual([0, data.duration]);
  });

  test('a report is a marker that opens the full report', async () => {
    const { data, url } = await page('scenarios/fence-deadlock.yaml');
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    expect(await p.locator('#timeline path.report').count()).toBe(data.reports.length);
    await p.locator('#timeline path.report').first().click();
    await expect.poll(() => p.locator('#detail-body').textContent()).toContain(data.reports[0].rule);
    await p.screenshot({ path: join(ARTIFACTS, 'report-fence-deadlock.png'), fullPage: true });
  });

  test('clicking a buffer selects it in both views and in the address; deep links restore it', async () => {
    const { data, url } = await page('scenarios/implicit-sync.yaml');
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    expect(await p.locator('tr.buffer').count()).toBe(data.buffers.length);
    await p.locator('tr.buffer[data-buf="0"]').click();
    await expect.poll(() => p.locator('tr.buffer.selected').count()).toBe(1);
    // Steps at the same instant share a bar; data-n says how many.
    const sel = await p.$$eval('#timeline rect.slice.sel', (l) =>
      l.reduce((n, e) => n + Number(e.getAttribute('data-n') ?? 1), 0),
    );
    expect(sel).toBe(data.buffers[0].uses.length);
    expect(new URL(p.url()).hash).toMatch(/buf=0/);
    await p.screenshot({ path: join(ARTIFACTS, 'buffers-implicit-sync.png'), fullPage: true });

    await p.goto(`${url}#t=1500000&buf=0`);
    await p.reload();
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    expect(await p.locator('#clock').textContent()).toBe('t = 1.5 ms');
    expect(await p.locator('tr.buffer.selected').count()).toBe(1);
    await p.locator('#next').click();
    expect(await p.locator('#clock').textContent()).toBe('t = 2 ms');
    expect(new URL(p.url()).hash).toBe('#t=2000000&buf=0');
  });

  test('topology view: a graph node for every device, and the p2pdma map type of a chosen pair', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dmabuf-lab-topo-')), 'topo.yaml');
    const text = readFileSync('scenarios/fence-merge.yaml', 'utf8').replace(
      /^processes:/m,
      'topology: workstation\nprocesses:',
    );
    writeFileSync(file, text);
    const { data, url } = await page(file);
    await p.goto(url);
    await p.waitForSelector('body[data-topology-ready]', { state: 'attached' });
    expect(await graphNodes(p, 'endpoint')).toEqual(data.topology!.devices.map((d) => d.id));
    const cell = p.locator('#topology td.pair').first();
    await cell.click();
    const from = await cell.getAttribute('data-from');
    const to = await cell.getAttribute('data-to');
    const pair = data.topology!.pairs.find((x) => x.from === from && x.to === to)!;
    await expect.poll(() => p.locator('#detail-body').textContent()).toContain(`map type ${pair.mapType}`);
    expect(await p.evaluate(`window.__viewer.cy().nodes('.on').map((n) => n.data('ref'))`)).toEqual([
      from,
      to,
    ]);
    // Tapping two devices of the graph shows their pair too.
    const [a, b] = data.topology!.devices.slice(-2).map((d) => d.id);
    const host = data.hosts[0].name;
    await p.evaluate(
      `['${a}', '${b}'].forEach((id) => window.__viewer.cy().getElementById('d:${host}:' + id).emit('tap'))`,
    );
    const tapped = data.topology!.pairs.find((x) => x.from === a && x.to === b)!;
    await expect.poll(() => p.locator('#detail-body').textContent()).toContain(`${a} → ${b}`);
    expect(await p.locator('#detail-body').textContent()).toContain(`map type ${tapped.mapType}`);
    await p.locator('#topology').screenshot({ path: join(ARTIFACTS, 'topology-workstation.png') });
  });

  test('seed flow: every device of every host, memory that follows the cursor, the RDMA transfer on the timeline and the graph, attachments', async () => {
    const { data, url } = await page(SEED_FLOW);
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message));
    await p.goto(url);
    await p.waitForSelector('body[data-topology-ready]', { state: 'attached' });
    // The topology graph: a host compound per host and a node per device of each.
    const hosts = data.hosts.map((h) => h.name);
    expect(hosts.length).toBeGreaterThan(0);
    expect(await graphNodes(p, 'host')).toEqual(hosts);
    const expected = data.hosts.flatMap((h) => h.matrix.devices.map((d) => `${h.name}/${d.id}`));
    expect(
      await p.evaluate(
        `window.__viewer.cy().nodes('[kind="endpoint"]').map((n) => n.data('host') + '/' + n.data('ref'))`,
      ),
    ).toEqual(expected);

    // The timeline: the RDMA transfer on its engine row, and the fences of the jobs.
    const rdma =
      data.transfers.find((x) => x.kind === 'fabric') ??
      data.transfers.find((x) => x.route !== 'device-internal')!;
    expect(rdma).toBeDefined();
    const labels = await p.locator('#timeline .row-label').allTextContents();
    expect(labels).toContain(data.rows[rdma.row].label);
    expect(await p.locator(`#timeline rect.xfer[data-i="${data.transfers.indexOf(rdma)}"]`).count()).toBe(1);
    expect(await p.locator('#timeline rect.fence').count()).toBe(data.fences.length);
    expect(data.fences.length).toBeGreaterThan(0);
    // Syscalls as thin slices on the threads' rows.
    expect(await p.locator('#timeline rect.call').count()).toBeGreaterThan(0);
    await p.locator('#timeline').screenshot({ path: join(ARTIFACTS, 'timeline-seed-flow.png') });

    // Memory in use: the device labels change with the cursor.
    const mem = data.memory.find((m) => m.node.startsWith('d:') && m.bytes.some((b) => b > 0))!;
    expect(mem).toBeDefined();
    const label = (t: number) =>
      p.evaluate(
        `(window.__viewer.setCursor(${t}), window.__viewer.cy().getElementById(${JSON.stringify(mem.node)}).data('display'))`,
      );
    const held = mem.t[mem.bytes.findIndex((b) => b > 0)];
    const freed = mem.t[mem.bytes.lastIndexOf(0)];
    const [during, after] = [await label(held), await label(Math.max(freed, held + 1))];
    expect(during).not.toBe(after);

    // A transfer edge while the transfer runs, none after.
    const xferEdges = (t: number) =>
      p.evaluate(
        `(window.__viewer.setCursor(${t}), window.__viewer.cy().edges('.xfer').map((e) => e.id() + ' ' + e.data('xfer')))`,
      );
    const mid = Math.floor((rdma.start + rdma.end) / 2);
    const during2 = (await xferEdges(mid)) as string[];
    expect(during2.map((e) => e.split(' ')[0])).toEqual(expect.arrayContaining(rdma.edges));
    expect(during2.join()).toMatch(/GB\/s/);
    await p.locator('#topology').screenshot({ path: join(ARTIFACTS, 'topology-seed-flow.png') });
    expect(await xferEdges(data.duration)).toEqual([]);

    // The buffers view: attachments with their importer and kind; a click selects the buffer everywhere.
    await p.evaluate(`window.__viewer.setCursor(${mid})`);
    const withAtt = data.buffers.find((b) =>
      b.attachments.some((x) => x.since <= mid && (x.until === null || x.until > mid)),
    )!;
    expect(withAtt).toBeDefined();
    const row = p.locator(`tr.buffer[data-buf="${withAtt.id}"]`);
    expect(await row.locator('.att').first().textContent()).toContain(withAtt.attachments[0].dev);
    await row.click();
    await expect.poll(() => p.locator('tr.buffer.selected').count()).toBe(1);
    expect(new URL(p.url()).hash).toMatch(new RegExp(`buf=${withAtt.id}`));
    const importers = withAtt.attachments.flatMap((x) => (x.endpoint ? [x.endpoint] : []));
    expect(await p.evaluate(`window.__viewer.cy().nodes('.buf').map((n) => n.data('ref'))`)).toEqual(
      expect.arrayContaining(importers),
    );
    await expect.poll(() => p.locator('#detail-body').textContent()).toContain('attachments:');
    await p.locator('#buffers').screenshot({ path: join(ARTIFACTS, 'buffers-seed-flow.png') });
    await p.screenshot({ path: join(ARTIFACTS, 'seed-flow.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  test('Open in Perfetto speaks the postMessage protocol of the UI; trace.json downloads the trace', async () => {
    const { url } = await page('scenarios/fence-merge.yaml');
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    expect(await p.locator('#download').getAttribute('download')).toBe('trace.json');
    expect(await p.locator('#download').getAttribute('href')).toMatch(/^blob:/);
    // No internet in tests: window.open returns a stand-in that records what it is sent.
    const got = await p.evaluate(async () => {
      const w = globalThis as unknown as {
        open(u: string): unknown;
        dispatchEvent(e: unknown): void;
        MessageEvent: new (t: string, i: { data: unknown; origin: string }) => unknown;
        document: { getElementById(s: string): { click(): void } };
      };
      const sent: unknown[] = [];
      let opened = '';
      w.open = (u: string) => {
        opened = u;
        return { postMessage: (m: unknown, origin: string) => sent.push({ m, origin }) };
      };
      w.document.getElementById('perfetto').click();
      await new Promise((r) => setTimeout(r, 250));
      w.dispatchEvent(new w.MessageEvent('message', { data: 'PONG', origin: 'https://ui.perfetto.dev' }));
      const last = sent.at(-1) as { m: { perfetto: { buffer: ArrayBuffer; title: string } }; origin: string };
      return {
        opened,
        pings: sent.filter((x) => (x as { m: unknown }).m === 'PING').length,
        title: last.m.perfetto.title,
        bytes: last.m.perfetto.buffer.byteLength,
        origin: last.origin,
      };
    });
    expect(got.opened).toBe('https://ui.perfetto.dev');
    expect(got.pings).toBeGreaterThan(0);
    expect(got.origin).toBe('https://ui.perfetto.dev');
    expect(got.title).toBe('fence-merge (seed 1)');
    expect(got.bytes).toBeGreaterThan(1000);
  });

  test('dmabuf-lab view serves the same page on 127.0.0.1', async () => {
    const { html } = await page('scenarios/fence-merge.yaml');
    const s = await serveView(html);
    try {
      await p.goto(s.url);
      await p.waitForSelector('body[data-ready]', { state: 'attached' });
      expect(await p.title()).toBe('fence-merge - dmabuf-lab');
    } finally {
      s.server.close();
    }
  });

  test('100k events: zoom, step and selection all respond on a large run (their times are printed; `npm run bench -- --filter visualiser` measures them)', async () => {
    const html = await renderHtml(bigRun(), null);
    const file = join(ARTIFACTS, 'big.html');
    writeFileSync(file, html);
    await p.goto(pathToFileURL(file).href);
    await p.waitForSelector('body[data-topology-ready]', { state: 'attached' });
    const times = await timeInteractions(p);
    console.log(`visualiser, 100k events: ms per interaction ${JSON.stringify(times)}`);
    await p.screenshot({ path: join(ARTIFACTS, 'big-100k.png') });
    for (const ms of Object.values(times)) expect(Number.isFinite(ms)).toBe(true);
  });
});
