/**
 * Step kinds: the actions a scenario's processes perform, and the registry that turns
 * them into the scenario language.
 *
 * A step in a file is a map with exactly one action key (`sleep: 1ms`,
 * `sw_sync_fence: {timeline: tl, value: 1}`) plus fields every step may carry (`id`,
 * `as`, `expect`, `note`). Each action is a `StepKind`: the zod schema of its
 * arguments, what it binds to `as` (an fd, a mapping), the names it reads (so a file
 * that uses a name before binding it is rejected before anything runs), and `run`,
 * which performs it through the process's syscall ABI and returns the raw result
 * (`>= 0`, or `-errno`) as the kernel gave it.
 *
 * Kinds register themselves at import time (`registerStepKind`); the scenario schema,
 * its JSON Schema, the loader's checks and the runner all read the registry, so a
 * module that adds device steps (accelerator, RDMA) plugs in by registering its kinds
 * and nothing else changes.
 *
 * Not a kernel concept: this is the scenario language.
 */
import { z } from 'zod';
import type { OobChannel } from '../fabric/oob.ts';
import type { Sys } from '../uapi/sys.ts';
import { duration } from './units.ts';
import { ERRNO_NAMES } from './values.ts';

/** What a step can bind to a name. */
export type ValueType = 'fd' | 'mapping';

/** A file descriptor bound to a name. */
export interface FdValue {
  /** Discriminator. */
  type: 'fd';
  /** The fd number in the process. */
  fd: number;
  /** What it refers to, for reports: `sync_file`, `dma_buf`, `sw_sync timeline`, `memfd`... */
  what: string;
}

/** A CPU mapping bound to a name. */
export interface MappingValue {
  /** Discriminator. */
  type: 'mapping';
  /** User address of the mapping. */
  addr: number;
  /** Length in bytes. */
  length: number;
  /** The name of the fd it maps, if any. */
  of?: string;
}

/** A named value. */
export type BoundValue = FdValue | MappingValue;

/** What a step's `run` returns. */
export interface StepOutcome {
  /** The call's result as the kernel returned it: `>= 0` success, `-errno` failure. */
  ret: number;
  /** The value bound to the step's `as` name when the step succeeds. */
  value?: BoundValue;
  /** A short phrase for reports: `fd 5`, `revents POLLIN`, `status signaled`. */
  summary?: string;
  /** Structured details for JSON reports (struct contents read back, revents...). */
  detail?: Record<string, unknown>;
  /** Text read (from `cat`, `fdinfo`): shown in the report. */
  text?: string;
  /** A check the step makes failed (bytes differ, wrong status): what was wrong. */
  problem?: string;
  /** The data the step moved (DMA, P2P, RDMA), for reports and `bandwidth` expectations. */
  transfer?: TransferRecord;
}

/** What a step that moves data moved, how long it took and how fast that was. */
export interface TransferRecord {
  /** What moved it: `rdma_write`, `rdma_read`, `dma`, `p2p_read`. */
  kind: string;
  /** Bytes moved. */
  bytes: number;
  /** Virtual time it took, ns. */
  ns: number;
  /** Achieved rate, Gb/s (bits per ns). */
  gbps: number;
  /** The rate of the link it crossed, Gb/s, when there is one (an RDMA port). */
  lineRateGbps?: number;
  /** Where the bytes came from (`host1/accel0`, `host memory`). */
  from: string;
  /** Where they went. */
  to: string;
}

/** A name a step reads, for the loader's checks. */
export interface NameRef {
  /** The name. */
  name: string;
  /**
   * What the name must be: a bound value, a channel, a process, or an out-of-band
   * mailbox the step posts to (`oob-send`) or waits on (`oob-recv`; some step of the
   * scenario must post to it).
   */
  type: ValueType | 'channel' | 'process' | 'oob-send' | 'oob-recv';
  /** Path of the argument inside the step's arguments, for error positions. */
  path: (string | number)[];
}

/** A group of steps nested in a step (the branches of `parallel`). */
export interface NestedSteps {
  /** The branch's name (its thread's name). */
  name: string;
  /** The raw steps, as parsed. */
  steps: RawStep[];
  /** Path of the list inside the step's arguments. */
  path: (string | number)[];
}

/** A step as the schema parses it: one action key with its arguments, and the common fields. */
export type RawStep = { [kind: string]: unknown } & CommonStepFields;

/** Expectations a step can carry inline (`expect:`). */
export interface StepExpect {
  /** The step fails with this errno (`any`: with some errno). */
  errno?: string;
  /** The step takes at most this long, ns. */
  within?: number;
  /** The step has finished this long after the scenario started, ns. */
  by?: number;
  /** The step finishes no earlier than this long after the scenario started, ns. */
  after?: number;
}

/** Fields every step may carry. */
export interface CommonStepFields {
  /** An id that expectations and reports refer to. */
  id?: string;
  /** The name the step's result is bound to. */
  as?: string;
  /** Inline expectations. */
  expect?: StepExpect;
  /** A sentence shown in reports next to the step. */
  note?: string;
}

/** A step ready to run: its kind resolved, its arguments parsed, its place in the file known. */
export interface CompiledStep {
  /** The action's name. */
  kind: string;
  /** The kind's definition. */
  def: StepKind;
  /** Parsed arguments. */
  args: unknown;
  /** Common fields. */
  id?: string;
  /** Name bound to the result. */
  as?: string;
  /** Inline expectations. */
  expect?: StepExpect;
  /** Note shown in reports. */
  note?: string;
  /** The errno the file expects this step to fail with (inline or in the `expect` list), if any. */
  expectErrno?: string;
  /** Path of the step in the document (`processes.0.steps.3`). */
  path: (string | number)[];
  /** Line and column of the step in the file (1-based). */
  line: number;
  /** Column (1-based). */
  col: number;
  /** Nested branches (for `parallel`), compiled. */
  branches?: { name: string; steps: CompiledStep[] }[];
  /** Short description of the step for reports: `sw_sync_fence tl value 1`. */
  label: string;
}

/** What a running step can use. */
export interface StepContext {
  /** The thread's syscall ABI. */
  readonly sys: Sys;
  /** The process's name in the scenario. */
  readonly process: string;
  /** The thread's name (`main` or a `parallel` branch). */
  readonly thread: string;
  /** The host the process runs on (its kernel's name: `host1`...). */
  readonly host: string;
  /** The cluster's out-of-band channel (mailboxes shared by the processes of every host). */
  readonly oob: OobChannel;
  /** The host a process of the scenario runs on, or undefined if there is no such process. */
  hostOf(process: string): string | undefined;
  /** The fd bound to `name` (throws a step error if unbound or not an fd). */
  fd(name: string): number;
  /** The mapping bound to `name` (throws a step error if unbound or not a mapping). */
  mapping(name: string): MappingValue;
  /** The value bound to `name`, if any. */
  lookup(name: string): BoundValue | undefined;
  /** Forgets `name` (after close or munmap). */
  unbind(name: string): void;
  /** This process's end of `channel`. */
  channelFd(channel: string): number;
  /** Runs branches as parallel threads of this process and waits for all of them; returns 0. */
  runBranches(branches: { name: string; steps: CompiledStep[] }[]): Promise<number>;
  /** Runs steps in this thread (one round of `repeat`); a negative result stops the round. */
  runSequence(steps: CompiledStep[], round: number): Promise<number>;
  /** Kills the process named `name` (SIGKILL); 0, or -ESRCH if there is none. */
  kill(name: string): number;
  /** Scratch memory of `size` bytes in the process (never freed, like a stack buffer). */
  scratch(size: number, align?: number): number;
}

/** Thrown by a step when the scenario itself is wrong at run time (a name bound in another branch not yet there). */
export class StepError extends Error {
  /** `message` says what was wrong. */
  constructor(message: string) {
    super(message);
    this.name = 'StepError';
  }
}

/** The definition of one action. */
export interface StepKind<A = unknown> {
  /** The action key in files (`sw_sync_fence`). */
  readonly kind: string;
  /** One sentence: what the step does (becomes the JSON Schema description). */
  readonly summary: string;
  /** Schema of the arguments (input as written, output as `run` gets it). */
  readonly args: z.ZodType<A>;
  /** What a successful step binds to `as`; steps without it reject `as`. */
  readonly produces?: ValueType;
  /** The step moves data and records a `transfer` (so a `bandwidth` expectation may name it). */
  readonly transfers?: boolean;
  /** The names the arguments read. */
  refs?(args: A): NameRef[];
  /** Nested step lists (only `parallel`). */
  nested?(args: A): NestedSteps[];
  /** A short description of the step for reports (default: the kind). */
  label?(args: A): string;
  /** Performs the step. */
  run(ctx: StepContext, args: A, step: CompiledStep): Promise<StepOutcome>;
}

// ------------------------------------------------------------ registry

const kinds = new Map<string, StepKind>();
let union: z.ZodType | null = null;

/** Adds an action to the scenario language. Call at import time, before any file is parsed. */
export function registerStepKind<A>(def: StepKind<A>): StepKind<A> {
  if (union !== null) {
    throw new Error(`step kind "${def.kind}" registered after the scenario schema was built`);
  }
  if (kinds.has(def.kind)) throw new Error(`step kind "${def.kind}" is already registered`);
  if (COMMON_KEYS.includes(def.kind)) throw new Error(`"${def.kind}" is a common step field`);
  kinds.set(def.kind, def as StepKind);
  return def;
}

/** Every registered action, in registration order. */
export function stepKinds(): StepKind[] {
  return [...kinds.values()];
}

/** The action named `kind`, if registered. */
export function stepKind(kind: string): StepKind | undefined {
  return kinds.get(kind);
}

/** A name in a scenario: a letter, then letters, digits, `_`, `-` or `.`. */
export const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, {
    error: 'expected a name: a letter or _, then letters, digits, _, - or .',
  })
  .meta({ id: 'Name', description: 'A name: a letter or _, then letters, digits, _, - or .' });

/** An errno symbol, or `any`. */
const errnoName = z
  .enum([...ERRNO_NAMES, 'any'])
  .meta({ id: 'Errno', description: 'An errno symbol (EINVAL, ETIME...) or any.' });

/** Inline step expectations. */
export const stepExpectSchema = z
  .strictObject({
    errno: errnoName
      .optional()
      .meta({ description: 'The step fails with this errno (any: with some errno).' }),
    within: duration.optional().meta({ description: 'The step takes at most this long.' }),
    by: duration
      .optional()
      .meta({ description: 'The step has finished this long after the scenario started.' }),
    after: duration
      .optional()
      .meta({ description: 'The step finishes no earlier than this long after the scenario started.' }),
  })
  .meta({ id: 'StepExpect', description: 'What the step is expected to do; by default it must succeed.' });

/** The keys every step may carry besides its action. */
export const COMMON_KEYS = ['id', 'as', 'expect', 'note'];

function commonFields() {
  return {
    id: identifier.optional().meta({ description: 'An id that expectations and reports refer to.' }),
    as: identifier.optional().meta({ description: 'Binds the result (an fd, a mapping) to this name.' }),
    expect: stepExpectSchema.optional(),
    note: z.string().optional().meta({ description: 'A sentence shown next to the step in reports.' }),
  };
}

/**
 * The schema of one step: a union with one strict object per action. Built on first
 * use from the registry; `anyStep` refers to it lazily so actions can nest steps.
 */
export function stepUnion(): z.ZodType {
  if (union === null) {
    const members = stepKinds().map((k) => {
      const shape: Record<string, z.ZodType> = { [k.kind]: k.args, ...commonFields() };
      if (!k.produces) delete shape.as;
      return z.strictObject(shape).meta({ title: k.kind, description: k.summary });
    });
    if (members.length < 2) throw new Error('the scenario language needs at least two step kinds');
    union = z.union(members as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]).meta({
      id: 'Step',
      description: 'One step: exactly one action key, plus id, as, expect and note.',
    });
  }
  return union;
}

/** A lazy reference to the step schema, for actions that contain steps. */
export const anyStep: z.ZodType<RawStep> = z.lazy(() => stepUnion() as z.ZodType<RawStep>);

/** The action key of a raw step object (the one key that is a registered kind). */
export function actionKeys(step: Record<string, unknown>): string[] {
  return Object.keys(step).filter((k) => kinds.has(k));
}
