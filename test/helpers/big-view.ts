/**
 * A synthetic visualiser run of 100k events (45k step slices, 15k fence lifetimes, 15k
 * wake-up arrows, 10k syscalls, 10k DMA transfers on 4 engines and 5k memory-in-use
 * changes on the workstation topology's graph), and a probe that times the page's
 * interactions in a browser: the median of 7 runs of each, from the click to the next
 * painted frame. Used by the browser test (which checks the page responds) and by the
 * visualiser benchmark (which reports the times).
 */
import type { Page } from 'playwright-core';
import { topologyPreset } from '../../src/kernel/pci/topology-presets.ts';
import { topoMatrix } from '../../src/report/topo-matrix.ts';
import { topologyGraph, type ViewData } from '../../src/report/view-data.ts';

/** A synthetic run of 100k events over 16 threads, 4 engines and 4 fence contexts, with a topology. */
export function bigRun(): ViewData {
  const rows: ViewData['rows'] = [];
  for (let i = 0; i < 16; i++)
    rows.push({ id: `t:${i}`, group: `p${i >> 2}`, label: `t${i}`, kind: 'thread' });
  const topo = topologyPreset('workstation');
  const graph = topologyGraph([{ name: 'host1', topology: topo }]);
  const devs = topo.endpoints.map((d) => d.id);
  for (let i = 0; i < 4; i++)
    rows.push({
      id: `e:host1:${devs[i % devs.length]}`,
      group: 'engines',
      label: `${devs[i % devs.length]} DMA`,
      kind: 'engine',
    });
  for (let i = 0; i < 4; i++) rows.push({ id: `f:${i}`, group: 'fences', label: `ctx ${i}`, kind: 'fence' });
  const slices: ViewData['slices'] = [];
  const fences: ViewData['fences'] = [];
  const arrows: ViewData['arrows'] = [];
  const calls: ViewData['calls'] = [];
  const transfers: ViewData['transfers'] = [];
  for (let i = 0; i < 45_000; i++) {
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
  for (let i = 0; i < 15_000; i++) {
    fences.push({
      row: 20 + (i % 4),
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
  for (let i = 0; i < 10_000; i++) {
    calls.push({
      row: i % 16,
      start: i * 4500,
      end: i * 4500 + 300,
      label: 'ioctl(DMA_BUF_IOCTL_SYNC)',
      ret: 0,
    });
    const src = devs[(i % 4) % devs.length];
    const dst = devs[(i + 1) % devs.length];
    const edges = graph.edges.filter((e) => e.target.endsWith(`:${src}`) || e.target.endsWith(`:${dst}`));
    transfers.push({
      kind: 'pcie',
      host: 'host1',
      flow: i + 1,
      src,
      dst,
      bytes: 1 << 20,
      route: 'switch',
      start: i * 4500,
      end: i * 4500 + 4000,
      state: 'done',
      gbps: 25,
      edges: edges.map((e) => e.id),
      row: 16 + (i % 4),
    });
  }
  const memory: ViewData['memory'] = devs.slice(0, 5).map((d) => ({
    host: 'host1',
    pool: `${d} vram`,
    node: `d:host1:${d}`,
    t: [],
    bytes: [],
  }));
  for (let i = 0; i < 5000; i++) {
    const m = memory[i % memory.length];
    m.t.push(i * 9000);
    m.bytes.push(((i * 7919) % 64) << 20);
  }
  return {
    version: 1,
    scenario: { name: 'big', file: 'synthetic' },
    seed: 1,
    status: 'completed',
    ok: true,
    duration: 45_000_000,
    events: slices.length + fences.length + arrows.length + calls.length + transfers.length + 5000,
    logHash: '0',
    rows,
    slices,
    fences,
    arrows,
    reports: [
      {
        t: 22_500_000,
        type: 'warning',
        rule: 'synthetic',
        message: 'a report',
        context: 't0',
        row: 0,
        objects: [],
      },
    ],
    topology: topoMatrix(topo),
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
        attachments: [
          {
            attach: 1,
            dev: '0000:02:00.0',
            endpoint: devs[1],
            dynamic: true,
            peer2peer: true,
            since: 0,
            until: null,
            pins: [],
            maps: [{ since: 0, until: null, nents: 1, pages: false }],
          },
        ],
        moves: [],
        mmaps: [],
      },
    ],
    hosts: [{ name: 'host1', matrix: topoMatrix(topo) }],
    graph,
    memory,
    transfers,
    calls,
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
