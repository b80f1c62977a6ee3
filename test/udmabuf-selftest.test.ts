/**
 * tools/testing/selftests/drivers/dma-buf/udmabuf.c (Linux 6.12: plan 6, tests 1-6),
 * ported to the model's raw ABI. Each numbered case is one vitest test; the whole run's
 * TAP output is compared with the oracle's (oracle/outputs/udmabuf.txt).
 *
 * Test 6 uses a hugetlb memfd of 1024 x 2 MiB; the model allocates memfd memory lazily
 * in 2 MiB chunks, and the test writes one byte per huge page, so it stays cheap.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import {
  F_ADD_SEALS,
  F_SEAL_SHRINK,
  MAP_SHARED,
  Machine,
  MFD_ALLOW_SEALING,
  MFD_HUGETLB,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  type Sys,
  UDMABUF_CREATE,
  UDMABUF_CREATE_LIST,
  UDMABUF_FLAGS_CLOEXEC,
  udmabufCreate,
  udmabufCreateItem,
  udmabufCreateList,
} from '../src/index.ts';
import { Ksft } from './helpers/ksft.ts';

const TEST_PREFIX = 'drivers/dma-buf/udmabuf';
const NUM_PAGES = 4;
const NUM_ENTRIES = 4;
const MEMFD_SIZE = 1024; // in pages
const PAGESIZE = 4096;

/** A selftest failure that ends the program (exit(KSFT_FAIL)). */
class KsftExit extends Error {}

/** The port of udmabuf.c's main(). */
async function udmabufSelftest(sys: Sys, ksft: Ksft): Promise<void> {
  let pageSize = 0;

  const createMemfdWithSeals = async (size: number, hpage: boolean) => {
    let flags = MFD_ALLOW_SEALING;
    if (hpage) flags |= MFD_HUGETLB;
    const memfd = await sys.memfd_create(sys.allocCString('udmabuf-test'), flags);
    if (memfd < 0) throw new KsftExit(`${TEST_PREFIX}: [skip,no-memfd]`);
    if ((await sys.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK)) < 0) {
      throw new KsftExit(`${TEST_PREFIX}: [skip,fcntl-add-seals]`);
    }
    if ((await sys.ftruncate(memfd, size)) < 0) throw new KsftExit(`${TEST_PREFIX}: [FAIL,memfd-truncate]`);
    return memfd;
  };

  const createUdmabufList = async (devfd: number, memfd: number, memfdSize: number) => {
    const list = sys.alloc(udmabufCreateList.size + NUM_ENTRIES * udmabufCreateItem.size, 8);
    for (let i = 0; i < NUM_ENTRIES; i++) {
      sys.writeStruct(udmabufCreateItem, list + udmabufCreateList.size + i * udmabufCreateItem.size, {
        memfd,
        offset: i * (memfdSize / NUM_ENTRIES),
        size: PAGESIZE * NUM_PAGES,
      });
    }
    sys.writeStruct(udmabufCreateList, list, { count: NUM_ENTRIES, flags: UDMABUF_FLAGS_CLOEXEC });
    const ubufFd = await sys.ioctl(devfd, UDMABUF_CREATE_LIST, list);
    if (ubufFd < 0) throw new KsftExit(`${TEST_PREFIX}: [FAIL, udmabuf-create]`);
    return ubufFd;
  };

  const writeToMemfd = (addr: number, size: number, chr: string) => {
    for (let i = 0; i < size / pageSize; i++) sys.poke(addr + i * pageSize, Uint8Array.of(chr.charCodeAt(0)));
  };

  const mmapFd = async (fd: number, size: number) => {
    const addr = await sys.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr < 0) throw new KsftExit(`${TEST_PREFIX}: ubuf_fd mmap fail`);
    return addr;
  };

  const compareChunks = async (addr1: number, addr2: number, memfdSize: number) => {
    let ret = 0;
    let k = 0;
    outer: for (let i = 0; i < NUM_ENTRIES; i++) {
      const off = i * (memfdSize / NUM_ENTRIES);
      for (let j = 0; j < NUM_PAGES; j++, k++) {
        const char1 = sys.peek(addr1 + off + j * PAGESIZE, 1)[0];
        const char2 = sys.peek(addr2 + k * PAGESIZE, 1)[0];
        if (char1 !== char2) {
          ret = -1;
          break outer;
        }
      }
    }
    await sys.munmap(addr1, memfdSize);
    await sys.munmap(addr2, NUM_ENTRIES * NUM_PAGES * PAGESIZE);
    return ret;
  };

  ksft.setPlan(6);
  const devfd = await sys.open('/dev/udmabuf', O_RDWR);
  if (devfd < 0)
    throw new KsftExit(`${TEST_PREFIX}: [skip,no-udmabuf: Unable to access DMA buffer device file]`);
  let memfd = await sys.memfd_create(sys.allocCString('udmabuf-test'), MFD_ALLOW_SEALING);
  if (memfd < 0) throw new KsftExit(`${TEST_PREFIX}: [skip,no-memfd]`);
  if ((await sys.fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK)) < 0) {
    throw new KsftExit(`${TEST_PREFIX}: [skip,fcntl-add-seals]`);
  }
  let size = PAGESIZE * NUM_PAGES;
  if ((await sys.ftruncate(memfd, size)) < 0) throw new KsftExit(`${TEST_PREFIX}: [FAIL,memfd-truncate]`);

  const create = sys.allocStruct(udmabufCreate, {});
  const tryCreate = async (v: { memfd: number; offset: number; size: number }) => {
    sys.writeStruct(udmabufCreate, create, { ...v, flags: 0 });
    return sys.ioctl(devfd, UDMABUF_CREATE, create);
  };
  const expectFail = (buf: number, n: number) =>
    buf >= 0 ? ksft.fail(`${TEST_PREFIX}: [FAIL,test-${n}]`) : ksft.pass(`${TEST_PREFIX}: [PASS,test-${n}]`);
  const expectWork = (ok: boolean, n: number) =>
    ok ? ksft.pass(`${TEST_PREFIX}: [PASS,test-${n}]`) : ksft.fail(`${TEST_PREFIX}: [FAIL,test-${n}]`);

  // should fail (offset not page aligned)
  expectFail(await tryCreate({ memfd, offset: PAGESIZE / 2, size: PAGESIZE }), 1);
  // should fail (size not multiple of page)
  expectFail(await tryCreate({ memfd, offset: 0, size: PAGESIZE / 2 }), 2);
  // should fail (not memfd)
  expectFail(await tryCreate({ memfd: 0, offset: 0, size }), 3);

  // should work
  pageSize = PAGESIZE;
  let addr1 = await mmapFd(memfd, size);
  writeToMemfd(addr1, size, 'a');
  let buf = await tryCreate({ memfd, offset: 0, size });
  expectWork(buf >= 0, 4);
  await sys.munmap(addr1, size);
  await sys.close(buf);
  await sys.close(memfd);

  // should work (migration of 4k size pages)
  size = MEMFD_SIZE * pageSize;
  memfd = await createMemfdWithSeals(size, false);
  addr1 = await mmapFd(memfd, size);
  writeToMemfd(addr1, size, 'a');
  buf = await createUdmabufList(devfd, memfd, size);
  let addr2 = await mmapFd(buf, NUM_PAGES * NUM_ENTRIES * PAGESIZE);
  writeToMemfd(addr1, size, 'b');
  expectWork((await compareChunks(addr1, addr2, size)) === 0, 5);
  await sys.close(buf);
  await sys.close(memfd);

  // should work (migration of 2MB size huge pages)
  pageSize = PAGESIZE * 512;
  size = MEMFD_SIZE * pageSize;
  memfd = await createMemfdWithSeals(size, true);
  addr1 = await mmapFd(memfd, size);
  writeToMemfd(addr1, size, 'a');
  buf = await createUdmabufList(devfd, memfd, size);
  addr2 = await mmapFd(buf, NUM_PAGES * NUM_ENTRIES * PAGESIZE);
  writeToMemfd(addr1, size, 'b');
  expectWork((await compareChunks(addr1, addr2, size)) === 0, 6);
  await sys.close(buf);
  await sys.close(memfd);
  await sys.close(devfd);

  ksft.msg(`${TEST_PREFIX}: ok`);
  ksft.totals();
}

const ORACLE = new URL('./fixtures/oracle/udmabuf.txt', import.meta.url);

describe('udmabuf selftest (tools/testing/selftests/drivers/dma-buf/udmabuf.c)', () => {
  const ksft = new Ksft();
  let exitCode: number | null = null;
  let error: unknown;
  let reports: unknown[] = [];

  beforeAll(async () => {
    const m = await Machine.create({ seed: 1 });
    const p = m.spawn('udmabuf', async (sys) => {
      await udmabufSelftest(sys, ksft);
      return 0;
    });
    await m.run();
    exitCode = p.exitCode;
    error = p.error;
    reports = m.reports;
  });

  test('runs to the end without a report', () => {
    expect(error).toBeUndefined();
    expect(exitCode).toBe(0);
    expect(reports).toEqual([]);
  });

  const cases = [
    'test-1: UDMABUF_CREATE with an offset that is not page aligned fails',
    'test-2: UDMABUF_CREATE with a size that is not page aligned fails',
    'test-3: UDMABUF_CREATE of fd 0 (not a memfd) fails',
    'test-4: UDMABUF_CREATE of a sealed 4-page memfd works',
    'test-5: UDMABUF_CREATE_LIST of 4 x 4 pages aliases the memfd pages (4 KiB pages)',
    'test-6: the same with a hugetlb memfd (2 MiB pages)',
  ];
  cases.forEach((name, i) => {
    test(name, () => {
      expect(ksft.results[i]).toEqual({
        n: i + 1,
        status: 'pass',
        msg: `${TEST_PREFIX}: [PASS,test-${i + 1}]`,
      });
    });
  });

  test('the TAP output is the oracle kernel run', async () => {
    const { readFileSync } = await import('node:fs');
    expect(ksft.lines).toEqual(readFileSync(ORACLE, 'utf8').replace(/\n$/, '').split('\n'));
  });
});
