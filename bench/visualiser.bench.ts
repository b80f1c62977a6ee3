/**
 * Visualiser responsiveness: the page for a synthetic run of 100k events with a
 * topology graph, transfers and memory series (see test/helpers/big-view.ts) in Debian's headless Chromium, driven by playwright-core.
 * Each value is the median of 7 runs of one interaction, from the click to the next
 * painted frame, in milliseconds (lower is better); the bar is 100 ms.
 * Without /usr/bin/chromium the benchmarks are left out, with a note on stderr.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { renderHtml } from '../src/report/html.ts';
import { bigRun, timeInteractions } from '../test/helpers/big-view.ts';
import type { Benchmark } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const INTERACTIONS = ['zoomIn', 'zoomOut', 'next', 'fit', 'select'] as const;

async function measure(): Promise<Record<(typeof INTERACTIONS)[number], number>> {
  const dir = mkdtempSync(join(tmpdir(), 'dmabuf-lab-bench-'));
  const file = join(dir, 'big.html');
  writeFileSync(file, await renderHtml(bigRun(), null));
  const ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
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
  try {
    const p = await ctx.newPage();
    await p.goto(pathToFileURL(file).href);
    await p.waitForSelector('body[data-topology-ready]', { state: 'attached' });
    return await timeInteractions(p);
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One benchmark per interaction; each run measures them all and keeps its own. */
function interaction(name: (typeof INTERACTIONS)[number]): Benchmark {
  return {
    name: `visualiser.100k.${name}`,
    unit: 'ms',
    higherIsBetter: false,
    run: async () => (await measure())[name],
  };
}

/** The visualiser benchmarks (empty without Chromium). */
export const benchmarks: Benchmark[] = existsSync(CHROMIUM) ? INTERACTIONS.map(interaction) : [];
if (!existsSync(CHROMIUM)) {
  process.stderr.write(
    `visualiser benchmarks left out: ${CHROMIUM} is missing (apt-get install -y chromium)\n`,
  );
}
