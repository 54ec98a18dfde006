/**
 * A real `dist/tug daemon` for integration tests: a temporary root, state
 * directory, socket and config file (metrics on a free loopback port,
 * `docker.io` served by a test registry through hosts.toml), started as our
 * own child process, its log kept, stopped by pid, its directory removed.
 *
 * @module
 */

import { join } from "node:path";
import { run, type RunOptions, type RunResult, TUG } from "./harness.ts";
import type { TestRegistry } from "./registry.ts";

/** Options for {@link startDaemon}. */
export interface TestDaemonOptions {
  /** Serve `docker.io` from this registry (hosts.toml `server`). */
  registry?: Pick<TestRegistry, "host">;
  /** Extra TOML appended to the config file. */
  extraConfig?: string;
  /** `NOTIFY_SOCKET` for the daemon. */
  notifySocket?: string;
  /** Reuse this directory (a restart after a kill); default: a new one. */
  dir?: string;
  /** Snapshotter (default overlayfs when the kernel has it, else native). */
  snapshotter?: "overlayfs" | "native";
}

/** A running test daemon. */
export interface TestDaemon extends AsyncDisposable {
  dir: string;
  /** The API socket. */
  address: string;
  config: string;
  /** `http://127.0.0.1:<port>/metrics`. */
  metricsUrl: string;
  pid: number;
  /** Runs `dist/tug` with `-a <address>` first. */
  tug(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** What the daemon logged so far. */
  log(): string;
  /** SIGTERM, and its exit code. */
  stop(): Promise<number>;
  /** SIGKILL (the socket file stays behind). */
  kill9(): Promise<void>;
  /** Stops (if running) and removes the directory. */
  cleanup(): Promise<void>;
}

function overlayAvailable(): boolean {
  return Deno.readTextFileSync("/proc/filesystems").includes("\toverlay\n");
}

/** Writes the config (and hosts.toml) for a test daemon in `dir`; returns the config path. */
export async function writeTestConfig(
  dir: string,
  options: TestDaemonOptions = {},
): Promise<string> {
  const certs = join(dir, "certs.d");
  await Deno.mkdir(certs, { recursive: true });
  if (options.registry) {
    await Deno.mkdir(join(certs, "docker.io"), { recursive: true });
    await Deno.writeTextFile(
      join(certs, "docker.io", "hosts.toml"),
      `server = "http://${options.registry.host}"\n`,
    );
  }
  const snapshotter = options.snapshotter ?? (overlayAvailable() ? "overlayfs" : "native");
  const config = join(dir, "config.toml");
  await Deno.writeTextFile(
    config,
    `root = "${join(dir, "root")}"
state = "${join(dir, "state")}"

[api]
address = "${join(dir, "state", "tug.sock")}"

[metrics]
address = "127.0.0.1:0"

[debug]
level = "debug"

[images]
snapshotter = "${snapshotter}"
gc_delay = "100ms"

[registry]
config_path = "${certs}"
${options.extraConfig ?? ""}
`,
  );
  return config;
}

/** Starts `dist/tug daemon` and resolves once it serves. */
export async function startDaemon(options: TestDaemonOptions = {}): Promise<TestDaemon> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "tug-daemon-test-" });
  const config = await writeTestConfig(dir, options);
  const address = join(dir, "state", "tug.sock");
  const env: Record<string, string> = { TUG_DEBUG: "1" };
  if (options.notifySocket) env.NOTIFY_SOCKET = options.notifySocket;
  const child = new Deno.Command(TUG, {
    args: ["daemon", "--config", config],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env,
  }).spawn();
  let log = "";
  let exited: number | undefined;
  const status = child.status.then((s) => (exited = s.code));
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  const deadline = Date.now() + 30_000;
  let metrics: string | undefined;
  while (!metrics) {
    const m = /msg="serving".* metrics=(\S+)/.exec(log);
    if (m) metrics = m[1]!;
    else if (exited !== undefined) {
      await reading;
      throw new Error(`tug daemon exited with ${exited} before serving:\n${log}`);
    } else if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`tug daemon did not serve within 30 s:\n${log}`);
    } else await new Promise((r) => setTimeout(r, 20));
  }
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      if (exited === undefined) child.kill("SIGTERM");
    }
    const code = await status;
    await reading;
    return code;
  };
  const kill9 = async () => {
    stopped = true;
    if (exited === undefined) child.kill("SIGKILL");
    await status;
    await reading;
  };
  const cleanup = async () => {
    if (exited === undefined) {
      // Give it a graceful chance, then make sure.
      child.kill("SIGTERM");
      const timer = setTimeout(() => exited === undefined && child.kill("SIGKILL"), 10_000);
      await status;
      clearTimeout(timer);
    }
    await reading;
    if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    dir,
    address,
    config,
    metricsUrl: `http://${metrics}/metrics`,
    pid: child.pid,
    tug: (args, o = {}) => run(TUG, ["-a", address, ...args], { ...o, env: { ...o.env } }),
    log: () => log,
    stop,
    kill9,
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  };
}

/** Fetches the daemon's metrics text. */
export async function scrape(daemon: Pick<TestDaemon, "metricsUrl">): Promise<string> {
  const res = await fetch(daemon.metricsUrl);
  if (!res.ok) throw new Error(`GET ${daemon.metricsUrl}: ${res.status}`);
  return await res.text();
}

/** Waits (polling the metrics) until the daemon has `n` event subscribers. */
export async function waitForSubscribers(
  daemon: Pick<TestDaemon, "metricsUrl">,
  n: number,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /^tug_event_subscribers (\d+)$/m.exec(await scrape(daemon));
    if (m && Number(m[1]) >= n) return;
    if (Date.now() > deadline) throw new Error(`the daemon never had ${n} event subscribers`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs `promtool check metrics` on `text`: its exit code and output. */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, output: (d.decode(out.stdout) + d.decode(out.stderr)).trim() };
}

/** A fetch client over the daemon's socket, for raw API requests. */
export function socketClient(address: string): Deno.HttpClient {
  return Deno.createHttpClient({ proxy: { transport: "unix", path: address } });
}
