import fc from 'fast-check';
import { expect, test } from 'vitest';
import { sort } from '../src/kernel/lib/sort.ts';

test('sort orders any array and keeps its elements (lib/sort.c heapsort)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -50, max: 50 }), { maxLength: 200 }), (xs) => {
      const v = xs.slice();
      sort(v, (a, b) => a - b);
      expect(v).toEqual(xs.slice().sort((a, b) => a - b));
    }),
    { seed: 42, numRuns: 500 },
  );
});

test('sort is not stable, like the kernel: equal keys are reordered the way heapsort does', () => {
  const v = [
    { k: 1, id: 'a' },
    { k: 1, id: 'b' },
    { k: 1, id: 'c' },
    { k: 0, id: 'd' },
  ];
  sort(v, (x, y) => x.k - y.k);
  expect(v.map((x) => x.k)).toEqual([0, 1, 1, 1]);
  expect(v.map((x) => x.id)).not.toEqual(['d', 'a', 'b', 'c']);
});
