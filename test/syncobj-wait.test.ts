/**
 * IGT's syncobj_wait (and the syncobj_basic checks) against the model's drm_syncobj on
 * /dev/dri/renderD128, in virtual time: each test is named after the IGT subtest it
 * ports. IGT's timers (SIGEV_THREAD) are threads that sleep first; its pthreads are
 * `sys.spawnThread`.
 *
 * Differences from the IGT source, where 6.12 and IGT disagree or the model lacks a
 * feature:
 * - invalid-wait-zero-handles: 6.12's SYNCOBJ_WAIT returns 0 for count_handles == 0 (it
 *   is how userspace probes for flag support); older IGT expected -EINVAL.
 * - wait-any-interrupted / wait-all-interrupted need signal delivery to a thread blocked
 *   in an ioctl, which the model only has for process exit; not ported.
 */
import { describe, expect, test } from 'vitest';
import { SW_SYNC_GET_DEADLINE, swSyncGetDeadline } from '../src/index.ts';
import {
  DRM_CAP_SYNCOBJ,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_SYNCOBJ_DESTROY,
  DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_RESET,
  DRM_IOCTL_SYNCOBJ_SIGNAL,
  DRM_SYNCOBJ_CREATE_SIGNALED,
  DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
  DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE,
  DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
  drmGetCap,
  drmSyncobjCreate,
  drmSyncobjDestroy,
} from '../src/uapi/drm.ts';
import {
  NSECS_PER_SEC,
  openRender,
  popcount,
  runProgram,
  SHORT_TIME_NSEC,
  setTimer,
  shortTimeout,
  sleepNsec,
  swSyncTimelineCreate,
  swSyncTimelineCreateFence,
  swSyncTimelineInc,
  syncobjArrayIoctl,
  syncobjAttachSwSync,
  syncobjCreate,
  syncobjDestroy,
  syncobjHandleIoctl,
  syncobjImportSyncFile,
  syncobjReset,
  syncobjSignal,
  syncobjTrigger,
  syncobjWaitErr,
  syncobjWaitRaw,
  withDrm,
} from './helpers/drm.ts';

const EINVAL = -22;
const ENOENT = -2;
const ETIME = -62;
const UINT64_MAX = (1n << 64n) - 1n;

/** IGT's test flags. */
const WAIT_FOR_SUBMIT = 1 << 0;
const WAIT_ALL = 1 << 1;
const WAIT_UNSUBMITTED = 1 << 2;
const WAIT_SUBMITTED = 1 << 3;
const WAIT_SIGNALED = 1 << 4;
const WAIT_FLAGS_MAX = (1 << 5) - 1;

function flagsForTestFlags(t: number): number {
  let f = 0;
  if (t & WAIT_FOR_SUBMIT) f |= DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
  if (t & WAIT_ALL) f |= DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL;
  return f;
}

function subtestName(kind: string, flags: number, err: number): string {
  return (
    `${err === EINVAL ? 'invalid-' : ''}${kind}` +
    `${flags & WAIT_ALL ? '-all' : ''}${flags & WAIT_FOR_SUBMIT ? '-for-submit' : ''}` +
    `${flags & WAIT_UNSUBMITTED ? '-unsubmitted' : ''}${flags & WAIT_SUBMITTED ? '-submitted' : ''}` +
    `${flags & WAIT_SIGNALED ? '-signaled' : ''}`
  );
}

describe('syncobj_wait', () => {
  test(
    'has_syncobj_wait: the cap is set and waiting on handle 0 is ENOENT',
    withDrm(async (sys, fd) => {
      const a = sys.allocStruct(drmGetCap, { capability: DRM_CAP_SYNCOBJ });
      expect(await sys.ioctl(fd, DRM_IOCTL_GET_CAP, a)).toBe(0);
      expect(sys.readStruct(drmGetCap, a).value).toBe(1n);
      expect(await syncobjWaitErr(sys, fd, [0], 0, 0)).toBe(ENOENT);
    }),
  );

  test(
    'invalid-wait-bad-flags',
    withDrm(async (sys, fd) => {
      expect((await syncobjWaitRaw(sys, fd, { flags: 0xdeadbeef })).rc).toBe(EINVAL);
      // 6.12: SYNCOBJ_WAIT does not take WAIT_AVAILABLE (only TIMELINE_WAIT does).
      expect((await syncobjWaitRaw(sys, fd, { flags: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE })).rc).toBe(
        EINVAL,
      );
    }),
  );

  test(
    'invalid-wait-zero-handles (6.12: count 0 returns 0)',
    withDrm(async (sys, fd) => {
      expect((await syncobjWaitRaw(sys, fd, {})).rc).toBe(0);
      expect((await syncobjWaitRaw(sys, fd, { flags: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE })).rc).toBe(0);
    }),
  );

  test(
    'invalid-wait-illegal-handle',
    withDrm(async (sys, fd) => {
      expect(await syncobjWaitErr(sys, fd, [0], 0, 0)).toBe(ENOENT);
    }),
  );

  for (const [name, req] of [
    ['reset', DRM_IOCTL_SYNCOBJ_RESET],
    ['signal', DRM_IOCTL_SYNCOBJ_SIGNAL],
  ] as const) {
    test(
      `invalid-${name}-zero-handles`,
      withDrm(async (sys, fd) => {
        expect(await syncobjArrayIoctl(sys, fd, req, [])).toBe(EINVAL);
      }),
    );

    test(
      `invalid-${name}-illegal-handle`,
      withDrm(async (sys, fd) => {
        expect(await syncobjArrayIoctl(sys, fd, req, [0])).toBe(ENOENT);
      }),
    );

    test(
      `invalid-${name}-one-illegal-handle`,
      withDrm(async (sys, fd) => {
        const flags = name === 'reset' ? DRM_SYNCOBJ_CREATE_SIGNALED : 0;
        const want = name === 'reset' ? 0 : EINVAL;
        const s = [await syncobjCreate(sys, fd, flags), 0, await syncobjCreate(sys, fd, flags)];
        expect(await syncobjWaitErr(sys, fd, [s[0]], 0, 0)).toBe(want);
        expect(await syncobjWaitErr(sys, fd, [s[2]], 0, 0)).toBe(want);
        expect(await syncobjArrayIoctl(sys, fd, req, s)).toBe(ENOENT);
        // Nothing was reset or signalled.
        expect(await syncobjWaitErr(sys, fd, [s[0]], 0, 0)).toBe(want);
        expect(await syncobjWaitErr(sys, fd, [s[2]], 0, 0)).toBe(want);
        await syncobjDestroy(sys, fd, s[0]);
        await syncobjDestroy(sys, fd, s[2]);
      }),
    );

    test(
      `invalid-${name}-bad-pad`,
      withDrm(async (sys, fd) => {
        expect(await syncobjArrayIoctl(sys, fd, req, [0], 0xdeadbeef)).toBe(EINVAL);
      }),
    );
  }

  // single-wait-*: one syncobj, unsubmitted / submitted / signalled.
  for (let flags = 0; flags < WAIT_FLAGS_MAX; flags++) {
    if (popcount(flags & (WAIT_UNSUBMITTED | WAIT_SUBMITTED | WAIT_SIGNALED)) !== 1) continue;
    let err: number;
    if (flags & WAIT_UNSUBMITTED && !(flags & WAIT_FOR_SUBMIT)) err = EINVAL;
    else if (!(flags & WAIT_SIGNALED)) err = ETIME;
    else err = 0;
    test(
      subtestName('single-wait', flags, err),
      withDrm(async (sys, fd) => {
        const syncobj = await syncobjCreate(sys, fd, 0);
        const wflags = flagsForTestFlags(flags);
        let timeline = -1;
        if (flags & (WAIT_SUBMITTED | WAIT_SIGNALED)) timeline = await syncobjAttachSwSync(sys, fd, syncobj);
        if (flags & WAIT_SIGNALED) await swSyncTimelineInc(sys, timeline, 1);
        expect(await syncobjWaitErr(sys, fd, [syncobj], 0, wflags)).toBe(err);
        const t0 = sys.now();
        expect(await syncobjWaitErr(sys, fd, [syncobj], shortTimeout(sys), wflags)).toBe(err);
        if (err === ETIME) {
          // Timed out in virtual time: no earlier than the deadline, within a jiffy or two.
          expect(sys.now() - t0).toBeGreaterThanOrEqual(SHORT_TIME_NSEC);
          expect(sys.now() - t0).toBeLessThan(SHORT_TIME_NSEC + 10_000_000n);
        }
        // UINT64_MAX is -1 as a signed timeout: in the past, so it only polls.
        if (err !== ETIME) expect(await syncobjWaitErr(sys, fd, [syncobj], UINT64_MAX, wflags)).toBe(err);
        await syncobjDestroy(sys, fd, syncobj);
        if (timeline !== -1) await sys.close(timeline);
      }),
    );
  }

  for (const [name, flags] of [
    ['wait-delayed-signal', 0],
    ['wait-for-submit-delayed-submit', WAIT_FOR_SUBMIT],
    ['wait-all-delayed-signal', WAIT_ALL],
    ['wait-all-for-submit-delayed-submit', WAIT_ALL | WAIT_FOR_SUBMIT],
  ] as const) {
    test(
      name,
      withDrm(async (sys, fd) => {
        const syncobj = await syncobjCreate(sys, fd, 0);
        let timeline = -1;
        let tid: number;
        if (flags & WAIT_FOR_SUBMIT) {
          tid = setTimer(sys, SHORT_TIME_NSEC, (ts) => syncobjTrigger(ts, fd, syncobj));
        } else {
          timeline = await syncobjAttachSwSync(sys, fd, syncobj);
          tid = setTimer(sys, SHORT_TIME_NSEC, (ts) => swSyncTimelineInc(ts, timeline, 1));
        }
        const t0 = sys.now();
        expect(
          await syncobjWaitErr(
            sys,
            fd,
            [syncobj],
            sys.now() + SHORT_TIME_NSEC * 2n,
            flagsForTestFlags(flags),
          ),
        ).toBe(0);
        expect(sys.now() - t0).toBe(SHORT_TIME_NSEC);
        await sys.joinThread(tid);
        if (timeline !== -1) await sys.close(timeline);
        await syncobjDestroy(sys, fd, syncobj);
      }),
    );
  }

  test(
    'reset-unsignaled',
    withDrm(async (sys, fd) => {
      const syncobj = await syncobjCreate(sys, fd, 0);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(EINVAL);
      await syncobjReset(sys, fd, [syncobj]);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(EINVAL);
      await syncobjDestroy(sys, fd, syncobj);
    }),
  );

  test(
    'reset-signaled',
    withDrm(async (sys, fd) => {
      const syncobj = await syncobjCreate(sys, fd, 0);
      await syncobjTrigger(sys, fd, syncobj);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(0);
      await syncobjReset(sys, fd, [syncobj]);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(EINVAL);
      await syncobjDestroy(sys, fd, syncobj);
    }),
  );

  test(
    'reset-multiple-signaled',
    withDrm(async (sys, fd) => {
      const s: number[] = [];
      for (let i = 0; i < 3; i++) {
        s.push(await syncobjCreate(sys, fd, 0));
        await syncobjTrigger(sys, fd, s[i]);
      }
      expect(await syncobjWaitErr(sys, fd, s, 0, 0)).toBe(0);
      await syncobjReset(sys, fd, s);
      for (const h of s) {
        expect(await syncobjWaitErr(sys, fd, [h], 0, 0)).toBe(EINVAL);
        await syncobjDestroy(sys, fd, h);
      }
    }),
  );

  test(
    'reset-during-wait-for-submit',
    withDrm(async (sys, fd) => {
      const syncobj = await syncobjCreate(sys, fd, 0);
      const tid = setTimer(sys, SHORT_TIME_NSEC, async (ts) => {
        await syncobjReset(ts, fd, [syncobj]);
        await syncobjTrigger(ts, fd, syncobj);
      });
      // A reset is a no-op for a waiter even in the middle of its wait.
      expect(
        await syncobjWaitErr(
          sys,
          fd,
          [syncobj],
          sys.now() + SHORT_TIME_NSEC * 2n,
          DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
        ),
      ).toBe(0);
      await sys.joinThread(tid);
      await syncobjDestroy(sys, fd, syncobj);
    }),
  );

  test(
    'signal',
    withDrm(async (sys, fd) => {
      const syncobj = await syncobjCreate(sys, fd, 0);
      const flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(EINVAL);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, flags)).toBe(ETIME);
      await syncobjSignal(sys, fd, [syncobj]);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, 0)).toBe(0);
      expect(await syncobjWaitErr(sys, fd, [syncobj], 0, flags)).toBe(0);
      await syncobjDestroy(sys, fd, syncobj);
    }),
  );

  // multi-wait-*: three syncobjs, each in one of the stages the flags select.
  for (let flags = 0; flags < WAIT_FLAGS_MAX; flags++) {
    if (!(flags & (WAIT_UNSUBMITTED | WAIT_SUBMITTED | WAIT_SIGNALED))) continue;
    let err = 0;
    if (flags & WAIT_UNSUBMITTED && !(flags & WAIT_FOR_SUBMIT)) err = EINVAL;
    else if (flags & WAIT_ALL) {
      if (flags & (WAIT_UNSUBMITTED | WAIT_SUBMITTED)) err = ETIME;
    } else if (!(flags & WAIT_SIGNALED)) err = ETIME;
    test(
      subtestName('multi-wait', flags, err),
      withDrm(async (sys, fd) => {
        const s = [
          await syncobjCreate(sys, fd, 0),
          await syncobjCreate(sys, fd, 0),
          await syncobjCreate(sys, fd, 0),
        ];
        const wflags = flagsForTestFlags(flags);
        let stages = flags & ~(WAIT_ALL | WAIT_FOR_SUBMIT);
        const timelines: number[] = [];
        for (let i = 0; i < 3; i++) {
          const tflag = stages & -stages;
          if (stages & ~tflag) stages &= ~tflag;
          if (tflag & (WAIT_SUBMITTED | WAIT_SIGNALED)) {
            const tl = await syncobjAttachSwSync(sys, fd, s[i]);
            timelines.push(tl);
            if (tflag & WAIT_SIGNALED) await swSyncTimelineInc(sys, tl, 1);
          }
        }
        expect(await syncobjWaitErr(sys, fd, s, 0, wflags)).toBe(err);
        expect(await syncobjWaitErr(sys, fd, s, shortTimeout(sys), wflags)).toBe(err);
        if (err !== ETIME) expect(await syncobjWaitErr(sys, fd, s, UINT64_MAX, wflags)).toBe(err);
        for (const h of s) await syncobjDestroy(sys, fd, h);
        for (const tl of timelines) await sys.close(tl);
      }),
    );
  }

  for (const [name, flags] of [
    ['wait-any-snapshot', 0],
    ['wait-all-snapshot', WAIT_ALL],
    ['wait-for-submit-snapshot', WAIT_FOR_SUBMIT],
    ['wait-all-for-submit-snapshot', WAIT_ALL | WAIT_FOR_SUBMIT],
  ] as const) {
    test(
      name,
      withDrm(async (sys, fd) => {
        const s = [await syncobjCreate(sys, fd, 0), await syncobjCreate(sys, fd, 0)];
        const tls = [-1, -1, -1];
        if (!(flags & WAIT_FOR_SUBMIT)) {
          tls[0] = await syncobjAttachSwSync(sys, fd, s[0]);
          tls[1] = await syncobjAttachSwSync(sys, fd, s[1]);
        }
        let waited: { rc: number; firstSignaled: number } | null = null;
        const timeout = shortTimeout(sys);
        const tid = sys.spawnThread(async (ts) => {
          waited = await syncobjWaitRaw(ts, fd, {
            handles: (() => {
              const p = ts.alloc(8);
              ts.writeU32(p, s[0]);
              ts.writeU32(p + 4, s[1]);
              return p;
            })(),
            count_handles: 2,
            timeout_nsec: timeout,
            flags: flagsForTestFlags(flags),
          });
          return 0;
        });
        await sleepNsec(sys, SHORT_TIME_NSEC / 5n);
        // Try to fake the kernel out by triggering or partially triggering the first fence.
        if (flags & WAIT_ALL) {
          if (tls[0] === -1) await syncobjTrigger(sys, fd, s[0]);
          else await swSyncTimelineInc(sys, tls[0], 1);
        } else if (flags & WAIT_FOR_SUBMIT) {
          tls[0] = await syncobjAttachSwSync(sys, fd, s[0]);
        }
        await sleepNsec(sys, SHORT_TIME_NSEC / 5n);
        // Then reset it, and submit something that never signals: the waiter must not see it.
        await syncobjReset(sys, fd, [s[0]]);
        await sleepNsec(sys, SHORT_TIME_NSEC / 5n);
        tls[2] = await syncobjAttachSwSync(sys, fd, s[0]);
        await sleepNsec(sys, SHORT_TIME_NSEC / 5n);
        // Now trigger the second fence to complete the wait.
        if (tls[1] === -1) await syncobjTrigger(sys, fd, s[1]);
        else await swSyncTimelineInc(sys, tls[1], 1);
        await sys.joinThread(tid);
        expect(waited!.rc).toBe(0);
        if (!(flags & WAIT_ALL)) expect(waited!.firstSignaled).toBe(1);
        for (const tl of tls) if (tl !== -1) await sys.close(tl);
        await syncobjDestroy(sys, fd, s[0]);
        await syncobjDestroy(sys, fd, s[1]);
      }),
    );
  }

  // The numbers 0-7, each repeated 4x and shuffled.
  const shuffled = [
    2, 0, 6, 1, 1, 4, 5, 2, 0, 7, 1, 7, 6, 3, 4, 5, 0, 2, 7, 3, 5, 4, 0, 6, 7, 3, 2, 5, 6, 1, 4, 3,
  ];
  for (const [name, flags] of [
    ['wait-any-complex', 0],
    ['wait-all-complex', WAIT_ALL],
    ['wait-for-submit-complex', WAIT_FOR_SUBMIT],
    ['wait-all-for-submit-complex', WAIT_ALL | WAIT_FOR_SUBMIT],
  ] as const) {
    test(
      name,
      withDrm(async (sys, fd) => {
        const s: number[] = [];
        const stage: number[] = [];
        const tls: number[] = [];
        for (let i = 0; i < 8; i++) {
          stage.push(0);
          s.push(await syncobjCreate(sys, fd, 0));
        }
        for (let i = 0; i < 8; i++)
          tls.push(flags & WAIT_FOR_SUBMIT ? -1 : await syncobjAttachSwSync(sys, fd, s[i]));
        const timeout = sys.now() + NSECS_PER_SEC;
        let waited: { rc: number; firstSignaled: number } | null = null;
        const tid = sys.spawnThread(async (ts) => {
          const p = ts.alloc(32);
          s.forEach((h, i) => {
            ts.writeU32(p + 4 * i, h);
          });
          // As IGT: only the first two syncobjs are waited on.
          waited = await syncobjWaitRaw(ts, fd, {
            handles: p,
            count_handles: 2,
            timeout_nsec: timeout,
            flags: flagsForTestFlags(flags),
          });
          return 0;
        });
        await sleepNsec(sys, NSECS_PER_SEC / 50n);
        let first = -1;
        let num = 0;
        for (const i of shuffled) {
          switch (stage[i]++) {
            case 0: // unsubmitted: attach a fence
              if (!(flags & WAIT_FOR_SUBMIT)) {
                expect(tls[i]).not.toBe(-1);
                break;
              }
              tls[i] = await syncobjAttachSwSync(sys, fd, s[i]);
              break;
            case 1: // submitted: trigger it
              expect(tls[i]).not.toBe(-1);
              await swSyncTimelineInc(sys, tls[i], 1);
              await sys.close(tls[i]);
              tls[i] = -1;
              if (num === 0) first = i;
              num++;
              break;
            case 2: // signalled: reset
              await syncobjReset(sys, fd, [s[i]]);
              break;
            case 3: // reset: submit and do not signal
              tls[i] = await syncobjAttachSwSync(sys, fd, s[i]);
              break;
            default:
              throw new Error('should not reach this stage');
          }
          if (flags & WAIT_ALL ? num === 8 : num > 0) break;
          await sleepNsec(sys, NSECS_PER_SEC / 100n);
        }
        await sys.joinThread(tid);
        expect(waited!.rc).toBe(0);
        if (flags & WAIT_ALL) {
          expect(num).toBe(8);
        } else {
          expect(num).toBe(1);
          expect(waited!.firstSignaled).toBe(first);
        }
        for (let i = 0; i < 8; i++) {
          if (tls[i] !== -1) await sys.close(tls[i]);
          await syncobjDestroy(sys, fd, s[i]);
        }
      }),
    );
  }

  test(
    'first_signaled: the index of the first done syncobj, untouched on failure',
    withDrm(async (sys, fd) => {
      const s = [
        await syncobjCreate(sys, fd, 0),
        await syncobjCreate(sys, fd, 0),
        await syncobjCreate(sys, fd, 0),
      ];
      const tl = await syncobjAttachSwSync(sys, fd, s[0]);
      await syncobjTrigger(sys, fd, s[2]);
      await syncobjSignal(sys, fd, [s[1]]);
      const handles = sys.alloc(12);
      s.forEach((h, i) => {
        sys.writeU32(handles + 4 * i, h);
      });
      // Any: the first signalled in handle order.
      let r = await syncobjWaitRaw(sys, fd, { handles, count_handles: 3, first_signaled: 77 });
      expect(r).toEqual({ rc: 0, firstSignaled: 1 });
      // All, not all signalled: -ETIME and first_signaled as the caller left it.
      r = await syncobjWaitRaw(sys, fd, {
        handles,
        count_handles: 3,
        flags: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
        first_signaled: 77,
      });
      expect(r).toEqual({ rc: ETIME, firstSignaled: 77 });
      await swSyncTimelineInc(sys, tl, 1);
      r = await syncobjWaitRaw(sys, fd, {
        handles,
        count_handles: 3,
        flags: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
      });
      expect(r).toEqual({ rc: 0, firstSignaled: 0 });
      await sys.close(tl);
      for (const h of s) await syncobjDestroy(sys, fd, h);
    }),
  );

  test(
    'wait-deadline: WAIT_DEADLINE passes deadline_nsec to the fences',
    withDrm(async (sys, fd) => {
      const s = await syncobjCreate(sys, fd, 0);
      const tl = await syncobjAttachSwSync(sys, fd, s);
      const handles = sys.alloc(4);
      sys.writeU32(handles, s);
      const deadline = sys.now() + 5_000_000n;
      const r = await syncobjWaitRaw(sys, fd, {
        handles,
        count_handles: 1,
        timeout_nsec: shortTimeout(sys),
        flags: DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE,
        deadline_nsec: deadline,
      });
      expect(r.rc).toBe(ETIME);
      // The sw_sync point kept the hint (SW_SYNC_GET_DEADLINE).
      const sf = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, {
        handle: s,
        flags: DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
        fd: -1,
      });
      expect(sf.rc).toBe(0);
      const g = sys.allocStruct(swSyncGetDeadline, { fence_fd: sf.fd });
      expect(await sys.ioctl(tl, SW_SYNC_GET_DEADLINE, g)).toBe(0);
      expect(sys.readStruct(swSyncGetDeadline, g).deadline_ns).toBe(deadline);
      await sys.close(sf.fd);
      await sys.close(tl);
      await syncobjDestroy(sys, fd, s);
    }),
  );
});

describe('syncobj_basic', () => {
  test(
    'bad-create-flags',
    withDrm(async (sys, fd) => {
      expect(
        await sys.ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, sys.allocStruct(drmSyncobjCreate, { flags: 0xff })),
      ).toBe(EINVAL);
    }),
  );

  test(
    'bad-destroy: an unknown handle and a non-zero pad are EINVAL',
    withDrm(async (sys, fd) => {
      expect(
        await sys.ioctl(
          fd,
          DRM_IOCTL_SYNCOBJ_DESTROY,
          sys.allocStruct(drmSyncobjDestroy, { handle: 0xffffffff }),
        ),
      ).toBe(EINVAL);
      const h = await syncobjCreate(sys, fd, 0);
      expect(
        await sys.ioctl(
          fd,
          DRM_IOCTL_SYNCOBJ_DESTROY,
          sys.allocStruct(drmSyncobjDestroy, { handle: h, pad: 1 }),
        ),
      ).toBe(EINVAL);
      await syncobjDestroy(sys, fd, h);
      expect(
        await sys.ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, sys.allocStruct(drmSyncobjDestroy, { handle: h })),
      ).toBe(EINVAL);
    }),
  );

  test(
    'create-signaled',
    withDrm(async (sys, fd) => {
      const h = await syncobjCreate(sys, fd, DRM_SYNCOBJ_CREATE_SIGNALED);
      expect(await syncobjWaitErr(sys, fd, [h], 0, 0)).toBe(0);
      await syncobjDestroy(sys, fd, h);
    }),
  );

  test(
    'handles: the lowest free number from 1, reused after destroy',
    withDrm(async (sys, fd) => {
      const a = await syncobjCreate(sys, fd, 0);
      const b = await syncobjCreate(sys, fd, 0);
      expect([a, b]).toEqual([1, 2]);
      await syncobjDestroy(sys, fd, a);
      expect(await syncobjCreate(sys, fd, 0)).toBe(1);
    }),
  );

  test(
    'bad-flags-handle-to-fd, bad-pad-handle-to-fd, illegal-handle-to-fd',
    withDrm(async (sys, fd) => {
      const h = await syncobjCreate(sys, fd, 0);
      const H2F = DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD;
      expect((await syncobjHandleIoctl(sys, fd, H2F, { handle: h, flags: 0xff })).rc).toBe(EINVAL);
      expect((await syncobjHandleIoctl(sys, fd, H2F, { handle: h, flags: 3 })).rc).toBe(EINVAL);
      expect((await syncobjHandleIoctl(sys, fd, H2F, { handle: h, pad: 1 })).rc).toBe(EINVAL);
      // Without EXPORT_SYNC_FILE an unknown handle is EINVAL; with it, ENOENT.
      expect((await syncobjHandleIoctl(sys, fd, H2F, { handle: 99 })).rc).toBe(EINVAL);
      expect(
        (
          await syncobjHandleIoctl(sys, fd, H2F, {
            handle: 99,
            flags: DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
          })
        ).rc,
      ).toBe(ENOENT);
      // No fence yet: EXPORT_SYNC_FILE is EINVAL and no fd is left behind.
      const r = await syncobjHandleIoctl(sys, fd, H2F, {
        handle: h,
        flags: DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
        fd: -1,
      });
      expect(r).toEqual({ rc: EINVAL, handle: h, fd: -1 });
      await syncobjDestroy(sys, fd, h);
    }),
  );

  test(
    'bad-flags-fd-to-handle, illegal-fd-to-handle',
    withDrm(async (sys, fd) => {
      const F2H = DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE;
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: 0, flags: 0xff })).rc).toBe(EINVAL);
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: 0, pad: 1 })).rc).toBe(EINVAL);
      // Not a syncobj file, a closed fd, a negative fd: all EINVAL.
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: 0 })).rc).toBe(EINVAL);
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: 999 })).rc).toBe(EINVAL);
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: -1 })).rc).toBe(EINVAL);
      // IMPORT_SYNC_FILE: not a sync_file is EINVAL, checked before the handle (ENOENT).
      const imp = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE;
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: 0, handle: 99, flags: imp })).rc).toBe(EINVAL);
      const tl = await swSyncTimelineCreate(sys);
      const f = await swSyncTimelineCreateFence(sys, tl, 1);
      expect((await syncobjHandleIoctl(sys, fd, F2H, { fd: f, handle: 99, flags: imp })).rc).toBe(ENOENT);
      await sys.close(f);
      await sys.close(tl);
    }),
  );

  test(
    'test-valid-cycle: handle -> fd -> handle gives a second handle to the same syncobj',
    withDrm(async (sys, fd) => {
      const h = await syncobjCreate(sys, fd, 0);
      const e = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, { handle: h, fd: -1 });
      expect(e.rc).toBe(0);
      expect(await sys.fcntl(e.fd, 1)).toBe(1); // FD_CLOEXEC
      const i = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, { fd: e.fd });
      expect(i.rc).toBe(0);
      expect(i.handle).not.toBe(h);
      // Signalling through one handle is seen through the other, also after destroying the first.
      await syncobjSignal(sys, fd, [h]);
      await syncobjDestroy(sys, fd, h);
      expect(await syncobjWaitErr(sys, fd, [i.handle], 0, 0)).toBe(0);
      await sys.close(e.fd);
      await syncobjDestroy(sys, fd, i.handle);
    }),
  );

  test('syncobj fds pass between processes: the second process sees the fence', async () => {
    await runProgram(async (sys) => {
      const fd = await openRender(sys);
      const h = await syncobjCreate(sys, fd, 0);
      const e = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, { handle: h, fd: -1 });
      // Drop close-on-exec so the child inherits the fd.
      await sys.fcntl(e.fd, 2, 0);
      const tl = await syncobjAttachSwSync(sys, fd, h);
      const child = sys.spawn('child', async (cs) => {
        const cfd = await openRender(cs);
        const i = await syncobjHandleIoctl(cs, cfd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, { fd: e.fd });
        if (i.rc) return 1;
        // Blocks until the parent signals.
        const rc = await syncobjWaitErr(cs, cfd, [i.handle], cs.now() + NSECS_PER_SEC, 0);
        return rc === 0 ? 0 : 2;
      });
      await sleepNsec(sys, SHORT_TIME_NSEC);
      await swSyncTimelineInc(sys, tl, 1);
      const st = sys.alloc(4);
      expect(await sys.waitpid(child, st, 0)).toBe(child);
      expect(sys.readS32(st)).toBe(0);
      await sys.close(tl);
    });
  });

  test(
    'export and import sync_file: a snapshot of the current fence',
    withDrm(async (sys, fd) => {
      const a = await syncobjCreate(sys, fd, 0);
      const b = await syncobjCreate(sys, fd, 0);
      const tl = await syncobjAttachSwSync(sys, fd, a);
      const ex = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, {
        handle: a,
        flags: DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE,
        fd: -1,
      });
      expect(ex.rc).toBe(0);
      await syncobjReset(sys, fd, [a]);
      await syncobjImportSyncFile(sys, fd, b, ex.fd);
      expect(await syncobjWaitErr(sys, fd, [b], 0, 0)).toBe(ETIME);
      await swSyncTimelineInc(sys, tl, 1);
      expect(await syncobjWaitErr(sys, fd, [b], 0, 0)).toBe(0);
      expect(await syncobjWaitErr(sys, fd, [a], 0, 0)).toBe(EINVAL);
      await sys.close(ex.fd);
      await sys.close(tl);
    }),
  );
});
