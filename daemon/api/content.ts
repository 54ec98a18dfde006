/**
 * Routes: `GET /v1/content` (the blobs the namespace records).
 *
 * @module
 */

import type { DaemonContext } from "../context.ts";
import { listContent } from "../system.ts";
import type { ApiApp } from "./_http.ts";

/** Adds the content routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  app.get(
    "/v1/content",
    async (c) => c.json(await listContent(ctx, { namespace: c.get("namespace") })),
  );
}
