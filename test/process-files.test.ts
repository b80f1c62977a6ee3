/**
 * Processes, threads, files and memory through the raw syscall ABI: fd tables and
 * close-on-exec, dup/dup2/dup3/fcntl, open/read/write/lseek, mmap/munmap/mprotect and
 * -EFAULT, memfd and its seals, socketpair with SCM_RIGHTS between two processes, poll
 * and nanosleep in virtual time, clock_gettime, /proc/self/fdinfo, and what exit
 * releases. Expected values are Linux 6.12's (fs/, mm/, net/unix/ of the 6.12 tree).
 */
import { describe, expect, test } from 'vitest';
import {
  AF_INET,
  AF_UNIX,
  CLOCK_MONOTONIC,
  CLOCK_MONOTONIC_COARSE,
  CLOCK_REALTIME,
  CMSG_LEN,
  CMSG_SPACE,
  cmsghdr,
  errno,
  F_ADD_SEALS,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GET_SEALS,
  F_GETFD,
  F_GETFL,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  FIOCLEX,
  FIONCLEX,
  iovec,
  liveFiles,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  Machine,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_HUGETLB,
  MSG_CMSG_CLOEXEC,
  MSG_CTRUNC,
  MSG_DONTWAIT,
  msghdr,
  O_CLOEXEC,
  O_CREAT,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  pollfd,
  SCM_RIGHTS,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  SegmentationFault,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  type Sys,
  stat,
  swSyncCreateFenceData,
  syncFenceInfo,
  syncFileInfo,
  timespec,
} from '../src/index.ts';
import { readWhole } from './helpers/probe.ts';

const E = errno;
const SW_SYNC = '/sys/kernel/debug/sync/sw_sync';

/** Runs one program on a fresh machine; rethrows what the program threw. */
async function run(main: (sys: Sys, m: Machine) => Promise<number | undefined | void>, name = 'app') {
  const m = await Machine.create({ seed: 7 });
  const p = m.spawn(name, (sys) => main(sys, m));
  const r = await m.run();
  if (p.error) throw p.error;
  return { m, p, r };
}

function text(sys: Sys, addr: number, n: number): string {
  return String.fromCharCode(...sys.peek(addr, n));
}

async function writeStr(sys: Sys, fd: number, s: string): Promise<number> {
  const a = sys.allocCString(s);
  return sys.write(fd, a, s.length);
}

async function newFence(sys: Sys, tl: number, value: number): Promise<number> {
  const d = sys.allocStruct(swSyncCreateFenceData, { value });
  expect(await sys.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d)).toBe(0);
  return sys.readStruct(swSyncCreateFenceData, d).fence;
}

async function fenceStatus(sys: Sys, fd: number): Promise<number> {
  const fi = sys.alloc(syncFenceInfo.size);
  const info = sys.allocStruct(syncFileInfo, { num_fences: 1, sync_fence_info: fi });
  expect(await sys.ioctl(fd, SYNC_IOC_FILE_INFO, info)).toBe(0);
  return sys.readStruct(syncFenceInfo, fi).status;
}

/** sendmsg with one data byte and `fds` as SCM_RIGHTS. */
async function sendFds(sys: Sys, sock: number, fds: number[], byte = 0x41): Promise<number> {
  const data = sys.alloc(1);
  sys.poke(data, Uint8Array.of(byte));
  const iov = sys.allocStruct(iovec, { iov_base: data, iov_len: 1 });
  const ctlLen = CMSG_SPACE(4 * fds.length);
  const ctl = sys.alloc(ctlLen, 8);
  sys.writeStruct(cmsghdr, ctl, {
    cmsg_len: CMSG_LEN(4 * fds.length),
    cmsg_level: SOL_SOCKET,
    cmsg_type: SCM_RIGHTS,
  });
  for (const [i, fd] of fds.entries()) sys.writeU32(ctl + cmsghdr.size + 4 * i, fd);
  const msg = sys.allocStruct(msghdr, {
    msg_iov: iov,
    msg_iovlen: 1,
    msg_control: fds.length ? ctl : 0,
    msg_controllen: fds.length ? ctlLen : 0,
  });
  return sys.sendmsg(sock, msg, 0);
}

/** recvmsg into room for `room` fds; returns the result, the fds and the msg_flags. */
async function recvFds(sys: Sys, sock: number, room: number, flags = 0) {
  const data = sys.alloc(16);
  const iov = sys.allocStruct(iovec, { iov_base: data, iov_len: 16 });
  const ctlLen = room ? CMSG_SPACE(4 * room) : 0;
  const ctl = room ? sys.alloc(ctlLen, 8) : 0;
  const msg = sys.allocStruct(msghdr, {
    msg_iov: iov,
    msg_iovlen: 1,
    msg_control: ctl,
    msg_controllen: ctlLen,
  });
  const rc = await sys.recvmsg(sock, msg, flags);
  const m = sys.readStruct(msghdr, msg);
  const fds: number[] = [];
  if (rc >= 0 && m.msg_controllen >= BigInt(cmsghdr.size)) {
    const h = sys.readStruct(cmsghdr, ctl);
    const n = (Number(h.cmsg_len) - cmsghdr.size) / 4;
    for (let i = 0; i < n; i++) fds.push(sys.readS32(ctl + cmsghdr.size + 4 * i));
  }
  return { rc, fds, flags: m.msg_flags, controllen: Number(m.msg_controllen) };
}

describe('file descriptors', () => {
  test('a process starts with 0, 1, 2 open; opens take the lowest free fd; close twice is -EBADF', async () => {
    const { p } = await run(async (sys) => {
      expect(await sys.open('/dev/null', O_RDWR)).toBe(3);
      expect(await sys.open('/dev/null', O_RDONLY)).toBe(4);
      expect(await sys.close(3)).toBe(0);
      expect(await sys.close(3)).toBe(-E.EBADF);
      expect(await sys.open('/dev/zero', O_RDONLY)).toBe(3);
      expect(await sys.close(-1)).toBe(-E.EBADF);
      expect(await sys.close(1 << 30)).toBe(-E.EBADF);
      expect(await writeStr(sys, 1, 'hello\n')).toBe(6);
      expect(await writeStr(sys, 2, 'oops\n')).toBe(5);
      return 0;
    });
    expect(p.stdout).toBe('hello\n');
    expect(p.stderr).toBe('oops\n');
  });

  test('open errors: missing path, empty path, file used as a directory, directory for writing', async () => {
    await run(async (sys) => {
      expect(await sys.open('/dev/nonexistent', O_RDONLY)).toBe(-E.ENOENT);
      expect(await sys.open('', O_RDONLY)).toBe(-E.ENOENT);
      expect(await sys.open('/dev/null/x', O_RDONLY)).toBe(-E.ENOTDIR);
      expect(await sys.open('/dev', O_RDWR)).toBe(-E.EISDIR);
      const d = await sys.open('/dev', O_RDONLY);
      expect(d).toBe(3);
      expect(await sys.read(d, sys.alloc(8), 8)).toBe(-E.EISDIR);
      expect(await sys.open(`/${'a'.repeat(256)}`, O_RDONLY)).toBe(-E.ENAMETOOLONG);
      expect(await sys.open('/dev/null', O_CREAT | 0o100000000)).toBeGreaterThan(0); // unknown flags are ignored
      return 0;
    });
  });

  test('dup, dup2, dup3 and F_DUPFD share one open file; close-on-exec is per fd', async () => {
    await run(async (sys) => {
      const m = await sys.memfd_create(sys.allocCString('dup'), 0);
      expect(m).toBe(3);
      const d = await sys.dup(m);
      expect(d).toBe(4);
      expect(await writeStr(sys, m, 'abcdef')).toBe(6);
      expect(await sys.lseek(d, 0, SEEK_CUR)).toBe(6); // shared file position
      expect(await sys.dup2(m, 10)).toBe(10);
      expect(await sys.dup2(m, m)).toBe(m);
      expect(await sys.dup2(77, 77)).toBe(-E.EBADF);
      expect(await sys.dup2(77, 11)).toBe(-E.EBADF);
      expect(await sys.dup2(m, -1)).toBe(-E.EBADF);
      expect(await sys.dup3(m, m, 0)).toBe(-E.EINVAL);
      expect(await sys.dup3(m, 12, 1)).toBe(-E.EINVAL);
      expect(await sys.dup3(m, 12, O_CLOEXEC)).toBe(12);
      expect(await sys.fcntl(12, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await sys.fcntl(10, F_GETFD)).toBe(0);
      expect(await sys.fcntl(m, F_DUPFD, 20)).toBe(20);
      expect(await sys.fcntl(m, F_DUPFD_CLOEXEC, 20)).toBe(21);
      expect(await sys.fcntl(21, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await sys.fcntl(m, F_DUPFD, 1024)).toBe(-E.EINVAL);
      expect(await sys.fcntl(m, F_SETFD, FD_CLOEXEC)).toBe(0);
      expect(await sys.fcntl(m, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await sys.ioctl(m, FIONCLEX)).toBe(0);
      expect(await sys.fcntl(m, F_GETFD)).toBe(0);
      expect(await sys.ioctl(m, FIOCLEX)).toBe(0);
      expect(await sys.fcntl(m, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await sys.fcntl(m, 9999)).toBe(-E.EINVAL);
      expect(await sys.fcntl(55, F_GETFD)).toBe(-E.EBADF);
      expect(sys.fileOf(m)!.count).toBe(6);
      // dup2 over an open fd closes what was there.
      const n = await sys.open('/dev/null', O_RDONLY);
      const nullFile = sys.fileOf(n)!;
      expect(await sys.dup2(m, n)).toBe(n);
      await sys.sched_yield();
      expect(nullFile.released).toBe(true);
      return 0;
    });
  });

  test('F_GETFL/F_SETFL: open() adds O_LARGEFILE, only the SETFL flags change', async () => {
    await run(async (sys) => {
      const fd = await sys.open('/dev/null', O_WRONLY | O_CLOEXEC);
      expect(await sys.fcntl(fd, F_GETFL)).toBe(0o100001);
      expect(await sys.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await sys.fcntl(fd, F_SETFL, O_NONBLOCK | O_RDWR)).toBe(0);
      expect(await sys.fcntl(fd, F_GETFL)).toBe(0o104001);
      const tl = await sys.open(SW_SYNC, O_RDWR);
      expect(await sys.fcntl(tl, F_GETFL)).toBe(0o100002);
      const f = await newFence(sys, tl, 1);
      expect(await sys.fcntl(f, F_GETFL)).toBe(0);
      expect(await sys.fcntl(f, F_GETFD)).toBe(FD_CLOEXEC);
      return 0;
    });
  });

  test('fstat: size, mode, link count and device numbers from the inode', async () => {
    await run(async (sys) => {
      const st = sys.allocStruct(stat);
      const m = await sys.memfd_create(sys.allocCString('st'), 0);
      await sys.ftruncate(m, 3 * PAGE_SIZE);
      await writeStr(sys, m, 'x');
      expect(await sys.fstat(m, st)).toBe(0);
      let v = sys.readStruct(stat, st);
      expect([v.st_size, v.st_nlink, v.st_mode, v.st_blksize, v.st_blocks]).toEqual([
        BigInt(3 * PAGE_SIZE),
        0n,
        0o100777,
        4096n,
        8n,
      ]);
      const n = await sys.open('/dev/null', O_RDONLY);
      expect(await sys.fstat(n, st)).toBe(0);
      v = sys.readStruct(stat, st);
      expect([v.st_mode, v.st_rdev, v.st_ino, v.st_dev]).toEqual([0o20666, 0x103n, 4n, 5n]);
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f = await newFence(sys, tl, 1);
      expect(await sys.fstat(f, st)).toBe(0);
      expect(sys.readStruct(stat, st).st_mode).toBe(0o600); // anon inode: no type bits
      expect(await sys.fstat(99, st)).toBe(-E.EBADF);
      expect(await sys.fstat(f, 8)).toBe(-E.EFAULT);
      return 0;
    });
  });

  test('read, write and lseek follow the file type: /dev/zero, /dev/null, sync_file', async () => {
    await run(async (sys) => {
      const z = await sys.open('/dev/zero', O_RDWR);
      const buf = sys.alloc(64);
      sys.poke(buf, new Uint8Array(64).fill(7));
      expect(await sys.read(z, buf, 64)).toBe(64);
      expect([...sys.peek(buf, 64)].every((b) => b === 0)).toBe(true);
      expect(await sys.write(z, buf, 64)).toBe(64);
      expect(await sys.read(z, 8, 1)).toBe(-E.EFAULT);
      const n = await sys.open('/dev/null', O_RDONLY);
      expect(await sys.read(n, buf, 64)).toBe(0);
      expect(await sys.write(n, buf, 1)).toBe(-E.EBADF); // not open for writing
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f = await newFence(sys, tl, 1);
      expect(await sys.read(f, buf, 1)).toBe(-E.EINVAL);
      expect(await sys.write(f, buf, 1)).toBe(-E.EBADF);
      expect(await sys.lseek(f, 0, SEEK_SET)).toBe(-E.ESPIPE);
      expect(await sys.lseek(tl, 0, SEEK_SET)).toBe(-E.ESPIPE);
      expect(await sys.ioctl(f, 0x1234)).toBe(-E.ENOTTY);
      expect(await sys.ioctl(99, 0x1234)).toBe(-E.EBADF);
      return 0;
    });
  });
});

describe('memory', () => {
  test('anonymous mmap, the live view, munmap, and -EFAULT once unmapped', async () => {
    await run(async (sys) => {
      const a = await sys.mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      expect(a).toBeGreaterThan(0);
      expect(a % PAGE_SIZE).toBe(0);
      const v = sys.memory(a, 3 * PAGE_SIZE);
      expect(v.every((b) => b === 0)).toBe(true);
      v[PAGE_SIZE + 5] = 42;
      expect(sys.peek(a + PAGE_SIZE + 5, 1)[0]).toBe(42);
      // The kernel writes through the same bytes.
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, a)).toBe(0);
      expect(sys.readStruct(timespec, a).tv_sec).toBe(1n);
      // Unmap the middle page: the VMA splits.
      expect(await sys.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(() => sys.memory(a + PAGE_SIZE, 1)).toThrow(SegmentationFault);
      expect(sys.memory(a, 1).length).toBe(1);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, a + PAGE_SIZE)).toBe(-E.EFAULT);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, a + 2 * PAGE_SIZE - 8)).toBe(-E.EFAULT); // straddles the hole
      expect(await sys.munmap(a, 3 * PAGE_SIZE)).toBe(0);
      expect(() => sys.memory(a, 1)).toThrow(SegmentationFault);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, 0)).toBe(-E.EFAULT);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, 8)).toBe(-E.EFAULT);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, -1)).toBe(-E.EFAULT);
      return 0;
    });
  });

  test('mmap argument errors, MAP_FIXED, and permissions the kernel checks on copies', async () => {
    await run(async (sys) => {
      const anon = MAP_PRIVATE | MAP_ANONYMOUS;
      expect(await sys.mmap(0, 0, PROT_READ, anon, -1, 0)).toBe(-E.EINVAL);
      expect(await sys.mmap(0, PAGE_SIZE, PROT_READ, anon, -1, 1)).toBe(-E.EINVAL);
      expect(await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS, -1, 0)).toBe(-E.EINVAL);
      expect(await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, 42, 0)).toBe(-E.EBADF);
      expect(await sys.mmap(0, 2 ** 48, PROT_READ, anon, -1, 0)).toBe(-E.ENOMEM);
      expect(await sys.mmap(123, PAGE_SIZE, PROT_READ, anon | MAP_FIXED, -1, 0)).toBe(-E.EINVAL);
      const tl = await sys.open(SW_SYNC, O_RDWR);
      expect(await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, tl, 0)).toBe(-E.ENODEV);
      const ro = await sys.mmap(0, PAGE_SIZE, PROT_READ, anon, -1, 0);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, ro)).toBe(-E.EFAULT); // copy_to_user needs write
      const none = await sys.mmap(0, PAGE_SIZE, PROT_NONE, anon, -1, 0);
      expect(() => sys.memory(none, 1)).toThrow(SegmentationFault);
      expect(await sys.mprotect(none, PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, none)).toBe(0);
      // MAP_FIXED replaces what was mapped there.
      sys.memory(none, 1)[0] = 9;
      const again = await sys.mmap(none, PAGE_SIZE, PROT_READ, anon | MAP_FIXED, -1, 0);
      expect(again).toBe(none);
      expect(sys.memory(none, 1)[0]).toBe(0);
      expect(await sys.munmap(none + 1, PAGE_SIZE)).toBe(-E.EINVAL);
      expect(await sys.munmap(none, 0)).toBe(-E.EINVAL);
      return 0;
    });
  });

  test('sys.alloc hands out zeroed memory that the kernel can read and write', async () => {
    await run(async (sys) => {
      const a = sys.alloc(100);
      const b = sys.alloc(8, 8);
      expect(b).toBeGreaterThanOrEqual(a + 100);
      expect(b % 8).toBe(0);
      expect(sys.cstring(sys.allocCString('héllo'))).toBe('héllo');
      return 0;
    });
  });
});

describe('memfd and seals', () => {
  test('memfd_create: flags, name checks, fdinfo and the /memfd: link', async () => {
    await run(async (sys) => {
      const name = sys.allocCString('buf');
      expect(await sys.memfd_create(name, 0x100)).toBe(-E.EINVAL);
      expect(await sys.memfd_create(8, 0)).toBe(-E.EFAULT);
      expect(await sys.memfd_create(sys.allocCString('x'.repeat(250)), 0)).toBe(-E.EINVAL);
      expect(await sys.memfd_create(sys.allocCString('x'.repeat(249)), 0)).toBe(3);
      const fd = await sys.memfd_create(name, MFD_CLOEXEC);
      expect(fd).toBe(4);
      expect(await sys.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await readWhole(sys, `/proc/self/fdinfo/${fd}`)).toBe(
        `pos:\t0\nflags:\t02100002\nmnt_id:\t3\nino:\t${sys.fileOf(fd)!.inode.ino}\n`,
      );
      const link = sys.alloc(64);
      const n = await sys.readlink(`/proc/self/fd/${fd}`, link, 64);
      expect(text(sys, link, n)).toBe('/memfd:buf (deleted)');
      // Not sealable: F_SEAL_SEAL from the start.
      expect(await sys.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_SEAL);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(-E.EPERM);
      expect(await sys.fcntl(0, F_GET_SEALS)).toBe(-E.EINVAL); // not a memfd
      const h = await sys.memfd_create(name, MFD_HUGETLB | MFD_ALLOW_SEALING);
      expect(h).toBeGreaterThan(0);
      expect(await sys.ftruncate(h, PAGE_SIZE)).toBe(-E.EINVAL);
      expect(await sys.ftruncate(h, 2 << 20)).toBe(0);
      return 0;
    });
  });

  test('write, mmap and read see the same bytes; ftruncate honours seals; F_SEAL_WRITE waits for writers', async () => {
    await run(async (sys) => {
      const fd = await sys.memfd_create(sys.allocCString('sealed'), MFD_ALLOW_SEALING);
      expect(await sys.fcntl(fd, F_GET_SEALS)).toBe(0);
      expect(await sys.ftruncate(fd, -1)).toBe(-E.EINVAL);
      expect(await sys.ftruncate(fd, 4 * PAGE_SIZE)).toBe(0);
      expect(await sys.lseek(fd, 0, SEEK_END)).toBe(4 * PAGE_SIZE);
      expect(await sys.lseek(fd, 0, SEEK_SET)).toBe(0);
      const map = await sys.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      const v = sys.memory(map, 4 * PAGE_SIZE);
      expect(await writeStr(sys, fd, 'written')).toBe(7);
      expect(text(sys, map, 7)).toBe('written');
      v[PAGE_SIZE] = 0x5a;
      const buf = sys.alloc(1);
      expect(await sys.lseek(fd, PAGE_SIZE, SEEK_SET)).toBe(PAGE_SIZE);
      expect(await sys.read(fd, buf, 1)).toBe(1);
      expect(sys.peek(buf, 1)[0]).toBe(0x5a);
      // Seals.
      expect(await sys.fcntl(fd, F_ADD_SEALS, 0x100)).toBe(-E.EINVAL);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)).toBe(0);
      expect(await sys.ftruncate(fd, PAGE_SIZE)).toBe(-E.EPERM);
      expect(await sys.ftruncate(fd, 8 * PAGE_SIZE)).toBe(-E.EPERM);
      expect(await sys.ftruncate(fd, 4 * PAGE_SIZE)).toBe(0);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(-E.EBUSY); // a shared writable mapping
      expect(await sys.munmap(map, 4 * PAGE_SIZE)).toBe(0);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
      expect(await writeStr(sys, fd, 'x')).toBe(-E.EPERM);
      expect(await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)).toBe(-E.EPERM);
      const ro = await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
      expect(text(sys, ro, 7)).toBe('written');
      expect(await sys.mprotect(ro, PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(-E.EACCES);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL)).toBe(0);
      expect(await sys.fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE)).toBe(-E.EPERM);
      expect(await sys.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
      // A private mapping copies on write.
      const priv = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      sys.memory(priv, 1)[0] = 0x21;
      expect(text(sys, ro, 1)).toBe('w');
      return 0;
    });
  });

  test('shrinking a memfd unmaps the pages beyond the new end', async () => {
    await run(async (sys) => {
      const fd = await sys.memfd_create(sys.allocCString('shrink'), 0);
      expect(await sys.ftruncate(fd, 2 * PAGE_SIZE)).toBe(0);
      const map = await sys.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      sys.memory(map, 2 * PAGE_SIZE).fill(1);
      expect(await sys.ftruncate(fd, PAGE_SIZE + 10)).toBe(0);
      expect(sys.peek(map + PAGE_SIZE + 9, 2)).toEqual(Uint8Array.of(1, 0));
      expect(await sys.ftruncate(fd, PAGE_SIZE)).toBe(0);
      expect(() => sys.memory(map + PAGE_SIZE, 1)).toThrow(SegmentationFault); // SIGBUS beyond EOF
      expect(sys.memory(map, 1)[0]).toBe(1);
      return 0;
    });
  });
});

describe('sockets and SCM_RIGHTS', () => {
  test('socketpair argument checks', async () => {
    await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_INET, SOCK_STREAM, 0, sv)).toBe(-E.EOPNOTSUPP);
      expect(await sys.socketpair(99, SOCK_STREAM, 0, sv)).toBe(-E.EAFNOSUPPORT);
      expect(await sys.socketpair(AF_UNIX, 4, 0, sv)).toBe(-E.ESOCKTNOSUPPORT);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 7, sv)).toBe(-E.EPROTONOSUPPORT);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM | 0x100, 0, sv)).toBe(-E.EINVAL);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, 8)).toBe(-E.EFAULT);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)).toBe(0);
      expect([sys.readS32(sv), sys.readS32(sv + 4)]).toEqual([3, 4]);
      expect(await sys.fcntl(3, F_GETFD)).toBe(FD_CLOEXEC);
      expect(await readWhole(sys, '/proc/self/fdinfo/3')).toBe(
        `pos:\t0\nflags:\t02000002\nmnt_id:\t8\nino:\t${sys.fileOf(3)!.inode.ino}\nscm_fds: 0\n`,
      );
      expect(await sys.sendmsg(0, sys.alloc(56), 0)).toBe(-E.ENOTSOCK);
      return 0;
    });
  });

  test('a stream pair carries bytes; a closed peer gives EOF, POLLHUP and -EPIPE', async () => {
    await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, sv)).toBe(0);
      const [a, b] = [sys.readS32(sv), sys.readS32(sv + 4)];
      expect(await writeStr(sys, a, 'ping')).toBe(4);
      expect(await writeStr(sys, a, 'pong')).toBe(4);
      const buf = sys.alloc(16);
      expect(await sys.read(b, buf, 16)).toBe(8);
      expect(text(sys, buf, 8)).toBe('pingpong');
      const p = sys.allocStruct(pollfd, { fd: b, events: POLLIN | POLLOUT });
      expect(await sys.poll(p, 1, 0)).toBe(1);
      expect(sys.readStruct(pollfd, p).revents).toBe(POLLOUT);
      expect(await sys.recvmsg(b, sys.allocStruct(msghdr, {}), MSG_DONTWAIT)).toBe(-E.EAGAIN);
      expect(await sys.close(a)).toBe(0);
      expect(await sys.read(b, buf, 16)).toBe(0);
      expect(await sys.poll(p, 1, 0)).toBe(1);
      expect(sys.readStruct(pollfd, p).revents & (POLLIN | POLLHUP)).toBe(POLLIN | POLLHUP);
      expect(await writeStr(sys, b, 'x')).toBe(-E.EPIPE);
      return 0;
    });
  });

  test('a datagram pair keeps message boundaries and reports MSG_TRUNC', async () => {
    await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)).toBe(0);
      const [a, b] = [sys.readS32(sv), sys.readS32(sv + 4)];
      expect(await writeStr(sys, a, 'one')).toBe(3);
      expect(await writeStr(sys, a, 'three')).toBe(5);
      const data = sys.alloc(2);
      const iov = sys.allocStruct(iovec, { iov_base: data, iov_len: 2 });
      const msg = sys.allocStruct(msghdr, { msg_iov: iov, msg_iovlen: 1 });
      expect(await sys.recvmsg(b, msg, 0)).toBe(2);
      expect(sys.readStruct(msghdr, msg).msg_flags).toBe(0x20); // MSG_TRUNC
      expect(await sys.recvmsg(b, msg, 0x20)).toBe(5); // MSG_TRUNC in: the real length
      return 0;
    });
  });

  test('SCM_RIGHTS: the receiver of a memfd keeps it alive after the sender exits', async () => {
    let childExit = -1;
    const { m, p } = await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, sv)).toBe(0);
      const [mine, theirs] = [sys.readS32(sv), sys.readS32(sv + 4)];
      expect(await sys.fcntl(mine, F_SETFD, FD_CLOEXEC)).toBe(0); // the child gets only `theirs`
      const child = sys.spawn('receiver', async (cs) => {
        expect(cs.fileOf(mine)).toBeNull();
        const r = await recvFds(cs, theirs, 1);
        expect(r.rc).toBe(1);
        expect(r.fds).toEqual([mine]); // lowest free fd in the child
        // Wait for the sender to be gone, then use the memfd.
        const req = cs.allocStruct(timespec, { tv_sec: 1 });
        await cs.nanosleep(req);
        const buf = cs.alloc(32);
        expect(await cs.lseek(r.fds[0], 0, SEEK_SET)).toBe(0);
        expect(await cs.read(r.fds[0], buf, 32)).toBe(11);
        expect(text(cs, buf, 11)).toBe('from parent');
        const map = await cs.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, r.fds[0], 0);
        expect(text(cs, map, 4)).toBe('from');
        return 5;
      });
      const mfd = await sys.memfd_create(sys.allocCString('shared'), 0);
      expect(await writeStr(sys, mfd, 'from parent')).toBe(11);
      expect(await sendFds(sys, mine, [mfd])).toBe(1);
      const st = sys.alloc(4);
      expect(child).toBeGreaterThan(sys.getpid());
      expect(await sys.waitpid(child, st, 1)).toBe(0); // WNOHANG: still running
      return 0; // exits before the child reads
    }, 'sender');
    const child = m.processes.find((x) => x.name === 'receiver') as Process;
    childExit = child.exitCode ?? -1;
    if (child.error) throw child.error;
    expect(p.exitCode).toBe(0);
    expect(childExit).toBe(5);
    expect(m.reports).toEqual([]);
    expect(liveFiles(m.kernel).size).toBe(0);
  });

  test('SCM_RIGHTS: MSG_CMSG_CLOEXEC, too little control room (MSG_CTRUNC), bad fds', async () => {
    const { m } = await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)).toBe(0);
      const [a, b] = [sys.readS32(sv), sys.readS32(sv + 4)];
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f1 = await newFence(sys, tl, 1);
      const f2 = await newFence(sys, tl, 2);
      expect(await sendFds(sys, a, [99])).toBe(-E.EBADF);
      expect(await sendFds(sys, a, [f1, f2, f2])).toBe(1);
      expect(await readWhole(sys, `/proc/self/fdinfo/${b}`)).toContain('scm_fds: 3\n');
      // CMSG_SPACE(4) is 24 bytes: room for two ints, so two of the three fds arrive.
      const r = await recvFds(sys, b, 1, MSG_CMSG_CLOEXEC);
      expect(r.rc).toBe(1);
      expect(r.fds.length).toBe(2);
      expect(r.flags & MSG_CTRUNC).toBe(MSG_CTRUNC);
      expect(r.flags & MSG_CMSG_CLOEXEC).toBe(MSG_CMSG_CLOEXEC);
      expect(r.controllen).toBe(CMSG_SPACE(8));
      expect(await sys.fcntl(r.fds[0], F_GETFD)).toBe(FD_CLOEXEC);
      // The received fd is the same fence: signal it through the timeline.
      const inc = sys.alloc(4);
      sys.writeU32(inc, 1);
      expect(await sys.ioctl(tl, SW_SYNC_IOC_INC, inc)).toBe(0);
      expect(await fenceStatus(sys, r.fds[0])).toBe(1);
      // No control buffer at all: the fds are dropped.
      expect(await sendFds(sys, a, [f2])).toBe(1);
      const r2 = await recvFds(sys, b, 0);
      expect(r2.fds).toEqual([]);
      expect(r2.flags & MSG_CTRUNC).toBe(MSG_CTRUNC);
      return 0;
    });
    expect(m.reports).toEqual([]);
  });

  test('a socket sent over itself and closed is collected, not leaked', async () => {
    const { m } = await run(async (sys) => {
      const sv = sys.alloc(8);
      expect(await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, sv)).toBe(0);
      const [a, b] = [sys.readS32(sv), sys.readS32(sv + 4)];
      expect(await sendFds(sys, a, [a, b])).toBe(1);
      expect(await sendFds(sys, b, [a, b])).toBe(1);
      return 0;
    });
    expect(m.reports).toEqual([]);
    expect(liveFiles(m.kernel).size).toBe(0);
  });
});

describe('time', () => {
  test('poll timeouts and nanosleep take exactly their virtual time', async () => {
    await run(async (sys) => {
      const t0 = sys.now();
      expect(await sys.poll(0, 0, 250)).toBe(0);
      expect(sys.now() - t0).toBe(250_000_000n);
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f = await newFence(sys, tl, 1);
      const p = sys.allocStruct(pollfd, { fd: f, events: POLLIN });
      const t1 = sys.now();
      expect(await sys.poll(p, 1, 50)).toBe(0);
      expect(sys.now() - t1).toBe(50_000_000n);
      // A thread signals the fence after 10 ms: poll returns then.
      sys.spawnThread(async (ts) => {
        await ts.nanosleep(ts.allocStruct(timespec, { tv_nsec: 10_000_000 }));
        const inc = ts.alloc(4);
        ts.writeU32(inc, 1);
        return ts.ioctl(tl, SW_SYNC_IOC_INC, inc);
      });
      const t2 = sys.now();
      expect(await sys.poll(p, 1, -1)).toBe(1);
      expect(sys.now() - t2).toBe(10_000_000n);
      const pf = sys.allocStruct(pollfd, { fd: 77, events: POLLIN });
      expect(await sys.poll(pf, 1, 1000)).toBe(1);
      expect(sys.readStruct(pollfd, pf).revents).toBe(POLLNVAL);
      const neg = sys.allocStruct(pollfd, { fd: -1, events: POLLIN });
      expect(await sys.poll(neg, 1, 0)).toBe(0);
      expect(await sys.poll(8, 1, 0)).toBe(-E.EFAULT);
      expect(await sys.poll(p, 1025, 0)).toBe(-E.EINVAL);
      const t3 = sys.now();
      expect(await sys.nanosleep(sys.allocStruct(timespec, { tv_sec: 1, tv_nsec: 500_000_000 }), 0)).toBe(0);
      expect(sys.now() - t3).toBe(1_500_000_000n);
      expect(await sys.nanosleep(sys.allocStruct(timespec, { tv_nsec: 1_000_000_000 }))).toBe(-E.EINVAL);
      expect(await sys.nanosleep(sys.allocStruct(timespec, { tv_sec: -1 }))).toBe(-E.EINVAL);
      expect(await sys.nanosleep(8)).toBe(-E.EFAULT);
      return 0;
    });
  });

  test('clock_gettime: MONOTONIC is sys.now(), REALTIME counts from 2025, COARSE from the last tick', async () => {
    await run(async (sys) => {
      const ts = sys.allocStruct(timespec);
      await sys.nanosleep(sys.allocStruct(timespec, { tv_nsec: 5_000_123 }));
      expect(await sys.clock_gettime(CLOCK_MONOTONIC, ts)).toBe(0);
      const mono = sys.readStruct(timespec, ts);
      expect(mono.tv_sec * 1_000_000_000n + mono.tv_nsec).toBe(sys.now());
      expect(sys.now()).toBe(1_005_000_123n);
      expect(await sys.clock_gettime(CLOCK_REALTIME, ts)).toBe(0);
      expect(sys.readStruct(timespec, ts).tv_sec).toBe(1_735_689_601n);
      expect(await sys.clock_gettime(CLOCK_MONOTONIC_COARSE, ts)).toBe(0);
      expect(sys.readStruct(timespec, ts)).toEqual({ tv_sec: 1n, tv_nsec: 4_000_000n }); // HZ=250
      expect(await sys.clock_gettime(10, ts)).toBe(-E.EINVAL);
      expect(await sys.clock_gettime(-5, ts)).toBe(-E.EINVAL);
      return 0;
    });
  });
});

describe('/proc/self/fdinfo', () => {
  test('generic lines as 6.12 prints them, the position, and ENOENT for closed fds', async () => {
    await run(async (sys) => {
      const fd = await sys.open('/dev/null', O_RDWR | O_CLOEXEC);
      const ino = sys.fileOf(fd)!.inode.ino;
      expect(await readWhole(sys, `/proc/self/fdinfo/${fd}`)).toBe(
        `pos:\t0\nflags:\t02100002\nmnt_id:\t18\nino:\t${ino}\n`,
      );
      const mfd = await sys.memfd_create(sys.allocCString('pos'), 0);
      await writeStr(sys, mfd, '0123456789');
      expect(await sys.lseek(mfd, 3, SEEK_SET)).toBe(3);
      expect(await readWhole(sys, `/proc/${sys.getpid()}/fdinfo/${mfd}`)).toMatch(
        /^pos:\t3\nflags:\t0100002\n/,
      );
      expect(await sys.open('/proc/self/fdinfo/99', O_RDONLY)).toBe(-E.ENOENT);
      const info = await sys.open(`/proc/self/fdinfo/${fd}`, O_RDONLY);
      expect(await sys.close(fd)).toBe(0);
      expect(await sys.read(info, sys.alloc(64), 64)).toBe(-E.ENOENT);
      return 0;
    });
  });
});

describe('threads and exit', () => {
  test('threads share the fd table and memory', async () => {
    await run(async (sys) => {
      const shared = sys.alloc(4);
      let opened = -1;
      const tid = sys.spawnThread(async (ts) => {
        opened = await ts.open('/dev/null', O_RDONLY);
        ts.writeU32(shared, 0xdeadbeef);
        return 7;
      });
      expect(tid).not.toBe(sys.gettid());
      expect(sys.gettid()).toBe(sys.getpid());
      expect(await sys.joinThread(tid)).toBe(7);
      expect(opened).toBe(3);
      expect(await sys.fcntl(opened, F_GETFD)).toBe(0);
      expect(sys.readS32(shared) >>> 0).toBe(0xdeadbeef);
      expect(await sys.joinThread(tid)).toBe(7);
      expect(await sys.joinThread(12345)).toBe(-E.ESRCH);
      return 0;
    });
  });

  test('exit releases files, mappings and in-flight fds in order, with no leak report', async () => {
    const { m, p } = await run(async (sys) => {
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f = await newFence(sys, tl, 3);
      const mfd = await sys.memfd_create(sys.allocCString('m'), 0);
      await sys.ftruncate(mfd, PAGE_SIZE);
      await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
      const sv = sys.alloc(8);
      await sys.socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
      await sendFds(sys, sys.readS32(sv), [f, mfd, tl]);
      expect(sys.fileOf(mfd)!.count).toBe(3); // fd + mapping + in flight
      sys.exit(3);
    });
    expect(p.exitCode).toBe(3);
    expect(m.reports).toEqual([]);
    expect(liveFiles(m.kernel).size).toBe(0);
  });

  test('sys.exit from a thread ends the process; a thread blocked in poll unwinds', async () => {
    const m = await Machine.create();
    let afterPoll = false;
    const p = m.spawn('app', async (sys) => {
      const tl = await sys.open(SW_SYNC, O_RDWR);
      const f = await newFence(sys, tl, 1);
      sys.spawnThread(async (ts) => {
        await ts.nanosleep(ts.allocStruct(timespec, { tv_sec: 2 }));
        ts.exit(42);
      });
      await sys.poll(sys.allocStruct(pollfd, { fd: f, events: POLLIN }), 1, -1);
      afterPoll = true;
      return 0;
    });
    const r = await m.run();
    expect(r.status).toBe('completed');
    expect(p.exitCode).toBe(42);
    expect(afterPoll).toBe(false);
    expect(m.reports).toEqual([]);
    expect(m.now).toBe(3_000_000_000n);
  });

  test('an exception or a memory fault in a thread kills the process and still releases everything', async () => {
    const m = await Machine.create();
    const boom = m.spawn('boom', async (sys) => {
      await sys.open(SW_SYNC, O_RDWR);
      throw new Error('boom');
    });
    const segv = m.spawn('segv', async (sys) => {
      await sys.memfd_create(sys.allocCString('m'), 0);
      sys.memory(0x1000, 1);
    });
    await m.run();
    expect(boom.exitCode).toBe(1);
    expect((boom.error as Error).message).toBe('boom');
    expect(segv.exitCode).toBe(139);
    expect(segv.error).toBeInstanceOf(SegmentationFault);
    expect(m.reports).toEqual([]);
    expect(liveFiles(m.kernel).size).toBe(0);
  });

  test('something the model fails to release is reported as a leak, once', async () => {
    const m = await Machine.create();
    let leaked = '';
    m.spawn('app', async (sys) => {
      const fd = await sys.memfd_create(sys.allocCString('kept'), 0);
      const f = sys.fileOf(fd)!;
      f.get(); // a reference nobody will drop: what a buggy driver would do
      leaked = f.dPath();
      return 0;
    });
    await m.run();
    const leaks = m.reports.filter((r) => r.type === 'leak');
    expect(leaks.length).toBe(1);
    expect(leaks[0].rule).toBe('file.leak');
    expect(leaks[0].message).toContain(leaked);
    await m.run();
    expect(m.reports.filter((r) => r.type === 'leak').length).toBe(1);
  });

  test('closing the timeline of a pending fence held by another process signals it with -ENOENT', async () => {
    const m = await Machine.create();
    let status = 0;
    m.spawn('parent', async (sys) => {
      const sv = sys.alloc(8);
      await sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
      const [a, b] = [sys.readS32(sv), sys.readS32(sv + 4)];
      await sys.fcntl(b, F_SETFD, 0);
      const child = sys.spawn('child', async (cs) => {
        const r = await recvFds(cs, b, 1);
        const p = cs.allocStruct(pollfd, { fd: r.fds[0], events: POLLIN });
        expect(await cs.poll(p, 1, -1)).toBe(1);
        status = await fenceStatus(cs, r.fds[0]);
        return 0;
      });
      const tl = await sys.open(SW_SYNC, O_RDWR | O_CLOEXEC);
      const f = await newFence(sys, tl, 10);
      await sendFds(sys, a, [f]);
      await sys.nanosleep(sys.allocStruct(timespec, { tv_nsec: 1_000_000 }));
      expect(child).toBeGreaterThan(0);
      return 0; // exit closes the timeline while the child still waits
    });
    await m.run();
    expect(status).toBe(-E.ENOENT);
    expect(m.reports).toEqual([]);
  });
});
