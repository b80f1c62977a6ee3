/**
 * Replays the sw_sync / sync_file section of oracle/dmabuf_probe.c inside a model
 * process and compares every line with what the real Linux 6.12 kernel printed
 * (oracle/outputs/dmabuf_probe.txt): return codes, errno names, FILE_INFO contents,
 * poll results, fdinfo text and the sync/info debugfs dumps.
 *
 * The oracle kernel had used 32 fence contexts in its boot-time selftests before the
 * probe ran; the test uses up as many on the fresh model machine first, so context
 * numbers (they appear in sync_file names) match. The signal time printed in sync/info
 * (`fence error@<sec>.<nsec>`) depends on the boot and is masked.
 * The child process that increments timeline B after 200 ms is a thread here (it only
 * needs the inherited timeline fd); the probe's `waited_at_least_150ms` is measured in
 * virtual time.
 */
import { describe, expect, test } from 'vitest';
import {
  _IO,
  _IOW,
  Machine,
  O_RDONLY,
  O_RDWR,
  POLLIN,
  POLLOUT,
  POLLPRI,
  pollfd,
  SW_SYNC_GET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  SYNC_IOC_SET_DEADLINE,
  type Sys,
  swSyncCreateFenceData,
  swSyncGetDeadline,
  syncFileInfo,
  syncMergeData,
  syncSetDeadline,
  timespec,
} from '../src/index.ts';
import {
  doPoll,
  dumpFdinfo,
  dumpSyncinfo,
  fileInfo,
  merge,
  oracleSection,
  ProbeOut,
  showFdFlags,
} from './helpers/probe.ts';

const SW_SYNC_PATH = '/sys/kernel/debug/sync/sw_sync';
/** DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync). */
const DMA_BUF_IOCTL_SYNC = _IOW('b', 0, 8);

async function nowNs(sys: Sys): Promise<bigint> {
  const ts = sys.allocStruct(timespec);
  await sys.clock_gettime(1, ts);
  const v = sys.readStruct(timespec, ts);
  return v.tv_sec * 1_000_000_000n + v.tv_nsec;
}

/** The port of probe_sync(). */
async function probeSync(sys: Sys, out: ProbeOut): Promise<void> {
  const swTimeline = async (what: string) => {
    const rc = await sys.open(SW_SYNC_PATH, O_RDWR);
    out.res(`open(${SW_SYNC_PATH}) ${what}`, rc);
    return rc;
  };
  const swFence = async (tl: number, name: string, value: number) => {
    const d = sys.allocStruct(swSyncCreateFenceData, { value, name: `pt${value >>> 0}`, fence: -1 });
    const rc = await sys.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d);
    const fence = sys.readStruct(swSyncCreateFenceData, d).fence;
    out.res(`SW_SYNC_IOC_CREATE_FENCE(tl=${name}, value=${value >>> 0})`, rc, ` fence_fd=${fence}`);
    return rc < 0 ? -1 : fence;
  };
  const swInc = async (tl: number, name: string, inc: number) => {
    const v = sys.alloc(4);
    sys.writeU32(v, inc);
    out.res(`SW_SYNC_IOC_INC(tl=${name}, inc=${inc >>> 0})`, await sys.ioctl(tl, SW_SYNC_IOC_INC, v));
  };
  const DO = async (what: string, rc: Promise<number>) => out.res(what, await rc);

  out.section('sw_sync / sync_file');
  const tlA = await swTimeline('timeline A');
  const tlB = await swTimeline('timeline B');
  await showFdFlags(sys, out, tlA, 'timeline A');
  await dumpFdinfo(sys, out, tlA, 'sw_sync timeline fd');

  const f5 = await swFence(tlA, 'A', 5);
  await showFdFlags(sys, out, f5, 'sync_file A:5');
  await dumpFdinfo(sys, out, f5, 'sync_file A:5');
  await fileInfo(sys, out, f5, 'A:5 unsignaled');
  await doPoll(sys, out, f5, POLLIN, 0, 'A:5 unsignaled');
  await doPoll(sys, out, f5, POLLOUT, 0, 'A:5 unsignaled, only POLLOUT requested');
  await doPoll(sys, out, f5, POLLIN | POLLOUT, 0, 'A:5 unsignaled, POLLIN|POLLOUT');

  {
    const info = sys.allocStruct(syncFileInfo, { flags: 1 });
    const fi = sys.alloc(2 * 80);
    await DO('SYNC_IOC_FILE_INFO(flags=1)', sys.ioctl(f5, SYNC_IOC_FILE_INFO, info));
    sys.writeStruct(syncFileInfo, info, { pad: 1 });
    await DO('SYNC_IOC_FILE_INFO(pad=1)', sys.ioctl(f5, SYNC_IOC_FILE_INFO, info));
    sys.writeStruct(syncFileInfo, info, { num_fences: 1, sync_fence_info: 8 });
    await DO(
      'SYNC_IOC_FILE_INFO(num_fences=1, sync_fence_info=0x8 bad ptr)',
      sys.ioctl(f5, SYNC_IOC_FILE_INFO, info),
    );
    sys.writeStruct(syncFileInfo, info, { num_fences: 2, sync_fence_info: fi });
    const rc = await sys.ioctl(f5, SYNC_IOC_FILE_INFO, info);
    const v = sys.readStruct(syncFileInfo, info);
    out.res(
      'SYNC_IOC_FILE_INFO(num_fences=2 > actual 1)',
      rc,
      ` num_fences=${v.num_fences} status=${v.status}`,
    );
    await DO('SYNC_IOC_FILE_INFO(arg=0x8 bad ptr)', sys.ioctl(f5, SYNC_IOC_FILE_INFO, 8));
    await DO("ioctl(sync_file, _IO('>',99) unknown)", sys.ioctl(f5, _IO('>', 99)));
    await DO('ioctl(sync_file, DMA_BUF_IOCTL_SYNC)', sys.ioctl(f5, DMA_BUF_IOCTL_SYNC, info));
    await DO("ioctl(sw_sync timeline, _IO('W',99) unknown)", sys.ioctl(tlA, _IO('W', 99)));
    await DO('ioctl(sw_sync timeline, SYNC_IOC_FILE_INFO)', sys.ioctl(tlA, SYNC_IOC_FILE_INFO, info));
  }

  const f5b = await swFence(tlA, 'A', 5);
  await fileInfo(sys, out, f5b, 'A:5 second fd');
  let m = await merge(sys, out, f5, f5b, 'dup5', 'A:5 + A:5(second create)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge A:5+A:5b');
    await sys.close(m);
  }
  m = await merge(sys, out, f5, f5, 'self', 'A:5 + itself');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge A:5+A:5 self');
    await sys.close(m);
  }
  await dumpSyncinfo(sys, out, 'timeline A has pt 5 (x2 fds)');

  await swInc(tlA, 'A', 3);
  await fileInfo(sys, out, f5, 'A:5 after inc to 3');
  await doPoll(sys, out, f5, POLLIN, 0, 'A:5 timeline=3');
  let t0 = await nowNs(sys);
  await swInc(tlA, 'A', 2);
  let t1 = await nowNs(sys);
  await fileInfo(sys, out, f5, 'A:5 after inc to 5', t0, t1);
  await fileInfo(sys, out, f5b, 'A:5 second fd after inc to 5', t0, t1);
  await doPoll(sys, out, f5, POLLIN, 0, 'A:5 signaled');
  await doPoll(sys, out, f5, POLLOUT, 0, 'A:5 signaled, only POLLOUT requested');
  await doPoll(sys, out, f5, POLLIN | POLLOUT | POLLPRI, 0, 'A:5 signaled, IN|OUT|PRI');

  t0 = await nowNs(sys);
  const f3 = await swFence(tlA, 'A', 3);
  t1 = await nowNs(sys);
  await fileInfo(sys, out, f3, 'A:3 created when timeline=5', t0, t1);
  await doPoll(sys, out, f3, POLLIN, 0, 'A:3 created below value');
  const fx = await swFence(tlA, 'A', 5);
  await fileInfo(sys, out, fx, 'A:5 created when timeline=5');
  await sys.close(fx);

  const f10 = await swFence(tlA, 'A', 10);
  const f12 = await swFence(tlA, 'A', 12);
  const fB4 = await swFence(tlB, 'B', 4);
  m = await merge(sys, out, f10, f12, 'a10+a12', 'A:10 + A:12 (same timeline)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge A:10+A:12');
    await sys.close(m);
  }
  m = await merge(sys, out, f12, f10, 'a12+a10', 'A:12 + A:10 (same timeline, reversed)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge A:12+A:10');
    await sys.close(m);
  }
  m = await merge(sys, out, f10, fB4, 'a10+b4', 'A:10 + B:4 (different timelines)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge A:10+B:4');
    await dumpFdinfo(sys, out, m, 'merged sync_file');
    const m2 = await merge(sys, out, m, f12, 'm+a12', '(A:10+B:4) + A:12');
    if (m2 >= 0) await fileInfo(sys, out, m2, 'merge (A:10+B:4)+A:12');
    let m3 = await merge(sys, out, m, m, 'm+m', '(A:10+B:4) + itself');
    if (m3 >= 0) {
      await fileInfo(sys, out, m3, 'merge (A:10+B:4)+itself');
      await sys.close(m3);
    }
    {
      const fi = sys.alloc(80);
      const info = sys.allocStruct(syncFileInfo, { num_fences: 1, sync_fence_info: fi });
      await DO(
        'SYNC_IOC_FILE_INFO(merged 2 fences, num_fences=1 too small)',
        sys.ioctl(m, SYNC_IOC_FILE_INFO, info),
      );
    }
    await swInc(tlB, 'B', 4);
    await fileInfo(sys, out, m, 'merge A:10+B:4 after B signaled');
    await doPoll(sys, out, m, POLLIN, 0, 'merge A:10+B:4, B signaled');
    if (m2 >= 0) {
      m3 = await merge(sys, out, m2, fB4, 'm2+b4', '(A:10+B:4+A:12) + signaled B:4');
      if (m3 >= 0) {
        await fileInfo(sys, out, m3, 'merge with a signaled fence');
        await sys.close(m3);
      }
      await sys.close(m2);
    }
    await sys.close(m);
  }
  m = await merge(sys, out, f5, f3, 'sig+sig', 'A:5(signaled) + A:3(signaled)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge of two signaled fences');
    await sys.close(m);
  }
  m = await merge(sys, out, f5, fB4, 'sigA+sigB', 'A:5(signaled) + B:4(signaled)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge of two signaled fences, two timelines');
    await sys.close(m);
  }
  m = await merge(sys, out, f10, f5, 'unsig+sig', 'A:10(unsignaled) + A:5(signaled)');
  if (m >= 0) {
    await fileInfo(sys, out, m, 'merge unsignaled + signaled same timeline');
    await sys.close(m);
  }

  {
    const tlF = await swTimeline('timeline F (dedup check)');
    const p1 = await swFence(tlF, 'F', 1);
    const p2 = await swFence(tlF, 'F', 2);
    const mm = await merge(sys, out, p1, p2, 'f1+f2', 'F:1 + F:2');
    const mr = await merge(sys, out, p2, p1, 'f2+f1', 'F:2 + F:1');
    await swInc(tlF, 'F', 1);
    await fileInfo(sys, out, mm, 'merge F:1+F:2 after F reached 1 (0 => kept F:2)');
    await sys.close(mm);
    await fileInfo(sys, out, mr, 'merge F:2+F:1 after F reached 1 (0 => kept F:2)');
    await sys.close(mr);
    await sys.close(p1);
    await sys.close(p2);
    await sys.close(tlF);
  }

  {
    const devnull = await sys.open('/dev/null', O_RDONLY);
    const md = sys.allocStruct(syncMergeData, { fd2: f10, flags: 1 });
    await DO('SYNC_IOC_MERGE(flags=1)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    sys.writeStruct(syncMergeData, md, { fd2: f10, pad: 1 });
    await DO('SYNC_IOC_MERGE(pad=1)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    sys.writeStruct(syncMergeData, md, { fd2: -1 });
    await DO('SYNC_IOC_MERGE(fd2=-1)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    sys.writeStruct(syncMergeData, md, { fd2: devnull });
    await DO('SYNC_IOC_MERGE(fd2=/dev/null)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    sys.writeStruct(syncMergeData, md, { fd2: tlA });
    await DO('SYNC_IOC_MERGE(fd2=sw_sync timeline fd)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    sys.writeStruct(syncMergeData, md, { fd2: 9999 });
    await DO('SYNC_IOC_MERGE(fd2=9999 not open)', sys.ioctl(f12, SYNC_IOC_MERGE, md));
    await DO('SYNC_IOC_MERGE(arg=0x8 bad ptr)', sys.ioctl(f12, SYNC_IOC_MERGE, 8));
    sys.writeStruct(syncMergeData, md, { name: '0123456789abcdef0123456789ABCDEF', fd2: fB4 });
    const rc = await sys.ioctl(f10, SYNC_IOC_MERGE, md);
    const fence = sys.readStruct(syncMergeData, md).fence;
    out.res('SYNC_IOC_MERGE(name=32 chars no NUL)', rc, ` fence_fd=${fence}`);
    if (rc >= 0) {
      await fileInfo(sys, out, fence, 'merge with 32-char name');
      await sys.close(fence);
    }
    m = await merge(sys, out, f10, fB4, '', 'A:10 + B:4 empty name');
    if (m >= 0) {
      await fileInfo(sys, out, m, 'merge with empty name');
      await sys.close(m);
    }
    await sys.close(devnull);
  }

  {
    const gd = sys.allocStruct(swSyncGetDeadline, { fence_fd: f12 });
    await DO('SW_SYNC_GET_DEADLINE(A:12, none set)', sys.ioctl(tlA, SW_SYNC_GET_DEADLINE, gd));
    const sd = sys.allocStruct(syncSetDeadline, { deadline_ns: (await nowNs(sys)) + 1_000_000_000n });
    await DO('SYNC_IOC_SET_DEADLINE(A:12, now+1s)', sys.ioctl(f12, SYNC_IOC_SET_DEADLINE, sd));
    sys.writeStruct(syncSetDeadline, sd, { pad: 1 });
    await DO('SYNC_IOC_SET_DEADLINE(pad=1)', sys.ioctl(f12, SYNC_IOC_SET_DEADLINE, sd));
    sys.writeStruct(swSyncGetDeadline, gd, { fence_fd: f12 });
    const rc = await sys.ioctl(tlA, SW_SYNC_GET_DEADLINE, gd);
    out.res(
      'SW_SYNC_GET_DEADLINE(A:12, after set)',
      rc,
      ` deadline_nonzero=${sys.readStruct(swSyncGetDeadline, gd).deadline_ns !== 0n ? 1 : 0}`,
    );
    sys.writeStruct(swSyncGetDeadline, gd, { fence_fd: f12, deadline_ns: 1 });
    await DO('SW_SYNC_GET_DEADLINE(deadline_ns input nonzero)', sys.ioctl(tlA, SW_SYNC_GET_DEADLINE, gd));
    sys.writeStruct(swSyncGetDeadline, gd, { fence_fd: fB4 });
    await DO(
      'SW_SYNC_GET_DEADLINE(fence of timeline B via timeline A fd, B:4 signaled)',
      sys.ioctl(tlA, SW_SYNC_GET_DEADLINE, gd),
    );
    sys.writeStruct(swSyncGetDeadline, gd, { fence_fd: tlB });
    await DO('SW_SYNC_GET_DEADLINE(fence_fd=timeline fd)', sys.ioctl(tlA, SW_SYNC_GET_DEADLINE, gd));
  }

  await dumpSyncinfo(sys, out, 'A value 5 with pts 10,12; B value 4');

  t0 = await nowNs(sys);
  await swInc(tlA, 'A', 100);
  t1 = await nowNs(sys);
  await fileInfo(sys, out, f10, 'A:10 after inc +100', t0, t1);
  await fileInfo(sys, out, f12, 'A:12 after inc +100', t0, t1);
  await swInc(tlA, 'A', 0);
  await dumpSyncinfo(sys, out, 'A value 105');

  const tlC = await swTimeline('timeline C (wrap tests)');
  {
    const w1 = await swFence(tlC, 'C', 0);
    const w2 = await swFence(tlC, 'C', 0x7fffffff);
    const w3 = await swFence(tlC, 'C', 0x80000000);
    const w4 = await swFence(tlC, 'C', 0xffffffff);
    await fileInfo(sys, out, w1, 'C:0 on fresh timeline (value 0)');
    await fileInfo(sys, out, w2, 'C:0x7fffffff on fresh timeline');
    await fileInfo(sys, out, w3, 'C:0x80000000 on fresh timeline');
    await fileInfo(sys, out, w4, 'C:0xffffffff on fresh timeline');
    await swInc(tlC, 'C', 0xfffffff0);
    await fileInfo(sys, out, w2, 'C:0x7fffffff after inc 0xfffffff0');
    await fileInfo(sys, out, w4, 'C:0xffffffff after inc 0xfffffff0');
    await dumpSyncinfo(sys, out, 'timeline C after large inc');
    await swInc(tlC, 'C', 0x20);
    await dumpSyncinfo(sys, out, 'timeline C after wrap');
    for (const w of [w1, w2, w3, w4]) await sys.close(w);
  }

  {
    const fw = await swFence(tlB, 'B', 20);
    // The probe forks a child that sleeps 200 ms and increments B by 16.
    const child = sys.spawnThread(async (cs) => {
      const req = cs.allocStruct(timespec, { tv_sec: 0, tv_nsec: 200_000_000 });
      await cs.nanosleep(req, 0);
      const v = cs.alloc(4);
      cs.writeU32(v, 16);
      await cs.ioctl(tlB, SW_SYNC_IOC_INC, v);
      return 0;
    });
    const s = await nowNs(sys);
    const p = sys.allocStruct(pollfd, { fd: fw, events: POLLIN });
    const rc = await sys.poll(p, 1, 5000);
    const revents = sys.readStruct(pollfd, p).revents;
    out.res(
      'poll(B:20, POLLIN, timeout=5000) while child incs B by 16 after 200ms',
      rc,
      ` revents=${revents & POLLIN ? 'POLLIN' : revents} waited_at_least_150ms=${(await nowNs(sys)) - s >= 150_000_000n ? 1 : 0}`,
    );
    await sys.joinThread(child);
    await sys.close(fw);
  }

  {
    const fw = await swFence(tlB, 'B', 1000);
    await doPoll(sys, out, fw, POLLIN, 50, 'B:1000 unsignaled');
    await sys.close(tlB);
    out.note('closed timeline B fd while B:1000 pending');
    await fileInfo(sys, out, fw, 'B:1000 after its timeline fd was closed');
    await doPoll(sys, out, fw, POLLIN, 0, 'B:1000 after timeline closed');
    await dumpSyncinfo(sys, out, 'after closing timeline B');
    await sys.close(fw);
  }

  for (const f of [f5, f5b, f3, f10, f12, fB4, tlC, tlA]) await sys.close(f);
  await dumpSyncinfo(sys, out, 'all sync objects closed');
}

function normalise(lines: string[]): string[] {
  return lines.map((l) => l.replace(/fence error@\d+\.\d+:/, 'fence error@<ts>:'));
}

describe('oracle: sw_sync / sync_file section of dmabuf_probe', () => {
  test('every line matches the 6.12 kernel', async () => {
    const m = await Machine.create({ seed: 1 });
    // The in-kernel dma-buf selftests of the oracle's boot allocated contexts 1..32.
    m.kernel.fenceContextCounter += 32;
    const out = new ProbeOut();
    const p = m.spawn('dmabuf_probe', async (sys) => {
      await probeSync(sys, out);
      return 0;
    });
    const run = await m.run();
    expect(p.error).toBeUndefined();
    expect(run.status).toBe('completed');
    expect(p.exitCode).toBe(0);
    const want = normalise(oracleSection('sw_sync / sync_file'));
    const got = normalise(out.lines);
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      expect(got[i], `line ${i + 1}`).toBe(want[i]);
    }
    expect(m.reports).toEqual([]);
  });

  test('the error signal time shows in sync/info as sec.nsec of CLOCK_MONOTONIC', async () => {
    const m = await Machine.create({ seed: 1, bootTime: 23_324_882_248 });
    let text = '';
    m.spawn('dmabuf_probe', async (sys) => {
      const tl = await sys.open(SW_SYNC_PATH, O_RDWR);
      const d = sys.allocStruct(swSyncCreateFenceData, { value: 1000 });
      await sys.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d);
      const v = sys.alloc(4);
      sys.writeU32(v, 20);
      await sys.ioctl(tl, SW_SYNC_IOC_INC, v);
      await sys.close(tl);
      const out = new ProbeOut();
      await dumpSyncinfo(sys, out, 'x');
      text = out.lines.join('\n');
      return 0;
    });
    await m.run();
    expect(text).toContain('dmabuf_probe: 20\n  fence error@23.324882248: 1000 / 20\n');
  });
});
