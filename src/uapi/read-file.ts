/**
 * Userspace helper: read a whole file (a debugfs or procfs text, a device file) through
 * the raw ABI, the way `cat` or a probe's dump_file() does: open, read in fixed-size
 * chunks until read returns 0, close.
 */
import type { Sys } from './sys.ts';

/** Reads all of `path` in `chunk`-byte reads; returns the text (bytes as Latin-1), or -errno. */
export async function readWholeFile(sys: Sys, path: string, chunk = 4096): Promise<string | number> {
  const fd = await sys.open(path, 0);
  if (fd < 0) return fd;
  const buf = sys.alloc(chunk);
  let text = '';
  for (;;) {
    const n = await sys.read(fd, buf, chunk);
    if (n < 0) {
      await sys.close(fd);
      return n;
    }
    if (n === 0) break;
    for (const b of sys.peek(buf, n)) text += String.fromCharCode(b);
  }
  await sys.close(fd);
  return text;
}
