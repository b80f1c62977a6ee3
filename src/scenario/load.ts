/**
 * Loading a scenario file: YAML is parsed with positions (yaml's parseDocument and
 * LineCounter), validated against the schema, then checked as a whole (names bound
 * before use, channels between processes that exist, step ids unique, the topology
 * builds). Every problem becomes a `file:line:col: field: message` line pointing at
 * the node it is about, and nothing is run unless there are none.
 *
 * A zod issue's path is mapped to the YAML node at that path (a missing field points
 * at the map that lacks it, an unknown field at its key). Unions are resolved the way a
 * reader would: a step is judged against the action it names, a value against the
 * alternative whose type it has.
 *
 * Not a kernel concept: this is the scenario language.
 */
import { readFileSync } from 'node:fs';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { buildTopology, type Topology, TopologyError, type TopologySpec } from '../kernel/pci/topology.ts';
import { type PresetName, topologyPreset } from '../kernel/pci/topology-presets.ts';
import type { SchedulerOptions } from '../sim/scheduler.ts';
import {
  type ExpectationData,
  type ReportMatcher,
  type ScenarioData,
  scenarioSchema,
  topologySchema,
} from './schema.ts';
import {
  actionKeys,
  COMMON_KEYS,
  type CompiledStep,
  type RawStep,
  stepKind,
  stepKinds,
  stepUnion,
  type ValueType,
} from './step-kind.ts';
import { durationText } from './units.ts';

/** One problem in a scenario file. */
export interface ScenarioIssue {
  /** The file name as given. */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  col: number;
  /** The field, as a path (`processes[0].steps[2].sw_sync_fence.value`), or '' for the file. */
  field: string;
  /** What is wrong and what was expected. */
  message: string;
}

/** `file:line:col: field: message`. */
export function formatIssue(i: ScenarioIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.field ? `${i.field}: ` : ''}${i.message}`;
}

/** A process ready to run. */
export interface CompiledProcess {
  /** Its name (comm). */
  name: string;
  /** A description, if given. */
  description?: string;
  /** The main thread's steps. */
  steps: CompiledStep[];
  /** Where it is in the file. */
  line: number;
  /** The host it runs on. */
  host: string;
}

/** A machine of the scenario. */
export interface CompiledHost {
  /** Its name (its kernel's name in reports). */
  name: string;
  /** Its topology, built; null for the default machine. */
  topology: Topology | null;
}

/** The default name of the only host of a scenario without `hosts`. */
export const DEFAULT_HOST = 'host1';

/** An expectation with its place in the file. */
export interface CompiledExpectation {
  /** As parsed. */
  data: ExpectationData;
  /** 1-based line. */
  line: number;
  /** The expectation written out on one line, for reports. */
  text: string;
}

/** A validated scenario, ready to run. */
export interface CompiledScenario {
  /** The file it came from. */
  file: string;
  /** Its name. */
  name: string;
  /** What it shows. */
  description?: string;
  /** Seed (the CLI may override it). */
  seed: number;
  /** Scheduler (the CLI may override it). */
  scheduler: SchedulerOptions;
  /** Virtual-time limit, ns. */
  limit: number;
  /** The first host's topology, built; null for the default machine. */
  topology: Topology | null;
  /** The hosts (one, named `host1`, when the file gives only `topology`). */
  hosts: CompiledHost[];
  /** The RDMA network: port rate (Gb/s) and cable latency (ns, undefined for the default). */
  network: { gbps: number; latencyNs?: number };
  /** Device paths it needs. */
  requires: string[];
  /** Channels between processes. */
  channels: { name: string; ends: [string, string] }[];
  /** Processes in start order. */
  processes: CompiledProcess[];
  /** Expectations in file order. */
  expect: CompiledExpectation[];
  /** The parsed data, as validated. */
  data: ScenarioData;
}

/** What loading gives: a scenario, or the problems found. */
export type LoadResult = { ok: true; scenario: CompiledScenario } | { ok: false; issues: ScenarioIssue[] };

/** The name of the harness process that starts the scenario's processes. */
export const HARNESS_NAME = 'init';

/** Parses YAML with positions and validates it against `schema`; the data, or the problems. */
function parseValidated<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
  what: string,
): { ok: true; data: z.output<S>; at: Locator } | { ok: false; issues: ScenarioIssue[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = new Locator(doc, lc, file);
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => at.offset(e.pos[0], '', `YAML syntax error: ${firstLine(e.message)}`)),
    };
  }
  const data = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (data === null || data === undefined)
    return { ok: false, issues: [at.offset(0, '', `the file is empty; expected ${what}`)] };
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const raw: RawIssue[] = [];
    for (const iss of parsed.error.issues) flatten(iss, [], schema, data, raw);
    return { ok: false, issues: finish(raw.map((r) => at.issue(r))) };
  }
  return { ok: true, data: parsed.data, at };
}

/** Loads a scenario from its text; `file` names it in messages. */
export function loadScenarioText(text: string, file = '<scenario>'): LoadResult {
  const v = parseValidated(
    text,
    file,
    scenarioSchema,
    'a scenario: a map with name, processes and, optionally, expect',
  );
  if (!v.ok) return v;
  const c = new Compiler(v.data, v.at, file);
  const scenario = c.compile();
  return c.issues.length > 0 ? { ok: false, issues: finish(c.issues) } : { ok: true, scenario };
}

/**
 * Loads a topology from the text of a file that holds only a topology (a preset name,
 * `{preset, ...}` or an inline description), or a scenario's topology if it is a
 * scenario (null when the scenario names none).
 */
export function loadTopologyText(
  text: string,
  file = '<topology>',
): { ok: true; topology: Topology | null; scenario?: string } | { ok: false; issues: ScenarioIssue[] } {
  const probe = parseDocument(text, { prettyErrors: false });
  const js = probe.errors.length === 0 ? (probe.toJS() as unknown) : null;
  if (isPlainObject(js) && 'processes' in js) {
    const r = loadScenarioText(text, file);
    return r.ok ? { ok: true, topology: r.scenario.topology, scenario: r.scenario.name } : r;
  }
  const v = parseValidated(text, file, topologySchema, 'a topology');
  if (!v.ok) return v;
  const c = new Compiler({ topology: v.data } as unknown as ScenarioData, v.at, file);
  const topology = c.topology([]);
  return c.issues.length > 0 ? { ok: false, issues: finish(c.issues) } : { ok: true, topology };
}

/** Loads a scenario file. Throws an Error with a sentence if it cannot be read. */
export function loadScenarioFile(path: string): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `cannot read "${path}": no such file`
        : code === 'EISDIR'
          ? `cannot read "${path}": it is a directory`
          : `cannot read "${path}": ${(e as Error).message}`,
    );
  }
  return loadScenarioText(text, path);
}

function finish(issues: ScenarioIssue[]): ScenarioIssue[] {
  const seen = new Set<string>();
  const out: ScenarioIssue[] = [];
  for (const i of issues.sort((a, b) => a.line - b.line || a.col - b.col)) {
    const k = formatIssue(i);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(i);
  }
  return out;
}

function firstLine(s: string): string {
  return s.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

// ------------------------------------------------------------ positions

type Path = readonly PropertyKey[];

interface RawIssue {
  /** Path of the node the issue is about. */
  path: Path;
  /** When set, point at this key of the map at `path`. */
  key?: string;
  /** Message. */
  message: string;
}

/** `processes[0].steps[2].sleep`. */
export function pathText(path: Path): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s === '' ? String(seg) : `.${String(seg)}`;
  }
  return s;
}

/** Maps document paths to line and column. */
class Locator {
  constructor(
    readonly doc: Document,
    readonly lc: LineCounter,
    readonly file: string,
  ) {}

  offset(off: number, field: string, message: string): ScenarioIssue {
    const p = this.lc.linePos(off);
    return { file: this.file, line: p.line, col: p.col, field, message };
  }

  /** The offset of the deepest node along `path` (and of `key` in it, if given). */
  find(path: Path, key?: string): number {
    let node: unknown = this.doc.contents;
    let off = rangeStart(node) ?? 0;
    const segs = key === undefined ? path : [...path, key];
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i];
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg),
        );
        if (!pair) break;
        const last = i === segs.length - 1;
        // For the key asked about, and for a key with no value, point at the key.
        if ((last && key !== undefined) || pair.value === null || pair.value === undefined) {
          off = rangeStart(pair.key) ?? off;
          if (last) break;
        }
        node = pair.value;
        off = rangeStart(node) ?? off;
      } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
        node = node.items[seg];
        off = rangeStart(node) ?? off;
      } else {
        break;
      }
    }
    return off;
  }

  issue(r: RawIssue): ScenarioIssue {
    const field = pathText(r.key === undefined ? r.path : [...r.path, r.key]);
    return this.offset(this.find(r.path, r.key), field, r.message);
  }
}

function rangeStart(n: unknown): number | undefined {
  const r = (n as Node | null)?.range;
  return r ? r[0] : undefined;
}

// ------------------------------------------------------------ zod issues -> messages

type Issue = z.core.$ZodIssue;
type AnySchema = z.core.$ZodType;

interface Def {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  getter?: () => AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  valueType?: AnySchema;
  items?: AnySchema[];
  options?: AnySchema[];
}

function def(s: AnySchema): Def {
  return s._zod.def as unknown as Def;
}

/** The schema with wrappers (optional, default, pipe, lazy...) taken off. */
function unwrap(s: AnySchema | undefined): AnySchema | undefined {
  let cur = s;
  for (let i = 0; cur && i < 32; i++) {
    const d = def(cur);
    if (d.innerType) cur = d.innerType;
    else if (d.type === 'pipe' && d.in) cur = d.in;
    else if (d.type === 'lazy' && d.getter) cur = d.getter();
    else break;
  }
  return cur;
}

/** The schema at `path` under `s` (unions: the alternative that has the next key). */
function schemaAt(s: AnySchema | undefined, path: Path): AnySchema | undefined {
  let cur = s;
  for (const seg of path) {
    cur = unwrap(cur);
    if (!cur) return undefined;
    let d = def(cur);
    if (d.type === 'union') {
      const opt = d.options!.map(unwrap).find((o) => {
        if (!o) return false;
        const od = def(o);
        return typeof seg === 'number'
          ? od.type === 'array' || od.type === 'tuple'
          : !!od.shape?.[String(seg)];
      });
      if (!opt) return undefined;
      cur = opt;
      d = def(cur);
    }
    if (d.type === 'object') cur = d.shape![String(seg)];
    else if (d.type === 'array') cur = d.element;
    else if (d.type === 'record') cur = d.valueType;
    else if (d.type === 'tuple') cur = d.items![Number(seg)];
    else return undefined;
  }
  return cur;
}

function getAt(data: unknown, path: Path): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg as string];
  }
  return cur;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** How a value reads in a message. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return 'a list';
  return 'a map';
}

const TYPE_TEXT: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  tuple: 'a list',
  record: 'a map',
  null: 'an empty value',
  bigint: 'an integer',
};

function typeText(t: string): string {
  return TYPE_TEXT[t] ?? t;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** ` (did you mean "x"?)` when one candidate is close to `word`. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best = '';
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const dd = distance(word.toLowerCase(), c.toLowerCase());
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best && bestD <= Math.max(1, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function listText(items: readonly string[], max = 16): string {
  return items.length > max ? `${items.slice(0, max).join(', ')}, ...` : items.join(', ');
}

const GENERIC = /^Invalid (input|string|value)/;

function flatten(
  iss: Issue,
  base: Path,
  schema: AnySchema | undefined,
  data: unknown,
  out: RawIssue[],
): void {
  const path = [...base, ...iss.path];
  const here = schemaAt(schema, iss.path);
  const value = getAt(data, path);
  switch (iss.code) {
    case 'invalid_union': {
      const union = unwrap(here);
      const options = union ? (def(union).options ?? []) : [];
      if (union !== undefined && union === unwrap(stepUnion())) {
        stepUnionIssue(iss, path, options, value, data, out);
        return;
      }
      const branches = iss.errors.map((errs, i) => ({ errs, i }));
      const typed = branches.filter(
        ({ errs }) => !errs.some((e) => e.path.length === 0 && e.code === 'invalid_type'),
      );
      const composite = value !== null && typeof value === 'object';
      if (typed.length >= 1 && (composite || GENERIC.test(iss.message))) {
        const pick = typed.sort(
          (a, b) => rootCount(a.errs) - rootCount(b.errs) || a.errs.length - b.errs.length,
        )[0];
        for (const e of pick.errs) flatten(e, path, options[pick.i], data, out);
        return;
      }
      if (!GENERIC.test(iss.message)) {
        out.push({ path, message: `${iss.message}, got ${describe(value)}` });
        return;
      }
      const expected = [
        ...new Set(
          iss.errors.flatMap((errs) =>
            errs
              .filter((e) => e.path.length === 0 && e.code === 'invalid_type')
              .map((e) => typeText(String((e as { expected: string }).expected))),
          ),
        ),
      ];
      out.push({
        path,
        message: `expected ${expected.join(' or ') || 'something else'}, got ${describe(value)}`,
      });
      return;
    }
    case 'unrecognized_keys': {
      const allowed = keysOf(here, value);
      for (const k of iss.keys) {
        out.push({
          path,
          key: k,
          message: `unknown field "${k}"${didYouMean(k, allowed)}${allowed.length ? `; expected one of: ${listText(allowed)}` : ''}`,
        });
      }
      return;
    }
    case 'invalid_type': {
      if (value === undefined && path.length > 0 && isPlainObject(getAt(data, path.slice(0, -1)))) {
        const field = String(path[path.length - 1]);
        out.push({
          path: path.slice(0, -1),
          message: `missing field "${field}" (${typeText(iss.expected)}${descriptionOf(here)})`,
        });
        return;
      }
      out.push({ path, message: `expected ${typeText(iss.expected)}, got ${describe(value)}` });
      return;
    }
    case 'invalid_value': {
      const vals = iss.values.map((v) => (typeof v === 'string' ? v : String(v)));
      const hint = typeof value === 'string' ? didYouMean(value, vals) : '';
      out.push({
        path,
        message:
          vals.length === 1
            ? `expected ${vals[0]}, got ${describe(value)}`
            : `expected one of ${listText(vals, 24)}; got ${describe(value)}${hint}`,
      });
      return;
    }
    case 'too_small':
    case 'too_big': {
      const small = iss.code === 'too_small';
      const bound = Number(
        small ? (iss as { minimum: number | bigint }).minimum : (iss as { maximum: number | bigint }).maximum,
      );
      const incl = (iss as { inclusive?: boolean }).inclusive !== false;
      const origin = (iss as { origin: string }).origin;
      let msg: string;
      if (origin === 'array' || origin === 'set') {
        msg = `expected ${small ? 'at least' : 'at most'} ${bound} item(s), got ${(value as unknown[])?.length ?? 0}`;
      } else if (origin === 'string') {
        msg = `expected ${small ? 'at least' : 'at most'} ${bound} character(s), got ${(value as string)?.length ?? 0}`;
      } else {
        msg = `expected a number ${small ? (incl ? '>=' : '>') : incl ? '<=' : '<'} ${bound}, got ${describe(value)}`;
      }
      out.push({ path, message: msg });
      return;
    }
    case 'invalid_format': {
      const m = GENERIC.test(iss.message) ? `expected a string in ${iss.format} format` : iss.message;
      out.push({ path, message: `${m}, got ${describe(value)}` });
      return;
    }
    case 'invalid_key': {
      for (const e of iss.issues) out.push({ path, message: `key: ${e.message}` });
      return;
    }
    case 'invalid_element': {
      for (const e of iss.issues) flatten(e, path, undefined, data, out);
      return;
    }
    default:
      out.push({ path, message: iss.message });
  }
}

/** The fields the object schema at `s` allows (for a union, of the object alternative closest to `value`). */
function keysOf(s: AnySchema | undefined, value: unknown): string[] {
  const u = unwrap(s);
  if (!u) return [];
  const d = def(u);
  if (d.shape) return Object.keys(d.shape);
  if (d.type !== 'union') return [];
  const have = isPlainObject(value) ? Object.keys(value) : [];
  let best: string[] = [];
  let bestScore = -1;
  for (const o of d.options ?? []) {
    const keys = keysOf(o, value);
    const score = have.filter((k) => keys.includes(k)).length;
    if (keys.length && score > bestScore) {
      best = keys;
      bestScore = score;
    }
  }
  return best;
}

/** Issues at the root of a union alternative (a missing or unknown key there means "not this one"). */
function rootCount(errs: Issue[]): number {
  return errs.filter(
    (e) => e.path.length <= 1 && (e.code === 'unrecognized_keys' || e.code === 'invalid_type'),
  ).length;
}

function descriptionOf(s: AnySchema | undefined): string {
  const d = s ? ((s as z.ZodType).meta?.()?.description ?? (s as z.ZodType).description) : undefined;
  return d ? `: ${d[0].toLowerCase()}${d.slice(1).replace(/\.$/, '')}` : '';
}

function stepUnionIssue(
  iss: Extract<Issue, { code: 'invalid_union' }>,
  path: Path,
  options: AnySchema[],
  value: unknown,
  data: unknown,
  out: RawIssue[],
): void {
  const kinds = stepKinds().map((k) => k.kind);
  if (!isPlainObject(value)) {
    out.push({
      path,
      message: `expected a step: a map with one action such as "sleep: 1ms"; got ${describe(value)}`,
    });
    return;
  }
  const actions = actionKeys(value);
  if (actions.length === 0) {
    const unknown = Object.keys(value).filter((k) => !COMMON_KEYS.includes(k));
    if (unknown.length > 0) {
      for (const k of unknown) {
        out.push({
          path,
          key: k,
          message: `unknown action "${k}"${didYouMean(k, kinds)}; actions: ${listText(kinds, 40)}`,
        });
      }
    } else {
      out.push({ path, message: `a step needs one action; actions: ${listText(kinds, 40)}` });
    }
    return;
  }
  if (actions.length > 1) {
    out.push({
      path,
      key: actions[1],
      message: `a step has exactly one action, this one has ${actions.map((a) => `"${a}"`).join(' and ')} (make them two steps)`,
    });
    return;
  }
  const idx = kinds.indexOf(actions[0]);
  for (const e of iss.errors[idx]) flatten(e, path, options[idx], data, out);
}

// ------------------------------------------------------------ whole-file checks and compiling

class Compiler {
  readonly issues: ScenarioIssue[] = [];
  private readonly stepIds = new Map<string, number>();
  private readonly processNames = new Set<string>();
  private readonly channelEnds = new Map<string, [string, string]>();
  private readonly hostOf = new Map<string, string>();
  private readonly oobSent = new Set<string>();
  private readonly oobWaits: { name: string; path: (string | number)[] }[] = [];

  constructor(
    readonly data: ScenarioData,
    readonly at: Locator,
    readonly file: string,
  ) {}

  private err(path: Path, message: string, key?: string): void {
    this.issues.push(this.at.issue({ path, key, message }));
  }

  compile(): CompiledScenario {
    const d = this.data;
    d.processes.forEach((p, i) => {
      if (p.name === HARNESS_NAME) {
        this.err(
          ['processes', i, 'name'],
          `"${HARNESS_NAME}" is the harness that starts the processes; choose another name`,
        );
      } else if (this.processNames.has(p.name)) {
        this.err(['processes', i, 'name'], `process name "${p.name}" is used twice`);
      }
      this.processNames.add(p.name);
    });
    const hosts = this.hosts();
    const hostNames = hosts.map((h) => h.name);
    d.processes.forEach((p, i) => {
      const h = p.host ?? hostNames[0];
      if (!hostNames.includes(h)) {
        this.err(
          ['processes', i, 'host'],
          d.hosts === undefined
            ? `no host named "${h}": this scenario has one host, ${DEFAULT_HOST}; list the machines under \`hosts\` to use more`
            : `no host named "${h}"${didYouMean(h, hostNames)}; hosts: ${hostNames.join(', ')}`,
        );
      }
      this.hostOf.set(p.name, h);
    });
    for (const [name, ends] of Object.entries(d.channels)) {
      ends.forEach((e, i) => {
        if (!this.processNames.has(e)) {
          this.err(['channels', name, i], `no process named "${e}"${didYouMean(e, [...this.processNames])}`);
        }
      });
      if (ends[0] === ends[1]) this.err(['channels', name], `a channel joins two different processes`);
      const [h0, h1] = ends.map((e) => this.hostOf.get(e));
      if (h0 !== undefined && h1 !== undefined && h0 !== h1) {
        this.err(
          ['channels', name],
          `channel "${name}" joins ${ends[0]} on ${h0} and ${ends[1]} on ${h1}: a socketpair joins processes of one host; across hosts use rdma_connect, or oob_send/oob_recv to order them`,
        );
      }
      this.channelEnds.set(name, ends);
    }
    const processes = d.processes.map((p, i) => ({
      name: p.name,
      description: p.description,
      steps: this.steps(p.steps as RawStep[], ['processes', i, 'steps']),
      line: this.at.lc.linePos(this.at.find(['processes', i])).line,
      host: this.hostOf.get(p.name) ?? hostNames[0],
    }));
    d.processes.forEach((p, i) => {
      this.checkNames(processes[i].steps, new Map(), p.name);
    });
    for (const w of this.oobWaits) {
      if (!this.oobSent.has(w.name)) {
        this.err(
          w.path,
          `no step posts to out-of-band mailbox "${w.name}" (add \`oob_send: ${w.name}\` to the process that should go first)${didYouMean(w.name, [...this.oobSent])}`,
        );
      }
    }
    // A step the expect list says fails with an errno is not a failure when it does.
    const byId = new Map<string, CompiledStep>();
    const index = (steps: CompiledStep[]) => {
      for (const s of steps) {
        if (s.id !== undefined) byId.set(s.id, s);
        for (const b of s.branches ?? []) index(b.steps);
      }
    };
    for (const p of processes) index(p.steps);
    const expect = d.expect.map((e, i) => this.expectation(e, ['expect', i], byId));
    for (const e of d.expect) {
      if ('step' in e && e.errno !== undefined) {
        const s = byId.get(e.step);
        if (s) s.expectErrno = e.errno;
      }
    }
    const sched = d.scheduler;
    const scheduler: SchedulerOptions =
      typeof sched === 'string'
        ? ({ strategy: sched } as SchedulerOptions)
        : sched.strategy === 'pct'
          ? { strategy: 'pct', depth: sched.depth }
          : { strategy: sched.strategy };
    return {
      file: this.file,
      name: d.name,
      description: d.description,
      seed: d.seed,
      scheduler,
      limit: d.limit,
      topology: hosts[0].topology,
      hosts,
      network: {
        gbps: d.network?.gbps ?? 200,
        ...(d.network?.latency === undefined ? {} : { latencyNs: d.network.latency }),
      },
      requires: d.requires,
      channels: [...this.channelEnds].map(([name, ends]) => ({ name, ends })),
      processes,
      expect,
      data: d,
    };
  }

  private steps(raw: RawStep[], path: (string | number)[]): CompiledStep[] {
    return raw.map((r, i) => this.step(r, [...path, i]));
  }

  private step(raw: RawStep, path: (string | number)[]): CompiledStep {
    const kind = actionKeys(raw)[0];
    const def = stepKind(kind)!;
    const args = raw[kind];
    const pos = this.at.lc.linePos(this.at.find(path));
    if (raw.id !== undefined) {
      const first = this.stepIds.get(raw.id);
      if (first !== undefined)
        this.err([...path, 'id'], `step id "${raw.id}" is used twice (first on line ${first})`);
      else this.stepIds.set(raw.id, pos.line);
    }
    const step: CompiledStep = {
      kind,
      def,
      args,
      id: raw.id,
      as: raw.as,
      expect: raw.expect,
      ...(raw.expect?.errno === undefined ? {} : { expectErrno: raw.expect.errno }),
      note: raw.note,
      path,
      line: pos.line,
      col: pos.col,
      label: def.label ? def.label(args) : kind,
    };
    if (def.nested) {
      step.branches = def.nested(args).map((n) => ({
        name: n.name,
        steps: this.steps(n.steps, [...path, kind, ...n.path]),
      }));
    }
    return step;
  }

  /** Names each step reads must be bound earlier (or in a sibling branch); returns the names bound. */
  private checkNames(
    steps: CompiledStep[],
    bound: Map<string, ValueType>,
    proc: string,
  ): Map<string, ValueType> {
    for (const s of steps) {
      for (const ref of s.def.refs ? s.def.refs(s.args) : []) {
        const where = [...s.path, s.kind, ...ref.path];
        if (ref.type === 'channel') {
          const ends = this.channelEnds.get(ref.name);
          if (!ends) {
            this.err(
              where,
              `no channel named "${ref.name}"${didYouMean(ref.name, [...this.channelEnds.keys()])}`,
            );
          } else if (!ends.includes(proc)) {
            this.err(where, `channel "${ref.name}" joins ${ends[0]} and ${ends[1]}, not ${proc}`);
          }
        } else if (ref.type === 'oob-send') {
          this.oobSent.add(ref.name);
        } else if (ref.type === 'oob-recv') {
          this.oobWaits.push({ name: ref.name, path: where });
        } else if (ref.type === 'process') {
          if (!this.processNames.has(ref.name)) {
            this.err(where, `no process named "${ref.name}"${didYouMean(ref.name, [...this.processNames])}`);
          }
        } else {
          const t = bound.get(ref.name);
          if (t === undefined) {
            this.err(
              where,
              `"${ref.name}" is not bound by an earlier step of ${proc} (bind it with \`as: ${ref.name}\`)${didYouMean(ref.name, [...bound.keys()])}`,
            );
          } else if (t !== ref.type) {
            this.err(
              where,
              `"${ref.name}" is ${t === 'fd' ? 'an fd' : 'a mapping'}, expected ${ref.type === 'fd' ? 'an fd' : 'a mapping'}`,
            );
          }
        }
      }
      if (s.branches) {
        // Names bound in any branch may be used in a sibling (at run time they must be there first).
        const all = new Map(bound);
        for (const b of s.branches) collectBound(b.steps, all);
        const after = new Map(all);
        for (const b of s.branches) {
          for (const [k, v] of this.checkNames(b.steps, new Map(all), proc)) after.set(k, v);
        }
        for (const [k, v] of after) bound.set(k, v);
      }
      if (s.as !== undefined && s.def.produces) bound.set(s.as, s.def.produces);
    }
    return bound;
  }

  private expectation(
    e: ExpectationData,
    path: (string | number)[],
    byId: Map<string, CompiledStep>,
  ): CompiledExpectation {
    if ('bandwidth' in e) {
      const b = e.bandwidth;
      const s = byId.get(b.step);
      if (s === undefined) {
        this.err(
          [...path, 'bandwidth', 'step'],
          `no step has id "${b.step}"${didYouMean(b.step, [...this.stepIds.keys()])}`,
        );
      } else if (!s.def.transfers) {
        const movers = stepKinds()
          .filter((k) => k.transfers)
          .map((k) => k.kind);
        this.err(
          [...path, 'bandwidth', 'step'],
          `step "${b.step}" is a ${s.kind}, which moves no data; a bandwidth expectation names a step of kind ${movers.join(', ')}`,
        );
      }
      const bounds = [b.atLeast, b.atMost, b.near, b.atLeastGbps, b.atMostGbps];
      if (bounds.every((x) => x === undefined)) {
        this.err(
          [...path, 'bandwidth'],
          'say what rate is expected: atLeast, atMost or near (fractions of the line rate), or atLeastGbps / atMostGbps',
        );
      }
      return { data: e, line: this.at.lc.linePos(this.at.find(path)).line, text: expectationText(e) };
    }
    if ('step' in e && !this.stepIds.has(e.step)) {
      this.err(
        [...path, 'step'],
        `no step has id "${e.step}"${didYouMean(e.step, [...this.stepIds.keys()])}`,
      );
    }
    if ('process' in e && !this.processNames.has(e.process)) {
      this.err(
        [...path, 'process'],
        `no process named "${e.process}"${didYouMean(e.process, [...this.processNames])}`,
      );
    }
    return { data: e, line: this.at.lc.linePos(this.at.find(path)).line, text: expectationText(e) };
  }

  /** The hosts: `hosts` as given, or one host with the scenario's `topology`. */
  private hosts(): CompiledHost[] {
    const d = this.data;
    if (d.hosts === undefined) return [{ name: DEFAULT_HOST, topology: this.topology() }];
    if (d.topology !== undefined) {
      this.err(
        [],
        '`topology` and `hosts` cannot both be given: `topology` describes the single host of a one-machine scenario; with `hosts`, give each host its own topology',
        'hosts',
      );
    }
    const seen = new Set<string>();
    return d.hosts.map((h, i) => {
      if (seen.has(h.name)) this.err(['hosts', i, 'name'], `host name "${h.name}" is used twice`);
      seen.add(h.name);
      return { name: h.name, topology: this.topology(['hosts', i, 'topology'], h.topology) };
    });
  }

  /** The key of a preset's `memory` overrides that a problem names (an unknown endpoint), if any. */
  private memoryKey(problem: string, t: unknown): string | undefined {
    const memory = isPlainObject(t) ? t.memory : undefined;
    if (!problem.startsWith('memory: ') || !isPlainObject(memory)) return undefined;
    for (const m of problem.matchAll(/"([^"]+)"/g)) if (Object.hasOwn(memory, m[1])) return m[1];
    return undefined;
  }

  /** The path of the topology element a problem names (by its quoted id), else `base`. */
  private elementPath(base: (string | number)[], problem: string, t: unknown): (string | number)[] {
    if (!isPlainObject(t)) return base;
    for (const m of problem.matchAll(/"([^"]+)"/g)) {
      for (const list of ['sockets', 'hostBridges', 'rootPorts', 'switches', 'endpoints']) {
        const arr = (t as Record<string, unknown>)[list];
        if (!Array.isArray(arr)) continue;
        const i = arr.findIndex((el) => isPlainObject(el) && el.id === m[1]);
        if (i >= 0) return [...base, list, i];
      }
    }
    return base;
  }

  /** Builds the topology `t` at `base` (['topology'] in a scenario, [] in a topology file). */
  topology(
    base: (string | number)[] = ['topology'],
    t: ScenarioData['topology'] = this.data.topology,
  ): Topology | null {
    if (t === undefined) return null;
    try {
      if (typeof t === 'string') return topologyPreset(t as PresetName);
      if ('preset' in t) {
        return topologyPreset(t.preset as PresetName, {
          iommu: t.iommu,
          cmdline: t.cmdline,
          params: t.params,
          memory: t.memory,
        });
      }
      return buildTopology(t as TopologySpec);
    } catch (e) {
      if (e instanceof TopologyError) {
        for (const p of e.problems) {
          const key = this.memoryKey(p, t);
          if (key !== undefined) this.err([...base, 'memory'], p, key);
          else this.err(this.elementPath(base, p, t), p);
        }
      } else {
        this.err(base, (e as Error).message);
      }
      return null;
    }
  }
}

function collectBound(steps: CompiledStep[], into: Map<string, ValueType>): void {
  for (const s of steps) {
    if (s.as !== undefined && s.def.produces) into.set(s.as, s.def.produces);
    for (const b of s.branches ?? []) collectBound(b.steps, into);
  }
}

/** An expectation written out on one line: `step wait: errno ETIME`. */
export function expectationText(e: ExpectationData): string {
  const dur = durationText;
  if ('step' in e) {
    const parts: string[] = [];
    if (e.errno !== undefined) parts.push(e.errno === 'any' ? 'fails' : `fails with ${e.errno}`);
    if (e.within !== undefined) parts.push(`takes at most ${dur(e.within)}`);
    if (e.by !== undefined) parts.push(`has finished by +${dur(e.by)}`);
    if (e.after !== undefined) parts.push(`finishes no earlier than +${dur(e.after)}`);
    return `step ${e.step} ${parts.length ? parts.join(', ') : 'succeeds'}`;
  }
  if ('report' in e) return `a report ${matcherText(e.report)} is raised`;
  if ('no_report' in e) return `no report ${matcherText(e.no_report)} is raised`;
  if ('process' in e) {
    const parts: string[] = [];
    if (e.exit_code !== undefined) parts.push(`exits with ${e.exit_code}`);
    if (e.killed !== undefined) parts.push(e.killed ? 'is killed' : 'is not killed');
    return `process ${e.process} ${parts.join(' and ') || 'exits'}`;
  }
  if ('bandwidth' in e) {
    const b = e.bandwidth;
    const parts: string[] = [];
    if (b.near !== undefined) parts.push(`${b.near} x line rate within ${Math.round(b.tolerance * 100)}%`);
    if (b.atLeast !== undefined) parts.push(`at least ${b.atLeast} x line rate`);
    if (b.atMost !== undefined) parts.push(`at most ${b.atMost} x line rate`);
    if (b.atLeastGbps !== undefined) parts.push(`at least ${b.atLeastGbps} Gb/s`);
    if (b.atMostGbps !== undefined) parts.push(`at most ${b.atMostGbps} Gb/s`);
    return `step ${b.step} moves its data at ${parts.join(' and ')}`;
  }
  return `the run ends ${e.run === 'completed' ? 'completed' : `with ${e.run}`}`;
}

function matcherText(m: ReportMatcher): string {
  if (typeof m === 'string') return `"${m}"`;
  const parts: string[] = [];
  if (m.rule) parts.push(`rule ${m.rule}`);
  if (m.type) parts.push(`type ${m.type}`);
  if (m.message) parts.push(`message ~ "${m.message}"`);
  if (m.count !== undefined) parts.push(`count ${m.count}`);
  return parts.join(', ') || 'of any kind';
}
