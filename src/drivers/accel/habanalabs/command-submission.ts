/**
 * The accelerator's DMA engine: DMA jobs in virtual time with fences, and device reset
 * (drivers/accel/habanalabs/common/command_submission.c for the job/fence life cycle,
 * device.c hl_device_reset for the reset; the ioctl itself is a model extension, see
 * src/uapi/habanalabs.ts).
 *
 * A job fills a device VA range with an 8-byte pattern, or copies between pinned host
 * pages and device memory. It waits for its in-fence (a sync_file's fence; if that fence
 * failed, the job is not run and its out-fence carries the same error), then runs as a
 * flow on the machine's PCIe transfer model: host <-> device over the device's path to
 * its socket's memory, fills inside the device at the engine's rate. The bytes move when
 * the flow lands (in hard-IRQ context), then the out-fence signals. A device reset
 * cancels every pending job: its out-fence signals with -EIO and nothing lands.
 *
 * Model parameters: the engine's internal fill rate, HL_DMA_FILL_GBPS = 100 GB/s, is
 * uncalibrated (Gaudi2 HBM is ~2.4 TB/s; a single EDMA channel is much slower).
 */
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFencePut,
} from '../../../kernel/dma-buf/dma-fence.ts';
import { syncFileCreate, syncFileGetFence } from '../../../kernel/dma-buf/sync-file.ts';
import { errno } from '../../../kernel/errno.ts';
import { O_CLOEXEC } from '../../../kernel/fcntl.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from '../../../kernel/fdtable.ts';
import { SpinLock } from '../../../kernel/locking/spinlock.ts';
import { DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../kernel/mm/dma-mapping.ts';
import { pinUserPages } from '../../../kernel/mm/gup.ts';
import { dmaChargeMappingCost, dmaDeviceAccess } from '../../../kernel/mm/iommu.ts';
import { PAGE_SIZE, type Page, pagesContiguous } from '../../../kernel/mm/page.ts';
import type { Flow } from '../../../kernel/pci/flow.ts';
import {
  HL_MODEL_DMA_DEVICE_TO_HOST,
  HL_MODEL_DMA_FILL,
  HL_MODEL_DMA_HOST_TO_DEVICE,
} from '../../../uapi/habanalabs.ts';
import type { HlCtx, HlDevice } from './habanalabs.ts';
import { hlVaToDevice } from './memory.ts';

/** The DMA engine's rate for fills inside device memory, GB/s (uncalibrated). */
export const HL_DMA_FILL_GBPS = 100;

/** A job's out-fence. */
export class HlFence extends DmaFence {}

/** One submitted DMA job. */
interface HlDmaJob {
  fence: HlFence;
  inFence: DmaFence | null;
  inCb: DmaFenceCb | null;
  flow: Flow | null;
  done: boolean;
  resetting: boolean;
  pinned: Page[];
  onDone: (() => void) | null;
}

/** What a job does when it runs: starts its flow and returns it. */
export type HlDmaStart = (onComplete: (f: Flow) => void) => Flow;

/** The DMA engine of one device (its queue of jobs and fence timeline). */
export class HlDmaEngine {
  /** The fence context of the engine's timeline (allocated at the first job, so probing takes none). */
  private ctxId = -1;
  /** Last seqno handed out. */
  seqno = 0;
  /** The fence lock. */
  readonly lock = new SpinLock('hl_dma_fence_lock');
  /** Jobs not finished yet. */
  private readonly pending = new Set<HlDmaJob>();
  /**
   * The engine's fence ops: the timeline is named `<device>-dma`. The name comes from the
   * ops rather than a field of the fence, because dma_fence_init already asks for it.
   */
  private readonly fenceOps: DmaFenceOps;

  /** Created at probe. */
  constructor(
    /** The device. */
    readonly hdev: HlDevice,
  ) {
    const timeline = `${hdev.name}-dma`;
    this.fenceOps = { getDriverName: () => 'habanalabs', getTimelineName: () => timeline };
  }

  /** The fence context of the engine's timeline. */
  get context(): number {
    if (this.ctxId < 0) this.ctxId = dmaFenceContextAlloc(1);
    return this.ctxId;
  }

  /** Jobs not finished yet. */
  get pendingJobs(): number {
    return this.pending.size;
  }

  /**
   * Queues a job that runs `start` once `inFence` (if any; its reference moves to the
   * job) has signalled. Returns the out-fence with a reference for the caller.
   */
  submit(
    start: HlDmaStart,
    inFence: DmaFence | null,
    pinned: Page[] = [],
    onDone: (() => void) | null = null,
  ): HlFence {
    const fence = new HlFence(this.fenceOps, this.lock, this.context, ++this.seqno);
    const job: HlDmaJob = {
      fence,
      inFence,
      inCb: null,
      flow: null,
      done: false,
      resetting: false,
      pinned,
      onDone,
    };
    this.pending.add(job);
    const go = () => {
      if (job.done) return;
      if (inFence?.error) {
        this.finish(job, inFence.error);
        return;
      }
      job.flow = start((f) => this.finish(job, job.resetting || f.state !== 'done' ? -errno.EIO : 0));
    };
    if (inFence) {
      job.inCb = new DmaFenceCb();
      if (inFence.addCallback(job.inCb, () => go()) !== 0) go();
    } else {
      go();
    }
    return fence.get();
  }

  private finish(job: HlDmaJob, err: number): void {
    if (job.done) return;
    job.done = true;
    this.pending.delete(job);
    if (err) job.fence.setError(err);
    job.fence.signal();
    job.onDone?.();
    for (const p of job.pinned) p.put();
    job.pinned = [];
    dmaFencePut(job.inFence);
    dmaFencePut(job.fence);
  }

  /** hl_device_reset(): every pending job is cancelled and its out-fence signals -EIO. Returns how many. */
  reset(): number {
    const jobs = [...this.pending];
    for (const job of jobs) {
      job.resetting = true;
      if (job.flow && !job.flow.finished) job.flow.cancel();
      if (job.inFence && job.inCb) job.inFence.removeCallback(job.inCb);
      this.finish(job, -errno.EIO);
    }
    return jobs.length;
  }
}

/** hl_device_reset(): resets the device; pending DMA jobs fail with -EIO. Returns the number cancelled. */
export function hlDeviceReset(hdev: HlDevice): number {
  hdev.operational = false;
  const n = hdev.dma.reset();
  hdev.operational = true;
  return n;
}

/** Arguments of a model DMA job. */
export interface HlDmaJobArgs {
  /** HL_MODEL_DMA_*. */
  op: number;
  /** Destination (device VA, or host user address for DEVICE_TO_HOST). */
  dst: number;
  /** Source (host user address, or device VA for DEVICE_TO_HOST). */
  src: number;
  /** Bytes. */
  size: number;
  /** Fill pattern (8 bytes, little-endian). */
  pattern: bigint;
  /** In-fence sync_file fd, or -1. */
  inFence: number;
}

/** Calls `fn(jobOffset, view)` for each piece of the pinned host range, in order (contiguous pages merged). */
function forEachHostPiece(
  host: { pages: Page[]; first: number },
  size: number,
  fn: (off: number, view: Uint8Array) => void,
): void {
  const pages = host.pages;
  let off = 0;
  let i = 0;
  let inPage = host.first;
  while (off < size) {
    // Runs of pages that are one buffer are copied as one piece.
    let n = Math.min(PAGE_SIZE - inPage, size - off);
    let j = i + 1;
    while (off + n < size && j < pages.length && pagesContiguous(pages[j - 1], pages[j])) {
      n += Math.min(PAGE_SIZE, size - off - n);
      j++;
    }
    const first = pages[i].data;
    fn(off, new Uint8Array(first.buffer, first.byteOffset + inPage, n));
    off += n;
    i = j;
    inPage = 0;
  }
}

/** The device address of job offset `off` within device segments. */
function segAddr(segs: { addr: number; len: number }[], off: number): { addr: number; room: number } {
  let o = off;
  for (const s of segs) {
    if (o < s.len) return { addr: s.addr + o, room: s.len - o };
    o -= s.len;
  }
  throw new RangeError('offset beyond the job');
}

/**
 * The model DMA ioctl: validates, pins, reserves the out-fence fd, submits. Returns
 * `{ rc, outFence }` (outFence the installed sync_file fd).
 */
export async function hlModelDmaIoctl(
  ctx: HlCtx,
  args: HlDmaJobArgs,
): Promise<{ rc: number; outFence: number }> {
  const hdev = ctx.hdev;
  const fail = (rc: number) => ({ rc, outFence: -1 });
  if (!hdev.operational) return fail(-errno.EBUSY);
  if (!(args.size > 0) || !Number.isSafeInteger(args.size)) return fail(-errno.EINVAL);
  const devVa = args.op === HL_MODEL_DMA_DEVICE_TO_HOST ? args.src : args.dst;
  if (![HL_MODEL_DMA_FILL, HL_MODEL_DMA_HOST_TO_DEVICE, HL_MODEL_DMA_DEVICE_TO_HOST].includes(args.op)) {
    return fail(-errno.EINVAL);
  }
  const segs = hlVaToDevice(ctx, devVa, args.size);
  if (!segs) return fail(-errno.EINVAL);
  let host: { pages: Page[]; first: number } | null = null;
  if (args.op !== HL_MODEL_DMA_FILL) {
    host = pinUserPages(args.op === HL_MODEL_DMA_HOST_TO_DEVICE ? args.src : args.dst, args.size);
    if (!host) return fail(-errno.EFAULT);
  }
  let inFence: DmaFence | null = null;
  if (args.inFence >= 0) {
    inFence = syncFileGetFence(args.inFence);
    if (!inFence) {
      for (const p of host?.pages ?? []) p.put();
      return fail(-errno.EINVAL);
    }
  }
  const fd = getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) {
    for (const p of host?.pages ?? []) p.put();
    dmaFencePut(inFence);
    return fail(fd);
  }
  const model = hdev.transfers;
  const hostMaps: { addr: number; len: number; off: number; dir: number }[] = [];
  const dram = hdev.dram;
  const size = args.size;
  let start: HlDmaStart;
  if (args.op === HL_MODEL_DMA_FILL) {
    const pattern = new Uint8Array(8);
    new DataView(pattern.buffer).setBigUint64(0, BigInt.asUintN(64, args.pattern), true);
    start = (onComplete) =>
      model.start({
        src: hdev.pdev,
        dst: hdev.pdev,
        bytes: size,
        maxRateGBps: HL_DMA_FILL_GBPS,
        label: `${hdev.name} DMA fill ${size} B`,
        copy: () => {
          for (const s of segs) dram.fill(s.addr, s.len, pattern);
        },
        onComplete,
      });
  } else {
    const h = host!;
    const toDevice = args.op === HL_MODEL_DMA_HOST_TO_DEVICE;
    // dma_map_sgtable of the pinned pages for the accelerator: one mapping per physically
    // contiguous run, in the device's own DMA context (IOVAs and costs with an IOMMU).
    const dev = hdev.dev;
    const dir = toDevice ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
    forEachHostPiece(h, size, (off, view) => {
      const at = h.first + off;
      const phys = h.pages[Math.floor(at / PAGE_SIZE)].physAddr + (at % PAGE_SIZE);
      const addr = dev.dmaOps ? dev.dmaOps.mapPhys(dev, phys, view.length, dir) : phys;
      hostMaps.push({ addr: addr ?? phys, len: view.length, off, dir });
    });
    await dmaChargeMappingCost(dev);
    const socket = hdev.pdev.socket;
    start = (onComplete) =>
      model.start({
        src: toDevice ? socket : hdev.pdev,
        dst: toDevice ? hdev.pdev : socket,
        bytes: size,
        label: `${hdev.name} DMA ${toDevice ? 'host -> device' : 'device -> host'} ${size} B`,
        copy: () =>
          forEachHostPiece(h, size, (off, view) => {
            // The engine reaches host memory only through what was mapped for it.
            const m = hostMaps.find((x) => x.off === off);
            if (m && dmaDeviceAccess(dev, m.addr, m.len, 'DMA to host memory') === null) return;
            let done = 0;
            while (done < view.length) {
              const { addr, room } = segAddr(segs, off + done);
              const n = Math.min(room, view.length - done);
              if (toDevice) dram.write(addr, view.subarray(done, done + n));
              else dram.read(addr, view, done, n);
              done += n;
            }
          }),
        onComplete,
      });
  }
  const unmapHost = () => {
    for (const m of hostMaps) hdev.dev.dmaOps?.unmapPhys(hdev.dev, m.addr, m.len, m.dir);
    hostMaps.length = 0;
  };
  const fence = hdev.dma.submit(start, inFence, host?.pages ?? [], unmapHost);
  const sf = syncFileCreate(fence);
  dmaFencePut(fence);
  if (!sf) {
    putUnusedFd(fd);
    return fail(-errno.ENOMEM);
  }
  fdInstall(fd, sf.file);
  return { rc: 0, outFence: fd };
}
