import { TOPICS } from "../client/types.ts";
import { InvalidArgument, Unavailable } from "../errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { EventBus, type TugEvent } from "./events.ts";

async function take(it: AsyncIterable<TugEvent>, n: number): Promise<TugEvent[]> {
  const out: TugEvent[] = [];
  if (n === 0) return out;
  for await (const e of it) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

Deno.test("subscribe() receives the events published after it, in order", async () => {
  const bus = new EventBus();
  bus.publish("default", TOPICS.imageCreate, { name: "before" });
  const sub = bus.subscribe();
  bus.publish("default", TOPICS.imageCreate, { name: "a" });
  bus.publish("other", TOPICS.namespaceDelete, { name: "b" });
  const events = await take(sub, 2);
  assertEquals(events.map((e) => [e.namespace, e.topic, e.payload.name]), [
    ["default", "/images/create", "a"],
    ["other", "/namespaces/delete", "b"],
  ]);
  assert(!Number.isNaN(Date.parse(events[0]!.timestamp)));
  assertEquals(bus.subscribers, 0, "breaking out of the loop closes the subscription");
});

Deno.test("filters select by namespace, exact topic and topic prefix", async () => {
  const bus = new EventBus();
  const ns = bus.subscribe({ namespace: "a" });
  const exact = bus.subscribe({ topics: ["/tasks/exit"] });
  const prefix = bus.subscribe({ topics: ["/images/*", "/containers/create"] });
  bus.publish("b", "/images/create");
  bus.publish("a", "/tasks/start");
  bus.publish("b", "/tasks/exit");
  bus.publish("a", "/containers/create");
  bus.publish("a", "/images/delete");
  assertEquals((await take(ns, 3)).map((e) => e.topic), [
    "/tasks/start",
    "/containers/create",
    "/images/delete",
  ]);
  assertEquals((await take(exact, 1)).map((e) => e.namespace), ["b"]);
  assertEquals((await take(prefix, 3)).map((e) => e.topic), [
    "/images/create",
    "/containers/create",
    "/images/delete",
  ]);
});

Deno.test("a waiting subscriber wakes when an event arrives, and ends on close()", async () => {
  const bus = new EventBus();
  const sub = bus.subscribe();
  const got = take(sub, 1);
  setTimeout(() => bus.publish("default", "/tasks/oom", { containerId: "c1" }), 5);
  assertEquals((await got)[0]!.payload, { containerId: "c1" });
  const rest = take(sub, 5);
  sub.close();
  assertEquals(await rest, []);
  assertEquals(bus.subscribers, 0);
});

Deno.test("an aborted signal ends the subscription", async () => {
  const bus = new EventBus();
  const ac = new AbortController();
  const sub = bus.subscribe({}, { signal: ac.signal });
  const pending = take(sub, 1);
  ac.abort();
  assertEquals(await pending, []);
  assertEquals(bus.subscribers, 0);
});

Deno.test("a subscriber that falls too far behind is ended with Unavailable", async () => {
  const bus = new EventBus();
  const sub = bus.subscribe({}, { buffer: 3 });
  for (let i = 0; i < 5; i++) bus.publish("default", "/images/create", { i });
  assertEquals(bus.subscribers, 0);
  await assertRejects(() => take(sub, 10), Unavailable, "fell more than 3 events behind");
});

Deno.test("malformed topics and topic filters are refused", () => {
  const bus = new EventBus();
  for (const t of ["", "images", "/Images/create", "/images/", "/a b"]) {
    assertThrows(() => bus.publish("default", t), InvalidArgument, "Invalid event topic");
  }
  for (const t of ["", "tasks", "/tasks/**", "/a b/*"]) {
    assertThrows(
      () => bus.subscribe({ topics: [t] }),
      InvalidArgument,
      "Invalid event topic filter",
    );
  }
  bus.subscribe({ topics: ["*", "/tasks*", "/tasks/*"] }).close();
});

Deno.test("close() ends every subscription", async () => {
  const bus = new EventBus();
  const a = take(bus.subscribe(), 1);
  const b = take(bus.subscribe({ namespace: "x" }), 1);
  bus.close();
  assertEquals(await a, []);
  assertEquals(await b, []);
});
