// Bundles the visualiser (web/viewer.ts) into dist/web/viewer.js, which `run --html` and
// `view` inline into their page. Part of `npm run build` and `prepare`; offline, < 1 s.
import { mkdirSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const r = await build({
  entryPoints: [new URL('../web/viewer.ts', import.meta.url).pathname],
  bundle: true,
  write: false,
  format: 'iife',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
});
mkdirSync(new URL('../dist/web/', import.meta.url), { recursive: true });
writeFileSync(new URL('../dist/web/viewer.js', import.meta.url), r.outputFiles[0].text);
