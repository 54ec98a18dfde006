/**
 * Phase timing for finding where milliseconds go: with TUG_TRACE=1 set,
 * `trace("label")` prints the time since the process started on stderr.
 *
 * @module
 */

const enabled = (() => {
  try {
    return Deno.env.get("TUG_TRACE") === "1";
  } catch {
    return false;
  }
})();

/** Prints `label` with the milliseconds since process start, when TUG_TRACE=1. */
export function trace(label: string): void {
  if (enabled) console.error(`[trace ${performance.now().toFixed(1)} ms] ${label}`);
}
