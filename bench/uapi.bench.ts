/**
 * Userspace ABI benchmarks: whole syscall paths through the model, measured in host
 * wall time.
 *
 * - `uapi.sw_sync.cycle`: one cycle creates a sw_sync fence (SW_SYNC_IOC_CREATE_FENCE),
 *   a second thread polls the fence's sync_file until it is signalled, the main thread
 *   increments the timeline (SW_SYNC_IOC_INC) and joins the poller, then closes the
 *   fence. Reported as cycles per second of wall time.
 */
import {
  Machine,
  O_RDWR,
  POLLIN,
  pollfd,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  swSyncCreateFenceData,
} from '../src/index.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const CYCLES = 2000;

async function swSyncCycle(): Promise<number> {
  const m = await Machine.create({ seed: 1, log: false });
  let failures = 0;
  m.spawn('bench', async (sys) => {
    const tl = await sys.open('/sys/kernel/debug/sync/sw_sync', O_RDWR);
    const data = sys.allocStruct(swSyncCreateFenceData);
    const inc = sys.alloc(4);
    sys.writeU32(inc, 1);
    for (let i = 1; i <= CYCLES; i++) {
      sys.writeStruct(swSyncCreateFenceData, data, { value: i, name: 'bench', fence: -1 });
      if ((await sys.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, data)) < 0) failures++;
      const fd = sys.readStruct(swSyncCreateFenceData, data).fence;
      const tid = sys.spawnThread(async (ts) => {
        const p = ts.allocStruct(pollfd, { fd, events: POLLIN });
        return (await ts.poll(p, 1, -1)) === 1 ? 0 : 1;
      });
      await sys.sched_yield(); // let the poller block on the fence first
      if ((await sys.ioctl(tl, SW_SYNC_IOC_INC, inc)) < 0) failures++;
      if ((await sys.joinThread(tid)) !== 0) failures++;
      await sys.close(fd);
    }
    await sys.close(tl);
    return 0;
  });
  const start = performance.now();
  await m.run();
  const s = secondsSince(start);
  if (failures > 0) throw new Error(`uapi.sw_sync.cycle: ${failures} calls failed`);
  return CYCLES / s;
}

/** The userspace ABI benchmarks. */
export const benchmarks: Benchmark[] = [{ name: 'uapi.sw_sync.cycle', unit: 'cycles/s', run: swSyncCycle }];
