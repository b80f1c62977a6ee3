#!/usr/bin/env node
/**
 * The `dmabuf-lab` command.
 *
 * `dmabuf-lab run` runs the built-in default and prints what happened in virtual time.
 * Exit codes: 0 fine, 1 a rule was broken or the run did not complete, 2 bad input,
 * 70 an internal error (the stack trace is printed only with `--debug`).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { type FenceDemoResult, runFenceDemo } from '../demo/fence-demo.ts';
import { formatMs, formatNs } from '../report/format.ts';
import type { LogEntry, SchedulerOptions } from '../sim/index.ts';

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

/** Events shown in the readable timeline (the full log is in `--json`). */
const SHOWN = new Set([
  'note',
  'dma_fence_init',
  'dma_fence_signaled',
  'dma_fence_wait_start',
  'dma_fence_wait_end',
]);

function describe(e: LogEntry): string {
  const a = e.args ?? {};
  if (e.name === 'note') return pc.cyan(String(a.msg));
  if (e.name.startsWith('dma_fence'))
    return `${e.name.padEnd(22)} ${a.driver} ${a.timeline} ctx ${a.context} seqno ${a.seqno}`;
  return e.name;
}

function printDemo(r: FenceDemoResult, strategy: string): void {
  const out = process.stdout;
  out.write(`${pc.bold('dmabuf-lab')}: built-in default run: two fence timelines, merged, waited on\n`);
  out.write(`seed ${r.seed}, scheduler ${strategy}\n\n`);
  out.write(pc.dim(`${'time'.padStart(10)}  ${'context'.padEnd(10)}  event\n`));
  for (const e of r.log) {
    if (!SHOWN.has(e.name)) continue;
    out.write(`${formatMs(e.t)}  ${e.ctx.padEnd(10)}  ${describe(e)}\n`);
  }
  out.write('\n');
  out.write(
    `first waiter woke at ${formatNs(r.firstWokeAt)}; merged-fence waiter woke at ${formatNs(r.mergedWokeAt)}\n`,
  );
  out.write(
    `run ${r.run.status} at ${formatNs(r.run.now)} virtual time; ${r.log.length} log entries, log hash ${r.logHash}\n`,
  );
  if (r.reports.length === 0) {
    out.write(`${pc.green('no rule reports')}\n`);
  } else {
    out.write(pc.red(`${r.reports.length} report(s):\n`));
    for (const rep of r.reports) out.write(`  [${rep.type}] ${rep.rule}: ${rep.message}\n`);
  }
}

/** Builds the command-line program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('dmabuf-lab')
    .description('An executable model of the Linux DMA-BUF stack in deterministic virtual time')
    .option('--debug', 'print stack traces of internal errors')
    .exitOverride()
    .showHelpAfterError('(run "dmabuf-lab --help" for the commands and options)')
    .configureOutput({ outputError: (s, write) => write(pc.red(s)) });

  program
    .command('run')
    .description('run the built-in default and print what happened in virtual time')
    .argument('[scenario]', 'a scenario file (scenario files are not supported yet)')
    .option('--seed <n>', 'seed of every random choice', parseSeed, 1)
    .addOption(
      new Option('--strategy <name>', 'thread scheduling strategy')
        .choices(['fifo', 'random', 'pct'])
        .default('fifo'),
    )
    .option('--depth <d>', 'PCT bug depth (with --strategy pct)', parseDepth, 3)
    .option('--json', 'print the result as JSON (the whole event log included)')
    .action(
      async (
        scenario: string | undefined,
        o: { seed: number; strategy: string; depth: number; json?: boolean },
      ) => {
        if (scenario !== undefined) {
          throw new CliError(
            `cannot run "${scenario}": scenario files are not supported yet. Run "dmabuf-lab run" without a file for the built-in default.`,
          );
        }
        const scheduler: SchedulerOptions =
          o.strategy === 'pct'
            ? { strategy: 'pct', depth: o.depth }
            : { strategy: o.strategy as 'fifo' | 'random' };
        const r = await runFenceDemo({ seed: o.seed, scheduler });
        if (o.json) {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        } else {
          printDemo(r, o.strategy);
        }
        if (r.run.status !== 'completed' || r.reports.length > 0 || r.exitCode !== 0) process.exitCode = 1;
      },
    );
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
