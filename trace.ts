/**
 * Phase timing for finding where milliseconds go: with TUG_TRACE=1 set,
 * `trace("label")` prints the time since the process started on stderr, and
 * the wall clock (milliseconds within the minute and a half, `@…`) to line up
 * the CLI's, the daemon's and the shim's traces of one request.
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
  if (!enabled) return;
  const now = performance.now();
  const wall = (performance.timeOrigin + now) % 100_000;
  console.error(`[trace ${now.toFixed(1)} ms @${wall.toFixed(1)}] ${label}`);
}
