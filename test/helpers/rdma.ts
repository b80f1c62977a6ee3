/**
 * Helpers for RDMA tests: open the first device, make an RC QP with a CQ, register a
 * buffer, swap connection data over the cluster's out-of-band channel and bring the QP
 * to RTS, as perftest's and rdma-core's tests/base.py do.
 */
import type { OobChannel } from '../../src/fabric/oob.ts';
import { ErrnoError } from '../../src/uapi/errno-error.ts';
import type { Sys } from '../../src/uapi/sys.ts';
import * as v from '../../src/uapi/verbs.ts';

/** What one side tells the other. */
export interface RcInfo {
  lid: number;
  qpn: number;
  addr: number;
  rkey: number;
}

/** One side of an RC connection. */
export interface RcSide {
  ctx: v.IbvContext;
  pd: v.IbvPd;
  cq: v.IbvCq;
  qp: v.IbvQp;
  lid: number;
}

/** Opens the first device and creates PD, CQ and an RC QP (RESET). */
export async function rcSide(sys: Sys, depth = 64): Promise<RcSide> {
  const [dev] = v.ibv_get_device_list(sys);
  const ctx = await v.ibv_open_device(sys, dev);
  const pd = v.ibv_alloc_pd(ctx);
  const cq = v.ibv_create_cq(ctx, depth * 2);
  const qp = v.ibv_create_qp(pd, {
    send_cq: cq,
    recv_cq: cq,
    cap: { max_send_wr: depth, max_recv_wr: depth, max_send_sge: 4, max_recv_sge: 4 },
    qp_type: v.IBV_QPT_RC,
  });
  return { ctx, pd, cq, qp, lid: v.ibv_query_port(ctx, 1).lid };
}

/** RESET -> INIT -> RTR -> RTS towards `remote` (RNR: retry for ever, min_rnr_timer 12 unless given). */
export function rcConnect(
  qp: v.IbvQp,
  remote: { lid: number; qpn: number },
  access = 0,
  rnr: { rnr_retry?: number; min_rnr_timer?: number } = {},
): void {
  v.ibv_modify_qp(
    qp,
    { qp_state: v.IBV_QPS_INIT, pkey_index: 0, port_num: 1, qp_access_flags: access },
    v.IBV_QP_INIT_MASK,
  );
  v.ibv_modify_qp(
    qp,
    {
      qp_state: v.IBV_QPS_RTR,
      ah_attr: { dlid: remote.lid, port_num: 1 },
      path_mtu: v.IBV_MTU_4096,
      dest_qp_num: remote.qpn,
      rq_psn: 0,
      max_dest_rd_atomic: 1,
      min_rnr_timer: rnr.min_rnr_timer ?? 12,
    },
    v.IBV_QP_RTR_MASK,
  );
  v.ibv_modify_qp(
    qp,
    {
      qp_state: v.IBV_QPS_RTS,
      timeout: 14,
      retry_cnt: 7,
      rnr_retry: rnr.rnr_retry ?? 7,
      sq_psn: 0,
      max_rd_atomic: 1,
    },
    v.IBV_QP_RTS_MASK,
  );
}

/** Sends our info as `me`, waits for the peer's. */
export async function exchange(oob: OobChannel, me: string, peer: string, info: RcInfo): Promise<RcInfo> {
  oob.send(me, info);
  return oob.recv<RcInfo>(peer);
}

/** Deterministic test pattern. */
export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * Every access combination rdma-core's tests/utils.py get_access_flags gives for dma-buf
 * MRs (REMOTE_WRITE/ATOMIC only with LOCAL_WRITE), as test_dmabuf_reg_mr iterates them.
 */
export function dmabufAccessFlags(): number[] {
  const out: number[] = [];
  for (let m = 0; m < 32; m++) {
    const f =
      (m & 1 ? v.IBV_ACCESS_LOCAL_WRITE : 0) |
      (m & 2 ? v.IBV_ACCESS_REMOTE_WRITE : 0) |
      (m & 4 ? v.IBV_ACCESS_REMOTE_READ : 0) |
      (m & 8 ? v.IBV_ACCESS_REMOTE_ATOMIC : 0) |
      (m & 16 ? v.IBV_ACCESS_RELAXED_ORDERING : 0);
    if (f & (v.IBV_ACCESS_REMOTE_WRITE | v.IBV_ACCESS_REMOTE_ATOMIC) && !(f & v.IBV_ACCESS_LOCAL_WRITE))
      continue;
    out.push(f);
  }
  return out;
}

/** The errno symbol a typed-wrapper call failed with, or 'ok'. */
export async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof ErrnoError) return e.code;
    throw e;
  }
}

/** Writes `data` at user address `addr` one page at a time (device mappings are not one host buffer). */
export function pokeUser(sys: Sys, addr: number, data: Uint8Array): void {
  for (let o = 0; o < data.length; ) {
    const n = Math.min(4096 - ((addr + o) % 4096), data.length - o);
    sys.memory(addr + o, n).set(data.subarray(o, o + n));
    o += n;
  }
}

/** Reads `len` bytes at user address `addr` one page at a time. */
export function peekUser(sys: Sys, addr: number, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let o = 0; o < len; ) {
    const n = Math.min(4096 - ((addr + o) % 4096), len - o);
    out.set(sys.memory(addr + o, n), o);
    o += n;
  }
  return out;
}

/** A remote buffer as the peer advertised it. */
export interface RemoteBuf {
  addr: number;
  rkey: number;
}

/**
 * Sends `{lid, qpn}` of `s` with `mine` (the address and rkey the peer may target) as
 * `me`, waits for the peer's info and brings `s.qp` to RTS towards it with `access`
 * (and `rnr`, see rcConnect). Returns the peer's info.
 */
export async function exchangeAndConnect(
  oob: OobChannel,
  s: RcSide,
  me: string,
  peer: string,
  mine: RemoteBuf,
  access: number,
  rnr?: { rnr_retry?: number; min_rnr_timer?: number },
): Promise<RcInfo> {
  const info = await exchange(oob, me, peer, {
    lid: s.lid,
    qpn: s.qp.qp_num,
    addr: mine.addr,
    rkey: mine.rkey,
  });
  rcConnect(s.qp, info, access, rnr);
  return info;
}

/** An RC side with a registered host buffer, connected to its peer. */
export interface HostRcSide extends RcSide {
  /** The buffer's user address. */
  buf: number;
  /** Its MR. */
  mr: v.IbvMr;
  /** What the peer advertised. */
  peer: RcInfo;
}

/**
 * One connected side with host memory, as a perftest server or client sets up: rcSide,
 * `allocLen` (default `len`) bytes of page-aligned host memory of which the first `len`
 * are registered with `mrAccess`; the buffer's address and rkey are swapped with the
 * peer's over `oob` (as `me`, from `peer`) and the QP is connected with `qpAccess`
 * (default `mrAccess`) and `rnr`.
 */
export async function rcHostSide(
  sys: Sys,
  oob: OobChannel,
  me: string,
  peer: string,
  opts: {
    len: number;
    allocLen?: number;
    mrAccess: number;
    qpAccess?: number;
    rnr?: { rnr_retry?: number; min_rnr_timer?: number };
  },
): Promise<HostRcSide> {
  const s = await rcSide(sys);
  const buf = sys.alloc(opts.allocLen ?? opts.len, 4096);
  const mr = v.ibv_reg_mr(s.pd, buf, opts.len, opts.mrAccess);
  const info = await exchangeAndConnect(
    oob,
    s,
    me,
    peer,
    { addr: buf, rkey: mr.rkey },
    opts.qpAccess ?? opts.mrAccess,
    opts.rnr,
  );
  return { ...s, buf, mr, peer: info };
}

/** A signalled RDMA WRITE work request of the bytes `local` names to `remote`. */
export function rdmaWriteWr(wr_id: number, local: v.IbvSge, remote: RemoteBuf): v.IbvSendWr {
  return {
    wr_id,
    opcode: v.IBV_WR_RDMA_WRITE,
    send_flags: v.IBV_SEND_SIGNALED,
    sg_list: [local],
    wr: { rdma: { remote_addr: remote.addr, rkey: remote.rkey } },
  };
}

/** Posts one signalled RDMA WRITE (see rdmaWriteWr) on `s.qp` and waits for its completion on `s.cq`. */
export async function rdmaWriteWait(
  s: { qp: v.IbvQp; cq: v.IbvCq },
  wr_id: number,
  local: v.IbvSge,
  remote: RemoteBuf,
): Promise<v.IbvWc> {
  v.ibv_post_send(s.qp, rdmaWriteWr(wr_id, local, remote));
  return (await v.ibv_poll_cq_wait(s.cq, 1))[0];
}

/** Waits until `n` completions have been polled from `cq`, `max` at a time. */
export async function pollCqN(cq: v.IbvCq, n: number, max = 8): Promise<v.IbvWc[]> {
  const wcs: v.IbvWc[] = [];
  while (wcs.length < n) wcs.push(...(await v.ibv_poll_cq_wait(cq, max)));
  return wcs;
}

/** An RC side with a registered dma-buf, connected to its peer. */
export interface DmabufRcSide extends RcSide {
  /** The dma-buf MR (offset 0, IOVA 0). */
  mr: v.IbvMr;
  /** What the peer advertised. */
  peer: RcInfo;
}

/**
 * One connected side whose memory is a dma-buf: rcSide, the first `len` bytes of dma-buf
 * `fd` registered with ibv_reg_dmabuf_mr (offset 0, IOVA 0) and `access`; the MR's
 * address and rkey are swapped with the peer's over `oob` (as `me`, from `peer`) and the
 * QP is connected with `access`.
 */
export async function rcDmabufSide(
  sys: Sys,
  oob: OobChannel,
  me: string,
  peer: string,
  fd: number,
  len: number,
  access: number,
): Promise<DmabufRcSide> {
  const s = await rcSide(sys);
  const mr = await v.ibv_reg_dmabuf_mr(s.pd, 0, len, 0, fd, access);
  const info = await exchangeAndConnect(oob, s, me, peer, mr, access);
  return { ...s, mr, peer: info };
}

/** An RC QP on `pd` whose send and receive completions go to `cq` and whose receives come from `srq` (`depth` WRs of one SGE each way). */
export function srqQp(pd: v.IbvPd, cq: v.IbvCq, srq: v.IbvSrq, depth: number): v.IbvQp {
  return v.ibv_create_qp(pd, {
    send_cq: cq,
    recv_cq: cq,
    srq,
    cap: { max_send_wr: depth, max_recv_wr: depth, max_send_sge: 1, max_recv_sge: 1 },
    qp_type: v.IBV_QPT_RC,
  });
}
