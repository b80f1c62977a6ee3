/**
 * The `dmabuf-lab` command, run as a user runs it: output and exit codes of run,
 * check, explore, topo, validate and schema (0 fine, 1 an expectation or a rule
 * failed, 2 bad input), and no stack trace for bad input.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const tsx = 'node_modules/.bin/tsx';

/** Runs the CLI; resolves with its exit code and output (the tests run concurrently). */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, ['src/cli/main.ts', ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'dmabuf-lab-cli-'));
const noStack = /\n\s+at /;

describe.concurrent('dmabuf-lab run', () => {
  test('without a file runs the built-in default, the seed flow: bytes verified and the achieved bandwidth', async () => {
    const r = await cli('run');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('scenario "seed-flow" (scenarios/seed-flow.yaml)');
    expect(r.stdout).toMatch(/check view hex 5e ed f1 00 00 00 00 01 -> 64MiB match/);
    expect(r.stdout).toMatch(
      /rdma_write src -> dst -> 64MiB in [\d.]+ us: [\d.]+ Gb\/s, 0\.9\d\d x 200 Gb\/s line rate/,
    );
    expect(r.stdout).toMatch(/ok\s+step write moves its data at 0\.92 x line rate within 10%/);
    expect(r.stdout).toContain('PASS: all');
    expect(r.stderr).toBe('');
  });

  test('--json prints the same report as data; --trace writes a trace for Perfetto', async () => {
    const trace = join(tmp, 'trace.json');
    const r = await cli(
      'run',
      'scenarios/producer-consumer-ring.yaml',
      '--json',
      '--seed',
      '3',
      '--strategy',
      'random',
      '--trace',
      trace,
    );
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d).toMatchObject({ ok: true, seed: 3, scheduler: { strategy: 'random' }, status: 'completed' });
    expect(d.processes.map((p: { name: string }) => p.name)).toEqual(['init', 'producer', 'consumer']);
    expect(d.timeline.length).toBeGreaterThan(10);
    expect(d.expectations.every((e: { ok: boolean }) => e.ok)).toBe(true);
    expect(r.stderr).toMatch(
      /^trace: \d+ events written to .*trace\.json; open it at https:\/\/ui\.perfetto\.dev\n$/,
    );
    expect(JSON.parse(readFileSync(trace, 'utf8')).traceEvents.length).toBeGreaterThan(100);
  });

  test('a failed expectation exits 1 and says which', async () => {
    const f = join(tmp, 'late.yaml');
    writeFileSync(
      f,
      'name: late\nprocesses:\n  - name: app\n    steps:\n      - sleep: 2ms\n        expect: {within: 1ms}\n',
    );
    const r = await cli('run', f);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAIL step "sleep 2ms" of app takes at most 1ms (line 5): it took 2ms');
    expect(r.stdout).toContain('FAIL: 1 of 3 expectations not met');
  });

  test('a bad scenario file gets file:line:col messages, exit code 2, no stack trace, and nothing runs', async () => {
    const f = join(tmp, 'bad.yaml');
    writeFileSync(
      f,
      'name: bad\nprocesses:\n  - name: app\n    steps:\n      - sleep: soon\n      - sw_sync_fence: {timeline: tl}\n',
    );
    const r = await cli('run', f);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `${f}:5:16: processes[0].steps[0].sleep: expected a duration such as 250us, 1.5ms or 2s, or a whole number of nanoseconds, got "soon"`,
    );
    expect(r.stderr).toContain('error: 1 problem(s) in');
    expect(r.stderr).not.toMatch(noStack);
  });

  test('bad options and missing files exit 2 with a sentence and no stack trace', async () => {
    const seed = await cli('run', '--seed', 'abc');
    expect(seed.code).toBe(2);
    expect(seed.stderr).toContain('the seed is a whole number');
    const missing = await cli('run', 'nope.yaml');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('error: cannot read "nope.yaml": no such file\n');
    expect((await cli('run', '--strategy', 'lifo')).code).toBe(2);
    for (const r of [seed, missing]) expect(r.stderr).not.toMatch(noStack);
  });
});

describe.concurrent('dmabuf-lab check, explore, validate', () => {
  test('check exits 1 when a rule is broken (even one the scenario expects) and 0 when none is', async () => {
    const bad = await cli('check', 'scenarios/fence-deadlock.yaml');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('1 rule report(s)');
    expect(bad.stdout).toContain('[deadlock] deadlock');
    const good = await cli('check', 'scenarios/killed-mid-wait.yaml');
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('no rule broken');
  });

  test('explore prints the seeds that break the scenario, each replayable with run --seed', async () => {
    const r = await cli('explore', 'scenarios/racy-fence-status.yaml', '--runs', '12');
    expect(r.code).toBe(1);
    const replays = [...r.stdout.matchAll(/replay: dmabuf-lab run (\S+) --seed (\d+) --strategy pct/g)];
    expect(replays.length).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/12 run\(s\) under pct \(depth 3\), seeds 1\.\.12: \d+ failing seed\(s\)/);
    const replay = await cli('run', replays[0][1], '--seed', replays[0][2], '--strategy', 'pct');
    expect(replay.code).toBe(1);
    expect(replay.stdout).toContain('status signaled, expected active');
    const clean = await cli('explore', 'scenarios/fence-merge.yaml', '--runs', '5', '--json');
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ runs: 5, failing: [] });
  });

  test('explore finds the ABBA deadlock that lockdep predicted, and the replay hangs with who waits on what', async () => {
    const ok = await cli('run', 'scenarios/abba-lockdep.yaml');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('WARNING: possible circular locking dependency detected');
    const r = await cli('explore', 'scenarios/abba-lockdep.yaml', '--runs', '20', '--strategy', 'random');
    expect(r.code).toBe(1);
    const replays = [...r.stdout.matchAll(/replay: dmabuf-lab run (\S+) --seed (\d+) --strategy random/g)];
    expect(replays.length).toBeGreaterThan(0);
    const replay = await cli('run', replays[0][1], '--seed', replays[0][2], '--strategy', 'random');
    expect(replay.code).toBe(1);
    expect(replay.stdout).toMatch(/fs\/\d+ waits on mutex lock_demo\.journal held by writeback\/\d+/);
  });

  test('validate checks a file without running it', async () => {
    const ok = await cli('validate', 'scenarios/fence-pipeline.yaml');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(
      /ok: scenario "fence-pipeline", 3 process\(es\), \d+ step\(s\), 3 expectation\(s\)/,
    );
    const f = join(tmp, 'unbound.yaml');
    writeFileSync(f, 'name: u\nprocesses:\n  - name: app\n    steps:\n      - close: nothing\n');
    const bad = await cli('validate', f);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      `${f}:5:16: processes[0].steps[0].close: "nothing" is not bound by an earlier step of app`,
    );
  });
});

describe.concurrent('dmabuf-lab topo and schema', () => {
  test('topo prints the p2pdma matrix and the predicted bandwidth of every pair', async () => {
    const r = await cli('topo', 'gaudi-hls');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^accel0\s+X\s+BUS 4\s+HB 8/m);
    expect(r.stdout).toContain('PCI_P2PDMA_MAP_BUS_ADDR');
    expect(r.stdout).toMatch(/Predicted 1 GiB peer-to-peer transfer/);
    const j = JSON.parse((await cli('topo', 'vm', '--json')).stdout);
    expect(j.name).toBe('vm');
    expect(j.pairs.length).toBe(j.devices.length * (j.devices.length - 1));
    const f = join(tmp, 'topo.yaml');
    writeFileSync(f, 'preset: workstation\niommu: true\n');
    expect((await cli('topo', f)).stdout).toMatch(/^accel0\s+X\s+HB 4/m);
    const bad = await cli('topo', 'gaudi');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"gaudi" is neither a preset');
  });

  test('topo of a scenario of several hosts shows every host', async () => {
    const f = join(tmp, 'two-hosts.yaml');
    writeFileSync(
      f,
      [
        'name: two',
        'hosts:',
        '  - {name: alpha, topology: gaudi-hls}',
        '  - {name: beta, topology: workstation}',
        'processes:',
        '  - {name: a, host: alpha, steps: [{sleep: 1ms}]}',
        '  - {name: b, host: beta, steps: [{sleep: 1ms}]}',
        '',
      ].join('\n'),
    );
    const r = await cli('topo', f);
    expect(r.code).toBe(0);
    const alpha = r.stdout.indexOf('host alpha:');
    const beta = r.stdout.indexOf('host beta:');
    expect(alpha).toBeGreaterThanOrEqual(0);
    expect(beta).toBeGreaterThan(alpha);
    expect(r.stdout.slice(alpha, beta)).toMatch(/^accel0\s+X\s+BUS 4\s+HB 8/m);
    expect(r.stdout.slice(beta)).toMatch(/^accel0\s+X\s+HB 4/m);
    const j = JSON.parse((await cli('topo', f, '--json')).stdout);
    expect(j.scenario).toBe('two');
    expect(j.hosts.map((h: { host: string; matrix: { name: string } }) => [h.host, h.matrix.name])).toEqual([
      ['alpha', 'gaudi-hls'],
      ['beta', 'workstation'],
    ]);
  });

  test('schema prints the JSON Schema that schema/scenario.schema.json holds', async () => {
    const r = await cli('schema');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(readFileSync('schema/scenario.schema.json', 'utf8'));
    expect(JSON.parse(r.stdout).$defs.Step.anyOf.length).toBeGreaterThan(20);
  });
});
