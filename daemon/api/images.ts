/**
 * Routes for images (names travel URL-encoded in the path:
 * `docker.io%2Flibrary%2Fbusybox%3Alatest`):
 *
 * | route | body | answer |
 * |---|---|---|
 * | `GET /v1/images` | | `ImageInfo[]` |
 * | `GET /v1/images/usage` | | `DiskUsageInfo` |
 * | `GET /v1/images/export?name=…&platform=…` | | the tar |
 * | `POST /v1/images/pull` | `PullRequest` | NDJSON `PullMessage` lines |
 * | `POST /v1/images/import?name=…&unpack=false` | the tar | `ImportResultInfo` |
 * | `POST /v1/images/prune` | `PruneRequest` | `PruneResultInfo` |
 * | `GET /v1/images/{name}` | | `ImageInfo` |
 * | `DELETE /v1/images/{name}?sync=true` | | 204 |
 * | `POST /v1/images/{name}/tag` | `TagRequest` | `ImageInfo` (201) |
 * | `POST /v1/images/{name}/push` | `PushRequest` | NDJSON `PushMessage` lines |
 *
 * @module
 */

import type { PullRequest, PushRequest, RegistryCredentials } from "../../client/types.ts";
import { InvalidArgument } from "../../errors.ts";
import type { DaemonContext } from "../context.ts";
import {
  exportImages,
  getImage,
  imageUsage,
  importImages,
  listImages,
  pruneImages,
  pullImage,
  pushImage,
  removeImage,
  tagImage,
} from "../images.ts";
import { type ApiApp, boolQuery, Fields, ndjson, readJson } from "./_http.ts";

function credentials(f: Fields): RegistryCredentials | undefined {
  const c = f.optObject("credentials");
  if (!c) return undefined;
  const username = c.string("username");
  // An empty password is a password (`-u user:`): an account may have one.
  const password = c.optStringOrEmpty("password");
  c.end();
  return { username, password: password ?? "" };
}

function registryOptions(f: Fields): Pick<PullRequest, "plainHttp" | "skipVerify" | "credentials"> {
  const plainHttp = f.optBool("plainHttp");
  const skipVerify = f.optBool("skipVerify");
  const creds = credentials(f);
  return {
    ...(plainHttp ? { plainHttp } : {}),
    ...(skipVerify ? { skipVerify } : {}),
    ...(creds ? { credentials: creds } : {}),
  };
}

/** Adds the image routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  const limit = ctx.config.api.maxBodySize;

  app.get(
    "/v1/images",
    async (c) => c.json(await listImages(ctx, { namespace: c.get("namespace") })),
  );

  app.get(
    "/v1/images/usage",
    async (c) => c.json(await imageUsage(ctx, { namespace: c.get("namespace") })),
  );

  app.get("/v1/images/export", async (c) => {
    const names = c.req.queries("name") ?? [];
    if (names.length === 0) {
      throw new InvalidArgument("Export images: name at least one image (?name=…)");
    }
    const platform = c.req.query("platform");
    const stream = await exportImages(ctx, names, {
      namespace: c.get("namespace"),
      ...(platform ? { platform } : {}),
    });
    return new Response(stream, { headers: { "content-type": "application/x-tar" } });
  });

  app.post("/v1/images/pull", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const request: PullRequest = { ref: f.string("ref"), ...registryOptions(f) };
    const platform = f.optString("platform");
    const allPlatforms = f.optBool("allPlatforms");
    const unpack = f.optBool("unpack");
    const snapshotter = f.optString("snapshotter");
    f.end();
    if (platform && allPlatforms) {
      throw new InvalidArgument("Pull: give platform or allPlatforms, not both");
    }
    if (platform) request.platform = platform;
    if (allPlatforms) request.allPlatforms = true;
    if (unpack === false) request.unpack = false;
    if (snapshotter) request.snapshotter = snapshotter;
    const namespace = c.get("namespace");
    return ndjson((send, signal) =>
      pullImage(ctx, request, {
        namespace,
        signal,
        onProgress: (p) => send({ progress: p }),
      })
    );
  });

  app.post("/v1/images/import", async (c) => {
    const body = c.req.raw.body;
    if (!body) {
      throw new InvalidArgument("Import images: the request body must be the archive (a tar)");
    }
    const name = c.req.query("name");
    const result = await importImages(ctx, body, {
      namespace: c.get("namespace"),
      ...(name ? { name } : {}),
      ...(c.req.query("unpack") !== undefined && !boolQuery(c, "unpack") ? { unpack: false } : {}),
    });
    return c.json(result, 201);
  });

  app.post("/v1/images/prune", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const all = f.optBool("all");
    f.end();
    return c.json(
      await pruneImages(ctx, { namespace: c.get("namespace"), ...(all ? { all } : {}) }),
    );
  });

  app.get(
    "/v1/images/:name",
    async (c) =>
      c.json(await getImage(ctx, c.req.param("name"), { namespace: c.get("namespace") })),
  );

  app.delete("/v1/images/:name", async (c) => {
    await removeImage(ctx, c.req.param("name"), {
      namespace: c.get("namespace"),
      sync: boolQuery(c, "sync"),
    });
    return c.body(null, 204);
  });

  app.post("/v1/images/:name/tag", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const target = f.string("target");
    const force = f.optBool("force");
    f.end();
    const image = await tagImage(ctx, c.req.param("name"), {
      namespace: c.get("namespace"),
      target,
      ...(force ? { force } : {}),
    });
    return c.json(image, 201);
  });

  app.post("/v1/images/:name/push", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const request: PushRequest = { ...registryOptions(f) };
    const remote = f.optString("remote");
    f.end();
    if (remote) request.remote = remote;
    const name = c.req.param("name");
    const namespace = c.get("namespace");
    return ndjson((send, signal) =>
      pushImage(ctx, name, {
        ...request,
        namespace,
        signal,
        onProgress: (p) => send({ progress: p }),
      })
    );
  });
}
