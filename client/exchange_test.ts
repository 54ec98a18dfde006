/**
 * exchange() against unix-socket peers that answer with bytes chosen by the
 * test: sized, chunked and until-close bodies, answers split across reads,
 * and peers that are not HTTP or hang up early. (client_test.ts runs the
 * client against the real daemon.)
 */
import { join } from "node:path";
import { exchange, openExchange } from "./exchange.ts";
import { assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Serves one connection on a fresh socket: reads the request head (and a
 * body of content-length bytes), hands it to `respond`, writes its pieces
 * one by one (waiting for each promise among them), then closes. Resolves
 * to the request text.
 */
async function withPeer(
  respond: (request: string) => Array<string | Uint8Array | Promise<void>>,
  fn: (socket: string) => Promise<void>,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tug-exchange-test-" });
  const socket = join(dir, "peer.sock");
  const listener = Deno.listen({ transport: "unix", path: socket });
  const served = (async () => {
    const conn = await listener.accept();
    try {
      let text = "";
      const buf = new Uint8Array(4096);
      for (;;) {
        const end = text.indexOf("\r\n\r\n");
        if (end >= 0) {
          const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
          if (text.length >= end + 4 + length) break;
        }
        const n = await conn.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n));
      }
      try {
        for (const piece of respond(text)) {
          if (piece instanceof Promise) {
            await piece;
            continue;
          }
          await conn.write(typeof piece === "string" ? enc.encode(piece) : piece);
          await new Promise((r) => setTimeout(r, 5));
        }
      } catch (err) {
        // The client may hang up first (the abort test).
        if (
          !(err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset)
        ) {
          throw err;
        }
      }
      return text;
    } finally {
      conn.close();
    }
  })();
  try {
    await fn(socket);
    return await served;
  } finally {
    listener.close();
    await served.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("exchange sends method, target, headers and body, and reads a sized answer", async () => {
  const request = await withPeer(
    () => [
      "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n",
      '{"ok":true}',
    ],
    async (socket) => {
      const answer = await exchange({
        socket,
        method: "POST",
        target: "/v1/containers?all=1",
        headers: { "x-tug-namespace": "team", "content-type": "application/json" },
        body: enc.encode('{"id":"a"}'),
      });
      assertEquals(answer.status, 201);
      assertEquals(dec.decode(answer.body), '{"ok":true}');
    },
  );
  assertStringIncludes(request, "POST /v1/containers?all=1 HTTP/1.1\r\n");
  assertStringIncludes(request, "x-tug-namespace: team\r\n");
  assertStringIncludes(request, "connection: close\r\n");
  assertStringIncludes(request, "content-length: 10\r\n");
  assertEquals(request.slice(request.indexOf("\r\n\r\n") + 4), '{"id":"a"}');
});

Deno.test("exchange reads chunked and until-close answers, split anywhere", async () => {
  const big = "x".repeat(200_000);
  await withPeer(
    () => [
      "HTTP/1.1 200 OK\r\ntransfer-en",
      'coding: chunked\r\n\r\n5\r\n["ab"\r\n',
      `${(big.length + 2).toString(16)}\r\n,"${big}`,
      '\r\n2\r\n"]\r\n0\r\n\r\n',
    ],
    async (socket) => {
      const answer = await exchange({ socket, method: "GET", target: "/", headers: {} });
      assertEquals(answer.status, 200);
      assertEquals(JSON.parse(dec.decode(answer.body)), ["ab", big]);
    },
  );
  await withPeer(
    () => ['HTTP/1.1 200 OK\r\n\r\n{"a":', "1}"],
    async (socket) => {
      const answer = await exchange({ socket, method: "GET", target: "/", headers: {} });
      assertEquals(JSON.parse(dec.decode(answer.body)), { a: 1 });
    },
  );
  await withPeer(
    () => ["HTTP/1.1 204 No Content\r\n\r\n"],
    async (socket) => {
      const answer = await exchange({ socket, method: "DELETE", target: "/x", headers: {} });
      assertEquals(answer.status, 204);
      assertEquals(answer.body.length, 0);
    },
  );
});

/** A GET through exchange() rejects, naming `message`, when the peer answers `pieces`. */
async function assertAnswerRejected(pieces: string[], message: string): Promise<void> {
  await withPeer(
    () => pieces,
    async (socket) => {
      await assertRejects(
        () => exchange({ socket, method: "GET", target: "/", headers: {} }),
        Error,
        message,
      );
    },
  );
}

Deno.test("exchange names a peer that is not HTTP or hangs up mid-answer", async () => {
  await assertAnswerRejected(["SSH-2.0-OpenSSH_9.2\r\n"], "the answer is not HTTP/1.1");
  await assertAnswerRejected(
    ['HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"a"'],
    "the connection closed before the answer was complete",
  );
});

Deno.test("exchange rejects with the signal's reason when aborted mid-answer", async () => {
  await withPeer(
    () => ["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", new Uint8Array(0)],
    async (socket) => {
      const controller = new AbortController();
      const pending = exchange({
        socket,
        method: "GET",
        target: "/",
        headers: {},
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(new Error("gave up")), 2);
      await assertRejects(() => pending, Error, "gave up");
    },
  );
});

Deno.test("openExchange hands over the status and each piece of a streamed body as it arrives", async () => {
  let firstSeen!: () => void;
  const seen = new Promise<void>((r) => firstSeen = r);
  await withPeer(
    () => [
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
      'e\r\n{"progress":1}\r\n',
      seen, // the rest is sent only once the client has the first line
      'd\r\n\n{"result":2}\r\n0\r\n\r\n',
    ],
    async (socket) => {
      const answer = await openExchange({ socket, method: "POST", target: "/", headers: {} });
      assertEquals(answer.status, 200);
      const first = await answer.body.next();
      assertEquals(dec.decode(first.value as Uint8Array), '{"progress":1}');
      firstSeen();
      let rest = "";
      for await (const piece of answer.body) rest += dec.decode(piece);
      assertEquals(rest, '\n{"result":2}');
    },
  );
});

Deno.test("openExchange: an abort mid-stream ends the body with the signal's reason", async () => {
  await withPeer(
    () => [
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
      "2\r\n{}\r\n",
      new Promise((r) => setTimeout(r, 200)),
    ],
    async (socket) => {
      const controller = new AbortController();
      const answer = await openExchange({
        socket,
        method: "GET",
        target: "/",
        headers: {},
        signal: controller.signal,
      });
      assertEquals(dec.decode((await answer.body.next()).value as Uint8Array), "{}");
      setTimeout(() => controller.abort(new Error("stopped following")), 2);
      await assertRejects(() => answer.body.next(), Error, "stopped following");
    },
  );
});
