/**
 * The built-in step kinds. Importing this module registers them; device modules
 * (accelerator, RDMA) add theirs the same way, with their own `registerStepKind` calls.
 */
import './basic.ts';
import './sync.ts';
import './memory.ts';
import './dma-buf.ts';
import './channel.ts';
import './accel.ts';
import './gpu.ts';
import './rdma.ts';
import './scanout.ts';
import './syncobj.ts';
import './lock-demo.ts';
import './snapshot.ts';
