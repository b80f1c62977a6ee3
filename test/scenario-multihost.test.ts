/**
 * Multi-host scenarios and the RDMA steps: `hosts` and `network` with file:line:col
 * errors, channels kept inside one host, out-of-band mailboxes, the verbs steps'
 * errnos and completion statuses, bandwidth expectations, the seed flow (bytes verified,
 * 0.92 x line rate), the GPU eviction scenario (one move_notify mid-stream), byte-for-byte determinism of a two-host run and its trace, RDMA
 * between two NICs of one host, and `explore` on a multi-host scenario.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildChromeTrace, chromeTraceJson } from '../src/report/chrome-trace.ts';
import { DEFAULT_SCENARIO, SCENARIOS_DIR } from '../src/scenario/builtin.ts';
import { formatIssue, loadScenarioFile, loadScenarioText } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';

/** Loads `text` as `t.yaml` and returns its problems as text lines. */
function problems(text: string): string[] {
  const r = loadScenarioText(text, 't.yaml');
  return r.ok ? [] : r.issues.map(formatIssue);
}

function compile(text: string) {
  const r = loadScenarioText(text, 't.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.scenario;
}

function shipped(file: string) {
  const r = loadScenarioFile(join(SCENARIOS_DIR, file));
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.scenario;
}

const twoHosts = `name: t
hosts:
  - {name: host1, topology: workstation}
  - {name: host2, topology: workstation}
`;

/** A small two-host RDMA WRITE between host memory regions, verified on host2. */
const pingText = `${twoHosts}network: {gbps: 100}
processes:
  - name: a
    host: host1
    steps:
      - rdma_open: 0
        as: nic
      - memfd: {size: 256KiB}
        as: m
      - mmap: m
        as: src
      - write: {map: src, pattern: {random: 5}}
      - reg_mr: {endpoint: nic, map: src}
        as: mr
      - rdma_connect: {endpoint: nic, peer: b}
      - rdma_write: {endpoint: nic, mr: mr, remote: dst}
        id: write
      - oob_send: done
  - name: b
    host: host2
    steps:
      - rdma_open: 0
        as: nic
      - memfd: {size: 256KiB}
        as: m
      - mmap: m
        as: buf
      - reg_mr: {endpoint: nic, map: buf}
        as: dst
      - rdma_connect: {endpoint: nic, peer: a, publish: dst}
      - oob_recv: done
      - check: {map: buf, pattern: {random: 5}}
        id: verify
expect:
  - bandwidth: {step: write, atLeastGbps: 10}
`;

describe('hosts and network: file:line:col messages', () => {
  test.each([
    [
      'topology and hosts together',
      `name: t\ntopology: workstation\nhosts: [{name: h1}]\nprocesses:\n  - name: p\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:3:1: hosts: `topology` and `hosts` cannot both be given: .*give each host its own topology$/,
    ],
    [
      'a host used twice',
      `name: t\nhosts:\n  - {name: h1}\n  - {name: h1}\nprocesses:\n  - name: p\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:4:12: hosts\[1\]\.name: host name "h1" is used twice$/,
    ],
    [
      'a process on a host that does not exist',
      `${twoHosts}processes:\n  - name: p\n    host: hostt2\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:7:11: processes\[0\]\.host: no host named "hostt2" \(did you mean "host2"\?\); hosts: host1, host2$/,
    ],
    [
      'a host without a hosts list',
      `name: t\nprocesses:\n  - name: p\n    host: host2\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:4:11: processes\[0\]\.host: no host named "host2": this scenario has one host, host1; list the machines under `hosts` to use more$/,
    ],
    [
      'a bad host topology',
      `name: t\nhosts:\n  - {name: h1, topology: gaudi}\nprocesses:\n  - name: p\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:3:26: hosts\[0\]\.topology: expected a topology: a preset name/,
    ],
    [
      'a network rate that is not a number',
      `${twoHosts}network: {gbps: fast}\nprocesses:\n  - name: p\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:5:17: network\.gbps: expected a number, got "fast"$/,
    ],
    [
      'a channel between processes of two hosts',
      `${twoHosts}channels:\n  c: [a, b]\nprocesses:\n  - name: a\n    host: host1\n    steps:\n      - sleep: 1ms\n  - name: b\n    host: host2\n    steps:\n      - sleep: 1ms\n`,
      /^t\.yaml:6:6: channels\.c: channel "c" joins a on host1 and b on host2: a socketpair joins processes of one host; across hosts use rdma_connect, or oob_send\/oob_recv to order them$/,
    ],
    [
      'waiting on a mailbox nobody posts to',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - oob_send: ready\n  - name: b\n    host: host2\n    steps:\n      - oob_recv: redy\n`,
      /^t\.yaml:12:19: processes\[1\]\.steps\[0\]\.oob_recv: no step posts to out-of-band mailbox "redy" \(add `oob_send: redy` to the process that should go first\) \(did you mean "ready"\?\)$/,
    ],
    [
      'connecting to a process that does not exist',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - rdma_open: 0\n        as: nic\n      - rdma_connect: {endpoint: nic, peer: bb}\n`,
      /^t\.yaml:10:45: processes\[0\]\.steps\[1\]\.rdma_connect\.peer: no process named "bb"$/,
    ],
    [
      'an unknown access flag',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - rdma_open: 0\n        as: nic\n      - memfd: {size: 4KiB}\n        as: m\n      - mmap: m\n        as: v\n      - reg_mr: {endpoint: nic, map: v, access: [REMOTE_WRIT]}\n`,
      /^t\.yaml:14:50: processes\[0\]\.steps\[3\]\.reg_mr\.access\[0\]: expected one of .*; got "REMOTE_WRIT" \(did you mean "REMOTE_WRITE"\?\)$/,
    ],
    [
      'a bandwidth expectation on a step that moves no data',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - sleep: 1ms\n        id: nap\nexpect:\n  - bandwidth: {step: nap, atLeast: 0.5}\n`,
      /^t\.yaml:11:23: expect\[0\]\.bandwidth\.step: step "nap" is a sleep, which moves no data; a bandwidth expectation names a step of kind .*rdma_write/,
    ],
    [
      'a bandwidth expectation without a rate',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - sleep: 1ms\n        id: nap\nexpect:\n  - bandwidth: {step: nope}\n`,
      /^t\.yaml:11:16: expect\[0\]\.bandwidth: say what rate is expected: atLeast, atMost or near/,
    ],
    [
      'a bandwidth fraction above 1',
      `${twoHosts}processes:\n  - name: a\n    steps:\n      - sleep: 1ms\nexpect:\n  - bandwidth: {step: x, atLeast: 92}\n`,
      /^t\.yaml:10:35: expect\[0\]\.bandwidth\.atLeast: expected a number <= 1, got 92$/,
    ],
  ])('%s', (_what, text, want) => {
    const p = problems(text);
    expect(p.length, p.join('\n')).toBeGreaterThan(0);
    expect(
      p.some((l) => want.test(l)),
      p.join('\n'),
    ).toBe(true);
  });

  test('a scenario without hosts runs on one host named host1, which every record carries', async () => {
    const sc = compile('name: t\nprocesses:\n  - name: p\n    steps:\n      - sleep: 1ms\n');
    expect(sc.hosts.map((h) => h.name)).toEqual(['host1']);
    expect(sc.processes[0].host).toBe('host1');
    const { result } = await runScenario(sc);
    expect(result.ok).toBe(true);
    expect(result.hosts).toEqual([{ name: 'host1', topology: null }]);
    expect(result.processes.map((p) => [p.name, p.host])).toEqual([
      ['init', 'host1'],
      ['p', 'host1'],
    ]);
    expect(result.steps.map((s) => s.host)).toEqual(['host1']);
  });
});

describe('two hosts', () => {
  test('each host has its own harness; a WRITE crosses the network and lands byte for byte', async () => {
    const { result } = await runScenario(compile(pingText));
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    expect(result.network).toEqual({ gbps: 100 });
    expect(result.processes.map((p) => [p.name, p.host, p.exitCode])).toEqual([
      ['init', 'host1', 0],
      ['init', 'host2', 0],
      ['a', 'host1', 0],
      ['b', 'host2', 0],
    ]);
    const write = result.steps.find((s) => s.id === 'write')!;
    expect(write.host).toBe('host1');
    expect(write.transfer).toMatchObject({
      kind: 'rdma_write',
      bytes: 256 * 1024,
      lineRateGbps: 100,
      from: 'host1/a mapping src',
      to: 'host2/b mapping buf',
    });
    expect(write.transfer!.gbps).toBeGreaterThan(10);
    expect(write.transfer!.gbps).toBeLessThan(100);
    expect(result.steps.find((s) => s.id === 'verify')).toMatchObject({ host: 'host2', outcome: 'ok' });
  });

  test('the same seed gives the same result and trace, byte for byte; another seed still passes', async () => {
    const sc = compile(pingText);
    const opts = { seed: 7, scheduler: { strategy: 'random' as const } };
    const a = await runScenario(sc, opts);
    const b = await runScenario(sc, opts);
    expect(a.result.logHash).toBe(b.result.logHash);
    expect(JSON.stringify(a.result)).toBe(JSON.stringify(b.result));
    expect(chromeTraceJson(buildChromeTrace(a))).toBe(chromeTraceJson(buildChromeTrace(b)));
    const c = await runScenario(sc, { seed: 8, scheduler: { strategy: 'pct' } });
    expect(c.result.ok).toBe(true);
  });

  test('kill reaches only processes of its own host (ESRCH otherwise)', async () => {
    const text = `${twoHosts}processes:
  - name: a
    steps:
      - kill: b
        expect: {errno: ESRCH}
      - oob_send: tried
  - name: b
    host: host2
    steps:
      - oob_recv: tried
`;
    const { result } = await runScenario(compile(text));
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    expect(result.processes.find((p) => p.name === 'b')).toMatchObject({
      pid: 1101,
      exitCode: 0,
      killed: false,
    });
  });

  test('RDMA between two NICs of one host (loopback through the switch)', async () => {
    const text = pingText
      .replace(twoHosts, 'name: t\ntopology: gaudi-hls\n')
      .replace('    host: host1\n', '')
      .replace('    host: host2\n', '')
      .replace(
        '      - rdma_open: 0\n        as: nic\n      - memfd: {size: 256KiB}\n        as: m\n      - mmap: m\n        as: buf',
        '      - rdma_open: 1\n        as: nic\n      - memfd: {size: 256KiB}\n        as: m\n      - mmap: m\n        as: buf',
      );
    const { result } = await runScenario(compile(text));
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    const opens = result.steps.filter((s) => s.kind === 'rdma_open').map((s) => s.summary);
    expect(opens).toEqual([expect.stringMatching(/^mlx5_0 /), expect.stringMatching(/^mlx5_1 /)]);
    expect(result.steps.find((s) => s.id === 'write')!.transfer!.to).toBe('host1/b mapping buf');
  });
});

describe('RDMA steps: errnos and completion statuses', () => {
  test('rdma-bad-rkey: EINVAL registrations, REM_ACCESS_ERR, the QP in ERR, later WRs flushed', async () => {
    const { result } = await runScenario(shipped('rdma-bad-rkey.yaml'));
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    const regs = result.steps.filter((s) => s.kind === 'reg_mr' || s.kind === 'reg_dmabuf_mr');
    expect(regs.filter((s) => s.outcome === 'expected-errno').map((s) => [s.kind, s.errno])).toEqual([
      ['reg_mr', 'EINVAL'],
      ['reg_dmabuf_mr', 'EINVAL'],
    ]);
    const by = (id: string) => result.steps.find((s) => s.id === id)!;
    expect(by('bad_rkey').summary).toBe('IBV_WC_REM_ACCESS_ERR (remote access error)');
    expect(by('flushed').summary).toMatch(/^IBV_WC_WR_FLUSH_ERR/);
    expect(by('out_of_range').summary).toMatch(/^IBV_WC_REM_ACCESS_ERR/);
    expect(by('bad_rkey').transfer).toBeUndefined();
    expect(by('good').transfer?.bytes).toBe(16 * 1024);
    expect(result.steps.find((s) => s.kind === 'query_qp')!.summary).toMatch(/ ERR$/);
  });

  test('an error completion that was not expected fails the step with the status name and the fix', async () => {
    const text = pingText.replace(
      'rdma_write: {endpoint: nic, mr: mr, remote: dst}',
      'rdma_write: {endpoint: nic, mr: mr, remote: dst, rkey: 0xbad}',
    );
    const { result } = await runScenario(compile(text));
    const w = result.steps.find((s) => s.id === 'write')!;
    expect(w.outcome).toBe('failed');
    expect(w.problem).toMatch(
      /^rdma_write of 256KiB completed with IBV_WC_REM_ACCESS_ERR \(remote access error\), expected IBV_WC_SUCCESS: .*check the rkey/,
    );
    expect(result.ok).toBe(false);
  });

  test('a device that does not exist is ENODEV; an unpublished region names what was published', async () => {
    const text = `name: t
processes:
  - name: a
    steps:
      - rdma_open: 3
        expect: {errno: ENODEV}
      - rdma_open: 0
        as: nic
      - memfd: {size: 4KiB}
        as: m
      - mmap: m
        as: v
      - reg_mr: {endpoint: nic, map: v}
        as: mr
      - rdma_connect: {endpoint: nic, peer: b, publish: mr}
      - rdma_write: {endpoint: nic, mr: mr, remote: elsewhere}
  - name: b
    steps:
      - rdma_open: 0
        as: nic
      - memfd: {size: 4KiB}
        as: m
      - mmap: m
        as: v
      - reg_mr: {endpoint: nic, map: v}
        as: there
      - rdma_connect: {endpoint: nic, peer: a, publish: there}
`;
    const { result } = await runScenario(compile(text));
    expect(result.steps[0]).toMatchObject({ outcome: 'expected-errno', errno: 'ENODEV' });
    expect(result.steps[0].problem).toMatch(/has 1 RDMA device\(s\); device 3 does not exist/);
    const w = result.steps.find((s) => s.kind === 'rdma_write')!;
    expect(w.outcome).toBe('failed');
    expect(w.problem).toBe(
      `b did not publish a region named "elsewhere" (it published there); add it to the peer's rdma_connect publish list`,
    );
  });

  test('two-sided messaging: a SEND lands in the receive the peer posted, alongside RDMA WRITEs on one CQ', async () => {
    const text = pingText
      .replace(
        '      - oob_send: done\n',
        '      - oob_recv: posted\n      - rdma_send: {endpoint: nic, mr: mr, length: 1KiB}\n        id: send\n      - oob_send: done\n',
      )
      .replace(
        '      - rdma_connect: {endpoint: nic, peer: a, publish: dst}\n',
        '      - memfd: {size: 4KiB}\n        as: m2\n      - mmap: m2\n        as: inbox\n      - reg_mr: {endpoint: nic, map: inbox}\n        as: inmr\n      - post_recv: {endpoint: nic, mr: inmr}\n        expect: {errno: EINVAL}\n        note: a QP in RESET takes no receives\n      - rdma_connect: {endpoint: nic, peer: a, publish: dst}\n      - post_recv: {endpoint: nic, mr: inmr}\n      - oob_send: posted\n      - wait_recv: {endpoint: nic, bytes: 1KiB}\n        id: got\n      - check: {map: inbox, pattern: {random: 5}, length: 1KiB}\n',
      );
    const { result } = await runScenario(compile(text));
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    expect(result.steps.find((s) => s.id === 'send')!.transfer).toMatchObject({
      kind: 'rdma_send',
      bytes: 1024,
      to: 'host2/b',
    });
    expect(result.steps.find((s) => s.id === 'got')!.summary).toBe('1KiB received');
  });

  test('a bandwidth expectation that is not met says what was achieved', async () => {
    const text = pingText.replace(
      'bandwidth: {step: write, atLeastGbps: 10}',
      'bandwidth: {step: write, atLeast: 0.99}',
    );
    const { result } = await runScenario(compile(text));
    const e = result.expectations.find((x) => x.text.includes('moves its data'))!;
    expect(e.ok).toBe(false);
    expect(e.text).toBe('step write moves its data at at least 0.99 x line rate');
    expect(e.detail).toMatch(/^it achieved [\d.]+ Gb\/s = 0\.\d{3} x the 100 Gb\/s line rate$/);
  });
});

describe('the seed flow', () => {
  test('is the built-in default: bytes verified on host2, 0.92 x line rate within 10%', async () => {
    expect(DEFAULT_SCENARIO.endsWith('/scenarios/seed-flow.yaml')).toBe(true);
    const sc = shipped('seed-flow.yaml');
    expect(sc.hosts.map((h) => [h.name, h.topology?.name])).toEqual([
      ['host1', 'gaudi-hls'],
      ['host2', 'gaudi-hls'],
    ]);
    const { result } = await runScenario(sc);
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    const verify = result.steps.find((s) => s.id === 'verify')!;
    expect(verify).toMatchObject({ host: 'host2', process: 'consumer', outcome: 'ok' });
    expect(verify.detail).toEqual({ bytes: 64 * 1024 * 1024, differ: 0 });
    const t = result.steps.find((s) => s.id === 'write')!.transfer!;
    expect(t).toMatchObject({
      kind: 'rdma_write',
      bytes: 64 * 1024 * 1024,
      lineRateGbps: 200,
      from: 'host1/rdma-writer dma-buf buf',
      to: 'host2/consumer dma-buf buf',
    });
    expect(Math.abs(t.gbps / 200 - 0.92) / 0.92).toBeLessThan(0.1);
    expect(result.reports).toEqual([]);
  });
});

describe('GPU eviction under RDMA traffic (scenarios/gpu-eviction-rdma.yaml)', () => {
  test('64 MiB of VRAM from the topology; one move_notify mid-stream, a dip on the next chunk, every byte arrives', async () => {
    const sc = shipped('gpu-eviction-rdma.yaml');
    expect(sc.hosts.map((h) => h.topology?.device('gpu0').memory)).toEqual([64 * 2 ** 20, 64 * 2 ** 20]);
    const { result, log } = await runScenario(sc);
    expect(result.expectations.filter((e) => !e.ok)).toEqual([]);
    expect(result.reports).toEqual([]);
    // VRAM is 64 MiB: the 56 MiB pressure buffer fits only once the 16 MiB one is in GTT.
    expect(result.steps.find((s) => s.id === 'evict')?.detail).toMatchObject({
      vram: 56 * 2 ** 20,
      gtt: 16 * 2 ** 20,
    });
    expect(log.filter((e) => e.name === 'dma_buf_move_notify')).toHaveLength(1);
    const chunks = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => result.steps.find((s) => s.id === `chunk${i}`)!);
    const gbps = chunks.map((c) => c.transfer!.gbps);
    // The first chunk after move_notify re-maps the MR and waits for the move's copy.
    expect(gbps[2]).toBeLessThan(gbps[1] / 2);
    for (const i of [0, 1, 3, 4, 5, 6, 7]) expect(Math.abs(gbps[i] / 100 - 0.92) / 0.92).toBeLessThan(0.1);
    expect(result.steps.find((s) => s.id === 'verify')?.detail).toEqual({ bytes: 16 * 2 ** 20, differ: 0 });
  });
});

describe('dmabuf-lab explore', () => {
  test('explores a multi-host scenario under PCT and finds no failing seed', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(
        'node_modules/.bin/tsx',
        ['src/cli/main.ts', 'explore', 'scenarios/rdma-bad-rkey.yaml', '--runs', '3', '--json'],
        { env: { ...process.env, NO_COLOR: '1' } },
      );
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ scenario: 'rdma-bad-rkey', runs: 3, failing: [] });
  });
});
