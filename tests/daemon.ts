/**
 * A real `dist/tug daemon` for integration tests: a temporary root, state
 * directory, socket and config file (metrics on a free loopback port,
 * `docker.io` served by a test registry through hosts.toml), started as our
 * own child process, its log kept, stopped by pid, its directory removed.
 *
 * Containers nest their cgroups under `tug-test-<dir name>` in the test
 * process's own cgroup (a relative `containers.cgroup_parent`). Cleanup
 * takes down whatever containers the test left: their tasks and records
 * through the CLI while the daemon runs, then the daemon, then the shims it
 * started (by pid: `shim --group … --state <dir>/state`), then whatever is
 * still mounted under the directory and the cgroup parent in every
 * hierarchy. What tug should have removed itself but did not (a shim that
 * holds on after its containers are gone, a container's mount or cgroup left
 * after its deletion, a container process) is removed too, and reported:
 * cleanup throws, so the test fails.
 *
 * @module
 */

import { basename, join } from "node:path";
import {
  mountsUnder,
  ownCgroups,
  processesRootedUnder,
  run,
  type RunOptions,
  type RunResult,
  TUG,
} from "./harness.ts";
import type { TestRegistry } from "./registry.ts";
import { assertEquals } from "./assert.ts";
import { pushFixture } from "./fixtures/mod.ts";
import type { TaskInfo } from "../mod.ts";

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
  /** Extra lines for the `[containers]` section (the config has one already: use this, not extraConfig). */
  containersConfig?: string;
  /** Snapshotter (default overlayfs when the kernel has it, else native). */
  snapshotter?: "overlayfs" | "native";
  /** `images.gc_delay` (default "100ms"). */
  gcDelay?: string;
}

/** A running test daemon. */
export interface TestDaemon extends AsyncDisposable {
  dir: string;
  /** The API socket. */
  address: string;
  config: string;
  /** `http://127.0.0.1:<port>/metrics`. */
  metricsUrl: string;
  /** The relative cgroup parent of its containers (`containers.cgroup_parent`). */
  cgroupParent: string;
  pid: number;
  /** Runs `dist/tug` with `-a <address>` first. */
  tug(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** What the daemon logged so far. */
  log(): string;
  /** SIGTERM, and its exit code. */
  stop(): Promise<number>;
  /** SIGKILL (the socket file stays behind). */
  kill9(): Promise<void>;
  /**
   * Starts a new daemon on this one's directory with the same options (a
   * restart after a kill or a stop), `changes` overriding some of them;
   * this one's cleanup cleans it up first.
   */
  restart(changes?: Omit<TestDaemonOptions, "dir">): Promise<TestDaemon>;
  /**
   * Removes the test's containers, stops the daemon (if running) and its
   * shims, unmounts and removes what is left, and removes the directory
   * (unless it was given). Throws when tug left something behind that it
   * should have removed.
   */
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
  if (/^\s*\[containers\]/m.test(options.extraConfig ?? "")) {
    throw new Error("writeTestConfig: put [containers] keys in containersConfig, not extraConfig");
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
gc_delay = "${options.gcDelay ?? "100ms"}"

[registry]
config_path = "${certs}"

[containers]
cgroup_parent = "${testCgroupParent(dir)}"
${options.containersConfig ?? ""}
${options.extraConfig ?? ""}
`,
  );
  return config;
}

/** The relative cgroup parent of the containers of the test daemon in `dir`. */
export function testCgroupParent(dir: string): string {
  return `tug-test-${basename(dir)}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Removes every container of every namespace through the CLI (`containers
 * rm -f`: the task is killed and deleted first). Returns what failed.
 */
export async function removeContainers(address: string): Promise<string[]> {
  const problems: string[] = [];
  const cli = (args: string[]) => run(TUG, ["-a", address, ...args], { timeout: 60_000 });
  const ns = await cli(["namespaces", "ls", "--json"]);
  if (ns.code !== 0) return [`namespaces ls failed: ${ns.stderr.trim()}`];
  const names = new Set<string>(["default"]);
  for (const n of JSON.parse(ns.stdout) as { name: string }[]) names.add(n.name);
  for (const n of names) {
    const ls = await cli(["-n", n, "containers", "ls", "-q"]);
    if (ls.code !== 0) {
      problems.push(`containers ls in ${n} failed: ${ls.stderr.trim()}`);
      continue;
    }
    const ids = ls.stdout.split("\n").filter(Boolean);
    if (ids.length === 0) continue;
    const rm = await cli(["-n", n, "containers", "rm", "-f", ...ids]);
    if (rm.code !== 0) {
      problems.push(`containers rm -f ${ids.join(" ")} in ${n} failed: ${rm.stderr.trim()}`);
    }
  }
  return problems;
}

function readCmdline(pid: number): string[] | undefined {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function parentPid(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * Pids of the shims a test daemon with directory `dir` started (`shim --group G
 * --state <dir>/state`). A shim forks the inits of its containers, which
 * carry its command line until they exec: `all` lists those as well.
 */
export function shimPids(dir: string, options: { all?: boolean } = {}): number[] {
  const state = join(dir, "state");
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const argv = readCmdline(Number(e.name));
    if (!argv) continue;
    const at = argv.indexOf("shim");
    if (at < 0 || argv[at + 1] !== "--group") continue;
    const s = argv.indexOf("--state");
    if (s > at && argv[s + 1] === state && alive(Number(e.name))) pids.push(Number(e.name));
  }
  const result = options.all ? pids : pids.filter((p) => !pids.includes(parentPid(p) ?? 0));
  return result.sort((a, b) => a - b);
}

/** Directories of the cgroup `parent` (relative to our own cgroup) in every mounted hierarchy. */
export function testCgroupDirs(parent: string): string[] {
  const dirs = new Set<string>();
  for (const [, path] of ownCgroups()) dirs.add(join(path, parent));
  for (const line of Deno.readTextFileSync("/proc/self/cgroup").trim().split("\n")) {
    const [, controllers, path] = line.split(":", 3) as [string, string, string];
    if (controllers.startsWith("name=")) {
      dirs.add(join("/sys/fs/cgroup", controllers.slice(5), path, parent));
    }
  }
  return [...dirs].filter((d) => {
    try {
      return Deno.statSync(d).isDirectory;
    } catch {
      return false;
    }
  }).sort();
}

/** Sub-directories of a cgroup, deepest first, the cgroup itself last. */
function cgroupTree(dir: string): { path: string; depth: number }[] {
  const out: { path: string; depth: number }[] = [];
  const walk = (path: string, depth: number) => {
    try {
      for (const e of Deno.readDirSync(path)) {
        if (e.isDirectory) walk(join(path, e.name), depth + 1);
      }
    } catch {
      // gone
    }
    out.push({ path, depth });
  };
  walk(dir, 0);
  return out;
}

/** Pids in the cgroups under `dirs`. */
function cgroupPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    for (const { path } of cgroupTree(d)) {
      try {
        for (const p of Deno.readTextFileSync(join(path, "cgroup.procs")).split("\n")) {
          if (p) pids.add(Number(p));
        }
      } catch {
        // gone
      }
    }
  }
  return [...pids].sort((a, b) => a - b);
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length && Date.now() < deadline) {
    await sleep(50);
    left = left.filter(alive);
  }
  return left;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // gone
  }
}

/**
 * After the daemon has stopped: stops its shims (SIGTERM; they exit once
 * they hold no container), kills container processes left, unmounts what
 * is mounted under `dir`, removes the containers' cgroup parent. With
 * `graceful` (every container was deleted through the CLI) whatever had to
 * be forced is returned as a problem.
 */
export async function reapContainers(
  dir: string,
  options: { graceful: boolean },
): Promise<string[]> {
  const problems: string[] = [];
  const report = (what: string) => options.graceful && problems.push(what);
  const shimLogs = () => {
    const out: string[] = [];
    try {
      for (const g of Deno.readDirSync(join(dir, "state", "shims"))) {
        try {
          const text = Deno.readTextFileSync(join(dir, "state", "shims", g.name, "shim.log"));
          out.push(
            `shim ${g.name} log (last 20 lines):\n${text.split("\n").slice(-20).join("\n")}`,
          );
        } catch {
          // no log
        }
      }
    } catch {
      // no shims
    }
    return out;
  };
  const cgroupDirs = testCgroupDirs(testCgroupParent(dir));

  // Shims first: a shim that holds no container exits on SIGTERM.
  const shims = shimPids(dir);
  for (const pid of shims) signal(pid, "SIGTERM");
  const holding = await waitGone(shims, 10_000);
  if (holding.length) report(`shims still running after SIGTERM: ${holding.join(", ")}`);
  const forks = shimPids(dir, { all: true }).filter((p) => !holding.includes(p));
  if (forks.length) report(`processes forked by a shim left: ${forks.join(", ")}`);
  const stubborn = [...holding, ...forks];

  // Container processes: thaw frozen cgroups (a frozen process cannot die), then SIGKILL.
  const containers = [...new Set([...processesRootedUnder(dir), ...cgroupPids(cgroupDirs)])].filter(
    alive,
  );
  if (containers.length) report(`container processes left: ${containers.join(", ")}`);
  for (const d of cgroupDirs) {
    for (const { path } of cgroupTree(d)) {
      try {
        Deno.writeTextFileSync(join(path, "freezer.state"), "THAWED");
      } catch {
        // not the freezer hierarchy
      }
      try {
        Deno.writeTextFileSync(join(path, "cgroup.freeze"), "0");
      } catch {
        // not v2
      }
    }
  }
  for (const pid of containers) signal(pid, "SIGKILL");
  for (const pid of stubborn) signal(pid, "SIGKILL");
  const survivors = await waitGone([...containers, ...stubborn], 10_000);
  if (survivors.length) problems.push(`processes that survived SIGKILL: ${survivors.join(", ")}`);

  const mounts = mountsUnder(dir);
  if (mounts.length) report(`mounts left: ${mounts.join(", ")}`);
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    await run("umount", ["-l", m]).catch(() => undefined);
  }
  const stillMounted = mountsUnder(dir);
  if (stillMounted.length) problems.push(`cannot unmount: ${stillMounted.join(", ")}`);

  for (const d of cgroupDirs) {
    for (const { path, depth } of cgroupTree(d)) {
      // <parent>/<namespace>/<id>: a container's cgroup, which deleting the container should have removed.
      if (depth >= 2) report(`cgroup left: ${path}`);
      for (let attempt = 0;; attempt++) {
        try {
          Deno.removeSync(path);
          break;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) break;
          if (attempt >= 50) {
            problems.push(`cannot remove cgroup ${path}: ${(err as Error).message}`);
            break;
          }
          await sleep(100);
        }
      }
    }
  }
  if (problems.length) problems.push(...shimLogs());
  return problems;
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
  const restarts: TestDaemon[] = [];
  const restart = async (changes: Omit<TestDaemonOptions, "dir"> = {}) => {
    const next = await startDaemon({ ...options, ...changes, dir });
    restarts.push(next);
    return next;
  };
  const cleanup = async () => {
    let failure: unknown;
    for (const next of restarts.splice(0).reverse()) {
      try {
        await next.cleanup();
      } catch (err) {
        failure ??= err;
      }
    }
    try {
      await cleanupSelf();
    } catch (err) {
      failure ??= err;
    }
    if (failure) throw failure;
  };
  const cleanupSelf = async () => {
    const problems: string[] = [];
    let graceful = false;
    if (exited === undefined) {
      const removal = await removeContainers(address);
      problems.push(...removal);
      graceful = removal.length === 0;
      // Give it a graceful chance, then make sure.
      child.kill("SIGTERM");
      const timer = setTimeout(() => exited === undefined && child.kill("SIGKILL"), 10_000);
      await status;
      clearTimeout(timer);
    }
    await reading;
    problems.push(...await reapContainers(dir, { graceful }));
    if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (problems.length) {
      throw new Error(
        `the test daemon in ${dir} left things behind:\n  ${problems.join("\n  ")}\n` +
          `daemon log (last 60 lines):\n${log.split("\n").slice(-60).join("\n")}`,
      );
    }
  };
  return {
    dir,
    address,
    config,
    metricsUrl: `http://${metrics}/metrics`,
    cgroupParent: testCgroupParent(dir),
    pid: child.pid,
    tug: (args, o = {}) => run(TUG, ["-a", address, ...args], { ...o, env: { ...o.env } }),
    log: () => log,
    stop,
    kill9,
    restart,
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  };
}

/**
 * Starts `tug images pull REF` against `daemon`, kills the daemon with
 * SIGKILL as soon as the CLI reports a layer downloading (and `ready`, when
 * given, says so: polled for up to 20 s), and returns the CLI's exit code,
 * its output up to then and its stderr.
 */
export async function killDuringPull(
  daemon: TestDaemon,
  ref: string,
  ready?: () => boolean,
): Promise<{ code: number; out: string; stderr: string }> {
  const pull = new Deno.Command(TUG, {
    args: ["-a", daemon.address, "images", "pull", ref],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = pull.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/layer sha256:[0-9a-f]+: downloading/.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  for (const deadline = Date.now() + 20_000; ready && !ready() && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await daemon.kill9();
  reader.releaseLock();
  const status = await pull.status;
  await pull.stdout.cancel().catch(() => {});
  const stderr = new TextDecoder().decode(await new Response(pull.stderr).arrayBuffer());
  return { code: status.code, out, stderr };
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

function describe(err: unknown): string {
  if (err instanceof SuppressedError) {
    return `${describe(err.error)}\n(and while unwinding before it: ${describe(err.suppressed)})`;
  }
  return err instanceof Error ? (err.stack ?? String(err)) : String(err);
}

/**
 * Wraps a test body that uses `await using`: when disposal fails as well as
 * the body (or a later disposal as well as an earlier one), the runtime
 * throws a SuppressedError that Deno's test runner prints without either
 * error. This rethrows one Error that shows both.
 */
export function showSuppressed(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof SuppressedError) throw new Error(describe(err));
      throw err;
    }
  };
}

/** Runs `tug ARGS` against `daemon` (with `stdin`), asserting that it succeeds; its stdout. */
export async function ok(daemon: TestDaemon, args: string[], stdin?: string): Promise<string> {
  const r = await daemon.tug(args, stdin === undefined ? {} : { stdin });
  assertEquals(r.code, 0, `tug ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** The busybox fixture's name once pulled, as the daemon tests pull it. */
export const BUSYBOX_IMAGE = "docker.io/library/busybox:latest";

/**
 * Pushes the busybox fixture to `registry` as `library/busybox`, starts a
 * daemon that serves docker.io from it (with `options`) and pulls
 * {@link BUSYBOX_IMAGE} into it.
 */
export async function busyboxDaemon(
  registry: TestRegistry,
  options: Omit<TestDaemonOptions, "registry"> = {},
): Promise<TestDaemon> {
  await pushFixture(registry, "busybox", { repo: "library/busybox" });
  const daemon = await startDaemon({ registry, ...options });
  try {
    await ok(daemon, ["images", "pull", BUSYBOX_IMAGE]);
  } catch (err) {
    await daemon.cleanup().catch(() => {});
    throw err;
  }
  return daemon;
}

/** The daemon's tasks (`tasks list --json`). */
export async function tasks(daemon: TestDaemon): Promise<TaskInfo[]> {
  return JSON.parse(await ok(daemon, ["tasks", "list", "--json"]));
}

/** Polls `fn` every 50 ms until it gives something other than undefined; throws after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * SIGTERM, and the daemon's exit code; "hung" (and the daemon SIGKILLed) when
 * it has not exited within `ms`. A bound for a daemon that would never stop,
 * not a timing check.
 */
export async function stopWithin(daemon: TestDaemon, ms = 60_000): Promise<number | "hung"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    daemon.stop(),
    new Promise<"hung">((r) => timer = setTimeout(() => r("hung"), ms)),
  ]);
  clearTimeout(timer);
  if (stopped === "hung") await daemon.kill9();
  return stopped;
}
