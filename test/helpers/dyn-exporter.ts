/**
 * A small dynamic dma-buf exporter of device memory for import tests, standing in for a
 * GPU driver's VRAM exporter (drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c of Linux 6.12
 * in outline): it has pin/unpin (so it is dynamic), hands out page-less tables of PCI
 * bus addresses only to importers that set `allow_peer2peer` (-EPERM otherwise, like
 * habanalabs), honours the importer's dma_get_max_seg_size() (rounded down to a page;
 * below a page -EINVAL, as alloc_sgt_from_device_pages does), and maps through a BAR
 * window of limited size: a map that does not fit in what other attachments left free
 * fails with -ENOSPC. Every call is logged in order, and pins are counted, so tests can
 * check an importer's unwind (unmap before unpin, no unpin without a pin).
 *
 * Call `dynExport` from a simulated task (kernel-side code of a test program).
 */
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
  dmaBufExport,
  dmaBufFd,
} from '../../src/kernel/dma-buf/dma-buf.ts';
import { type ErrPtr, errPtr, isErr } from '../../src/kernel/err.ts';
import { errno } from '../../src/kernel/errno.ts';
import { O_CLOEXEC, O_RDWR } from '../../src/kernel/fcntl.ts';
import { DMA_ATTR_SKIP_CPU_SYNC } from '../../src/kernel/mm/dma-mapping.ts';
import {
  dmaGetMaxSegSize,
  dmaMappingError,
  dmaMapResource,
  dmaUnmapResource,
} from '../../src/kernel/mm/iommu.ts';
import { PAGE_SIZE } from '../../src/kernel/mm/page.ts';
import {
  forEachSgtableDmaSg,
  SgTable,
  sgAllocTable,
  sgDmaMarkBusAddress,
  sgFreeTable,
} from '../../src/kernel/mm/scatterlist.ts';

/** Options of a dynamic test export. */
export interface DynExportOptions {
  /** Buffer size (default 1 MiB). */
  size?: number;
  /** Bytes of BAR window all mappings together may use (default: unlimited). */
  windowBytes?: number;
  /** Error `pin` returns (default 0). */
  pinError?: number;
  /** Bus address of the buffer's BAR aperture (default 0x38_0000_0000). */
  barBase?: number;
}

/** The exporter's state. */
export interface DynExporter {
  /** The buffer (the exporter's reference until its fd closes). */
  readonly dmabuf: DmaBuf;
  /** The dma-buf fd installed in the current process. */
  readonly fd: number;
  /** Calls in order: "attach dev", "pin dev", "map dev", "map dev -errno", "unmap dev", "unpin dev", "detach dev", "release". */
  readonly log: string[];
  /** Pins held now. */
  pins: number;
  /** Unpins that found no pin (double unpin). */
  unbalancedUnpins: number;
  /** BAR window bytes mapped now. */
  windowUsed: number;
}

/** Exports a dynamic page-less buffer and installs its fd (O_RDWR | O_CLOEXEC) in the current process. */
export function dynExport(opts: DynExportOptions = {}): DynExporter {
  const size = opts.size ?? 1024 * 1024;
  const window = opts.windowBytes ?? Number.POSITIVE_INFINITY;
  const barBase = opts.barBase ?? 0x38_0000_0000;
  const log: string[] = [];
  const st = { pins: 0, unbalancedUnpins: 0, windowUsed: 0 };
  const ops: DmaBufOps = {
    attach(_b, a) {
      log.push(`attach ${a.dev.name}`);
      return 0;
    },
    detach(_b, a) {
      log.push(`detach ${a.dev.name}`);
    },
    pin(a) {
      if (opts.pinError) {
        log.push(`pin ${a.dev.name} ${opts.pinError}`);
        return opts.pinError;
      }
      log.push(`pin ${a.dev.name}`);
      st.pins++;
      return 0;
    },
    unpin(a) {
      log.push(`unpin ${a.dev.name}`);
      if (st.pins === 0) st.unbalancedUnpins++;
      else st.pins--;
    },
    mapDmaBuf(a: DmaBufAttachment): SgTable | ErrPtr {
      const fail = (e: number) => {
        log.push(`map ${a.dev.name} ${e}`);
        return errPtr(e);
      };
      if (!a.peer2peer) return fail(-errno.EPERM);
      const maxSeg = Math.floor(dmaGetMaxSegSize(a.dev) / PAGE_SIZE) * PAGE_SIZE;
      if (maxSeg < PAGE_SIZE) return fail(-errno.EINVAL);
      if (st.windowUsed + size > window) return fail(-errno.ENOSPC);
      const n = Math.ceil(size / maxSeg);
      const sgt = new SgTable();
      if (sgAllocTable(sgt, n)) return fail(-errno.ENOMEM);
      for (let i = 0; i < n; i++) {
        const len = Math.min(maxSeg, size - i * maxSeg);
        const addr = dmaMapResource(a.dev, barBase + i * maxSeg, len, 0, DMA_ATTR_SKIP_CPU_SYNC);
        if (dmaMappingError(a.dev, addr)) {
          for (let j = 0; j < i; j++) {
            const d = sgt.sgl[j];
            dmaUnmapResource(a.dev, d.dmaAddress, d.dmaLength, 0, DMA_ATTR_SKIP_CPU_SYNC);
          }
          sgFreeTable(sgt);
          return fail(-errno.ENOMEM);
        }
        const sg = sgt.sgl[i];
        sg.pageLink = null;
        sg.length = len;
        sg.dmaAddress = addr;
        sg.dmaLength = len;
        sgDmaMarkBusAddress(sg);
      }
      sgt.origNents = 0;
      st.windowUsed += size;
      log.push(`map ${a.dev.name}`);
      return sgt;
    },
    unmapDmaBuf(a, sgt) {
      log.push(`unmap ${a.dev.name}`);
      for (const sg of forEachSgtableDmaSg(sgt)) {
        dmaUnmapResource(a.dev, sg.dmaAddress, sg.dmaLength, 0, DMA_ATTR_SKIP_CPU_SYNC);
      }
      sgFreeTable(sgt);
      st.windowUsed -= size;
    },
    release() {
      log.push('release');
    },
  };
  const dmabuf = dmaBufExport({ expName: 'dyn_test', ops, size, flags: O_RDWR, priv: st });
  if (isErr(dmabuf)) throw new Error(`dynExport: dma_buf_export failed (${dmabuf})`);
  const fd = dmaBufFd(dmabuf, O_CLOEXEC);
  if (fd < 0) throw new Error(`dynExport: dma_buf_fd failed (${fd})`);
  return Object.assign(st, { dmabuf, fd, log });
}
