/**
 * A teaching step for kernel locking rules: `driver_locks` stands for a driver call (an
 * ioctl of a made-up "lock demo" driver) that takes named kernel mutexes in the given
 * order, holds them for a while, and releases them in reverse. The mutexes are per
 * machine and their lockdep class is their name, so two processes taking `[a, b]` and
 * `[b, a]` teach lockdep an A -> B -> A cycle: it reports the possible deadlock even in a
 * run where the two calls never overlap, and `explore` finds schedules where they really
 * deadlock. The step runs kernel code in the calling process's context, as a syscall does
 * (src/kernel/locking/mutex.ts, lockdep.ts).
 */
import { z } from 'zod';
import { currentKernel, type Kernel } from '../../kernel/kernel.ts';
import { Mutex, mutexLock, mutexUnlock } from '../../kernel/locking/mutex.ts';
import { identifier, registerStepKind } from '../step-kind.ts';
import { duration, durationText } from '../units.ts';

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
