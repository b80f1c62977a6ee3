/**
 * The uverbs character device, /dev/infiniband/uverbs<N>: opening it creates a user
 * context; every verbs object a process creates belongs to that open file, and the
 * file's release destroys them all, so a process that exits (or closes the fd) gives
 * back its QPs, MRs (detaching their dma-bufs), CQs and PDs.
 *
 * Follows drivers/infiniband/core/uverbs_main.c (ib_uverbs_open, ib_uverbs_close ->
 * uverbs_destroy_ufile_hw) and rdma_core.c (objects are destroyed in dependency order:
 * QPs, then MRs, then CQs, then PDs) of Linux 6.12. The verbs commands themselves are
 * called directly by src/uapi/verbs.ts with the context found through the fd, instead of
 * being marshalled through the ioctl attribute buffers.
 */
import { errno } from '../../kernel/errno.ts';
import { fdget } from '../../kernel/fdtable.ts';
import type { File, FileOperations, Inode } from '../../kernel/file.ts';
import { registerDevice } from '../../kernel/vfs.ts';
import { type IbDevice, IbUcontext } from './ib-core.ts';
import { ibDeallocPd, ibDeregMr, ibDestroyCq, ibDestroyQp, ibDestroySrq } from './rdma-nic.ts';

/** Major number of the uverbs char devices (IB_UVERBS_MAJOR). */
export const IB_UVERBS_MAJOR = 231;
/** First minor (IB_UVERBS_BASE_MINOR). */
export const IB_UVERBS_BASE_MINOR = 192;

/** The path of a device's uverbs node. */
export function uverbsPath(d: IbDevice): string {
  return `/dev/infiniband/uverbs${d.index}`;
}

/** Destroys everything a user context owns (uverbs_destroy_ufile_hw). */
export async function uverbsDestroyUfileHw(uctx: IbUcontext): Promise<void> {
  if (uctx.closed) return;
  uctx.closed = true;
  for (const qp of [...uctx.qps]) ibDestroyQp(qp);
  for (const srq of [...uctx.srqs]) ibDestroySrq(srq);
  for (const mr of [...uctx.mrs]) await ibDeregMr(mr);
  for (const cq of [...uctx.cqs]) ibDestroyCq(cq);
  for (const pd of [...uctx.pds]) ibDeallocPd(pd);
  uctx.device.contexts.delete(uctx);
}

/** The file operations of /dev/infiniband/uverbsN. */
export const uverbsFops: FileOperations = {
  name: 'uverbs',
  open(inode: Inode, file: File): number {
    const d = inode.priv as IbDevice;
    const uctx = new IbUcontext(d);
    d.contexts.add(uctx);
    file.privateData = uctx;
    return 0;
  },
  async release(_inode: Inode, file: File): Promise<void> {
    await uverbsDestroyUfileHw(file.privateData as IbUcontext);
  },
};

/** ib_uverbs_add_one(): creates the device's uverbs node. */
export function ibUverbsAddOne(d: IbDevice): void {
  registerDevice(uverbsPath(d), uverbsFops, {
    mode: 0o666,
    priv: d,
    rdev: (IB_UVERBS_MAJOR << 8) | (IB_UVERBS_BASE_MINOR + d.index),
  });
}

/** The user context behind `fd` of the current process, or -EBADF / -EINVAL (not a uverbs file). */
export function uverbsContextOf(fd: number): IbUcontext | number {
  const f = fdget(fd);
  if (!f) return -errno.EBADF;
  if (f.fOp !== uverbsFops) return -errno.EINVAL;
  const uctx = f.privateData as IbUcontext;
  return uctx.closed ? -errno.EIO : uctx;
}
