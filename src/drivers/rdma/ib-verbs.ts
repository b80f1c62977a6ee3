/**
 * The kernel's verbs vocabulary for RDMA drivers: access flags, QP states and attribute
 * masks, work-request and work-completion codes, and the two checks every registration
 * and QP transition goes through.
 *
 * Follows include/rdma/ib_verbs.h (enum ib_access_flags, enum ib_qp_state, enum
 * ib_qp_attr_mask, enum ib_wc_status, enum ib_wc_opcode, ib_check_mr_access) and
 * drivers/infiniband/core/verbs.c (qp_state_table / ib_modify_qp_is_ok) of Linux 6.12.
 * The numeric values equal libibverbs' (include/uapi/rdma/ib_user_verbs.h keeps them in
 * step), so the uverbs layer passes them through unchanged.
 */
import { errno } from '../../kernel/errno.ts';

/** IB_ACCESS_LOCAL_WRITE. */
export const IB_ACCESS_LOCAL_WRITE = 1;
/** IB_ACCESS_REMOTE_WRITE. */
export const IB_ACCESS_REMOTE_WRITE = 1 << 1;
/** IB_ACCESS_REMOTE_READ. */
export const IB_ACCESS_REMOTE_READ = 1 << 2;
/** IB_ACCESS_REMOTE_ATOMIC. */
export const IB_ACCESS_REMOTE_ATOMIC = 1 << 3;
/** IB_ACCESS_MW_BIND. */
export const IB_ACCESS_MW_BIND = 1 << 4;
/** IB_ZERO_BASED. */
export const IB_ZERO_BASED = 1 << 5;
/** IB_ACCESS_ON_DEMAND. */
export const IB_ACCESS_ON_DEMAND = 1 << 6;
/** IB_ACCESS_HUGETLB. */
export const IB_ACCESS_HUGETLB = 1 << 7;
/** IB_ACCESS_RELAXED_ORDERING (= IB_ACCESS_OPTIONAL, the first optional bit). */
export const IB_ACCESS_RELAXED_ORDERING = 1 << 20;
/** IB_ACCESS_SUPPORTED: every bit a registration may carry. */
export const IB_ACCESS_SUPPORTED = ((IB_ACCESS_HUGETLB << 1) - 1) | IB_ACCESS_RELAXED_ORDERING;

/** The access bits UVERBS_METHOD_REG_DMABUF_MR accepts (uverbs_std_types_mr.c, 6.12). */
export const IB_DMABUF_MR_ACCESS_MASK =
  IB_ACCESS_LOCAL_WRITE |
  IB_ACCESS_REMOTE_READ |
  IB_ACCESS_REMOTE_WRITE |
  IB_ACCESS_REMOTE_ATOMIC |
  IB_ACCESS_RELAXED_ORDERING;

/**
 * ib_check_mr_access(): REMOTE_WRITE or REMOTE_ATOMIC without LOCAL_WRITE is -EINVAL
 * (the HCA would write memory the owner may not write); ON_DEMAND without ODP support
 * is -EOPNOTSUPP. 0 when acceptable.
 */
export function ibCheckMrAccess(flags: number, odpCapable: boolean): number {
  if (flags & (IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_REMOTE_WRITE) && !(flags & IB_ACCESS_LOCAL_WRITE))
    return -errno.EINVAL;
  if (flags & ~IB_ACCESS_SUPPORTED) return -errno.EINVAL;
  if (flags & IB_ACCESS_ON_DEMAND && !odpCapable) return -errno.EOPNOTSUPP;
  return 0;
}

/** enum ib_qp_state. */
export const IB_QPS_RESET = 0;
/** INIT. */
export const IB_QPS_INIT = 1;
/** Ready To Receive. */
export const IB_QPS_RTR = 2;
/** Ready To Send. */
export const IB_QPS_RTS = 3;
/** Send Queue Drain. */
export const IB_QPS_SQD = 4;
/** Send Queue Error. */
export const IB_QPS_SQE = 5;
/** Error. */
export const IB_QPS_ERR = 6;
/** A QP state. */
export type IbQpState = 0 | 1 | 2 | 3 | 4 | 5 | 6;
/** State names for messages. */
export const IB_QP_STATE_NAMES = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'] as const;

/** enum ib_qp_type: reliable connected. */
export const IB_QPT_RC = 2;
/** Unreliable connected. */
export const IB_QPT_UC = 3;
/** Unreliable datagram. */
export const IB_QPT_UD = 4;

/** enum ib_qp_attr_mask. */
export const IB_QP_STATE = 1;
/** IB_QP_CUR_STATE. */
export const IB_QP_CUR_STATE = 1 << 1;
/** IB_QP_EN_SQD_ASYNC_NOTIFY. */
export const IB_QP_EN_SQD_ASYNC_NOTIFY = 1 << 2;
/** IB_QP_ACCESS_FLAGS. */
export const IB_QP_ACCESS_FLAGS = 1 << 3;
/** IB_QP_PKEY_INDEX. */
export const IB_QP_PKEY_INDEX = 1 << 4;
/** IB_QP_PORT. */
export const IB_QP_PORT = 1 << 5;
/** IB_QP_QKEY. */
export const IB_QP_QKEY = 1 << 6;
/** IB_QP_AV. */
export const IB_QP_AV = 1 << 7;
/** IB_QP_PATH_MTU. */
export const IB_QP_PATH_MTU = 1 << 8;
/** IB_QP_TIMEOUT. */
export const IB_QP_TIMEOUT = 1 << 9;
/** IB_QP_RETRY_CNT. */
export const IB_QP_RETRY_CNT = 1 << 10;
/** IB_QP_RNR_RETRY. */
export const IB_QP_RNR_RETRY = 1 << 11;
/** IB_QP_RQ_PSN. */
export const IB_QP_RQ_PSN = 1 << 12;
/** IB_QP_MAX_QP_RD_ATOMIC. */
export const IB_QP_MAX_QP_RD_ATOMIC = 1 << 13;
/** IB_QP_ALT_PATH. */
export const IB_QP_ALT_PATH = 1 << 14;
/** IB_QP_MIN_RNR_TIMER. */
export const IB_QP_MIN_RNR_TIMER = 1 << 15;
/** IB_QP_SQ_PSN. */
export const IB_QP_SQ_PSN = 1 << 16;
/** IB_QP_MAX_DEST_RD_ATOMIC. */
export const IB_QP_MAX_DEST_RD_ATOMIC = 1 << 17;
/** IB_QP_PATH_MIG_STATE. */
export const IB_QP_PATH_MIG_STATE = 1 << 18;
/** IB_QP_CAP. */
export const IB_QP_CAP = 1 << 19;
/** IB_QP_DEST_QPN. */
export const IB_QP_DEST_QPN = 1 << 20;

/** RC transitions: required and optional attribute masks (verbs.c qp_state_table, RC column). */
const RC_TRANSITIONS: Record<string, { req: number; opt: number }> = {
  '0>0': { req: 0, opt: 0 },
  '0>1': { req: IB_QP_PKEY_INDEX | IB_QP_PORT | IB_QP_ACCESS_FLAGS, opt: 0 },
  '1>1': { req: 0, opt: IB_QP_PKEY_INDEX | IB_QP_PORT | IB_QP_ACCESS_FLAGS },
  '1>2': {
    req:
      IB_QP_AV |
      IB_QP_PATH_MTU |
      IB_QP_DEST_QPN |
      IB_QP_RQ_PSN |
      IB_QP_MAX_DEST_RD_ATOMIC |
      IB_QP_MIN_RNR_TIMER,
    opt: IB_QP_ALT_PATH | IB_QP_ACCESS_FLAGS | IB_QP_PKEY_INDEX,
  },
  '2>3': {
    req: IB_QP_TIMEOUT | IB_QP_RETRY_CNT | IB_QP_RNR_RETRY | IB_QP_SQ_PSN | IB_QP_MAX_QP_RD_ATOMIC,
    opt: IB_QP_CUR_STATE | IB_QP_ALT_PATH | IB_QP_ACCESS_FLAGS | IB_QP_MIN_RNR_TIMER | IB_QP_PATH_MIG_STATE,
  },
  '3>3': {
    req: 0,
    opt: IB_QP_CUR_STATE | IB_QP_ACCESS_FLAGS | IB_QP_ALT_PATH | IB_QP_PATH_MIG_STATE | IB_QP_MIN_RNR_TIMER,
  },
};

/**
 * ib_modify_qp_is_ok() for RC QPs: whether moving from `cur` to `next` with `mask` is a
 * legal transition carrying every required attribute and no attribute outside the
 * optional ones. Any state may go to RESET or ERR.
 */
export function ibModifyQpIsOk(cur: IbQpState, next: IbQpState, mask: number): boolean {
  if (
    mask & IB_QP_CUR_STATE &&
    cur !== IB_QPS_RTR &&
    cur !== IB_QPS_RTS &&
    cur !== IB_QPS_SQD &&
    cur !== IB_QPS_SQE
  )
    return false;
  if (next === IB_QPS_RESET || next === IB_QPS_ERR) return (mask & ~(IB_QP_STATE | IB_QP_CUR_STATE)) === 0;
  const t = RC_TRANSITIONS[`${cur}>${next}`];
  if (!t) return false;
  const rest = mask & ~IB_QP_STATE;
  if ((rest & t.req) !== t.req) return false;
  return (rest & ~(t.req | t.opt)) === 0;
}

/** enum ib_wr_opcode (the libibverbs numbering of ibv_wr_opcode). */
export const IB_WR_RDMA_WRITE = 0;
/** RDMA WRITE with immediate. */
export const IB_WR_RDMA_WRITE_WITH_IMM = 1;
/** SEND. */
export const IB_WR_SEND = 2;
/** SEND with immediate. */
export const IB_WR_SEND_WITH_IMM = 3;
/** RDMA READ. */
export const IB_WR_RDMA_READ = 4;
/** Atomic compare and swap of 8 bytes (needs REMOTE_ATOMIC at the responder). */
export const IB_WR_ATOMIC_CMP_AND_SWP = 5;
/** Atomic fetch and add of 8 bytes (needs REMOTE_ATOMIC at the responder). */
export const IB_WR_ATOMIC_FETCH_AND_ADD = 6;

/** ib_send_flags: IB_SEND_FENCE. */
export const IB_SEND_FENCE = 1;
/** IB_SEND_SIGNALED: generate a completion for this WR. */
export const IB_SEND_SIGNALED = 1 << 1;
/** IB_SEND_SOLICITED. */
export const IB_SEND_SOLICITED = 1 << 2;
/** IB_SEND_INLINE. */
export const IB_SEND_INLINE = 1 << 3;

/** enum ib_wc_status. */
export const IB_WC_SUCCESS = 0;
/** Local length error (a receive buffer too small). */
export const IB_WC_LOC_LEN_ERR = 1;
/** Local QP operation error. */
export const IB_WC_LOC_QP_OP_ERR = 2;
/** Local protection error (bad lkey or range). */
export const IB_WC_LOC_PROT_ERR = 4;
/** Flushed: the QP was in the error state. */
export const IB_WC_WR_FLUSH_ERR = 5;
/** Local access error. */
export const IB_WC_LOC_ACCESS_ERR = 8;
/** Remote invalid request. */
export const IB_WC_REM_INV_REQ_ERR = 9;
/** Remote access error (bad rkey, range or rights). */
export const IB_WC_REM_ACCESS_ERR = 10;
/** Remote operation error. */
export const IB_WC_REM_OP_ERR = 11;
/** Transport retry counter exceeded (no route to the peer). */
export const IB_WC_RETRY_EXC_ERR = 12;
/** RNR retry counter exceeded: the responder had no receive posted for every try. */
export const IB_WC_RNR_RETRY_EXC_ERR = 13;
/** General error. */
export const IB_WC_GENERAL_ERR = 21;

/** enum ib_wc_opcode: send. */
export const IB_WC_SEND = 0;
/** RDMA write. */
export const IB_WC_RDMA_WRITE = 1;
/** RDMA read. */
export const IB_WC_RDMA_READ = 2;
/** Atomic compare and swap. */
export const IB_WC_COMP_SWAP = 3;
/** Atomic fetch and add. */
export const IB_WC_FETCH_ADD = 4;

/** Bytes an atomic operation reads and writes. */
export const IB_ATOMIC_SIZE = 8;

/** IB_QP_RNR_RETRY value 7: retry for ever (IBTA vol. 1 9.7.5.2.8). */
export const IB_RNR_RETRY_INFINITE = 7;

/**
 * The RNR NAK timer encodings of IB_QP_MIN_RNR_TIMER (enum ib_rnr_timeout in
 * include/rdma/ib_verbs.h, IBTA vol. 1 table 45), in microseconds: code 0 is 655.36 ms,
 * codes 1..31 run from 0.01 ms to 491.52 ms.
 */
const RNR_TIMER_US = [
  655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840, 5120, 7680,
  10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
];

/** The delay, in ns, that a responder's min_rnr_timer code asks a requester to wait before retrying. */
export function ibRnrTimerNs(code: number): number {
  return (RNR_TIMER_US[code & 31] ?? RNR_TIMER_US[0]) * 1000;
}
/** Receive. */
export const IB_WC_RECV = 1 << 7;
/** Receive of an RDMA write with immediate. */
export const IB_WC_RECV_RDMA_WITH_IMM = IB_WC_RECV + 1;

/** enum ib_mtu: 256. */
export const IB_MTU_256 = 1;
/** 1024. */
export const IB_MTU_1024 = 3;
/** 4096. */
export const IB_MTU_4096 = 5;
