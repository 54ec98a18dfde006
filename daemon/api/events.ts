/**
 * Routes: `GET /v1/events` streams events as NDJSON, one per line, from the
 * moment of the request. `?namespace=` keeps one namespace's events (default:
 * every namespace); `?topic=` (repeatable) keeps the topics given, exact or
 * as a prefix ending in `*`. The stream ends when the client goes away or
 * the daemon shuts down; a subscriber that falls too far behind gets an
 * error line and the end.
 *
 * @module
 */

import type { DaemonContext } from "../context.ts";
import { type ApiApp, errorResponse, validateNamespace } from "./_http.ts";

/** Adds the events route. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  app.get("/v1/events", (c) => {
    const namespace = c.req.query("namespace");
    if (namespace !== undefined) validateNamespace(namespace);
    const topics = c.req.queries("topic") ?? [];
    const abort = new AbortController();
    const onShutdown = () => abort.abort();
    ctx.signal.addEventListener("abort", onShutdown, { once: true });
    const sub = ctx.events.subscribe(
      { ...(namespace ? { namespace } : {}), ...(topics.length ? { topics } : {}) },
      { signal: abort.signal },
    );
    const encoder = new TextEncoder();
    const iterator = sub[Symbol.asyncIterator]();
    const cleanup = () => {
      ctx.signal.removeEventListener("abort", onShutdown);
      sub.close();
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done } = await iterator.next();
          if (done) {
            cleanup();
            controller.close();
          } else {
            controller.enqueue(encoder.encode(JSON.stringify(value) + "\n"));
          }
        } catch (err) {
          cleanup();
          controller.enqueue(encoder.encode(JSON.stringify(errorResponse(err).body) + "\n"));
          controller.close();
        }
      },
      cancel: cleanup,
    });
    return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
  });
}
