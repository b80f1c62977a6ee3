/**
 * dma-buf steps through its uAPI: allocation from a dma-heap, udmabuf from a memfd,
 * CPU access brackets, and implicit-sync interop with sync_file.
 *
 * - `heap_alloc`: DMA_HEAP_IOCTL_ALLOC on /dev/dma_heap/<heap> (include/uapi/linux/dma-heap.h);
 * - `udmabuf`: UDMABUF_CREATE on /dev/udmabuf (include/uapi/linux/udmabuf.h);
 * - `dma_buf_sync`: DMA_BUF_IOCTL_SYNC start/end of CPU access (include/uapi/linux/dma-buf.h);
 * - `export_sync_file` / `import_sync_file`: DMA_BUF_IOCTL_EXPORT_SYNC_FILE /
 *   IMPORT_SYNC_FILE, the bridge between a buffer's implicit fences and explicit ones.
 *
 * The request numbers and struct layouts come from src/uapi (the kernel's uapi headers);
 * the devices behind them from the dma-buf core and the heap and udmabuf drivers. On a
 * machine without one the step fails as on a kernel without the driver (ENOENT from
 * open); scenarios name the devices they need in `requires`.
 */
import { z } from 'zod';
import { O_CLOEXEC, O_RDWR } from '../../kernel/fcntl.ts';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  dmaBufExportSyncFile,
  dmaBufImportSyncFile,
  dmaBufSync,
} from '../../uapi/dma-buf.ts';
import { DMA_HEAP_DEV_DIR, DMA_HEAP_IOCTL_ALLOC, dmaHeapAllocationData } from '../../uapi/dma-heap.ts';
import {
  UDMABUF_CREATE,
  UDMABUF_DEV_PATH,
  UDMABUF_FLAGS_CLOEXEC,
  udmabufCreate,
} from '../../uapi/udmabuf.ts';
import { identifier, registerStepKind, type StepContext } from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { access, accessBits, fdName } from './util.ts';

/** Device fds a process opened once and keeps (heaps, /dev/udmabuf), by path. */
const devices = new WeakMap<object, Map<string, number>>();

/** The fd of the device at `path` in this process, opened on first use; or -errno. */
async function deviceFd(ctx: StepContext, path: string): Promise<number> {
  let m = devices.get(ctx.sys.process);
  if (!m) {
    m = new Map();
    devices.set(ctx.sys.process, m);
  }
  const have = m.get(path);
  if (have !== undefined) return have;
  const fd = await ctx.sys.open(path, O_RDWR | O_CLOEXEC);
  if (fd >= 0) m.set(path, fd);
  return fd;
}

registerStepKind({
  kind: 'heap_alloc',
  summary:
    'DMA_HEAP_IOCTL_ALLOC: a dma-buf of `size` bytes from /dev/dma_heap/<heap> (system by default; a CMA heap is usually named reserved or linux,cma). Binds its fd.',
  args: z.strictObject({
    heap: z
      .string()
      .regex(/^[A-Za-z0-9_.,-]+$/, { error: 'expected a heap name such as system or reserved' })
      .default('system')
      .meta({ description: 'The heap: the name under /dev/dma_heap/ (default system).' }),
    size: size.meta({ description: 'Bytes to allocate (the heap rounds up to pages).' }),
  }),
  produces: 'fd',
  label: (a) => `heap_alloc ${a.heap} ${sizeText(a.size)}`,
  async run(ctx, a) {
    const heap = await deviceFd(ctx, `${DMA_HEAP_DEV_DIR}/${a.heap}`);
    if (heap < 0) return { ret: heap };
    const { sys } = ctx;
    const d = ctx.scratch(dmaHeapAllocationData.size, 8);
    sys.writeStruct(dmaHeapAllocationData, d, { len: a.size, fd_flags: O_RDWR | O_CLOEXEC });
    const ret = await sys.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, d);
    if (ret < 0) return { ret };
    const fd = sys.readStruct(dmaHeapAllocationData, d).fd;
    return { ret: fd, value: { type: 'fd', fd, what: 'dma_buf' }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'udmabuf',
  summary:
    'UDMABUF_CREATE: a dma-buf over pages of a memfd (which must be sealed against shrinking, offset and size page-aligned). Binds its fd.',
  args: z.strictObject({
    memfd: fdName.meta({ description: 'The memfd (a name bound by memfd).' }),
    offset: size.default(0).meta({ description: 'Offset in the memfd (default 0).' }),
    size: size.meta({ description: 'Bytes.' }),
  }),
  produces: 'fd',
  refs: (a) => [{ name: a.memfd, type: 'fd', path: ['memfd'] }],
  label: (a) => `udmabuf ${a.memfd} ${sizeText(a.size)}${a.offset ? ` at ${sizeText(a.offset)}` : ''}`,
  async run(ctx, a) {
    const dev = await deviceFd(ctx, UDMABUF_DEV_PATH);
    if (dev < 0) return { ret: dev };
    const { sys } = ctx;
    const d = ctx.scratch(udmabufCreate.size, 8);
    sys.writeStruct(udmabufCreate, d, {
      memfd: ctx.fd(a.memfd),
      flags: UDMABUF_FLAGS_CLOEXEC,
      offset: a.offset,
      size: a.size,
    });
    const fd = await sys.ioctl(dev, UDMABUF_CREATE, d);
    if (fd < 0) return { ret: fd };
    return { ret: fd, value: { type: 'fd', fd, what: 'dma_buf' }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'dma_buf_sync',
  summary:
    'DMA_BUF_IOCTL_SYNC: brackets CPU access to a mapped dma-buf (start before touching it, end after), for read, write or both.',
  args: z.strictObject({
    fd: fdName.meta({ description: 'The dma-buf.' }),
    op: z.enum(['start', 'end']).meta({ description: 'start or end of the CPU access.' }),
    access: access.default('rw'),
  }),
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) => `dma_buf_sync ${a.fd} ${a.op} ${a.access}`,
  async run(ctx, a) {
    const d = ctx.scratch(dmaBufSync.size, 8);
    const flags = accessBits(a.access) | (a.op === 'end' ? DMA_BUF_SYNC_END : 0);
    ctx.sys.writeStruct(dmaBufSync, d, { flags });
    return { ret: await ctx.sys.ioctl(ctx.fd(a.fd), DMA_BUF_IOCTL_SYNC, d) };
  },
});

registerStepKind({
  kind: 'export_sync_file',
  summary:
    "DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a sync_file holding a snapshot of the buffer's implicit fences (read: its writers; write: all). Binds its fd.",
  args: z.strictObject({
    fd: fdName.meta({ description: 'The dma-buf.' }),
    access: access
      .default('rw')
      .meta({ description: 'read (wait for writers), write or rw (wait for all).' }),
  }),
  produces: 'fd',
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) => `export_sync_file ${a.fd} ${a.access}`,
  async run(ctx, a) {
    const d = ctx.scratch(dmaBufExportSyncFile.size, 8);
    ctx.sys.writeStruct(dmaBufExportSyncFile, d, { flags: accessBits(a.access), fd: -1 });
    const ret = await ctx.sys.ioctl(ctx.fd(a.fd), DMA_BUF_IOCTL_EXPORT_SYNC_FILE, d);
    if (ret < 0) return { ret };
    const fd = ctx.sys.readStruct(dmaBufExportSyncFile, d).fd;
    return { ret: fd, value: { type: 'fd', fd, what: 'sync_file' }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'import_sync_file',
  summary:
    "DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds a sync_file's fence to the buffer's implicit fences (write: as a writer, read: as a reader).",
  args: z.strictObject({
    fd: fdName.meta({ description: 'The dma-buf.' }),
    sync_file: identifier.meta({ description: 'The sync_file whose fence is added.' }),
    access: access.default('write'),
  }),
  refs: (a) => [
    { name: a.fd, type: 'fd', path: ['fd'] },
    { name: a.sync_file, type: 'fd', path: ['sync_file'] },
  ],
  label: (a) => `import_sync_file ${a.sync_file} -> ${a.fd} ${a.access}`,
  async run(ctx, a) {
    const d = ctx.scratch(dmaBufImportSyncFile.size, 8);
    ctx.sys.writeStruct(dmaBufImportSyncFile, d, { flags: accessBits(a.access), fd: ctx.fd(a.sync_file) });
    return { ret: await ctx.sys.ioctl(ctx.fd(a.fd), DMA_BUF_IOCTL_IMPORT_SYNC_FILE, d) };
  },
});
