/**
 * The DRM core's debugfs files (drivers/gpu/drm/drm_debugfs.c, Linux 6.12):
 * /sys/kernel/debug/dri/<unique>/{name,clients,gem_names}, also reachable as dri/<minor>/
 * for each minor (symlinks in Linux; the model registers the same files under each name).
 *
 * - name: `<driver> dev=<parent device>[ master=<busid>][ unique=<unique>]`, as the oracle
 *   printed `vgem dev=vgem unique=vgem`;
 * - clients: a header, then one line per open file, oldest first: command, tgid, minor,
 *   current master (y/n), authenticated (y/n), uid (root: 0), magic;
 * - gem_names: a header, then one line per flink name: name, size, handle count, refcount.
 */

import { threadGroups } from '../../../kernel/sched.ts';
import { singleOpen } from '../../../kernel/seq-file.ts';
import { registerDevice } from '../../../kernel/vfs.ts';
import { drmIsCurrentMaster } from './drm-auth.ts';
import type { DrmDevice } from './drm-drv.ts';

function pad(s: string | number, w: number): string {
  return String(s).padStart(w);
}

/** drm_name_info(). */
export function drmNameInfo(dev: DrmDevice): string {
  let s = dev.driver.name;
  s += ` dev=${dev.dev.name}`;
  if (dev.master?.unique) s += ` master=${dev.master.unique}`;
  if (dev.unique) s += ` unique=${dev.unique}`;
  return `${s}\n`;
}

/** drm_clients_info(). */
export function drmClientsInfo(dev: DrmDevice): string {
  let s = `${pad('command', 20)} ${pad('tgid', 5)} ${pad('dev', 3)} master a ${pad('uid', 5)} ${pad('magic', 10)}\n`;
  for (const priv of [...dev.filelist].reverse()) {
    const task = threadGroups(dev.kernel).get(priv.pid);
    s +=
      `${pad(task ? task.comm : '<unknown>', 20)} ${pad(priv.pid, 5)} ${pad(priv.minor.index, 3)}   ` +
      `${drmIsCurrentMaster(priv) ? 'y' : 'n'}    ${priv.authenticated ? 'y' : 'n'} ${pad(0, 5)} ${pad(priv.magic, 10)}\n`;
  }
  return s;
}

/** drm_gem_name_info(). */
export function drmGemNameInfo(dev: DrmDevice): string {
  let s = '  name     size handles refcount\n';
  for (const [name, obj] of dev.objectNameIdr.entries()) {
    if (!obj) continue;
    s += `${pad(name, 6)} ${pad(obj.size, 8)} ${pad(obj.handleCount, 7)} ${pad(obj.refcount, 8)}\n`;
  }
  return s;
}

/** drm_debugfs_dev_register() + drm_debugfs_register(): the device's debugfs files. */
export function drmDebugfsDevRegister(dev: DrmDevice): void {
  const dirs = [dev.unique];
  if (dev.primary) dirs.push(String(dev.primary.index));
  if (dev.render) dirs.push(String(dev.render.index));
  const files: [string, (d: DrmDevice) => string][] = [
    ['name', drmNameInfo],
    ['clients', drmClientsInfo],
    ['gem_names', drmGemNameInfo],
  ];
  for (const dir of dirs) {
    for (const [name, show] of files) {
      registerDevice(
        `/sys/kernel/debug/dri/${dir}/${name}`,
        singleOpen((m) => {
          m.puts(show(dev));
        }, `drm_debugfs_${name}`),
        { mode: 0o444 },
      );
    }
  }
}
