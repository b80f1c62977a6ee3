// Builds the visualiser (web/viewer.ts with Cytoscape, ELK and d3) with Vite in library
// mode into one self-contained IIFE script, dist/web/viewer.js, which `run --html` and
// `view` inline into their page: no code splitting, no worker files, nothing fetched at
// run time. Part of `npm run build` and `prepare`; offline.
//
// `bundleViewer()` is also what src/report/html.ts calls when it runs from the sources
// (tsx, the tests) and there is no built bundle yet.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The viewer's source entry. */
export const ENTRY = fileURLToPath(new URL('../web/viewer.ts', import.meta.url));

/** Bundles web/viewer.ts with Vite; resolves to the script's text. */
export async function bundleViewer(entry = ENTRY) {
  const { build } = await import('vite');
  const out = await build({
    configFile: false,
    root: fileURLToPath(new URL('..', import.meta.url)),
    logLevel: 'warn',
    publicDir: false,
    define: { 'process.env.NODE_ENV': '"production"' },
    build: {
      write: false,
      target: 'es2022',
      minify: true,
      sourcemap: false,
      emptyOutDir: false,
      copyPublicDir: false,
      reportCompressedSize: false,
      lib: { entry, formats: ['iife'], name: 'dmabufLabViewer', fileName: () => 'viewer.js' },
    },
  });
  const outputs = (Array.isArray(out) ? out : [out]).flatMap((o) => o.output);
  const chunks = outputs.filter((o) => o.type === 'chunk');
  if (chunks.length !== 1 || outputs.length !== 1) {
    throw new Error(
      `the visualiser bundle must be one script, got ${outputs.map((o) => o.fileName).join(', ')}; keep web/ free of CSS imports, assets and workers`,
    );
  }
  return chunks[0].code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await bundleViewer();
  mkdirSync(new URL('../dist/web/', import.meta.url), { recursive: true });
  writeFileSync(new URL('../dist/web/viewer.js', import.meta.url), code);
  process.stdout.write(`dist/web/viewer.js: ${(Buffer.byteLength(code) / 1024).toFixed(0)} KiB\n`);
}
