/**
 * Scenario benchmarks: the built-in default (scenarios/seed-flow.yaml, two gaudi-hls
 * hosts, 64 MiB accelerator -> RDMA -> accelerator at 200 Gb/s) run as `dmabuf-lab run`
 * runs it.
 *
 * - `scenario.seed-flow.wall`: wall seconds to load and run it (what `npm start` waits for);
 * - `scenario.seed-flow.rdma-write`: the RDMA WRITE's achieved rate, Gb/s (virtual time;
 *   0.92 x 200 = 184 Gb/s is RoCE's large-message ceiling).
 */
import { DEFAULT_SCENARIO } from '../src/scenario/builtin.ts';
import { formatIssue, loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import { type Benchmark, secondsSince } from './harness.ts';

async function seedFlow(): Promise<{ wall: number; gbps: number }> {
  const w0 = performance.now();
  const r = loadScenarioFile(DEFAULT_SCENARIO);
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  const { result } = await runScenario(r.scenario);
  const wall = secondsSince(w0);
  if (!result.ok)
    throw new Error(`the seed flow failed: ${JSON.stringify(result.expectations.filter((e) => !e.ok))}`);
  const t = result.steps.find((s) => s.transfer?.kind === 'rdma_write')?.transfer;
  return { wall, gbps: t?.gbps ?? 0 };
}

/** The scenario benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    name: 'scenario.seed-flow.wall',
    unit: 's',
    higherIsBetter: false,
    run: async () => (await seedFlow()).wall,
  },
  {
    name: 'scenario.seed-flow.rdma-write',
    unit: 'Gb/s',
    run: async () => (await seedFlow()).gbps,
  },
];
