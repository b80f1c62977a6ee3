/**
 * Helpers the step kinds share: reading a whole file through read(2), the access-mode
 * vocabulary (`read`, `write`, `rw`), and the argument schemas that name bound values.
 */
import { z } from 'zod';
import { identifier } from '../step-kind.ts';

/** Reads the whole file at `path` with 4 KiB reads; the text, or -errno. */
export { readWholeFile } from '../../uapi/read-file.ts';

/** A name of a bound fd. */
export const fdName = identifier.meta({
  description: 'The name of an fd bound by an earlier step (its `as`).',
});

/** A name of a bound mapping. */
export const mapName = identifier.meta({
  description: 'The name of a mapping bound by an earlier mmap step.',
});

/** CPU or device access direction. */
export const access = z.enum(['read', 'write', 'rw']).meta({ description: 'read, write, or rw (both).' });

/** The DMA_BUF_SYNC_READ/WRITE bits of an access word (also the flags of EXPORT/IMPORT_SYNC_FILE). */
export function accessBits(a: 'read' | 'write' | 'rw'): number {
  return a === 'read' ? 1 : a === 'write' ? 2 : 3;
}
