/**
 * Image routes through `app.request()` over a real image service and a real
 * registry (Debian's docker-registry on 127.0.0.1, busybox fixtures pushed
 * by skopeo): pull progress streams, list, get, tag, remove, push,
 * export/import, prune, usage, and the events and metrics they produce.
 */
import { assert, assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import { pushFixture } from "../../tests/fixtures/mod.ts";
import { requires } from "../../tests/harness.ts";
import { startRegistry } from "../../tests/registry.ts";
import type { TugEvent } from "../events.ts";
import { ndjsonLines, type TestApi, testApi } from "./_testing.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

function enc(name: string): string {
  return encodeURIComponent(name);
}

function record(api: TestApi): { events: TugEvent[]; stop: () => Promise<void> } {
  const events: TugEvent[] = [];
  const sub = api.ctx.events.subscribe({ topics: ["/images/*"] });
  const done = (async () => {
    for await (const e of sub) events.push(e);
  })();
  return {
    events,
    stop: async () => {
      sub.close();
      await done;
    },
  };
}

async function pull(
  api: TestApi,
  ref: string,
  extra: Record<string, unknown> = {},
  namespace?: string,
) {
  const res = await api.request("POST", "/v1/images/pull", {
    json: { ref, ...extra },
    ...(namespace ? { namespace } : {}),
  });
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "application/x-ndjson");
  return await ndjsonLines(res);
}

Deno.test({
  name: "pull streams progress then the result, and the image is listed with its platform and size",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    const ref = await pushFixture(registry, "layers", { repo: "library/layers" });
    await using api = await testApi();
    const rec = record(api);
    const lines = await pull(api, ref);
    const last = lines[lines.length - 1]!;
    assert("result" in last, JSON.stringify(last));
    const progress = lines.filter((l) => "progress" in l).map((l) =>
      l.progress as Record<string, unknown>
    );
    assert(progress.length > 0, "progress lines come first");
    const final = progress[progress.length - 1]! as { unpack: { done: number; total: number } };
    assertEquals(final.unpack.done, final.unpack.total);
    const result = last.result as {
      image: { name: string; platforms: string[]; usage: { content: number } };
    };
    assertEquals(result.image.name, ref);
    assertEquals(result.image.platforms, ["linux/amd64"]);
    assert(result.image.usage.content > 0);

    const list = await (await api.request("GET", "/v1/images")).json();
    assertEquals(list.map((i: { name: string }) => i.name), [ref]);
    const one = await (await api.request("GET", `/v1/images/${enc(ref)}`)).json();
    assertEquals(one.target.digest, list[0].target.digest);

    // Pulling again updates the record.
    await pull(api, ref);
    await rec.stop();
    assertEquals(rec.events.map((e) => [e.topic, e.payload.name]), [
      ["/images/create", ref],
      ["/images/update", ref],
    ]);
    const m = api.ctx.metrics;
    assertEquals(m.pulls.get({ result: "success" }), 2);
    assert(m.pullBytes.get() > 0);
  },
});

Deno.test({
  name: "a pull of an unknown image ends with a not_found error line and records nothing",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await using api = await testApi();
    const lines = await pull(api, `${registry.host}/library/none:latest`);
    const last = lines[lines.length - 1]! as { error: { code: string; message: string } };
    assertEquals(last.error.code, "not_found");
    assertEquals(await (await api.request("GET", "/v1/images")).json(), []);
    assertEquals(api.ctx.metrics.pullFailures.get(), 1);
  },
});

Deno.test({
  name: "tag, get by either name, remove: events, and the other name keeps the content",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    const ref = await pushFixture(registry, "single", { repo: "library/single" });
    await using api = await testApi();
    await pull(api, ref);
    const rec = record(api);
    let res = await api.request("POST", `/v1/images/${enc(ref)}/tag`, {
      json: { target: "example.com/copy:v1" },
    });
    assertEquals(res.status, 201);
    assertEquals((await res.json()).name, "example.com/copy:v1");
    res = await api.request("POST", `/v1/images/${enc(ref)}/tag`, {
      json: { target: "example.com/copy:v1" },
    });
    assertEquals(res.status, 409);
    res = await api.request("POST", `/v1/images/${enc(ref)}/tag`, {
      json: { target: "example.com/copy:v1", force: true },
    });
    assertEquals(res.status, 201);
    assertEquals(
      (await api.request("GET", `/v1/images/${enc("example.com/copy:v1")}`)).status,
      200,
    );
    res = await api.request("DELETE", `/v1/images/${enc(ref)}?sync=true`);
    assertEquals(res.status, 204);
    assertEquals((await api.request("GET", `/v1/images/${enc(ref)}`)).status, 404);
    assertEquals((await api.request("DELETE", `/v1/images/${enc(ref)}`)).status, 404);
    const list = await (await api.request("GET", "/v1/images")).json();
    assertEquals(list.map((i: { name: string }) => i.name), ["example.com/copy:v1"]);
    assert(list[0].usage.content > 0, "the content stays for the other name");
    await rec.stop();
    assertEquals(rec.events.map((e) => e.topic), [
      "/images/create",
      "/images/update",
      "/images/delete",
    ]);
    assertEquals(api.ctx.metrics.gcRuns.get(), 1);
  },
});

Deno.test({
  name: "export then import into another namespace round-trips the image",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    const ref = await pushFixture(registry, "layers", { repo: "library/layers" });
    await using api = await testApi();
    await pull(api, ref);
    const exported = await api.request("GET", `/v1/images/export?name=${enc(ref)}`);
    assertEquals(exported.status, 200);
    assertEquals(exported.headers.get("content-type"), "application/x-tar");
    const tar = new Uint8Array(await exported.arrayBuffer());
    assert(tar.length > 1024);
    const rec = record(api);
    const res = await api.request("POST", "/v1/images/import", { body: tar, namespace: "other" });
    assertEquals(res.status, 201);
    const imported = await res.json();
    assertEquals(imported.images.map((i: { name: string }) => i.name), [ref]);
    const a = await (await api.request("GET", `/v1/images/${enc(ref)}`)).json();
    const b = await (await api.request("GET", `/v1/images/${enc(ref)}`, { namespace: "other" }))
      .json();
    assertEquals(b.target.digest, a.target.digest);
    await rec.stop();
    assertEquals(rec.events.map((e) => [e.namespace, e.topic]), [["other", "/images/create"]]);
  },
});

Deno.test({
  name: "a broken archive is refused and imports nothing",
  ignore,
  async fn() {
    await using api = await testApi();
    const res = await api.request("POST", "/v1/images/import", {
      body: new TextEncoder().encode("not a tar at all".repeat(100)),
    });
    assert(res.status >= 400 && res.status < 500, String(res.status));
    assertEquals(await (await api.request("GET", "/v1/images")).json(), []);
  },
});

Deno.test({
  name: "push sends an image to another repository with progress lines",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    const ref = await pushFixture(registry, "single", { repo: "library/single" });
    await using api = await testApi();
    await pull(api, ref);
    const remote = `${registry.host}/pushed/copy:v2`;
    const res = await api.request("POST", `/v1/images/${enc(ref)}/push`, { json: { remote } });
    const lines = await ndjsonLines(res);
    const last = lines[lines.length - 1]! as { result: { name: string; manifests: number } };
    assertEquals(last.result.name, remote);
    const again = await pull(api, remote);
    assert("result" in again[again.length - 1]!);
  },
});

Deno.test({
  name:
    "prune --all removes unused images and frees their space; usage, content and snapshots agree",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    const ref = await pushFixture(registry, "single", { repo: "library/single" });
    await using api = await testApi();
    await pull(api, ref);
    const usage = await (await api.request("GET", "/v1/images/usage")).json();
    assertEquals(usage.images.map((i: { name: string }) => i.name), [ref]);
    assert(usage.size > 0);
    const content = await (await api.request("GET", "/v1/content")).json();
    assertEquals(content.length, 3, "manifest, config, layer");
    const snapshots = await (await api.request("GET", "/v1/snapshots")).json();
    assertEquals(snapshots.length, 1);
    assertEquals(snapshots[0].kind, "committed");
    const su = await (await api.request("GET", "/v1/snapshots/usage")).json();
    assert(su[0].size > 0);
    const df = await (await api.request("GET", "/v1/system/df")).json();
    assertEquals(df.images.count, 1);
    assertEquals(df.content.count, 3);
    const rec = record(api);
    const res = await api.request("POST", "/v1/images/prune", { json: { all: true } });
    assertEquals(res.status, 200);
    const pruned = await res.json();
    assertEquals(pruned.images, [ref]);
    assertEquals(pruned.gc.blobs, 3);
    assert(pruned.reclaimed > 0);
    assertEquals(await (await api.request("GET", "/v1/content")).json(), []);
    assertEquals(await (await api.request("GET", "/v1/snapshots")).json(), []);
    await rec.stop();
    assertEquals(rec.events.map((e) => e.topic), ["/images/delete"]);
  },
});

Deno.test({
  name: "malformed image requests get 400 and change nothing",
  ignore,
  async fn() {
    await using api = await testApi();
    const bad: Array<[string, string, unknown, string]> = [
      ["POST", "/v1/images/pull", {}, "field ref is required"],
      ["POST", "/v1/images/pull", { ref: 42 }, "field ref must be a non-empty string"],
      [
        "POST",
        "/v1/images/pull",
        { ref: "busybox", plainHttp: "yes" },
        "field plainHttp must be true or false",
      ],
      [
        "POST",
        "/v1/images/pull",
        { ref: "busybox", credentials: { username: 1 } },
        "field username",
      ],
      [
        "POST",
        "/v1/images/pull",
        { ref: "busybox", credentials: { username: "", password: "p" } },
        "field username must be a non-empty string",
      ],
      [
        "POST",
        "/v1/images/pull",
        { ref: "busybox", credentials: { username: "u", password: 5 } },
        "field password must be a string",
      ],
      [
        "POST",
        "/v1/images/pull",
        { ref: "busybox", platform: "linux/amd64", allPlatforms: true },
        "not both",
      ],
      ["POST", "/v1/images/pull", { ref: "busybox", bogus: 1 }, 'unknown field "bogus"'],
      ["POST", "/v1/images/prune", { all: "yes" }, "field all must be true or false"],
      ["POST", "/v1/images/x/tag", { force: true }, "field target is required"],
      ["POST", "/v1/images/x/push", { remote: [] }, "field remote must be a non-empty string"],
    ];
    for (const [method, path, json, message] of bad) {
      const res = await api.request(method, path, { json });
      assertEquals(res.status, 400, `${path} ${JSON.stringify(json)}`);
      assertStringIncludes((await res.json()).error.message, message);
    }
    const badRef = await pull(api, "UPPER/Case:tag");
    assertEquals(
      (badRef[badRef.length - 1] as { error: { code: string } }).error.code,
      "invalid_argument",
    );
    const exp = await api.request("GET", "/v1/images/export");
    assertEquals(exp.status, 400);
    assertEquals(await (await api.request("GET", "/v1/images")).json(), []);
  },
});
