/**
 * Tracepoints: kernel events written to the run's event log under the kernel's own
 * tracepoint names (`dma_fence_init`, `dma_fence_signaled`, `dma_fence_wait_start`, ...;
 * include/trace/events/dma_fence.h), so a trace reads like `trace-cmd` output and maps
 * onto Perfetto.
 */
import type { Engine } from '../sim/engine.ts';

/** Tracepoint argument values. */
export type TraceArgs = Record<string, number | string | boolean>;

/** Emits tracepoint `name` into `engine`'s log (no-op when the log is off). */
export function tracepoint(engine: Engine, name: string, args: TraceArgs): void {
  if (!engine.log.enabled) return;
  engine.log.add({ t: engine.now, ctx: engine.current.label, name, args });
}
