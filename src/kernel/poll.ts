/**
 * poll(2) and the poll table drivers register on (fs/select.c, include/linux/poll.h,
 * include/uapi/linux/eventpoll.h).
 *
 * A file's `poll` operation calls `pollWait(file, wq, pt)` for each wait queue whose
 * wake-ups may change its readiness, then returns its current EPOLL* mask. poll()
 * checks every fd once while registering, and if nothing is ready sleeps until a wake
 * function fires or the timeout (virtual time, exact, no timer slack) passes; then it
 * checks again without registering. fds below 0 are skipped (revents 0), closed fds
 * report POLLNVAL, and the mask is filtered to the requested events plus POLLERR and
 * POLLHUP. A file without a poll operation is always readable and writable.
 */
import { pollfd } from '../uapi/structs.ts';
import { errno } from './errno.ts';
import { fdget } from './fdtable.ts';
import type { File } from './file.ts';
import { currentKernel } from './kernel.ts';
import { current } from './sched.ts';
import { copyFromUser, copyToUser } from './uaccess.ts';
import { WaitQueueEntry, type WaitQueueHead } from './wait.ts';

/** There is data to read. */
export const EPOLLIN = 0x0001;
/** There is urgent data. */
export const EPOLLPRI = 0x0002;
/** Writing will not block. */
export const EPOLLOUT = 0x0004;
/** Error condition (always reported). */
export const EPOLLERR = 0x0008;
/** Hang up (always reported). */
export const EPOLLHUP = 0x0010;
/** Invalid fd (poll only). */
export const EPOLLNVAL = 0x0020;
/** Normal data readable. */
export const EPOLLRDNORM = 0x0040;
/** Priority band data readable. */
export const EPOLLRDBAND = 0x0080;
/** Normal data writable. */
export const EPOLLWRNORM = 0x0100;
/** Priority data writable. */
export const EPOLLWRBAND = 0x0200;
/** Unused. */
export const EPOLLMSG = 0x0400;
/** Peer shut down its writing half. */
export const EPOLLRDHUP = 0x2000;

/** POLLIN (same value as EPOLLIN on x86_64). */
export const POLLIN = EPOLLIN;
/** POLLPRI. */
export const POLLPRI = EPOLLPRI;
/** POLLOUT. */
export const POLLOUT = EPOLLOUT;
/** POLLERR. */
export const POLLERR = EPOLLERR;
/** POLLHUP. */
export const POLLHUP = EPOLLHUP;
/** POLLNVAL. */
export const POLLNVAL = EPOLLNVAL;
/** POLLRDNORM. */
export const POLLRDNORM = EPOLLRDNORM;
/** POLLWRNORM. */
export const POLLWRNORM = EPOLLWRNORM;
/** POLLRDHUP. */
export const POLLRDHUP = EPOLLRDHUP;

/** What a file without a poll operation reports. */
export const DEFAULT_POLLMASK = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;

/** The poll table handed to `FileOperations.poll` (poll_table). */
export class PollTable {
  /** The events the caller is interested in (plus POLLERR|POLLHUP). */
  key = ~0;
  /** The registration function; null once registration is over. */
  qproc: ((file: File, wq: WaitQueueHead, pt: PollTable) => void) | null = null;
}

/** poll_wait(): registers the poller on `wq` (a no-op when not registering). */
export function pollWait(file: File, wq: WaitQueueHead, pt: PollTable | null): void {
  if (pt?.qproc && wq) pt.qproc(file, wq, pt);
}

/** vfs_poll(): the file's mask, DEFAULT_POLLMASK without a poll operation. */
export function vfsPoll(file: File, pt: PollTable | null): number {
  if (!file.fOp.poll) return DEFAULT_POLLMASK;
  return file.fOp.poll(file, pt);
}

/** struct poll_wqueues: the entries one poll() call hung on wait queues. */
class PollWqueues extends PollTable {
  triggered = false;
  readonly entries: WaitQueueEntry[] = [];

  constructor(readonly wakeTask: () => void) {
    super();
    this.qproc = (_file, wq, pt) => {
      const key = pt.key;
      const e = new WaitQueueEntry((_entry, k) => {
        if (k !== null && !(k & key)) return false;
        this.triggered = true;
        this.wakeTask();
        return true;
      });
      wq.add(e);
      this.entries.push(e);
    };
  }

  freewait(): void {
    for (const e of this.entries) e.head?.remove(e);
    this.entries.length = 0;
  }
}

/**
 * do_sys_poll(): `ufds` is the user address of `nfds` struct pollfd, `timeoutMs` an
 * int (negative: wait forever). Returns the number of ready fds, 0 on timeout, or
 * -EINVAL (nfds above RLIMIT_NOFILE), -EFAULT, -EINTR (a signal).
 */
export async function doSysPoll(ufds: number, nfds: number, timeoutMs: number): Promise<number> {
  const k = currentKernel();
  const task = current();
  nfds >>>= 0;
  timeoutMs |= 0;
  if (!task?.files || nfds > task.files.nofile) return -errno.EINVAL;
  const raw = new Uint8Array(nfds * pollfd.size);
  if (copyFromUser(raw, ufds)) return -errno.EFAULT;
  const fds = [];
  for (let i = 0; i < nfds; i++) fds.push(pollfd.decode(raw, i * pollfd.size));

  const engine = k.engine;
  const me = engine.currentTask();
  const end = timeoutMs >= 0 ? engine.now + timeoutMs * 1_000_000 : undefined;
  const table = new PollWqueues(() => engine.wakeUp(me));
  let timedOut = timeoutMs === 0;
  // As do_poll(): the table always carries the requested events (poll_requested_events);
  // clearing qproc stops registration (a zero timeout, or once something is ready).
  if (timedOut) table.qproc = null;
  let count = 0;
  try {
    for (;;) {
      count = 0;
      for (const p of fds) {
        let mask = 0;
        if (p.fd >= 0) {
          const file = fdget(p.fd);
          if (!file) {
            mask = EPOLLNVAL;
          } else {
            const filter = (p.events & 0xffff) | EPOLLERR | EPOLLHUP;
            table.key = filter;
            mask = vfsPoll(file, table) & filter;
          }
        }
        p.revents = mask;
        if (mask) {
          count++;
          table.qproc = null;
        }
      }
      table.qproc = null;
      if (!count && k.signalPending()) {
        count = -errno.EINTR;
        break;
      }
      if (count || timedOut) break;
      if (!table.triggered) {
        const why = await engine.block(
          { what: `poll on ${nfds} fd(s)` },
          { deadline: end, interruptible: true },
        );
        if (why === 'timeout') timedOut = true;
      }
      table.triggered = false;
    }
  } finally {
    table.freewait();
  }
  for (let i = 0; i < nfds; i++) {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, fds[i].revents, true);
    if (copyToUser(ufds + i * pollfd.size + 6, b)) return -errno.EFAULT;
  }
  return count;
}
