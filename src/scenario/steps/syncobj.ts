/**
 * drm_syncobj steps through the DRM uAPI (drivers/gpu/drm/drm_syncobj.c,
 * include/uapi/drm/drm.h), on a DRM node such as vgem's /dev/dri/renderD128:
 *
 * - `drm_open`: opens a DRM node (binds its fd);
 * - `syncobj_create`: DRM_IOCTL_SYNCOBJ_CREATE, then HANDLE_TO_FD: the syncobj is bound as
 *   its fd, so it can be passed to other processes over a channel like any fd;
 * - `syncobj_signal`: DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL of one timeline point;
 * - `syncobj_wait`: DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT for one point, with an absolute
 *   CLOCK_MONOTONIC deadline `timeout` from now (-ETIME when it passes), optionally
 *   WAIT_FOR_SUBMIT (wait for the point to be submitted first) or WAIT_AVAILABLE;
 * - `syncobj_query`: DRM_IOCTL_SYNCOBJ_QUERY, optionally checking the timeline value.
 *
 * Each step turns the syncobj fd into a handle on the DRM file (FD_TO_HANDLE), makes its
 * call, and destroys that handle again, so the fd stays the only reference a step leaves.
 */
import { z } from 'zod';
import { O_CLOEXEC, O_RDWR } from '../../kernel/fcntl.ts';
import {
  DRM_SYNCOBJ_CREATE_SIGNALED,
  DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
  Drm,
} from '../../uapi/drm.ts';
import { ErrnoError } from '../../uapi/errno-error.ts';
import { registerStepKind, type StepContext, type StepOutcome } from '../step-kind.ts';
import { duration, durationText } from '../units.ts';
import { fdName } from './util.ts';

const point = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Runs `f` with a handle for the syncobj fd `name` on the DRM file `drm`; errno results become step results. */
async function withHandle(
  ctx: StepContext,
  drmName: string,
  syncobjName: string,
  f: (drm: Drm, handle: number) => Promise<StepOutcome>,
): Promise<StepOutcome> {
  const drm = new Drm(ctx.sys, ctx.fd(drmName));
  let handle = -1;
  try {
    handle = await drm.syncobjFdToHandle(ctx.fd(syncobjName));
    return await f(drm, handle);
  } catch (e) {
    if (e instanceof ErrnoError) return { ret: -e.errno };
    throw e;
  } finally {
    if (handle >= 0) await drm.syncobjDestroy(handle).catch(() => undefined);
  }
}

registerStepKind({
  kind: 'drm_open',
  summary: 'Opens a DRM node read-write (default /dev/dri/renderD128, vgem) and binds its fd.',
  args: z.union([
    z.null().transform(() => ({ path: '/dev/dri/renderD128' })),
    z.strictObject({
      path: z.string().default('/dev/dri/renderD128').meta({ description: 'The DRM node.' }),
    }),
  ]),
  produces: 'fd',
  label: (a) => `drm_open ${a.path}`,
  async run(ctx, a) {
    const fd = await ctx.sys.open(a.path, O_RDWR | O_CLOEXEC);
    return fd < 0
      ? { ret: fd }
      : { ret: fd, value: { type: 'fd', fd, what: `DRM ${a.path}` }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'syncobj_create',
  summary: 'DRM_IOCTL_SYNCOBJ_CREATE (signalled if asked) and HANDLE_TO_FD: binds the syncobj as an fd.',
  args: z.union([
    fdName.transform((drm) => ({ drm, signaled: false })),
    z.strictObject({
      drm: fdName.meta({ description: 'The DRM node (a name bound by drm_open).' }),
      signaled: z.boolean().default(false).meta({ description: 'Create it with a signalled fence.' }),
    }),
  ]),
  produces: 'fd',
  refs: (a) => [{ name: a.drm, type: 'fd', path: ['drm'] }],
  label: (a) => `syncobj_create on ${a.drm}${a.signaled ? ' signaled' : ''}`,
  async run(ctx, a) {
    const drm = new Drm(ctx.sys, ctx.fd(a.drm));
    try {
      const handle = await drm.syncobjCreate(a.signaled ? DRM_SYNCOBJ_CREATE_SIGNALED : 0);
      const fd = await drm.syncobjHandleToFd(handle);
      await drm.syncobjDestroy(handle);
      return { ret: fd, value: { type: 'fd', fd, what: 'drm_syncobj' }, summary: `fd ${fd}` };
    } catch (e) {
      if (e instanceof ErrnoError) return { ret: -e.errno };
      throw e;
    }
  },
});

registerStepKind({
  kind: 'syncobj_signal',
  summary: 'DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL: signals timeline point `point` of a syncobj.',
  args: z.strictObject({
    drm: fdName.meta({ description: 'The DRM node.' }),
    syncobj: fdName.meta({ description: 'The syncobj (a name bound by syncobj_create or received).' }),
    point: point.meta({ description: 'The timeline point (0: a binary signal).' }),
  }),
  refs: (a) => [
    { name: a.drm, type: 'fd', path: ['drm'] },
    { name: a.syncobj, type: 'fd', path: ['syncobj'] },
  ],
  label: (a) => `syncobj_signal ${a.syncobj} point ${a.point}`,
  run: (ctx, a) =>
    withHandle(ctx, a.drm, a.syncobj, async (drm, h) => {
      await drm.syncobjTimelineSignal([h], [a.point]);
      return { ret: 0 };
    }),
});

registerStepKind({
  kind: 'syncobj_wait',
  summary:
    'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT for one point, giving up with ETIME after `timeout`; `for_submit` also waits for the point to be submitted, `available` only for it to exist.',
  args: z.strictObject({
    drm: fdName.meta({ description: 'The DRM node.' }),
    syncobj: fdName.meta({ description: 'The syncobj.' }),
    point: point.meta({ description: 'The timeline point to wait for.' }),
    timeout: duration.default(1_000_000_000).meta({ description: 'How long to wait (default 1s).' }),
    for_submit: z.boolean().default(false).meta({ description: 'DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT.' }),
    available: z.boolean().default(false).meta({ description: 'DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE.' }),
  }),
  refs: (a) => [
    { name: a.drm, type: 'fd', path: ['drm'] },
    { name: a.syncobj, type: 'fd', path: ['syncobj'] },
  ],
  label: (a) => `syncobj_wait ${a.syncobj} point ${a.point} timeout ${durationText(a.timeout)}`,
  run: (ctx, a) =>
    withHandle(ctx, a.drm, a.syncobj, async (drm, h) => {
      const flags =
        (a.for_submit ? DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT : 0) |
        (a.available ? DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE : 0);
      await drm.syncobjTimelineWait([h], [a.point], {
        timeoutNsec: ctx.sys.now() + BigInt(a.timeout),
        flags,
      });
      return { ret: 0 };
    }),
});

registerStepKind({
  kind: 'syncobj_query',
  summary:
    'DRM_IOCTL_SYNCOBJ_QUERY: the highest signalled point of a timeline syncobj (or the last submitted one), optionally checked.',
  args: z.strictObject({
    drm: fdName.meta({ description: 'The DRM node.' }),
    syncobj: fdName.meta({ description: 'The syncobj.' }),
    last_submitted: z
      .boolean()
      .default(false)
      .meta({ description: 'DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED.' }),
    expect: point.optional().meta({ description: 'The value the query must return.' }),
  }),
  refs: (a) => [
    { name: a.drm, type: 'fd', path: ['drm'] },
    { name: a.syncobj, type: 'fd', path: ['syncobj'] },
  ],
  label: (a) => `syncobj_query ${a.syncobj}${a.last_submitted ? ' last submitted' : ''}`,
  run: (ctx, a) =>
    withHandle(ctx, a.drm, a.syncobj, async (drm, h) => {
      const [v] = await drm.syncobjQuery([h], a.last_submitted ? DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED : 0);
      const got = Number(v);
      if (a.expect !== undefined && got !== a.expect) {
        return { ret: 0, summary: `point ${got}`, problem: `expected point ${a.expect}, got ${got}` };
      }
      return { ret: 0, summary: `point ${got}` };
    }),
});
