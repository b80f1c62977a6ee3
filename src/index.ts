/**
 * dmabuf-lab: an executable model of the Linux DMA-BUF stack.
 *
 * The package entry. Userspace programs start from `Machine` (DESIGN.md "The
 * userspace ABI"); driver authors use the kernel-internal API re-exported below
 * (`DmaFence`, `dmaFenceContextAlloc`, ...); the engine is under `sim`.
 */

export * from './kernel/dma-buf/dma-fence.ts';
export { type ErrnoName, errno, errnoName, MAX_ERRNO } from './kernel/errno.ts';
export { Jiffies, MAX_SCHEDULE_TIMEOUT } from './kernel/jiffies.ts';
export { currentKernel, Kernel, type KernelOptions } from './kernel/kernel.ts';
export * from './kernel/locking/spinlock.ts';
export { Machine, type MachineOptions, Process, type ProgramMain } from './machine.ts';
export * as sim from './sim/index.ts';
export type { Report, ReportContext, ReportObject, ReportType } from './sim/report.ts';
export { ProcessExit, Sys } from './uapi/sys.ts';
