/**
 * The dmabuf-lab visualiser: a timeline (one row per thread, kernel context and fence
 * context; steps as slices, fence lifetimes as bars, wake-ups as arrows, rule reports as
 * markers, a time cursor, zoom and pan) and a buffers view (every dma-buf, its exporter,
 * holders and life), sharing one time cursor and one selected buffer, both kept in the
 * address (`#t=<ns>&buf=<id>`) so a link shows the same moment.
 *
 * It reads the run from `<script id="run-data">` (and the Chrome trace from
 * `<script id="trace-data">`) and fetches nothing, so the page works from file://.
 * Plain DOM and SVG; the SVG is rebuilt per frame from what is visible, with at most one
 * item per pixel column and row, so it stays fast on large runs.
 */
import type { ViewData } from '../src/report/view-data.ts';

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
.matrix{width:auto}.matrix td,.matrix th{font-size:12px;text-align:center;padding:3px 12px}.matrix td.pair{cursor:pointer}.matrix td.BUS{background:#d9f2e3}.matrix td.HB{background:#fdf0d0}.matrix td.NS{background:#f9d7d7}.matrix td.self{color:var(--muted)}
`;

const ROW_H = 20;
const LABEL_W = 230;
const AXIS_H = 22;
const MARK_H = 16;

const data = JSON.parse(document.getElementById('run-data')!.textContent!) as ViewData;
const traceText = document.getElementById('trace-data')?.textContent ?? null;

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
    <section><h2>Topology</h2><div id="topology"></div></section>
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
function x(t: number): number {
  return LABEL_W + ((t - state.v0) / (state.v1 - state.v0)) * (width() - LABEL_W - 40);
}
function tAt(px: number): number {
  return state.v0 + ((px - LABEL_W) / (width() - LABEL_W - 40)) * (state.v1 - state.v0);
}

function ticks(): number[] {
  const span = state.v1 - state.v0;
  const raw = span / 8;
  const p = Math.max(1, 10 ** Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let t = Math.ceil(state.v0 / step) * step; t <= state.v1; t += step) out.push(t);
  return out;
}

// ---- the timeline ---------------------------------------------------------------------

/** A bar to draw; bars narrower than 3 pixels within 3 pixels of one of the same class merge. */
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
      if (prev !== undefined && prev.cls === cls && x1 - x0 < 3 && x0 <= prev.x1 + 3) {
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
  out.push('<g class="axis">');
  for (const t of ticks()) {
    const px = x(t);
    out.push(
      `<line class="tick" x1="${px}" x2="${px}" y1="${AXIS_H - 4}" y2="${height}"/><text x="${px + 2}" y="14">${fmt(t)}</text>`,
    );
  }
  out.push('</g><g clip-path="url(#plot)">');
  const set = barSet();
  const n = data.slices.length;
  // x(t) = k * t + c, hoisted out of the loops.
  const k = (curW - LABEL_W - 40) / (state.v1 - state.v0);
  const c = LABEL_W - state.v0 * k;
  const sliceCls = sel === null ? ['slice', 'slice bad'] : ['slice dim', 'slice bad dim'];
  const selCls = ['slice sel', 'slice bad sel'];
  for (let i = 0; i < n; i++) {
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
  for (let i = 0; i < data.fences.length; i++) {
    const f = data.fences[i];
    const cls = fenceCls[f.error ? 2 : f.signalled ? 0 : 1];
    set.add(f.row * 4 + 2, cls, true, i, k * f.start + c, k * f.end + c, rowY[f.row] + 5, ROW_H - 10);
  }
  for (const b of set.bars) {
    const w = Math.max(2, b.x1 - b.x0);
    // Tooltips only on bars wide enough to point at (half the elements on busy runs).
    let title = '';
    if (w < 4) title = '';
    else if (b.n > 1) title = `${b.n} items: zoom in`;
    else if (b.fence) title = `${data.fences[b.i].name} seqno ${data.fences[b.i].seqno}`;
    else title = data.slices[b.i].label;
    out.push(
      `<rect class="${b.cls}" data-i="${b.i}"${b.n > 1 ? ` data-n="${b.n}"` : ''} x="${b.x0.toFixed(1)}" y="${b.y}" width="${w.toFixed(1)}" height="${b.h}"${b.fence ? ' rx="3"' : ''}>${title ? `<title>${esc(title)}</title>` : ''}</rect>`,
    );
  }
  const W = width();
  const arrows: string[] = [];
  for (const a of data.arrows) {
    const px = x(a.t);
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
    const px = x(r.t);
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
  const cx = x(state.t);
  out.push(`<line class="cursor" x1="${cx}" x2="${cx}" y1="${AXIS_H - 6}" y2="${height}"/></g>`);
  svg.innerHTML = out.join('');
  document.getElementById('clock')!.textContent = `t = ${fmt(state.t)}`;
}

// ---- the buffers view -----------------------------------------------------------------

function bufferState(b: ViewData['buffers'][number]): string {
  if (state.t < b.created) return 'future';
  if (b.released !== null && state.t >= b.released) return 'gone';
  return 'live';
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
    return `<tr class="buffer ${st}${state.buf === b.id ? ' selected' : ''}" data-buf="${b.id}"><td>${b.id}</td><td>${esc(b.name)}</td><td>${esc(b.exporter)}</td><td>${esc(b.size)}</td><td>${holders}</td><td>${fmt(b.created)} → ${b.released === null ? 'end' : fmt(b.released)}</td><td>${b.uses.length}</td><td><span class="state ${st}">${st === 'future' ? 'not yet' : st === 'gone' ? 'released' : 'live'}</span></td></tr>`;
  });
  box.innerHTML = `<table><thead><tr><th>#</th><th>buffer</th><th>exporter</th><th>size</th><th>fd holders</th><th>life</th><th>uses</th><th>at cursor</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

// ---- the topology view ----------------------------------------------------------------

function renderTopology(): void {
  const box = document.getElementById('topology')!;
  const t = data.topology;
  if (!t) {
    box.innerHTML =
      '<p class="empty">The scenario names no topology (it ran on the default machine); add <code>topology: workstation</code> (or another preset) to see one.</p>';
    return;
  }
  const ids = t.devices.map((d) => d.id);
  const cell = new Map(t.pairs.map((p) => [`${p.from}\u0000${p.to}`, p]));
  const head = ids.map((id) => `<th>${esc(id)}</th>`).join('');
  const rows = ids
    .map((a) => {
      const cells = ids
        .map((b) => {
          if (a === b) return '<td class="self">X</td>';
          const p = cell.get(`${a}\u0000${b}`)!;
          return `<td class="pair ${p.code}" data-from="${esc(a)}" data-to="${esc(b)}" title="${esc(p.mapType)}">${p.code}${p.bandwidthGBps === null ? '' : ` ${p.bandwidthGBps.toFixed(1)}`}</td>`;
        })
        .join('');
      return `<tr><th>${esc(a)}</th>${cells}</tr>`;
    })
    .join('');
  const devices = t.devices
    .map(
      (d) =>
        `<div class="device" data-dev="${esc(d.id)}"><b>${esc(d.id)}</b><br>${esc(d.kind)} · ${esc(d.bdf)}<br>${esc(d.link)}</div>`,
    )
    .join('');
  box.innerHTML = `<p><b>${esc(t.name)}</b> · ${esc(t.cpu)}</p><div class="devices">${devices}</div>
<p class="empty">p2pdma map type, provider (row) to client (column), and predicted GB/s of 1 GiB; click a pair.</p>
<table class="matrix"><thead><tr><th></th>${head}</tr></thead><tbody>${rows}</tbody></table>
<details><summary>tree</summary><pre>${esc(t.tree)}</pre></details>`;
}

document.getElementById('topology')!.addEventListener('click', (e) => {
  const td = (e.target as Element).closest('td.pair');
  if (!td || !data.topology) return;
  const from = td.getAttribute('data-from');
  const to = td.getAttribute('data-to');
  const p = data.topology.pairs.find((x) => x.from === from && x.to === to);
  if (!p) return;
  for (const d of document.querySelectorAll('.device')) {
    const id = d.getAttribute('data-dev');
    d.classList.toggle('on', id === from || id === to);
  }
  show(
    `<b>${esc(p.from)} → ${esc(p.to)}</b>\nmap type ${esc(p.mapType)}, distance ${p.distance}\nroute: ${esc(p.route)}\n${p.unsupported === null ? `1 GiB in ${fmt(p.timeNs ?? 0)}, ${p.bandwidthGBps?.toFixed(2)} GB/s` : `cannot run: ${esc(p.unsupported)}`}`,
  );
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
  show(
    `<b>buffer ${b.id}: ${esc(b.name)}</b>\n${esc(b.exporter)}, ${esc(b.size)}\ncreated ${fmt(b.created)}, released ${b.released === null ? 'never (held at the end)' : fmt(b.released)}\n<pre>${uses}${b.uses.length > 500 ? `\n... and ${b.uses.length - 500} more` : ''}</pre>`,
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
}

function setCursor(t: number): void {
  state.t = Math.min(Math.max(0, t), end);
  if (state.t < state.v0 || state.t > state.v1) {
    const span = state.v1 - state.v0;
    state.v0 = Math.max(0, Math.min(end - span, state.t - span / 2));
    state.v1 = state.v0 + span;
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
  state.v0 = Math.max(0, Math.min(end - span, at - f * span));
  state.v1 = state.v0 + span;
  render();
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
on('zoom-reset', () => {
  state.v0 = 0;
  state.v1 = end;
  render();
});

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

svg.addEventListener(
  'wheel',
  (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    const px = e.clientX - r.left;
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      const d = ((e.deltaX || e.deltaY) / (width() - LABEL_W)) * (state.v1 - state.v0);
      const span = state.v1 - state.v0;
      state.v0 = Math.max(0, Math.min(end - span, state.v0 + d));
      state.v1 = state.v0 + span;
      render();
    } else zoom(e.deltaY > 0 ? 1.25 : 0.8, px >= LABEL_W ? tAt(px) : state.t);
  },
  { passive: false },
);

let drag: { x: number; v0: number } | null = null;
svg.addEventListener('mousedown', (e) => {
  drag = { x: e.clientX, v0: state.v0 };
});
window.addEventListener('mouseup', () => {
  drag = null;
});
window.addEventListener('mousemove', (e) => {
  if (!drag || Math.abs(e.clientX - drag.x) < 3) return;
  const span = state.v1 - state.v0;
  const d = ((drag.x - e.clientX) / (width() - LABEL_W)) * span;
  state.v0 = Math.max(0, Math.min(end - span, drag.v0 + d));
  state.v1 = state.v0 + span;
  render();
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
window.addEventListener('resize', render);

readHash();
if (state.buf !== null) showBuffer(state.buf);
renderTopology();
update();
document.body.setAttribute('data-ready', '1');
