import { describe, expect, test } from 'vitest';
import { DmaFence, dmaFenceContextAlloc } from '../src/kernel/dma-buf/dma-fence.ts';
import { SpinLock } from '../src/kernel/locking/spinlock.ts';
import {
  allocWorkqueue,
  cancelDelayedWorkSync,
  cancelWorkSync,
  currentIsWorker,
  DelayedWork,
  flushWork,
  queueDelayedWork,
  queueWork,
  scheduleWork,
  WorkStruct,
} from '../src/kernel/workqueue.ts';
import { runKthread } from './helpers/kthread.ts';

const ops = { getDriverName: () => 'wq-test', getTimelineName: () => 'wq-test' };

describe('workqueue', () => {
  test('work runs later in a kworker thread, in queue order, and may sleep', async () => {
    const order: string[] = [];
    const run = await runKthread(async ({ engine }) => {
      const wq = allocWorkqueue('test');
      const a = new WorkStruct(async () => {
        order.push(`a in ${engine.current.name} worker=${currentIsWorker()}`);
        await engine.sleep(1000);
        order.push(`a done at ${engine.now}`);
      });
      const b = new WorkStruct(() => {
        order.push(`b at ${engine.now}`);
      });
      expect(queueWork(wq, a)).toBe(true);
      expect(queueWork(wq, a)).toBe(false); // already pending
      expect(queueWork(wq, b)).toBe(true);
      order.push('queued');
      await wq.flush();
      order.push(`flushed at ${engine.now}`);
    });
    expect(run.result.status).toBe('completed');
    expect(order).toEqual([
      'queued',
      'a in kworker/test worker=true',
      'a done at 1000',
      'b at 1000',
      'flushed at 1000',
    ]);
  });

  test('a work item can wait on a fence signalled from an interrupt', async () => {
    let woke = -1;
    const run = await runKthread(async ({ engine }) => {
      const f = new DmaFence(ops, new SpinLock(), dmaFenceContextAlloc(1), 1);
      const w = new WorkStruct(async () => {
        await f.wait(false);
        woke = engine.now;
      });
      scheduleWork(w);
      engine.after(5000, () => f.signal());
      await flushWork(w);
      f.put();
    });
    expect(run.result.status).toBe('completed');
    expect(woke).toBe(5000);
    expect(run.engine.reports).toEqual([]);
  });

  test('cancel_work_sync removes a pending item so it never runs', async () => {
    let ran = false;
    const run = await runKthread(async () => {
      const wq = allocWorkqueue('cancel');
      const w = new WorkStruct(() => {
        ran = true;
      });
      queueWork(wq, w);
      expect(await cancelWorkSync(w)).toBe(true);
      expect(await cancelWorkSync(w)).toBe(false);
      await wq.flush();
    });
    expect(run.result.status).toBe('completed');
    expect(ran).toBe(false);
  });

  test('delayed work runs on the jiffy boundary after the delay, and can be cancelled', async () => {
    const ranAt: number[] = [];
    const run = await runKthread(
      async ({ engine, kernel }) => {
        const wq = allocWorkqueue('delayed');
        const d1 = new DelayedWork(() => {
          ranAt.push(engine.now);
        });
        const d2 = new DelayedWork(() => {
          ranAt.push(-1);
        });
        expect(queueDelayedWork(wq, d1, 2)).toBe(true);
        expect(queueDelayedWork(wq, d1, 2)).toBe(false);
        expect(queueDelayedWork(wq, d2, 1)).toBe(true);
        expect(await cancelDelayedWorkSync(d2)).toBe(true);
        await engine.sleep(kernel.jiffies.toNsecs(3));
        await wq.flush();
      },
      { hz: 250 },
    );
    expect(run.result.status).toBe('completed');
    expect(ranAt).toEqual([8_000_000]); // 2 jiffies at HZ=250
  });

  test('an idle worker does not keep the run alive or count as a deadlock', async () => {
    const run = await runKthread(async () => {
      const wq = allocWorkqueue('idle');
      queueWork(wq, new WorkStruct(() => {}));
      await wq.flush();
    });
    expect(run.result.status).toBe('completed');
    expect(run.engine.reports).toEqual([]);
  });
});
