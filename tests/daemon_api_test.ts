/**
 * The API over the real daemon's socket: the typed client (`mod.ts`) gets
 * the daemon's error classes back, `tug events` streams image events,
 * `/metrics` passes `promtool check metrics`, and malformed requests get
 * 4xx answers and change nothing.
 */
import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  TugClient,
  Unavailable,
} from "../mod.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  promtoolCheck,
  scrape,
  socketClient,
  startDaemon,
  waitForSubscribers,
} from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires, TUG } from "./harness.ts";
import { startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

Deno.test({
  name: "the typed client pulls with progress and gets the daemon's error classes back",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "layers", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    using client = new TugClient({ address: daemon.address });
    const progress: number[] = [];
    const result = await client.images.pull("busybox", {
      onProgress: (p) => progress.push(p.unpack.done),
    });
    assertEquals(result.image.name, BUSYBOX);
    assertEquals(progress[progress.length - 1], 4);
    assertEquals((await client.images.get("busybox")).name, BUSYBOX);
    await assertRejects(() => client.images.get("nonexistent"), NotFound, "nonexistent");
    await assertRejects(() => client.images.tag(BUSYBOX, BUSYBOX), AlreadyExists);
    await assertRejects(
      () => client.namespaces.create("a b"),
      InvalidArgument,
      "Invalid namespace",
    );
    await assertRejects(
      () => client.namespaces.remove("default"),
      FailedPrecondition,
      "still holds images",
    );
    await assertRejects(() => client.images.pull("docker.io/library/none:latest"), NotFound);
    const other = client.withNamespace("other");
    assertEquals(await other.images.list(), []);
    const info = await client.info();
    assertEquals(info.root, `${daemon.dir}/root`);
    const stopped = new TugClient({ address: `${daemon.dir}/nothing.sock` });
    await assertRejects(() => stopped.version(), Unavailable, "is it running?");
    stopped.close();
  },
});

Deno.test({
  name: "tug events streams image create and delete events as they happen",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    const events = new Deno.Command(TUG, {
      args: ["-a", daemon.address, "events", "--json"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      await waitForSubscribers(daemon, 1);
      assertEquals((await daemon.tug(["images", "pull", "busybox"])).code, 0);
      assertEquals((await daemon.tug(["images", "tag", BUSYBOX, "example.com/b:1"])).code, 0);
      assertEquals((await daemon.tug(["images", "rm", BUSYBOX])).code, 0);
      assertEquals((await daemon.tug(["namespaces", "create", "extra"])).code, 0);
      const reader = events.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (text.split("\n").filter(Boolean).length < 4) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      reader.releaseLock();
      const got = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      assertEquals(got.map((e) => [e.namespace, e.topic, e.payload.name]), [
        ["default", "/images/create", BUSYBOX],
        ["default", "/images/create", "example.com/b:1"],
        ["default", "/images/delete", BUSYBOX],
        ["extra", "/namespaces/create", "extra"],
      ]);
    } finally {
      events.kill("SIGINT");
      const status = await events.status;
      await events.stdout.cancel().catch(() => {});
      await events.stderr.cancel().catch(() => {});
      assertEquals(status.code, 0, "Ctrl-C ends tug events cleanly");
    }
  },
});

Deno.test({
  name: "/metrics passes promtool check metrics and counts requests, pulls and GC runs",
  ignore: ignore || requires("promtool"),
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    assertEquals((await daemon.tug(["images", "pull", "busybox"])).code, 0);
    assert((await daemon.tug(["images", "pull", "docker.io/library/none:latest"])).code !== 0);
    assertEquals((await daemon.tug(["images", "prune"])).code, 0);
    assertEquals((await daemon.tug(["images", "ls"])).code, 0);
    // Made-up methods share one series (each made a series of its own).
    {
      const client = socketClient(daemon.address);
      for (const method of ["FOO1", "FOO2"]) {
        const res = await fetch("http://tug/v1/version", { method, client });
        await res.body?.cancel();
      }
      client.close();
    }
    const text = await scrape(daemon);
    const { code, output } = await promtoolCheck(text);
    assertEquals(output, "");
    assertEquals(code, 0);
    assertStringIncludes(text, 'tug_build_info{version="');
    assertStringIncludes(text, 'tug_image_pulls_total{result="success"} 1\n');
    assertStringIncludes(text, 'tug_image_pulls_total{result="failure"} 1\n');
    assertStringIncludes(text, "tug_image_pull_failures_total 1\n");
    assertStringIncludes(text, "tug_gc_runs_total 1\n");
    assertStringIncludes(
      text,
      'tug_api_requests_total{method="GET",route="/v1/images",status="200"} 1\n',
    );
    assertStringIncludes(
      text,
      'tug_api_request_duration_seconds_count{method="POST",route="/v1/images/pull",status="200"} 2\n',
    );
    assert(/^tug_image_pull_bytes_total [1-9]\d*$/m.test(text));
    assert(!text.includes("FOO1"), "a made-up method is not a label value");
    assert(/^tug_api_requests_total\{method="other",/m.test(text), "it counts as other");
    const notFound = await fetch(daemon.metricsUrl.replace("/metrics", "/other"));
    assertEquals(notFound.status, 404);
    await notFound.body?.cancel();
  },
});

Deno.test({
  name: "malformed API requests over the socket get 4xx and change nothing",
  ignore: requires("root", "tug"),
  async fn() {
    await using daemon = await startDaemon();
    const client = socketClient(daemon.address);
    const send = async (
      method: string,
      path: string,
      body?: BodyInit,
      headers: Record<string, string> = {},
    ) => {
      const res = await fetch(`http://127.0.0.1${path}`, {
        method,
        client,
        headers,
        ...(body !== undefined ? { body } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    try {
      const cases: Array<[string, string, BodyInit | undefined, number, string]> = [
        ["POST", "/v1/namespaces", "{not json", 400, "Invalid request body"],
        ["POST", "/v1/namespaces", '{"name": 42}', 400, "field name must be a non-empty string"],
        [
          "POST",
          "/v1/namespaces",
          '{"name": "ok", "labels": ["x"]}',
          400,
          "field labels must be an object of strings",
        ],
        ["POST", "/v1/namespaces", "[]", 400, "expected a JSON object"],
        ["POST", "/v1/namespaces", "", 400, "empty"],
        ["POST", "/v1/images/pull", '{"ref": ["busybox"]}', 400, "field ref"],
        ["POST", "/v1/images/pull", '{"ref": "busybox", "unpack": "no"}', 400, "field unpack"],
        ["POST", "/v1/images/prune", "null", 400, "expected a JSON object"],
        [
          "POST",
          "/v1/namespaces",
          JSON.stringify({ name: "x", labels: { big: "y".repeat(2 << 20) } }),
          413,
          "too large",
        ],
        ["GET", "/v1/nothing", undefined, 404, "Unknown API route"],
        ["DELETE", "/v1/images/docker.io%2Flibrary%2Fnone%3Alatest", undefined, 404, "not found"],
        ["GET", "/v1/events?topic=bad", undefined, 400, "Invalid event topic filter"],
      ];
      for (const [method, path, body, status, message] of cases) {
        const r = await send(method, path, body);
        assertEquals(r.status, status, `${method} ${path} ${String(body).slice(0, 60)}`);
        assertStringIncludes(r.body.error.message, message);
        assert(typeof r.body.error.code === "string");
      }
      const badNs = await send("GET", "/v1/images", undefined, { "tug-namespace": "../etc" });
      assertEquals(badNs.status, 400);
      assertEquals((await send("GET", "/v1/namespaces")).body, []);
      assertEquals((await send("GET", "/v1/images")).body, []);
      assertEquals((await daemon.tug(["version"])).code, 0, "the daemon still serves");
    } finally {
      client.close();
    }
  },
});
