/**
 * Replays the `### vgem / PRIME` section of oracle/dmabuf_probe.c (and the probe's end)
 * inside a model process and compares every line with what the real Linux 6.12 kernel
 * printed (oracle/outputs/dmabuf_probe.txt): DRM_IOCTL_VERSION, dumb buffers, PRIME
 * export/import (self-import, a heap buffer imported into vgem, re-export), GEM_CLOSE,
 * vgem fences, poll and EXPORT_SYNC_FILE on a vgem dma-buf, fdinfo, bufinfo, sysfs stats,
 * /proc/self/maps and the dri debugfs files.
 *
 * The replay starts from a fresh machine in the state the probe had reached: the heap fd
 * open at 3 (the vgem node then opens at 4), 22 dma-bufs made and freed by the earlier
 * sections (so the vgem exports get inodes 23 and 24), and the fence-context counter at
 * 45 (the vgem fence is `vgem-unbound45-1`). The pid in debugfs `clients` depends on the
 * boot and is masked. /dev/dri is listed from the VFS's registered paths (no readdir).
 */
import { describe, expect, test } from 'vitest';
import { DRIVER_SYNCOBJ, DRIVER_SYNCOBJ_TIMELINE } from '../src/drivers/gpu/drm/drm-drv.ts';
import { drmGemLiveObjects } from '../src/drivers/gpu/drm/drm-gem.ts';
import { vgemDevice } from '../src/drivers/gpu/vgem/vgem-drv.ts';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  dmaBufExportSyncFile,
  dmaBufSync,
  dmaHeapAllocationData,
  MAP_SHARED,
  Machine,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  POLLIN,
  POLLOUT,
  PROT_READ,
  PROT_WRITE,
  SegmentationFault,
  type Sys,
  timespec,
} from '../src/index.ts';
import { registeredPaths } from '../src/kernel/vfs.ts';
import {
  DRM_CAP_SYNCOBJ,
  DRM_CAP_SYNCOBJ_TIMELINE,
  DRM_CLOEXEC,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_MODE_CREATE_DUMB,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_VERSION,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  DRM_RDWR,
  drmGemClose,
  drmGetCap,
  drmModeCreateDumb,
  drmPrimeHandle,
  drmSyncobjCreate,
  drmVersion,
  drmVgemFenceAttach,
  drmVgemFenceSignal,
  VGEM_FENCE_WRITE,
} from '../src/uapi/drm.ts';
import {
  doPoll,
  dumpFdinfo,
  dumpFile,
  fileInfo,
  oracleSection,
  ProbeOut,
  readWhole,
  showFdFlags,
} from './helpers/probe.ts';

const PG = 4096;
const BUFINFO = '/sys/kernel/debug/dma_buf/bufinfo';

/** The probe's helpers bound to one process. */
class Probe {
  constructor(
    readonly sys: Sys,
    readonly out: ProbeOut,
  ) {}

  do(what: string, rc: number): number {
    this.out.res(what, rc);
    return rc;
  }

  dumpBufinfo(label: string): Promise<void> {
    return dumpFile(this.sys, this.out, BUFINFO, `bufinfo ${label}`);
  }

  async nowNs(): Promise<bigint> {
    const ts = this.sys.allocStruct(timespec);
    await this.sys.clock_gettime(1, ts);
    const v = this.sys.readStruct(timespec, ts);
    return v.tv_sec * 1_000_000_000n + v.tv_nsec;
  }

  async ino(fd: number): Promise<number> {
    const t = await readWhole(this.sys, `/proc/self/fdinfo/${fd}`);
    return typeof t === 'number' ? -1 : Number(/ino:\t(\d+)/.exec(t)![1]);
  }

  async sysfsStats(fd: number, what: string): Promise<void> {
    const dir = `/sys/kernel/dmabuf/buffers/${await this.ino(fd)}`;
    const dfd = await this.sys.open(dir, O_RDONLY);
    if (dfd >= 0) await this.sys.close(dfd);
    let line = `  sysfs ${what}: dir=/sys/kernel/dmabuf/buffers/<ino> exists=${dfd >= 0 ? 1 : 0}`;
    for (const attr of ['exporter_name', 'size']) {
      const t = await readWhole(this.sys, `${dir}/${attr}`);
      if (typeof t === 'string') line += ` ${attr}="${t.replace(/\n$/, '')}"`;
    }
    this.out.print(line);
  }

  async showMapsLine(addr: number): Promise<void> {
    const text = await readWhole(this.sys, '/proc/self/maps');
    if (typeof text === 'number') return;
    for (const line of text.split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (.*)$/.exec(line);
      if (m && Number.parseInt(m[1], 16) <= addr && addr < Number.parseInt(m[2], 16)) {
        this.out.print(`  maps: <range> ${m[3]}`);
      }
    }
  }

  async heapAlloc(hfd: number, what: string, len: number, fdFlags: number): Promise<number> {
    const d = this.sys.allocStruct(dmaHeapAllocationData, { len, fd_flags: fdFlags });
    const rc = await this.sys.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, d);
    const v = this.sys.readStruct(dmaHeapAllocationData, d);
    this.out.res(
      `DMA_HEAP_IOCTL_ALLOC(${what}, len=${len}, fd_flags=0x${fdFlags.toString(16)}, heap_flags=0x0, fd=0)`,
      rc,
      ` out.fd=${v.fd}`,
    );
    return rc < 0 ? -1 : v.fd;
  }

  async syncIoctl(fd: number, flags: number, fl: string): Promise<void> {
    const s = this.sys.allocStruct(dmaBufSync, { flags });
    this.out.res(
      `DMA_BUF_IOCTL_SYNC(flags=${fl}=0x${flags.toString(16)})`,
      await this.sys.ioctl(fd, DMA_BUF_IOCTL_SYNC, s),
    );
  }

  async setName(fd: number, name: string, desc: string): Promise<void> {
    const p = this.sys.allocCString(name);
    this.out.res(
      `DMA_BUF_SET_NAME(len=${name.length}, ${desc})`,
      await this.sys.ioctl(fd, DMA_BUF_SET_NAME, p),
    );
  }

  async exportSync(fd: number, flags: number, fl: string): Promise<number> {
    const e = this.sys.allocStruct(dmaBufExportSyncFile, { flags, fd: -1 });
    const rc = await this.sys.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, e);
    const v = this.sys.readStruct(dmaBufExportSyncFile, e);
    this.out.res(
      `DMA_BUF_IOCTL_EXPORT_SYNC_FILE(flags=${fl}=0x${flags.toString(16)})`,
      rc,
      ` out.fd=${v.fd}`,
    );
    return rc < 0 ? -1 : v.fd;
  }

  /** touch(): writes then reads one byte through a mapping. */
  touch(addr: number, wval: number): { v: number; sig: string } {
    try {
      this.sys.poke(addr, Uint8Array.of(wval));
      return { v: this.sys.peek(addr, 1)[0], sig: 'none' };
    } catch (e) {
      if (e instanceof SegmentationFault) return { v: 0, sig: 'SIGSEGV' };
      throw e;
    }
  }

  async primeExport(drm: number, handle: number, flags: number, desc: string): Promise<number> {
    const p = this.sys.allocStruct(drmPrimeHandle, { handle, flags, fd: -1 });
    const rc = await this.sys.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, p);
    const fd = this.sys.readStruct(drmPrimeHandle, p).fd;
    this.out.res(`DRM_IOCTL_PRIME_HANDLE_TO_FD(handle=${handle}, flags=${desc})`, rc, ` fd=${fd}`);
    return rc < 0 ? -1 : fd;
  }

  async primeImport(drm: number, fd: number, desc: string): Promise<number> {
    const p = this.sys.allocStruct(drmPrimeHandle, { fd });
    const rc = await this.sys.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, p);
    const handle = this.sys.readStruct(drmPrimeHandle, p).handle;
    this.out.res(`DRM_IOCTL_PRIME_FD_TO_HANDLE(${desc})`, rc, ` handle=${handle}`);
    return rc < 0 ? 0 : handle;
  }

  async gemClose(drm: number, handle: number): Promise<void> {
    const c = this.sys.allocStruct(drmGemClose, { handle });
    this.do(`DRM_IOCTL_GEM_CLOSE(handle=${handle})`, await this.sys.ioctl(drm, DRM_IOCTL_GEM_CLOSE, c));
  }

  async createDumb(drm: number, w: number, h: number, bpp: number): Promise<{ rc: number; handle: number }> {
    const cd = this.sys.allocStruct(drmModeCreateDumb, { width: w, height: h, bpp });
    const rc = await this.sys.ioctl(drm, DRM_IOCTL_MODE_CREATE_DUMB, cd);
    const v = this.sys.readStruct(drmModeCreateDumb, cd);
    return { rc, handle: v.handle };
  }
}

/** open_vgem(): open /dev/dri/card0 and check DRM_IOCTL_VERSION. */
async function openVgem(p: Probe): Promise<number> {
  const { sys, out } = p;
  const fd = await sys.open('/dev/dri/card0', O_RDWR | O_CLOEXEC);
  const bufs = [sys.alloc(16), sys.alloc(16), sys.alloc(64)];
  const v = sys.allocStruct(drmVersion, {
    name: bufs[0],
    name_len: 15,
    date: bufs[1],
    date_len: 15,
    desc: bufs[2],
    desc_len: 63,
  });
  const rc = await sys.ioctl(fd, DRM_IOCTL_VERSION, v);
  const r = sys.readStruct(drmVersion, v);
  out.res(
    'open(/dev/dri/card0) + DRM_IOCTL_VERSION',
    rc,
    ` name="${sys.cstring(bufs[0])}" date="${sys.cstring(bufs[1])}" desc="${sys.cstring(bufs[2])}" version=${r.version_major}.${r.version_minor}.${r.version_patchlevel}`,
  );
  return fd;
}

/** probe_vgem() and the end of main(). */
async function probeVgem(p: Probe, hfd: number): Promise<void> {
  const { sys, out } = p;
  out.section('vgem / PRIME');
  const names = registeredPaths()
    .filter((x) => x.startsWith('/dev/dri/'))
    .map((x) => x.slice('/dev/dri/'.length))
    .sort();
  out.print(`/dev/dri: ${names.join(' ')}`);
  const drm = await openVgem(p);
  await dumpFdinfo(sys, out, drm, 'vgem card fd (before buffers)');

  p.do('DRM_IOCTL_MODE_CREATE_DUMB(0x0x0)', (await p.createDumb(drm, 0, 0, 0)).rc);
  const dumb = async (w: number, h: number, bpp: number) => {
    const cd = sys.allocStruct(drmModeCreateDumb, { width: w, height: h, bpp });
    const rc = await sys.ioctl(drm, DRM_IOCTL_MODE_CREATE_DUMB, cd);
    const v = sys.readStruct(drmModeCreateDumb, cd);
    out.res(
      `DRM_IOCTL_MODE_CREATE_DUMB(${w}x${h}x${bpp})`,
      rc,
      ` handle=${v.handle} pitch=${v.pitch} size=${v.size}`,
    );
    return v.handle;
  };
  const h1 = await dumb(64, 64, 32);
  const h2 = await dumb(100, 10, 24);

  const e1 = await p.primeExport(drm, h1, DRM_CLOEXEC, 'DRM_CLOEXEC (no DRM_RDWR)');
  if (e1 >= 0) {
    await showFdFlags(sys, out, e1, 'vgem export without DRM_RDWR');
    await dumpFdinfo(sys, out, e1, 'vgem PRIME export (no RDWR)');
    await p.sysfsStats(e1, 'vgem export');
    let m = await sys.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, e1, 0);
    p.do('mmap(vgem dmabuf no-RDWR, PROT_READ|PROT_WRITE, MAP_SHARED)', Math.min(m, 0));
    if (m >= 0) await sys.munmap(m, PG);
    m = await sys.mmap(0, PG, PROT_READ, MAP_SHARED, e1, 0);
    p.do('mmap(vgem dmabuf no-RDWR, PROT_READ, MAP_SHARED)', Math.min(m, 0));
    if (m >= 0) await sys.munmap(m, PG);
  }
  const e2 = await p.primeExport(drm, h1, DRM_CLOEXEC | DRM_RDWR, 'DRM_CLOEXEC|DRM_RDWR (same handle again)');
  if (e2 >= 0) {
    await showFdFlags(sys, out, e2, 'vgem second export with DRM_RDWR');
    out.print(`  same inode as first export: ${(await p.ino(e1)) === (await p.ino(e2)) ? 1 : 0}`);
  }
  const e3 = await p.primeExport(drm, h2, DRM_RDWR, 'DRM_RDWR (no CLOEXEC) first export');
  if (e3 >= 0) {
    await showFdFlags(sys, out, e3, 'vgem export DRM_RDWR');
    const m = await sys.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, e3, 0);
    p.do('mmap(vgem dmabuf RDWR, PROT_READ|PROT_WRITE, MAP_SHARED)', Math.min(m, 0));
    if (m >= 0) {
      const t = p.touch(m, 0x99);
      out.print(`  write+read byte via vgem dmabuf=0x${t.v.toString(16).padStart(2, '0')} fault=${t.sig}`);
      await p.showMapsLine(m);
      await sys.munmap(m, PG);
    }
    await p.syncIoctl(e3, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW, 'START|RW on vgem dmabuf');
    await p.syncIoctl(e3, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW, 'END|RW on vgem dmabuf');
    await p.setName(e3, 'vgem-h2', '"vgem-h2" on vgem dmabuf');
  }
  if (e1 >= 0)
    await p.syncIoctl(e1, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE, 'START|WRITE on read-only vgem dmabuf');
  await p.primeExport(drm, h2, 0x4, '0x4 (invalid flag)');
  await p.primeExport(drm, h2, 0x80000000, '0x80000000 (invalid flag)');
  await p.primeExport(drm, 9999, DRM_CLOEXEC, 'DRM_CLOEXEC, handle 9999 (nonexistent)');
  await p.primeExport(drm, 0, DRM_CLOEXEC, 'DRM_CLOEXEC, handle 0');

  let hi = await p.primeImport(drm, e1, 'own export of h1, fd e1');
  out.print(`  same handle as h1=${h1}: ${hi === h1 ? 1 : 0}`);
  await p.primeImport(drm, e2, 'own export of h1, fd e2');
  await p.primeImport(drm, -1, 'fd=-1');
  const dn = await sys.open('/dev/null', O_RDONLY);
  await p.primeImport(drm, dn, 'fd=/dev/null');
  await sys.close(dn);

  const hb = await p.heapAlloc(hfd, 'system (for vgem import)', 2 * PG, O_RDWR | O_CLOEXEC);
  await p.setName(hb, 'heap-for-vgem', '"heap-for-vgem"');
  hi = await p.primeImport(drm, hb, 'system heap dmabuf');
  const hi2 = await p.primeImport(drm, hb, 'system heap dmabuf again');
  out.print(`  second import same handle: ${hi === hi2 ? 1 : 0}`);
  await p.dumpBufinfo('vgem buffers exported + heap buffer imported into vgem');
  await dumpFdinfo(sys, out, hb, 'heap dmabuf imported into vgem');
  const e4 = await p.primeExport(drm, hi, DRM_CLOEXEC | DRM_RDWR, 're-export of imported heap buffer');
  if (e4 >= 0) {
    out.print(
      `  re-export is the original dma-buf (same inode): ${(await p.ino(hb)) === (await p.ino(e4)) ? 1 : 0}`,
    );
    await sys.close(e4);
  }
  await sys.close(hb);
  out.note(`closed heap dmabuf fd; vgem handle ${hi} keeps it alive`);
  await p.dumpBufinfo('heap buffer only referenced by vgem import');
  await p.gemClose(drm, hi);
  await p.gemClose(drm, hi);
  await p.dumpBufinfo('after GEM_CLOSE of imported handle');

  // vgem fences
  let fa = sys.allocStruct(drmVgemFenceAttach, { handle: h2, flags: VGEM_FENCE_WRITE });
  let rc = await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, fa);
  const fenceW = sys.readStruct(drmVgemFenceAttach, fa).out_fence;
  out.res('DRM_IOCTL_VGEM_FENCE_ATTACH(h2, WRITE)', rc, ` out_fence=${fenceW}`);
  fa = sys.allocStruct(drmVgemFenceAttach, { handle: h2, flags: 0 });
  rc = await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, fa);
  out.res(
    'DRM_IOCTL_VGEM_FENCE_ATTACH(h2, READ) while WRITE pending',
    rc,
    ` out_fence=${sys.readStruct(drmVgemFenceAttach, fa).out_fence}`,
  );
  fa = sys.allocStruct(drmVgemFenceAttach, { handle: h2, flags: 2 });
  p.do('DRM_IOCTL_VGEM_FENCE_ATTACH(flags=2 invalid)', await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, fa));
  fa = sys.allocStruct(drmVgemFenceAttach, { handle: h2, pad: 1 });
  p.do('DRM_IOCTL_VGEM_FENCE_ATTACH(pad=1)', await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, fa));
  fa = sys.allocStruct(drmVgemFenceAttach, { handle: 9999 });
  p.do('DRM_IOCTL_VGEM_FENCE_ATTACH(handle 9999)', await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, fa));
  let fs = sys.allocStruct(drmVgemFenceSignal, {});
  await p.dumpBufinfo('vgem buffer with vgem WRITE fence');
  await doPoll(sys, out, e3, POLLIN, 0, 'vgem dmabuf, vgem WRITE fence pending');
  await doPoll(sys, out, e3, POLLOUT, 0, 'vgem dmabuf, vgem WRITE fence pending');
  const s = await p.exportSync(e3, DMA_BUF_SYNC_READ, 'READ on vgem buf with vgem fence');
  if (s >= 0) {
    const t0 = await p.nowNs();
    await fileInfo(sys, out, s, 'vgem fence unsignaled');
    fs = sys.allocStruct(drmVgemFenceSignal, { fence: fenceW });
    p.do(
      `DRM_IOCTL_VGEM_FENCE_SIGNAL(fence=${fenceW})`,
      await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_SIGNAL, fs),
    );
    const t1 = await p.nowNs();
    await fileInfo(sys, out, s, 'vgem fence after SIGNAL', t0, t1);
    await sys.close(s);
  }
  await doPoll(sys, out, e3, POLLIN | POLLOUT, 0, 'vgem dmabuf after vgem fence signaled');
  fs = sys.allocStruct(drmVgemFenceSignal, { fence: fenceW });
  p.do(
    `DRM_IOCTL_VGEM_FENCE_SIGNAL(fence=${fenceW}) again`,
    await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_SIGNAL, fs),
  );
  fs = sys.allocStruct(drmVgemFenceSignal, { fence: 9999 });
  p.do('DRM_IOCTL_VGEM_FENCE_SIGNAL(fence=9999)', await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_SIGNAL, fs));
  fs = sys.allocStruct(drmVgemFenceSignal, { fence: fenceW, flags: 1 });
  p.do('DRM_IOCTL_VGEM_FENCE_SIGNAL(flags=1)', await sys.ioctl(drm, DRM_IOCTL_VGEM_FENCE_SIGNAL, fs));

  await p.dumpBufinfo('vgem buffers alive');
  await dumpFile(sys, out, '/sys/kernel/debug/dri/0/name', 'debugfs dri/0/name');
  await dumpFile(sys, out, '/sys/kernel/debug/dri/0/clients', 'debugfs dri/0/clients');
  await dumpFile(sys, out, '/sys/kernel/debug/dri/0/gem_names', 'debugfs dri/0/gem_names');
  await dumpFdinfo(sys, out, drm, 'vgem card fd (buffers alive)');

  await p.gemClose(drm, h1);
  hi = await p.primeImport(drm, e1, 'export of h1 after GEM_CLOSE(h1)');
  await p.dumpBufinfo('h1 closed, dmabuf re-imported');
  await p.gemClose(drm, hi);
  await p.gemClose(drm, h2);
  await p.gemClose(drm, 9999);
  await sys.close(e1);
  await sys.close(e2);
  await sys.close(e3);
  await sys.close(drm);
  await p.dumpBufinfo('all vgem objects closed');
}

/** The oracle's lines from `### vgem / PRIME` to the end, blank lines dropped, the pid masked. */
function expectedLines(): string[] {
  return oracleSection('vgem / PRIME')
    .filter((l) => l !== '')
    .map((l) => l.replace(/^( {8}dmabuf_probe) +\d+ /, '$1 <pid> '));
}

describe('oracle: vgem / PRIME section of dmabuf_probe', () => {
  test('every line matches the 6.12 kernel', async () => {
    const m = await Machine.create({ seed: 1 });
    const out = new ProbeOut();
    const p = m.spawn('dmabuf_probe', async (sys) => {
      const probe = new Probe(sys, out);
      const hfd = await sys.open('/dev/dma_heap/system', O_RDWR);
      // The earlier sections made and freed 22 dma-bufs.
      for (let i = 0; i < 22; i++) {
        const a = sys.allocStruct(dmaHeapAllocationData, { len: PG, fd_flags: O_RDWR });
        await sys.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, a);
        await sys.close(sys.readStruct(dmaHeapAllocationData, a).fd);
      }
      // ... and used fence contexts up to 44.
      m.kernel.fenceContextCounter = 45;
      await probeVgem(probe, hfd);
      await sys.close(hfd);
      await probe.dumpBufinfo('at probe end');
      await dumpFile(sys, out, '/sys/kernel/debug/sync/info', 'sync/info at probe end');
      out.print('dmabuf_probe: done');
      return 0;
    });
    const run = await m.run();
    expect(p.error).toBeUndefined();
    expect(run.status).toBe('completed');
    expect(p.exitCode).toBe(0);
    const want = expectedLines();
    expect(want.length).toBeGreaterThan(200);
    const got = out.lines
      .flatMap((l) => l.split('\n'))
      .filter((l) => l !== '')
      .map((l) => l.replace(/^( {8}dmabuf_probe) +\d+ /, '$1 <pid> '));
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      expect(got[i], `line ${i + 1}`).toBe(want[i]);
    }
    expect(m.reports).toEqual([]);
    expect(drmGemLiveObjects(m.kernel).size).toBe(0);
  });

  test('6.12 vgem has no syncobj: with the model extension off, GET_CAP is 0 and syncobj ioctls are EOPNOTSUPP', async () => {
    const m = await Machine.create({ seed: 1 });
    const dev = vgemDevice(m.kernel)!;
    const r: Record<string, number | bigint> = {};
    m.spawn('probe', async (sys) => {
      const fd = await sys.open('/dev/dri/renderD128', O_RDWR);
      const cap = async (c: number) => {
        const a = sys.allocStruct(drmGetCap, { capability: c });
        await sys.ioctl(fd, DRM_IOCTL_GET_CAP, a);
        return sys.readStruct(drmGetCap, a).value;
      };
      r.capOn = await cap(DRM_CAP_SYNCOBJ);
      r.timelineOn = await cap(DRM_CAP_SYNCOBJ_TIMELINE);
      r.createOn = await sys.ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, sys.allocStruct(drmSyncobjCreate, {}));
      dev.driverFeatures &= ~(DRIVER_SYNCOBJ | DRIVER_SYNCOBJ_TIMELINE);
      r.capOff = await cap(DRM_CAP_SYNCOBJ);
      r.timelineOff = await cap(DRM_CAP_SYNCOBJ_TIMELINE);
      r.createOff = await sys.ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, sys.allocStruct(drmSyncobjCreate, {}));
      dev.driverFeatures |= DRIVER_SYNCOBJ | DRIVER_SYNCOBJ_TIMELINE;
      return 0;
    });
    await m.run();
    expect(r).toEqual({
      capOn: 1n,
      timelineOn: 1n,
      createOn: 0,
      capOff: 0n,
      timelineOff: 0n,
      createOff: -95,
    });
    expect(m.reports).toEqual([]);
  });
});
