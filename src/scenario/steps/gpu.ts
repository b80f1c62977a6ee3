/**
 * GPU steps: the amdgpu-like GPU's buffer objects, their export as dma-bufs, and VRAM
 * pressure that evicts them (src/drivers/gpu/amdgpu/, ABI in src/uapi/amdgpu.ts).
 *
 * - `gpu_alloc`: opens the GPU's render node and creates a BO (DRM_IOCTL_AMDGPU_GEM_CREATE)
 *   in VRAM (with CPU_ACCESS_REQUIRED unless `cpu_access: false`) or GTT; binds the render
 *   fd, which owns the BO's handle (closing the name closes the fd and frees the BO once
 *   nothing else holds it);
 * - `gpu_export`: DRM_IOCTL_PRIME_HANDLE_TO_FD of a BO bound by `gpu_alloc` (O_RDWR |
 *   O_CLOEXEC); binds the dma-buf fd;
 * - `gpu_evict`: allocates `size` bytes of VRAM that only fit once least recently used
 *   BOs are evicted to GTT — each eviction calls dma_buf_move_notify on the exported
 *   buffer's importers and waits for their fences before the memory is reused; binds the
 *   pressure BO's render fd. Its summary gives the VRAM and GTT in use afterwards.
 *
 * Not a kernel concept: this is the scenario language over the GPU's ABI.
 */
import { z } from 'zod';
import { amdgpuDevices } from '../../drivers/gpu/amdgpu/amdgpu-drv.ts';
import { errno } from '../../kernel/errno.ts';
import { currentKernel } from '../../kernel/kernel.ts';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  AmdgpuDevice,
} from '../../uapi/amdgpu.ts';
import { ErrnoError } from '../../uapi/errno-error.ts';
import { type BoundValue, registerStepKind, type StepContext, StepError } from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { fdName } from './util.ts';

/** A BO bound by `gpu_alloc` or `gpu_evict`. */
interface GpuBo {
  /** The GEM handle in the bound render fd. */
  handle: number;
  /** Bytes. */
  size: number;
}

const gpuBos = new WeakMap<BoundValue, GpuBo>();

/** The render fd and BO bound to `name` (a step error otherwise). */
function gpuBo(ctx: StepContext, name: string): { fd: number; bo: GpuBo } {
  const fd = ctx.fd(name);
  const v = ctx.lookup(name);
  const bo = v === undefined ? undefined : gpuBos.get(v);
  if (bo === undefined) throw new StepError(`"${name}" is not a GPU buffer bound by gpu_alloc`);
  return { fd, bo };
}

const device = z
  .number()
  .int()
  .min(0)
  .default(0)
  .meta({ description: 'Which amdgpu GPU of the host (default 0).' });

/** Opens GPU `n` and creates a BO; the step outcome. */
async function allocate(ctx: StepContext, n: number, bytes: number, domains: number, flags: number) {
  let gpu: AmdgpuDevice;
  try {
    gpu = await AmdgpuDevice.open(ctx.sys, n);
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e;
    return {
      ret: -e.errno,
      problem: `${ctx.host} has no amdgpu GPU ${n}: use the topology preset "gpu-workstation" (or a gpu endpoint with vendor 0x1002)`,
    };
  }
  const r = await gpu.gemCreateRaw(bytes, domains, flags);
  if (r.rc < 0) {
    await ctx.sys.close(gpu.fd);
    return { ret: r.rc };
  }
  const value: BoundValue = { type: 'fd', fd: gpu.fd, what: `amdgpu BO ${r.handle}` };
  gpuBos.set(value, { handle: r.handle, size: bytes });
  const adev = amdgpuDevices(currentKernel())[n];
  const usage = adev ? `; VRAM ${sizeText(adev.vramMgr.used)}, GTT ${sizeText(adev.gttUsed)} in use` : '';
  return {
    ret: gpu.fd,
    value,
    summary: `handle ${r.handle} on ${gpu.path}${usage}`,
    detail: { handle: r.handle, vram: adev?.vramMgr.used ?? 0, gtt: adev?.gttUsed ?? 0 },
  };
}

registerStepKind({
  kind: 'gpu_alloc',
  summary:
    "Creates a GPU buffer object (DRM_IOCTL_AMDGPU_GEM_CREATE) in VRAM (CPU-visible unless cpu_access is false) or GTT on a new open of the GPU's render node. Binds the render fd holding the BO.",
  args: z.strictObject({
    size: size.meta({ description: 'Bytes (rounded up to pages).' }),
    domain: z.enum(['vram', 'gtt']).default('vram').meta({ description: 'vram (default) or gtt.' }),
    cpu_access: z
      .boolean()
      .default(true)
      .meta({ description: 'VRAM only: AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED (default true).' }),
    device,
  }),
  produces: 'fd',
  label: (a) => `gpu_alloc ${sizeText(a.size)} ${a.domain}`,
  async run(ctx, a) {
    const vram = a.domain === 'vram';
    return allocate(
      ctx,
      a.device,
      a.size,
      vram ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT,
      vram && a.cpu_access ? AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED : 0,
    );
  },
});

registerStepKind({
  kind: 'gpu_export',
  summary:
    'Exports a GPU buffer bound by gpu_alloc as a dma-buf (DRM_IOCTL_PRIME_HANDLE_TO_FD, O_RDWR | O_CLOEXEC): a dynamic exporter that may move the buffer. Binds the dma-buf fd.',
  args: z.strictObject({ bo: fdName.meta({ description: 'The buffer (bound by gpu_alloc).' }) }),
  produces: 'fd',
  refs: (a) => [{ name: a.bo, type: 'fd', path: ['bo'] }],
  label: (a) => `gpu_export ${a.bo}`,
  async run(ctx, a) {
    const { fd, bo } = gpuBo(ctx, a.bo);
    const gpu = new AmdgpuDevice(ctx.sys, fd, '');
    try {
      const dfd = await gpu.primeHandleToFd(bo.handle);
      return { ret: dfd, value: { type: 'fd', fd: dfd, what: 'dma-buf' }, summary: `fd ${dfd}` };
    } catch (e) {
      if (e instanceof ErrnoError) return { ret: -e.errno };
      throw e;
    }
  },
});

registerStepKind({
  kind: 'gpu_evict',
  summary:
    'Puts VRAM under pressure: allocates `size` bytes of VRAM that only fit once least recently used buffers are evicted to GTT (dma_buf_move_notify to their importers, a wait for their fences, a copy). Binds the render fd holding the new buffer.',
  args: z.strictObject({ size: size.meta({ description: 'Bytes of VRAM to allocate.' }), device }),
  produces: 'fd',
  label: (a) => `gpu_evict ${sizeText(a.size)}`,
  async run(ctx, a) {
    const r = await allocate(ctx, a.device, a.size, AMDGPU_GEM_DOMAIN_VRAM, 0);
    if (r.ret === -errno.ENOMEM) {
      return {
        ...r,
        problem: 'VRAM could not be freed: every buffer in it is pinned, or the request exceeds VRAM',
      };
    }
    return r;
  },
});
