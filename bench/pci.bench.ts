/**
 * PCIe transfer model benchmarks.
 *
 * - `transfer.p2p.1gib.same_switch`, `transfer.p2p.1gib.root_complex`: the model's
 *   predicted bandwidth for a lone 1 GiB P2P write on the `dgx-like` preset (Gen5 x16),
 *   between a GPU and a NIC under one switch, and between GPUs under two switches of
 *   one socket (through the Sapphire Rapids root complex). Model outputs, not timings:
 *   compare them with spec/performance.md §1.3 (53-56 GB/s through a Gen5 switch) and
 *   §1.5/§7 (root-complex P2P at 0.45-0.9 of the link).
 * - `flow.rebalance`: flow start and finish events handled per second of wall time
 *   with 64 concurrent transfers on `dgx-like`, each event re-solving max-min rates.
 */
import { FlowNetwork } from '../src/kernel/pci/flow.ts';
import { topologyPreset } from '../src/kernel/pci/topology-presets.ts';
import { predictTransfer, TransferModel } from '../src/kernel/pci/transfer.ts';
import { Engine } from '../src/sim/engine.ts';
import { Prng } from '../src/sim/prng.ts';
import { type Benchmark, secondsSince } from './harness.ts';

const GIB = 2 ** 30;

function predicted(src: string, dst: string): number {
  return predictTransfer(topologyPreset('dgx-like'), src, dst, GIB).bandwidthGBps;
}

async function rebalance(): Promise<number> {
  const t = topologyPreset('dgx-like');
  const engine = new Engine({ seed: 1, log: false });
  const model = new TransferModel(t, new FlowNetwork(engine));
  const rng = new Prng(5);
  const ends = [...t.endpoints.map((d) => d.id), 'cpu0', 'cpu1'];
  const total = 20_000;
  let started = 0;
  let finished = 0;
  const launch = (): void => {
    if (started >= total) return;
    started++;
    const src = ends[rng.nextInt(ends.length - 2)];
    let dst = ends[rng.nextInt(ends.length)];
    if (dst === src) dst = 'cpu1';
    model.start({
      src,
      dst,
      bytes: 1 + rng.nextInt(64 << 20),
      onComplete: () => {
        finished++;
        launch();
      },
    });
  };
  const t0 = performance.now();
  for (let i = 0; i < 64; i++) launch();
  await engine.run();
  const s = secondsSince(t0);
  if (finished !== total) throw new Error(`flow.rebalance: ${finished} of ${total} flows finished`);
  return (started + finished) / s;
}

/** The benchmarks. */
export const benchmarks: Benchmark[] = [
  { name: 'transfer.p2p.1gib.same_switch', unit: 'GB/s', run: () => predicted('gpu0', 'nic0') },
  { name: 'transfer.p2p.1gib.root_complex', unit: 'GB/s', run: () => predicted('gpu0', 'gpu2') },
  { name: 'flow.rebalance', unit: 'events/s', run: rebalance },
];
