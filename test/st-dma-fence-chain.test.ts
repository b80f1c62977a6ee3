/**
 * Port of the kernel selftest suite `dma_fence_chain` (drivers/dma-buf/st-dma-fence-chain.c,
 * Linux 6.12), case by case. Each case runs as a kernel thread in a fresh engine and
 * kernel; the threaded cases run under several seeds with the fifo, random and PCT
 * schedulers. Besides the kernel's own checks, every case ends by checking that each
 * mock fence was released exactly once, every chain node dropped to refcount 0, and the
 * run raised no report (no WARN, no refcount underflow, no deadlock).
 */
import { describe, expect, test } from 'vitest';
import { DmaFence, type DmaFenceOps, dmaFenceGet, dmaFencePut } from '../src/kernel/dma-buf/dma-fence.ts';
import {
  type DmaFenceChain,
  dmaFenceChainAlloc,
  dmaFenceChainFindSeqno,
  dmaFenceChainInit,
} from '../src/kernel/dma-buf/dma-fence-chain.ts';
import type { Kernel } from '../src/kernel/kernel.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import type { Engine, Task } from '../src/sim/engine.ts';
import type { StrategyName } from '../src/sim/scheduler.ts';
import { type KthreadOptions, runKthread } from './helpers/kthread.ts';

const CHAIN_SZ = 4 << 10;

/** A selftest mock fence: context 0, seqno 0, counts its releases. */
class MockFence extends DmaFence {
  releases = 0;
}

const mockOps: DmaFenceOps = {
  getDriverName: () => 'mock',
  getTimelineName: () => 'mock',
  release: (f) => {
    (f as MockFence).releases++;
  },
};

function mockFence(): MockFence {
  return new MockFence(mockOps, new SpinLock('mock_fence.lock'), 0, 0);
}

/** mock_chain(): a node taking new references to `prev` and `fence`. */
function mockChain(prev: DmaFence | null, fence: DmaFence, seqno: number): DmaFenceChain {
  return dmaFenceChainInit(dmaFenceChainAlloc(), dmaFenceGet(prev), fence.get(), seqno);
}

interface FenceChains {
  chainLength: number;
  fences: MockFence[];
  chains: DmaFenceChain[];
  tail: DmaFence | null;
  /** Every mock fence, in creation order (`fences` may be shuffled). */
  all: MockFence[];
}

const seqnoInc = (i: number) => i + 1;
const seqnoInc2 = (i: number) => 2 * i + 2;

function fenceChainsInit(count: number, seqnoFn: (i: number) => number): FenceChains {
  const fc: FenceChains = { chainLength: 0, fences: [], chains: [], tail: null, all: [] };
  for (let i = 0; i < count; i++) {
    fc.fences.push(mockFence());
    fc.chains.push(mockChain(fc.tail, fc.fences[i], seqnoFn(i)));
    fc.tail = fc.chains[i];
    fc.chains[i].enableSwSignaling();
  }
  fc.all = fc.fences.slice();
  fc.chainLength = count;
  return fc;
}

/** fence_chains_fini(), then the model's extra checks: every reference came back. */
function fenceChainsFini(fc: FenceChains): void {
  for (let i = 0; i < fc.chainLength; i++) {
    fc.fences[i].signal();
    fc.fences[i].put();
  }
  for (let i = 0; i < fc.chainLength; i++) fc.chains[i].put();
  // One expect per list, not per fence: expect() costs microseconds and there are 4096.
  expect(
    fc.all.filter((f) => f.refcount !== 0 || f.releases !== 1).map(String),
    'fences not released once',
  ).toEqual([]);
  expect(fc.chains.filter((c) => c.refcount !== 0).map(String), 'chain nodes still referenced').toEqual([]);
}

type Body = (ctx: {
  kernel: Kernel;
  engine: Engine;
  spawn: (name: string, fn: () => Promise<number | void>) => Task;
}) => Promise<number | void> | number | void;

/** Runs a case as the `selftest` kthread; it must return 0 and raise no report. */
async function selftest(body: Body, opts: KthreadOptions = {}): Promise<void> {
  const run = await runKthread(body, { log: false, ...opts });
  expect(run.result.status).toBe('completed');
  expect(run.engine.reports).toEqual([]);
  expect(run.ret).toBe(0);
}

/** find_seqno through a `struct dma_fence **`. */
function find(fence: DmaFence | null, seqno: number): { err: number; fence: DmaFence | null } {
  const p = { value: fence };
  const err = dmaFenceChainFindSeqno(p, seqno);
  return { err, fence: p.value };
}

const STRATEGIES: StrategyName[] = ['fifo', 'random', 'pct'];
const SEEDS = [1, 2, 3, 4];
const MATRIX = STRATEGIES.flatMap((s) => SEEDS.map((seed) => [s, seed] as const));
/**
 * wait_backward is quadratic: signalling the last fence first moves every later node's
 * callback one fence down at each step (CHAIN_SZ^2 / 2, about 8.4 million re-arms per
 * run, about 1.3 s here), so it runs fifo once (seeds change nothing under fifo there)
 * and random and PCT under two seeds each, to keep the file within its time budget.
 */
const BACKWARD_MATRIX = [
  ['fifo', 1] as const,
  ...(['random', 'pct'] as const).flatMap((s) => [1, 2].map((seed) => [s, seed] as const)),
];

/**
 * The scheduler options for a strategy. PCT draws its priority change points over about
 * as many scheduling steps as these cases take (one per signal or find iteration).
 */
function sched(strategy: StrategyName): KthreadOptions['scheduler'] {
  if (strategy === 'pct') return { strategy, depth: 3, steps: CHAIN_SZ };
  return { strategy };
}

describe('dma_fence_chain (st-dma-fence-chain.c)', () => {
  test('sanitycheck', async () => {
    let f: MockFence | null = null;
    let chain: DmaFenceChain | null = null;
    await selftest(() => {
      f = mockFence();
      chain = mockChain(null, f, 1);
      chain.enableSwSignaling();
      f.signal();
      expect(chain.signaledBit).toBe(true);
      f.put();
      chain.put();
    });
    expect(f!.refcount).toBe(0);
    expect(f!.releases).toBe(1);
    expect(chain!.refcount).toBe(0);
  });

  test('find_seqno', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(64, seqnoInc);

      let fence = dmaFenceGet(fc.tail);
      let r = find(fence, 0);
      dmaFencePut(r.fence);
      expect(r.err, 'find_seqno(0)').toBe(0);
      expect(r.fence, 'find_seqno(0) leaves the fence alone').toBe(fc.tail);

      for (let i = 0; i < fc.chainLength; i++) {
        fence = dmaFenceGet(fc.tail);
        r = find(fence, i + 1);
        dmaFencePut(r.fence);
        expect(r.err, `find_seqno(${fc.chainLength + 1}:${i + 1})`).toBe(0);
        expect(r.fence, `fence reported by find_seqno(${fc.chainLength + 1}:${i + 1})`).toBe(fc.chains[i]);

        dmaFenceGet(r.fence);
        r = find(r.fence, i + 1);
        dmaFencePut(r.fence);
        expect(r.err, 'finding self').toBe(0);
        expect(r.fence, 'find self').toBe(fc.chains[i]);

        dmaFenceGet(r.fence);
        const future = find(r.fence, i + 2);
        dmaFencePut(future.fence);
        expect(future.err, `future fence: find_seqno(${i + 1}:${i + 2})`).not.toBe(0);
        expect(future.fence, 'a failed find leaves the fence alone').toBe(fc.chains[i]);

        dmaFenceGet(r.fence);
        r = find(r.fence, i);
        dmaFencePut(r.fence);
        expect(r.err, 'previous fence').toBe(0);
        if (i > 0) expect(r.fence, `find_seqno(${i + 1}:${i})`).toBe(fc.chains[i - 1]);
      }
      fenceChainsFini(fc);
    });
  });

  test('find_signaled', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(2, seqnoInc);
      fc.fences[0].signal();

      const fence = dmaFenceGet(fc.tail);
      const r = find(fence, 1);
      dmaFencePut(r.fence);
      expect(r.err).toBe(0);
      // Completed seqno 1: either nothing left to wait for, or node 1 itself.
      if (r.fence !== null) {
        expect(r.fence, `chain-fence.seqno ${r.fence.seqno} reported for completed seqno 1`).toBe(
          fc.chains[0],
        );
      }
      fenceChainsFini(fc);
    });
  });

  test('find_out_of_order', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(3, seqnoInc);
      fc.fences[1].signal();

      const fence = dmaFenceGet(fc.tail);
      const r = find(fence, 2);
      dmaFencePut(r.fence);
      expect(r.err).toBe(0);
      // Point 2 has signalled but point 1 has not: point 2 is garbage-collected and the
      // wait must be on node 1.
      expect(r.fence, `chain-fence.seqno ${r.fence?.seqno ?? 0} reported for completed seqno 2`).toBe(
        fc.chains[0],
      );
      fenceChainsFini(fc);
    });
  });

  test('find_gap', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(64, seqnoInc2);
      for (let i = 0; i < fc.chainLength; i++) {
        const fence = dmaFenceGet(fc.tail);
        let r = find(fence, 2 * i + 1);
        dmaFencePut(r.fence);
        expect(r.err, `find_seqno(${fc.chainLength + 1}:${2 * i + 1})`).toBe(0);
        expect(r.fence, `fence reported by find_seqno(${fc.chainLength + 1}:${2 * i + 1})`).toBe(
          fc.chains[i],
        );

        dmaFenceGet(r.fence);
        r = find(r.fence, 2 * i + 2);
        dmaFencePut(r.fence);
        expect(r.err, 'finding self').toBe(0);
        expect(r.fence, 'find self').toBe(fc.chains[i]);
      }
      fenceChainsFini(fc);
    });
  });

  /**
   * The kernel runs one thread per CPU for up to 5 s of wall time. The model runs
   * FIND_RACE_THREADS threads (a 4-CPU machine) that each stop after
   * FIND_RACE_ITERATIONS iterations: their loops never advance virtual time, so the main
   * thread's 5 s (virtual) wait cannot time out before they stop on their own; the
   * iteration bound is what bounds the case. Threads interleave at each iteration's
   * cond_resched() (a preemption point); one find_seqno call runs without interruption.
   */
  const FIND_RACE_THREADS = 4;
  const FIND_RACE_ITERATIONS = 800;

  test.each(MATRIX)('find_race (%s, seed %i)', async (strategy, seed) => {
    let completed = 0;
    await selftest(
      async ({ kernel, engine, spawn }) => {
        const fc = fenceChainsInit(CHAIN_SZ, seqnoInc);
        const rnd = engine.random;
        const signalled = new Set<number>();
        let children = 0;
        let stop = false;
        let iterations = 0;
        let switches = 0; // consecutive iterations run by different threads
        let last = -1;
        const main = engine.currentTask();

        const findRace = async (id: number): Promise<number> => {
          let err = 0;
          for (let n = 0; n < FIND_RACE_ITERATIONS && !stop; n++) {
            iterations++;
            if (last !== id && last !== -1) switches++;
            last = id;
            const seqno = rnd.nextRange(1, fc.chainLength);
            let r = find(dmaFenceGet(fc.tail), seqno);
            if (r.err) {
              dmaFencePut(r.fence);
              err = r.err;
              break;
            }
            if (r.fence !== null) {
              // We can only find ourselves if we are on the fence we were looking for.
              if (r.fence.seqno === seqno) {
                r = find(r.fence, seqno);
                if (r.err) {
                  dmaFencePut(r.fence);
                  err = r.err;
                  break;
                }
              }
              dmaFencePut(r.fence);
            }
            const victim = rnd.nextInt(fc.chainLength - 1);
            fc.fences[victim].signal();
            signalled.add(victim);
            await engine.preemptionPoint(); // cond_resched()
          }
          if (--children === 0) engine.wakeUp(main); // wake_up_var(&children)
          return err;
        };

        const threads: Task[] = [];
        for (let i = 0; i < FIND_RACE_THREADS; i++) {
          threads.push(spawn(`dmabuf/${i}`, () => findRace(i)));
          children++;
        }

        // wait_var_event_timeout(&children, !children, 5 * HZ)
        let left = 5 * kernel.jiffies.hz;
        while (children > 0 && left > 0) {
          left = await kernel.scheduleTimeout(left, 'wait_var_event(find_race children)');
        }
        stop = true; // kthread_stop()
        let err = 0;
        for (const t of threads) {
          const ret = await engine.join(t);
          if (ret && !err) err = ret;
        }
        expect(err).toBe(0);
        expect(iterations).toBe(FIND_RACE_THREADS * FIND_RACE_ITERATIONS);
        // fifo never preempts at cond_resched(); the random scheduler interleaves.
        if (strategy === 'fifo') expect(switches).toBe(FIND_RACE_THREADS - 1);
        if (strategy === 'random') expect(switches).toBeGreaterThan(FIND_RACE_THREADS * 10);

        let count = 0;
        for (let i = 0; i < fc.chainLength; i++) if (fc.fences[i].isSignaled()) count++;
        completed = count;
        expect(count).toBe(signalled.size);

        fenceChainsFini(fc);
        return err;
      },
      { seed, scheduler: sched(strategy) },
    );
    expect(completed).toBeGreaterThan(0);
  });

  test('signal_forward', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(64, seqnoInc);
      for (let i = 0; i < fc.chainLength; i++) {
        fc.fences[i].signal();
        expect(fc.chains[i].isSignaled(), `chain[${i}] not signaled`).toBe(true);
        if (i + 1 < fc.chainLength) {
          expect(fc.chains[i + 1].isSignaled(), `chain[${i}] is signaled`).toBe(false);
        }
      }
      fenceChainsFini(fc);
    });
  });

  test('signal_backward', async () => {
    await selftest(() => {
      const fc = fenceChainsInit(64, seqnoInc);
      for (let i = fc.chainLength; i--; ) {
        fc.fences[i].signal();
        if (i > 0) expect(fc.chains[i].isSignaled(), `chain[${i}] is signaled`).toBe(false);
      }
      for (let i = 0; i < fc.chainLength; i++) {
        expect(fc.chains[i].isSignaled(), `chain[${i}] was not signaled`).toBe(true);
      }
      fenceChainsFini(fc);
    });
  });

  /** __wait_fence_chains(): waits on the tail; -EIO if the wait fails. */
  function waitFenceChains(fc: FenceChains): () => Promise<number> {
    return async () => ((await fc.tail!.wait(false)) ? -5 : 0);
  }

  /**
   * The body shared by the wait_* cases: start the waiter, yield to it, signal every
   * fence in `order` (with cond_resched() between signals), then kthread_stop_put().
   */
  async function waitCase(
    ctx: Parameters<Body>[0],
    order: 'forward' | 'backward' | 'random',
  ): Promise<number> {
    const { engine, spawn } = ctx;
    const fc = fenceChainsInit(CHAIN_SZ, seqnoInc);
    if (order === 'random') randomiseFences(engine, fc);
    const tsk = spawn('dmabuf/wait', waitFenceChains(fc));
    await engine.yield(); // yield_to(tsk, true)
    if (order === 'backward') {
      for (let i = fc.chainLength; i--; ) {
        fc.fences[i].signal();
        await engine.preemptionPoint();
      }
    } else {
      for (let i = 0; i < fc.chainLength; i++) {
        fc.fences[i].signal();
        await engine.preemptionPoint();
      }
    }
    const err = await engine.join(tsk); // kthread_stop_put()
    expect(tsk.exitValue).toBe(0);
    expect(fc.chains.filter((c) => !c.signaledBit).map(String), 'chain nodes not signalled').toEqual([]);
    fenceChainsFini(fc);
    return err;
  }

  /** randomise_fences(): Fisher-Yates over the fence array, drawn from the run's PRNG. */
  function randomiseFences(engine: Engine, fc: FenceChains): void {
    for (let count = fc.chainLength; --count; ) {
      const swp = engine.random.nextInt(count + 1);
      if (swp === count) continue;
      const tmp = fc.fences[count];
      fc.fences[count] = fc.fences[swp];
      fc.fences[swp] = tmp;
    }
  }

  test.each(MATRIX)('wait_forward (%s, seed %i)', async (strategy, seed) => {
    await selftest((ctx) => waitCase(ctx, 'forward'), { seed, scheduler: sched(strategy) });
  });

  test.each(BACKWARD_MATRIX)('wait_backward (%s, seed %i)', async (strategy, seed) => {
    await selftest((ctx) => waitCase(ctx, 'backward'), { seed, scheduler: sched(strategy) });
  });

  test.each(MATRIX)('wait_random (%s, seed %i)', async (strategy, seed) => {
    await selftest((ctx) => waitCase(ctx, 'random'), { seed, scheduler: sched(strategy) });
  });
});
