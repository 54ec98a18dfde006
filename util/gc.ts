/**
 * Garbage collection after bursts of work, for tug's long-lived processes
 * (daemon, shims). V8 collects lazily: a shim that started and removed 50
 * containers kept ~60 MiB of garbage (heap and ArrayBuffers) it would have
 * freed at once, which is all of a small device's spare memory. With
 * `--expose-gc` (in tug's V8 flags), {@link collectSoon} runs a full
 * collection once the process has been quiet for a moment, of V8's
 * "last resort" flavour (collects until nothing more is freed, compacts, and
 * gives emptied pages back: after rounds of 50 containers a shim held 9-12
 * MiB of heap pages for 5.6 MiB of live objects with a plain full
 * collection, and its private memory went from 17 to 20-26 MiB), then asks glibc
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

/** V8's gc() with --expose-gc; the options object is V8's (type, execution, flavor). */
const gc = (globalThis as {
  gc?: (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
}).gc;
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

/**
 * Collects garbage `delayMs` after the last call (calls in between push it
 * back). The default second is soon enough that an idle process holds no
 * garbage of its last burst, late enough that the requests of one burst do
 * not pay for a collection each. The daemon calls it after every API request,
 * its metadata garbage collection and start-up; a shim after each create,
 * start, exec and delete (shim/main.ts).
 */
export function collectSoon(delayMs = 1000): void {
  if (!gc) return;
  if (timer !== undefined) clearTimeout(timer);
  timer = setTimeout(() => {
    timer = undefined;
    for (const release of releasers) release();
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    mallocTrim();
  }, delayMs);
  Deno.unrefTimer(timer);
}
