/**
 * The habanalabs-like accelerator driver (drivers/accel/habanalabs/): device state and
 * DRAM, the memory ioctl and dma-buf exporter, the DMA engine, the PCI driver and its
 * accel device files.
 */
export * from './command-submission.ts';
export * from './habanalabs.ts';
export * from './habanalabs-drv.ts';
export * from './memory.ts';
