/**
 * An RDMA NIC driver (mlx5_ib-like) and its HCA: probe on the topology's NIC functions,
 * the verbs the core calls (alloc_pd, reg_user_mr, reg_user_mr_dmabuf, create_cq,
 * create_qp, modify_qp, post_send, post_recv, poll_cq, destroy/dereg), and the HCA's
 * engine that executes work requests over the fabric with real bytes.
 *
 * Sources (Linux 6.12): drivers/infiniband/core/verbs.c (ib_modify_qp_is_ok),
 * drivers/infiniband/core/uverbs_std_types_mr.c (the REG_DMABUF_MR checks, in order:
 * -EOPNOTSUPP without reg_user_mr_dmabuf, offset/iova page-offset equality, access mask,
 * ib_check_mr_access), drivers/infiniband/hw/mlx5/mr.c (mlx5_ib_reg_user_mr_dmabuf: the
 * dynamic umem with mlx5_ib_dmabuf_attach_ops, mapped at registration under the
 * reservation lock; mlx5_ib_dmabuf_invalidate_cb: return if not mapped, zap the MTT,
 * unmap), drivers/infiniband/hw/mlx5/odp.c (pagefault_dmabuf_mr: lock, map, unlock on
 * the next access), drivers/infiniband/hw/efa/efa_verbs.c (HCAs without ODP use
 * ib_umem_dmabuf_get_pinned). RC transport semantics (IBTA vol. 1 ch. 9-10): WRs of a
 * QP pipeline — the next one starts when the previous one's request has left the port (a
 * SEND: when it is ACKed), READs and atomics up to max_rd_atomic outstanding; the
 * responder executes them in order — and complete in order; a NAK for
 * an rkey/range/rights violation moves both QPs to ERR and completes the requester's WR
 * with IB_WC_REM_ACCESS_ERR, a QP entering ERR completes every posted WR with
 * IB_WC_WR_FLUSH_ERR, posting to an ERR QP flushes at once. An incoming SEND with no
 * receive posted gets an RNR NAK carrying the responder's min_rnr_timer; the requester
 * sends again when that timer has run out, and after `rnr_retry` NAKs completes the WR
 * with IB_WC_RNR_RETRY_EXC_ERR (rnr_retry 7 retries for ever: the SEND then lands as
 * soon as a receive is posted). Atomics (CMP_AND_SWP, FETCH_AND_ADD) work on 8 bytes at
 * an 8-byte aligned address of an MR with REMOTE_ATOMIC (IBTA vol. 1 9.4.5).
 *
 * The engine runs in a kernel thread per HCA (as mlx5's page-fault work runs in a
 * workqueue), so an access to an invalidated dma-buf MR can take the reservation lock
 * and re-map. Data crosses the fabric as one flow per message (src/fabric/switch.ts).
 * The PCIe legs (memory -> sending NIC, receiving NIC -> memory) run from where the MR's
 * first DMA segment decodes (a peer's BAR or host memory) to the NIC. In a Cluster every
 * machine's PCIe model is on the switch's flow network, so a message is one flow over
 * the requester's leg, both ports' link directions and the responder's leg: its rate is
 * the max-min fair share over all of them (PCIe contention at either end slows the wire,
 * a slow wire leaves PCIe to other DMA) and it adds the legs' latencies. Otherwise (a
 * leg on another network) each leg caps the network flow at its lone rate and also runs
 * as a flow on its machine's PCIe model; the message lands when all are over.
 * Shared receive queues (ib_create_srq) hand their receive WRs to any attached QP.
 */

import type { FabricPort } from '../../fabric/link.ts';
import { fabricPorts } from '../../fabric/switch.ts';
import type { Device } from '../../kernel/device.ts';
import type { DmaBufAttachment, DmaBufAttachOps } from '../../kernel/dma-buf/dma-buf.ts';
import { dmaResvLock, dmaResvUnlock } from '../../kernel/dma-buf/dma-resv.ts';
import { errno } from '../../kernel/errno.ts';
import { currentKernel, type Kernel } from '../../kernel/kernel.ts';
import { registerLeakCheck } from '../../kernel/leak-check.ts';
import { iomemLookup } from '../../kernel/mm/iomem.ts';
import { deviceSetupDma, dmaContextOf, dmaSetMaxSegSize } from '../../kernel/mm/iommu.ts';
import type { MmStruct } from '../../kernel/mm/mmap.ts';
import { PAGE_SIZE } from '../../kernel/mm/page.ts';
import type { Flow } from '../../kernel/pci/flow.ts';
import { PciDev } from '../../kernel/pci/pci.ts';
import { pciBus, pciRegisterDriver } from '../../kernel/pci/pci-driver.ts';
import type { Socket } from '../../kernel/pci/topology.ts';
import { predictTransfer, type TransferModel } from '../../kernel/pci/transfer.ts';
import type { TransferPath } from '../../kernel/pci/transfer-path.ts';
import { tracepoint } from '../../kernel/trace.ts';
import {
  IbCq,
  type IbDevice,
  IbDevice as IbDeviceClass,
  IbMr,
  IbPd,
  IbQp,
  type IbQpAttr,
  type IbRecvWr,
  type IbSendEntry,
  type IbSendWr,
  type IbSge,
  IbSrq,
  type IbUcontext,
  type IbWc,
  ibDevices,
} from './ib-core.ts';
import { ibUmemGet, ibUmemRelease, umemDmaCopy } from './ib-umem.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_ATOMIC,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  IB_ATOMIC_SIZE,
  IB_DMABUF_MR_ACCESS_MASK,
  IB_QP_ACCESS_FLAGS,
  IB_QP_AV,
  IB_QP_DEST_QPN,
  IB_QP_MAX_DEST_RD_ATOMIC,
  IB_QP_MAX_QP_RD_ATOMIC,
  IB_QP_MIN_RNR_TIMER,
  IB_QP_PATH_MTU,
  IB_QP_PKEY_INDEX,
  IB_QP_PORT,
  IB_QP_RETRY_CNT,
  IB_QP_RNR_RETRY,
  IB_QP_RQ_PSN,
  IB_QP_SQ_PSN,
  IB_QP_STATE,
  IB_QP_TIMEOUT,
  IB_QPS_ERR,
  IB_QPS_RESET,
  IB_QPS_RTR,
  IB_QPS_RTS,
  IB_QPT_RC,
  IB_RNR_RETRY_INFINITE,
  IB_SEND_SIGNALED,
  IB_WC_COMP_SWAP,
  IB_WC_FETCH_ADD,
  IB_WC_LOC_LEN_ERR,
  IB_WC_LOC_PROT_ERR,
  IB_WC_RDMA_READ,
  IB_WC_RDMA_WRITE,
  IB_WC_RECV,
  IB_WC_REM_ACCESS_ERR,
  IB_WC_REM_INV_REQ_ERR,
  IB_WC_REM_OP_ERR,
  IB_WC_RETRY_EXC_ERR,
  IB_WC_RNR_RETRY_EXC_ERR,
  IB_WC_SEND,
  IB_WC_SUCCESS,
  IB_WC_WR_FLUSH_ERR,
  IB_WR_ATOMIC_CMP_AND_SWP,
  IB_WR_ATOMIC_FETCH_AND_ADD,
  IB_WR_RDMA_READ,
  IB_WR_RDMA_WRITE,
  IB_WR_RDMA_WRITE_WITH_IMM,
  IB_WR_SEND,
  IB_WR_SEND_WITH_IMM,
  type IbQpState,
  ibCheckMrAccess,
  ibModifyQpIsOk,
  ibRnrTimerNs,
} from './ib-verbs.ts';
import {
  type IbUmemDmabuf,
  ibUmemDmabufGet,
  ibUmemDmabufGetPinned,
  ibUmemDmabufMapPages,
  ibUmemDmabufRelease,
  ibUmemDmabufUnmapPages,
} from './umem-dmabuf.ts';
import { ibUverbsAddOne } from './uverbs-main.ts';

/** The driver's name. */
export const RDMA_NIC_DRIVER_NAME = 'mlx5_core';

// ------------------------------------------------------------------ probe

/** The PCI driver: binds to every `nic` function and registers `mlx5_<n>` with uverbs. */
export const rdmaNicDriver = {
  name: RDMA_NIC_DRIVER_NAME,
  idTable: [{ kind: 'nic' as const }],
  probe(pdev: PciDev, dev: Device): number {
    deviceSetupDma(dev, { iommu: pdev.topology.iommu });
    dmaSetMaxSegSize(dev, 2 * 1024 * 1024 * 1024);
    ibRegisterDevice(currentKernel(), pdev, dev);
    return 0;
  },
};

/** Registers the driver (module_init); machines booted afterwards bind their NICs to it. */
export function rdmaNicInit(): void {
  pciRegisterDriver(rdmaNicDriver);
}

/** ib_register_device(): lists the device and creates its uverbs node (the HCA engine starts on first work). */
export function ibRegisterDevice(k: Kernel, pdev: PciDev | null, dmaDevice: Device): IbDevice {
  const list = ibDevices(k);
  const d = new IbDeviceClass(k, `mlx5_${list.length}`, list.length, pdev, dmaDevice);
  list.push(d);
  ibUverbsAddOne(d);
  if (list.length === 1) registerLeakCheck(k, rdmaLeaks);
  return d;
}

function rdmaLeaks(k: Kernel) {
  const out = [];
  for (const d of ibDevices(k)) {
    for (const mr of d.mrs.values()) {
      out.push({
        rule: 'rdma.mr_leak',
        message: `${d.name}: MR lkey 0x${mr.lkey.toString(16)} still registered after every process exited`,
        objects: [{ kind: 'ib_mr', name: `${d.name} mr 0x${mr.lkey.toString(16)}` }],
        key: mr,
      });
    }
  }
  return out;
}

/** The fabric port of a device, or null when its machine is not in a cluster. */
export function ibDevicePort(d: IbDevice): FabricPort | null {
  return fabricPorts(d.kernel)[d.index] ?? null;
}

/** Queues HCA work; the engine's kernel thread starts on first use. */
function queueWork(d: IbDevice, job: () => Promise<void> | void): void {
  d.work.push(job);
  if (d.thread === null) {
    d.thread = d.kernel.engine.spawn(
      `${d.name}_hca`,
      async () => {
        for (;;) {
          await d.workWait.waitEvent(() => d.work.length > 0, { desc: { what: `${d.name} HCA idle` } });
          const next = d.work.shift()!;
          await next();
        }
      },
      { daemon: true, owner: d.kernel },
    );
  }
  d.workWait.wakeUp();
}

// ------------------------------------------------------------------ PD, CQ

/** ib_alloc_pd(). */
export function ibAllocPd(uctx: IbUcontext): IbPd {
  const pd = new IbPd(uctx, uctx.device.nextHandle++);
  uctx.pds.add(pd);
  return pd;
}

/** ib_dealloc_pd(): -EBUSY while MRs or QPs use it. */
export function ibDeallocPd(pd: IbPd): number {
  if (pd.dead) return -errno.EINVAL;
  if (pd.usecnt > 0) return -errno.EBUSY;
  pd.dead = true;
  pd.uctx.pds.delete(pd);
  return 0;
}

/** ib_create_cq(): -EINVAL for 0 or more than the device's max entries. */
export function ibCreateCq(uctx: IbUcontext, cqe: number): IbCq | number {
  if (!(cqe >= 1) || cqe > uctx.device.caps.maxCqe) return -errno.EINVAL;
  const cq = new IbCq(uctx, uctx.device.nextHandle++, cqe);
  uctx.cqs.add(cq);
  return cq;
}

/** ib_destroy_cq(): -EBUSY while a QP uses it. */
export function ibDestroyCq(cq: IbCq): number {
  if (cq.dead) return -errno.EINVAL;
  if (cq.usecnt > 0) return -errno.EBUSY;
  cq.dead = true;
  cq.uctx.cqs.delete(cq);
  return 0;
}

/** ib_poll_cq(): takes up to `n` completions, oldest first. */
export function ibPollCq(cq: IbCq, n: number): IbWc[] {
  return cq.entries.splice(0, Math.max(0, n));
}

function pushCqe(d: IbDevice, cq: IbCq, wc: IbWc): void {
  if (cq.dead) return;
  if (cq.entries.length >= cq.cqe) {
    cq.overflows++;
    d.kernel.warn(
      'rdma.cq_overflow',
      `${d.name}: CQ ${cq.handle} overflow, completion of wr_id ${wc.wrId} lost`,
    );
    return;
  }
  cq.entries.push(wc);
  cq.wait.wakeUp();
}

// ------------------------------------------------------------------ MR

function newMrKey(d: IbDevice): number {
  const idx = d.nextMrIndex++;
  return ((idx & 0xffffff) * 256 + ((idx * 0x3b) & 0xff)) >>> 0;
}

/** reg_user_mr: pins process memory `[start, start + length)` of `mm`, reachable at `iova`. */
export function ibRegUserMr(
  pd: IbPd,
  mm: MmStruct,
  start: number,
  length: number,
  iova: number,
  access: number,
): IbMr | number {
  const d = pd.uctx.device;
  const r = ibCheckMrAccess(access, d.caps.odp);
  if (r < 0) return r;
  if (!(length > 0) || length > d.caps.maxMrSize) return -errno.EINVAL;
  if (start % PAGE_SIZE !== iova % PAGE_SIZE) return -errno.EINVAL;
  const umem = ibUmemGet(d.dmaDevice, mm, start, length, access);
  if (typeof umem === 'number') return umem;
  const key = newMrKey(d);
  const mr = new IbMr(pd, key, key, iova, length, access, umem);
  pd.usecnt++;
  d.mrs.set(key, mr);
  pd.uctx.mrs.add(mr);
  return mr;
}

/** mlx5_ib_dmabuf_attach_ops: peer-to-peer capable; move_notify zaps the MTT and unmaps. */
export const rdmaNicDmabufAttachOps: DmaBufAttachOps = {
  allowPeer2peer: true,
  async moveNotify(attach: DmaBufAttachment): Promise<void> {
    const umem = attach.importerPriv as IbUmemDmabuf;
    if (umem.sgt === null) return;
    umem.invalidations++;
    await ibUmemDmabufUnmapPages(umem);
  },
};

/**
 * UVERBS_METHOD_REG_DMABUF_MR + reg_user_mr_dmabuf: the checks of
 * uverbs_std_types_mr.c in 6.12's order, then a dynamic umem mapped at registration
 * (ODP HCAs) or a pinned one. Returns the MR or -errno.
 */
export async function ibRegUserMrDmabuf(
  pd: IbPd,
  offset: number,
  length: number,
  iova: number,
  fd: number,
  access: number,
): Promise<IbMr | number> {
  const d = pd.uctx.device;
  if (!d.caps.dmabufMr) return -errno.EOPNOTSUPP;
  if (offset % PAGE_SIZE !== iova % PAGE_SIZE) return -errno.EINVAL;
  if (access & ~IB_DMABUF_MR_ACCESS_MASK) return -errno.EINVAL;
  const r = ibCheckMrAccess(access, d.caps.odp);
  if (r < 0) return r;
  if (length > d.caps.maxMrSize) return -errno.EINVAL;
  let umem: IbUmemDmabuf | number;
  if (d.caps.odp) {
    umem = await ibUmemDmabufGet(d.dmaDevice, offset, length, fd, access, rdmaNicDmabufAttachOps);
    if (typeof umem !== 'number') {
      const u = umem;
      await dmaResvLock(u.dmabuf.resv, null);
      const m = await ibUmemDmabufMapPages(u);
      dmaResvUnlock(u.dmabuf.resv);
      if (m < 0) {
        await ibUmemDmabufRelease(u);
        umem = m;
      }
    }
  } else {
    umem = await ibUmemDmabufGetPinned(d.dmaDevice, offset, length, fd, access);
  }
  if (typeof umem === 'number') return umem;
  const key = newMrKey(d);
  const mr = new IbMr(pd, key, key, iova, length, access, umem);
  umem.privateData = mr;
  pd.usecnt++;
  d.mrs.set(key, mr);
  pd.uctx.mrs.add(mr);
  return mr;
}

/** ib_dereg_mr(): the MR's keys stop working at once; the umem is released (dma-buf detached). */
export async function ibDeregMr(mr: IbMr): Promise<number> {
  if (mr.dead) return -errno.EINVAL;
  mr.dead = true;
  const d = mr.pd.uctx.device;
  d.mrs.delete(mr.lkey);
  mr.pd.uctx.mrs.delete(mr);
  mr.pd.usecnt--;
  if (mr.umem.isDmabuf) await ibUmemDmabufRelease(mr.umem as IbUmemDmabuf);
  else ibUmemRelease(mr.umem as Parameters<typeof ibUmemRelease>[0]);
  return 0;
}

// ------------------------------------------------------------------ QP

/** What create_qp takes (struct ib_qp_init_attr, reduced). */
export interface IbQpInitAttr {
  /** Send CQ. */
  sendCq: IbCq;
  /** Receive CQ. */
  recvCq: IbCq;
  /** Capacities. */
  cap: { maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number };
  /** IB_QPT_*; only RC is supported. */
  qpType: number;
  /** Every send WR completes (IB_SIGNAL_ALL_WR). */
  sqSigAll?: boolean;
  /** Take receives from this SRQ instead of an own receive queue. */
  srq?: IbSrq | null;
}

/** ib_create_qp(): RC only (-EOPNOTSUPP otherwise); -EINVAL for capacities beyond the device's. */
export function ibCreateQp(pd: IbPd, init: IbQpInitAttr): IbQp | number {
  const d = pd.uctx.device;
  if (init.qpType !== IB_QPT_RC) return -errno.EOPNOTSUPP;
  const c = init.cap;
  if (c.maxSendWr > d.caps.maxQpWr || c.maxRecvWr > d.caps.maxQpWr) return -errno.EINVAL;
  if (c.maxSendSge > d.caps.maxSge || c.maxRecvSge > d.caps.maxSge) return -errno.EINVAL;
  if (init.sendCq.dead || init.recvCq.dead) return -errno.EINVAL;
  if (init.srq && (init.srq.dead || init.srq.uctx !== pd.uctx)) return -errno.EINVAL;
  const qp = new IbQp(
    pd.uctx,
    d.nextHandle++,
    d.nextQpn++,
    pd,
    init.sendCq,
    init.recvCq,
    { ...c },
    !!init.sqSigAll,
  );
  pd.usecnt++;
  init.sendCq.usecnt++;
  init.recvCq.usecnt++;
  if (init.srq) {
    qp.srq = init.srq;
    init.srq.usecnt++;
  }
  d.qps.set(qp.qpNum, qp);
  pd.uctx.qps.add(qp);
  return qp;
}

/** ib_modify_qp(): checks the transition (ib_modify_qp_is_ok), applies the attributes; entering ERR flushes. */
export function ibModifyQp(qp: IbQp, attr: Partial<IbQpAttr> & { qpState?: number }, mask: number): number {
  if (qp.dead) return -errno.EINVAL;
  const cur = qp.state;
  const next = (mask & IB_QP_STATE ? attr.qpState : cur) as IbQpState;
  if (!(next >= IB_QPS_RESET && next <= IB_QPS_ERR)) return -errno.EINVAL;
  if (!ibModifyQpIsOk(cur, next, mask)) return -errno.EINVAL;
  const a = qp.attr;
  if (mask & IB_QP_PORT) {
    if (attr.portNum !== 1) return -errno.EINVAL;
    a.portNum = 1;
  }
  if (mask & IB_QP_ACCESS_FLAGS) a.qpAccessFlags = attr.qpAccessFlags ?? 0;
  if (mask & IB_QP_PKEY_INDEX) a.pkeyIndex = attr.pkeyIndex ?? 0;
  if (mask & IB_QP_AV) a.dlid = attr.dlid ?? 0;
  if (mask & IB_QP_DEST_QPN) a.destQpNum = attr.destQpNum ?? 0;
  if (mask & IB_QP_PATH_MTU) a.pathMtu = attr.pathMtu ?? 5;
  if (mask & IB_QP_RQ_PSN) a.rqPsn = attr.rqPsn ?? 0;
  if (mask & IB_QP_SQ_PSN) a.sqPsn = attr.sqPsn ?? 0;
  if (mask & IB_QP_MAX_DEST_RD_ATOMIC) a.maxDestRdAtomic = attr.maxDestRdAtomic ?? 0;
  if (mask & IB_QP_MAX_QP_RD_ATOMIC) a.maxRdAtomic = attr.maxRdAtomic ?? 0;
  if (mask & IB_QP_MIN_RNR_TIMER) a.minRnrTimer = attr.minRnrTimer ?? 0;
  if (mask & IB_QP_TIMEOUT) a.timeout = attr.timeout ?? 14;
  if (mask & IB_QP_RETRY_CNT) a.retryCnt = attr.retryCnt ?? 7;
  if (mask & IB_QP_RNR_RETRY) a.rnrRetry = attr.rnrRetry ?? 7;
  if (next === IB_QPS_ERR) {
    qpError(qp);
    return 0;
  }
  qp.state = next;
  if (next === IB_QPS_RESET) {
    qp.sq.length = 0;
    qp.rq.length = 0;
    qp.inflight = null;
    qp.pendingIn.length = 0;
  }
  if (next === IB_QPS_RTS) kick(qp);
  return 0;
}

/** ib_destroy_qp(): the QP stops at once; nothing more completes for it. */
export function ibDestroyQp(qp: IbQp): number {
  if (qp.dead) return -errno.EINVAL;
  qp.dead = true;
  qp.state = IB_QPS_ERR;
  qp.inflight = null;
  const d = qp.uctx.device;
  d.qps.delete(qp.qpNum);
  qp.uctx.qps.delete(qp);
  qp.pd.usecnt--;
  qp.sendCq.usecnt--;
  qp.recvCq.usecnt--;
  if (qp.srq) qp.srq.usecnt--;
  return 0;
}

/** ib_create_srq(): -EINVAL for 0 or more WRs or SGEs than the device takes. */
export function ibCreateSrq(pd: IbPd, cap: { maxWr: number; maxSge: number }): IbSrq | number {
  const d = pd.uctx.device;
  if (pd.dead) return -errno.EINVAL;
  if (!(cap.maxWr >= 1) || cap.maxWr > d.caps.maxQpWr) return -errno.EINVAL;
  if (!(cap.maxSge >= 1) || cap.maxSge > d.caps.maxSge) return -errno.EINVAL;
  const srq = new IbSrq(pd.uctx, d.nextHandle++, pd, { maxWr: cap.maxWr, maxSge: cap.maxSge });
  pd.usecnt++;
  pd.uctx.srqs.add(srq);
  return srq;
}

/** ib_destroy_srq(): -EBUSY while a QP is attached. */
export function ibDestroySrq(srq: IbSrq): number {
  if (srq.dead) return -errno.EINVAL;
  if (srq.usecnt > 0) return -errno.EBUSY;
  srq.dead = true;
  srq.rq.length = 0;
  srq.pendingIn.length = 0;
  srq.pd.usecnt--;
  srq.uctx.srqs.delete(srq);
  return 0;
}

/** post_srq_recv(): queues receive WRs on the SRQ; -EINVAL (too many SGEs), -ENOMEM (full), index of the first not posted in `bad`. */
export function ibPostSrqRecv(srq: IbSrq, wrs: IbRecvWr[], bad: { index: number } = { index: -1 }): number {
  if (srq.dead) return -errno.EINVAL;
  for (let i = 0; i < wrs.length; i++) {
    const wr = wrs[i];
    let r = 0;
    if (wr.sgList.length > srq.cap.maxSge) r = -errno.EINVAL;
    else if (srq.rq.length >= srq.cap.maxWr) r = -errno.ENOMEM;
    if (r < 0) {
      bad.index = i;
      return r;
    }
    srq.rq.push({ wrId: wr.wrId, sgList: wr.sgList.map((s) => ({ ...s })) });
  }
  for (const w of srq.pendingIn.splice(0)) w();
  return 0;
}

function qpError(qp: IbQp): void {
  const d = qp.uctx.device;
  qp.state = IB_QPS_ERR;
  qp.inflight = null;
  for (const e of qp.sq.splice(0)) {
    pushCqe(d, qp.sendCq, wcOf(qp, e.wr.wrId, IB_WC_WR_FLUSH_ERR, wcOpcode(e.wr.opcode), 0));
  }
  for (const r of qp.rq.splice(0)) pushCqe(d, qp.recvCq, wcOf(qp, r.wrId, IB_WC_WR_FLUSH_ERR, IB_WC_RECV, 0));
  qp.pendingIn.length = 0;
}

function wcOf(qp: IbQp, wrId: number | bigint, status: number, opcode: number, byteLen: number): IbWc {
  return { wrId, status, opcode, byteLen, qpNum: qp.qpNum, vendorErr: status === IB_WC_SUCCESS ? 0 : 0x81 };
}

function wcOpcode(op: number): number {
  if (op === IB_WR_RDMA_READ) return IB_WC_RDMA_READ;
  if (op === IB_WR_ATOMIC_CMP_AND_SWP) return IB_WC_COMP_SWAP;
  if (op === IB_WR_ATOMIC_FETCH_AND_ADD) return IB_WC_FETCH_ADD;
  if (op === IB_WR_RDMA_WRITE || op === IB_WR_RDMA_WRITE_WITH_IMM) return IB_WC_RDMA_WRITE;
  return IB_WC_SEND;
}

const SUPPORTED_WR = new Set([
  IB_WR_RDMA_WRITE,
  IB_WR_RDMA_WRITE_WITH_IMM,
  IB_WR_SEND,
  IB_WR_SEND_WITH_IMM,
  IB_WR_RDMA_READ,
  IB_WR_ATOMIC_CMP_AND_SWP,
  IB_WR_ATOMIC_FETCH_AND_ADD,
]);

/**
 * post_send(): queues `wrs` in order. Returns 0, or -EINVAL (QP not in RTS or ERR, an
 * unsupported opcode, too many SGEs) / -ENOMEM (send queue full) with the index of the
 * first WR not posted in `bad`.
 */
export function ibPostSend(qp: IbQp, wrs: IbSendWr[], bad: { index: number } = { index: -1 }): number {
  if (qp.dead) return -errno.EINVAL;
  const d = qp.uctx.device;
  for (let i = 0; i < wrs.length; i++) {
    const wr = wrs[i];
    let r = 0;
    if (qp.state !== IB_QPS_RTS && qp.state !== IB_QPS_ERR) r = -errno.EINVAL;
    else if (!SUPPORTED_WR.has(wr.opcode) || wr.sgList.length > qp.cap.maxSendSge) r = -errno.EINVAL;
    else if (qp.sq.length >= qp.cap.maxSendWr) r = -errno.ENOMEM;
    if (r < 0) {
      bad.index = i;
      return r;
    }
    const e: IbSendEntry = { wr: { ...wr, sgList: wr.sgList.map((s) => ({ ...s })) }, bytes: 0 };
    if (qp.state === IB_QPS_ERR) {
      pushCqe(d, qp.sendCq, wcOf(qp, wr.wrId, IB_WC_WR_FLUSH_ERR, wcOpcode(wr.opcode), 0));
      continue;
    }
    qp.sq.push(e);
  }
  kick(qp);
  return 0;
}

/**
 * post_recv(): queues receive WRs; -EINVAL in RESET or on a QP attached to an SRQ
 * (receives go to the SRQ), flushes at once in ERR, -ENOMEM when full.
 */
export function ibPostRecv(qp: IbQp, wrs: IbRecvWr[], bad: { index: number } = { index: -1 }): number {
  if (qp.dead) return -errno.EINVAL;
  if (qp.srq && wrs.length > 0) {
    bad.index = 0;
    return -errno.EINVAL;
  }
  const d = qp.uctx.device;
  for (let i = 0; i < wrs.length; i++) {
    const wr = wrs[i];
    let r = 0;
    if (qp.state === IB_QPS_RESET) r = -errno.EINVAL;
    else if (wr.sgList.length > qp.cap.maxRecvSge) r = -errno.EINVAL;
    else if (qp.rq.length >= qp.cap.maxRecvWr) r = -errno.ENOMEM;
    if (r < 0) {
      bad.index = i;
      return r;
    }
    if (qp.state === IB_QPS_ERR) {
      pushCqe(d, qp.recvCq, wcOf(qp, wr.wrId, IB_WC_WR_FLUSH_ERR, IB_WC_RECV, 0));
      continue;
    }
    qp.rq.push({ wrId: wr.wrId, sgList: wr.sgList.map((s) => ({ ...s })) });
  }
  const waiting = qp.pendingIn.splice(0);
  for (const w of waiting) w();
  return 0;
}

// ------------------------------------------------------------------ data path

/** How an MR is being touched. */
type Use = 'local-read' | 'local-write' | 'remote-read' | 'remote-write' | 'atomic-read' | 'atomic-write';

/**
 * The HCA touches `len` bytes at `addr` of the MR with key `key`, in PD `pd`: checks the
 * key, PD, range and rights, faults an invalidated dma-buf MR back in (ODP), then copies.
 * Returns 0 or -errno (-EACCES for a key/PD/range/rights violation, -EFAULT when the
 * memory cannot be reached).
 */
async function mrAccess(
  d: IbDevice,
  pd: IbPd,
  key: number,
  addr: number,
  buf: Uint8Array,
  bufOff: number,
  len: number,
  use: Use,
): Promise<number> {
  const mr = d.mrs.get(key);
  if (!mr || mr.dead || mr.pd !== pd) return -errno.EACCES;
  if (addr < mr.iova || addr + len > mr.iova + mr.length) return -errno.EACCES;
  const need =
    use === 'local-write'
      ? IB_ACCESS_LOCAL_WRITE
      : use === 'remote-write'
        ? IB_ACCESS_REMOTE_WRITE
        : use === 'remote-read'
          ? IB_ACCESS_REMOTE_READ
          : use === 'atomic-read' || use === 'atomic-write'
            ? IB_ACCESS_REMOTE_ATOMIC
            : 0;
  if ((mr.access & need) !== need) return -errno.EACCES;
  if (len === 0) return 0;
  const umem = mr.umem;
  if (umem.isDmabuf && umem.segments === null) {
    const u = umem as IbUmemDmabuf;
    await dmaResvLock(u.dmabuf.resv, null);
    const r = await ibUmemDmabufMapPages(u);
    dmaResvUnlock(u.dmabuf.resv);
    if (r < 0) return r;
  }
  const write = use === 'local-write' || use === 'remote-write' || use === 'atomic-write';
  return umemDmaCopy(umem, addr - mr.iova, buf, bufOff, len, write);
}

async function gather(qp: IbQp, sges: IbSge[]): Promise<Uint8Array | null> {
  const total = sges.reduce((s, g) => s + g.length, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const g of sges) {
    const r = await mrAccess(qp.uctx.device, qp.pd, g.lkey, g.addr, buf, at, g.length, 'local-read');
    if (r < 0) return null;
    at += g.length;
  }
  return buf;
}

async function scatter(qp: IbQp, sges: IbSge[], data: Uint8Array): Promise<number> {
  let at = 0;
  for (const g of sges) {
    if (at >= data.length) break;
    const n = Math.min(g.length, data.length - at);
    const r = await mrAccess(qp.uctx.device, qp.pd, g.lkey, g.addr, data, at, n, 'local-write');
    if (r < 0) return r;
    at += n;
  }
  return 0;
}

/** Whether `e` is still waiting for its completion on `qp` (not flushed, destroyed or completed). */
function live(qp: IbQp, e: IbSendEntry): boolean {
  return !qp.dead && e.status === undefined && qp.sq.includes(e);
}

/** READs and atomics: the responder keeps state for them (max_rd_atomic bounds how many are outstanding). */
function readLike(op: number): boolean {
  return op === IB_WR_RDMA_READ || op === IB_WR_ATOMIC_CMP_AND_SWP || op === IB_WR_ATOMIC_FETCH_AND_ADD;
}

/**
 * Starts the oldest WR not started yet when the transmit slot is free. WRs pipeline: an
 * RDMA WRITE frees the slot when the last byte of its payload has left the port (the
 * next WRITE streams behind it while it is still in flight, so a batch pays the one-way
 * latency once), a READ or atomic when its request has left (at most max_rd_atomic of
 * them outstanding, at least one), a SEND only at its ACK (an RNR NAK makes it go again
 * before anything after it). The responder takes a QP's requests in the order sent
 * (`arriveInOrder`); completions are in order (`finishSend`). Nothing new starts once a
 * WR has failed.
 */
function kick(qp: IbQp): void {
  if (qp.dead || qp.inflight || qp.state !== IB_QPS_RTS) return;
  if (qp.sq.some((x) => x.status !== undefined && x.status !== IB_WC_SUCCESS)) return;
  const e = qp.sq.find((x) => !x.issued);
  if (!e) return;
  if (readLike(e.wr.opcode)) {
    const outstanding = qp.sq.filter(
      (x) => x.issued && x.status === undefined && readLike(x.wr.opcode),
    ).length;
    if (outstanding >= Math.max(1, qp.attr.maxRdAtomic)) return;
  }
  e.issued = true;
  qp.inflight = e;
  queueWork(qp.uctx.device, () => execSend(qp, e));
}

/** The request of `e` has left the QP: the transmit slot frees for the next WR. */
function sent(qp: IbQp, e: IbSendEntry): void {
  if (qp.inflight !== e) return;
  qp.inflight = null;
  kick(qp);
}

/**
 * `e` got its ACK, response or error: record it, then complete every WR at the head of
 * the send queue whose status is known, in order (an error completes its WR and moves
 * the QP to ERR, flushing the rest).
 */
function finishSend(qp: IbQp, e: IbSendEntry, status: number): void {
  if (!live(qp, e)) return;
  const d = qp.uctx.device;
  e.status = status;
  if (qp.inflight === e) qp.inflight = null;
  while (qp.sq.length > 0 && qp.sq[0].status !== undefined) {
    const h = qp.sq.shift()!;
    const st = h.status ?? IB_WC_SUCCESS;
    if (st !== IB_WC_SUCCESS) {
      pushCqe(d, qp.sendCq, wcOf(qp, h.wr.wrId, st, wcOpcode(h.wr.opcode), 0));
      qpError(qp);
      return;
    }
    if (qp.sqSigAll || h.wr.sendFlags & IB_SEND_SIGNALED) {
      pushCqe(d, qp.sendCq, wcOf(qp, h.wr.wrId, IB_WC_SUCCESS, wcOpcode(h.wr.opcode), h.bytes));
    }
  }
  kick(qp);
}

interface Route {
  port: FabricPort;
  rport: FabricPort;
  rdev: IbDevice;
}

function route(qp: IbQp): Route | null {
  const d = qp.uctx.device;
  const port = ibDevicePort(d);
  const sw = port?.fabric;
  const rport = sw?.port(qp.attr.dlid) ?? null;
  if (!port || !sw || !rport || !(rport.owner as Kernel | null)) return null;
  const rdev = ibDevices(rport.owner as Kernel)[rport.nicIndex];
  return rdev ? { port, rport, rdev } : null;
}

/** Where the memory behind an MR sits on its machine's PCIe topology: a peer's BAR, or host memory. */
function mrPcieEnd(d: IbDevice, mr: IbMr | undefined): PciDev | Socket | null {
  if (!d.pdev) return null;
  const seg = mr?.umem.segments?.[0];
  if (seg) {
    const m = dmaContextOf(d.dmaDevice)?.lookup(seg.dma, 1) ?? null;
    const phys = m ? m.phys + (seg.dma - m.dmaAddr) : seg.dma;
    const region = iomemLookup(phys, 1, d.kernel);
    if (region?.owner instanceof PciDev) return region.owner;
  }
  return d.pdev.socket;
}

/** The PCIe leg between an MR's memory and the NIC: steady rate (GB/s) and latency (ns). */
export function ibPcieLeg(
  d: IbDevice,
  mr: IbMr | undefined,
  nicReads: boolean,
): { rateGBps: number; latencyNs: number } {
  const end = mrPcieEnd(d, mr);
  if (!end || !d.pdev) return { rateGBps: Number.POSITIVE_INFINITY, latencyNs: 0 };
  const p = nicReads
    ? predictTransfer(d.pdev.topology, end, d.pdev, 1, { initiator: 'dst' })
    : predictTransfer(d.pdev.topology, d.pdev, end, 1, { initiator: 'src' });
  return { rateGBps: p.rateGBps, latencyNs: p.path.latencyNs };
}

/** The MRs at both ends of a message, for its PCIe legs. */
interface Legs {
  src?: { d: IbDevice; mr: IbMr | undefined };
  dst?: { d: IbDevice; mr: IbMr | undefined };
}

/** A request message of a requester QP: the responder takes them in the order sent. */
interface Ordered {
  qp: IbQp;
  seq: number;
}

/** Numbers the next request message of `qp`. */
function nextRequest(qp: IbQp): Ordered {
  return { qp, seq: qp.txSeq++ };
}

/**
 * Request message `o` has reached the responder: `take` runs now if every earlier one has
 * been taken, else once they have (a later message can land first when its PCIe legs are
 * shorter; RC responders process requests in PSN order).
 */
function arriveInOrder(o: Ordered, take: () => void): void {
  const qp = o.qp;
  qp.rxHeld.set(o.seq, take);
  for (;;) {
    const next = qp.rxHeld.get(qp.rxNext);
    if (next === undefined) return;
    qp.rxHeld.delete(qp.rxNext);
    qp.rxNext++;
    next();
  }
}

/**
 * Sends `bytes` from `from` to `to` through the PCIe legs; `then` runs as HCA work on
 * `to`'s device (after every earlier request of the same QP for an `order`ed message);
 * `onSent` when the last byte has left `from`.
 */
function wire(
  from: FabricPort,
  to: FabricPort,
  todev: IbDevice,
  bytes: number,
  label: string,
  then: () => Promise<void> | void,
  legs: Legs = {},
  opts: { onSent?: () => void; order?: Ordered } = {},
): void {
  let pending = 1;
  const order = opts.order;
  const arrived = () => {
    if (--pending > 0) return;
    if (order) arriveInOrder(order, () => queueWork(todev, then));
    else queueWork(todev, then);
  };
  const sw = from.fabric!;
  const pa = legs.src && bytes > 0 ? legPath(legs.src.d, legs.src.mr, true) : null;
  const pb = legs.dst && bytes > 0 ? legPath(legs.dst.d, legs.dst.mr, false) : null;
  const ls = [pa, pb].filter((l): l is LegPath => l !== null);
  if (ls.every((l) => l.model.network === sw.network && l.path.unsupported === null)) {
    // One flow over the requester's PCIe leg, the wire and the responder's PCIe leg (the
    // machines share the switch's flow network): its rate is the max-min fair share over
    // all of them, so PCIe contention at either end slows the wire and the wire limits
    // what the legs take from PCIe. The legs keep their PCIe transfer tracepoints.
    const engine = sw.engine;
    const flow = sw.send(from, to, {
      bytes,
      label,
      owner: todev.kernel,
      extraUses: ls.flatMap((l) => l.model.flowUses(l.path)),
      extraLatencyNs: ls.reduce((t, l) => t + l.path.latencyNs, 0),
      onEnd: (f) => {
        for (const l of ls) {
          const args = { flow: f.id, state: f.state, bytes: f.landed };
          tracepoint(engine, 'pcie_transfer_end', args, l.d.kernel.name);
        }
      },
      onLand: arrived,
      onSent: opts.onSent,
    });
    for (const l of ls) {
      tracepoint(
        engine,
        'pcie_transfer_start',
        { flow: flow.id, src: l.path.src.id, dst: l.path.dst.id, bytes, route: l.path.route },
        l.d.kernel.name,
      );
    }
    return;
  }
  // Otherwise (a leg on a machine outside the switch's flow network, or one the PCIe
  // topology cannot route): the legs cap the network flow at their lone rates and run as
  // their own flows on their machines' networks; the message lands when all are over.
  const a = legs.src && bytes > 0 ? ibPcieLeg(legs.src.d, legs.src.mr, true) : null;
  const b = legs.dst && bytes > 0 ? ibPcieLeg(legs.dst.d, legs.dst.mr, false) : null;
  for (const [leg, nicReads] of [
    [legs.src, true],
    [legs.dst, false],
  ] as const) {
    if (!leg || bytes === 0) continue;
    const f = pcieLegFlow(leg.d, leg.mr, nicReads, bytes, label, arrived);
    if (f) pending++;
  }
  from.fabric!.send(from, to, {
    bytes,
    label,
    owner: todev.kernel,
    maxRateGBps: Math.min(a?.rateGBps ?? Number.POSITIVE_INFINITY, b?.rateGBps ?? Number.POSITIVE_INFINITY),
    extraLatencyNs: (a?.latencyNs ?? 0) + (b?.latencyNs ?? 0),
    onLand: arrived,
    onSent: opts.onSent,
  });
}

/** A PCIe leg of a message: its machine's transfer model and the path between the MR's memory and the NIC. */
interface LegPath {
  d: IbDevice;
  model: TransferModel;
  path: TransferPath;
}

function legPath(d: IbDevice, mr: IbMr | undefined, nicReads: boolean): LegPath | null {
  const end = mrPcieEnd(d, mr);
  const bus = pciBus(d.kernel);
  if (!end || !d.pdev || !bus) return null;
  const model = bus.transfers;
  const path = nicReads ? model.path(end, d.pdev, 'dst') : model.path(d.pdev, end, 'src');
  return { d, model, path };
}

/**
 * One PCIe leg of a message as a flow on its machine's PCIe model (memory or a peer's
 * BAR -> NIC when the NIC reads, NIC -> memory when it writes), so it shares PCIe links
 * with the machine's other DMA; `done` runs when it is over (done or failed). Null when
 * the NIC is not on a PCIe topology.
 */
function pcieLegFlow(
  d: IbDevice,
  mr: IbMr | undefined,
  nicReads: boolean,
  bytes: number,
  label: string,
  done: () => void,
): Flow | null {
  const end = mrPcieEnd(d, mr);
  const bus = pciBus(d.kernel);
  if (!end || !d.pdev || !bus) return null;
  return bus.transfers.start({
    src: nicReads ? end : d.pdev,
    dst: nicReads ? d.pdev : end,
    bytes,
    initiator: nicReads ? 'dst' : 'src',
    label: `${d.name} PCIe leg of ${label}`,
    onComplete: () => d.kernel.engine.runIn(d.kernel.engine.irqContextFor(d.kernel), done),
  });
}

function mrByKey(d: IbDevice, key: number | undefined): IbMr | undefined {
  return key === undefined ? undefined : d.mrs.get(key);
}

async function execSend(qp: IbQp, e: IbSendEntry): Promise<void> {
  if (!live(qp, e) || qp.inflight !== e || qp.state !== IB_QPS_RTS) return;
  const wr = e.wr;
  const rt = route(qp);
  if (!rt) {
    finishSend(qp, e, IB_WC_RETRY_EXC_ERR);
    return;
  }
  const { port, rport, rdev } = rt;
  const d = qp.uctx.device;
  const ack = (status: number) =>
    wire(rport, port, d, 0, `${rdev.name} ${status === IB_WC_SUCCESS ? 'ACK' : 'NAK'} qp ${qp.qpNum}`, () =>
      finishSend(qp, e, status),
    );
  const destQpn = qp.attr.destQpNum;
  if (wr.opcode === IB_WR_RDMA_READ) {
    const len = wr.sgList.reduce((s, g) => s + g.length, 0);
    e.bytes = len;
    const sendReq = () =>
      wire(
        port,
        rport,
        rdev,
        0,
        `${d.name} READ request ${len} B`,
        () => readResponder(),
        {},
        { onSent: () => sent(qp, e), order: nextRequest(qp) },
      );
    const readResponder = async (): Promise<void> => {
      const rqp = responderQp(rdev, destQpn);
      if (!rqp) {
        ack(IB_WC_RETRY_EXC_ERR); // dropped: the requester's retries run out
        return;
      }
      const data = new Uint8Array(len);
      const ok =
        rqp.attr.qpAccessFlags & IB_ACCESS_REMOTE_READ &&
        (await mrAccess(rdev, rqp.pd, wr.rkey ?? 0, wr.remoteAddr ?? 0, data, 0, len, 'remote-read')) === 0;
      if (!ok) {
        qpError(rqp);
        ack(IB_WC_REM_ACCESS_ERR);
        return;
      }
      wire(
        rport,
        port,
        d,
        len,
        `${rdev.name} READ response ${len} B`,
        async () => {
          if (!live(qp, e)) return;
          const r = await scatter(qp, wr.sgList, data);
          finishSend(qp, e, r < 0 ? IB_WC_LOC_PROT_ERR : IB_WC_SUCCESS);
        },
        { src: { d: rdev, mr: mrByKey(rdev, wr.rkey) }, dst: { d, mr: mrByKey(d, wr.sgList[0]?.lkey) } },
      );
    };
    sendReq();
    return;
  }
  if (wr.opcode === IB_WR_ATOMIC_CMP_AND_SWP || wr.opcode === IB_WR_ATOMIC_FETCH_AND_ADD) {
    execAtomic(qp, e, rt);
    return;
  }
  const data = await gather(qp, wr.sgList);
  if (data === null) {
    finishSend(qp, e, IB_WC_LOC_PROT_ERR);
    return;
  }
  e.bytes = data.length;
  const isWrite = wr.opcode === IB_WR_RDMA_WRITE || wr.opcode === IB_WR_RDMA_WRITE_WITH_IMM;
  wire(
    port,
    rport,
    rdev,
    data.length,
    `${d.name} ${isWrite ? 'RDMA WRITE' : 'SEND'} ${data.length} B`,
    async () => {
      const rqp = responderQp(rdev, destQpn);
      if (!rqp) {
        ack(IB_WC_RETRY_EXC_ERR);
        return;
      }
      if (isWrite) {
        const ok =
          rqp.attr.qpAccessFlags & IB_ACCESS_REMOTE_WRITE &&
          (await mrAccess(
            rdev,
            rqp.pd,
            wr.rkey ?? 0,
            wr.remoteAddr ?? 0,
            data,
            0,
            data.length,
            'remote-write',
          )) === 0;
        if (!ok) {
          qpError(rqp);
          ack(IB_WC_REM_ACCESS_ERR);
          return;
        }
        ack(IB_WC_SUCCESS);
        return;
      }
      const deliver = async (): Promise<void> => {
        if (rqp.dead || rqp.state === IB_QPS_ERR) return;
        const rwr = rqp.srq ? rqp.srq.rq.shift() : rqp.rq.shift();
        if (!rwr) {
          if (qp.attr.rnrRetry === IB_RNR_RETRY_INFINITE) {
            // The requester retries for ever: deliver as soon as a receive is posted.
            (rqp.srq ?? rqp).pendingIn.push(() => queueWork(rdev, deliver));
            return;
          }
          // Receiver Not Ready: an RNR NAK carrying the responder's min_rnr_timer.
          const delay = ibRnrTimerNs(rqp.attr.minRnrTimer);
          wire(rport, port, d, 0, `${rdev.name} RNR NAK qp ${qp.qpNum}`, () => rnrNak(qp, e, delay));
          return;
        }
        const cap = rwr.sgList.reduce((s, g) => s + g.length, 0);
        if (cap < data.length) {
          pushCqe(rdev, rqp.recvCq, wcOf(rqp, rwr.wrId, IB_WC_LOC_LEN_ERR, IB_WC_RECV, 0));
          qpError(rqp);
          ack(IB_WC_REM_INV_REQ_ERR);
          return;
        }
        const r = await scatter(rqp, rwr.sgList, data);
        if (r < 0) {
          pushCqe(rdev, rqp.recvCq, wcOf(rqp, rwr.wrId, IB_WC_LOC_PROT_ERR, IB_WC_RECV, 0));
          qpError(rqp);
          ack(IB_WC_REM_OP_ERR);
          return;
        }
        const wc = wcOf(rqp, rwr.wrId, IB_WC_SUCCESS, IB_WC_RECV, data.length);
        if (wr.opcode === IB_WR_SEND_WITH_IMM) wc.immData = wr.immData ?? 0;
        pushCqe(rdev, rqp.recvCq, wc);
        ack(IB_WC_SUCCESS);
      };
      await deliver();
    },
    {
      src: { d, mr: mrByKey(d, wr.sgList[0]?.lkey) },
      dst: { d: rdev, mr: isWrite ? mrByKey(rdev, wr.rkey) : undefined },
    },
    // A WRITE frees the transmit slot once its payload has left; a SEND holds it to its ACK.
    { onSent: isWrite ? () => sent(qp, e) : undefined, order: nextRequest(qp) },
  );
}

/**
 * The requester got an RNR NAK for `e`: after `rnr_retry` NAKs the WR completes with
 * IB_WC_RNR_RETRY_EXC_ERR (and the QP goes to ERR); before that it is sent again once
 * the responder's RNR timer has run out.
 */
function rnrNak(qp: IbQp, e: IbSendEntry, delayNs: number): void {
  if (!live(qp, e) || qp.inflight !== e) return;
  e.rnrNaks = (e.rnrNaks ?? 0) + 1;
  if (e.rnrNaks > qp.attr.rnrRetry) {
    finishSend(qp, e, IB_WC_RNR_RETRY_EXC_ERR);
    return;
  }
  const d = qp.uctx.device;
  d.kernel.engine.after(delayNs, () => queueWork(d, () => execSend(qp, e)));
}

/**
 * An atomic WR (IBTA vol. 1 9.4.5): 8 bytes at an 8-byte aligned remote address of an MR
 * with REMOTE_ATOMIC, on a QP whose access flags allow it; the responder reads the old
 * value, writes the new one in the same HCA step, and returns the old value, which lands
 * in the requester's single 8-byte SGE. A misaligned address is an invalid request, a
 * missing right a remote access error; a local SGE other than 8 bytes a local length error.
 */
function execAtomic(qp: IbQp, e: IbSendEntry, rt: Route): void {
  const wr = e.wr;
  const { port, rport, rdev } = rt;
  const d = qp.uctx.device;
  const ack = (status: number) =>
    wire(rport, port, d, 0, `${rdev.name} NAK qp ${qp.qpNum}`, () => finishSend(qp, e, status));
  const local = wr.sgList.reduce((s, g) => s + g.length, 0);
  if (local !== IB_ATOMIC_SIZE) {
    finishSend(qp, e, IB_WC_LOC_LEN_ERR);
    return;
  }
  e.bytes = IB_ATOMIC_SIZE;
  const destQpn = qp.attr.destQpNum;
  const raddr = wr.remoteAddr ?? 0;
  const rkey = wr.rkey ?? 0;
  const name = wr.opcode === IB_WR_ATOMIC_CMP_AND_SWP ? 'CMP_AND_SWP' : 'FETCH_AND_ADD';
  const responder = async (): Promise<void> => {
    const rqp = responderQp(rdev, destQpn);
    if (!rqp) {
      ack(IB_WC_RETRY_EXC_ERR);
      return;
    }
    if (raddr % IB_ATOMIC_SIZE !== 0) {
      qpError(rqp);
      ack(IB_WC_REM_INV_REQ_ERR);
      return;
    }
    const old = new Uint8Array(IB_ATOMIC_SIZE);
    const ok =
      rqp.attr.qpAccessFlags & IB_ACCESS_REMOTE_ATOMIC &&
      (await mrAccess(rdev, rqp.pd, rkey, raddr, old, 0, IB_ATOMIC_SIZE, 'atomic-read')) === 0;
    if (!ok) {
      qpError(rqp);
      ack(IB_WC_REM_ACCESS_ERR);
      return;
    }
    const oldValue = new DataView(old.buffer).getBigUint64(0, true);
    const cmpAdd = wr.compareAdd ?? 0n;
    const next =
      wr.opcode === IB_WR_ATOMIC_FETCH_AND_ADD
        ? BigInt.asUintN(64, oldValue + cmpAdd)
        : oldValue === cmpAdd
          ? (wr.swap ?? 0n)
          : oldValue;
    const nb = new Uint8Array(IB_ATOMIC_SIZE);
    new DataView(nb.buffer).setBigUint64(0, next, true);
    if ((await mrAccess(rdev, rqp.pd, rkey, raddr, nb, 0, IB_ATOMIC_SIZE, 'atomic-write')) !== 0) {
      qpError(rqp);
      ack(IB_WC_REM_ACCESS_ERR);
      return;
    }
    wire(rport, port, d, IB_ATOMIC_SIZE, `${rdev.name} ATOMIC ${name} response`, async () => {
      if (!live(qp, e)) return;
      const r = await scatter(qp, wr.sgList, old);
      finishSend(qp, e, r < 0 ? IB_WC_LOC_PROT_ERR : IB_WC_SUCCESS);
    });
  };
  wire(
    port,
    rport,
    rdev,
    0,
    `${d.name} ATOMIC ${name} request`,
    responder,
    {},
    {
      onSent: () => sent(qp, e),
      order: nextRequest(qp),
    },
  );
}

function responderQp(rdev: IbDevice, qpn: number): IbQp | null {
  const rqp = rdev.qps.get(qpn);
  if (!rqp || rqp.dead) return null;
  if (rqp.state !== IB_QPS_RTR && rqp.state !== IB_QPS_RTS) return null;
  return rqp;
}
