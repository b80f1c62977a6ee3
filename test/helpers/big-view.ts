/**
 * A synthetic visualiser run of 100k events (60k step slices, 20k fence lifetimes, 20k
 * wake-up arrows over 20 rows), and a probe that times the page's interactions in a
 * browser: the median of 7 runs of each, from the click to the next painted frame. Used
 * by the browser test (which checks the page responds) and by the visualiser benchmark
 * (which reports the times).
 */
import type { Page } from 'playwright-core';
import type { ViewData } from '../../src/report/view-data.ts';

/** A synthetic run of 100k events (slices, fences and arrows) over 20 threads. */
export function bigRun(): ViewData {
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

/**
 * The in-page probe, as source text: a function passed to `page.evaluate` would be
 * serialised with the helpers a TS loader injects (tsx adds `__name`), which the page
 * does not have.
 */
const PROBE = `(async () => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const time = async (sel) => {
    const ms = [];
    for (let i = 0; i < 7; i++) {
      const t = performance.now();
      document.querySelector(sel).click();
      await frame();
      ms.push(performance.now() - t);
    }
    return ms.sort((a, b) => a - b)[3];
  };
  return {
    zoomIn: await time('#zoom-in'),
    zoomOut: await time('#zoom-out'),
    next: await time('#next'),
    fit: await time('#zoom-reset'),
    select: await time('tr.buffer[data-buf="0"]'),
  };
})()`;

/** Milliseconds per interaction (median of 7, click to next frame) on the page loaded in `p`. */
export function timeInteractions(
  p: Page,
): Promise<Record<'zoomIn' | 'zoomOut' | 'next' | 'fit' | 'select', number>> {
  return p.evaluate(PROBE);
}
