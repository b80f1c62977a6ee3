/**
 * The model's copy-job ioctl: SDMA work on the GPU's own BOs, imported BOs and host
 * memory, ordered by the BOs' reservation objects and a sync_file out-fence (a model
 * extension standing in for DRM_IOCTL_AMDGPU_CS with an SDMA IB; the implicit-sync
 * rules follow drivers/gpu/drm/amd/amdgpu/amdgpu_cs.c / amdgpu_sync.c of Linux 6.12).
 *
 * Checks: an unknown op, size 0 or a range outside a BO -> -EINVAL; an unknown handle
 * -> -ENOENT; a BO without a placement -> -EINVAL; a bad host range -> -EFAULT; an
 * in-fence fd that is not a sync_file -> -EINVAL. Then, with the BOs' reservation locks
 * held (one ww acquire context): an imported BO is mapped (bound) if move_notify dropped
 * its mapping, the job's addresses are taken (as page tables would be), the job waits
 * for the in-fence and for the fences implicit sync asks for (a source waits for
 * KERNEL/WRITE fences, a destination for KERNEL/WRITE/READ ones), and its fence is added
 * to the destination's reservation object as WRITE and to the source's as READ, so an
 * exporter that moves the memory waits for it. Bytes move when the job's flow lands on
 * the PCIe model; an imported BO is reached through the DMA addresses mapped for the
 * GPU (an address no longer mapped is a `dma.unmapped_address` violation).
 */

import type { DmaFence } from '../../../kernel/dma-buf/dma-fence.ts';
import {
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvGetFences,
  dmaResvLock,
  dmaResvLockSlow,
  dmaResvReserveFences,
  dmaResvUnlock,
  reservationWwClass,
} from '../../../kernel/dma-buf/dma-resv.ts';
import { syncFileCreate, syncFileGetFence } from '../../../kernel/dma-buf/sync-file.ts';
import { errno } from '../../../kernel/errno.ts';
import { O_CLOEXEC } from '../../../kernel/fcntl.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from '../../../kernel/fdtable.ts';
import { WwAcquireCtx, wwAcquireFini, wwAcquireInit } from '../../../kernel/locking/ww-mutex.ts';
import { pinUserPages } from '../../../kernel/mm/gup.ts';
import { iomemLookup } from '../../../kernel/mm/iomem.ts';
import { dmaContextOf, dmaDeviceAccess } from '../../../kernel/mm/iommu.ts';
import { PAGE_SIZE, type Page } from '../../../kernel/mm/page.ts';
import { forEachSgtableDmaSg } from '../../../kernel/mm/scatterlist.ts';
import { PciDev } from '../../../kernel/pci/pci.ts';
import type { TransferEnd } from '../../../kernel/pci/transfer-path.ts';
import {
  AMDGPU_MODEL_COPY_BO_TO_BO,
  AMDGPU_MODEL_COPY_BO_TO_HOST,
  AMDGPU_MODEL_COPY_FILL,
  AMDGPU_MODEL_COPY_HOST_TO_BO,
  drmAmdgpuModelCopy,
} from '../../../uapi/amdgpu.ts';
import type { DrmDevice } from '../drm/drm-drv.ts';
import type { DrmFile } from '../drm/drm-file.ts';
import { drmGemObjectLookup, drmGemObjectPut } from '../drm/drm-gem.ts';
import { type AmdgpuDevice, drmToAdev } from './amdgpu.ts';
import { amdgpuSgBoBind } from './amdgpu-dma-buf.ts';
import { type AmdgpuBo, type AmdgpuMem, amdgpuBoTouch, gemToAmdgpuBo } from './amdgpu-object.ts';
import { AMDGPU_SDMA_GBPS } from './amdgpu-ring.ts';

/** One side of a job: moves bytes at job offsets, and where it sits on the PCIe topology. */
interface Operand {
  end: TransferEnd;
  /** Copies `buf.length` bytes at byte `off` of the operand to (`write` false) or from `buf`. Returns false on a DMA fault. */
  access(off: number, buf: Uint8Array, write: boolean): boolean;
}

/** An own BO's placement as the job sees it (captured at submission). */
function ownOperand(adev: AmdgpuDevice, mem: AmdgpuMem, base: number): Operand | null {
  if (mem.type === 'vram') {
    return {
      end: adev.pdev,
      access(off, buf, write) {
        if (write) adev.vram.write(mem.start + base + off, buf);
        else adev.vram.read(mem.start + base + off, buf);
        return true;
      },
    };
  }
  if (mem.type === 'gtt') return pagesOperand(adev.pdev.socket, mem.pages, base);
  return null;
}

/** Pages (GTT or pinned host pages) from byte `base` of the first one. */
function pagesOperand(end: TransferEnd, pages: Page[], base: number): Operand {
  return {
    end,
    access(off, buf, write) {
      let at = 0;
      while (at < buf.length) {
        const o = base + off + at;
        const po = o % PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - po, buf.length - at);
        const p = pages[Math.floor(o / PAGE_SIZE)].data;
        if (write) p.set(buf.subarray(at, at + n), po);
        else buf.set(p.subarray(po, po + n), at);
        at += n;
      }
      return true;
    },
  };
}

/** An imported BO through the DMA addresses its mapping gave the GPU (captured at submission). */
function importedOperand(adev: AmdgpuDevice, bo: AmdgpuBo, base: number): Operand | null {
  const sgt = bo.importSgt;
  if (!sgt) return null;
  const segs: { dma: number; len: number }[] = [];
  const ram = new Map<number, Page>();
  for (const sg of forEachSgtableDmaSg(sgt)) {
    segs.push({ dma: sg.dmaAddress, len: sg.dmaLength });
    if (sg.pages.length > 0 && !sg.pages[0].noStructPage) for (const p of sg.pages) ram.set(p.pfn, p);
  }
  let end: TransferEnd = adev.pdev.socket;
  if (segs.length > 0) {
    const m = dmaContextOf(adev.dev)?.lookup(segs[0].dma, 1);
    const phys = m ? m.phys + (segs[0].dma - m.dmaAddr) : segs[0].dma;
    const owner = iomemLookup(phys, 1, adev.kernel)?.owner;
    if (owner instanceof PciDev) end = owner;
  }
  return {
    end,
    access(off, buf, write) {
      let skip = base + off;
      let done = 0;
      for (const s of segs) {
        if (done >= buf.length) break;
        if (skip >= s.len) {
          skip -= s.len;
          continue;
        }
        const n = Math.min(s.len - skip, buf.length - done);
        const phys = dmaDeviceAccess(adev.dev, s.dma + skip, n, write ? 'SDMA write' : 'SDMA read');
        if (phys === null) return false;
        const piece = buf.subarray(done, done + n);
        const region = iomemLookup(phys, n, adev.kernel);
        if (region) {
          if (write) region.memory.write(region.toDevice(phys), piece);
          else region.memory.read(region.toDevice(phys), piece);
        } else {
          let at = 0;
          while (at < n) {
            const a = phys + at;
            const page = ram.get(Math.floor(a / PAGE_SIZE));
            if (!page) return false;
            const po = a % PAGE_SIZE;
            const k = Math.min(PAGE_SIZE - po, n - at);
            if (write) page.data.set(piece.subarray(at, at + k), po);
            else piece.set(page.data.subarray(po, po + k), at);
            at += k;
          }
        }
        done += n;
        skip = 0;
      }
      return done === buf.length;
    },
  };
}

/** Locks every distinct reservation object of `resvs` in one acquire context. */
async function lockAll(resvs: DmaResv[]): Promise<WwAcquireCtx> {
  const ctx = new WwAcquireCtx();
  wwAcquireInit(ctx, reservationWwClass);
  let slow: DmaResv | null = null;
  for (;;) {
    const held: DmaResv[] = [];
    let contended: DmaResv | null = null;
    for (const r of resvs) {
      if (r === slow) {
        held.push(r);
        continue;
      }
      const rc = await dmaResvLock(r, ctx);
      if (rc === -errno.EDEADLK) {
        contended = r;
        break;
      }
      held.push(r);
    }
    if (!contended) return ctx;
    for (const r of held) dmaResvUnlock(r);
    await dmaResvLockSlow(contended, ctx);
    slow = contended;
  }
}

/** Adds the unsignalled fences of `resv` up to `usage` to `out` (references). */
function implicitFences(resv: DmaResv, usage: DmaResvUsage, out: DmaFence[]): void {
  const got = { numFences: 0, fences: null as DmaFence[] | null };
  if (dmaResvGetFences(resv, usage, got) === 0 && got.fences) out.push(...got.fences);
}

/** DRM_IOCTL_AMDGPU_MODEL_COPY. */
export async function amdgpuModelCopyIoctl(dev: DrmDevice, data: Uint8Array, file: DrmFile): Promise<number> {
  const adev = drmToAdev(dev);
  if (!adev) return -errno.ENODEV;
  const a = drmAmdgpuModelCopy.decode(data);
  const op = Number(a.op);
  const size = Number(a.size as bigint);
  const ops = [
    AMDGPU_MODEL_COPY_FILL,
    AMDGPU_MODEL_COPY_BO_TO_BO,
    AMDGPU_MODEL_COPY_HOST_TO_BO,
    AMDGPU_MODEL_COPY_BO_TO_HOST,
  ];
  if (!ops.includes(op) || !(size > 0) || !Number.isSafeInteger(size)) return -errno.EINVAL;
  const needDst = op !== AMDGPU_MODEL_COPY_BO_TO_HOST;
  const needSrc = op === AMDGPU_MODEL_COPY_BO_TO_BO || op === AMDGPU_MODEL_COPY_BO_TO_HOST;
  const dstOff = Number(a.dst_offset as bigint);
  const srcOff = Number(a.src_offset as bigint);
  const held: AmdgpuBo[] = [];
  const release = async (rc: number): Promise<number> => {
    for (const b of held) await drmGemObjectPut(b);
    return rc;
  };
  const lookup = (handle: number, off: number): AmdgpuBo | number => {
    const obj = drmGemObjectLookup(file, handle);
    if (!obj) return -errno.ENOENT;
    const bo = gemToAmdgpuBo(obj);
    if (!bo) {
      void drmGemObjectPut(obj);
      return -errno.EINVAL;
    }
    held.push(bo);
    if (!Number.isSafeInteger(off) || off < 0 || off + size > bo.size) return -errno.EINVAL;
    return bo;
  };
  const dst = needDst ? lookup(Number(a.dst_handle), dstOff) : null;
  if (typeof dst === 'number') return release(dst);
  const src = needSrc ? lookup(Number(a.src_handle), srcOff) : null;
  if (typeof src === 'number') return release(src);
  let host: { pages: Page[]; first: number } | null = null;
  if (op === AMDGPU_MODEL_COPY_HOST_TO_BO || op === AMDGPU_MODEL_COPY_BO_TO_HOST) {
    host = pinUserPages(Number(a.host_addr as bigint), size);
    if (!host) return release(-errno.EFAULT);
  }
  const unpinHost = () => {
    for (const p of host?.pages ?? []) p.put();
  };
  const waits: DmaFence[] = [];
  const inFd = Number(a.in_fence);
  if (inFd >= 0) {
    const f = syncFileGetFence(inFd);
    if (!f) {
      unpinHost();
      return release(-errno.EINVAL);
    }
    waits.push(f);
  }
  const fd = getUnusedFdFlags(O_CLOEXEC);
  if (fd < 0) {
    unpinHost();
    for (const w of waits) w.put();
    return release(fd);
  }
  const bos = [dst, src].filter((b): b is AmdgpuBo => b !== null);
  const resvs = [...new Set(bos.map((b) => b.resv))];
  const ctx = await lockAll(resvs);
  let rc = 0;
  const operand = async (bo: AmdgpuBo, off: number): Promise<Operand | null> => {
    if (bo.kind === 'sg') {
      const r = await amdgpuSgBoBind(bo);
      if (r) {
        rc = r;
        return null;
      }
      return importedOperand(adev, bo, off);
    }
    amdgpuBoTouch(bo);
    return ownOperand(adev, bo.mem, off);
  };
  const dstOp = dst
    ? await operand(dst, dstOff)
    : host
      ? pagesOperand(adev.pdev.socket, host.pages, host.first)
      : null;
  const srcOp =
    rc === 0 && src
      ? await operand(src, srcOff)
      : host
        ? pagesOperand(adev.pdev.socket, host.pages, host.first)
        : null;
  if (rc || !dstOp || (needSrc && !srcOp) || (op === AMDGPU_MODEL_COPY_HOST_TO_BO && !srcOp)) {
    for (const r of resvs) dmaResvUnlock(r);
    wwAcquireFini(ctx);
    unpinHost();
    for (const w of waits) w.put();
    putUnusedFd(fd);
    return release(rc || -errno.EINVAL);
  }
  if (dst) implicitFences(dst.resv, DMA_RESV_USAGE_READ, waits);
  if (src) implicitFences(src.resv, DMA_RESV_USAGE_WRITE, waits);
  const pattern = new Uint8Array(8);
  new DataView(pattern.buffer).setBigUint64(0, BigInt.asUintN(64, a.pattern as bigint), true);
  const fill = op === AMDGPU_MODEL_COPY_FILL;
  const from = fill ? adev.pdev : srcOp!.end;
  // Host memory to host memory (GTT or pinned pages on both sides): the GPU pulls the
  // bytes over its link and pushes them back; the model charges the pull.
  const to = !(from instanceof PciDev) && !(dstOp.end instanceof PciDev) ? adev.pdev : dstOp.end;
  let faulted = false;
  const fence = adev.ring.submit(
    (onComplete) =>
      adev.transfers.start({
        src: from,
        dst: to,
        bytes: size,
        initiator: from === adev.pdev ? 'src' : 'dst',
        maxRateGBps: from === adev.pdev && to === adev.pdev ? AMDGPU_SDMA_GBPS : undefined,
        label: `${adev.name} SDMA ${fill ? 'fill' : 'copy'} ${size} B`,
        copy: () => {
          // 1 MiB at a time, so a job of any size costs bounded host memory.
          const step = 2 ** 20;
          const buf = new Uint8Array(Math.min(step, size));
          for (let off = 0; off < size && !faulted; off += step) {
            const piece = buf.subarray(0, Math.min(step, size - off));
            if (fill) for (let i = 0; i < piece.length; i++) piece[i] = pattern[(off + i) % 8];
            else if (!srcOp!.access(off, piece, false)) faulted = true;
            if (!faulted && !dstOp.access(off, piece, true)) faulted = true;
          }
        },
        onComplete: (f) => onComplete(f, faulted ? -errno.EFAULT : 0),
      }),
    waits,
    unpinHost,
  );
  for (const [bo, usage] of [
    [dst, DMA_RESV_USAGE_WRITE],
    [src, DMA_RESV_USAGE_READ],
  ] as const) {
    if (bo && dmaResvReserveFences(bo.resv, 1) === 0) dmaResvAddFence(bo.resv, fence, usage);
  }
  for (const r of resvs) dmaResvUnlock(r);
  wwAcquireFini(ctx);
  await release(0);
  const sf = syncFileCreate(fence);
  fence.put();
  if (!sf) {
    putUnusedFd(fd);
    return -errno.ENOMEM;
  }
  fdInstall(fd, sf.file);
  new DataView(data.buffer, data.byteOffset).setInt32(56, fd, true);
  return 0;
}
