/**
 * dma_resv fence bookkeeping throughput (drivers/dma-buf/dma-resv.c model).
 *
 * `resv.add_fence`: one round locks a fresh reservation object, reserves 64 slots, adds
 * 64 unsignalled fences from 64 different contexts (READ usage), walks them once with
 * the locked iterator and once with the unlocked one, unlocks and finalises the object.
 * It runs inside a kernel thread of a fresh kernel with lockdep on (the default) and
 * the event log off. The value is fences added and iterated per second of wall time.
 */

import { DmaFence, type DmaFenceOps, dmaFenceContextAlloc } from '../src/kernel/dma-buf/dma-fence.ts';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_READ,
  DmaResv,
  DmaResvIter,
  dmaResvAddFence,
  dmaResvFini,
  dmaResvForEachFence,
  dmaResvForEachFenceUnlocked,
  dmaResvIterBegin,
  dmaResvIterEnd,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvUnlock,
} from '../src/kernel/dma-buf/dma-resv.ts';
import { Kernel } from '../src/kernel/kernel.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import { Engine } from '../src/sim/engine.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const FENCES = 64;
const ROUNDS = 3000;

const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => 'bench' };

async function addAndIterate(): Promise<number> {
  const engine = new Engine({ log: false });
  const kernel = new Kernel(engine);
  let secs = 0;
  let seen = 0;
  engine.spawn(
    'bench',
    async () => {
      const lock = new SpinLock('bench_fence_lock');
      const base = dmaFenceContextAlloc(FENCES);
      const fences = Array.from({ length: FENCES }, (_, i) => new DmaFence(ops, lock, base + i, 1));
      const cursor = new DmaResvIter();
      const start = performance.now();
      for (let r = 0; r < ROUNDS; r++) {
        const obj = new DmaResv();
        await dmaResvLock(obj, null);
        dmaResvReserveFences(obj, FENCES);
        for (let i = 0; i < FENCES; i++) dmaResvAddFence(obj, fences[i], DMA_RESV_USAGE_READ);
        for (const _f of dmaResvForEachFence(cursor, obj, DMA_RESV_USAGE_BOOKKEEP)) seen++;
        dmaResvUnlock(obj);
        dmaResvIterBegin(cursor, obj, DMA_RESV_USAGE_BOOKKEEP);
        for (const _f of dmaResvForEachFenceUnlocked(cursor)) seen++;
        dmaResvIterEnd(cursor);
        dmaResvFini(obj);
      }
      secs = secondsSince(start);
    },
    { owner: kernel },
  );
  const result = await engine.run();
  if (result.status !== 'completed' || seen !== 2 * FENCES * ROUNDS || engine.reports.length > 0) {
    throw new Error(
      `resv.add_fence: run ${result.status}, ${seen} fences seen, ${engine.reports.length} reports`,
    );
  }
  return (FENCES * ROUNDS) / secs;
}

/** The benchmarks of this file. */
export const benchmarks: Benchmark[] = [
  {
    name: 'resv.add_fence',
    unit: 'fences/s',
    run: addAndIterate,
  },
];
