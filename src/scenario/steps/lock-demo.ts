/**
 * Teaching steps for kernel locking rules, each standing for a call into a made-up
 * driver.
 *
 * `driver_signalling_wait` is a driver that waits on a fence (from a sync_file fd) inside
 * a fence-signalling critical section (dma_fence_begin/end_signalling): the mistake the
 * cross-driver contract forbids, because a signaller may then wait on another signaller.
 * Lockdep reports it (`lockdep.fence_wait_in_signalling`).
 *
 * `driver_locks` stands for a driver call (an
 * ioctl of a made-up "lock demo" driver) that takes named kernel mutexes in the given
 * order, holds them for a while, and releases them in reverse. The mutexes are per
 * machine and their lockdep class is their name, so two processes taking `[a, b]` and
 * `[b, a]` teach lockdep an A -> B -> A cycle: it reports the possible deadlock even in a
 * run where the two calls never overlap, and `explore` finds schedules where they really
 * deadlock. The step runs kernel code in the calling process's context, as a syscall does
 * (src/kernel/locking/mutex.ts, lockdep.ts).
 */
import { z } from 'zod';
import { dmaFenceBeginSignalling, dmaFenceEndSignalling } from '../../kernel/dma-buf/dma-fence.ts';
import { syncFileGetFence } from '../../kernel/dma-buf/sync-file.ts';
import { errno } from '../../kernel/errno.ts';
import { currentKernel, type Kernel } from '../../kernel/kernel.ts';
import { Mutex, mutexLock, mutexUnlock } from '../../kernel/locking/mutex.ts';
import { identifier, registerStepKind } from '../step-kind.ts';
import { duration, durationText } from '../units.ts';
import { fdName } from './util.ts';

const LOCKS = Symbol('scenario_lock_demo_mutexes');

function demoMutex(k: Kernel, name: string): Mutex {
  let m = k.singletons.get(LOCKS) as Map<string, Mutex> | undefined;
  if (!m) {
    m = new Map();
    k.singletons.set(LOCKS, m);
  }
  let lock = m.get(name);
  if (!lock) {
    lock = new Mutex(`lock_demo.${name}`);
    m.set(name, lock);
  }
  return lock;
}

registerStepKind({
  kind: 'driver_locks',
  summary:
    'A driver call that takes kernel mutexes in the order given (by name, shared by every process of the machine), holds them for `hold`, then releases them in reverse.',
  args: z.strictObject({
    locks: z.array(identifier).min(1).meta({ description: 'Mutex names, in the order they are taken.' }),
    hold: duration.default(0).meta({ description: 'How long the call holds them all (default 0).' }),
  }),
  label: (a) => `driver_locks ${a.locks.join(' -> ')}${a.hold ? ` hold ${durationText(a.hold)}` : ''}`,
  async run(_ctx, a) {
    const k = currentKernel();
    const taken: Mutex[] = [];
    for (const name of a.locks) {
      const lock = demoMutex(k, name);
      await mutexLock(lock);
      taken.push(lock);
    }
    if (a.hold > 0) await k.engine.sleep(a.hold);
    for (const lock of taken.reverse()) mutexUnlock(lock);
    return { ret: 0, summary: `took ${a.locks.join(', ')}` };
  },
});

registerStepKind({
  kind: 'driver_signalling_wait',
  summary:
    'A driver call that waits (up to `timeout`) on the fence of a sync_file inside a fence-signalling critical section: lockdep reports it.',
  args: z.strictObject({
    fence: fdName.meta({ description: 'A sync_file (a name bound by sw_sync_fence, sync_merge or recv).' }),
    timeout: duration.default(1_000_000_000).meta({ description: 'How long to wait (default 1s).' }),
  }),
  refs: (a) => [{ name: a.fence, type: 'fd', path: ['fence'] }],
  label: (a) => `driver_signalling_wait ${a.fence} timeout ${durationText(a.timeout)}`,
  async run(ctx, a) {
    const k = currentKernel();
    const fence = syncFileGetFence(ctx.fd(a.fence));
    if (fence === null) return { ret: -errno.EINVAL };
    const cookie = dmaFenceBeginSignalling();
    const left = await fence.waitTimeout(true, Math.max(1, k.jiffies.fromNsecs(a.timeout)));
    dmaFenceEndSignalling(cookie);
    fence.put();
    if (left < 0) return { ret: left };
    return left === 0 ? { ret: -errno.ETIME } : { ret: 0, summary: 'signalled' };
  },
});
