/**
 * Accelerator and peer-to-peer steps: habanalabs device memory exported as a dma-buf and
 * read by a NIC over PCIe peer-to-peer.
 *
 * - `hl_open`: open(2) of /dev/accel/accel<N> (binds the device fd; each open is its own
 *   context, as in the driver);
 * - `hl_alloc`: DRM_IOCTL_HL_MEMORY HL_MEM_OP_ALLOC (optionally HL_MEM_CONTIGUOUS), then
 *   HL_MEM_OP_MAP for its device virtual address; binds the device-memory handle;
 * - `hl_fill`: the model's DMA job (DRM_IOCTL_HL_MODEL_DMA, HL_MODEL_DMA_FILL) filling an
 *   8-byte pattern into the allocation, after an optional in-fence; binds the out-fence
 *   sync_file;
 * - `hl_export`: HL_MEM_OP_EXPORT_DMABUF_FD with offset, size and the dma-buf file flags;
 *   binds the dma-buf fd (a refusal is the step's errno, as 6.12 returns it);
 * - `p2p_read`: the test NIC (src/drivers/net/p2p-test-nic.ts) imports the dma-buf as a
 *   dynamic importer with allow_peer2peer, maps it, reads `length` bytes at `offset` by
 *   P2P DMA and compares them with a pattern; the step's summary and detail give the
 *   virtual time the read took and the bandwidth it achieved.
 *
 * The test NIC has no uAPI (no char device, no verbs): it cannot be driven through a
 * syscall. `p2p_read` therefore makes the kernel-side calls itself from inside the
 * step's run, in the process's context, exactly as test/habanalabs-export.test.ts does
 * from a process (`p2pNicImport` on the process's fd, `p2pNicRead`, `p2pNicRelease`).
 * An import error (-EPERM when p2pdma finds no route and the attach cleared
 * peer2peer, -EBADF, -EINVAL) or a read error (-EIO) is the step's errno.
 *
 * A device-memory handle is bound as an fd value: the device fd whose context owns the
 * handle (`what` names the handle and VA); the handle, VA and size are kept beside the
 * bound value, so only a name bound by `hl_alloc` is accepted as `mem`. Closing that name
 * closes the device fd.
 *
 * The request numbers and struct layouts come from src/uapi/habanalabs.ts.
 */
import { z } from 'zod';
import { p2pNicImport, p2pNicRead, p2pNicRelease, p2pTestNics } from '../../drivers/net/p2p-test-nic.ts';
import { isErr } from '../../kernel/err.ts';
import { errno } from '../../kernel/errno.ts';
import { O_CLOEXEC, O_RDONLY, O_RDWR, O_WRONLY } from '../../kernel/fcntl.ts';
import { POLLIN } from '../../kernel/poll.ts';
import {
  accelPath,
  DRM_IOCTL_HL_MEMORY,
  DRM_IOCTL_HL_MODEL_DMA,
  HL_MEM_CONTIGUOUS,
  HL_MEM_OP_ALLOC,
  HL_MEM_OP_EXPORT_DMABUF_FD,
  HL_MEM_OP_MAP,
  HL_MEM_SHARED,
  HL_MODEL_DMA_DEVICE_TO_HOST,
  HL_MODEL_DMA_FILL,
  HL_MODEL_DMA_HOST_TO_DEVICE,
  hlMemIn,
  hlMemOut,
  hlModelDmaJob,
} from '../../uapi/habanalabs.ts';
import { pollfd } from '../../uapi/structs.ts';
import {
  type BoundValue,
  identifier,
  registerStepKind,
  type StepContext,
  StepError,
  type TransferRecord,
} from '../step-kind.ts';
import { size, sizeText } from '../units.ts';
import { type Pattern, patternBytes, patternSchema, patternText } from '../values.ts';
import { fdName, mapName } from './util.ts';

/** Device memory bound by `hl_alloc`. */
interface HlMem {
  /** The handle HL_MEM_OP_ALLOC returned. */
  handle: bigint;
  /** The device virtual address HL_MEM_OP_MAP returned. */
  va: bigint;
  /** Bytes allocated. */
  size: number;
}

/** The device memory behind values bound by `hl_alloc`. */
const hlMems = new WeakMap<BoundValue, HlMem>();

/** The device fd and memory bound to `name` by `hl_alloc` (a step error otherwise). */
function hlMem(ctx: StepContext, name: string): { fd: number; mem: HlMem } {
  const fd = ctx.fd(name);
  const v = ctx.lookup(name);
  const mem = v === undefined ? undefined : hlMems.get(v);
  if (mem === undefined) throw new StepError(`"${name}" is not device memory bound by hl_alloc`);
  return { fd, mem };
}

/** DRM_IOCTL_HL_MEMORY: the ioctl result and the written-back `out` word. */
async function hlMemory(
  ctx: StepContext,
  fd: number,
  op: number,
  args: { arg0?: bigint | number; arg1?: bigint | number; arg2?: bigint | number; flags?: number },
): Promise<{ rc: number; out: bigint }> {
  const { sys } = ctx;
  const d = ctx.scratch(hlMemIn.size, 8);
  sys.writeStruct(hlMemIn, d, {
    arg0: args.arg0 ?? 0,
    arg1: args.arg1 ?? 0,
    arg2: args.arg2 ?? 0,
    op,
    flags: args.flags ?? 0,
    ctx_id: 0,
    num_of_elements: 0,
  });
  const rc = await sys.ioctl(fd, DRM_IOCTL_HL_MEMORY, d);
  return { rc, out: sys.readStruct(hlMemOut, d).handle as bigint };
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

registerStepKind({
  kind: 'hl_open',
  summary:
    'open(2) of the accelerator /dev/accel/accel<N> with O_RDWR | O_CLOEXEC (a new context). Binds its fd.',
  args: z.union([
    z
      .number()
      .int()
      .min(0)
      .transform((device) => ({ device })),
    z.strictObject({
      device: z
        .number()
        .int()
        .min(0)
        .default(0)
        .meta({ description: 'N of /dev/accel/accel<N> (default 0).' }),
    }),
  ]),
  produces: 'fd',
  label: (a) => `hl_open ${accelPath(a.device)}`,
  async run(ctx, a) {
    const fd = await ctx.sys.open(accelPath(a.device), O_RDWR | O_CLOEXEC);
    if (fd < 0) return { ret: fd };
    return { ret: fd, value: { type: 'fd', fd, what: 'accel' }, summary: `fd ${fd}` };
  },
});

registerStepKind({
  kind: 'hl_alloc',
  summary:
    'HL_MEM_OP_ALLOC of `size` bytes of device memory (optionally physically contiguous), then HL_MEM_OP_MAP for its device virtual address. Binds the device-memory handle.',
  args: z.strictObject({
    device: fdName.meta({ description: 'The accelerator fd (a name bound by hl_open).' }),
    size: size.meta({ description: 'Bytes of device memory (the driver rounds up to DRAM pages).' }),
    contiguous: z
      .boolean()
      .default(false)
      .meta({ description: 'HL_MEM_CONTIGUOUS: one physically contiguous block (default false).' }),
    shared: z
      .boolean()
      .default(false)
      .meta({ description: 'HL_MEM_SHARED: other contexts may map the handle (default false).' }),
  }),
  produces: 'fd',
  refs: (a) => [{ name: a.device, type: 'fd', path: ['device'] }],
  label: (a) => `hl_alloc ${a.device} ${sizeText(a.size)}${a.contiguous ? ' contiguous' : ''}`,
  async run(ctx, a) {
    const fd = ctx.fd(a.device);
    const flags = (a.contiguous ? HL_MEM_CONTIGUOUS : 0) | (a.shared ? HL_MEM_SHARED : 0);
    const alloc = await hlMemory(ctx, fd, HL_MEM_OP_ALLOC, { arg0: a.size, flags });
    if (alloc.rc < 0) return { ret: alloc.rc };
    const handle = alloc.out;
    const map = await hlMemory(ctx, fd, HL_MEM_OP_MAP, { arg0: 0, arg1: handle });
    if (map.rc < 0) return { ret: map.rc, detail: { handle: Number(handle) } };
    const va = map.out;
    const value: BoundValue = { type: 'fd', fd, what: `hl_mem handle ${handle} va ${hex(va)}` };
    hlMems.set(value, { handle, va, size: a.size });
    return {
      ret: 0,
      value,
      summary: `handle ${handle} at va ${hex(va)}`,
      detail: { handle: Number(handle), va: hex(va), size: a.size },
    };
  },
});

registerStepKind({
  kind: 'hl_fill',
  summary:
    "A DMA job (the model's DRM_IOCTL_HL_MODEL_DMA fill) writing a repeating 8-byte pattern into device memory, after an optional in-fence. Binds its out-fence sync_file.",
  args: z.strictObject({
    mem: fdName.meta({ description: 'The device memory (a name bound by hl_alloc).' }),
    pattern: patternSchema.meta({
      description:
        'The bytes to fill: a pattern that repeats every 8 bytes ({fill: n}, {hex: "..."} of 1, 2, 4 or 8 bytes, {text: "..."} of such a length).',
    }),
    offset: size.default(0).meta({ description: 'Where in the allocation to start (default 0).' }),
    length: size.optional().meta({ description: 'How many bytes (default: to the end of the allocation).' }),
    in_fence: identifier
      .optional()
      .meta({ description: 'A sync_file the job waits for before it starts (default none).' }),
    wait: z.boolean().default(false).meta({
      description:
        "Wait for the job's out-fence in the step (poll) and record the fill's time and rate (default false: the step returns at once).",
    }),
  }),
  produces: 'fd',
  transfers: true,
  refs: (a) => [
    { name: a.mem, type: 'fd', path: ['mem'] },
    ...(a.in_fence === undefined ? [] : [{ name: a.in_fence, type: 'fd' as const, path: ['in_fence'] }]),
  ],
  label: (a) =>
    `hl_fill ${a.mem} ${patternText(a.pattern as Pattern)}${a.in_fence === undefined ? '' : ` after ${a.in_fence}`}`,
  async run(ctx, a) {
    const { fd, mem } = hlMem(ctx, a.mem);
    const unit = patternBytes(a.pattern as Pattern, 16);
    if (unit.subarray(0, 8).some((b, i) => b !== unit[i + 8])) {
      throw new StepError(`pattern ${patternText(a.pattern as Pattern)} does not repeat every 8 bytes`);
    }
    let word = 0n;
    for (let i = 7; i >= 0; i--) word = (word << 8n) | BigInt(unit[i]);
    const length = a.length ?? mem.size - a.offset;
    const { sys } = ctx;
    const t0 = sys.now();
    const d = ctx.scratch(hlModelDmaJob.size, 8);
    sys.writeStruct(hlModelDmaJob, d, {
      dst_addr: mem.va + BigInt(a.offset),
      src_addr: 0,
      size: length,
      pattern: word,
      op: HL_MODEL_DMA_FILL,
      in_fence: a.in_fence === undefined ? -1 : ctx.fd(a.in_fence),
      out_fence: -1,
      flags: 0,
    });
    const ret = await sys.ioctl(fd, DRM_IOCTL_HL_MODEL_DMA, d);
    if (ret < 0) return { ret };
    const fence = Number(sys.readStruct(hlModelDmaJob, d).out_fence);
    const out = {
      ret: fence,
      value: { type: 'fd' as const, fd: fence, what: 'sync_file' },
      summary: `${sizeText(length)}, out-fence fd ${fence}`,
      detail: { pattern: hex(word), bytes: length, outFence: fence },
    };
    if (!a.wait) return out;
    const w = await waitFence(ctx, fence, t0);
    if (w.ret < 0) return { ret: w.ret };
    return {
      ...out,
      summary: `${sizeText(length)} filled in ${w.ns} ns, out-fence fd ${fence}`,
      transfer: dmaTransfer(length, w.ns, `${ctx.host} DMA engine`, `${ctx.host} device memory ${a.mem}`),
    };
  },
});

/** Polls a job's out-fence until it signals; the time since `t0`, ns, or the errno. */
async function waitFence(ctx: StepContext, fence: number, t0: bigint): Promise<{ ret: number; ns: number }> {
  const p = ctx.scratch(pollfd.size, 8);
  ctx.sys.writeStruct(pollfd, p, { fd: fence, events: POLLIN, revents: 0 });
  const ret = await ctx.sys.poll(p, 1, -1);
  return { ret: Math.min(ret, 0), ns: Number(ctx.sys.now() - t0) };
}

/** The transfer record of a DMA job. */
function dmaTransfer(bytes: number, ns: number, from: string, to: string): TransferRecord {
  return { kind: 'dma', bytes, ns, gbps: ns > 0 ? (bytes * 8) / ns : 0, from, to };
}

registerStepKind({
  kind: 'hl_dma',
  summary:
    "A DMA job (the model's DRM_IOCTL_HL_MODEL_DMA) copying between device memory and a CPU mapping, in either direction; the step waits for its out-fence and records the copy's time and rate.",
  args: z.strictObject({
    mem: fdName.meta({ description: 'The device memory (a name bound by hl_alloc).' }),
    map: mapName.meta({ description: 'The CPU mapping (a name bound by mmap).' }),
    direction: z
      .enum(['to_host', 'to_device'])
      .meta({ description: 'to_host: device memory -> mapping; to_device: mapping -> device memory.' }),
    offset: size.default(0).meta({ description: 'Where in the device memory to start (default 0).' }),
    length: size.optional().meta({
      description: 'How many bytes (default: the smaller of the mapping and the rest of the allocation).',
    }),
  }),
  transfers: true,
  refs: (a) => [
    { name: a.mem, type: 'fd', path: ['mem'] },
    { name: a.map, type: 'mapping', path: ['map'] },
  ],
  label: (a) => (a.direction === 'to_host' ? `hl_dma ${a.mem} -> ${a.map}` : `hl_dma ${a.map} -> ${a.mem}`),
  async run(ctx, a) {
    const { fd, mem } = hlMem(ctx, a.mem);
    const m = ctx.mapping(a.map);
    const length = a.length ?? Math.min(m.length, mem.size - a.offset);
    const { sys } = ctx;
    const toHost = a.direction === 'to_host';
    const dev = mem.va + BigInt(a.offset);
    const t0 = sys.now();
    const d = ctx.scratch(hlModelDmaJob.size, 8);
    sys.writeStruct(hlModelDmaJob, d, {
      dst_addr: toHost ? BigInt(m.addr) : dev,
      src_addr: toHost ? dev : BigInt(m.addr),
      size: length,
      pattern: 0,
      op: toHost ? HL_MODEL_DMA_DEVICE_TO_HOST : HL_MODEL_DMA_HOST_TO_DEVICE,
      in_fence: -1,
      out_fence: -1,
      flags: 0,
    });
    const ret = await sys.ioctl(fd, DRM_IOCTL_HL_MODEL_DMA, d);
    if (ret < 0) return { ret };
    const fence = Number(sys.readStruct(hlModelDmaJob, d).out_fence);
    const w = await waitFence(ctx, fence, t0);
    await sys.close(fence);
    if (w.ret < 0) return { ret: w.ret };
    const devName = `${ctx.host} device memory ${a.mem}`;
    const hostName = `${ctx.host} host memory ${a.map}`;
    const t = toHost
      ? dmaTransfer(length, w.ns, devName, hostName)
      : dmaTransfer(length, w.ns, hostName, devName);
    return {
      ret: 0,
      summary: `${sizeText(length)} in ${w.ns} ns (${t.gbps.toFixed(1)} Gb/s)`,
      detail: { bytes: length, ns: w.ns, gbps: t.gbps },
      transfer: t,
    };
  },
});

const FILE_FLAGS = { O_RDWR, O_RDONLY, O_WRONLY, O_CLOEXEC } as const;

registerStepKind({
  kind: 'hl_export',
  summary:
    'HL_MEM_OP_EXPORT_DMABUF_FD: a dma-buf over `size` bytes at `offset` of device memory, with the dma-buf file flags. Binds its fd.',
  args: z.strictObject({
    mem: fdName.meta({ description: 'The device memory (a name bound by hl_alloc).' }),
    offset: size.default(0).meta({ description: 'Offset in the allocation (default 0).' }),
    size: size.optional().meta({ description: 'Bytes to export (default: to the end of the allocation).' }),
    flags: z
      .array(z.enum(['O_RDWR', 'O_RDONLY', 'O_WRONLY', 'O_CLOEXEC']))
      .default(['O_RDWR', 'O_CLOEXEC'])
      .meta({ description: 'The dma-buf file flags (default [O_RDWR, O_CLOEXEC], as hl-thunk passes).' }),
  }),
  produces: 'fd',
  refs: (a) => [{ name: a.mem, type: 'fd', path: ['mem'] }],
  label: (a) =>
    `hl_export ${a.mem}${a.size === undefined ? '' : ` ${sizeText(a.size)}`}${a.offset ? ` at ${sizeText(a.offset)}` : ''}`,
  async run(ctx, a) {
    const { fd, mem } = hlMem(ctx, a.mem);
    let flags = 0;
    for (const f of a.flags) flags |= FILE_FLAGS[f];
    const length = a.size ?? mem.size - a.offset;
    const r = await hlMemory(ctx, fd, HL_MEM_OP_EXPORT_DMABUF_FD, {
      arg0: mem.va,
      arg1: length,
      arg2: a.offset,
      flags,
    });
    if (r.rc < 0) return { ret: r.rc };
    const buf = Number(BigInt.asIntN(32, r.out & 0xffffffffn));
    return {
      ret: buf,
      value: { type: 'fd', fd: buf, what: 'dma_buf' },
      summary: `fd ${buf}`,
      detail: { bytes: length, offset: a.offset },
    };
  },
});

registerStepKind({
  kind: 'p2p_read',
  transfers: true,
  summary:
    "The test NIC imports a dma-buf as a dynamic importer (allow_peer2peer), maps it, reads `length` bytes at `offset` by peer-to-peer DMA and compares them with a pattern; the result gives the read's time and bandwidth. Kernel-side calls from the step (the NIC has no uAPI).",
  args: z.strictObject({
    fd: fdName.meta({ description: 'The dma-buf.' }),
    pattern: patternSchema.meta({ description: 'The bytes expected, from the start of the range read.' }),
    offset: size.default(0).meta({ description: 'Where in the buffer to start (default 0).' }),
    length: size.optional().meta({ description: 'How many bytes (default: to the end of the buffer).' }),
    nic: z
      .number()
      .int()
      .min(0)
      .default(0)
      .meta({ description: "Which NIC of the topology reads (default 0, the first 'nic' endpoint)." }),
    allow_peer2peer: z.boolean().default(true).meta({
      description: 'Attach with allow_peer2peer (default true; false plays an importer that needs pages).',
    }),
  }),
  refs: (a) => [{ name: a.fd, type: 'fd', path: ['fd'] }],
  label: (a) =>
    `p2p_read ${a.fd} nic${a.nic}${a.length === undefined ? '' : ` ${sizeText(a.length)}`}${a.offset ? ` at ${sizeText(a.offset)}` : ''} ${patternText(a.pattern as Pattern)}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const fd = ctx.fd(a.fd);
    const kernel = sys.machine.kernel;
    const nic = p2pTestNics(kernel)[a.nic];
    if (nic === undefined) return { ret: -errno.ENODEV, problem: `the topology has no NIC ${a.nic}` };
    kernel.enter();
    const imp = await p2pNicImport(nic, fd, { allowPeer2peer: a.allow_peer2peer });
    if (isErr(imp)) return { ret: imp.err, summary: `import by ${nic.dev.name} failed` };
    const length = a.length ?? imp.dmabuf.size - a.offset;
    const t0 = sys.now();
    kernel.enter();
    const got = await p2pNicRead(imp, a.offset, length);
    const ns = Number(sys.now() - t0);
    kernel.enter();
    await p2pNicRelease(imp);
    if (typeof got === 'number') return { ret: got, summary: `P2P read by ${nic.dev.name} failed` };
    const gbps = ns > 0 ? length / ns : 0;
    const timing = `${ns} ns, ${gbps.toFixed(2)} GB/s`;
    const want = patternBytes(a.pattern as Pattern, length);
    let first = -1;
    let differ = 0;
    for (let i = 0; i < length; i++) {
      if (got[i] !== want[i]) {
        if (first < 0) first = i;
        differ++;
      }
    }
    const detail = { nic: nic.dev.name, bytes: length, offset: a.offset, ns, gbps, differ };
    const transfer = {
      kind: 'p2p_read',
      bytes: length,
      ns,
      gbps: gbps * 8,
      from: `${ctx.host} dma-buf ${a.fd}`,
      to: `${ctx.host}/${nic.dev.name}`,
    };
    if (first < 0) return { ret: 0, summary: `${sizeText(length)} match in ${timing}`, detail, transfer };
    const h = (v: number) => `0x${v.toString(16).padStart(2, '0')}`;
    return {
      ret: 0,
      summary: `${differ} of ${sizeText(length)} differ (${timing})`,
      detail: { ...detail, firstOffset: a.offset + first },
      transfer,
      problem: `byte at offset ${a.offset + first} is ${h(got[first])}, expected ${h(want[first])} (${differ} of ${length} bytes differ)`,
    };
  },
});
