/**
 * The floor under tug's idle daemon: a Deno server made of the parts the
 * daemon is made of and doing the kinds of work it does, without any of
 * tug's own code but its idle-time collection (util/gc.ts). bench/run.ts
 * bundles it as `make bundle` bundles tug, runs it with tug's flags, and
 * samples its RSS beside the daemons' (idle daemon RSS, subject "Deno
 * floor").
 *
 * - hono on a unix socket (`GET /v1/version`, `POST /v1/put/<key>`),
 *   node:sqlite in WAL mode: what the daemon serves and stores with.
 * - `POST /v1/work?url=<url>`: what a pull needs from Deno besides tug's
 *   code: a libc symbol bound and called through FFI, a function hot enough
 *   for V8's optimizing compilers, and one `fetch` whose body is read with
 *   a BYOB reader.
 * - After every request, the daemon's collection once quiet for a second
 *   (V8's last-resort collection, then `malloc_trim`).
 *
 * Usage: deno run <tug's flags> _floor_server.js SOCKET DATABASE
 *
 * @module
 */

import { Hono } from "hono";
import { DatabaseSync } from "node:sqlite";
import { collectSoon } from "../util/gc.ts";

const [socket, database] = Deno.args;
if (!socket || !database) {
  console.error("usage: _floor_server.js SOCKET DATABASE");
  Deno.exit(2);
}

const db = new DatabaseSync(database);
db.exec("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)");
const put = db.prepare("INSERT OR REPLACE INTO kv VALUES (?, ?)");
const get = db.prepare("SELECT v FROM kv WHERE k = ?");

/** A loop V8 optimizes after a few calls. */
function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum = (sum * 31 + bytes[i]!) | 0;
  return sum;
}

async function work(url: string): Promise<number> {
  const libc = Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } } as const);
  let sum = 0;
  for (let i = 0; i < 5000; i++) sum += libc.symbols.getpid();
  const bytes = new Uint8Array(1 << 20);
  for (let i = 0; i < 100; i++) sum += checksum(bytes);
  const res = await fetch(url);
  if (res.body) {
    const reader = res.body.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(256 << 10);
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(buffer));
      if (done) break;
      sum += value.length;
      buffer = value.buffer as ArrayBuffer;
    }
  }
  return sum;
}

const app = new Hono();
app.use(async (_c, next) => {
  await next();
  collectSoon();
});
app.get("/v1/version", (c) => c.json({ version: "floor", api: "v1" }));
app.post("/v1/put/:k", async (c) => {
  put.run(c.req.param("k"), JSON.stringify(await c.req.json()));
  return c.json(get.get(c.req.param("k")) ?? null);
});
app.post("/v1/work", async (c) => c.json({ sum: await work(c.req.query("url") ?? "") }));

Deno.serve({ path: socket, onListen() {} }, app.fetch);
