/**
 * Test-only: an API app over a real daemon context in a temporary root (the
 * real image service, metadata and snapshotters), for `app.request()` tests.
 *
 * @module
 */

import { join } from "node:path";
import { defaultConfig } from "../config.ts";
import { DaemonContext } from "../context.ts";
import { createLogger } from "../log.ts";
import { createApp } from "./mod.ts";
import type { ApiApp } from "./_http.ts";

/** A test API: the app, its context, and a helper to send requests. */
export interface TestApi extends AsyncDisposable {
  app: ApiApp;
  ctx: DaemonContext;
  dir: string;
  /** Sends a request; `json` becomes the body, `namespace` the header. */
  request(
    method: string,
    path: string,
    options?: {
      json?: unknown;
      body?: BodyInit;
      namespace?: string;
      headers?: Record<string, string>;
    },
  ): Promise<Response>;
  close(): Promise<void>;
}

/** Options for {@link testApi}. */
export interface TestApiOptions {
  /** Registry hosts directory (certs.d layout). */
  hostsDir?: string;
  /** Snapshotter (default native: works on any filesystem the temp dir is on). */
  snapshotter?: "overlayfs" | "native";
  maxBodySize?: number;
}

/** Makes a test API in a new temporary directory, removed by close(). */
export async function testApi(options: TestApiOptions = {}): Promise<TestApi> {
  const dir = await Deno.makeTempDir({ prefix: "tug-api-test-" });
  const config = defaultConfig();
  config.root = join(dir, "root");
  config.state = join(dir, "state");
  config.api.address = join(dir, "state", "tug.sock");
  config.registry.configPath = options.hostsDir ?? join(dir, "certs.d");
  config.images.snapshotter = options.snapshotter ?? "native";
  config.images.gcDelay = 0;
  if (options.maxBodySize) config.api.maxBodySize = options.maxBodySize;
  const ctx = new DaemonContext({ config, log: createLogger("error") });
  const app = await createApp(ctx);
  const close = async () => {
    await ctx.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    app,
    ctx,
    dir,
    request(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      if (o.namespace) headers["tug-namespace"] = o.namespace;
      let body: BodyInit | undefined = o.body;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers["content-type"] = "application/json";
      }
      return Promise.resolve(
        app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }),
      );
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads an NDJSON response into its messages. */
export async function ndjsonLines(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}
