/**
 * A Vitest reporter that ends the run with the plain closing line CI reads:
 * `N passed, N failed` (and `, N skipped` when any were skipped). Files that failed to
 * load and unhandled errors count as failures.
 */
import type { Reporter, SerializedError, TestModule } from 'vitest/node';

/** Prints `N passed, N failed[, N skipped]` after the default reporter's summary. */
export default class SummaryReporter implements Reporter {
  /** Counts the results of every test in every module. */
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
  ): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      if (m.state() === 'failed' && m.errors().length > 0) failed++;
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
    }
    failed += unhandledErrors.length;
    const tail = skipped > 0 ? `, ${skipped} skipped` : '';
    process.stdout.write(`\n${passed} passed, ${failed} failed${tail}\n`);
  }
}
