/**
 * Unix domain sockets created by socketpair(), with SCM_RIGHTS fd passing
 * (net/unix/af_unix.c, net/unix/garbage.c, net/core/scm.c, include/net/af_unix.h).
 *
 * Each socket has a receive queue of messages (skbs); a message carries bytes and,
 * for SCM_RIGHTS, the files being passed — each holding a file reference while in
 * flight. SOCK_STREAM reads join messages but stop after one that carried files;
 * SOCK_DGRAM and SOCK_SEQPACKET read one message per call (MSG_TRUNC when it does
 * not fit). Closing a socket purges its queue (dropping in-flight files) and, for
 * stream and seqpacket, shuts its peer down (EOF, POLLHUP; -ECONNRESET once if unread
 * data was lost). The garbage collector (unix_gc) runs on every release and frees
 * cycles of sockets that are only reachable through in-flight messages.
 *
 * Not modelled: send-buffer limits (sends never block), MSG_OOB (-EOPNOTSUPP),
 * credentials passing (accepted and ignored), SIGPIPE (sends to a closed peer return
 * -EPIPE and the process is not signalled).
 */
import { errno } from './errno.ts';
import { type File, fput } from './file.ts';
import { currentKernel, type Kernel } from './kernel.ts';
import {
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  EPOLLRDNORM,
  EPOLLWRBAND,
  EPOLLWRNORM,
  type PollTable,
  pollWait,
} from './poll.ts';
import { WaitQueueHead } from './wait.ts';

/** Stream socket. */
export const SOCK_STREAM = 1;
/** Datagram socket. */
export const SOCK_DGRAM = 2;
/** Raw socket (unix: treated as datagram). */
export const SOCK_RAW = 3;
/** Sequenced packets. */
export const SOCK_SEQPACKET = 5;

/** Receiving half shut down. */
export const RCV_SHUTDOWN = 1;
/** Sending half shut down. */
export const SEND_SHUTDOWN = 2;
/** Both halves. */
export const SHUTDOWN_MASK = 3;

/** Most fds one SCM_RIGHTS message may carry. */
export const SCM_MAX_FD = 253;
/** Default SO_SNDBUF. */
export const SK_SNDBUF_DEFAULT = 212992;

/** One queued message (struct sk_buff with its unix_skb_parms). */
export interface UnixSkb {
  /** Payload. */
  data: Uint8Array;
  /** Bytes already read (stream). */
  consumed: number;
  /** Files in flight with this message (each holds a reference), or null. */
  fds: File[] | null;
}

/** A unix socket (struct unix_sock with its struct socket). */
export class UnixSock {
  /** The peer, or null. */
  peer: UnixSock | null = null;
  /** Messages waiting to be read. */
  readonly queue: UnixSkb[] = [];
  /** RCV_SHUTDOWN / SEND_SHUTDOWN bits. */
  shutdown = 0;
  /** Pending error (sk_err), reported once. */
  err = 0;
  /** SOCK_DEAD. */
  dead = false;
  /** TCP_ESTABLISHED for connected pairs, TCP_CLOSE once released. */
  state: 'established' | 'close' = 'established';
  /** Readers and pollers wait here (sk_wq). */
  readonly wq = new WaitQueueHead('unix_sock');
  /** The socket's file (set once allocated). */
  file: File | null = null;

  /** Creates a socket of `type`. */
  constructor(
    /** The kernel. */
    readonly kernel: Kernel,
    /** SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET. */
    readonly type: number,
  ) {
    liveSocks(kernel).add(this);
  }

  /** Files in flight queued on this socket (scm_stat.nr_fds). */
  get nrFds(): number {
    let n = 0;
    for (const s of this.queue) n += s.fds?.length ?? 0;
    return n;
  }

  /** Bytes readable (SIOCINQ): all queued bytes for stream, the first message for datagrams. */
  inqLen(): number {
    if (this.type === SOCK_STREAM) {
      let n = 0;
      for (const s of this.queue) n += s.data.length - s.consumed;
      return n;
    }
    return this.queue[0]?.data.length ?? 0;
  }
}

const SOCKS = Symbol('unix_socks');

function liveSocks(k: Kernel): Set<UnixSock> {
  let s = k.singletons.get(SOCKS) as Set<UnixSock> | undefined;
  if (!s) {
    s = new Set();
    k.singletons.set(SOCKS, s);
  }
  return s;
}

/** unix_socketpair(): two connected sockets of `type`. */
export function unixSocketpair(type: number): [UnixSock, UnixSock] {
  const k = currentKernel();
  const a = new UnixSock(k, type);
  const b = new UnixSock(k, type);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** unix_get_socket(): the unix socket behind a file, or null. */
export function unixGetSocket(file: File): UnixSock | null {
  return file.privateData instanceof UnixSock ? file.privateData : null;
}

/** Queues a message on `to` and wakes its readers. */
export function unixQueue(to: UnixSock, skb: UnixSkb): void {
  to.queue.push(skb);
  to.wq.wakeUp(EPOLLIN | EPOLLRDNORM);
}

function purge(sk: UnixSock): void {
  const skbs = sk.queue.splice(0);
  for (const skb of skbs) {
    if (skb.fds) for (let i = skb.fds.length - 1; i >= 0; i--) fput(skb.fds[i]);
  }
}

/** unix_release_sock(): the socket's file is being released. */
export function unixReleaseSock(sk: UnixSock): void {
  const k = sk.kernel;
  sk.dead = true;
  sk.state = 'close';
  sk.shutdown = SHUTDOWN_MASK;
  const pair = sk.peer;
  sk.peer = null;
  if (pair) {
    if (sk.type === SOCK_STREAM || sk.type === SOCK_SEQPACKET) {
      if (sk.queue.length > 0) pair.err = errno.ECONNRESET;
      pair.shutdown = SHUTDOWN_MASK;
    }
    pair.wq.wakeUp(null);
  }
  sk.wq.wakeUp(null);
  purge(sk);
  liveSocks(k).delete(sk);
  unixGc(k);
}

/**
 * unix_gc(): frees sockets that are referenced only by messages in flight and are
 * not reachable from any socket that something else references (fds, mappings,
 * the kernel). Their queues are purged, which drops the references that kept them.
 */
export function unixGc(k: Kernel): void {
  const socks = [...liveSocks(k)].filter((s) => s.file && !s.dead);
  const inflight = new Map<UnixSock, number>();
  for (const s of liveSocks(k)) {
    for (const skb of s.queue) {
      for (const f of skb.fds ?? []) {
        const u = unixGetSocket(f);
        if (u) inflight.set(u, (inflight.get(u) ?? 0) + 1);
      }
    }
  }
  if (inflight.size === 0) return;
  const candidates = new Set(socks.filter((s) => s.file && s.file.count === (inflight.get(s) ?? 0)));
  if (candidates.size === 0) return;
  // Mark everything reachable from sockets that are referenced from outside.
  const reachable = new Set<UnixSock>();
  const stack = socks.filter((s) => !candidates.has(s));
  while (stack.length > 0) {
    const s = stack.pop()!;
    for (const skb of s.queue) {
      for (const f of skb.fds ?? []) {
        const u = unixGetSocket(f);
        if (u && candidates.has(u) && !reachable.has(u)) {
          reachable.add(u);
          stack.push(u);
        }
      }
    }
  }
  for (const s of candidates) if (!reachable.has(s)) purge(s);
}

/** unix_poll() / unix_dgram_poll(). */
export function unixPoll(sk: UnixSock, file: File, pt: PollTable | null): number {
  pollWait(file, sk.wq, pt);
  let mask = 0;
  if (sk.err) mask |= EPOLLERR;
  if (sk.shutdown === SHUTDOWN_MASK) mask |= EPOLLHUP;
  if (sk.shutdown & RCV_SHUTDOWN) mask |= EPOLLRDHUP | EPOLLIN | EPOLLRDNORM;
  if (sk.queue.length > 0) mask |= EPOLLIN | EPOLLRDNORM;
  if ((sk.type === SOCK_STREAM || sk.type === SOCK_SEQPACKET) && sk.state === 'close') mask |= EPOLLHUP;
  mask |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
  return mask;
}
