/**
 * The sync debugfs directory: /sys/kernel/debug/sync/info and the registration of
 * sw_sync (drivers/dma-buf/sync_debug.c, Linux 6.12).
 *
 * `info` lists every live sw_sync timeline in creation order — `<name>: <value>` with
 * the value as a signed int, then one line per listed point:
 * `  fence <active|signaled|error>[@<sec>.<nsec>]: <seqno> / <timeline value>` — and
 * then an empty `fences:` section: 6.12 keeps a sync_file list for it but never adds to
 * it.
 */
import { currentKernel, type Kernel } from '../kernel.ts';
import { registerLeakCheck } from '../leak-check.ts';
import { SpinLock, spinLock, spinLockIrq, spinUnlock, spinUnlockIrq } from '../locking/spinlock.ts';
import { SeqFile, singleOpen } from '../seq-file.ts';
import { registerDevice } from '../vfs.ts';
import type { DmaFence } from './dma-fence.ts';
import { SW_SYNC_PATH, type SyncTimeline, swSyncFops } from './sw-sync.ts';

const LIST = Symbol('sync_timeline_list');

/** The kernel's live sw_sync timelines, oldest first (sync_timeline_list_head). */
export function syncTimelineList(k: Kernel = currentKernel()): SyncTimeline[] {
  let l = k.singletons.get(LIST) as SyncTimeline[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(LIST, l);
  }
  return l;
}

/** sync_timeline_debug_add(). */
export function syncTimelineDebugAdd(obj: SyncTimeline): void {
  syncTimelineList(obj.kernel).push(obj);
}

/** sync_timeline_debug_remove(). */
export function syncTimelineDebugRemove(obj: SyncTimeline): void {
  const l = syncTimelineList(obj.kernel);
  const i = l.indexOf(obj);
  if (i >= 0) l.splice(i, 1);
}

function statusStr(status: number): string {
  if (status < 0) return 'error';
  if (status > 0) return 'signaled';
  return 'active';
}

/** sync_print_fence(): one point line (with the timeline's name when `show`). */
export function syncPrintFence(m: SeqFile, fence: DmaFence, show: boolean, timelineName = ''): void {
  const status = fence.getStatusLocked();
  m.printf(`  ${show ? timelineName : ''}${show ? '_' : ''}fence ${statusStr(status)}`);
  if (fence.flags & 2) {
    const ns = BigInt(fence.timestamp);
    const sec = ns / 1_000_000_000n;
    const nsec = ns % 1_000_000_000n;
    m.printf(`@${sec}.${nsec.toString().padStart(9, '0')}`);
  }
  const ops = fence.ops;
  if (ops.timelineValueStr && ops.fenceValueStr) {
    const v = ops.fenceValueStr(fence);
    if (v.length) {
      m.printf(`: ${v}`);
      const t = ops.timelineValueStr(fence);
      if (t.length) m.printf(` / ${t}`);
    }
  }
  m.putc('\n');
}

const LIST_LOCK = Symbol('sync_timeline_list_lock');

function listLock(k: Kernel): SpinLock {
  let l = k.singletons.get(LIST_LOCK) as SpinLock | undefined;
  if (!l) {
    l = new SpinLock('sync_timeline_list_lock');
    k.singletons.set(LIST_LOCK, l);
  }
  return l;
}

/** sync_info_debugfs_show(). */
export function syncInfoShow(m: SeqFile, k: Kernel = currentKernel()): void {
  m.puts('objs:\n--------------\n');
  const lock = listLock(k);
  spinLockIrq(lock);
  for (const obj of syncTimelineList(k)) {
    m.printf(`${obj.name}: ${obj.value | 0}\n`);
    spinLock(obj.lock); // interrupts are already off
    for (const pt of obj.ptList) syncPrintFence(m, pt, false);
    spinUnlock(obj.lock);
    m.putc('\n');
  }
  spinUnlockIrq(lock);
  m.puts('fences:\n--------------\n');
}

/** The text of /sys/kernel/debug/sync/info now. */
export function syncInfoText(k: Kernel = currentKernel()): string {
  const m = new SeqFile();
  syncInfoShow(m, k);
  return m.text;
}

/** sync_debugfs_init(): creates sync/info (0444) and sync/sw_sync (0644); timelines left alive are leaks. */
export function syncDebugfsInit(): void {
  registerLeakCheck(currentKernel(), (k) =>
    syncTimelineList(k).map((obj) => ({
      rule: 'sw_sync.timeline_leak',
      message: `sw_sync timeline ${obj.name} (context ${obj.context}) still has ${obj.kref} reference(s) after every process exited`,
      objects: [{ kind: 'sync_timeline', name: obj.name, id: obj.context }],
      key: obj,
    })),
  );
  registerDevice('/sys/kernel/debug/sync/info', infoFops, { mode: 0o444, ino: 50 });
  registerDevice(SW_SYNC_PATH, swSyncFops, { mode: 0o644, ino: 51 });
}

const infoFops = singleOpen((m, file) => {
  syncInfoShow(m, file.kernel);
  return 0;
}, 'sync_info');
