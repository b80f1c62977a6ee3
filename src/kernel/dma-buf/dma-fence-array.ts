/**
 * dma_fence_array: one fence standing for N others, signalled when all of them (or, with
 * `signalOnAny`, any one of them) have signalled (drivers/dma-buf/dma-fence-array.c,
 * include/linux/dma-fence-array.h, Linux 6.12).
 *
 * The array's error is the first non-zero error any child reports while the array is
 * pending; until it signals, `error` holds the sentinel PENDING_ERROR (1), which is
 * cleared to 0 when no child reported an error. Signalling is never done inside a child's
 * callback (with the child's lock held) but from irq_work queued there.
 *
 * The model keeps 6.12's behaviour, including its corners: an array created with
 * `signalOnAny` may keep callbacks on the children still pending after it signalled (they
 * drop their array references when those children signal), and the `signaled` op does
 * not copy child errors when signalling was never enabled. Arrays must not contain
 * containers (WARN). Allocation never fails in the model.
 */
import { currentKernel } from '../kernel.ts';
import { SpinLock } from '../locking/spinlock.ts';
import { DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT, DmaFence, DmaFenceCb, type DmaFenceOps } from './dma-fence.ts';
import { dmaFenceIsChain } from './dma-fence-chain.ts';

/** The value `error` holds while the array is pending and no child has failed. */
export const DMA_FENCE_ARRAY_PENDING_ERROR = 1;

const ENABLE_SIGNAL = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT;

/** A per-child callback slot (struct dma_fence_array_cb), knowing its array. */
export class DmaFenceArrayCb extends DmaFenceCb {
  /** Creates the slot of `array`. */
  constructor(
    /** The parent array. */
    readonly array: DmaFenceArray,
  ) {
    super();
  }
}

/** Memory for an array of up to `numFences` children from `dmaFenceArrayAlloc`. */
export class DmaFenceArrayAllocation {
  /** Set once `dmaFenceArrayInit` has built the array. */
  array: DmaFenceArray | null = null;

  /** Memory sized for `numFences` callback slots. */
  constructor(
    /** The number of children the memory has room for. */
    readonly numFences: number,
  ) {}
}

/**
 * A fence array (struct dma_fence_array). Constructing one is dma_fence_array_init on
 * fresh memory: it takes ownership of `fences` and of one reference to each element,
 * which are put on release.
 */
export class DmaFenceArray extends DmaFence {
  /** Number of children. */
  readonly numFences: number;
  /** Children still to signal before the array does (atomic_t in C; may go below 0). */
  numPending: number;
  /** The children. */
  readonly fences: DmaFence[];
  /** One callback slot per child. */
  readonly callbacks: DmaFenceArrayCb[];
  /** The irq_work is queued and has not run yet. */
  workPending = false;
  /** The irq_work function (irq_dma_fence_array_work bound to this array). */
  readonly work: () => void;

  /**
   * dma_fence_array_init(). WARN when `numFences` is 0 or `fences` is null. `seqno` is
   * an `unsigned` in C, so it is truncated to 32 bits.
   */
  constructor(
    numFences: number,
    fences: DmaFence[] | null,
    context: number,
    seqno: number,
    signalOnAny: boolean,
  ) {
    super(dmaFenceArrayOps, new SpinLock('dma_fence_array.lock'), context, seqno >>> 0);
    if (!numFences || !fences) {
      this.kernel.warn(
        'dma_fence_array.init_empty',
        `WARNING: dma_fence_array_init with ${fences ? 'no fences' : 'a NULL fence array'}`,
        [this.reportObject()],
      );
      if (numFences && !fences) {
        this.kernel.bug(
          'null_deref',
          'BUG: kernel NULL pointer dereference in dma_fence_array_init (fences is NULL)',
          [this.reportObject()],
        );
      }
    }
    this.numFences = numFences;
    this.fences = fences ?? [];
    this.callbacks = [];
    for (let i = 0; i < numFences; i++) this.callbacks.push(new DmaFenceArrayCb(this));
    this.work = () => arrayIrqWork(this);
    this.numPending = signalOnAny ? 1 : numFences;
    this.error = DMA_FENCE_ARRAY_PENDING_ERROR;
    // Containers inside an array make every operation recursive: callers must flatten.
    for (let i = numFences - 1; i >= 0; i--) {
      const f = this.fences[i];
      if (dmaFenceIsContainer(f)) {
        this.kernel.warn(
          'dma_fence_array.contains_container',
          `WARNING: dma_fence_array_init: element ${i} (${f}) is itself a fence container`,
          [this.reportObject(), f.reportObject()],
        );
      }
    }
  }
}

/** dma_fence_is_array(): the fence is a dma_fence_array (its ops are the array ops). */
export function dmaFenceIsArray(fence: DmaFence): boolean {
  return fence.ops === dmaFenceArrayOps;
}

/** dma_fence_is_container(): the fence is an array or a chain node. */
export function dmaFenceIsContainer(fence: DmaFence): boolean {
  return dmaFenceIsArray(fence) || dmaFenceIsChain(fence);
}

/** to_dma_fence_array(): the array, or null for null and for other fences. */
export function toDmaFenceArray(fence: DmaFence | null | undefined): DmaFenceArray | null {
  if (!fence || fence.ops !== dmaFenceArrayOps) return null;
  return fence as DmaFenceArray;
}

/** dma_fence_array_alloc(): memory for an array of `numFences` children (never fails in the model). */
export function dmaFenceArrayAlloc(numFences: number): DmaFenceArrayAllocation {
  return new DmaFenceArrayAllocation(numFences);
}

/**
 * dma_fence_array_init(): builds the array in `mem` (see `DmaFenceArray`) and returns it.
 * Overrunning the allocation is a BUG.
 */
export function dmaFenceArrayInit(
  mem: DmaFenceArrayAllocation,
  numFences: number,
  fences: DmaFence[] | null,
  context: number,
  seqno: number,
  signalOnAny: boolean,
): DmaFenceArray {
  if (mem.array !== null) throw new Error('dma_fence_array_init: the memory was already initialised');
  if (numFences > mem.numFences) {
    currentKernel().bug(
      'dma_fence_array.overrun',
      `BUG: dma_fence_array_init: ${numFences} fences overrun an allocation for ${mem.numFences}`,
    );
  }
  mem.array = new DmaFenceArray(numFences, fences, context, seqno, signalOnAny);
  return mem.array;
}

/**
 * dma_fence_array_create(): a new array of `numFences` children, taking ownership of
 * `fences` and of one reference per element. Signals when all children have signalled,
 * or when any has if `signalOnAny`.
 */
export function dmaFenceArrayCreate(
  numFences: number,
  fences: DmaFence[] | null,
  context: number,
  seqno: number,
  signalOnAny: boolean,
): DmaFenceArray {
  return dmaFenceArrayInit(dmaFenceArrayAlloc(numFences), numFences, fences, context, seqno, signalOnAny);
}

/**
 * dma_fence_match_context(): true when the fence, or for an array every child, belongs
 * to `context`.
 */
export function dmaFenceMatchContext(fence: DmaFence, context: number): boolean {
  const array = toDmaFenceArray(fence);
  if (array === null) return fence.context === context;
  for (let i = 0; i < array.numFences; i++) {
    if (array.fences[i].context !== context) return false;
  }
  return true;
}

/** dma_fence_array_first(): null for null, the fence itself for a non-array, else element 0 (or null). */
export function dmaFenceArrayFirst(head: DmaFence | null): DmaFence | null {
  if (!head) return null;
  const array = toDmaFenceArray(head);
  if (array === null) return head;
  if (!array.numFences) return null;
  return array.fences[0];
}

/** dma_fence_array_next(): element `index` of an array, or null past the end or for a non-array. */
export function dmaFenceArrayNext(head: DmaFence | null, index: number): DmaFence | null {
  const array = toDmaFenceArray(head);
  if (array === null || index >= array.numFences) return null;
  return array.fences[index];
}

/**
 * dma_fence_array_for_each(): yields each child of an array in order, or just `head` for
 * any other fence. No references are taken.
 */
export function* dmaFenceArrayForEach(head: DmaFence | null): Generator<DmaFence, void, undefined> {
  for (let i = 0, f = dmaFenceArrayFirst(head); f !== null; f = dmaFenceArrayNext(head, ++i)) {
    yield f;
  }
}

// ------------------------------------------------------------ ops

/** Records a child's error: only the first one, and only while the sentinel is there. */
function setPendingError(array: DmaFenceArray, error: number): void {
  if (error && array.error === DMA_FENCE_ARRAY_PENDING_ERROR) array.error = error;
}

/** Clears the sentinel when no child reported an error. */
function clearPendingError(array: DmaFenceArray): void {
  if (array.error === DMA_FENCE_ARRAY_PENDING_ERROR) array.error = 0;
}

function arrayIrqWork(array: DmaFenceArray): void {
  array.workPending = false;
  clearPendingError(array);
  array.signal();
  array.put();
}

function arrayCb(f: DmaFence, cb: DmaFenceCb): void {
  const array = (cb as DmaFenceArrayCb).array;
  setPendingError(array, f.error);
  if (--array.numPending === 0) {
    // The last needed child: signal from irq_work, which also drops this reference.
    if (!array.workPending) {
      array.workPending = true;
      array.kernel.engine.queueIrqWork(array.work);
    }
  } else {
    array.put();
  }
}

function arrayEnableSignaling(fence: DmaFence): boolean {
  const array = fence as DmaFenceArray;
  const cbs = array.callbacks;
  for (let i = 0; i < array.numFences; i++) {
    // Each callback holds its own array reference: the array may report itself
    // signalled before every callback has run.
    array.get();
    if (array.fences[i].addCallback(cbs[i], arrayCb)) {
      setPendingError(array, array.fences[i].error);
      array.put();
      if (--array.numPending === 0) {
        clearPendingError(array);
        return false;
      }
    }
  }
  return true;
}

function arraySignaled(fence: DmaFence): boolean {
  const array = fence as DmaFenceArray;
  let numPending = array.numPending;
  if (array.flags & ENABLE_SIGNAL) {
    if (numPending > 0) return false;
  } else {
    let done = false;
    for (let i = 0; i < array.numFences; i++) {
      if (array.fences[i].isSignaled() && !--numPending) {
        done = true;
        break;
      }
    }
    if (!done) return false;
  }
  clearPendingError(array);
  return true;
}

function arrayRelease(fence: DmaFence): void {
  const array = fence as DmaFenceArray;
  for (let i = 0; i < array.numFences; i++) array.fences[i].put();
}

function arraySetDeadline(fence: DmaFence, deadline: number): void {
  const array = fence as DmaFenceArray;
  for (let i = 0; i < array.numFences; i++) array.fences[i].setDeadline(deadline);
}

/** The ops of every array (dma_fence_array_ops): "dma_fence_array"/"unbound". */
export const dmaFenceArrayOps: DmaFenceOps = Object.freeze({
  getDriverName: () => 'dma_fence_array',
  getTimelineName: () => 'unbound',
  enableSignaling: arrayEnableSignaling,
  signaled: arraySignaled,
  release: arrayRelease,
  setDeadline: arraySetDeadline,
});
