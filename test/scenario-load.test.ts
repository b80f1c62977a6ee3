/**
 * Loading scenario files: every problem is reported as `file:line:col: field: message`
 * pointing at the node it is about, naming the field and what was expected; all the
 * problems of a file are reported at once; nothing of a bad file is compiled.
 */
import { describe, expect, test } from 'vitest';
import { formatIssue, loadScenarioText, loadTopologyText } from '../src/scenario/load.ts';
import { parseDuration, parseSize } from '../src/scenario/units.ts';

/** Loads `text` as `t.yaml` and returns its problems as text lines. */
function problems(text: string): string[] {
  const r = loadScenarioText(text, 't.yaml');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const head = 'name: t\nprocesses:\n  - name: app\n    steps:\n';

describe('units', () => {
  test('durations and sizes in the units people write', () => {
    expect(parseDuration('1.5ms')).toBe(1_500_000);
    expect(parseDuration('250us')).toBe(250_000);
    expect(parseDuration('2s')).toBe(2_000_000_000);
    expect(parseDuration(100)).toBe(100);
    expect(parseDuration('1.5 min')).toBeNull();
    expect(parseSize('4KiB')).toBe(4096);
    expect(parseSize('2 MiB')).toBe(2 * 1024 * 1024);
    expect(parseSize('1MB')).toBe(1_000_000);
    expect(parseSize(4097)).toBe(4097);
    expect(parseSize('lots')).toBeNull();
  });
});

describe('a valid file', () => {
  test('compiles with every step placed at its line and column', () => {
    const r = loadScenarioText(
      `${head}      - sw_sync_timeline: {}\n        as: tl\n      - parallel:\n          w:\n            - sw_sync_fence: tl\n              as: f\n            - sync_wait: f\n`,
      't.yaml',
    );
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const [a, b] = r.scenario.processes[0].steps;
    expect([a.line, a.col, a.label]).toEqual([5, 9, 'sw_sync_timeline']);
    expect([b.line, b.kind]).toEqual([7, 'parallel']);
    expect(b.branches![0].steps.map((s) => [s.line, s.label])).toEqual([
      [9, 'sw_sync_fence tl next'],
      [11, 'sync_wait f'],
    ]);
    expect(r.scenario.seed).toBe(1);
    expect(r.scenario.scheduler).toEqual({ strategy: 'fifo' });
    expect(r.scenario.limit).toBe(60_000_000_000);
  });
});

describe('file:line:col messages', () => {
  test.each([
    ['YAML syntax', 'name: t\nprocesses: [\n', /^t\.yaml:3:1: YAML syntax error: /],
    [
      'duplicate key',
      'name: t\nname: u\nprocesses: []\n',
      /^t\.yaml:2:1: YAML syntax error: Map keys must be unique/,
    ],
    ['empty file', '', /^t\.yaml:1:1: the file is empty; expected a scenario/],
    [
      'a value of the wrong type',
      `${head}      - sw_sync_fence: {timeline: tl, value: "a"}\n`,
      /^t\.yaml:5:46: processes\[0\]\.steps\[0\]\.sw_sync_fence\.value: expected a number, got "a"$/,
    ],
    [
      'an unknown action',
      `${head}      - sw_sync_fenc: tl\n`,
      /^t\.yaml:5:9: processes\[0\]\.steps\[0\]\.sw_sync_fenc: unknown action "sw_sync_fenc" \(did you mean "sw_sync_fence"\?\)/,
    ],
    [
      'two actions in one step',
      `${head}      - sleep: 1ms\n        sync_wait: f\n`,
      /^t\.yaml:6:9: processes\[0\]\.steps\[0\]\.sync_wait: a step has exactly one action, this one has "sleep" and "sync_wait"/,
    ],
    [
      'a bad duration',
      `${head}      - sleep: 1.5 min\n`,
      /^t\.yaml:5:16: processes\[0\]\.steps\[0\]\.sleep: expected a duration such as 250us, 1\.5ms or 2s, or a whole number of nanoseconds, got "1\.5 min"$/,
    ],
    [
      'an unknown field',
      `${head}      - sw_sync_timeline: {}\n        as: tl\n      - sync_wait: {fence: tl, tiemout: 1ms}\n`,
      /^t\.yaml:7:32: processes\[0\]\.steps\[1\]\.sync_wait\.tiemout: unknown field "tiemout" \(did you mean "timeout"\?\); expected one of: fence, timeout$/,
    ],
    [
      'a missing field',
      'name: t\nprocesses:\n  - steps: [{sleep: 1ms}]\n',
      /^t\.yaml:3:5: processes\[0\]: missing field "name" \(a string: the process name \(its comm\)\)$/,
    ],
    [
      'an enum value',
      `name: t\nscheduler: lifo\n${head.slice(8)}      - sleep: 1ms\n`,
      /^t\.yaml:2:12: scheduler: expected one of fifo, random, pct; got "lifo" \(did you mean "fifo"\?\)$/,
    ],
    [
      'a number out of range',
      `name: t\nseed: -3\n${head.slice(8)}      - sleep: 1ms\n`,
      /^t\.yaml:2:7: seed: expected a number >= 0, got -3$/,
    ],
    [
      'an empty list',
      'name: t\nprocesses:\n  - name: a\n    steps: []\n',
      /^t\.yaml:4:12: processes\[0\]\.steps: expected at least 1 item\(s\), got 0$/,
    ],
    [
      'an unknown errno',
      `${head}      - sleep: 1ms\n        expect: {errno: ETIMEOUT}\n`,
      /^t\.yaml:6:25: processes\[0\]\.steps\[0\]\.expect\.errno: expected one of .*; got "ETIMEOUT" \(did you mean "ETIMEDOUT"\?\)$/,
    ],
    [
      'a name used before it is bound',
      `${head}      - sync_wait: f2\n`,
      /^t\.yaml:5:20: processes\[0\]\.steps\[0\]\.sync_wait\.fence: "f2" is not bound by an earlier step of app \(bind it with `as: f2`\)$/,
    ],
    [
      'a mapping where an fd is expected',
      `${head}      - memfd: {size: 4KiB}\n        as: m\n      - mmap: m\n        as: map\n      - close: map\n`,
      /^t\.yaml:9:16: processes\[0\]\.steps\[2\]\.close: "map" is a mapping, expected an fd$/,
    ],
    [
      'an unknown channel',
      `${head}      - recv: ring\n`,
      /^t\.yaml:5:15: processes\[0\]\.steps\[0\]\.recv\.channel: no channel named "ring"$/,
    ],
    [
      'an unknown process',
      `${head}      - kill: ap\n`,
      /^t\.yaml:5:15: processes\[0\]\.steps\[0\]\.kill: no process named "ap" \(did you mean "app"\?\)$/,
    ],
    [
      'an expectation about a step that does not exist',
      `${head}      - sleep: 1ms\nexpect:\n  - step: zz\n`,
      /^t\.yaml:7:11: expect\[0\]\.step: no step has id "zz"$/,
    ],
    [
      'a topology preset that does not exist',
      `name: t\ntopology: gaudi\n${head.slice(8)}      - sleep: 1ms\n`,
      /^t\.yaml:2:11: topology: expected a topology: a preset name \(workstation, gaudi-hls, [^)]*\), \{preset: name/,
    ],
  ])('%s', (_what, text, want) => {
    const p = problems(text);
    expect(p.length, p.join('\n')).toBeGreaterThan(0);
    expect(
      p.some((l) => want.test(l)),
      p.join('\n'),
    ).toBe(true);
  });

  test('every problem of a file is reported at once, in file order', () => {
    const p = problems(`name: t\nseed: -1\n${head.slice(8)}      - sleep: 1.5 min\n      - slep: 1ms\n`);
    expect(p.map((l) => l.split(':').slice(1, 3).join(':'))).toEqual(['2:7', '6:16', '7:9']);
  });

  test('a step may name its channel only if its process is an end of it', () => {
    const p = problems(
      'name: t\nchannels:\n  c: [a, b]\nprocesses:\n  - name: a\n    steps: [{sleep: 1ms}]\n  - name: b\n    steps: [{sleep: 1ms}]\n  - name: z\n    steps:\n      - recv: c\n',
    );
    expect(p).toEqual(['t.yaml:11:15: processes[2].steps[0].recv.channel: channel "c" joins a and b, not z']);
  });

  test('an inline topology that does not build points at the element at fault', () => {
    const topo =
      'topology:\n  name: t\n  cpu: {generation: zen4}\n  sockets: [{id: s0}]\n  hostBridges: [{id: hb0, socket: s1}]\n  endpoints: []\n';
    const p = problems(`name: t\n${topo}${head.slice(8)}      - sleep: 1ms\n`);
    expect(p).toEqual([
      't.yaml:6:17: topology.hostBridges[0]: host bridge "hb0": socket "s1" is not a socket of this topology',
    ]);
  });

  test('a topology file holds a preset, a preset with overrides, or an inline topology', () => {
    const a = loadTopologyText('gaudi-hls\n', 'a.yaml');
    expect(a.ok && a.topology?.name).toBe('gaudi-hls');
    const b = loadTopologyText('preset: vm\niommu: true\n', 'b.yaml');
    expect(b.ok && b.topology?.iommu).toBe(true);
    const c = loadTopologyText('preset: vm\niommus: true\n', 'c.yaml');
    expect(c.ok ? [] : c.issues.map(formatIssue)).toEqual([
      'c.yaml:2:1: iommus: unknown field "iommus" (did you mean "iommu"?); expected one of: preset, iommu, cmdline, params, memory',
    ]);
  });

  test('a preset with memory overrides sizes its endpoints; an unknown endpoint is pointed at', () => {
    const ok = loadScenarioText(
      `name: t\nhosts:\n  - {name: h1, topology: {preset: gpu-workstation, memory: {gpu0: 64MiB, accel0: 2GiB}}}\n${head.slice(8)}      - sleep: 1ms\n`,
      't.yaml',
    );
    if (!ok.ok) throw new Error(ok.issues.map(formatIssue).join('\n'));
    const t = ok.scenario.hosts[0].topology;
    expect([t?.device('gpu0').memory, t?.device('accel0').memory, t?.device('nic0').memory]).toEqual([
      64 * 2 ** 20,
      2 * 2 ** 30,
      null,
    ]);
    expect(
      problems(
        `name: t\ntopology:\n  preset: gpu-workstation\n  memory:\n    gpu0: 64MiB\n    gpu1: 64MiB\n${head.slice(8)}      - sleep: 1ms\n`,
      ),
    ).toEqual([
      't.yaml:6:5: topology.memory.gpu1: memory: preset "gpu-workstation" has no endpoint "gpu1" (its endpoints: gpu0, accel0, nic0)',
    ]);
    expect(
      problems(
        `name: t\ntopology: {preset: gpu-workstation, memory: {gpu0: lots}}\n${head.slice(8)}      - sleep: 1ms\n`,
      ),
    ).toEqual([
      't.yaml:2:52: topology.memory.gpu0: expected a size such as 4096, 4KiB, 2MiB or 1GiB, got "lots"',
    ]);
  });

  test('an inline endpoint takes memory as a size; a bad one is pointed at', () => {
    const topo = (memory: string) =>
      `topology:\n  name: t\n  cpu: {generation: zen4}\n  sockets: [{id: s0}]\n  hostBridges: [{id: hb0, socket: s0}]\n  rootPorts: [{id: rp0, hostBridge: hb0, link: {gen: 4, width: 16}}]\n  endpoints:\n    - {id: gpu0, kind: gpu, parent: rp0, link: {gen: 4, width: 16}, vendor: 0x1002, memory: ${memory}}\n`;
    const ok = loadScenarioText(`name: t\n${topo('32MiB')}${head.slice(8)}      - sleep: 1ms\n`, 't.yaml');
    if (!ok.ok) throw new Error(ok.issues.map(formatIssue).join('\n'));
    expect(ok.scenario.topology?.device('gpu0').memory).toBe(32 * 2 ** 20);
    expect(problems(`name: t\n${topo('1000')}${head.slice(8)}      - sleep: 1ms\n`)).toEqual([
      't.yaml:9:7: topology.endpoints[0]: endpoint "gpu0": memory 1000 is not a positive multiple of 4096 bytes',
    ]);
  });
});
