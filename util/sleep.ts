/**
 * A timer that an abort cuts short.
 *
 * @module
 */

/** Resolves after `ms`; rejects with `signal`'s reason once it aborts (an abort before the call is not seen). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
