/**
 * Access to user memory from the kernel: copy_from_user, copy_to_user, get_user,
 * put_user, strncpy_from_user, strnlen_user (include/linux/uaccess.h,
 * lib/strncpy_from_user.c, lib/strnlen_user.c).
 *
 * All act on the address space of the current task. As in the kernel, the copies
 * return the number of bytes they could not copy (0 on success) and callers turn a
 * non-zero result into -EFAULT; a copy stops at the first page that is unmapped or
 * lacks the needed permission (read for copy_from_user, write for copy_to_user), and
 * copy_from_user zero-fills what it could not read. Outside a user task (IRQ,
 * kthread) every access faults.
 *
 * The struct helpers take a layout from `uapi/structs.ts` (the model's include/uapi).
 */
import type { FieldSpec, StructDef, StructInput, StructValue } from '../uapi/structs.ts';
import { errno } from './errno.ts';
import { TASK_SIZE } from './mm/mmap.ts';
import { current } from './sched.ts';

/** access_ok(): the range lies below TASK_SIZE (does not check that it is mapped). */
export function accessOk(addr: number, size: number): boolean {
  return Number.isFinite(addr) && addr >= 0 && size >= 0 && addr + size <= TASK_SIZE;
}

/**
 * copy_from_user(): fills `dst` from user address `src`. Returns the number of bytes
 * not copied; those are zeroed.
 */
export function copyFromUser(dst: Uint8Array, src: number): number {
  const mm = current()?.mm;
  if (!mm || !accessOk(src, dst.length)) {
    dst.fill(0);
    return dst.length;
  }
  const left = mm.copyOut(src, dst);
  if (left) dst.fill(0, dst.length - left);
  return left;
}

/** copy_to_user(): writes `src` at user address `dst`. Returns the number of bytes not copied. */
export function copyToUser(dst: number, src: Uint8Array): number {
  const mm = current()?.mm;
  if (!mm || !accessOk(dst, src.length)) return src.length;
  return mm.copyIn(dst, src);
}

/** clear_user(): zeroes `n` user bytes; returns the number not cleared. */
export function clearUser(dst: number, n: number): number {
  const CHUNK = 65536;
  const zeros = new Uint8Array(Math.min(n, CHUNK));
  let done = 0;
  while (done < n) {
    const len = Math.min(CHUNK, n - done);
    const left = copyToUser(dst + done, zeros.subarray(0, len));
    done += len - left;
    if (left) break;
  }
  return n - done;
}

/** Reads `n` user bytes into a new array, or null on a fault. */
export function memdupUser(src: number, n: number): Uint8Array | null {
  const b = new Uint8Array(n);
  return copyFromUser(b, src) ? null : b;
}

/** get_user() of a u32; null on a fault. */
export function getUserU32(addr: number): number | null {
  const b = memdupUser(addr, 4);
  return b ? new DataView(b.buffer).getUint32(0, true) : null;
}

/** get_user() of an s32; null on a fault. */
export function getUserS32(addr: number): number | null {
  const b = memdupUser(addr, 4);
  return b ? new DataView(b.buffer).getInt32(0, true) : null;
}

/** get_user() of a u64; null on a fault. */
export function getUserU64(addr: number): bigint | null {
  const b = memdupUser(addr, 8);
  return b ? new DataView(b.buffer).getBigUint64(0, true) : null;
}

/** put_user() of a 32-bit value; 0 or -EFAULT. */
export function putUserU32(addr: number, v: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return copyToUser(addr, b) ? -errno.EFAULT : 0;
}

/** put_user() of a 64-bit value; 0 or -EFAULT. */
export function putUserU64(addr: number, v: bigint | number): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return copyToUser(addr, b) ? -errno.EFAULT : 0;
}

/** copy_from_user() of a whole struct; null on a fault. */
export function copyStructFromUser<F extends readonly FieldSpec[]>(
  def: StructDef<F>,
  addr: number,
): StructValue<F> | null {
  const b = memdupUser(addr, def.size);
  return b ? def.decode(b) : null;
}

/** copy_to_user() of a whole struct; 0 or -EFAULT. */
export function copyStructToUser<F extends readonly FieldSpec[]>(
  def: StructDef<F>,
  addr: number,
  value: StructInput<F>,
): number {
  return copyToUser(addr, def.encode(value)) ? -errno.EFAULT : 0;
}

/**
 * strnlen_user(): the length of the user string at `src` including its NUL, looking at
 * most at `n` bytes; 0 on a fault, n+1 if no NUL was found within `n` bytes.
 */
export function strnlenUser(src: number, n: number): number {
  const mm = current()?.mm;
  if (!mm) return 0;
  const one = new Uint8Array(1);
  for (let i = 0; i < n; i++) {
    if (!accessOk(src + i, 1) || mm.copyOut(src + i, one)) return 0;
    if (one[0] === 0) return i + 1;
  }
  return n + 1;
}

/**
 * strncpy_from_user(): copies the user string at `src`, at most `count` bytes. Returns
 * the bytes (without NUL) and whether a NUL was found within `count`, or -EFAULT.
 */
export function strncpyFromUser(
  src: number,
  count: number,
): { bytes: Uint8Array; terminated: boolean } | number {
  const mm = current()?.mm;
  if (!mm) return -errno.EFAULT;
  const out: number[] = [];
  const one = new Uint8Array(1);
  for (let i = 0; i < count; i++) {
    if (!accessOk(src + i, 1) || mm.copyOut(src + i, one)) return -errno.EFAULT;
    if (one[0] === 0) return { bytes: Uint8Array.from(out), terminated: true };
    out.push(one[0]);
  }
  return { bytes: Uint8Array.from(out), terminated: false };
}
