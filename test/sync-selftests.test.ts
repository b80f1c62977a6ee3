/**
 * tools/testing/selftests/sync, ported case by case (sync_alloc.c, sync_fence.c,
 * sync_merge.c, sync_wait.c, sync_stress_parallelism.c, sync_stress_consumer.c,
 * sync_stress_merge.c, with the helpers of sync.c), written against the raw syscall ABI
 * from inside model processes.
 *
 * As in sync_test.c each case runs in a fresh process (here: a fresh machine) and
 * passes when that process exits 0; a failed ASSERT makes the case return 1. Every
 * case must also leave no report behind: no WARN, no lockdep splat, no leak.
 *
 * The stress tests run the C code's full iteration counts (65536, 4096 and 32768
 * merges; about 12 s together). Differences from the C code, all in the stress tests:
 * - the busy-wait loop of the consumer test calls sched_yield(): simulated threads only
 *   give up the CPU at blocking calls, where a real CPU would be preempted;
 * - rand() is the machine's seeded `engine.random` (31-bit values like glibc's rand()),
 *   and the pthread mutex of the consumer test is a sched_yield spin lock.
 */
import { describe, expect, test } from 'vitest';
import {
  F_GETFD,
  Machine,
  O_RDWR,
  POLLERR,
  POLLIN,
  pollfd,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  type Sys,
  swSyncCreateFenceData,
  syncFenceInfo,
  syncFileInfo,
  syncMergeData,
} from '../src/index.ts';

const FENCE_STATUS_ERROR = -1;
const FENCE_STATUS_ACTIVE = 0;
const FENCE_STATUS_SIGNALED = 1;

class AssertFailed extends Error {}

/** synctest.h ASSERT(): the case (or thread) fails with `msg`. */
function ASSERT(cond: boolean, msg: string): void {
  if (!cond) throw new AssertFailed(`[ERROR]\t${msg}`);
}

/** The helpers of tools/testing/selftests/sync/sync.c, for one thread. */
class SyncLib {
  constructor(readonly sys: Sys) {}

  /** sync_wait(): poll for POLLIN|POLLERR. */
  async syncWait(fd: number, timeout: number): Promise<number> {
    const p = this.sys.allocStruct(pollfd, { fd, events: POLLIN | POLLERR });
    return this.sys.poll(p, 1, timeout);
  }

  /** sync_merge(). */
  async syncMerge(name: string, fd1: number, fd2: number): Promise<number> {
    const d = this.sys.allocStruct(syncMergeData, { name: name.slice(0, 31), fd2 });
    const err = await this.sys.ioctl(fd1, SYNC_IOC_MERGE, d);
    if (err < 0) return err;
    return this.sys.readStruct(syncMergeData, d).fence;
  }

  /** sync_file_info(): the info and its fence array (two calls), or null. */
  private async fileInfo(fd: number) {
    const sys = this.sys;
    const info = sys.allocStruct(syncFileInfo);
    if ((await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info)) < 0) return null;
    const num = sys.readStruct(syncFileInfo, info).num_fences;
    const fences = [];
    if (num) {
      const arr = sys.alloc(num * syncFenceInfo.size, 8);
      sys.writeStruct(syncFileInfo, info, { num_fences: num, sync_fence_info: arr });
      if ((await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info)) < 0) return null;
      for (let i = 0; i < num; i++) fences.push(sys.readStruct(syncFenceInfo, arr + i * syncFenceInfo.size));
    }
    return { info: sys.readStruct(syncFileInfo, info), fences };
  }

  /** sync_fence_size(). */
  async syncFenceSize(fd: number): Promise<number> {
    return (await this.fileInfo(fd))?.info.num_fences ?? 0;
  }

  /** sync_fence_count_with_status(). */
  async syncFenceCountWithStatus(fd: number, status: number): Promise<number> {
    const i = await this.fileInfo(fd);
    if (!i) return -1;
    return i.fences.filter((f) => f.status === status).length;
  }

  /** sw_sync_timeline_create(). */
  swSyncTimelineCreate(): Promise<number> {
    return this.sys.open('/sys/kernel/debug/sync/sw_sync', O_RDWR);
  }

  /** sw_sync_timeline_inc(). */
  async swSyncTimelineInc(fd: number, count: number): Promise<number> {
    const a = this.sys.alloc(4);
    this.sys.writeU32(a, count);
    return this.sys.ioctl(fd, SW_SYNC_IOC_INC, a);
  }

  /** sw_sync_timeline_is_valid() / sw_sync_fence_is_valid(). */
  async isValid(fd: number): Promise<boolean> {
    if (fd === -1) return false;
    return (await this.sys.fcntl(fd, F_GETFD, 0)) >= 0;
  }

  /** sw_sync_timeline_destroy() / sw_sync_fence_destroy(). */
  async destroy(fd: number): Promise<void> {
    if (await this.isValid(fd)) await this.sys.close(fd);
  }

  /** sw_sync_fence_create(). */
  async swSyncFenceCreate(fd: number, name: string, value: number): Promise<number> {
    const d = this.sys.allocStruct(swSyncCreateFenceData, { value, name: name.slice(0, 31) });
    const err = await this.sys.ioctl(fd, SW_SYNC_IOC_CREATE_FENCE, d);
    if (err < 0) return err;
    return this.sys.readStruct(swSyncCreateFenceData, d).fence;
  }
}

/** run_test(): runs `fn` as the main of a fresh process on a fresh machine. */
async function runTest(name: string, fn: (sys: Sys, m: Machine) => Promise<number>, seed = 1) {
  const m = await Machine.create({ seed });
  const p = m.spawn('sync_test', (sys) => fn(sys, m));
  const run = await m.run();
  if (p.error) throw p.error;
  expect(run.status, name).toBe('completed');
  expect(p.exitCode, name).toBe(0);
  expect(m.reports, name).toEqual([]);
  return m;
}

describe('tools/testing/selftests/sync', () => {
  test('test_alloc_timeline', async () => {
    await runTest('test_alloc_timeline', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(await s.isValid(timeline), 'Failure allocating timeline\n');
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_alloc_fence', async () => {
    await runTest('test_alloc_fence', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(await s.isValid(timeline), 'Failure allocating timeline\n');
      const fence = await s.swSyncFenceCreate(timeline, 'allocFence', 1);
      ASSERT(await s.isValid(fence), 'Failure allocating fence\n');
      await s.destroy(fence);
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_alloc_fence_negative', async () => {
    await runTest('test_alloc_fence_negative', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(timeline > 0, 'Failure allocating timeline\n');
      const fence = await s.swSyncFenceCreate(-1, 'fence', 1);
      ASSERT(fence < 0, 'Success allocating negative fence\n');
      expect(fence).toBe(-9); // -EBADF
      await s.destroy(fence);
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_fence_one_timeline_wait', async () => {
    await runTest('test_fence_one_timeline_wait', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(await s.isValid(timeline), 'Failure allocating timeline\n');
      const fence = await s.swSyncFenceCreate(timeline, 'allocFence', 5);
      ASSERT(await s.isValid(fence), 'Failure allocating fence\n');
      let ret = await s.syncWait(fence, 0);
      ASSERT(ret === 0, 'Failure waiting on fence until timeout\n');
      ret = await s.swSyncTimelineInc(timeline, 1);
      ASSERT(ret === 0, 'Failure advancing timeline\n');
      ret = await s.syncWait(fence, 0);
      ASSERT(ret === 0, 'Failure waiting on fence until timeout\n');
      ret = await s.swSyncTimelineInc(timeline, 4);
      ASSERT(ret === 0, 'Failure signaling the fence\n');
      ret = await s.syncWait(fence, 0);
      ASSERT(ret > 0, 'Failure waiting on fence\n');
      ret = await s.swSyncTimelineInc(timeline, 10);
      ASSERT(ret === 0, 'Failure going further\n');
      ret = await s.syncWait(fence, 0);
      ASSERT(ret > 0, 'Failure waiting ahead\n');
      await s.destroy(fence);
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_fence_one_timeline_merge', async () => {
    await runTest('test_fence_one_timeline_merge', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      const a = await s.swSyncFenceCreate(timeline, 'allocFence', 1);
      const b = await s.swSyncFenceCreate(timeline, 'allocFence', 2);
      const c = await s.swSyncFenceCreate(timeline, 'allocFence', 3);
      ASSERT(
        (await s.isValid(a)) && (await s.isValid(b)) && (await s.isValid(c)),
        'Failure allocating fences\n',
      );
      let d = await s.syncMerge('mergeFence', b, a);
      // The C test loses the first merged fd here (it never closes it): exit closes it.
      d = await s.syncMerge('mergeFence', c, d);
      ASSERT(await s.isValid(d), 'Failure merging fences\n');
      // The C test checks `a` four times where it means a, b, c, d.
      ASSERT(
        (await s.syncFenceCountWithStatus(a, FENCE_STATUS_ACTIVE)) === 1,
        'a has too many active fences!\n',
      );
      ASSERT(
        (await s.syncFenceCountWithStatus(a, FENCE_STATUS_ACTIVE)) === 1,
        'b has too many active fences!\n',
      );
      ASSERT(
        (await s.syncFenceCountWithStatus(a, FENCE_STATUS_ACTIVE)) === 1,
        'c has too many active fences!\n',
      );
      ASSERT(
        (await s.syncFenceCountWithStatus(a, FENCE_STATUS_ACTIVE)) === 1,
        'd has too many active fences!\n',
      );
      await s.swSyncTimelineInc(timeline, 1);
      ASSERT((await s.syncFenceCountWithStatus(a, FENCE_STATUS_SIGNALED)) === 1, 'a did not signal!\n');
      ASSERT((await s.syncFenceCountWithStatus(d, FENCE_STATUS_ACTIVE)) === 1, 'd signaled too early!\n');
      await s.swSyncTimelineInc(timeline, 1);
      ASSERT((await s.syncFenceCountWithStatus(b, FENCE_STATUS_SIGNALED)) === 1, 'b did not signal!\n');
      ASSERT((await s.syncFenceCountWithStatus(d, FENCE_STATUS_ACTIVE)) === 1, 'd signaled too early!\n');
      await s.swSyncTimelineInc(timeline, 1);
      ASSERT((await s.syncFenceCountWithStatus(c, FENCE_STATUS_SIGNALED)) === 1, 'c did not signal!\n');
      ASSERT(
        (await s.syncFenceCountWithStatus(d, FENCE_STATUS_ACTIVE)) === 0 &&
          (await s.syncFenceCountWithStatus(d, FENCE_STATUS_SIGNALED)) === 1,
        'd did not signal!\n',
      );
      // 6.12's merge keeps the later point of one timeline: d wraps c itself.
      expect(await s.syncFenceSize(d)).toBe(1);
      await s.destroy(d);
      await s.destroy(c);
      await s.destroy(b);
      await s.destroy(a);
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_fence_merge_same_fence', async () => {
    await runTest('test_fence_merge_same_fence', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(await s.isValid(timeline), 'Failure allocating timeline\n');
      const fence = await s.swSyncFenceCreate(timeline, 'allocFence', 5);
      ASSERT(await s.isValid(fence), 'Failure allocating fence\n');
      const merged = await s.syncMerge('mergeFence', fence, fence);
      ASSERT(await s.isValid(fence), 'Failure merging fence\n');
      ASSERT(
        (await s.syncFenceCountWithStatus(merged, FENCE_STATUS_SIGNALED)) === 0,
        'fence signaled too early!\n',
      );
      await s.swSyncTimelineInc(timeline, 5);
      ASSERT(
        (await s.syncFenceCountWithStatus(merged, FENCE_STATUS_SIGNALED)) === 1,
        'fence did not signal!\n',
      );
      await s.destroy(merged);
      await s.destroy(fence);
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_fence_multi_timeline_wait', async () => {
    await runTest('test_fence_multi_timeline_wait', async (sys) => {
      const s = new SyncLib(sys);
      const timelineA = await s.swSyncTimelineCreate();
      const timelineB = await s.swSyncTimelineCreate();
      const timelineC = await s.swSyncTimelineCreate();
      const fenceA = await s.swSyncFenceCreate(timelineA, 'fenceA', 5);
      const fenceB = await s.swSyncFenceCreate(timelineB, 'fenceB', 5);
      const fenceC = await s.swSyncFenceCreate(timelineC, 'fenceC', 5);
      let merged = await s.syncMerge('mergeFence', fenceB, fenceA);
      merged = await s.syncMerge('mergeFence', fenceC, merged);
      ASSERT(await s.isValid(merged), 'Failure merging fence from various timelines\n');
      let active = await s.syncFenceCountWithStatus(merged, FENCE_STATUS_ACTIVE);
      ASSERT(active === 3, 'Fence signaled too early!\n');
      let ret = await s.syncWait(merged, 0);
      ASSERT(ret === 0, 'Failure waiting on fence until timeout\n');
      const step = async (tl: number, wantActive: number, wantSignaled: number) => {
        ret = await s.swSyncTimelineInc(tl, 5);
        active = await s.syncFenceCountWithStatus(merged, FENCE_STATUS_ACTIVE);
        const signaled = await s.syncFenceCountWithStatus(merged, FENCE_STATUS_SIGNALED);
        ASSERT(active === wantActive && signaled === wantSignaled, 'Fence did not signal properly!\n');
      };
      await step(timelineA, 2, 1);
      await step(timelineB, 1, 2);
      await step(timelineC, 0, 3);
      const before = sys.now();
      ret = await s.syncWait(merged, 100);
      ASSERT(ret > 0, 'Failure waiting on signaled fence\n');
      expect(sys.now()).toBe(before); // already signalled: no time passes
      for (const fd of [merged, fenceC, fenceB, fenceA, timelineC, timelineB, timelineA]) await s.destroy(fd);
      return 0;
    });
  });

  test('test_stress_two_threads_shared_timeline', async () => {
    const iterations = 65536; // 1 << 16 in the C test
    await runTest('test_stress_two_threads_shared_timeline', async (sys) => {
      const s = new SyncLib(sys);
      const timeline = await s.swSyncTimelineCreate();
      ASSERT(await s.isValid(timeline), 'Failure allocating timeline\n');
      const data = { counter: 0 };
      const thread = (threadId: number) => async (ts: Sys) => {
        const t = new SyncLib(ts);
        for (let i = 0; i < iterations; i++) {
          const fence = await t.swSyncFenceCreate(timeline, 'fence', i * 2 + threadId);
          ASSERT(await t.isValid(fence), 'Failure allocating fence\n');
          const ret = await t.syncWait(fence, -1);
          ASSERT(ret > 0, 'Problem occurred on prior thread\n');
          ASSERT(data.counter === i * 2 + threadId, 'Counter got damaged!\n');
          data.counter++;
          ASSERT((await t.swSyncTimelineInc(timeline, 1)) === 0, 'Advancing timeline failed\n');
          await t.destroy(fence);
        }
        return 0;
      };
      const a = sys.spawnThread(thread(0));
      const b = sys.spawnThread(thread(1));
      await sys.joinThread(a);
      await sys.joinThread(b);
      ASSERT(data.counter === iterations * 2, 'Counter has unexpected value\n');
      await s.destroy(timeline);
      return 0;
    });
  });

  test('test_consumer_stress_multi_producer_single_consumer', async () => {
    const iterations = 4096; // 1 << 12 in the C test; a multiple of 8 like it
    const n = 5;
    await runTest('test_consumer_stress_multi_producer_single_consumer', async (sys) => {
      const s = new SyncLib(sys);
      const consumerTimeline = await s.swSyncTimelineCreate();
      const producerTimelines: number[] = [];
      for (let i = 0; i < n; i++) producerTimelines.push(await s.swSyncTimelineCreate());
      const data = { counter: 0, locked: false };
      const lock = async (t: Sys) => {
        while (data.locked) await t.sched_yield();
        data.locked = true;
      };
      const unlock = () => {
        data.locked = false;
      };
      const busyWaitOnFence = async (t: SyncLib, fence: number) => {
        let active: number;
        do {
          const error = await t.syncFenceCountWithStatus(fence, FENCE_STATUS_ERROR);
          ASSERT(error === 0, 'Error occurred on fence\n');
          active = await t.syncFenceCountWithStatus(fence, FENCE_STATUS_ACTIVE);
          await t.sys.sched_yield(); // a real CPU would be preempted here
        } while (active);
        return 0;
      };
      const producer = (id: number) => async (ts: Sys) => {
        const t = new SyncLib(ts);
        for (let i = 0; i < iterations; i++) {
          const fence = await t.swSyncFenceCreate(consumerTimeline, 'fence', i);
          ASSERT(await t.isValid(fence), 'Failure creating fence\n');
          if ((iterations + id) % 8 !== 0) {
            ASSERT((await t.syncWait(fence, -1)) > 0, 'Failure waiting on fence\n');
          } else {
            ASSERT((await busyWaitOnFence(t, fence)) === 0, 'Failure waiting on fence\n');
          }
          await lock(ts);
          data.counter++;
          unlock();
          ASSERT(
            (await t.swSyncTimelineInc(producerTimelines[id], 1)) === 0,
            'Error advancing producer timeline\n',
          );
          await t.destroy(fence);
        }
        return 0;
      };
      const threads: number[] = [];
      for (let i = 0; i < n; i++) threads.push(sys.spawnThread(producer(i)));
      // mpcs_consumer_thread()
      for (let it = 1; it <= iterations; it++) {
        let fence = await s.swSyncFenceCreate(producerTimelines[0], 'name', it);
        for (let i = 1; i < n; i++) {
          const tmp = await s.swSyncFenceCreate(producerTimelines[i], 'name', it);
          const merged = await s.syncMerge('name', tmp, fence);
          await s.destroy(tmp);
          await s.destroy(fence);
          fence = merged;
        }
        ASSERT(await s.isValid(fence), 'Failure merging fences\n');
        if (iterations % 8 !== 0) {
          ASSERT((await s.syncWait(fence, -1)) > 0, 'Producers did not increment as expected\n');
        } else {
          ASSERT((await busyWaitOnFence(s, fence)) === 0, 'Producers did not increment as expected\n');
        }
        ASSERT(data.counter === n * it, 'Counter value mismatch!\n');
        ASSERT(
          (await s.swSyncTimelineInc(consumerTimeline, 1)) === 0,
          'Failure releasing producer threads\n',
        );
        await s.destroy(fence);
      }
      for (const t of threads) await sys.joinThread(t);
      return 0;
    });
  });

  test('test_merge_stress_random_merge', async () => {
    const timelineCount = 32;
    const mergeCount = 32768; // 1024 * 32 in the C test
    await runTest('test_merge_stress_random_merge', async (sys, m) => {
      const s = new SyncLib(sys);
      const rand = () => m.engine.random.nextU32() >>> 1; // glibc rand(): 0..RAND_MAX (2^31 - 1)
      const timelines: number[] = [];
      for (let i = 0; i < timelineCount; i++) timelines.push(await s.swSyncTimelineCreate());
      let fence = await s.swSyncFenceCreate(timelines[0], 'fence', 0);
      ASSERT(await s.isValid(fence), 'Failure creating fence\n');
      const fenceMap = new Array<number>(timelineCount).fill(-1);
      fenceMap[0] = 0;
      for (let i = 0; i < mergeCount; i++) {
        const timelineOffset = rand() % timelineCount;
        const timeline = timelines[timelineOffset];
        const syncPoint = rand();
        if (fenceMap[timelineOffset] === -1) fenceMap[timelineOffset] = syncPoint;
        else if (fenceMap[timelineOffset] < syncPoint) fenceMap[timelineOffset] = syncPoint;
        const tmpfence = await s.swSyncFenceCreate(timeline, 'fence', syncPoint);
        const merged = await s.syncMerge('merge', tmpfence, fence);
        await s.destroy(tmpfence);
        await s.destroy(fence);
        fence = merged;
        ASSERT(await s.isValid(merged), 'Failure creating fence i\n');
      }
      const size = fenceMap.filter((v) => v !== -1).length;
      ASSERT((await s.syncFenceSize(fence)) === size, 'Quantity of elements not matching\n');
      for (let i = 0; i < timelineCount; i++) {
        if (fenceMap[i] !== -1) {
          const ret = await s.syncWait(fence, 0);
          ASSERT(ret === 0, 'Failure waiting on fence until timeout\n');
          await s.swSyncTimelineInc(timelines[i], fenceMap[i]);
        }
      }
      const ret = await s.syncWait(fence, 0);
      ASSERT(ret > 0, 'Failure triggering fence\n');
      await s.destroy(fence);
      for (const t of timelines) await s.destroy(t);
      return 0;
    });
  });
});
