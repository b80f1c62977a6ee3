/**
 * The amdgpu PCI and DRM driver (drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c amdgpu_pci_probe,
 * kms_driver and amdgpu_ioctls_kms; amdgpu_gmc.c / gmc_v9_0.c for the VRAM aperture,
 * Linux 6.12).
 *
 * Probe binds every `gpu` endpoint of AMD/ATI (vendor 0x1002): BAR 0 is the VRAM
 * aperture (aper_base), whose size is the CPU-visible VRAM window (visible_vram_size =
 * min(BAR 0, VRAM)); it is claimed as an iomem window onto the VRAM, so peers' DMA and
 * CPU mappings reach the very bytes. The GPU gets a tracked DMA context (through the
 * IOMMU when the topology has one), a copy ring, and a DRM device with a primary and a
 * render node; DRM_IOCTL_VERSION says "amdgpu" 3.59.0 (6.12's KMS_DRIVER_MAJOR/MINOR).
 *
 * Driver ioctls: AMDGPU_GEM_CREATE and AMDGPU_GEM_MMAP (render-allowed, as in 6.12), and
 * the model's copy job (DRM_COMMAND_BASE + 0x50). Model note: the other amdgpu ioctls
 * (CTX, CS, INFO, GEM_VA, ...) are not modelled: -EINVAL, as drm_ioctl answers a hole.
 * PRIME uses amdgpu's import (self-import gives the same object) and export.
 *
 * Options (`amdgpuProbeConfig`, read at each probe): VRAM size (default 8 GiB; the
 * topology endpoint's `memory`, when it states one, takes precedence), GTT size, the
 * 6.15 pin behaviour, and the pitfall-5 bug injection. Leak checks after every run: BOs
 * still holding VRAM or GTT, copy jobs whose fences never signalled.
 */
import type { Device } from '../../../kernel/device.ts';
import { errno } from '../../../kernel/errno.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import { type LeakFinding, registerLeakCheck } from '../../../kernel/leak-check.ts';
import { IomemRegion, requestMemRegion } from '../../../kernel/mm/iomem.ts';
import { deviceSetupDma } from '../../../kernel/mm/iommu.ts';
import type { PciDev } from '../../../kernel/pci/pci.ts';
import { pciRegisterDriver, pciTransferModel } from '../../../kernel/pci/pci-driver.ts';
import {
  DRM_IOCTL_AMDGPU_GEM_CREATE,
  DRM_IOCTL_AMDGPU_GEM_MMAP,
  DRM_IOCTL_AMDGPU_MODEL_COPY,
  PCI_VENDOR_ID_ATI,
} from '../../../uapi/amdgpu.ts';
import { DRM_COMMAND_BASE } from '../../../uapi/drm.ts';
import {
  DRIVER_GEM,
  DRIVER_RENDER,
  DRIVER_SYNCOBJ,
  DRIVER_SYNCOBJ_TIMELINE,
  type DrmDriver,
  drmDevAlloc,
  drmDevRegister,
} from '../drm/drm-drv.ts';
import { drmGemFops } from '../drm/drm-gem.ts';
import { DRM_AUTH, DRM_RENDER_ALLOW, type DrmIoctlDesc, drmIoctlDef } from '../drm/drm-ioctl.ts';
import { AmdgpuDevice, amdgpuProbeConfig, amdgpuSetDrm } from './amdgpu.ts';
import { amdgpuModelCopyIoctl } from './amdgpu-cs.ts';
import { amdgpuGemPrimeImport } from './amdgpu-dma-buf.ts';
import { amdgpuGemCreateIoctl, amdgpuGemMmapIoctl } from './amdgpu-gem.ts';
import { VramMemory } from './amdgpu-vram-mgr.ts';

/** DRIVER_NAME. */
export const AMDGPU_DRIVER_NAME = 'amdgpu';
/** DRIVER_DESC. */
export const AMDGPU_DRIVER_DESC = 'AMD GPU';
/** KMS_DRIVER_MAJOR of 6.12. */
export const KMS_DRIVER_MAJOR = 3;
/** KMS_DRIVER_MINOR of 6.12. */
export const KMS_DRIVER_MINOR = 59;
/** The VRAM aperture BAR (BAR 0). */
export const AMDGPU_VRAM_BAR = 0;

const DEVICES = Symbol('amdgpu');

/** The GPUs bound on a kernel, in probe order. */
export function amdgpuDevices(k: Kernel = currentKernel()): AmdgpuDevice[] {
  let l = k.singletons.get(DEVICES) as AmdgpuDevice[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(DEVICES, l);
  }
  return l;
}

const amdgpuIoctls: (DrmIoctlDesc | null)[] = [];
function def(cmd: number, fn: DrmIoctlDesc['func'], flags: number, name: string): void {
  amdgpuIoctls[(cmd & 0xff) - DRM_COMMAND_BASE] = drmIoctlDef(cmd, fn, flags, name);
}
def(
  DRM_IOCTL_AMDGPU_GEM_CREATE,
  amdgpuGemCreateIoctl,
  DRM_AUTH | DRM_RENDER_ALLOW,
  'DRM_IOCTL_AMDGPU_GEM_CREATE',
);
def(DRM_IOCTL_AMDGPU_GEM_MMAP, amdgpuGemMmapIoctl, DRM_AUTH | DRM_RENDER_ALLOW, 'DRM_IOCTL_AMDGPU_GEM_MMAP');
def(
  DRM_IOCTL_AMDGPU_MODEL_COPY,
  amdgpuModelCopyIoctl,
  DRM_AUTH | DRM_RENDER_ALLOW,
  'DRM_IOCTL_AMDGPU_MODEL_COPY',
);
for (let i = 0; i < amdgpuIoctls.length; i++) amdgpuIoctls[i] ??= null;

/** The amdgpu DRM driver (kms_driver). */
export const amdgpuKmsDriver: DrmDriver = {
  name: AMDGPU_DRIVER_NAME,
  desc: AMDGPU_DRIVER_DESC,
  date: '20150101',
  major: KMS_DRIVER_MAJOR,
  minor: KMS_DRIVER_MINOR,
  patchlevel: 0,
  driverFeatures: DRIVER_GEM | DRIVER_RENDER | DRIVER_SYNCOBJ | DRIVER_SYNCOBJ_TIMELINE,
  fops: drmGemFops,
  ioctls: amdgpuIoctls,
  gemPrimeImport: amdgpuGemPrimeImport,
};

/** After every process exited: BOs still holding memory, jobs never finished. */
function amdgpuLeakCheck(k: Kernel): LeakFinding[] {
  const out: LeakFinding[] = [];
  for (const adev of amdgpuDevices(k)) {
    if (adev.vramMgr.used > 0 || adev.gttUsed > 0) {
      out.push({
        rule: 'amdgpu.bo_leak',
        message: `${adev.name}: ${adev.vramMgr.used} bytes of VRAM and ${adev.gttUsed} bytes of GTT still allocated after every process exited`,
        objects: [{ kind: 'device', name: adev.name }],
        key: adev,
      });
    }
    if (adev.ring.pendingJobs > 0) {
      out.push({
        rule: 'amdgpu.job_pending',
        message: `${adev.name}: ${adev.ring.pendingJobs} SDMA job(s) never completed; their fences never signal`,
        objects: [{ kind: 'device', name: adev.name }],
        key: adev.ring,
      });
    }
  }
  return out;
}

/** amdgpu_pci_probe(). */
function amdgpuPciProbe(pdev: PciDev, dev: Device): number {
  const bar = pdev.resources.find((r) => r.index === AMDGPU_VRAM_BAR);
  if (!bar) return -errno.ENODEV;
  // The topology's stated VRAM size (EndpointSpec.memory) wins over the probe config.
  const opts = { ...amdgpuProbeConfig, ...(pdev.memory !== null ? { vramSize: pdev.memory } : {}) };
  const list = amdgpuDevices();
  const name = pdev.id;
  const vram = new VramMemory(`${name} VRAM`, 0, opts.vramSize);
  const window = new IomemRegion(
    `${pdev.name} BAR${AMDGPU_VRAM_BAR}`,
    bar.start,
    Math.min(bar.size, opts.vramSize),
    vram,
    0,
    pdev,
  );
  if (!requestMemRegion(window)) return -errno.EBUSY;
  deviceSetupDma(dev, { iommu: pdev.topology.iommu });
  const adev = new AmdgpuDevice(name, pdev, dev, bar.start, window, pciTransferModel(), opts, vram);
  const ddev = drmDevAlloc(amdgpuKmsDriver, dev);
  amdgpuSetDrm(adev, ddev);
  drmDevRegister(ddev);
  list.push(adev);
  registerLeakCheck(currentKernel(), amdgpuLeakCheck);
  adev.traceMem();
  return 0;
}

/** The amdgpu PCI driver (amdgpu_kms_pci_driver): AMD/ATI functions the topology calls GPUs. */
export const amdgpuPciDriver = {
  name: AMDGPU_DRIVER_NAME,
  idTable: [{ vendor: PCI_VENDOR_ID_ATI, kind: 'gpu' as const }],
  probe: amdgpuPciProbe,
};

/** Registers the driver (module_init): machines booted afterwards probe their AMD GPUs. */
export function amdgpuInit(): void {
  pciRegisterDriver(amdgpuPciDriver);
}
