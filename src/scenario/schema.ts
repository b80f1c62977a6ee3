/**
 * The scenario file format as a zod schema, and its JSON Schema for editors.
 *
 * A scenario names a topology (a preset, a preset with overrides, or an inline
 * description matching `TopologySpec` of src/kernel/pci/topology.ts) or several hosts,
 * each with its own topology, joined by an RDMA network (`hosts`, `network`); the processes
 * to run and their steps (see step-kind.ts; branches of `parallel` run as threads),
 * channels (socketpairs between two processes, to pass fds), and expectations: a step
 * fails with a given errno or finishes within a time, a rule report is or is not
 * raised, a process exits with a code or is killed, a transfer achieves a rate, the run
 * completes or deadlocks.
 *
 * `scenarioJsonSchema()` is published as schema/scenario.schema.json; a file that
 * starts with `# yaml-language-server: $schema=<path>/scenario.schema.json` gets
 * completion and checking in editors that use the YAML language server.
 *
 * Not a kernel concept: this is the scenario language.
 */
import { z } from 'zod';
import { CPU_GENERATIONS, type CpuGeneration, type TopologySpec } from '../kernel/pci/topology.ts';
import { PRESET_NAMES } from '../kernel/pci/topology-presets.ts';
import type { TransferParamsOverride } from '../kernel/pci/transfer-params.ts';
import { anyStep, identifier, stepExpectSchema } from './step-kind.ts';
import './steps/index.ts';
import { duration, size } from './units.ts';
import { REPORT_TYPES } from './values.ts';

// ------------------------------------------------------------ topology

const pcieGen = z.literal([1, 2, 3, 4, 5, 6]).meta({ description: 'PCIe generation 1-6.' });
const genKey = z.enum(['1', '2', '3', '4', '5', '6']);
const cpuGeneration = z.enum(CPU_GENERATIONS as unknown as [CpuGeneration, ...CpuGeneration[]]);
const gbps = z.number().positive();
const nonneg = z.number().nonnegative();
const int = z.number().int().nonnegative();

const linkSpec = z
  .strictObject({
    gen: pcieGen,
    width: z.literal([1, 2, 4, 8, 12, 16, 32]).meta({ description: 'Lanes.' }),
  })
  .meta({ id: 'Link', description: 'A link capability: generation and lane count.' });

const acsFlag = z.enum(['SV', 'TB', 'RR', 'CR', 'UF', 'EC', 'DT']);
const acsSpec = z
  .strictObject({
    cap: z.array(acsFlag).optional().meta({ description: 'Capability bits (default SV, RR, CR, UF).' }),
    ctrl: z.array(acsFlag).optional().meta({ description: 'Control bits as firmware left them.' }),
  })
  .nullable()
  .meta({ id: 'Acs', description: 'An ACS capability; null for none.' });

const rootComplexP2p = z.strictObject({
  factor: z.number().positive().max(1).optional(),
  writesOnly: z.boolean().optional(),
});

/** Transfer-model parameter overrides (`TransferParamsOverride`). */
export const transferParamsSchema = z
  .strictObject({
    laneGBps: z.partialRecord(genKey, gbps).optional(),
    tlpOverheadBytes: z.partialRecord(genKey, nonneg).optional(),
    dllpEfficiency: z.number().positive().max(1).optional(),
    linkEfficiency: z.number().positive().max(1).nullable().optional(),
    readCompletionBytes: z.number().int().positive().optional(),
    switchLatencyNs: nonneg.optional(),
    rootComplexLatencyNs: nonneg.optional(),
    linkLatencyNs: nonneg.optional(),
    socketLinkLatencyNs: nonneg.optional(),
    memoryLatencyNs: nonneg.optional(),
    memoryGBps: gbps.nullable().optional(),
    rootComplexP2p: z.partialRecord(cpuGeneration, rootComplexP2p).optional(),
    intelP2pInflation: z.number().min(1).optional(),
    socketLinkGBps: z.partialRecord(cpuGeneration, gbps).optional(),
    mps: z
      .strictObject({ rootPort: int.optional(), switchPort: int.optional(), endpoint: int.optional() })
      .optional(),
  })
  .meta({
    id: 'TransferParams',
    description: 'Transfer-model parameter overrides (see src/kernel/pci/transfer-params.ts).',
  });

/** An inline topology (`TopologySpec`). */
export const topologySpecSchema = z
  .strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    cpu: z.strictObject({
      generation: cpuGeneration,
      vendor: z.enum(['intel', 'amd', 'arm', 'other']).optional(),
      family: int.optional(),
      arch: z.enum(['x86_64', 'arm64']).optional(),
      name: z.string().optional(),
    }),
    sockets: z.array(z.strictObject({ id: identifier, memoryGBps: gbps.nullable().optional() })).min(1),
    socketLink: z
      .strictObject({
        kind: z.string().optional(),
        capacityGBps: gbps.optional(),
        latencyNs: nonneg.optional(),
      })
      .optional(),
    hostBridges: z
      .array(
        z.strictObject({
          id: identifier,
          socket: identifier,
          vendor: int.optional(),
          device: int.optional(),
          hostBridgeFunction: z.boolean().optional(),
          domain: int.optional(),
          bus: int.optional(),
          p2p: z
            .strictObject({
              factor: z.number().positive().max(1).optional(),
              writesOnly: z.boolean().optional(),
              aggregateGBps: gbps.nullable().optional(),
            })
            .optional(),
          mmioBase: int.optional(),
        }),
      )
      .min(1),
    rootPorts: z
      .array(
        z.strictObject({
          id: identifier,
          hostBridge: identifier,
          link: linkSpec,
          slot: int.optional(),
          vendor: int.optional(),
          device: int.optional(),
          acs: acsSpec.optional(),
          mps: int.optional(),
        }),
      )
      .optional(),
    switches: z
      .array(
        z.strictObject({
          id: identifier,
          parent: identifier,
          link: linkSpec,
          downstreamPorts: z.union([
            z.number().int().min(1).max(32),
            z.array(
              z.strictObject({
                id: identifier.optional(),
                acs: acsSpec.optional(),
                link: linkSpec.optional(),
              }),
            ),
          ]),
          vendor: int.optional(),
          device: int.optional(),
          mps: int.optional(),
          latencyNs: nonneg.optional(),
          upstreamAcs: acsSpec.optional(),
          downstreamAcs: acsSpec.optional(),
        }),
      )
      .optional(),
    endpoints: z.array(
      z.strictObject({
        id: identifier,
        kind: z.enum(['accelerator', 'nic', 'gpu', 'nvme', 'other']),
        parent: identifier,
        link: linkSpec.optional(),
        vendor: int.optional(),
        device: int.optional(),
        mps: int.optional(),
        slot: int.optional(),
        acs: acsSpec.optional(),
        bars: z
          .array(
            z.strictObject({
              index: z.number().int().min(0).max(5),
              size: z.number().int().positive(),
              prefetchable: z.boolean().optional(),
            }),
          )
          .optional(),
        memory: size.optional().meta({
          description:
            "On-device memory (a GPU's VRAM, an accelerator's HBM): 64MiB, 8GiB...; default: the driver's.",
        }),
      }),
    ),
    iommu: z.boolean().optional(),
    cmdline: z.string().optional(),
    params: transferParamsSchema.optional(),
  })
  .meta({
    id: 'TopologySpec',
    description: 'An inline topology: sockets, host bridges, root ports, switches and endpoints.',
  });

// Keeps the schema and the TypeScript types in step: a parsed topology is a TopologySpec.
type Assignable<T, U extends T> = U;
/** Compile-time check: a parsed inline topology is a `TopologySpec`. */
export type _TopologyCheck = Assignable<TopologySpec, z.output<typeof topologySpecSchema>>;
/** Compile-time check: parsed parameter overrides are a `TransferParamsOverride`. */
export type _ParamsCheck = Assignable<TransferParamsOverride, z.output<typeof transferParamsSchema>>;

const presetName = z.enum(PRESET_NAMES as unknown as [string, ...string[]]).meta({
  description: `A topology preset: ${PRESET_NAMES.join(', ')}.`,
});

/** The topology of a scenario: a preset, a preset with overrides, or an inline description. */
export const topologySchema = z
  .union(
    [
      presetName,
      z.strictObject({
        preset: presetName,
        iommu: z.boolean().optional().meta({ description: 'An IOMMU asks for ACS.' }),
        cmdline: z
          .string()
          .optional()
          .meta({ description: 'Kernel command line (pci=disable_acs_redir=...).' }),
        params: transferParamsSchema.optional(),
        memory: z.record(identifier, size).optional().meta({
          description:
            "On-device memory per endpoint id: {gpu0: 64MiB} gives the preset's GPU 64 MiB of VRAM (default: the driver's size).",
        }),
      }),
      topologySpecSchema,
    ],
    {
      error: `expected a topology: a preset name (${PRESET_NAMES.join(', ')}), {preset: name, ...overrides}, or an inline description`,
    },
  )
  .meta({
    description:
      'The machine: a preset name, {preset, iommu, cmdline, params, memory}, or an inline topology.',
  });

// ------------------------------------------------------------ expectations

const reportMatcher = z
  .union([
    z.string().min(1),
    z.strictObject({
      rule: z
        .string()
        .min(1)
        .optional()
        .meta({ description: 'The rule id (dma_fence.signal_in_wait, deadlock...).' }),
      type: z.enum(REPORT_TYPES).optional().meta({ description: 'The report type.' }),
      message: z.string().optional().meta({ description: 'A substring of the message.' }),
      count: z
        .number()
        .int()
        .min(0)
        .optional()
        .meta({ description: 'Exactly this many (default: at least one).' }),
    }),
  ])
  .meta({ id: 'ReportMatcher', description: 'A rule id or report type, or {rule, type, message, count}.' });

/** One expectation of the `expect` list. */
export const expectationSchema = z
  .union(
    [
      z
        .strictObject({
          step: identifier.meta({ description: 'The id of the step.' }),
          ...stepExpectSchema.shape,
        })
        .meta({ description: 'A step fails with an errno, or finishes within / by / after a time.' }),
      z.strictObject({ report: reportMatcher }).meta({ description: 'A rule report is raised.' }),
      z.strictObject({ no_report: reportMatcher }).meta({ description: 'No such rule report is raised.' }),
      z
        .strictObject({
          process: identifier,
          exit_code: z.number().int().min(0).max(255).optional(),
          killed: z.boolean().optional(),
        })
        .meta({ description: 'A process exits with a code, or is (not) killed.' }),
      z
        .strictObject({
          bandwidth: z
            .strictObject({
              step: identifier.meta({
                description: 'The id of a step that moves data (rdma_write, hl_fill...).',
              }),
              of: z.literal('line').default('line').meta({
                description: 'Fractions are of the line rate of the link the step used (the only choice).',
              }),
              atLeast: z
                .number()
                .positive()
                .max(1)
                .optional()
                .meta({ description: 'The achieved rate is at least this fraction of the line rate.' }),
              atMost: z
                .number()
                .positive()
                .max(1)
                .optional()
                .meta({ description: 'The achieved rate is at most this fraction of the line rate.' }),
              near: z.number().positive().max(1).optional().meta({
                description: 'The achieved rate is this fraction of the line rate, within `tolerance`.',
              }),
              tolerance: z
                .number()
                .positive()
                .max(1)
                .default(0.1)
                .meta({ description: 'Relative tolerance of `near` (default 0.1: within 10%).' }),
              atLeastGbps: z
                .number()
                .positive()
                .optional()
                .meta({ description: 'The achieved rate is at least this many Gb/s.' }),
              atMostGbps: z
                .number()
                .positive()
                .optional()
                .meta({ description: 'The achieved rate is at most this many Gb/s.' }),
            })
            .meta({
              id: 'BandwidthExpectation',
              description:
                'The rate a step achieved: {step, atLeast / atMost / near (fractions of line), atLeastGbps / atMostGbps}.',
            }),
        })
        .meta({ description: 'A step that moves data achieves a rate.' }),
      z
        .strictObject({
          run: z
            .enum(['completed', 'deadlock', 'time-limit'])
            .meta({ description: 'How the run ends (default: completed).' }),
        })
        .meta({ description: 'How the run ends.' }),
    ],
    {
      error:
        'expected an expectation: {step: id, ...}, {report: ...}, {no_report: ...}, {process: name, ...}, {bandwidth: {...}} or {run: ...}',
    },
  )
  .meta({ id: 'Expectation', description: 'One expectation.' });

// ------------------------------------------------------------ the scenario

const processSchema = z
  .strictObject({
    name: identifier.meta({ description: 'The process name (its comm).' }),
    description: z.string().optional(),
    host: identifier
      .optional()
      .meta({ description: 'The host it runs on, a name under `hosts` (default: the first host).' }),
    steps: z.array(anyStep).min(1).meta({ description: "The main thread's steps, in order." }),
  })
  .meta({ id: 'Process', description: 'A process and the steps its main thread runs.' });

/** A whole scenario file. */
export const scenarioSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'Ignored (for editors).' }),
    name: z.string().min(1).meta({ description: 'The scenario name.' }),
    description: z.string().optional().meta({ description: 'What it shows or checks.' }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(0xffffffff)
      .default(1)
      .meta({ description: 'Seed of every random choice (default 1; `--seed` overrides).' }),
    scheduler: z
      .union([
        z.enum(['fifo', 'random', 'pct']),
        z.strictObject({
          strategy: z.enum(['fifo', 'random', 'pct']),
          depth: z
            .number()
            .int()
            .min(1)
            .max(64)
            .optional()
            .meta({ description: 'PCT bug depth (default 3).' }),
        }),
      ])
      .default('fifo')
      .meta({ description: 'Thread scheduling: fifo, random, pct, or {strategy: pct, depth: d}.' }),
    limit: duration
      .default(60_000_000_000)
      .meta({ description: 'Virtual time after which the run is stopped (default 60s).' }),
    topology: topologySchema.optional(),
    hosts: z
      .array(
        z
          .strictObject({
            name: identifier.meta({
              description: 'The host name (its kernel name in reports): host1, host2...',
            }),
            topology: topologySchema.optional(),
          })
          .meta({ id: 'Host', description: 'A machine of the cluster: its name and its PCIe topology.' }),
      )
      .min(1)
      .optional()
      .meta({
        description:
          'Several machines on one clock, their RDMA NIC ports cabled to one switch (instead of `topology`, which describes a single host).',
      }),
    network: z
      .strictObject({
        gbps: z
          .number()
          .positive()
          .default(200)
          .meta({ description: 'Rate of every NIC port and switch link, Gb/s (default 200).' }),
        latency: duration
          .optional()
          .meta({ description: 'One-way latency of each cable (default 600ns); the switch adds its own.' }),
      })
      .optional()
      .meta({
        description: "The RDMA network joining the hosts' NIC ports (one host's NICs are cabled too).",
      }),
    requires: z
      .array(z.string().regex(/^\//, { error: 'expected an absolute path such as /dev/dma_heap/system' }))
      .default([])
      .meta({ description: 'Device paths the scenario needs; on a machine without them it is skipped.' }),
    channels: z
      .record(identifier, z.tuple([identifier, identifier]))
      .default({})
      .meta({ description: 'Channels: name -> [process, process], a socketpair to pass messages and fds.' }),
    processes: z.array(processSchema).min(1),
    expect: z.array(expectationSchema).default([]).meta({
      description:
        'Expectations. Besides these, every step must succeed unless it expects an errno, every check must pass, the run must complete, and no rule report may be raised that no `report` expectation names.',
    }),
  })
  .meta({
    title: 'dmabuf-lab scenario',
    description: 'A dmabuf-lab scenario: a machine, processes and expectations.',
  });

/** A parsed scenario (units converted, defaults filled in). */
export type ScenarioData = z.output<typeof scenarioSchema>;
/** One parsed expectation. */
export type ExpectationData = z.output<typeof expectationSchema>;
/** A report matcher as parsed. */
export type ReportMatcher = z.output<typeof reportMatcher>;

/** The JSON Schema of scenario files (what schema/scenario.schema.json holds). */
export function scenarioJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(scenarioSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  // A lazy reference becomes a definition that is only a $ref: point its users at the target.
  const defs = (s.$defs ?? {}) as Record<string, Record<string, unknown>>;
  let text = JSON.stringify(s);
  for (const [name, def] of Object.entries(defs)) {
    if (Object.keys(def).length === 1 && typeof def.$ref === 'string') {
      text = text.split(`"#/$defs/${name}"`).join(JSON.stringify(def.$ref));
      delete defs[name];
      const parsed = JSON.parse(text) as Record<string, unknown>;
      delete (parsed.$defs as Record<string, unknown>)[name];
      text = JSON.stringify(parsed);
    }
  }
  const out = JSON.parse(text) as Record<string, unknown>;
  return { $schema: out.$schema, ...out };
}

/** The JSON Schema as the text of schema/scenario.schema.json. */
export function scenarioJsonSchemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}
