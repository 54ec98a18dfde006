/**
 * Routes: `GET /v1/namespaces`, `POST /v1/namespaces` (`{ name, labels? }`),
 * `GET /v1/namespaces/{name}`, `DELETE /v1/namespaces/{name}`.
 *
 * @module
 */

import type { DaemonContext } from "../context.ts";
import { createNamespace, getNamespace, listNamespaces, removeNamespace } from "../namespaces.ts";
import { type ApiApp, Fields, readJson, validateNamespace } from "./_http.ts";

/** Adds the namespace routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  app.get("/v1/namespaces", async (c) => c.json(await listNamespaces(ctx)));
  app.post("/v1/namespaces", async (c) => {
    const f = Fields.of(await readJson(c, ctx.config.api.maxBodySize));
    const name = f.string("name");
    const labels = f.optStringMap("labels");
    f.end();
    validateNamespace(name);
    return c.json(await createNamespace(ctx, name, labels ? { labels } : {}), 201);
  });
  app.get(
    "/v1/namespaces/:name",
    async (c) => c.json(await getNamespace(ctx, c.req.param("name"))),
  );
  app.delete("/v1/namespaces/:name", async (c) => {
    await removeNamespace(ctx, c.req.param("name"));
    return c.body(null, 204);
  });
}
