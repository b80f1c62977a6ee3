/**
 * /dev/console (drivers/tty/tty_io.c, the system console) and the stdio a process
 * starts with.
 *
 * Every process starts as if run from a shell on the console: fd 0 is /dev/null, fds 1
 * and 2 are the console, each captured into the process's `stdout` / `stderr` text, so
 * the first fd a program opens is 3, as on Linux. Reading the console gives end of
 * file; opening /dev/console by path gives a console whose output is dropped.
 */
import { errno } from '../../kernel/errno.ts';
import { File, type FileOperations, type Inode } from '../../kernel/file.ts';
import { currentKernel } from '../../kernel/kernel.ts';
import { copyFromUser } from '../../kernel/uaccess.ts';
import { lookupPath, registerDevice } from '../../kernel/vfs.ts';

/** Where console output goes. */
export type ConsoleSink = (text: string) => void;

/** The console's operations; a file's private data is its sink (or null). */
export const consoleFops: FileOperations = {
  name: 'console',
  read: () => 0,
  write: (file, buf, count) => {
    const CHUNK = 65536;
    let done = 0;
    const sink = file.privateData as ConsoleSink | null;
    while (done < count) {
      const n = Math.min(CHUNK, count - done);
      const b = new Uint8Array(n);
      const left = copyFromUser(b, buf + done);
      const got = n - left;
      if (got > 0 && sink) {
        let s = '';
        for (let i = 0; i < got; i++) s += String.fromCharCode(b[i]);
        sink(s);
      }
      done += got;
      if (left) break;
    }
    return done === 0 && count > 0 ? -errno.EFAULT : done;
  },
};

/** Registers /dev/console (5:1). */
export function consoleInit(): void {
  registerDevice('/dev/console', consoleFops, { mode: 0o600, ino: 5, rdev: 0x501 });
}

/** An open console file (O_WRONLY or O_RDWR by `flags`) writing to `sink`. */
export function openConsole(flags: number, sink: ConsoleSink | null): File {
  const e = lookupPath('/dev/console');
  if (!e || typeof e === 'number') throw new Error('openConsole: /dev/console is not registered');
  const f = new File(currentKernel(), e.inode as Inode, '/dev/console', flags | 0o100000, consoleFops);
  f.fMode |= 0x4 | 0x8 | 0x10;
  f.markOpened();
  f.privateData = sink;
  return f;
}
