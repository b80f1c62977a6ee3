/**
 * Test helpers: a port of the output half of oracle/dmabuf_probe.c, so a model program
 * can print the same lines the real kernel's probe printed and a test can compare them
 * with oracle/outputs/dmabuf_probe.txt.
 *
 * Lines have the probe's shape, `ACTION -> rc=<n> errno=<NAME> [extras]`, where rc is -1
 * for failed calls (libc style) and the errno name comes from the model's -errno.
 */
import { readFileSync } from 'node:fs';
import {
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  POLLRDNORM,
  POLLWRNORM,
  pollfd,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  type Sys,
  syncFenceInfo,
  syncFileInfo,
  syncMergeData,
} from '../../src/index.ts';
import { errnoName } from '../../src/kernel/errno.ts';
import { readWholeFile } from '../../src/uapi/read-file.ts';

/**
 * Path of the oracle's captured probe output: a copy of oracle/outputs/dmabuf_probe.txt
 * (Linux 6.12.117 under QEMU) kept with the tests.
 */
export const ORACLE_PROBE = new URL('../fixtures/oracle/dmabuf_probe.txt', import.meta.url);

/** The oracle probe output as lines. */
export function oracleProbeLines(): string[] {
  return readFileSync(ORACLE_PROBE, 'utf8').split('\n');
}

/** The lines of one `### <name>` section (header included, up to the next section). */
export function oracleSection(name: string): string[] {
  const lines = oracleProbeLines();
  const start = lines.indexOf(`### ${name}`);
  if (start < 0) throw new Error(`no section ${name} in the oracle output`);
  let end = lines.findIndex((l, i) => i > start && l.startsWith('### '));
  if (end < 0) end = lines.length;
  // The blank line before the next header belongs to printf("\n### ...").
  while (end > start && lines[end - 1] === '') end--;
  return lines.slice(start, end);
}

/** The probe's errname(): `0` for success, the symbol otherwise. */
export function errname(rc: number): string {
  return rc >= 0 ? '0' : errnoName(rc);
}

/** Collects probe lines. */
export class ProbeOut {
  /** The lines printed. */
  readonly lines: string[] = [];

  /** printf of a whole line. */
  print(line: string): void {
    this.lines.push(line);
  }

  /** RES(): `<action> -> rc=<rc> errno=<name><extra>` for a model return value. */
  res(action: string, rc: number, extra = ''): void {
    this.lines.push(`${action} -> rc=${rc < 0 ? -1 : rc} errno=${errname(rc)}${extra}`);
  }

  /** section(). */
  section(name: string): void {
    this.lines.push(`### ${name}`);
  }

  /** note(). */
  note(text: string): void {
    this.lines.push(`# ${text}`);
  }
}

/** The probe's pollstr(). */
export function pollstr(ev: number): string {
  if (!ev) return '0';
  const names: [number, string][] = [
    [POLLIN, 'POLLIN'],
    [POLLPRI, 'POLLPRI'],
    [POLLOUT, 'POLLOUT'],
    [POLLERR, 'POLLERR'],
    [POLLHUP, 'POLLHUP'],
    [POLLNVAL, 'POLLNVAL'],
    [POLLRDNORM, 'POLLRDNORM'],
    [POLLWRNORM, 'POLLWRNORM'],
  ];
  return names
    .filter(([b]) => ev & b)
    .map(([, n]) => n)
    .join('|');
}

/** Reads a whole file the way dump_file() does (8 KiB reads until 0). */
export function readWhole(sys: Sys, path: string): Promise<string | number> {
  return readWholeFile(sys, path, 8192);
}

/** dump_file(). */
export async function dumpFile(sys: Sys, out: ProbeOut, path: string, label: string): Promise<void> {
  out.print(`-----BEGIN ${label} (${path})-----`);
  const t = await readWhole(sys, path);
  if (typeof t === 'number') out.print(`(open failed: ${errname(t)})`);
  else for (const l of t.replace(/\n$/, '').split('\n')) out.print(l);
  out.print(`-----END ${label}-----`);
}

/** dump_fdinfo(). */
export function dumpFdinfo(sys: Sys, out: ProbeOut, fd: number, label: string): Promise<void> {
  return dumpFile(sys, out, `/proc/self/fdinfo/${fd}`, `fdinfo ${label}`);
}

/** dump_syncinfo(). */
export function dumpSyncinfo(sys: Sys, out: ProbeOut, label: string): Promise<void> {
  return dumpFile(sys, out, '/sys/kernel/debug/sync/info', `sync/info ${label}`);
}

/** fd_link(): readlink of /proc/self/fd/N. */
export async function fdLink(sys: Sys, fd: number): Promise<string> {
  const buf = sys.alloc(256);
  const n = await sys.readlink(`/proc/self/fd/${fd}`, buf, 255);
  if (n < 0) return `(readlink ${errname(n)})`;
  let s = '';
  for (const b of sys.peek(buf, n)) s += String.fromCharCode(b);
  return s;
}

/** show_fd_flags(). */
export async function showFdFlags(sys: Sys, out: ProbeOut, fd: number, what: string): Promise<void> {
  const fl = await sys.fcntl(fd, 3);
  const fdfl = await sys.fcntl(fd, 1);
  const acc = fl < 0 ? 'O_ACCMODE?' : ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE?'][fl & 3];
  out.res(
    `fcntl(F_GETFL/F_GETFD) ${what}`,
    fl,
    ` accmode=${acc} f_flags=0${(fl >>> 0).toString(8)} cloexec=${fdfl >= 0 ? (fdfl & 1 ? 1 : 0) : -1} link="${await fdLink(sys, fd)}"`,
  );
}

/** do_poll(): one fd, prints and returns revents. */
export async function doPoll(
  sys: Sys,
  out: ProbeOut,
  fd: number,
  events: number,
  timeout: number,
  what: string,
) {
  const p = sys.allocStruct(pollfd, { fd, events });
  const rc = await sys.poll(p, 1, timeout);
  const revents = sys.readStruct(pollfd, p).revents;
  out.res(`poll(${what}, events=${pollstr(events)}, timeout=${timeout})`, rc, ` revents=${pollstr(revents)}`);
  return revents;
}

/** file_info(): both FILE_INFO calls with the probe's printing; returns num_fences or -1. */
export async function fileInfo(
  sys: Sys,
  out: ProbeOut,
  fd: number,
  what: string,
  t0 = 0n,
  t1 = 0n,
): Promise<number> {
  const info = sys.allocStruct(syncFileInfo, {});
  let rc = await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info);
  let v = sys.readStruct(syncFileInfo, info);
  out.res(
    `SYNC_IOC_FILE_INFO(${what}, num_fences=0)`,
    rc,
    ` name="${v.name}" status=${v.status} flags=${v.flags} num_fences=${v.num_fences}`,
  );
  if (rc < 0) return -1;
  const n = Math.min(v.num_fences, 64);
  const fi = sys.alloc(64 * syncFenceInfo.size);
  sys.poke(fi, new Uint8Array(64 * syncFenceInfo.size).fill(0xa5));
  sys.writeStruct(syncFileInfo, info, { num_fences: n, sync_fence_info: fi });
  rc = await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info);
  v = sys.readStruct(syncFileInfo, info);
  out.res(
    `SYNC_IOC_FILE_INFO(${what}, num_fences=${n})`,
    rc,
    ` name="${v.name}" status=${v.status} flags=${v.flags} num_fences=${v.num_fences}`,
  );
  if (rc < 0) return -1;
  for (let i = 0; i < v.num_fences && i < n; i++) {
    const f = sys.readStruct(syncFenceInfo, fi + i * syncFenceInfo.size);
    const ts = f.timestamp_ns;
    const inWindow = t0 !== 0n && ts >= t0 && ts <= t1;
    out.print(
      `  fence[${i}] obj_name="${f.obj_name}" driver_name="${f.driver_name}" status=${f.status} flags=${f.flags} timestamp_nonzero=${ts !== 0n ? 1 : 0}${t0 ? (inWindow ? ' timestamp_in_signal_window=1' : ' timestamp_in_signal_window=0') : ''}`,
    );
  }
  return v.num_fences;
}

/** merge(): SYNC_IOC_MERGE of `a` with `b` under `name`; returns the new fd or -1. */
export async function merge(sys: Sys, out: ProbeOut, a: number, b: number, name: string, what: string) {
  const m = sys.allocStruct(syncMergeData, { name, fd2: b, fence: -1 });
  const rc = await sys.ioctl(a, SYNC_IOC_MERGE, m);
  const fence = sys.readStruct(syncMergeData, m).fence;
  out.res(`SYNC_IOC_MERGE(${what}, name="${name}")`, rc, ` fence_fd=${fence}`);
  return rc < 0 ? -1 : fence;
}
