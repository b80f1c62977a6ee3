/**
 * The userspace ABI of the model's scan-out device (`/dev/scanout<N>`, driven by
 * src/drivers/media/display-importer.ts) and a typed wrapper.
 *
 * Model-only ABI (no Linux header defines it; a display or capture driver would expose
 * the same import through DRM's PRIME or V4L2's DMABUF memory type): SCANOUT_IOCTL_FRAME
 * takes a dma-buf fd and a byte range, imports the buffer as a static importer
 * (dma_buf_attach + dma_buf_map_attachment_unlocked), scans the range out by DMA and
 * returns the frame's CRC-32 (the IEEE polynomial, as a display CRC capture would) and
 * the number of DMA segments of the mapping. The exporter's errno comes back unchanged
 * (-EPERM from habanalabs, whose device memory has no struct page).
 *
 * Wrapper: `Scanout.open(sys, n)`, then `frame(fd, opts)`; failures throw `ErrnoError`.
 */
import { O_RDWR } from '../kernel/fcntl.ts';
import { checkErrno } from './errno-error.ts';
import { _IOWR } from './ioctl.ts';
import { defineStruct } from './structs.ts';
import type { Sys } from './sys.ts';

/** Path of scan-out device `n`. */
export function scanoutPath(n: number): string {
  return `/dev/scanout${n}`;
}

/**
 * Model-only debugging flag: attach dynamically with `allow_peer2peer`, as a driver that
 * claims it can take bus addresses would (so a page-less exporter maps for it).
 */
export const SCANOUT_FRAME_MODEL_P2P = 1 << 0;
/**
 * Model-only fault injection: the driver's CPU reads the frame through sg_page() of the
 * table the dma-buf core lent it — the importer bug that CONFIG_DMABUF_DEBUG catches.
 */
export const SCANOUT_FRAME_MODEL_SG_PAGE = 1 << 1;
/** Every flag SCANOUT_IOCTL_FRAME accepts. */
export const SCANOUT_FRAME_FLAGS = SCANOUT_FRAME_MODEL_P2P | SCANOUT_FRAME_MODEL_SG_PAGE;

/** struct scanout_frame: 32 bytes. */
export const scanoutFrame = defineStruct('scanout_frame', [
  ['fd', 's32'],
  ['flags', 'u32'],
  ['offset', 'u64'],
  ['length', 'u64'],
  ['crc32', 'u32'],
  ['nents', 'u32'],
] as const);

/** SCANOUT_IOCTL_FRAME (model-only number, magic 'S', nr 0xd0). */
export const SCANOUT_IOCTL_FRAME = _IOWR('S', 0xd0, scanoutFrame.size);

/** What a scanned frame reports. */
export interface ScanoutResult {
  /** CRC-32 (IEEE 802.3, as zlib's crc32) of the scanned bytes. */
  crc32: number;
  /** DMA segments of the device's mapping. */
  nents: number;
}

/** Options of `Scanout.frame`. */
export interface ScanoutFrameOptions {
  /** Byte offset of the frame in the buffer (default 0). */
  offset?: number;
  /** Bytes to scan (default 0: up to the end of the buffer). */
  length?: number;
  /** SCANOUT_FRAME_* flags (default 0). */
  flags?: number;
}

/** An open scan-out device, with typed calls. */
export class Scanout {
  /** Use `Scanout.open`. */
  constructor(
    /** The process's syscalls. */
    readonly sys: Sys,
    /** The device fd. */
    readonly fd: number,
  ) {}

  /** Opens /dev/scanout<n>. */
  static async open(sys: Sys, n = 0): Promise<Scanout> {
    return new Scanout(sys, checkErrno(await sys.open(scanoutPath(n), O_RDWR), `open(${scanoutPath(n)})`));
  }

  /** SCANOUT_IOCTL_FRAME, raw: 0 or -errno, the result written back to `arg`. */
  async frameRaw(dmabufFd: number, opts: ScanoutFrameOptions = {}): Promise<number | ScanoutResult> {
    const arg = this.sys.allocStruct(scanoutFrame, {
      fd: dmabufFd,
      flags: opts.flags ?? 0,
      offset: opts.offset ?? 0,
      length: opts.length ?? 0,
    });
    const rc = await this.sys.ioctl(this.fd, SCANOUT_IOCTL_FRAME, arg);
    if (rc < 0) return rc;
    const out = this.sys.readStruct(scanoutFrame, arg);
    return { crc32: out.crc32, nents: out.nents };
  }

  /** SCANOUT_IOCTL_FRAME: scans the dma-buf at `dmabufFd` out; throws ErrnoError on failure. */
  async frame(dmabufFd: number, opts: ScanoutFrameOptions = {}): Promise<ScanoutResult> {
    const r = await this.frameRaw(dmabufFd, opts);
    if (typeof r === 'number') checkErrno(r, 'ioctl(SCANOUT_IOCTL_FRAME)');
    return r as ScanoutResult;
  }

  /** close(2) of the device fd. */
  async close(): Promise<void> {
    checkErrno(await this.sys.close(this.fd), 'close(/dev/scanout)');
  }
}
