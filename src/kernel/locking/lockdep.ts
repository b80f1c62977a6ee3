/**
 * Lockdep: the runtime locking correctness validator (kernel/locking/lockdep.c,
 * kernel/locking/lockdep_internals.h, lockdep_states.h, include/linux/lockdep.h,
 * include/linux/lockdep_types.h, Linux 6.12).
 *
 * Every lock has a `LockdepMap` naming its lock class. Classes are found by key: an
 * explicit key object or string, or the map itself for a lock with a class of its own
 * (the kernel's static locks). Two keys with the same name give two classes, the second
 * printed `name#2`; a subclass (mutex_lock_nested) is printed `name/1`. Classes live per
 * kernel (one `Lockdep` per `Kernel`).
 *
 * What it checks, as 6.12 does:
 * - each context (task, hard-IRQ) keeps a stack of held locks; taking a lock adds a
 *   dependency "held -> new" to a graph shared by all contexts, from the nearest held
 *   lock (and the trylocks above it), only for lock chains never seen before (the chain
 *   cache is a trie over the held classes);
 * - a new dependency that closes a strong cycle (read locks follow the kernel's
 *   -(xR)-> -(Sx)-> rule) is reported as `lockdep.circular`, even when no thread ever
 *   blocked; a same-class lock taken again is `lockdep.recursive` unless the acquisition
 *   names a held nest lock (ww_mutex acquire contexts) or is a recursive read;
 * - per class usage bits (IN-HARDIRQ, HARDIRQ-ON, and read variants): a class used in
 *   hard-IRQ and with interrupts enabled is `lockdep.inconsistent_irq`; a dependency or
 *   a new usage connecting an IRQ-safe class to an IRQ-unsafe one is
 *   `lockdep.irq_inversion`. SOFTIRQ-ON is recorded along with HARDIRQ-ON so usage strings
 *   read as in the kernel (`{+.+.}`); the model has no softirq context;
 * - locks held when a thread exits (`lockdep.held_at_exit`), unlocking a lock not held
 *   (`lockdep.bad_unlock`), a nest lock not held (`lockdep.nest_lock_not_held`);
 * - the fence signalling annotations (drivers/dma-buf/dma-fence.c): `dma_fence_map` is a
 *   lockdep map taken for read by dma_fence_begin_signalling and for write by
 *   __dma_fence_might_wait. A cycle closed by a fence wait is reported as
 *   `lockdep.fence_wait_in_signalling`; one closed by a blocking allocation (fs_reclaim,
 *   the MMU-notifier map) inside a section as `lockdep.reclaim_in_signalling`.
 *
 * Differences from 6.12, on purpose:
 * - the kernel turns itself off after its first report; the model goes on and reports
 *   each distinct problem once (a key per rule and classes);
 * - a fence wait directly inside a signalling section, with no lock in between, is
 *   reported (`lockdep.fence_wait_in_signalling`); 6.12 drops its read hold of
 *   dma_fence_map around the annotation and stays silent there;
 * - ww_mutex acquisitions under one acquire context keep one held entry per lock instead
 *   of the kernel's reference-counted merged entry; the graph is the same;
 * - redundant dependencies are stored (no check_redundant), and the chain printed is the
 *   BFS-shortest one over them;
 * - "where" is the thread and virtual time of an acquisition: the model has no stack
 *   traces. Dependencies recorded at boot by a priming function say so.
 */
import { ExecContext } from '../../sim/engine.ts';
import type { ReportObject } from '../../sim/report.ts';
import { currentKernel, type Kernel, type LockdepHooks } from '../kernel.ts';

/** A lock class key: an object or a string (all locks naming the same key share a class). */
export type LockClassKey = object | string;

/** Optional properties of a lockdep map. */
export interface LockdepMapOptions {
  /**
   * The rule under which a cycle closed by taking this lock inside a fence signalling
   * section is reported (fs_reclaim and the MMU-notifier map use
   * `lockdep.reclaim_in_signalling`).
   */
  signallingRule?: string;
  /** A label for the lock instance in held-lock lists (the kernel prints its address). */
  instance?: string;
}

/**
 * struct lockdep_map: the lockdep identity of one lock (or pseudo-lock). `key` selects
 * the class; null makes the map its own key, a class of its own.
 */
export class LockdepMap {
  /** See `LockdepMapOptions.signallingRule`. */
  readonly signallingRule: string | undefined;
  /** See `LockdepMapOptions.instance`. */
  instance: string | undefined;
  /** @internal the lockdep instance that filled `classCache`. */
  cacheOwner: Lockdep | null = null;
  /** @internal class for subclass 0 in `cacheOwner`. */
  classCache: LockClass | null = null;

  /** lockdep_init_map(): `name` is the class name printed in reports. */
  constructor(
    /** The class name. */
    readonly name: string,
    /** The class key; null for a class of its own. */
    readonly key: LockClassKey | null = null,
    opts: LockdepMapOptions = {},
  ) {
    this.signallingRule = opts.signallingRule;
    this.instance = opts.instance;
  }
}

// ------------------------------------------------------------ usage bits (lockdep_internals.h)

const LOCK_USED_IN_HARDIRQ = 0;
const LOCK_USED_IN_HARDIRQ_READ = 1;
const LOCK_ENABLED_HARDIRQ = 2;
const LOCK_ENABLED_SOFTIRQ = 6;
const LOCK_USED = 8;
const LOCK_USED_READ = 9;
const LOCK_USAGE_READ_MASK = 1;
const LOCK_USAGE_DIR_MASK = 2;
const LOCK_USAGE_STATE_MASK = ~(LOCK_USAGE_READ_MASK | LOCK_USAGE_DIR_MASK);
const LOCK_TRACE_STATES = 8;
const LOCKF_USED_IN_IRQ_ALL = 0x33;
const LOCKF_ENABLED_IRQ_ALL = 0xcc;
const LOCKF_IRQ = 0x55;
const LOCKF_IRQ_READ = 0xaa;

const USAGE_STR = [
  'IN-HARDIRQ-W',
  'IN-HARDIRQ-R',
  'HARDIRQ-ON-W',
  'HARDIRQ-ON-R',
  'IN-SOFTIRQ-W',
  'IN-SOFTIRQ-R',
  'SOFTIRQ-ON-W',
  'SOFTIRQ-ON-R',
  'INITIAL USE',
  'INITIAL READ USE',
];
const STATE_NAMES = ['HARDIRQ', 'SOFTIRQ'];

function stateName(bit: number): string {
  const s = STATE_NAMES[bit >> 2];
  return bit & LOCK_USAGE_READ_MASK ? `${s}-READ` : s;
}

function exclusiveBit(bit: number): number {
  return (bit & LOCK_USAGE_STATE_MASK) | ((bit & LOCK_USAGE_DIR_MASK) ^ LOCK_USAGE_DIR_MASK);
}

function invertDirMask(mask: number): number {
  return (
    ((mask & LOCKF_ENABLED_IRQ_ALL) >> LOCK_USAGE_DIR_MASK) |
    ((mask & LOCKF_USED_IN_IRQ_ALL) << LOCK_USAGE_DIR_MASK)
  );
}

function exclusiveMask(mask: number): number {
  let excl = invertDirMask(mask);
  excl |= (excl & LOCKF_IRQ_READ) >> LOCK_USAGE_READ_MASK;
  excl |= (excl & LOCKF_IRQ) << LOCK_USAGE_READ_MASK;
  return excl;
}

// ------------------------------------------------------------ dependency kinds

const DEP_SR = 1;
const DEP_SN = 4;
const DEP_EN = 8;

function calcDep(prev: HeldLock, next: HeldLock): number {
  return 1 << ((prev.read === 0 ? 1 : 0) + ((next.read !== 2 ? 1 : 0) << 1));
}

function calcDepb(prev: HeldLock, next: HeldLock): number {
  return 1 << ((next.read !== 2 ? 1 : 0) + ((prev.read === 0 ? 1 : 0) << 1));
}

/** Where something was first seen: a thread and a virtual time. */
export interface LockdepSite {
  /** The context label (`name/tid`, `irq`). */
  by: string;
  /** Virtual time, ns. */
  at: number;
  /** A function name for dependencies recorded by priming code at boot. */
  fn?: string;
}

/** A dependency `from -> to`: `to` was taken while `from` was held. */
export interface LockDependency {
  /** The held class. */
  readonly from: LockClass;
  /** The class taken while `from` was held. */
  readonly to: LockClass;
  /** DEP_* bits (shared/exclusive holder, recursive/non-recursive taker). */
  dep: number;
  /** The same bits seen from `to` (calc_depb). */
  depb: number;
  /** Where the dependency was first recorded. */
  readonly site: LockdepSite;
}

/** struct lock_class: a class of locks, a node of the dependency graph. */
export class LockClass {
  /** Usage bits (LOCK_USED_IN_HARDIRQ ...). */
  usageMask = 0;
  /** Where each usage bit was first set. */
  readonly usageSites: (LockdepSite | undefined)[] = [];
  /** Dependencies on locks taken after this one, in the order recorded. */
  readonly after: LockDependency[] = [];
  /** Dependencies from locks held when this one was taken. */
  readonly before: LockDependency[] = [];
  /** @internal lookup of `after` by target. */
  readonly afterMap = new Map<LockClass, LockDependency>();
  /** @internal BFS generation mark. */
  bfsGen = 0;

  /** Created by lockdep when a key is first used. */
  constructor(
    /** Index in the lockdep instance, from 0. */
    readonly id: number,
    /** The key. */
    readonly key: LockClassKey,
    /** The name. */
    readonly name: string,
    /** Subclass (mutex_lock_nested). */
    readonly subclass: number,
    /** 1 for the first key with this name, 2 for the next... */
    readonly nameVersion: number,
    /** Rule for cycles closed by taking this class inside a signalling section. */
    readonly signallingRule: string | undefined,
  ) {}

  /** The class name as the kernel prints it: `name`, `name#2`, `name/1`. */
  get label(): string {
    let s = this.name;
    if (this.nameVersion > 1) s += `#${this.nameVersion}`;
    if (this.subclass) s += `/${this.subclass}`;
    return s;
  }

  /** The four usage characters, hardirq then softirq, write then read (`+.+.`). */
  get usageChars(): string {
    return (
      usageChar(this.usageMask, LOCK_USED_IN_HARDIRQ) +
      usageChar(this.usageMask, LOCK_USED_IN_HARDIRQ_READ) +
      usageChar(this.usageMask, 4) +
      usageChar(this.usageMask, 5)
    );
  }
}

function usageChar(mask: number, bit: number): string {
  if (mask & (1 << (bit + LOCK_USAGE_DIR_MASK))) return mask & (1 << bit) ? '?' : '+';
  return mask & (1 << bit) ? '-' : '.';
}

/** struct held_lock: one entry of a context's held-lock stack. */
export interface HeldLock {
  /** The lock's map. */
  readonly map: LockdepMap;
  /** Its class. */
  readonly cls: LockClass;
  /** 0 exclusive, 1 shared, 2 shared recursive. */
  readonly read: 0 | 1 | 2;
  /** Taken with a trylock. */
  readonly trylock: boolean;
  /** Validated (false for maps taken with check = 0). */
  readonly check: boolean;
  /** Interrupts were off when it was taken. */
  readonly hardirqsOff: boolean;
  /** The nest lock named by the acquisition (ww acquire context). */
  readonly nest: LockdepMap | null;
  /** Virtual time it was taken, ns. */
  readonly at: number;
  /** @internal the lock chain ending with this entry. */
  chain: ChainNode;
}

/** A node of the lock-chain cache: the held classes from the bottom of a stack. */
class ChainNode {
  children: Map<number, ChainNode> | null = null;
  validated = false;
  /** The child looked up last, to skip the map on repeated chains. */
  private lastId = -1;
  private lastChild: ChainNode | null = null;

  child(id: number): ChainNode {
    if (id === this.lastId) return this.lastChild!;
    if (this.children === null) this.children = new Map();
    let n = this.children.get(id);
    if (n === undefined) {
      n = new ChainNode();
      this.children.set(id, n);
    }
    this.lastId = id;
    this.lastChild = n;
    return n;
  }
}

/** A held_lock entry (a class, so every entry has one shape; entries are recycled). */
class HeldEntry implements HeldLock {
  constructor(
    public map: LockdepMap,
    public cls: LockClass,
    public read: 0 | 1 | 2,
    public trylock: boolean,
    public check: boolean,
    public hardirqsOff: boolean,
    public nest: LockdepMap | null,
    public at: number,
    public chain: ChainNode,
  ) {}
}

interface BfsEntry {
  cls: LockClass;
  parent: BfsEntry | null;
  dep: LockDependency | null;
  onlyXr: boolean;
}

/** A function run when lockdep starts on a kernel, to prime the graph (an initcall). */
export type LockdepBootHook = (lockdep: Lockdep, ctx: ExecContext) => void;

const bootHooks: { name: string; fn: LockdepBootHook }[] = [];

/**
 * Registers a function that primes the dependency graph of every kernel created from
 * now on with lockdep enabled (the kernel's `subsys_initcall` under CONFIG_LOCKDEP, such
 * as dma_resv_lockdep). `name` is shown as the site of the dependencies it records.
 */
export function registerLockdepBootHook(name: string, fn: LockdepBootHook): void {
  if (!bootHooks.some((h) => h.name === name)) bootHooks.push({ name, fn });
}

/**
 * The map standing for "inside a fence signalling critical section"
 * (dma_fence_lockdep_map in drivers/dma-buf/dma-fence.c).
 */
export const dmaFenceLockdepMap = new LockdepMap('dma_fence_map');

const EMPTY_HELD: HeldLock[] = [];

/** The lock validator of one kernel. Created by the kernel when lockdep is on. */
export class Lockdep implements LockdepHooks {
  /** Every class, by id. */
  readonly classes: LockClass[] = [];
  private readonly byKey = new Map<LockClassKey, LockClass[]>();
  private readonly nameCount = new Map<string, number>();
  private readonly keyVersion = new Map<LockClassKey, number>();
  private readonly rootChain = new ChainNode();
  private readonly reported = new Set<string>();
  private bfsGen = 0;
  private bootSite: string | undefined = undefined;

  private readonly engine: Kernel['engine'];
  /** Released held-lock entries, for reuse. */
  private readonly pool: HeldEntry[] = [];

  /** Starts lockdep on `kernel`: installs the fence-signalling hooks and runs the boot hooks. */
  constructor(readonly kernel: Kernel) {
    this.engine = kernel.engine;
    kernel.lockdepHooks = this;
    for (const h of bootHooks) {
      const ctx = new ExecContext('task', 'swapper', 0, kernel);
      this.bootSite = h.name;
      try {
        h.fn(this, ctx);
      } finally {
        this.bootSite = undefined;
      }
    }
  }

  /** Number of dependencies in the graph. */
  get dependencyCount(): number {
    let n = 0;
    for (const c of this.classes) n += c.after.length;
    return n;
  }

  /** The class named `label` (as printed), if it exists. */
  findClass(label: string): LockClass | undefined {
    return this.classes.find((c) => c.label === label);
  }

  /** The held-lock stack of `ctx` (innermost last; entries are reused once released, copy what you keep). */
  held(ctx: ExecContext): readonly HeldLock[] {
    const s = ctx.kdata as { held: unknown[] } | null;
    return s === null ? EMPTY_HELD : (s.held as HeldLock[]);
  }

  private heldOf(ctx: ExecContext): HeldLock[] {
    const s = ctx.kdata as { held: unknown[] } | null;
    return (s === null ? this.kernel.state(ctx).held : s.held) as HeldLock[];
  }

  // ---------------------------------------------------------- classes

  /** register_lock_class(): the class of `map` for `subclass`, created on first use. */
  classOf(map: LockdepMap, subclass = 0): LockClass {
    if (subclass === 0 && map.cacheOwner === this && map.classCache !== null) return map.classCache;
    const key = map.key ?? map;
    let list = this.byKey.get(key);
    if (list === undefined) {
      list = [];
      this.byKey.set(key, list);
    }
    let cls = list[subclass];
    if (cls === undefined) {
      let version = this.keyVersion.get(key);
      if (version === undefined) {
        version = (this.nameCount.get(map.name) ?? 0) + 1;
        this.nameCount.set(map.name, version);
        this.keyVersion.set(key, version);
      }
      cls = new LockClass(this.classes.length, key, map.name, subclass, version, map.signallingRule);
      this.classes.push(cls);
      list[subclass] = cls;
    }
    if (subclass === 0) {
      map.cacheOwner = this;
      map.classCache = cls;
    }
    return cls;
  }

  // ---------------------------------------------------------- acquire / release

  /**
   * lock_acquire(): `ctx` takes the lock of `map`. `read` is 0 (exclusive), 1 (shared),
   * 2 (shared recursive); `check` false records the lock without validating it; `nest`
   * is the lock that serialises nesting of this class (a ww acquire context).
   */
  acquire(
    ctx: ExecContext,
    map: LockdepMap,
    subclass = 0,
    trylock = false,
    read: 0 | 1 | 2 = 0,
    check = true,
    nest: LockdepMap | null = null,
  ): void {
    const cls = subclass === 0 && map.cacheOwner === this ? map.classCache! : this.classOf(map, subclass);
    const held = this.heldOf(ctx);
    const hardirqsOff = ctx.kind === 'hardirq' || ctx.irqsDisabled > 0;
    let h = this.pool.pop();
    if (h === undefined) {
      h = new HeldEntry(map, cls, read, trylock, check, hardirqsOff, nest, this.engine.now, this.rootChain);
    } else {
      h.map = map;
      h.cls = cls;
      h.read = read;
      h.trylock = trylock;
      h.check = check;
      h.hardirqsOff = hardirqsOff;
      h.nest = nest;
      h.at = this.engine.now;
    }
    // Fast path: every usage bit this acquisition would set is already set.
    const r = read ? LOCK_USAGE_READ_MASK : 0;
    let need = 1 << (read ? LOCK_USED_READ : LOCK_USED);
    if (check) {
      if (!trylock && ctx.kind === 'hardirq') need |= 1 << (LOCK_USED_IN_HARDIRQ + r);
      if (!hardirqsOff) need |= (1 << (LOCK_ENABLED_HARDIRQ + r)) | (1 << (LOCK_ENABLED_SOFTIRQ + r));
    }
    if ((cls.usageMask & need) !== need) this.markUsage(ctx, held, h);
    if (nest !== null && !held.some((x) => x.map === nest)) this.reportNestNotHeld(ctx, held, h);
    this.push(ctx, held, h);
  }

  /** Links `h` into the chain cache, validates a new chain, and pushes it. */
  private push(ctx: ExecContext, held: HeldLock[], h: HeldLock): void {
    const depth = held.length;
    const parent = depth === 0 ? this.rootChain : held[depth - 1].chain;
    const node = parent.child(h.cls.id * 4 + h.read);
    h.chain = node;
    if (!h.trylock && h.check && !node.validated) {
      node.validated = true;
      const r = this.checkDeadlock(ctx, held, h);
      if (r === 1 && depth > 0) this.checkPrevsAdd(ctx, held, h);
    }
    held.push(h);
  }

  /** lock_release(): `ctx` releases the lock of `map` (the innermost hold of it). */
  release(ctx: ExecContext, map: LockdepMap): void {
    const held = this.heldOf(ctx);
    let i = held.length - 1;
    if (i >= 0 && held[i].map === map) {
      this.pool.push(held.pop() as HeldEntry);
      return;
    }
    while (i >= 0 && held[i].map !== map) i--;
    if (i < 0) {
      this.reportBadUnlock(ctx, held, map);
      return;
    }
    // Not the innermost: drop it and relink the ones above (reacquire_held_locks). They
    // are not validated again: their dependencies on the locks below are already known.
    const above = held.splice(i);
    this.pool.push(above[0] as HeldEntry);
    for (let j = 1; j < above.length; j++) {
      const h = above[j];
      h.chain = (held.length === 0 ? this.rootChain : held[held.length - 1].chain).child(
        h.cls.id * 4 + h.read,
      );
      held.push(h);
    }
  }

  /** lock_is_held_type(): `read` -1 any hold, 0 exclusive, 1 shared (recursive or not). */
  isHeld(ctx: ExecContext, map: LockdepMap, read: -1 | 0 | 1 = -1): boolean {
    const held = this.held(ctx);
    for (let i = held.length - 1; i >= 0; i--) {
      const h = held[i];
      if (h.map === map && (read === -1 || (h.read !== 0 ? 1 : 0) === read)) return true;
    }
    return false;
  }

  /** lockdep_hardirqs_on(): interrupts come back on in `ctx`; every held lock becomes HARDIRQ-ON. */
  hardirqsOn(ctx: ExecContext): void {
    const held = this.heldOf(ctx);
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      if (!h.check) continue;
      const r = h.read ? LOCK_USAGE_READ_MASK : 0;
      this.markLock(ctx, held, h, LOCK_ENABLED_HARDIRQ + r);
      this.markLock(ctx, held, h, LOCK_ENABLED_SOFTIRQ + r);
    }
  }

  /** debug_check_no_locks_held(): called when a thread exits. */
  checkNoLocksHeld(ctx: ExecContext): void {
    const held = this.held(ctx);
    if (held.length === 0) return;
    const lines = [
      '====================================',
      `WARNING: ${ctx.label} still has locks held!`,
      this.ident(),
      '------------------------------------',
      this.heldLocksText(ctx),
    ];
    this.emit(
      'lockdep.held_at_exit',
      `held_at_exit:${ctx.label}`,
      lines,
      ctx,
      held.map((h) => h.cls),
    );
  }

  // ---------------------------------------------------------- fence signalling map

  /** dma_fence_begin_signalling(): a shared (non-recursive) read of dma_fence_map. */
  signallingBegin(ctx: ExecContext): void {
    this.acquire(ctx, dmaFenceLockdepMap, 0, false, 1, true, null);
  }

  /** dma_fence_end_signalling(). */
  signallingEnd(ctx: ExecContext): void {
    this.release(ctx, dmaFenceLockdepMap);
  }

  /**
   * __dma_fence_might_wait(): a write acquisition and release of dma_fence_map, so that
   * waiting under any lock also taken inside a signalling section closes a cycle. A wait
   * directly inside a section is reported here (see the module comment).
   */
  fenceMightWait(ctx: ExecContext): void {
    const held = this.heldOf(ctx);
    let i = held.length - 1;
    while (i >= 0 && held[i].map !== dmaFenceLockdepMap) i--;
    if (i >= 0) {
      this.reportWaitInSignalling(ctx, held, held[i]);
      return;
    }
    this.acquire(ctx, dmaFenceLockdepMap, 0, false, 0, true, null);
    this.release(ctx, dmaFenceLockdepMap);
  }

  // ---------------------------------------------------------- usage

  private markUsage(ctx: ExecContext, held: HeldLock[], h: HeldLock): void {
    if (h.check) {
      const r = h.read ? LOCK_USAGE_READ_MASK : 0;
      if (!h.trylock && ctx.kind === 'hardirq') this.markLock(ctx, held, h, LOCK_USED_IN_HARDIRQ + r);
      if (!h.hardirqsOff) {
        this.markLock(ctx, held, h, LOCK_ENABLED_HARDIRQ + r);
        this.markLock(ctx, held, h, LOCK_ENABLED_SOFTIRQ + r);
      }
    }
    this.markLock(ctx, held, h, h.read ? LOCK_USED_READ : LOCK_USED);
  }

  /** mark_lock(): sets a usage bit; a new IRQ bit is checked against the class and the graph. */
  private markLock(ctx: ExecContext, held: HeldLock[], h: HeldLock, bit: number): void {
    const cls = h.cls;
    const m = 1 << bit;
    if (cls.usageMask & m) return;
    cls.usageMask |= m;
    if (bit < LOCK_TRACE_STATES) cls.usageSites[bit] = this.site(ctx);
    if (bit >= LOCK_USED) return;
    // mark_lock_irq()
    const excl = exclusiveBit(bit);
    const read = bit & LOCK_USAGE_READ_MASK;
    if (cls.usageMask & (1 << excl)) {
      this.reportUsageBug(ctx, held, h, excl, bit);
      return;
    }
    if (!read && cls.usageMask & (1 << (excl + LOCK_USAGE_READ_MASK))) {
      this.reportUsageBug(ctx, held, h, excl + LOCK_USAGE_READ_MASK, bit);
      return;
    }
    const mask = (1 << excl) | (1 << (excl + LOCK_USAGE_READ_MASK));
    if (bit & LOCK_USAGE_DIR_MASK) {
      // ENABLED: no class held before this one may be used in IRQ.
      const root: BfsEntry = { cls, parent: null, dep: null, onlyXr: h.read !== 0 };
      const found = this.bfs(root, false, (e) => usageMatch(e, mask));
      if (found !== null) this.reportIrqInversion(ctx, held, h, root, found, false, excl);
    } else {
      const root: BfsEntry = { cls, parent: null, dep: null, onlyXr: h.read === 2 };
      const found = this.bfs(root, true, (e) => usageMatch(e, mask));
      if (found !== null) this.reportIrqInversion(ctx, held, h, root, found, true, excl);
    }
  }

  // ---------------------------------------------------------- graph checks

  /** check_deadlock(): 0 reported, 1 fine, 2 same class held under a held nest lock. */
  private checkDeadlock(ctx: ExecContext, held: HeldLock[], next: HeldLock): 0 | 1 | 2 {
    let nestHeld = false;
    for (let i = 0; i < held.length; i++) {
      const prev = held[i];
      if (next.nest !== null && prev.map === next.nest) nestHeld = true;
      if (prev.cls !== next.cls) continue;
      if (next.read === 2 && prev.read) continue;
      if (nestHeld) return 2;
      this.reportRecursive(ctx, held, prev, next);
      return 0;
    }
    return 1;
  }

  /** check_prevs_add(): dependencies from the nearest held lock and the trylocks above it. */
  private checkPrevsAdd(ctx: ExecContext, held: HeldLock[], next: HeldLock): void {
    for (let i = held.length - 1; i >= 0; i--) {
      const prev = held[i];
      if (!prev.check) continue;
      if (!this.checkPrevAdd(ctx, held, prev, next)) return;
      if (!prev.trylock) return;
    }
  }

  /** check_prev_add(): validates and records `prev -> next`. False when reported. */
  private checkPrevAdd(ctx: ExecContext, held: HeldLock[], prev: HeldLock, next: HeldLock): boolean {
    // check_noncircular(): can `next` already reach `prev`?
    const root: BfsEntry = { cls: next.cls, parent: null, dep: null, onlyXr: next.read === 2 };
    const found = this.bfs(root, true, (e) => e.cls === prev.cls && (prev.read === 0 || !e.onlyXr));
    if (found !== null) {
      if (prev.cls === next.cls) this.reportRecursive(ctx, held, prev, next);
      else this.reportCircular(ctx, held, prev, next, found);
      return false;
    }
    if (!this.checkIrqUsage(ctx, held, prev, next)) return false;
    const existing = prev.cls.afterMap.get(next.cls);
    if (existing !== undefined) {
      existing.dep |= calcDep(prev, next);
      existing.depb |= calcDepb(prev, next);
      return true;
    }
    const d: LockDependency = {
      from: prev.cls,
      to: next.cls,
      dep: calcDep(prev, next),
      depb: calcDepb(prev, next),
      site: this.site(ctx),
    };
    prev.cls.after.push(d);
    prev.cls.afterMap.set(next.cls, d);
    next.cls.before.push(d);
    return true;
  }

  /** check_irq_usage(): the new dependency must not lead from an IRQ-safe to an IRQ-unsafe class. */
  private checkIrqUsage(ctx: ExecContext, held: HeldLock[], prev: HeldLock, next: HeldLock): boolean {
    let usage = 0;
    const back: BfsEntry = { cls: prev.cls, parent: null, dep: null, onlyXr: prev.read !== 0 };
    this.bfs(back, false, (e) => {
      usage |= e.onlyXr ? e.cls.usageMask & LOCKF_IRQ : e.cls.usageMask;
      return false;
    });
    usage &= LOCKF_USED_IN_IRQ_ALL;
    if (usage === 0) return true;
    const fwdMask = exclusiveMask(usage);
    const fwd: BfsEntry = { cls: next.cls, parent: null, dep: null, onlyXr: next.read === 2 };
    const unsafe = this.bfs(fwd, true, (e) => usageMatch(e, fwdMask));
    if (unsafe === null) return true;
    const backMask = exclusiveMask(unsafe.cls.usageMask & LOCKF_ENABLED_IRQ_ALL);
    const back2: BfsEntry = { cls: prev.cls, parent: null, dep: null, onlyXr: prev.read !== 0 };
    const safe = this.bfs(back2, false, (e) => usageMatch(e, backMask));
    if (safe === null) return true;
    // find_exclusive_match()
    let safeBit = -1;
    let unsafeBit = -1;
    for (let bit = 0; bit < LOCK_USED && safeBit < 0; bit++) {
      if (!(safe.cls.usageMask & (1 << bit))) continue;
      const ex = exclusiveBit(bit);
      if (unsafe.cls.usageMask & (1 << ex)) {
        safeBit = bit;
        unsafeBit = ex;
      } else if (unsafe.cls.usageMask & (1 << (ex | LOCK_USAGE_READ_MASK))) {
        safeBit = bit;
        unsafeBit = ex | LOCK_USAGE_READ_MASK;
      }
    }
    if (safeBit < 0) return true;
    this.reportBadIrqDependency(ctx, held, prev, next, safe, unsafe, safeBit, unsafeBit);
    return false;
  }

  /** __bfs(): breadth-first search along strong dependency paths. */
  private bfs(root: BfsEntry, forwards: boolean, match: (e: BfsEntry) => boolean): BfsEntry | null {
    const gen = ++this.bfsGen;
    const queue: BfsEntry[] = [root];
    for (let head = 0; head < queue.length; head++) {
      const e = queue[head];
      if (e.cls.bfsGen === gen) continue;
      e.cls.bfsGen = gen;
      if (e.parent !== null) {
        let dep = forwards ? e.dep!.dep : e.dep!.depb;
        if (e.parent.onlyXr) dep &= ~(DEP_SR | DEP_SN);
        if (dep === 0) continue;
        e.onlyXr = (dep & (DEP_SN | DEP_EN)) === 0;
      }
      if (match(e)) return e;
      const list = forwards ? e.cls.after : e.cls.before;
      for (let i = 0; i < list.length; i++) {
        const d = list[i];
        queue.push({ cls: forwards ? d.to : d.from, parent: e, dep: d, onlyXr: false });
      }
    }
    return null;
  }

  // ---------------------------------------------------------- reports

  private site(ctx: ExecContext): LockdepSite {
    const s: LockdepSite = { by: ctx.label, at: this.kernel.engine.now };
    if (this.bootSite !== undefined) s.fn = this.bootSite;
    return s;
  }

  private ident(): string {
    return `${this.kernel.name}: virtual time ${this.kernel.engine.now} ns (dmabuf-lab model of Linux 6.12)`;
  }

  /** The `(name){usage}` form of a class. */
  private className(cls: LockClass): string {
    return `(${cls.label}){${cls.usageChars}}`;
  }

  private lockLine(h: HeldLock, acquiring = false): string {
    const inst = h.map.instance !== undefined ? `${h.map.instance} ` : '';
    const kind = h.read === 0 ? '' : h.read === 1 ? ' [read]' : ' [recursive read]';
    return `${inst}${this.className(h.cls)}${kind}, ${acquiring ? 'at' : 'acquired at'} ${h.at} ns`;
  }

  private static siteText(s: LockdepSite | undefined): string {
    if (s === undefined) return 'unknown';
    return `${s.by} at ${s.at} ns${s.fn !== undefined ? ` in ${s.fn}()` : ''}`;
  }

  /** lockdep_print_held_locks(): `N locks held by T:` and one line per lock. */
  heldLocksText(ctx: ExecContext, held: readonly HeldLock[] = this.held(ctx)): string {
    if (held.length === 0) return `no locks held by ${ctx.label}.`;
    const lines = [`${held.length} lock${held.length === 1 ? '' : 's'} held by ${ctx.label}:`];
    for (let i = 0; i < held.length; i++) lines.push(` #${i}: ${this.lockLine(held[i])}`);
    return lines.join('\n');
  }

  private emit(rule: string, key: string, lines: string[], ctx: ExecContext, classes: LockClass[]): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    const objects: ReportObject[] = [];
    if (ctx.kind === 'task') objects.push({ kind: 'task', name: ctx.label, id: ctx.id });
    else objects.push({ kind: ctx.kind, name: ctx.label });
    const seen = new Set<LockClass>();
    for (const c of classes) {
      if (seen.has(c)) continue;
      seen.add(c);
      objects.push({ kind: 'lock_class', name: c.label, id: c.id });
    }
    this.kernel.report('lockdep', rule, lines.join('\n'), objects);
  }

  private reportCircular(
    ctx: ExecContext,
    held: HeldLock[],
    prev: HeldLock,
    next: HeldLock,
    found: BfsEntry,
  ): void {
    const path: BfsEntry[] = [];
    for (let e: BfsEntry | null = found; e !== null; e = e.parent) path.push(e);
    const cycle = path.map((e) => e.cls);
    let rule = 'lockdep.circular';
    let why = '';
    const fenceMap = cycle.find((c) => c.key === dmaFenceLockdepMap);
    if (next.map === dmaFenceLockdepMap && next.read === 0) {
      rule = 'lockdep.fence_wait_in_signalling';
      why =
        `\n${ctx.label} waits on a dma_fence while holding ${prev.cls.label}, which is also taken inside a ` +
        'fence signalling critical section: the fence may need that lock to signal.\n';
    } else if (fenceMap !== undefined && next.cls.signallingRule !== undefined) {
      rule = next.cls.signallingRule;
      why =
        `\n${ctx.label} takes ${next.cls.label} inside a fence signalling critical section: ` +
        'memory reclaim may wait on the fence being signalled (blocking allocation; use GFP_NOWAIT or GFP_ATOMIC).\n';
    } else if (fenceMap !== undefined) {
      why = `\nthe cycle goes through ${fenceMap.label}: a fence signalling critical section is involved.\n`;
    }
    const depth = path.length - 1;
    const lines = [
      '======================================================',
      'WARNING: possible circular locking dependency detected',
      this.ident(),
      '------------------------------------------------------',
      `${ctx.label} is trying to acquire lock:`,
      ` ${this.lockLine(next, true)}`,
      '',
      'but task is already holding lock:',
      ` ${this.lockLine(prev)}`,
      '',
      'which lock already depends on the new lock.',
      why,
      '',
      'the existing dependency chain (in reverse order) is:',
    ];
    let d = depth;
    for (const e of path) {
      lines.push('', `-> #${d} ${this.className(e.cls)}:`);
      if (e.dep !== null) {
        lines.push(`       taken while holding ${e.dep.from.label}: ${Lockdep.siteText(e.dep.site)}`);
      } else {
        lines.push(
          `       taken while holding ${prev.cls.label}: ${ctx.label} at ${this.kernel.engine.now} ns (this acquisition)`,
        );
      }
      d--;
    }
    lines.push('', 'other info that might help us debug this:', '');
    const parent = found.parent !== null ? found.parent.cls : next.cls;
    if (parent !== next.cls) {
      lines.push('Chain exists of:', `  ${next.cls.label} --> ${parent.label} --> ${prev.cls.label}`, '');
    }
    lines.push(
      ' Possible unsafe locking scenario:',
      '',
      '       CPU0                    CPU1',
      '       ----                    ----',
      `  ${prev.read ? 'rlock' : 'lock'}(${prev.cls.label});`,
      `                               lock(${parent.label});`,
      `                               lock(${prev.cls.label});`,
      `  ${next.read ? 'rlock' : 'lock'}(${next.cls.label});`,
      '',
      ' *** DEADLOCK ***',
      '',
      this.heldLocksText(ctx, held),
    );
    this.emit(rule, `circular:${prev.cls.id}->${next.cls.id}`, lines, ctx, [next.cls, prev.cls, ...cycle]);
  }

  private reportRecursive(ctx: ExecContext, held: HeldLock[], prev: HeldLock, next: HeldLock): void {
    const lines = [
      '============================================',
      'WARNING: possible recursive locking detected',
      this.ident(),
      '--------------------------------------------',
      `${ctx.label} is trying to acquire lock:`,
      ` ${this.lockLine(next, true)}`,
      '',
      'but task is already holding lock:',
      ` ${this.lockLine(prev)}`,
      '',
      'other info that might help us debug this:',
      ' Possible unsafe locking scenario:',
      '',
      '       CPU0',
      '       ----',
      `  lock(${prev.cls.label});`,
      `  lock(${next.cls.label});`,
      '',
      ' *** DEADLOCK ***',
      '',
      ' May be due to missing lock nesting notation',
      '',
      this.heldLocksText(ctx, held),
    ];
    this.emit('lockdep.recursive', `recursive:${next.cls.id}`, lines, ctx, [next.cls]);
  }

  private irqState(ctx: ExecContext): string {
    const hc = ctx.kind === 'hardirq' ? 1 : 0;
    const he = ctx.kind !== 'hardirq' && ctx.irqsDisabled === 0 ? 1 : 0;
    return `[HC${hc}[${hc}]:SC0[0]:HE${he}:SE${he}]`;
  }

  private reportUsageBug(
    ctx: ExecContext,
    held: HeldLock[],
    h: HeldLock,
    prevBit: number,
    newBit: number,
  ): void {
    const lines = [
      '================================',
      'WARNING: inconsistent lock state',
      this.ident(),
      '--------------------------------',
      `inconsistent {${USAGE_STR[prevBit]}} -> {${USAGE_STR[newBit]}} usage.`,
      `${ctx.label} ${this.irqState(ctx)} takes:`,
      ` ${this.lockLine(h, true)}`,
      `{${USAGE_STR[prevBit]}} state was registered at:`,
      `  ${Lockdep.siteText(h.cls.usageSites[prevBit])}`,
      '',
      'other info that might help us debug this:',
      ' Possible unsafe locking scenario:',
      '',
      '       CPU0',
      '       ----',
      `  lock(${h.cls.label});`,
      '  <Interrupt>',
      `    lock(${h.cls.label});`,
      '',
      ' *** DEADLOCK ***',
      '',
      this.heldLocksText(ctx, held),
    ];
    this.emit('lockdep.inconsistent_irq', `usage:${h.cls.id}:${prevBit}:${newBit}`, lines, ctx, [h.cls]);
  }

  private irqScenario(safe: LockClass, unsafe: LockClass, middle: LockClass): string[] {
    const lines: string[] = [];
    if (middle !== unsafe) {
      lines.push('Chain exists of:', `  ${safe.label} --> ${middle.label} --> ${unsafe.label}`, '');
    }
    lines.push(
      ' Possible interrupt unsafe locking scenario:',
      '',
      '       CPU0                    CPU1',
      '       ----                    ----',
      `  lock(${unsafe.label});`,
      '                               local_irq_disable();',
      `                               lock(${safe.label});`,
      `                               lock(${middle.label});`,
      '  <Interrupt>',
      `    lock(${safe.label});`,
      '',
      ' *** DEADLOCK ***',
      '',
    );
    return lines;
  }

  private pathText(leaf: BfsEntry): string[] {
    const lines: string[] = [];
    for (let e: BfsEntry | null = leaf; e !== null; e = e.parent) {
      lines.push(` -> ${this.className(e.cls)}`);
      if (e.dep !== null) {
        lines.push(
          `    ${e.dep.from.label} -> ${e.dep.to.label} first seen: ${Lockdep.siteText(e.dep.site)}`,
        );
      }
    }
    return lines;
  }

  private reportIrqInversion(
    ctx: ExecContext,
    held: HeldLock[],
    h: HeldLock,
    root: BfsEntry,
    other: BfsEntry,
    forwards: boolean,
    bit: number,
  ): void {
    const irqclass =
      other.cls.usageMask & (1 << bit) ? stateName(bit) : stateName(bit + LOCK_USAGE_READ_MASK);
    let middle: BfsEntry | null = null;
    for (let e: BfsEntry | null = other; e !== null && e !== root; e = e.parent) middle = e;
    const scenario = forwards
      ? this.irqScenario(root.cls, other.cls, middle !== null ? middle.cls : root.cls)
      : this.irqScenario(other.cls, root.cls, middle !== null ? middle.cls : other.cls);
    const lines = [
      '========================================================',
      'WARNING: possible irq lock inversion dependency detected',
      this.ident(),
      '--------------------------------------------------------',
      `${ctx.label} just changed the state of lock:`,
      ` ${this.lockLine(h)}`,
      forwards
        ? `but this lock took another, ${irqclass}-unsafe lock in the past:`
        : `but this lock was taken by another, ${irqclass}-safe lock in the past:`,
      ` ${this.className(other.cls)}`,
      '',
      'and interrupts could create inverse lock ordering between them.',
      '',
      '',
      'other info that might help us debug this:',
      ...scenario,
      this.heldLocksText(ctx, held),
      '',
      'the shortest dependencies between 2nd lock and 1st lock:',
      ...this.pathText(other),
    ];
    const a = Math.min(h.cls.id, other.cls.id);
    const b = Math.max(h.cls.id, other.cls.id);
    this.emit('lockdep.irq_inversion', `irq:${a}:${b}`, lines, ctx, [h.cls, other.cls]);
  }

  private reportBadIrqDependency(
    ctx: ExecContext,
    held: HeldLock[],
    prev: HeldLock,
    next: HeldLock,
    safe: BfsEntry,
    unsafe: BfsEntry,
    safeBit: number,
    unsafeBit: number,
  ): void {
    const irqclass = stateName(safeBit);
    const lines = [
      '=====================================================',
      `WARNING: ${irqclass}-safe -> ${irqclass}-unsafe lock order detected`,
      this.ident(),
      '-----------------------------------------------------',
      `${ctx.label} ${this.irqState(ctx)} is trying to acquire:`,
      ` ${this.lockLine(next, true)}`,
      '',
      'and this task is already holding:',
      ` ${this.lockLine(prev)}`,
      'which would create a new lock dependency:',
      ` ${this.className(prev.cls)} -> ${this.className(next.cls)}`,
      '',
      `but this new dependency connects a ${irqclass}-irq-safe lock:`,
      ` ${this.className(safe.cls)}`,
      '',
      `... which became ${irqclass}-irq-safe at:`,
      `  ${Lockdep.siteText(safe.cls.usageSites[safeBit])}`,
      '',
      `to a ${irqclass}-irq-unsafe lock:`,
      ` ${this.className(unsafe.cls)}`,
      '',
      `... which became ${irqclass}-irq-unsafe at:`,
      `  ${Lockdep.siteText(unsafe.cls.usageSites[unsafeBit])}`,
      '',
      'other info that might help us debug this:',
      '',
      ...this.irqScenario(safe.cls, unsafe.cls, safe.cls === prev.cls ? next.cls : prev.cls),
      this.heldLocksText(ctx, held),
      '',
      `the dependencies between ${irqclass}-irq-safe lock and the holding lock:`,
      ...this.pathText(safe),
      '',
      `the dependencies between the lock to be acquired and ${irqclass}-irq-unsafe lock:`,
      ...this.pathText(unsafe),
    ];
    this.emit('lockdep.irq_inversion', `irqdep:${safe.cls.id}:${unsafe.cls.id}`, lines, ctx, [
      next.cls,
      prev.cls,
      safe.cls,
      unsafe.cls,
    ]);
  }

  private reportBadUnlock(ctx: ExecContext, held: HeldLock[], map: LockdepMap): void {
    const cls = this.classOf(map);
    const lines = [
      '=====================================',
      'WARNING: bad unlock balance detected!',
      this.ident(),
      '-------------------------------------',
      `${ctx.label} is trying to release lock (${cls.label}) at ${this.kernel.engine.now} ns`,
      'but there are no more locks to release!',
      '',
      'other info that might help us debug this:',
      this.heldLocksText(ctx, held),
    ];
    this.emit('lockdep.bad_unlock', `unlock:${ctx.label}:${cls.id}`, lines, ctx, [cls]);
  }

  private reportNestNotHeld(ctx: ExecContext, held: HeldLock[], h: HeldLock): void {
    const lines = [
      '==================================',
      'WARNING: Nested lock was not taken',
      this.ident(),
      '----------------------------------',
      `${ctx.label} is trying to lock:`,
      ` ${this.lockLine(h, true)}`,
      '',
      'but this task is not holding:',
      h.nest!.name,
      '',
      'other info that might help us debug this:',
      this.heldLocksText(ctx, held),
    ];
    this.emit('lockdep.nest_lock_not_held', `nest:${h.cls.id}`, lines, ctx, [h.cls]);
  }

  private reportWaitInSignalling(ctx: ExecContext, held: HeldLock[], section: HeldLock): void {
    const lines = [
      '==============================================================',
      'WARNING: possible deadlock: dma_fence wait inside a fence signalling critical section',
      this.ident(),
      '--------------------------------------------------------------',
      `${ctx.label} is about to wait on a dma_fence (__dma_fence_might_wait) while inside a`,
      'fence signalling critical section (dma_fence_begin_signalling .. dma_fence_end_signalling):',
      'the fences this section must signal may depend on the one it waits for.',
      '',
      'the section was entered with:',
      ` ${this.lockLine(section)}`,
      '',
      'other info that might help us debug this:',
      ' Possible unsafe locking scenario:',
      '',
      '       CPU0',
      '       ----',
      `  rlock(${section.cls.label});   /* dma_fence_begin_signalling */`,
      `  lock(${section.cls.label});    /* dma_fence_wait */`,
      '',
      ' *** DEADLOCK ***',
      '',
      this.heldLocksText(ctx, held),
    ];
    const key = `fence_wait:${held.map((h) => h.cls.id).join(',')}`;
    this.emit(
      'lockdep.fence_wait_in_signalling',
      key,
      lines,
      ctx,
      held.map((h) => h.cls),
    );
  }
}

function usageMatch(e: BfsEntry, mask: number): boolean {
  return e.onlyXr ? (e.cls.usageMask & LOCKF_IRQ & mask) !== 0 : (e.cls.usageMask & mask) !== 0;
}

// ------------------------------------------------------------ the kernel API (include/linux/lockdep.h)

/** lock_acquire() in the current context; no-op when lockdep is off. */
export function lockAcquire(
  map: LockdepMap,
  subclass = 0,
  trylock = false,
  read: 0 | 1 | 2 = 0,
  check = true,
  nest: LockdepMap | null = null,
): void {
  const k = currentKernel();
  k.lockdep?.acquire(k.ctx, map, subclass, trylock, read, check, nest);
}

/** lock_release() in the current context. */
export function lockRelease(map: LockdepMap): void {
  const k = currentKernel();
  k.lockdep?.release(k.ctx, map);
}

/** lock_map_acquire(): an exclusive acquisition of a pseudo-lock. */
export function lockMapAcquire(map: LockdepMap): void {
  lockAcquire(map, 0, false, 0, true, null);
}

/** lock_map_acquire_read(): a recursive read acquisition of a pseudo-lock. */
export function lockMapAcquireRead(map: LockdepMap): void {
  lockAcquire(map, 0, false, 2, true, null);
}

/** lock_map_release(). */
export function lockMapRelease(map: LockdepMap): void {
  lockRelease(map);
}

/** lock_is_held(): true when the current context holds `map`; always true with lockdep off. */
export function lockIsHeld(map: LockdepMap): boolean {
  const k = currentKernel();
  return k.lockdep === null ? true : k.lockdep.isHeld(k.ctx, map, -1);
}

/** lock_is_held_type(): `read` 0 exclusive, 1 shared; false with lockdep off. */
export function lockIsHeldType(map: LockdepMap, read: 0 | 1): boolean {
  const k = currentKernel();
  return k.lockdep?.isHeld(k.ctx, map, read) === true;
}

/** lockdep_assert_held(): WARN unless the current context holds `map` (no-op with lockdep off). */
export function lockdepAssertHeld(map: LockdepMap): void {
  const k = currentKernel();
  if (k.lockdep === null || k.lockdep.isHeld(k.ctx, map, -1)) return;
  k.warn('lockdep.assert_held', `WARNING: lockdep_assert_held(${map.name}) failed in ${k.ctx.label}`, [
    { kind: 'lock_class', name: map.name },
  ]);
}

/** lockdep_assert_not_held(): WARN when the current context holds `map`. */
export function lockdepAssertNotHeld(map: LockdepMap): void {
  const k = currentKernel();
  if (k.lockdep === null || !k.lockdep.isHeld(k.ctx, map, -1)) return;
  k.warn(
    'lockdep.assert_not_held',
    `WARNING: lockdep_assert_not_held(${map.name}) failed in ${k.ctx.label}`,
    [{ kind: 'lock_class', name: map.name }],
  );
}
