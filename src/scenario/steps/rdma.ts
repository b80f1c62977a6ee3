/**
 * RDMA steps: what an RDMA program does through libibverbs (src/uapi/verbs.ts), and the
 * out-of-band messages two processes swap before the first RDMA operation.
 *
 * - `rdma_open`: ibv_open_device + ibv_alloc_pd + ibv_create_cq + an RC ibv_create_qp
 *   (RESET) on the host's RDMA device N; binds the endpoint (its uverbs fd);
 * - `reg_dmabuf_mr`: ibv_reg_dmabuf_mr of a dma-buf fd (drivers/infiniband/core/umem_dmabuf.c:
 *   a dynamic peer-to-peer importer); `reg_mr`: ibv_reg_mr of a CPU mapping (pinned
 *   pages); both bind the memory region; `dereg_mr`: ibv_dereg_mr;
 * - `rdma_connect`: sends this QP's LID, QP number and the memory regions it publishes
 *   (address, rkey, length) to a peer process through the cluster's out-of-band channel
 *   (as perftest and rdma-core's tests do over TCP; it works across hosts), takes the
 *   peer's, moves the QP RESET -> INIT -> RTR -> RTS towards it, and waits until the
 *   peer's QP is ready too (a second handshake, as perftest does);
 * - `rdma_write` / `rdma_read`: one signaled RDMA WRITE or READ work request between a
 *   local region and a region the peer published, waiting for its completion; the
 *   completion status is checked (IBV_WC_SUCCESS unless the step names another) and the
 *   transfer's bytes, time and rate against the port's line rate are recorded;
 * - `post_recv` / `rdma_send` / `wait_recv`: two-sided messaging: a receive buffer
 *   posted, a SEND that consumes it, and the wait for the receive's completion;
 * - `query_qp`: ibv_query_qp, optionally checking the QP state (ERR after a failed WR);
 * - `oob_send` / `oob_recv`: a message on a named out-of-band mailbox, so processes on
 *   different hosts can order themselves ("b-ready").
 *
 * A verbs call that fails returns its errno as the step's result (the typed wrappers
 * throw ErrnoError; the step turns it back into -errno), so `expect: {errno: EINVAL}`
 * works as for any syscall step. The endpoint and the memory regions are bound as fd
 * values (the uverbs fd; closing the name closes the device context, which destroys
 * what is left in it, as closing the fd does); the verbs objects are kept beside them.
 *
 * Not a kernel concept: this is the scenario language over the verbs ABI.
 */
import { z } from 'zod';
import { errno } from '../../kernel/errno.ts';
import { SEEK_END, SEEK_SET } from '../../kernel/file.ts';
import { ErrnoError } from '../../uapi/errno-error.ts';
import * as v from '../../uapi/verbs.ts';
import { type BoundValue, identifier, registerStepKind, type StepContext, StepError } from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { fdName, mapName } from './util.ts';

/** An RC endpoint bound by `rdma_open`. */
interface Endpoint {
  /** The verbs objects. */
  ctx: v.IbvContext;
  pd: v.IbvPd;
  cq: v.IbvCq;
  qp: v.IbvQp;
  /** The port's LID and line rate. */
  lid: number;
  gbps: number;
  /** Where it is: `host1/mlx5_0`. */
  where: string;
  /** Set by `rdma_connect`: the peer and the regions it published. */
  peer?: { process: string; host: string; mrs: Record<string, PublishedMr> };
  /** Next wr_id. */
  wrId: number;
  /** Completions polled while waiting for another one (the CQ serves sends and receives). */
  polled: v.IbvWc[];
  /** Receive WRs posted and not yet completed, oldest first: wr_id and region. */
  recvs: { wrId: number; what: string }[];
}

/** A memory region as a peer publishes it. */
interface PublishedMr {
  /** IOVA of its first byte. */
  addr: number;
  /** Remote key. */
  rkey: number;
  /** Bytes. */
  length: number;
  /** What it covers, for reports. */
  what: string;
}

/** A memory region bound by `reg_dmabuf_mr` / `reg_mr`. */
interface Region {
  mr: v.IbvMr;
  endpoint: Endpoint;
  /** What it covers: `dma-buf buf`, `mapping host`. */
  what: string;
}

const endpoints = new WeakMap<BoundValue, Endpoint>();
const regions = new WeakMap<BoundValue, Region>();

function endpointOf(ctx: StepContext, name: string): Endpoint {
  ctx.fd(name);
  const b = ctx.lookup(name);
  const e = b === undefined ? undefined : endpoints.get(b);
  if (e === undefined) throw new StepError(`"${name}" is not an RDMA endpoint bound by rdma_open`);
  return e;
}

function regionOf(ctx: StepContext, name: string): Region {
  ctx.fd(name);
  const b = ctx.lookup(name);
  const r = b === undefined ? undefined : regions.get(b);
  if (r === undefined)
    throw new StepError(`"${name}" is not a memory region bound by reg_dmabuf_mr or reg_mr`);
  return r;
}

/** Runs `f`; a verbs ErrnoError becomes `{ret: -errno}`. */
async function verbs<T>(
  f: () => Promise<T> | T,
): Promise<{ ok: true; value: T } | { ok: false; ret: number }> {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    if (e instanceof ErrnoError) return { ok: false, ret: -e.errno };
    throw e;
  }
}

const ACCESS = {
  LOCAL_WRITE: v.IBV_ACCESS_LOCAL_WRITE,
  REMOTE_WRITE: v.IBV_ACCESS_REMOTE_WRITE,
  REMOTE_READ: v.IBV_ACCESS_REMOTE_READ,
  REMOTE_ATOMIC: v.IBV_ACCESS_REMOTE_ATOMIC,
  MW_BIND: v.IBV_ACCESS_MW_BIND,
  ZERO_BASED: v.IBV_ACCESS_ZERO_BASED,
  ON_DEMAND: v.IBV_ACCESS_ON_DEMAND,
  HUGETLB: v.IBV_ACCESS_HUGETLB,
  RELAXED_ORDERING: v.IBV_ACCESS_RELAXED_ORDERING,
} as const;
type AccessName = keyof typeof ACCESS;

const accessList = z
  .array(z.enum(Object.keys(ACCESS) as [AccessName, ...AccessName[]]))
  .default(['LOCAL_WRITE', 'REMOTE_WRITE', 'REMOTE_READ'])
  .meta({
    description:
      'IBV_ACCESS_* flags without the prefix (default [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ]); REMOTE_WRITE needs LOCAL_WRITE.',
  });

function accessBits(list: AccessName[]): number {
  let f = 0;
  for (const a of list) f |= ACCESS[a];
  return f;
}

const endpointName = identifier.meta({ description: 'The RDMA endpoint (a name bound by rdma_open).' });
const mrName = identifier.meta({ description: 'A memory region (a name bound by reg_dmabuf_mr or reg_mr).' });

/** IBV_WC_* status names without the prefix. */
const WC_STATUS = {
  SUCCESS: v.IBV_WC_SUCCESS,
  LOC_LEN_ERR: v.IBV_WC_LOC_LEN_ERR,
  LOC_QP_OP_ERR: v.IBV_WC_LOC_QP_OP_ERR,
  LOC_PROT_ERR: v.IBV_WC_LOC_PROT_ERR,
  WR_FLUSH_ERR: v.IBV_WC_WR_FLUSH_ERR,
  LOC_ACCESS_ERR: v.IBV_WC_LOC_ACCESS_ERR,
  REM_INV_REQ_ERR: v.IBV_WC_REM_INV_REQ_ERR,
  REM_ACCESS_ERR: v.IBV_WC_REM_ACCESS_ERR,
  REM_OP_ERR: v.IBV_WC_REM_OP_ERR,
  RETRY_EXC_ERR: v.IBV_WC_RETRY_EXC_ERR,
  GENERAL_ERR: v.IBV_WC_GENERAL_ERR,
} as const;
type WcStatusName = keyof typeof WC_STATUS;

/** `IBV_WC_REM_ACCESS_ERR` for a status number. */
function wcStatusName(status: number): string {
  const n = (Object.keys(WC_STATUS) as WcStatusName[]).find((k) => WC_STATUS[k] === status);
  return n === undefined ? `status ${status}` : `IBV_WC_${n}`;
}

const QP_STATES = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'] as const;

registerStepKind({
  kind: 'rdma_open',
  summary:
    "ibv_open_device on the host's RDMA device N, then ibv_alloc_pd, ibv_create_cq and an RC ibv_create_qp (in RESET). Binds the endpoint.",
  args: z.union([
    z
      .number()
      .int()
      .min(0)
      .transform((device) => ({ device, depth: 64 })),
    z.strictObject({
      device: z
        .number()
        .int()
        .min(0)
        .default(0)
        .meta({ description: 'Index in ibv_get_device_list (default 0: the first NIC of the topology).' }),
      depth: z.number().int().min(1).max(4096).default(64).meta({
        description: 'Send and receive queue depth (the CQ gets twice as many entries; default 64).',
      }),
    }),
  ]),
  produces: 'fd',
  label: (a) => `rdma_open ${a.device}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const devs = v.ibv_get_device_list(sys);
    const dev = devs[a.device];
    if (dev === undefined) {
      return {
        ret: -errno.ENODEV,
        problem: `${ctx.host} has ${devs.length} RDMA device(s); device ${a.device} does not exist (pick 0..${devs.length - 1}, or a topology with NICs)`,
      };
    }
    const r = await verbs(async () => {
      const c = await v.ibv_open_device(sys, dev);
      const pd = v.ibv_alloc_pd(c);
      const cq = v.ibv_create_cq(c, a.depth * 2);
      const qp = v.ibv_create_qp(pd, {
        send_cq: cq,
        recv_cq: cq,
        cap: { max_send_wr: a.depth, max_recv_wr: a.depth, max_send_sge: 4, max_recv_sge: 4 },
        qp_type: v.IBV_QPT_RC,
      });
      const port = v.ibv_query_port(c, 1);
      return { c, pd, cq, qp, port };
    });
    if (!r.ok) return { ret: r.ret };
    const { c, pd, cq, qp, port } = r.value;
    const e: Endpoint = {
      ctx: c,
      pd,
      cq,
      qp,
      lid: port.lid,
      gbps: port.rate_gbps,
      where: `${ctx.host}/${dev.name}`,
      wrId: 1,
      polled: [],
      recvs: [],
    };
    const value: BoundValue = { type: 'fd', fd: c.cmd_fd, what: `rdma endpoint ${dev.name} qp ${qp.qp_num}` };
    endpoints.set(value, e);
    return {
      ret: c.cmd_fd,
      value,
      summary: `${dev.name} qp ${qp.qp_num}, lid ${port.lid}, ${port.rate_gbps} Gb/s`,
      detail: { device: dev.name, qpn: qp.qp_num, lid: port.lid, gbps: port.rate_gbps, fd: c.cmd_fd },
    };
  },
});

function bindRegion(e: Endpoint, mr: v.IbvMr, what: string) {
  const value: BoundValue = { type: 'fd', fd: e.ctx.cmd_fd, what: `mr lkey 0x${mr.lkey.toString(16)}` };
  regions.set(value, { mr, endpoint: e, what });
  return {
    ret: 0,
    value,
    summary: `${sizeText(mr.length)} at iova 0x${mr.addr.toString(16)}, lkey 0x${mr.lkey.toString(16)} rkey 0x${mr.rkey.toString(16)}`,
    detail: { iova: mr.addr, length: mr.length, lkey: mr.lkey, rkey: mr.rkey },
  };
}

registerStepKind({
  kind: 'reg_dmabuf_mr',
  summary:
    'ibv_reg_dmabuf_mr: registers `length` bytes at `offset` of a dma-buf with the NIC (a dynamic peer-to-peer importer), reachable at `iova`. Binds the memory region.',
  args: z.strictObject({
    endpoint: endpointName,
    fd: fdName.meta({ description: 'The dma-buf fd.' }),
    offset: size.default(0).meta({ description: 'Offset in the dma-buf (default 0).' }),
    length: size.optional().meta({ description: 'Bytes (default: to the end of the dma-buf).' }),
    iova: z.number().int().min(0).default(0).meta({
      description: 'The address the keys reach it at; its page offset must equal offset’s (default 0).',
    }),
    access: accessList,
  }),
  produces: 'fd',
  refs: (a) => [
    { name: a.endpoint, type: 'fd', path: ['endpoint'] },
    { name: a.fd, type: 'fd', path: ['fd'] },
  ],
  label: (a) =>
    `reg_dmabuf_mr ${a.fd}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}${a.offset ? ` at ${sizeText(a.offset)}` : ''}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const fd = ctx.fd(a.fd);
    let length = a.length;
    if (length === undefined) {
      const end = await ctx.sys.lseek(fd, 0, SEEK_END);
      if (end < 0) return { ret: end };
      const back = await ctx.sys.lseek(fd, 0, SEEK_SET);
      if (back < 0) return { ret: back };
      length = end - a.offset;
    }
    const len = length;
    const r = await verbs(() => v.ibv_reg_dmabuf_mr(e.pd, a.offset, len, a.iova, fd, accessBits(a.access)));
    if (!r.ok) return { ret: r.ret };
    return bindRegion(e, r.value, `dma-buf ${a.fd}`);
  },
});

registerStepKind({
  kind: 'reg_mr',
  summary:
    "ibv_reg_mr: registers `length` bytes at `offset` of a CPU mapping (the pages are pinned), reachable at the mapping's address. Binds the memory region.",
  args: z.strictObject({
    endpoint: endpointName,
    map: mapName,
    offset: size.default(0).meta({ description: 'Offset in the mapping (default 0).' }),
    length: size.optional().meta({ description: 'Bytes (default: to the end of the mapping).' }),
    access: accessList,
  }),
  produces: 'fd',
  refs: (a) => [
    { name: a.endpoint, type: 'fd', path: ['endpoint'] },
    { name: a.map, type: 'mapping', path: ['map'] },
  ],
  label: (a) => `reg_mr ${a.map}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const m = ctx.mapping(a.map);
    const length = a.length ?? m.length - a.offset;
    const r = await verbs(() => v.ibv_reg_mr(e.pd, m.addr + a.offset, length, accessBits(a.access)));
    if (!r.ok) return { ret: r.ret };
    return bindRegion(e, r.value, `mapping ${a.map}`);
  },
});

registerStepKind({
  kind: 'dereg_mr',
  summary: 'ibv_dereg_mr of a memory region; the name is forgotten.',
  args: mrName,
  refs: (name) => [{ name, type: 'fd', path: [] }],
  label: (name) => `dereg_mr ${name}`,
  async run(ctx, name) {
    const reg = regionOf(ctx, name);
    const r = await verbs(() => v.ibv_dereg_mr(reg.mr));
    if (!r.ok) return { ret: r.ret };
    ctx.unbind(name);
    return { ret: 0 };
  },
});

/** What `rdma_connect` sends through the out-of-band channel. */
interface ConnectInfo {
  lid: number;
  qpn: number;
  host: string;
  mrs: Record<string, PublishedMr>;
}

registerStepKind({
  kind: 'rdma_connect',
  summary:
    "Swaps LID, QP number and published memory regions (address, rkey, length) with a peer process's rdma_connect through the cluster's out-of-band channel (across hosts too), then moves the QP RESET -> INIT -> RTR -> RTS towards the peer's QP.",
  args: z.strictObject({
    endpoint: endpointName,
    peer: identifier.meta({ description: 'The peer process (it runs rdma_connect naming this one).' }),
    publish: z
      .union([mrName.transform((n) => [n]), z.array(mrName)])
      .default([])
      .meta({ description: 'Memory regions of this process the peer may read or write, by name.' }),
    access: accessList.meta({
      description:
        "The QP's remote access flags (IBV_QP_ACCESS_FLAGS; default [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ]).",
    }),
  }),
  refs: (a) => [
    { name: a.endpoint, type: 'fd', path: ['endpoint'] },
    { name: a.peer, type: 'process', path: ['peer'] },
    ...a.publish.map((n, i) => ({ name: n, type: 'fd' as const, path: ['publish', i] })),
  ],
  label: (a) =>
    `rdma_connect ${a.endpoint} to ${a.peer}${a.publish.length ? ` publishing ${a.publish.join(', ')}` : ''}`,
  async run(ctx, a) {
    if (a.peer === ctx.process) {
      throw new StepError(
        `${ctx.process} cannot connect to itself: open a second endpoint in another process (on this host or another) and connect the two`,
      );
    }
    const e = endpointOf(ctx, a.endpoint);
    const mrs: Record<string, PublishedMr> = {};
    for (const n of a.publish) {
      const reg = regionOf(ctx, n);
      mrs[n] = {
        addr: reg.mr.addr,
        rkey: reg.mr.rkey,
        length: reg.mr.length,
        what: `${ctx.host}/${ctx.process} ${reg.what}`,
      };
    }
    ctx.oob.send(`rdma ${ctx.process} -> ${a.peer}`, { lid: e.lid, qpn: e.qp.qp_num, host: ctx.host, mrs });
    const peer = await ctx.oob.recv<ConnectInfo>(`rdma ${a.peer} -> ${ctx.process}`);
    const acc = accessBits(a.access);
    const r = await verbs(() => {
      v.ibv_modify_qp(
        e.qp,
        { qp_state: v.IBV_QPS_INIT, pkey_index: 0, port_num: 1, qp_access_flags: acc },
        v.IBV_QP_INIT_MASK,
      );
      v.ibv_modify_qp(
        e.qp,
        {
          qp_state: v.IBV_QPS_RTR,
          ah_attr: { dlid: peer.lid, port_num: 1 },
          path_mtu: v.IBV_MTU_4096,
          dest_qp_num: peer.qpn,
          rq_psn: 0,
          max_dest_rd_atomic: 1,
          min_rnr_timer: 12,
        },
        v.IBV_QP_RTR_MASK,
      );
      v.ibv_modify_qp(
        e.qp,
        { qp_state: v.IBV_QPS_RTS, timeout: 14, retry_cnt: 7, rnr_retry: 7, sq_psn: 0, max_rd_atomic: 1 },
        v.IBV_QP_RTS_MASK,
      );
    });
    // Both QPs are ready to receive before either side goes on (perftest's second handshake):
    // a request that reaches a QP still in INIT is dropped and ends in a retry error.
    ctx.oob.send(`rdma ${ctx.process} -> ${a.peer} ready`, r.ok);
    const peerReady = await ctx.oob.recv<boolean>(`rdma ${a.peer} -> ${ctx.process} ready`);
    if (!r.ok) return { ret: r.ret };
    if (!peerReady) {
      return {
        ret: -errno.ECONNREFUSED,
        problem: `${a.peer} could not bring its QP to RTS; see its rdma_connect`,
      };
    }
    e.peer = { process: a.peer, host: peer.host, mrs: peer.mrs };
    const got = Object.keys(peer.mrs);
    return {
      ret: 0,
      summary: `qp ${e.qp.qp_num} -> ${peer.host} lid ${peer.lid} qp ${peer.qpn}, RTS${got.length ? `; peer publishes ${got.join(', ')}` : ''}`,
      detail: {
        qpn: e.qp.qp_num,
        peerLid: peer.lid,
        peerQpn: peer.qpn,
        peerHost: peer.host,
        peerMrs: peer.mrs,
      },
    };
  },
});

const statusArg = z
  .enum(Object.keys(WC_STATUS) as [WcStatusName, ...WcStatusName[]])
  .default('SUCCESS')
  .meta({ description: 'The completion status expected, IBV_WC_* without the prefix (default SUCCESS).' });

const opArgs = {
  endpoint: endpointName,
  mr: mrName.meta({ description: 'The local memory region.' }),
  remote: identifier.meta({
    description: 'The name of a memory region the peer published in its rdma_connect.',
  }),
  length: size.optional().meta({ description: 'Bytes (default: the whole local region from `offset`).' }),
  offset: size.default(0).meta({ description: 'Offset in the local region (default 0).' }),
  remote_offset: size.default(0).meta({ description: 'Offset in the remote region (default 0).' }),
  rkey: z
    .number()
    .int()
    .min(0)
    .max(0xffffffff)
    .optional()
    .meta({ description: 'Use this rkey instead of the published one (to show a remote access error).' }),
  status: statusArg,
};

type OpArgs = {
  endpoint: string;
  mr: string;
  remote: string;
  length?: number;
  offset: number;
  remote_offset: number;
  rkey?: number;
  status: WcStatusName;
};

/**
 * The completion `match` picks, polling the endpoint's CQ (and keeping the others for
 * later waits); null if the wait was interrupted (the process is being killed).
 */
async function completion(e: Endpoint, match: (wc: v.IbvWc) => boolean): Promise<v.IbvWc | null> {
  for (;;) {
    const i = e.polled.findIndex(match);
    if (i >= 0) return e.polled.splice(i, 1)[0];
    const got = await v.ibv_poll_cq_wait(e.cq, 16);
    if (got.length === 0) return null;
    e.polled.push(...got);
  }
}

/** Why a completion status happens, with the fix. */
function statusWhy(status: number): string {
  switch (status) {
    case v.IBV_WC_REM_ACCESS_ERR:
      return ': the remote rkey, range or access rights do not allow it (check the rkey and that the region is registered with the remote access flag)';
    case v.IBV_WC_WR_FLUSH_ERR:
      return ': the QP is in the error state after an earlier failed work request (reset and reconnect it)';
    case v.IBV_WC_RETRY_EXC_ERR:
      return ': the peer never answered (is its QP connected and in RTR or RTS?)';
    case v.IBV_WC_LOC_PROT_ERR:
      return ': the local region does not cover the range, or was registered in another endpoint (protection domain)';
    case v.IBV_WC_LOC_LEN_ERR:
      return ': the message is longer than the receive buffer posted for it';
    default:
      return '';
  }
}

/** Posts one signaled RDMA WRITE or READ and waits for its completion. */
async function rdmaOp(ctx: StepContext, a: OpArgs, write: boolean) {
  const e = endpointOf(ctx, a.endpoint);
  const reg = regionOf(ctx, a.mr);
  if (e.peer === undefined) {
    throw new StepError(`endpoint "${a.endpoint}" is not connected: run rdma_connect on it first`);
  }
  const rem = e.peer.mrs[a.remote];
  if (rem === undefined) {
    const names = Object.keys(e.peer.mrs);
    throw new StepError(
      `${e.peer.process} did not publish a region named "${a.remote}" (${names.length ? `it published ${names.join(', ')}` : 'it published none'}); add it to the peer's rdma_connect publish list`,
    );
  }
  const length = a.length ?? reg.mr.length - a.offset;
  const kind = write ? 'rdma_write' : 'rdma_read';
  const wrId = e.wrId++;
  const t0 = ctx.sys.now();
  const posted = await verbs(() =>
    v.ibv_post_send(e.qp, {
      wr_id: wrId,
      opcode: write ? v.IBV_WR_RDMA_WRITE : v.IBV_WR_RDMA_READ,
      send_flags: v.IBV_SEND_SIGNALED,
      sg_list: [{ addr: reg.mr.addr + a.offset, length, lkey: reg.mr.lkey }],
      wr: { rdma: { remote_addr: rem.addr + a.remote_offset, rkey: a.rkey ?? rem.rkey } },
    }),
  );
  if (!posted.ok) return { ret: posted.ret, summary: `ibv_post_send failed` };
  const wc = await completion(e, (w) => w.wr_id === wrId);
  if (wc === null) return { ret: -errno.EINTR };
  const ns = Number(ctx.sys.now() - t0);
  const status = wcStatusName(wc.status);
  const want = WC_STATUS[a.status];
  const detail = { wrId, status, bytes: length, ns, qpState: QP_STATES[e.qp.state] ?? String(e.qp.state) };
  if (wc.status !== want) {
    throw new StepError(
      `${kind} of ${sizeText(length)} completed with ${status} (${v.ibv_wc_status_str(wc.status)}), expected IBV_WC_${a.status}${statusWhy(wc.status)}`,
    );
  }
  if (wc.status !== v.IBV_WC_SUCCESS) {
    return { ret: 0, summary: `${status} (${v.ibv_wc_status_str(wc.status)})`, detail };
  }
  const gbps = ns > 0 ? (length * 8) / ns : 0;
  const here = `${ctx.host}/${ctx.process} ${reg.what}`;
  const there = rem.what;
  const line = e.gbps > 0 ? `, ${(gbps / e.gbps).toFixed(3)} x ${e.gbps} Gb/s line rate` : '';
  return {
    ret: 0,
    summary: `${sizeText(length)} in ${(ns / 1000).toFixed(1)} us: ${gbps.toFixed(1)} Gb/s${line}`,
    detail: { ...detail, gbps },
    transfer: {
      kind,
      bytes: length,
      ns,
      gbps,
      ...(e.gbps > 0 ? { lineRateGbps: e.gbps } : {}),
      from: write ? here : there,
      to: write ? there : here,
    },
  };
}

function opRefs(a: OpArgs) {
  return [
    { name: a.endpoint, type: 'fd' as const, path: ['endpoint'] },
    { name: a.mr, type: 'fd' as const, path: ['mr'] },
  ];
}

registerStepKind({
  kind: 'rdma_write',
  summary:
    "One signaled RDMA WRITE from a local memory region into a region the peer published; waits for the completion, checks its status and records the transfer's rate.",
  args: z.strictObject(opArgs),
  transfers: true,
  refs: opRefs,
  label: (a) => `rdma_write ${a.mr} -> ${a.remote}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}`,
  run: (ctx, a) => rdmaOp(ctx, a, true),
});

registerStepKind({
  kind: 'rdma_read',
  summary:
    "One signaled RDMA READ from a region the peer published into a local memory region; waits for the completion, checks its status and records the transfer's rate.",
  args: z.strictObject(opArgs),
  transfers: true,
  refs: opRefs,
  label: (a) => `rdma_read ${a.remote} -> ${a.mr}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}`,
  run: (ctx, a) => rdmaOp(ctx, a, false),
});

registerStepKind({
  kind: 'post_recv',
  summary:
    'ibv_post_recv: posts a receive work request with a buffer of a local memory region, for the next SEND the peer makes; returns at once (wait_recv waits for it).',
  args: z.strictObject({
    endpoint: endpointName,
    mr: mrName.meta({ description: 'The local memory region the message lands in.' }),
    offset: size.default(0).meta({ description: 'Offset in the region (default 0).' }),
    length: size.optional().meta({ description: 'Bytes available (default: the rest of the region).' }),
  }),
  refs: (a) => [
    { name: a.endpoint, type: 'fd', path: ['endpoint'] },
    { name: a.mr, type: 'fd', path: ['mr'] },
  ],
  label: (a) => `post_recv ${a.mr}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const reg = regionOf(ctx, a.mr);
    const length = a.length ?? reg.mr.length - a.offset;
    const wrId = e.wrId++;
    const r = await verbs(() =>
      v.ibv_post_recv(e.qp, {
        wr_id: wrId,
        sg_list: [{ addr: reg.mr.addr + a.offset, length, lkey: reg.mr.lkey }],
      }),
    );
    if (!r.ok) return { ret: r.ret };
    e.recvs.push({ wrId, what: `${ctx.host}/${ctx.process} ${reg.what}` });
    return { ret: 0, summary: `wr_id ${wrId}, ${sizeText(length)}`, detail: { wrId, length } };
  },
});

registerStepKind({
  kind: 'rdma_send',
  summary:
    "One signaled SEND of bytes of a local memory region into the receive buffer the peer posted next; waits for the send's completion, checks its status and records the transfer.",
  args: z.strictObject({
    endpoint: endpointName,
    mr: mrName.meta({ description: 'The local memory region to send from.' }),
    offset: size.default(0).meta({ description: 'Offset in the region (default 0).' }),
    length: size.optional().meta({ description: 'Bytes (default: the rest of the region).' }),
    status: statusArg,
  }),
  transfers: true,
  refs: (a) => [
    { name: a.endpoint, type: 'fd', path: ['endpoint'] },
    { name: a.mr, type: 'fd', path: ['mr'] },
  ],
  label: (a) => `rdma_send ${a.mr}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const reg = regionOf(ctx, a.mr);
    if (e.peer === undefined) {
      throw new StepError(`endpoint "${a.endpoint}" is not connected: run rdma_connect on it first`);
    }
    const length = a.length ?? reg.mr.length - a.offset;
    const wrId = e.wrId++;
    const t0 = ctx.sys.now();
    const posted = await verbs(() =>
      v.ibv_post_send(e.qp, {
        wr_id: wrId,
        opcode: v.IBV_WR_SEND,
        send_flags: v.IBV_SEND_SIGNALED,
        sg_list: [{ addr: reg.mr.addr + a.offset, length, lkey: reg.mr.lkey }],
      }),
    );
    if (!posted.ok) return { ret: posted.ret };
    const wc = await completion(e, (w) => w.wr_id === wrId);
    if (wc === null) return { ret: -errno.EINTR };
    const ns = Number(ctx.sys.now() - t0);
    const status = wcStatusName(wc.status);
    if (wc.status !== WC_STATUS[a.status]) {
      throw new StepError(
        `rdma_send of ${sizeText(length)} completed with ${status} (${v.ibv_wc_status_str(wc.status)}), expected IBV_WC_${a.status}${statusWhy(wc.status)}`,
      );
    }
    if (wc.status !== v.IBV_WC_SUCCESS)
      return { ret: 0, summary: `${status} (${v.ibv_wc_status_str(wc.status)})` };
    const gbps = ns > 0 ? (length * 8) / ns : 0;
    return {
      ret: 0,
      summary: `${sizeText(length)} in ${(ns / 1000).toFixed(1)} us: ${gbps.toFixed(1)} Gb/s`,
      detail: { wrId, bytes: length, ns, gbps },
      transfer: {
        kind: 'rdma_send',
        bytes: length,
        ns,
        gbps,
        ...(e.gbps > 0 ? { lineRateGbps: e.gbps } : {}),
        from: `${ctx.host}/${ctx.process} ${reg.what}`,
        to: `${e.peer.host}/${e.peer.process}`,
      },
    };
  },
});

registerStepKind({
  kind: 'wait_recv',
  summary:
    'Waits for the completion of the oldest receive work request posted with post_recv and checks its status (and, with `bytes`, the length received).',
  args: z.union([
    endpointName.transform((endpoint) => ({
      endpoint,
      status: 'SUCCESS' as WcStatusName,
      bytes: undefined as number | undefined,
    })),
    z.strictObject({
      endpoint: endpointName,
      status: statusArg,
      bytes: size.optional().meta({ description: 'Check: the message had this many bytes.' }),
    }),
  ]),
  refs: (a) => [{ name: a.endpoint, type: 'fd', path: ['endpoint'] }],
  label: (a) => `wait_recv ${a.endpoint}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const next = e.recvs[0];
    if (next === undefined) {
      throw new StepError(`endpoint "${a.endpoint}" has no receive posted: run post_recv first`);
    }
    const wc = await completion(e, (w) => w.wr_id === next.wrId);
    if (wc === null) return { ret: -errno.EINTR };
    e.recvs.shift();
    const status = wcStatusName(wc.status);
    if (wc.status !== WC_STATUS[a.status]) {
      throw new StepError(
        `the receive into ${next.what} completed with ${status} (${v.ibv_wc_status_str(wc.status)}), expected IBV_WC_${a.status}${statusWhy(wc.status)}`,
      );
    }
    const out = {
      ret: 0,
      summary: wc.status === v.IBV_WC_SUCCESS ? `${sizeText(wc.byte_len)} received` : `${status}`,
      detail: { wrId: wc.wr_id, status, bytes: wc.byte_len },
    };
    return a.bytes !== undefined && wc.status === v.IBV_WC_SUCCESS && wc.byte_len !== a.bytes
      ? { ...out, problem: `received ${wc.byte_len} bytes, expected ${a.bytes}` }
      : out;
  },
});

registerStepKind({
  kind: 'query_qp',
  summary: "ibv_query_qp: the QP's state (RESET, INIT, RTR, RTS, SQD, SQE, ERR), optionally checked.",
  args: z.union([
    endpointName.transform((endpoint) => ({
      endpoint,
      state: undefined as (typeof QP_STATES)[number] | undefined,
    })),
    z.strictObject({
      endpoint: endpointName,
      state: z.enum(QP_STATES).optional().meta({ description: 'Check: the QP is in this state.' }),
    }),
  ]),
  refs: (a) => [{ name: a.endpoint, type: 'fd', path: ['endpoint'] }],
  label: (a) => `query_qp ${a.endpoint}${a.state === undefined ? '' : ` is ${a.state}`}`,
  async run(ctx, a) {
    const e = endpointOf(ctx, a.endpoint);
    const q = v.ibv_query_qp(e.qp);
    const state = QP_STATES[q.qp_state] ?? q.state_name;
    const out = { ret: 0, summary: `qp ${e.qp.qp_num} ${state}`, detail: { qpn: e.qp.qp_num, state } };
    return a.state !== undefined && a.state !== state
      ? { ...out, problem: `qp ${e.qp.qp_num} is in ${state}, expected ${a.state}` }
      : out;
  },
});

const mailbox = identifier.meta({ description: 'An out-of-band mailbox name, shared by every host.' });

registerStepKind({
  kind: 'oob_send',
  summary:
    "Posts a message to a named out-of-band mailbox of the cluster (a TCP message's worth of latency); any process on any host may wait for it with oob_recv.",
  args: z.union([
    mailbox.transform((name) => ({ name, text: 'x' })),
    z.strictObject({
      name: mailbox,
      text: z.string().min(1).max(256).default('x').meta({ description: 'The message (default "x").' }),
    }),
  ]),
  refs: (a) => [{ name: a.name, type: 'oob-send', path: [] }],
  label: (a) => `oob_send ${a.name}`,
  async run(ctx, a) {
    ctx.oob.send(a.name, a.text);
    return { ret: 0, summary: a.text === 'x' ? 'posted' : `posted "${a.text}"` };
  },
});

registerStepKind({
  kind: 'oob_recv',
  summary: 'Waits for the next message on a named out-of-band mailbox and takes it.',
  args: z.union([
    mailbox.transform((name) => ({ name, text: undefined as string | undefined })),
    z.strictObject({
      name: mailbox,
      text: z.string().optional().meta({ description: 'Check: the message is this text.' }),
    }),
  ]),
  refs: (a) => [{ name: a.name, type: 'oob-recv', path: [] }],
  label: (a) => `oob_recv ${a.name}`,
  async run(ctx, a) {
    const got = await ctx.oob.recv<string>(a.name);
    const out = { ret: 0, summary: got === 'x' ? 'received' : `received "${got}"` };
    return a.text !== undefined && got !== a.text
      ? { ...out, problem: `got "${got}", expected "${a.text}"` }
      : out;
  },
});
