/**
 * Running scenarios: how steps fail and what follows, how expectations are judged,
 * fault injection, skipping on machines without a device, time limits, and replaying
 * a schedule that `explore` found by its seed.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SCENARIOS_DIR } from '../src/scenario/builtin.ts';
import {
  type CompiledScenario,
  formatIssue,
  loadScenarioFile,
  loadScenarioText,
} from '../src/scenario/load.ts';
import { type RunOptions, runScenario } from '../src/scenario/runner.ts';

function compile(text: string): CompiledScenario {
  const r = loadScenarioText(text, 't.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.scenario;
}

async function run(text: string, opts?: RunOptions) {
  return (await runScenario(compile(text), opts)).result;
}

const failing = (r: Awaited<ReturnType<typeof run>>) =>
  r.expectations.filter((e) => !e.ok).map((e) => e.text);

describe('steps', () => {
  test('a step that fails unexpectedly ends its process with exit code 1; later steps do not run', async () => {
    const r = await run(`name: t
processes:
  - name: app
    steps:
      - sw_sync_timeline: {}
        as: tl
      - sync_info: tl
      - sleep: 1ms
`);
    expect(r.steps.map((s) => [s.label, s.outcome, s.errno])).toEqual([
      ['sw_sync_timeline', 'ok', undefined],
      ['sync_info tl', 'failed', 'ENOTTY'],
    ]);
    expect(r.processes.find((p) => p.name === 'app')!.exitCode).toBe(1);
    expect(failing(r)).toEqual(['step "sync_info tl" of app (line 7) succeeds']);
    expect(r.ok).toBe(false);
  });

  test('a step expected to fail that succeeds is reported, and its process goes on', async () => {
    const r = await run(`name: t
processes:
  - name: app
    steps:
      - sw_sync_timeline: {}
        as: tl
      - sw_sync_inc: tl
        expect: {errno: EINVAL}
      - sleep: 1ms
`);
    expect(r.steps.map((s) => s.outcome)).toEqual(['ok', 'unexpected-success', 'ok']);
    expect(r.expectations.find((e) => !e.ok)).toMatchObject({
      text: 'step "sw_sync_inc tl" of app fails with EINVAL',
      detail: 'it succeeded',
      line: 7,
    });
  });

  test('CPU writes and checks see the same bytes across processes; a wrong byte fails the check', async () => {
    const r = await run(`name: t
channels:
  c: [writer, reader]
processes:
  - name: writer
    steps:
      - memfd: {size: 8KiB}
        as: m
      - mmap: m
        as: map
      - write: {map: map, pattern: {hex: "de ad be ef"}}
      - write: {map: map, pattern: {fill: 0}, offset: 4102, length: 1}
      - send: {channel: c, fd: m}
  - name: reader
    steps:
      - recv: c
        as: m
      - mmap: {fd: m, prot: read}
        as: map
      - check: {map: map, pattern: {hex: "de ad be ef"}, length: 4KiB}
      - check: {map: map, pattern: {hex: "de ad be ef"}}
`);
    const checks = r.steps.filter((s) => s.kind === 'check');
    expect(checks.map((s) => s.outcome)).toEqual(['ok', 'check-failed']);
    expect(checks[1].problem).toBe('byte at offset 4102 is 0x00, expected 0xbe (1 of 8192 bytes differ)');
    expect(r.processes.find((p) => p.name === 'reader')!.exitCode).toBe(0);
    expect(failing(r)).toEqual(['the check of "check map hex de ad be ef" (line 21) passes']);
  });

  test('an fd passed to another process keeps the file alive after the sender exits', async () => {
    const r = await run(`name: t
channels:
  c: [sender, keeper]
processes:
  - name: sender
    steps:
      - memfd: {size: 4KiB}
        as: m
      - mmap: m
        as: map
      - write: {map: map, pattern: {text: kept}}
      - send: {channel: c, fd: m}
  - name: keeper
    steps:
      - recv: c
        as: m
      - sleep: 1ms
      - mmap: m
        as: map
      - check: {map: map, pattern: {text: kept}}
`);
    expect(failing(r)).toEqual([]);
    expect(r.processes.find((p) => p.name === 'sender')!.exitCode).toBe(0);
  });

  test('a kill interrupts the target where it waits; exit releases everything it held', async () => {
    const r = await run(`name: t
processes:
  - name: victim
    steps:
      - sw_sync_timeline: {}
        as: tl
      - sw_sync_fence: tl
        as: f
      - sync_wait: f
        id: stuck
  - name: killer
    steps:
      - sleep: 3ms
      - kill: victim
expect:
  - process: victim
    killed: true
    exit_code: 137
`);
    expect(failing(r)).toEqual([]);
    const stuck = r.steps.find((s) => s.id === 'stuck')!;
    expect([stuck.outcome, stuck.end, stuck.summary]).toEqual(['interrupted', 3_000_000, 'killed']);
    expect(r.reports).toEqual([]);
  });
});

describe('expectations', () => {
  test('timing expectations: within, by and after', async () => {
    const r = await run(`name: t
processes:
  - name: app
    steps:
      - sleep: 2ms
        id: s
expect:
  - step: s
    within: 2ms
    by: 2ms
    after: 2ms
  - step: s
    within: 1ms
`);
    expect(r.expectations.map((e) => [e.ok, e.detail])).toEqual([
      [true, 'ok, finished at +2ms after 2ms'],
      [false, 'it took 2ms'],
      [true, 'the run ended completed at +2ms'],
      [true, 'none'],
    ]);
  });

  test('an expected report is not a failure; an unexpected one is; no_report and count', async () => {
    const sc = compile(`name: t
channels:
  c: [a, b]
processes:
  - name: a
    steps:
      - recv: c
  - name: b
    steps:
      - recv: c
expect:
  - run: deadlock
  - report: {type: deadlock, count: 1}
  - no_report: leak
`);
    const r = (await runScenario(sc)).result;
    expect(r.status).toBe('deadlock');
    expect(r.ok).toBe(true);
    sc.expect.splice(1, 1);
    const r2 = (await runScenario(sc)).result;
    expect(failing(r2)).toEqual(['no rule report is raised that the scenario does not expect']);
  });

  test('a run past its virtual time limit ends with time-limit', async () => {
    const r = await run(`name: t
limit: 5ms
processes:
  - name: app
    steps:
      - sleep: 1s
`);
    expect(r.status).toBe('time-limit');
    expect(r.duration).toBe(5_000_000);
    expect(failing(r)).toEqual(['the run completes']);
  });

  test('a scenario that requires a device the machine lacks is skipped', async () => {
    const r = await run(`name: t
requires: [/dev/accel/accel1]
processes:
  - name: app
    steps:
      - sleep: 1ms
`);
    expect(r.status).toBe('skipped');
    expect(r.skipped).toBe('this machine has no /dev/accel/accel1');
    expect(r.steps).toEqual([]);
  });
});

describe('exploring schedules', () => {
  test('a seed that breaks racy-fence-status under PCT replays the same failure', async () => {
    const r = loadScenarioFile(join(SCENARIOS_DIR, 'racy-fence-status.yaml'));
    if (!r.ok) throw new Error('bad scenario');
    const sc = r.scenario;
    expect((await runScenario(sc)).result.ok).toBe(true);
    let found = -1;
    for (let seed = 1; seed <= 50 && found < 0; seed++) {
      if (!(await runScenario(sc, { seed, scheduler: { strategy: 'pct' } })).result.ok) found = seed;
    }
    expect(found).toBeGreaterThan(0);
    const again = (await runScenario(sc, { seed: found, scheduler: { strategy: 'pct' } })).result;
    expect(again.ok).toBe(false);
    expect(failing(again)).toEqual(['the check of "sync_info job" (line 19) passes']);
  });
});
