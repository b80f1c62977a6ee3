/**
 * The RDMA core's objects: a registered device and the verbs objects a user context
 * creates on it (protection domain, memory region, completion queue, queue pair), with
 * the work requests and completions that flow through them.
 *
 * Follows include/rdma/ib_verbs.h of Linux 6.12 (struct ib_device, ib_ucontext, ib_pd,
 * ib_mr, ib_cq, ib_qp, ib_send_wr / ib_rdma_wr, ib_recv_wr, ib_sge, ib_wc). Keys: an
 * MR's lkey and rkey are equal, 24-bit index << 8 | 8-bit key, as mlx5 builds mkeys
 * (drivers/infiniband/hw/mlx5/mr.c). QP numbers start at 0x100 per device (QPs 0 and 1
 * are the special QPs).
 */
import type { Device } from '../../kernel/device.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import type { PciDev } from '../../kernel/pci/pci.ts';
import { WaitQueueHead } from '../../kernel/wait.ts';
import type { Task } from '../../sim/engine.ts';
import type { IbUmem } from './ib-umem.ts';
import { IB_QPS_RESET, type IbQpState } from './ib-verbs.ts';
import type { IbUmemDmabuf } from './umem-dmabuf.ts';

/** A scatter/gather element (struct ib_sge). */
export interface IbSge {
  /** Address: a virtual address inside the MR's IOVA range. */
  addr: number;
  /** Length in bytes. */
  length: number;
  /** Local key of the MR. */
  lkey: number;
}

/** A send work request (struct ib_send_wr with the ib_rdma_wr fields). */
export interface IbSendWr {
  /** Returned in the completion. */
  wrId: number | bigint;
  /** IB_WR_*. */
  opcode: number;
  /** IB_SEND_*. */
  sendFlags: number;
  /** Local buffers. */
  sgList: IbSge[];
  /** Remote address (RDMA WRITE/READ). */
  remoteAddr?: number;
  /** Remote key (RDMA WRITE/READ, atomics). */
  rkey?: number;
  /** Immediate data. */
  immData?: number;
  /** Atomics: the value to compare (CMP_AND_SWP) or to add (FETCH_AND_ADD). */
  compareAdd?: bigint;
  /** CMP_AND_SWP: the value written when the compare matches. */
  swap?: bigint;
}

/** A receive work request (struct ib_recv_wr). */
export interface IbRecvWr {
  /** Returned in the completion. */
  wrId: number | bigint;
  /** Local buffers. */
  sgList: IbSge[];
}

/** A work completion (struct ib_wc). */
export interface IbWc {
  /** The WR's id. */
  wrId: number | bigint;
  /** IB_WC_* status. */
  status: number;
  /** IB_WC_* opcode (valid for successful completions; RECV for receive-queue flushes). */
  opcode: number;
  /** Bytes received (receives) or transferred. */
  byteLen: number;
  /** The local QP number. */
  qpNum: number;
  /** Vendor error syndrome (0 on success). */
  vendorErr: number;
  /** Immediate data of a receive, if any. */
  immData?: number;
}

/** Device capabilities the driver advertises (a subset of ib_device_attr and the ops it sets). */
export interface IbDeviceCaps {
  /** The driver implements reg_user_mr_dmabuf (false: -EOPNOTSUPP, as for drivers without it). */
  dmabufMr: boolean;
  /** ODP-capable: dma-buf MRs are dynamic (mlx5); false: pinned (efa, irdma). */
  odp: boolean;
  /** Largest MR, bytes. */
  maxMrSize: number;
  /** Most SGEs per WR. */
  maxSge: number;
  /** Most outstanding WRs per queue. */
  maxQpWr: number;
  /** Most CQ entries. */
  maxCqe: number;
}

/** A registered RDMA device (struct ib_device). */
export class IbDevice {
  /** Capabilities. */
  readonly caps: IbDeviceCaps = {
    dmabufMr: true,
    odp: true,
    maxMrSize: 2 ** 48,
    maxSge: 30,
    maxQpWr: 32768,
    maxCqe: 4194303,
  };
  /** MRs by key index. */
  readonly mrs = new Map<number, IbMr>();
  /** QPs by number. */
  readonly qps = new Map<number, IbQp>();
  /** Open user contexts. */
  readonly contexts = new Set<IbUcontext>();
  /** Next MR index. */
  nextMrIndex = 1;
  /** Next QP number. */
  nextQpn = 0x100;
  /** Next object handle. */
  nextHandle = 1;
  /** Work for the HCA's engine (run in order by its kernel thread). */
  readonly work: (() => Promise<void> | void)[] = [];
  /** Where the engine thread sleeps. */
  readonly workWait = new WaitQueueHead('rdma_hca_work');
  /** The engine thread, once started. */
  thread: Task | null = null;

  /** Created by the driver's probe. */
  constructor(
    /** The kernel it is registered in. */
    readonly kernel: Kernel,
    /** Name (`mlx5_0`). */
    readonly name: string,
    /** Index among the kernel's RDMA devices (`uverbs<index>`). */
    readonly index: number,
    /** The PCI function. */
    readonly pdev: PciDev | null,
    /** The DMA device (pdev->dev). */
    readonly dmaDevice: Device,
  ) {}

  /** The node GUID, derived from the index (for ibv_get_device_guid). */
  get guid(): bigint {
    return 0x0002c90300000000n + BigInt(this.index);
  }
}

/** A user context: what one open of /dev/infiniband/uverbsN owns (struct ib_ucontext). */
export class IbUcontext {
  /** PDs. */
  readonly pds = new Set<IbPd>();
  /** MRs. */
  readonly mrs = new Set<IbMr>();
  /** CQs. */
  readonly cqs = new Set<IbCq>();
  /** QPs. */
  readonly qps = new Set<IbQp>();
  /** Shared receive queues. */
  readonly srqs = new Set<IbSrq>();
  /** Set once the file is released. */
  closed = false;

  /** Created at open. */
  constructor(
    /** The device. */
    readonly device: IbDevice,
  ) {}
}

/** A protection domain (struct ib_pd). */
export class IbPd {
  /** Live MRs and QPs using it. */
  usecnt = 0;
  /** Set once deallocated. */
  dead = false;

  /** Use ib_alloc_pd. */
  constructor(
    /** The owning context. */
    readonly uctx: IbUcontext,
    /** Handle. */
    readonly handle: number,
  ) {}
}

/** A memory region (struct ib_mr). */
export class IbMr {
  /** Set once deregistered. */
  dead = false;

  /** Use reg_user_mr / reg_user_mr_dmabuf. */
  constructor(
    /** The PD. */
    readonly pd: IbPd,
    /** Local key. */
    readonly lkey: number,
    /** Remote key (equal to lkey). */
    readonly rkey: number,
    /** Start of the IOVA range. */
    readonly iova: number,
    /** Length. */
    readonly length: number,
    /** IB_ACCESS_* flags. */
    readonly access: number,
    /** The memory. */
    readonly umem: IbUmem | IbUmemDmabuf,
  ) {}
}

/** A completion queue (struct ib_cq). */
export class IbCq {
  /** Completions not polled yet, oldest first. */
  readonly entries: IbWc[] = [];
  /** Woken at every new completion. */
  readonly wait = new WaitQueueHead('ib_cq');
  /** QPs using it. */
  usecnt = 0;
  /** Completions lost to overflow. */
  overflows = 0;
  /** Set once destroyed. */
  dead = false;

  /** Use ib_create_cq. */
  constructor(
    /** The owning context. */
    readonly uctx: IbUcontext,
    /** Handle. */
    readonly handle: number,
    /** Capacity. */
    readonly cqe: number,
  ) {}
}

/** Attributes set through modify_qp. */
export interface IbQpAttr {
  /** IB_QP_ACCESS_FLAGS: what remote peers may do (REMOTE_WRITE/READ/ATOMIC). */
  qpAccessFlags: number;
  /** IB_QP_PORT. */
  portNum: number;
  /** IB_QP_PKEY_INDEX. */
  pkeyIndex: number;
  /** IB_QP_AV: the destination LID. */
  dlid: number;
  /** IB_QP_DEST_QPN. */
  destQpNum: number;
  /** IB_QP_PATH_MTU (IB_MTU_*). */
  pathMtu: number;
  /** IB_QP_RQ_PSN. */
  rqPsn: number;
  /** IB_QP_SQ_PSN. */
  sqPsn: number;
  /** IB_QP_MAX_DEST_RD_ATOMIC. */
  maxDestRdAtomic: number;
  /** IB_QP_MAX_QP_RD_ATOMIC. */
  maxRdAtomic: number;
  /** IB_QP_MIN_RNR_TIMER. */
  minRnrTimer: number;
  /** IB_QP_TIMEOUT. */
  timeout: number;
  /** IB_QP_RETRY_CNT. */
  retryCnt: number;
  /** IB_QP_RNR_RETRY. */
  rnrRetry: number;
}

/** A pending send WR and what the HCA knows about it. */
export interface IbSendEntry {
  /** The WR. */
  wr: IbSendWr;
  /** Bytes moved. */
  bytes: number;
  /** RNR NAKs received for this WR so far. */
  rnrNaks?: number;
  /** The HCA has started it (its request went or is going on the wire). */
  issued?: boolean;
  /** Its completion status once known (it completes when every older WR has). */
  status?: number;
}

/** A shared receive queue (struct ib_srq): receive WRs that any QP attached to it consumes, in order. */
export class IbSrq {
  /** Receive WRs posted and not consumed. */
  readonly rq: IbRecvWr[] = [];
  /** Incoming SENDs of attached QPs waiting for a receive WR (requesters retrying for ever). */
  readonly pendingIn: (() => void)[] = [];
  /** QPs attached. */
  usecnt = 0;
  /** Set once destroyed. */
  dead = false;

  /** Use ib_create_srq. */
  constructor(
    /** The owning context. */
    readonly uctx: IbUcontext,
    /** Handle. */
    readonly handle: number,
    /** The PD. */
    readonly pd: IbPd,
    /** Capacities. */
    readonly cap: { maxWr: number; maxSge: number },
  ) {}
}

/** An RC queue pair (struct ib_qp). */
export class IbQp {
  /** Current state. */
  state: IbQpState = IB_QPS_RESET;
  /** Attributes. */
  readonly attr: IbQpAttr = {
    qpAccessFlags: 0,
    portNum: 1,
    pkeyIndex: 0,
    dlid: 0,
    destQpNum: 0,
    pathMtu: 5,
    rqPsn: 0,
    sqPsn: 0,
    maxDestRdAtomic: 0,
    maxRdAtomic: 0,
    minRnrTimer: 0,
    timeout: 14,
    retryCnt: 7,
    rnrRetry: 7,
  };
  /** Send WRs posted and not completed, oldest first (several may be in flight). */
  readonly sq: IbSendEntry[] = [];
  /**
   * The WR holding the QP's transmit slot: its request is being sent (an RDMA WRITE's
   * payload, a READ or atomic request), or a SEND waiting for its ACK or RNR NAK. The next
   * WR starts when the slot frees; WRs before it may still wait for ACKs or responses.
   */
  inflight: IbSendEntry | null = null;
  /** Receive WRs posted and not consumed. */
  readonly rq: IbRecvWr[] = [];
  /** Incoming SENDs waiting for a receive WR (the requester's RNR retries, unbounded). */
  readonly pendingIn: (() => void)[] = [];
  /** The SRQ its receives come from (set at creation), or null for its own receive queue. */
  srq: IbSrq | null = null;
  /** Set once destroyed. */
  dead = false;
  /** Sequence number of the next request message it sends (a model of the PSN order). */
  txSeq = 0;
  /** Sequence number of the next of its request messages the responder takes. */
  rxNext = 0;
  /** Its request messages that reached the responder ahead of an earlier one, by sequence number. */
  readonly rxHeld = new Map<number, () => void>();

  /** Use ib_create_qp. */
  constructor(
    /** The owning context. */
    readonly uctx: IbUcontext,
    /** Handle. */
    readonly handle: number,
    /** QP number. */
    readonly qpNum: number,
    /** The PD. */
    readonly pd: IbPd,
    /** Send CQ. */
    readonly sendCq: IbCq,
    /** Receive CQ. */
    readonly recvCq: IbCq,
    /** Capacities. */
    readonly cap: { maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number },
    /** IB_SIGNAL_ALL_WR: every send WR completes, not only SIGNALED ones. */
    readonly sqSigAll: boolean,
  ) {}
}

const DEVICES = Symbol('ib_devices');

/** The RDMA devices registered in a kernel, in registration order. */
export function ibDevices(k: Kernel): IbDevice[] {
  let l = k.singletons.get(DEVICES) as IbDevice[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(DEVICES, l);
  }
  return l;
}
