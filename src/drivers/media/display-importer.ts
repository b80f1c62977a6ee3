/**
 * A scan-out engine (a display controller or capture-like device): the simple static
 * dma-buf importer of the design, one per `other` PCI function of the machine's
 * topology, each with a char device `/dev/scanout<N>` (model-only ioctl, src/uapi/scanout.ts).
 *
 * It imports the way a non-dynamic DRM/V4L2 driver does (drivers/gpu/drm/drm_prime.c
 * drm_gem_prime_import_dev: dma_buf_attach, dma_buf_map_attachment_unlocked; Linux 6.12):
 * no importer ops, so the attachment is static and `peer2peer` is false. The dma-buf core
 * (drivers/dma-buf/dma-buf.c) waits for the KERNEL fences after mapping; like the atomic
 * helpers' prepare_fb the engine also waits for the WRITE fences (the producer's
 * rendering) before it reads. It then scans the frame out by DMA through its own
 * mapping — sg_dma_address/sg_dma_len over nents, each piece checked by the DMA layer and
 * decoded as a BAR window or system RAM, in virtual time on the PCIe model — and returns
 * the frame's CRC-32 (lib/crc32.c crc32_le with the zlib pre/post inversion, as a display
 * CRC capture would).
 *
 * Page-backed exporters (system and CMA heaps, udmabuf) work; a page-less exporter refuses
 * the static attachment with its errno (habanalabs' hl_map_dmabuf: -EPERM, because
 * `peer2peer` is false), which the ioctl returns after detaching and dropping the buffer.
 * Two model-only flags turn the driver into the buggy importers of spec/driver-side.md §8:
 * SCANOUT_FRAME_MODEL_P2P claims allow_peer2peer (a dynamic attachment), and
 * SCANOUT_FRAME_MODEL_SG_PAGE reads pixels through sg_page() of the lent table, which
 * CONFIG_DMABUF_DEBUG's poisoning turns into a `dma_buf.sg_page_access` report.
 */
import type { Device } from '../../kernel/device.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  dmaBufAttach,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufGet,
  dmaBufMapAttachmentUnlocked,
  dmaBufPut,
  dmaBufUnmapAttachmentUnlocked,
} from '../../kernel/dma-buf/dma-buf.ts';
import { DMA_RESV_USAGE_WRITE, dmaResvWaitTimeout } from '../../kernel/dma-buf/dma-resv.ts';
import { isErr, ptrErr } from '../../kernel/err.ts';
import { errno } from '../../kernel/errno.ts';
import type { File, FileOperations, Inode } from '../../kernel/file.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../kernel/jiffies.ts';
import { currentKernel, type Kernel } from '../../kernel/kernel.ts';
import { DMA_TO_DEVICE } from '../../kernel/mm/dma-mapping.ts';
import { iomemLookup } from '../../kernel/mm/iomem.ts';
import { deviceSetupDma, dmaDeviceAccess } from '../../kernel/mm/iommu.ts';
import { PAGE_SIZE, type Page } from '../../kernel/mm/page.ts';
import { forEachSgtableDmaSg, type SgTable, sgPage } from '../../kernel/mm/scatterlist.ts';
import { PciDev } from '../../kernel/pci/pci.ts';
import { pciRegisterDriver, pciTransferModel } from '../../kernel/pci/pci-driver.ts';
import { copyFromUser, copyToUser } from '../../kernel/uaccess.ts';
import { registerDevice } from '../../kernel/vfs.ts';
import { _IOC_NR, _IOC_SIZE } from '../../uapi/ioctl.ts';
import {
  SCANOUT_FRAME_FLAGS,
  SCANOUT_FRAME_MODEL_P2P,
  SCANOUT_FRAME_MODEL_SG_PAGE,
  SCANOUT_IOCTL_FRAME,
  scanoutFrame,
  scanoutPath,
} from '../../uapi/scanout.ts';
import { ramAddEntry, sgtDmaSegments, umemDmaCopy } from '../rdma/ib-umem.ts';

/** The driver's name. */
export const SCANOUT_DRIVER_NAME = 'scanout';
/** Char major of /dev/scanout<N> (model-only: a dynamic major in Linux's range). */
export const SCANOUT_MAJOR = 240;

/** One scan-out engine. */
export class ScanoutDevice {
  /** Frames scanned out successfully. */
  frames = 0;

  /** Created at probe. */
  constructor(
    /** Index: N of /dev/scanout<N>. */
    readonly id: number,
    /** The PCI function. */
    readonly pdev: PciDev,
    /** Its struct device (the importer device of every attachment). */
    readonly dev: Device,
  ) {}
}

const DEVICES = Symbol('scanout');

/** The scan-out engines of a kernel, in probe order. */
export function scanoutDevices(k: Kernel = currentKernel()): ScanoutDevice[] {
  let l = k.singletons.get(DEVICES) as ScanoutDevice[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(DEVICES, l);
  }
  return l;
}

/** The PCI driver: binds every `other` function (the model's display/capture class). */
export const scanoutPciDriver = {
  name: SCANOUT_DRIVER_NAME,
  idTable: [{ kind: 'other' as const }],
  probe(pdev: PciDev, dev: Device): number {
    // No dma_set_max_seg_size(): the device keeps the 64 KiB default of dma_get_max_seg_size().
    deviceSetupDma(dev, { iommu: pdev.topology.iommu });
    const list = scanoutDevices();
    const sd = new ScanoutDevice(list.length, pdev, dev);
    list.push(sd);
    registerDevice(scanoutPath(sd.id), scanoutFops, {
      mode: 0o666,
      priv: sd,
      rdev: (SCANOUT_MAJOR << 8) | sd.id,
    });
    return 0;
  },
};

/** Registers the driver (module_init); machines booted afterwards bind their `other` functions. */
export function scanoutInit(): void {
  pciRegisterDriver(scanoutPciDriver);
}

/** What one frame gave. */
export interface ScanoutFrameResult {
  /** CRC-32 of the scanned bytes. */
  crc32: number;
  /** DMA segments of the mapping. */
  nents: number;
}

/**
 * Imports the dma-buf at `fd` of the current process, scans `[offset, offset + length)`
 * out (length 0: to the end) and releases everything again. Returns the result or -errno:
 * -EINVAL (unknown flags, range outside the buffer), dma_buf_get's -EBADF/-EINVAL, the
 * exporter's attach or map error (-EPERM from a page-less exporter), -EINTR, -EIO (the
 * transfer failed).
 */
export async function scanoutFrameImport(
  sd: ScanoutDevice,
  fd: number,
  offset: number,
  length: number,
  flags: number,
): Promise<ScanoutFrameResult | number> {
  if (flags & ~SCANOUT_FRAME_FLAGS) return -errno.EINVAL;
  const dmabuf = dmaBufGet(fd);
  if (isErr(dmabuf)) return ptrErr(dmabuf);
  const len = length === 0 ? dmabuf.size - offset : length;
  if (offset < 0 || len <= 0 || offset + len > dmabuf.size) {
    dmaBufPut(dmabuf);
    return -errno.EINVAL;
  }
  const attach =
    flags & SCANOUT_FRAME_MODEL_P2P
      ? await dmaBufDynamicAttach(dmabuf, sd.dev, p2pImporterOps, sd)
      : await dmaBufAttach(dmabuf, sd.dev);
  if (isErr(attach)) {
    dmaBufPut(dmabuf);
    return ptrErr(attach);
  }
  const sgt = await dmaBufMapAttachmentUnlocked(attach, DMA_TO_DEVICE);
  if (isErr(sgt)) {
    await dmaBufDetach(dmabuf, attach);
    dmaBufPut(dmabuf);
    return ptrErr(sgt);
  }
  let r: ScanoutFrameResult | number = await dmaResvWaitTimeout(
    dmabuf.resv,
    DMA_RESV_USAGE_WRITE,
    true,
    MAX_SCHEDULE_TIMEOUT,
  );
  if (r >= 0) {
    const out =
      flags & SCANOUT_FRAME_MODEL_SG_PAGE
        ? cpuReadThroughSgPage(sgt, offset, len)
        : await scanoutDma(sd, dmabuf, attach, sgt, offset, len);
    r = typeof out === 'number' ? out : { crc32: crc32(out), nents: sgt.nents };
  }
  await dmaBufUnmapAttachmentUnlocked(attach, sgt, DMA_TO_DEVICE);
  await dmaBufDetach(dmabuf, attach);
  dmaBufPut(dmabuf);
  if (typeof r !== 'number') sd.frames++;
  return r;
}

/** The importer ops of SCANOUT_FRAME_MODEL_P2P (nothing to invalidate between frames). */
const p2pImporterOps: DmaBufAttachOps = {
  allowPeer2peer: true,
  moveNotify: () => {},
};

/**
 * The engine reads the frame by DMA: every piece through its own DMA addresses, decoded
 * as a BAR window or as the RAM pages the exporter put behind the mapping, moved as one
 * flow from the memory (or the exporting function) to the engine.
 */
async function scanoutDma(
  sd: ScanoutDevice,
  dmabuf: DmaBuf,
  attach: DmaBufAttachment,
  sgt: SgTable,
  offset: number,
  len: number,
): Promise<Uint8Array | number> {
  const ram = new Map<number, Page>();
  for (const sg of sgt.sgl) ramAddEntry(ram, sg.pages);
  const view = {
    dev: attach.dev,
    address: 0,
    length: dmabuf.size,
    writable: false,
    isDmabuf: true,
    ram,
    segments: sgtDmaSegments(sgt),
  };
  const first = sgt.nents > 0 ? dmaDeviceAccess(sd.dev, sgt.sgl[0].dmaAddress, 1, 'scan-out read') : null;
  if (first === null) return -errno.EIO;
  const owner = iomemLookup(first)?.owner;
  const out = new Uint8Array(len);
  let rc = 0;
  const flow = pciTransferModel().start({
    src: owner instanceof PciDev ? owner : sd.pdev.socket,
    dst: sd.pdev,
    bytes: len,
    initiator: 'dst',
    label: `${sd.dev.name} scan-out ${len} B`,
    copy: () => {
      rc = umemDmaCopy(view, offset, out, 0, len, false);
    },
  });
  const state = await flow.wait();
  if (state !== 'done' || rc < 0) return -errno.EIO;
  return out;
}

/** The bug of SCANOUT_FRAME_MODEL_SG_PAGE: the CPU reads the lent table's pages via sg_page(). */
function cpuReadThroughSgPage(sgt: SgTable, offset: number, len: number): Uint8Array | number {
  const out = new Uint8Array(len);
  let pos = 0; // buffer offset of the current entry
  for (const sg of forEachSgtableDmaSg(sgt)) {
    const page = sgPage(sg); // the poisoned page link stops the run here
    if (page === null) return -errno.EFAULT;
    for (let i = 0; i < sg.length; i++) {
      const at = pos + i - offset;
      if (at < 0 || at >= len) continue;
      const byte = sg.offset + i;
      out[at] = sg.pages[Math.floor(byte / PAGE_SIZE)].data[byte % PAGE_SIZE];
    }
    pos += sg.length;
  }
  return out;
}

// ------------------------------------------------------------------ char device

function scanoutDeviceOf(file: File): ScanoutDevice {
  return file.privateData as ScanoutDevice;
}

/** SCANOUT_IOCTL_FRAME: copy in, import and scan, copy the result out. */
async function scanoutIoctl(file: File, cmd: number, arg: number): Promise<number> {
  if (cmd !== SCANOUT_IOCTL_FRAME || _IOC_SIZE(cmd) !== scanoutFrame.size) {
    return _IOC_NR(cmd) === _IOC_NR(SCANOUT_IOCTL_FRAME) ? -errno.EINVAL : -errno.ENOTTY;
  }
  const data = new Uint8Array(scanoutFrame.size);
  if (copyFromUser(data, arg)) return -errno.EFAULT;
  const a = scanoutFrame.decode(data);
  const r = await scanoutFrameImport(
    scanoutDeviceOf(file),
    a.fd,
    Number(a.offset),
    Number(a.length),
    a.flags,
  );
  if (typeof r === 'number') return r;
  const out = scanoutFrame.encode({ ...a, crc32: r.crc32, nents: r.nents });
  return copyToUser(arg, out) ? -errno.EFAULT : 0;
}

/** /dev/scanout<N>'s file operations. */
export const scanoutFops: FileOperations = {
  name: 'scanout',
  open(inode: Inode, file: File): number {
    file.privateData = inode.priv as ScanoutDevice;
    return 0;
  },
  ioctl: scanoutIoctl,
};

// ------------------------------------------------------------------ CRC

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `data` (IEEE 802.3 polynomial, reflected; equal to zlib's crc32), continuing from `crc`. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
