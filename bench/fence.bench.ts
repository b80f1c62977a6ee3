/**
 * dma_fence hot path (drivers/dma-buf/dma-fence.c): dma_fence_init, one
 * dma_fence_add_callback, dma_fence_signal (which runs the callback under the fence
 * lock), dma_fence_put. All fences share one timeline lock, as sw_sync's do. Runs in a
 * kernel thread with the event log disabled; the value is fences per second.
 *
 * `fence.signal_cb` uses the kernel as users get it (lockdep on by default);
 * `fence.signal_cb.nolockdep` the same without the lock validator.
 */
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceContextAlloc,
} from '../src/kernel/dma-buf/dma-fence.ts';
import { Kernel, type KernelOptions } from '../src/kernel/kernel.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import { Engine } from '../src/sim/engine.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => 'timeline' };

/** Creates, arms, signals and puts `n` fences; returns fences per second. */
async function signalCallback(n: number, kernelOpts: KernelOptions): Promise<number> {
  const engine = new Engine({ log: false });
  const kernel = new Kernel(engine, kernelOpts);
  let ran = 0;
  let secs = 0;
  const func = (): void => {
    ran++;
  };
  engine.spawn(
    'bench',
    async () => {
      const context = dmaFenceContextAlloc(1);
      const lock = new SpinLock('bench.timeline');
      const start = performance.now();
      for (let seqno = 1; seqno <= n; seqno++) {
        const f = new DmaFence(ops, lock, context, seqno);
        f.addCallback(new DmaFenceCb(), func);
        f.signal();
        f.put();
      }
      secs = secondsSince(start);
    },
    { owner: kernel },
  );
  const result = await engine.run();
  if (result.status !== 'completed' || ran !== n || engine.reports.length > 0) {
    throw new Error(
      `fence bench: status ${result.status}, ${ran} of ${n} callbacks, ${engine.reports.length} reports`,
    );
  }
  return n / secs;
}

/** dma_fence benchmarks. */
export const benchmarks: Benchmark[] = [
  { name: 'fence.signal_cb', unit: 'fences/s', run: () => signalCallback(500_000, {}) },
  {
    name: 'fence.signal_cb.nolockdep',
    unit: 'fences/s',
    run: () => signalCallback(500_000, { lockdep: false }),
  },
];
