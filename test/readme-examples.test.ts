/**
 * The three examples of README.md "Using the library from TypeScript", run as they are
 * printed there (only the import path differs: `dmabuf-lab` is `../src/index.ts` here),
 * so the README cannot drift from the library.
 */
import { describe, expect, test } from 'vitest';
import {
  Device,
  DMA_BIDIRECTIONAL,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  DmaHeap,
  dmaBuf,
  dmaHeapAllocationData,
  dmaResvLock,
  dmaResvUnlock,
  ErrnoError,
  isErr,
  Machine,
  O_CLOEXEC,
  O_RDWR,
  ptrErr,
  registerDevice,
} from '../src/index.ts';

describe('README: using the library from TypeScript', () => {
  test('(a) the syscall ABI: open a dma-heap and allocate with DMA_HEAP_IOCTL_ALLOC', async () => {
    const out: string[] = [];
    const log = (...a: unknown[]) => out.push(a.join(' '));
    // --- README (a) ---
    const m = await Machine.create({ seed: 1 });
    const p = m.spawn('app', async (sys) => {
      const heap = await sys.open('/dev/dma_heap/system', O_RDWR | O_CLOEXEC);
      if (heap < 0) return 1; // every call returns >= 0 or -errno
      const data = sys.allocStruct(dmaHeapAllocationData, { len: 65536, fd_flags: O_RDWR | O_CLOEXEC });
      const rc = await sys.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, data);
      if (rc < 0) return 2;
      const { fd } = sys.readStruct(dmaHeapAllocationData, data);
      log('dma-buf fd', fd);
      log(await sys.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, 0)); // -14: EFAULT, a bad pointer
      return 0; // exit closes everything the process holds
    });
    await m.run();
    log(p.exitCode, m.reports.length); // 0 0
    // --- end ---
    expect(out).toEqual(['dma-buf fd 4', '-14', '0 0']);
  });

  test('(b) the typed wrappers: DmaHeap, DmaBuf, ErrnoError', async () => {
    const out: string[] = [];
    const log = (...a: unknown[]) => out.push(a.join(' '));
    // --- README (b) ---
    const m = await Machine.create({ seed: 1 });
    m.spawn('app', async (sys) => {
      const heap = await DmaHeap.open(sys, 'system');
      const buf = await heap.alloc(64 * 1024); // a DmaBuf: its fd and size
      await buf.setName('frame');
      const map = await buf.mmap();
      await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE);
      map.bytes().fill(0xab);
      await buf.sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE);
      try {
        await heap.alloc(0);
      } catch (e) {
        if (e instanceof ErrnoError) log(e.message); // the call and its errno
      }
      return 0;
    });
    await m.run();
    // --- end ---
    expect(out).toEqual(['ioctl(system, DMA_HEAP_IOCTL_ALLOC): EINVAL (22)']);
  });

  test('(c) the kernel-internal API: a dynamic importer driver, and a rule it breaks', async () => {
    const out: string[] = [];
    const log = (...a: unknown[]) => out.push(a.join(' '));
    // --- README (c) ---
    const m = await Machine.create({ seed: 1 });
    const dev = new Device('my-importer');
    m.kernel.enter(); // kernel code below runs on this machine's kernel
    registerDevice('/dev/my-importer', {
      name: 'my-importer',
      // ioctl(importer fd, 0 or 1, dma-buf fd): import the buffer, map it, let it go.
      async ioctl(_file, cmd, fd) {
        const buf = dmaBuf.dmaBufGet(fd);
        if (isErr(buf)) return ptrErr(buf);
        const ops = { allowPeer2peer: false, moveNotify: () => {} }; // dynamic importer
        const attach = await dmaBuf.dmaBufDynamicAttach(buf, dev, ops);
        if (isErr(attach)) {
          dmaBuf.dmaBufPut(buf);
          return ptrErr(attach);
        }
        const locked = cmd === 0; // cmd 1 forgets the reservation lock
        if (locked) await dmaResvLock(buf.resv, null);
        const sgt = await dmaBuf.dmaBufMapAttachment(attach, DMA_BIDIRECTIONAL);
        const ret = isErr(sgt) ? ptrErr(sgt) : sgt.nents; // DMA entries (use sg_dma_address only)
        if (!isErr(sgt)) await dmaBuf.dmaBufUnmapAttachment(attach, sgt, DMA_BIDIRECTIONAL);
        if (locked) dmaResvUnlock(buf.resv);
        await dmaBuf.dmaBufDetach(buf, attach);
        dmaBuf.dmaBufPut(buf);
        return ret;
      },
    });
    m.spawn('app', async (sys) => {
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(4096);
      const imp = await sys.open('/dev/my-importer', O_RDWR);
      log('locked:', await sys.ioctl(imp, 0, buf.fd)); // 1 entry mapped, no report
      log('unlocked:', await sys.ioctl(imp, 1, buf.fd)); // works, but breaks a rule
      return 0;
    });
    await m.run();
    for (const r of m.reports) log(r.type, r.rule);
    // --- end ---
    expect(out).toEqual([
      'locked: 1',
      'unlocked: 1',
      'violation dma_buf.map_without_resv_lock',
      'violation dma_buf.unmap_without_resv_lock',
    ]);
  });
});
