/**
 * The visualiser as one self-contained HTML file: the run's view data and its Chrome
 * trace are inlined as JSON, and the viewer's script and style (web/viewer.ts, bundled
 * by esbuild into dist/web/viewer.js at build time) are inlined too, so the file opens
 * from disk with no server and fetches nothing.
 *
 * Running from the sources (tsx, the tests), where there is no built bundle, the viewer
 * is bundled on the fly with esbuild (a development dependency).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChromeTrace } from './chrome-trace.ts';
import { chromeTraceJson } from './chrome-trace.ts';
import type { ViewData } from './view-data.ts';

const BUILT = fileURLToPath(new URL('../web/viewer.js', import.meta.url));
const SOURCE = fileURLToPath(new URL('../../web/viewer.ts', import.meta.url));

let cached: string | undefined;

/** The viewer's bundled script. */
export async function viewerScript(): Promise<string> {
  if (cached !== undefined) return cached;
  if (existsSync(BUILT)) {
    cached = readFileSync(BUILT, 'utf8');
    return cached;
  }
  cached = await bundleViewer(SOURCE);
  return cached;
}

/** Bundles web/viewer.ts into one script (esbuild; used by the build and from sources). */
export async function bundleViewer(entry: string): Promise<string> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error(
      `the visualiser is not built (${BUILT} is missing) and esbuild is not installed to build it; run "npm run build"`,
    );
  }
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
  });
  return r.outputFiles[0].text;
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
