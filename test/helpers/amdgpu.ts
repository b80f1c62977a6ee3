/** Helpers for tests of the amdgpu-like GPU model. */
import type { AmdgpuBo } from '../../src/drivers/gpu/amdgpu/index.ts';
import { dmaBufGet, dmaBufPut } from '../../src/kernel/dma-buf/dma-buf.ts';
import { isErr } from '../../src/kernel/err.ts';

/** The amdgpu BO behind dma-buf fd `fd` of the current process (throws if `fd` is not a dma-buf). */
export function boOf(fd: number): AmdgpuBo {
  const k = dmaBufGet(fd);
  if (isErr(k)) throw new Error('not a dma-buf');
  dmaBufPut(k);
  return k.priv as AmdgpuBo;
}
