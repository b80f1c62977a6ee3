/**
 * Jiffies: the kernel's tick counter and its conversions (include/linux/jiffies.h,
 * kernel/time/time.c).
 *
 * HZ is per kernel (default 250, so one jiffy is 4 ms). Jiffies are derived from the
 * virtual clock: jiffies = floor(now / tick). `MAX_SCHEDULE_TIMEOUT` is the kernel's
 * LONG_MAX "wait forever"; a JS number cannot hold LONG_MAX, so the model uses
 * `Number.MAX_SAFE_INTEGER`, and every timeout at or above it means forever.
 */

/** Default tick rate. */
export const DEFAULT_HZ = 250;

/** "Wait forever", in jiffies (stands for LONG_MAX). */
export const MAX_SCHEDULE_TIMEOUT = Number.MAX_SAFE_INTEGER;

/** Nanoseconds per second. */
export const NSEC_PER_SEC = 1_000_000_000;
/** Nanoseconds per millisecond. */
export const NSEC_PER_MSEC = 1_000_000;
/** Nanoseconds per microsecond. */
export const NSEC_PER_USEC = 1_000;

/** Converts between jiffies and nanoseconds for one HZ value. */
export class Jiffies {
  /** Length of one jiffy in ns. */
  readonly tickNs: number;

  /** `hz` must divide 10^9 evenly enough to give a whole tick (100, 250, 300, 1000 do). */
  constructor(readonly hz: number = DEFAULT_HZ) {
    if (!Number.isInteger(hz) || hz <= 0)
      throw new RangeError(`HZ must be a positive whole number, got ${hz}`);
    this.tickNs = Math.floor(NSEC_PER_SEC / hz);
  }

  /** The jiffies counter at virtual time `ns`. */
  at(ns: number): number {
    return Math.floor(ns / this.tickNs);
  }

  /** msecs_to_jiffies: rounds up, as the kernel does. */
  fromMsecs(ms: number): number {
    if (ms < 0) return MAX_SCHEDULE_TIMEOUT;
    return Math.ceil((ms * NSEC_PER_MSEC) / this.tickNs);
  }

  /** usecs_to_jiffies: rounds up. */
  fromUsecs(us: number): number {
    return Math.ceil((us * NSEC_PER_USEC) / this.tickNs);
  }

  /** nsecs_to_jiffies: rounds down, as the kernel's nsecs_to_jiffies64 does. */
  fromNsecs(ns: number): number {
    return Math.floor(ns / this.tickNs);
  }

  /** jiffies_to_msecs. */
  toMsecs(j: number): number {
    return Math.floor((j * this.tickNs) / NSEC_PER_MSEC);
  }

  /** jiffies_to_nsecs. */
  toNsecs(j: number): number {
    return j * this.tickNs;
  }
}
