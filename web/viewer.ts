/**
 * The dmabuf-lab visualiser: a timeline (one row per thread, kernel context, device DMA
 * engine and fence context; steps and syscalls as slices, transfers on their engine,
 * fence lifetimes as bars, wake-ups as arrows, rule reports as markers, a time cursor,
 * d3 zoom and pan over a d3 ns-to-s axis), a buffers view (every dma-buf, its exporter,
 * fd holders, attachments, mappings and life) and a topology view (every host's PCIe tree
 * as a Cytoscape compound graph laid out by ELK layered, each device with its memory in
 * use at the cursor, the transfers running at the cursor drawn on the links they cross
 * with their bandwidth, and the p2pdma map type of a chosen pair). The views share one
 * time cursor and one selected buffer, both kept in the address (`#t=<ns>&buf=<id>`) so
 * a link shows the same moment.
 *
 * It reads the run from `<script id="run-data">` (and the Chrome trace from
 * `<script id="trace-data">`) and fetches nothing, so the page works from file://.
 * The timeline's SVG is rebuilt per frame from what is visible, with at most one item
 * per pixel column and row, so it stays fast on large runs. `window.__viewer` exposes
 * the state and the Cytoscape instance to tests.
 */
import cytoscape, { type Core, type ElementDefinition } from 'cytoscape';
import elk from 'cytoscape-elk';
import { axisTop } from 'd3-axis';
import { type ScaleLinear, scaleLinear } from 'd3-scale';
import { select } from 'd3-selection';
import { type D3ZoomEvent, zoom as d3zoom, type ZoomBehavior, zoomIdentity } from 'd3-zoom';
import type { ViewData } from '../src/report/view-data.ts';

cytoscape.use(elk);

const CSS = `
:root{--bg:#fff;--fg:#1d2330;--muted:#6b7280;--line:#e5e7eb;--row:#f8fafc;--slice:#4f7fd8;--slice-bad:#d9822b;--fence:#2f9e6b;--fence-open:#a3a3a3;--err:#d3312f;--sel:#f2b700;--cursor:#c026d3}
*{box-sizing:border-box}body{margin:0;font:13px/1.35 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:8px;align-items:center;padding:8px 12px;border-bottom:1px solid var(--line);position:sticky;top:0;background:var(--bg);z-index:2}
header h1{font-size:15px;margin:0 12px 0 0}header .meta{color:var(--muted)}
button,.btn{font:inherit;padding:3px 9px;border:1px solid #cbd5e1;border-radius:4px;background:#f8fafc;color:inherit;cursor:pointer;text-decoration:none}
button:hover,.btn:hover{background:#eef2f7}#clock{font-variant-numeric:tabular-nums;min-width:110px;display:inline-block}
main{display:grid;grid-template-columns:minmax(0,1fr) 340px;gap:0}
section{padding:8px 12px}section h2{font-size:13px;margin:4px 0 6px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
#timeline-wrap{border:1px solid var(--line);border-radius:4px;overflow:hidden;cursor:crosshair;user-select:none}
#timeline text{font-size:11px;fill:var(--fg)}#timeline .axis text{fill:var(--muted)}#timeline .tick{stroke:var(--line)}
#timeline .row-bg{fill:var(--row)}#timeline .row-bg.odd{fill:#fff}#timeline .group{font-weight:600}
.slice{fill:var(--slice)}.slice.bad{fill:var(--slice-bad)}.slice.dim{opacity:.25}.slice.sel{fill:var(--sel);stroke:#8a6a00}
.fence{fill:var(--fence)}.fence.open{fill:var(--fence-open)}.fence.error{fill:var(--err)}.fence.dim{opacity:.35}
.arrow{stroke:#7c3aed;stroke-width:1;marker-end:url(#ah)}.report{fill:var(--err);cursor:pointer}.cursor{stroke:var(--cursor);stroke-width:1.5;pointer-events:none}.arrow,.rline{pointer-events:none}
#details{border-left:1px solid var(--line);min-height:300px;white-space:pre-wrap;word-break:break-word}
#details pre{white-space:pre-wrap;background:#f8fafc;border:1px solid var(--line);padding:6px;border-radius:4px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tr.buffer{cursor:pointer}tr.buffer:hover{background:#f1f5f9}tr.buffer.selected{background:#fff3c4}tr.buffer.future,tr.buffer.gone{color:var(--muted)}
.state{font-size:11px;padding:1px 6px;border-radius:8px;background:#e2e8f0}.state.live{background:#c7f0d8}
.empty{color:var(--muted)}
.devices{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}.device{border:1px solid #cbd5e1;border-radius:6px;padding:4px 8px;font-size:12px;background:#f8fafc}.device.on{background:#fff3c4;border-color:#c59b00}
.xfer{fill:#0e7490}.xfer.failed,.xfer.cancelled{fill:var(--err)}.xfer.active{fill:#67b7c9}.call{fill:#334155}.call.err{fill:var(--err)}
#cy{height:620px;border:1px solid var(--line);border-radius:4px;background:#fcfcfd}.topo-note{color:var(--muted);margin:4px 0}
.att{font-size:11px;white-space:nowrap}.tag{font-size:10px;padding:0 5px;border-radius:6px;background:#e2e8f0;margin-left:3px}.tag.p2p{background:#dbeafe}.tag.dyn{background:#ede9fe}.tag.pin{background:#fde68a}.tag.map{background:#c7f0d8}.tag.nopages{background:#fbcfe8}
.matrix{width:auto}.matrix td,.matrix th{font-size:12px;text-align:center;padding:3px 12px}.matrix td.pair{cursor:pointer}.matrix td.BUS{background:#d9f2e3}.matrix td.HB{background:#fdf0d0}.matrix td.NS{background:#f9d7d7}.matrix td.self{color:var(--muted)}
`;

const ROW_H = 20;
const LABEL_W = 230;
const AXIS_H = 22;
const MARK_H = 16;

const data = JSON.parse(document.getElementById('run-data')!.textContent!) as ViewData;
const traceText = document.getElementById('trace-data')?.textContent ?? null;
// Runs saved before these fields existed have none of them.
data.hosts ??= data.topology ? [{ name: 'host1', matrix: data.topology }] : [];
data.graph ??= null;
data.memory ??= [];
data.transfers ??= [];
data.calls ??= [];
for (const b of data.buffers) {
  b.attachments ??= [];
  b.moves ??= [];
  b.mmaps ??= [];
}

interface State {
  t: number;
  buf: number | null;
  v0: number;
  v1: number;
  playing: boolean;
}

// At least 1 µs, so a run that takes no virtual time still has an axis.
const end = Math.max(1000, data.duration);
const state: State = { t: 0, buf: null, v0: 0, v1: end, playing: false };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** ns as text: `1.5 ms`, `250 ns`. */
function fmt(ns: number): string {
  const a = Math.abs(ns);
  const [d, u] = a >= 1e9 ? [1e9, 's'] : a >= 1e6 ? [1e6, 'ms'] : a >= 1e3 ? [1e3, 'µs'] : [1, 'ns'];
  return `${Number((ns / d).toFixed(3))} ${u}`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, html = '') {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.innerHTML = html;
  return e;
}

// ---- layout ---------------------------------------------------------------------------

document.head.append(el('style', {}, CSS));
const app = document.getElementById('app')!;
const reportsCount = data.reports.length;
app.innerHTML = `
<header>
  <h1>${esc(data.scenario.name)}</h1>
  <span class="meta">${esc(data.scenario.file)} · seed ${data.seed} · ${esc(data.status)} · ${fmt(data.duration)} · ${data.events} events · <span id="report-count">${reportsCount} report(s)</span></span>
  <span style="flex:1"></span>
  <span id="clock"></span>
  <button id="play" title="play / pause (space)">▶ play</button>
  <button id="next" title="next event (n)">next event</button>
  <button id="next-report" title="jump to the next report (r)" ${reportsCount ? '' : 'disabled'}>next report</button>
  <button id="zoom-in" title="zoom in (+)">+</button><button id="zoom-out" title="zoom out (-)">−</button><button id="zoom-reset" title="whole run (0)">fit</button>
  <button id="perfetto" title="open the trace in ui.perfetto.dev">Open in Perfetto</button>
  <a class="btn" id="download" download="trace.json" href="#">trace.json</a>
</header>
<main>
  <div>
    <section><h2>Timeline</h2><div id="timeline-wrap"><svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg></div></section>
    <section><h2>Buffers</h2><div id="buffers"></div></section>
    <section><h2>Topology</h2><div id="topology"><div id="topo-head"></div><div id="cy"></div><div id="topo-matrix"></div></div></section>
  </div>
  <section id="details"><h2>Details</h2><div id="detail-body" class="empty">Click a slice, fence, report or buffer.</div></section>
</main>`;

const svg = document.getElementById('timeline') as unknown as SVGSVGElement;
const wrap = document.getElementById('timeline-wrap')!;
const detail = document.getElementById('detail-body')!;

// Rows with group headers: each group gets a header line, then its rows.
interface Line {
  y: number;
  row: number; // -1 for a group header
  text: string;
}
const lines: Line[] = [];
const rowY: number[] = [];
{
  let y = AXIS_H + MARK_H;
  let group = '';
  data.rows.forEach((r, i) => {
    if (r.group !== group) {
      group = r.group;
      lines.push({ y, row: -1, text: group });
      y += ROW_H;
    }
    lines.push({ y, row: i, text: r.label });
    rowY[i] = y;
    y += ROW_H;
  });
  svg.setAttribute('height', String(y + 4));
}
const height = Number(svg.getAttribute('height'));

let curW = 0;
/** The timeline's width (measured once per render: reading layout per item is slow). */
function width(): number {
  return curW || measure();
}
function measure(): number {
  curW = Math.max(400, wrap.clientWidth);
  return curW;
}
/** The whole run on the plot's pixels; d3-zoom's transform rescales it to the view. */
function baseScale(): ScaleLinear<number, number> {
  return scaleLinear()
    .domain([0, end])
    .range([LABEL_W, width() - 40]);
}
/** The visible span on the plot's pixels. */
function viewScale(): ScaleLinear<number, number> {
  return scaleLinear()
    .domain([state.v0, state.v1])
    .range([LABEL_W, width() - 40]);
}
function tAt(px: number): number {
  return viewScale().invert(px);
}

// ---- the timeline ---------------------------------------------------------------------

/**
 * Narrow bars closer than this many pixels merge into one (`N items: zoom in`), so a row
 * draws at most one bar per MERGE_GAP pixels of dense activity.
 */
const MERGE_GAP = 6;

/** A bar to draw; bars narrower than 3 pixels within MERGE_GAP pixels of one of the same class merge. */
interface Bar {
  cls: string;
  fence: boolean;
  i: number;
  x0: number;
  x1: number;
  y: number;
  h: number;
  n: number;
}

/** Collects bars per row, merging sub-pixel neighbours so each row draws at most ~1 bar per pixel. */
function barSet() {
  const bars: Bar[] = [];
  const last = new Map<number, Bar>();
  return {
    bars,
    /** `key`: a number per row and layer. Hot path: no allocation unless a bar is new. */
    add(
      key: number,
      cls: string,
      fence: boolean,
      i: number,
      x0: number,
      x1: number,
      y: number,
      h: number,
    ): void {
      if (x1 < LABEL_W || x0 > curW) return;
      const prev = last.get(key);
      if (prev !== undefined && prev.cls === cls && x1 - x0 < 3 && x0 <= prev.x1 + MERGE_GAP) {
        if (x1 > prev.x1) prev.x1 = x1;
        prev.n++;
        return;
      }
      const bar = { cls, fence, i, x0, x1, y, h, n: 1 };
      bars.push(bar);
      last.set(key, bar);
    },
  };
}

const MAX_ARROWS = 400;

/**
 * Finds the items of a list that can be visible in [v0, v1] without looking at the
 * others: lists are in start order (the run records them so; checked here, else every
 * item is looked at), and `maxEnd[i]` is the latest end among items 0..i, so items
 * before the first `maxEnd >= v0` all ended before the view.
 */
class SpanIndex {
  private readonly starts: Float64Array;
  private readonly maxEnd: Float64Array;
  private readonly sorted: boolean;

  constructor(items: readonly { start: number; end: number }[]) {
    this.starts = new Float64Array(items.length);
    this.maxEnd = new Float64Array(items.length);
    let sorted = true;
    let m = Number.NEGATIVE_INFINITY;
    items.forEach((it, i) => {
      this.starts[i] = it.start;
      m = Math.max(m, it.end);
      this.maxEnd[i] = m;
      if (i > 0 && it.start < items[i - 1].start) sorted = false;
    });
    this.sorted = sorted;
  }

  /** [first, last) indexes to look at for the view [v0, v1]. */
  range(v0: number, v1: number): [number, number] {
    const n = this.starts.length;
    if (!this.sorted) return [0, n];
    return [lowerBound(this.maxEnd, v0), upperBound(this.starts, v1)];
  }
}

/** First index with a[i] >= v. */
function lowerBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index with a[i] > v. */
function upperBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const sliceIdx = new SpanIndex(data.slices);
const fenceIdx = new SpanIndex(data.fences);
const xferIdx = new SpanIndex(data.transfers);
const callIdx = new SpanIndex(data.calls);

function render(): void {
  svg.setAttribute('width', String(measure()));
  const sel = state.buf;
  const out: string[] = [
    '<defs><marker id="ah" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L6,3L0,6z" fill="#7c3aed"/></marker><clipPath id="plot"><rect x="',
    String(LABEL_W),
    `" y="0" width="${width() - LABEL_W}" height="${height}"/></clipPath></defs>`,
  ];
  lines.forEach((l, i) => {
    out.push(
      `<rect class="row-bg${i % 2 ? ' odd' : ''}" x="0" y="${l.y}" width="${width()}" height="${ROW_H}"/>`,
      l.row < 0
        ? `<text class="group" x="6" y="${l.y + 14}">${esc(l.text)}</text>`
        : `<text class="row-label" data-row="${l.row}" x="18" y="${l.y + 14}">${esc(l.text)}</text>`,
    );
  });
  const scale = viewScale();
  const tickValues = scale.ticks(Math.max(2, Math.floor((width() - LABEL_W) / 110)));
  for (const t of tickValues) {
    const px = scale(t);
    out.push(`<line class="tick" x1="${px}" x2="${px}" y1="${AXIS_H}" y2="${height}"/>`);
  }
  out.push(`<g class="axis" transform="translate(0,${AXIS_H})"></g><g clip-path="url(#plot)">`);
  const set = barSet();
  // A little margin: bars are at least 2 px wide.
  const pad = ((state.v1 - state.v0) / Math.max(1, width())) * 4;
  const [s0, n] = sliceIdx.range(state.v0 - pad, state.v1 + pad);
  // x(t) = k * t + c, hoisted out of the loops.
  const k = (curW - LABEL_W - 40) / (state.v1 - state.v0);
  const c = LABEL_W - state.v0 * k;
  const sliceCls = sel === null ? ['slice', 'slice bad'] : ['slice dim', 'slice bad dim'];
  const selCls = ['slice sel', 'slice bad sel'];
  for (let i = s0; i < n; i++) {
    const s = data.slices[i];
    const bad = s.outcome !== 'ok' && s.outcome !== 'expected-errno' ? 1 : 0;
    const on = sel !== null && s.bufs.length > 0 && s.bufs.includes(sel);
    // Selected and other slices merge separately, so a selection does not break up runs.
    set.add(
      s.row * 4 + (on ? 1 : 0),
      on ? selCls[bad] : sliceCls[bad],
      false,
      i,
      k * s.start + c,
      k * s.end + c,
      rowY[s.row] + 3,
      ROW_H - 6,
    );
  }
  const dim = sel === null ? '' : ' dim';
  const fenceCls = [`fence${dim}`, `fence open${dim}`, `fence error${dim}`];
  const [f0, f1] = fenceIdx.range(state.v0 - pad, state.v1 + pad);
  for (let i = f0; i < f1; i++) {
    const f = data.fences[i];
    const cls = fenceCls[f.error ? 2 : f.signalled ? 0 : 1];
    set.add(f.row * 4 + 2, cls, true, i, k * f.start + c, k * f.end + c, rowY[f.row] + 5, ROW_H - 10);
  }
  const xferCls: Record<string, string> = { done: 'xfer', active: 'xfer active', failed: 'xfer failed' };
  const [x0, x1] = xferIdx.range(state.v0 - pad, state.v1 + pad);
  for (let i = x0; i < x1; i++) {
    const tr = data.transfers[i];
    set.add(
      tr.row * 4 + 3,
      xferCls[tr.state] ?? 'xfer failed',
      false,
      i,
      k * tr.start + c,
      k * tr.end + c,
      rowY[tr.row] + 4,
      ROW_H - 8,
    );
  }
  const [c0, c1] = callIdx.range(state.v0 - pad, state.v1 + pad);
  for (let i = c0; i < c1; i++) {
    const cl = data.calls[i];
    const bad = typeof cl.ret === 'number' && cl.ret < 0;
    set.add(
      cl.row * 4 + 3,
      bad ? 'call err' : 'call',
      false,
      i,
      k * cl.start + c,
      k * cl.end + c,
      rowY[cl.row] + ROW_H - 5,
      4,
    );
  }
  for (const b of set.bars) {
    const w = Math.max(2, b.x1 - b.x0);
    // Tooltips only on bars wide enough to point at (half the elements on busy runs).
    let title = '';
    if (w < 4) title = '';
    else if (b.n > 1) title = `${b.n} items: zoom in`;
    else if (b.fence) title = `${data.fences[b.i].name} seqno ${data.fences[b.i].seqno}`;
    else if (b.cls.startsWith('xfer')) title = xferText(data.transfers[b.i]);
    else if (b.cls.startsWith('call')) title = `${data.calls[b.i].label} = ${data.calls[b.i].ret ?? '…'}`;
    else title = data.slices[b.i].label;
    out.push(
      `<rect class="${b.cls}" data-i="${b.i}"${b.n > 1 ? ` data-n="${b.n}"` : ''} x="${b.x0.toFixed(1)}" y="${b.y}" width="${w.toFixed(1)}" height="${b.h}"${b.fence ? ' rx="3"' : ''}>${title ? `<title>${esc(title)}</title>` : ''}</rect>`,
    );
  }
  const W = width();
  const arrows: string[] = [];
  for (const a of data.arrows) {
    const px = k * a.t + c;
    if (px < LABEL_W || px > W) continue;
    if (arrows.length === MAX_ARROWS) {
      arrows.length = 0;
      break;
    }
    const y0 = rowY[a.from] + ROW_H / 2;
    const y1 = rowY[a.to] + (rowY[a.to] > rowY[a.from] ? 2 : ROW_H - 2);
    arrows.push(
      `<line class="arrow" x1="${px.toFixed(1)}" y1="${y0}" x2="${(px + 6).toFixed(1)}" y2="${y1}"/>`,
    );
  }
  out.push(...arrows);
  data.reports.forEach((r, i) => {
    const px = k * r.t + c;
    if (px < LABEL_W - 1 || px > width()) return;
    const y = AXIS_H + 1;
    out.push(
      `<path class="report" data-i="${i}" d="M${px - 6},${y}L${px + 6},${y}L${px},${y + MARK_H - 3}z"><title>${esc(r.rule)}</title></path>`,
    );
    if (r.row >= 0)
      out.push(
        `<line class="rline" x1="${px}" x2="${px}" y1="${AXIS_H + MARK_H}" y2="${rowY[r.row] + ROW_H}" stroke="var(--err)" stroke-dasharray="2,2"/>`,
      );
  });
  const cx = k * state.t + c;
  out.push(`<line class="cursor" x1="${cx}" x2="${cx}" y1="${AXIS_H - 6}" y2="${height}"/></g>`);
  svg.innerHTML = out.join('');
  const axis = axisTop<number>(scale).tickValues(tickValues).tickFormat(fmt).tickSizeOuter(0);
  select(svg).select<SVGGElement>('g.axis').call(axis);
  document.getElementById('clock')!.textContent = `t = ${fmt(state.t)}`;
}

/** A transfer as text: `accel0 -> nic0 1MiB, switch, 24.1 GB/s`. */
function xferText(tr: ViewData['transfers'][number]): string {
  const bw = tr.gbps === null ? '' : `, ${tr.gbps.toFixed(1)} GB/s`;
  return `${tr.src} → ${tr.dst} ${bytesText(tr.bytes)}, ${tr.route}${bw} (${tr.state})`;
}

/** Bytes as text: `4 KiB`, `1.5 GiB`. */
function bytesText(n: number): string {
  const [d, u] =
    n >= 2 ** 30 ? [2 ** 30, 'GiB'] : n >= 2 ** 20 ? [2 ** 20, 'MiB'] : n >= 1024 ? [1024, 'KiB'] : [1, 'B'];
  return `${Number((n / d).toFixed(2))} ${u}`;
}

// ---- the buffers view -----------------------------------------------------------------

function bufferState(b: ViewData['buffers'][number]): string {
  if (state.t < b.created) return 'future';
  if (b.released !== null && state.t >= b.released) return 'gone';
  return 'live';
}

/** An attachment as text with tags: importer, dynamic or not, P2P or not, pinned and mapped at the cursor. */
function attachmentHtml(x: ViewData['buffers'][number]['attachments'][number]): string {
  const t = state.t;
  const live = t >= x.since && (x.until === null || t < x.until);
  const pinned = x.pins.some((p) => t >= p.since && (p.until === null || t < p.until));
  const map = x.maps.find((m) => t >= m.since && (m.until === null || t < m.until));
  const tags = [
    x.dynamic ? '<span class="tag dyn">dynamic</span>' : '<span class="tag">static</span>',
    x.peer2peer ? '<span class="tag p2p">peer2peer</span>' : '',
    pinned ? '<span class="tag pin">pinned</span>' : '',
    map
      ? `<span class="tag map">mapped ${map.nents} ent</span>${map.pages ? '' : '<span class="tag nopages">no pages</span>'}`
      : '',
  ].join('');
  const when = `${fmt(x.since)} → ${x.until === null ? 'end' : fmt(x.until)}, ${x.maps.length} map(s)`;
  return `<div class="att${live ? '' : ' empty'}" data-attach="${x.attach}" title="${esc(when)}">${esc(x.dev)}${x.endpoint ? ` (${esc(x.endpoint)})` : ''}${tags}</div>`;
}

/** The buffer's life over the run as a small bar: alive from export to release, its attachments and mappings below, the cursor. */
function lifeBar(b: ViewData['buffers'][number]): string {
  const W = 120;
  const px = (t: number) => ((Math.min(end, Math.max(0, t)) / end) * W).toFixed(1);
  const span = (a: number, z: number | null, y: number, h: number, fill: string) =>
    `<rect x="${px(a)}" y="${y}" width="${Math.max(1, Number(px(z ?? end)) - Number(px(a))).toFixed(1)}" height="${h}" fill="${fill}"/>`;
  const parts = [span(0, end, 0, 12, '#eef2f7'), span(b.created, b.released, 0, 6, '#2f9e6b')];
  for (const a of b.attachments) {
    parts.push(span(a.since, a.until, 7, 2, '#7c3aed'));
    for (const m of a.maps) parts.push(span(m.since, m.until, 10, 2, '#0e7490'));
  }
  parts.push(`<line x1="${px(state.t)}" x2="${px(state.t)}" y1="0" y2="12" stroke="#c026d3"/>`);
  return `<br><svg class="life" width="${W}" height="12" aria-label="life over the run">${parts.join('')}</svg>`;
}

function renderBuffers(): void {
  const box = document.getElementById('buffers')!;
  if (data.buffers.length === 0) {
    box.innerHTML = '<p class="empty">No dma-buf in this run.</p>';
    return;
  }
  const rows = data.buffers.map((b) => {
    const st = bufferState(b);
    const holders = b.holders
      .map(
        (h) =>
          `${esc(h.process)} (${h.pid}) as ${esc(h.as)}${h.until === null ? '' : `, closed at ${fmt(h.until)}`}`,
      )
      .join('<br>');
    const atts = b.attachments.map(attachmentHtml).join('') || '<span class="empty">none</span>';
    const extra = [
      b.moves.length ? `${b.moves.length} move_notify` : '',
      b.mmaps.length ? `${b.mmaps.length} mmap` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return `<tr class="buffer ${st}${state.buf === b.id ? ' selected' : ''}" data-buf="${b.id}"><td>${b.id}${b.ino === undefined ? '' : `<br><span class="empty">ino ${b.ino}</span>`}</td><td>${b.host && data.hosts.length > 1 ? `<b>${esc(b.host)}</b> ` : ''}${esc(b.name)}</td><td>${esc(b.exporter)}</td><td>${esc(b.size)}</td><td>${holders}</td><td class="atts">${atts}${extra ? `<div class="empty">${extra}</div>` : ''}</td><td>${fmt(b.created)} → ${b.released === null ? 'end' : fmt(b.released)}${lifeBar(b)}</td><td>${b.uses.length}</td><td><span class="state ${st}">${st === 'future' ? 'not yet' : st === 'gone' ? 'released' : 'live'}</span></td></tr>`;
  });
  box.innerHTML = `<table><thead><tr><th>#</th><th>buffer</th><th>exporter</th><th>size</th><th>fd holders</th><th>attachments (at cursor)</th><th>life</th><th>uses</th><th>at cursor</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

// ---- the topology view ----------------------------------------------------------------

let cy: Core | null = null;
/** Per graph node, its memory series (indexes into data.memory). */
const memByNode = new Map<string, number[]>();
data.memory.forEach((m, i) => {
  memByNode.set(m.node, [...(memByNode.get(m.node) ?? []), i]);
});

/** Bytes a memory series holds at `t`. */
function memAt(m: ViewData['memory'][number], t: number): number {
  let lo = 0;
  let hi = m.t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (m.t[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : m.bytes[lo - 1];
}

/** The memory line of a node at the cursor (`hbm 1 GiB`), or ''. */
function memLabel(node: string): string {
  const list = memByNode.get(node);
  if (!list) return '';
  return list
    .map((i) => `${data.memory[i].pool.split(' ').at(-1)} ${bytesText(memAt(data.memory[i], state.t))}`)
    .join('\n');
}

const CY_STYLE = [
  {
    selector: 'node',
    style: {
      label: 'data(display)',
      'text-wrap': 'wrap',
      'text-valign': 'center',
      'text-halign': 'center',
      'font-size': 10,
      shape: 'round-rectangle',
      'background-color': '#f1f5f9',
      'border-width': 1,
      'border-color': '#94a3b8',
      width: 'data(w)',
      height: 'data(h)',
    },
  },
  {
    selector: ':parent',
    style: {
      'text-valign': 'top',
      'text-halign': 'center',
      'background-opacity': 0.35,
      'font-weight': 'bold',
      padding: '12px',
    },
  },
  { selector: 'node[kind="host"]', style: { 'background-color': '#e0f2fe', 'border-color': '#0284c7' } },
  { selector: 'node[kind="socket"]', style: { 'background-color': '#f1f5f9' } },
  {
    selector: 'node[kind="root-complex"]',
    style: { 'background-color': '#fef9c3', 'border-color': '#ca8a04' },
  },
  { selector: 'node[kind="switch"]', style: { 'background-color': '#ede9fe', 'border-color': '#7c3aed' } },
  { selector: 'node[kind="root-port"]', style: { 'background-color': '#fef3c7' } },
  { selector: 'node[kind="endpoint"]', style: { 'background-color': '#ffffff', 'border-color': '#334155' } },
  { selector: 'node[kind="fabric"]', style: { shape: 'hexagon', 'background-color': '#dcfce7' } },
  {
    selector: 'node.on',
    style: { 'border-width': 3, 'border-color': '#c59b00', 'background-color': '#fff3c4' },
  },
  { selector: 'node.buf', style: { 'border-width': 3, 'border-color': '#f2b700' } },
  {
    selector: 'edge',
    style: {
      width: 2,
      'line-color': '#94a3b8',
      'curve-style': 'bezier',
      label: 'data(label)',
      'font-size': 8,
      color: '#64748b',
      'text-background-color': '#fff',
      'text-background-opacity': 0.8,
    },
  },
  { selector: 'edge[kind="socket-link"]', style: { 'line-style': 'dashed' } },
  { selector: 'edge[kind="fabric"]', style: { 'line-color': '#16a34a' } },
  {
    selector: 'edge.xfer',
    style: {
      width: 5,
      'line-color': '#0e7490',
      color: '#0e7490',
      'font-size': 10,
      'font-weight': 'bold',
      label: 'data(xfer)',
    },
  },
];

function renderTopology(): void {
  const head = document.getElementById('topo-head')!;
  const g = data.graph;
  if (!g) {
    document.getElementById('cy')!.remove();
    document.body.setAttribute('data-topology-ready', '1');
    if (data.hosts.length > 0) {
      head.innerHTML =
        '<p class="topo-note">This run was saved without its topology graph; the p2pdma pairs:</p>';
      renderMatrix();
      return;
    }
    head.innerHTML =
      '<p class="empty">The scenario names no topology (it ran on the default machine); add <code>topology: workstation</code> (or another preset) to see one.</p>';
    return;
  }
  head.innerHTML = `<p class="topo-note">${data.hosts.map((h) => `<b>${esc(h.name)}</b>: ${esc(h.matrix.name)} · ${esc(h.matrix.cpu)}`).join(' &nbsp; ')} · memory in use and transfers at the cursor; click two devices for their p2pdma map type; scroll to zoom, drag to pan.</p>`;
  const els: ElementDefinition[] = [
    ...g.nodes.map((n) => ({
      group: 'nodes' as const,
      data: {
        id: n.id,
        ...(n.parent ? { parent: n.parent } : {}),
        kind: n.kind,
        label: n.label,
        ref: n.ref,
        host: n.host,
        ...boxOf(n.label),
      },
    })),
    ...g.edges.map((e) => ({
      group: 'edges' as const,
      data: { id: e.id, source: e.source, target: e.target, kind: e.kind, label: e.label, xfer: '' },
    })),
  ];
  cy = cytoscape({
    container: document.getElementById('cy'),
    elements: els,
    style: CY_STYLE as unknown as cytoscape.StylesheetJson,
    boxSelectionEnabled: false,
    autounselectify: true,
  });
  updateTopology();
  const layout = cy.layout({
    name: 'elk',
    nodeDimensionsIncludeLabels: true,
    fit: true,
    padding: 16,
    elk: {
      algorithm: 'layered',
      'elk.direction': 'RIGHT',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.layered.spacing.nodeNodeBetweenLayers': 30,
      'elk.spacing.nodeNode': 20,
    },
  } as cytoscape.LayoutOptions);
  layout.one('layoutstop', () => document.body.setAttribute('data-topology-ready', '1'));
  layout.run();
  cy.on('tap', 'node[kind="endpoint"]', (e) => pickDevice(e.target.data('host'), e.target.data('ref')));
  renderMatrix();
}

/** A node's label and the box that fits it (10 px text). */
function boxOf(display: string): { display: string; w: number; h: number } {
  const lines = display.split('\n');
  return { display, w: 12 + 6 * Math.max(...lines.map((l) => l.length)), h: 8 + 13 * lines.length };
}

/** Memory labels, the transfers at the cursor and the selected buffer's importers on the graph. */
function updateTopology(): void {
  if (!cy) return;
  const t = state.t;
  cy.batch(() => {
    cy!.nodes().forEach((n) => {
      const mem = memLabel(n.id());
      const display = mem ? `${n.data('label')}\n${mem}` : n.data('label');
      if (n.data('display') !== display) n.data(boxOf(display));
    });
    const bw = new Map<string, number>();
    const [x0, x1] = xferIdx.range(t, t);
    for (let i = x0; i < x1; i++) {
      const tr = data.transfers[i];
      if (t < tr.start || t >= tr.end) continue;
      for (const e of tr.edges) bw.set(e, (bw.get(e) ?? 0) + (tr.gbps ?? 0));
    }
    cy!.edges().forEach((e) => {
      const v = bw.get(e.id());
      e.toggleClass('xfer', v !== undefined);
      const label = v === undefined ? '' : `${v.toFixed(1)} GB/s`;
      if (e.data('xfer') !== label) e.data('xfer', label);
    });
    const importers = new Set<string>();
    const b = state.buf === null ? undefined : data.buffers[state.buf];
    for (const a of b?.attachments ?? []) if (a.endpoint) importers.add(a.endpoint);
    cy!.nodes('[kind="endpoint"]').forEach((n) => {
      n.toggleClass('buf', importers.has(n.data('ref')));
    });
  });
}

let picked: { host: string; id: string } | null = null;

/** Picks a device; the second pick of the same host shows the pair's map type. */
function pickDevice(host: string, id: string): void {
  if (picked === null || picked.host !== host || picked.id === id) {
    picked = { host, id };
    highlight(host, [id]);
    return;
  }
  const from = picked.id;
  picked = null;
  showPair(host, from, id);
}

function highlight(host: string, ids: string[]): void {
  cy?.nodes('[kind="endpoint"]').forEach((n) => {
    n.toggleClass('on', n.data('host') === host && ids.includes(n.data('ref')));
  });
}

function showPair(host: string, from: string, to: string): void {
  const h = data.hosts.find((x) => x.name === host) ?? data.hosts[0];
  const p = h?.matrix.pairs.find((x) => x.from === from && x.to === to);
  if (!p) return;
  highlight(h.name, [from, to]);
  show(
    `<b>${esc(p.from)} → ${esc(p.to)}</b> (${esc(h.name)})\nmap type ${esc(p.mapType)}, distance ${p.distance}\nroute: ${esc(p.route)}\n${p.unsupported === null ? `1 GiB in ${fmt(p.timeNs ?? 0)}, ${p.bandwidthGBps?.toFixed(2)} GB/s` : `cannot run: ${esc(p.unsupported)}`}`,
  );
}

function renderMatrix(): void {
  const box = document.getElementById('topo-matrix')!;
  box.innerHTML = data.hosts
    .map((h) => {
      const t = h.matrix;
      const ids = t.devices.map((d) => d.id);
      const cell = new Map(t.pairs.map((p) => [`${p.from}\u0000${p.to}`, p]));
      const rows = ids
        .map((a) => {
          const cells = ids
            .map((b) => {
              if (a === b) return '<td class="self">X</td>';
              const p = cell.get(`${a}\u0000${b}`)!;
              return `<td class="pair ${p.code}" data-host="${esc(h.name)}" data-from="${esc(a)}" data-to="${esc(b)}" title="${esc(p.mapType)}">${p.code}${p.bandwidthGBps === null ? '' : ` ${p.bandwidthGBps.toFixed(1)}`}</td>`;
            })
            .join('');
          return `<tr><th>${esc(a)}</th>${cells}</tr>`;
        })
        .join('');
      return `<details${data.hosts.length === 1 ? ' open' : ''}><summary>${esc(h.name)}: p2pdma map type, provider (row) to client (column), and predicted GB/s of 1 GiB; click a pair</summary>
<table class="matrix"><thead><tr><th></th>${ids.map((id) => `<th>${esc(id)}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>
<details><summary>tree</summary><pre>${esc(t.tree)}</pre></details></details>`;
    })
    .join('');
}

document.getElementById('topology')!.addEventListener('click', (e) => {
  const td = (e.target as Element).closest('td.pair');
  if (!td) return;
  showPair(td.getAttribute('data-host')!, td.getAttribute('data-from')!, td.getAttribute('data-to')!);
});

// ---- details --------------------------------------------------------------------------

function show(html: string): void {
  detail.classList.remove('empty');
  detail.innerHTML = html;
}

function showBuffer(id: number): void {
  const b = data.buffers[id];
  const uses = b.uses
    .slice(0, 500)
    .map((i) => data.slices[i])
    .map((s) => `${fmt(s.start)}  ${esc(data.rows[s.row].group)}: ${esc(s.label)}`)
    .join('\n');
  const atts = b.attachments
    .map(
      (a) =>
        `${esc(a.dev)}${a.endpoint ? ` (${esc(a.endpoint)})` : ''}: ${a.dynamic ? 'dynamic' : 'static'}, ${a.peer2peer ? 'peer2peer' : 'no p2p'}, ${fmt(a.since)} → ${a.until === null ? 'end' : fmt(a.until)}${a.pins.map((p) => `\n  pinned ${fmt(p.since)} → ${p.until === null ? 'end' : fmt(p.until)}`).join('')}${a.maps.map((m) => `\n  mapped ${m.nents} entries${m.pages ? '' : ' (no struct pages)'} ${fmt(m.since)} → ${m.until === null ? 'end' : fmt(m.until)}`).join('')}`,
    )
    .join('\n');
  show(
    `<b>buffer ${b.id}: ${esc(b.name)}</b>\n${esc(b.exporter)}, ${esc(b.size)}${b.ino === undefined ? '' : `, inode ${b.ino}`}\ncreated ${fmt(b.created)}, released ${b.released === null ? 'never (held at the end)' : fmt(b.released)}${atts ? `\nattachments:\n${atts}` : ''}${b.moves.length ? `\nmove_notify at ${b.moves.map(fmt).join(', ')}` : ''}\n<pre>${uses}${b.uses.length > 500 ? `\n... and ${b.uses.length - 500} more` : ''}</pre>`,
  );
}

// ---- state, address and interactions --------------------------------------------------

function writeHash(): void {
  const h = `#t=${Math.round(state.t)}${state.buf === null ? '' : `&buf=${state.buf}`}`;
  if (location.hash !== h) history.replaceState(null, '', h);
}

function readHash(): void {
  const p = new URLSearchParams(location.hash.slice(1));
  const t = Number(p.get('t'));
  if (p.has('t') && Number.isFinite(t)) state.t = Math.min(Math.max(0, t), end);
  const b = p.get('buf');
  state.buf = b !== null && data.buffers[Number(b)] ? Number(b) : null;
}

function update(): void {
  writeHash();
  render();
  renderBuffers();
  updateTopology();
}

// d3-zoom owns the view: its transform (x only) maps the whole run onto the visible span.
// Wheel zooms around the pointer, drag pans; the buttons and keys set the transform.
const zoomer: ZoomBehavior<SVGSVGElement, unknown> = d3zoom<SVGSVGElement, unknown>()
  .scaleExtent([1, Math.max(1, end / 10)])
  .filter((e: Event) => {
    if (e.type === 'wheel') return !(e as WheelEvent).shiftKey;
    if (e.type === 'dblclick') return false;
    return !(e as MouseEvent).button;
  })
  .on('zoom', (e: D3ZoomEvent<SVGSVGElement, unknown>) => {
    const [v0, v1] = e.transform.rescaleX(baseScale()).domain();
    state.v0 = Math.max(0, v0);
    state.v1 = Math.min(end, Math.max(state.v0 + 1, v1));
    render();
  });
const svgSel = select(svg);
/** Gestures stay within the run: the plot's pixels are the zoom's extent and translate extent. */
function zoomExtent(): void {
  const box: [[number, number], [number, number]] = [
    [LABEL_W, 0],
    [width() - 40, height],
  ];
  zoomer.extent(box).translateExtent(box);
}
zoomExtent();
svgSel.call(zoomer).on('dblclick.zoom', null);

/** Shows the span [v0, v1] (clamped to the run). */
function setView(v0: number, v1: number): void {
  const span = Math.min(end, Math.max(10, v1 - v0));
  v0 = Math.max(0, Math.min(end - span, v0));
  const base = baseScale();
  const k = end / span;
  svgSel.call(zoomer.transform, zoomIdentity.translate(LABEL_W - k * base(v0), 0).scale(k));
}

function setCursor(t: number): void {
  state.t = Math.min(Math.max(0, t), end);
  if (state.t < state.v0 || state.t > state.v1) {
    const span = state.v1 - state.v0;
    const v0 = Math.max(0, Math.min(end - span, state.t - span / 2));
    // Moves the view without drawing twice: the zoom handler's render is superseded below.
    state.v0 = v0;
    state.v1 = v0 + span;
    const base = baseScale();
    const k = end / span;
    const tr = zoomIdentity.translate(LABEL_W - k * base(v0), 0).scale(k);
    (svg as unknown as { __zoom: typeof tr }).__zoom = tr;
  }
  update();
}

function selectBuffer(id: number | null): void {
  state.buf = state.buf === id ? null : id;
  if (state.buf !== null) showBuffer(state.buf);
  update();
}

const eventTimes = [
  ...new Set([
    ...data.slices.flatMap((s) => [s.start, s.end]),
    ...data.fences.flatMap((f) => [f.start, f.end]),
    ...data.reports.map((r) => r.t),
    ...data.arrows.map((a) => a.t),
    ...data.transfers.flatMap((x) => [x.start, x.end]),
  ]),
].sort((a, b) => a - b);

function nextAfter(list: number[], t: number): number | undefined {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return list[lo];
}

function zoom(factor: number, at = (state.v0 + state.v1) / 2): void {
  const span = Math.min(end, Math.max(10, (state.v1 - state.v0) * factor));
  const f = (at - state.v0) / (state.v1 - state.v0);
  const v0 = at - f * span;
  setView(v0, v0 + span);
}

let last = 0;
function tick(now: number): void {
  if (!state.playing) return;
  const dt = last ? now - last : 0;
  last = now;
  const t = state.t + (dt / 8000) * end;
  if (t >= end) {
    state.playing = false;
    document.getElementById('play')!.textContent = '▶ play';
    setCursor(end);
    return;
  }
  setCursor(t);
  requestAnimationFrame(tick);
}

function togglePlay(): void {
  state.playing = !state.playing;
  document.getElementById('play')!.textContent = state.playing ? '❚❚ pause' : '▶ play';
  if (state.playing) {
    if (state.t >= end) state.t = 0;
    last = 0;
    requestAnimationFrame(tick);
  }
}

const on = (id: string, f: () => void) => document.getElementById(id)?.addEventListener('click', f);
on('play', togglePlay);
on('next', () => {
  const t = nextAfter(eventTimes, state.t);
  if (t !== undefined) setCursor(t);
});
on('next-report', () => {
  const times = data.reports.map((r) => r.t).sort((a, b) => a - b);
  const t = nextAfter(times, state.t) ?? times[0];
  if (t === undefined) return;
  const i = data.reports.findIndex((r) => r.t === t);
  showReport(i);
  setCursor(t);
});
on('zoom-in', () => zoom(0.5, state.t));
on('zoom-out', () => zoom(2, state.t));
on('zoom-reset', () => setView(0, end));

const download = document.getElementById('download') as HTMLAnchorElement;
if (traceText === null) {
  download.remove();
  document.getElementById('perfetto')!.remove();
} else download.href = URL.createObjectURL(new Blob([traceText], { type: 'application/json' }));

on('perfetto', () => {
  if (traceText === null) return;
  // The Perfetto UI's postMessage protocol: PING until it answers PONG, then the trace.
  const origin = 'https://ui.perfetto.dev';
  const win = window.open(origin);
  if (!win) return;
  const buffer = new TextEncoder().encode(traceText).buffer;
  let tries = 0;
  const timer = setInterval(() => {
    win.postMessage('PING', origin);
    if (++tries > 100) clearInterval(timer);
  }, 100);
  window.addEventListener('message', function onPong(e: MessageEvent) {
    if (e.origin !== origin || e.data !== 'PONG') return;
    clearInterval(timer);
    window.removeEventListener('message', onPong);
    win.postMessage(
      { perfetto: { buffer, title: `${data.scenario.name} (seed ${data.seed})`, fileName: 'trace.json' } },
      origin,
    );
  });
});

function showReport(i: number): void {
  const r = data.reports[i];
  if (!r) return;
  show(
    `<b style="color:var(--err)">[${esc(r.type)}] ${esc(r.rule)}</b>\nat ${fmt(r.t)} in ${esc(r.context)}\n<pre>${esc(r.message)}</pre>${r.objects.length ? `objects:\n${r.objects.map(esc).join('\n')}` : ''}`,
  );
}

svg.addEventListener('click', (e) => {
  const target = e.target as Element;
  const i = Number(target.getAttribute('data-i'));
  if (target.classList.contains('report')) {
    showReport(i);
    setCursor(data.reports[i].t);
    return;
  }
  if (target.classList.contains('slice')) {
    const s = data.slices[i];
    show(
      `<b>${esc(s.label)}</b>\n${esc(data.rows[s.row].group)} / ${esc(data.rows[s.row].label)}, line ${s.line}\n${fmt(s.start)} → ${fmt(s.end)} (${fmt(s.end - s.start)})\noutcome: ${esc(s.outcome)}${s.summary ? `\nresult: ${esc(s.summary)}` : ''}${s.bufs.length ? `\nbuffers: ${s.bufs.map((b) => data.buffers[b].name).join(', ')}` : ''}`,
    );
    if (s.bufs.length === 1 && state.buf !== s.bufs[0]) selectBuffer(s.bufs[0]);
  } else if (target.classList.contains('xfer')) {
    const tr = data.transfers[i];
    show(
      `<b>${tr.kind === 'fabric' ? 'fabric message' : 'PCIe transfer'} ${esc(tr.src)} → ${esc(tr.dst)}</b>${tr.host ? ` (${esc(tr.host)})` : ''}\n${bytesText(tr.bytes)}, route ${esc(tr.route)}, flow ${tr.flow}\n${fmt(tr.start)} → ${fmt(tr.end)} (${fmt(tr.end - tr.start)}), ${esc(tr.state)}${tr.gbps === null ? '' : `\nachieved ${tr.gbps.toFixed(2)} GB/s`}`,
    );
  } else if (target.classList.contains('call')) {
    const cl = data.calls[i];
    show(
      `<b>${esc(cl.label)}</b> = ${esc(String(cl.ret ?? 'never returned'))}\n${fmt(cl.start)} → ${fmt(cl.end)} (${fmt(cl.end - cl.start)})`,
    );
  } else if (target.classList.contains('fence')) {
    const f = data.fences[i];
    show(
      `<b>fence ${esc(f.name)} seqno ${f.seqno}</b>\ncontext ${f.context}, created by ${esc(data.rows[f.by].group)} / ${esc(data.rows[f.by].label)}\n${fmt(f.start)} → ${f.signalled ? fmt(f.end) : 'never signalled'}${f.error ? `\nerror ${f.error}` : ''}`,
    );
  }
  const r = svg.getBoundingClientRect();
  const px = e.clientX - r.left;
  if (px >= LABEL_W) setCursor(tAt(px));
});

document.getElementById('buffers')!.addEventListener('click', (e) => {
  const tr = (e.target as Element).closest('tr.buffer');
  if (tr) selectBuffer(Number(tr.getAttribute('data-buf')));
});

window.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement) return;
  const k: Record<string, () => void> = {
    ' ': togglePlay,
    n: () => document.getElementById('next')!.click(),
    r: () => document.getElementById('next-report')!.click(),
    '+': () => zoom(0.5, state.t),
    '-': () => zoom(2, state.t),
    '0': () => document.getElementById('zoom-reset')!.click(),
  };
  const f = k[e.key];
  if (f) {
    e.preventDefault();
    f();
  }
});
window.addEventListener('hashchange', () => {
  readHash();
  if (state.buf !== null) showBuffer(state.buf);
  update();
});
window.addEventListener('resize', () => {
  const [v0, v1] = [state.v0, state.v1];
  measure();
  zoomExtent();
  setView(v0, v1);
});

readHash();
if (state.buf !== null) showBuffer(state.buf);
renderTopology();
update();
/** The test hook: state, data and the topology's Cytoscape instance. */
(window as unknown as { __viewer: unknown }).__viewer = {
  state,
  data,
  cy: () => cy,
  setCursor,
  selectBuffer,
};
document.body.setAttribute('data-ready', '1');
