/**
 * The dma-buf core, kernel side (drivers/dma-buf/dma-buf.c, Linux 6.12): export checks,
 * static and dynamic importers against static and dynamic exporters (attach-time
 * mappings, pinning, cache_sgt_mapping), allow_peer2peer, the locking convention's rule
 * reports, the CONFIG_DMABUF_DEBUG mangling of lent-out tables, move_notify, vmap
 * counting, CPU access waiting for implicit fences, and buffer lifetime across process
 * exit and fd passing.
 *
 * Kernel calls run inside a process, as a driver's code runs inside the syscall of the
 * process that called it (the fd functions act on that process's table).
 */
import { describe, expect, test } from 'vitest';
import {
  AF_UNIX,
  allocPages,
  Device,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  DMA_TO_DEVICE,
  DmaFence,
  DmaHeap,
  dmaBuf,
  dmaFenceContextAlloc,
  dmaMapSgtable,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvReserveFences,
  dmaResvUnlock,
  dmaUnmapSgtable,
  type ErrPtr,
  errno,
  errPtr,
  type FileOperations,
  forEachSgtableDmaPage,
  IosysMap,
  iosysMapMemcpyFrom,
  iosysMapSetVaddr,
  isErr,
  MAP_SHARED,
  Machine,
  O_CLOEXEC,
  O_RDWR,
  type Page,
  POLLIN,
  POLLOUT,
  PROT_READ,
  PROT_WRITE,
  pollfd,
  ptrErr,
  type Report,
  registerDevice,
  SG_PAGE_ACCESS_RULE,
  SgTable,
  SOCK_STREAM,
  SpinLock,
  type Sys,
  sgAllocTable,
  sgAllocTableFromPages,
  sgDmaAddress,
  sgDmaIsBusAddress,
  sgDmaMarkBusAddress,
  sgFreeTable,
  sgPage,
  timespec,
} from '../src/index.ts';
import { KernelBug } from '../src/sim/report.ts';
import { readWhole } from './helpers/probe.ts';
import { recvFd, sendFd } from './helpers/unix.ts';

const {
  dmaBufAttach,
  dmaBufBeginCpuAccess,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufEndCpuAccess,
  dmaBufExport,
  dmaBufFd,
  dmaBufGet,
  dmaBufList,
  dmaBufMmap,
  dmaBufMapAttachment,
  dmaBufMapAttachmentUnlocked,
  dmaBufMoveNotify,
  dmaBufPin,
  dmaBufPut,
  dmaBufUnmapAttachment,
  dmaBufUnmapAttachmentUnlocked,
  dmaBufUnpin,
  dmaBufVmapUnlocked,
  dmaBufVunmapUnlocked,
} = dmaBuf;
type DmaBuf = dmaBuf.DmaBuf;
type DmaBufAttachment = dmaBuf.DmaBufAttachment;
type DmaBufOps = dmaBuf.DmaBufOps;

const PG = 4096;
/** A peer device's BAR address the p2p exporter hands out. */
const BAR = 0xe000_0000;

/** Runs `body` in a process of a fresh machine; returns the machine, the process and the run. */
async function runProgram(body: (sys: Sys, m: Machine) => Promise<void>) {
  const m = await Machine.create({ seed: 3 });
  const p = m.spawn('driver', async (sys) => {
    await body(sys, m);
    return 0;
  });
  const run = await m.run();
  if (p.error) throw p.error;
  return { m, p, run };
}

function rules(reports: readonly Report[]): string[] {
  return reports.map((r) => `${r.type}:${r.rule}`);
}

/** A test exporter over real pages; records the calls the core makes. */
function makeExporter(
  opts: { dynamic?: boolean; cache?: boolean; p2p?: boolean; attachErr?: number; mapErr?: number } = {},
) {
  const npages = 4;
  const pages = allocPages(npages)!;
  const calls: string[] = [];
  const ops: DmaBufOps = {
    cacheSgtMapping: opts.cache,
    attach: (_b, a) => {
      calls.push(`attach ${a.dev.name}`);
      return opts.attachErr ?? 0;
    },
    detach: (_b, a) => {
      calls.push(`detach ${a.dev.name}`);
    },
    mapDmaBuf: (a, dir): SgTable | ErrPtr | null => {
      calls.push(`map ${a.dev.name} ${dir}`);
      if (opts.mapErr) return errPtr(opts.mapErr);
      const sgt = new SgTable();
      if (opts.p2p && a.peer2peer) {
        // Peer memory: DMA addresses only, no struct page.
        sgAllocTable(sgt, 1);
        const sg = sgt.sgl[0];
        sg.length = npages * PG;
        sg.dmaAddress = BAR;
        sg.dmaLength = npages * PG;
        sgDmaMarkBusAddress(sg);
        return sgt;
      }
      sgAllocTableFromPages(sgt, pages, npages, 0, npages * PG);
      dmaMapSgtable(a.dev, sgt, dir);
      return sgt;
    },
    unmapDmaBuf: (a, sgt, dir) => {
      // The exporter gets its page links back: this must not trip the debug check.
      for (const sg of sgt.sgl) sgPage(sg);
      calls.push(`unmap ${a.dev.name} ${dir}`);
      dmaUnmapSgtable(a.dev, sgt, dir);
      sgFreeTable(sgt);
    },
    release: () => {
      calls.push('release');
    },
    vmap: (_b, map) => {
      calls.push('vmap');
      iosysMapSetVaddr(map, [...pages]);
      return 0;
    },
    vunmap: () => {
      calls.push('vunmap');
    },
  };
  if (opts.dynamic) {
    ops.pin = (a) => {
      calls.push(`pin ${a.dev.name}`);
      return 0;
    };
    ops.unpin = (a) => {
      calls.push(`unpin ${a.dev.name}`);
    };
  }
  return { ops, calls, pages };
}

function exportOf(ops: DmaBufOps, size = 4 * PG): DmaBuf {
  const b = dmaBufExport({ expName: 'test', ops, size, flags: O_RDWR, priv: {} });
  if (isErr(b)) throw new Error(`export failed: ${b}`);
  return b;
}

function must<T>(x: T | ErrPtr): T {
  if (isErr(x)) throw new Error(`unexpected ${x}`);
  return x;
}

const importerOps = (log: string[], p2p = false) => ({
  allowPeer2peer: p2p,
  moveNotify: (a: DmaBufAttachment) => {
    log.push(`move_notify ${a.dev.name}`);
  },
});

describe('dma_buf_export', () => {
  test('refuses a missing priv or mandatory op, then cache_sgt_mapping with pin, then pin without unpin', async () => {
    const results: number[] = [];
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter();
      const tryExport = (o: Partial<DmaBufOps>, priv: unknown = {}) => {
        const r = dmaBufExport({ expName: 't', ops: o as DmaBufOps, size: PG, priv });
        results.push(isErr(r) ? ptrErr(r) : 0);
        if (!isErr(r)) dmaBufPut(r);
      };
      tryExport(ops, null);
      tryExport({ ...ops, release: undefined });
      tryExport({ ...ops, cacheSgtMapping: true, pin: () => 0 });
      tryExport({ ...ops, unpin: () => {} });
      tryExport(ops);
    });
    expect(results).toEqual([-errno.EINVAL, -errno.EINVAL, -errno.EINVAL, -errno.EINVAL, 0]);
    expect(rules(m.reports)).toEqual([
      'warn:dma_buf.export_invalid_info',
      'warn:dma_buf.export_invalid_info',
      'warn:dma_buf.export_cache_with_pin',
      'warn:dma_buf.export_pin_unpin',
    ]);
  });

  test('the file: the export flags, an inode numbered from 1, fdinfo, and /dmabuf:<name>', async () => {
    let fdinfo: string | number = '';
    let ino = 0;
    await runProgram(async (sys) => {
      const { ops } = makeExporter();
      const b = dmaBufExport({ expName: 'test', ops, size: 4 * PG, flags: O_RDWR | O_CLOEXEC, priv: {} });
      const buf = must(b);
      ino = buf.ino;
      const fd = dmaBufFd(buf, O_CLOEXEC);
      fdinfo = await readWhole(sys, `/proc/self/fdinfo/${fd}`);
      expect(await sys.fcntl(fd, 3)).toBe(O_RDWR);
    });
    expect(ino).toBe(1);
    expect(fdinfo).toBe(
      'pos:\t0\nflags:\t02000002\nmnt_id:\t9\nino:\t1\nsize:\t16384\ncount:\t1\nexp_name:\ttest\n',
    );
  });
});

describe('dma_buf_get', () => {
  test('-EBADF for an fd that is not open, -EINVAL for a file that is not a dma-buf', async () => {
    await runProgram(async (sys) => {
      expect(ptrErr(dmaBufGet(99) as ErrPtr)).toBe(-errno.EBADF);
      const nul = await sys.open('/dev/null', O_RDWR);
      expect(ptrErr(dmaBufGet(nul) as ErrPtr)).toBe(-errno.EINVAL);
      const { ops } = makeExporter();
      const fd = dmaBufFd(exportOf(ops), 0);
      const got = must(dmaBufGet(fd));
      expect(got.file.count).toBe(2);
      dmaBufPut(got);
    });
  });
});

describe('attachments', () => {
  test('a static importer of a static exporter maps on demand, through the locked map', async () => {
    const { ops, calls } = makeExporter();
    const { m } = await runProgram(async () => {
      const buf = exportOf(ops);
      const at = must(await dmaBufAttach(buf, new Device('display')));
      expect(at.sgt).toBeNull();
      const sgt = must(await dmaBufMapAttachmentUnlocked(at, DMA_TO_DEVICE));
      expect(sgDmaAddress(sgt.sgl[0])).toBeGreaterThan(0);
      await dmaBufUnmapAttachmentUnlocked(at, sgt, DMA_TO_DEVICE);
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(calls).toEqual([
      'attach display',
      `map display ${DMA_TO_DEVICE}`,
      `unmap display ${DMA_TO_DEVICE}`,
      'detach display',
      'release',
    ]);
    expect(m.reports).toEqual([]);
  });

  test('a static importer of a dynamic exporter is pinned and mapped at attach; detach unmaps and unpins', async () => {
    const { ops, calls } = makeExporter({ dynamic: true });
    const { m } = await runProgram(async () => {
      const buf = exportOf(ops);
      const at = must(await dmaBufAttach(buf, new Device('display')));
      expect(calls).toEqual(['attach display', 'pin display', `map display ${DMA_BIDIRECTIONAL}`]);
      expect(at.sgt).not.toBeNull();
      // Later maps get the cached table, unmaps leave it alone.
      const sgt = must(await dmaBufMapAttachmentUnlocked(at, DMA_FROM_DEVICE));
      expect(sgt).toBe(at.sgt);
      await dmaBufUnmapAttachmentUnlocked(at, sgt, DMA_FROM_DEVICE);
      expect(calls).toHaveLength(3);
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(calls.slice(3)).toEqual([
      `unmap display ${DMA_BIDIRECTIONAL}`,
      'unpin display',
      'detach display',
      'release',
    ]);
    expect(m.reports).toEqual([]);
  });

  test('a dynamic importer of a dynamic exporter maps under the lock and is never pinned by it', async () => {
    const { ops, calls } = makeExporter({ dynamic: true });
    const log: string[] = [];
    const { m } = await runProgram(async () => {
      const buf = exportOf(ops);
      const at = must(await dmaBufDynamicAttach(buf, new Device('nic'), importerOps(log)));
      expect(at.sgt).toBeNull();
      await dmaResvLock(buf.resv, null);
      const sgt = must(await dmaBufMapAttachment(at, DMA_BIDIRECTIONAL));
      await dmaBufUnmapAttachment(at, sgt, DMA_BIDIRECTIONAL);
      dmaResvUnlock(buf.resv);
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(calls).toEqual([
      'attach nic',
      `map nic ${DMA_BIDIRECTIONAL}`,
      `unmap nic ${DMA_BIDIRECTIONAL}`,
      'detach nic',
      'release',
    ]);
    expect(m.reports).toEqual([]);
  });

  test('a dynamic importer of a static exporter gets its mapping at attach time', async () => {
    const { ops, calls } = makeExporter();
    await runProgram(async () => {
      const buf = exportOf(ops);
      const at = must(await dmaBufDynamicAttach(buf, new Device('nic'), importerOps([])));
      expect(at.sgt).not.toBeNull();
      expect(calls).toEqual(['attach nic', `map nic ${DMA_BIDIRECTIONAL}`]);
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
  });

  test('importer ops without move_notify are refused with a WARN and -EINVAL', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter({ dynamic: true });
      const buf = exportOf(ops);
      const r = await dmaBufDynamicAttach(buf, new Device('nic'), { allowPeer2peer: true });
      expect(ptrErr(r as ErrPtr)).toBe(-errno.EINVAL);
      expect(buf.attachments).toEqual([]);
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual(['warn:dma_buf.attach_no_move_notify']);
  });

  test("the exporter's attach error and the attach-time map error come out of dma_buf_attach", async () => {
    await runProgram(async () => {
      const busy = makeExporter({ attachErr: -errno.EBUSY });
      const b1 = exportOf(busy.ops);
      expect(ptrErr((await dmaBufAttach(b1, new Device('gpu'))) as ErrPtr)).toBe(-errno.EBUSY);
      expect(b1.attachments).toEqual([]);
      dmaBufPut(b1);
      // A static importer of a dynamic exporter whose map fails: unpinned, detached.
      const failing = makeExporter({ dynamic: true, mapErr: -errno.EPERM });
      const b2 = exportOf(failing.ops);
      expect(ptrErr((await dmaBufAttach(b2, new Device('gpu'))) as ErrPtr)).toBe(-errno.EPERM);
      expect(failing.calls).toEqual([
        'attach gpu',
        'pin gpu',
        `map gpu ${DMA_BIDIRECTIONAL}`,
        'unpin gpu',
        'detach gpu',
      ]);
      expect(b2.attachments).toEqual([]);
      dmaBufPut(b2);
    });
  });

  test('allow_peer2peer: only an importer that allows it gets entries without struct page', async () => {
    const { ops } = makeExporter({ dynamic: true, p2p: true });
    await runProgram(async () => {
      const buf = exportOf(ops);
      const p2p = must(await dmaBufDynamicAttach(buf, new Device('nic'), importerOps([], true)));
      const plain = must(await dmaBufDynamicAttach(buf, new Device('gpu'), importerOps([], false)));
      expect(p2p.peer2peer).toBe(true);
      expect(plain.peer2peer).toBe(false);
      await dmaResvLock(buf.resv, null);
      const t1 = must(await dmaBufMapAttachment(p2p, DMA_BIDIRECTIONAL));
      const t2 = must(await dmaBufMapAttachment(plain, DMA_BIDIRECTIONAL));
      // Importers read only DMA addresses: the peer BAR for one, system pages for the other.
      expect([...forEachSgtableDmaPage(t1)]).toEqual([BAR, BAR + PG, BAR + 2 * PG, BAR + 3 * PG]);
      expect(sgDmaIsBusAddress(t1.sgl[0])).toBe(true);
      expect(t1.sgl[0].pageLink).toBeNull();
      expect(sgDmaIsBusAddress(t2.sgl[0])).toBe(false);
      expect([...forEachSgtableDmaPage(t2)]).toHaveLength(4);
      await dmaBufUnmapAttachment(p2p, t1, DMA_BIDIRECTIONAL);
      await dmaBufUnmapAttachment(plain, t2, DMA_BIDIRECTIONAL);
      dmaResvUnlock(buf.resv);
      await dmaBufDetach(buf, p2p);
      await dmaBufDetach(buf, plain);
      dmaBufPut(buf);
    });
  });

  test('cache_sgt_mapping: the first mapping is reused, another direction gets -EBUSY', async () => {
    const { ops, calls } = makeExporter({ cache: true });
    await runProgram(async () => {
      const buf = exportOf(ops);
      const at = must(await dmaBufAttach(buf, new Device('display')));
      const t1 = must(await dmaBufMapAttachmentUnlocked(at, DMA_TO_DEVICE));
      expect(must(await dmaBufMapAttachmentUnlocked(at, DMA_TO_DEVICE))).toBe(t1);
      expect(ptrErr((await dmaBufMapAttachmentUnlocked(at, DMA_FROM_DEVICE)) as ErrPtr)).toBe(-errno.EBUSY);
      await dmaBufUnmapAttachmentUnlocked(at, t1, DMA_TO_DEVICE);
      expect(calls.filter((c) => c.startsWith('unmap'))).toEqual([]);
      await dmaBufDetach(buf, at);
      expect(calls.filter((c) => c.startsWith('unmap'))).toEqual([`unmap display ${DMA_TO_DEVICE}`]);
      dmaBufPut(buf);
    });
  });

  test('dma_buf_pin/unpin call the exporter for dynamic importers and WARN for static ones', async () => {
    const { ops, calls } = makeExporter({ dynamic: true });
    const { m } = await runProgram(async () => {
      const buf = exportOf(ops);
      const dyn = must(await dmaBufDynamicAttach(buf, new Device('scanout'), importerOps([])));
      await dmaResvLock(buf.resv, null);
      expect(await dmaBufPin(dyn)).toBe(0);
      await dmaBufUnpin(dyn);
      dmaResvUnlock(buf.resv);
      const stat = must(await dmaBufAttach(buf, new Device('display')));
      await dmaResvLock(buf.resv, null);
      await dmaBufPin(stat);
      dmaResvUnlock(buf.resv);
      await dmaBufDetach(buf, dyn);
      await dmaBufDetach(buf, stat);
      dmaBufPut(buf);
    });
    expect(calls.slice(1, 3)).toEqual(['pin scanout', 'unpin scanout']);
    expect(rules(m.reports)).toEqual(['warn:dma_buf.pin_static']);
  });

  test('bufinfo lists the attached devices, newest first', async () => {
    let text: string | number = '';
    await runProgram(async (sys) => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      const a1 = must(await dmaBufAttach(buf, new Device('0000:03:00.0')));
      const a2 = must(await dmaBufDynamicAttach(buf, new Device('mlx5_0'), importerOps([])));
      text = await readWhole(sys, '/sys/kernel/debug/dma_buf/bufinfo');
      await dmaBufDetach(buf, a2);
      await dmaBufDetach(buf, a1);
      dmaBufPut(buf);
    });
    expect(text).toBe(
      '\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n' +
        '00016384\t00000002\t00080007\t00000001\ttest\t00000001\t<none>\n' +
        '\tAttached Devices:\n\tmlx5_0\n\t0000:03:00.0\nTotal 2 devices attached\n\n' +
        '\nTotal 1 objects, 16384 bytes\n',
    );
  });
});

describe('the locking convention', () => {
  test('mapping and unmapping without the reservation lock are reported', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter({ dynamic: true });
      const buf = exportOf(ops);
      const at = must(await dmaBufDynamicAttach(buf, new Device('nic'), importerOps([])));
      const sgt = must(await dmaBufMapAttachment(at, DMA_BIDIRECTIONAL));
      await dmaBufUnmapAttachment(at, sgt, DMA_BIDIRECTIONAL);
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual([
      'violation:dma_buf.map_without_resv_lock',
      'violation:dma_buf.unmap_without_resv_lock',
    ]);
    expect(m.reports[0].message).toContain(
      'dma_buf_map_attachment() called by driver/1 without the reservation lock of dma_buf 1 (test)',
    );
  });

  test('move_notify without the reservation lock is reported', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter({ dynamic: true });
      const buf = exportOf(ops);
      await dmaBufMoveNotify(buf);
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual(['violation:dma_buf.move_notify_without_resv_lock']);
  });

  test('begin_cpu_access with the reservation lock held is reported', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      await dmaResvLock(buf.resv, null);
      expect(await dmaBufBeginCpuAccess(buf, DMA_BIDIRECTIONAL)).toBe(0);
      dmaResvUnlock(buf.resv);
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual(['violation:dma_buf.resv_lock_held']);
  });

  test('detaching with a mapping left is reported', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      const at = must(await dmaBufAttach(buf, new Device('display')));
      must(await dmaBufMapAttachmentUnlocked(at, DMA_BIDIRECTIONAL));
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual(['violation:dma_buf.detach_with_mappings']);
  });
});

describe('CONFIG_DMABUF_DEBUG mangling', () => {
  test('an importer touching sg_page of a mapped table stops with dma_buf.sg_page_access', async () => {
    let caught: unknown = null;
    let pageBefore: Page | null = null;
    const { m } = await runProgram(async () => {
      const { ops, pages } = makeExporter();
      const buf = exportOf(ops);
      const at = must(await dmaBufAttach(buf, new Device('capture')));
      const sgt = must(await dmaBufMapAttachmentUnlocked(at, DMA_FROM_DEVICE));
      // DMA addresses are fine to use.
      expect(sgDmaAddress(sgt.sgl[0])).toBe(pages[0].physAddr);
      try {
        sgPage(sgt.sgl[0]);
      } catch (e) {
        caught = e;
      }
      // The exporter's unmap gets the table back unmangled (it calls sgPage itself).
      await dmaBufUnmapAttachmentUnlocked(at, sgt, DMA_FROM_DEVICE);
      pageBefore = pages[0];
      await dmaBufDetach(buf, at);
      dmaBufPut(buf);
    });
    expect(caught).toBeInstanceOf(KernelBug);
    expect(pageBefore).not.toBeNull();
    expect(m.reports.map((r) => [r.type, r.rule])).toEqual([['violation', SG_PAGE_ACCESS_RULE]]);
  });
});

describe('dma_buf_move_notify', () => {
  test('reaches dynamic importers only, newest attachment first', async () => {
    const log: string[] = [];
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter({ dynamic: true });
      const buf = exportOf(ops);
      const a = must(await dmaBufDynamicAttach(buf, new Device('nic0'), importerOps(log)));
      const s = must(await dmaBufAttach(buf, new Device('display')));
      const b = must(await dmaBufDynamicAttach(buf, new Device('nic1'), importerOps(log)));
      await dmaResvLock(buf.resv, null);
      await dmaBufMoveNotify(buf);
      dmaResvUnlock(buf.resv);
      for (const x of [a, s, b]) await dmaBufDetach(buf, x);
      dmaBufPut(buf);
    });
    expect(log).toEqual(['move_notify nic1', 'move_notify nic0']);
    expect(m.reports).toEqual([]);
  });
});

describe('vmap', () => {
  test('vmaps are counted: the exporter maps once and unmaps at the last vunmap', async () => {
    const { ops, calls, pages } = makeExporter();
    await runProgram(async () => {
      pages[1].data[5] = 0x99;
      const buf = exportOf(ops);
      const m1 = new IosysMap();
      const m2 = new IosysMap();
      expect(await dmaBufVmapUnlocked(buf, m1)).toBe(0);
      expect(await dmaBufVmapUnlocked(buf, m2)).toBe(0);
      expect(m2.vaddr).toBe(m1.vaddr);
      const out = new Uint8Array(1);
      iosysMapMemcpyFrom(out, m1, PG + 5);
      expect(out[0]).toBe(0x99);
      await dmaBufVunmapUnlocked(buf, m1);
      expect(calls).toEqual(['vmap']);
      await dmaBufVunmapUnlocked(buf, m2);
      expect(calls).toEqual(['vmap', 'vunmap']);
      dmaBufPut(buf);
    });
  });

  test('vunmap of a map that is not the buffer mapping is a BUG', async () => {
    const m = await Machine.create({ seed: 3 });
    m.spawn('driver', async () => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      await dmaBufVmapUnlocked(buf, new IosysMap());
      await dmaBufVunmapUnlocked(buf, new IosysMap());
      return 0;
    });
    const run = await m.run();
    expect(run.status).toBe('bug');
    expect(rules(m.reports)).toEqual(['bug:dma_buf.vunmap_unmapped']);
  });
});

describe('CPU access', () => {
  test('begin_cpu_access waits for the fences its direction needs', async () => {
    const times: Record<string, number> = {};
    await runProgram(async (sys, mach) => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      const lock = new SpinLock('test');
      const fence = new DmaFence(
        { getDriverName: () => 'test', getTimelineName: () => 'tl' },
        lock,
        dmaFenceContextAlloc(1),
        1,
      );
      await dmaResvLock(buf.resv, null);
      expect(dmaResvReserveFences(buf.resv, 1)).toBe(0);
      dmaResvAddFence(buf.resv, fence, DMA_RESV_USAGE_WRITE);
      dmaResvUnlock(buf.resv);
      const start = mach.engine.now;
      mach.engine.at(start + 5_000_000, () => fence.signal());
      expect(await dmaBufBeginCpuAccess(buf, DMA_FROM_DEVICE)).toBe(0);
      times.read = mach.engine.now - start;
      expect(await dmaBufEndCpuAccess(buf, DMA_FROM_DEVICE)).toBe(0);
      fence.put();
      dmaBufPut(buf);
      await sys.sched_yield();
    });
    expect(times.read).toBe(5_000_000);
  });
});

describe('poll', () => {
  test('only the requested directions arm a callback, each holding a file reference until its fence signals', async () => {
    const counts: number[] = [];
    const revents: number[] = [];
    await runProgram(async (sys) => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      const fd = dmaBufFd(buf, 0);
      const fence = new DmaFence(
        { getDriverName: () => 'test', getTimelineName: () => 'tl' },
        new SpinLock('test'),
        dmaFenceContextAlloc(1),
        1,
      );
      await dmaResvLock(buf.resv, null);
      dmaResvReserveFences(buf.resv, 1);
      dmaResvAddFence(buf.resv, fence, DMA_RESV_USAGE_READ);
      dmaResvUnlock(buf.resv);
      const pf = sys.allocStruct(pollfd, { fd, events: POLLIN });
      await sys.poll(pf, 1, 0);
      revents.push(sys.readStruct(pollfd, pf).revents);
      counts.push(buf.file.count); // a READ fence does not hold readers back: nothing armed
      sys.writeStruct(pollfd, pf, { fd, events: POLLOUT });
      await sys.poll(pf, 1, 0);
      revents.push(sys.readStruct(pollfd, pf).revents);
      counts.push(buf.file.count); // POLLOUT waits for it: one callback armed
      fence.signal();
      counts.push(buf.file.count);
      await sys.poll(pf, 1, 0);
      revents.push(sys.readStruct(pollfd, pf).revents);
      fence.put();
    });
    expect(revents).toEqual([POLLIN, 0, POLLOUT]);
    expect(counts).toEqual([1, 2, 1]);
  });
});

describe('release', () => {
  test('a buffer released with an attachment left is a leak report', async () => {
    const { m } = await runProgram(async () => {
      const { ops } = makeExporter();
      const buf = exportOf(ops);
      must(await dmaBufAttach(buf, new Device('display')));
      dmaBufPut(buf);
    });
    expect(rules(m.reports)).toEqual(['leak:dma_buf.release_with_attachments']);
  });
});

// ------------------------------------------------------------ lifetime

/** A static importer device: ioctl(fd, 0, dmabuf fd) attaches and maps; release undoes it. */
function registerTestImporter(m: Machine): void {
  interface Held {
    buf: DmaBuf;
    at: DmaBufAttachment;
    sgt: SgTable;
  }
  const fops: FileOperations = {
    name: 'test_importer',
    open: (_inode, file) => {
      file.privateData = { dev: new Device('test-importer'), held: [] as Held[] };
      return 0;
    },
    async ioctl(file, _cmd, arg) {
      const st = file.privateData as { dev: Device; held: Held[] };
      const buf = dmaBufGet(arg);
      if (isErr(buf)) return ptrErr(buf);
      const at = await dmaBufAttach(buf, st.dev);
      if (isErr(at)) {
        dmaBufPut(buf);
        return ptrErr(at);
      }
      const sgt = await dmaBufMapAttachmentUnlocked(at, DMA_BIDIRECTIONAL);
      if (isErr(sgt)) {
        await dmaBufDetach(buf, at);
        dmaBufPut(buf);
        return ptrErr(sgt);
      }
      st.held.push({ buf, at, sgt });
      return 0;
    },
    // An importer's own mmap forwarding to the exporter (dma_buf_mmap).
    async mmap(file, vma) {
      const st = file.privateData as { held: Held[] };
      if (st.held.length === 0) return -errno.ENODEV;
      return dmaBufMmap(st.held[0].buf, vma, vma.vmPgoff);
    },
    async release(_inode, file) {
      const st = file.privateData as { held: Held[] };
      for (const h of st.held) {
        await dmaBufUnmapAttachmentUnlocked(h.at, h.sgt, DMA_BIDIRECTIONAL);
        await dmaBufDetach(h.buf, h.at);
        dmaBufPut(h.buf);
      }
    },
  };
  m.kernel.enter();
  registerDevice('/dev/test_importer', fops);
}

const EMPTY_BUFINFO =
  '\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n\nTotal 0 objects, 0 bytes\n';

describe('lifetime', () => {
  test('a process exiting with open fds, mappings and attachments leaves no leak and an empty bufinfo', async () => {
    const m = await Machine.create({ seed: 5 });
    registerTestImporter(m);
    let during: string | number = '';
    const app = m.spawn('app', async (sys) => {
      const heap = await DmaHeap.open(sys, 'system');
      const buf = await heap.alloc(8 * PG);
      const map = await buf.mmap();
      map.bytes().fill(0x5a);
      const imp = await sys.open('/dev/test_importer', O_RDWR);
      expect(await sys.ioctl(imp, 0, buf.fd)).toBe(0);
      // 6.12 renames attached buffers too (no -EBUSY).
      await buf.setName('frame');
      // Mapping the importer's file maps the buffer (dma_buf_mmap re-points the vma).
      const viaImporter = await sys.mmap(0, 2 * PG, PROT_READ, MAP_SHARED, imp, PG);
      expect(sys.peek(viaImporter, 1)[0]).toBe(0x5a);
      expect(await sys.mmap(0, 2 * PG, PROT_READ, MAP_SHARED, imp, 7 * PG)).toBe(-errno.EINVAL);
      const sync = await buf.exportSyncFile('rw');
      expect(sync).toBeGreaterThan(0);
      during = await readWhole(sys, '/sys/kernel/debug/dma_buf/bufinfo');
      return 0; // exits with the heap fd, the buffer fd, its mapping, the importer and a sync_file open
    });
    let after: string | number = '';
    await m.run();
    expect(app.exitCode).toBe(0);
    const checker = m.spawn('checker', async (sys) => {
      after = await readWhole(sys, '/sys/kernel/debug/dma_buf/bufinfo');
      return 0;
    });
    await m.run();
    expect(checker.exitCode).toBe(0);
    // fd + its mapping + the importer's reference + the importer mapping's (vma_set_file).
    expect(during).toContain('00032768\t00000002\t00080007\t00000004\tsystem\t00000001\tframe\n');
    expect(during).toContain('\tAttached Devices:\n\ttest-importer\nTotal 1 devices attached\n');
    expect(after).toBe(EMPTY_BUFINFO);
    expect(dmaBufList(m.kernel)).toEqual([]);
    expect(m.reports).toEqual([]);
  });

  test('an fd passed to another process keeps the buffer alive after the first exits', async () => {
    const m = await Machine.create({ seed: 5 });
    let seen = 0;
    let bufinfo: string | number = '';
    let senderExitedFirst = false;
    const sender = m.spawn('sender', async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, sv)).toBe(0);
      const [s0, s1] = [sys.readS32(sv), sys.readS32(sv + 4)];
      const buf = await (await DmaHeap.open(sys, 'system')).alloc(PG);
      const map = await buf.mmap();
      map.bytes()[100] = 0xab;
      await map.unmap();
      expect(await sendFd(sys, s0, buf.fd)).toBe(1);
      await buf.close();
      sys.spawn('receiver', async (rs) => {
        await rs.nanosleep(rs.allocStruct(timespec, { tv_sec: 1 }), 0);
        senderExitedFirst = sender.exitCode !== null;
        const fd = await recvFd(rs, s1);
        bufinfo = await readWhole(rs, '/sys/kernel/debug/dma_buf/bufinfo');
        const addr = await rs.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        seen = rs.peek(addr + 100, 1)[0];
        return 0;
      });
      return 0;
    });
    await m.run();
    expect(senderExitedFirst).toBe(true);
    expect(seen).toBe(0xab);
    expect(bufinfo).toContain('Total 1 objects, 4096 bytes');
    expect(dmaBufList(m.kernel)).toEqual([]);
    expect(m.reports).toEqual([]);
  });
});
