/**
 * Helpers for tests that pass file descriptors between processes over a unix socket
 * (SCM_RIGHTS), as a dma-buf fd goes from its exporter to its importer.
 */
import { SCM_RIGHTS, SOL_SOCKET } from '../../src/uapi/constants.ts';
import { CMSG_LEN, CMSG_SPACE, cmsghdr, iovec, msghdr } from '../../src/uapi/structs.ts';
import type { Sys } from '../../src/uapi/sys.ts';

/** Sends one byte with `fd` in an SCM_RIGHTS control message on `sock`; sendmsg's result. */
export async function sendFd(sys: Sys, sock: number, fd: number): Promise<number> {
  const data = sys.alloc(1);
  const ctl = sys.alloc(CMSG_SPACE(4), 8);
  sys.writeStruct(cmsghdr, ctl, { cmsg_len: CMSG_LEN(4), cmsg_level: SOL_SOCKET, cmsg_type: SCM_RIGHTS });
  sys.writeU32(ctl + cmsghdr.size, fd);
  const msg = sys.allocStruct(msghdr, {
    msg_iov: sys.allocStruct(iovec, { iov_base: data, iov_len: 1 }),
    msg_iovlen: 1,
    msg_control: ctl,
    msg_controllen: CMSG_SPACE(4),
  });
  return sys.sendmsg(sock, msg, 0);
}

/** Receives one byte and the fd of its SCM_RIGHTS control message from `sock`: the new fd, or recvmsg's negative errno. */
export async function recvFd(sys: Sys, sock: number): Promise<number> {
  const ctl = sys.alloc(CMSG_SPACE(4), 8);
  const msg = sys.allocStruct(msghdr, {
    msg_iov: sys.allocStruct(iovec, { iov_base: sys.alloc(1), iov_len: 1 }),
    msg_iovlen: 1,
    msg_control: ctl,
    msg_controllen: CMSG_SPACE(4),
  });
  const rc = await sys.recvmsg(sock, msg, 0);
  return rc < 0 ? rc : sys.readS32(ctl + cmsghdr.size);
}
