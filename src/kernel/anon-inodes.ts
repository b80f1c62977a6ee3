/**
 * Anonymous inode files (fs/anon_inodes.c): files with no path, such as sync_file,
 * that share one inode of the anon_inodefs pseudo filesystem. Their /proc/pid/fd link
 * reads `anon_inode:<name>`.
 *
 * The mount id (12) and the shared inode number (12) are the ones the oracle kernel
 * printed in fdinfo (oracle/outputs/dmabuf_probe.txt); both depend on boot order in
 * Linux and are fixed here.
 */
import { allocFilePseudo, type File, type FileOperations, Inode, S_IFREG, SuperBlock } from './file.ts';
import { currentKernel, type Kernel } from './kernel.ts';

/** Flags anon_inode_getfile keeps from its caller. */
const KEEP_FLAGS = 0o3 | 0o4000; // O_ACCMODE | O_NONBLOCK

const ANON = Symbol('anon_inode');

interface AnonState {
  sb: SuperBlock;
  inode: Inode;
}

function anonState(k: Kernel): AnonState {
  let s = k.singletons.get(ANON) as AnonState | undefined;
  if (!s) {
    const sb = new SuperBlock('anon_inodefs', 12, '00:0e');
    // anon_inode_inode: mode 0600 with no type bits (alloc_anon_inode).
    const inode = new Inode(sb, 12, 0o600 & ~S_IFREG);
    s = { sb, inode };
    k.singletons.set(ANON, s);
  }
  return s;
}

/** The anon_inodefs superblock. */
export function anonInodeSuperBlock(): SuperBlock {
  return anonState(currentKernel()).sb;
}

/**
 * anon_inode_getfile(): a new file named `anon_inode:<name>` on the shared anonymous
 * inode, with `fops`, `priv` as private data, and `flags` (only O_ACCMODE and
 * O_NONBLOCK are kept). Holds one reference.
 */
export function anonInodeGetfile(name: string, fops: FileOperations, priv: unknown, flags: number): File {
  const s = anonState(currentKernel());
  const f = allocFilePseudo(s.inode, `anon_inode:${name}`, flags & KEEP_FLAGS, fops);
  f.privateData = priv;
  return f;
}
