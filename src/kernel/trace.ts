/**
 * Tracepoints: kernel events written to the run's event log under the kernel's own
 * tracepoint names (`dma_fence_init`, `dma_fence_signaled`, `dma_fence_wait_start`, ...;
 * include/trace/events/dma_fence.h), so a trace reads like `trace-cmd` output and maps
 * onto Perfetto.
 *
 * The event contract the reports, the trace export and the visualiser read:
 * - `dma_buf_export` {ino, exp_name, size}, `dma_buf_fd` / `dma_buf_fd_close` {ino, fd,
 *   pid} (any install or close of a dma-buf fd: export, SCM_RIGHTS, dup, exit; the close
 *   is a model addition),
 *   `dma_buf_attach` {ino, attach, dev, endpoint?, dynamic, peer2peer},
 *   `dma_buf_detach` / `dma_buf_pin` / `dma_buf_unpin` / `dma_buf_unmap_attachment`
 *   {ino, attach}, `dma_buf_map_attachment` {ino, attach, nents, pages},
 *   `dma_buf_move_notify` / `dma_buf_mmap` / `dma_buf_release` {ino}; each also carries
 *   `host` (the kernel's name: inode numbers restart on every machine). Upstream's
 *   include/trace/events/dma_buf.h (after 6.12) has export, fd, mmap and the attach
 *   class; the attachment and mapping events are model extensions with the same fields.
 * - `mem_in_use` {pool, bytes, device?, host} whenever a memory pool's total in use
 *   changes (a model extension; pool names below).
 * - `sys_enter` {nr, name, fd?, cmd?} / `sys_exit` {nr, name, ret} around every
 *   syscall, like include/trace/events/syscalls.h (raw_syscalls) with the call's name
 *   and, for ioctl, the request's name added.
 *
 * Every entry written here also carries `host` (LogEntry.host, not in the text form or
 * the hash): the machine the event belongs to, so traces of several machines can tell
 * them apart. Emitters that know their machine pass it (a fence its kernel, a PCIe
 * transfer model its machine); otherwise it is the kernel executing when the event was
 * emitted (`currentKernel()`), which for a hard-IRQ event of a shared flow network or
 * for a kernel thread acting on its peer's hardware is not the machine it is about.
 */
import type { Engine } from '../sim/engine.ts';
import type { LogEntry } from '../sim/event-log.ts';
import { currentKernel } from './kernel.ts';

/** The executing kernel's name (the emitter of a tracepoint), or undefined with no kernel. */
function hostName(): string | undefined {
  try {
    return currentKernel().name;
  } catch {
    return undefined;
  }
}

/** Tracepoint argument values. */
export type TraceArgs = Record<string, number | string | boolean>;

/**
 * Emits tracepoint `name` into `engine`'s log (no-op when the log is off); `host` is the
 * machine it belongs to (default: the executing kernel's name).
 */
export function tracepoint(engine: Engine, name: string, args: TraceArgs, host?: string): void {
  if (!engine.log.enabled) return;
  add(engine, name, args, host ?? hostName());
}

function add(engine: Engine, name: string, args: TraceArgs, host: string | undefined): void {
  const e: LogEntry = { t: engine.now, ctx: engine.current.label, name, args };
  if (host !== undefined) e.host = host;
  engine.log.add(e);
}

/** Memory pool names of `mem_in_use`: system-heap and CMA dma-heaps, device HBM, GPU VRAM/GTT, BAR windows. */
export type MemPool = 'system-heap' | 'cma' | 'udmabuf' | 'hbm' | 'vram' | 'gtt' | 'bar' | (string & {});

/**
 * Emits `mem_in_use` {pool, bytes, device?, host}: pool `pool` of machine `host` (the
 * kernel's name) now has `bytes` in use; `device` is the topology endpoint id for
 * device memory.
 */
export function traceMemInUse(
  engine: Engine,
  host: string,
  pool: MemPool,
  bytes: number,
  device?: string,
): void {
  if (!engine.log.enabled) return;
  const args: TraceArgs = { pool, bytes };
  if (device !== undefined) args.device = device;
  args.host = host;
  add(engine, 'mem_in_use', args, host);
}

/** Emits `sys_enter` {nr, name, fd?, cmd?}. `cmd` is the ioctl request's name (or hex). */
export function traceSysEnter(engine: Engine, nr: number, name: string, fd?: number, cmd?: string): void {
  const args: TraceArgs = { nr, name };
  if (fd !== undefined) args.fd = fd;
  if (cmd !== undefined) args.cmd = cmd;
  add(engine, 'sys_enter', args, hostName());
}

/** Emits `sys_exit` {nr, name, ret}. */
export function traceSysExit(engine: Engine, nr: number, name: string, ret: number): void {
  add(engine, 'sys_exit', { nr, name, ret }, hostName());
}
