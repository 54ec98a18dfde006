import { assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import { testApi } from "./_testing.ts";

async function readLines(res: Response, n: number): Promise<Record<string, unknown>[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const out: Record<string, unknown>[] = [];
  while (out.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n")) >= 0 && out.length < n) {
      out.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  }
  await reader.cancel();
  return out;
}

Deno.test("GET /v1/events streams the events published after it, filtered", async () => {
  await using api = await testApi();
  const all = await api.request("GET", "/v1/events");
  const filtered = await api.request("GET", "/v1/events?namespace=b&topic=/tasks/*");
  assertEquals(all.headers.get("content-type"), "application/x-ndjson");
  assertEquals(api.ctx.events.subscribers, 2, "subscribed once the headers are back");
  api.ctx.publish("a", "/images/create", { name: "x" });
  api.ctx.publish("b", "/tasks/exit", { containerId: "c", exitStatus: 3 });
  api.ctx.publish("b", "/images/delete", { name: "x" });
  const a = await readLines(all, 3);
  assertEquals(a.map((e) => e.topic), ["/images/create", "/tasks/exit", "/images/delete"]);
  const b = await readLines(filtered, 1);
  assertEquals(b[0]!.payload, { containerId: "c", exitStatus: 3 });
  assertEquals(api.ctx.events.subscribers, 0, "a client that goes away ends its subscription");
});

Deno.test("the events stream ends when the daemon shuts down", async () => {
  await using api = await testApi();
  const res = await api.request("GET", "/v1/events");
  api.ctx.shutdown();
  assertEquals(await res.text(), "");
});

Deno.test("bad event filters are invalid_argument", async () => {
  await using api = await testApi();
  let res = await api.request("GET", "/v1/events?topic=tasks");
  assertEquals(res.status, 400);
  assertStringIncludes((await res.json()).error.message, "Invalid event topic filter");
  res = await api.request("GET", "/v1/events?namespace=a%20b");
  assertEquals(res.status, 400);
  assertEquals(api.ctx.events.subscribers, 0);
});
