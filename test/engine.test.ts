/**
 * The simulation engine (src/sim/engine.ts, src/sim/scheduler.ts): event order, the
 * scheduler strategies, sleeping, yielding and joining, deadlock and time-limit
 * endings, irq_work, sleeping in atomic context, and failures.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { currentKernel, Kernel } from '../src/kernel/kernel.ts';
import {
  localIrqRestore,
  localIrqSave,
  SpinLock,
  spinLock,
  spinLockIrqsave,
  spinUnlock,
  spinUnlockIrqrestore,
} from '../src/kernel/locking/spinlock.ts';
import { Engine, type Task } from '../src/sim/engine.ts';
import { KernelBug } from '../src/sim/report.ts';
import type { SchedulerOptions } from '../src/sim/scheduler.ts';
import { WaitQueue } from '../src/sim/wait-queue.ts';
import { runKthread } from './helpers/kthread.ts';

describe('events', () => {
  test('events run in (time, insertion) order, whatever order they were scheduled in', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), async (times) => {
        const e = new Engine({ log: false });
        const ran: number[] = [];
        times.forEach((t, i) => {
          e.at(t, () => ran.push(i));
        });
        const r = await e.run();
        const want = times.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t || a.i - b.i);
        expect(ran).toEqual(want.map((x) => x.i));
        expect(r).toMatchObject({ status: 'completed', events: times.length });
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  test('events at equal times run in insertion order, including ones added while running', async () => {
    const e = new Engine();
    const ran: string[] = [];
    e.at(10, () => {
      ran.push('a');
      e.at(10, () => ran.push('a2'));
      e.after(0, () => ran.push('a3'));
    });
    e.at(10, () => ran.push('b'));
    e.at(5, () => ran.push('first'));
    e.at(10, () => ran.push('c'));
    const r = await e.run();
    expect(ran).toEqual(['first', 'a', 'b', 'c', 'a2', 'a3']);
    expect(r).toMatchObject({ status: 'completed', now: 10, events: 6 });
  });

  test('events cannot be scheduled in the past; cancelled events do not run', async () => {
    const e = new Engine();
    const ran: number[] = [];
    e.at(100, () => {
      expect(() => e.at(99, () => {})).toThrow(RangeError);
      ran.push(100);
    });
    const h = e.at(50, () => ran.push(50));
    expect(e.pendingEvents).toBe(2);
    expect(e.cancel(h)).toBe(true);
    expect(e.cancel(h)).toBe(false);
    expect(e.pendingEvents).toBe(1);
    await e.run();
    expect(ran).toEqual([100]);
  });

  test('an event handler runs in hard-IRQ context and the clock reads its time', async () => {
    const e = new Engine();
    const seen: string[] = [];
    e.at(42, () => seen.push(`${e.current.kind}@${e.now}`));
    await e.run();
    expect(seen).toEqual(['hardirq@42']);
    expect(e.current.kind).toBe('none');
  });

  test('virtual time only moves when no thread can run', async () => {
    const e = new Engine({ scheduler: { strategy: 'random' }, seed: 3 });
    const seen: number[] = [];
    let fired = false;
    e.at(10, () => {
      fired = true;
    });
    e.spawn('spinner', async () => {
      for (let i = 0; i < 50; i++) {
        seen.push(e.now);
        expect(fired).toBe(false);
        await e.yield();
      }
      await e.sleep(20);
      seen.push(e.now);
    });
    const r = await e.run();
    expect(r.status).toBe('completed');
    expect(fired).toBe(true);
    expect(seen.slice(0, 50)).toEqual(new Array(50).fill(0));
    expect(seen[50]).toBe(20);
  });
});

describe('threads', () => {
  test('sleep advances virtual time exactly; sleepers wake in deadline order', async () => {
    const e = new Engine();
    const log: string[] = [];
    e.spawn('a', async () => {
      await e.sleep(300);
      log.push(`a@${e.now}`);
      await e.sleep(0);
      log.push(`a again@${e.now}`);
    });
    e.spawn('b', async () => {
      await e.sleep(100);
      log.push(`b@${e.now}`);
      await e.sleep(250);
      log.push(`b@${e.now}`);
    });
    const r = await e.run();
    expect(log).toEqual(['b@100', 'a@300', 'a again@300', 'b@350']);
    expect(r).toMatchObject({ status: 'completed', now: 350 });
  });

  test('join waits for the thread and returns its exit value', async () => {
    const e = new Engine();
    const log: string[] = [];
    const child = e.spawn('child', async () => {
      await e.sleep(1000);
      log.push('child done');
      return 7;
    });
    const quick = e.spawn('quick', async () => 3);
    const silent = e.spawn('silent', async () => {});
    e.spawn('parent', async () => {
      expect(await e.join(child)).toBe(7);
      log.push(`joined at ${e.now}`);
      // Already exited: returns at once.
      expect(await e.join(quick)).toBe(3);
      expect(await e.join(silent)).toBe(0);
      expect(e.now).toBe(1000);
    });
    const r = await e.run();
    expect(r.status).toBe('completed');
    expect(log).toEqual(['child done', 'joined at 1000']);
    expect(e.allTasks.map((t) => [t.name, t.state, t.exitValue])).toEqual([
      ['child', 'exited', 7],
      ['quick', 'exited', 3],
      ['silent', 'exited', 0],
      ['parent', 'exited', 0],
    ]);
  });

  test('blocking from an event handler is refused', async () => {
    const e = new Engine();
    let err: unknown = null;
    e.at(1, () => {
      try {
        void e.block({ what: 'nothing' });
      } catch (x) {
        err = x;
      }
    });
    await e.run();
    expect(String(err)).toMatch(/only a simulated thread can block/);
  });

  test('wait queues: waitEvent re-checks its condition and reports timeouts and signals', async () => {
    const e = new Engine();
    const wq = new WaitQueue(e, 'wq');
    let flag = false;
    const results: number[] = [];
    const waiter = e.spawn('waiter', async () => {
      results.push(await wq.waitEvent(() => flag));
      results.push(await wq.waitEvent(() => false, { timeoutNs: 50 }));
      results.push(await wq.waitEvent(() => false, { interruptible: true }));
    });
    e.at(10, () => wq.wakeUpAll()); // spurious: flag still false
    e.at(20, () => {
      flag = true;
      expect(wq.wakeUpOne()).toBe(true);
    });
    e.at(100, () => e.signal(waiter));
    const r = await e.run();
    expect(r.status).toBe('completed');
    expect(results).toEqual([1, 0, -1]);
    expect(wq.length).toBe(0);
  });
});

describe('scheduler strategies', () => {
  /** Threads that each record steps, separated by preemption points or yields. */
  async function workload(
    scheduler: SchedulerOptions,
    seed: number,
    how: 'preempt' | 'yield',
    threads = 4,
    steps = 8,
  ): Promise<string> {
    const e = new Engine({ scheduler, seed });
    const trace: string[] = [];
    for (let t = 0; t < threads; t++) {
      const name = String.fromCharCode(65 + t);
      e.spawn(name, async () => {
        for (let i = 0; i < steps; i++) {
          trace.push(`${name}${i}`);
          if (how === 'yield') await e.yield();
          else await e.preemptionPoint();
        }
      });
    }
    const r = await e.run();
    expect(r.status).toBe('completed');
    expect(trace.length).toBe(threads * steps);
    return trace.join(' ');
  }

  test('fifo runs threads in the order they became runnable; yield goes to the back', async () => {
    expect(await workload({ strategy: 'fifo' }, 1, 'yield', 3, 3)).toBe('A0 B0 C0 A1 B1 C1 A2 B2 C2');
  });

  test('fifo never switches at a preemption point', async () => {
    for (const seed of [1, 2, 3]) {
      expect(await workload({ strategy: 'fifo' }, seed, 'preempt', 3, 3)).toBe('A0 A1 A2 B0 B1 B2 C0 C1 C2');
    }
  });

  for (const scheduler of [
    { strategy: 'random' },
    { strategy: 'pct', depth: 3, steps: 40 },
  ] as SchedulerOptions[]) {
    test(`${scheduler.strategy}: deterministic per seed, different across seeds`, async () => {
      const fifo = await workload({ strategy: 'fifo' }, 1, 'preempt');
      const traces: string[] = [];
      for (let seed = 1; seed <= 10; seed++) {
        const a = await workload(scheduler, seed, 'preempt');
        const b = await workload(scheduler, seed, 'preempt');
        expect(b).toBe(a);
        traces.push(a);
      }
      expect(new Set(traces).size).toBeGreaterThan(3);
      expect(traces.some((t) => t !== fifo)).toBe(true);
    });
  }

  test('pct without change points always runs the highest-priority runnable thread', async () => {
    const e = new Engine({ scheduler: { strategy: 'pct', depth: 1 }, seed: 5 });
    const trace: string[] = [];
    const tasks: Task[] = [];
    for (const name of ['A', 'B', 'C', 'D']) {
      tasks.push(
        e.spawn(name, async () => {
          for (let i = 0; i < 5; i++) {
            trace.push(name);
            await e.preemptionPoint();
          }
        }),
      );
    }
    await e.run();
    const byPriority = [...tasks].sort((a, b) => b.priority - a.priority).map((t) => t.name);
    expect(trace.join('')).toBe(byPriority.map((n) => n.repeat(5)).join(''));
    expect(new Set(tasks.map((t) => t.priority)).size).toBe(4);
  });

  test('pct change points demote the running thread', async () => {
    // depth 2 gives one change point within the first `steps` scheduling steps; after
    // it, the thread that was running has the lowest priority and runs last.
    const orders = new Set<string>();
    for (let seed = 1; seed <= 10; seed++) {
      const e = new Engine({ scheduler: { strategy: 'pct', depth: 2, steps: 6 }, seed });
      const trace: string[] = [];
      for (const name of ['A', 'B']) {
        e.spawn(name, async () => {
          for (let i = 0; i < 6; i++) {
            trace.push(name);
            await e.preemptionPoint();
          }
        });
      }
      await e.run();
      const s = trace.join('');
      // Exactly one switch from a partly run thread, at most: XX..YYYYYYXX.. or XXXXXXYYYYYY.
      expect(s).toMatch(/^(A+B{6}A*|B+A{6}B*)$/);
      orders.add(s);
    }
    expect(orders.size).toBeGreaterThan(1);
  });
});

describe('how runs end', () => {
  test('deadlock: every blocked thread is reported with what it waits on', async () => {
    const e = new Engine();
    const a = e.spawn('a', async () => {
      await e.block({ what: 'mutex X held by b/2', objects: [{ kind: 'mutex', name: 'X' }] });
    });
    e.spawn('b', async () => {
      await e.block({ what: 'mutex Y held by a/1', objects: [{ kind: 'mutex', name: 'Y' }] });
    });
    e.spawn('c', async () => {
      await e.join(a);
    });
    e.spawn(
      'kworker',
      async () => {
        await e.block({ what: 'work to do' });
      },
      { daemon: true },
    );
    e.spawn('d', async () => {
      await e.sleep(5);
    });
    const r = await e.run();
    expect(r.status).toBe('deadlock');
    expect(r.now).toBe(5);
    expect(r.report).toBeDefined();
    const rep = r.report!;
    expect(rep.type).toBe('deadlock');
    expect(rep.message).toContain('3 thread(s) blocked');
    expect(rep.message).toContain('a/1 waits on mutex X held by b/2');
    expect(rep.message).toContain('b/2 waits on mutex Y held by a/1');
    expect(rep.message).toContain('c/3 waits on join a/1');
    expect(rep.message).not.toContain('kworker');
    expect(rep.objects).toEqual([
      { kind: 'task', name: 'a/1', id: 1 },
      { kind: 'mutex', name: 'X' },
      { kind: 'task', name: 'b/2', id: 2 },
      { kind: 'mutex', name: 'Y' },
      { kind: 'task', name: 'c/3', id: 3 },
      { kind: 'task', name: 'a/1', id: 1 },
    ]);
    expect(e.reports).toEqual([rep]);
  });

  test('a blocked daemon alone is not a deadlock', async () => {
    const e = new Engine();
    e.spawn(
      'kworker',
      async () => {
        await e.block({ what: 'work' });
      },
      { daemon: true },
    );
    e.spawn('main', async () => e.sleep(10));
    const r = await e.run();
    expect(r.status).toBe('completed');
    expect(e.reports).toEqual([]);
  });

  test('time limit: the run stops at `until`, and a later run goes on', async () => {
    const e = new Engine();
    let woke = -1;
    e.spawn('sleeper', async () => {
      await e.sleep(10_000_000_000);
      woke = e.now;
    });
    const r1 = await e.run({ until: 1_000_000 });
    expect(r1).toMatchObject({ status: 'time-limit', now: 1_000_000 });
    expect(woke).toBe(-1);
    const r2 = await e.run();
    expect(r2).toMatchObject({ status: 'completed', now: 10_000_000_000 });
    expect(woke).toBe(10_000_000_000);
  });

  test('an exception thrown by a thread rejects run()', async () => {
    const e = new Engine();
    e.spawn('thrower', async () => {
      await e.sleep(5);
      throw new Error('boom');
    });
    await expect(e.run()).rejects.toThrow('boom');
  });

  test('an exception thrown before the first await or by an event also rejects run()', async () => {
    const e1 = new Engine();
    e1.spawn('sync-thrower', () => {
      throw new TypeError('at once');
    });
    await expect(e1.run()).rejects.toThrow('at once');
    const e2 = new Engine();
    e2.at(3, () => {
      throw new Error('in irq');
    });
    await expect(e2.run()).rejects.toThrow('in irq');
  });

  test('a KernelBug stops the run with status bug instead of rejecting', async () => {
    const e = new Engine();
    let after = false;
    const report = {
      type: 'bug' as const,
      rule: 'test.bug',
      message: 'kernel BUG',
      simTime: 0,
      objects: [],
      context: { kind: 'task' as const, name: 'x' },
    };
    e.spawn('x', async () => {
      await e.sleep(1);
      throw new KernelBug(report);
    });
    e.spawn('y', async () => {
      await e.sleep(2);
      after = true;
    });
    const r = await e.run();
    expect(r.status).toBe('bug');
    expect(r.report).toBe(report);
    expect(after).toBe(false);
  });

  test('stop() ends the run with status stopped', async () => {
    const e = new Engine();
    let n = 0;
    const tick = () => {
      if (++n === 10) e.stop();
      else e.after(100, tick);
    };
    e.after(100, tick);
    const r = await e.run();
    expect(r).toMatchObject({ status: 'stopped', now: 1000, events: 10 });
  });
});

describe('kernel contexts', () => {
  test('irq_work queued under a spinlock runs after the lock is released, in hard-IRQ context', async () => {
    const seen: string[] = [];
    const run = await runKthread(({ engine }) => {
      const lock = new SpinLock('irqwork.lock');
      const flags = spinLockIrqsave(lock);
      engine.queueIrqWork(() => {
        seen.push(
          `work: locked=${lock.locked} ctx=${engine.current.kind} irqsOff=${engine.current.irqsDisabled}`,
        );
        // irq_work may queue more irq_work: it runs in the same drain.
        engine.queueIrqWork(() => seen.push('nested work'));
      });
      seen.push('queued');
      spinUnlockIrqrestore(lock, flags);
      seen.push('unlocked');

      // Nested interrupt-disabled sections: only the outermost restore runs it.
      const outer = localIrqSave();
      const f2 = spinLockIrqsave(lock);
      engine.queueIrqWork(() =>
        seen.push(`work 2: locked=${lock.locked} irqsOff=${engine.current.irqsDisabled}`),
      );
      spinUnlockIrqrestore(lock, f2);
      seen.push('inner restore');
      localIrqRestore(outer);
      seen.push('outer restore');
      expect(engine.current.kind).toBe('task');
    });
    expect(run.result.status).toBe('completed');
    expect(run.engine.reports).toEqual([]);
    expect(seen).toEqual([
      'queued',
      'work: locked=false ctx=hardirq irqsOff=0',
      'nested work',
      'unlocked',
      'inner restore',
      'work 2: locked=false irqsOff=0',
      'outer restore',
    ]);
  });

  test('irq_work queued by an interrupt handler runs when the handler returns', async () => {
    const seen: string[] = [];
    const run = await runKthread(async ({ engine }) => {
      const lock = new SpinLock('irqwork.lock');
      engine.after(100, () => {
        const flags = spinLockIrqsave(lock);
        engine.queueIrqWork(() => seen.push(`work at ${engine.now}: locked=${lock.locked}`));
        spinUnlockIrqrestore(lock, flags);
        seen.push('handler end');
      });
      await engine.sleep(200);
    });
    expect(run.result.status).toBe('completed');
    expect(seen).toEqual(['handler end', 'work at 100: locked=false']);
  });

  test('irq_work queued by a thread with interrupts enabled runs at once, as the self-IPI does', async () => {
    const seen: string[] = [];
    const run = await runKthread(async ({ engine }) => {
      const wq = new WaitQueue(engine, 'irq_work done');
      let done = false;
      engine.queueIrqWork(() => {
        seen.push(`work in ${engine.current.kind}`);
        done = true;
        wq.wakeUpAll();
      });
      seen.push(`queued, done=${done}`);
      // Nothing else could ever run the work: waiting for it must not be a deadlock.
      await wq.waitEvent(() => done);
      seen.push(`back in ${engine.current.kind}`);
    });
    expect(run.result.status).toBe('completed');
    expect(run.engine.reports).toEqual([]);
    expect(seen).toEqual(['work in hardirq', 'queued, done=true', 'back in task']);
  });

  test('blocking with a spinlock held is a sched.sleep_in_atomic violation', async () => {
    const run = await runKthread(async ({ engine }) => {
      const lock = new SpinLock('atomic.lock');
      spinLock(lock);
      await engine.sleep(10);
      spinUnlock(lock);
      // Not atomic any more: no further report.
      await engine.sleep(10);
    });
    expect(run.result.status).toBe('completed');
    const nonLockdep = run.engine.reports.filter((r) => r.type !== 'lockdep');
    expect(nonLockdep.map((r) => [r.type, r.rule])).toEqual([['violation', 'sched.sleep_in_atomic']]);
    expect(nonLockdep[0].message).toMatch(/sleeping function called from invalid context/);
    expect(nonLockdep[0].context).toMatchObject({ kind: 'task', name: 'selftest', tid: 1 });
    expect(run.result.now).toBe(20);
  });

  test('blocking with interrupts disabled is also sleeping in atomic context', async () => {
    const run = await runKthread(async ({ engine }) => {
      const flags = localIrqSave();
      await engine.yield();
      localIrqRestore(flags);
    });
    expect(run.engine.reports.filter((r) => r.type !== 'lockdep').map((r) => r.rule)).toEqual([
      'sched.sleep_in_atomic',
    ]);
  });

  test('the current kernel follows the running context', async () => {
    const e = new Engine();
    const k1 = new Kernel(e, { name: 'one' });
    const k2 = new Kernel(e, { name: 'two' });
    const seen: string[] = [];
    const who = () => seen.push(`${e.current.label}:${currentKernel().name}`);
    e.spawn('t1', async () => who(), { owner: k1 });
    e.spawn('t2', async () => who(), { owner: k2 });
    e.at(5, who);
    e.at(6, who, e.irqContextFor(k2));
    await e.run();
    expect(seen).toEqual(['t1/1:one', 't2/2:two', 'irq:one', 'irq:two']);
  });
});

describe('interrupts before threads', () => {
  test('every event due at the current time fires before a thread woken by one of them runs', async () => {
    const engine = new Engine({ seed: 1 });
    const order: string[] = [];
    const waiter = engine.spawn('waiter', async () => {
      await engine.block({ what: 'test' });
      order.push(`waiter runs at ${engine.now}`);
    });
    engine.at(100, () => {
      order.push('irq 1 wakes the waiter');
      engine.wakeUp(waiter);
    });
    engine.at(100, () => order.push('irq 2 at the same instant'));
    await engine.run();
    expect(order).toEqual(['irq 1 wakes the waiter', 'irq 2 at the same instant', 'waiter runs at 100']);
  });

  test('a thread polling with yield sees an event scheduled for now, even while another thread spins', async () => {
    const engine = new Engine({ seed: 1 });
    let flag = false;
    let spins = 0;
    engine.spawn('poller', async () => {
      engine.after(0, () => {
        flag = true;
      });
      while (!flag) {
        spins++;
        await engine.yield();
      }
    });
    engine.spawn('spinner', async () => {
      for (let i = 0; i < 3; i++) await engine.yield();
    });
    const r = await engine.run();
    expect(r.status).toBe('completed');
    expect(flag).toBe(true);
    expect(spins).toBe(1);
  });

  test('cond_resched in atomic context is reported under every strategy', async () => {
    for (const strategy of ['fifo', 'random', 'pct'] as const) {
      const engine = new Engine({ seed: 2, scheduler: { strategy } });
      const k = new Kernel(engine, { lockdep: false });
      engine.spawn(
        't',
        async () => {
          const ctx = engine.current;
          ctx.preemptCount++;
          await engine.preemptionPoint();
          ctx.preemptCount--;
        },
        { owner: k },
      );
      await engine.run();
      expect(engine.reports.filter((r) => r.rule === 'sched.sleep_in_atomic')).toHaveLength(1);
    }
  });
});
