/**
 * struct amdgpu_device: one bound GPU with its memory managers (drivers/gpu/drm/amd/amdgpu/
 * amdgpu.h, amdgpu_device.c, amdgpu_gmc.c for the VRAM aperture, Linux 6.12).
 *
 * The device owns its VRAM (`VramMemory`, device addresses from 0) and the CPU-visible
 * window BAR 0 decodes (`visibleSize` = min(BAR 0, VRAM): 256 MiB on a small-BAR system,
 * all of VRAM with resizable BAR), GTT accounting (system pages the GPU reaches
 * through its GART), the LRU of BOs resident in VRAM (eviction order), its copy ring,
 * and the driver options the probe gave it.
 *
 * `mem_in_use` tracepoints (pools "vram" and "gtt", device = the topology endpoint id,
 * host = the kernel's name) are emitted whenever either total changes.
 */
import type { Device } from '../../../kernel/device.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import type { IomemRegion } from '../../../kernel/mm/iomem.ts';
import type { PciDev } from '../../../kernel/pci/pci.ts';
import type { TransferModel } from '../../../kernel/pci/transfer.ts';
import { traceMemInUse } from '../../../kernel/trace.ts';
import type { DrmDevice } from '../drm/drm-drv.ts';
import type { AmdgpuBo } from './amdgpu-object.ts';
import { AmdgpuRing } from './amdgpu-ring.ts';
import { AmdgpuVramMgr, type VramMemory } from './amdgpu-vram-mgr.ts';

/** Driver options (module parameters and model switches), read at probe. */
export interface AmdgpuOptions {
  /**
   * VRAM size in bytes (the model's; the preset's MI-class part has 8 GiB). A topology
   * endpoint that states `memory` (`EndpointSpec.memory`) gets that size instead.
   */
  vramSize: number;
  /**
   * GTT size in bytes (amdgpu.gttsize). Model default 2 GiB: GTT pages are real host
   * memory here, so the pool is bounded well below the kernel's 3/4 of system RAM.
   */
  gttSize: number;
  /**
   * Pin exported BOs into VRAM when every attachment can do peer-to-peer (6.15,
   * f5e7fabd1f5c "allow pinning DMA-bufs into VRAM if all importers can do P2P"). False:
   * 6.12, whose amdgpu_dma_buf_pin always pins into GTT.
   */
  pinVramIfAllP2P: boolean;
  /**
   * Bug injection: an eviction does not wait for the BO's fences after move_notify
   * before reusing the memory (spec/driver-side.md §8 pitfall 5). The model reports the
   * reuse (`amdgpu.vram_reused_before_idle`).
   */
  skipMoveWait: boolean;
}

/** The defaults of `AmdgpuOptions`. */
export const AMDGPU_DEFAULT_OPTIONS: Readonly<AmdgpuOptions> = {
  vramSize: 8 * 2 ** 30,
  gttSize: 2 * 2 ** 30,
  pinVramIfAllP2P: false,
  skipMoveWait: false,
};

/** The options the next probes use (tests change them before `Machine.create`). */
export const amdgpuProbeConfig: AmdgpuOptions = { ...AMDGPU_DEFAULT_OPTIONS };

/** A bound GPU (struct amdgpu_device). */
export class AmdgpuDevice {
  /** The DRM device (set at probe, right after creation). */
  ddev!: DrmDevice;
  /** VRAM bytes. */
  readonly vram: VramMemory;
  /** The VRAM manager. */
  readonly vramMgr: AmdgpuVramMgr;
  /** GTT bytes in use. */
  gttUsed = 0;
  /** BOs resident in VRAM, least recently used first. */
  readonly lru: AmdgpuBo[] = [];
  /** The copy ring. */
  readonly ring: AmdgpuRing;
  /** The kernel. */
  readonly kernel: Kernel;

  /** Created by the probe. */
  constructor(
    /** Topology endpoint id (`gpu0`). */
    readonly name: string,
    /** The PCI function. */
    readonly pdev: PciDev,
    /** Its struct device (DMA context, attachments). */
    readonly dev: Device,
    /** Bus address of BAR 0 (gmc.aper_base). */
    readonly barStart: number,
    /** The BAR window onto the visible VRAM. */
    readonly bar: IomemRegion,
    /** The machine's transfer model. */
    readonly transfers: TransferModel,
    /** The options in force. */
    readonly opts: AmdgpuOptions,
    vram: VramMemory,
  ) {
    this.kernel = currentKernel();
    this.vram = vram;
    this.vramMgr = new AmdgpuVramMgr(vram.size, bar.size, name);
    this.ring = new AmdgpuRing(name);
  }

  /** Size of the CPU-visible VRAM window (gmc.visible_vram_size). */
  get visibleVramSize(): number {
    return this.vramMgr.visibleSize;
  }

  /** Emits `mem_in_use` for the VRAM and GTT pools. */
  traceMem(): void {
    traceMemInUse(this.kernel.engine, this.kernel.name, 'vram', this.vramMgr.used, this.name);
    traceMemInUse(this.kernel.engine, this.kernel.name, 'gtt', this.gttUsed, this.name);
  }
}

const BY_DRM = new WeakMap<DrmDevice, AmdgpuDevice>();

/** drm_to_adev(): the GPU behind a DRM device of the amdgpu driver, or null. */
export function drmToAdev(ddev: DrmDevice): AmdgpuDevice | null {
  return BY_DRM.get(ddev) ?? null;
}

/** Links a GPU and its DRM device (probe). */
export function amdgpuSetDrm(adev: AmdgpuDevice, ddev: DrmDevice): void {
  adev.ddev = ddev;
  BY_DRM.set(ddev, adev);
}
