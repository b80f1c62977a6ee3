/**
 * The habanalabs PCI driver and its accel device files
 * (drivers/accel/habanalabs/common/habanalabs_drv.c probe, open and the ioctl table;
 * habanalabs_ioctl.c hl_info_ioctl / hw_ip_info / dram_usage_info; drivers/accel/drm_accel.c
 * for /dev/accel/accel<N>, major 261; drivers/gpu/drm/drm_ioctl.c for the argument copy).
 *
 * Probe binds every Gaudi2 function (1da3:1020): its DRAM BAR (BAR 4) becomes the
 * device's `dram_pci_bar_start`/`dram_pci_bar_size`, claimed as an iomem window onto
 * the device's DRAM (so peers' DMA reaches real bytes); the device gets a tracked DMA
 * context (through an IOMMU when the topology has one) and a DMA engine, and
 * /dev/accel/accel<N> appears. Each open creates a compute context; release drops it,
 * which (because every exported dma-buf holds the device file) happens only after all
 * of the context's dma-bufs are gone.
 *
 * ioctl dispatch follows drm_ioctl for driver ioctls: the argument is copied in
 * (min of the user's and the driver's size, zero-extended), the handler runs, and the
 * argument is copied back out whatever the handler returned (-EFAULT if that fails).
 * Implemented: INFO (HW_IP_INFO, DRAM_USAGE), MEMORY, and the model's DMA-job ioctl.
 * Model notes: CB, CS, WAIT_CS and DEBUG are not modelled (-ENOTTY); DRM core ioctls
 * (VERSION, ...) are not modelled on accel nodes (-EINVAL, as drm_ioctl answers an
 * unknown number).
 */
import type { Device } from '../../../kernel/device.ts';
import { errno } from '../../../kernel/errno.ts';
import type { File, FileOperations, Inode } from '../../../kernel/file.ts';
import { currentKernel, type Kernel } from '../../../kernel/kernel.ts';
import { type LeakFinding, registerLeakCheck } from '../../../kernel/leak-check.ts';
import { IomemRegion, requestMemRegion } from '../../../kernel/mm/iomem.ts';
import { deviceSetupDma } from '../../../kernel/mm/iommu.ts';
import type { PciDev } from '../../../kernel/pci/pci.ts';
import { pciRegisterDriver, pciTransferModel } from '../../../kernel/pci/pci-driver.ts';
import { PCI_VENDOR } from '../../../kernel/pci/topology.ts';
import { copyFromUser, copyToUser } from '../../../kernel/uaccess.ts';
import { registerDevice } from '../../../kernel/vfs.ts';
import {
  ACCEL_MAJOR,
  accelPath,
  HL_INFO_DRAM_USAGE,
  HL_INFO_HW_IP_INFO,
  HL_IOCTL_INFO,
  HL_IOCTL_MEMORY,
  HL_IOCTL_MODEL_DMA,
  hlInfoArgs,
  hlInfoDramUsage,
  hlInfoHwIpInfo,
  hlMemIn,
  hlMemOut,
  hlModelDmaJob,
} from '../../../uapi/habanalabs.ts';
import { _IOC_READ, _IOC_WRITE } from '../../../uapi/ioctl.ts';
import { HlDmaEngine, hlModelDmaIoctl } from './command-submission.ts';
import {
  GAUDI2_DRAM_BAR_ID,
  gaudi2FixedProperties,
  type HlAsicConfig,
  type HlCtx,
  HlDevice,
  hlCtxPut,
  hlDramCreate,
  PCI_IDS_GAUDI2,
} from './habanalabs.ts';
import { hlMemIoctl } from './memory.ts';

/** The driver's name. */
export const HL_NAME = 'habanalabs';

/** struct hl_fpriv: what an open device file holds. */
export interface HlFpriv {
  /** The device. */
  readonly hdev: HlDevice;
  /** The file's compute context. */
  readonly ctx: HlCtx;
  /** The device file. */
  readonly file: File;
}

const DEVICES = Symbol('habanalabs');

/** The accelerators bound on a kernel, by minor. */
export function hlDevices(k: Kernel = currentKernel()): HlDevice[] {
  let l = k.singletons.get(DEVICES) as HlDevice[] | undefined;
  if (!l) {
    l = [];
    k.singletons.set(DEVICES, l);
  }
  return l;
}

/** Per-ASIC overrides applied at probe (tests use them for small or narrow-BAR devices). */
export const hlProbeConfig: { asic: HlAsicConfig; barSize: number | null } = { asic: {}, barSize: null };

function hlProbe(pdev: PciDev, dev: Device): number {
  const bar = pdev.resources.find((r) => r.index === GAUDI2_DRAM_BAR_ID);
  if (!bar) return -errno.ENODEV;
  const list = hlDevices();
  const id = list.length;
  const barSize = hlProbeConfig.barSize ?? bar.size;
  // The topology's stated HBM size (EndpointSpec.memory) wins over the probe config.
  const asic = pdev.memory !== null ? { ...hlProbeConfig.asic, dramSize: pdev.memory } : hlProbeConfig.asic;
  const prop = gaudi2FixedProperties(barSize, asic);
  const dram = hlDramCreate(`accel${id}`, prop);
  const window = new IomemRegion(
    `${pdev.name} BAR${GAUDI2_DRAM_BAR_ID}`,
    bar.start,
    Math.min(barSize, prop.dramSize),
    dram,
    prop.dramBaseAddress,
    pdev,
  );
  if (!requestMemRegion(window)) return -errno.EBUSY;
  deviceSetupDma(dev, { iommu: pdev.topology.iommu });
  const hdev = new HlDevice(id, pdev, dev, prop, window, pciTransferModel(), dram);
  hdev.dma = new HlDmaEngine(hdev);
  list.push(hdev);
  registerLeakCheck(currentKernel(), hlLeakCheck);
  registerDevice(accelPath(id), hlFops, { mode: 0o666, priv: hdev, rdev: (ACCEL_MAJOR << 8) | id });
  return 0;
}

/**
 * After every process exited: a compute context still alive (something kept the
 * device file or an exported dma-buf), or DMA jobs whose fences never signalled.
 */
function hlLeakCheck(k: Kernel): LeakFinding[] {
  const out: LeakFinding[] = [];
  for (const hdev of hlDevices(k)) {
    for (const ctx of hdev.contexts) {
      out.push({
        rule: 'habanalabs.ctx_leak',
        message: `${hdev.name}: compute context (asid ${ctx.asid}) still alive with ${ctx.refcount} reference(s), ${hdev.dmabufExportCnt} exported dma-buf(s)`,
        objects: [{ kind: 'hl_ctx', name: `${hdev.name} asid ${ctx.asid}`, id: ctx.asid }],
        key: ctx,
      });
    }
    if (hdev.dma.pendingJobs > 0) {
      out.push({
        rule: 'habanalabs.dma_job_pending',
        message: `${hdev.name}: ${hdev.dma.pendingJobs} DMA job(s) never completed; their out-fences never signal`,
        objects: [{ kind: 'device', name: hdev.name }],
        key: hdev.dma,
      });
    }
  }
  return out;
}

/** The habanalabs PCI driver (hl_pci_driver). */
export const hlPciDriver = {
  name: HL_NAME,
  idTable: [{ vendor: PCI_VENDOR.HABANALABS, device: PCI_IDS_GAUDI2 }],
  probe: hlProbe,
};

function fpriv(file: File): HlFpriv {
  return file.privateData as HlFpriv;
}

/** hw_ip_info(). */
function hwIpInfo(hp: HlFpriv, retPtr: number, retSize: number): number {
  if (!retSize || !retPtr) return -errno.EINVAL;
  const p = hp.hdev.prop;
  const dramKmd = p.dramUserBaseAddress - p.dramBaseAddress;
  const dramSize = Math.floor((p.dramSize - dramKmd) / p.dramPageSize) * p.dramPageSize;
  const card = new Uint8Array(16);
  card.set(new TextEncoder().encode(p.cardName).subarray(0, 15));
  const bytes = hlInfoHwIpInfo.encode({
    device_id: p.deviceId,
    dram_base_address: BigInt(p.dramSupportsVirtualMemory ? p.dmmuStartAddr : p.dramUserBaseAddress),
    dram_size: BigInt(dramSize),
    sram_size: p.sramSize,
    dram_enabled: dramSize > 4096 ? 1 : 0,
    dram_page_size: BigInt(p.dramPageSize),
    device_mem_alloc_default_page_size: BigInt(p.dramPageSize),
    card_name: card,
  });
  return copyToUser(retPtr, bytes.subarray(0, Math.min(retSize, bytes.length))) ? -errno.EFAULT : 0;
}

/** dram_usage_info(). */
function dramUsageInfo(hp: HlFpriv, retPtr: number, retSize: number): number {
  if (!retSize || !retPtr) return -errno.EINVAL;
  const p = hp.hdev.prop;
  const dramKmd = p.dramUserBaseAddress - p.dramBaseAddress;
  const bytes = hlInfoDramUsage.encode({
    dram_free_mem: BigInt(p.dramSize - dramKmd - hp.hdev.dramUsedMem),
    ctx_dram_mem: BigInt(hp.ctx.dramPhysMem),
  });
  return copyToUser(retPtr, bytes.subarray(0, Math.min(retSize, bytes.length))) ? -errno.EFAULT : 0;
}

/** hl_info_ioctl(). */
function hlInfoIoctl(hp: HlFpriv, data: Uint8Array): number {
  const a = hlInfoArgs.decode(data);
  const ptr = Number(a.return_pointer);
  const size = Number(a.return_size);
  switch (Number(a.op)) {
    case HL_INFO_HW_IP_INFO:
      return hwIpInfo(hp, ptr, size);
    default:
      break;
  }
  if (!hp.hdev.operational) return -errno.EBUSY;
  switch (Number(a.op)) {
    case HL_INFO_DRAM_USAGE:
      return dramUsageInfo(hp, ptr, size);
    default:
      return -errno.EINVAL;
  }
}

function hlMemIoctlData(hp: HlFpriv, data: Uint8Array): number {
  const a = hlMemIn.decode(data);
  const r = hlMemIoctl(hp.ctx, hp.file, {
    arg0: Number(a.arg0),
    arg1: Number(a.arg1),
    arg2: Number(a.arg2),
    op: Number(a.op),
    flags: Number(a.flags),
  });
  if (r.out !== null) {
    // memset(args, 0, sizeof(*args)); then out.handle / out.device_virt_addr / out.fd.
    data.fill(0);
    const out = r.fd !== undefined ? BigInt.asUintN(32, BigInt(r.fd)) : BigInt(r.out);
    data.set(hlMemOut.encode({ handle: out }));
  }
  return r.rc;
}

async function hlModelDmaIoctlData(hp: HlFpriv, data: Uint8Array): Promise<number> {
  const a = hlModelDmaJob.decode(data);
  const r = await hlModelDmaIoctl(hp.ctx, {
    op: Number(a.op),
    dst: Number(a.dst_addr),
    src: Number(a.src_addr),
    size: Number(a.size),
    pattern: a.pattern as bigint,
    inFence: Number(a.in_fence),
  });
  if (r.rc === 0) new DataView(data.buffer, data.byteOffset).setInt32(40, r.outFence, true);
  return r.rc;
}

interface HlIoctlDesc {
  size: number;
  fn: (hp: HlFpriv, data: Uint8Array) => number | Promise<number>;
}

const HL_IOCTLS = new Map<number, HlIoctlDesc>([
  [HL_IOCTL_INFO, { size: hlInfoArgs.size, fn: hlInfoIoctl }],
  [HL_IOCTL_MEMORY, { size: hlMemIn.size, fn: hlMemIoctlData }],
  [HL_IOCTL_MODEL_DMA, { size: hlModelDmaJob.size, fn: hlModelDmaIoctlData }],
]);

/** drm_ioctl() for the driver's ioctls. */
async function hlIoctl(file: File, cmd: number, arg: number): Promise<number> {
  const nr = cmd & 0xff;
  const dir = (cmd >>> 30) & 3;
  const usize = (cmd >>> 16) & 0x3fff;
  if (nr < 0x40) return -errno.EINVAL;
  const desc = HL_IOCTLS.get(nr - 0x40);
  if (!desc) return nr - 0x40 < 6 ? -errno.ENOTTY : -errno.EINVAL;
  const data = new Uint8Array(Math.max(usize, desc.size));
  const inSize = dir & _IOC_WRITE ? Math.min(usize, desc.size) : 0;
  const outSize = dir & _IOC_READ ? Math.min(usize, desc.size) : 0;
  if (inSize && copyFromUser(data.subarray(0, inSize), arg)) return -errno.EFAULT;
  const rc = await desc.fn(fpriv(file), data.subarray(0, desc.size));
  if (outSize && copyToUser(arg, data.subarray(0, outSize))) return -errno.EFAULT;
  return rc;
}

/** The accel device file operations (hl_fops over accel_open / drm_release / drm_ioctl). */
export const hlFops: FileOperations = {
  name: 'accel',
  open(inode: Inode, file: File): number {
    const hdev = inode.priv as HlDevice;
    if (!hdev.operational) return -errno.EBUSY;
    const ctx = hdev.createCtx();
    file.privateData = { hdev, ctx, file } satisfies HlFpriv;
    return 0;
  },
  release(_inode: Inode, file: File): void {
    hlCtxPut(fpriv(file).ctx);
  },
  ioctl: hlIoctl,
};

/** Registers the driver (module_init). Machines booted afterwards probe their Gaudi functions. */
export function habanalabsInit(): void {
  pciRegisterDriver(hlPciDriver);
}
