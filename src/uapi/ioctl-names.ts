/**
 * ioctl request names: the symbolic name of a request number (`DMA_BUF_IOCTL_SYNC`,
 * `DMA_HEAP_IOCTL_ALLOC`, `DRM_IOCTL_PRIME_HANDLE_TO_FD`...), for the `cmd` field of the
 * `sys_enter` tracepoint and the trace's slice names, the way strace prints requests.
 *
 * The table is built on first use from the request constants the uapi modules export
 * (the numbers come from the kernel's uapi headers; see each module).
 */
import * as amdgpu from './amdgpu.ts';
import * as dmaBuf from './dma-buf.ts';
import * as dmaHeap from './dma-heap.ts';
import * as drm from './drm.ts';
import * as habanalabs from './habanalabs.ts';
import * as ioctl from './ioctl.ts';
import * as scanout from './scanout.ts';
import * as udmabuf from './udmabuf.ts';

/** Export names that are request numbers (not magics, flags or field widths). */
const REQUEST_NAME =
  /(^|_)IOC(TL)?_|^UDMABUF_CREATE|^DMA_BUF_SET_NAME|^FIO|^FI[A-Z]+$|^SW_SYNC_GET_DEADLINE$/;

let table: Map<number, string> | null = null;

function build(): Map<number, string> {
  const t = new Map<number, string>();
  for (const mod of [ioctl, dmaBuf, dmaHeap, udmabuf, drm, habanalabs, amdgpu, scanout] as Record<
    string,
    unknown
  >[]) {
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0x100) continue;
      if (!REQUEST_NAME.test(name)) continue;
      const v = value >>> 0;
      // First name wins; DMA_BUF_SET_NAME_A/B share a number only with themselves.
      if (!t.has(v)) t.set(v, name.replace(/^DMA_BUF_SET_NAME_[AB]$/, 'DMA_BUF_SET_NAME'));
    }
  }
  return t;
}

/** The name of ioctl request `request` (`DMA_BUF_IOCTL_SYNC`), or its hex value (`0x40086200`) when unknown. */
export function ioctlName(request: number): string {
  table ??= build();
  const r = request >>> 0;
  return table.get(r) ?? `0x${r.toString(16)}`;
}
