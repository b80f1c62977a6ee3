/**
 * Lockdep rule tests (kernel/locking/lockdep.c and the dma-fence signalling
 * annotations of drivers/dma-buf/dma-fence.c, Linux 6.12): for each kind of report, a
 * small program that breaks the rule and is reported, and its fixed twin that is not.
 * None of the broken programs actually deadlocks in the run: lockdep reports what could
 * happen under another interleaving.
 */
import { describe, expect, test } from 'vitest';
import {
  DmaFence,
  type DmaFenceOps,
  dmaFenceBeginSignalling,
  dmaFenceEndSignalling,
} from '../src/kernel/dma-buf/dma-fence.ts';
import { DmaResv, dmaResvLock, dmaResvUnlock, reservationWwClass } from '../src/kernel/dma-buf/dma-resv.ts';
import { Mutex, mutexLock, mutexLockNested, mutexUnlock } from '../src/kernel/locking/mutex.ts';
import {
  SpinLock,
  spinLock,
  spinLockIrqsave,
  spinUnlock,
  spinUnlockIrqrestore,
} from '../src/kernel/locking/spinlock.ts';
import { WwAcquireCtx, wwAcquireFini, wwAcquireInit } from '../src/kernel/locking/ww-mutex.ts';
import { GFP_ATOMIC, GFP_KERNEL, GFP_NOFS, GFP_NOWAIT } from '../src/kernel/mm/gfp.ts';
import { kfree, kmalloc } from '../src/kernel/mm/slab.ts';
import type { Report } from '../src/sim/report.ts';
import { type RunKernelOptions, rules, runKernel, type ThreadBody } from './helpers/run-kernel.ts';

const ops: DmaFenceOps = { getDriverName: () => 'lockdep-test', getTimelineName: () => 'timeline' };

function lockdepReports(reports: readonly Report[]): Report[] {
  return reports.filter((r) => r.type === 'lockdep');
}

/** T1 takes A then B; later T2 takes B then A. The run never deadlocks. */
function abba(inverted: boolean, repeat = 1): Record<string, ThreadBody> {
  const a = new Mutex('A');
  const b = new Mutex('B');
  return {
    T1: async () => {
      for (let i = 0; i < repeat; i++) {
        await mutexLock(a);
        await mutexLock(b);
        mutexUnlock(b);
        mutexUnlock(a);
      }
    },
    T2: async ({ engine }) => {
      await engine.sleep(1000);
      for (let i = 0; i < repeat; i++) {
        const [first, second] = inverted ? [b, a] : [a, b];
        await mutexLock(first);
        await mutexLock(second);
        mutexUnlock(second);
        mutexUnlock(first);
      }
    },
  };
}

describe('lock-order inversion', () => {
  test('ABBA between two mutexes on two threads that never deadlock is reported', async () => {
    const run = await runKernel(abba(true));
    expect(run.result.status).toBe('completed');
    expect(rules(run.reports)).toEqual(['lockdep.circular']);
    const r = run.reports[0];
    expect(r.type).toBe('lockdep');
    expect(r.simTime).toBe(1000);
    expect(r.context).toMatchObject({ kind: 'task', name: 'T2', tid: 2 });
    expect(r.objects).toEqual([
      { kind: 'task', name: 'T2/2', id: 2 },
      { kind: 'lock_class', name: 'A', id: expect.any(Number) },
      { kind: 'lock_class', name: 'B', id: expect.any(Number) },
    ]);
    const m = r.message;
    expect(m).toContain('WARNING: possible circular locking dependency detected');
    expect(m).toContain('virtual time 1000 ns');
    expect(m).toContain('T2/2 is trying to acquire lock:\n (A){+.+.}, at 1000 ns');
    expect(m).toContain('but task is already holding lock:\n (B){+.+.}, acquired at 1000 ns');
    // both chains: the old dependency A -> B (by T1 at 0 ns) and the new B -> A
    expect(m).toContain('-> #1 (B){+.+.}:\n       taken while holding A: T1/1 at 0 ns');
    expect(m).toContain('-> #0 (A){+.+.}:\n       taken while holding B: T2/2 at 1000 ns (this acquisition)');
    expect(m).toContain(
      '  lock(B);\n                               lock(A);\n                               lock(B);\n  lock(A);',
    );
    expect(m).toContain('1 lock held by T2/2:\n #0: (B){+.+.}, acquired at 1000 ns');
  });

  test('twin: both threads take A then B; nothing is reported', async () => {
    const run = await runKernel(abba(false));
    expect(run.result.status).toBe('completed');
    expect(run.reports).toEqual([]);
  });

  test('the same inversion repeated is reported once, and identically on every run', async () => {
    const one = await runKernel(abba(true, 5));
    const two = await runKernel(abba(true, 5));
    expect(rules(one.reports)).toEqual(['lockdep.circular']);
    expect(two.reports).toEqual(one.reports);
  });

  test('a longer cycle prints the chain that exists', async () => {
    const [a, b, c] = [new Mutex('A'), new Mutex('B'), new Mutex('C')];
    const pair =
      (x: Mutex, y: Mutex): ThreadBody =>
      async () => {
        await mutexLock(x);
        await mutexLock(y);
        mutexUnlock(y);
        mutexUnlock(x);
      };
    const run = await runKernel([
      ['T1', pair(a, b)],
      ['T2', pair(b, c)],
      ['T3', pair(c, a)],
    ]);
    expect(rules(run.reports)).toEqual(['lockdep.circular']);
    const m = run.reports[0].message;
    expect(m).toContain('Chain exists of:\n  A --> B --> C');
    expect(m).toContain('-> #2 (C){+.+.}');
    expect(m).toContain('-> #1 (B){+.+.}');
    expect(m).toContain('-> #0 (A){+.+.}');
  });

  test('ABBA through the reservation ww class outside an acquire context is reported', async () => {
    const m = new Mutex('driver_lock');
    const run = await runKernel({
      T1: async () => {
        const obj = new DmaResv();
        await mutexLock(m);
        await dmaResvLock(obj, null);
        dmaResvUnlock(obj);
        mutexUnlock(m);
      },
      T2: async ({ engine }) => {
        await engine.sleep(10);
        const obj = new DmaResv();
        await dmaResvLock(obj, null);
        await mutexLock(m);
        mutexUnlock(m);
        dmaResvUnlock(obj);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(rules(run.reports)).toEqual(['lockdep.circular']);
    expect(run.reports[0].message).toContain('(reservation_ww_class_mutex)');
    expect(run.reports[0].message).toContain(
      'dma_resv 2 (reservation_ww_class_mutex){+.+.}, acquired at 10 ns',
    );
  });

  test('twin: the driver lock is always taken before the reservation lock', async () => {
    const m = new Mutex('driver_lock');
    const body: ThreadBody = async () => {
      const obj = new DmaResv();
      await mutexLock(m);
      await dmaResvLock(obj, null);
      dmaResvUnlock(obj);
      mutexUnlock(m);
    };
    const run = await runKernel([
      ['T1', body],
      ['T2', body],
    ]);
    expect(run.reports).toEqual([]);
  });
});

describe('recursion on a non-recursive lock', () => {
  test('two locks of one class nested without annotation are reported', async () => {
    const run = await runKernel({
      T: async () => {
        const parent = new Mutex('obj_lock');
        const child = new Mutex('obj_lock');
        await mutexLock(parent);
        await mutexLock(child);
        mutexUnlock(child);
        mutexUnlock(parent);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.recursive']);
    const m = run.reports[0].message;
    expect(m).toContain('WARNING: possible recursive locking detected');
    expect(m).toContain('T/1 is trying to acquire lock:\n (obj_lock){+.+.}');
    expect(m).toContain('  lock(obj_lock);\n  lock(obj_lock);');
    expect(m).toContain('May be due to missing lock nesting notation');
  });

  test('twin: the inner lock is taken with mutex_lock_nested (subclass 1)', async () => {
    const run = await runKernel({
      T: async () => {
        const parent = new Mutex('obj_lock');
        const child = new Mutex('obj_lock');
        await mutexLock(parent);
        await mutexLockNested(child, 1);
        mutexUnlock(child);
        mutexUnlock(parent);
      },
    });
    expect(run.reports).toEqual([]);
    expect(run.kernel.lockdep!.findClass('obj_lock/1')).toBeDefined();
  });

  test('two reservation locks without an acquire context are recursive; with one they are not', async () => {
    const bad = await runKernel({
      T: async () => {
        const [a, b] = [new DmaResv(), new DmaResv()];
        await dmaResvLock(a, null);
        await dmaResvLock(b, null);
        dmaResvUnlock(b);
        dmaResvUnlock(a);
      },
    });
    expect(rules(bad.reports)).toEqual(['lockdep.recursive']);
    const good = await runKernel({
      T: async () => {
        const [a, b] = [new DmaResv(), new DmaResv()];
        const ctx = new WwAcquireCtx();
        wwAcquireInit(ctx, reservationWwClass);
        await dmaResvLock(a, ctx);
        await dmaResvLock(b, ctx);
        dmaResvUnlock(b);
        dmaResvUnlock(a);
        wwAcquireFini(ctx);
      },
    });
    expect(good.reports).toEqual([]);
  });
});

describe('IRQ safety', () => {
  test('a spinlock taken in hard-IRQ and in process context with IRQs on is reported', async () => {
    const lock = new SpinLock('dev_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        spinLock(lock); // interrupts enabled
        spinUnlock(lock);
        engine.after(100, () => {
          spinLock(lock); // in the interrupt handler
          spinUnlock(lock);
        });
        await engine.sleep(200);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(rules(run.reports)).toEqual(['lockdep.inconsistent_irq']);
    const r = run.reports[0];
    expect(r.context.kind).toBe('hardirq');
    expect(r.simTime).toBe(100);
    expect(r.message).toContain('WARNING: inconsistent lock state');
    expect(r.message).toContain('inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage.');
    expect(r.message).toContain('irq [HC1[1]:SC0[0]:HE0:SE0] takes:');
    expect(r.message).toContain('{HARDIRQ-ON-W} state was registered at:\n  T/1 at 0 ns');
    expect(r.message).toContain('  lock(dev_lock);\n  <Interrupt>\n    lock(dev_lock);');
  });

  test('twin: process context takes it with spin_lock_irqsave', async () => {
    const lock = new SpinLock('dev_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        const flags = spinLockIrqsave(lock);
        spinUnlockIrqrestore(lock, flags);
        engine.after(100, () => {
          spinLock(lock);
          spinUnlock(lock);
        });
        await engine.sleep(200);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('an IRQ-safe lock taken before an IRQ-unsafe one is reported (safe -> unsafe order)', async () => {
    const irqLock = new SpinLock('irq_lock');
    const other = new SpinLock('other_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        engine.after(1, () => {
          spinLock(irqLock);
          spinUnlock(irqLock);
        });
        await engine.sleep(10);
        spinLock(other); // IRQs on: other_lock is HARDIRQ-unsafe
        spinUnlock(other);
        const flags = spinLockIrqsave(irqLock);
        spinLock(other); // irq_lock -> other_lock
        spinUnlock(other);
        spinUnlockIrqrestore(irqLock, flags);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.irq_inversion']);
    const m = run.reports[0].message;
    expect(m).toContain('WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected');
    expect(m).toContain('... which became HARDIRQ-irq-safe at:\n  irq at 1 ns');
    expect(m).toContain('... which became HARDIRQ-irq-unsafe at:\n  T/1 at 10 ns');
    expect(m).toContain('  lock(other_lock);\n                               local_irq_disable();');
  });

  test('twin: the inner lock is always taken with interrupts off', async () => {
    const irqLock = new SpinLock('irq_lock');
    const other = new SpinLock('other_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        engine.after(1, () => {
          spinLock(irqLock);
          spinUnlock(irqLock);
        });
        await engine.sleep(10);
        let f = spinLockIrqsave(other);
        spinUnlockIrqrestore(other, f);
        f = spinLockIrqsave(irqLock);
        spinLock(other);
        spinUnlock(other);
        spinUnlockIrqrestore(irqLock, f);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('a lock that became IRQ-unsafe after a dependency on it from an IRQ-safe lock is an inversion', async () => {
    const irqLock = new SpinLock('irq_lock');
    const other = new SpinLock('other_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        engine.after(1, () => {
          spinLock(irqLock);
          spinUnlock(irqLock);
        });
        await engine.sleep(10);
        const f = spinLockIrqsave(irqLock);
        spinLock(other);
        spinUnlock(other);
        spinUnlockIrqrestore(irqLock, f);
        spinLock(other); // now HARDIRQ-ON: irq_lock -> other_lock already exists
        spinUnlock(other);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.irq_inversion']);
    expect(run.reports[0].message).toContain('WARNING: possible irq lock inversion dependency detected');
    expect(run.reports[0].message).toContain(
      'but this lock was taken by another, HARDIRQ-safe lock in the past:',
    );
  });
});

describe('sleeping in atomic context', () => {
  test('mutex_lock under a spinlock is reported with the locks held', async () => {
    const spin = new SpinLock('spin');
    const m = new Mutex('m');
    const run = await runKernel({
      T: async () => {
        spinLock(spin);
        await mutexLock(m);
        mutexUnlock(m);
        spinUnlock(spin);
      },
    });
    expect(rules(run.reports)).toEqual(['sched.sleep_in_atomic']);
    expect(run.reports[0].message).toContain(
      'BUG: sleeping function called from invalid context: mutex_lock in T/1',
    );
    expect(run.reports[0].message).toContain('1 lock held by T/1:\n #0: (spin){+.+.}');
  });

  test('twin: the mutex is taken before the spinlock', async () => {
    const spin = new SpinLock('spin');
    const m = new Mutex('m');
    const run = await runKernel({
      T: async () => {
        await mutexLock(m);
        spinLock(spin);
        spinUnlock(spin);
        mutexUnlock(m);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('a GFP_KERNEL allocation in an interrupt handler is reported; GFP_ATOMIC is fine', async () => {
    const run = await runKernel({
      T: async ({ engine }) => {
        engine.after(5, () => kfree(kmalloc(64, GFP_ATOMIC)));
        engine.after(10, () => kfree(kmalloc(64, GFP_KERNEL)));
        await engine.sleep(20);
      },
    });
    expect(rules(run.reports).filter((r) => r.startsWith('sched'))).toEqual(['sched.sleep_in_atomic']);
    const r = run.reports.find((x) => x.rule === 'sched.sleep_in_atomic')!;
    expect(r.simTime).toBe(10);
    expect(r.message).toContain('memory allocation (GFP_KERNEL) in irq');
  });
});

describe('locks held at thread exit', () => {
  test('a thread that exits holding a mutex is reported', async () => {
    const m = new Mutex('leaked_lock');
    const run = await runKernel({
      T: async ({ engine }) => {
        await engine.sleep(5);
        await mutexLock(m);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(rules(run.reports)).toEqual(['lockdep.held_at_exit']);
    expect(run.reports[0].message).toContain('WARNING: T/1 still has locks held!');
    expect(run.reports[0].message).toContain(
      '1 lock held by T/1:\n #0: (leaked_lock){+.+.}, acquired at 5 ns',
    );
  });

  test('twin: the thread unlocks before exiting', async () => {
    const m = new Mutex('leaked_lock');
    const run = await runKernel({
      T: async () => {
        await mutexLock(m);
        mutexUnlock(m);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('an unlock of a lock not held is a bad unlock balance', async () => {
    const m = new Mutex('m');
    const run = await runKernel({
      T: async () => {
        mutexUnlock(m);
      },
    });
    expect(rules(run.reports)).toEqual(['mutex.unlock_not_owner', 'lockdep.bad_unlock']);
    expect(run.reports[1].message).toContain('WARNING: bad unlock balance detected!');
  });
});

describe('fence signalling critical sections', () => {
  function fenceSignalledAt(engine: Parameters<ThreadBody>[0]['engine'], t: number): DmaFence {
    const f = new DmaFence(ops, new SpinLock('test_fence_lock'), 1, 1);
    engine.after(t, () => f.signal());
    return f;
  }

  test('a fence waited on inside dma_fence_begin_signalling is reported', async () => {
    const run = await runKernel({
      T: async ({ engine }) => {
        const f = fenceSignalledAt(engine, 100);
        const cookie = dmaFenceBeginSignalling();
        expect(await f.waitTimeout(false, 1000)).toBeGreaterThan(0);
        dmaFenceEndSignalling(cookie);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(rules(run.reports)).toEqual(['lockdep.fence_wait_in_signalling']);
    expect(run.reports[0].simTime).toBe(0);
    expect(run.reports[0].message).toContain('T/1 is about to wait on a dma_fence');
    expect(run.reports[0].message).toContain('(dma_fence_map){');
  });

  test('twin: the wait comes after dma_fence_end_signalling', async () => {
    const run = await runKernel({
      T: async ({ engine }) => {
        const f = fenceSignalledAt(engine, 100);
        const cookie = dmaFenceBeginSignalling();
        dmaFenceEndSignalling(cookie);
        expect(await f.waitTimeout(false, 1000)).toBeGreaterThan(0);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('waiting under a lock that a signalling section also takes is reported (across threads)', async () => {
    const m = new Mutex('submit_lock');
    const run = await runKernel({
      signaller: async () => {
        const cookie = dmaFenceBeginSignalling();
        await mutexLock(m);
        mutexUnlock(m);
        dmaFenceEndSignalling(cookie);
      },
      waiter: async ({ engine }) => {
        const f = fenceSignalledAt(engine, 100);
        await engine.sleep(10);
        await mutexLock(m);
        await f.wait(false);
        mutexUnlock(m);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.fence_wait_in_signalling']);
    const msg = run.reports[0].message;
    expect(msg).toContain('WARNING: possible circular locking dependency detected');
    expect(msg).toContain('waiter/2 waits on a dma_fence while holding submit_lock');
    expect(msg).toContain('taken while holding dma_fence_map: signaller/1 at 0 ns');
  });

  test('twin: the waiter drops the lock before waiting', async () => {
    const m = new Mutex('submit_lock');
    const run = await runKernel({
      signaller: async () => {
        const cookie = dmaFenceBeginSignalling();
        await mutexLock(m);
        mutexUnlock(m);
        dmaFenceEndSignalling(cookie);
      },
      waiter: async ({ engine }) => {
        const f = fenceSignalledAt(engine, 100);
        await engine.sleep(10);
        await mutexLock(m);
        mutexUnlock(m);
        await f.wait(false);
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('a GFP_KERNEL allocation inside a signalling section is reported', async () => {
    const run = await runKernel({
      T: async () => {
        const cookie = dmaFenceBeginSignalling();
        kfree(kmalloc(128, GFP_KERNEL));
        dmaFenceEndSignalling(cookie);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.reclaim_in_signalling']);
    const msg = run.reports[0].message;
    expect(msg).toContain('T/1 takes fs_reclaim inside a fence signalling critical section');
    expect(msg).toContain('in dma_resv_lockdep()');
  });

  test('GFP_NOFS is a blocking allocation too (MMU-notifier reclaim)', async () => {
    const run = await runKernel({
      T: async () => {
        const cookie = dmaFenceBeginSignalling();
        kfree(kmalloc(128, GFP_NOFS));
        dmaFenceEndSignalling(cookie);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.reclaim_in_signalling']);
    expect(run.reports[0].message).toContain('mmu_notifier_invalidate_range_start');
  });

  test('twin: GFP_NOWAIT and GFP_ATOMIC allocations inside the section are fine', async () => {
    const run = await runKernel({
      T: async () => {
        const cookie = dmaFenceBeginSignalling();
        kfree(kmalloc(128, GFP_NOWAIT));
        kfree(kmalloc(128, GFP_ATOMIC));
        dmaFenceEndSignalling(cookie);
        kfree(kmalloc(128, GFP_KERNEL));
      },
    });
    expect(run.reports).toEqual([]);
  });

  test('taking a reservation lock inside a signalling section is reported', async () => {
    const run = await runKernel({
      T: async () => {
        const obj = new DmaResv();
        const cookie = dmaFenceBeginSignalling();
        await dmaResvLock(obj, null);
        dmaResvUnlock(obj);
        dmaFenceEndSignalling(cookie);
      },
    });
    expect(rules(run.reports)).toEqual(['lockdep.circular']);
    expect(run.reports[0].message).toContain('the cycle goes through dma_fence_map');
  });

  test('twin: the section starts once the reservation lock is held', async () => {
    const run = await runKernel({
      T: async ({ engine }) => {
        const obj = new DmaResv();
        const f = new DmaFence(ops, new SpinLock('test_fence_lock'), 1, 1);
        await dmaResvLock(obj, null);
        const cookie = dmaFenceBeginSignalling();
        f.signal();
        dmaFenceEndSignalling(cookie);
        dmaResvUnlock(obj);
        await engine.sleep(1);
      },
    });
    expect(run.reports).toEqual([]);
  });
});

describe('switching lockdep off', () => {
  const off: RunKernelOptions = { lockdep: false };

  test('with lockdep off the ABBA program is not reported and the locks still work', async () => {
    const run = await runKernel(abba(true), off);
    expect(run.result.status).toBe('completed');
    expect(run.kernel.lockdep).toBe(null);
    expect(run.kernel.lockdepHooks).toBe(null);
    expect(run.reports).toEqual([]);
  });

  test('with lockdep off a real deadlock is still found by the scheduler', async () => {
    const a = new Mutex('A');
    const b = new Mutex('B');
    const run = await runKernel(
      {
        T1: async ({ engine }) => {
          await mutexLock(a);
          await engine.sleep(10);
          await mutexLock(b);
        },
        T2: async ({ engine }) => {
          await mutexLock(b);
          await engine.sleep(10);
          await mutexLock(a);
        },
      },
      off,
    );
    expect(run.result.status).toBe('deadlock');
    expect(rules(run.reports)).toEqual(['deadlock']);
  });

  test('lockdep primes the dma_resv_lockdep() order at boot', async () => {
    const run = await runKernel({ T: async () => {} });
    const ld = run.kernel.lockdep!;
    const edges = ld.classes.flatMap((c) => c.after.map((d) => `${d.from.label} -> ${d.to.label}`));
    expect(edges).toEqual([
      '&mm->mmap_lock -> reservation_ww_class_acquire',
      'reservation_ww_class_acquire -> reservation_ww_class_mutex',
      'reservation_ww_class_mutex -> fs_reclaim',
      'fs_reclaim -> mmu_notifier_invalidate_range_start',
      'fs_reclaim -> &mapping->i_mmap_rwsem',
      'mmu_notifier_invalidate_range_start -> dma_fence_map',
    ]);
    expect(lockdepReports(run.reports)).toEqual([]);
  });
});
