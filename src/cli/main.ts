#!/usr/bin/env node
/**
 * The `dmabuf-lab` command.
 *
 * - `run [scenario]`: runs a scenario file (the built-in default without one) and
 *   prints what each process did, the timeline in virtual time, the rule reports and
 *   the expectations; `--json` prints the same as data, `--trace out.json` writes a
 *   Chrome trace-event file for the Perfetto UI, `--html out.html` the visualiser as one
 *   self-contained page, `--view-json out.json` the data it shows.
 * - `view [scenario | run.json | page.html]`: serves the visualiser on 127.0.0.1 (a free
 *   port unless `--port`), running the scenario first when given one.
 * - `check <scenario>`: runs it and reports only the rules broken.
 * - `explore <scenario> --runs N`: runs it under N schedules (seeds) and prints the
 *   seeds that broke an expectation or a rule, each replayable with `run --seed`.
 * - `topo [preset|file]`: the p2pdma map type, distance and predicted bandwidth of
 *   every pair of devices of a topology (of each host, for a scenario of several;
 *   `--json` then gives `{scenario, hosts: [{host, matrix}]}`).
 * - `validate <scenario>`: checks a file without running it.
 * - `schema`: prints the JSON Schema of scenario files.
 *
 * Exit codes: 0 fine, 1 an expectation failed or a rule was broken, 2 bad input, 70 an
 * internal error (the stack trace is printed only with `--debug`).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { PRESET_NAMES, type PresetName, topologyPreset } from '../kernel/pci/topology-presets.ts';
import { buildChromeTrace, chromeTraceJson } from '../report/chrome-trace.ts';
import { formatNs } from '../report/format.ts';
import { renderHtml } from '../report/html.ts';
import { renderSummary, summaryData } from '../report/summary.ts';
import { renderTopoMatrix, topoMatrix } from '../report/topo-matrix.ts';
import { buildViewData, type ViewData } from '../report/view-data.ts';
import { DEFAULT_SCENARIO } from '../scenario/builtin.ts';
import {
  type CompiledScenario,
  formatIssue,
  loadScenarioFile,
  loadScenarioText,
  loadTopologyText,
  type ScenarioIssue,
} from '../scenario/load.ts';
import { type RunArtifacts, runScenario } from '../scenario/runner.ts';
import { scenarioJsonSchemaText } from '../scenario/schema.ts';
import type { SchedulerOptions } from '../sim/scheduler.ts';
import { serveView } from './view.ts';

/** An error meant for the person at the terminal, with the exit code to leave with. */
export class CliError extends Error {
  /** `message` should say what is wrong and how to fix it. */
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A scenario file with problems: each is printed as `file:line:col: message`. */
class ScenarioFileError extends CliError {
  constructor(readonly issues: ScenarioIssue[]) {
    super(`${issues.length} problem(s) in ${issues[0]?.file ?? 'the scenario'}; nothing was run`);
  }
}

function parseSeed(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) {
    throw new InvalidArgumentError('the seed is a whole number from 0 to 4294967295.');
  }
  return Number(v);
}

function parseDepth(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 64) {
    throw new InvalidArgumentError('the PCT depth is a whole number from 1 to 64.');
  }
  return Number(v);
}

function parseRuns(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1_000_000) {
    throw new InvalidArgumentError('the number of runs is a whole number from 1 to 1000000.');
  }
  return Number(v);
}

function parsePort(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) {
    throw new InvalidArgumentError('the port is a whole number from 0 (any free port) to 65535.');
  }
  return Number(v);
}

/** Options shared by the commands that run a scenario. */
interface RunFlags {
  seed?: number;
  strategy?: string;
  depth?: number;
  json?: boolean;
}

function schedulerFrom(sc: CompiledScenario, o: RunFlags): SchedulerOptions | undefined {
  if (o.strategy === undefined && o.depth === undefined) return undefined;
  const strategy = (o.strategy ?? sc.scheduler.strategy) as SchedulerOptions['strategy'];
  if (strategy === 'pct') {
    const depth = o.depth ?? (sc.scheduler.strategy === 'pct' ? sc.scheduler.depth : undefined);
    return { strategy: 'pct', ...(depth === undefined ? {} : { depth }) };
  }
  return { strategy };
}

function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel.startsWith('..') ? p : rel;
}

/** Loads a scenario (the built-in default if `file` is undefined); throws CliError on problems. */
function load(file: string | undefined): CompiledScenario {
  const path = file ?? displayPath(DEFAULT_SCENARIO);
  let r: ReturnType<typeof loadScenarioFile>;
  try {
    r = loadScenarioFile(path);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (!r.ok) throw new ScenarioFileError(r.issues);
  return r.scenario;
}

/** A run saved by `run --view-json`. */
function parseViewData(text: string, file: string): ViewData {
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch (e) {
    throw new CliError(`${file} is not JSON: ${(e as Error).message}`);
  }
  const v = d as Partial<ViewData> | null;
  if (v?.version !== 1 || !Array.isArray(v.rows) || !Array.isArray(v.slices) || !Array.isArray(v.buffers)) {
    throw new CliError(`${file} is not a run saved by "dmabuf-lab run --view-json" (version 1)`);
  }
  return v as ViewData;
}

/** The visualiser's page of a run (one self-contained HTML file). */
export function viewHtml(a: RunArtifacts, sc: CompiledScenario): Promise<string> {
  return renderHtml(buildViewData(a, sc), buildChromeTrace(a));
}

function runAndTrace(
  sc: CompiledScenario,
  o: RunFlags & { trace?: string; html?: string; viewJson?: string },
): Promise<RunArtifacts> {
  return runScenario(sc, { seed: o.seed, scheduler: schedulerFrom(sc, o) }).then(async (a) => {
    if (o.viewJson !== undefined) {
      try {
        writeFileSync(o.viewJson, `${JSON.stringify(buildViewData(a, sc))}\n`);
      } catch (e) {
        throw new CliError(`cannot write the run's view data to "${o.viewJson}": ${(e as Error).message}`);
      }
    }
    if (o.html !== undefined) {
      const html = await viewHtml(a, sc);
      try {
        writeFileSync(o.html, html);
      } catch (e) {
        throw new CliError(`cannot write the visualiser to "${o.html}": ${(e as Error).message}`);
      }
      process.stderr.write(
        `html: the visualiser written to ${o.html}; open it in a browser (no server needed)\n`,
      );
    }
    if (o.trace !== undefined) {
      const trace = buildChromeTrace(a);
      try {
        writeFileSync(o.trace, chromeTraceJson(trace));
      } catch (e) {
        throw new CliError(`cannot write the trace to "${o.trace}": ${(e as Error).message}`);
      }
      process.stderr.write(
        `trace: ${trace.traceEvents.length} events written to ${o.trace}; open it at https://ui.perfetto.dev\n`,
      );
    }
    return a;
  });
}

function strategyOption(def?: string): Option {
  const o = new Option(
    '--strategy <name>',
    def === undefined ? "thread scheduling strategy (default: the scenario's)" : 'thread scheduling strategy',
  ).choices(['fifo', 'random', 'pct']);
  return def === undefined ? o : o.default(def);
}

/** Builds the command-line program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('dmabuf-lab')
    .description('An executable model of the Linux DMA-BUF stack in deterministic virtual time')
    .option('--debug', 'print stack traces of internal errors')
    .option('--no-color', 'no colours (NO_COLOR=1 does the same)')
    .exitOverride()
    .showHelpAfterError('(run "dmabuf-lab --help" for the commands and options)')
    .configureOutput({ outputError: (s, write) => write(pc.red(s)) });

  program
    .command('run')
    .description('run a scenario (the built-in default without one) and print what happened in virtual time')
    .argument('[scenario]', 'a scenario file (YAML)')
    .option('--seed <n>', "seed of every random choice (default: the scenario's)", parseSeed)
    .addOption(strategyOption())
    .option('--depth <d>', 'PCT bug depth (with --strategy pct)', parseDepth)
    .option('--trace <file>', 'write a Chrome trace-event JSON file (open it in the Perfetto UI)')
    .option('--html <file>', 'write the visualiser as one self-contained HTML file (opens from disk)')
    .option('--view-json <file>', 'write the data the visualiser shows (for "dmabuf-lab view <file>")')
    .option('--json', 'print the report as JSON')
    .action(
      async (
        file: string | undefined,
        o: RunFlags & { trace?: string; html?: string; viewJson?: string },
      ) => {
        const sc = load(file);
        const a = await runAndTrace(sc, o);
        const d = summaryData(a);
        if (o.json) process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
        else process.stdout.write(renderSummary(d));
        if (!d.ok) process.exitCode = 1;
      },
    );

  program
    .command('view')
    .description(
      'serve the visualiser of a run on 127.0.0.1 (runs the scenario first; the default scenario without one)',
    )
    .argument(
      '[run]',
      'a scenario file (YAML), a run saved by "run --view-json" or a page saved by "run --html"',
    )
    .option('--seed <n>', "seed of every random choice (default: the scenario's)", parseSeed)
    .addOption(strategyOption())
    .option('--depth <d>', 'PCT bug depth (with --strategy pct)', parseDepth)
    .option('--port <n>', 'port to listen on (default: a free one)', parsePort, 0)
    .option('--no-open', 'do not open it in the default browser (it opens only from a terminal anyway)')
    .action(async (file: string | undefined, o: RunFlags & { port: number; open?: boolean }) => {
      let html: string;
      if (file !== undefined && /\.(html?|json)$/i.test(file)) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (e) {
          throw new CliError(`cannot read "${file}": ${(e as Error).message}`);
        }
        html = file.toLowerCase().endsWith('.json')
          ? await renderHtml(parseViewData(text, file), null)
          : text;
      } else {
        const sc = load(file);
        html = await viewHtml(await runScenario(sc, { seed: o.seed, scheduler: schedulerFrom(sc, o) }), sc);
      }
      const s = await serveView(html, o.port).catch((e: Error) => {
        throw new CliError(`cannot listen on 127.0.0.1:${o.port}: ${e.message}`);
      });
      process.stdout.write(`visualiser: ${s.url}  (Ctrl-C to stop)\n`);
      if (o.open !== false && process.stdout.isTTY) s.open();
    });

  program
    .command('check')
    .description('run a scenario and report only the kernel rules it breaks (exit code 1 if any)')
    .argument('<scenario>', 'a scenario file (YAML)')
    .option('--seed <n>', 'seed of every random choice', parseSeed)
    .addOption(strategyOption())
    .option('--depth <d>', 'PCT bug depth (with --strategy pct)', parseDepth)
    .option('--json', 'print the reports as JSON')
    .action(async (file: string, o: RunFlags) => {
      const sc = load(file);
      const { result: r } = await runScenario(sc, { seed: o.seed, scheduler: schedulerFrom(sc, o) });
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ scenario: r.scenario, seed: r.seed, scheduler: r.scheduler, status: r.status, reports: r.reports }, null, 2)}\n`,
        );
      } else if (r.status === 'skipped') {
        process.stdout.write(pc.yellow(`${sc.file}: skipped: ${r.skipped}\n`));
      } else if (r.reports.length === 0) {
        process.stdout.write(`${sc.file}: ${pc.green('no rule broken')} (seed ${r.seed}, run ${r.status})\n`);
      } else {
        process.stdout.write(
          `${sc.file}: ${pc.red(`${r.reports.length} rule report(s)`)} (seed ${r.seed}, run ${r.status})\n`,
        );
        for (const rep of r.reports) {
          process.stdout.write(
            `  ${pc.red(`[${rep.type}] ${rep.rule}`)} at +${formatNs(rep.time)} in ${rep.context.name}\n`,
          );
          for (const l of rep.message.split('\n')) process.stdout.write(`      ${l}\n`);
        }
      }
      if (r.reports.length > 0) process.exitCode = 1;
    });

  program
    .command('explore')
    .description(
      'run a scenario under many schedules and print the seeds that broke an expectation or a rule',
    )
    .argument('<scenario>', 'a scenario file (YAML)')
    .requiredOption('--runs <n>', 'how many runs (seeds)', parseRuns)
    .option('--seed <n>', 'first seed (the runs use seed, seed+1, ...)', parseSeed, 1)
    .addOption(strategyOption('pct'))
    .option('--depth <d>', 'PCT bug depth (with --strategy pct)', parseDepth)
    .option('--json', 'print the findings as JSON')
    .action(async (file: string, o: RunFlags & { runs: number }) => {
      const sc = load(file);
      const scheduler = schedulerFrom(sc, o)!;
      const tty = process.stderr.isTTY === true;
      const failing: { seed: number; reasons: string[]; replay: string }[] = [];
      const sched = `--strategy ${scheduler.strategy}${scheduler.strategy === 'pct' && o.depth !== undefined ? ` --depth ${o.depth}` : ''}`;
      for (let i = 0; i < o.runs; i++) {
        const seed = o.seed! + i;
        const { result: r } = await runScenario(sc, { seed, scheduler });
        if (r.status === 'skipped')
          throw new CliError(`${sc.file} is skipped on this machine: ${r.skipped}`, 1);
        if (!r.ok) {
          const reasons = r.expectations.filter((e) => !e.ok).map((e) => `${e.text}: ${e.detail}`);
          const replay = `dmabuf-lab run ${sc.file} --seed ${seed} ${sched}`;
          failing.push({ seed, reasons, replay });
          if (!o.json) {
            if (tty) process.stderr.write('\r\x1b[K');
            process.stdout.write(
              `${pc.red(`seed ${seed}`)}: ${reasons[0]}${reasons.length > 1 ? ` (+${reasons.length - 1} more)` : ''}\n`,
            );
            process.stdout.write(pc.dim(`  replay: ${replay}\n`));
          }
        }
        if (tty && !o.json)
          process.stderr.write(`\rexplore: ${i + 1}/${o.runs} runs, ${failing.length} failing`);
      }
      if (tty && !o.json) process.stderr.write('\r\x1b[K');
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ scenario: sc.name, file: sc.file, scheduler, runs: o.runs, firstSeed: o.seed, failing }, null, 2)}\n`,
        );
      } else {
        const s = `${o.runs} run(s) under ${scheduler.strategy}${scheduler.strategy === 'pct' ? ` (depth ${scheduler.depth ?? 3})` : ''}, seeds ${o.seed}..${o.seed! + o.runs - 1}: `;
        process.stdout.write(
          failing.length === 0
            ? `${s}${pc.green('no failing seed')}\n`
            : `${s}${pc.red(`${failing.length} failing seed(s)`)}\n`,
        );
      }
      if (failing.length > 0) process.exitCode = 1;
    });

  program
    .command('topo')
    .description('p2pdma map type, distance and predicted 1 GiB bandwidth between every pair of devices')
    .argument(
      '[topology]',
      `a preset (${PRESET_NAMES.join(', ')}), a topology file or a scenario file (every host of a scenario with several)`,
      'workstation',
    )
    .option('--json', 'print the matrix as JSON')
    .action((arg: string, o: { json?: boolean }) => {
      let topo: ReturnType<typeof topologyPreset>;
      if ((PRESET_NAMES as readonly string[]).includes(arg)) {
        topo = topologyPreset(arg as PresetName);
      } else {
        if (!existsSync(arg)) {
          throw new CliError(`"${arg}" is neither a preset (${PRESET_NAMES.join(', ')}) nor a file`);
        }
        let text: string;
        try {
          text = readFileSync(arg, 'utf8');
        } catch (e) {
          throw new CliError(`cannot read "${arg}": ${(e as Error).message}`);
        }
        const r = loadTopologyText(text, arg);
        if (!r.ok) throw new ScenarioFileError(r.issues);
        // A scenario of several hosts: every host's matrix, in the order of `hosts`.
        const sc = r.scenario === undefined ? null : loadScenarioText(text, arg);
        if (sc?.ok && sc.scenario.hosts.length > 1) {
          const hosts = sc.scenario.hosts;
          if (hosts.every((h) => h.topology === null)) {
            throw new CliError(
              `scenario "${r.scenario}" in ${arg} names no topology (its hosts run on the default machine)`,
            );
          }
          const each = hosts.map((h) => ({ host: h.name, matrix: h.topology && topoMatrix(h.topology) }));
          if (o.json) {
            process.stdout.write(`${JSON.stringify({ scenario: r.scenario, hosts: each }, null, 2)}\n`);
          } else {
            const parts = each.map(({ host, matrix }) =>
              matrix === null
                ? `host ${host}: the default machine (no topology)\n`
                : `host ${host}:\n${renderTopoMatrix(matrix)}`,
            );
            process.stdout.write(parts.join('\n'));
          }
          return;
        }
        if (r.topology === null) {
          throw new CliError(
            `scenario "${r.scenario}" in ${arg} names no topology (it runs on the default machine)`,
          );
        }
        topo = r.topology;
      }
      const m = topoMatrix(topo);
      process.stdout.write(o.json ? `${JSON.stringify(m, null, 2)}\n` : renderTopoMatrix(m));
    });

  program
    .command('validate')
    .description('check a scenario file without running it')
    .argument('<scenario>', 'a scenario file (YAML)')
    .action((file: string) => {
      const sc = load(file);
      let steps = 0;
      const count = (list: CompiledScenario['processes'][number]['steps']) => {
        for (const s of list) {
          steps++;
          for (const b of s.branches ?? []) count(b.steps);
        }
      };
      for (const p of sc.processes) count(p.steps);
      process.stdout.write(
        `${sc.file}: ${pc.green('ok')}: scenario "${sc.name}", ${sc.processes.length} process(es), ${steps} step(s), ${sc.expect.length} expectation(s)\n`,
      );
    });

  program
    .command('schema')
    .description('print the JSON Schema of scenario files (what schema/scenario.schema.json holds)')
    .action(() => {
      process.stdout.write(scenarioJsonSchemaText());
    });

  return program;
}

/** Runs the CLI with `argv` (as in `process.argv`). */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed its message already; help and version are not errors.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof ScenarioFileError) {
      for (const i of e.issues) process.stderr.write(`${formatIssue(i)}\n`);
      process.stderr.write(`${pc.red('error:')} ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`${pc.red('error:')} ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    const debug = argv.includes('--debug');
    process.stderr.write(`${pc.red('internal error:')} ${(e as Error)?.message ?? String(e)}\n`);
    if (debug) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    else process.stderr.write('(this is a bug in dmabuf-lab; run again with --debug for the stack trace)\n');
    process.exitCode = 70;
  }
}

await main(process.argv);
