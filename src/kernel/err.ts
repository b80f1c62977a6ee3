/**
 * Error pointers (include/linux/err.h): the third failure style of kernel APIs, next to
 * a negative errno and NULL.
 *
 * A function that returns an object or an error returns either the object or an
 * `ErrPtr` carrying a negative errno (`errPtr(-E...)`, ERR_PTR); callers test with
 * `isErr` (IS_ERR) and read the errno with `ptrErr` (PTR_ERR). `isErrOrNull` covers the functions that may also
 * return null (an exporter's map_dma_buf, for one).
 */
import { MAX_ERRNO } from './errno.ts';

/** An error pointer: ERR_PTR(err) with `err` a negative errno. */
export class ErrPtr {
  /** ERR_PTR(): wraps a negative errno; throws for anything else (a programming error). */
  constructor(
    /** The negative errno. */
    readonly err: number,
  ) {
    if (!(Number.isInteger(err) && err < 0 && err >= -MAX_ERRNO)) {
      throw new RangeError(`ERR_PTR(${err}): an error pointer carries a negative errno`);
    }
  }

  /** `ERR_PTR(-22)` style text for messages. */
  toString(): string {
    return `ERR_PTR(${this.err})`;
  }
}

/** ERR_PTR(): an error pointer for the negative errno `err`. */
export function errPtr(err: number): ErrPtr {
  return new ErrPtr(err);
}

/** IS_ERR(): true when `x` is an error pointer. */
export function isErr<T>(x: T | ErrPtr): x is ErrPtr {
  return x instanceof ErrPtr;
}

/** IS_ERR_OR_NULL(): true for an error pointer or null. */
export function isErrOrNull<T>(x: T | ErrPtr | null | undefined): x is ErrPtr | null | undefined {
  return x === null || x === undefined || x instanceof ErrPtr;
}

/** PTR_ERR(): the negative errno carried by an error pointer. */
export function ptrErr(x: ErrPtr): number {
  return x.err;
}
