/**
 * The udmabuf userspace ABI (include/uapi/linux/udmabuf.h) and a typed wrapper.
 *
 * ABI: /dev/udmabuf turns ranges of sealed memfds into a dma-buf. UDMABUF_CREATE takes
 * one range; UDMABUF_CREATE_LIST takes a header followed by `count` items (the ioctl's
 * size field only covers the 8-byte header).
 *
 * Wrapper: `Udmabuf.open(sys)`, then `create(memfd, offset, size)` or
 * `createList(items)` gives a `DmaBuf`; failures throw `ErrnoError`.
 */
import { O_RDWR } from '../kernel/fcntl.ts';
import { DmaBuf } from './dma-buf.ts';
import { checkErrno } from './errno-error.ts';
import { _IOW } from './ioctl.ts';
import { defineStruct } from './structs.ts';
import type { Sys } from './sys.ts';

/** Path of the udmabuf device. */
export const UDMABUF_DEV_PATH = '/dev/udmabuf';
/** Make the new dma-buf fd close-on-exec. */
export const UDMABUF_FLAGS_CLOEXEC = 0x01;

/** struct udmabuf_create: 24 bytes. */
export const udmabufCreate = defineStruct('udmabuf_create', [
  ['memfd', 'u32'],
  ['flags', 'u32'],
  ['offset', 'u64'],
  ['size', 'u64'],
] as const);

/** struct udmabuf_create_item: 24 bytes. */
export const udmabufCreateItem = defineStruct('udmabuf_create_item', [
  ['memfd', 'u32'],
  ['__pad', 'u32'],
  ['offset', 'u64'],
  ['size', 'u64'],
] as const);

/** struct udmabuf_create_list without its flexible array: 8 bytes, the items follow. */
export const udmabufCreateList = defineStruct('udmabuf_create_list', [
  ['flags', 'u32'],
  ['count', 'u32'],
] as const);

/** UDMABUF_CREATE. */
export const UDMABUF_CREATE = _IOW('u', 0x42, udmabufCreate.size);
/** UDMABUF_CREATE_LIST. */
export const UDMABUF_CREATE_LIST = _IOW('u', 0x43, udmabufCreateList.size);

/** One memfd range of a udmabuf. */
export interface UdmabufItem {
  /** The memfd (sealed with F_SEAL_SHRINK, not write-sealed). */
  memfd: number;
  /** Byte offset in the memfd (page aligned). */
  offset: number | bigint;
  /** Length in bytes (page aligned). */
  size: number | bigint;
}

/** An open /dev/udmabuf, with typed calls. */
export class Udmabuf {
  /** Use `Udmabuf.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The device fd. */
    readonly fd: number,
  ) {}

  /** Opens /dev/udmabuf. */
  static async open(sys: Sys): Promise<Udmabuf> {
    return new Udmabuf(
      sys,
      checkErrno(await sys.open(UDMABUF_DEV_PATH, O_RDWR), `open(${UDMABUF_DEV_PATH})`),
    );
  }

  /** UDMABUF_CREATE: a dma-buf over [offset, offset+size) of `memfd`. */
  async create(
    memfd: number,
    offset: number | bigint,
    size: number | bigint,
    opts: { cloexec?: boolean } = {},
  ): Promise<DmaBuf> {
    const arg = this.sys.allocStruct(udmabufCreate, {
      memfd,
      flags: opts.cloexec ? UDMABUF_FLAGS_CLOEXEC : 0,
      offset,
      size,
    });
    const fd = checkErrno(await this.sys.ioctl(this.fd, UDMABUF_CREATE, arg), 'ioctl(UDMABUF_CREATE)');
    return DmaBuf.fromFd(this.sys, fd);
  }

  /** UDMABUF_CREATE_LIST: a dma-buf over the ranges, in order. */
  async createList(items: readonly UdmabufItem[], opts: { cloexec?: boolean } = {}): Promise<DmaBuf> {
    const arg = this.sys.alloc(udmabufCreateList.size + items.length * udmabufCreateItem.size, 8);
    this.sys.writeStruct(udmabufCreateList, arg, {
      flags: opts.cloexec ? UDMABUF_FLAGS_CLOEXEC : 0,
      count: items.length,
    });
    items.forEach((it, i) => {
      this.sys.writeStruct(udmabufCreateItem, arg + udmabufCreateList.size + i * udmabufCreateItem.size, it);
    });
    const fd = checkErrno(
      await this.sys.ioctl(this.fd, UDMABUF_CREATE_LIST, arg),
      'ioctl(UDMABUF_CREATE_LIST)',
    );
    return DmaBuf.fromFd(this.sys, fd);
  }

  /** close(2) of the device fd (buffers stay). */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), 'close(/dev/udmabuf)');
  }
}
