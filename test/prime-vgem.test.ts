/**
 * vgem, PRIME and the DRM core, named after the IGT subtests they port: vgem_basic,
 * prime_vgem (with the model's other processes and the system heap standing in for
 * IGT's second GPU), dmabuf_sync_file (implicit fences of a vgem dma-buf as sync_files),
 * plus the DRM ioctl dispatcher's rules (drm_ioctl.c) and lifetime checks (process exit
 * releases objects, exports and mappings; a dma-buf fd keeps its vgem object alive in
 * another process).
 */
import { describe, expect, test } from 'vitest';
import { drmGemLiveObjects } from '../src/drivers/gpu/drm/drm-gem.ts';
import { drmSyncobjLive } from '../src/drivers/gpu/drm/drm-syncobj.ts';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  dmaBufExportSyncFile,
  dmaBufImportSyncFile,
  dmaBuf as dmaBufKernel,
  dmaBufSync,
  dmaHeapAllocationData,
  MAP_PRIVATE,
  MAP_SHARED,
  Machine,
  O_CLOEXEC,
  O_EXCL,
  O_NONBLOCK,
  O_RDWR,
  POLLIN,
  POLLOUT,
  PROT_READ,
  PROT_WRITE,
  pollfd,
  type Sys,
} from '../src/index.ts';
import {
  DRM_CAP_DUMB_BUFFER,
  DRM_CAP_PRIME,
  DRM_CAP_TIMESTAMP_MONOTONIC,
  DRM_CLOEXEC,
  DRM_IO,
  DRM_IOCTL_DROP_MASTER,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_GEM_FLINK,
  DRM_IOCTL_GEM_OPEN,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_GET_CLIENT,
  DRM_IOCTL_GET_MAGIC,
  DRM_IOCTL_MODE_CREATE_DUMB,
  DRM_IOCTL_MODE_GETRESOURCES,
  DRM_IOCTL_MODE_MAP_DUMB,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_SET_MASTER,
  DRM_IOCTL_SET_VERSION,
  DRM_IOCTL_VERSION,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  DRM_IOR,
  DRM_IOWR,
  DRM_PRIME_CAP_EXPORT,
  DRM_PRIME_CAP_IMPORT,
  DRM_RDWR,
  Drm,
  drmClient,
  drmGemClose,
  drmGemFlink,
  drmGemOpen,
  drmGetCap,
  drmModeCreateDumb,
  drmModeMapDumb,
  drmPrimeHandle,
  drmSetVersion,
  drmVersion,
  drmVgemFenceAttach,
  drmVgemFenceSignal,
  VGEM_FENCE_WRITE,
} from '../src/uapi/drm.ts';
import {
  runProgram,
  SHORT_TIME_NSEC,
  setTimer,
  sleepNsec,
  swSyncTimelineCreate,
  swSyncTimelineCreateFence,
  swSyncTimelineInc,
} from './helpers/drm.ts';
import { readWhole } from './helpers/probe.ts';

const PG = 4096;
const E = {
  EPERM: -1,
  ENOENT: -2,
  EBADF: -9,
  EAGAIN: -11,
  EFAULT: -14,
  EBUSY: -16,
  EINVAL: -22,
  ENOTTY: -25,
  EACCES: -13,
  EOPNOTSUPP: -95,
  ETIMEDOUT: -110,
};

interface Bo {
  handle: number;
  pitch: number;
  size: number;
}

/** vgem_create(): a dumb buffer; returns the result and the object. */
async function vgemCreateRaw(
  sys: Sys,
  fd: number,
  width: number,
  height: number,
  bpp: number,
): Promise<{ rc: number; bo: Bo }> {
  const a = sys.allocStruct(drmModeCreateDumb, { width, height, bpp });
  const rc = await sys.ioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, a);
  const v = sys.readStruct(drmModeCreateDumb, a);
  return { rc, bo: { handle: v.handle, pitch: v.pitch, size: Number(v.size) } };
}

async function vgemCreate(sys: Sys, fd: number, width: number, height: number, bpp: number): Promise<Bo> {
  const r = await vgemCreateRaw(sys, fd, width, height, bpp);
  expect(r.rc).toBe(0);
  return r.bo;
}

/** vgem_mmap(): MAP_DUMB + mmap of the DRM fd. */
async function vgemMmap(sys: Sys, fd: number, bo: Bo, prot = PROT_READ | PROT_WRITE): Promise<number> {
  const a = sys.allocStruct(drmModeMapDumb, { handle: bo.handle });
  expect(await sys.ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, a)).toBe(0);
  const addr = await sys.mmap(0, bo.size, prot, MAP_SHARED, fd, sys.readStruct(drmModeMapDumb, a).offset);
  expect(addr).toBeGreaterThan(0);
  return addr;
}

async function gemClose(sys: Sys, fd: number, handle: number): Promise<number> {
  return sys.ioctl(fd, DRM_IOCTL_GEM_CLOSE, sys.allocStruct(drmGemClose, { handle }));
}

/** prime_handle_to_fd(): flags default DRM_CLOEXEC (read-only); the result or -errno. */
async function primeHandleToFd(sys: Sys, fd: number, handle: number, flags = DRM_CLOEXEC): Promise<number> {
  const a = sys.allocStruct(drmPrimeHandle, { handle, flags, fd: -1 });
  const rc = await sys.ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, a);
  return rc < 0 ? rc : sys.readStruct(drmPrimeHandle, a).fd;
}

/** prime_fd_to_handle(): the handle or -errno. */
async function primeFdToHandle(sys: Sys, fd: number, dmabuf: number): Promise<number> {
  const a = sys.allocStruct(drmPrimeHandle, { fd: dmabuf });
  const rc = await sys.ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, a);
  return rc < 0 ? rc : sys.readStruct(drmPrimeHandle, a).handle;
}

/** vgem_fence_attach(): the fence id or -errno. */
async function fenceAttach(sys: Sys, fd: number, handle: number, flags = 0, pad = 0): Promise<number> {
  const a = sys.allocStruct(drmVgemFenceAttach, { handle, flags, pad });
  const rc = await sys.ioctl(fd, DRM_IOCTL_VGEM_FENCE_ATTACH, a);
  return rc < 0 ? rc : sys.readStruct(drmVgemFenceAttach, a).out_fence;
}

async function fenceSignal(sys: Sys, fd: number, fence: number, flags = 0): Promise<number> {
  return sys.ioctl(fd, DRM_IOCTL_VGEM_FENCE_SIGNAL, sys.allocStruct(drmVgemFenceSignal, { fence, flags }));
}

async function pollOne(
  sys: Sys,
  fd: number,
  events: number,
  timeoutMs = 0,
): Promise<{ rc: number; revents: number }> {
  const p = sys.allocStruct(pollfd, { fd, events });
  const rc = await sys.poll(p, 1, timeoutMs);
  return { rc, revents: sys.readStruct(pollfd, p).revents };
}

/** vgem_basic's prime_busy(): POLLOUT (excl) or POLLIN would block. */
async function primeBusy(sys: Sys, dmabuf: number, excl: boolean): Promise<boolean> {
  return (await pollOne(sys, dmabuf, excl ? POLLOUT : POLLIN)).rc === 0;
}

/** dmabuf_sync_file.h's dmabuf_busy(). */
async function dmabufBusy(sys: Sys, dmabuf: number, flags: number): Promise<boolean> {
  const ev = flags & DMA_BUF_SYNC_WRITE ? POLLOUT : POLLIN;
  return (await pollOne(sys, dmabuf, ev)).rc === 0;
}

async function exportSyncFile(sys: Sys, dmabuf: number, flags: number): Promise<number> {
  const a = sys.allocStruct(dmaBufExportSyncFile, { flags, fd: -1 });
  expect(await sys.ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, a)).toBe(0);
  return sys.readStruct(dmaBufExportSyncFile, a).fd;
}

async function syncFileBusy(sys: Sys, fd: number): Promise<boolean> {
  return (await pollOne(sys, fd, POLLIN)).rc === 0;
}

async function dmabufSyncFileBusy(sys: Sys, dmabuf: number, flags: number): Promise<boolean> {
  const s = await exportSyncFile(sys, dmabuf, flags);
  const busy = await syncFileBusy(sys, s);
  await sys.close(s);
  return busy;
}

async function importTimelineFence(
  sys: Sys,
  dmabuf: number,
  flags: number,
  tl: number,
  seqno: number,
): Promise<void> {
  const f = await swSyncTimelineCreateFence(sys, tl, seqno);
  expect(
    await sys.ioctl(
      dmabuf,
      DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
      sys.allocStruct(dmaBufImportSyncFile, { flags, fd: f }),
    ),
  ).toBe(0);
  await sys.close(f);
}

async function openCard(sys: Sys, path = '/dev/dri/card0', flags = O_RDWR): Promise<number> {
  const fd = await sys.open(path, flags);
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

function withVgem(fn: (sys: Sys, fd: number) => Promise<void>, path = '/dev/dri/card0'): () => Promise<void> {
  return async () => {
    const m = await runProgram(async (sys) => {
      const fd = await openCard(sys, path);
      await fn(sys, fd);
      await sys.close(fd);
    });
    expect(drmGemLiveObjects(m.kernel).size).toBe(0);
    expect(dmaBufKernel.dmaBufList(m.kernel).length).toBe(0);
  };
}

describe('vgem_basic', () => {
  test(
    'setversion',
    withVgem(async (sys, fd) => {
      const sv = sys.allocStruct(drmSetVersion, {
        drm_di_major: 1,
        drm_di_minor: 4,
        drm_dd_major: -1,
        drm_dd_minor: -1,
      });
      expect(await sys.ioctl(fd, DRM_IOCTL_SET_VERSION, sv)).toBe(0);
      expect(sys.readStruct(drmSetVersion, sv)).toEqual({
        drm_di_major: 1,
        drm_di_minor: 4,
        drm_dd_major: 1,
        drm_dd_minor: 0,
      });
      // 1.1 and later set the bus id: debugfs `name` now shows master=vgem.
      expect(await readWhole(sys, '/sys/kernel/debug/dri/0/name')).toBe(
        'vgem dev=vgem master=vgem unique=vgem\n',
      );
      const bad = sys.allocStruct(drmSetVersion, {
        drm_di_major: 1,
        drm_di_minor: 5,
        drm_dd_major: -1,
        drm_dd_minor: -1,
      });
      expect(await sys.ioctl(fd, DRM_IOCTL_SET_VERSION, bad)).toBe(E.EINVAL);
      const badDd = sys.allocStruct(drmSetVersion, { drm_di_major: -1, drm_dd_major: 2, drm_dd_minor: 0 });
      expect(await sys.ioctl(fd, DRM_IOCTL_SET_VERSION, badDd)).toBe(E.EINVAL);
    }),
  );

  test(
    'second-client: a second primary file is not master; render files are never',
    withVgem(async (sys, fd) => {
      const second = await openCard(sys);
      const render = await openCard(sys, '/dev/dri/renderD128');
      const sv = () => sys.allocStruct(drmSetVersion, { drm_di_major: -1, drm_dd_major: -1 });
      expect(await sys.ioctl(fd, DRM_IOCTL_SET_VERSION, sv())).toBe(0);
      expect(await sys.ioctl(second, DRM_IOCTL_SET_VERSION, sv())).toBe(E.EACCES);
      expect(await sys.ioctl(render, DRM_IOCTL_SET_VERSION, sv())).toBe(E.EACCES);
      // The master drops mastership; the second file takes it.
      expect(await sys.ioctl(second, DRM_IOCTL_SET_MASTER, 0)).toBe(E.EBUSY);
      expect(await sys.ioctl(second, DRM_IOCTL_DROP_MASTER, 0)).toBe(E.EINVAL);
      expect(await sys.ioctl(fd, DRM_IOCTL_DROP_MASTER, 0)).toBe(0);
      expect(await sys.ioctl(second, DRM_IOCTL_SET_MASTER, 0)).toBe(0);
      expect(await sys.ioctl(second, DRM_IOCTL_SET_VERSION, sv())).toBe(0);
      expect(await sys.ioctl(fd, DRM_IOCTL_SET_VERSION, sv())).toBe(E.EACCES);
      const clients = await readWhole(sys, '/sys/kernel/debug/dri/0/clients');
      expect(clients).toMatch(/^ {13}command {2}tgid dev master a {3}uid {6}magic\n/);
      // Oldest first: the first file (no longer master), the second (master), the render file.
      const cols = (clients as string)
        .split('\n')
        .slice(1, 4)
        .map((l) => /^ +igt +\d+ +(\d+) {3}([yn]) {4}([yn]) +0 +0$/.exec(l)?.slice(1));
      expect(cols).toEqual([
        ['0', 'n', 'y'],
        ['0', 'y', 'y'],
        ['128', 'n', 'y'],
      ]);
      await sys.close(second);
      await sys.close(render);
    }),
  );

  test(
    'create',
    withVgem(async (sys, fd) => {
      expect((await vgemCreateRaw(sys, fd, 0, 0, 0)).rc).toBe(E.EINVAL);
      for (const [w, h, bpp, size] of [
        [1, 1, 1, 4096],
        [1024, 1024, 8, 1 << 20],
        [1 << 15, 1 << 15, 16, 2 ** 31],
      ]) {
        const bo = await vgemCreate(sys, fd, w, h, bpp);
        expect(bo.size).toBe(size);
        expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      }
      // Overflowing 32 bits is refused before the driver sees it.
      expect((await vgemCreateRaw(sys, fd, 0x10000, 0x10000, 32)).rc).toBe(E.EINVAL);
      expect((await vgemCreateRaw(sys, fd, 1, 1, 0xfffffff8)).rc).toBe(E.EINVAL);
    }),
  );

  test(
    'mmap: the mapping keeps the object alive after GEM_CLOSE',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1024, 32);
      const ptr = await vgemMmap(sys, fd, bo, PROT_WRITE | PROT_READ);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      // Per page: sys.memory needs one contiguous buffer, and shmem pages come in 2 MiB chunks.
      for (let page = 0; page < bo.size / PG; page++) sys.memory(ptr + page * PG, PG)[0] = page & 0xff;
      expect(sys.peek(ptr + 5 * PG, 1)[0]).toBe(5);
      expect(sys.peek(ptr + 600 * PG, 1)[0]).toBe(600 & 0xff);
      expect(await sys.munmap(ptr, bo.size)).toBe(0);
    }),
  );

  test(
    'mmap rules: fake offset lookup, size, handle ownership, MAP_PRIVATE',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      const a = sys.allocStruct(drmModeMapDumb, { handle: bo.handle });
      expect(await sys.ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, a)).toBe(0);
      const off = sys.readStruct(drmModeMapDumb, a).offset;
      expect(off).toBe(0x100000000n);
      expect(
        await sys.ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, sys.allocStruct(drmModeMapDumb, { handle: 77 })),
      ).toBe(E.ENOENT);
      // Not at a range's start, or larger than the object: EINVAL.
      expect(await sys.mmap(0, PG, PROT_READ, MAP_SHARED, fd, off + BigInt(PG))).toBe(E.EINVAL);
      expect(await sys.mmap(0, bo.size + PG, PROT_READ, MAP_SHARED, fd, off)).toBe(E.EINVAL);
      expect(await sys.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)).toBe(E.EINVAL);
      // Copy-on-write mappings are refused.
      expect(await sys.mmap(0, PG, PROT_READ, MAP_PRIVATE, fd, off)).toBe(E.EINVAL);
      // Another DRM file without a handle to the object may not map it.
      const other = await openCard(sys, '/dev/dri/renderD128');
      expect(await sys.mmap(0, PG, PROT_READ, MAP_SHARED, other, off)).toBe(E.EACCES);
      // A shorter mapping is fine; bytes beyond it are not mapped.
      const p = await sys.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
      expect(p).toBeGreaterThan(0);
      expect(await sys.munmap(p, PG)).toBe(0);
      await sys.close(other);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'bad-flag',
    withVgem(async (sys, fd) => {
      expect(await fenceAttach(sys, fd, 0, 0xff)).toBe(E.EINVAL);
      expect(await fenceSignal(sys, fd, 0, 0xff)).toBe(E.EINVAL);
    }),
  );

  test(
    'bad-pad',
    withVgem(async (sys, fd) => {
      expect(await fenceAttach(sys, fd, 0, 0, 1)).toBe(E.EINVAL);
    }),
  );

  test(
    'bad-handle',
    withVgem(async (sys, fd) => {
      expect(await fenceAttach(sys, fd, 0xff)).toBe(E.ENOENT);
    }),
  );

  test(
    'bad-fence',
    withVgem(async (sys, fd) => {
      expect(await fenceSignal(sys, fd, 0xff)).toBe(E.ENOENT);
    }),
  );

  test(
    'busy-fence',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const f = await fenceAttach(sys, fd, bo.handle, 0);
      expect(f).toBe(1);
      // A write fence must wait for readers: EBUSY; another read fence is fine.
      expect(await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE)).toBe(E.EBUSY);
      expect(await fenceAttach(sys, fd, bo.handle, 0)).toBe(2);
      expect(await fenceSignal(sys, fd, 1)).toBe(0);
      expect(await fenceSignal(sys, fd, 2)).toBe(0);
      expect(await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE)).toBe(3);
      expect(await fenceSignal(sys, fd, 3)).toBe(0);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'fence timeout: a vgem fence signals by itself after 10 s; SIGNAL then says ETIMEDOUT',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      const f = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      const t0 = sys.now();
      // A blocking poll for the writer returns when the timer fires.
      const r = await pollOne(sys, dmabuf, POLLIN, 60_000);
      expect(r).toEqual({ rc: 1, revents: POLLIN });
      const waited = sys.now() - t0;
      expect(waited).toBeGreaterThanOrEqual(9_996_000_000n);
      expect(waited).toBeLessThanOrEqual(10_000_000_000n);
      expect(await fenceSignal(sys, fd, f)).toBe(E.ETIMEDOUT);
      expect(await fenceSignal(sys, fd, f)).toBe(E.ENOENT);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'dmabuf-export: another DRM file imports the export (same object, its own handle)',
    withVgem(async (sys, fd) => {
      const other = await openCard(sys, '/dev/dri/renderD128');
      const cap = sys.allocStruct(drmGetCap, { capability: DRM_CAP_PRIME });
      expect(await sys.ioctl(other, DRM_IOCTL_GET_CAP, cap)).toBe(0);
      expect(sys.readStruct(drmGetCap, cap).value).toBe(BigInt(DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT));
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      const handle = await primeFdToHandle(sys, other, dmabuf);
      expect(handle).toBe(1);
      await sys.close(dmabuf);
      expect(await gemClose(sys, other, handle)).toBe(0);
      await sys.close(other);
    }),
  );

  test(
    'dmabuf-mmap: bytes written through the dma-buf are seen through the vgem mapping',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1024, 32);
      const exp = await primeHandleToFd(sys, fd, bo.handle, DRM_CLOEXEC | DRM_RDWR);
      const ptr = await sys.mmap(0, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, exp, 0);
      expect(ptr).toBeGreaterThan(0);
      await sys.close(exp);
      const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
      for (let page = 0; page < bo.size / PG; page++) sys.poke(ptr + page * 4, u32(page));
      expect(await sys.munmap(ptr, bo.size)).toBe(0);
      const vptr = await vgemMmap(sys, fd, bo, PROT_READ);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      const back = new DataView(sys.peek(vptr, bo.size).buffer);
      for (let page = 0; page < bo.size / PG; page++) expect(back.getUint32(page * 4, true)).toBe(page);
      expect(await sys.munmap(vptr, bo.size)).toBe(0);
    }),
  );

  test(
    'dmabuf-fence',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      let fence = await fenceAttach(sys, fd, bo.handle, 0);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(true);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(false);
      fence = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      expect(await primeBusy(sys, dmabuf, false)).toBe(true);
      expect(await primeBusy(sys, dmabuf, true)).toBe(true);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(false);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'dmabuf-fence-before',
    withVgem(async (sys, fd) => {
      let bo = await vgemCreate(sys, fd, 1024, 1, 32);
      let fence = await fenceAttach(sys, fd, bo.handle, 0);
      let dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(true);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(false);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);

      bo = await vgemCreate(sys, fd, 1024, 1, 32);
      fence = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      expect(await primeBusy(sys, dmabuf, false)).toBe(true);
      expect(await primeBusy(sys, dmabuf, true)).toBe(true);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await primeBusy(sys, dmabuf, false)).toBe(false);
      expect(await primeBusy(sys, dmabuf, true)).toBe(false);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'debugfs: name, clients and gem_names (with a flink name)',
    withVgem(async (sys, fd) => {
      expect(await readWhole(sys, '/sys/kernel/debug/dri/vgem/name')).toBe('vgem dev=vgem unique=vgem\n');
      expect(await readWhole(sys, '/sys/kernel/debug/dri/128/name')).toBe('vgem dev=vgem unique=vgem\n');
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      const fl = sys.allocStruct(drmGemFlink, { handle: bo.handle });
      expect(await sys.ioctl(fd, DRM_IOCTL_GEM_FLINK, fl)).toBe(0);
      expect(sys.readStruct(drmGemFlink, fl).name).toBe(1);
      expect(await readWhole(sys, '/sys/kernel/debug/dri/0/gem_names')).toBe(
        '  name     size handles refcount\n     1    16384       1        1\n',
      );
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      expect(await readWhole(sys, '/sys/kernel/debug/dri/0/gem_names')).toBe(
        '  name     size handles refcount\n',
      );
    }),
  );

  test(
    'flink and open: a name gives another primary file a handle; render nodes may not use names',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      const fl = sys.allocStruct(drmGemFlink, { handle: bo.handle });
      expect(await sys.ioctl(fd, DRM_IOCTL_GEM_FLINK, fl)).toBe(0);
      const name = sys.readStruct(drmGemFlink, fl).name;
      expect(await sys.ioctl(fd, DRM_IOCTL_GEM_FLINK, sys.allocStruct(drmGemFlink, { handle: 9 }))).toBe(
        E.ENOENT,
      );
      const second = await openCard(sys);
      const op = sys.allocStruct(drmGemOpen, { name });
      expect(await sys.ioctl(second, DRM_IOCTL_GEM_OPEN, op)).toBe(0);
      expect(sys.readStruct(drmGemOpen, op)).toEqual({ name, handle: 1, size: 16384n });
      expect(await sys.ioctl(second, DRM_IOCTL_GEM_OPEN, sys.allocStruct(drmGemOpen, { name: 99 }))).toBe(
        E.ENOENT,
      );
      const render = await openCard(sys, '/dev/dri/renderD128');
      expect(await sys.ioctl(render, DRM_IOCTL_GEM_OPEN, sys.allocStruct(drmGemOpen, { name }))).toBe(
        E.EACCES,
      );
      expect(await sys.ioctl(render, DRM_IOCTL_GEM_FLINK, fl)).toBe(E.EACCES);
      await sys.close(second);
      await sys.close(render);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );
});

describe('prime_vgem', () => {
  test('basic-read: written through the vgem mapping, read through the dma-buf in another process', async () => {
    const m = await runProgram(async (sys) => {
      const fd = await openCard(sys);
      const bo = await vgemCreate(sys, fd, 1024, 1024, 32);
      const ptr = await vgemMmap(sys, fd, bo);
      for (let i = 0; i < bo.size / PG; i++) sys.poke(ptr + i * PG + (i % PG), Uint8Array.of((i * 7) & 0xff));
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle, DRM_RDWR);
      const child = sys.spawn('reader', async (cs) => {
        const p = await cs.mmap(0, bo.size, PROT_READ, MAP_SHARED, dmabuf, 0);
        if (p < 0) return 1;
        const v = cs.peek(p, bo.size);
        for (let i = 0; i < bo.size / PG; i++) if (v[i * PG + (i % PG)] !== ((i * 7) & 0xff)) return 2;
        return 0;
      });
      const st = sys.alloc(4);
      expect(await sys.waitpid(child, st, 0)).toBe(child);
      expect(sys.readS32(st)).toBe(0);
    });
    expect(drmGemLiveObjects(m.kernel).size).toBe(0);
  });

  test('basic-write: written through the dma-buf in another process, read through the vgem mapping', async () => {
    await runProgram(async (sys) => {
      const fd = await openCard(sys);
      const bo = await vgemCreate(sys, fd, 1024, 1024, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle, DRM_RDWR);
      const child = sys.spawn('writer', async (cs) => {
        const p = await cs.mmap(0, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf, 0);
        if (p < 0) return 1;
        for (let i = 0; i < bo.size / PG; i++) cs.poke(p + i * PG + (i % PG), Uint8Array.of((i * 13) & 0xff));
        return 0;
      });
      expect(await sys.waitpid(child, 0, 0)).toBe(child);
      const ptr = await vgemMmap(sys, fd, bo, PROT_READ);
      const mem = sys.peek(ptr, bo.size);
      for (let i = 0; i < bo.size / PG; i++) expect(mem[i * PG + (i % PG)]).toBe((i * 13) & 0xff);
    });
  });

  test(
    'basic-fence-mmap: DMA_BUF_IOCTL_SYNC waits for the vgem write fence (implicit sync)',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle, DRM_CLOEXEC | DRM_RDWR);
      const ptr = await sys.mmap(0, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf, 0);
      const vptr = await vgemMmap(sys, fd, bo);
      const fence = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      let seen = -1;
      let at = 0n;
      const t0 = sys.now();
      const tid = sys.spawnThread(async (ts) => {
        const s = ts.allocStruct(dmaBufSync, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ });
        expect(await ts.ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, s)).toBe(0);
        at = ts.now();
        seen = ts.memory(ptr, 4)[0];
        return 0;
      });
      await sleepNsec(sys, SHORT_TIME_NSEC);
      // The "GPU" writes, then signals its fence.
      sys.memory(vptr, 4)[0] = 0x5a;
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      await sys.joinThread(tid);
      expect(seen).toBe(0x5a);
      expect(at - t0).toBe(SHORT_TIME_NSEC);
      await sys.munmap(ptr, bo.size);
      await sys.munmap(vptr, bo.size);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'fence-wait: a blocking poll on the dma-buf returns when the vgem fence is signalled',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1024, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      const fence = await fenceAttach(sys, fd, bo.handle, 0);
      const tid = setTimer(sys, SHORT_TIME_NSEC, async (ts) => {
        expect(await fenceSignal(ts, fd, fence)).toBe(0);
      });
      const t0 = sys.now();
      // Readers do not wait for a read fence...
      expect(await pollOne(sys, dmabuf, POLLIN, 1000)).toEqual({ rc: 1, revents: POLLIN });
      expect(sys.now()).toBe(t0);
      // ... writers do.
      expect(await pollOne(sys, dmabuf, POLLOUT, 1000)).toEqual({ rc: 1, revents: POLLOUT });
      expect(sys.now() - t0).toBe(SHORT_TIME_NSEC);
      await sys.joinThread(tid);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'self-import gives the same handle; a read-only export stays read-only',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      const ro = await primeHandleToFd(sys, fd, bo.handle, DRM_CLOEXEC);
      expect(await sys.fcntl(ro, 3)).toBe(0); // F_GETFL: O_RDONLY
      expect(await sys.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0)).toBe(E.EACCES);
      const rw = await primeHandleToFd(sys, fd, bo.handle, DRM_CLOEXEC | DRM_RDWR);
      expect(await sys.fcntl(rw, 3)).toBe(0); // still the same, read-only dma-buf
      expect(await primeFdToHandle(sys, fd, ro)).toBe(bo.handle);
      expect(await primeFdToHandle(sys, fd, rw)).toBe(bo.handle);
      // After GEM_CLOSE the export still holds the object: importing gives a handle again.
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      expect(await gemClose(sys, fd, bo.handle)).toBe(E.EINVAL);
      const again = await primeFdToHandle(sys, fd, ro);
      expect(again).toBe(bo.handle);
      expect(await gemClose(sys, fd, again)).toBe(0);
      await sys.close(ro);
      await sys.close(rw);
    }),
  );

  test(
    'invalid PRIME arguments: flags, unknown handles, non-dma-buf fds',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      expect(await primeHandleToFd(sys, fd, bo.handle, 0x4)).toBe(E.EINVAL);
      expect(await primeHandleToFd(sys, fd, bo.handle, 0x80000000)).toBe(E.EINVAL);
      expect(await primeHandleToFd(sys, fd, 9999)).toBe(E.ENOENT);
      expect(await primeHandleToFd(sys, fd, 0)).toBe(E.ENOENT);
      expect(await primeFdToHandle(sys, fd, -1)).toBe(E.EBADF);
      expect(await primeFdToHandle(sys, fd, 0)).toBe(E.EINVAL);
      // A failed export leaves no fd behind: the next fd is still the lowest free one.
      const next = await sys.dup(0);
      expect(next).toBe(fd + 1);
      await sys.close(next);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'import a system-heap dma-buf: attached as vgem, one handle, re-export is the original, not mappable through vgem',
    withVgem(async (sys, fd) => {
      const heap = await sys.open('/dev/dma_heap/system', O_RDWR);
      const a = sys.allocStruct(dmaHeapAllocationData, { len: 2 * PG, fd_flags: O_RDWR | O_CLOEXEC });
      expect(await sys.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, a)).toBe(0);
      const hb = sys.readStruct(dmaHeapAllocationData, a).fd;
      const h = await primeFdToHandle(sys, fd, hb);
      expect(h).toBe(1);
      expect(await primeFdToHandle(sys, fd, hb)).toBe(h);
      const info = (await readWhole(sys, '/sys/kernel/debug/dma_buf/bufinfo')) as string;
      expect(info).toContain('\tAttached Devices:\n\tvgem\nTotal 1 devices attached');
      // MAP_DUMB refuses imported objects.
      expect(
        await sys.ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, sys.allocStruct(drmModeMapDumb, { handle: h })),
      ).toBe(E.EINVAL);
      const re = await primeHandleToFd(sys, fd, h, DRM_CLOEXEC | DRM_RDWR);
      const ino = async (x: number) =>
        /ino:\t(\d+)/.exec((await readWhole(sys, `/proc/self/fdinfo/${x}`)) as string)![1];
      expect(await ino(re)).toBe(await ino(hb));
      // vgem fences on an imported object go to the exporter's reservation object.
      const f = await fenceAttach(sys, fd, h, VGEM_FENCE_WRITE);
      expect(await primeBusy(sys, hb, false)).toBe(true);
      expect(await fenceSignal(sys, fd, f)).toBe(0);
      expect(await primeBusy(sys, hb, false)).toBe(false);
      await sys.close(re);
      await sys.close(hb);
      // The handle keeps the buffer alive; GEM_CLOSE detaches and frees it.
      expect(await gemClose(sys, fd, h)).toBe(0);
      expect(await readWhole(sys, '/sys/kernel/debug/dma_buf/bufinfo')).toContain('Total 0 objects, 0 bytes');
      await sys.close(heap);
    }),
  );

  test('a vgem dma-buf fd in another process keeps the object alive after the exporter exits', async () => {
    const m = await Machine.create({ seed: 1 });
    let dmabufFd = -1;
    const exporter = m.spawn('exporter', async (sys) => {
      const fd = await openCard(sys);
      const bo = await vgemCreate(sys, fd, 64, 64, 32);
      const ptr = await vgemMmap(sys, fd, bo);
      sys.memory(ptr, 8).set([1, 2, 3, 4, 5, 6, 7, 8]);
      dmabufFd = await primeHandleToFd(sys, fd, bo.handle, DRM_RDWR);
      // Pass the fd to a child that outlives us (it inherits fds without close-on-exec).
      sys.spawn('keeper', async (cs) => {
        const ts = cs.allocStruct((await import('../src/index.ts')).timespec, { tv_sec: 1 });
        await cs.nanosleep(ts, 0);
        const p = await cs.mmap(0, PG, PROT_READ, MAP_SHARED, dmabufFd, 0);
        if (p < 0) return 1;
        return cs.memory(p, 8).join(',') === '1,2,3,4,5,6,7,8' ? 0 : 2;
      });
      return 0;
    });
    const run = await m.run();
    expect(run.status).toBe('completed');
    expect(exporter.exitCode).toBe(0);
    expect(m.processes[1].exitCode).toBe(0);
    expect(m.reports).toEqual([]);
    expect(drmGemLiveObjects(m.kernel).size).toBe(0);
    expect(dmaBufKernel.dmaBufList(m.kernel).length).toBe(0);
  });

  test('process exit releases vgem files, objects, exports, mappings, fences and syncobjs', async () => {
    const m = await Machine.create({ seed: 1 });
    const p = m.spawn('leaver', async (sys) => {
      const drm = await Drm.open(sys, '/dev/dri/renderD128');
      const card = await Drm.open(sys, '/dev/dri/card0');
      // Dumb buffers are not DRM_RENDER_ALLOW: they are made through the primary node.
      const bo = await card.createDumb(256, 256, 32);
      await card.mmapDumb(bo.handle, bo.size);
      const buf = await card.exportDmaBuf(bo.handle);
      await buf.mmap();
      await card.vgemFenceAttach(bo.handle, VGEM_FENCE_WRITE);
      const h2 = await drm.primeFdToHandle(buf.fd);
      await expect(drm.vgemFenceAttach(h2, 0)).rejects.toThrow('EBUSY');
      const s = await drm.syncobjCreate(1);
      await drm.syncobjHandleToFd(s);
      await drm.syncobjExportSyncFile(s);
      // Exit with everything open.
      return 0;
    });
    const run = await m.run();
    expect(p.error).toBeUndefined();
    expect(run.status).toBe('completed');
    expect(m.reports).toEqual([]);
    expect(drmGemLiveObjects(m.kernel).size).toBe(0);
    expect(drmSyncobjLive(m.kernel).size).toBe(0);
    expect(dmaBufKernel.dmaBufList(m.kernel).length).toBe(0);
  });
});

describe('dmabuf_sync_file', () => {
  const R = DMA_BUF_SYNC_READ;
  const W = DMA_BUF_SYNC_WRITE;
  const RW = DMA_BUF_SYNC_RW;

  test(
    'export-basic',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      const state = async () => [
        await dmabufBusy(sys, dmabuf, R),
        await dmabufBusy(sys, dmabuf, W),
        await dmabufBusy(sys, dmabuf, RW),
        await dmabufSyncFileBusy(sys, dmabuf, R),
        await dmabufSyncFileBusy(sys, dmabuf, W),
        await dmabufSyncFileBusy(sys, dmabuf, RW),
      ];
      expect(await state()).toEqual([false, false, false, false, false, false]);
      let fence = await fenceAttach(sys, fd, bo.handle, 0);
      expect(await state()).toEqual([false, true, true, false, true, true]);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await state()).toEqual([false, false, false, false, false, false]);
      fence = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      expect(await state()).toEqual([true, true, true, true, true, true]);
      expect(await fenceSignal(sys, fd, fence)).toBe(0);
      expect(await state()).toEqual([false, false, false, false, false, false]);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'export-before-signal',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      for (const [flags, readBusy] of [
        [0, false],
        [VGEM_FENCE_WRITE, true],
      ] as const) {
        const fence = await fenceAttach(sys, fd, bo.handle, flags);
        const r = await exportSyncFile(sys, dmabuf, R);
        const w = await exportSyncFile(sys, dmabuf, W);
        expect(await syncFileBusy(sys, r)).toBe(readBusy);
        expect(await syncFileBusy(sys, w)).toBe(true);
        expect(await fenceSignal(sys, fd, fence)).toBe(0);
        expect(await syncFileBusy(sys, r)).toBe(false);
        expect(await syncFileBusy(sys, w)).toBe(false);
        await sys.close(r);
        await sys.close(w);
      }
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'export-multiwait',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      const f1 = await fenceAttach(sys, fd, bo.handle, 0);
      const f2 = await fenceAttach(sys, fd, bo.handle, 0);
      const sf = await exportSyncFile(sys, dmabuf, W);
      const f3 = await fenceAttach(sys, fd, bo.handle, 0);
      expect(await syncFileBusy(sys, sf)).toBe(true);
      expect(await fenceSignal(sys, fd, f1)).toBe(0);
      expect(await syncFileBusy(sys, sf)).toBe(true);
      expect(await fenceSignal(sys, fd, f2)).toBe(0);
      expect(await syncFileBusy(sys, sf)).toBe(false);
      expect(await fenceSignal(sys, fd, f3)).toBe(0);
      await sys.close(sf);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'export-wait-after-attach',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      let r = await exportSyncFile(sys, dmabuf, R);
      let w = await exportSyncFile(sys, dmabuf, W);
      const f1 = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      expect(await syncFileBusy(sys, r)).toBe(false);
      expect(await syncFileBusy(sys, w)).toBe(false);
      await sys.close(r);
      await sys.close(w);
      r = await exportSyncFile(sys, dmabuf, R);
      w = await exportSyncFile(sys, dmabuf, W);
      expect(await syncFileBusy(sys, r)).toBe(true);
      expect(await syncFileBusy(sys, w)).toBe(true);
      expect(await fenceSignal(sys, fd, f1)).toBe(0);
      const f2 = await fenceAttach(sys, fd, bo.handle, VGEM_FENCE_WRITE);
      expect(await syncFileBusy(sys, r)).toBe(false);
      expect(await syncFileBusy(sys, w)).toBe(false);
      expect(await dmabufSyncFileBusy(sys, dmabuf, R)).toBe(true);
      expect(await dmabufSyncFileBusy(sys, dmabuf, W)).toBe(true);
      expect(await fenceSignal(sys, fd, f2)).toBe(0);
      await sys.close(r);
      await sys.close(w);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  test(
    'import-basic',
    withVgem(async (sys, fd) => {
      const bo = await vgemCreate(sys, fd, 1, 1, 32);
      const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
      const tl = await swSyncTimelineCreate(sys);
      const state = async () => [
        await dmabufBusy(sys, dmabuf, R),
        await dmabufBusy(sys, dmabuf, W),
        await dmabufBusy(sys, dmabuf, RW),
        await dmabufSyncFileBusy(sys, dmabuf, R),
        await dmabufSyncFileBusy(sys, dmabuf, W),
        await dmabufSyncFileBusy(sys, dmabuf, RW),
      ];
      expect(await state()).toEqual([false, false, false, false, false, false]);
      await importTimelineFence(sys, dmabuf, R, tl, 1);
      expect(await state()).toEqual([false, true, true, false, true, true]);
      await swSyncTimelineInc(sys, tl, 1);
      expect(await state()).toEqual([false, false, false, false, false, false]);
      await importTimelineFence(sys, dmabuf, W, tl, 2);
      expect(await state()).toEqual([true, true, true, true, true, true]);
      await swSyncTimelineInc(sys, tl, 1);
      expect(await state()).toEqual([false, false, false, false, false, false]);
      await importTimelineFence(sys, dmabuf, RW, tl, 3);
      expect(await state()).toEqual([true, true, true, true, true, true]);
      await swSyncTimelineInc(sys, tl, 1);
      expect(await state()).toEqual([false, false, false, false, false, false]);
      await sys.close(tl);
      await sys.close(dmabuf);
      expect(await gemClose(sys, fd, bo.handle)).toBe(0);
    }),
  );

  for (const write of [false, true]) {
    test(
      write ? 'import-multiple-read-write' : 'import-multiple-read-only',
      withVgem(async (sys, fd) => {
        const bo = await vgemCreate(sys, fd, 1, 1, 32);
        const dmabuf = await primeHandleToFd(sys, fd, bo.handle);
        const reads: number[] = [];
        for (let i = 0; i < 32; i++) {
          reads.push(await swSyncTimelineCreate(sys));
          await importTimelineFence(sys, dmabuf, R, reads[i], 1);
        }
        let wtl = -1;
        if (write) {
          wtl = await swSyncTimelineCreate(sys);
          await importTimelineFence(sys, dmabuf, W, wtl, 1);
        }
        const r = await exportSyncFile(sys, dmabuf, R);
        const w = await exportSyncFile(sys, dmabuf, W);
        for (let i = reads.length - 1; i >= 0; i--) {
          expect(await dmabufBusy(sys, dmabuf, R)).toBe(write);
          expect(await syncFileBusy(sys, r)).toBe(write);
          expect(await dmabufBusy(sys, dmabuf, W)).toBe(true);
          expect(await syncFileBusy(sys, w)).toBe(true);
          await swSyncTimelineInc(sys, reads[i], 1);
        }
        expect(await dmabufBusy(sys, dmabuf, R)).toBe(write);
        expect(await syncFileBusy(sys, r)).toBe(write);
        expect(await dmabufBusy(sys, dmabuf, W)).toBe(write);
        expect(await syncFileBusy(sys, w)).toBe(write);
        if (write) await swSyncTimelineInc(sys, wtl, 1);
        expect(await dmabufBusy(sys, dmabuf, R)).toBe(false);
        expect(await syncFileBusy(sys, r)).toBe(false);
        expect(await dmabufBusy(sys, dmabuf, W)).toBe(false);
        expect(await syncFileBusy(sys, w)).toBe(false);
        for (const x of [r, w, ...reads, ...(write ? [wtl] : []), dmabuf]) await sys.close(x);
        expect(await gemClose(sys, fd, bo.handle)).toBe(0);
      }),
    );
  }
});

describe('drm_ioctl dispatch (6.12 rules)', () => {
  test(
    'the type byte must be d (ENOTTY); numbers beyond the tables and retired ones are EINVAL',
    withVgem(async (sys, fd) => {
      const a = sys.alloc(256);
      expect(await sys.ioctl(fd, 0xc0106e0c, a)).toBe(E.ENOTTY); // _IOWR('n', 0x0c, 16)
      expect(await sys.ioctl(fd, DRM_IOWR(0xd1, 8), a)).toBe(E.EINVAL); // past the core table
      expect(await sys.ioctl(fd, DRM_IOWR(0xff, 8), a)).toBe(E.EINVAL);
      expect(await sys.ioctl(fd, DRM_IOWR(0x03, 16), a)).toBe(E.EINVAL); // IRQ_BUSID, retired
      expect(await sys.ioctl(fd, DRM_IOWR(0x40, 16), a)).toBe(E.EINVAL); // vgem's hole
      expect(await sys.ioctl(fd, DRM_IOWR(0x43, 16), a)).toBe(E.EINVAL); // past vgem's table
      // A retired number is EINVAL even with a bad pointer (no copy happens).
      expect(await sys.ioctl(fd, DRM_IOWR(0x03, 16), 8)).toBe(E.EINVAL);
      // A real one with a bad pointer: EFAULT.
      expect(await sys.ioctl(fd, DRM_IOCTL_GET_CAP, 8)).toBe(E.EFAULT);
    }),
  );

  test(
    'struct sizes: a short struct is zero-extended, a long one truncated; copies follow both directions',
    withVgem(async (sys, fd) => {
      // GET_CAP with only the 8-byte capability: accepted, the value is not copied back.
      const small = sys.allocStruct(drmGetCap, { capability: DRM_CAP_PRIME, value: 0x1234 });
      expect(await sys.ioctl(fd, DRM_IOWR(0x0c, 8), small)).toBe(0);
      expect(sys.readStruct(drmGetCap, small).value).toBe(0x1234n);
      // A 24-byte struct: the value comes back, the extra bytes are left as they were.
      const big = sys.alloc(24, 8);
      sys.writeStruct(drmGetCap, big, { capability: DRM_CAP_TIMESTAMP_MONOTONIC });
      sys.poke(big + 16, new Uint8Array(8).fill(0xee));
      expect(await sys.ioctl(fd, DRM_IOWR(0x0c, 24), big)).toBe(0);
      expect(sys.readStruct(drmGetCap, big).value).toBe(1n);
      expect([...sys.peek(big + 16, 8)]).toEqual(new Array(8).fill(0xee));
      // _IOR: nothing is copied in, so the kernel sees capability 0 (a KMS cap): EOPNOTSUPP.
      const out = sys.allocStruct(drmGetCap, { capability: DRM_CAP_PRIME });
      expect(await sys.ioctl(fd, DRM_IOR(0x0c, 16), out)).toBe(E.EOPNOTSUPP);
      expect(await sys.ioctl(fd, DRM_IO(0x0c), 0)).toBe(E.EOPNOTSUPP);
      // VERSION with a 16-byte struct: the string pointers read as 0, nothing is copied.
      const v = sys.allocStruct(drmVersion, { name_len: 99 });
      expect(await sys.ioctl(fd, DRM_IOWR(0x00, 16), v)).toBe(0);
      const r = sys.readStruct(drmVersion, v);
      expect([r.version_major, r.version_minor, r.name_len]).toEqual([1, 0, 99n]);
      // A handler's failure still copies the struct out: a read-only struct gives EFAULT.
      const ro = await sys.mmap(0, PG, PROT_READ, MAP_PRIVATE | 0x20, -1, 0);
      expect(await sys.ioctl(fd, DRM_IOCTL_VERSION, ro)).toBe(E.EFAULT);
    }),
  );

  test(
    'VERSION: lengths are the full string lengths, copies are cut to the buffers',
    withVgem(async (sys, fd) => {
      const name = sys.alloc(8);
      const desc = sys.alloc(8);
      sys.poke(desc, new Uint8Array(8).fill(0x2e));
      const v = sys.allocStruct(drmVersion, { name, name_len: 8, desc, desc_len: 7 });
      expect(await sys.ioctl(fd, DRM_IOCTL_VERSION, v)).toBe(0);
      const r = sys.readStruct(drmVersion, v);
      expect([r.name_len, r.date_len, r.desc_len]).toEqual([4n, 1n, 20n]);
      expect(sys.cstring(name)).toBe('vgem');
      expect(String.fromCharCode(...sys.peek(desc, 8))).toBe('Virtual.');
      // A bad name pointer: EFAULT.
      const bad = sys.allocStruct(drmVersion, { name: 8, name_len: 4 });
      expect(await sys.ioctl(fd, DRM_IOCTL_VERSION, bad)).toBe(E.EFAULT);
    }),
  );

  test(
    'render nodes run only DRM_RENDER_ALLOW ioctls (EACCES); KMS ioctls are EOPNOTSUPP on vgem',
    withVgem(async (sys, fd) => {
      const render = await openCard(sys, '/dev/dri/renderD128');
      const a = sys.alloc(128);
      expect(await sys.ioctl(render, DRM_IOCTL_MODE_GETRESOURCES, a)).toBe(E.EACCES);
      expect(await sys.ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, a)).toBe(E.EOPNOTSUPP);
      expect(await sys.ioctl(render, DRM_IOCTL_GET_MAGIC, a)).toBe(E.EACCES);
      expect(await sys.ioctl(render, DRM_IOCTL_MODE_CREATE_DUMB, a)).toBe(E.EACCES);
      expect(await sys.ioctl(render, DRM_IOCTL_SET_MASTER, 0)).toBe(E.EACCES);
      // DUMB_BUFFER is a KMS capability: EOPNOTSUPP on vgem although it has dumb buffers.
      const cap = sys.allocStruct(drmGetCap, { capability: DRM_CAP_DUMB_BUFFER, value: 5 });
      expect(await sys.ioctl(fd, DRM_IOCTL_GET_CAP, cap)).toBe(E.EOPNOTSUPP);
      expect(sys.readStruct(drmGetCap, cap).value).toBe(0n);
      // GET_CLIENT: index 0 is the caller, others EINVAL.
      const c = sys.allocStruct(drmClient, { idx: 0 });
      expect(await sys.ioctl(fd, DRM_IOCTL_GET_CLIENT, c)).toBe(0);
      expect(sys.readStruct(drmClient, c)).toMatchObject({ auth: 1, uid: 65534n, magic: 0n });
      expect(await sys.ioctl(fd, DRM_IOCTL_GET_CLIENT, sys.allocStruct(drmClient, { idx: 1 }))).toBe(
        E.EINVAL,
      );
      // Legacy no-ops: 0 for the master.
      expect(await sys.ioctl(fd, DRM_IOWR(0x12, 4), a)).toBe(0); // BLOCK
      expect(await sys.ioctl(fd, DRM_IOWR(0x10, 16) & ~(2 << 30), a)).toBe(E.EINVAL); // SET_UNIQUE
      await sys.close(render);
    }),
  );

  test('open: O_EXCL is EBUSY; read is EAGAIN with O_NONBLOCK; poll reports nothing; fdinfo is generic', async () => {
    await runProgram(async (sys) => {
      expect(await sys.open('/dev/dri/card0', O_RDWR | O_EXCL)).toBe(E.EBUSY);
      const fd = await sys.open('/dev/dri/renderD128', O_RDWR | O_NONBLOCK | O_CLOEXEC);
      const buf = sys.alloc(64);
      expect(await sys.read(fd, buf, 64)).toBe(E.EAGAIN);
      expect(await pollOne(sys, fd, POLLIN | POLLOUT)).toEqual({ rc: 0, revents: 0 });
      expect(await readWhole(sys, `/proc/self/fdinfo/${fd}`)).toBe(
        `pos:\t0\nflags:\t02104002\nmnt_id:\t18\nino:\t531\n`,
      );
      expect(await sys.lseek(fd, 0, 2)).toBe(0);
      await sys.close(fd);
    });
  });
});

describe('typed wrapper (Drm)', () => {
  test('dumb buffers, PRIME, syncobjs and vgem fences through `Drm`; failures throw ErrnoError', async () => {
    await runProgram(async (sys) => {
      const card = await Drm.open(sys, '/dev/dri/card0');
      const render = await Drm.open(sys);
      expect(await card.version()).toEqual({
        name: 'vgem',
        date: '0',
        desc: 'Virtual GEM provider',
        major: 1,
        minor: 0,
        patch: 0,
      });
      expect(await render.getCap(DRM_CAP_PRIME)).toBe(3n);
      const bo = await card.createDumb(100, 10, 24);
      expect(bo).toEqual({ handle: 1, pitch: 300, size: 4096 });
      const addr = await card.mmapDumb(bo.handle, bo.size);
      sys.memory(addr, 3).set([7, 8, 9]);
      const buf = await card.exportDmaBuf(bo.handle);
      expect(buf.size).toBe(4096);
      const map = await buf.mmap();
      expect([...map.bytes().subarray(0, 3)]).toEqual([7, 8, 9]);
      const h = await render.primeFdToHandle(buf.fd);
      const f = await render.vgemFenceAttach(h, VGEM_FENCE_WRITE);
      expect(await buf.poll(POLLIN)).toBe(0);
      await render.vgemFenceSignal(f);
      expect(await buf.poll(POLLIN)).toBe(POLLIN);
      await expect(render.vgemFenceSignal(f)).rejects.toMatchObject({ code: 'ENOENT', errno: 2 });
      await expect(render.createDumb(1, 1, 32)).rejects.toMatchObject({ code: 'EACCES' });
      // Syncobjs: a binary one fed from the buffer's implicit fences, moved onto a timeline.
      const s = await render.syncobjCreate();
      const t = await render.syncobjCreate();
      await render.syncobjImportSyncFile(s, await buf.exportSyncFile('write'));
      expect(await render.syncobjWait([s])).toBe(0);
      await render.syncobjTransfer(t, 5, s, 0);
      expect(await render.syncobjQuery([t])).toEqual([5n]);
      expect(await render.syncobjTimelineWait([t], [5])).toBe(0);
      await render.syncobjTimelineSignal([t], [9]);
      expect(await render.syncobjQuery([t], 1)).toEqual([9n]);
      const sfd = await render.syncobjHandleToFd(t);
      const t2 = await card.syncobjFdToHandle(sfd);
      expect(await card.syncobjQuery([t2])).toEqual([9n]);
      await render.syncobjReset([s]);
      await expect(render.syncobjWait([s])).rejects.toMatchObject({ code: 'EINVAL' });
      await render.syncobjSignal([s]);
      expect(await render.syncobjExportSyncFile(s)).toBeGreaterThan(0);
      await render.syncobjDestroy(s);
      await map.unmap();
      await buf.close();
      await render.gemClose(h);
      await card.gemClose(bo.handle);
      await card.close();
      await render.close();
    });
  });
});

describe('PRIME export tracing', () => {
  test('PRIME_HANDLE_TO_FD installs the fd with a dma_buf_fd tracepoint, as the heaps and habanalabs do', async () => {
    let exported = -1;
    let pid = -1;
    const m = await runProgram(async (sys) => {
      const fd = await openCard(sys);
      const bo = await vgemCreate(sys, fd, 1, 1024, 32);
      exported = await primeHandleToFd(sys, fd, bo.handle);
      expect(exported).toBeGreaterThanOrEqual(0);
      pid = sys.getpid();
      await sys.close(exported);
      await sys.close(fd);
    });
    const fdEvents = m.engine.log.entries.filter((e) => e.name === 'dma_buf_fd');
    expect(fdEvents.map((e) => [e.args?.fd, e.args?.pid])).toEqual([[exported, pid]]);
    const ino = fdEvents[0].args?.ino;
    expect(m.engine.log.entries.some((e) => e.name === 'dma_buf_export' && e.args?.ino === ino)).toBe(true);
  });
});
