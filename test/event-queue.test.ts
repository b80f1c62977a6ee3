/**
 * The future-event set (src/sim/event-queue.ts): a flat typed-array binary heap keyed
 * (time, insertion sequence) with lazy cancellation, checked against a plain reference
 * model (a list searched for the smallest (time, seq) each time).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { type EventHandler, EventQueue } from '../src/sim/event-queue.ts';

type Op = { op: 'push'; time: number } | { op: 'cancel'; pick: number } | { op: 'pop' } | { op: 'peek' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('push' as const), time: fc.integer({ min: 0, max: 40 }) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pop' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('peek' as const) }) },
);

interface RefEntry {
  time: number;
  seq: number;
  state: 'live' | 'cancelled' | 'popped';
  handler: EventHandler;
  handle: number;
}

/** Runs `ops` on a real queue and on the reference model, comparing every answer. */
function check(ops: Op[], capacity: number): void {
  const q = new EventQueue(capacity);
  const ref: RefEntry[] = [];
  let seq = 0;
  const liveCount = () => ref.filter((e) => e.state === 'live').length;
  const earliest = (): RefEntry | null => {
    let best: RefEntry | null = null;
    for (const e of ref) {
      if (e.state !== 'live') continue;
      if (best === null || e.time < best.time || (e.time === best.time && e.seq < best.seq)) best = e;
    }
    return best;
  };
  for (const o of ops) {
    switch (o.op) {
      case 'push': {
        const handler: EventHandler = () => {};
        const handle = q.push(o.time, handler);
        ref.push({ time: o.time, seq: seq++, state: 'live', handler, handle });
        break;
      }
      case 'cancel': {
        if (ref.length === 0) break;
        // Any handle ever issued: live, already cancelled, or already popped (stale).
        const e = ref[o.pick % ref.length];
        expect(q.cancel(e.handle)).toBe(e.state === 'live');
        if (e.state === 'live') e.state = 'cancelled';
        break;
      }
      case 'pop': {
        const want = earliest();
        const got = q.pop();
        if (want === null) {
          expect(got).toBeNull();
        } else {
          expect(got).toBe(want.handler);
          expect(q.lastTime).toBe(want.time);
          want.state = 'popped';
        }
        break;
      }
      case 'peek': {
        const want = earliest();
        expect(q.peekTime()).toBe(want === null ? Number.POSITIVE_INFINITY : want.time);
        break;
      }
    }
    expect(q.length).toBe(liveCount());
  }
  // Draining returns the rest in (time, seq) order.
  for (let want = earliest(); want !== null; want = earliest()) {
    expect(q.pop()).toBe(want.handler);
    want.state = 'popped';
  }
  expect(q.pop()).toBeNull();
  expect(q.length).toBe(0);
  expect(q.peekTime()).toBe(Number.POSITIVE_INFINITY);
}

describe('EventQueue', () => {
  test('random push / cancel / pop / peek sequences agree with a reference sorted by (time, seq)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), fc.constantFrom(1, 4, 1024), (ops, cap) => {
        check(ops, cap);
      }),
      { numRuns: 300, seed: 20241212 },
    );
  });

  test('equal times pop in insertion order', () => {
    const q = new EventQueue(2);
    const hs: EventHandler[] = [];
    for (let i = 0; i < 100; i++) {
      const h = () => {};
      hs.push(h);
      q.push(7, h);
    }
    for (let i = 0; i < 100; i++) expect(q.pop()).toBe(hs[i]);
  });

  test('a stale handle cannot cancel the event that reused its slot', () => {
    const q = new EventQueue();
    const a = () => {};
    const b = () => {};
    const ha = q.push(1, a);
    expect(q.pop()).toBe(a);
    const hb = q.push(2, b); // reuses a's slot
    expect(hb).not.toBe(ha);
    expect(q.cancel(ha)).toBe(false);
    expect(q.length).toBe(1);
    expect(q.pop()).toBe(b);
  });

  test('cancelling twice fails the second time; a cancelled top is skipped by peek and pop', () => {
    const q = new EventQueue();
    const a = () => {};
    const b = () => {};
    const ha = q.push(1, a);
    q.push(5, b);
    expect(q.cancel(ha)).toBe(true);
    expect(q.cancel(ha)).toBe(false);
    expect(q.length).toBe(1);
    expect(q.peekTime()).toBe(5);
    expect(q.pop()).toBe(b);
    expect(q.lastTime).toBe(5);
  });
});
