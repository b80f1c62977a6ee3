/**
 * Steps about time, files, processes and control flow: `sleep`, `sched_yield`,
 * `close`, `cat`, `fdinfo`, `exit`, `kill`, `parallel` (branches as threads) and
 * `repeat`.
 */
import { z } from 'zod';
import { timespec } from '../../uapi/structs.ts';
import { anyStep, identifier, registerStepKind } from '../step-kind.ts';
import { duration, durationText } from '../units.ts';
import { fdName, readWholeFile } from './util.ts';

registerStepKind({
  kind: 'sleep',
  summary: 'nanosleep(2) for a duration of virtual time.',
  args: duration,
  label: (ns) => `sleep ${durationText(ns)}`,
  async run(ctx, ns) {
    const { sys } = ctx;
    const req = ctx.scratch(timespec.size, 8);
    sys.writeStruct(timespec, req, { tv_sec: BigInt(Math.floor(ns / 1e9)), tv_nsec: BigInt(ns % 1e9) });
    return { ret: await sys.nanosleep(req, 0) };
  },
});

registerStepKind({
  kind: 'sched_yield',
  summary: 'sched_yield(2): lets other runnable threads go first.',
  args: z.null().or(z.strictObject({})),
  label: () => 'sched_yield',
  async run(ctx) {
    return { ret: await ctx.sys.sched_yield() };
  },
});

registerStepKind({
  kind: 'close',
  summary: 'close(2) of a named fd; the name is forgotten.',
  args: fdName,
  refs: (name) => [{ name, type: 'fd', path: [] }],
  label: (name) => `close ${name}`,
  async run(ctx, name) {
    const ret = await ctx.sys.close(ctx.fd(name));
    if (ret >= 0) ctx.unbind(name);
    return { ret };
  },
});

registerStepKind({
  kind: 'cat',
  summary: 'Reads a whole file (a debugfs or procfs view) and shows it in the report.',
  args: z.string().regex(/^\//, { error: 'expected an absolute path such as /sys/kernel/debug/sync/info' }),
  label: (path) => `cat ${path}`,
  async run(ctx, path) {
    const t = await readWholeFile(ctx.sys, path);
    if (typeof t === 'number') return { ret: t };
    return { ret: 0, text: t, summary: `${t.length} bytes` };
  },
});

registerStepKind({
  kind: 'fdinfo',
  summary: 'Reads /proc/self/fdinfo/<fd> of a named fd and shows it in the report.',
  args: fdName,
  refs: (name) => [{ name, type: 'fd', path: [] }],
  label: (name) => `fdinfo ${name}`,
  async run(ctx, name) {
    const t = await readWholeFile(ctx.sys, `/proc/self/fdinfo/${ctx.fd(name)}`);
    if (typeof t === 'number') return { ret: t };
    return { ret: 0, text: t, summary: `${t.split('\n').filter(Boolean).length} lines` };
  },
});

registerStepKind({
  kind: 'exit',
  summary: 'exit_group(2) with a code: the whole process ends here, releasing everything it holds.',
  args: z.number().int().min(0).max(255),
  label: (code) => `exit ${code}`,
  async run(ctx, code) {
    return ctx.sys.exit(code);
  },
});

registerStepKind({
  kind: 'kill',
  summary:
    'A fault to inject: SIGKILL to another process of the scenario (by name); it exits with code 137 at its next syscall or interruptible wait.',
  args: identifier.meta({ description: 'The name of the process to kill.' }),
  refs: (name) => [{ name, type: 'process', path: [] }],
  label: (name) => `kill -9 ${name}`,
  async run(ctx, name) {
    return { ret: ctx.kill(name) };
  },
});

registerStepKind({
  kind: 'parallel',
  summary:
    'Runs each branch (a name and a list of steps) in its own thread of this process, and waits for all of them.',
  args: z
    .record(identifier, z.array(anyStep).min(1))
    .refine((r) => Object.keys(r).length >= 1, { error: 'expected at least one branch' })
    .meta({ description: 'Branches: thread name -> steps.' }),
  nested: (r) => Object.entries(r).map(([name, steps]) => ({ name, steps, path: [name] })),
  label: (r) => `parallel ${Object.keys(r).join(', ')}`,
  async run(ctx, _r, step) {
    return { ret: await ctx.runBranches(step.branches ?? []) };
  },
});

registerStepKind({
  kind: 'repeat',
  summary: 'Runs a list of steps a number of times in this thread (names may be bound again each time).',
  args: z.strictObject({
    times: z.number().int().min(1).max(1_000_000).meta({ description: 'How many times.' }),
    steps: z.array(anyStep).min(1).meta({ description: 'The steps of one round.' }),
  }),
  nested: (a) => [{ name: '', steps: a.steps, path: ['steps'] }],
  label: (a) => `repeat ${a.times}x`,
  async run(ctx, a, step) {
    const body = step.branches?.[0]?.steps ?? [];
    for (let i = 0; i < a.times; i++) {
      const r = await ctx.runSequence(body, i);
      if (r < 0) return { ret: r };
    }
    return { ret: 0 };
  },
});
