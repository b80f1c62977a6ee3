/**
 * dma_fence_unwrap: iterating over the leaf fences inside chain and array containers, and
 * merging several (possibly nested) fences into one flat fence
 * (drivers/dma-buf/dma-fence-unwrap.c, include/linux/dma-fence-unwrap.h, Linux 6.12).
 *
 * The iteration walks a chain with `dmaFenceChainWalk`, so it skips (and unlinks)
 * predecessors that have already signalled; inside an array it yields the elements in
 * order. The merge follows 6.12's __dma_fence_unwrap_merge: count the unsignalled
 * leaves; with none, return a private stub carrying the latest timestamp seen; otherwise
 * collect them, sort by context with the later fence of a context first, keep the first
 * per context, and return that fence alone or a new array (fresh context, seqno 1,
 * signal on all). The kernel sorts with lib/sort.c's heapsort, which is not stable; the
 * model uses the same algorithm (6.12's two-at-a-time extraction, lib/sort.c), so ties
 * (two distinct unsignalled fences with the same context and seqno) resolve like the
 * kernel's.
 */

import { sort } from '../lib/sort.ts';
import {
  type DmaFence,
  dmaFenceAllocatePrivateStub,
  dmaFenceContextAlloc,
  dmaFenceGet,
  dmaFenceIsLater,
} from './dma-fence.ts';
import { dmaFenceArrayCreate, dmaFenceArrayFirst, dmaFenceArrayNext } from './dma-fence-array.ts';
import { dmaFenceChainContained, dmaFenceChainWalk } from './dma-fence-chain.ts';

/** A cursor into nested containers (struct dma_fence_unwrap). */
export class DmaFenceUnwrap {
  /** The chain node being visited (holds a reference), or the head if it is not a chain. */
  chain: DmaFence | null = null;
  /** The chain node's contained fence: an array, or a plain fence. */
  array: DmaFence | null = null;
  /** The index last returned from `array`. */
  index = 0;
}

function unwrapArray(cursor: DmaFenceUnwrap): DmaFence | null {
  cursor.array = dmaFenceChainContained(cursor.chain);
  cursor.index = 0;
  return dmaFenceArrayFirst(cursor.array);
}

/**
 * dma_fence_unwrap_first(): starts iterating at `head` (taking a reference held by the
 * cursor) and returns the first leaf fence, or null.
 */
export function dmaFenceUnwrapFirst(head: DmaFence | null, cursor: DmaFenceUnwrap): DmaFence | null {
  cursor.chain = dmaFenceGet(head);
  return unwrapArray(cursor);
}

/** dma_fence_unwrap_next(): the next leaf fence, or null at the end (the cursor's reference is gone then). */
export function dmaFenceUnwrapNext(cursor: DmaFenceUnwrap): DmaFence | null {
  ++cursor.index;
  const tmp = dmaFenceArrayNext(cursor.array, cursor.index);
  if (tmp !== null) return tmp;
  cursor.chain = cursor.chain === null ? null : dmaFenceChainWalk(cursor.chain);
  return unwrapArray(cursor);
}

/**
 * dma_fence_unwrap_for_each(): yields every leaf fence inside `head` (just `head` when it
 * is not a container). Yielded fences carry no reference of their own. Running to the end
 * drops every reference the cursor took; a consumer that breaks out early leaves one on
 * `cursor.chain` and must put it, as in C.
 */
export function* dmaFenceUnwrapForEach(
  head: DmaFence | null,
  cursor: DmaFenceUnwrap = new DmaFenceUnwrap(),
): Generator<DmaFence, void, undefined> {
  for (let f = dmaFenceUnwrapFirst(head, cursor); f !== null; f = dmaFenceUnwrapNext(cursor)) {
    yield f;
  }
}

/** fence_cmp(): context ascending; within a context, the later fence first. */
function fenceCmp(a: DmaFence, b: DmaFence): number {
  if (a.context < b.context) return -1;
  if (a.context > b.context) return 1;
  if (dmaFenceIsLater(b, a)) return 1;
  if (dmaFenceIsLater(a, b)) return -1;
  return 0;
}

/**
 * __dma_fence_unwrap_merge(): merges the leaves of `fences` (null entries are allowed and
 * contribute nothing). Does not consume the callers' references; returns a new reference
 * (a private stub when every leaf has signalled, the one surviving leaf, or a new array),
 * or null when an allocation fails (never in the model).
 */
export function dmaFenceUnwrapMerge(...fences: (DmaFence | null)[]): DmaFence | null {
  let count = 0;
  let timestamp = 0;
  for (const head of fences) {
    for (const tmp of dmaFenceUnwrapForEach(head)) {
      if (!tmp.isSignaled()) {
        ++count;
      } else {
        const t = tmp.getTimestamp();
        if (t > timestamp) timestamp = t;
      }
    }
  }

  // Nothing pending: a signalled fence carrying the last signal time.
  if (count === 0) return dmaFenceAllocatePrivateStub(timestamp);

  // Collect again: some leaves may have signalled since they were counted.
  const array: DmaFence[] = [];
  for (const head of fences) {
    for (const tmp of dmaFenceUnwrapForEach(head)) {
      if (!tmp.isSignaled()) {
        // 6.12 sized the buffer from the first pass; more unsignalled leaves cannot
        // appear (a fence never goes back to unsignalled).
        if (array.length < count) array.push(tmp.get());
      } else {
        const t = tmp.getTimestamp();
        if (t > timestamp) timestamp = t;
      }
    }
  }
  count = array.length;

  if (count > 1) {
    sort(array, fenceCmp);
    // Keep only the most recent fence of each context.
    let j = 0;
    for (let i = 1; i < count; i++) {
      if (array[i].context === array[j].context) array[i].put();
      else array[++j] = array[i];
    }
    count = ++j;
    array.length = count;
    if (count > 1) return dmaFenceArrayCreate(count, array, dmaFenceContextAlloc(1), 1, false);
  }

  if (count === 0) return dmaFenceAllocatePrivateStub(timestamp);
  return array[0];
}
