import { Hono } from "hono";
import { join } from "node:path";
import { assert, assertEquals } from "../../tests/assert.ts";
import { ndjson } from "./_http.ts";

/** Serves `app` on a unix socket in a new temporary directory for the length of `fn`. */
async function served(app: Hono, fn: (socket: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-http-test-" });
  const socket = join(dir, "api.sock");
  const server = Deno.serve({ path: socket, onListen() {} }, app.fetch);
  try {
    await fn(socket);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Sends `GET path` over a raw connection and reads until the answer holds `until`. */
async function open(
  socket: string,
  path: string,
  until: string,
): Promise<{ conn: Deno.UnixConn; head: string }> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: tug\r\n\r\n`));
  const buf = new Uint8Array(4096);
  let head = "";
  while (!head.includes(until)) {
    const n = await conn.read(buf);
    if (n === null) break;
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  return { conn, head };
}

Deno.test("ndjson(): the work's signal aborts when the client goes away mid-stream, not when the answer is complete", async () => {
  const seen: Record<string, { aborted: boolean; settled: PromiseWithResolvers<void> }> = {};
  const app = new Hono();
  app.get("/:name", (c) => {
    const name = c.req.param("name");
    const state: (typeof seen)[string] = { aborted: false, settled: Promise.withResolvers() };
    seen[name] = state;
    return ndjson(async (send, signal) => {
      signal.addEventListener("abort", () => state.aborted = true, { once: true });
      send({ progress: name });
      if (name === "slow") {
        // Waits for the client to go away (or gives up after 10 s).
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 10_000);
          signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          }, { once: true });
        });
      }
      setTimeout(() => state.settled.resolve(), 200);
      return { done: name };
    });
  });
  await served(app, async (socket) => {
    // A complete answer: the signal stays quiet after it.
    const quick = await open(socket, "/quick", '{"progress":"quick"}');
    await seen.quick!.settled.promise;
    quick.conn.close();
    assert(quick.head.includes('{"progress":"quick"}'), quick.head);
    assertEquals(seen.quick!.aborted, false, "a completed answer does not abort its work");

    // A client that leaves while the work goes on: the work is told at once.
    const slow = await open(socket, "/slow", '{"progress":"slow"}');
    assert(slow.head.includes('{"progress":"slow"}'), slow.head);
    const left = performance.now();
    slow.conn.close();
    await seen.slow!.settled.promise;
    assertEquals(seen.slow!.aborted, true, "the work's signal aborts when the client goes away");
    assert(performance.now() - left < 5_000, "the abort comes without waiting for the work");
  });
});
