/**
 * A NIC-like dma-buf importer for tests and scenarios: one per NIC function of the
 * machine's topology, created on first use (it does not bind the function, so a real
 * NIC driver can own it), whose struct device is a child of the PCI function (as an
 * ib_device's is) with its own DMA context. It imports a dma-buf the way an RDMA driver does for a dma-buf memory
 * region (drivers/infiniband/core/umem_dmabuf.c ib_umem_dmabuf_get / _map_pages, with
 * mlx5's `dma_set_max_seg_size(2 GiB)` from drivers/net/ethernet/mellanox/mlx5/core/main.c).
 *
 * Import = dma_buf_get(fd) + dma_buf_dynamic_attach with `allow_peer2peer` (the caller
 * can turn it off to play a driver that cannot take page-less tables) + mapping under
 * the reservation lock + waiting for the KERNEL fences, as umem_dmabuf does. The NIC then
 * reads through its own DMA addresses: every piece goes through `dmaDeviceAccess` (an
 * address not mapped for this NIC is a `dma.unmapped_address` violation), is routed to
 * the BAR window that decodes it, and moves as one flow on the machine's PCIe model from
 * the exporter's function to the NIC (initiator: the NIC), landing the bytes at the end.
 * It only ever uses sg_dma_address/sg_dma_len.
 */
import type { Device } from '../../kernel/device.ts';
import { Device as StructDevice } from '../../kernel/device.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufAttachOps,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufGet,
  dmaBufMapAttachment,
  dmaBufPut,
  dmaBufUnmapAttachment,
} from '../../kernel/dma-buf/dma-buf.ts';
import {
  DMA_RESV_USAGE_KERNEL,
  dmaResvLock,
  dmaResvUnlock,
  dmaResvWaitTimeout,
} from '../../kernel/dma-buf/dma-resv.ts';
import { type ErrPtr, errPtr, isErr } from '../../kernel/err.ts';
import { errno } from '../../kernel/errno.ts';
import { MAX_SCHEDULE_TIMEOUT } from '../../kernel/jiffies.ts';
import { currentKernel, type Kernel } from '../../kernel/kernel.ts';
import { DMA_BIDIRECTIONAL } from '../../kernel/mm/dma-mapping.ts';
import { iomemLookup } from '../../kernel/mm/iomem.ts';
import { deviceSetupDma, dmaDeviceAccess, dmaSetMaxSegSize } from '../../kernel/mm/iommu.ts';
import { forEachSgtableDmaSg, type SgTable } from '../../kernel/mm/scatterlist.ts';
import { PciDev } from '../../kernel/pci/pci.ts';
import { pciBus, pciTransferModel } from '../../kernel/pci/pci-driver.ts';

/** The driver's name. */
export const P2P_TEST_NIC_NAME = 'p2p_test_nic';
/** Rule id: a DMA address that no BAR or memory decodes (an Unsupported Request on the bus). */
export const PCI_UNCLAIMED_ADDRESS_RULE = 'pci.unclaimed_address';

/** One NIC. */
export class P2pTestNic {
  /** Created at probe. */
  constructor(
    /** Index among the machine's NICs. */
    readonly id: number,
    /** The PCI function. */
    readonly pdev: PciDev,
    /** Its struct device. */
    readonly dev: Device,
  ) {}
}

/** An imported dma-buf. */
export interface P2pImport {
  /** The NIC. */
  readonly nic: P2pTestNic;
  /** The buffer (one reference held). */
  readonly dmabuf: DmaBuf;
  /** The dynamic attachment. */
  readonly attach: DmaBufAttachment;
  /** The mapped table (DMA addresses valid for this NIC only). */
  readonly sgt: SgTable;
}

const NICS = Symbol('p2p_test_nic');

/**
 * The test NICs of a kernel, one per `nic` endpoint of its topology in enumeration order
 * (created on first call; none without a topology).
 */
export function p2pTestNics(k: Kernel = currentKernel()): P2pTestNic[] {
  let l = k.singletons.get(NICS) as P2pTestNic[] | undefined;
  if (!l) {
    l = [];
    for (const pdev of pciBus(k)?.topology.endpointsOf('nic') ?? []) {
      const dev = new StructDevice(pdev.name, { parent: pdev, driverString: P2P_TEST_NIC_NAME });
      deviceSetupDma(dev, { iommu: pdev.topology.iommu });
      dmaSetMaxSegSize(dev, 2 * 1024 * 1024 * 1024);
      l.push(new P2pTestNic(l.length, pdev, dev));
    }
    k.singletons.set(NICS, l);
  }
  return l;
}

/** Options of an import. */
export interface P2pImportOptions {
  /** Set allow_peer2peer (default true). */
  allowPeer2peer?: boolean;
}

/**
 * Imports the dma-buf at `fd` of the current process: attach (dynamic), map under the
 * reservation lock, wait for KERNEL fences. Returns the import or an error pointer
 * (-EBADF/-EINVAL from dma_buf_get, the attach or map error such as -EPERM).
 */
export async function p2pNicImport(
  nic: P2pTestNic,
  fd: number,
  opts: P2pImportOptions = {},
): Promise<P2pImport | ErrPtr> {
  const dmabuf = dmaBufGet(fd);
  if (isErr(dmabuf)) return dmabuf;
  const ops: DmaBufAttachOps = {
    allowPeer2peer: opts.allowPeer2peer ?? true,
    moveNotify: () => {},
  };
  const attach = await dmaBufDynamicAttach(dmabuf, nic.dev, ops, nic);
  if (isErr(attach)) {
    dmaBufPut(dmabuf);
    return attach;
  }
  await dmaResvLock(dmabuf.resv, null);
  const sgt = await dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL);
  if (isErr(sgt)) {
    dmaResvUnlock(dmabuf.resv);
    await dmaBufDetach(dmabuf, attach);
    dmaBufPut(dmabuf);
    return sgt;
  }
  const r = await dmaResvWaitTimeout(dmabuf.resv, DMA_RESV_USAGE_KERNEL, false, MAX_SCHEDULE_TIMEOUT);
  dmaResvUnlock(dmabuf.resv);
  if (r < 0) return errPtr(r);
  return { nic, dmabuf, attach, sgt };
}

/** The DMA addresses of an import, in order (what the NIC would program into its MTT). */
export function p2pImportSegments(imp: P2pImport): { dmaAddress: number; length: number }[] {
  return [...forEachSgtableDmaSg(imp.sgt)].map((sg) => ({ dmaAddress: sg.dmaAddress, length: sg.dmaLength }));
}

/**
 * The NIC reads `length` bytes at `offset` of the imported buffer by DMA, peer-to-peer,
 * in virtual time. Returns the bytes, or a negative errno (-EIO: the access faulted or
 * the path cannot carry it; -EINVAL: outside the buffer).
 */
export async function p2pNicRead(
  imp: P2pImport,
  offset: number,
  length: number,
): Promise<Uint8Array | number> {
  if (offset < 0 || length < 0 || offset + length > imp.dmabuf.size) return -errno.EINVAL;
  const out = new Uint8Array(length);
  const pieces: { phys: number; len: number; at: number }[] = [];
  let skip = offset;
  let at = 0;
  for (const sg of forEachSgtableDmaSg(imp.sgt)) {
    if (at >= length) break;
    if (skip >= sg.dmaLength) {
      skip -= sg.dmaLength;
      continue;
    }
    const n = Math.min(sg.dmaLength - skip, length - at);
    const phys = dmaDeviceAccess(imp.nic.dev, sg.dmaAddress + skip, n, 'P2P read');
    if (phys === null) return -errno.EIO;
    pieces.push({ phys, len: n, at });
    at += n;
    skip = 0;
  }
  const regions = pieces.map((p) => iomemLookup(p.phys, p.len));
  const bad = regions.indexOf(null);
  if (bad >= 0) {
    currentKernel().report(
      'violation',
      PCI_UNCLAIMED_ADDRESS_RULE,
      `${imp.nic.dev.name}: DMA read of bus address 0x${pieces[bad].phys.toString(16)} that no BAR decodes ` +
        '(the request completes with Unsupported Request)',
      [{ kind: 'device', name: imp.nic.dev.name }],
    );
    return -errno.EIO;
  }
  const owner = regions[0]!.owner;
  if (length === 0) return out;
  const flow = pciTransferModel().start({
    src: owner instanceof PciDev ? owner : imp.nic.pdev,
    dst: imp.nic.pdev,
    bytes: length,
    initiator: 'dst',
    label: `${imp.nic.dev.name} P2P read ${length} B`,
    copy: () => {
      pieces.forEach((p, i) => {
        const r = regions[i]!;
        r.memory.read(r.toDevice(p.phys), out, p.at, p.len);
      });
    },
  });
  const state = await flow.wait();
  return state === 'done' ? out : -errno.EIO;
}

/** Unmaps, detaches and puts the buffer. */
export async function p2pNicRelease(imp: P2pImport): Promise<void> {
  await dmaResvLock(imp.dmabuf.resv, null);
  await dmaBufUnmapAttachment(imp.attach, imp.sgt, DMA_BIDIRECTIONAL);
  dmaResvUnlock(imp.dmabuf.resv);
  await dmaBufDetach(imp.dmabuf, imp.attach);
  dmaBufPut(imp.dmabuf);
}
