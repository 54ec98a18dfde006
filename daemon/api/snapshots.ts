/**
 * Routes: `GET /v1/snapshots` and `GET /v1/snapshots/usage`, both with an
 * optional `?snapshotter=` (default: the daemon's default snapshotter).
 *
 * @module
 */

import type { DaemonContext } from "../context.ts";
import { listSnapshots, snapshotUsage } from "../system.ts";
import type { ApiApp, ApiContext } from "./_http.ts";

function options(c: ApiContext) {
  const snapshotter = c.req.query("snapshotter");
  return { namespace: c.get("namespace"), ...(snapshotter ? { snapshotter } : {}) };
}

/** Adds the snapshot routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  app.get("/v1/snapshots", async (c) => c.json(await listSnapshots(ctx, options(c))));
  app.get("/v1/snapshots/usage", async (c) => c.json(await snapshotUsage(ctx, options(c))));
}
