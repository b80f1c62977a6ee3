/**
 * Test helpers for the DRM tests: the raw-ABI calls IGT's lib (igt_syncobj.c, sw_sync.c,
 * igt_vgem.c) wraps, written against `Sys` so each test reads like its IGT subtest. The
 * `__` variants return the negative errno like IGT's; the plain ones throw on failure.
 */
import { expect } from 'vitest';
import {
  Machine,
  O_RDWR,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  type Sys,
  swSyncCreateFenceData,
  timespec,
} from '../../src/index.ts';
import {
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_SYNCOBJ_DESTROY,
  DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  type DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_QUERY,
  DRM_IOCTL_SYNCOBJ_RESET,
  DRM_IOCTL_SYNCOBJ_SIGNAL,
  DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL,
  DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
  DRM_IOCTL_SYNCOBJ_TRANSFER,
  DRM_IOCTL_SYNCOBJ_WAIT,
  DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
  drmSyncobjArray,
  drmSyncobjCreate,
  drmSyncobjDestroy,
  drmSyncobjHandle,
  drmSyncobjTimelineArray,
  drmSyncobjTimelineWait,
  drmSyncobjTransfer,
  drmSyncobjWait,
} from '../../src/uapi/drm.ts';

/** One tenth of a second (SHORT_TIME_NSEC). */
export const SHORT_TIME_NSEC = 100_000_000n;
/** NSECS_PER_SEC. */
export const NSECS_PER_SEC = 1_000_000_000n;

/** Runs `main` as one process on a fresh machine; asserts a clean exit and no reports. */
export async function runProgram(main: (sys: Sys) => Promise<void>, name = 'igt'): Promise<Machine> {
  const m = await Machine.create({ seed: 1 });
  const p = m.spawn(name, async (sys) => {
    await main(sys);
    return 0;
  });
  const run = await m.run();
  if (p.error) throw p.error;
  expect(run.status).toBe('completed');
  expect(p.exitCode).toBe(0);
  expect(m.reports).toEqual([]);
  return m;
}

/** drm_open_driver_render(DRIVER_VGEM). */
export async function openRender(sys: Sys): Promise<number> {
  const fd = await sys.open('/dev/dri/renderD128', O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

/** Runs `fn` as an IGT subtest with the render node open (closed afterwards). */
export function withDrm(fn: (sys: Sys, fd: number) => Promise<void>): () => Promise<void> {
  return async () => {
    await runProgram(async (sys) => {
      const fd = await openRender(sys);
      await fn(sys, fd);
      await sys.close(fd);
    });
  };
}

/** Number of bits set (IGT's __builtin_popcount over its test-flag masks). */
export function popcount(x: number): number {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
}

/** gettime_ns(): CLOCK_MONOTONIC. */
export function gettimeNs(sys: Sys): bigint {
  return sys.now();
}

/** short_timeout(): now + 100 ms. */
export function shortTimeout(sys: Sys): bigint {
  return sys.now() + SHORT_TIME_NSEC;
}

/** sleep_nsec(). */
export async function sleepNsec(sys: Sys, ns: bigint): Promise<void> {
  const ts = sys.allocStruct(timespec, { tv_sec: ns / NSECS_PER_SEC, tv_nsec: ns % NSECS_PER_SEC });
  expect(await sys.nanosleep(ts, 0)).toBe(0);
}

/** Runs `fn` in a new thread after `ns` of virtual time (IGT's SIGEV_THREAD timers). Returns the tid. */
export function setTimer(sys: Sys, ns: bigint, fn: (ts: Sys) => Promise<void>): number {
  return sys.spawnThread(async (ts) => {
    await sleepNsec(ts, ns);
    await fn(ts);
    return 0;
  });
}

function u32s(sys: Sys, values: readonly number[]): number {
  const p = sys.alloc(Math.max(4, values.length * 4), 8);
  values.forEach((v, i) => {
    sys.writeU32(p + 4 * i, v);
  });
  return p;
}

/** A user array of u64 values. */
export function u64s(sys: Sys, values: readonly (number | bigint)[]): number {
  const p = sys.alloc(Math.max(8, values.length * 8), 8);
  const b = new Uint8Array(values.length * 8);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => {
    dv.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(v)), true);
  });
  sys.poke(p, b);
  return p;
}

/** Reads `n` u64 values. */
export function readU64s(sys: Sys, p: number, n: number): bigint[] {
  const dv = new DataView(sys.peek(p, n * 8).buffer);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
}

/** ioctl returning -errno (IGT's __xxx helpers). */
async function ioctl(sys: Sys, fd: number, req: number, arg: number): Promise<number> {
  return sys.ioctl(fd, req, arg);
}

/** syncobj_create(). */
export async function syncobjCreate(sys: Sys, fd: number, flags = 0): Promise<number> {
  const a = sys.allocStruct(drmSyncobjCreate, { flags });
  expect(await ioctl(sys, fd, DRM_IOCTL_SYNCOBJ_CREATE, a)).toBe(0);
  return sys.readStruct(drmSyncobjCreate, a).handle;
}

/** syncobj_destroy(). */
export async function syncobjDestroy(sys: Sys, fd: number, handle: number): Promise<void> {
  expect(
    await ioctl(sys, fd, DRM_IOCTL_SYNCOBJ_DESTROY, sys.allocStruct(drmSyncobjDestroy, { handle })),
  ).toBe(0);
}

/** __syncobj_wait() with a raw struct: returns 0 or -errno and the struct as the kernel left it. */
export async function syncobjWaitRaw(
  sys: Sys,
  fd: number,
  v: Parameters<typeof drmSyncobjWait.encode>[0],
): Promise<{ rc: number; firstSignaled: number }> {
  const a = sys.allocStruct(drmSyncobjWait, v);
  const rc = await ioctl(sys, fd, DRM_IOCTL_SYNCOBJ_WAIT, a);
  return { rc, firstSignaled: sys.readStruct(drmSyncobjWait, a).first_signaled };
}

/** syncobj_wait_err(): 0 or -errno. */
export async function syncobjWaitErr(
  sys: Sys,
  fd: number,
  handles: readonly number[],
  timeoutNsec: bigint | number,
  flags: number,
): Promise<number> {
  return (
    await syncobjWaitRaw(sys, fd, {
      handles: u32s(sys, handles),
      count_handles: handles.length,
      timeout_nsec: timeoutNsec,
      flags,
    })
  ).rc;
}

/** syncobj_timeline_wait_err(): 0 or -errno. */
export async function syncobjTimelineWaitErr(
  sys: Sys,
  fd: number,
  handles: readonly number[],
  points: readonly (number | bigint)[],
  timeoutNsec: bigint | number,
  flags: number,
): Promise<number> {
  return (await syncobjTimelineWaitRaw(sys, fd, handles, points, timeoutNsec, flags)).rc;
}

/** __syncobj_timeline_wait_ioctl() with arrays: 0 or -errno, and first_signaled. */
export async function syncobjTimelineWaitRaw(
  sys: Sys,
  fd: number,
  handles: readonly number[],
  points: readonly (number | bigint)[],
  timeoutNsec: bigint | number,
  flags: number,
): Promise<{ rc: number; firstSignaled: number }> {
  const a = sys.allocStruct(drmSyncobjTimelineWait, {
    handles: u32s(sys, handles),
    points: u64s(sys, points),
    count_handles: handles.length,
    timeout_nsec: timeoutNsec,
    flags,
  });
  const rc = await ioctl(sys, fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, a);
  return { rc, firstSignaled: sys.readStruct(drmSyncobjTimelineWait, a).first_signaled };
}

/** An array ioctl (RESET, SIGNAL) on `handles`: 0 or -errno. */
export async function syncobjArrayIoctl(
  sys: Sys,
  fd: number,
  req: number,
  handles: readonly number[],
  pad = 0,
  count = handles.length,
): Promise<number> {
  return ioctl(
    sys,
    fd,
    req,
    sys.allocStruct(drmSyncobjArray, {
      handles: handles.length ? u32s(sys, handles) : 0,
      count_handles: count,
      pad,
    }),
  );
}

/** syncobj_reset(). */
export async function syncobjReset(sys: Sys, fd: number, handles: readonly number[]): Promise<void> {
  expect(await syncobjArrayIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_RESET, handles)).toBe(0);
}

/** syncobj_signal(). */
export async function syncobjSignal(sys: Sys, fd: number, handles: readonly number[]): Promise<void> {
  expect(await syncobjArrayIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_SIGNAL, handles)).toBe(0);
}

/** A timeline-array ioctl (TIMELINE_SIGNAL, QUERY): 0 or -errno. */
export async function syncobjTimelineArrayIoctl(
  sys: Sys,
  fd: number,
  req: number,
  handles: readonly number[],
  points: readonly (number | bigint)[] | number,
  flags = 0,
  count = handles.length,
): Promise<number> {
  return ioctl(
    sys,
    fd,
    req,
    sys.allocStruct(drmSyncobjTimelineArray, {
      handles: handles.length ? u32s(sys, handles) : 0,
      points: typeof points === 'number' ? points : u64s(sys, points),
      count_handles: count,
      flags,
    }),
  );
}

/** syncobj_timeline_signal(). */
export async function syncobjTimelineSignal(
  sys: Sys,
  fd: number,
  handles: readonly number[],
  points: readonly (number | bigint)[],
): Promise<void> {
  expect(await syncobjTimelineArrayIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, handles, points)).toBe(
    0,
  );
}

/** syncobj_timeline_query(): the points (LAST_SUBMITTED with `flags` 1). */
export async function syncobjTimelineQuery(
  sys: Sys,
  fd: number,
  handles: readonly number[],
  flags = 0,
): Promise<bigint[]> {
  const p = u64s(
    sys,
    handles.map(() => 0),
  );
  expect(await syncobjTimelineArrayIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_QUERY, handles, p, flags)).toBe(0);
  return readU64s(sys, p, handles.length);
}

/** DRM_IOCTL_SYNCOBJ_TRANSFER: 0 or -errno. */
export async function syncobjTransferErr(
  sys: Sys,
  fd: number,
  v: Parameters<typeof drmSyncobjTransfer.encode>[0],
): Promise<number> {
  return ioctl(sys, fd, DRM_IOCTL_SYNCOBJ_TRANSFER, sys.allocStruct(drmSyncobjTransfer, v));
}

/** syncobj_binary_to_timeline(): `src` (point 0) becomes point `point` of `dst`. */
export async function syncobjBinaryToTimeline(
  sys: Sys,
  fd: number,
  dst: number,
  point: number | bigint,
  src: number,
): Promise<void> {
  expect(
    await syncobjTransferErr(sys, fd, { src_handle: src, dst_handle: dst, src_point: 0, dst_point: point }),
  ).toBe(0);
}

/** syncobj_timeline_to_timeline(). */
export async function syncobjTimelineToTimeline(
  sys: Sys,
  fd: number,
  dst: number,
  dstPoint: number | bigint,
  src: number,
  srcPoint: number | bigint,
): Promise<void> {
  expect(
    await syncobjTransferErr(sys, fd, {
      src_handle: src,
      dst_handle: dst,
      src_point: srcPoint,
      dst_point: dstPoint,
    }),
  ).toBe(0);
}

/** HANDLE_TO_FD / FD_TO_HANDLE with a raw struct: rc and the struct afterwards. */
export async function syncobjHandleIoctl(
  sys: Sys,
  fd: number,
  req: typeof DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD | typeof DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  v: Parameters<typeof drmSyncobjHandle.encode>[0],
): Promise<{ rc: number; handle: number; fd: number }> {
  const a = sys.allocStruct(drmSyncobjHandle, v);
  const rc = await ioctl(sys, fd, req, a);
  const r = sys.readStruct(drmSyncobjHandle, a);
  return { rc, handle: r.handle, fd: r.fd };
}

/** syncobj_import_sync_file(). */
export async function syncobjImportSyncFile(
  sys: Sys,
  fd: number,
  handle: number,
  syncFd: number,
): Promise<void> {
  const r = await syncobjHandleIoctl(sys, fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, {
    handle,
    fd: syncFd,
    flags: DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
  });
  expect(r.rc).toBe(0);
}

/** sw_sync_timeline_create(). */
export async function swSyncTimelineCreate(sys: Sys): Promise<number> {
  const fd = await sys.open('/sys/kernel/debug/sync/sw_sync', O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

/** sw_sync_timeline_create_fence(): a sync_file fd at `seqno`. */
export async function swSyncTimelineCreateFence(sys: Sys, tl: number, seqno: number): Promise<number> {
  const d = sys.allocStruct(swSyncCreateFenceData, { value: seqno, name: 'igt', fence: -1 });
  expect(await sys.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d)).toBe(0);
  return sys.readStruct(swSyncCreateFenceData, d).fence;
}

/** sw_sync_timeline_inc(). */
export async function swSyncTimelineInc(sys: Sys, tl: number, n: number): Promise<void> {
  const v = sys.alloc(4);
  sys.writeU32(v, n);
  expect(await sys.ioctl(tl, SW_SYNC_IOC_INC, v)).toBe(0);
}

/**
 * syncobj_attach_sw_sync(): a new sw_sync timeline whose fence 1 becomes the syncobj's
 * fence (point 0) or timeline point `point` (through a temporary binary syncobj).
 * Returns the timeline fd.
 */
export async function syncobjAttachSwSync(
  sys: Sys,
  fd: number,
  handle: number,
  point: number | bigint = 0,
): Promise<number> {
  const tl = await swSyncTimelineCreate(sys);
  const fence = await swSyncTimelineCreateFence(sys, tl, 1);
  if (point === 0 || point === 0n) {
    await syncobjImportSyncFile(sys, fd, handle, fence);
  } else {
    const tmp = await syncobjCreate(sys, fd, 0);
    await syncobjImportSyncFile(sys, fd, tmp, fence);
    await syncobjBinaryToTimeline(sys, fd, handle, point, tmp);
    await syncobjDestroy(sys, fd, tmp);
  }
  await sys.close(fence);
  return tl;
}

/** syncobj_trigger(): attach a sw_sync fence and signal it at once. */
export async function syncobjTrigger(
  sys: Sys,
  fd: number,
  handle: number,
  point: number | bigint = 0,
): Promise<void> {
  const tl = await syncobjAttachSwSync(sys, fd, handle, point);
  await swSyncTimelineInc(sys, tl, 1);
  await sys.close(tl);
}

/** The SYNCOBJ_WAIT request (re-exported for tests building raw structs). */
export { DRM_IOCTL_SYNCOBJ_WAIT };
