/**
 * The typed wrappers of src/uapi/ over the dma-buf, dma-heap and udmabuf ABI: what a
 * program writes, and the `ErrnoError` (errno + call) a failure throws.
 */
import { describe, expect, test } from 'vitest';
import {
  DmaBuf,
  DmaHeap,
  ErrnoError,
  errno,
  F_ADD_SEALS,
  F_SEAL_SHRINK,
  Machine,
  MFD_ALLOW_SEALING,
  POLLIN,
  POLLOUT,
  type Sys,
  Udmabuf,
} from '../src/index.ts';

async function run(main: (sys: Sys) => Promise<void>) {
  const m = await Machine.create({ seed: 11 });
  const p = m.spawn('app', async (sys) => {
    await main(sys);
    return 0;
  });
  await m.run();
  if (p.error) throw p.error;
  expect(m.reports).toEqual([]);
}

describe('typed wrappers', () => {
  test('DmaHeap.open + alloc + mmap + CPU access + name + poll', async () => {
    await run(async (sys) => {
      const buf = await DmaHeap.open(sys, 'system').then((h) => h.alloc(1 << 20));
      expect(buf.size).toBe(1 << 20);
      const map = await buf.mmap();
      await buf.withCpuAccess('write', () => map.bytes().fill(0xee));
      await buf.setName('weights');
      expect(await buf.poll(POLLIN | POLLOUT)).toBe(POLLIN | POLLOUT);
      const again = await DmaBuf.fromFd(sys, buf.fd);
      expect(again.size).toBe(1 << 20);
      const sync = await buf.exportSyncFile('rw');
      await buf.importSyncFile(sync, 'write');
      await map.unmap();
      await buf.close();
    });
  });

  test('failures throw ErrnoError with the errno and the call', async () => {
    await run(async (sys) => {
      const err = await DmaHeap.open(sys, 'nope').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ErrnoError);
      expect(err).toMatchObject({ errno: errno.ENOENT, code: 'ENOENT', call: 'open(/dev/dma_heap/nope)' });
      const heap = await DmaHeap.open(sys, 'reserved');
      await expect(heap.alloc(128 << 20)).rejects.toMatchObject({
        errno: errno.ENOMEM,
        call: 'ioctl(reserved, DMA_HEAP_IOCTL_ALLOC)',
      });
      const buf = await heap.alloc(4096);
      await expect(buf.setName('x'.repeat(32))).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(buf.mmap({ length: 8192 })).rejects.toMatchObject({
        code: 'EINVAL',
        call: 'mmap(dma-buf)',
      });
    });
  });

  test('Udmabuf.create and createList alias the memfd pages', async () => {
    await run(async (sys) => {
      const memfd = await sys.memfd_create(sys.allocCString('u'), MFD_ALLOW_SEALING);
      await sys.ftruncate(memfd, 4 * 4096);
      await sys.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK);
      const dev = await Udmabuf.open(sys);
      const one = await dev.create(memfd, 4096, 4096, { cloexec: true });
      const list = await dev.createList([
        { memfd, offset: 3 * 4096, size: 4096 },
        { memfd, offset: 0, size: 2 * 4096 },
      ]);
      expect([one.size, list.size]).toEqual([4096, 3 * 4096]);
      const mm = await sys.mmap(0, 4 * 4096, 3, 1, memfd, 0);
      sys.poke(mm + 4096, Uint8Array.of(1));
      sys.poke(mm + 3 * 4096, Uint8Array.of(3));
      const a = await one.mmap();
      const b = await list.mmap();
      expect(a.bytes()[0]).toBe(1);
      expect([sys.peek(b.addr, 1)[0], sys.peek(b.addr + 2 * 4096, 1)[0]]).toEqual([3, 1]);
      await expect(dev.create(memfd, 100, 4096)).rejects.toMatchObject({
        code: 'EINVAL',
        call: 'ioctl(UDMABUF_CREATE)',
      });
    });
  });
});
