/**
 * Garbage collection after bursts of work, for tug's long-lived processes
 * (daemon, shims). V8 collects lazily: a shim that started and removed 50
 * containers kept ~60 MiB of garbage (heap and ArrayBuffers) it would have
 * freed at once, which is all of a small device's spare memory. With
 * `--expose-gc` (in tug's V8 flags), {@link collectSoon} runs a full
 * collection once the process has been quiet for a moment, then asks glibc
 * to give free memory back to the system (`malloc_trim`: the buffers V8 just
 * freed otherwise stay in malloc's arenas, counted in the process's RSS);
 * without `--expose-gc`, it does nothing.
 *
 * Before collecting it calls the releasers registered with
 * {@link onCollect} (pools and caches that only make the next burst
 * faster).
 *
 * @module
 */

const gc = (globalThis as { gc?: () => void }).gc;
let timer: ReturnType<typeof setTimeout> | undefined;
const releasers = new Set<() => void>();

let trim: (() => void) | null | undefined;

function mallocTrim(): void {
  if (trim === undefined) {
    trim = null;
    try {
      const lib = Deno.dlopen(
        "libc.so.6",
        {
          malloc_trim: { parameters: ["usize"], result: "i32" },
        } as const,
      );
      trim = () => void lib.symbols.malloc_trim(0n);
    } catch {
      // not glibc, or no FFI permission
    }
  }
  trim?.();
}

/** Registers `release`, called before every collection that {@link collectSoon} runs. */
export function onCollect(release: () => void): void {
  releasers.add(release);
}

/** Collects garbage `delayMs` after the last call (calls in between push it back). */
export function collectSoon(delayMs = 1000): void {
  if (!gc) return;
  if (timer !== undefined) clearTimeout(timer);
  timer = setTimeout(() => {
    timer = undefined;
    for (const release of releasers) release();
    gc();
    mallocTrim();
  }, delayMs);
  Deno.unrefTimer(timer);
}
