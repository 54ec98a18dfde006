/**
 * A byte stream passed on with hooks at its end: what a lease holder, a
 * daemon that shuts down or a client that names its failures needs around a
 * stream it hands on.
 *
 * @module
 */

/** How a {@link passThrough} stream ended. */
export type StreamEnd = "done" | "failed" | "cancelled";

/** Hooks of {@link passThrough}. */
export interface PassThroughHooks {
  /** The error the stream ends with when a read of the source fails, or `signal` aborts (its reason). Default: that error. */
  error?: (err: unknown) => unknown;
  /** Called once, when the stream has been read to its end, has failed, or its reader cancelled it. */
  end?: (how: StreamEnd) => void;
  /** Fails the stream at once when it aborts (a pending read included), and cancels the source. */
  signal?: AbortSignal;
}

/**
 * `source`, read one chunk per pull (nothing buffered ahead), with `hooks`
 * called at its end.
 */
export function passThrough(
  source: ReadableStream<Uint8Array>,
  hooks: PassThroughHooks = {},
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const { signal } = hooks;
  let ended = false;
  const end = (how: StreamEnd): boolean => {
    if (ended) return false;
    ended = true;
    signal?.removeEventListener("abort", onAbort);
    hooks.end?.(how);
    return true;
  };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const fail = (err: unknown) => {
    if (!end("failed")) return;
    controller.error(hooks.error ? hooks.error(err) : err);
    reader.cancel(err).catch(() => {});
  };
  const onAbort = () => fail(signal!.reason);
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    },
    async pull(c) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        fail(err);
        return;
      }
      if (ended) return; // failed meanwhile
      if (r.done) {
        end("done");
        c.close();
      } else {
        c.enqueue(r.value);
      }
    },
    async cancel(reason) {
      if (ended) return;
      await reader.cancel(reason).catch(() => {});
      end("cancelled");
    },
  }, { highWaterMark: 0 });
}
