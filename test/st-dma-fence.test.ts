/**
 * Port of the kernel's dma_fence selftests (drivers/dma-buf/st-dma-fence.c, Linux 6.12;
 * harness drivers/dma-buf/selftest.c), one vitest test per kernel case, same names.
 *
 * The mock fence is the selftest's: context 0, seqno 0, its own spinlock, both names
 * "mock", a release op (the kernel frees it to a slab; here it is counted), and the
 * custom `mock_wait` op, which returns the remaining timeout when the callback fired,
 * -ERESTARTSYS when interrupted and -ETIME when the time ran out
 * (spec/kernel-dmabuf.md §11.2). Each case runs in a simulated kernel thread, as the
 * selftests run in the kthread that loads the module, and checks that no report
 * (WARN, violation, deadlock) was raised.
 *
 * race_signal_callback runs its two threads as simulated threads, each pass bounded by
 * 50 ms of virtual time as the kernel bounds it by 50 ms of wall time (msleep(50) in the
 * parent, then kthread_stop_put of each thread in turn). Virtual time only moves when no
 * thread can run, so each loop iteration ends with a sleep that stands for the time the
 * iteration takes: a seeded random 1 to 2 * RACE_ITERATION_MEAN_NS ns, which also varies
 * the interleavings from seed to seed. That bounds a pass to about 50 ms / 250 us = 200
 * iterations per thread, and means no thread can run forever without blocking (under
 * PCT a never-blocking high-priority thread would starve the other one). The threads
 * also reach a preemption point between every two steps, and the case is run for
 * several seeds under the fifo, random and PCT schedulers. The kernel's busy retry for
 * the other thread's fence (dma_fence_get_rcu_safe in a loop) is a sleep on a wait queue
 * woken when a slot changes.
 */
import { describe, expect, test } from 'vitest';
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceGetStub,
  dmaFencePut,
} from '../src/kernel/dma-buf/dma-fence.ts';
import { errno } from '../src/kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../src/kernel/jiffies.ts';
import type { Kernel } from '../src/kernel/kernel.ts';
import { SpinLock, spinLockIrq, spinUnlockIrq } from '../src/kernel/locking/spinlock.ts';
import type { Engine, Task } from '../src/sim/engine.ts';
import type { SchedulerOptions } from '../src/sim/scheduler.ts';
import { WaitQueue } from '../src/sim/wait-queue.ts';
import { type KthreadOptions, type KthreadRun, runKthread } from './helpers/kthread.ts';

// ---------------------------------------------------------------- the mock fence

/** Fences whose release op ran (the kernel's kmem_cache_free in mock_fence_release). */
const released = new WeakSet<DmaFence>();
let releaseCount = 0;

/** mock_wait(): the selftest's custom wait op. */
async function mockWait(f: DmaFence, intr: boolean, timeout: number): Promise<number> {
  const k = f.kernel;
  const task = k.engine.currentTask();
  const cb = new DmaFenceCb();
  // mock_wakeup: wake_up_process(task).
  if (
    f.addCallback(cb, () => {
      k.engine.wakeUp(task);
    })
  ) {
    return timeout;
  }
  while (timeout) {
    if (f.signaledBit) break;
    if (intr && k.signalPending()) break;
    timeout = await k.scheduleTimeout(timeout, `mock_wait on ${f}`, {
      interruptible: intr,
      objects: [f.reportObject()],
    });
  }
  if (!f.removeCallback(cb)) return timeout;
  if (intr && k.signalPending()) return -errno.ERESTARTSYS;
  return -errno.ETIME;
}

const mockOps: DmaFenceOps = {
  getDriverName: () => 'mock',
  getTimelineName: () => 'mock',
  wait: mockWait,
  release: (f) => {
    released.add(f);
    releaseCount++;
  },
};

/** mock_fence(): a fresh fence with its own lock, context 0, seqno 0. */
function mockFence(): DmaFence {
  return new DmaFence(mockOps, new SpinLock('mock_fence.lock'), 0, 0);
}

/** struct simple_cb with simple_callback(). */
class SimpleCb extends DmaFenceCb {
  seen = false;
}

function simpleCallback(_f: DmaFence, cb: DmaFenceCb): void {
  (cb as SimpleCb).seen = true;
}

// ---------------------------------------------------------------- harness

type SelftestBody = (ctx: {
  kernel: Kernel;
  engine: Engine;
  spawn: (name: string, fn: () => Promise<number | void>) => Task;
}) => Promise<number | void>;

/**
 * Runs one case in a kernel thread; the run must complete, the case must return 0 and
 * nothing may have been reported.
 */
async function selftest(body: SelftestBody, opts: KthreadOptions = {}): Promise<KthreadRun> {
  const run = await runKthread(body, opts);
  expect(run.result.status).toBe('completed');
  expect(run.engine.reports).toEqual([]);
  expect(run.ret).toBe(0);
  return run;
}

// ---------------------------------------------------------------- the cases

describe('dma_fence selftests (st-dma-fence.c)', () => {
  test('sanitycheck', async () => {
    let f: DmaFence | null = null;
    await selftest(async () => {
      f = mockFence();
      f.enableSwSignaling();
      f.signal();
      dmaFencePut(f);
    });
    expect(f).not.toBeNull();
    expect(released.has(f!)).toBe(true);
  });

  test('test_signaling', async () => {
    await selftest(async () => {
      const f = mockFence();
      f.enableSwSignaling();
      // Fence unexpectedly signaled on creation
      expect(f.isSignaled()).toBe(false);
      // Fence reported being already signaled
      expect(f.signal()).toBe(0);
      // Fence not reporting signaled
      expect(f.isSignaled()).toBe(true);
      // Fence reported not being already signaled
      expect(f.signal()).toBe(-errno.EINVAL);
      dmaFencePut(f);
      expect(released.has(f)).toBe(true);
    });
  });

  test('test_add_callback', async () => {
    await selftest(async () => {
      const cb = new SimpleCb();
      const f = mockFence();
      // Failed to add callback, fence already signaled!
      expect(f.addCallback(cb, simpleCallback)).toBe(0);
      expect(cb.seen).toBe(false);
      f.signal();
      // Callback failed!
      expect(cb.seen).toBe(true);
      dmaFencePut(f);
    });
  });

  test('test_late_add_callback', async () => {
    await selftest(async () => {
      const cb = new SimpleCb();
      const f = mockFence();
      f.enableSwSignaling();
      f.signal();
      // Added callback, but fence was already signaled!
      expect(f.addCallback(cb, simpleCallback)).toBe(-errno.ENOENT);
      expect(f.signal()).toBe(-errno.EINVAL);
      // Callback called after failed attachment!
      expect(cb.seen).toBe(false);
      dmaFencePut(f);
    });
  });

  test('test_rm_callback', async () => {
    await selftest(async () => {
      const cb = new SimpleCb();
      const f = mockFence();
      // Failed to add callback, fence already signaled!
      expect(f.addCallback(cb, simpleCallback)).toBe(0);
      // Failed to remove callback!
      expect(f.removeCallback(cb)).toBe(true);
      f.signal();
      // Callback still signaled after removal!
      expect(cb.seen).toBe(false);
      dmaFencePut(f);
    });
  });

  test('test_late_rm_callback', async () => {
    await selftest(async () => {
      const cb = new SimpleCb();
      const f = mockFence();
      expect(f.addCallback(cb, simpleCallback)).toBe(0);
      f.signal();
      // Callback failed!
      expect(cb.seen).toBe(true);
      // Callback removal succeed after being executed!
      expect(f.removeCallback(cb)).toBe(false);
      dmaFencePut(f);
    });
  });

  test('test_status', async () => {
    await selftest(async () => {
      const f = mockFence();
      f.enableSwSignaling();
      // Fence unexpectedly has signaled status on creation
      expect(f.getStatus()).toBe(0);
      f.signal();
      // Fence not reporting signaled status
      expect(f.getStatus()).toBe(1);
      dmaFencePut(f);
    });
  });

  test('test_error', async () => {
    await selftest(async () => {
      const f = mockFence();
      f.enableSwSignaling();
      f.setError(-errno.EIO);
      // Fence unexpectedly has error status before signal
      expect(f.getStatus()).toBe(0);
      f.signal();
      // Fence not reporting error status
      expect(f.getStatus()).toBe(-errno.EIO);
      dmaFencePut(f);
    });
  });

  test('test_wait', async () => {
    await selftest(async ({ engine }) => {
      const f = mockFence();
      f.enableSwSignaling();
      // Wait reported complete before being signaled
      expect(await f.waitTimeout(false, 0)).toBe(-errno.ETIME);
      f.signal();
      // Wait reported incomplete after being signaled
      expect(await f.waitTimeout(false, 0)).toBe(0);
      f.signal();
      dmaFencePut(f);
      // Zero timeouts never sleep.
      expect(engine.now).toBe(0);
    });
  });

  test('test_wait_timeout', async () => {
    const seen: { first: number; second: number; firedAt: number; firstEnd: number; secondEnd: number } = {
      first: Number.NaN,
      second: Number.NaN,
      firedAt: -1,
      firstEnd: -1,
      secondEnd: -1,
    };
    const run = await selftest(async ({ kernel, engine }) => {
      const f = mockFence();
      f.enableSwSignaling();
      seen.first = await f.waitTimeout(false, 1);
      seen.firstEnd = engine.now;
      // mod_timer(&wt.timer, jiffies + 1): a timer at the next jiffy boundary that signals f.
      let pending = true;
      const timer = engine.at(kernel.jiffies.toNsecs(kernel.jiffiesNow + 1), () => {
        pending = false;
        seen.firedAt = engine.now;
        f.signal();
      });
      seen.second = await f.waitTimeout(false, 2);
      seen.secondEnd = engine.now;
      expect(pending).toBe(false);
      // del_timer_sync: the timer already ran.
      expect(engine.cancel(timer)).toBe(false);
      f.signal();
      dmaFencePut(f);
    });
    const tick = run.kernel.jiffies.tickNs;
    // Wait reported complete before being signaled: one jiffy ran out.
    expect(seen.first).toBe(-errno.ETIME);
    expect(seen.firstEnd).toBe(tick);
    // The timer fired at jiffy 2 and signalled f; schedule_timeout(2) started at jiffy 1
    // (expiry jiffy 3) so one jiffy was left, which mock_wait returns.
    expect(seen.firedAt).toBe(2 * tick);
    expect(seen.secondEnd).toBe(2 * tick);
    expect(seen.second).toBe(1);
  });

  test('test_stub', async () => {
    await selftest(async () => {
      const f: DmaFence[] = [];
      for (let i = 0; i < 64; i++) {
        f.push(dmaFenceGetStub());
        // Obtained unsignaled stub fence!
        expect(f[i].isSignaled()).toBe(true);
      }
      // One global stub, one reference per call.
      expect(new Set(f).size).toBe(1);
      expect(f[0].context).toBe(0);
      for (let i = f.length; i-- > 0; ) dmaFencePut(f[i]);
    });
  });
});

// ---------------------------------------------------------------- race_signal_callback

/** Length of one pass: the kernel's msleep(50). */
const RACE_PASS_NS = 50_000_000;
/** Mean virtual time one loop iteration takes (see the module comment). */
const RACE_ITERATION_MEAN_NS = 250_000;
/** Fewest iterations a thread must complete per pass for the case to count. */
const RACE_MIN_ITERATIONS = 100;

/** struct race_thread plus the counters the kernel prints and what the test checks. */
interface RaceThread {
  id: number;
  before: boolean;
  stop: boolean;
  passes: number;
  misses: number;
  /** Iterations in which add_callback succeeded. */
  added: number;
  /** Iterations that waited on the other thread's fence. */
  waited: number;
}

interface RaceOutcome {
  ret: number;
  errors: string[];
  threads: RaceThread[];
  created: number;
}

/** The race_signal_callback case: two passes of two racing threads. */
async function raceSignalCallback(
  engine: Engine,
  spawn: (name: string, fn: () => Promise<number | void>) => Task,
): Promise<RaceOutcome> {
  const fences: (DmaFence | null)[] = [null, null];
  // Woken whenever a slot changes or a thread is told to stop.
  const slotsChanged = new WaitQueue(engine, 'race_signal_callback fences');
  const errors: string[] = [];
  const all: RaceThread[] = [];
  let created = 0;

  const threadSignalCallback = async (t: RaceThread): Promise<number> => {
    let err = 0;
    while (!err && !t.stop) {
      const f1 = mockFence();
      created++;
      f1.enableSwSignaling();
      await engine.preemptionPoint();

      fences[t.id] = f1;
      slotsChanged.wakeUpAll();
      await engine.preemptionPoint();

      // do { f2 = dma_fence_get_rcu_safe(&t->fences[!t->id]); } while (!f2 && !kthread_should_stop());
      let f2: DmaFence | null = null;
      await slotsChanged.waitEvent(() => fences[1 - t.id] !== null || t.stop, {
        desc: { what: `race thread ${t.id}: the other thread's fence` },
      });
      const other = fences[1 - t.id];
      if (other !== null) f2 = other.get();
      await engine.preemptionPoint();

      if (t.before) {
        f1.signal();
        await engine.preemptionPoint();
      }

      const cb = new SimpleCb();
      if (!f2 || f2.addCallback(cb, simpleCallback)) {
        t.misses++;
        cb.seen = true;
      } else {
        t.added++;
      }
      await engine.preemptionPoint();

      if (!t.before) {
        f1.signal();
        await engine.preemptionPoint();
      }

      if (!cb.seen) {
        t.waited++;
        await f2!.wait(false);
        // __wait_for_callbacks(f2)
        spinLockIrq(f2!.lock);
        spinUnlockIrq(f2!.lock);
      }

      if (!cb.seen) {
        errors.push(
          `Callback not seen on thread ${t.id}, pass ${t.passes} (${t.misses} misses), signaling ` +
            `${t.before ? 'before' : 'after'} add_callback; fence signaled? ${f2!.isSignaled() ? 'yes' : 'no'}`,
        );
        err = -errno.EINVAL;
      }

      dmaFencePut(f2);
      await engine.preemptionPoint();

      fences[t.id] = null;
      slotsChanged.wakeUpAll();
      await engine.preemptionPoint();

      dmaFencePut(f1);
      t.passes++;
      // The time this iteration took.
      await engine.sleep(1 + engine.random.nextInt(2 * RACE_ITERATION_MEAN_NS));
    }
    return err;
  };

  let ret = 0;
  for (let pass = 0; !ret && pass <= 1; pass++) {
    const t: RaceThread[] = [0, 1].map((id) => ({
      id,
      before: pass === 1,
      stop: false,
      passes: 0,
      misses: 0,
      added: 0,
      waited: 0,
    }));
    all.push(...t);
    const tasks = t.map((th) => spawn(`dma-fence:${th.id}`, () => threadSignalCallback(th)));
    await engine.sleep(RACE_PASS_NS);
    // kthread_stop_put, one thread after the other.
    for (let i = 0; i < t.length; i++) {
      t[i].stop = true;
      slotsChanged.wakeUpAll();
      const err = await engine.join(tasks[i]);
      if (err && !ret) ret = err;
    }
  }
  return { ret, errors, threads: all, created };
}

/** Runs race_signal_callback under `scheduler` with `seed` and checks the outcome. */
async function checkRace(seed: number, scheduler: SchedulerOptions): Promise<RaceOutcome> {
  let outcome: RaceOutcome | null = null;
  const releasedBefore = releaseCount;
  await selftest(
    async ({ engine, spawn }) => {
      outcome = await raceSignalCallback(engine, spawn);
      return outcome.ret;
    },
    { seed, scheduler },
  );
  const o = outcome! as RaceOutcome;
  // No thread found its callback not run after the wait returned.
  expect(o.errors).toEqual([]);
  expect(o.ret).toBe(0);
  // Two passes of two threads, each bounded as documented.
  expect(o.threads.map((t) => t.before)).toEqual([false, false, true, true]);
  for (const t of o.threads) expect(t.passes).toBeGreaterThanOrEqual(RACE_MIN_ITERATIONS);
  // Every fence created was released exactly once (no reference leaked or dropped twice).
  expect(releaseCount - releasedBefore).toBe(o.created);
  return o;
}

describe('dma_fence selftests (st-dma-fence.c): race_signal_callback', () => {
  test('race_signal_callback', async () => {
    const o = await checkRace(1, { strategy: 'fifo' });
    // Both outcomes of add_callback happened: queued on an unsignalled fence and waited
    // for, and refused on an already signalled one.
    expect(o.threads.reduce((n, t) => n + t.waited, 0)).toBeGreaterThan(0);
    expect(o.threads.reduce((n, t) => n + t.misses, 0)).toBeGreaterThan(0);
  });

  const strategies: SchedulerOptions[] = [
    { strategy: 'fifo' },
    { strategy: 'random' },
    { strategy: 'pct', depth: 3, steps: 4000 },
  ];
  for (const scheduler of strategies) {
    test(`race_signal_callback under ${scheduler.strategy}, seeds 1-6`, async () => {
      let waited = 0;
      let misses = 0;
      let added = 0;
      for (let seed = 1; seed <= 6; seed++) {
        const o = await checkRace(seed, scheduler);
        for (const t of o.threads) {
          waited += t.waited;
          misses += t.misses;
          added += t.added;
        }
      }
      expect(waited).toBeGreaterThan(0);
      expect(misses).toBeGreaterThan(0);
      expect(added).toBeGreaterThan(0);
    });
  }

  test('mock_wait sleeps until another thread signals (not a kernel case)', async () => {
    // Checks the blocking path race_signal_callback relies on. One thread waits
    // with MAX_SCHEDULE_TIMEOUT on a fence another thread signals after sleeping.
    const run = await selftest(async ({ engine, spawn }) => {
      const f = mockFence();
      f.enableSwSignaling();
      const signaller = spawn('signaller', async () => {
        await engine.sleep(12_345);
        f.signal();
      });
      expect(await f.waitTimeout(false, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
      expect(await f.wait(false)).toBe(0);
      expect(engine.now).toBe(12_345);
      await engine.join(signaller);
      dmaFencePut(f);
    });
    expect(run.result.now).toBe(12_345);
  });
});
