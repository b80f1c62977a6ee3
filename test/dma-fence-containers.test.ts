/**
 * Behaviour of dma_fence_array, dma_fence_chain and dma_fence_unwrap that the kernel's
 * selftests do not pin down (drivers/dma-buf/dma-fence-array.c, dma-fence-chain.c,
 * dma-fence-unwrap.c, Linux 6.12): error propagation, signal-on-any, signalling order and
 * context, deadline forwarding, reference counting and the WARNs for nested containers.
 */
import { describe, expect, test } from 'vitest';
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFenceIsLater,
} from '../src/kernel/dma-buf/dma-fence.ts';
import {
  DMA_FENCE_ARRAY_PENDING_ERROR,
  type DmaFenceArray,
  dmaFenceArrayCreate,
  dmaFenceArrayFirst,
  dmaFenceArrayForEach,
  dmaFenceArrayNext,
  dmaFenceIsArray,
  dmaFenceIsContainer,
  dmaFenceMatchContext,
  toDmaFenceArray,
} from '../src/kernel/dma-buf/dma-fence-array.ts';
import {
  DmaFenceChain,
  dmaFenceChainContained,
  dmaFenceChainFindSeqno,
  dmaFenceChainForEach,
  dmaFenceIsChain,
  toDmaFenceChain,
} from '../src/kernel/dma-buf/dma-fence-chain.ts';
import { dmaFenceUnwrapForEach, dmaFenceUnwrapMerge } from '../src/kernel/dma-buf/dma-fence-unwrap.ts';
import { errno } from '../src/kernel/errno.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import type { Engine } from '../src/sim/engine.ts';
import { runKthread } from './helpers/kthread.ts';

/** A plain fence that records the deadlines it was given. */
class TestFence extends DmaFence {
  deadlines: number[] = [];
}

const testOps: DmaFenceOps = {
  getDriverName: () => 'test',
  getTimelineName: () => 'test',
  setDeadline: (f, deadline) => {
    (f as TestFence).deadlines.push(deadline);
  },
};

function testFence(context = dmaFenceContextAlloc(1), seqno = 1): TestFence {
  return new TestFence(testOps, new SpinLock('test_fence.lock'), context, seqno);
}

/** Runs `body` as a kernel thread; the run must complete with no report unless `allowReports`. */
async function inKthread(
  body: (engine: Engine) => void | Promise<void>,
  opts: { allowReports?: boolean } = {},
): Promise<Engine> {
  const run = await runKthread(
    async ({ engine }) => {
      await body(engine);
    },
    { log: false },
  );
  expect(run.result.status).toBe('completed');
  if (!opts.allowReports) expect(run.engine.reports).toEqual([]);
  return run.engine;
}

function array(fences: DmaFence[], signalOnAny = false): DmaFenceArray {
  return dmaFenceArrayCreate(fences.length, fences, dmaFenceContextAlloc(1), 1, signalOnAny);
}

describe('dma_fence_array', () => {
  test('holds the PENDING_ERROR sentinel until signalled, then reports status 1 without errors', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence()];
      const a = array(f.map((x) => x.get()));
      expect(a.error).toBe(DMA_FENCE_ARRAY_PENDING_ERROR);
      expect(a.driverName).toBe('dma_fence_array');
      expect(a.timelineName).toBe('unbound');
      a.enableSwSignaling();
      expect(a.getStatus()).toBe(0);
      f[0].signal();
      expect(a.getStatus()).toBe(0);
      f[1].signal();
      expect(a.signaledBit).toBe(true);
      expect(a.error).toBe(0);
      expect(a.getStatus()).toBe(1);
      a.put();
      expect(f.map((x) => x.refcount)).toEqual([1, 1]);
    });
  });

  test('the first child error wins, later ones are ignored', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence(), testFence()];
      const a = array(f.map((x) => x.get()));
      a.enableSwSignaling();
      f[1].setError(-errno.EIO);
      f[1].signal();
      f[0].setError(-errno.ENOMEM);
      f[0].signal();
      expect(a.getStatus()).toBe(0);
      expect(a.error).toBe(-errno.EIO);
      f[2].signal();
      expect(a.getStatus()).toBe(-errno.EIO);
      a.put();
    });
  });

  test('an error of a child that had already signalled is recorded when signalling is enabled', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence()];
      f[1].setError(-errno.ETIME);
      f[1].signal();
      const a = array(f.map((x) => x.get()));
      a.enableSwSignaling();
      expect(a.error).toBe(-errno.ETIME);
      f[0].signal();
      expect(a.getStatus()).toBe(-errno.ETIME);
      a.put();
    });
  });

  test('when every child had already signalled, enabling signalling signals the array at once', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence()];
      for (const x of f) x.signal();
      const a = array(f.map((x) => x.get()));
      a.enableSwSignaling();
      expect(a.signaledBit).toBe(true);
      expect(a.getStatus()).toBe(1);
      a.put();
      expect(a.refcount).toBe(0);
      expect(f.map((x) => x.refcount)).toEqual([1, 1]);
    });
  });

  test('without enabled signalling, the signaled op polls the children (and copies no error, as 6.12)', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence()];
      const a = array(f.map((x) => x.get()));
      f[0].setError(-errno.EIO);
      f[0].signal();
      expect(a.isSignaled()).toBe(false);
      f[1].signal();
      expect(a.isSignaled()).toBe(true);
      expect(a.getStatus()).toBe(1);
      a.put();
    });
  });

  test('signal_on_any signals with the first child; the other callbacks still drop their references', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence(), testFence()];
      const a = array(
        f.map((x) => x.get()),
        true,
      );
      a.enableSwSignaling();
      expect(a.refcount).toBe(1 + 3); // one reference per child callback
      f[1].signal();
      expect(a.signaledBit).toBe(true);
      expect(a.getStatus()).toBe(1);
      expect(a.refcount).toBe(1 + 2);
      f[0].signal();
      f[2].signal();
      expect(a.refcount).toBe(1);
      a.put();
      expect(a.refcount).toBe(0);
      expect(f.map((x) => x.refcount)).toEqual([1, 1, 1]);
    });
  });

  test('signals from irq_work: after the completing child ran its callbacks, with its lock released', async () => {
    const order: string[] = [];
    await inKthread((engine) => {
      const f = [testFence(), testFence()];
      const a = array(f.map((x) => x.get()));
      const onArray = new DmaFenceCb();
      expect(
        a.addCallback(onArray, () => {
          order.push(
            `array signalled in ${engine.current.kind}, child lock ${f[1].lock.locked ? 'held' : 'free'}`,
          );
        }),
      ).toBe(0);
      f[0].signal();
      const late = new DmaFenceCb();
      f[1].addCallback(late, () => {
        order.push('child callback');
      });
      f[1].signal();
      order.push('signal returned');
      a.put();
    });
    expect(order).toEqual([
      'child callback',
      'array signalled in hardirq, child lock free',
      'signal returned',
    ]);
  });

  test('set_deadline is forwarded to every child that has not signalled', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence(), testFence()];
      f[2].signal();
      const a = array(f.map((x) => x.get()));
      a.setDeadline(5000);
      expect(f.map((x) => x.deadlines)).toEqual([[5000], [5000], []]);
      a.put();
    });
  });

  test('helpers: is_array, match_context, first/next and for_each', async () => {
    await inKthread(() => {
      const ctx = dmaFenceContextAlloc(1);
      const same = [testFence(ctx, 1), testFence(ctx, 2)];
      const a = array(same.map((x) => x.get()));
      const other = testFence();
      expect(dmaFenceIsArray(a)).toBe(true);
      expect(dmaFenceIsContainer(a)).toBe(true);
      expect(dmaFenceIsArray(other)).toBe(false);
      expect(toDmaFenceArray(other)).toBeNull();
      expect(toDmaFenceArray(a)).toBe(a);
      expect(dmaFenceMatchContext(a, ctx)).toBe(true);
      expect(dmaFenceMatchContext(a, ctx + 1)).toBe(false);
      expect(dmaFenceMatchContext(other, other.context)).toBe(true);
      expect(dmaFenceArrayFirst(null)).toBeNull();
      expect(dmaFenceArrayFirst(other)).toBe(other);
      expect(dmaFenceArrayFirst(a)).toBe(same[0]);
      expect(dmaFenceArrayNext(a, 1)).toBe(same[1]);
      expect(dmaFenceArrayNext(a, 2)).toBeNull();
      expect(dmaFenceArrayNext(other, 0)).toBeNull();
      expect([...dmaFenceArrayForEach(a)]).toEqual(same);
      expect([...dmaFenceArrayForEach(other)]).toEqual([other]);
      a.put();
      other.put();
    });
  });

  test('WARNs for an empty array and for containers inside an array', async () => {
    const engine = await inKthread(
      () => {
        const empty = dmaFenceArrayCreate(0, [], dmaFenceContextAlloc(1), 1, false);
        empty.put();
        const f = testFence();
        const inner = array([f]);
        const outer = array([inner]);
        outer.put();
      },
      { allowReports: true },
    );
    expect(engine.reports.map((r) => `${r.type} ${r.rule}`)).toEqual([
      'warn dma_fence_array.init_empty',
      'warn dma_fence_array.contains_container',
    ]);
  });
});

describe('dma_fence_chain', () => {
  /** Builds n nodes (seqno 1..n) over fresh test fences; returns fences and nodes. */
  function buildChain(n: number): { fences: TestFence[]; chains: DmaFenceChain[] } {
    const fences: TestFence[] = [];
    const chains: DmaFenceChain[] = [];
    let tail: DmaFence | null = null;
    for (let i = 0; i < n; i++) {
      const f = testFence();
      fences.push(f);
      tail = new DmaFenceChain(tail === null ? null : tail.get(), f.get(), i + 1);
      chains.push(tail as DmaFenceChain);
    }
    return { fences, chains };
  }

  function putAll(fences: DmaFence[], chains: DmaFence[]): void {
    for (const f of fences) {
      f.signal();
      f.put();
    }
    for (const c of chains) c.put();
  }

  test('a node signals only once its fence and all earlier fences have, in any signal order', async () => {
    const n = 5;
    await inKthread((engine) => {
      for (let round = 0; round < 20; round++) {
        const enabled = round % 2 === 0; // callback path, or the signaled-op path
        const { fences, chains } = buildChain(n);
        if (enabled) for (const c of chains) c.enableSwSignaling();
        const order = engine.random.shuffle([...Array(n).keys()]);
        const done = new Array<boolean>(n).fill(false);
        for (const i of order) {
          fences[i].signal();
          done[i] = true;
          for (let j = 0; j < n; j++) {
            const expected = done.slice(0, j + 1).every(Boolean);
            expect(
              enabled ? chains[j].signaledBit : chains[j].isSignaled(),
              `order ${order}, node ${j}`,
            ).toBe(expected);
          }
        }
        putAll(fences, chains);
        expect(fences.map((f) => f.refcount)).toEqual(new Array(n).fill(0));
        expect(chains.map((c) => c.refcount)).toEqual(new Array(n).fill(0));
      }
    });
  });

  test('context reuse: a later seqno joins the previous node, an earlier one starts a new context', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence(), testFence()];
      const c1 = new DmaFenceChain(null, f[0].get(), 10);
      const c2 = new DmaFenceChain(c1.get(), f[1].get(), 20);
      expect([c2.context, c2.seqno, c2.prevSeqno]).toEqual([c1.context, 20, 10]);
      const c3 = new DmaFenceChain(c2.get(), f[2].get(), 5);
      expect(c3.context).not.toBe(c2.context);
      expect([c3.seqno, c3.prevSeqno]).toEqual([20, 0]);
      expect(c1.driverName).toBe('dma_fence_chain');
      expect(c1.timelineName).toBe('unbound');
      // 64-bit seqnos: no 32-bit wrap-around on chain nodes.
      const big = new DmaFenceChain(c2.get(), testFence(), 2 ** 40);
      expect(big.context).toBe(c2.context);
      expect(dmaFenceIsLater(big, c2)).toBe(true);
      for (const x of [big, c3, c2, c1]) x.put();
      expect(f.map((x) => x.refcount)).toEqual([1, 1, 1]);
    });
  });

  test('walking garbage-collects signalled predecessors', async () => {
    await inKthread(() => {
      const { fences, chains } = buildChain(4);
      fences[1].signal();
      fences[2].signal();
      const visited = [...dmaFenceChainForEach(chains[3])];
      expect(visited).toEqual([chains[3], chains[0]]);
      expect(chains[3].prev).toBe(chains[0]);
      // The unlinked nodes lost the reference chains[3] had on them.
      expect(chains.map((c) => c.refcount)).toEqual([3, 2, 1, 1]);
      expect(dmaFenceChainContained(chains[0])).toBe(fences[0]);
      putAll(fences, chains);
    });
  });

  test('find_seqno refuses a fence that is not a node', async () => {
    await inKthread(() => {
      const f = testFence();
      const p = { value: f as DmaFence | null };
      expect(dmaFenceChainFindSeqno(p, 1)).toBe(-errno.EINVAL);
      expect(p.value).toBe(f);
      expect(f.refcount).toBe(1);
      f.put();
    });
  });

  test('set_deadline reaches every unsignalled contained fence', async () => {
    await inKthread(() => {
      const { fences, chains } = buildChain(3);
      fences[1].signal();
      chains[2].setDeadline(777);
      expect(fences.map((f) => f.deadlines)).toEqual([[777], [], [777]]);
      putAll(fences, chains);
    });
  });

  test('releasing a very long chain unlinks it iteratively (no deep recursion)', async () => {
    await inKthread(() => {
      const { fences, chains } = buildChain(50_000);
      for (const c of chains.slice(0, -1)) c.put();
      expect(chains[0].refcount).toBe(1);
      chains[chains.length - 1].put();
      expect(chains.every((c) => c.refcount === 0)).toBe(true);
      expect(fences.every((f) => f.refcount === 1)).toBe(true);
      for (const f of fences) f.put();
    });
  });

  test('WARNs when a chain is contained in a chain', async () => {
    const engine = await inKthread(
      () => {
        const inner = new DmaFenceChain(null, testFence(), 1);
        expect(dmaFenceIsChain(inner)).toBe(true);
        expect(toDmaFenceChain(inner)).toBe(inner);
        const outer = new DmaFenceChain(null, inner, 1);
        outer.put();
      },
      { allowReports: true },
    );
    expect(engine.reports.map((r) => `${r.type} ${r.rule}`)).toEqual(['warn dma_fence_chain.contains_chain']);
  });
});

describe('dma_fence_unwrap', () => {
  test('iterates a chain head first, skipping signalled predecessors, arrays in element order', async () => {
    await inKthread(() => {
      const f = [testFence(), testFence(), testFence(), testFence()];
      const a = array([f[2].get(), f[3].get()]);
      const c1 = new DmaFenceChain(null, f[0].get(), 1);
      const c2 = new DmaFenceChain(c1, f[1].get(), 2);
      const c3 = new DmaFenceChain(c2, a, 3);
      expect([...dmaFenceUnwrapForEach(c3)]).toEqual([f[2], f[3], f[1], f[0]]);
      f[1].signal();
      expect([...dmaFenceUnwrapForEach(c3)]).toEqual([f[2], f[3], f[0]]);
      expect([...dmaFenceUnwrapForEach(f[0])]).toEqual([f[0]]);
      expect([...dmaFenceUnwrapForEach(null)]).toEqual([]);
      c3.put();
      expect(f.map((x) => x.refcount)).toEqual([1, 1, 1, 1]);
    });
  });

  test('merging only signalled fences gives a private stub with the latest timestamp', async () => {
    await inKthread(async (engine) => {
      const f1 = testFence();
      const f2 = testFence();
      const f3 = testFence();
      await engine.sleep(100);
      f2.signal();
      await engine.sleep(200);
      f1.signal();
      const a = array([f3.get()]);
      await engine.sleep(50);
      f3.signal();
      const merged = dmaFenceUnwrapMerge(f1, a, f2)!;
      expect([merged === f1, merged === f2, merged === f3]).toEqual([false, false, false]);
      expect(merged.isSignaled()).toBe(true);
      expect(merged.driverName).toBe('stub');
      expect(merged.getTimestamp()).toBe(350);
      expect(merged.refcount).toBe(1);
      merged.put();
      const none = dmaFenceUnwrapMerge(null)!;
      expect(none.getTimestamp()).toBe(0);
      none.put();
      a.put();
      expect([f1.refcount, f2.refcount, f3.refcount]).toEqual([1, 1, 1]);
    });
  });

  test('a single unsignalled leaf comes back itself, with a new reference', async () => {
    await inKthread(() => {
      const f1 = testFence();
      const f2 = testFence();
      f2.signal();
      const merged = dmaFenceUnwrapMerge(f1, f2);
      expect(merged).toBe(f1);
      expect(f1.refcount).toBe(2);
      merged!.put();
    });
  });

  test('merge sorts by context, keeps the latest per context, returns a signal-on-all array', async () => {
    await inKthread(() => {
      const ctx = [dmaFenceContextAlloc(1), dmaFenceContextAlloc(1), dmaFenceContextAlloc(1)];
      const leaves = [
        testFence(ctx[2], 7),
        testFence(ctx[0], 3),
        testFence(ctx[2], 9),
        testFence(ctx[1], 1),
        testFence(ctx[0], 4),
      ];
      const a = array(leaves.slice(0, 3).map((x) => x.get()));
      const merged = toDmaFenceArray(dmaFenceUnwrapMerge(a, leaves[3], leaves[4]))!;
      expect(merged).not.toBeNull();
      expect(merged.fences).toEqual([leaves[4], leaves[3], leaves[2]]);
      expect(merged.seqno).toBe(1);
      expect(merged.numPending).toBe(3);
      expect(merged.context).toBeGreaterThan(ctx[2]);
      expect(leaves.map((x) => x.refcount)).toEqual([2, 2, 3, 2, 2]);
      merged.put();
      a.put();
      expect(leaves.map((x) => x.refcount)).toEqual([1, 1, 1, 1, 1]);
    });
  });

  test('refcounts come back to 1 after the containers are put', async () => {
    await inKthread(() => {
      const f1 = testFence();
      const f2 = testFence();
      const a = array([f1.get(), f2.get()]);
      const c = new DmaFenceChain(null, f1.get(), 1);
      const c2 = new DmaFenceChain(c.get(), f2.get(), 2);
      a.enableSwSignaling();
      c2.enableSwSignaling();
      const m = dmaFenceUnwrapMerge(a, c2);
      // f1: ours, a's, c's, m's; f2: ours, a's, c2's, m's, and c2's callback's.
      expect([f1.refcount, f2.refcount]).toEqual([4, 5]);
      f1.signal();
      f2.signal();
      expect([a.signaledBit, c.isSignaled(), c2.signaledBit]).toEqual([true, true, true]);
      for (const x of [m, a, c, c2]) x!.put();
      expect([f1.refcount, f2.refcount]).toEqual([1, 1]);
      expect([a.refcount, c.refcount, c2.refcount, m!.refcount]).toEqual([0, 0, 0, 0]);
    });
  });
});
