/**
 * The transfer model against the figures cited in spec/performance.md
 * (src/kernel/pci/transfer-reference.ts): each prediction is within 10% of the cited
 * figure or inside its cited range, except the known gaps, which must still be gaps
 * (so a change of defaults that closes or widens one shows up here).
 */
import { describe, expect, test } from 'vitest';
import { REFERENCE_CASES, referenceDeviation } from '../src/kernel/pci/transfer-reference.ts';

describe('predicted bandwidth vs performance.md', () => {
  for (const c of REFERENCE_CASES) {
    const cited = Array.isArray(c.cited) ? c.cited.join('-') : c.cited;
    test(`${c.what}: ${cited} GB/s (${c.source})${c.gap ? ' [known gap]' : ''}`, () => {
      const d = referenceDeviation(c.model(), c.cited);
      if (c.gap === undefined) expect(Math.abs(d)).toBeLessThanOrEqual(0.1);
      else expect(Math.abs(d)).toBeGreaterThan(0.1);
    });
  }
});
