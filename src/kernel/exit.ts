/**
 * Thread and process exit (kernel/exit.c do_exit, kernel/fork.c mmput,
 * fs/file.c put_files_struct).
 *
 * Each exiting thread runs, in the kernel's order: exit_mm (the last user of the address
 * space unmaps every VMA, lowest address first: drivers' `close`, then the file
 * references dropped), exit_files (the last user of the fd table closes every fd,
 * lowest first: `flush`, then fput), and exit_task_work (the deferred releases queued
 * by those fputs run now, in the exiting thread). Nothing a process held survives it
 * unless something else still references it.
 *
 * Unix sockets that the process left referring to each other only through messages in
 * flight are collected when it exits: the model runs unix_gc() then, where Linux runs
 * it at the next release of any unix socket.
 */
import { unixGc } from './af-unix.ts';
import { detachTask, type TaskStruct, taskWorkRun } from './sched.ts';

/** do_exit() for one thread; `lastThread` when it is the last of its process. */
export async function doExit(task: TaskStruct, lastThread: boolean): Promise<void> {
  if (lastThread) {
    const mm = task.mm;
    task.mm = null;
    mm?.exitMmap();
    const files = task.files;
    files?.closeAll();
    // The task keeps its (now empty) table until exit_task_work has run the releases.
  }
  await taskWorkRun(task);
  if (lastThread) {
    unixGc(task.kernel);
    await taskWorkRun(task);
    task.files = null;
  }
  detachTask(task);
}
