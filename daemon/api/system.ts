/**
 * Routes: `GET /v1/version`, `GET /v1/info`, `GET /v1/system/df`.
 *
 * @module
 */

import { daemonInfo, systemDf, versionInfo } from "../system.ts";
import type { ApiApp } from "./_http.ts";
import type { DaemonContext } from "../context.ts";

/** Adds the system routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  app.get("/v1/version", (c) => c.json(versionInfo()));
  app.get("/v1/info", async (c) => c.json(await daemonInfo(ctx)));
  app.get(
    "/v1/system/df",
    async (c) => c.json(await systemDf(ctx, { namespace: c.get("namespace") })),
  );
}
