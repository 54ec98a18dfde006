/**
 * The HTTP API (v1) as a hono app: the route modules listed in
 * {@link ROUTE_MODULES}, each adding its routes, behind middleware that
 * checks the namespace header, counts and times requests, and turns thrown
 * errors into `{ error: { code, message } }` with the status of their class.
 *
 * A route module exports `routes(app, ctx)` (see {@link RouteModule}); to
 * add one, append a line to {@link ROUTE_MODULES}. Routes are tested with
 * `app.request()`, without a socket.
 *
 * @module
 */

import { Hono } from "hono/tiny";
import type { DaemonContext } from "../context.ts";
import { collectSoon } from "../../util/gc.ts";
import { type ApiApp, type ApiEnv, errorResponse, namespaceOf, type RouteModule } from "./_http.ts";

const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

export type { ApiApp, ApiEnv, RouteModule };

/** The route modules, in order. */
export const ROUTE_MODULES: ReadonlyArray<() => Promise<RouteModule>> = [
  () => import("./system.ts"),
  () => import("./namespaces.ts"),
  () => import("./images.ts"),
  () => import("./content.ts"),
  () => import("./snapshots.ts"),
  () => import("./events.ts"),
  () => import("./containers.ts"),
];

/** Builds the API app over `ctx` with the route modules (default: {@link ROUTE_MODULES}). */
export async function createApp(
  ctx: DaemonContext,
  modules: ReadonlyArray<() => Promise<RouteModule>> = ROUTE_MODULES,
): Promise<ApiApp> {
  const app = new Hono<ApiEnv>();
  const m = ctx.metrics;

  app.use(async (c, next) => {
    const start = performance.now();
    try {
      let namespace: string | undefined;
      try {
        namespace = namespaceOf(c);
      } catch (err) {
        const { status, body } = errorResponse(err);
        c.res = c.json(body, status as 400);
      }
      if (namespace !== undefined) {
        c.set("namespace", namespace);
        await next();
      }
    } finally {
      const route = c.res.status === 404 && c.req.routePath === "/*"
        ? "unmatched"
        : c.req.routePath;
      // Methods outside HTTP's own set count as "other": each made a series of its own.
      const method = HTTP_METHODS.has(c.req.method) ? c.req.method : "other";
      const labels = { method, route, status: String(c.res.status) };
      m.apiRequests.inc(labels);
      m.apiLatency.observe(labels, (performance.now() - start) / 1000);
      collectSoon();
      ctx.log.debug("api request", { ...labels, path: c.req.path });
    }
  });

  app.onError((err, c) => {
    const { status, body } = errorResponse(err);
    if (status >= 500) {
      ctx.log.error("api request failed", { path: c.req.path, error: String(err) });
    }
    return c.json(body, status as 400);
  });

  app.notFound((c) =>
    c.json({
      error: { code: "not_found", message: `Unknown API route: ${c.req.method} ${c.req.path}` },
    }, 404)
  );

  for (const load of modules) (await load()).routes(app, ctx);
  return app;
}
