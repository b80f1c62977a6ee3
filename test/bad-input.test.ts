/**
 * Bad input: random sequences of syscalls with random arguments — random fds, flags,
 * ioctl numbers (the real ones and garbage), pointers (NULL, small, unmapped,
 * read-only, straddling a hole), lengths and garbage structs — on every file type of
 * this layer (sw_sync timelines, sync_files, memfds, sockets, /dev/null, /dev/zero,
 * /proc fdinfo, sync/info, DMA-BUF heaps and the dma-bufs they allocate, udmabuf,
 * dma_buf/bufinfo, the vgem DRM nodes with their GEM, PRIME, syncobj and vgem-fence
 * ioctls). The syncobj ioctls taking a handle array (WAIT, RESET, SIGNAL, QUERY, ...) are
 * left to the random requests: with a garbage count they make the kernel's kmalloc WARN,
 * as Linux does. The property drives at least 20,000 calls per test run. The properties:
 * - no exception escapes a syscall, and every result is >= 0 or a valid -errno;
 * - after the process has exited nothing is left alive (no leak report, no live file)
 *   and the kernel reported nothing (no WARN, BUG, lockdep or leak).
 *
 * Calls that could block forever (a blocking read on an empty socket after the program
 * cleared O_NONBLOCK) are cut short by a watchdog thread that ends the process after a
 * minute of virtual time, which also exercises exit while threads are blocked.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_HEAP_IOCTL_ALLOC,
  dmaHeapAllocationData,
  F_ADD_SEALS,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GET_SEALS,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FIGETBSZ,
  FIOASYNC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIONREAD,
  FIOQSIZE,
  liveFiles,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  Machine,
  MSG_DONTWAIT,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SegmentationFault,
  SOCK_NONBLOCK,
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
  UDMABUF_CREATE,
  UDMABUF_CREATE_LIST,
} from '../src/index.ts';
import { isErrno } from '../src/kernel/errno.ts';
import {
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_MODE_CREATE_DUMB,
  DRM_IOCTL_MODE_MAP_DUMB,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_SYNCOBJ_DESTROY,
  DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_TRANSFER,
  DRM_IOCTL_VERSION,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  drmModeCreateDumb,
  drmPrimeHandle,
  drmSyncobjCreate,
} from '../src/uapi/drm.ts';

const PATHS = [
  '/sys/kernel/debug/sync/sw_sync',
  '/sys/kernel/debug/sync/sw_sync',
  '/sys/kernel/debug/sync/info',
  '/sys/kernel/debug/dma_buf/bufinfo',
  '/dev/dma_heap/system',
  '/dev/dma_heap/reserved',
  '/dev/udmabuf',
  '/dev/dri/card0',
  '/dev/dri/renderD128',
  '/dev/null',
  '/dev/zero',
  '/dev',
  '/proc/self/fdinfo/3',
  '/proc/self/fdinfo/5',
  '/proc/self/maps',
  '/tmp/f',
  '/dev/shm/g',
  '/nope',
  '',
];

const REQUESTS = [
  DRM_IOCTL_VERSION,
  DRM_IOCTL_GET_CAP,
  DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_MODE_CREATE_DUMB,
  DRM_IOCTL_MODE_MAP_DUMB,
  DRM_IOCTL_SYNCOBJ_CREATE,
  DRM_IOCTL_SYNCOBJ_DESTROY,
  DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
  DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
  DRM_IOCTL_SYNCOBJ_TRANSFER,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_HEAP_IOCTL_ALLOC,
  UDMABUF_CREATE,
  UDMABUF_CREATE_LIST,
  SYNC_IOC_MERGE,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_SET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SW_SYNC_GET_DEADLINE,
  FIOCLEX,
  FIONCLEX,
  FIONBIO,
  FIOASYNC,
  FIOQSIZE,
  FIONREAD,
  FIGETBSZ,
];

const FCNTLS = [
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_SETFD,
  F_GETFL,
  F_SETFL,
  F_ADD_SEALS,
  F_GET_SEALS,
  1027,
  1028,
];

/** A value picked from interesting integers or anything. */
const anyInt = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 16, 31, 32, 255, 4096, 0x7fffffff, 0x80000000, 0xffffffff, -1, -4096),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
);
const fdArb = fc.oneof(
  { arbitrary: fc.integer({ min: 3, max: 9 }), weight: 6 },
  { arbitrary: fc.integer({ min: -2, max: 14 }), weight: 2 },
  { arbitrary: anyInt, weight: 1 },
);
/** Pointer choices, resolved against the scratch areas at run time. */
const ptrArb = fc.oneof(
  fc.record({ kind: fc.constant('scratch' as const), off: fc.integer({ min: 0, max: 2 * PAGE_SIZE - 1 }) }),
  fc.record({
    kind: fc.constant('scratch' as const),
    off: fc.constantFrom(0, 8, 64, 2 * PAGE_SIZE - 4, 2 * PAGE_SIZE - 40),
  }),
  fc.record({ kind: fc.constant('ro' as const), off: fc.integer({ min: 0, max: PAGE_SIZE - 1 }) }),
  fc.record({ kind: fc.constant('raw' as const), off: fc.constantFrom(0, 8, 4095, 2 ** 47, 2 ** 52, -1) }),
);
const lenArb = fc.oneof(
  fc.constantFrom(0, 1, 4, 8, 16, 40, 48, 56, 80, 4096, 8192, 1 << 20, 2 ** 31, 2 ** 40, -1),
  fc.integer({ min: 0, max: 3 * PAGE_SIZE }),
);

type Ptr = { kind: 'scratch' | 'ro' | 'raw'; off: number };

const cmdArb = fc.oneof(
  fc.record({
    op: fc.constant('open' as const),
    path: fc.constantFrom(...PATHS),
    flags: anyInt,
    mode: anyInt,
  }),
  fc.record({ op: fc.constant('openrw' as const), path: fc.constantFrom(...PATHS) }),
  fc.record({ op: fc.constant('close' as const), fd: fdArb }),
  fc.record({ op: fc.constant('dup' as const), fd: fdArb }),
  fc.record({ op: fc.constant('dup2' as const), fd: fdArb, fd2: fdArb }),
  fc.record({ op: fc.constant('dup3' as const), fd: fdArb, fd2: fdArb, flags: anyInt }),
  fc.record({
    op: fc.constant('fcntl' as const),
    fd: fdArb,
    cmd: fc.oneof(fc.constantFrom(...FCNTLS), anyInt),
    arg: anyInt,
  }),
  fc.record({
    op: fc.constant('ioctl' as const),
    fd: fdArb,
    req: fc.oneof({ arbitrary: fc.constantFrom(...REQUESTS), weight: 4 }, { arbitrary: anyInt, weight: 1 }),
    ptr: ptrArb,
  }),
  fc.record({
    op: fc.constant('syncstruct' as const),
    kind: fc.constantFrom('merge', 'info', 'deadline', 'create', 'getdl', 'inc'),
    a: fc.oneof(fc.integer({ min: -1, max: 10 }), anyInt),
    b: fc.oneof(fc.integer({ min: 0, max: 3 }), anyInt),
    name: fc.string({ maxLength: 40 }),
    fd: fdArb,
    off: fc.constantFrom(0, 512, 2 * PAGE_SIZE - 48, 2 * PAGE_SIZE - 20),
  }),
  fc.record({ op: fc.constant('read' as const), fd: fdArb, ptr: ptrArb, len: lenArb }),
  fc.record({ op: fc.constant('write' as const), fd: fdArb, ptr: ptrArb, len: lenArb }),
  fc.record({
    op: fc.constant('lseek' as const),
    fd: fdArb,
    off: anyInt,
    whence: fc.integer({ min: -1, max: 6 }),
  }),
  fc.record({
    op: fc.constant('mmap' as const),
    fixed: fc.boolean(),
    len: lenArb,
    prot: fc.integer({ min: 0, max: 7 }),
    flags: fc.oneof(
      fc.constantFrom(MAP_SHARED, MAP_PRIVATE, MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS),
      anyInt,
    ),
    fd: fdArb,
    off: fc.oneof(fc.constantFrom(0, PAGE_SIZE, 1), anyInt),
  }),
  fc.record({ op: fc.constant('munmap' as const), ptr: ptrArb, len: lenArb }),
  fc.record({ op: fc.constant('mprotect' as const), ptr: ptrArb, len: lenArb, prot: anyInt }),
  fc.record({
    op: fc.constant('poll' as const),
    ptr: ptrArb,
    n: fc.integer({ min: 0, max: 4 }),
    timeout: fc.integer({ min: -1, max: 20 }),
  }),
  fc.record({
    op: fc.constant('memfd' as const),
    ptr: ptrArb,
    flags: fc.oneof(fc.integer({ min: 0, max: 31 }), anyInt),
  }),
  fc.record({ op: fc.constant('ftruncate' as const), fd: fdArb, len: lenArb }),
  fc.record({
    op: fc.constant('socketpair' as const),
    domain: fc.integer({ min: -1, max: 20 }),
    type: fc.integer({ min: 0, max: 12 }),
    proto: fc.integer({ min: -1, max: 2 }),
    ptr: ptrArb,
  }),
  fc.record({ op: fc.constant('sendmsg' as const), fd: fdArb, ptr: ptrArb, flags: anyInt }),
  fc.record({ op: fc.constant('recvmsg' as const), fd: fdArb, ptr: ptrArb, flags: anyInt }),
  fc.record({ op: fc.constant('clock' as const), id: fc.integer({ min: -3, max: 12 }), ptr: ptrArb }),
  fc.record({ op: fc.constant('sleep' as const), ptr: ptrArb }),
  fc.record({
    op: fc.constant('garbage' as const),
    off: fc.integer({ min: 0, max: 2 * PAGE_SIZE - 64 }),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  }),
  fc.record({
    op: fc.constant('putfd' as const),
    off: fc.integer({ min: 0, max: 2 * PAGE_SIZE - 8 }),
    fd: fc.integer({ min: -1, max: 10 }),
  }),
  fc.record({
    op: fc.constant('msghdr' as const),
    iovlen: fc.integer({ min: 0, max: 3 }),
    ctl: fc.integer({ min: 0, max: 64 }),
    fds: fc.array(fc.integer({ min: -1, max: 10 }), { maxLength: 4 }),
  }),
);

type Cmd = typeof cmdArb extends fc.Arbitrary<infer T> ? T : never;

interface Areas {
  scratch: number;
  ro: number;
}

function ptr(a: Areas, p: Ptr): number {
  if (p.kind === 'scratch') return a.scratch + p.off;
  if (p.kind === 'ro') return a.ro + p.off;
  return p.off;
}

/** Runs `fn`, a userspace store the fuzzed program makes; a fault just skips it. */
function store(fn: () => void): number {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SegmentationFault)) throw e;
  }
  return 0;
}

async function exec(sys: Sys, a: Areas, c: Cmd): Promise<number> {
  switch (c.op) {
    case 'open':
      return sys.open(c.path, c.flags, c.mode);
    case 'openrw':
      return sys.open(c.path, 2);
    case 'close':
      return sys.close(c.fd);
    case 'dup':
      return sys.dup(c.fd);
    case 'dup2':
      return sys.dup2(c.fd, c.fd2);
    case 'dup3':
      return sys.dup3(c.fd, c.fd2, c.flags);
    case 'fcntl':
      return sys.fcntl(c.fd, c.cmd, c.arg);
    case 'ioctl':
      return sys.ioctl(c.fd, c.req, ptr(a, c.ptr));
    case 'read':
      return sys.read(c.fd, ptr(a, c.ptr), c.len);
    case 'write':
      return sys.write(c.fd, ptr(a, c.ptr), c.len);
    case 'lseek':
      return sys.lseek(c.fd, c.off, c.whence);
    case 'mmap':
      return sys.mmap(
        c.fixed ? a.scratch + 3 * PAGE_SIZE : 0,
        c.len,
        c.prot,
        c.flags | (c.fixed ? MAP_FIXED : 0),
        c.fd,
        c.off,
      );
    case 'munmap':
      return sys.munmap(ptr(a, c.ptr), c.len);
    case 'mprotect':
      return sys.mprotect(ptr(a, c.ptr), c.len, c.prot);
    case 'poll':
      return sys.poll(ptr(a, c.ptr), c.n, c.timeout);
    case 'memfd':
      return sys.memfd_create(ptr(a, c.ptr), c.flags);
    case 'ftruncate':
      return sys.ftruncate(c.fd, c.len);
    case 'socketpair':
      return sys.socketpair(c.domain, c.type | SOCK_NONBLOCK, c.proto, ptr(a, c.ptr));
    case 'sendmsg':
      return sys.sendmsg(c.fd, ptr(a, c.ptr), c.flags | MSG_DONTWAIT);
    case 'recvmsg':
      return sys.recvmsg(c.fd, ptr(a, c.ptr), c.flags | MSG_DONTWAIT);
    case 'clock':
      return sys.clock_gettime(c.id, ptr(a, c.ptr));
    case 'sleep': {
      // Keep sleeps short: write a small timespec first when the pointer is writable.
      const at = ptr(a, c.ptr);
      if (c.ptr.kind === 'scratch' && c.ptr.off + 16 <= 2 * PAGE_SIZE) {
        store(() => sys.writeStruct(timespec, at, { tv_sec: 0, tv_nsec: (c.ptr.off * 997) % 1_000_000_000 }));
      }
      return sys.nanosleep(at, 0);
    }
    case 'garbage':
      return store(() => sys.poke(a.scratch + c.off, c.bytes));
    case 'putfd':
      return store(() => sys.writeU32(a.scratch + c.off, c.fd));
    case 'msghdr':
      return store(() => writeMsghdr(sys, a, c.iovlen, c.ctl, c.fds));
    case 'syncstruct': {
      // A plausible struct for one of the sync ioctls, then the ioctl on a random fd.
      const at = a.scratch + c.off;
      const arr = a.scratch + 1024;
      let req = 0;
      store(() => {
        switch (c.kind) {
          case 'merge':
            sys.writeStruct(syncMergeData, at, { name: c.name, fd2: c.a, flags: c.b & 1 ? c.b : 0 });
            req = SYNC_IOC_MERGE;
            break;
          case 'info':
            sys.writeStruct(syncFileInfo, at, { num_fences: c.b, sync_fence_info: c.a & 1 ? arr : c.a });
            req = SYNC_IOC_FILE_INFO;
            break;
          case 'deadline':
            sys.writeStruct(syncSetDeadline, at, { deadline_ns: c.a, pad: c.b > 1 ? c.b : 0 });
            req = SYNC_IOC_SET_DEADLINE;
            break;
          case 'create':
            sys.writeStruct(swSyncCreateFenceData, at, { value: c.a, name: c.name });
            req = SW_SYNC_IOC_CREATE_FENCE;
            break;
          case 'getdl':
            sys.writeStruct(swSyncGetDeadline, at, { fence_fd: c.a, pad: c.b > 1 ? c.b : 0 });
            req = SW_SYNC_GET_DEADLINE;
            break;
          case 'inc':
            sys.writeU32(at, c.b);
            req = SW_SYNC_IOC_INC;
            break;
        }
      });
      return req ? sys.ioctl(c.fd, req, at) : 0;
    }
  }
}

/** A plausible msghdr at scratch+0 with iovecs at +64 and an SCM_RIGHTS control message at +256. */
function writeMsghdr(sys: Sys, a: Areas, iovlen: number, ctlLen: number, fds: number[]): void {
  {
    const c = { iovlen, ctl: ctlLen, fds };
    // A plausible msghdr at scratch+0 with iovecs at +64 and control at +256.
    const iov = a.scratch + 64;
    const ctl = a.scratch + 256;
    const v = new DataView(new ArrayBuffer(56));
    v.setBigUint64(16, BigInt(iov), true);
    v.setBigUint64(24, BigInt(c.iovlen), true);
    v.setBigUint64(32, c.ctl ? BigInt(ctl) : 0n, true);
    v.setBigUint64(40, BigInt(c.ctl), true);
    sys.poke(a.scratch, new Uint8Array(v.buffer));
    for (let i = 0; i < c.iovlen; i++) {
      const e = new DataView(new ArrayBuffer(16));
      e.setBigUint64(0, BigInt(a.scratch + 1024), true);
      e.setBigUint64(8, 16n, true);
      sys.poke(iov + 16 * i, new Uint8Array(e.buffer));
    }
    const h = new DataView(new ArrayBuffer(16 + 4 * c.fds.length));
    h.setBigUint64(0, BigInt(16 + 4 * c.fds.length), true);
    h.setInt32(8, 1, true);
    h.setInt32(12, 1, true);
    c.fds.forEach((fd, i) => {
      h.setInt32(16 + 4 * i, fd, true);
    });
    sys.poke(ctl, new Uint8Array(h.buffer));
  }
}

/** Syscalls driven by the property, over all its runs. */
let callsMade = 0;

async function runSequence(cmds: Cmd[], seed: number): Promise<void> {
  const m = await Machine.create({ seed });
  const results: { cmd: Cmd; r: unknown }[] = [];
  const p = m.spawn('fuzz', async (sys) => {
    sys.spawnThread(async (ts) => {
      await ts.nanosleep(ts.allocStruct(timespec, { tv_sec: 60 }));
      ts.exit(0);
    });
    const base = await sys.mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    await sys.munmap(base + 2 * PAGE_SIZE, PAGE_SIZE); // a hole right after the scratch area
    const ro = await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // Start with some objects to play with: a timeline (3), a fence (4), a memfd (5), a socket pair (6, 7).
    await sys.open('/sys/kernel/debug/sync/sw_sync', 2);
    const d = sys.alloc(40);
    sys.writeU32(d, 7);
    await sys.ioctl(3, SW_SYNC_IOC_CREATE_FENCE, d);
    await sys.memfd_create(sys.allocCString('fuzz'), 2);
    await sys.socketpair(1, 1 | SOCK_NONBLOCK, 0, sys.alloc(8));
    // ...a system heap (8) and a 2-page dma-buf allocated from it (9).
    const heap = await sys.open('/dev/dma_heap/system', 2);
    await sys.ioctl(
      heap,
      DMA_HEAP_IOCTL_ALLOC,
      sys.allocStruct(dmaHeapAllocationData, { len: 2 * PAGE_SIZE, fd_flags: 2 }),
    );
    // ...vgem's primary node (10) with dumb buffer 1, syncobj 1 and a read-write export of
    // the buffer (11).
    const drm = await sys.open('/dev/dri/card0', 2);
    await sys.ioctl(
      drm,
      DRM_IOCTL_MODE_CREATE_DUMB,
      sys.allocStruct(drmModeCreateDumb, { width: 64, height: 64, bpp: 32 }),
    );
    await sys.ioctl(drm, DRM_IOCTL_SYNCOBJ_CREATE, sys.allocStruct(drmSyncobjCreate, {}));
    await sys.ioctl(
      drm,
      DRM_IOCTL_PRIME_HANDLE_TO_FD,
      sys.allocStruct(drmPrimeHandle, { handle: 1, flags: 2 }),
    );
    const areas = { scratch: base, ro };
    for (const c of cmds) {
      callsMade++;
      const r = await exec(sys, areas, c);
      results.push({ cmd: c, r });
    }
    return 0;
  });
  const run = await m.run();
  if (p.error) throw p.error;
  for (const { cmd, r } of results) {
    expect(typeof r, JSON.stringify(cmd)).toBe('number');
    const n = r as number;
    expect(Number.isInteger(n), JSON.stringify(cmd)).toBe(true);
    if (n < 0) expect(isErrno(n), `${JSON.stringify(cmd)} -> ${n}`).toBe(true);
  }
  expect(run.status).toBe('completed');
  expect(p.exitCode).toBe(0);
  expect(m.reports).toEqual([]);
  expect(liveFiles(m.kernel).size).toBe(0);
}

describe('bad input', () => {
  test('random syscalls with random arguments never throw, return -errno, and leak nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(cmdArb, { minLength: 20, maxLength: 80, size: 'max' }),
        fc.integer({ min: 1, max: 1000 }),
        runSequence,
      ),
      { numRuns: 500, seed: 20250101 },
    );
    expect(callsMade).toBeGreaterThanOrEqual(20_000);
  });
});
