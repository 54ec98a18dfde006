import { assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import type { TugEvent } from "../events.ts";
import { testApi } from "./_testing.ts";

Deno.test("namespaces can be created, listed, read and removed, with events", async () => {
  await using api = await testApi();
  const events: TugEvent[] = [];
  const sub = api.ctx.events.subscribe({ topics: ["/namespaces/*"] });
  const collecting = (async () => {
    for await (const e of sub) events.push(e);
  })();
  let res = await api.request("POST", "/v1/namespaces", {
    json: { name: "team-a", labels: { owner: "ops" } },
  });
  assertEquals(res.status, 201);
  const created = await res.json();
  assertEquals([created.name, created.labels], ["team-a", { owner: "ops" }]);
  res = await api.request("GET", "/v1/namespaces");
  assertEquals((await res.json()).map((n: { name: string }) => n.name), ["team-a"]);
  res = await api.request("GET", "/v1/namespaces/team-a");
  assertEquals((await res.json()).labels, { owner: "ops" });
  res = await api.request("DELETE", "/v1/namespaces/team-a");
  assertEquals(res.status, 204);
  res = await api.request("GET", "/v1/namespaces/team-a");
  assertEquals(res.status, 404);
  sub.close();
  await collecting;
  assertEquals(events.map((e) => [e.topic, e.namespace, e.payload.name]), [
    ["/namespaces/create", "team-a", "team-a"],
    ["/namespaces/delete", "team-a", "team-a"],
  ]);
});

Deno.test("creating a namespace twice is already_exists; removing a missing one is not_found", async () => {
  await using api = await testApi();
  assertEquals(
    (await api.request("POST", "/v1/namespaces", { json: { name: "dup" } })).status,
    201,
  );
  const res = await api.request("POST", "/v1/namespaces", { json: { name: "dup" } });
  assertEquals(res.status, 409);
  assertEquals((await res.json()).error.code, "already_exists");
  assertEquals((await api.request("DELETE", "/v1/namespaces/none")).status, 404);
});

Deno.test("a namespace that holds images cannot be removed: failed_precondition", async () => {
  await using api = await testApi();
  const images = await api.ctx.images();
  images.db.images.create("busy", {
    name: "docker.io/library/x:latest",
    target: {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${"a".repeat(64)}`,
      size: 10,
    },
  });
  const res = await api.request("DELETE", "/v1/namespaces/busy");
  assertEquals(res.status, 412);
  const body = await res.json();
  assertEquals(body.error.code, "failed_precondition");
  assertStringIncludes(body.error.message, "images");
  assertEquals((await api.request("GET", "/v1/namespaces/busy")).status, 200);
});

Deno.test("malformed namespace requests get 400 and change nothing", async () => {
  await using api = await testApi();
  const bad: Array<[unknown, string]> = [
    [{}, "field name is required"],
    [{ name: 5 }, "field name must be a non-empty string"],
    [{ name: "ok", labels: { a: 1 } }, "field labels must be an object of strings"],
    [{ name: "ok", extra: true }, 'unknown field "extra"'],
    [{ name: "not ok" }, "Invalid namespace"],
    [[], "expected a JSON object"],
    ["name", "expected a JSON object"],
  ];
  for (const [json, message] of bad) {
    const res = await api.request("POST", "/v1/namespaces", { json });
    assertEquals(res.status, 400, JSON.stringify(json));
    assertStringIncludes((await res.json()).error.message, message);
  }
  for (const body of ["{", "", "\xff"]) {
    const res = await api.request("POST", "/v1/namespaces", { body });
    assertEquals(res.status, 400, body);
  }
  assertEquals(await (await api.request("GET", "/v1/namespaces")).json(), []);
});

Deno.test("a body over the size limit is refused with 413 before it is read whole", async () => {
  await using api = await testApi({ maxBodySize: 2048 });
  const huge = JSON.stringify({ name: "x", labels: { big: "y".repeat(4096) } });
  let res = await api.request("POST", "/v1/namespaces", { body: huge });
  assertEquals(res.status, 413);
  assertEquals((await res.json()).error.code, "invalid_argument");
  // A streamed body without a length is cut off at the limit too.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(huge));
      c.close();
    },
  });
  res = await api.request("POST", "/v1/namespaces", { body: stream });
  assertEquals(res.status, 413);
  assertEquals(await (await api.request("GET", "/v1/namespaces")).json(), []);
});
