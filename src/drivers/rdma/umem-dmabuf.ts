/**
 * A dma-buf registered as RDMA memory (struct ib_umem_dmabuf): the dynamic importer an
 * ODP-capable HCA uses (invalidated by `move_notify`, re-mapped on the next access) and
 * the pinned variant for HCAs that cannot take faults.
 *
 * Follows drivers/infiniband/core/umem_dmabuf.c of Linux 6.12:
 * - ib_umem_dmabuf_get(): `offset + size` overflow, ops without `move_notify`, a buffer
 *   smaller than `offset + size` or an empty range are -EINVAL; dma_buf_get errors pass
 *   through; the attachment is dynamic (dma_buf_dynamic_attach with the driver's ops).
 * - ib_umem_dmabuf_map_pages() (reservation lock held): -EINVAL once revoked; when
 *   already mapped only wait for fences again; else dma_buf_map_attachment
 *   (BIDIRECTIONAL) and keep the page-aligned window [ALIGN_DOWN(offset),
 *   ALIGN(offset + size)) of the exporter's table (the kernel edits the first and last
 *   entries in place and restores them at unmap; the model keeps its own copy of the
 *   window), then dma_resv_wait_timeout(KERNEL, non-interruptible, infinite): 0 -> -ETIMEDOUT.
 * - ib_umem_dmabuf_unmap_pages() (lock held): dma_buf_unmap_attachment.
 * - ib_umem_dmabuf_get_pinned(): importer ops { allow_peer2peer, move_notify that only
 *   warns "Invalidate callback should not be called when memory is pinned" }; lock,
 *   dma_buf_pin, map, unlock; on failure unlock and release through the revoke path
 *   (unmap before unpin, unpin only if the pin succeeded: the CVE-2026-43128 fix that
 *   6.12.117 carries).
 * - ib_umem_dmabuf_revoke() / ib_umem_release(): unmap, unpin (pinned) once, then
 *   detach and put the buffer.
 * The HCA uses only sg_dma_address/sg_dma_len of the exporter's table; the RAM decoder
 * of ib-umem.ts learns the pages behind a page-backed table from the exporter's entries
 * (the memory controller's view, not an sg_page() call by the driver).
 */
import type { Device } from '../../kernel/device.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnpin,
} from '../../kernel/dma-buf/dma-buf.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  dmaResvAssertHeld,
  dmaResvLock,
  dmaResvUnlock,
  dmaResvWaitTimeout,
} from '../../kernel/dma-buf/dma-resv.ts';
import { isErr, ptrErr } from '../../kernel/err.ts';
import { errno } from '../../kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../kernel/jiffies.ts';
import { currentKernel } from '../../kernel/kernel.ts';
import { DMA_BIDIRECTIONAL } from '../../kernel/mm/dma-mapping.ts';
import { PAGE_SIZE, type Page } from '../../kernel/mm/page.ts';
import type { SgTable } from '../../kernel/mm/scatterlist.ts';
import { type IbUmemBase, ibAccessWritable, ramAddEntry, type UmemDmaSegment } from './ib-umem.ts';

/** A dma-buf umem. */
export class IbUmemDmabuf implements IbUmemBase {
  /** A dma-buf umem. */
  readonly isDmabuf = true;
  /** RAM decoder (rebuilt at every map). */
  readonly ram = new Map<number, Page>();
  /** The window's DMA segments while mapped, else null. */
  segments: UmemDmaSegment[] | null = null;
  /** The exporter's table while mapped. */
  sgt: SgTable | null = null;
  /** The attachment (set right after attach). */
  attach!: DmaBufAttachment;
  /** dma_buf_pin succeeded (pinned variant). */
  pinned = false;
  /** Revoked: unmapped and unpinned for good; later maps fail. */
  revoked = false;
  /** Times the buffer was mapped (first map and re-maps after invalidation). */
  mapCount = 0;
  /** Times move_notify invalidated a mapping. */
  invalidations = 0;

  /** Use `ibUmemDmabufGet`. */
  constructor(
    /** The HCA's DMA device. */
    readonly dev: Device,
    /** The buffer (one reference held). */
    readonly dmabuf: DmaBuf,
    /** Offset of the registration in the buffer. */
    readonly address: number,
    /** Length. */
    readonly length: number,
    /** HCA writes allowed. */
    readonly writable: boolean,
    /** The importer's private data (the driver's MR), passed to its ops. */
    public privateData: unknown,
  ) {}
}

/**
 * ib_umem_dmabuf_get(): takes the dma-buf at `fd` of the current process and attaches
 * `dev` dynamically with `ops` (which must have move_notify). Returns the umem or -errno.
 */
export async function ibUmemDmabufGet(
  dev: Device,
  offset: number,
  size: number,
  fd: number,
  access: number,
  ops: DmaBufAttachOps | null,
): Promise<IbUmemDmabuf | number> {
  const end = offset + size;
  if (!Number.isSafeInteger(end) || end < offset || offset < 0 || size < 0) return -errno.EINVAL;
  if (!ops?.moveNotify) return -errno.EINVAL;
  const dmabuf = dmaBufGet(fd);
  if (isErr(dmabuf)) return ptrErr(dmabuf);
  if (dmabuf.size < end) {
    dmaBufPut(dmabuf);
    return -errno.EINVAL;
  }
  const npages = Math.ceil(end / PAGE_SIZE) - Math.floor(offset / PAGE_SIZE);
  if (size === 0 || npages === 0) {
    dmaBufPut(dmabuf);
    return -errno.EINVAL;
  }
  const umem = new IbUmemDmabuf(dev, dmabuf, offset, size, ibAccessWritable(access), null);
  const attach = await dmaBufDynamicAttach(dmabuf, dev, ops, umem);
  if (isErr(attach)) {
    dmaBufPut(dmabuf);
    return ptrErr(attach);
  }
  umem.attach = attach;
  return umem;
}

/**
 * ib_umem_dmabuf_map_pages(): maps the buffer for the HCA (reservation lock held) and
 * waits for its KERNEL fences. 0 or -errno (-EINVAL revoked, the exporter's map error,
 * -ETIMEDOUT).
 */
export async function ibUmemDmabufMapPages(umem: IbUmemDmabuf): Promise<number> {
  const resv = umem.dmabuf.resv;
  dmaResvAssertHeld(resv, 'ib_umem_dmabuf_map_pages');
  if (umem.revoked) return -errno.EINVAL;
  if (umem.sgt === null) {
    const sgt = await dmaBufMapAttachment(umem.attach, DMA_BIDIRECTIONAL);
    if (isErr(sgt)) return ptrErr(sgt);
    const start = umem.address - (umem.address % PAGE_SIZE);
    const end = Math.ceil((umem.address + umem.length) / PAGE_SIZE) * PAGE_SIZE;
    const segs: UmemDmaSegment[] = [];
    umem.ram.clear();
    let cur = 0;
    for (let i = 0; i < sgt.nents; i++) {
      const sg = sgt.sgl[i];
      ramAddEntry(umem.ram, sg.pages);
      const lo = Math.max(cur, start);
      const hi = Math.min(cur + sg.dmaLength, end);
      if (hi > lo) segs.push({ dma: sg.dmaAddress + (lo - cur), len: hi - lo });
      cur += sg.dmaLength;
      if (cur >= end) break;
    }
    umem.sgt = sgt;
    umem.segments = segs;
    umem.mapCount++;
  }
  const r = await dmaResvWaitTimeout(resv, DMA_RESV_USAGE_KERNEL, false, MAX_SCHEDULE_TIMEOUT);
  if (r < 0) return r;
  if (r === 0) return -errno.ETIMEDOUT;
  return 0;
}

/** ib_umem_dmabuf_unmap_pages(): drops the mapping (reservation lock held). */
export async function ibUmemDmabufUnmapPages(umem: IbUmemDmabuf): Promise<void> {
  dmaResvAssertHeld(umem.dmabuf.resv, 'ib_umem_dmabuf_unmap_pages');
  if (umem.sgt === null) return;
  const sgt = umem.sgt;
  umem.sgt = null;
  umem.segments = null;
  await dmaBufUnmapAttachment(umem.attach, sgt, DMA_BIDIRECTIONAL);
}

/** Rule id: move_notify reached a pinned dma-buf umem. */
export const UMEM_DMABUF_PINNED_INVALIDATE_RULE = 'rdma.umem_dmabuf_pinned_invalidate';

/** The importer ops of the pinned variant (ib_umem_dmabuf_attach_pinned_ops). */
export const ibUmemDmabufAttachPinnedOps: DmaBufAttachOps = {
  allowPeer2peer: true,
  moveNotify(attach: DmaBufAttachment): void {
    const umem = attach.importerPriv as IbUmemDmabuf;
    umem.invalidations++;
    currentKernel().warn(
      UMEM_DMABUF_PINNED_INVALIDATE_RULE,
      'WARNING: ib_umem_dmabuf_unsupported_move_notify: Invalidate callback should not be called when memory is pinned',
      [attach.reportObject()],
    );
  },
};

/**
 * ib_umem_dmabuf_get_pinned(): a dynamic attachment that pins the exporter and maps
 * once, for HCAs without page faults. Returns the umem or -errno.
 */
export async function ibUmemDmabufGetPinned(
  dev: Device,
  offset: number,
  size: number,
  fd: number,
  access: number,
): Promise<IbUmemDmabuf | number> {
  const umem = await ibUmemDmabufGet(dev, offset, size, fd, access, ibUmemDmabufAttachPinnedOps);
  if (typeof umem === 'number') return umem;
  const resv = umem.dmabuf.resv;
  await dmaResvLock(resv, null);
  let r = await dmaBufPin(umem.attach);
  if (r === 0) {
    umem.pinned = true;
    r = await ibUmemDmabufMapPages(umem);
  }
  dmaResvUnlock(resv);
  if (r < 0) {
    await ibUmemDmabufRelease(umem);
    return r;
  }
  return umem;
}

/** ib_umem_dmabuf_revoke(): unmap and unpin once; later maps fail (takes the reservation lock). */
export async function ibUmemDmabufRevoke(umem: IbUmemDmabuf): Promise<void> {
  if (umem.revoked) return;
  const resv = umem.dmabuf.resv;
  await dmaResvLock(resv, null);
  await ibUmemDmabufUnmapPages(umem);
  if (umem.pinned) {
    umem.pinned = false;
    await dmaBufUnpin(umem.attach);
  }
  umem.revoked = true;
  dmaResvUnlock(resv);
}

/** ib_umem_dmabuf_release(): revoke, detach, put the buffer. */
export async function ibUmemDmabufRelease(umem: IbUmemDmabuf): Promise<void> {
  await ibUmemDmabufRevoke(umem);
  const dmabuf = umem.dmabuf;
  await dmaBufDetach(dmabuf, umem.attach);
  dmaBufPut(dmabuf);
}
