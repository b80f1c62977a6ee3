/**
 * Leak checks run when every process of a machine has exited: the model's equivalent
 * of kmemleak for the objects userspace can create. A check lists what is still alive
 * that nothing should hold any more; each finding becomes one `leak` report. A leak
 * report means the model failed to release something, never that a program exited
 * without closing its fds (exit closes them).
 */
import type { ReportObject } from '../sim/report.ts';
import { type File, liveFiles } from './file.ts';
import type { Kernel } from './kernel.ts';

/** One leaked object. */
export interface LeakFinding {
  /** Rule id, e.g. `file.leak`. */
  rule: string;
  /** What is still alive. */
  message: string;
  /** The object(s). */
  objects: ReportObject[];
  /** Identity used to report each object once. */
  key: unknown;
}

/** A leak check: returns the objects still alive. */
export type LeakCheck = (k: Kernel) => LeakFinding[];

const CHECKS = Symbol('leak_checks');
const REPORTED = Symbol('leaks_reported');

function checks(k: Kernel): LeakCheck[] {
  let c = k.singletons.get(CHECKS) as LeakCheck[] | undefined;
  if (!c) {
    c = [fileLeaks];
    k.singletons.set(CHECKS, c);
  }
  return c;
}

/** Adds a check to a kernel's list (drivers call this from their init). */
export function registerLeakCheck(k: Kernel, check: LeakCheck): void {
  const c = checks(k);
  if (!c.includes(check)) c.push(check);
}

function fileLeaks(k: Kernel): LeakFinding[] {
  return [...liveFiles(k)].map((f: File) => ({
    rule: 'file.leak',
    message: `file ${f.dPath()} (${f.fOp.name ?? 'file'}) still has ${f.count} reference(s) after every process exited`,
    objects: [f.reportObject()],
    key: f,
  }));
}

/** Runs every check and records a `leak` report for each object not reported before. */
export function runLeakChecks(k: Kernel): number {
  let seen = k.singletons.get(REPORTED) as Set<unknown> | undefined;
  if (!seen) {
    seen = new Set();
    k.singletons.set(REPORTED, seen);
  }
  let n = 0;
  for (const c of checks(k)) {
    for (const f of c(k)) {
      if (seen.has(f.key)) continue;
      seen.add(f.key);
      k.report('leak', f.rule, f.message, f.objects);
      n++;
    }
  }
  return n;
}
