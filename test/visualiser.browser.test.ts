/**
 * The visualiser in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
 * playwright-core, headless, loading the self-contained page from file:// and from
 * `dmabuf-lab view`'s server. Checks the timeline (a row per thread, fence bars, report
 * markers), the buffers view (clicking a buffer selects it in both views and in the
 * address), deep links, and that a run of 100k events stays interactive (the times are
 * measured by `npm run bench -- --filter visualiser`, not asserted here).
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
import { bigRun, timeInteractions } from './helpers/big-view.ts';

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

  test('100k events: zoom, step and selection all respond on a large run (their times are printed; `npm run bench -- --filter visualiser` measures them)', async () => {
    const html = await renderHtml(bigRun(), null);
    const file = join(ARTIFACTS, 'big.html');
    writeFileSync(file, html);
    await p.goto(pathToFileURL(file).href);
    await p.waitForSelector('body[data-ready]', { state: 'attached' });
    const times = await timeInteractions(p);
    console.log(`visualiser, 100k events: ms per interaction ${JSON.stringify(times)}`);
    await p.screenshot({ path: join(ARTIFACTS, 'big-100k.png') });
    for (const ms of Object.values(times)) expect(Number.isFinite(ms)).toBe(true);
  });
});
