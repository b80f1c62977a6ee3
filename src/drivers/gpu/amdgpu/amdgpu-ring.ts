/**
 * The GPU's copy ring (SDMA) and its fences (drivers/gpu/drm/amd/amdgpu/amdgpu_ring.c,
 * amdgpu_fence.c and amdgpu_ttm.c amdgpu_copy_buffer, Linux 6.12): jobs that move bytes
 * in virtual time on the machine's PCIe transfer model and signal a fence when done.
 *
 * A job waits for its in-fences (their errors propagate), then starts its flow; its
 * bytes move when the flow lands and the fence signals right after. Both the model's
 * copy-job ioctl and TTM's buffer moves (eviction) run here, as both run on SDMA in the
 * kernel. Fences are named `amdgpu` / `<gpu>.sdma0`.
 *
 * Model parameter: AMDGPU_SDMA_GBPS = 200 GB/s for copies inside VRAM (uncalibrated;
 * MI-class HBM is several TB/s, one SDMA engine far less).
 */
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFencePut,
} from '../../../kernel/dma-buf/dma-fence.ts';
import { errno } from '../../../kernel/errno.ts';
import { SpinLock } from '../../../kernel/locking/spinlock.ts';
import type { Flow } from '../../../kernel/pci/flow.ts';

/** SDMA rate for copies and fills inside VRAM, GB/s (uncalibrated). */
export const AMDGPU_SDMA_GBPS = 200;

/** A fence of the copy ring (struct amdgpu_fence). */
export class AmdgpuFence extends DmaFence {}

/** What a job does when it runs: starts its flow, whose completion (with an optional -errno) ends the job. */
export type AmdgpuJobStart = (onComplete: (f: Flow, err?: number) => void) => Flow;

interface Job {
  fence: AmdgpuFence;
  waits: DmaFence[];
  done: boolean;
  onDone: (() => void) | null;
}

/** One copy ring (sdma0) of a GPU. */
export class AmdgpuRing {
  private ctxId = -1;
  private seqno = 0;
  private readonly lock = new SpinLock('amdgpu_ring.fence_lock');
  private readonly pending = new Set<Job>();
  private readonly ops: DmaFenceOps;

  /** The ring of GPU `gpuName`. */
  constructor(gpuName: string) {
    const timeline = `${gpuName}.sdma0`;
    this.ops = { getDriverName: () => 'amdgpu', getTimelineName: () => timeline };
  }

  /** Jobs not finished yet. */
  get pendingJobs(): number {
    return this.pending.size;
  }

  /**
   * Queues a job that runs `start` once every fence of `waits` signalled (references
   * move to the job); `onDone` runs when it ends. Returns the job's fence with a
   * reference for the caller.
   */
  submit(start: AmdgpuJobStart, waits: DmaFence[], onDone: (() => void) | null = null): AmdgpuFence {
    if (this.ctxId < 0) this.ctxId = dmaFenceContextAlloc(1);
    const fence = new AmdgpuFence(this.ops, this.lock, this.ctxId, ++this.seqno);
    const job: Job = { fence, waits, done: false, onDone };
    this.pending.add(job);
    const next = (i: number): void => {
      if (job.done) return;
      if (i === waits.length) {
        start((f, err = 0) => this.finish(job, err || (f.state !== 'done' ? -errno.EIO : 0)));
        return;
      }
      const w = waits[i];
      const go = () => (w.error ? this.finish(job, w.error) : next(i + 1));
      if (w.addCallback(new DmaFenceCb(), () => go()) !== 0) go();
    };
    next(0);
    return fence.get();
  }

  private finish(job: Job, err: number): void {
    if (job.done) return;
    job.done = true;
    this.pending.delete(job);
    if (err) job.fence.setError(err);
    job.fence.signal();
    job.onDone?.();
    for (const w of job.waits) dmaFencePut(w);
    dmaFencePut(job.fence);
  }
}
