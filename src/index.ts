/**
 * dmabuf-lab: an executable model of the Linux DMA-BUF stack.
 *
 * The package entry. Userspace programs start from `Machine` (DESIGN.md "The
 * userspace ABI"); driver authors use the kernel-internal API re-exported below
 * (`DmaFence`, `dmaFenceContextAlloc`, ...); the engine is under `sim`.
 */

// The habanalabs-like accelerator (kernel side; the uapi wrapper `HlDevice` is flat below),
// the amdgpu-like GPU, the scan-out engine (a static dma-buf importer that needs pages,
// /dev/scanout<N>) and the NIC-like peer-to-peer test importer.
export * as habanalabs from './drivers/accel/habanalabs/index.ts';
export * as amdgpu from './drivers/gpu/amdgpu/index.ts';
export * as scanout from './drivers/media/display-importer.ts';
export * as p2pTestNic from './drivers/net/p2p-test-nic.ts';
export * as rdma from './drivers/rdma/index.ts';
export { Cluster, type ClusterOptions } from './fabric/cluster.ts';
export { FabricPort, type LinkOptions, ROCE_LARGE_MESSAGE_EFFICIENCY } from './fabric/link.ts';
export { OobChannel } from './fabric/oob.ts';
export { FabricSwitch } from './fabric/switch.ts';
// Kernel-internal API for drivers: files, the VFS, fds, user memory, poll, sync_file.
export { anonInodeGetfile } from './kernel/anon-inodes.ts';
export { Device, type DeviceInfo, type DmaMapOps, dmaBitMask } from './kernel/device.ts';
// dma-buf, DMA-BUF heaps and udmabuf, kernel side, are namespaces (`dmaBuf.dmaBufExport`,
// `dmaHeap.dmaHeapAdd`, `udmabuf.udmabufDevice`): their struct classes share names with
// the userspace wrappers (`DmaBuf`, `DmaHeap`, `Udmabuf`) exported flat below.
export * as dmaBuf from './kernel/dma-buf/dma-buf.ts';
export * from './kernel/dma-buf/dma-fence.ts';
export * from './kernel/dma-buf/dma-fence-array.ts';
export * from './kernel/dma-buf/dma-fence-chain.ts';
export * from './kernel/dma-buf/dma-fence-unwrap.ts';
export * as dmaHeap from './kernel/dma-buf/dma-heap.ts';
export * from './kernel/dma-buf/dma-resv.ts';
export { SW_SYNC_PATH, SyncPt, SyncTimeline } from './kernel/dma-buf/sw-sync.ts';
export { syncInfoText } from './kernel/dma-buf/sync-debug.ts';
export { isSyncFile, SyncFile, syncFileCreate, syncFileGetFence } from './kernel/dma-buf/sync-file.ts';
export * as udmabuf from './kernel/dma-buf/udmabuf.ts';
export { ErrPtr, errPtr, isErr, isErrOrNull, ptrErr } from './kernel/err.ts';
export { type ErrnoName, errno, errnoName, MAX_ERRNO } from './kernel/errno.ts';
export { FilesStruct, fdInstall, fget, getUnusedFdFlags, putUnusedFd } from './kernel/fdtable.ts';
export {
  File,
  type FileOperations,
  type FilePos,
  fput,
  Inode,
  liveFiles,
  SuperBlock,
} from './kernel/file.ts';
export * from './kernel/iosys-map.ts';
export { Jiffies, MAX_SCHEDULE_TIMEOUT } from './kernel/jiffies.ts';
export { currentKernel, Kernel, type KernelOptions } from './kernel/kernel.ts';
export { type LeakCheck, type LeakFinding, registerLeakCheck } from './kernel/leak-check.ts';
export {
  dmaFenceLockdepMap,
  Lockdep,
  LockdepMap,
  lockdepAssertHeld,
  lockdepAssertNotHeld,
} from './kernel/locking/lockdep.ts';
export * from './kernel/locking/mutex.ts';
export * from './kernel/locking/spinlock.ts';
export * from './kernel/locking/ww-mutex.ts';
export * from './kernel/mm/dma-mapping.ts';
export * from './kernel/mm/gfp.ts';
export * from './kernel/mm/iomem.ts';
export * from './kernel/mm/iommu.ts';
export { MmStruct, VmAreaStruct, type VmFault, type VmOperations } from './kernel/mm/mmap.ts';
export { allocPages, Page } from './kernel/mm/page.ts';
export * from './kernel/mm/scatterlist.ts';
export { kfree, kmalloc } from './kernel/mm/slab.ts';
export * as pci from './kernel/pci/index.ts';
export { PollTable, pollWait } from './kernel/poll.ts';
export { fdinfoText } from './kernel/proc-fd.ts';
export { current, TaskStruct } from './kernel/sched.ts';
export { SeqFile } from './kernel/seq-file.ts';
export { copyFromUser, copyStructFromUser, copyStructToUser, copyToUser } from './kernel/uaccess.ts';
export { type DeviceOptions, registerDevice, unregisterDevice } from './kernel/vfs.ts';
export { WaitQueueHead } from './kernel/wait.ts';
export * from './kernel/workqueue.ts';
export {
  EXIT_SEGV,
  type Initcall,
  Machine,
  type MachineOptions,
  Process,
  type ProgramMain,
  registerInitcall,
} from './machine.ts';
export * as scenario from './scenario/index.ts';
export * as sim from './sim/index.ts';
export type { Report, ReportContext, ReportObject, ReportType } from './sim/report.ts';
export * from './uapi/amdgpu.ts';
export * from './uapi/constants.ts';
export * from './uapi/dma-buf.ts';
export * from './uapi/dma-heap.ts';
export * from './uapi/drm.ts';
export * from './uapi/errno-error.ts';
export * from './uapi/habanalabs.ts';
export * from './uapi/ioctl.ts';
export * from './uapi/scanout.ts';
export * from './uapi/structs.ts';
export { type Arg, ProcessExit, REALTIME_EPOCH_NS, SegmentationFault, Sys } from './uapi/sys.ts';
export * from './uapi/udmabuf.ts';
export * as verbs from './uapi/verbs.ts';
