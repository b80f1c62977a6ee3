import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { DEMO_JOB_DONE, runFenceDemo } from '../src/demo/fence-demo.ts';

const tsx = 'node_modules/.bin/tsx';

function cli(...args: string[]) {
  const r = spawnSync(tsx, ['src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the built-in default run', () => {
  test('the merged fence wakes its waiter only when both device jobs are done', async () => {
    const r = await runFenceDemo({ seed: 1 });
    expect(r.run.status).toBe('completed');
    expect(r.exitCode).toBe(0);
    expect(r.firstWokeAt).toBe(DEMO_JOB_DONE.compute);
    expect(r.mergedWokeAt).toBe(Math.max(DEMO_JOB_DONE.compute, DEMO_JOB_DONE.copy));
    expect(r.reports).toEqual([]);
    const signalled = r.log.filter((e) => e.name === 'dma_fence_signaled').map((e) => e.args?.timeline);
    expect(signalled).toEqual(['compute', 'copy', 'unbound']);
  });

  test('the same seed gives the same log; every strategy gives the same outcome', async () => {
    const a = await runFenceDemo({ seed: 5, scheduler: { strategy: 'pct' } });
    const b = await runFenceDemo({ seed: 5, scheduler: { strategy: 'pct' } });
    expect(a.logHash).toBe(b.logHash);
    for (const strategy of ['fifo', 'random', 'pct'] as const) {
      const r = await runFenceDemo({ seed: 9, scheduler: { strategy } });
      expect(r.mergedWokeAt).toBe(DEMO_JOB_DONE.copy);
      expect(r.reports).toEqual([]);
    }
  });
});

describe('dmabuf-lab CLI', () => {
  test('run prints the timeline in virtual time and exits 0', () => {
    const r = cli('run');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dma_fence_signaled');
    expect(r.stdout).toMatch(/2\.500 ms\s+irq\s+dma_fence_signaled\s+dma_fence_array/);
    expect(r.stdout).toContain('no rule reports');
    expect(r.stderr).toBe('');
  });

  test('run --json is machine-readable and deterministic', () => {
    const a = JSON.parse(cli('run', '--json', '--seed', '3', '--strategy', 'random').stdout);
    const b = JSON.parse(cli('run', '--json', '--seed', '3', '--strategy', 'random').stdout);
    expect(a.logHash).toBe(b.logHash);
    expect(a.run.status).toBe('completed');
    expect(a.log.length).toBeGreaterThan(10);
  });

  test('bad input exits 2 with a sentence and no stack trace', () => {
    const bad = cli('run', '--seed', 'abc');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('the seed is a whole number');
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    const file = cli('run', 'nope.yaml');
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('scenario files are not supported yet');
    expect(file.stderr).not.toMatch(/\n\s+at /);
    const strategy = cli('run', '--strategy', 'lifo');
    expect(strategy.code).toBe(2);
  });
});
