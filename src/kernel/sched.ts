/**
 * task_struct and `current` (include/linux/sched.h), with task_work
 * (kernel/task_work.c).
 *
 * A simulated thread that belongs to a user process has a `TaskStruct`: its comm, pid
 * (the thread group id) and tid, and the fd table and address space it shares with the
 * other threads of its process. `current()` returns the task of the executing thread,
 * or null in hard-IRQ context, kernel threads and workers (as kernel code must not use
 * `current->files` there either).
 *
 * task_work: callbacks queued on a task to run when it returns to userspace. The model
 * runs them at the end of every syscall and at exit; the last `fput` of a file is
 * deferred this way, as in fs/file_table.c, so a file's `release` runs in the
 * closing task, after the syscall's own work and outside its locks.
 */
import type { ExecContext } from '../sim/engine.ts';
import type { FilesStruct } from './fdtable.ts';
import { currentKernel, type Kernel } from './kernel.ts';
import type { MmStruct } from './mm/mmap.ts';

/** TASK_COMM_LEN: the comm buffer holds 15 characters and a NUL. */
export const TASK_COMM_LEN = 16;

/** A queued task_work callback; may be async (a file release may sleep). */
export type TaskWorkFunc = () => void | Promise<void>;

/** The kernel's view of one user thread. */
export class TaskStruct {
  /** Command name, at most 15 characters (get_task_comm). */
  readonly comm: string;
  /** Pending task_work, run in queue order (see `taskWorkRun`). */
  taskWorks: TaskWorkFunc[] = [];
  /** Set once the thread group is exiting (a fatal signal is pending). */
  exiting = false;

  /** Creates the task of a thread. */
  constructor(
    /** The kernel the task runs in. */
    readonly kernel: Kernel,
    /** The simulated thread. */
    readonly ctx: ExecContext,
    /** Thread group id (the process id, getpid). */
    readonly tgid: number,
    /** Thread id (gettid). */
    readonly pid: number,
    comm: string,
    /** The fd table (shared by the threads of a process). */
    public files: FilesStruct | null,
    /** The address space (shared by the threads of a process). */
    public mm: MmStruct | null,
  ) {
    this.comm = comm.slice(0, TASK_COMM_LEN - 1);
  }
}

const TASKS = Symbol('task_structs');

function taskMap(k: Kernel): WeakMap<ExecContext, TaskStruct> {
  let m = k.singletons.get(TASKS) as WeakMap<ExecContext, TaskStruct> | undefined;
  if (!m) {
    m = new WeakMap();
    k.singletons.set(TASKS, m);
  }
  return m;
}

/** Attaches `task` to its simulated thread, so `current()` finds it. */
export function attachTask(task: TaskStruct): void {
  taskMap(task.kernel).set(task.ctx, task);
}

/** Detaches a task from its thread (the thread has exited). */
export function detachTask(task: TaskStruct): void {
  taskMap(task.kernel).delete(task.ctx);
}

/** The task of the executing thread, or null outside a user thread (IRQ, kthread, worker). */
export function current(): TaskStruct | null {
  const k = currentKernel();
  return taskMap(k).get(k.ctx) ?? null;
}

/** The task of `ctx`, if it is a user thread. */
export function taskOf(k: Kernel, ctx: ExecContext): TaskStruct | null {
  return taskMap(k).get(ctx) ?? null;
}

/** task_work_add(): queues `fn` to run when `task` returns to userspace. */
export function taskWorkAdd(task: TaskStruct, fn: TaskWorkFunc): void {
  task.taskWorks.push(fn);
}

/**
 * task_work_run(): runs the queued work until none is left (work may queue more). As in
 * kernel/task_work.c, work is pushed on a stack, so each batch runs newest first: the
 * files a process exits with are released from the highest fd down, after which the
 * files its mappings held go.
 */
export async function taskWorkRun(task: TaskStruct): Promise<void> {
  while (task.taskWorks.length > 0) {
    const works = task.taskWorks;
    task.taskWorks = [];
    for (let i = works.length - 1; i >= 0; i--) await works[i]();
  }
}

const GROUPS = Symbol('thread_groups');

/** The live thread groups of a kernel by tgid (their leader tasks), for /proc/<pid>. */
export function threadGroups(k: Kernel = currentKernel()): Map<number, TaskStruct> {
  let m = k.singletons.get(GROUPS) as Map<number, TaskStruct> | undefined;
  if (!m) {
    m = new Map();
    k.singletons.set(GROUPS, m);
  }
  return m;
}
