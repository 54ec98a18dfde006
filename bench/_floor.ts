/**
 * Runs bench/_floor_server.ts, the floor under tug's idle daemon (see that
 * module): bundled as `make bundle` bundles tug, started with tug's flags,
 * sent the requests a daemon gets (ten version and ten store requests, then
 * the work a pull needs from Deno), and stopped by pid.
 *
 * @module
 */

import { join } from "node:path";
import { exchange } from "../client/exchange.ts";
import { RUN_FLAGS } from "../self.ts";
import { alive, check, killPids, sleep } from "./_proc.ts";

const DENO = new URL("../tools/deno", import.meta.url).pathname;
const SOURCE = new URL("./_floor_server.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** A running floor server. */
export interface Floor {
  pid: number;
  stop(): Promise<void>;
}

/** Bundles and starts the floor server in `dir` (created), has it do its work (its fetch gets `url`), and returns once it is done. */
export async function startFloor(dir: string, url: string): Promise<Floor> {
  await Deno.mkdir(dir, { recursive: true });
  const bundle = join(dir, "floor.js");
  await check(DENO, [
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    "--config",
    CONFIG,
    "-o",
    bundle,
    SOURCE,
  ]);
  const socket = join(dir, "floor.sock");
  const log = await Deno.open(join(dir, "floor.log"), { write: true, create: true });
  const child = new Deno.Command(DENO, {
    args: ["run", ...RUN_FLAGS, "--no-config", bundle, socket, join(dir, "floor.db")],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logging = child.stderr.pipeTo(log.writable).catch(() => {});
  const stop = async () => {
    await killPids([child.pid], "SIGTERM", 2000);
    await child.status;
    await logging;
  };
  try {
    for (let i = 0;; i++) {
      try {
        await exchange({ socket, method: "GET", target: "/v1/version", headers: {} });
        break;
      } catch (err) {
        if (i >= 200 || !alive(child.pid)) {
          throw new Error(`the floor server did not start (see ${join(dir, "floor.log")})`, {
            cause: err,
          });
        }
        await sleep(25);
      }
    }
    const json = { "content-type": "application/json" };
    for (let i = 0; i < 10; i++) {
      await exchange({ socket, method: "GET", target: "/v1/version", headers: {} });
      await exchange({
        socket,
        method: "POST",
        target: `/v1/put/k${i}`,
        headers: json,
        body: new TextEncoder().encode(JSON.stringify({ i })),
      });
    }
    const done = await exchange({
      socket,
      method: "POST",
      target: `/v1/work?url=${encodeURIComponent(url)}`,
      headers: {},
    });
    if (done.status !== 200) {
      throw new Error(`the floor server's work failed: ${new TextDecoder().decode(done.body)}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid, stop };
}
