/**
 * Test helper: the output half of tools/testing/selftests/kselftest.h, so a port of a
 * kernel selftest prints the same TAP lines the real one printed and a test can compare
 * them with the oracle's capture.
 */

/** One result line. */
export interface KsftResult {
  /** Test number, from 1. */
  n: number;
  /** Outcome. */
  status: 'pass' | 'fail' | 'skip';
  /** The message, without the trailing newline. */
  msg: string;
}

/** Collects a selftest's TAP output (ksft_print_header, ksft_test_result_*, ksft_print_cnts). */
export class Ksft {
  /** Every line printed. */
  readonly lines: string[] = ['TAP version 13'];
  /** The results, in order. */
  readonly results: KsftResult[] = [];

  /** ksft_set_plan(). */
  setPlan(n: number): void {
    this.lines.push(`1..${n}`);
  }

  /** ksft_print_msg(): a `# ` line. */
  msg(text: string): void {
    this.lines.push(`# ${text.replace(/\n$/, '')}`);
  }

  private add(status: KsftResult['status'], msg: string): void {
    const n = this.results.length + 1;
    const m = msg.replace(/\n$/, '');
    this.results.push({ n, status, msg: m });
    this.lines.push(
      status === 'fail' ? `not ok ${n} ${m}` : status === 'skip' ? `ok ${n} # SKIP ${m}` : `ok ${n} ${m}`,
    );
  }

  /** ksft_test_result_pass(). */
  pass(msg: string): void {
    this.add('pass', msg);
  }

  /** ksft_test_result_fail(). */
  fail(msg: string): void {
    this.add('fail', msg);
  }

  /** ksft_test_result_skip(). */
  skip(msg: string): void {
    this.add('skip', msg);
  }

  /** ksft_test_result(cond, msg). */
  result(cond: boolean, msg: string): void {
    this.add(cond ? 'pass' : 'fail', msg);
  }

  /** ksft_print_cnts() / ksft_finished(): the totals line. */
  totals(): void {
    const c = (s: KsftResult['status']) => this.results.filter((r) => r.status === s).length;
    this.lines.push(
      `# Totals: pass:${c('pass')} fail:${c('fail')} xfail:0 xpass:0 skip:${c('skip')} error:0`,
    );
  }
}
