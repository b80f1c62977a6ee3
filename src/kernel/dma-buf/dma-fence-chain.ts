/**
 * dma_fence_chain: one point of a timeline, a node that wraps one fence and links to the
 * previous point (drivers/dma-buf/dma-fence-chain.c, include/linux/dma-fence-chain.h,
 * Linux 6.12).
 *
 * A node signals once its own fence and the fences of every earlier node have signalled,
 * in whatever order they do. Walking the chain garbage-collects finished predecessors:
 * the walked node's `prev` is spliced past them.
 *
 * Follows 6.12: the node is set up with plain dma_fence_init and gets 64-bit seqno
 * comparison from `dmaFenceChainOps.use64bitSeqno` (there is no SEQNO64 flag bit).
 *
 * The model's differences from C are of form only: RCU pointers are plain fields (a task
 * runs alone between two awaits, so the kernel's cmpxchg always sees what it read unless
 * code in between, e.g. irq_work run by a nested signal, changed it; the compare is kept
 * for that case), and the `cb`/`work` union is a callback object plus a pending flag.
 * Allocation never fails in the model.
 */
import { errno } from '../errno.ts';
import { SpinLock } from '../locking/spinlock.ts';
import {
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  dmaFenceContextAlloc,
  dmaFenceGet,
  dmaFenceSeqnoIsLater,
} from './dma-fence.ts';

/** The callback slot of a chain node, knowing the node it belongs to. */
export class DmaFenceChainCb extends DmaFenceCb {
  /** Creates the slot of `chain`. */
  constructor(
    /** The node whose callback this is. */
    readonly chain: DmaFenceChain,
  ) {
    super();
  }
}

/** Memory for one chain node from `dmaFenceChainAlloc`, not yet a fence. */
export class DmaFenceChainAllocation {
  /** Set once `dmaFenceChainInit` has built a node in it (then only `put` may free it). */
  node: DmaFenceChain | null = null;
  /** Set by `dmaFenceChainFree`. */
  freed = false;
}

/**
 * A chain node (struct dma_fence_chain). Constructing one is dma_fence_chain_init on
 * fresh memory: it consumes the caller's references to `prev` and `fence`.
 */
export class DmaFenceChain extends DmaFence {
  /** The previous point: a chain node, any other fence, or null (RCU-protected in C). */
  prev: DmaFence | null;
  /** The seqno `prev` had when this node was created, 0 when the context is new. */
  prevSeqno: number;
  /** The contained fence. */
  fence: DmaFence;
  /** The callback slot used to wait on the first unsignalled contained fence. */
  readonly cb: DmaFenceChainCb;
  /** The irq_work is queued and has not run yet. */
  workPending = false;
  /** The irq_work function (dma_fence_chain_irq_work bound to this node). */
  readonly work: () => void;

  /** dma_fence_chain_init(): consumes the references to `prev` and `fence`. */
  constructor(prev: DmaFence | null, fence: DmaFence, seqno: number) {
    const prevChain = toDmaFenceChain(prev);
    let context: number;
    let prevSeqno = 0;
    // Reuse the previous node's context when this point comes after it.
    if (prevChain !== null && dmaFenceSeqnoIsLater(seqno, prevChain.seqno, prevChain.ops)) {
      context = prevChain.context;
      prevSeqno = prevChain.seqno;
    } else {
      context = dmaFenceContextAlloc(1);
      // Never go backwards on a timeline.
      if (prevChain !== null) seqno = Math.max(prevChain.seqno, seqno);
    }
    super(dmaFenceChainOps, new SpinLock('dma_fence_chain.lock'), context, seqno);
    this.prev = prev;
    this.prevSeqno = prevSeqno;
    this.fence = fence;
    this.cb = new DmaFenceChainCb(this);
    this.work = () => chainIrqWork(this);
    // Chains may only be linked through `prev`; a contained chain must be flattened first.
    if (dmaFenceIsChain(fence)) {
      this.kernel.warn(
        'dma_fence_chain.contains_chain',
        `WARNING: dma_fence_chain_init: contained fence ${fence} is itself a dma_fence_chain`,
        [this.reportObject(), fence.reportObject()],
      );
    }
  }
}

/** dma_fence_is_chain(): the fence is a chain node (its ops are the chain ops). */
export function dmaFenceIsChain(fence: DmaFence): boolean {
  return fence.ops === dmaFenceChainOps;
}

/** to_dma_fence_chain(): the node, or null for null and for other fences. */
export function toDmaFenceChain(fence: DmaFence | null | undefined): DmaFenceChain | null {
  if (!fence || fence.ops !== dmaFenceChainOps) return null;
  return fence as DmaFenceChain;
}

/** dma_fence_chain_contained(): a node's contained fence, or the fence itself. */
export function dmaFenceChainContained(fence: DmaFence): DmaFence;
/** dma_fence_chain_contained() for a possibly-null fence. */
export function dmaFenceChainContained(fence: DmaFence | null): DmaFence | null;
export function dmaFenceChainContained(fence: DmaFence | null): DmaFence | null {
  const chain = toDmaFenceChain(fence);
  return chain !== null ? chain.fence : fence;
}

/** dma_fence_chain_alloc(): memory for one node (never fails in the model). */
export function dmaFenceChainAlloc(): DmaFenceChainAllocation {
  return new DmaFenceChainAllocation();
}

/**
 * dma_fence_chain_free(): frees memory that was never initialised. A node that was
 * initialised must be released with `put` instead (WARN; nothing is freed).
 */
export function dmaFenceChainFree(mem: DmaFenceChainAllocation | null): void {
  if (mem === null) return;
  if (mem.node !== null) {
    mem.node.kernel.warn(
      'dma_fence_chain.free_initialised',
      `WARNING: dma_fence_chain_free on initialised node ${mem.node}; use dma_fence_put`,
      [mem.node.reportObject()],
    );
    return;
  }
  mem.freed = true;
}

/**
 * dma_fence_chain_init(): builds a node in `mem` linking `fence` (seqno `seqno`) after
 * `prev`, consuming the caller's references to both, and returns it.
 */
export function dmaFenceChainInit(
  mem: DmaFenceChainAllocation,
  prev: DmaFence | null,
  fence: DmaFence,
  seqno: number,
): DmaFenceChain {
  if (mem.freed || mem.node !== null) {
    throw new Error('dma_fence_chain_init: the memory was already freed or initialised');
  }
  mem.node = new DmaFenceChain(prev, fence, seqno);
  return mem.node;
}

/** dma_fence_chain_get_prev(): a new reference to `chain.prev`, or null. */
function chainGetPrev(chain: DmaFenceChain): DmaFence | null {
  const prev = chain.prev;
  return prev === null ? null : prev.get();
}

/**
 * dma_fence_chain_walk(): consumes the reference to `fence` and returns a new reference
 * to the next node to visit, or null at the end (or for a fence that is not a node).
 * Predecessors whose contained fence has signalled are unlinked on the way.
 */
export function dmaFenceChainWalk(fence: DmaFence): DmaFence | null {
  const chain = toDmaFenceChain(fence);
  if (chain === null) {
    fence.put();
    return null;
  }
  let prev: DmaFence | null;
  for (;;) {
    prev = chainGetPrev(chain);
    if (prev === null) break;
    const prevChain = toDmaFenceChain(prev);
    let replacement: DmaFence | null;
    if (prevChain !== null) {
      if (!prevChain.fence.isSignaled()) break;
      replacement = chainGetPrev(prevChain);
    } else {
      if (!prev.isSignaled()) break;
      replacement = null;
    }
    // cmpxchg(&chain->prev, prev, replacement)
    const tmp = chain.prev;
    if (tmp === prev) {
      chain.prev = replacement;
      tmp.put(); // the reference chain.prev held
    } else if (replacement !== null) {
      replacement.put();
    }
    prev.put();
  }
  fence.put();
  return prev;
}

/**
 * dma_fence_chain_for_each(): yields `head` (with a new reference), then each node the
 * walk visits; advancing consumes the previous reference. A consumer that breaks out of
 * the loop owns the reference to the fence it holds and must put it, as in C.
 */
export function* dmaFenceChainForEach(head: DmaFence | null): Generator<DmaFence, void, undefined> {
  for (let iter = dmaFenceGet(head); iter !== null; iter = dmaFenceChainWalk(iter)) {
    yield iter;
  }
}

/**
 * dma_fence_chain_find_seqno(): moves `pfence.value` to the node whose completion implies
 * point `seqno`, or to null when that point has already completed. Returns 0, or -EINVAL
 * (`pfence` untouched) when the fence is not a node or `seqno` is beyond it. `seqno` 0 is
 * a no-op. On success the caller's reference is consumed and a new one returned.
 */
export function dmaFenceChainFindSeqno(pfence: { value: DmaFence | null }, seqno: number): number {
  if (!seqno) return 0;
  const chain = toDmaFenceChain(pfence.value);
  if (chain === null || chain.seqno < seqno) return -errno.EINVAL;
  let iter: DmaFence | null = chain.get();
  while (iter !== null) {
    // A plain fence reached by the walk (another context in practice) ends the search
    // too; the kernel would read prev_seqno through a NULL node pointer only if it
    // shared the chain's context.
    const node = toDmaFenceChain(iter);
    if (iter.context !== chain.context || node === null || node.prevSeqno < seqno) break;
    iter = dmaFenceChainWalk(iter);
  }
  pfence.value = iter;
  chain.put();
  return 0;
}

// ------------------------------------------------------------ ops

function chainIrqWork(chain: DmaFenceChain): void {
  chain.workPending = false;
  // Re-arm on the next unsignalled fence; when there is none, the node is complete.
  if (!chainEnableSignaling(chain)) chain.signal();
  chain.put();
}

function chainCb(f: DmaFence, cb: DmaFenceCb): void {
  const chain = (cb as DmaFenceChainCb).chain;
  // Signal from irq_work, never inside the contained fence's callback (lock inversion).
  if (!chain.workPending) {
    chain.workPending = true;
    chain.kernel.engine.queueIrqWork(chain.work);
  }
  f.put();
}

function chainEnableSignaling(fence: DmaFence): boolean {
  const head = fence as DmaFenceChain;
  head.get();
  let iter: DmaFence | null = head.get();
  while (iter !== null) {
    const f = dmaFenceChainContained(iter).get();
    if (f.addCallback(head.cb, chainCb) === 0) {
      iter.put();
      return true; // the references to head and f go with the callback
    }
    f.put();
    iter = dmaFenceChainWalk(iter);
  }
  head.put();
  return false;
}

function chainSignaled(fence: DmaFence): boolean {
  let iter: DmaFence | null = fence.get();
  while (iter !== null) {
    if (!dmaFenceChainContained(iter).isSignaled()) {
      iter.put();
      return false;
    }
    iter = dmaFenceChainWalk(iter);
  }
  return true;
}

function chainRelease(fence: DmaFence): void {
  const chain = fence as DmaFenceChain;
  // Unlink the predecessors we hold the last reference to, one by one, so releasing a
  // long chain does not recurse once per node.
  let prev = chain.prev;
  for (; prev !== null; prev = chain.prev) {
    if (prev.refcount > 1) break;
    const prevChain = toDmaFenceChain(prev);
    if (prevChain === null) break;
    chain.prev = prevChain.prev;
    prevChain.prev = null;
    prev.put();
  }
  chain.prev = null;
  if (prev !== null) prev.put();
  chain.fence.put();
}

function chainSetDeadline(fence: DmaFence, deadline: number): void {
  for (const iter of dmaFenceChainForEach(fence)) {
    dmaFenceChainContained(iter).setDeadline(deadline);
  }
}

/** The ops of every chain node (dma_fence_chain_ops): 64-bit seqnos, "dma_fence_chain"/"unbound". */
export const dmaFenceChainOps: DmaFenceOps = Object.freeze({
  use64bitSeqno: true,
  getDriverName: () => 'dma_fence_chain',
  getTimelineName: () => 'unbound',
  enableSignaling: chainEnableSignaling,
  signaled: chainSignaled,
  release: chainRelease,
  setDeadline: chainSetDeadline,
});
