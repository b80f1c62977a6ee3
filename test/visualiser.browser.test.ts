/**
 * The visualiser in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
 * playwright-core, headless, loading the self-contained page from file:// and from
 * `dmabuf-lab view`'s server. Checks the timeline (a row per thread, fence bars, report
 * markers), the buffers view (clicking a buffer selects it in both views and in the
 * address), deep links, and the time one interaction takes on a run of 100k events.
 * Screenshots go to test-artifacts/visualiser/.
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

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`visualiser browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

const ARTIFACTS = resolve('test-artifacts/visualiser');

async function page(file: string): Promise<{ data: ViewData; url: string; html: string }> {
  const r = loadScenarioFile(file);
  if (!r.ok) throw new Error(`${file} does not load`);
  const a = await runScenario(r.scenario);
  const data = buildViewData(a, r.scenario.topology);
  const html = await renderHtml(data, buildChromeTrace(a));
  const out = join(ARTIFACTS, `${r.scenario.name}.html`);
  writeFileSync(out, html);
  return { data, url: pathToFileURL(out).href, html };
}

/** A synthetic run of 100k events (slices, fences and arrows) over 20 threads. */
function bigRun(): ViewData {
  const rows: ViewData['rows'] = [];
  for (let i = 0; i < 16; i++)
    rows.push({ id: `t:${i}`, group: `p${i >> 2}`, label: `t${i}`, kind: 'thread' });
  for (let i = 0; i < 4; i++) rows.push({ id: `f:${i}`, group: 'fences', label: `ctx ${i}`, kind: 'fence' });
  const slices: ViewData['slices'] = [];
  const fences: ViewData['fences'] = [];
  const arrows: ViewData['arrows'] = [];
  for (let i = 0; i < 60_000; i++) {
    const start = i * 1000;
    slices.push({
      row: i % 16,
      start,
      end: start + 700,
      label: `step ${i}`,
      kind: 'sleep',
      outcome: 'ok',
      line: 1,
      bufs: i % 50 === 0 ? [0] : [],
    });
  }
  for (let i = 0; i < 20_000; i++) {
    fences.push({
      row: 16 + (i % 4),
      name: 'sw_sync:t',
      context: i % 4,
      seqno: i,
      start: i * 3000,
      end: i * 3000 + 2500,
      signalled: true,
      by: i % 16,
    });
    arrows.push({ t: i * 3000 + 2500, from: i % 16, to: (i + 1) % 16 });
  }
  return {
    version: 1,
    scenario: { name: 'big', file: 'synthetic' },
    seed: 1,
    status: 'completed',
    ok: true,
    duration: 60_000_000,
    events: slices.length + fences.length + arrows.length,
    logHash: '0',
    rows,
    slices,
    fences,
    arrows,
    reports: [
      {
        t: 30_000_000,
        type: 'warning',
        rule: 'synthetic',
        message: 'a report',
        context: 't0',
        row: 0,
        objects: [],
      },
    ],
    topology: null,
    buffers: [
      {
        id: 0,
        name: 'p0:buf',
        exporter: 'system heap',
        size: '4KiB',
        created: 0,
        released: null,
        holders: [{ process: 'p0', pid: 1, as: 'buf', since: 0, until: null }],
        uses: slices.flatMap((s, i) => (s.bufs.length ? [i] : [])),
      },
    ],
  };
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

  test('topology view: every device, and the p2pdma map type of a chosen pair', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dmabuf-lab-topo-')), 'topo.yaml');
    const text = readFileSync('scenarios/fence-merge.yaml', 'utf8').replace(
      /^processes:/m,
      'topology: workstation\nprocesses:',
    );
    writeFileSync(file, text);
    const { data, url } = await page(file);
    await p.goto(url);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    const devices = await p.locator('#topology .device b').allTextContents();
    expect(devices).toEqual(data.topology!.devices.map((d) => d.id));
    const cell = p.locator('#topology td.pair').first();
    await cell.click();
    const from = await cell.getAttribute('data-from');
    const to = await cell.getAttribute('data-to');
    const pair = data.topology!.pairs.find((x) => x.from === from && x.to === to)!;
    await expect.poll(() => p.locator('#detail-body').textContent()).toContain(`map type ${pair.mapType}`);
    expect(await p.locator('#topology .device.on').count()).toBe(2);
    await p.locator('#topology').screenshot({ path: join(ARTIFACTS, 'topology-workstation.png') });
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

  test('100k events: zoom, step and selection each take under 100 ms (median from click to next frame)', async () => {
    const html = await renderHtml(bigRun(), null);
    const file = join(ARTIFACTS, 'big.html');
    writeFileSync(file, html);
    await p.goto(pathToFileURL(file).href);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    const times = await p.evaluate(async () => {
      // The page's globals (this file is type-checked without the DOM library).
      const w = globalThis as unknown as {
        requestAnimationFrame(f: () => void): void;
        document: { querySelector(s: string): { click(): void } };
      };
      const frame = () => new Promise((r) => w.requestAnimationFrame(() => setTimeout(r, 0)));
      // The median of 7 runs of an interaction, from the click to the next frame.
      const time = async (f: () => void) => {
        const ms: number[] = [];
        for (let i = 0; i < 7; i++) {
          const t = performance.now();
          f();
          await frame();
          ms.push(performance.now() - t);
        }
        return ms.sort((a, b) => a - b)[3];
      };
      const click = (sel: string) => () => w.document.querySelector(sel).click();
      return {
        zoomIn: await time(click('#zoom-in')),
        zoomOut: await time(click('#zoom-out')),
        next: await time(click('#next')),
        fit: await time(click('#zoom-reset')),
        select: await time(click('tr.buffer[data-buf="0"]')),
      };
    });
    console.log(`visualiser, 100k events: ms per interaction ${JSON.stringify(times)}`);
    await p.screenshot({ path: join(ARTIFACTS, 'big-100k.png') });
    for (const ms of Object.values(times)) expect(ms).toBeLessThan(100);
  });
});
