/**
 * /dev/null and /dev/zero (drivers/char/mem.c).
 *
 * /dev/null reads as empty and swallows writes; /dev/zero reads as zeros, swallows
 * writes, and maps as fresh anonymous memory (MAP_PRIVATE and MAP_SHARED alike in the
 * model). Both seek to 0 whatever they are asked. Registered at boot, mode 0666.
 */
import { errno } from '../../kernel/errno.ts';
import type { FileOperations } from '../../kernel/file.ts';
import { clearUser } from '../../kernel/uaccess.ts';
import { registerDevice } from '../../kernel/vfs.ts';

/** /dev/null's operations. */
export const nullFops: FileOperations = {
  name: 'null',
  read: () => 0,
  write: (_file, _buf, count) => count,
  llseek: (file) => {
    file.fPos = 0;
    return 0;
  },
};

/** /dev/zero's operations. */
export const zeroFops: FileOperations = {
  name: 'zero',
  read: (_file, buf, count) => {
    if (count === 0) return 0;
    const left = clearUser(buf, count);
    const n = count - left;
    return n === 0 ? -errno.EFAULT : n;
  },
  write: (_file, _buf, count) => count,
  llseek: (file) => {
    file.fPos = 0;
    return 0;
  },
  mmap: (_file, vma) => {
    vma.setAnonymous();
    return 0;
  },
};

/** chr_dev_init() for the memory devices: registers /dev/null and /dev/zero. */
export function memDevicesInit(): void {
  registerDevice('/dev/null', nullFops, { mode: 0o666, ino: 4, rdev: 0x103 });
  registerDevice('/dev/zero', zeroFops, { mode: 0o666, ino: 8, rdev: 0x105 });
}
