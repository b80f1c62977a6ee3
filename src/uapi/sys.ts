/**
 * `Sys`: the raw Linux syscall ABI of one simulated x86_64 thread, as DESIGN.md "The
 * userspace ABI" describes.
 *
 * Every call returns `>= 0` or `-errno` (most return a Promise: always `await`) and
 * never throws for bad arguments. Pointers are user virtual addresses in the process's
 * own address space; structs are copied in and out in their C layouts (see
 * `structs.ts`); a bad pointer gives -EFAULT. The one exception is `open`, whose path is
 * a JS string (so are the paths of the extra calls `unlink` and `readlink`).
 *
 * Integer arguments are converted as the C ABI would: fds, flags and commands are
 * truncated to 32 bits, sizes and offsets read as 64-bit (numbers or bigints).
 *
 * Every call is bracketed by the `sys_enter`/`sys_exit` tracepoints (raw_syscalls;
 * name, fd, ioctl request name, return value) when the run's log records.
 *
 * Calls return to "userspace" the way the kernel does: deferred file releases
 * (task_work) run before the call returns. When the process is exiting (another thread
 * called `exit`, or crashed), a call does not return: the thread unwinds.
 *
 * Beyond the contract's calls there are a few more real ones (dup3, mprotect, fstat,
 * unlink, readlink, waitpid) and helpers that are not syscalls: `memory`, `cstring`,
 * `peek`, `poke`, `alloc` and the struct helpers, `spawnThread`/`joinThread`, `spawn`
 * (fork + exec of a JS program: the child inherits the fds without close-on-exec),
 * `now`, `fileOf` (the kernel's file behind an fd, for tests and tools).
 */
import { errno } from '../kernel/errno.ts';
import { doFcntl } from '../kernel/fcntl.ts';
import { closeFd, fdget, ksysDup, ksysDup2, ksysDup3 } from '../kernel/fdtable.ts';
import { FMODE_WRITE, S_ISREG } from '../kernel/file.ts';
import { NSEC_PER_SEC } from '../kernel/jiffies.ts';
import { memfdCreate } from '../kernel/mm/memfd.ts';
import { ksysMmap, ksysMprotect, ksysMunmap, ulong } from '../kernel/mm/mmap.ts';
import { shmemInfo, shmemSetSize } from '../kernel/mm/shmem.ts';
import { doSysPoll } from '../kernel/poll.ts';
import { procReadlink } from '../kernel/proc-fd.ts';
import { ksysLseek, ksysRead, ksysWrite } from '../kernel/read-write.ts';
import { type TaskStruct, taskWorkRun } from '../kernel/sched.ts';
import { sysRecvmsg, sysSendmsg, sysSocketpair } from '../kernel/socket.ts';
import { sysFstat } from '../kernel/stat.ts';
import { traceSysEnter, traceSysExit } from '../kernel/trace.ts';
import { copyStructFromUser, copyStructToUser, copyToUser } from '../kernel/uaccess.ts';
import { doSysOpen, doUnlink, normalizePath } from '../kernel/vfs.ts';
import { ksysIoctl } from '../kernel/vfs-ioctl.ts';
import type { Machine, Process, ProgramMain } from '../machine.ts';
import type { Task } from '../sim/engine.ts';
import { KernelBug } from '../sim/report.ts';
import { ioctlName } from './ioctl-names.ts';
import {
  bytesToCString,
  type FieldSpec,
  type StructDef,
  type StructInput,
  type StructValue,
  stringBytes,
  timespec,
} from './structs.ts';

/** Thrown by `sys.exit` (and by any call once the process is exiting) to unwind a thread. */
export class ProcessExit extends Error {
  /** Creates the unwinding signal for `exit(code)`. */
  constructor(readonly code: number) {
    super(`exit(${code})`);
    this.name = 'ProcessExit';
  }
}

/** Thrown by the memory helpers where a real program would take SIGSEGV or SIGBUS. */
export class SegmentationFault extends RangeError {
  /** Wraps the fault's description. */
  constructor(message: string) {
    super(message);
    this.name = 'SegmentationFault';
  }
}

/** A 64-bit argument: a number or a bigint. */
export type Arg = number | bigint;

/** CLOCK_REALTIME. */
export const CLOCK_REALTIME = 0;
/** CLOCK_MONOTONIC. */
export const CLOCK_MONOTONIC = 1;
/** CLOCK_PROCESS_CPUTIME_ID. */
export const CLOCK_PROCESS_CPUTIME_ID = 2;
/** CLOCK_THREAD_CPUTIME_ID. */
export const CLOCK_THREAD_CPUTIME_ID = 3;
/** CLOCK_MONOTONIC_RAW. */
export const CLOCK_MONOTONIC_RAW = 4;
/** CLOCK_REALTIME_COARSE. */
export const CLOCK_REALTIME_COARSE = 5;
/** CLOCK_MONOTONIC_COARSE. */
export const CLOCK_MONOTONIC_COARSE = 6;
/** CLOCK_BOOTTIME. */
export const CLOCK_BOOTTIME = 7;
/** CLOCK_TAI. */
export const CLOCK_TAI = 11;

/** CLOCK_REALTIME at virtual time 0: 2025-01-01T00:00:00Z, in ns. */
export const REALTIME_EPOCH_NS = 1_735_689_600n * 1_000_000_000n;

/** x86_64 syscall numbers of the calls `Sys` traces (arch/x86/entry/syscalls/syscall_64.tbl). */
export const __NR = {
  read: 0,
  write: 1,
  open: 2,
  close: 3,
  fstat: 5,
  poll: 7,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  ioctl: 16,
  dup: 32,
  dup2: 33,
  nanosleep: 35,
  sendmsg: 46,
  recvmsg: 47,
  socketpair: 53,
  wait4: 61,
  fcntl: 72,
  ftruncate: 77,
  unlink: 87,
  readlink: 89,
  clock_gettime: 228,
  dup3: 292,
  memfd_create: 319,
} as const;

/** A traced syscall's name. */
type SyscallName = keyof typeof __NR;

function u32(x: unknown): number {
  if (typeof x === 'bigint') return Number(BigInt.asUintN(32, x));
  if (typeof x !== 'number' || !Number.isFinite(x)) return 0;
  return Number(BigInt.asUintN(32, BigInt(Math.trunc(x))));
}

function s32(x: unknown): number {
  return u32(x) | 0;
}

/** A user address as a JS number (garbage becomes an address that faults). */
function uptr(x: unknown): number {
  if (typeof x === 'bigint') {
    const v = BigInt.asUintN(64, x);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  if (typeof x !== 'number' || !Number.isFinite(x)) return Number.MAX_SAFE_INTEGER;
  const t = Math.trunc(x);
  return t < 0 ? Number.MAX_SAFE_INTEGER : t;
}

/** A size_t as a JS number (values beyond 2^53 stay huge). */
function usize(x: unknown): number {
  if (typeof x === 'bigint') return Number(BigInt.asUintN(64, x));
  if (typeof x !== 'number' || !Number.isFinite(x)) return 0;
  const t = Math.trunc(x);
  return t < 0 ? 2 ** 64 + t : t;
}

/** A signed 64-bit value (off_t) as a JS number. */
function s64(x: unknown): number {
  if (typeof x === 'bigint') return Number(BigInt.asIntN(64, x));
  if (typeof x !== 'number' || !Number.isFinite(x)) return 0;
  return Math.trunc(x);
}

/** The syscall interface handed to a program's thread. */
export class Sys {
  /** Use `Machine#spawn`. */
  constructor(
    /** The machine this thread runs on. */
    readonly machine: Machine,
    /** The thread's process. */
    readonly process: Process,
    /** The thread's simulated task. */
    readonly task: Task,
    /** The kernel's view of the thread. */
    readonly kernelTask: TaskStruct,
  ) {}

  // ------------------------------------------------------------ plumbing

  private checkAlive(): void {
    if (this.process.exiting) throw new ProcessExit(this.process.exitGroupCode);
  }

  /**
   * Runs a syscall body, then the task's deferred work (the return to userspace). An
   * exception thrown by kernel code is a model bug, not the program's: it becomes a
   * `bug` report (a kernel oops) and stops the run.
   */
  private async call(
    fn: () => number | Promise<number>,
    sc?: SyscallName,
    fd?: unknown,
    request?: unknown,
  ): Promise<number> {
    this.checkAlive();
    // sys_enter/sys_exit: only when the log records (a disabled log costs one test).
    const engine = this.machine.engine;
    const traced = sc !== undefined && engine.log.enabled;
    if (traced) {
      const cmd = request === undefined ? undefined : ioctlName(u32(request));
      traceSysEnter(engine, __NR[sc], sc, fd === undefined ? undefined : s32(fd), cmd);
    }
    let r: number;
    try {
      r = await fn();
      await taskWorkRun(this.kernelTask);
    } catch (e) {
      // The call does not return normally: close its slice (-EINTR for a dying thread).
      if (traced) traceSysExit(engine, __NR[sc], sc, e instanceof ProcessExit ? -errno.EINTR : -errno.EFAULT);
      if (e instanceof ProcessExit || e instanceof KernelBug) throw e;
      const err = e instanceof Error ? e : new Error(String(e));
      this.machine.kernel.enter();
      this.machine.kernel.bug(
        'kernel.oops',
        `Oops: ${err.message} in a syscall of ${this.process.name}[${this.process.pid}]\n${err.stack ?? ''}`,
      );
    }
    if (traced) traceSysExit(engine, __NR[sc], sc, r);
    this.checkAlive();
    return r;
  }

  private get mm() {
    const mm = this.kernelTask.mm;
    if (!mm) throw new ProcessExit(this.process.exitGroupCode);
    return mm;
  }

  // ------------------------------------------------------------ process and time

  /** getpid(): the process id. */
  getpid(): number {
    return this.process.pid;
  }

  /** gettid(): the thread id (the pid for the main thread). */
  gettid(): number {
    return this.kernelTask.pid;
  }

  /** CLOCK_MONOTONIC in ns (a helper, not a syscall). */
  now(): bigint {
    return BigInt(this.machine.engine.now);
  }

  /** sched_yield(): lets other runnable threads go first. Returns 0. */
  async sched_yield(): Promise<number> {
    this.checkAlive();
    await this.machine.engine.yield();
    this.checkAlive();
    return 0;
  }

  /** exit(): ends the whole process with `code & 0xff` (exit_group; does not return). */
  exit(code: number): never {
    throw new ProcessExit(u32(code) & 0xff);
  }

  /** Starts a thread in this process (shares its files and memory); returns its tid. */
  spawnThread(fn: ProgramMain): number {
    this.checkAlive();
    return this.machine.startThread(this.process, fn).tid;
  }

  /** Waits for a thread of this process to finish; returns its result, or -ESRCH. */
  async joinThread(tid: number): Promise<number> {
    this.checkAlive();
    const t = this.process.threadByTid(tid);
    if (!t || t === this.task) return -errno.ESRCH;
    const r = await this.machine.engine.join(t);
    this.checkAlive();
    return r;
  }

  /**
   * A helper like posix_spawn (fork + exec of a JS program): starts `main` as a child
   * process named `name`. The child inherits this process's fds that are not
   * close-on-exec (same open files, same positions), and nothing else. Returns its pid.
   */
  spawn(name: string, main: ProgramMain): number {
    this.checkAlive();
    return this.machine.spawnChild(this.process, String(name), main).pid;
  }

  /**
   * waitpid(2): waits for a child started with `spawn` (`pid` -1: any child) and reaps
   * it; writes the wait status ((exit code & 0xff) << 8) at `wstatusAddr` if non-zero.
   * WNOHANG (1) returns 0 if no child has exited. -ECHILD if there is no such child.
   */
  async waitpid(pid: number, wstatusAddr: Arg = 0, options = 0): Promise<number> {
    return this.call(async () => {
      const want = s32(pid);
      const opts = u32(options);
      if (opts & ~(1 | 2 | 8 | 0x01000000 | 0x20000000 | 0x40000000 | 0x80000000)) return -errno.EINVAL;
      const kids = this.process.children;
      const match = () => kids.filter((c) => want === -1 || c.pid === want);
      if (match().length === 0) return -errno.ECHILD;
      for (;;) {
        const done = match().find((c) => c.exitCode !== null);
        if (done) {
          const st = uptr(wstatusAddr);
          if (st && copyToUser(st, new Uint8Array(new Int32Array([(done.exitCode! & 0xff) << 8]).buffer))) {
            return -errno.EFAULT;
          }
          kids.splice(kids.indexOf(done), 1);
          return done.pid;
        }
        if (opts & 1) return 0;
        const r = await this.process.childWait.waitEvent(() => match().some((c) => c.exitCode !== null), {
          interruptible: true,
          desc: { what: `waitpid(${want})` },
        });
        if (r < 0) return -errno.EINTR;
      }
    }, 'wait4');
  }

  /** clock_gettime(2): writes a struct timespec at `tsAddr`. */
  async clock_gettime(clockid: number, tsAddr: Arg): Promise<number> {
    return this.call(() => {
      const id = s32(clockid);
      const k = this.machine.kernel;
      const now = BigInt(this.machine.engine.now);
      const coarse = BigInt(k.jiffies.toNsecs(k.jiffiesNow));
      let ns: bigint;
      switch (id) {
        case CLOCK_REALTIME:
        case CLOCK_TAI:
          ns = REALTIME_EPOCH_NS + now;
          break;
        case CLOCK_MONOTONIC:
        case CLOCK_MONOTONIC_RAW:
        case CLOCK_BOOTTIME:
          ns = now;
          break;
        case CLOCK_REALTIME_COARSE:
          ns = REALTIME_EPOCH_NS + coarse;
          break;
        case CLOCK_MONOTONIC_COARSE:
          ns = coarse;
          break;
        case CLOCK_PROCESS_CPUTIME_ID:
        case CLOCK_THREAD_CPUTIME_ID:
          // Simulated threads take no CPU time.
          ns = 0n;
          break;
        default:
          return -errno.EINVAL;
      }
      const sec = ns / 1_000_000_000n;
      return copyStructToUser(timespec, uptr(tsAddr), { tv_sec: sec, tv_nsec: ns - sec * 1_000_000_000n });
    }, 'clock_gettime');
  }

  /** nanosleep(2): sleeps in virtual time; -EINTR (remaining time at `remAddr`) if interrupted. */
  async nanosleep(reqAddr: Arg, remAddr: Arg = 0): Promise<number> {
    return this.call(async () => {
      const req = copyStructFromUser(timespec, uptr(reqAddr));
      if (!req) return -errno.EFAULT;
      if (req.tv_sec < 0n || req.tv_nsec < 0n || req.tv_nsec >= BigInt(NSEC_PER_SEC)) return -errno.EINVAL;
      const engine = this.machine.engine;
      const ns = Number(req.tv_sec * 1_000_000_000n + req.tv_nsec);
      const deadline = engine.now + ns;
      const why = await engine.block({ what: `nanosleep ${ns} ns` }, { deadline, interruptible: true });
      if (why === 'signal') {
        const left = BigInt(Math.max(0, deadline - engine.now));
        const rem = uptr(remAddr);
        if (rem) {
          const sec = left / 1_000_000_000n;
          if (copyStructToUser(timespec, rem, { tv_sec: sec, tv_nsec: left - sec * 1_000_000_000n })) {
            return -errno.EFAULT;
          }
        }
        return -errno.EINTR;
      }
      return 0;
    }, 'nanosleep');
  }

  // ------------------------------------------------------------ files

  /** open(2): `path` is a JS string; returns the new fd. */
  async open(path: string, flags: number, mode = 0): Promise<number> {
    return this.call(() => doSysOpen(typeof path === 'string' ? path : '', s32(flags), u32(mode)), 'open');
  }

  /** close(2). */
  async close(fd: number): Promise<number> {
    return this.call(() => closeFd(u32(fd)), 'close', fd);
  }

  /** dup(2). */
  async dup(fd: number): Promise<number> {
    return this.call(() => ksysDup(u32(fd)), 'dup', fd);
  }

  /** dup2(2). */
  async dup2(oldfd: number, newfd: number): Promise<number> {
    return this.call(() => ksysDup2(u32(oldfd), u32(newfd)), 'dup2', oldfd);
  }

  /** dup3(2): `flags` may be O_CLOEXEC. */
  async dup3(oldfd: number, newfd: number, flags: number): Promise<number> {
    return this.call(() => ksysDup3(u32(oldfd), u32(newfd), s32(flags)), 'dup3', oldfd);
  }

  /** fcntl(2). */
  async fcntl(fd: number, cmd: number, arg: Arg = 0): Promise<number> {
    return this.call(() => doFcntl(u32(fd), u32(cmd), Number(ulong(arg) & 0xffffffffn)), 'fcntl', fd);
  }

  /** ioctl(2): `request` is the 32-bit request number, `arg` usually a user address. */
  async ioctl(fd: number, request: number, arg: Arg = 0): Promise<number> {
    return this.call(() => ksysIoctl(u32(fd), u32(request), usize(arg)), 'ioctl', fd, request);
  }

  /** read(2). */
  async read(fd: number, buf: Arg, count: Arg): Promise<number> {
    return this.call(() => ksysRead(u32(fd), uptr(buf), usize(count)), 'read', fd);
  }

  /** write(2). */
  async write(fd: number, buf: Arg, count: Arg): Promise<number> {
    return this.call(() => ksysWrite(u32(fd), uptr(buf), usize(count)), 'write', fd);
  }

  /** lseek(2): returns the new offset. */
  async lseek(fd: number, offset: Arg, whence: number): Promise<number> {
    return this.call(() => ksysLseek(u32(fd), s64(offset), u32(whence)), 'lseek', fd);
  }

  /** fstat(2) (an extra call): writes a struct stat at `statbuf`. */
  async fstat(fd: number, statbuf: Arg): Promise<number> {
    return this.call(() => sysFstat(u32(fd), uptr(statbuf)), 'fstat', fd);
  }

  /** ftruncate(2). */
  async ftruncate(fd: number, length: Arg): Promise<number> {
    return this.call(
      () => {
        const len = s64(length);
        if (len < 0) return -errno.EINVAL;
        const f = fdget(u32(fd));
        if (!f) return -errno.EBADF;
        if (!S_ISREG(f.inode.mode) || !(f.fMode & FMODE_WRITE)) return -errno.EINVAL;
        if (!shmemInfo(f.inode)) return -errno.EINVAL;
        return shmemSetSize(f.inode, len);
      },
      'ftruncate',
      fd,
    );
  }

  /** memfd_create(2): `nameAddr` is the user address of the name. */
  async memfd_create(nameAddr: Arg, flags: number): Promise<number> {
    return this.call(() => memfdCreate(uptr(nameAddr), u32(flags)), 'memfd_create');
  }

  /** unlink(2) (an extra call): removes a file created under /tmp or /dev/shm. */
  async unlink(path: string): Promise<number> {
    return this.call(() => doUnlink(typeof path === 'string' ? path : ''), 'unlink');
  }

  /** readlink(2) (an extra call): /proc/self, /proc/<pid>/fd/<n>; copies at most `size` bytes, no NUL. */
  async readlink(path: string, buf: Arg, size: Arg): Promise<number> {
    return this.call(() => {
      const n = usize(size);
      if (n <= 0 || n > 0x7fffffff) return -errno.EINVAL;
      const p = normalizePath(typeof path === 'string' ? path : '');
      if (typeof p === 'number') return p;
      if (!p.startsWith('/proc/')) return -errno.EINVAL;
      const target = procReadlink(p);
      if (typeof target === 'number') return target;
      const bytes = stringBytes(target).subarray(0, n);
      return copyToUser(uptr(buf), bytes) ? -errno.EFAULT : bytes.length;
    }, 'readlink');
  }

  // ------------------------------------------------------------ memory

  /** mmap(2): returns the mapping's address or -errno. */
  async mmap(addr: Arg, length: Arg, prot: number, flags: number, fd: number, offset: Arg): Promise<number> {
    return this.call(
      () => ksysMmap(this.mm, addr, length, u32(prot), u32(flags), s32(fd), offset),
      'mmap',
      fd,
    );
  }

  /** munmap(2). */
  async munmap(addr: Arg, length: Arg): Promise<number> {
    return this.call(() => ksysMunmap(this.mm, addr, length), 'munmap');
  }

  /** mprotect(2). */
  async mprotect(addr: Arg, length: Arg, prot: number): Promise<number> {
    return this.call(() => ksysMprotect(this.mm, addr, length, u32(prot)), 'mprotect');
  }

  /** poll(2): `fdsAddr` points at `nfds` struct pollfd; a negative timeout waits forever. */
  async poll(fdsAddr: Arg, nfds: number, timeoutMs: number): Promise<number> {
    return this.call(() => doSysPoll(uptr(fdsAddr), u32(nfds), s32(timeoutMs)), 'poll');
  }

  // ------------------------------------------------------------ sockets

  /** socketpair(2): writes the two fds as int[2] at `svAddr`. */
  async socketpair(domain: number, type: number, protocol: number, svAddr: Arg): Promise<number> {
    return this.call(() => sysSocketpair(s32(domain), s32(type), s32(protocol), uptr(svAddr)), 'socketpair');
  }

  /** sendmsg(2): `msgAddr` points at a struct msghdr. */
  async sendmsg(fd: number, msgAddr: Arg, flags: number): Promise<number> {
    return this.call(() => sysSendmsg(u32(fd), uptr(msgAddr), u32(flags)), 'sendmsg', fd);
  }

  /** recvmsg(2): `msgAddr` points at a struct msghdr; received fds arrive as SCM_RIGHTS. */
  async recvmsg(fd: number, msgAddr: Arg, flags: number): Promise<number> {
    return this.call(() => sysRecvmsg(u32(fd), uptr(msgAddr), u32(flags)), 'recvmsg', fd);
  }

  // ------------------------------------------------------------ helpers (not syscalls)

  /**
   * A live view of `length` bytes of mapped memory at `addr`: writes through it reach
   * the same bytes the kernel and devices see. Throws `SegmentationFault` if a page is
   * unmapped or unreadable, or if the range is not one contiguous buffer (e.g. it spans
   * two separate mappings); use `peek`/`poke` for those.
   */
  memory(addr: Arg, length: Arg): Uint8Array {
    try {
      return this.mm.view(uptr(addr), usize(length));
    } catch (e) {
      if (e instanceof RangeError) throw new SegmentationFault(e.message);
      throw e;
    }
  }

  /** A copy of `length` bytes at `addr` (any mapping layout); throws `SegmentationFault` on a fault. */
  peek(addr: Arg, length: Arg): Uint8Array {
    const out = new Uint8Array(usize(length));
    if (this.mm.copyOut(uptr(addr), out))
      throw new SegmentationFault(`peek(0x${uptr(addr).toString(16)}): fault`);
    return out;
  }

  /** Writes `bytes` at `addr` (any mapping layout); throws `SegmentationFault` on a fault. */
  poke(addr: Arg, bytes: Uint8Array): void {
    if (this.mm.copyIn(uptr(addr), bytes))
      throw new SegmentationFault(`poke(0x${uptr(addr).toString(16)}): fault`);
  }

  /** The NUL-terminated string at `addr` (at most `max` bytes); throws `SegmentationFault` on a fault. */
  cstring(addr: Arg, max = 4096): string {
    const a = uptr(addr);
    const bytes: number[] = [];
    const one = new Uint8Array(1);
    for (let i = 0; i < max; i++) {
      if (this.mm.copyOut(a + i, one)) throw new SegmentationFault(`cstring(0x${a.toString(16)}): fault`);
      if (one[0] === 0) break;
      bytes.push(one[0]);
    }
    return bytesToCString(Uint8Array.from(bytes));
  }

  /**
   * A helper, not a syscall: `size` bytes of zeroed, writable memory (aligned to `align`)
   * from an anonymous mapping the process owns, like malloc. Never freed before exit.
   */
  alloc(size: number, align = 16): number {
    return this.process.alloc(this.mm, Math.max(0, Math.trunc(size)), align);
  }

  /** Allocates a NUL-terminated copy of `s` and returns its address. */
  allocCString(s: string): number {
    const b = stringBytes(s);
    const a = this.alloc(b.length + 1, 1);
    this.poke(a, b);
    return a;
  }

  /** Allocates a struct, writes `value` (missing fields zero) and returns its address. */
  allocStruct<F extends readonly FieldSpec[]>(def: StructDef<F>, value: StructInput<F> = {}): number {
    const a = this.alloc(def.size, def.align);
    this.poke(a, def.encode(value));
    return a;
  }

  /** Decodes the struct at `addr`. */
  readStruct<F extends readonly FieldSpec[]>(def: StructDef<F>, addr: Arg): StructValue<F> {
    return def.decode(this.peek(addr, def.size));
  }

  /** Encodes `value` (missing fields zero) at `addr`. */
  writeStruct<F extends readonly FieldSpec[]>(def: StructDef<F>, addr: Arg, value: StructInput<F>): void {
    this.poke(addr, def.encode(value));
  }

  /** Reads a little-endian s32 at `addr`. */
  readS32(addr: Arg): number {
    return new DataView(this.peek(addr, 4).buffer).getInt32(0, true);
  }

  /** Writes a little-endian 32-bit value at `addr`. */
  writeU32(addr: Arg, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.poke(addr, b);
  }

  /** The file behind `fd`, for tests and tools that look at kernel state (not a syscall). */
  fileOf(fd: number) {
    const f = this.kernelTask.files?.lookup(fd) ?? null;
    return f;
  }
}
