/**
 * The kernel's generic array sort (lib/sort.c, Linux 6.12): an in-place heapsort. It is
 * not stable, so where the model sorts what the kernel sorts (dma_fence_unwrap_merge),
 * using the same algorithm makes equal keys come out in the kernel's order.
 */

/**
 * lib/sort.c's sort() as of 6.12: bottom-up heapsort (not stable) that extracts the two
 * largest elements per step once the heap is built. Follows the kernel's comparisons
 * exactly (including which side wins a tie), so equal keys end up where the kernel
 * puts them.
 */
export function sort<T>(v: T[], cmp: (x: T, y: T) => number): void {
  const swap = (x: number, y: number) => {
    const t = v[x];
    v[x] = v[y];
    v[y] = t;
  };
  const parent = (i: number) => (i - 1) >> 1;
  let n = v.length;
  let a = n >> 1;
  let shift = 0;
  if (a === 0) return;
  for (;;) {
    if (a !== 0) {
      a -= 1 << shift; // building the heap, or the root after a two-element extraction
    } else if (n > 3) {
      // Move the two largest to their final places; sift down the hole they leave.
      n--;
      swap(0, n);
      shift = cmp(v[1], v[2]) <= 0 ? 1 : 0;
      a = 1 << shift;
      n--;
      swap(a, n);
    } else {
      break;
    }
    // Find the path of larger children down to a leaf...
    let b = a;
    let c = 2 * b + 1;
    let d = c + 1;
    while (d < n) {
      b = cmp(v[c], v[d]) > 0 ? c : d;
      c = 2 * b + 1;
      d = c + 1;
    }
    if (d === n) b = c; // last leaf without a sibling
    // ...back up to where element a belongs, and rotate it into place along the path.
    while (b !== a && cmp(v[a], v[b]) >= 0) b = parent(b);
    c = b;
    while (b !== a) {
      b = parent(b);
      swap(b, c);
    }
  }
  n--;
  swap(0, n);
  if (n === 2 && cmp(v[0], v[1]) > 0) swap(0, 1);
}
