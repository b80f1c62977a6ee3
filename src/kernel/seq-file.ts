/**
 * seq_file: the buffer kernel code prints text files into (fs/seq_file.c,
 * include/linux/seq_file.h). `show_fdinfo` handlers and debugfs files write their
 * lines here; the reader then gets the text through read().
 */
import { stringBytes } from '../uapi/structs.ts';
import { errno } from './errno.ts';
import type { File, FileOperations, FilePos } from './file.ts';
import { copyToUser } from './uaccess.ts';

/** A text buffer filled by show functions. */
export class SeqFile {
  private parts: string[] = [];

  /** seq_puts(): appends `s`. */
  puts(s: string): void {
    this.parts.push(s);
  }

  /** seq_printf() with the formatting already done by a template string. */
  printf(s: string): void {
    this.parts.push(s);
  }

  /** seq_putc(). */
  putc(c: string): void {
    this.parts.push(c);
  }

  /** The text written so far. */
  get text(): string {
    return this.parts.join('');
  }
}

/**
 * single_open() + seq_read/seq_lseek (fs/seq_file.c): file operations for a text file
 * produced by `show`. The text is produced at the first read from position 0 (and
 * again whenever a read starts at 0); `show` may return a negative errno, which that
 * read returns, and may be async (a show that takes sleeping locks, such as dma-buf's
 * bufinfo). lseek accepts SEEK_SET and SEEK_CUR.
 */
export function singleOpen(
  show: (m: SeqFile, file: File) => number | void | Promise<number | void>,
  name = 'seq_file',
): FileOperations {
  const texts = new WeakMap<File, Uint8Array>();
  return {
    name,
    async read(file: File, buf: number, count: number, ppos: FilePos): Promise<number> {
      let text = texts.get(file);
      if (!text || ppos.pos === 0) {
        const m = new SeqFile();
        const r = await show(m, file);
        if (typeof r === 'number' && r < 0) return r;
        text = stringBytes(m.text);
        texts.set(file, text);
      }
      if (ppos.pos >= text.length || count === 0) return 0;
      const chunk = text.subarray(ppos.pos, Math.min(text.length, ppos.pos + count));
      const left = copyToUser(buf, chunk);
      const n = chunk.length - left;
      if (n === 0) return -errno.EFAULT;
      ppos.pos += n;
      return n;
    },
    llseek(file: File, offset: number, whence: number): number {
      if (whence === 1) offset += file.fPos;
      else if (whence !== 0) return -errno.EINVAL;
      if (offset < 0) return -errno.EINVAL;
      file.fPos = offset;
      return offset;
    },
  };
}
