/**
 * DMA-BUF statistics in sysfs (drivers/dma-buf/dma-buf-sysfs-stats.c,
 * CONFIG_DMABUF_SYSFS_STATS, Linux 6.12).
 *
 * Every dma-buf has a directory /sys/kernel/dmabuf/buffers/<inode number> with two
 * read-only files, `exporter_name` and `size`, each holding its value and a newline.
 * The directory appears at export and goes away at release; reading a file whose buffer
 * is gone fails with -ENODEV (kernfs after removal).
 */
import { errno } from '../errno.ts';
import { singleOpen } from '../seq-file.ts';
import { registerDevice, unregisterDevice } from '../vfs.ts';
import type { DmaBuf } from './dma-buf.ts';

/** The directory holding one directory per buffer. */
export const DMA_BUF_SYSFS_BUFFERS = '/sys/kernel/dmabuf/buffers';

function attrPath(dmabuf: DmaBuf, attr: string): string {
  return `${DMA_BUF_SYSFS_BUFFERS}/${dmabuf.ino}/${attr}`;
}

function attribute(dmabuf: DmaBuf, attr: string, value: () => string): void {
  registerDevice(
    attrPath(dmabuf, attr),
    singleOpen((m) => {
      if (dmabuf.released) return -errno.ENODEV;
      m.puts(`${value()}\n`);
    }, `dmabuf_sysfs_${attr}`),
    { mode: 0o444 },
  );
}

/** dma_buf_stats_setup(): creates the buffer's directory and files. */
export function dmaBufStatsSetup(dmabuf: DmaBuf): void {
  attribute(dmabuf, 'exporter_name', () => dmabuf.expName);
  attribute(dmabuf, 'size', () => String(dmabuf.size));
}

/** dma_buf_stats_teardown(): removes them. */
export function dmaBufStatsTeardown(dmabuf: DmaBuf): void {
  unregisterDevice(attrPath(dmabuf, 'exporter_name'));
  unregisterDevice(attrPath(dmabuf, 'size'));
}
