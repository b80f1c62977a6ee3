/**
 * The attachment bookkeeping that the page-backed heaps share: each attachment keeps
 * its own copy of the buffer's sg_table and whether it is DMA-mapped, and CPU access
 * syncs every mapped attachment (struct dma_heap_attachment and the attach/detach/
 * map/unmap/begin/end_cpu_access ops of drivers/dma-buf/heaps/system_heap.c and
 * cma_heap.c, Linux 6.12, which are the same in both files).
 */
import type { Device } from '../../device.ts';
import { type ErrPtr, errPtr } from '../../err.ts';
import type { DmaDataDirection } from '../../mm/dma-mapping.ts';
import {
  dmaMapSgtable,
  dmaSyncSgtableForCpu,
  dmaSyncSgtableForDevice,
  dmaUnmapSgtable,
} from '../../mm/dma-mapping.ts';
import { SgTable, sgFreeTable } from '../../mm/scatterlist.ts';
import type { DmaBufAttachment } from '../dma-buf.ts';

/** Per-attachment state (struct dma_heap_attachment). */
export class HeapAttachment {
  /** The attachment's own copy of the buffer's table. */
  readonly table = new SgTable();
  /** The table is DMA-mapped now. */
  mapped = false;

  /** Created by the heap's attach. */
  constructor(
    /** The attached device. */
    readonly dev: Device,
  ) {}
}

/** A heap buffer's list of attachments, newest first (list_add). */
export interface HeapBufferAttachments {
  /** The attachments, newest first. */
  readonly attachments: HeapAttachment[];
}

/** Links a filled-in attachment to its buffer (the tail of the heaps' attach op). */
export function heapAttachAdd(
  buffer: HeapBufferAttachments,
  attachment: DmaBufAttachment,
  a: HeapAttachment,
): void {
  attachment.priv = a;
  buffer.attachments.unshift(a);
}

/** The heaps' detach op: unlinks the attachment and frees its table. */
export function heapDetach(buffer: HeapBufferAttachments, attachment: DmaBufAttachment): void {
  const a = attachment.priv as HeapAttachment;
  const i = buffer.attachments.indexOf(a);
  if (i >= 0) buffer.attachments.splice(i, 1);
  sgFreeTable(a.table);
}

/**
 * The heaps' map_dma_buf op: maps the attachment's table for its device. `error` turns a
 * mapping failure into the errno the heap returns (the CMA heap always says -ENOMEM).
 */
export function heapMapDmaBuf(
  attachment: DmaBufAttachment,
  dir: DmaDataDirection,
  error: (ret: number) => number = (ret) => ret,
): SgTable | ErrPtr {
  const a = attachment.priv as HeapAttachment;
  const ret = dmaMapSgtable(attachment.dev, a.table, dir, 0);
  if (ret) return errPtr(error(ret));
  a.mapped = true;
  return a.table;
}

/** The heaps' unmap_dma_buf op. */
export function heapUnmapDmaBuf(attachment: DmaBufAttachment, table: SgTable, dir: DmaDataDirection): void {
  const a = attachment.priv as HeapAttachment;
  a.mapped = false;
  dmaUnmapSgtable(attachment.dev, table, dir, 0);
}

/** The heaps' begin_cpu_access op: syncs every mapped attachment for the CPU. */
export function heapBeginCpuAccess(buffer: HeapBufferAttachments, dir: DmaDataDirection): number {
  for (const a of buffer.attachments) if (a.mapped) dmaSyncSgtableForCpu(a.dev, a.table, dir);
  return 0;
}

/** The heaps' end_cpu_access op: syncs every mapped attachment for its device. */
export function heapEndCpuAccess(buffer: HeapBufferAttachments, dir: DmaDataDirection): number {
  for (const a of buffer.attachments) if (a.mapped) dmaSyncSgtableForDevice(a.dev, a.table, dir);
  return 0;
}
