/**
 * Accelerator DMA benchmarks.
 *
 * - `transfer.copy.host`: host bytes copied per second of wall time while the model
 *   simulates a 1 GiB host -> accelerator DMA job with real bytes (user pages pinned,
 *   copied into the sparse device DRAM when the flow lands). Measured from the ioctl to
 *   the out-fence signalling, on the `workstation` machine. Compare with
 *   performance.md §6.2 (`Uint8Array.prototype.set` of large blocks on this VM).
 */

import { Machine } from '../src/machine.ts';
import { HL_MODEL_DMA_HOST_TO_DEVICE, HlDevice } from '../src/uapi/habanalabs.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const GIB = 2 ** 30;

async function copyHost(): Promise<number> {
  const m = await Machine.create({ seed: 1, log: false });
  let rate = 0;
  const p = m.spawn('bench', async (sys) => {
    const hl = await HlDevice.open(sys, 0);
    const va = await hl.map(await hl.alloc(GIB, { contiguous: true }));
    const host = sys.alloc(GIB, 4096);
    // Touch every page so the measurement does not include page faults.
    for (let off = 0; off < GIB; off += 4096) sys.memory(host + off, 1)[0] = off >>> 12;
    const t0 = performance.now();
    const fence = await hl.dmaJob({ op: HL_MODEL_DMA_HOST_TO_DEVICE, dst: va, src: host, size: GIB });
    if ((await hl.waitFence(fence)) !== 1) throw new Error('DMA job failed');
    rate = GIB / secondsSince(t0);
    return 0;
  });
  await m.run();
  if (p.exitCode !== 0) throw new Error(`transfer.copy.host: the process failed: ${String(p.error)}`);
  return rate;
}

/** The benchmarks. */
export const benchmarks: Benchmark[] = [{ name: 'transfer.copy.host', unit: 'B/s', run: copyHost }];
