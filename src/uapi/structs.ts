/**
 * C struct layouts of the x86_64 ABI, and codecs between them and JS objects.
 *
 * A struct is described once by its fields in declaration order; offsets, padding,
 * alignment and size follow the System V x86_64 rules (each scalar aligned to its own
 * size, the struct to its largest member, the size rounded up to that alignment), and
 * values are little-endian. 64-bit fields and pointers decode to `bigint`; smaller
 * integers to `number`; `char[N]` to a string cut at the first NUL (encoding writes
 * the string's bytes and zero-fills the rest, with no NUL when the string fills the
 * array); `u8[N]` to a `Uint8Array`.
 *
 * The struct definitions below are the uAPI structs the model's syscalls and ioctls
 * use: include/uapi/linux/time_types.h (timespec), include/uapi/asm-generic/poll.h
 * (pollfd), include/linux/socket.h and include/uapi/linux/uio.h (msghdr, cmsghdr,
 * iovec), include/uapi/linux/sync_file.h and drivers/dma-buf/sw_sync.c.
 */

/** A scalar field type. */
export type ScalarType = 'u8' | 's8' | 'u16' | 's16' | 'u32' | 's32' | 'u64' | 's64' | 'ptr';

/** A field type: a scalar, `char[n]` (`{ char: n }`) or raw bytes (`{ bytes: n }`). */
export type FieldType = ScalarType | { readonly char: number } | { readonly bytes: number };

/** One field: name and type. */
export type FieldSpec = readonly [name: string, type: FieldType];

/** The JS type a field decodes to. */
export type FieldValue<T extends FieldType> = T extends 'u64' | 's64' | 'ptr'
  ? bigint
  : T extends ScalarType
    ? number
    : T extends { readonly char: number }
      ? string
      : Uint8Array;

/** The decoded object of a field list. */
export type StructValue<F extends readonly FieldSpec[]> = {
  [K in F[number] as K[0]]: FieldValue<K[1]>;
};

/** What `encode` accepts: every field optional (missing ones are zero), 64-bit ones also as numbers. */
export type StructInput<F extends readonly FieldSpec[]> = {
  [K in F[number] as K[0]]?: FieldValue<K[1]> extends bigint ? bigint | number : FieldValue<K[1]>;
};

/** A field with its computed place. */
export interface FieldLayout {
  /** Field name. */
  readonly name: string;
  /** Field type. */
  readonly type: FieldType;
  /** Byte offset in the struct. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
}

const SCALAR_SIZE: Record<ScalarType, number> = {
  u8: 1,
  s8: 1,
  u16: 2,
  s16: 2,
  u32: 4,
  s32: 4,
  u64: 8,
  s64: 8,
  ptr: 8,
};

function fieldSize(t: FieldType): number {
  if (typeof t === 'string') return SCALAR_SIZE[t];
  return 'char' in t ? t.char : t.bytes;
}

function fieldAlign(t: FieldType): number {
  return typeof t === 'string' ? SCALAR_SIZE[t] : 1;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('latin1');

/** Encodes a JS string as the bytes C sees: Latin-1 for code points below 256, UTF-8 otherwise. */
export function stringBytes(s: string): Uint8Array {
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      ascii = false;
      break;
    }
  }
  if (!ascii) return textEncoder.encode(s);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Decodes bytes up to the first NUL (or the end) as a Latin-1 string. */
export function bytesToCString(b: Uint8Array): string {
  let n = b.indexOf(0);
  if (n < 0) n = b.length;
  return textDecoder.decode(b.subarray(0, n));
}

/** A C struct layout with its codec. */
export class StructDef<F extends readonly FieldSpec[]> {
  /** The fields with offsets. */
  readonly fields: readonly FieldLayout[];
  /** sizeof(struct). */
  readonly size: number;
  /** _Alignof(struct). */
  readonly align: number;
  private readonly byName = new Map<string, FieldLayout>();

  /** Lays out `specs` with the x86_64 rules. */
  constructor(
    /** The C name, e.g. `sync_merge_data`. */
    readonly name: string,
    specs: F,
  ) {
    let off = 0;
    let align = 1;
    const fields: FieldLayout[] = [];
    for (const [fname, type] of specs) {
      const a = fieldAlign(type);
      const size = fieldSize(type);
      off = Math.ceil(off / a) * a;
      const f = { name: fname, type, offset: off, size };
      fields.push(f);
      this.byName.set(fname, f);
      off += size;
      if (a > align) align = a;
    }
    this.fields = fields;
    this.align = align;
    this.size = Math.ceil(off / align) * align;
  }

  /** offsetof(struct, field); throws for an unknown field (a programming error). */
  offsetOf(field: F[number][0]): number {
    const f = this.byName.get(field);
    if (!f) throw new Error(`struct ${this.name} has no field ${field}`);
    return f.offset;
  }

  /** Decodes the struct at `off` in `buf` (which must hold `size` bytes from there). */
  decode(buf: Uint8Array, off = 0): StructValue<F> {
    const dv = new DataView(buf.buffer, buf.byteOffset + off, this.size);
    const out: Record<string, unknown> = {};
    for (const f of this.fields) {
      const t = f.type;
      switch (t) {
        case 'u8':
          out[f.name] = dv.getUint8(f.offset);
          break;
        case 's8':
          out[f.name] = dv.getInt8(f.offset);
          break;
        case 'u16':
          out[f.name] = dv.getUint16(f.offset, true);
          break;
        case 's16':
          out[f.name] = dv.getInt16(f.offset, true);
          break;
        case 'u32':
          out[f.name] = dv.getUint32(f.offset, true);
          break;
        case 's32':
          out[f.name] = dv.getInt32(f.offset, true);
          break;
        case 'u64':
        case 'ptr':
          out[f.name] = dv.getBigUint64(f.offset, true);
          break;
        case 's64':
          out[f.name] = dv.getBigInt64(f.offset, true);
          break;
        default: {
          const bytes = buf.subarray(off + f.offset, off + f.offset + f.size);
          out[f.name] = 'char' in t ? bytesToCString(bytes) : new Uint8Array(bytes);
        }
      }
    }
    return out as StructValue<F>;
  }

  /** Encodes `value` (missing fields are zero) into `buf` at `off`, or into a new buffer. */
  encode(value: StructInput<F>, buf: Uint8Array = new Uint8Array(this.size), off = 0): Uint8Array {
    const dv = new DataView(buf.buffer, buf.byteOffset + off, this.size);
    const v = value as Record<string, unknown>;
    for (const f of this.fields) {
      const x = v[f.name];
      const t = f.type;
      switch (t) {
        case 'u8':
        case 's8':
          dv.setUint8(f.offset, Number(x ?? 0) & 0xff);
          break;
        case 'u16':
        case 's16':
          dv.setUint16(f.offset, Number(x ?? 0) & 0xffff, true);
          break;
        case 'u32':
        case 's32':
          dv.setUint32(f.offset, Number(x ?? 0) >>> 0, true);
          break;
        case 'u64':
        case 's64':
        case 'ptr':
          dv.setBigUint64(f.offset, BigInt.asUintN(64, toBigInt(x)), true);
          break;
        default: {
          const dst = buf.subarray(off + f.offset, off + f.offset + f.size);
          dst.fill(0);
          if (x === undefined) break;
          const src = typeof x === 'string' ? stringBytes(x) : (x as Uint8Array);
          dst.set(src.subarray(0, f.size));
        }
      }
    }
    return buf;
  }
}

function toBigInt(x: unknown): bigint {
  if (typeof x === 'bigint') return x;
  if (typeof x === 'number' && Number.isFinite(x)) return BigInt(Math.trunc(x));
  return 0n;
}

/** Defines a C struct from its fields in declaration order. */
export function defineStruct<const F extends readonly FieldSpec[]>(name: string, fields: F): StructDef<F> {
  return new StructDef(name, fields);
}

/** `char[n]` field type. */
export function char(n: number): { readonly char: number } {
  return { char: n };
}

/** `u8[n]` field type (raw bytes). */
export function bytes(n: number): { readonly bytes: number } {
  return { bytes: n };
}

// ------------------------------------------------------------ time, poll

/** struct timespec (__kernel_timespec on x86_64): 16 bytes. */
export const timespec = defineStruct('timespec', [
  ['tv_sec', 's64'],
  ['tv_nsec', 's64'],
] as const);

/** struct stat on x86_64: 144 bytes. */
export const stat = defineStruct('stat', [
  ['st_dev', 'u64'],
  ['st_ino', 'u64'],
  ['st_nlink', 'u64'],
  ['st_mode', 'u32'],
  ['st_uid', 'u32'],
  ['st_gid', 'u32'],
  ['__pad0', 's32'],
  ['st_rdev', 'u64'],
  ['st_size', 's64'],
  ['st_blksize', 's64'],
  ['st_blocks', 's64'],
  ['st_atime', 's64'],
  ['st_atime_nsec', 'u64'],
  ['st_mtime', 's64'],
  ['st_mtime_nsec', 'u64'],
  ['st_ctime', 's64'],
  ['st_ctime_nsec', 'u64'],
  ['__unused', bytes(24)],
] as const);

/** struct pollfd: 8 bytes. */
export const pollfd = defineStruct('pollfd', [
  ['fd', 's32'],
  ['events', 's16'],
  ['revents', 's16'],
] as const);

// ------------------------------------------------------------ sockets

/** struct iovec: 16 bytes. */
export const iovec = defineStruct('iovec', [
  ['iov_base', 'ptr'],
  ['iov_len', 'u64'],
] as const);

/** struct user_msghdr (the msghdr userspace passes to sendmsg/recvmsg): 56 bytes. */
export const msghdr = defineStruct('msghdr', [
  ['msg_name', 'ptr'],
  ['msg_namelen', 's32'],
  ['msg_iov', 'ptr'],
  ['msg_iovlen', 'u64'],
  ['msg_control', 'ptr'],
  ['msg_controllen', 'u64'],
  ['msg_flags', 'u32'],
] as const);

/** struct cmsghdr: 16 bytes of header; the data follows at CMSG_DATA = +16. */
export const cmsghdr = defineStruct('cmsghdr', [
  ['cmsg_len', 'u64'],
  ['cmsg_level', 's32'],
  ['cmsg_type', 's32'],
] as const);

/** CMSG_ALIGN(len): rounds up to the size of a long. */
export function CMSG_ALIGN(len: number): number {
  return (len + 7) & ~7;
}

/** CMSG_LEN(len): header plus `len` bytes of data. */
export function CMSG_LEN(len: number): number {
  return CMSG_ALIGN(cmsghdr.size) + len;
}

/** CMSG_SPACE(len): the room a control message with `len` bytes of data takes. */
export function CMSG_SPACE(len: number): number {
  return CMSG_ALIGN(cmsghdr.size) + CMSG_ALIGN(len);
}

// ------------------------------------------------------------ sync_file (include/uapi/linux/sync_file.h)

/** struct sync_merge_data: 48 bytes. */
export const syncMergeData = defineStruct('sync_merge_data', [
  ['name', char(32)],
  ['fd2', 's32'],
  ['fence', 's32'],
  ['flags', 'u32'],
  ['pad', 'u32'],
] as const);

/** struct sync_fence_info: 80 bytes. */
export const syncFenceInfo = defineStruct('sync_fence_info', [
  ['obj_name', char(32)],
  ['driver_name', char(32)],
  ['status', 's32'],
  ['flags', 'u32'],
  ['timestamp_ns', 'u64'],
] as const);

/** struct sync_file_info: 56 bytes. */
export const syncFileInfo = defineStruct('sync_file_info', [
  ['name', char(32)],
  ['status', 's32'],
  ['flags', 'u32'],
  ['num_fences', 'u32'],
  ['pad', 'u32'],
  ['sync_fence_info', 'u64'],
] as const);

/** struct sync_set_deadline: 16 bytes. */
export const syncSetDeadline = defineStruct('sync_set_deadline', [
  ['deadline_ns', 'u64'],
  ['pad', 'u64'],
] as const);

// ------------------------------------------------------------ sw_sync (drivers/dma-buf/sw_sync.c)

/** struct sw_sync_create_fence_data: 40 bytes. */
export const swSyncCreateFenceData = defineStruct('sw_sync_create_fence_data', [
  ['value', 'u32'],
  ['name', char(32)],
  ['fence', 's32'],
] as const);

/** struct sw_sync_get_deadline: 16 bytes. */
export const swSyncGetDeadline = defineStruct('sw_sync_get_deadline', [
  ['deadline_ns', 'u64'],
  ['pad', 'u32'],
  ['fence_fd', 's32'],
] as const);
