/**
 * The PCIe model's public surface: topologies and presets, p2pdma distance and map
 * type (drivers/pci/p2pdma.c), and the transfer-time model.
 */
export * from './flow.ts';
export * from './p2pdma.ts';
export * from './pci.ts';
export * from './pci-driver.ts';
export * from './topology.ts';
export * from './topology-presets.ts';
export * from './transfer.ts';
export * from './transfer-params.ts';
export * from './transfer-path.ts';
