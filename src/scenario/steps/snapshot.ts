/**
 * The `snapshot` step: the dma-buf views users already know (debugfs bufinfo, Android's
 * dmabuf_dump table, the fdinfo of every dma-buf fd), taken at that instant on the
 * machine the process runs on. The report prints them under the step; `--json` has
 * them as data in the step's `detail.snapshot` (see src/report/dmabuf-views.ts).
 *
 *     - snapshot: {views: [bufinfo, dmabuf_dump]}   # default: all three
 */
import { z } from 'zod';
import { renderSnapshot, SNAPSHOT_VIEWS, takeSnapshot } from '../../report/dmabuf-views.ts';
import { registerStepKind } from '../step-kind.ts';

const viewName = z.enum(SNAPSHOT_VIEWS).meta({
  id: 'SnapshotView',
  description: 'bufinfo (debugfs dma_buf/bufinfo), dmabuf_dump (per-process table) or fdinfo.',
});

registerStepKind({
  kind: 'snapshot',
  summary:
    'Captures the dma-buf views at this instant: debugfs bufinfo, a dmabuf_dump-style per-process table and the fdinfo of every dma-buf fd.',
  args: z
    .strictObject({
      views: z
        .array(viewName)
        .min(1, { error: 'name at least one view: bufinfo, dmabuf_dump or fdinfo' })
        .optional()
        .meta({ description: 'The views to capture (default: all three).' }),
    })
    .or(z.null()),
  label: (a) => `snapshot${a?.views ? ` ${a.views.join(', ')}` : ''}`,
  async run(ctx, a) {
    const views = a?.views ?? SNAPSHOT_VIEWS;
    const s = await takeSnapshot(ctx.sys, views);
    if (typeof s === 'number') return { ret: s };
    const d = s.dmabuf_dump;
    const summary = d
      ? `${d.buffers} dma-buf${d.buffers === 1 ? '' : 's'}, ${d.total} bytes`
      : `${views.join(', ')}`;
    return { ret: 0, summary, detail: { snapshot: s }, text: renderSnapshot(s) };
  },
});
