/**
 * TugClient against an in-process daemon (the real API, image service and
 * metadata in a temporary root) over a real unix socket.
 */
import { join } from "node:path";
import { defaultConfig } from "../daemon/config.ts";
import { createLogger } from "../daemon/log.ts";
import { type DaemonHandle, startDaemon } from "../daemon/mod.ts";
import { ROUTE_MODULES } from "../daemon/api/mod.ts";
import type { RouteModule } from "../daemon/api/_http.ts";
import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  TugClient,
  Unavailable,
} from "../mod.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";

const slow: RouteModule = {
  routes(app) {
    app.get("/v1/test/slow", async (c) => {
      await new Promise((r) => setTimeout(r, 5000));
      return c.json({});
    });
    app.get("/v1/test/stream", () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"progress":1}\n'));
          timer = setTimeout(() => c.close(), 5000);
        },
        cancel() {
          clearTimeout(timer);
        },
      });
      return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
    });
  },
};

async function withDaemon(fn: (d: DaemonHandle, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-client-test-" });
  const config = defaultConfig();
  config.root = join(dir, "root");
  config.state = join(dir, "state");
  config.api.address = join(dir, "state", "tug.sock");
  config.registry.configPath = join(dir, "certs.d");
  config.images.snapshotter = "native";
  const d = await startDaemon({
    config,
    log: createLogger("error"),
    routes: [...ROUTE_MODULES, () => Promise.resolve(slow)],
    notifySocket: "",
  });
  try {
    await fn(d, dir);
  } finally {
    await d.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the client reaches the daemon and gets its answers typed", async () => {
  await withDaemon(async (d) => {
    using client = new TugClient({ address: d.address });
    assertEquals((await client.version()).api, "v1");
    const ns = await client.namespaces.create("team", { labels: { a: "b" } });
    assertEquals(ns.labels, { a: "b" });
    assertEquals((await client.namespaces.list()).map((n) => n.name), ["team"]);
    assertEquals((await client.namespaces.get("team")).name, "team");
    assertEquals(await client.withNamespace("team").images.list(), []);
    assertEquals(await client.content.list(), []);
    assertEquals(await client.snapshots.list(), []);
    assertEquals(await client.snapshots.usage({ snapshotter: "native" }), []);
    assertEquals((await client.system.df()).images.count, 0);
    assertEquals((await client.images.usage()).size, 0);
    assertEquals((await client.images.prune()).images, []);
    await client.namespaces.remove("team");
    assertEquals(await client.namespaces.list(), []);
  });
});

Deno.test("errors come back as the classes the daemon threw", async () => {
  await withDaemon(async (d) => {
    using client = new TugClient({ address: d.address });
    await client.namespaces.create("dup");
    await assertRejects(() => client.namespaces.create("dup"), AlreadyExists, "exists already");
    await assertRejects(() => client.namespaces.get("none"), NotFound, "not found");
    await assertRejects(
      () => client.namespaces.create("no good"),
      InvalidArgument,
      "Invalid namespace",
    );
    await assertRejects(() => client.images.get("busybox"), NotFound);
    await assertRejects(() => client.images.remove("busybox"), NotFound);
    await assertRejects(() => client.images.export(["busybox"]), NotFound);
    await assertRejects(
      () => client.images.import(new TextEncoder().encode("junk".repeat(200))),
      InvalidArgument,
    );
    await assertRejects(
      () => client.snapshots.list({ snapshotter: "zfs" }),
      InvalidArgument,
      "Unknown snapshotter",
    );
    const images = await d.ctx.images();
    images.db.images.create("held", {
      name: "docker.io/library/x:latest",
      target: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${"b".repeat(64)}`,
        size: 1,
      },
    });
    await assertRejects(
      () => client.namespaces.remove("held"),
      FailedPrecondition,
      "still holds images",
    );
  });
});

Deno.test("events: subscribe() is ready once the daemon subscribed, and close() ends the iteration", async () => {
  await withDaemon(async (d) => {
    using client = new TugClient({ address: d.address });
    const stream = client.events.subscribe({ topics: ["/namespaces/*"] });
    await stream.ready;
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of stream) {
        got.push(`${e.topic} ${e.payload.name}`);
        if (got.length === 2) stream.close();
      }
    })();
    await client.namespaces.create("one");
    d.ctx.publish("x", "/images/create", { name: "ignored" });
    await client.namespaces.remove("one");
    await reading;
    assertEquals(got, ["/namespaces/create one", "/namespaces/delete one"]);
    const other = client.events.subscribe({ namespace: "two" });
    await other.ready;
    const ended = (async () => {
      const seen: unknown[] = [];
      for await (const e of other) seen.push(e);
      return seen;
    })();
    await d.stop();
    assertEquals(await ended, [], "the stream ends when the daemon stops");
  });
});

Deno.test("a request that takes longer than the timeout is Unavailable, streams included", async () => {
  await withDaemon(async (d) => {
    using client = new TugClient({ address: d.address, timeout: 500 });
    await assertRejects(
      () => client.transport.json("GET", "/test/slow"),
      Unavailable,
      "Request timed out after 500ms: GET /v1/test/slow",
    );
    const messages = await client.transport.lines("GET", "/test/stream");
    const err = await assertRejects(async () => {
      for await (const _ of messages) {
        // the first line arrives, then the timeout ends the stream
      }
    }, Unavailable);
    assertStringIncludes(err.message, "timed out");
    assertEquals((await client.version()).api, "v1", "the client still works");
  });
});

Deno.test("no daemon: Unavailable saying so, for a missing socket and for a stale one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "missing.sock");
    using a = new TugClient({ address: missing });
    await assertRejects(
      () => a.version(),
      Unavailable,
      `Cannot connect to the tug daemon at ${missing}: is it running?`,
    );
    const stale = join(dir, "stale.sock");
    // A socket file nobody listens on (what a killed daemon leaves).
    const made = await new Deno.Command("python3", {
      args: ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale],
    }).output();
    assertEquals(made.code, 0);
    assert((await Deno.lstat(stale)).isSocket);
    using b = new TugClient({ address: stale });
    await assertRejects(
      () => b.images.list(),
      Unavailable,
      `Cannot connect to the tug daemon at ${stale}: is it running?`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
