/**
 * Behaviour of the dma_fence core (src/kernel/dma-buf/dma-fence.ts) beyond what the
 * kernel's selftests cover, checked against Linux 6.12: drivers/dma-buf/dma-fence.c and
 * include/linux/dma-fence.h (spec/kernel-dmabuf.md §1).
 *
 * The fences here use the default wait (no `wait` op), unlike the selftest mock.
 */
import { describe, expect, test } from 'vitest';
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceAllocatePrivateStub,
  dmaFenceContextAlloc,
  dmaFenceGetStub,
  dmaFenceIsLater,
  dmaFenceIsLaterOrSame,
  dmaFenceLater,
  dmaFencePut,
  dmaFenceSeqnoIsLater,
  dmaFenceSignal,
  dmaFenceWaitAnyTimeout,
} from '../src/kernel/dma-buf/dma-fence.ts';
import { errno, MAX_ERRNO } from '../src/kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../src/kernel/jiffies.ts';
import { SpinLock, spinLock, spinUnlock } from '../src/kernel/locking/spinlock.ts';
import type { Report } from '../src/sim/report.ts';
import { type KthreadRun, runKthread } from './helpers/kthread.ts';

const ops32: DmaFenceOps = { getDriverName: () => 'test', getTimelineName: () => 'timeline' };
const ops64: DmaFenceOps = { ...ops32, use64bitSeqno: true };

/** A fence on its own lock. */
function fence(context = 1, seqno = 1, ops: DmaFenceOps = ops32): DmaFence {
  return new DmaFence(ops, new SpinLock('test.lock'), context, seqno);
}

/** The run completed and raised no report at all. */
function expectClean(run: KthreadRun): void {
  expect(run.result.status).toBe('completed');
  expect(run.engine.reports).toEqual([]);
}

/** The run completed and raised exactly these (type, rule) reports, in order. */
function expectReports(run: KthreadRun, expected: [Report['type'], string][]): void {
  expect(run.result.status).toBe('completed');
  expect(run.engine.reports.map((r) => [r.type, r.rule])).toEqual(expected);
}

describe('sequence numbers', () => {
  test('32-bit wrap-around: 1 is later than 0xFFFFFFFF, 0x80000000 is not later than 0', () => {
    expect(dmaFenceSeqnoIsLater(1, 0xffffffff, ops32)).toBe(true);
    expect(dmaFenceSeqnoIsLater(0xffffffff, 1, ops32)).toBe(false);
    expect(dmaFenceSeqnoIsLater(0x80000000, 0, ops32)).toBe(false);
    expect(dmaFenceSeqnoIsLater(0, 0x80000000, ops32)).toBe(false);
    expect(dmaFenceSeqnoIsLater(0x7fffffff, 0, ops32)).toBe(true);
    expect(dmaFenceSeqnoIsLater(5, 5, ops32)).toBe(false);
    // Only the low 32 bits count.
    expect(dmaFenceSeqnoIsLater(2 ** 32 + 2, 1, ops32)).toBe(true);
    expect(dmaFenceSeqnoIsLater(2 ** 32 + 1, 2, ops32)).toBe(false);
  });

  test('use64bitSeqno compares the whole value', () => {
    expect(dmaFenceSeqnoIsLater(1, 0xffffffff, ops64)).toBe(false);
    expect(dmaFenceSeqnoIsLater(0xffffffff, 1, ops64)).toBe(true);
    expect(dmaFenceSeqnoIsLater(0x80000000, 0, ops64)).toBe(true);
    expect(dmaFenceSeqnoIsLater(2 ** 32 + 1, 2, ops64)).toBe(true);
    expect(dmaFenceSeqnoIsLater(5, 5, ops64)).toBe(false);
  });

  test('dma_fence_is_later uses the first fence ops; is_later_or_same accepts the same fence', async () => {
    const run = await runKthread(() => {
      const a = fence(7, 1);
      const b = fence(7, 0xffffffff);
      expect(dmaFenceIsLater(a, b)).toBe(true);
      expect(dmaFenceIsLater(b, a)).toBe(false);
      // The comparison follows the first fence's ops.
      const x64 = fence(7, 0x80000000, ops64);
      const x32 = fence(7, 0x80000000, ops32);
      const zero64 = fence(7, 0, ops64);
      const zero32 = fence(7, 0, ops32);
      expect(dmaFenceIsLater(x64, zero32)).toBe(true);
      expect(dmaFenceIsLater(x32, zero64)).toBe(false);
      expect(dmaFenceIsLater(zero64, x32)).toBe(false);
      expect(dmaFenceIsLater(a, a)).toBe(false);
      expect(dmaFenceIsLaterOrSame(a, a)).toBe(true);
      expect(dmaFenceIsLaterOrSame(a, fence(7, 1))).toBe(false);
    });
    expectClean(run);
  });

  test('is_later and later on different contexts WARN and return false / null', async () => {
    let results: unknown[] = [];
    const run = await runKthread(() => {
      const a = fence(1, 2);
      const b = fence(2, 1);
      results = [dmaFenceIsLater(a, b), dmaFenceLater(a, b)];
    });
    expect(results).toEqual([false, null]);
    expectReports(run, [
      ['warn', 'dma_fence.is_later_context'],
      ['warn', 'dma_fence.later_context'],
    ]);
  });

  test('dma_fence_later picks the later fence, or null when that one has signalled', async () => {
    const run = await runKthread(() => {
      const early = fence(3, 10);
      const late = fence(3, 11);
      expect(dmaFenceLater(early, late)).toBe(late);
      expect(dmaFenceLater(late, early)).toBe(late);
      // The earlier fence signalling does not matter...
      early.signal();
      expect(dmaFenceLater(early, late)).toBe(late);
      // ...the later one does.
      late.signal();
      expect(dmaFenceLater(early, late)).toBeNull();
      expect(dmaFenceLater(late, early)).toBeNull();
      // A `signaled` op is consulted (and signals the fence).
      let done = false;
      const peek: DmaFenceOps = { ...ops32, signaled: () => done };
      const x = fence(4, 1, peek);
      const y = fence(4, 2, peek);
      expect(dmaFenceLater(x, y)).toBe(y);
      done = true;
      expect(dmaFenceLater(x, y)).toBeNull();
      expect(y.signaledBit).toBe(true);
    });
    expectClean(run);
  });
});

describe('contexts', () => {
  test('ids start at 1 and only increase; allocating 0 WARNs', async () => {
    const got: number[] = [];
    const run = await runKthread(() => {
      got.push(dmaFenceContextAlloc(1));
      got.push(dmaFenceContextAlloc(3));
      got.push(dmaFenceContextAlloc(1));
      got.push(dmaFenceContextAlloc(0));
      got.push(dmaFenceContextAlloc(1));
    });
    expect(got).toEqual([1, 2, 5, 6, 6]);
    expectReports(run, [['warn', 'dma_fence.context_alloc_zero']]);
  });

  test('each kernel has its own counter', async () => {
    const a = await runKthread(() => dmaFenceContextAlloc(5));
    const b = await runKthread(() => dmaFenceContextAlloc(1));
    expect(a.ret).toBe(1);
    expect(b.ret).toBe(1);
  });
});

describe('signalling and callbacks', () => {
  test('callbacks run in registration order, exactly once, with the fence lock held', async () => {
    const calls: { i: number; lockHeld: boolean; irqsOff: boolean; signaledBit: boolean; ts: number }[] = [];
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      const cbs = [0, 1, 2, 3].map(() => new DmaFenceCb());
      cbs.forEach((cb, i) => {
        expect(
          f.addCallback(cb, (fe, c) => {
            expect(fe).toBe(f);
            expect(c).toBe(cb);
            calls.push({
              i,
              lockHeld: f.lock.owner === engine.current,
              irqsOff: engine.current.irqsDisabled > 0,
              signaledBit: fe.signaledBit,
              ts: fe.timestamp,
            });
          }),
        ).toBe(0);
      });
      // A removed callback does not run; the others keep their order.
      expect(f.removeCallback(cbs[2])).toBe(true);
      await engine.sleep(777);
      expect(f.signal()).toBe(0);
      expect(f.signal()).toBe(-errno.EINVAL);
      expect(f.signalTimestamp(5)).toBe(-errno.EINVAL);
      expect(f.timestamp).toBe(777);
      expect(f.getTimestamp()).toBe(777);
      expect(f.lock.locked).toBe(false);
      expect(engine.current.irqsDisabled).toBe(0);
      expect(engine.current.preemptCount).toBe(0);
      // Every callback was unlinked before it ran.
      expect(cbs.map((cb) => f.removeCallback(cb))).toEqual([false, false, false, false]);
      expect(f.cbList).toEqual([]);
    });
    expectClean(run);
    expect(calls.map((c) => c.i)).toEqual([0, 1, 3]);
    for (const c of calls) {
      expect(c).toMatchObject({ lockHeld: true, irqsOff: true, signaledBit: true, ts: 777 });
    }
  });

  test('a callback added after signalling is refused with -ENOENT and never runs', async () => {
    let ran = 0;
    const run = await runKthread(() => {
      const f = fence();
      f.signal();
      const cb = new DmaFenceCb();
      expect(f.addCallback(cb, () => ran++)).toBe(-errno.ENOENT);
      expect(cb.queuedOn).toBeNull();
      expect(f.removeCallback(cb)).toBe(false);
    });
    expectClean(run);
    expect(ran).toBe(0);
  });

  test('add_callback without a function WARNs and returns -EINVAL', async () => {
    const run = await runKthread(() => {
      expect(fence().addCallback(new DmaFenceCb(), null)).toBe(-errno.EINVAL);
    });
    expectReports(run, [['warn', 'dma_fence.add_callback_null']]);
  });

  test('adding a callback enables signalling once; enable_signaling returning false signals at once', async () => {
    let enables = 0;
    let ran = 0;
    const run = await runKthread(({ engine }) => {
      let refuse = false;
      const o: DmaFenceOps = {
        ...ops32,
        enableSignaling: (f) => {
          enables++;
          expect(f.lock.owner).toBe(engine.current);
          return !refuse;
        },
      };
      const f = fence(1, 1, o);
      expect(f.addCallback(new DmaFenceCb(), () => ran++)).toBe(0);
      expect(f.addCallback(new DmaFenceCb(), () => ran++)).toBe(0);
      f.enableSwSignaling();
      expect(enables).toBe(1);
      f.signal();
      expect(ran).toBe(2);

      refuse = true;
      const g = fence(1, 2, o);
      expect(g.addCallback(new DmaFenceCb(), () => ran++)).toBe(-errno.ENOENT);
      expect(g.signaledBit).toBe(true);
      expect(enables).toBe(2);
    });
    expectClean(run);
    expect(ran).toBe(2);
  });

  test('dma_fence_signal(NULL) returns -EINVAL without a WARN', async () => {
    const run = await runKthread(() => {
      expect(dmaFenceSignal(null)).toBe(-errno.EINVAL);
      expect(dmaFenceSignal(undefined)).toBe(-errno.EINVAL);
    });
    expectClean(run);
  });

  test('is_signaled asks the signaled op and signals the fence, running its callbacks', async () => {
    let ran = 0;
    const run = await runKthread(() => {
      let done = false;
      const f = fence(1, 1, { ...ops32, signaled: () => done });
      f.addCallback(new DmaFenceCb(), () => ran++);
      expect(f.isSignaled()).toBe(false);
      expect(ran).toBe(0);
      done = true;
      expect(f.signaledBit).toBe(false);
      expect(f.isSignaled()).toBe(true);
      expect(f.signaledBit).toBe(true);
      expect(ran).toBe(1);
      // A plain fence is not signalled by asking.
      expect(fence().isSignaled()).toBe(false);
    });
    expectClean(run);
  });

  test('release with pending callbacks WARNs and signals with -EDEADLK', async () => {
    const seen: { error: number; signaled: boolean }[] = [];
    let releasedAfterSignal = false;
    const run = await runKthread(() => {
      const o: DmaFenceOps = {
        ...ops32,
        release: (f) => {
          releasedAfterSignal = f.signaledBit;
        },
      };
      const f = fence(9, 3, o);
      f.addCallback(new DmaFenceCb(), (fe) => seen.push({ error: fe.error, signaled: fe.signaledBit }));
      f.get();
      f.put();
      expect(seen).toEqual([]);
      f.put();
    });
    expect(seen).toEqual([{ error: -errno.EDEADLK, signaled: true }]);
    expect(releasedAfterSignal).toBe(true);
    expectReports(run, [['warn', 'dma_fence.release_pending_signals']]);
    expect(run.engine.reports[0].message).toBe('Fence test:timeline:9:3 released with pending signals!');
  });

  test('release of a signalled fence or one without callbacks does not WARN', async () => {
    let releases = 0;
    const run = await runKthread(() => {
      const o: DmaFenceOps = { ...ops32, release: () => releases++ };
      const a = fence(1, 1, o);
      a.addCallback(new DmaFenceCb(), () => {});
      a.signal();
      a.put();
      const b = new DmaFence(o, new SpinLock(), 1, 2);
      dmaFencePut(b);
      dmaFencePut(null);
    });
    expect(releases).toBe(2);
    expectClean(run);
  });

  test('a callback that takes its fence lock again stops the run with a deadlock report', async () => {
    let after = false;
    const run = await runKthread(({ engine }) => {
      const f = fence();
      f.addCallback(new DmaFenceCb(), (fe) => {
        spinLock(fe.lock);
        spinUnlock(fe.lock);
      });
      // A second thread that would run next if the first one went on.
      engine.spawn('bystander', async () => {
        after = true;
      });
      f.signal();
      after = true;
    });
    expect(run.result.status).toBe('bug');
    expect(run.result.report?.type).toBe('deadlock');
    expect(run.result.report?.rule).toBe('spinlock.recursion');
    // Lockdep, when it runs, may say "possible recursive locking" first; nothing else.
    expect(run.engine.reports.filter((r) => r.type !== 'lockdep')).toEqual([run.result.report]);
    expect(after).toBe(false);
  });

  test('the same deadlock from an interrupt handler also stops the run', async () => {
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      f.addCallback(new DmaFenceCb(), (fe) => spinLock(fe.lock));
      engine.after(1000, () => f.signal());
      await f.wait(false);
    });
    expect(run.result.status).toBe('bug');
    expect(run.result.report).toMatchObject({ type: 'deadlock', rule: 'spinlock.recursion', simTime: 1000 });
  });
});

describe('errors and status', () => {
  test('get_status: 0 while pending, 1 when signalled, the error when set', async () => {
    const run = await runKthread(() => {
      const f = fence();
      expect(f.getStatus()).toBe(0);
      f.signal();
      expect(f.getStatus()).toBe(1);
      const g = fence();
      g.setError(-errno.ECANCELED);
      expect(g.getStatus()).toBe(0);
      g.signal();
      expect(g.getStatus()).toBe(-errno.ECANCELED);
      expect(g.getStatusLocked).toBeTypeOf('function');
    });
    expectClean(run);
  });

  test('set_error WARNs on a signalled fence and on a value that is not a negative errno, storing it anyway', async () => {
    const stored: number[] = [];
    const run = await runKthread(() => {
      const a = fence();
      a.setError(-MAX_ERRNO); // the smallest valid value: no WARN
      stored.push(a.error);
      a.setError(0);
      stored.push(a.error);
      a.setError(5);
      stored.push(a.error);
      a.setError(-MAX_ERRNO - 1);
      stored.push(a.error);
      a.signal();
      a.setError(-errno.EIO);
      stored.push(a.error);
    });
    expect(stored).toEqual([-MAX_ERRNO, 0, 5, -MAX_ERRNO - 1, -errno.EIO]);
    expectReports(run, [
      ['warn', 'dma_fence.set_error_invalid'],
      ['warn', 'dma_fence.set_error_invalid'],
      ['warn', 'dma_fence.set_error_invalid'],
      ['warn', 'dma_fence.set_error_signaled'],
    ]);
  });

  test('timestamp of an unsignalled fence WARNs and gives now', async () => {
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      await engine.sleep(300);
      expect(f.getTimestamp()).toBe(300);
      f.signalTimestamp(123);
      expect(f.getTimestamp()).toBe(123);
    });
    expectReports(run, [['warn', 'dma_fence.timestamp_unsignaled']]);
  });
});

describe('default wait', () => {
  test('an already signalled fence returns the timeout, or 1 for a zero timeout', async () => {
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      f.signal();
      expect(await f.waitTimeout(false, 0)).toBe(1);
      expect(await f.waitTimeout(true, 0)).toBe(1);
      expect(await f.waitTimeout(false, 17)).toBe(17);
      expect(await f.waitTimeout(true, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
      expect(await f.wait(true)).toBe(0);
      expect(engine.now).toBe(0);
    });
    expectClean(run);
  });

  test('a zero timeout on a pending fence returns 0 without sleeping', async () => {
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      expect(await f.waitTimeout(false, 0)).toBe(0);
      expect(engine.now).toBe(0);
      expect(f.cbList).toEqual([]);
    });
    expectClean(run);
  });

  test('running out of time returns 0 at the jiffy the timer expires', async () => {
    const run = await runKthread(
      async ({ engine, kernel }) => {
        const f = fence();
        await engine.sleep(1_500_000); // inside jiffy 1 (1 jiffy = 1 ms at HZ 1000)
        expect(await f.waitTimeout(false, 3)).toBe(0);
        // schedule_timeout(3) from jiffy 1 expires at the start of jiffy 4.
        expect(engine.now).toBe(4 * kernel.jiffies.tickNs);
        // The private waiter callback is gone again.
        expect(f.cbList).toEqual([]);
      },
      { hz: 1000 },
    );
    expectClean(run);
  });

  test('signalled while waiting returns the jiffies left', async () => {
    const run = await runKthread(
      async ({ engine }) => {
        const f = fence();
        engine.at(3_500_000, () => f.signal());
        expect(await f.waitTimeout(true, 10)).toBe(7);
        expect(engine.now).toBe(3_500_000);
      },
      { hz: 1000 },
    );
    expectClean(run);
  });

  test('an interruptible wait ends with -ERESTARTSYS on a signal; an uninterruptible one does not', async () => {
    const run = await runKthread(async ({ engine }) => {
      const me = engine.currentTask();
      const f = fence();
      engine.after(1000, () => engine.signal(me));
      expect(await f.waitTimeout(true, MAX_SCHEDULE_TIMEOUT)).toBe(-errno.ERESTARTSYS);
      expect(engine.now).toBe(1000);
      // The signal stays pending: the next interruptible wait returns at once.
      expect(await f.waitTimeout(true, 100)).toBe(-errno.ERESTARTSYS);
      expect(await f.wait(true)).toBe(-errno.ERESTARTSYS);
      expect(engine.now).toBe(1000);
      // An uninterruptible wait ignores it and waits for the fence.
      engine.after(2000, () => f.signal());
      expect(await f.wait(false)).toBe(0);
      expect(engine.now).toBe(3000);
      expect(f.cbList).toEqual([]);
    });
    expectClean(run);
  });

  test('a negative timeout WARNs and returns -EINVAL', async () => {
    const run = await runKthread(async () => {
      expect(await fence().waitTimeout(false, -1)).toBe(-errno.EINVAL);
    });
    expectReports(run, [['warn', 'dma_fence.wait_negative_timeout']]);
  });

  test('waiting with a spinlock held is sleeping in atomic context', async () => {
    const run = await runKthread(async ({ engine }) => {
      const f = fence();
      const l = new SpinLock('outer');
      engine.after(10, () => f.signal());
      spinLock(l);
      await f.wait(false);
      spinUnlock(l);
    });
    expect(run.result.status).toBe('completed');
    expect(run.engine.reports.length).toBeGreaterThan(0);
    for (const r of run.engine.reports)
      expect([r.type, r.rule]).toEqual(['violation', 'sched.sleep_in_atomic']);
  });
});

describe('dma_fence_wait_any_timeout', () => {
  test('a zero timeout returns 1 with the first signalled index, else 0', async () => {
    const run = await runKthread(async () => {
      const fs = [fence(1, 1), fence(1, 2), fence(1, 3)];
      const idx = { value: -1 };
      expect(await dmaFenceWaitAnyTimeout(fs, 3, false, 0, idx)).toBe(0);
      expect(idx.value).toBe(-1);
      fs[2].signal();
      fs[1].signal();
      expect(await dmaFenceWaitAnyTimeout(fs, 3, false, 0, idx)).toBe(1);
      expect(idx.value).toBe(1);
      // count limits the scan
      const idx2 = { value: -1 };
      expect(await dmaFenceWaitAnyTimeout(fs, 1, false, 0, idx2)).toBe(0);
    });
    expectClean(run);
  });

  test('an already signalled fence returns the timeout with its index and removes the callbacks added', async () => {
    const run = await runKthread(async ({ engine }) => {
      const fs = [fence(1, 1), fence(1, 2), fence(1, 3)];
      fs[1].signal();
      const idx = { value: -1 };
      expect(await dmaFenceWaitAnyTimeout(fs, 3, false, 50, idx)).toBe(50);
      expect(idx.value).toBe(1);
      expect(fs[0].cbList).toEqual([]);
      expect(fs[2].cbList).toEqual([]);
      expect(engine.now).toBe(0);
    });
    expectClean(run);
  });

  test('waking on the second fence sets idx to 1 and returns the jiffies left', async () => {
    const run = await runKthread(
      async ({ engine }) => {
        const fs = [fence(1, 1), fence(2, 1), fence(3, 1)];
        engine.at(2_000_000, () => fs[1].signal());
        const idx = { value: -1 };
        expect(await dmaFenceWaitAnyTimeout(fs, 3, true, 10, idx)).toBe(8);
        expect(idx.value).toBe(1);
        expect(engine.now).toBe(2_000_000);
        for (const f of fs) expect(f.cbList).toEqual([]);
      },
      { hz: 1000 },
    );
    expectClean(run);
  });

  test('timeout returns 0; a signal returns -ERESTARTSYS when interruptible', async () => {
    const run = await runKthread(
      async ({ engine }) => {
        const fs = [fence(1, 1), fence(2, 1)];
        expect(await dmaFenceWaitAnyTimeout(fs, 2, false, 5)).toBe(0);
        expect(engine.now).toBe(5_000_000);
        const me = engine.currentTask();
        engine.after(100, () => engine.signal(me));
        expect(await dmaFenceWaitAnyTimeout(fs, 2, true, MAX_SCHEDULE_TIMEOUT)).toBe(-errno.ERESTARTSYS);
        expect(engine.now).toBe(5_000_100);
        for (const f of fs) expect(f.cbList).toEqual([]);
      },
      { hz: 1000 },
    );
    expectClean(run);
  });

  test('no fences, a zero count or a negative timeout WARN and return -EINVAL', async () => {
    const run = await runKthread(async () => {
      const fs = [fence()];
      expect(await dmaFenceWaitAnyTimeout(null, 1, false, 1)).toBe(-errno.EINVAL);
      expect(await dmaFenceWaitAnyTimeout(fs, 0, false, 1)).toBe(-errno.EINVAL);
      expect(await dmaFenceWaitAnyTimeout(fs, 1, false, -1)).toBe(-errno.EINVAL);
    });
    expectReports(run, [
      ['warn', 'dma_fence.wait_any_invalid'],
      ['warn', 'dma_fence.wait_any_invalid'],
      ['warn', 'dma_fence.wait_any_invalid'],
    ]);
  });
});

describe('stub fences', () => {
  test('get_stub: one signalled fence, context 0, stamped at the first call', async () => {
    const run = await runKthread(async ({ engine }) => {
      await engine.sleep(5000);
      const a = dmaFenceGetStub();
      expect(a.isSignaled()).toBe(true);
      expect([a.context, a.seqno, a.driverName, a.timelineName]).toEqual([0, 0, 'stub', 'stub']);
      expect(a.timestamp).toBe(5000);
      await engine.sleep(5000);
      const b = dmaFenceGetStub();
      expect(b).toBe(a);
      expect(b.timestamp).toBe(5000);
      const rc = a.refcount;
      dmaFencePut(a);
      expect(a.refcount).toBe(rc - 1);
      dmaFencePut(b);
    });
    expectClean(run);
  });

  test('allocate_private_stub: a new signalled fence with the given timestamp', async () => {
    const run = await runKthread(async ({ engine }) => {
      await engine.sleep(100);
      const a = dmaFenceAllocatePrivateStub(42);
      const b = dmaFenceAllocatePrivateStub(engine.now);
      expect(a).not.toBe(b);
      expect(a.signaledBit).toBe(true);
      expect(a.timestamp).toBe(42);
      expect(b.timestamp).toBe(100);
      expect([a.context, a.seqno, a.refcount]).toEqual([0, 0, 1]);
      expect(a).not.toBe(dmaFenceGetStub());
      a.put();
      b.put();
    });
    expectClean(run);
  });
});

describe('deadlines', () => {
  test('set_deadline reaches the op only while the fence is unsignalled', async () => {
    const hints: number[] = [];
    const run = await runKthread(() => {
      const o: DmaFenceOps = { ...ops32, setDeadline: (_f, d) => hints.push(d) };
      const f = fence(1, 1, o);
      f.setDeadline(1000);
      f.setDeadline(500);
      f.signal();
      f.setDeadline(100);
      // A fence whose signaled op says it is done is signalled, not hinted.
      const g = fence(1, 2, { ...o, signaled: () => true });
      g.setDeadline(7);
      expect(g.signaledBit).toBe(true);
      // Without the op nothing happens.
      fence().setDeadline(1);
    });
    expect(hints).toEqual([1000, 500]);
    expectClean(run);
  });
});
