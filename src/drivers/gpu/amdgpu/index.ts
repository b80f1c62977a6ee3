/**
 * The amdgpu-like movable GPU: VRAM/GTT placements with eviction, PRIME export as a
 * dynamic dma-buf exporter, import of other devices' dma-bufs, and the model's copy
 * job (see each module's header for the kernel files it follows).
 */
export * from './amdgpu.ts';
export * from './amdgpu-cs.ts';
export * from './amdgpu-dma-buf.ts';
export * from './amdgpu-drv.ts';
export * from './amdgpu-gem.ts';
export * from './amdgpu-object.ts';
export * from './amdgpu-ring.ts';
export * from './amdgpu-ttm.ts';
export * from './amdgpu-vram-mgr.ts';
