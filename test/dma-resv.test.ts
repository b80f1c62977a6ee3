/**
 * dma_resv behaviour (drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h, Linux
 * 6.12; spec §5): slot reservation and growth, the add_fence replacement rule, usage
 * filtering, locked and unlocked iteration with restarts, the bulk helpers, and the
 * WARN/BUG a driver gets for calling without the lock or without reserved slots.
 */
import { describe, expect, test } from 'vitest';
import { DmaFence, type DmaFenceOps } from '../src/kernel/dma-buf/dma-fence.ts';
import {
  type DmaFenceArray,
  dmaFenceArrayCreate,
  dmaFenceIsArray,
} from '../src/kernel/dma-buf/dma-fence-array.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  DmaResv,
  type DmaResvFences,
  DmaResvIter,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvCopyFences,
  dmaResvDescribe,
  dmaResvFini,
  dmaResvForEachFence,
  dmaResvForEachFenceUnlocked,
  dmaResvGetFences,
  dmaResvGetSingleton,
  dmaResvIsLocked,
  dmaResvIterBegin,
  dmaResvIterEnd,
  dmaResvIterIsRestarted,
  dmaResvIterUsage,
  dmaResvLock,
  dmaResvLockingCtx,
  dmaResvReplaceFences,
  dmaResvReserveFences,
  dmaResvSetDeadline,
  dmaResvTestSignaled,
  dmaResvTrylock,
  dmaResvUnlock,
  dmaResvUsageRw,
  dmaResvWaitTimeout,
  reservationWwClass,
} from '../src/kernel/dma-buf/dma-resv.ts';
import { errno } from '../src/kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../src/kernel/jiffies.ts';
import type { Kernel } from '../src/kernel/kernel.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import { WwAcquireCtx, wwAcquireFini, wwAcquireInit } from '../src/kernel/locking/ww-mutex.ts';
import { kmallocInjectFailures } from '../src/kernel/mm/slab.ts';
import type { Engine } from '../src/sim/engine.ts';
import { rules, runKernel } from './helpers/run-kernel.ts';

const deadlines: [string, number][] = [];
const ops: DmaFenceOps = {
  getDriverName: () => 'resv-test',
  getTimelineName: () => 'tl',
  setDeadline: (f, t) => {
    deadlines.push([`${f.context}:${f.seqno}`, t]);
  },
};
const lock = new SpinLock('resv_test_fence_lock');

function fence(context: number, seqno: number): DmaFence {
  return new DmaFence(ops, lock, context, seqno);
}

function entries(obj: DmaResv): string[] {
  const list = obj.fences;
  if (list === null) return [];
  const out: string[] = [];
  for (let i = 0; i < list.numFences; i++)
    out.push(`${list.table[i]!.context}:${list.table[i]!.seqno}/${list.usage[i]}`);
  return out;
}

/** Runs `body` in one kernel thread; fails the test on any report unless `allow` lists its rules. */
async function inKernel(
  body: (k: { kernel: Kernel; engine: Engine }) => Promise<void>,
  allow: string[] = [],
): Promise<string[]> {
  const run = await runKernel({ T: async ({ kernel, engine }) => body({ kernel, engine }) });
  expect(run.result.status).toBe('completed');
  expect(rules(run.reports)).toEqual(allow);
  return rules(run.reports);
}

describe('usage classes', () => {
  test('dma_resv_usage_rw: a writer waits for readers and writers, a reader for writers', () => {
    expect(dmaResvUsageRw(true)).toBe(DMA_RESV_USAGE_READ);
    expect(dmaResvUsageRw(false)).toBe(DMA_RESV_USAGE_WRITE);
    expect([
      DMA_RESV_USAGE_KERNEL,
      DMA_RESV_USAGE_WRITE,
      DMA_RESV_USAGE_READ,
      DMA_RESV_USAGE_BOOKKEEP,
    ]).toEqual([0, 1, 2, 3]);
  });

  test('a query with usage U sees the fences with usage <= U', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 4);
      const fs = [0, 1, 2, 3].map((u) => fence(10 + u, 1));
      for (const [u, f] of fs.entries()) dmaResvAddFence(obj, f, u as DmaResvUsage);
      const seen = (u: DmaResvUsage) => {
        const c = new DmaResvIter();
        return [...dmaResvForEachFence(c, obj, u)].map((f) => f.context);
      };
      expect(seen(DMA_RESV_USAGE_KERNEL)).toEqual([10]);
      expect(seen(DMA_RESV_USAGE_WRITE)).toEqual([10, 11]);
      expect(seen(DMA_RESV_USAGE_READ)).toEqual([10, 11, 12]);
      expect(seen(DMA_RESV_USAGE_BOOKKEEP)).toEqual([10, 11, 12, 13]);
      fs[0].signal();
      fs[1].signal();
      expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_WRITE)).toBe(true);
      expect(dmaResvTestSignaled(obj, DMA_RESV_USAGE_READ)).toBe(false);
      dmaResvUnlock(obj);
      for (const f of fs) f.signal();
      dmaResvFini(obj);
    });
  });
});

describe('reserve_fences', () => {
  test('capacity follows the kmalloc bucket: 1 -> 5, then max(num + n, 2 * max) rounded up', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      await dmaResvLock(obj, null);
      expect(dmaResvReserveFences(obj, 1)).toBe(0);
      expect(obj.fences!.maxFences).toBe(5); // 24 + 4 * 8 = 56 -> 64-byte bucket
      const first = obj.fences;
      expect(dmaResvReserveFences(obj, 5)).toBe(0);
      expect(obj.fences).toBe(first); // still fits: nothing changes
      for (let i = 0; i < 5; i++) dmaResvAddFence(obj, fence(100 + i, 1), DMA_RESV_USAGE_READ);
      expect(dmaResvReserveFences(obj, 1)).toBe(0);
      expect(obj.fences).not.toBe(first);
      expect(obj.fences!.maxFences).toBe(13); // max(6, 10) = 10 -> 104 -> 128-byte bucket
      expect(obj.fences!.numFences).toBe(5);
      expect(dmaResvReserveFences(obj, 100)).toBe(0);
      expect(obj.fences!.maxFences).toBe(125); // 105 -> 864 -> 1024-byte bucket
      for (const f of [...dmaResvForEachFence(new DmaResvIter(), obj, DMA_RESV_USAGE_BOOKKEEP)]) f.signal();
      dmaResvUnlock(obj);
      dmaResvFini(obj);
    });
  });

  test('a new list keeps the unsignalled fences in order and drops the signalled ones', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b, c] = [fence(1, 1), fence(2, 1), fence(3, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 3);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_WRITE);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ);
      dmaResvAddFence(obj, c, DMA_RESV_USAGE_BOOKKEEP);
      dmaResvUnlock(obj); // capacity := count
      expect(obj.fences!.maxFences).toBe(3);
      b.signal();
      expect(b.refcount).toBe(2);
      await dmaResvLock(obj, null);
      expect(dmaResvReserveFences(obj, 1)).toBe(0);
      expect(entries(obj)).toEqual(['1:1/1', '3:1/3']);
      expect(b.refcount).toBe(1); // the list's reference was dropped
      dmaResvUnlock(obj);
      a.signal();
      c.signal();
      dmaResvFini(obj);
      expect([a.refcount, b.refcount, c.refcount]).toEqual([1, 1, 1]);
    });
  });

  test('reserving 0 slots WARNs and returns -EINVAL; a failed allocation returns -ENOMEM', async () => {
    await inKernel(
      async ({ kernel }) => {
        const obj = new DmaResv();
        await dmaResvLock(obj, null);
        expect(dmaResvReserveFences(obj, 0)).toBe(-errno.EINVAL);
        kmallocInjectFailures(kernel, 1);
        expect(dmaResvReserveFences(obj, 1)).toBe(-errno.ENOMEM);
        expect(obj.fences).toBe(null);
        expect(dmaResvReserveFences(obj, 1)).toBe(0);
        dmaResvUnlock(obj);
        dmaResvFini(obj);
      },
      ['dma_resv.reserve_zero'],
    );
  });
});

describe('add_fence', () => {
  test('same context, later seqno, WRITE over READ replaces the entry in place (promotion)', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [r1, w2] = [fence(7, 1), fence(7, 2)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 2);
      dmaResvAddFence(obj, r1, DMA_RESV_USAGE_READ);
      dmaResvAddFence(obj, w2, DMA_RESV_USAGE_WRITE);
      expect(entries(obj)).toEqual(['7:2/1']);
      expect(r1.refcount).toBe(1);
      dmaResvUnlock(obj);
      r1.signal();
      w2.signal();
      dmaResvFini(obj);
    });
  });

  test('same context, READ over an existing WRITE is appended: no demotion, both kept', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [w1, r2] = [fence(7, 1), fence(7, 2)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 2);
      dmaResvAddFence(obj, w1, DMA_RESV_USAGE_WRITE);
      dmaResvAddFence(obj, r2, DMA_RESV_USAGE_READ);
      expect(entries(obj)).toEqual(['7:1/1', '7:2/2']);
      // an older seqno of the same context is not "later or same": appended too
      dmaResvReserveFences(obj, 1);
      const old = fence(7, 0);
      dmaResvAddFence(obj, old, DMA_RESV_USAGE_KERNEL);
      expect(entries(obj)).toEqual(['7:1/1', '7:2/2', '7:0/0']);
      // the same fence again with the same usage replaces itself
      dmaResvAddFence(obj, r2, DMA_RESV_USAGE_READ);
      expect(entries(obj)).toEqual(['7:1/1', '7:2/2', '7:0/0']);
      dmaResvUnlock(obj);
      for (const f of [w1, r2, old]) f.signal();
      dmaResvFini(obj);
    });
  });

  test('a signalled entry anywhere earlier is recycled first', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b, c] = [fence(1, 1), fence(2, 1), fence(3, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 3);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ);
      b.signal();
      dmaResvAddFence(obj, c, DMA_RESV_USAGE_BOOKKEEP);
      expect(entries(obj)).toEqual(['1:1/2', '3:1/3']);
      dmaResvUnlock(obj);
      a.signal();
      c.signal();
      dmaResvFini(obj);
    });
  });

  test('replace_fences swaps every fence of a context for the replacement', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b, rep] = [fence(1, 1), fence(2, 1), fence(9, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 2);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_BOOKKEEP);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ);
      dmaResvReplaceFences(obj, 1, rep, DMA_RESV_USAGE_KERNEL);
      expect(entries(obj)).toEqual(['9:1/0', '2:1/2']);
      expect(a.refcount).toBe(1);
      expect(rep.refcount).toBe(2);
      dmaResvUnlock(obj);
      for (const f of [a, b, rep]) f.signal();
      dmaResvFini(obj);
    });
  });

  test('adding without reserved slots is a BUG', async () => {
    const run = await runKernel({
      T: async () => {
        const obj = new DmaResv();
        await dmaResvLock(obj, null);
        dmaResvAddFence(obj, fence(1, 1), DMA_RESV_USAGE_WRITE);
      },
    });
    expect(run.result.status).toBe('bug');
    expect(run.result.report?.rule).toBe('dma_resv.add_fence_no_slot');
  });

  test('reserved slots do not survive an unlock (CONFIG_DEBUG_MUTEXES): adding after relocking is a BUG', async () => {
    const run = await runKernel({
      T: async () => {
        const obj = new DmaResv();
        await dmaResvLock(obj, null);
        dmaResvReserveFences(obj, 2);
        dmaResvAddFence(obj, fence(1, 1), DMA_RESV_USAGE_WRITE);
        dmaResvUnlock(obj);
        await dmaResvLock(obj, null);
        dmaResvAddFence(obj, fence(2, 1), DMA_RESV_USAGE_WRITE);
      },
    });
    expect(run.result.status).toBe('bug');
    expect(run.result.report?.message).toContain('BUG_ON(fobj->num_fences >= fobj->max_fences)');
  });

  test('calling without the reservation lock WARNs; so does adding a container', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const f = fence(1, 1);
      expect(dmaResvReserveFences(obj, 1)).toBe(0);
      dmaResvAddFence(obj, f, DMA_RESV_USAGE_READ);
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 1);
      const g = fence(2, 1);
      g.get();
      const array = dmaFenceArrayCreate(1, [g], 50, 1, false);
      dmaResvAddFence(obj, array, DMA_RESV_USAGE_READ);
      dmaResvUnlock(obj);
      f.signal();
      g.signal();
      dmaResvFini(obj);
    }, ['dma_resv.assert_held', 'dma_resv.assert_held', 'dma_resv.add_container']);
  });
});

describe('iterators', () => {
  test('the locked iterator yields signalled fences too, without references; the unlocked one skips them', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b] = [fence(1, 1), fence(2, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 2);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_READ);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_WRITE);
      a.signal();
      const c = new DmaResvIter();
      const locked: string[] = [];
      for (const f of dmaResvForEachFence(c, obj, DMA_RESV_USAGE_READ)) {
        locked.push(`${f.context} u${dmaResvIterUsage(c)} r${dmaResvIterIsRestarted(c)} ref${f.refcount}`);
      }
      expect(locked).toEqual(['1 u2 rtrue ref2', '2 u1 rfalse ref2']);
      const u = new DmaResvIter();
      dmaResvIterBegin(u, obj, DMA_RESV_USAGE_READ);
      const unlocked: string[] = [];
      for (const f of dmaResvForEachFenceUnlocked(u)) unlocked.push(`${f.context} ref${f.refcount}`);
      dmaResvIterEnd(u);
      expect(unlocked).toEqual(['2 ref3']);
      expect(b.refcount).toBe(2);
      dmaResvUnlock(obj);
      b.signal();
      dmaResvFini(obj);
    });
  });

  test('the locked iterator WARNs without the lock', async () => {
    await inKernel(
      async () => {
        const obj = new DmaResv();
        expect([...dmaResvForEachFence(new DmaResvIter(), obj, DMA_RESV_USAGE_READ)]).toEqual([]);
      },
      // dma_resv_iter_first asserts, and so does the dma_resv_iter_next it calls
      ['dma_resv.assert_held', 'dma_resv.assert_held'],
    );
  });

  test('an unlocked iteration restarts from the first fence when the list is replaced meanwhile', async () => {
    const seen: string[] = [];
    let shared: DmaResv | null = null;
    const run = await runKernel({
      reader: async ({ engine }) => {
        const obj = new DmaResv();
        shared = obj;
        await dmaResvLock(obj, null);
        dmaResvReserveFences(obj, 2);
        dmaResvAddFence(obj, fence(1, 1), DMA_RESV_USAGE_WRITE);
        dmaResvAddFence(obj, fence(2, 1), DMA_RESV_USAGE_READ);
        dmaResvUnlock(obj);
        const c = new DmaResvIter();
        dmaResvIterBegin(c, obj, DMA_RESV_USAGE_BOOKKEEP);
        for (const f of dmaResvForEachFenceUnlocked(c)) {
          seen.push(`${f.context}${dmaResvIterIsRestarted(c) ? ' restarted' : ''}`);
          if (seen.length === 1) await engine.sleep(100); // the writer grows the list now
        }
        dmaResvIterEnd(c);
      },
      writer: async ({ engine }) => {
        await engine.sleep(50);
        const obj = shared!;
        await dmaResvLock(obj, null);
        dmaResvReserveFences(obj, 10); // a new list is published
        dmaResvAddFence(obj, fence(3, 1), DMA_RESV_USAGE_READ);
        dmaResvUnlock(obj);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(seen).toEqual(['1 restarted', '1 restarted', '2', '3']);
    expect(run.reports).toEqual([]);
  });
});

describe('bulk helpers', () => {
  test('get_fences returns references to the unsignalled matching fences', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const out: DmaResvFences = { numFences: 0, fences: null };
      expect(dmaResvGetFences(obj, DMA_RESV_USAGE_BOOKKEEP, out)).toBe(0);
      expect(out).toEqual({ numFences: 0, fences: null });
      const [a, b, c] = [fence(1, 1), fence(2, 1), fence(3, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 3);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_WRITE);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_BOOKKEEP);
      dmaResvAddFence(obj, c, DMA_RESV_USAGE_READ);
      dmaResvUnlock(obj);
      c.signal();
      expect(dmaResvGetFences(obj, DMA_RESV_USAGE_BOOKKEEP, out)).toBe(0);
      expect(out.numFences).toBe(2);
      expect(out.fences).toEqual([a, b]);
      expect(a.refcount).toBe(3);
      for (const f of out.fences!) f.put();
      a.signal();
      b.signal();
      dmaResvFini(obj);
    });
  });

  test('get_singleton: null for none, the fence for one, a signal-on-all array for more', async () => {
    await inKernel(async ({ kernel }) => {
      const obj = new DmaResv();
      const out: { fence: DmaFence | null } = { fence: null };
      expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ, out)).toBe(0);
      expect(out.fence).toBe(null);
      const [a, b] = [fence(1, 1), fence(2, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 2);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_WRITE);
      dmaResvUnlock(obj);
      expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ, out)).toBe(0);
      expect(out.fence).toBe(a);
      a.put();
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 1);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ);
      dmaResvUnlock(obj);
      const ctxBefore = kernel.fenceContextCounter;
      expect(dmaResvGetSingleton(obj, DMA_RESV_USAGE_READ, out)).toBe(0);
      const array = out.fence as DmaFenceArray;
      expect(dmaFenceIsArray(array)).toBe(true);
      expect([array.context, array.seqno, array.numFences]).toEqual([ctxBefore, 1, 2]);
      expect(array.fences).toEqual([a, b]);
      a.signal();
      expect(array.isSignaled()).toBe(false);
      b.signal();
      expect(array.isSignaled()).toBe(true);
      array.put();
      dmaResvFini(obj);
    });
  });

  test('copy_fences gives dst a snapshot of src and drops what dst had', async () => {
    await inKernel(async () => {
      const [src, dst] = [new DmaResv(), new DmaResv()];
      const [a, b, old] = [fence(1, 1), fence(2, 1), fence(3, 1)];
      await dmaResvLock(src, null);
      dmaResvReserveFences(src, 2);
      dmaResvAddFence(src, a, DMA_RESV_USAGE_KERNEL);
      dmaResvAddFence(src, b, DMA_RESV_USAGE_BOOKKEEP);
      dmaResvUnlock(src);
      await dmaResvLock(dst, null);
      dmaResvReserveFences(dst, 1);
      dmaResvAddFence(dst, old, DMA_RESV_USAGE_WRITE);
      expect(dmaResvCopyFences(dst, src)).toBe(0);
      expect(entries(dst)).toEqual(['1:1/0', '2:1/3']);
      expect(old.refcount).toBe(1);
      expect(a.refcount).toBe(3);
      dmaResvUnlock(dst);
      for (const f of [a, b, old]) f.signal();
      dmaResvFini(src);
      dmaResvFini(dst);
      expect([a.refcount, b.refcount]).toEqual([1, 1]);
    });
  });

  test('wait_timeout: nothing pending, zero timeout, signalled in time, timed out, interrupted', async () => {
    const results: number[] = [];
    const run = await runKernel({
      T: async ({ engine, kernel, task }) => {
        const obj = new DmaResv();
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, false, 100));
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, false, 0));
        const [a, b] = [fence(1, 1), fence(2, 1)];
        await dmaResvLock(obj, null);
        dmaResvReserveFences(obj, 2);
        dmaResvAddFence(obj, a, DMA_RESV_USAGE_WRITE);
        dmaResvAddFence(obj, b, DMA_RESV_USAGE_BOOKKEEP);
        dmaResvUnlock(obj);
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, false, 0));
        const tick = kernel.jiffies.tickNs;
        engine.after(10 * tick, () => a.signal());
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_READ, false, 100)); // b is not waited for
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_BOOKKEEP, false, 5));
        engine.after(tick, () => engine.signal(task));
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_BOOKKEEP, true, MAX_SCHEDULE_TIMEOUT));
        b.signal();
        results.push(await dmaResvWaitTimeout(obj, DMA_RESV_USAGE_BOOKKEEP, false, 0));
        dmaResvFini(obj);
      },
    });
    expect(run.result.status).toBe('completed');
    expect(results).toEqual([100, 1, 0, 90, 0, -errno.ERESTARTSYS, 1]);
    expect(run.reports).toEqual([]);
  });

  test('set_deadline reaches every matching unsignalled fence', async () => {
    deadlines.length = 0;
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b, c] = [fence(1, 1), fence(2, 1), fence(3, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 3);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_WRITE);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_BOOKKEEP);
      dmaResvAddFence(obj, c, DMA_RESV_USAGE_READ);
      dmaResvUnlock(obj);
      c.signal();
      dmaResvSetDeadline(obj, DMA_RESV_USAGE_READ, 12345);
      for (const f of [a, b]) f.signal();
      dmaResvFini(obj);
    });
    expect(deadlines).toEqual([['1:1', 12345]]);
  });

  test('describe lists fences up to READ with their usage', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      const [a, b, c] = [fence(1, 1), fence(2, 5), fence(3, 1)];
      await dmaResvLock(obj, null);
      dmaResvReserveFences(obj, 3);
      dmaResvAddFence(obj, a, DMA_RESV_USAGE_KERNEL);
      dmaResvAddFence(obj, b, DMA_RESV_USAGE_READ);
      dmaResvAddFence(obj, c, DMA_RESV_USAGE_BOOKKEEP);
      a.signal();
      expect(dmaResvDescribe(obj)).toBe(
        '\tkernel fence:resv-test tl seq 1 signalled\n\tread fence:resv-test tl seq 5 unsignalled\n',
      );
      dmaResvUnlock(obj);
      b.signal();
      c.signal();
      dmaResvFini(obj);
    });
  });
});

describe('locking', () => {
  test('trylock, is_locked, locking_ctx, and -EALREADY through the acquire context', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      expect(dmaResvTrylock(obj)).toBe(true);
      expect(dmaResvIsLocked(obj)).toBe(true);
      expect(dmaResvLockingCtx(obj)).toBe(null);
      expect(dmaResvTrylock(obj)).toBe(false);
      dmaResvUnlock(obj);
      const ctx = new WwAcquireCtx();
      wwAcquireInit(ctx, reservationWwClass);
      expect(await dmaResvLock(obj, ctx)).toBe(0);
      expect(dmaResvLockingCtx(obj)).toBe(ctx);
      expect(await dmaResvLock(obj, ctx)).toBe(-errno.EALREADY);
      dmaResvUnlock(obj);
      wwAcquireFini(ctx);
      expect(dmaResvIsLocked(obj)).toBe(false);
      dmaResvFini(obj);
    });
  });

  test('fini of a locked object WARNs', async () => {
    await inKernel(async () => {
      const obj = new DmaResv();
      await dmaResvLock(obj, null);
      dmaResvFini(obj);
      dmaResvUnlock(obj);
    }, ['mutex.destroy_locked']);
  });
});
