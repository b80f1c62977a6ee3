/**
 * The RDMA side of the model, kernel-internal API (for driver authors and tests): the
 * verbs vocabulary, umem and umem_dmabuf, the core objects, the NIC driver and uverbs.
 */
export * from './ib-core.ts';
export * from './ib-umem.ts';
export * from './ib-verbs.ts';
export * from './rdma-nic.ts';
export * from './umem-dmabuf.ts';
export * from './uverbs-main.ts';
