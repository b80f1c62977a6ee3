/**
 * The visualiser as one self-contained HTML file: the run's view data and its Chrome
 * trace are inlined as JSON, and the viewer's script (web/viewer.ts with Cytoscape, ELK
 * and d3, bundled by Vite into dist/web/viewer.js at build time) is inlined too, so the
 * file opens from disk with no server and fetches nothing.
 *
 * Running from the sources (tsx, the tests), where there is no built bundle, the viewer
 * is bundled on the fly by scripts/build-web.mjs (Vite, a development dependency).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChromeTrace } from './chrome-trace.ts';
import { chromeTraceJson } from './chrome-trace.ts';
import type { ViewData } from './view-data.ts';

const BUILT = fileURLToPath(new URL('../web/viewer.js', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build-web.mjs', import.meta.url));

let cached: Promise<string> | undefined;

/** The viewer's bundled script (built once per process when running from the sources). */
export function viewerScript(): Promise<string> {
  if (cached === undefined) {
    cached = existsSync(BUILT) ? Promise.resolve(readFileSync(BUILT, 'utf8')) : bundleFromSources();
    cached.catch(() => {
      cached = undefined;
    });
  }
  return cached;
}

async function bundleFromSources(): Promise<string> {
  if (!existsSync(BUILD_SCRIPT)) {
    throw new Error(
      `the visualiser is not built: ${BUILT} is missing; reinstall dmabuf-lab or run "npm run build"`,
    );
  }
  let mod: { bundleViewer(): Promise<string> };
  try {
    mod = (await import(pathToFileURL(BUILD_SCRIPT).href)) as typeof mod;
    return await mod.bundleViewer();
  } catch (e) {
    throw new Error(
      `the visualiser is not built (${BUILT} is missing) and bundling it with Vite failed (${(e as Error).message}); run "npm install" then "npm run build"`,
    );
  }
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(text: string): string {
  return text
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** The HTML page of a run (`trace` null: no Perfetto button or trace download). */
export async function renderHtml(data: ViewData, trace: ChromeTrace | null): Promise<string> {
  const script = await viewerScript();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dmabuf-lab">
<title>${escapeHtml(data.scenario.name)} - dmabuf-lab</title>
</head>
<body>
<div id="app"></div>
<script type="application/json" id="run-data">${scriptJson(JSON.stringify(data))}</script>
${trace === null ? '' : `<script type="application/json" id="trace-data">${scriptJson(chromeTraceJson(trace))}</script>\n`}<script>${script.replace(/<\/script/gi, '<\\/script')}</script>
</body>
</html>
`;
}
