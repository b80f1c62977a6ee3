/**
 * Explicit-sync steps through the uAPI of sw_sync and sync_file
 * (drivers/dma-buf/sw_sync.c, sync_file.c; include/uapi/linux/sync_file.h), written
 * the way libsync and the kernel's sync selftests call it:
 *
 * - `sw_sync_timeline`: open /sys/kernel/debug/sync/sw_sync (a new timeline);
 * - `sw_sync_fence`: SW_SYNC_IOC_CREATE_FENCE, a sync_file for a point on a timeline
 *   (without `value`, the point after the last one this process created on it);
 * - `sw_sync_inc`: SW_SYNC_IOC_INC, advance a timeline (signals the points passed);
 * - `sync_merge`: SYNC_IOC_MERGE of two or more sync_files, left to right;
 * - `sync_wait`: libsync's sync_wait(): poll for POLLIN, -ETIME on timeout;
 * - `sync_info`: SYNC_IOC_FILE_INFO with the two-call pattern, optionally checking the
 *   status and the number of fences;
 * - `poll`: poll(2) on fds with the events asked, optionally checking revents.
 */
import { z } from 'zod';
import { SW_SYNC_PATH } from '../../kernel/dma-buf/sw-sync.ts';
import { errno } from '../../kernel/errno.ts';
import { O_RDWR } from '../../kernel/fcntl.ts';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI } from '../../kernel/poll.ts';
import {
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
} from '../../uapi/ioctl.ts';
import {
  pollfd,
  swSyncCreateFenceData,
  syncFenceInfo,
  syncFileInfo,
  syncMergeData,
} from '../../uapi/structs.ts';
import type { Sys } from '../../uapi/sys.ts';
import { identifier, registerStepKind, type StepContext } from '../step-kind.ts';
import { duration, durationText } from '../units.ts';
import { fdName } from './util.ts';

const u32 = z.number().int().min(0).max(0xffffffff);

/** Last point value this process created per timeline name (for `sw_sync_fence` without a value). */
const lastPoint = new WeakMap<Sys['process'], Map<string, number>>();

function points(ctx: StepContext): Map<string, number> {
  let m = lastPoint.get(ctx.sys.process);
  if (!m) {
    m = new Map();
    lastPoint.set(ctx.sys.process, m);
  }
  return m;
}

registerStepKind({
  kind: 'sw_sync_timeline',
  summary: 'Opens /sys/kernel/debug/sync/sw_sync: a new software timeline at value 0 (binds its fd).',
  args: z.null().or(z.strictObject({})).meta({ description: 'No arguments (write `sw_sync_timeline: {}`).' }),
  produces: 'fd',
  label: () => 'sw_sync_timeline',
  async run(ctx) {
    const fd = await ctx.sys.open(SW_SYNC_PATH, O_RDWR);
    return fd < 0
      ? { ret: fd }
      : { ret: fd, value: { type: 'fd', fd, what: 'sw_sync timeline' }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'sw_sync_fence',
  summary:
    'SW_SYNC_IOC_CREATE_FENCE: a sync_file for the point `value` of a timeline (binds its fd); without a value, the point after the last one this process created on that timeline.',
  args: z.union([
    identifier.transform((timeline) => ({
      timeline,
      value: undefined as number | undefined,
      name: undefined,
    })),
    z.strictObject({
      timeline: fdName.meta({ description: 'The timeline (a name bound by sw_sync_timeline).' }),
      value: u32.optional().meta({ description: 'The point: signals when the timeline reaches it.' }),
      name: z
        .string()
        .max(31)
        .optional()
        .meta({ description: 'The fence name (ignored by sw_sync, as in 6.12).' }),
    }),
  ]),
  produces: 'fd',
  refs: (a) => [{ name: a.timeline, type: 'fd', path: ['timeline'] }],
  label: (a) => `sw_sync_fence ${a.timeline}${a.value === undefined ? ' next' : ` value ${a.value}`}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const last = points(ctx);
    const value = a.value ?? (last.get(a.timeline) ?? 0) + 1;
    const d = ctx.scratch(swSyncCreateFenceData.size, 8);
    sys.writeStruct(swSyncCreateFenceData, d, { value, name: a.name ?? 'fence' });
    const ret = await sys.ioctl(ctx.fd(a.timeline), SW_SYNC_IOC_CREATE_FENCE, d);
    if (ret < 0) return { ret };
    last.set(a.timeline, value);
    const fd = sys.readStruct(swSyncCreateFenceData, d).fence;
    return { ret: fd, value: { type: 'fd', fd, what: 'sync_file' }, summary: `fd ${fd} (point ${value})` };
  },
});

registerStepKind({
  kind: 'sw_sync_inc',
  summary: 'SW_SYNC_IOC_INC: advances a timeline (by 1 unless told), signalling every point it passes.',
  args: z.union([
    identifier.transform((timeline) => ({ timeline, by: 1 })),
    z.strictObject({
      timeline: fdName.meta({ description: 'The timeline.' }),
      by: u32.default(1).meta({ description: 'How much to advance (default 1).' }),
    }),
  ]),
  refs: (a) => [{ name: a.timeline, type: 'fd', path: ['timeline'] }],
  label: (a) => `sw_sync_inc ${a.timeline}${a.by === 1 ? '' : ` by ${a.by}`}`,
  async run(ctx, a) {
    const p = ctx.scratch(4, 4);
    ctx.sys.writeU32(p, a.by);
    return { ret: await ctx.sys.ioctl(ctx.fd(a.timeline), SW_SYNC_IOC_INC, p) };
  },
});

registerStepKind({
  kind: 'sync_merge',
  summary:
    'SYNC_IOC_MERGE: one sync_file that signals when all the given ones have (merged left to right; binds its fd).',
  args: z.strictObject({
    fences: z.array(fdName).min(2).meta({ description: 'Two or more sync_file names.' }),
    name: z
      .string()
      .max(31)
      .optional()
      .meta({ description: 'Name of the merged sync_file (default "merged").' }),
  }),
  produces: 'fd',
  refs: (a) => a.fences.map((name, i) => ({ name, type: 'fd' as const, path: ['fences', i] })),
  label: (a) => `sync_merge ${a.fences.join(' + ')}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const d = ctx.scratch(syncMergeData.size, 8);
    let acc = ctx.fd(a.fences[0]);
    let temp = -1;
    for (let i = 1; i < a.fences.length; i++) {
      sys.writeStruct(syncMergeData, d, { name: a.name ?? 'merged', fd2: ctx.fd(a.fences[i]), fence: -1 });
      const ret = await sys.ioctl(acc, SYNC_IOC_MERGE, d);
      if (temp >= 0) await sys.close(temp);
      if (ret < 0) return { ret };
      acc = sys.readStruct(syncMergeData, d).fence;
      temp = acc;
    }
    return { ret: acc, value: { type: 'fd', fd: acc, what: 'sync_file' }, summary: `fd ${acc}` };
  },
});

/** poll(2) of one fd for `events`; returns [poll's result, revents]. */
async function pollOne(sys: Sys, scratch: number, fd: number, events: number, timeoutMs: number) {
  sys.writeStruct(pollfd, scratch, { fd, events, revents: 0 });
  const ret = await sys.poll(scratch, 1, timeoutMs);
  return [ret, sys.readStruct(pollfd, scratch).revents] as const;
}

/** A timeout in ns as poll's milliseconds (rounded up; -1 waits forever). */
function pollTimeout(ns: number | undefined): number {
  return ns === undefined ? -1 : Math.ceil(ns / 1_000_000);
}

registerStepKind({
  kind: 'sync_wait',
  summary:
    "libsync's sync_wait(): polls a sync_file (or any fence fd) for POLLIN; fails with ETIME if the timeout passes first.",
  args: z.union([
    identifier.transform((fence) => ({ fence, timeout: undefined as number | undefined })),
    z.strictObject({
      fence: fdName.meta({ description: 'The sync_file to wait on.' }),
      timeout: duration
        .optional()
        .meta({ description: 'Give up after this long (ms granularity; default never).' }),
    }),
  ]),
  refs: (a) => [{ name: a.fence, type: 'fd', path: ['fence'] }],
  label: (a) => `sync_wait ${a.fence}${a.timeout === undefined ? '' : ` timeout ${durationText(a.timeout)}`}`,
  async run(ctx, a) {
    const [ret, revents] = await pollOne(
      ctx.sys,
      ctx.scratch(pollfd.size, 8),
      ctx.fd(a.fence),
      POLLIN,
      pollTimeout(a.timeout),
    );
    if (ret < 0) return { ret };
    if (ret === 0) return { ret: -errno.ETIME };
    return { ret: 0, summary: `revents ${pollText(revents)}`, detail: { revents: pollText(revents) } };
  },
});

const POLL_BITS: [string, number][] = [
  ['in', POLLIN],
  ['pri', POLLPRI],
  ['out', POLLOUT],
  ['err', POLLERR],
  ['hup', POLLHUP],
  ['nval', POLLNVAL],
];

/** `POLLIN|POLLOUT` for a revents word (`0` if none). */
export function pollText(mask: number): string {
  const names = POLL_BITS.filter(([, b]) => mask & b).map(([n]) => `POLL${n.toUpperCase()}`);
  return names.length ? names.join('|') : '0';
}

const pollEvent = z.enum(['in', 'pri', 'out', 'err', 'hup', 'nval']);

function pollMask(evs: readonly string[]): number {
  let m = 0;
  for (const e of evs) m |= POLL_BITS.find(([n]) => n === e)![1];
  return m;
}

registerStepKind({
  kind: 'poll',
  summary:
    'poll(2) on one fd: on a dma-buf, `in` waits for its writers (implicit sync) and `out` for all its fences; a timeout is not an error (the result is 0).',
  args: z.strictObject({
    fd: fdName.meta({ description: 'The fd to poll.' }),
    events: z
      .array(pollEvent)
      .min(1)
      .default(['in'])
      .meta({ description: 'Events to wait for: in, pri, out (default [in]).' }),
    timeout: duration
      .optional()
      .meta({ description: 'Give up after this long (ms granularity; default never).' }),
    revents: z
      .array(pollEvent)
      .optional()
      .meta({ description: 'Check: the revents reported must be exactly these ([] for none).' }),
  }),
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) =>
    `poll ${a.fd} ${a.events.join('|')}${a.timeout === undefined ? '' : ` timeout ${durationText(a.timeout)}`}`,
  async run(ctx, a) {
    const [ret, revents] = await pollOne(
      ctx.sys,
      ctx.scratch(pollfd.size, 8),
      ctx.fd(a.fd),
      pollMask(a.events),
      pollTimeout(a.timeout),
    );
    if (ret < 0) return { ret };
    const out = {
      ret,
      summary: ret === 0 ? 'timed out' : `revents ${pollText(revents)}`,
      detail: { revents: pollText(revents) },
    };
    if (a.revents && pollMask(a.revents) !== (revents & 0xffff)) {
      return { ...out, problem: `revents ${pollText(revents)}, expected ${pollText(pollMask(a.revents))}` };
    }
    return out;
  },
});

const STATUS_NAMES = { active: 0, signaled: 1 } as const;

function statusText(s: number): string {
  return s === 1 ? 'signaled' : s === 0 ? 'active' : `error ${s < 0 ? errnoText(s) : s}`;
}

function errnoText(v: number): string {
  const name = Object.entries(errno).find(([, n]) => n === -v)?.[0];
  return name ? `-${name}` : String(v);
}

registerStepKind({
  kind: 'sync_info',
  summary:
    'SYNC_IOC_FILE_INFO with the two-call pattern: the status of a sync_file and of each of its fences; optionally checks them.',
  args: z.union([
    identifier.transform((fence) => ({
      fence,
      status: undefined as 'active' | 'signaled' | 'error' | undefined,
      fences: undefined as number | undefined,
    })),
    z.strictObject({
      fence: fdName.meta({ description: 'The sync_file.' }),
      status: z
        .enum(['active', 'signaled', 'error'])
        .optional()
        .meta({ description: 'Check: the sync_file status must be this.' }),
      fences: z
        .number()
        .int()
        .min(0)
        .optional()
        .meta({ description: 'Check: the number of fences it holds.' }),
    }),
  ]),
  refs: (a) => [{ name: a.fence, type: 'fd', path: ['fence'] }],
  label: (a) => `sync_info ${a.fence}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const fd = ctx.fd(a.fence);
    const info = ctx.scratch(syncFileInfo.size, 8);
    sys.writeStruct(syncFileInfo, info, {});
    let ret = await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info);
    if (ret < 0) return { ret };
    const n = sys.readStruct(syncFileInfo, info).num_fences;
    const arr = ctx.scratch(Math.max(1, n) * syncFenceInfo.size, 8);
    sys.writeStruct(syncFileInfo, info, { num_fences: n, sync_fence_info: arr });
    ret = await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info);
    if (ret < 0) return { ret };
    const v = sys.readStruct(syncFileInfo, info);
    const fences = [];
    for (let i = 0; i < v.num_fences; i++) {
      const f = sys.readStruct(syncFenceInfo, arr + i * syncFenceInfo.size);
      fences.push({
        obj_name: f.obj_name,
        driver_name: f.driver_name,
        status: statusText(f.status),
        timestamp_ns: f.timestamp_ns.toString(),
      });
    }
    const out = {
      ret,
      summary: `"${v.name}" ${statusText(v.status)}, ${v.num_fences} fence(s)`,
      detail: { name: v.name, status: statusText(v.status), num_fences: v.num_fences, fences },
    };
    const problems: string[] = [];
    if (a.status !== undefined) {
      const ok = a.status === 'error' ? v.status < 0 : v.status === STATUS_NAMES[a.status];
      if (!ok) problems.push(`status ${statusText(v.status)}, expected ${a.status}`);
    }
    if (a.fences !== undefined && v.num_fences !== a.fences) {
      problems.push(`${v.num_fences} fence(s), expected ${a.fences}`);
    }
    return problems.length ? { ...out, problem: problems.join('; ') } : out;
  },
});
