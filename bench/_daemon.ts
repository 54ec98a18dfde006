/**
 * A private `dist/tug daemon` for the benchmarks: root, state, socket and
 * hosts.toml directory in a directory of ours, container cgroups under the
 * harness's cgroup subtree, started in its own session, stopped by pid with
 * every shim and container it started.
 *
 * @module
 */

import { join } from "node:path";
import {
  alive,
  descendants,
  evictFromPageCache,
  exec,
  findProcesses,
  killPids,
  type Output,
  processesRootedUnder,
  sleep,
} from "./_proc.ts";

/** The tug binary the benchmarks run (made by `make bundle` or `make build`). */
export const TUG: string = new URL("../dist/tug", import.meta.url).pathname;

/**
 * Copies the tug under test into `dir` and returns the path to run: the
 * compiled binary, or the bundle's launcher rewritten to a copy of
 * `dist/tug.js` and every chunk it imports, run by a copy of Deno's binary.
 * The binary copied is dropped from the page cache (see evictFromPageCache).
 * Other people's `make bundle` replaces dist/ with new chunk names while a
 * run goes on; the copy keeps one build for the whole run. A bundle caught
 * half-written is copied again.
 */
export async function snapshotTug(dir: string): Promise<string> {
  const dist = join(TUG, "..");
  await Deno.mkdir(dir, { recursive: true });
  const head = new TextDecoder().decode((await Deno.readFile(TUG)).subarray(0, 2));
  if (head !== "#!") {
    await Deno.copyFile(TUG, join(dir, "tug"));
    await evictFromPageCache(join(dir, "tug"));
    return join(dir, "tug");
  }
  for (let attempt = 0;; attempt++) {
    const launcher = await Deno.readTextFile(TUG);
    const copied = new Set<string>();
    const queue = ["tug.js"];
    let missing: string | undefined;
    while (queue.length && !missing) {
      const name = queue.shift()!;
      if (copied.has(name)) continue;
      let text: string;
      try {
        text = await Deno.readTextFile(join(dist, name));
      } catch {
        missing = name;
        break;
      }
      await Deno.writeTextFile(join(dir, name), text);
      copied.add(name);
      // Static imports name "./chunk.js"; dynamic ones "." + "/chunk.js" (see the Makefile).
      for (const m of text.matchAll(/["'](?:\.)?\/([\w.-]+\.js)["']/g)) queue.push(m[1]!);
    }
    const deno = /exec "([^"]+)"/.exec(launcher)?.[1];
    if (!missing && deno && launcher.includes(join(dist, "tug.js"))) {
      // tug runs from a copy of Deno's binary, as the compiled tug is a file
      // of its own: the pages it maps are then shared with no other process
      // of the run (this harness runs on the original), so a PSS counts them
      // among tug's processes only.
      await Deno.copyFile(deno, join(dir, "deno"));
      await Deno.chmod(join(dir, "deno"), 0o755);
      await evictFromPageCache(join(dir, "deno"));
      await Deno.writeTextFile(
        join(dir, "tug"),
        launcher.replaceAll(join(dist, "tug.js"), join(dir, "tug.js")).replace(
          `exec "${deno}"`,
          `exec "${join(dir, "deno")}"`,
        ),
        { mode: 0o755 },
      );
      return join(dir, "tug");
    }
    if (attempt >= 20) {
      throw new Error(
        `Cannot copy tug's bundle: ${missing ?? "the launcher"} is missing in ${dist}`,
      );
    }
    await sleep(500);
  }
}

/** Options for {@link startTugDaemon}. */
export interface TugDaemonOptions {
  /** The tug to run (default dist/tug); see {@link snapshotTug}. */
  tug?: string;
  /** The cgroup parent for containers (absolute; tug adds `<namespace>/<id>`). */
  cgroupParent: string;
}

/** A running private tug daemon. */
export interface TugDaemon {
  dir: string;
  pid: number;
  /** The API socket. */
  address: string;
  /** The state directory (its shims are `tug shim --group … --state <state>`). */
  state: string;
  /** Runs `dist/tug -a <address> …`. */
  tug(args: readonly string[], timeout?: number): Promise<Output>;
  /** Pids of the shims this daemon started. */
  shimPids(): number[];
  /** Stops the daemon (SIGTERM, then SIGKILL), then its shims and containers, by pid. */
  stop(): Promise<void>;
}

/** Starts `dist/tug daemon` with everything under `dir` (created); resolves once the socket accepts connections. */
export async function startTugDaemon(dir: string, options: TugDaemonOptions): Promise<TugDaemon> {
  await Deno.mkdir(join(dir, "certs.d"), { recursive: true });
  const state = join(dir, "state");
  const address = join(dir, "tug.sock");
  const config = join(dir, "config.toml");
  await Deno.writeTextFile(
    config,
    [
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(state)}`,
      "[api]",
      `address = ${JSON.stringify(address)}`,
      "[debug]",
      'level = "warn"',
      "[registry]",
      `config_path = ${JSON.stringify(join(dir, "certs.d"))}`,
      "[containers]",
      `cgroup_parent = ${JSON.stringify(options.cgroupParent)}`,
      "",
    ].join("\n"),
  );
  const log = await Deno.open(join(dir, "daemon.log"), { write: true, create: true, append: true });
  const tug = options.tug ?? TUG;
  const child = new Deno.Command(tug, {
    args: ["daemon", "--config", config],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    detached: true,
  }).spawn();
  const logging = child.stderr.pipeTo(log.writable).catch(() => {});
  const shimPids = () =>
    findProcesses((c) => c.includes("shim --group") && c.includes(`--state ${state}`));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await killPids([child.pid], "SIGTERM", 10_000);
    await child.status;
    await logging;
    // Shims outlive the daemon by design, and ignore SIGTERM while they hold containers:
    // their containers first, then the shims.
    const shims = shimPids();
    await killPids([...descendants(shims), ...processesRootedUnder(dir)], "SIGKILL");
    await killPids(shims, "SIGTERM", 2000);
  };

  for (let i = 0;; i++) {
    try {
      const conn = await Deno.connect({ transport: "unix", path: address });
      conn.close();
      break;
    } catch {
      // not serving yet
    }
    if (i >= 600 || !alive(child.pid)) {
      await stop();
      const text = await Deno.readTextFile(join(dir, "daemon.log")).catch(() => "");
      throw new Error(
        `tug daemon did not start:\n${text.trim().split("\n").slice(-10).join("\n")}`,
      );
    }
    await sleep(25);
  }
  return {
    dir,
    pid: child.pid,
    address,
    state,
    tug: (args, timeout = 120_000) => exec(tug, ["-a", address, ...args], { timeout }),
    shimPids,
    stop,
  };
}
