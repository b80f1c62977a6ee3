/**
 * `npm run bench [-- --json] [--filter <substring>] [--runs <n>]`
 *
 * Runs every benchmark exported by `bench/*.bench.ts`, each `--runs` times (default 5)
 * after one warm-up, and prints the median. With `--json`, prints one JSON object per
 * line: `{"name", "unit", "value", "runs", "min", "max"}`; otherwise a readable table.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Benchmark } from './harness.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    filter: { type: 'string' },
    runs: { type: 'string', default: '5' },
  },
});

const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`--runs takes a whole number of at least 1, got "${values.runs}"\n`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();

const all: Benchmark[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { benchmarks?: Benchmark[] };
  for (const b of mod.benchmarks ?? []) all.push(b);
}
const selected = values.filter ? all.filter((b) => b.name.includes(values.filter!)) : all;
if (selected.length === 0) {
  process.stderr.write(
    `no benchmark matches "${values.filter}"; names: ${all.map((b) => b.name).join(', ')}\n`,
  );
  process.exit(2);
}

const rows: { name: string; unit: string; value: number; min: number; max: number }[] = [];
for (const b of selected) {
  await b.run();
  const vals: number[] = [];
  for (let i = 0; i < runs; i++) vals.push(await b.run());
  vals.sort((x, y) => x - y);
  const median =
    vals.length % 2 ? vals[(vals.length - 1) / 2] : (vals[vals.length / 2 - 1] + vals[vals.length / 2]) / 2;
  const row = { name: b.name, unit: b.unit, value: median, min: vals[0], max: vals[vals.length - 1] };
  rows.push(row);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...row, runs })}\n`);
  } else {
    process.stderr.write(`  ${b.name} done\n`);
  }
}

if (!values.json) {
  const fmt = (v: number) => (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(4));
  const w = Math.max(...rows.map((r) => r.name.length));
  process.stdout.write(
    `${'benchmark'.padEnd(w)}  ${'median'.padStart(14)}  ${'min'.padStart(14)}  ${'max'.padStart(14)}  unit\n`,
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.name.padEnd(w)}  ${fmt(r.value).padStart(14)}  ${fmt(r.min).padStart(14)}  ${fmt(r.max).padStart(14)}  ${r.unit}\n`,
    );
  }
  process.stdout.write(`(median of ${runs} runs after one warm-up)\n`);
}
