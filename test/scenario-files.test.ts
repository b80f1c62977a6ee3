/**
 * The scenarios shipped in scenarios/: each one is valid, agrees with the published
 * JSON Schema (what editors check), runs with its own seed and scheduler, and meets
 * every expectation it states (plus the implicit ones). A scenario whose `requires`
 * names a device this machine lacks is skipped, and says so.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_SCENARIO, SCENARIOS_DIR, SCHEMA_FILE } from '../src/scenario/builtin.ts';
import { formatIssue, loadScenarioFile } from '../src/scenario/load.ts';
import { runScenario } from '../src/scenario/runner.ts';
import { scenarioJsonSchemaText } from '../src/scenario/schema.ts';

const files = readdirSync(SCENARIOS_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function load(file: string) {
  const r = loadScenarioFile(join(SCENARIOS_DIR, file));
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.scenario;
}

describe('the JSON Schema of scenario files', () => {
  test('schema/scenario.schema.json is up to date (regenerate: dmabuf-lab schema > schema/scenario.schema.json)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(scenarioJsonSchemaText());
  });

  test('every shipped scenario validates against it, and a wrong one does not', () => {
    const Ajv = Ajv2020 as unknown as new (
      o: object,
    ) => {
      compile(s: object): ((d: unknown) => boolean) & { errors?: unknown[] };
    };
    const validate = new Ajv({ allErrors: true, strict: false }).compile(
      JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')),
    );
    for (const f of files) {
      const ok = validate(parse(readFileSync(join(SCENARIOS_DIR, f), 'utf8')));
      expect(ok, `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(
      validate({ name: 'x', processes: [{ name: 'p', steps: [{ sleep: '1ms', sync_wait: 'f' }] }] }),
    ).toBe(false);
    expect(validate({ name: 'x', processes: [{ name: 'p', steps: [{ slep: '1ms' }] }] })).toBe(false);
  });

  test('every file starts with the yaml-language-server modeline that points editors at it', () => {
    for (const f of files) {
      expect(readFileSync(join(SCENARIOS_DIR, f), 'utf8').split('\n')[0]).toBe(
        '# yaml-language-server: $schema=../schema/scenario.schema.json',
      );
    }
  });
});

describe('the shipped scenarios', () => {
  test('there are several, and the built-in default is one of them', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    expect(files).toContain(DEFAULT_SCENARIO.split('/').pop());
  });

  test.each(files)('%s runs and meets its expectations', async (file) => {
    const sc = load(file);
    const { result } = await runScenario(sc);
    if (result.status === 'skipped') {
      // Only devices the model may not have yet can be missing.
      expect(sc.requires.length).toBeGreaterThan(0);
      return;
    }
    const failed = result.expectations.filter((e) => !e.ok).map((e) => `${e.text}: ${e.detail}`);
    expect(failed).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.processes.every((p) => p.crashed === undefined)).toBe(true);
  });

  test('fence-merge waits on the merged fence until the last job is done', async () => {
    const { result } = await runScenario(load('fence-merge.yaml'));
    const end = (id: string) => result.steps.find((s) => s.id === id)!.end;
    expect(end('compute_done')).toBe(1_500_000);
    expect(end('both_done')).toBe(2_500_000);
    expect(result.reports).toEqual([]);
  });

  test('every strategy and seed gives fence-merge the same outcome', async () => {
    const sc = load('fence-merge.yaml');
    for (const scheduler of [{ strategy: 'random' }, { strategy: 'pct', depth: 3 }] as const) {
      for (const seed of [2, 9]) {
        const { result } = await runScenario(sc, { seed, scheduler });
        expect(result.ok).toBe(true);
        expect(result.steps.find((s) => s.id === 'both_done')!.end).toBe(2_500_000);
      }
    }
  });

  test('static-vs-dynamic-importer: the P2P importer reads the page-less buffer, the static one gets EPERM', async () => {
    const { result } = await runScenario(load('static-vs-dynamic-importer.yaml'));
    const by = (id: string) => result.steps.find((s) => s.id === id)!;
    expect(by('dynamic')).toMatchObject({
      outcome: 'ok',
      transfer: { kind: 'p2p_read', bytes: 1024 * 1024 },
    });
    expect(by('static')).toMatchObject({ outcome: 'expected-errno', errno: 'EPERM' });
    expect(by('dynamic_no_p2p')).toMatchObject({ outcome: 'expected-errno', errno: 'EPERM' });
    expect(by('static_pages').summary).toMatch(
      /^crc32 0x[0-9a-f]{8}, \d+ DMA segment\(s\): the expected bytes$/,
    );
  });

  test('p2p-switch-vs-root-complex: the switch beats the root complex, and the VM host has no route', async () => {
    const { result } = await runScenario(load('p2p-switch-vs-root-complex.yaml'));
    const gbps = (id: string) => result.steps.find((s) => s.id === id)!.transfer!.gbps;
    expect(gbps('same_switch')).toBeGreaterThan(gbps('through_root_complex'));
    expect(result.steps.find((s) => s.id === 'in_a_vm')).toMatchObject({ host: 'vm', errno: 'EPERM' });
    expect(result.reports.map((r) => r.rule)).toEqual(['p2pdma.not_supported']);
  });

  test('the same seed gives the same run, event log included', async () => {
    const sc = load('producer-consumer-ring.yaml');
    const a = await runScenario(sc, { seed: 4, scheduler: { strategy: 'random' } });
    const b = await runScenario(sc, { seed: 4, scheduler: { strategy: 'random' } });
    expect(a.result.logHash).toBe(b.result.logHash);
    expect(JSON.stringify(a.result)).toBe(JSON.stringify(b.result));
  });
});
