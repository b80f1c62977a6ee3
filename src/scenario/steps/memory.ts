/**
 * Memory steps: `memfd` (memfd_create + ftruncate, optional seals), `mmap` of any
 * mappable fd (MAP_SHARED), `munmap`, and the CPU's `write` of a byte pattern and
 * `check` of bytes against one. Writes and reads go through the process's page
 * tables, so they see exactly the bytes the kernel and devices see.
 */
import { z } from 'zod';
import { F_ADD_SEALS } from '../../kernel/fcntl.ts';
import { SEEK_END, SEEK_SET } from '../../kernel/file.ts';
import { MFD_ALLOW_SEALING, MFD_CLOEXEC } from '../../kernel/mm/memfd.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../kernel/mm/mmap.ts';
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from '../../kernel/mm/shmem.ts';
import { registerStepKind } from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { type Pattern, patternBytes, patternSchema, patternText } from '../values.ts';
import { fdName, mapName } from './util.ts';

const SEALS = { shrink: F_SEAL_SHRINK, grow: F_SEAL_GROW, write: F_SEAL_WRITE, seal: F_SEAL_SEAL } as const;

registerStepKind({
  kind: 'memfd',
  summary:
    'memfd_create(2) with MFD_ALLOW_SEALING, sized with ftruncate(2), optionally sealed (binds its fd).',
  args: z.strictObject({
    size: size.meta({ description: 'The file size.' }),
    name: z
      .string()
      .max(249)
      .default('scenario')
      .meta({ description: 'The memfd name (default "scenario").' }),
    seals: z
      .array(z.enum(['shrink', 'grow', 'write', 'seal']))
      .default([])
      .meta({ description: 'Seals to add with F_ADD_SEALS after sizing (udmabuf needs shrink).' }),
  }),
  produces: 'fd',
  label: (a) => `memfd ${sizeText(a.size)}${a.seals.length ? ` sealed ${a.seals.join('+')}` : ''}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const fd = await sys.memfd_create(sys.allocCString(a.name), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return { ret: fd };
    const value = { type: 'fd' as const, fd, what: 'memfd' };
    let ret = await sys.ftruncate(fd, a.size);
    if (ret < 0) {
      await sys.close(fd);
      return { ret };
    }
    let seals = 0;
    for (const s of a.seals) seals |= SEALS[s];
    if (seals) {
      ret = await sys.fcntl(fd, F_ADD_SEALS, seals);
      if (ret < 0) {
        await sys.close(fd);
        return { ret };
      }
    }
    return { ret: fd, value, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'mmap',
  summary:
    'mmap(2) of a named fd with MAP_SHARED (binds the mapping); the length defaults to the file size (lseek SEEK_END).',
  args: z.union([
    fdName.transform((fd) => ({
      fd,
      length: undefined as number | undefined,
      offset: 0,
      prot: 'rw' as 'read' | 'write' | 'rw',
    })),
    z.strictObject({
      fd: fdName.meta({ description: 'The fd to map (a dma-buf, a memfd).' }),
      length: size.optional().meta({ description: 'Bytes to map (default: the whole file).' }),
      offset: size.default(0).meta({ description: 'File offset, a multiple of the page size (default 0).' }),
      prot: z
        .enum(['read', 'write', 'rw'])
        .default('rw')
        .meta({ description: 'PROT_READ, PROT_WRITE or both (default rw).' }),
    }),
  ]),
  produces: 'mapping',
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) =>
    `mmap ${a.fd}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}${a.offset ? ` at ${sizeText(a.offset)}` : ''}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const fd = ctx.fd(a.fd);
    let length = a.length;
    if (length === undefined) {
      const end = await sys.lseek(fd, 0, SEEK_END);
      if (end < 0) return { ret: end };
      const back = await sys.lseek(fd, 0, SEEK_SET);
      if (back < 0) return { ret: back };
      length = end - a.offset;
    }
    const prot = (a.prot === 'write' ? 0 : PROT_READ) | (a.prot === 'read' ? 0 : PROT_WRITE);
    const addr = await sys.mmap(0, length, prot, MAP_SHARED, fd, a.offset);
    if (addr < 0) return { ret: addr };
    return {
      ret: 0,
      value: { type: 'mapping', addr, length, of: a.fd },
      summary: `${sizeText(length)} at 0x${addr.toString(16)}`,
    };
  },
});

registerStepKind({
  kind: 'munmap',
  summary: 'munmap(2) of a named mapping; the name is forgotten.',
  args: mapName,
  refs: (name) => [{ name, type: 'mapping', path: [] }],
  label: (name) => `munmap ${name}`,
  async run(ctx, name) {
    const m = ctx.mapping(name);
    const ret = await ctx.sys.munmap(m.addr, m.length);
    if (ret >= 0) ctx.unbind(name);
    return { ret };
  },
});

const rangeArgs = {
  map: mapName.meta({ description: 'The mapping (a name bound by mmap).' }),
  pattern: patternSchema,
  offset: size.default(0).meta({ description: 'Where in the mapping to start (default 0).' }),
  length: size.optional().meta({ description: 'How many bytes (default: to the end of the mapping).' }),
};

/** The byte range a write or check covers, or an error message. */
function range(total: number, offset: number, length: number | undefined): [number, number] | string {
  const len = length ?? total - offset;
  if (offset > total || len < 0 || offset + len > total) {
    return `range ${offset}+${len} is outside the ${total}-byte mapping`;
  }
  return [offset, len];
}

registerStepKind({
  kind: 'write',
  summary: 'The CPU writes a byte pattern into a mapping (through the page tables, as a store would).',
  args: z.strictObject(rangeArgs),
  refs: (a) => [{ name: a.map, type: 'mapping', path: ['map'] }],
  label: (a) => `write ${a.map} ${patternText(a.pattern as Pattern)}`,
  async run(ctx, a) {
    const m = ctx.mapping(a.map);
    const r = range(m.length, a.offset, a.length);
    if (typeof r === 'string') return { ret: 0, problem: r };
    ctx.sys.poke(m.addr + r[0], patternBytes(a.pattern as Pattern, r[1]));
    return { ret: 0, summary: sizeText(r[1]) };
  },
});

registerStepKind({
  kind: 'check',
  summary: 'The CPU reads bytes of a mapping and compares them with a pattern; a difference fails the step.',
  args: z.strictObject(rangeArgs),
  refs: (a) => [{ name: a.map, type: 'mapping', path: ['map'] }],
  label: (a) => `check ${a.map} ${patternText(a.pattern as Pattern)}`,
  async run(ctx, a) {
    const m = ctx.mapping(a.map);
    const r = range(m.length, a.offset, a.length);
    if (typeof r === 'string') return { ret: 0, problem: r };
    const got = ctx.sys.peek(m.addr + r[0], r[1]);
    const want = patternBytes(a.pattern as Pattern, r[1]);
    let first = -1;
    let differ = 0;
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== want[i]) {
        if (first < 0) first = i;
        differ++;
      }
    }
    if (first < 0) return { ret: 0, summary: `${sizeText(r[1])} match`, detail: { bytes: r[1], differ: 0 } };
    const hex = (v: number) => `0x${v.toString(16).padStart(2, '0')}`;
    return {
      ret: 0,
      summary: `${differ} of ${sizeText(r[1])} differ`,
      detail: { bytes: r[1], differ, firstOffset: r[0] + first },
      problem: `byte at offset ${r[0] + first} is ${hex(got[first])}, expected ${hex(want[first])} (${differ} of ${r[1]} bytes differ)`,
    };
  },
});
