/**
 * `ErrnoError`: what the typed wrappers of `src/uapi/` throw when a call fails. The raw
 * `Sys` ABI never throws for bad arguments (it returns -errno); the wrappers turn a
 * negative result into an exception carrying the errno and the call that failed.
 */
import { errnoName } from '../kernel/errno.ts';

/** A failed system call, thrown by the typed wrappers. */
export class ErrnoError extends Error {
  /** The errno value, positive (`22` for EINVAL). */
  readonly errno: number;
  /** The errno symbol (`EINVAL`). */
  readonly code: string;

  /** Wraps the negative result `rc` of `call` (a description such as `ioctl(DMA_HEAP_IOCTL_ALLOC)`). */
  constructor(
    rc: number,
    /** The call that failed. */
    readonly call: string,
  ) {
    const e = Math.abs(rc);
    super(`${call}: ${errnoName(e)} (${e})`);
    this.name = 'ErrnoError';
    this.errno = e;
    this.code = errnoName(e);
  }
}

/** Returns `rc` when it is >= 0, else throws an `ErrnoError` for `call`. */
export function checkErrno(rc: number, call: string): number {
  if (rc < 0) throw new ErrnoError(rc, call);
  return rc;
}
