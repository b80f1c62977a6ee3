/**
 * Sockets as files and the socket syscalls the model supports: socketpair, sendmsg,
 * recvmsg, and read/write/poll/ioctl on socket fds (net/socket.c, net/core/scm.c,
 * net/unix/af_unix.c for the unix family's send and receive paths).
 *
 * Only AF_UNIX exists: socketpair() on AF_INET, AF_INET6, AF_NETLINK or AF_PACKET
 * gives -EOPNOTSUPP (those families cannot make pairs), any other family
 * -EAFNOSUPPORT. msghdr, iovec and cmsghdr are read and written in their x86_64
 * layouts; the order of checks follows ___sys_sendmsg / ___sys_recvmsg and the unix
 * send/receive functions, so bad pointers, lengths and fds fail with the kernel's
 * errno. Received fds are installed lowest-first with MSG_CMSG_CLOEXEC honoured;
 * fds that do not fit in msg_control are closed and MSG_CTRUNC is set.
 */

import { FIONREAD } from '../uapi/ioctl.ts';
import { CMSG_ALIGN, CMSG_LEN, CMSG_SPACE, cmsghdr, iovec, msghdr } from '../uapi/structs.ts';
import {
  RCV_SHUTDOWN,
  SCM_MAX_FD,
  SEND_SHUTDOWN,
  SK_SNDBUF_DEFAULT,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_SEQPACKET,
  SOCK_STREAM,
  type UnixSkb,
  type UnixSock,
  unixGetSocket,
  unixPoll,
  unixQueue,
  unixReleaseSock,
  unixSocketpair,
} from './af-unix.ts';
import { errno } from './errno.ts';
import {
  fdget,
  fdInstall,
  fdLookup,
  getUnusedFdFlags,
  O_CLOEXEC_FLAG,
  putUnusedFd,
  receiveFd,
} from './fdtable.ts';
import {
  allocFilePseudo,
  type File,
  type FileOperations,
  fput,
  getNextIno,
  Inode,
  S_IFSOCK,
  SuperBlock,
} from './file.ts';
import { currentKernel, type Kernel } from './kernel.ts';
import type { SeqFile } from './seq-file.ts';
import { copyFromUser, copyStructFromUser, copyToUser, putUserU32 } from './uaccess.ts';

/** Unix domain. */
export const AF_UNIX = 1;
/** IPv4. */
export const AF_INET = 2;
/** IPv6. */
export const AF_INET6 = 10;
/** Netlink. */
export const AF_NETLINK = 16;
/** Packet. */
export const AF_PACKET = 17;
/** NPROTO: number of address families. */
export const NPROTO = 46;
/** SOCK_MAX. */
const SOCK_MAX = 11;
/** Mask of the socket type in socket()'s type argument. */
export const SOCK_TYPE_MASK = 0xf;
/** socket(): close-on-exec. */
export const SOCK_CLOEXEC = 0o2000000;
/** socket(): non-blocking. */
export const SOCK_NONBLOCK = 0o4000;

/** Socket-level options and control messages. */
export const SOL_SOCKET = 1;
/** Control message: pass fds. */
export const SCM_RIGHTS = 1;
/** Control message: pass credentials. */
export const SCM_CREDENTIALS = 2;

/** Out-of-band data. */
export const MSG_OOB = 0x1;
/** Peek at data without removing it. */
export const MSG_PEEK = 0x2;
/** Control data was truncated (output). */
export const MSG_CTRUNC = 0x8;
/** Data was truncated (output), or return the real length (input). */
export const MSG_TRUNC = 0x20;
/** Non-blocking for this call. */
export const MSG_DONTWAIT = 0x40;
/** End of record. */
export const MSG_EOR = 0x80;
/** Wait for the full request. */
export const MSG_WAITALL = 0x100;
/** Do not raise SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;
/** Received fds get close-on-exec. */
export const MSG_CMSG_CLOEXEC = 0x40000000;
/** 32-bit compat (refused from 64-bit callers). */
export const MSG_CMSG_COMPAT = 0x80000000;
/** UIO_MAXIOV. */
export const UIO_MAXIOV = 1024;

/** SIOCINQ (same as FIONREAD). */
export const SIOCINQ = FIONREAD;
/** SIOCOUTQ. */
export const SIOCOUTQ = 0x5411;
/** FIOSETOWN. */
export const FIOSETOWN = 0x8901;
/** SIOCSPGRP. */
export const SIOCSPGRP = 0x8902;
/** FIOGETOWN. */
export const FIOGETOWN = 0x8903;
/** SIOCGPGRP. */
export const SIOCGPGRP = 0x8904;

const O_NONBLOCK = 0o4000;
const MAX_RW_COUNT = 0x7ffff000;

const SOCKFS = Symbol('sockfs');

function sockfs(k: Kernel): SuperBlock {
  let sb = k.singletons.get(SOCKFS) as SuperBlock | undefined;
  if (!sb) {
    sb = new SuperBlock('sockfs', 8, '00:08');
    k.singletons.set(SOCKFS, sb);
  }
  return sb;
}

interface IoSeg {
  base: number;
  len: number;
}

async function sockRead(file: File, buf: number, count: number): Promise<number> {
  const sk = unixGetSocket(file)!;
  if (count === 0) return 0;
  const flags = file.fFlags & O_NONBLOCK ? MSG_DONTWAIT : 0;
  const r = await unixRecv(sk, [{ base: buf, len: count }], flags);
  if (typeof r === 'number') return r;
  dropFds(r.fds);
  return r.len;
}

async function sockWrite(file: File, buf: number, count: number): Promise<number> {
  const sk = unixGetSocket(file)!;
  return unixSend(sk, [{ base: buf, len: count }], null, 0, 0);
}

/** socket_file_ops for unix sockets. */
export const socketFileOps: FileOperations = {
  name: 'socket',
  read: (file, buf, count) => sockRead(file, buf, count),
  write: (file, buf, count) => sockWrite(file, buf, count),
  poll: (file, pt) => unixPoll(unixGetSocket(file)!, file, pt),
  release: (_inode, file) => {
    const sk = unixGetSocket(file);
    if (sk) unixReleaseSock(sk);
  },
  ioctl: (file, cmd, arg) => {
    const sk = unixGetSocket(file)!;
    switch (cmd) {
      case SIOCINQ:
        return putUserU32(arg, sk.inqLen());
      case SIOCOUTQ:
        return putUserU32(arg, 0);
      case FIOSETOWN:
      case SIOCSPGRP:
        return 0;
      case FIOGETOWN:
      case SIOCGPGRP:
        return putUserU32(arg, 0);
      default:
        return -errno.ENOTTY;
    }
  },
  showFdinfo: (m: SeqFile, file: File) => {
    const sk = unixGetSocket(file);
    if (sk) m.printf(`scm_fds: ${sk.nrFds}\n`);
  },
  dname: (file) => `socket:[${file.inode.ino}]`,
};

/** sock_alloc_file(): a file for `sk`, O_RDWR plus O_NONBLOCK from `flags`. */
function sockAllocFile(sk: UnixSock, flags: number): File {
  const k = currentKernel();
  const inode = new Inode(sockfs(k), getNextIno(k), S_IFSOCK | 0o777);
  const f = allocFilePseudo(inode, 'socket:', 0o2 | (flags & O_NONBLOCK), socketFileOps);
  f.privateData = sk;
  sk.file = f;
  return f;
}

/** socketpair(2): `sv` is the user address of int[2]. */
export function sysSocketpair(family: number, type: number, protocol: number, sv: number): number {
  family |= 0;
  type |= 0;
  protocol |= 0;
  const flags = type & ~SOCK_TYPE_MASK;
  if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) return -errno.EINVAL;
  type &= SOCK_TYPE_MASK;
  const fdflags = flags & SOCK_CLOEXEC ? O_CLOEXEC_FLAG : 0;
  const fd1 = getUnusedFdFlags(fdflags);
  if (fd1 < 0) return fd1;
  const fd2 = getUnusedFdFlags(fdflags);
  if (fd2 < 0) {
    putUnusedFd(fd1);
    return fd2;
  }
  const fail = (e: number) => {
    putUnusedFd(fd1);
    putUnusedFd(fd2);
    return e;
  };
  if (putUserU32(sv, fd1) || putUserU32(sv + 4, fd2)) return fail(-errno.EFAULT);
  if (family < 0 || family >= NPROTO) return fail(-errno.EAFNOSUPPORT);
  if (type < 0 || type >= SOCK_MAX) return fail(-errno.EINVAL);
  if (family === AF_INET || family === AF_INET6 || family === AF_NETLINK || family === AF_PACKET) {
    return fail(-errno.EOPNOTSUPP);
  }
  if (family !== AF_UNIX) return fail(-errno.EAFNOSUPPORT);
  if (protocol && protocol !== AF_UNIX) return fail(-errno.EPROTONOSUPPORT);
  let t = type;
  if (t === SOCK_RAW) t = SOCK_DGRAM;
  if (t !== SOCK_STREAM && t !== SOCK_DGRAM && t !== SOCK_SEQPACKET) return fail(-errno.ESOCKTNOSUPPORT);
  const [a, b] = unixSocketpair(t);
  fdInstall(fd1, sockAllocFile(a, flags));
  fdInstall(fd2, sockAllocFile(b, flags));
  return 0;
}

/** Reads and checks a user iovec array (import_iovec). */
function importIovec(iov: number, iovlen: bigint): IoSeg[] | number {
  if (iovlen > BigInt(UIO_MAXIOV)) return -errno.EMSGSIZE;
  const n = Number(iovlen);
  const segs: IoSeg[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const v = copyStructFromUser(iovec, iov + i * iovec.size);
    if (!v) return -errno.EFAULT;
    let len = BigInt.asIntN(64, v.iov_len);
    if (len < 0n) return -errno.EINVAL;
    if (len > BigInt(MAX_RW_COUNT - total)) len = BigInt(MAX_RW_COUNT - total);
    const base = Number(v.iov_base);
    const l = Number(len);
    if (l > 0 && !(base >= 0 && base + l <= 0x7ffffffff000)) return -errno.EFAULT;
    segs.push({ base, len: l });
    total += l;
  }
  return segs;
}

function totalLen(segs: IoSeg[]): number {
  return segs.reduce((a, s) => a + s.len, 0);
}

/** Gathers `len` bytes from the iovecs, a chunk at a time; null on a fault. */
function gather(segs: IoSeg[], len: number): Uint8Array | null {
  const CHUNK = 65536;
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const s of segs) {
    let done = 0;
    while (done < s.len && off < len) {
      const n = Math.min(CHUNK, s.len - done, len - off);
      const part = new Uint8Array(n);
      if (copyFromUser(part, s.base + done)) return null;
      parts.push(part);
      done += n;
      off += n;
    }
  }
  const out = new Uint8Array(off);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** Scatters `data` into the iovecs starting `skip` bytes in; returns bytes written or -EFAULT. */
function scatter(segs: IoSeg[], skip: number, data: Uint8Array): number {
  let off = 0;
  let pos = 0;
  for (const s of segs) {
    if (off >= data.length) break;
    if (pos + s.len <= skip) {
      pos += s.len;
      continue;
    }
    const inSeg = Math.max(0, skip - pos);
    const n = Math.min(s.len - inSeg, data.length - off);
    if (copyToUser(s.base + inSeg, data.subarray(off, off + n))) return -errno.EFAULT;
    off += n;
    pos += s.len;
  }
  return off;
}

function dropFds(fds: File[] | null): void {
  if (fds) for (let i = fds.length - 1; i >= 0; i--) fput(fds[i]);
}

/** __scm_send(): parses the control buffer; returns the files to pass (references taken) or -errno. */
function scmSend(ctl: Uint8Array | null): File[] | null | number {
  if (!ctl || ctl.length < cmsghdr.size) return null;
  let fds: File[] | null = null;
  let off = 0;
  const fail = (e: number) => {
    dropFds(fds);
    return e;
  };
  while (off + cmsghdr.size <= ctl.length) {
    const h = cmsghdr.decode(ctl, off);
    const clen = h.cmsg_len;
    if (clen < BigInt(cmsghdr.size) || clen > BigInt(ctl.length - off)) return fail(-errno.EINVAL);
    const len = Number(clen);
    if (h.cmsg_level === SOL_SOCKET) {
      if (h.cmsg_type === SCM_RIGHTS) {
        const num = Math.floor((len - cmsghdr.size) / 4);
        if (num > 0) {
          if (num > SCM_MAX_FD) return fail(-errno.EINVAL);
          if (!fds) fds = [];
          if (fds.length + num > SCM_MAX_FD) return fail(-errno.EINVAL);
          const dv = new DataView(ctl.buffer, ctl.byteOffset + off + cmsghdr.size, num * 4);
          for (let i = 0; i < num; i++) {
            const fd = dv.getInt32(i * 4, true);
            const f = fd < 0 ? null : fdLookup(fd);
            if (!f) return fail(-errno.EBADF);
            fds.push(f.get());
          }
        }
      } else if (h.cmsg_type === SCM_CREDENTIALS) {
        if (len !== CMSG_LEN(12)) return fail(-errno.EINVAL);
      } else {
        return fail(-errno.EINVAL);
      }
    }
    off += CMSG_ALIGN(len);
  }
  return fds;
}

/**
 * The unix send paths (unix_stream_sendmsg, unix_dgram_sendmsg,
 * unix_seqpacket_sendmsg) after the msghdr has been read. Takes ownership of `fds`.
 */
function unixSend(sk: UnixSock, segs: IoSeg[], fds: File[] | null, flags: number, namelen: number): number {
  const len = totalLen(segs);
  const fail = (e: number) => {
    dropFds(fds);
    return e;
  };
  if (flags & MSG_OOB) return fail(-errno.EOPNOTSUPP);
  if (sk.type === SOCK_STREAM || sk.type === SOCK_SEQPACKET) {
    if (namelen) return fail(sk.state === 'established' ? -errno.EISCONN : -errno.EOPNOTSUPP);
    const other = sk.peer;
    if (!other) return fail(sk.type === SOCK_SEQPACKET ? -errno.ENOTCONN : -errno.ENOTCONN);
    if (sk.shutdown & SEND_SHUTDOWN) return fail(-errno.EPIPE);
    if (sk.type === SOCK_SEQPACKET && len > SK_SNDBUF_DEFAULT - 32) return fail(-errno.EMSGSIZE);
    if (sk.type === SOCK_STREAM && len === 0) {
      dropFds(fds);
      return 0;
    }
    const data = gather(segs, len);
    if (!data) return fail(-errno.EFAULT);
    if (other.dead || other.shutdown & RCV_SHUTDOWN) return fail(-errno.EPIPE);
    unixQueue(other, { data, consumed: 0, fds } satisfies UnixSkb);
    return len;
  }
  // SOCK_DGRAM
  if (namelen) {
    if (namelen < 2 || namelen > 110) return fail(-errno.EINVAL);
    return fail(-errno.ECONNREFUSED);
  }
  if (len > SK_SNDBUF_DEFAULT - 32) return fail(-errno.EMSGSIZE);
  const data = gather(segs, len);
  if (!data) return fail(-errno.EFAULT);
  const other = sk.peer;
  if (!other) return fail(-errno.ENOTCONN);
  if (other.dead) {
    sk.peer = null;
    return fail(-errno.ECONNREFUSED);
  }
  if (sk.shutdown & SEND_SHUTDOWN) return fail(-errno.EPIPE);
  unixQueue(other, { data, consumed: 0, fds });
  return len;
}

interface RecvResult {
  len: number;
  fds: File[] | null;
  flags: number;
}

async function waitData(sk: UnixSock, nonblock: boolean): Promise<number> {
  if (nonblock) return -errno.EAGAIN;
  const r = await sk.wq.waitEvent(
    () => sk.queue.length > 0 || (sk.shutdown & RCV_SHUTDOWN) !== 0 || sk.err !== 0 || sk.dead,
    { interruptible: true, desc: { what: 'unix socket receive' } },
  );
  return r < 0 ? -errno.EINTR : 0;
}

/** The unix receive paths; returns the data length, the files received and MSG_* output flags. */
async function unixRecv(sk: UnixSock, segs: IoSeg[], flags: number): Promise<RecvResult | number> {
  if (flags & MSG_OOB) return -errno.EOPNOTSUPP;
  const nonblock = (flags & MSG_DONTWAIT) !== 0;
  const peek = (flags & MSG_PEEK) !== 0;
  let size = totalLen(segs);
  if (sk.type === SOCK_STREAM) {
    if (sk.state !== 'established') return -errno.EINVAL;
    const target = flags & MSG_WAITALL ? Math.max(1, size) : 1;
    let copied = 0;
    let fds: File[] | null = null;
    let err = 0;
    let skip = 0;
    for (;;) {
      const skb: UnixSkb | undefined = sk.queue[peek ? skip : 0];
      if (!skb) {
        if (copied >= target) break;
        if (sk.err) {
          err = -sk.err;
          sk.err = 0;
          break;
        }
        if (sk.shutdown & RCV_SHUTDOWN) break;
        const w = await waitData(sk, nonblock);
        if (w < 0) {
          err = w;
          break;
        }
        continue;
      }
      const avail = skb.data.length - skb.consumed;
      const chunk = Math.min(avail, size);
      const wrote = scatter(segs, copied, skb.data.subarray(skb.consumed, skb.consumed + chunk));
      if (wrote < 0) {
        if (copied === 0) err = -errno.EFAULT;
        break;
      }
      copied += chunk;
      size -= chunk;
      if (!peek) {
        skb.consumed += chunk;
        if (skb.fds) {
          fds = skb.fds;
          skb.fds = null;
        }
        if (skb.consumed < skb.data.length) break;
        sk.queue.shift();
        if (fds) break;
      } else {
        if (skb.fds) {
          fds = skb.fds.map((f) => f.get());
          break;
        }
        skip++;
        if (!sk.queue[skip]) break;
        continue;
      }
      if (!size) break;
    }
    if (copied) return { len: copied, fds, flags: 0 };
    dropFds(fds);
    return err ? err : { len: 0, fds: null, flags: 0 };
  }
  // SOCK_DGRAM and SOCK_SEQPACKET
  if (sk.type === SOCK_SEQPACKET && sk.state !== 'established') return -errno.ENOTCONN;
  for (;;) {
    if (sk.queue.length > 0) break;
    if (sk.err) {
      const e = sk.err;
      sk.err = 0;
      return -e;
    }
    if (sk.shutdown & RCV_SHUTDOWN) return { len: 0, fds: null, flags: 0 };
    const w = await waitData(sk, nonblock);
    if (w < 0) return w;
  }
  const skb = peek ? sk.queue[0] : sk.queue.shift()!;
  let outFlags = 0;
  let n = size;
  if (n > skb.data.length) n = skb.data.length;
  else if (n < skb.data.length) outFlags |= MSG_TRUNC;
  const wrote = scatter(segs, 0, skb.data.subarray(0, n));
  if (wrote < 0) {
    if (!peek) dropFds(skb.fds);
    return -errno.EFAULT;
  }
  let fds: File[] | null = null;
  if (!peek) {
    fds = skb.fds;
    skb.fds = null;
  } else if (skb.fds) {
    fds = skb.fds.map((f) => f.get());
  }
  return { len: flags & MSG_TRUNC ? skb.data.length : n, fds, flags: outFlags };
}

function sockLookup(fd: number): UnixSock | number {
  const f = fdget(fd);
  if (!f) return -errno.EBADF;
  const sk = unixGetSocket(f);
  return sk ?? -errno.ENOTSOCK;
}

/** sendmsg(2). */
export async function sysSendmsg(fd: number, msgAddr: number, flags: number): Promise<number> {
  flags >>>= 0;
  if (flags & MSG_CMSG_COMPAT) return -errno.EINVAL;
  const sk = sockLookup(fd);
  if (typeof sk === 'number') return sk;
  const file = sk.file!;
  const m = copyStructFromUser(msghdr, msgAddr);
  if (!m) return -errno.EFAULT;
  const segs = importIovec(Number(m.msg_iov), m.msg_iovlen);
  if (typeof segs === 'number') return segs;
  if (m.msg_controllen > 0x7fffffffn) return -errno.ENOBUFS;
  let ctl: Uint8Array | null = null;
  if (m.msg_controllen > 0n) {
    ctl = new Uint8Array(Number(m.msg_controllen));
    if (copyFromUser(ctl, Number(m.msg_control))) return -errno.EFAULT;
  }
  if (file.fFlags & O_NONBLOCK) flags |= MSG_DONTWAIT;
  const fds = scmSend(ctl);
  if (typeof fds === 'number') return fds;
  file.get();
  try {
    return unixSend(sk, segs, fds, flags, m.msg_namelen);
  } finally {
    fput(file);
  }
}

/** recvmsg(2). */
export async function sysRecvmsg(fd: number, msgAddr: number, flags: number): Promise<number> {
  flags >>>= 0;
  if (flags & MSG_CMSG_COMPAT) return -errno.EINVAL;
  const sk = sockLookup(fd);
  if (typeof sk === 'number') return sk;
  const file = sk.file!;
  const m = copyStructFromUser(msghdr, msgAddr);
  if (!m) return -errno.EFAULT;
  const segs = importIovec(Number(m.msg_iov), m.msg_iovlen);
  if (typeof segs === 'number') return segs;
  if (file.fFlags & O_NONBLOCK) flags |= MSG_DONTWAIT;
  file.get();
  let r: RecvResult | number;
  try {
    r = await unixRecv(sk, segs, flags);
  } finally {
    fput(file);
  }
  if (typeof r === 'number') return r;
  let msgFlags = (flags & MSG_CMSG_CLOEXEC) | r.flags;
  const control = Number(m.msg_control);
  let controllen = Number(m.msg_controllen);
  let used = 0;
  if (r.fds && r.fds.length > 0) {
    if (!control) {
      msgFlags |= MSG_CTRUNC;
    } else {
      const fdmax = Math.min(
        controllen <= cmsghdr.size ? 0 : Math.floor((controllen - cmsghdr.size) / 4),
        r.fds.length,
      );
      let i = 0;
      for (; i < fdmax; i++) {
        const nfd = receiveFd(r.fds[i], flags & MSG_CMSG_CLOEXEC ? O_CLOEXEC_FLAG : 0);
        if (nfd < 0) break;
        if (putUserU32(control + cmsghdr.size + i * 4, nfd)) break;
      }
      if (i > 0) {
        const hdr = cmsghdr.encode({
          cmsg_len: CMSG_LEN(i * 4),
          cmsg_level: SOL_SOCKET,
          cmsg_type: SCM_RIGHTS,
        });
        if (!copyToUser(control, hdr)) {
          const cmlen = Math.min(CMSG_SPACE(i * 4), controllen);
          used += cmlen;
          controllen -= cmlen;
        }
      }
      if (i < r.fds.length || (r.fds.length && fdmax <= 0)) msgFlags |= MSG_CTRUNC;
    }
  }
  dropFds(r.fds);
  if (m.msg_name !== 0n && putUserU32(msgAddr + msghdr.offsetOf('msg_namelen'), 0)) return -errno.EFAULT;
  if (putUserU32(msgAddr + msghdr.offsetOf('msg_flags'), msgFlags)) return -errno.EFAULT;
  const cl = new Uint8Array(8);
  new DataView(cl.buffer).setBigUint64(0, BigInt(used), true);
  if (copyToUser(msgAddr + msghdr.offsetOf('msg_controllen'), cl)) return -errno.EFAULT;
  return r.len;
}
