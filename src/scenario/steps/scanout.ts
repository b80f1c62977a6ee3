/**
 * The scan-out step: a static dma-buf importer driven through its char device
 * (/dev/scanout<N>, src/drivers/media/display-importer.ts, model-only ABI in
 * src/uapi/scanout.ts), the kind of importer drivers/gpu/drm/drm_prime.c
 * drm_gem_prime_import_dev is: dma_buf_attach without importer ops (peer2peer false),
 * then dma_buf_map_attachment_unlocked.
 *
 * - `scanout_import`: opens the scan-out device, SCANOUT_IOCTL_FRAME on a dma-buf fd
 *   (import, map, DMA the range out, CRC-32 of the bytes, release), closes the device.
 *   The exporter's refusal comes back as the step's errno (-EPERM from habanalabs, whose
 *   device memory has no struct page); with `pattern`, the CRC is compared with the
 *   CRC-32 of the bytes expected.
 *
 * Not a kernel concept: this is the scenario language over the scan-out device's ABI.
 */
import { z } from 'zod';
import { crc32 } from '../../drivers/media/display-importer.ts';
import { errno } from '../../kernel/errno.ts';
import { SEEK_END } from '../../kernel/file.ts';
import { ErrnoError } from '../../uapi/errno-error.ts';
import {
  SCANOUT_FRAME_MODEL_P2P,
  SCANOUT_FRAME_MODEL_SG_PAGE,
  Scanout,
  scanoutPath,
} from '../../uapi/scanout.ts';
import { registerStepKind } from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { type Pattern, patternBytes, patternSchema, patternText } from '../values.ts';
import { fdName } from './util.ts';

const FLAGS = { MODEL_P2P: SCANOUT_FRAME_MODEL_P2P, MODEL_SG_PAGE: SCANOUT_FRAME_MODEL_SG_PAGE } as const;

registerStepKind({
  kind: 'scanout_import',
  summary:
    'A static importer (the scan-out device /dev/scanout<N>) imports a dma-buf (dma_buf_attach without peer2peer, dma_buf_map_attachment), scans `length` bytes at `offset` out by DMA and returns their CRC-32; a page-less exporter refuses it with its errno.',
  args: z.strictObject({
    fd: fdName.meta({ description: 'The dma-buf.' }),
    device: z
      .number()
      .int()
      .min(0)
      .default(0)
      .meta({ description: "N of /dev/scanout<N> (default 0: the topology's first `other` function)." }),
    offset: size.default(0).meta({ description: 'Where in the buffer the frame starts (default 0).' }),
    length: size.default(0).meta({ description: 'Bytes to scan (default 0: to the end of the buffer).' }),
    pattern: patternSchema
      .optional()
      .meta({ description: 'Check: the CRC-32 is that of these bytes (from the start of the frame).' }),
    flags: z
      .array(z.enum(['MODEL_P2P', 'MODEL_SG_PAGE']))
      .default([])
      .meta({
        description:
          'Model-only importer bugs: MODEL_P2P claims allow_peer2peer; MODEL_SG_PAGE reads through sg_page() of the lent table (default none).',
      }),
  }),
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) =>
    `scanout_import ${a.fd}${a.length ? ` ${sizeText(a.length)}` : ''}${a.offset ? ` at ${sizeText(a.offset)}` : ''}${a.pattern ? ` ${patternText(a.pattern as Pattern)}` : ''}`,
  async run(ctx, a) {
    const { sys } = ctx;
    let dev: Scanout;
    try {
      dev = await Scanout.open(sys, a.device);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      return {
        ret: -e.errno,
        problem:
          e.errno === errno.ENOENT
            ? `${ctx.host} has no ${scanoutPath(a.device)}: give the topology an endpoint of kind "other" (a display controller)`
            : undefined,
      };
    }
    let flags = 0;
    for (const f of a.flags) flags |= FLAGS[f];
    const fd = ctx.fd(a.fd);
    const r = await dev.frameRaw(fd, { offset: a.offset, length: a.length, flags });
    await dev.close();
    if (typeof r === 'number') return { ret: r };
    const crc = `0x${r.crc32.toString(16).padStart(8, '0')}`;
    const out = {
      ret: 0,
      summary: `crc32 ${crc}, ${r.nents} DMA segment(s)`,
      detail: { crc32: crc, nents: r.nents },
    };
    if (a.pattern === undefined) return out;
    let length = a.length;
    if (length === 0) {
      const end = await sys.lseek(fd, 0, SEEK_END);
      if (end < 0) return { ret: end };
      length = end - a.offset;
    }
    const want = crc32(patternBytes(a.pattern as Pattern, length)) >>> 0;
    return want === r.crc32 >>> 0
      ? { ...out, summary: `${out.summary}: the expected bytes` }
      : {
          ...out,
          problem: `crc32 ${crc}, expected 0x${want.toString(16).padStart(8, '0')} for ${patternText(a.pattern as Pattern)}`,
        };
  },
});
