/**
 * The dma-buf views users already know, taken from one machine at one instant:
 *
 * - `bufinfo`: the text of debugfs /sys/kernel/debug/dma_buf/bufinfo, read through the
 *   file as `cat` would (drivers/dma-buf/dma-buf.c dma_buf_debug_show);
 * - `dmabuf_dump`: Android's per-process table (AOSP system/memory/libmeminfo,
 *   libdmabufinfo and tools/dmabuf_dump.cpp): for each process, each dma-buf it holds
 *   by fd or by mapping with its fds, inode, size, exporter and name, the process's
 *   Rss and Pss (size shared by the processes holding the buffer), and the totals line
 *   (`dmabuf total`, `kernel_rss` = buffers no process holds, `userspace_rss`,
 *   `userspace_pss`);
 * - `fdinfo`: /proc/<pid>/fdinfo/<fd> of every dma-buf fd (fs/proc/fd.c plus
 *   dma_buf_show_fdinfo), read through procfs.
 *
 * The `snapshot` scenario step captures them; the summary prints them and `--json`
 * carries them as data.
 */
import { DMA_BUF_BUFINFO_PATH, type DmaBuf, dmaBufList, isDmaBufFile } from '../kernel/dma-buf/dma-buf.ts';
import type { Machine } from '../machine.ts';
import { readWholeFile } from '../uapi/read-file.ts';
import type { Sys } from '../uapi/sys.ts';

/** The names of the views. */
export const SNAPSHOT_VIEWS = ['bufinfo', 'dmabuf_dump', 'fdinfo'] as const;

/** One view's name. */
export type SnapshotView = (typeof SNAPSHOT_VIEWS)[number];

/** One buffer a process holds (a row of the dmabuf_dump table). */
export interface DmabufDumpRow {
  /** The fds that refer to it in the process, ascending (empty when held only by a mapping). */
  fds: number[];
  /** Number of the process's mappings of it. */
  maps: number;
  /** The buffer's inode number (the id bufinfo, fdinfo and the trace use). */
  inode: number;
  /** Size, bytes. */
  size: number;
  /** The exporter's name (exp_name). */
  exporter: string;
  /** The name set with DMA_BUF_SET_NAME, or `<unknown>` as dmabuf_dump prints it. */
  name: string;
  /** Number of processes holding the buffer. */
  nrProcs: number;
  /** The process's proportional share: size / nrProcs, bytes. */
  pss: number;
}

/** A process of the dmabuf_dump table. */
export interface DmabufDumpProcess {
  /** Process name. */
  name: string;
  /** Process id. */
  pid: number;
  /** Its buffers, by inode. */
  rows: DmabufDumpRow[];
  /** Sum of the sizes of its buffers, bytes. */
  rss: number;
  /** Sum of its proportional shares, bytes. */
  pss: number;
}

/** The dmabuf_dump view as data. */
export interface DmabufDump {
  /** Processes holding at least one dma-buf, by pid. */
  processes: DmabufDumpProcess[];
  /** Number of live dma-bufs. */
  buffers: number;
  /** Bytes of all live dma-bufs. */
  total: number;
  /** Bytes of buffers no process holds (only the kernel: importers, exporters). */
  kernelRss: number;
  /** Bytes of buffers some process holds. */
  userspaceRss: number;
  /** Sum of every process's Pss, bytes. */
  userspacePss: number;
}

/** The fdinfo of one dma-buf fd. */
export interface FdinfoEntry {
  /** Process name. */
  process: string;
  /** Process id. */
  pid: number;
  /** The fd. */
  fd: number;
  /** The buffer's inode. */
  inode: number;
  /** The text of /proc/<pid>/fdinfo/<fd>. */
  text: string;
}

/** What a snapshot holds: the views it was asked for. */
export interface SnapshotData {
  /** Virtual time of the snapshot, ns after the scenario started (set by the reader). */
  t?: number;
  /** The bufinfo text. */
  bufinfo?: string;
  /** The dmabuf_dump table. */
  dmabuf_dump?: DmabufDump;
  /** fdinfo of every dma-buf fd of every live process. */
  fdinfo?: FdinfoEntry[];
}

interface Holder {
  pid: number;
  name: string;
  fds: Map<DmaBuf, number[]>;
  maps: Map<DmaBuf, number>;
}

/** Who holds which dma-buf on `machine`: live processes with their dma-buf fds and mappings, by pid. */
function holders(machine: Machine): Holder[] {
  const out: Holder[] = [];
  const procs = machine.processes.filter((p) => p.exitCode === null).sort((a, b) => a.pid - b.pid);
  for (const p of procs) {
    const h: Holder = { pid: p.pid, name: p.name, fds: new Map(), maps: new Map() };
    for (const fd of p.files.fds()) {
      const f = p.files.lookup(fd);
      if (!f || !isDmaBufFile(f)) continue;
      const buf = f.privateData as DmaBuf;
      h.fds.set(buf, [...(h.fds.get(buf) ?? []), fd]);
    }
    for (const vma of p.mm.vmas) {
      const f = vma.vmFile;
      if (!f || !isDmaBufFile(f)) continue;
      const buf = f.privateData as DmaBuf;
      h.maps.set(buf, (h.maps.get(buf) ?? 0) + 1);
    }
    if (h.fds.size > 0 || h.maps.size > 0) out.push(h);
  }
  return out;
}

/** The dmabuf_dump view of `machine` now. */
export function dmabufDump(machine: Machine): DmabufDump {
  const hs = holders(machine);
  const nrProcs = new Map<DmaBuf, number>();
  for (const h of hs) {
    for (const b of new Set([...h.fds.keys(), ...h.maps.keys()])) nrProcs.set(b, (nrProcs.get(b) ?? 0) + 1);
  }
  const processes: DmabufDumpProcess[] = hs.map((h) => {
    const bufs = [...new Set([...h.fds.keys(), ...h.maps.keys()])].sort((a, b) => a.ino - b.ino);
    const rows = bufs.map((b): DmabufDumpRow => {
      const n = nrProcs.get(b) ?? 1;
      return {
        fds: [...(h.fds.get(b) ?? [])].sort((x, y) => x - y),
        maps: h.maps.get(b) ?? 0,
        inode: b.ino,
        size: b.size,
        exporter: b.expName,
        name: b.name ?? '<unknown>',
        nrProcs: n,
        pss: b.size / n,
      };
    });
    return {
      name: h.name,
      pid: h.pid,
      rows,
      rss: rows.reduce((s, r) => s + r.size, 0),
      pss: rows.reduce((s, r) => s + r.pss, 0),
    };
  });
  const live = dmaBufList(machine.kernel).filter((b) => !b.released);
  const total = live.reduce((s, b) => s + b.size, 0);
  const userspaceRss = [...nrProcs.keys()].reduce((s, b) => s + b.size, 0);
  return {
    processes,
    buffers: live.length,
    total,
    kernelRss: total - userspaceRss,
    userspaceRss,
    userspacePss: processes.reduce((s, p) => s + p.pss, 0),
  };
}

const kb = (bytes: number) => Math.floor(bytes / 1024);

/**
 * The dmabuf_dump table as text: dmabuf_dump's default per-process layout (a
 * `name:pid` line, a header, one row per buffer, `PROCESS TOTAL`), with an `Fds` column
 * added, then the totals line.
 */
export function renderDmabufDump(d: DmabufDump): string {
  const out: string[] = [];
  if (d.processes.length === 0 && d.buffers === 0) return '¯\\_(ツ)_/¯ no dma-bufs\n';
  for (const p of d.processes) {
    out.push(`${p.name.padStart(16)}:${String(p.pid).padEnd(5)}`);
    out.push(
      `${'Name'.padStart(22)} ${'Rss'.padStart(16)} ${'Pss'.padStart(16)} ${'nr_procs'.padStart(16)} ${'Inode'.padStart(16)} ${'Exporter'.padStart(16)}  Fds`,
    );
    for (const r of p.rows) {
      const maps = r.maps > 0 ? ` (+${r.maps} map${r.maps > 1 ? 's' : ''})` : '';
      const fds = `${r.fds.length > 0 ? r.fds.join(',') : '-'}${maps}`;
      out.push(
        `${r.name.padStart(22)} ${`${kb(r.size)} kB`.padStart(16)} ${`${kb(r.pss)} kB`.padStart(16)} ${String(r.nrProcs).padStart(16)} ${String(r.inode).padStart(16)} ${r.exporter.padStart(16)}  ${fds}`,
      );
    }
    out.push(
      `${'PROCESS TOTAL'.padStart(22)} ${`${kb(p.rss)} kB`.padStart(16)} ${`${kb(p.pss)} kB`.padStart(16)}`,
    );
    out.push('');
  }
  out.push('----------------------- DMA-BUF per-process total -----------------------');
  out.push(
    `dmabuf total: ${kb(d.total)} kB kernel_rss: ${kb(d.kernelRss)} kB userspace_rss: ${kb(d.userspaceRss)} kB userspace_pss: ${kb(d.userspacePss)} kB (${d.buffers} buffers)`,
  );
  return `${out.join('\n')}\n`;
}

/** The fdinfo entries as text: a `/proc/<pid>/fdinfo/<fd>` heading per fd, then its lines. */
export function renderFdinfo(entries: FdinfoEntry[]): string {
  if (entries.length === 0) return '(no dma-buf fds)\n';
  return entries
    .map(
      (e) => `/proc/${e.pid}/fdinfo/${e.fd} (${e.process}, ino ${e.inode})\n${e.text.replace(/\n?$/, '\n')}`,
    )
    .join('');
}

/** The snapshot's views as text, each under a heading. */
export function renderSnapshot(s: SnapshotData): string {
  const parts: string[] = [];
  if (s.bufinfo !== undefined) parts.push(`# cat ${DMA_BUF_BUFINFO_PATH}\n${s.bufinfo.replace(/^\n/, '')}`);
  if (s.dmabuf_dump !== undefined) parts.push(`# dmabuf_dump\n${renderDmabufDump(s.dmabuf_dump)}`);
  if (s.fdinfo !== undefined) parts.push(`# fdinfo of every dma-buf fd\n${renderFdinfo(s.fdinfo)}`);
  return parts.join('');
}

/**
 * Takes the views `views` of the machine `sys` runs on, now, the way a program on it
 * would: bufinfo and fdinfo are read through the files (so they take the locks the
 * kernel takes), dmabuf_dump is computed from the processes' fd tables and mappings.
 * Returns the views, or -errno if reading bufinfo failed (-EINTR when a signal came while
 * it waited for a buffer's lock). An fd closed between listing and reading its fdinfo
 * is left out, as a racing `cat` would miss it.
 */
export async function takeSnapshot(
  sys: Sys,
  views: readonly SnapshotView[] = SNAPSHOT_VIEWS,
): Promise<SnapshotData | number> {
  const out: SnapshotData = {};
  const want = new Set(views);
  if (want.has('bufinfo')) {
    const t = await readWholeFile(sys, DMA_BUF_BUFINFO_PATH);
    if (typeof t === 'number') return t;
    out.bufinfo = t;
  }
  if (want.has('dmabuf_dump')) out.dmabuf_dump = dmabufDump(sys.machine);
  if (want.has('fdinfo')) {
    const entries: FdinfoEntry[] = [];
    for (const h of holders(sys.machine)) {
      const fds = [...h.fds].flatMap(([buf, list]) => list.map((fd) => ({ fd, inode: buf.ino })));
      for (const { fd, inode } of fds.sort((a, b) => a.fd - b.fd)) {
        const t = await readWholeFile(sys, `/proc/${h.pid}/fdinfo/${fd}`);
        if (typeof t === 'string') entries.push({ process: h.name, pid: h.pid, fd, inode, text: t });
      }
    }
    out.fdinfo = entries;
  }
  return out;
}
