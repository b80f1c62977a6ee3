/**
 * Lockdep overhead (kernel/locking/lockdep.c model): the same locking workload run on a
 * kernel with lockdep and on one without.
 *
 * The workload: 4 kernel threads, each doing 2000 rounds of: a mutex, a spinlock with
 * interrupts off nested inside it and a plain spinlock inside that, a mutex_trylock, and
 * an acquire context locking two dma_resv objects (one shared by all threads, so the
 * wait-die path runs too), all in a consistent order so nothing is reported. The
 * scheduler is seeded random, so acquisitions interleave and mutexes contend.
 *
 * `lockdep.overhead` is time with lockdep / time without, each the best of two
 * interleaved runs (lower is better; the goal is at most 3). `lockdep.workload.on` / `.off` are the acquisitions per second behind it.
 */
import {
  DmaResv,
  dmaResvLock,
  dmaResvLockSlow,
  dmaResvUnlock,
  reservationWwClass,
} from '../src/kernel/dma-buf/dma-resv.ts';
import { errno } from '../src/kernel/errno.ts';
import { Kernel } from '../src/kernel/kernel.ts';
import { Mutex, mutexLock, mutexTrylock, mutexUnlock } from '../src/kernel/locking/mutex.ts';
import {
  SpinLock,
  spinLock,
  spinLockIrqsave,
  spinUnlock,
  spinUnlockIrqrestore,
} from '../src/kernel/locking/spinlock.ts';
import { WwAcquireCtx, wwAcquireFini, wwAcquireInit } from '../src/kernel/locking/ww-mutex.ts';
import { Engine } from '../src/sim/engine.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const THREADS = 4;
const ROUNDS = 2000;
/** Lock acquisitions per round (mutex, 2 spinlocks, trylock, ctx + 2 resv locks). */
const PER_ROUND = 7;

/** Runs the workload once; returns wall seconds. */
async function workload(lockdep: boolean): Promise<number> {
  const engine = new Engine({ log: false, seed: 7, scheduler: { strategy: 'random' } });
  const kernel = new Kernel(engine, { lockdep });
  const big = new Mutex('bench_big_lock');
  const irq = new SpinLock('bench_irq_lock');
  const inner = new SpinLock('bench_inner_lock');
  const stats = new Mutex('bench_stats_lock');
  let shared: DmaResv | null = null;
  for (let t = 0; t < THREADS; t++) {
    engine.spawn(
      `worker${t}`,
      async () => {
        if (shared === null) shared = new DmaResv();
        const own = new DmaResv();
        const ctx = new WwAcquireCtx();
        for (let r = 0; r < ROUNDS; r++) {
          await mutexLock(big);
          const flags = spinLockIrqsave(irq);
          spinLock(inner);
          spinUnlock(inner);
          spinUnlockIrqrestore(irq, flags);
          mutexUnlock(big);
          if (mutexTrylock(stats)) mutexUnlock(stats);
          wwAcquireInit(ctx, reservationWwClass);
          const objs = r & 1 ? [own, shared] : [shared, own];
          let ret = await dmaResvLock(objs[0], ctx);
          if (ret === 0) {
            ret = await dmaResvLock(objs[1], ctx);
            if (ret === -errno.EDEADLK) {
              dmaResvUnlock(objs[0]);
              await dmaResvLockSlow(objs[1], ctx);
              ret = await dmaResvLock(objs[0], ctx);
            }
          }
          dmaResvUnlock(objs[0]);
          dmaResvUnlock(objs[1]);
          wwAcquireFini(ctx);
        }
      },
      { owner: kernel },
    );
  }
  const start = performance.now();
  const result = await engine.run();
  const secs = secondsSince(start);
  if (result.status !== 'completed' || engine.reports.length > 0) {
    throw new Error(
      `lockdep workload (lockdep ${lockdep}): ${result.status}, ${engine.reports.length} reports`,
    );
  }
  return secs;
}

const ACQUISITIONS = THREADS * ROUNDS * PER_ROUND;

/** The benchmarks of this file. */
export const benchmarks: Benchmark[] = [
  {
    name: 'lockdep.overhead',
    unit: 'ratio (time on / off)',
    higherIsBetter: false,
    async run() {
      // Interleaved, best of two each, so a busy machine does not skew one side.
      let off = Number.POSITIVE_INFINITY;
      let on = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 2; i++) {
        off = Math.min(off, await workload(false));
        on = Math.min(on, await workload(true));
      }
      return on / off;
    },
  },
  {
    name: 'lockdep.workload.on',
    unit: 'acquisitions/s',
    async run() {
      return ACQUISITIONS / (await workload(true));
    },
  },
  {
    name: 'lockdep.workload.off',
    unit: 'acquisitions/s',
    async run() {
      return ACQUISITIONS / (await workload(false));
    },
  },
];
