/**
 * habanalabs device memory: HL_MEM_OP_ALLOC / FREE / MAP / UNMAP / EXPORT_DMABUF_FD and
 * the dma-buf exporter (drivers/accel/habanalabs/common/memory.c, Linux 6.12.117).
 *
 * ALLOC rounds the size up to whole DRAM pages and takes them from the pool (one block
 * for HL_MEM_CONTIGUOUS, else one per page); the pack gets an idr handle from 1. MAP
 * gives a pack a DRAM VA (mapping_cnt first, then the ASID check unless HL_MEM_SHARED,
 * then the hint, then the VA space). UNMAP refuses a mapping that is exported, FREE a
 * pack that is mapped. Without a DRAM MMU (Gaudi1) ALLOC/FREE only count bytes.
 *
 * EXPORT_DMABUF_FD checks, in 6.12's order: offset != 0 without DRAM MMU; the VA must be
 * exactly a MAP result of this context and not a host mapping (export_cnt is raised
 * here, so UNMAP now fails); the handle must still name a DRAM pack; address, size
 * (non-zero) and offset PAGE_SIZE-aligned; offset + size within the pack; every page of
 * the pack inside the DRAM PCI BAR window. Each refusal is -EINVAL; later failures give
 * export_cnt back. Then the fd is reserved with the user's flags (O_CLOEXEC honoured),
 * the dma-buf exported (the file keeps O_ACCMODE | O_NONBLOCK), the context and the
 * device file referenced (so every dma-buf is released before the device), and the fd
 * installed as the very last step (the 2025 UAF fix). The ioctl writes `out.fd` even on
 * failure: -EBADF.
 *
 * dma_buf_ops (attach, map_dma_buf, unmap_dma_buf, release — no pin: a static exporter
 * whose memory is pinned and immutable; no mmap: -EINVAL): attach asks p2pdma for the
 * distance from the accelerator to the importer and clears `peer2peer` when there is no
 * route (it never fails; the model also files a `warn` report, `p2pdma.not_supported`,
 * quoting p2pdma's reason); map refuses an importer without peer2peer with -EPERM,
 * else builds a table with no struct pages: skip whole pages of the offset, start at
 * page + remaining offset, merge physically contiguous pages up to the importer's
 * max segment (PAGE_SIZE-aligned; below PAGE_SIZE: -EINVAL), split larger pages, and map
 * every piece's BAR address for the importer with dma_map_resource; orig_nents is 0 so
 * nobody walks a CPU list. Unmap unmaps each DMA entry.
 */
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
  dmaBufExport,
} from '../../../kernel/dma-buf/dma-buf.ts';
import { errPtr, isErr } from '../../../kernel/err.ts';
import { errno } from '../../../kernel/errno.ts';
import { fdInstall, getUnusedFdFlags, putUnusedFd } from '../../../kernel/fdtable.ts';
import { type File, fput } from '../../../kernel/file.ts';
import { currentKernel } from '../../../kernel/kernel.ts';
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDataDirection } from '../../../kernel/mm/dma-mapping.ts';
import {
  dmaChargeMappingCost,
  dmaGetMaxSegSize,
  dmaMappingError,
  dmaMapResource,
  dmaUnmapResource,
} from '../../../kernel/mm/iommu.ts';
import { PAGE_SIZE } from '../../../kernel/mm/page.ts';
import { forEachSgtableDmaSg, SgTable, sgAllocTable, sgFreeTable } from '../../../kernel/mm/scatterlist.ts';
import { pciP2pdmaDistance } from '../../../kernel/pci/p2pdma.ts';
import { traceMemInUse, tracepoint } from '../../../kernel/trace.ts';
import {
  HL_MEM_CONTIGUOUS,
  HL_MEM_FORCE_HINT,
  HL_MEM_OP_ALLOC,
  HL_MEM_OP_EXPORT_DMABUF_FD,
  HL_MEM_OP_FREE,
  HL_MEM_OP_MAP,
  HL_MEM_OP_UNMAP,
  HL_MEM_SHARED,
  HL_MEM_USERPTR,
} from '../../../uapi/habanalabs.ts';
import {
  freePhysPgPack,
  type HlCtx,
  type HlDevice,
  type HlVmHashNode,
  type HlVmPhysPgPack,
  hlCtxGet,
  hlCtxPut,
  isPowerOf2,
  MEM_HANDLE_INVALID,
} from './habanalabs.ts';

/** The exporter name of habanalabs dma-bufs (KBUILD_MODNAME). */
export const HL_DMABUF_EXP_NAME = 'habanalabs';

/** Rule of the model's report when an importer cannot reach the accelerator peer-to-peer. */
export const P2PDMA_NOT_SUPPORTED_RULE = 'p2pdma.not_supported';

/** struct hl_dmabuf_priv. */
export interface HlDmabufPriv {
  /** The dma-buf. */
  dmabuf: DmaBuf | null;
  /** The exporting context (referenced). */
  ctx: HlCtx;
  /** The exported pack (DRAM MMU devices), or null. */
  physPgPack: HlVmPhysPgPack | null;
  /** The exported mapping (its export_cnt was raised), or null. */
  memhashHnode: HlVmHashNode | null;
  /** Offset into the mapping. */
  offset: number;
  /** The exported physical address (devices without DRAM MMU). */
  devicePhysAddr: number;
  /** The device file, referenced until release. */
  file: File;
}

/** The arguments of a memory ioctl (struct hl_mem_in, union words as numbers). */
export interface HlMemIn {
  /** Union word 0 (mem_size, handle, hint_addr, device_virt_addr, addr). */
  arg0: number;
  /** Union word 1 (page_size, handle, mem_size). */
  arg1: number;
  /** Union word 2 (offset). */
  arg2: number;
  /** HL_MEM_OP_*. */
  op: number;
  /** HL_MEM_* flags, or the dma-buf file flags for EXPORT_DMABUF_FD. */
  flags: number;
}

/** What the memory ioctl writes back. */
export interface HlMemOut {
  /** The ioctl's return value. */
  rc: number;
  /** out.handle / out.device_virt_addr, or null to leave the arguments as they were. */
  out: number | null;
  /** out.fd (EXPORT_DMABUF_FD). */
  fd?: number;
}

function dbg(hdev: HlDevice, msg: string): void {
  // dev_dbg: user-triggered paths log at debug level (pitfall 16); kept in the trace only.
  tracepoint(currentKernel().engine, 'hl_dev_dbg', { dev: hdev.dev.name, msg });
}

/** Emits `mem_in_use` for the device's HBM (pool `hbm`, device = its topology endpoint id). */
export function hlTraceDramInUse(hdev: HlDevice): void {
  const k = currentKernel();
  traceMemInUse(k.engine, k.name, 'hbm', hdev.dramUsedMem, hdev.pdev.id);
}

/** Bytes of each device's DRAM BAR mapped for peers by its dma-bufs (a model counter). */
const barMapped = new WeakMap<HlDevice, number>();

/** Counts `delta` bytes of BAR mapped for peers and emits `mem_in_use` for pool `bar`. */
function hlTraceBarMapped(hdev: HlDevice, delta: number): void {
  const v = (barMapped.get(hdev) ?? 0) + delta;
  barMapped.set(hdev, v);
  const k = currentKernel();
  traceMemInUse(k.engine, k.name, 'bar', v, hdev.pdev.id);
}

/** alloc_device_memory(): a handle or -errno. */
function allocDeviceMemory(ctx: HlCtx, memSize: number, flags: number): number {
  const hdev = ctx.hdev;
  // 6.12: no ASIC supports a user page size, so alloc.page_size is ignored.
  const pageSize = hdev.prop.dramPageSize;
  const numPgs = Math.ceil(memSize / pageSize);
  const totalSize = numPgs * pageSize;
  if (!totalSize) return -errno.EINVAL;
  const contiguous = (flags & HL_MEM_CONTIGUOUS) !== 0;
  const pool = hdev.dramPgPool;
  const align = isPowerOf2(pageSize) ? pageSize : 0;
  const pages: number[] = [];
  if (contiguous) {
    const paddr = pool.alloc(totalSize, align);
    if (!paddr) {
      dbg(hdev, `Cannot allocate ${numPgs} contiguous pages with total size of ${totalSize}`);
      return -errno.ENOMEM;
    }
    for (let i = 0; i < numPgs; i++) pages.push(paddr + i * pageSize);
  } else {
    for (let i = 0; i < numPgs; i++) {
      const p = pool.alloc(pageSize, align);
      if (!p) {
        for (const q of pages) pool.release(q, pageSize);
        return -errno.ENOMEM;
      }
      pages.push(p);
    }
  }
  const pack: HlVmPhysPgPack = {
    vmType: 'phys-pack',
    pages,
    pageSize,
    totalSize,
    flags,
    contiguous,
    asid: ctx.asid,
    handle: 0,
    mappingCnt: 0,
  };
  const handle = hdev.physPgPackHandles.alloc(pack, 1, 0);
  if (handle < 0) {
    freePhysPgPack(hdev, pack);
    return -errno.EFAULT;
  }
  pack.handle = handle;
  ctx.dramPhysMem += totalSize;
  hdev.dramUsedMem += totalSize;
  hlTraceDramInUse(hdev);
  return handle;
}

/** free_device_memory(). */
function freeDeviceMemory(ctx: HlCtx, handle: number): number {
  const hdev = ctx.hdev;
  const pack = Number.isSafeInteger(handle) ? hdev.physPgPackHandles.find(handle) : null;
  if (!pack) {
    dbg(hdev, `free device memory failed, no match for handle ${handle}`);
    return -errno.EINVAL;
  }
  if (pack.mappingCnt > 0) {
    dbg(hdev, `handle ${handle} is mapped, cannot free`);
    return -errno.EINVAL;
  }
  hdev.physPgPackHandles.remove(handle);
  ctx.dramPhysMem -= pack.totalSize;
  hdev.dramUsedMem -= pack.totalSize;
  freePhysPgPack(hdev, pack);
  hlTraceDramInUse(hdev);
  return 0;
}

/** map_device_va() for device memory: the VA, or -errno. */
function mapDeviceVa(ctx: HlCtx, hint: number, handle: number, flags: number): number {
  const hdev = ctx.hdev;
  if (flags & HL_MEM_USERPTR) {
    // Model: host-memory (userptr) mappings are not modelled.
    return -errno.EINVAL;
  }
  const pack = Number.isSafeInteger(handle) ? hdev.physPgPackHandles.find(handle) : null;
  if (!pack) {
    dbg(hdev, `no match for handle ${handle}`);
    return -errno.EINVAL;
  }
  // Increment now to avoid freeing the pack while mapping.
  pack.mappingCnt++;
  if (!(pack.flags & HL_MEM_SHARED) && pack.asid !== ctx.asid) {
    pack.mappingCnt--;
    dbg(hdev, `Failed to map memory, handle ${handle} is not shared`);
    return -errno.EPERM;
  }
  const va = ctx.allocVa(pack.totalSize, hint);
  if (flags & HL_MEM_FORCE_HINT && hint && va !== hint) {
    pack.mappingCnt--;
    return -errno.EINVAL;
  }
  if (!va) {
    pack.mappingCnt--;
    return -errno.ENOMEM;
  }
  ctx.memHash.set(va, { vaddr: va, handle, exportCnt: 0 });
  ctx.vaSize.set(va, pack.totalSize);
  return va;
}

/** unmap_device_va(). */
function unmapDeviceVa(ctx: HlCtx, va: number): number {
  const hdev = ctx.hdev;
  const node = ctx.memHash.get(va);
  if (!node) {
    dbg(hdev, `unmap failed, no mem hnode for vaddr 0x${va.toString(16)}`);
    return -errno.EINVAL;
  }
  if (node.exportCnt) {
    dbg(hdev, `failed to unmap 0x${va.toString(16)}, memory is exported`);
    return -errno.EINVAL;
  }
  ctx.memHash.delete(va);
  ctx.vaSize.delete(va);
  const pack = hdev.physPgPackHandles.find(node.handle);
  if (pack) pack.mappingCnt--;
  return 0;
}

/** The device memory ranges `[addr, +len)` behind `[va, va + size)` of a mapped pack, or null when not mapped. */
export function hlVaToDevice(ctx: HlCtx, va: number, size: number): { addr: number; len: number }[] | null {
  for (const node of ctx.memHash.values()) {
    const total = ctx.vaSize.get(node.vaddr) ?? 0;
    if (va < node.vaddr || va + size > node.vaddr + total) continue;
    const pack = ctx.hdev.physPgPackHandles.find(node.handle);
    if (!pack) return null;
    const out: { addr: number; len: number }[] = [];
    let off = va - node.vaddr;
    let left = size;
    while (left > 0) {
      const i = Math.floor(off / pack.pageSize);
      const inPage = off - i * pack.pageSize;
      const n = Math.min(left, pack.pageSize - inPage);
      const addr = pack.pages[i] + inPage;
      const last = out[out.length - 1];
      if (last && last.addr + last.len === addr) last.len += n;
      else out.push({ addr, len: n });
      off += n;
      left -= n;
    }
    return out;
  }
  return null;
}

// ------------------------------------------------------------ dma-buf exporter

function privOf(dmabuf: DmaBuf): HlDmabufPriv {
  return dmabuf.priv as HlDmabufPriv;
}

/** hl_dmabuf_attach(). */
function hlDmabufAttach(dmabuf: DmaBuf, attachment: DmaBufAttachment): number {
  const hdev = privOf(dmabuf).ctx.hdev;
  const log: string[] = [];
  const rc = pciP2pdmaDistance(hdev.pdev, attachment.dev, true, log);
  if (rc < 0) {
    // 6.12 clears the flag; DmaBufAttachment declares it readonly for importers.
    (attachment as { peer2peer: boolean }).peer2peer = false;
    currentKernel().report(
      'warn',
      P2PDMA_NOT_SUPPORTED_RULE,
      `${attachment.dev.name} cannot reach ${hdev.name} (${hdev.pdev.name}) peer-to-peer: ` +
        `pci_p2pdma_distance() < 0, so habanalabs clears peer2peer and every map of this ` +
        `attachment fails with -EPERM. p2pdma says: ${log.join(' | ') || '(no reason logged)'}`,
      [dmabuf.reportObject(), attachment.reportObject()],
    );
  }
  return 0;
}

/** One DMA segment of an export: a device physical range. */
interface Seg {
  addr: number;
  len: number;
}

/** The segments of alloc_sgt_from_device_pages(), before mapping. */
export function hlExportSegments(
  pages: readonly number[],
  pageSize: number,
  exportedSize: number,
  offset: number,
  maxSeg: number,
): Seg[] {
  let start = 0;
  while (start < pages.length && offset >= pageSize) {
    offset -= pageSize;
    start++;
  }
  const segs: Seg[] = [];
  let left = exportedSize;
  let cur: Seg | null = null;
  for (let i = start; i < pages.length && left > 0; i++) {
    let inPage = i === start ? offset : 0;
    while (inPage < pageSize && left > 0) {
      const addr = pages[i] + inPage;
      const room: number = cur && cur.addr + cur.len === addr ? maxSeg - cur.len : 0;
      if (cur && room > 0) {
        const n = Math.min(room, pageSize - inPage, left);
        cur.len += n;
        inPage += n;
        left -= n;
        continue;
      }
      const n = Math.min(maxSeg, pageSize - inPage, left);
      cur = { addr, len: n };
      segs.push(cur);
      inPage += n;
      left -= n;
    }
  }
  return segs;
}

/** hl_map_dmabuf(). */
async function hlMapDmabuf(attachment: DmaBufAttachment, dir: DmaDataDirection) {
  const dmabuf = attachment.dmabuf;
  const priv = privOf(dmabuf);
  const hdev = priv.ctx.hdev;
  if (!attachment.peer2peer) {
    dbg(hdev, 'Failed to map dmabuf because p2p is disabled');
    return errPtr(-errno.EPERM);
  }
  const maxSeg = Math.floor(dmaGetMaxSegSize(attachment.dev) / PAGE_SIZE) * PAGE_SIZE;
  if (maxSeg < PAGE_SIZE) return errPtr(-errno.EINVAL);
  const pack = priv.physPgPack;
  const segs = pack
    ? hlExportSegments(pack.pages, pack.pageSize, dmabuf.size, priv.offset, maxSeg)
    : hlExportSegments([priv.devicePhysAddr], dmabuf.size, dmabuf.size, 0, maxSeg);
  const sgt = new SgTable();
  const rc = sgAllocTable(sgt, segs.length);
  if (rc) return errPtr(rc);
  for (let i = 0; i < segs.length; i++) {
    const bar = hdev.dramPciBarStart + (segs[i].addr - hdev.prop.dramBaseAddress);
    const addr = dmaMapResource(attachment.dev, bar, segs[i].len, dir, DMA_ATTR_SKIP_CPU_SYNC);
    if (dmaMappingError(attachment.dev, addr)) {
      for (let j = 0; j < i; j++) {
        dmaUnmapResource(
          attachment.dev,
          sgt.sgl[j].dmaAddress,
          sgt.sgl[j].dmaLength,
          dir,
          DMA_ATTR_SKIP_CPU_SYNC,
        );
      }
      sgFreeTable(sgt);
      return errPtr(-errno.ENOMEM);
    }
    const sg = sgt.sgl[i];
    sg.pageLink = null; // sg_set_page(sg, NULL, len, 0): no struct page
    sg.length = segs[i].len;
    sg.dmaAddress = addr;
    sg.dmaLength = segs[i].len;
  }
  // "We are not going to include a CPU list": only the DMA list (nents) is valid.
  sgt.origNents = 0;
  hlTraceBarMapped(
    hdev,
    segs.reduce((n, x) => n + x.len, 0),
  );
  await dmaChargeMappingCost(attachment.dev);
  return sgt;
}

/** hl_unmap_dmabuf(). */
async function hlUnmapDmabuf(
  attachment: DmaBufAttachment,
  sgt: SgTable,
  dir: DmaDataDirection,
): Promise<void> {
  let bytes = 0;
  for (const sg of forEachSgtableDmaSg(sgt)) {
    dmaUnmapResource(attachment.dev, sg.dmaAddress, sg.dmaLength, dir, DMA_ATTR_SKIP_CPU_SYNC);
    bytes += sg.dmaLength;
  }
  hlTraceBarMapped(privOf(attachment.dmabuf).ctx.hdev, -bytes);
  sgt.origNents = sgt.nents;
  sgFreeTable(sgt);
  await dmaChargeMappingCost(attachment.dev);
}

/** hl_release_dmabuf(). */
function hlReleaseDmabuf(dmabuf: DmaBuf): void {
  const priv = privOf(dmabuf);
  const ctx = priv.ctx;
  if (priv.memhashHnode) priv.memhashHnode.exportCnt--;
  ctx.hdev.dmabufExportCnt--;
  hlCtxPut(ctx);
  // Paired with the get in export_dmabuf().
  fput(priv.file);
}

/** habanalabs_dmabuf_ops. */
export const habanalabsDmabufOps: DmaBufOps = {
  attach: hlDmabufAttach,
  mapDmaBuf: hlMapDmabuf,
  unmapDmaBuf: hlUnmapDmabuf,
  release: hlReleaseDmabuf,
};

/** validate_export_params_common(). */
function validateExportParamsCommon(hdev: HlDevice, addr: number, size: number, offset: number): number {
  if (addr % PAGE_SIZE) {
    dbg(hdev, `exported device memory address 0x${addr.toString(16)} should be aligned to PAGE_SIZE`);
    return -errno.EINVAL;
  }
  if (!size || size % PAGE_SIZE) {
    dbg(hdev, `exported device memory size ${size} should be a multiple of PAGE_SIZE`);
    return -errno.EINVAL;
  }
  if (offset % PAGE_SIZE) {
    dbg(hdev, `exported device memory offset ${offset} should be a multiple of PAGE_SIZE`);
    return -errno.EINVAL;
  }
  return 0;
}

/** Whether `[bar, bar + len)` lies in the DRAM BAR window (with the overflow check). */
function inBarWindow(hdev: HlDevice, deviceAddr: number, len: number): boolean {
  const bar = hdev.dramPciBarStart + (deviceAddr - hdev.prop.dramBaseAddress);
  return bar + len <= hdev.dramPciBarStart + hdev.prop.dramPciBarSize && bar + len >= bar;
}

/** validate_export_params(). */
function validateExportParams(
  hdev: HlDevice,
  addr: number,
  size: number,
  offset: number,
  pack: HlVmPhysPgPack,
): number {
  const rc = validateExportParamsCommon(hdev, addr, size, offset);
  if (rc) return rc;
  if (offset + size > pack.totalSize) {
    dbg(hdev, `offset ${offset} and size ${size} exceed total map size ${pack.totalSize}`);
    return -errno.EINVAL;
  }
  for (const p of pack.pages) {
    if (!inBarWindow(hdev, p, pack.pageSize)) {
      dbg(
        hdev,
        `DRAM memory range 0x${p.toString(16)} (+0x${pack.pageSize.toString(16)}) is outside of PCI BAR boundaries`,
      );
      return -errno.EINVAL;
    }
  }
  return 0;
}

/** validate_export_params_no_mmu(). */
function validateExportParamsNoMmu(hdev: HlDevice, addr: number, size: number): number {
  const rc = validateExportParamsCommon(hdev, addr, size, 0);
  if (rc) return rc;
  const p = hdev.prop;
  if (addr < p.dramUserBaseAddress || addr + size > p.dramEndAddress || addr + size < addr) {
    return -errno.EINVAL;
  }
  if (!inBarWindow(hdev, addr, size)) return -errno.EINVAL;
  return 0;
}

/** export_dmabuf(): fd reserved first, installed last. 0 with `out.fd`, or -errno. */
function exportDmabuf(
  ctx: HlCtx,
  priv: HlDmabufPriv,
  totalSize: number,
  flags: number,
  out: { fd: number },
): number {
  const fd = getUnusedFdFlags(flags);
  if (fd < 0) return fd;
  const dmabuf = dmaBufExport({
    expName: HL_DMABUF_EXP_NAME,
    ops: habanalabsDmabufOps,
    size: totalSize,
    flags,
    priv,
  });
  if (isErr(dmabuf)) {
    putUnusedFd(fd);
    return dmabuf.err;
  }
  priv.dmabuf = dmabuf;
  hlCtxGet(ctx);
  ctx.hdev.dmabufExportCnt++;
  // Every exported dma-buf is released before the device file (paired with the fput in release).
  priv.file.get();
  out.fd = fd;
  fdInstall(fd, dmabuf.file);
  return 0;
}

/** export_dmabuf_from_addr(). */
function exportDmabufFromAddr(
  ctx: HlCtx,
  file: File,
  addr: number,
  size: number,
  offset: number,
  flags: number,
  out: { fd: number },
): number {
  const hdev = ctx.hdev;
  const prop = hdev.prop;
  if (!prop.dramSupportsVirtualMemory && offset) {
    dbg(hdev, 'offset is not allowed in device without virtual memory');
    return -errno.EINVAL;
  }
  const priv: HlDmabufPriv = {
    dmabuf: null,
    ctx,
    physPgPack: null,
    memhashHnode: null,
    offset: 0,
    devicePhysAddr: 0,
    file,
  };
  let hnode: HlVmHashNode | null = null;
  if (prop.dramSupportsVirtualMemory) {
    // memhash_node_export_get()
    hnode = ctx.memHash.get(addr) ?? null;
    if (!hnode) {
      dbg(hdev, `map address 0x${addr.toString(16)} not found`);
      return -errno.EINVAL;
    }
    if (hnode.handle >= 2 ** 32 || hnode.handle === MEM_HANDLE_INVALID) {
      dbg(hdev, `invalid handle for map address 0x${addr.toString(16)}`);
      return -errno.EINVAL;
    }
    hnode.exportCnt++;
    // get_phys_pg_pack_from_hash_node()
    const pack = hdev.physPgPackHandles.find(hnode.handle);
    let rc = 0;
    if (!pack) rc = -errno.EINVAL;
    else if (pack.vmType !== 'phys-pack') rc = -errno.EINVAL;
    else rc = validateExportParams(hdev, addr, size, offset, pack);
    if (rc) {
      hnode.exportCnt--;
      return rc;
    }
    priv.physPgPack = pack;
    priv.memhashHnode = hnode;
    priv.offset = offset;
  } else {
    const rc = validateExportParamsNoMmu(hdev, addr, size);
    if (rc) return rc;
    priv.devicePhysAddr = addr;
  }
  const rc = exportDmabuf(ctx, priv, size, flags, out);
  if (rc && hnode) hnode.exportCnt--;
  return rc;
}

/** hl_mem_ioctl() after the argument copy: the result and what to write back. */
export function hlMemIoctl(ctx: HlCtx, file: File, args: HlMemIn): HlMemOut {
  const hdev = ctx.hdev;
  if (!hdev.operational) return { rc: -errno.EBUSY, out: null };
  switch (args.op) {
    case HL_MEM_OP_ALLOC: {
      if (args.arg0 === 0) return { rc: -errno.EINVAL, out: null };
      if (!hdev.prop.dramSupportsVirtualMemory) {
        ctx.dramPhysMem += args.arg0;
        hdev.dramUsedMem += args.arg0;
        return { rc: 0, out: 0 };
      }
      const h = allocDeviceMemory(ctx, args.arg0, args.flags);
      return h < 0 ? { rc: h, out: 0 } : { rc: 0, out: h };
    }
    case HL_MEM_OP_FREE:
      if (!hdev.prop.dramSupportsVirtualMemory) {
        ctx.dramPhysMem -= args.arg0;
        hdev.dramUsedMem -= args.arg0;
        return { rc: 0, out: null };
      }
      return { rc: freeDeviceMemory(ctx, args.arg0), out: null };
    case HL_MEM_OP_MAP: {
      const va = mapDeviceVa(ctx, args.arg0, args.arg1, args.flags);
      return va < 0 ? { rc: va, out: 0 } : { rc: 0, out: va };
    }
    case HL_MEM_OP_UNMAP:
      return { rc: unmapDeviceVa(ctx, args.arg0), out: null };
    case HL_MEM_OP_EXPORT_DMABUF_FD: {
      const res = { fd: -errno.EBADF };
      const rc = exportDmabufFromAddr(ctx, file, args.arg0, args.arg1, args.arg2, args.flags, res);
      return { rc, out: 0, fd: res.fd };
    }
    default:
      return { rc: -errno.EINVAL, out: null };
  }
}
