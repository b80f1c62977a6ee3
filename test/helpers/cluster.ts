/** Helpers for tests on a Cluster of machines. */
import { expect } from 'vitest';
import type { Cluster } from '../../src/fabric/cluster.ts';
import type { Process } from '../../src/machine.ts';

/**
 * Runs the cluster and expects the run to complete (failing with the reports' messages)
 * and each of `procs` to have exited 0 (failing with its error).
 */
export async function runToCompletion(c: Cluster, ...procs: Process[]): Promise<void> {
  const r = await c.run();
  expect(r.status, c.reports.map((x) => x.message).join('\n')).toBe('completed');
  for (const p of procs) expect(p.exitCode, String(p.error)).toBe(0);
}
