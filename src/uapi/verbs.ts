/**
 * libibverbs for programs: the verbs API named as in rdma-core's libibverbs
 * (libibverbs/verbs.h, man pages ibv_reg_mr(3), ibv_reg_dmabuf_mr in ibv_reg_mr.3,
 * ibv_create_qp(3), ibv_modify_qp(3), ibv_post_send(3), ibv_poll_cq(3)), with the same
 * constant values (IBV_ACCESS_*, IBV_WR_*, IBV_WC_*, IBV_QPS_*, IBV_QP_*).
 *
 * Each call takes what libibverbs takes (the `sys` of the calling process first where
 * libibverbs needs no object yet), returns an object, and throws an `ErrnoError` where
 * libibverbs returns NULL/-1 with errno. The device is opened through its uverbs file
 * (`/dev/infiniband/uverbsN`), so everything created through the context belongs to that
 * fd: closing it or exiting the process destroys the QPs, MRs, CQs and PDs and detaches
 * dma-bufs. Struct fields keep libibverbs' snake_case names.
 */
import {
  type IbCq,
  type IbMr,
  type IbPd,
  type IbQp,
  type IbSrq,
  type IbUcontext,
  type IbWc,
  ibDevices,
} from '../drivers/rdma/ib-core.ts';
import { IB_QP_ACCESS_FLAGS, IB_QP_STATE_NAMES, type IbQpState } from '../drivers/rdma/ib-verbs.ts';
import {
  ibAllocPd,
  ibCreateCq,
  ibCreateQp,
  ibCreateSrq,
  ibDeallocPd,
  ibDeregMr,
  ibDestroyCq,
  ibDestroyQp,
  ibDestroySrq,
  ibDevicePort,
  ibModifyQp,
  ibPollCq,
  ibPostRecv,
  ibPostSend,
  ibPostSrqRecv,
  ibRegUserMr,
  ibRegUserMrDmabuf,
} from '../drivers/rdma/rdma-nic.ts';
import { uverbsContextOf } from '../drivers/rdma/uverbs-main.ts';
import { checkErrno, ErrnoError } from './errno-error.ts';
import type { Sys } from './sys.ts';

/** IBV_ACCESS_LOCAL_WRITE. */
export const IBV_ACCESS_LOCAL_WRITE = 1;
/** IBV_ACCESS_REMOTE_WRITE. */
export const IBV_ACCESS_REMOTE_WRITE = 2;
/** IBV_ACCESS_REMOTE_READ. */
export const IBV_ACCESS_REMOTE_READ = 4;
/** IBV_ACCESS_REMOTE_ATOMIC. */
export const IBV_ACCESS_REMOTE_ATOMIC = 8;
/** IBV_ACCESS_MW_BIND. */
export const IBV_ACCESS_MW_BIND = 16;
/** IBV_ACCESS_ZERO_BASED. */
export const IBV_ACCESS_ZERO_BASED = 32;
/** IBV_ACCESS_ON_DEMAND. */
export const IBV_ACCESS_ON_DEMAND = 64;
/** IBV_ACCESS_HUGETLB. */
export const IBV_ACCESS_HUGETLB = 128;
/** IBV_ACCESS_RELAXED_ORDERING (IBV_ACCESS_OPTIONAL_FIRST). */
export const IBV_ACCESS_RELAXED_ORDERING = 1 << 20;

/** IBV_WR_RDMA_WRITE. */
export const IBV_WR_RDMA_WRITE = 0;
/** IBV_WR_RDMA_WRITE_WITH_IMM. */
export const IBV_WR_RDMA_WRITE_WITH_IMM = 1;
/** IBV_WR_SEND. */
export const IBV_WR_SEND = 2;
/** IBV_WR_SEND_WITH_IMM. */
export const IBV_WR_SEND_WITH_IMM = 3;
/** IBV_WR_RDMA_READ. */
export const IBV_WR_RDMA_READ = 4;
/** IBV_WR_ATOMIC_CMP_AND_SWP: 8 bytes at an 8-byte aligned remote address; the old value lands in the SGE. */
export const IBV_WR_ATOMIC_CMP_AND_SWP = 5;
/** IBV_WR_ATOMIC_FETCH_AND_ADD: 8 bytes at an 8-byte aligned remote address; the old value lands in the SGE. */
export const IBV_WR_ATOMIC_FETCH_AND_ADD = 6;

/** IBV_SEND_FENCE. */
export const IBV_SEND_FENCE = 1;
/** IBV_SEND_SIGNALED. */
export const IBV_SEND_SIGNALED = 2;
/** IBV_SEND_SOLICITED. */
export const IBV_SEND_SOLICITED = 4;
/** IBV_SEND_INLINE. */
export const IBV_SEND_INLINE = 8;

/** IBV_WC_SUCCESS. */
export const IBV_WC_SUCCESS = 0;
/** IBV_WC_LOC_LEN_ERR. */
export const IBV_WC_LOC_LEN_ERR = 1;
/** IBV_WC_LOC_QP_OP_ERR. */
export const IBV_WC_LOC_QP_OP_ERR = 2;
/** IBV_WC_LOC_PROT_ERR. */
export const IBV_WC_LOC_PROT_ERR = 4;
/** IBV_WC_WR_FLUSH_ERR. */
export const IBV_WC_WR_FLUSH_ERR = 5;
/** IBV_WC_LOC_ACCESS_ERR. */
export const IBV_WC_LOC_ACCESS_ERR = 8;
/** IBV_WC_REM_INV_REQ_ERR. */
export const IBV_WC_REM_INV_REQ_ERR = 9;
/** IBV_WC_REM_ACCESS_ERR. */
export const IBV_WC_REM_ACCESS_ERR = 10;
/** IBV_WC_REM_OP_ERR. */
export const IBV_WC_REM_OP_ERR = 11;
/** IBV_WC_RETRY_EXC_ERR. */
export const IBV_WC_RETRY_EXC_ERR = 12;
/** IBV_WC_RNR_RETRY_EXC_ERR. */
export const IBV_WC_RNR_RETRY_EXC_ERR = 13;
/** IBV_WC_GENERAL_ERR. */
export const IBV_WC_GENERAL_ERR = 21;

/** IBV_WC_SEND (completion opcode). */
export const IBV_WC_SEND = 0;
/** IBV_WC_RDMA_WRITE. */
export const IBV_WC_RDMA_WRITE = 1;
/** IBV_WC_RDMA_READ. */
export const IBV_WC_RDMA_READ = 2;
/** IBV_WC_COMP_SWAP. */
export const IBV_WC_COMP_SWAP = 3;
/** IBV_WC_FETCH_ADD. */
export const IBV_WC_FETCH_ADD = 4;
/** IBV_WC_RECV. */
export const IBV_WC_RECV = 128;
/** IBV_WC_RECV_RDMA_WITH_IMM. */
export const IBV_WC_RECV_RDMA_WITH_IMM = 129;

/** IBV_QPS_RESET. */
export const IBV_QPS_RESET = 0;
/** IBV_QPS_INIT. */
export const IBV_QPS_INIT = 1;
/** IBV_QPS_RTR. */
export const IBV_QPS_RTR = 2;
/** IBV_QPS_RTS. */
export const IBV_QPS_RTS = 3;
/** IBV_QPS_SQD. */
export const IBV_QPS_SQD = 4;
/** IBV_QPS_SQE. */
export const IBV_QPS_SQE = 5;
/** IBV_QPS_ERR. */
export const IBV_QPS_ERR = 6;

/** IBV_QPT_RC. */
export const IBV_QPT_RC = 2;
/** IBV_QPT_UC. */
export const IBV_QPT_UC = 3;
/** IBV_QPT_UD. */
export const IBV_QPT_UD = 4;

/** IBV_QP_STATE. */
export const IBV_QP_STATE = 1;
/** IBV_QP_CUR_STATE. */
export const IBV_QP_CUR_STATE = 1 << 1;
/** IBV_QP_ACCESS_FLAGS. */
export const IBV_QP_ACCESS_FLAGS = 1 << 3;
/** IBV_QP_PKEY_INDEX. */
export const IBV_QP_PKEY_INDEX = 1 << 4;
/** IBV_QP_PORT. */
export const IBV_QP_PORT = 1 << 5;
/** IBV_QP_QKEY. */
export const IBV_QP_QKEY = 1 << 6;
/** IBV_QP_AV. */
export const IBV_QP_AV = 1 << 7;
/** IBV_QP_PATH_MTU. */
export const IBV_QP_PATH_MTU = 1 << 8;
/** IBV_QP_TIMEOUT. */
export const IBV_QP_TIMEOUT = 1 << 9;
/** IBV_QP_RETRY_CNT. */
export const IBV_QP_RETRY_CNT = 1 << 10;
/** IBV_QP_RNR_RETRY. */
export const IBV_QP_RNR_RETRY = 1 << 11;
/** IBV_QP_RQ_PSN. */
export const IBV_QP_RQ_PSN = 1 << 12;
/** IBV_QP_MAX_QP_RD_ATOMIC. */
export const IBV_QP_MAX_QP_RD_ATOMIC = 1 << 13;
/** IBV_QP_MIN_RNR_TIMER. */
export const IBV_QP_MIN_RNR_TIMER = 1 << 15;
/** IBV_QP_SQ_PSN. */
export const IBV_QP_SQ_PSN = 1 << 16;
/** IBV_QP_MAX_DEST_RD_ATOMIC. */
export const IBV_QP_MAX_DEST_RD_ATOMIC = 1 << 17;
/** IBV_QP_DEST_QPN. */
export const IBV_QP_DEST_QPN = 1 << 20;

/** IBV_MTU_1024. */
export const IBV_MTU_1024 = 3;
/** IBV_MTU_4096. */
export const IBV_MTU_4096 = 5;

/** IBV_PORT_ACTIVE. */
export const IBV_PORT_ACTIVE = 4;
/** IBV_PORT_DOWN. */
export const IBV_PORT_DOWN = 1;

const WC_STATUS_STR: Record<number, string> = {
  0: 'success',
  1: 'local length error',
  2: 'local QP operation error',
  4: 'local protection error',
  5: 'Work Request Flushed Error',
  8: 'local access error',
  9: 'remote invalid request error',
  10: 'remote access error',
  11: 'remote operation error',
  12: 'transport retry counter exceeded',
  21: 'general error',
};

/** ibv_wc_status_str(). */
export function ibv_wc_status_str(status: number): string {
  return WC_STATUS_STR[status] ?? 'unknown';
}

/** An RDMA device as ibv_get_device_list lists it (struct ibv_device). */
export interface IbvDevice {
  /** Kernel device name (`mlx5_0`). */
  readonly name: string;
  /** The uverbs node (`/dev/infiniband/uverbs0`). */
  readonly dev_path: string;
  /** Node GUID. */
  readonly guid: bigint;
}

/** An open device (struct ibv_context). */
export interface IbvContext {
  /** The process's syscall ABI. */
  readonly sys: Sys;
  /** The device. */
  readonly device: IbvDevice;
  /** The uverbs fd (cmd_fd). */
  readonly cmd_fd: number;
  /** @internal the kernel's user context. */
  readonly uctx: IbUcontext;
}

/** A protection domain (struct ibv_pd). */
export interface IbvPd {
  /** The context. */
  readonly context: IbvContext;
  /** Handle. */
  readonly handle: number;
  /** @internal */
  readonly pd: IbPd;
}

/** A memory region (struct ibv_mr). */
export interface IbvMr {
  /** The context. */
  readonly context: IbvContext;
  /** The PD. */
  readonly pd: IbvPd;
  /** The address (IOVA) the MR starts at. */
  readonly addr: number;
  /** Length. */
  readonly length: number;
  /** Local key. */
  readonly lkey: number;
  /** Remote key. */
  readonly rkey: number;
  /** @internal */
  readonly mr: IbMr;
}

/** A completion queue (struct ibv_cq). */
export interface IbvCq {
  /** The context. */
  readonly context: IbvContext;
  /** Capacity. */
  readonly cqe: number;
  /** @internal */
  readonly cq: IbCq;
}

/** QP capacities (struct ibv_qp_cap). */
export interface IbvQpCap {
  /** Send WRs. */
  max_send_wr: number;
  /** Receive WRs. */
  max_recv_wr: number;
  /** SGEs per send WR. */
  max_send_sge: number;
  /** SGEs per receive WR. */
  max_recv_sge: number;
  /** Inline data (ignored). */
  max_inline_data?: number;
}

/** ibv_create_qp's attributes (struct ibv_qp_init_attr). */
export interface IbvQpInitAttr {
  /** Send CQ. */
  send_cq: IbvCq;
  /** Receive CQ. */
  recv_cq: IbvCq;
  /** Capacities. */
  cap: IbvQpCap;
  /** IBV_QPT_*. */
  qp_type: number;
  /** Signal every send WR. */
  sq_sig_all?: number | boolean;
  /** Take receives from this shared receive queue. */
  srq?: IbvSrq;
}

/** SRQ attributes (struct ibv_srq_attr). */
export interface IbvSrqAttr {
  /** Receive WRs it holds. */
  max_wr: number;
  /** SGEs per receive WR. */
  max_sge: number;
  /** Limit for the SRQ-limit event (not modelled: 0). */
  srq_limit?: number;
}

/** A shared receive queue (struct ibv_srq). */
export interface IbvSrq {
  /** The context. */
  readonly context: IbvContext;
  /** The PD. */
  readonly pd: IbvPd;
  /** @internal */
  readonly srq: IbSrq;
}

/** A queue pair (struct ibv_qp). */
export interface IbvQp {
  /** The context. */
  readonly context: IbvContext;
  /** QP number. */
  readonly qp_num: number;
  /** The PD. */
  readonly pd: IbvPd;
  /** Current state (read from the kernel). */
  readonly state: number;
  /** @internal */
  readonly qp: IbQp;
}

/** An address vector (struct ibv_ah_attr, the fields RC needs). */
export interface IbvAhAttr {
  /** Destination LID. */
  dlid: number;
  /** Local port. */
  port_num?: number;
  /** Service level. */
  sl?: number;
}

/** ibv_modify_qp's attributes (struct ibv_qp_attr). */
export interface IbvQpAttr {
  /** IBV_QPS_*. */
  qp_state?: number;
  /** Remote rights (IBV_ACCESS_REMOTE_*). */
  qp_access_flags?: number;
  /** Port. */
  port_num?: number;
  /** P_Key index. */
  pkey_index?: number;
  /** Address vector. */
  ah_attr?: IbvAhAttr;
  /** Remote QP number. */
  dest_qp_num?: number;
  /** IBV_MTU_*. */
  path_mtu?: number;
  /** Receive PSN. */
  rq_psn?: number;
  /** Send PSN. */
  sq_psn?: number;
  /** Responder resources. */
  max_dest_rd_atomic?: number;
  /** Initiator depth. */
  max_rd_atomic?: number;
  /** RNR NAK timer. */
  min_rnr_timer?: number;
  /** Local ACK timeout. */
  timeout?: number;
  /** Retry count. */
  retry_cnt?: number;
  /** RNR retry count. */
  rnr_retry?: number;
}

/** A scatter/gather element (struct ibv_sge). */
export interface IbvSge {
  /** Address. */
  addr: number;
  /** Length. */
  length: number;
  /** Local key. */
  lkey: number;
}

/** A send work request (struct ibv_send_wr). */
export interface IbvSendWr {
  /** Id returned in the completion. */
  wr_id: number | bigint;
  /** IBV_WR_*. */
  opcode: number;
  /** IBV_SEND_*. */
  send_flags?: number;
  /** Buffers. */
  sg_list: IbvSge[];
  /** RDMA target (`wr.rdma`) or atomic operation (`wr.atomic`). */
  wr?: {
    rdma?: { remote_addr: number; rkey: number };
    atomic?: { remote_addr: number; compare_add: bigint | number; swap?: bigint | number; rkey: number };
  };
  /** Immediate data. */
  imm_data?: number;
}

/** A receive work request (struct ibv_recv_wr). */
export interface IbvRecvWr {
  /** Id returned in the completion. */
  wr_id: number | bigint;
  /** Buffers. */
  sg_list: IbvSge[];
}

/** A work completion (struct ibv_wc). */
export interface IbvWc {
  /** The WR's id. */
  wr_id: number | bigint;
  /** IBV_WC_* status. */
  status: number;
  /** IBV_WC_* opcode. */
  opcode: number;
  /** Vendor syndrome. */
  vendor_err: number;
  /** Bytes. */
  byte_len: number;
  /** Immediate data. */
  imm_data?: number;
  /** Local QP number. */
  qp_num: number;
}

/** Port attributes (struct ibv_port_attr, the fields programs use). */
export interface IbvPortAttr {
  /** IBV_PORT_ACTIVE when cabled, IBV_PORT_DOWN otherwise. */
  state: number;
  /** LID (0 when down). */
  lid: number;
  /** IBV_MTU_*. */
  active_mtu: number;
  /** Link rate, Gb/s (the model's stand-in for active_speed x active_width). */
  rate_gbps: number;
}

/** ibv_get_device_list(): the RDMA devices of the process's machine. */
export function ibv_get_device_list(sys: Sys): IbvDevice[] {
  return ibDevices(sys.machine.kernel).map((d) => ({
    name: d.name,
    dev_path: `/dev/infiniband/uverbs${d.index}`,
    guid: d.guid,
  }));
}

/** ibv_get_device_name(). */
export function ibv_get_device_name(dev: IbvDevice): string {
  return dev.name;
}

/** ibv_open_device(): opens the device's uverbs node. */
export async function ibv_open_device(sys: Sys, dev: IbvDevice): Promise<IbvContext> {
  const fd = checkErrno(await sys.open(dev.dev_path, 0o2 | 0o2000000), `ibv_open_device(${dev.name})`);
  const uctx = uverbsContextOf(fd);
  if (typeof uctx === 'number') throw new ErrnoError(uctx, 'ibv_open_device');
  return { sys, device: dev, cmd_fd: fd, uctx };
}

/** ibv_close_device(): closes the uverbs fd (destroying what is left in the context). */
export async function ibv_close_device(ctx: IbvContext): Promise<void> {
  checkErrno(await ctx.sys.close(ctx.cmd_fd), 'ibv_close_device');
}

function live(ctx: IbvContext, call: string): IbUcontext {
  const u = uverbsContextOf(ctx.cmd_fd);
  if (typeof u === 'number') throw new ErrnoError(u, call);
  if (u !== ctx.uctx) throw new ErrnoError(-9, call);
  return u;
}

/** ibv_query_port(): the port's state, LID and rate. */
export function ibv_query_port(ctx: IbvContext, port_num: number): IbvPortAttr {
  const u = live(ctx, 'ibv_query_port');
  if (port_num !== 1) throw new ErrnoError(-22, 'ibv_query_port');
  const p = ibDevicePort(u.device);
  return p
    ? { state: IBV_PORT_ACTIVE, lid: p.lid, active_mtu: IBV_MTU_4096, rate_gbps: p.gbps }
    : { state: IBV_PORT_DOWN, lid: 0, active_mtu: IBV_MTU_4096, rate_gbps: 0 };
}

/** ibv_alloc_pd(). */
export function ibv_alloc_pd(ctx: IbvContext): IbvPd {
  const pd = ibAllocPd(live(ctx, 'ibv_alloc_pd'));
  return { context: ctx, handle: pd.handle, pd };
}

/** ibv_dealloc_pd(): EBUSY while MRs or QPs use it. */
export function ibv_dealloc_pd(pd: IbvPd): void {
  checkErrno(ibDeallocPd(pd.pd), 'ibv_dealloc_pd');
}

function mrOf(pd: IbvPd, mr: IbMr): IbvMr {
  return { context: pd.context, pd, addr: mr.iova, length: mr.length, lkey: mr.lkey, rkey: mr.rkey, mr };
}

/** ibv_reg_mr(): registers `[addr, addr + length)` of the process's memory (pinned). */
export function ibv_reg_mr(pd: IbvPd, addr: number, length: number, access: number): IbvMr {
  return ibv_reg_mr_iova(pd, addr, length, addr, access);
}

/** ibv_reg_mr_iova(): as ibv_reg_mr, reachable at `iova` through the keys. */
export function ibv_reg_mr_iova(
  pd: IbvPd,
  addr: number,
  length: number,
  iova: number,
  access: number,
): IbvMr {
  live(pd.context, 'ibv_reg_mr');
  const mr = ibRegUserMr(pd.pd, pd.context.sys.process.mm, addr, length, iova, access);
  if (typeof mr === 'number') throw new ErrnoError(mr, 'ibv_reg_mr');
  return mrOf(pd, mr);
}

/**
 * ibv_reg_dmabuf_mr(): registers `length` bytes from `offset` of the dma-buf `fd`,
 * reachable at `iova` (same page offset as `offset`). EOPNOTSUPP when the device cannot
 * import dma-bufs; EINVAL for bad flags or offsets.
 */
export async function ibv_reg_dmabuf_mr(
  pd: IbvPd,
  offset: number,
  length: number,
  iova: number,
  fd: number,
  access: number,
): Promise<IbvMr> {
  live(pd.context, 'ibv_reg_dmabuf_mr');
  const mr = await ibRegUserMrDmabuf(pd.pd, offset, length, iova, fd, access);
  if (typeof mr === 'number') throw new ErrnoError(mr, 'ibv_reg_dmabuf_mr');
  return mrOf(pd, mr);
}

/**
 * ibv_dereg_mr(). A second call on the same MR does nothing (libibverbs would touch freed
 * memory; pyverbs' close() is idempotent, which test_dmabuf_dereg_mr_twice relies on).
 */
export async function ibv_dereg_mr(mr: IbvMr): Promise<void> {
  if (mr.mr.dead) return;
  checkErrno(await ibDeregMr(mr.mr), 'ibv_dereg_mr');
}

/** ibv_create_cq(): a CQ of at least `cqe` entries. */
export function ibv_create_cq(ctx: IbvContext, cqe: number): IbvCq {
  const cq = ibCreateCq(live(ctx, 'ibv_create_cq'), cqe);
  if (typeof cq === 'number') throw new ErrnoError(cq, 'ibv_create_cq');
  return { context: ctx, cqe, cq };
}

/** ibv_destroy_cq(): EBUSY while a QP uses it. */
export function ibv_destroy_cq(cq: IbvCq): void {
  checkErrno(ibDestroyCq(cq.cq), 'ibv_destroy_cq');
}

/** ibv_create_srq(): a shared receive queue in `pd`; EINVAL for 0 or too many WRs or SGEs. */
export function ibv_create_srq(pd: IbvPd, init: { attr: IbvSrqAttr }): IbvSrq {
  live(pd.context, 'ibv_create_srq');
  const srq = ibCreateSrq(pd.pd, { maxWr: init.attr.max_wr, maxSge: init.attr.max_sge });
  if (typeof srq === 'number') throw new ErrnoError(srq, 'ibv_create_srq');
  return { context: pd.context, pd, srq };
}

/** ibv_post_srq_recv(): ENOMEM when the SRQ is full, EINVAL for too many SGEs. */
export function ibv_post_srq_recv(srq: IbvSrq, wr: IbvRecvWr | IbvRecvWr[]): void {
  const list = Array.isArray(wr) ? wr : [wr];
  const bad = { index: -1 };
  const r = ibPostSrqRecv(
    srq.srq,
    list.map((w) => ({ wrId: w.wr_id, sgList: w.sg_list })),
    bad,
  );
  checkErrno(r, `ibv_post_srq_recv (bad_wr ${bad.index})`);
}

/** ibv_destroy_srq(): EBUSY while a QP uses it. */
export function ibv_destroy_srq(srq: IbvSrq): void {
  checkErrno(ibDestroySrq(srq.srq), 'ibv_destroy_srq');
}

/** ibv_create_qp(): an RC QP in RESET. */
export function ibv_create_qp(pd: IbvPd, attr: IbvQpInitAttr): IbvQp {
  live(pd.context, 'ibv_create_qp');
  const qp = ibCreateQp(pd.pd, {
    sendCq: attr.send_cq.cq,
    recvCq: attr.recv_cq.cq,
    cap: {
      maxSendWr: attr.cap.max_send_wr,
      maxRecvWr: attr.cap.max_recv_wr,
      maxSendSge: attr.cap.max_send_sge,
      maxRecvSge: attr.cap.max_recv_sge,
    },
    qpType: attr.qp_type,
    sqSigAll: !!attr.sq_sig_all,
    srq: attr.srq?.srq ?? null,
  });
  if (typeof qp === 'number') throw new ErrnoError(qp, 'ibv_create_qp');
  return {
    context: pd.context,
    qp_num: qp.qpNum,
    pd,
    get state() {
      return qp.state;
    },
    qp,
  };
}

/** ibv_modify_qp(): EINVAL for an illegal transition or a wrong attribute mask. */
export function ibv_modify_qp(qp: IbvQp, attr: IbvQpAttr, attr_mask: number): void {
  const r = ibModifyQp(
    qp.qp,
    {
      qpState: attr.qp_state,
      qpAccessFlags: attr.qp_access_flags,
      portNum: attr.port_num ?? attr.ah_attr?.port_num,
      pkeyIndex: attr.pkey_index,
      dlid: attr.ah_attr?.dlid,
      destQpNum: attr.dest_qp_num,
      pathMtu: attr.path_mtu,
      rqPsn: attr.rq_psn,
      sqPsn: attr.sq_psn,
      maxDestRdAtomic: attr.max_dest_rd_atomic,
      maxRdAtomic: attr.max_rd_atomic,
      minRnrTimer: attr.min_rnr_timer,
      timeout: attr.timeout,
      retryCnt: attr.retry_cnt,
      rnrRetry: attr.rnr_retry,
    },
    attr_mask,
  );
  checkErrno(r, 'ibv_modify_qp');
}

/** ibv_query_qp(), reduced: the state, access flags and destination. */
export function ibv_query_qp(qp: IbvQp): {
  qp_state: number;
  qp_access_flags: number;
  dest_qp_num: number;
  state_name: string;
} {
  const s = qp.qp.state as IbQpState;
  return {
    qp_state: s,
    qp_access_flags: qp.qp.attr.qpAccessFlags,
    dest_qp_num: qp.qp.attr.destQpNum,
    state_name: IB_QP_STATE_NAMES[s],
  };
}

/** ibv_destroy_qp(). */
export function ibv_destroy_qp(qp: IbvQp): void {
  checkErrno(ibDestroyQp(qp.qp), 'ibv_destroy_qp');
}

/** ibv_post_send(): posts one WR or a chain; throws with the index of the bad WR in the message. */
export function ibv_post_send(qp: IbvQp, wr: IbvSendWr | IbvSendWr[]): void {
  const list = Array.isArray(wr) ? wr : [wr];
  const bad = { index: -1 };
  const r = ibPostSend(
    qp.qp,
    list.map((w) => ({
      wrId: w.wr_id,
      opcode: w.opcode,
      sendFlags: w.send_flags ?? 0,
      sgList: w.sg_list,
      remoteAddr: w.wr?.atomic?.remote_addr ?? w.wr?.rdma?.remote_addr,
      rkey: w.wr?.atomic?.rkey ?? w.wr?.rdma?.rkey,
      immData: w.imm_data,
      compareAdd: w.wr?.atomic ? BigInt.asUintN(64, BigInt(w.wr.atomic.compare_add)) : undefined,
      swap: w.wr?.atomic ? BigInt.asUintN(64, BigInt(w.wr.atomic.swap ?? 0)) : undefined,
    })),
    bad,
  );
  checkErrno(r, `ibv_post_send (bad_wr ${bad.index})`);
}

/** ibv_post_recv(). */
export function ibv_post_recv(qp: IbvQp, wr: IbvRecvWr | IbvRecvWr[]): void {
  const list = Array.isArray(wr) ? wr : [wr];
  const bad = { index: -1 };
  const r = ibPostRecv(
    qp.qp,
    list.map((w) => ({ wrId: w.wr_id, sgList: w.sg_list })),
    bad,
  );
  checkErrno(r, `ibv_post_recv (bad_wr ${bad.index})`);
}

function wcOf(w: IbWc): IbvWc {
  const r: IbvWc = {
    wr_id: w.wrId,
    status: w.status,
    opcode: w.opcode,
    vendor_err: w.vendorErr,
    byte_len: w.byteLen,
    qp_num: w.qpNum,
  };
  if (w.immData !== undefined) r.imm_data = w.immData;
  return r;
}

/** ibv_poll_cq(): up to `num_entries` completions, oldest first; never blocks. */
export function ibv_poll_cq(cq: IbvCq, num_entries: number): IbvWc[] {
  return ibPollCq(cq.cq, num_entries).map(wcOf);
}

/**
 * Not in libibverbs: what a program's busy-poll loop on ibv_poll_cq amounts to, without
 * spinning the simulation: blocks until at least one completion is there (or `timeoutNs`
 * of virtual time passed), then polls up to `num_entries`.
 */
export async function ibv_poll_cq_wait(cq: IbvCq, num_entries: number, timeoutNs?: number): Promise<IbvWc[]> {
  await cq.cq.wait.waitEvent(() => cq.cq.entries.length > 0, { timeoutNs, interruptible: true });
  return ibv_poll_cq(cq, num_entries);
}

/** The mask libibverbs users pass to go RESET -> INIT. */
export const IBV_QP_INIT_MASK = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IB_QP_ACCESS_FLAGS;
/** The mask to go INIT -> RTR. */
export const IBV_QP_RTR_MASK =
  IBV_QP_STATE |
  IBV_QP_AV |
  IBV_QP_PATH_MTU |
  IBV_QP_DEST_QPN |
  IBV_QP_RQ_PSN |
  IBV_QP_MAX_DEST_RD_ATOMIC |
  IBV_QP_MIN_RNR_TIMER;
/** The mask to go RTR -> RTS. */
export const IBV_QP_RTS_MASK =
  IBV_QP_STATE |
  IBV_QP_TIMEOUT |
  IBV_QP_RETRY_CNT |
  IBV_QP_RNR_RETRY |
  IBV_QP_SQ_PSN |
  IBV_QP_MAX_QP_RD_ATOMIC;
