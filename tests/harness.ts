/**
 * Shared helpers for tug's integration tests: the binary under test,
 * requirement checks that skip with a reason, temporary directories, busybox
 * bundles built from Debian's busybox-static, and checks that a test left no
 * mounts, cgroups or processes behind.
 *
 * @module
 */

import { exists } from "../util/fs.ts";
import { basename, join } from "node:path";

/** The tug binary the integration tests run (built by `make bundle` or `make build`). */
export const TUG: string = new URL("../dist/tug", import.meta.url).pathname;

/** The busybox binary tests copy into their bundles. */
export const BUSYBOX = "/bin/busybox";

/** A machine feature a test can require. */
export type Feature =
  | "root"
  | "busybox"
  | "libseccomp"
  | "overlayfs"
  | "cgroup1"
  | "cgroup2"
  | "tug"
  | "registry"
  | "skopeo"
  | "umoci"
  | "promtool"
  | "python3";

function commandExists(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      Deno.statSync(join(dir, name));
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

const CHECKS: Record<Feature, () => boolean> = {
  root: () => Deno.uid() === 0,
  busybox: () => exists(BUSYBOX),
  libseccomp: () =>
    [
      "/usr/lib/x86_64-linux-gnu/libseccomp.so.2",
      "/usr/lib/aarch64-linux-gnu/libseccomp.so.2",
      "/lib/x86_64-linux-gnu/libseccomp.so.2",
    ].some(exists),
  overlayfs: () => Deno.readTextFileSync("/proc/filesystems").includes("overlay"),
  cgroup1: () =>
    exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") ||
    exists("/sys/fs/cgroup/memory/cgroup.procs"),
  cgroup2: () => Deno.readTextFileSync("/proc/self/mountinfo").includes(" - cgroup2 "),
  tug: () => exists(TUG),
  registry: () => exists("/usr/bin/docker-registry"),
  skopeo: () => commandExists("skopeo"),
  umoci: () => commandExists("umoci"),
  promtool: () => commandExists("promtool"),
  python3: () => exists("/usr/bin/python3"),
};

const reported = new Set<string>();

/**
 * Returns true (skip) when the machine lacks any of `features`, and says which
 * once on stderr. Use as `Deno.test({ name, ignore: requires("root"), fn })`.
 */
export function requires(...features: Feature[]): boolean {
  const missing = features.filter((f) => !CHECKS[f]());
  if (missing.length === 0) return false;
  const key = missing.join(",");
  if (!reported.has(key)) {
    reported.add(key);
    console.error(
      `skipping tests that need: ${missing.join(", ")} (not available on this machine)`,
    );
  }
  return true;
}

/** What a finished command printed and returned. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link run} and {@link tug}. */
export interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Milliseconds before the command is killed (default 60 s). */
  timeout?: number;
}

/** Runs a command to completion and captures its output. */
export async function run(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeout ?? 60_000);
  try {
    const out = await child.output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a command whose stdio outlives it (a container started by `create` or
 * `run -d` inherits it, as with runc): stdout and stderr go to files, and only
 * the command's exit is awaited.
 */
export async function runDetached(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: "tug-io-" });
  try {
    const script = 'out="$1"; err="$2"; shift 2; exec "$@" >"$out" 2>"$err" </dev/null';
    const child = new Deno.Command("/bin/sh", {
      args: ["-c", script, "sh", `${dir}/out`, `${dir}/err`, cmd, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeout ?? 60_000);
    const { code } = await child.status;
    clearTimeout(timer);
    return {
      code,
      stdout: await Deno.readTextFile(`${dir}/out`),
      stderr: await Deno.readTextFile(`${dir}/err`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs `dist/tug` with `args`. */
export function tug(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(TUG, args, options);
}

/** Creates a temporary directory, passes it to `fn`, and removes it afterwards (even on failure). */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  prefix = "tug-test-",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Paths of this process's cgroups: the v1 controller directories and the unified one. */
export function ownCgroups(): Map<string, string> {
  const result = new Map<string, string>();
  for (const line of Deno.readTextFileSync("/proc/self/cgroup").trim().split("\n")) {
    const [, controllers, path] = line.split(":", 3) as [string, string, string];
    if (controllers === "") {
      result.set("unified", join("/sys/fs/cgroup/unified", path));
    } else if (!controllers.startsWith("name=")) {
      for (const c of controllers.split(",")) result.set(c, join("/sys/fs/cgroup", c, path));
    }
  }
  return result;
}

/** A snapshot of what a test could leave behind, to compare before and after. */
export interface Leftovers {
  mounts: string[];
  cgroups: string[];
  children: number[];
  containers: number[];
}

/**
 * Cgroup directories a test in `dir` may have left in our v1 hierarchies:
 * every test names its cgroups after its directory (`tug-test/<dir>`,
 * `tug-test-<dir>`), so those are looked for, with any other new child of
 * our cgroups except the `tug-…` ones of other runs (another test run's
 * tests, a benchmark, a probe) that may share the machine.
 */
function childCgroupDirs(dir: string): string[] {
  const mine = basename(dir);
  const dirs: string[] = [];
  const subdirs = (path: string) => {
    try {
      return [...Deno.readDirSync(path)].filter((e) => e.isDirectory).map((e) => e.name);
    } catch {
      return []; // controller not mounted, or the directory went
    }
  };
  for (const [controller, path] of ownCgroups()) {
    if (controller === "unified") continue;
    for (const name of subdirs(path)) {
      if (name === "tug-test") {
        for (const sub of subdirs(join(path, name))) {
          if (sub.startsWith(mine)) dirs.push(join(path, name, sub));
        }
      } else if (name.includes(mine) || !name.startsWith("tug-")) {
        dirs.push(join(path, name));
      }
    }
  }
  return dirs.sort();
}

function childPids(): number[] {
  const self = String(Deno.pid);
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
      if (ppid === self) pids.push(Number(e.name));
    } catch {
      // gone
    }
  }
  return pids.sort();
}

/** Pids of processes whose root directory lies under `dir` (containers made from bundles there). */
export function processesRootedUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const root = Deno.readLinkSync(`/proc/${e.name}/root`);
      if (root === dir || root.startsWith(dir + "/")) pids.push(Number(e.name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids.sort();
}

/** Mounts whose mount point lies under `under`. */
export function mountsUnder(under: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p === under || p.startsWith(under + "/"));
}

/** Records mounts under `dir`, our child cgroups, our child processes and processes rooted under `dir`. */
export function leftovers(dir: string): Leftovers {
  return {
    mounts: mountsUnder(dir),
    cgroups: childCgroupDirs(dir),
    children: childPids(),
    containers: processesRootedUnder(dir),
  };
}

/** Fails when anything new appeared since `before` (mounts under dir, cgroups, child processes). */
export function assertNothingLeft(before: Leftovers, dir: string): void {
  const after = leftovers(dir);
  const extra = (a: (string | number)[], b: (string | number)[]) => a.filter((x) => !b.includes(x));
  const problems: string[] = [];
  const m = extra(after.mounts, before.mounts);
  const c = extra(after.cgroups, before.cgroups);
  const p = extra(after.children, before.children);
  if (m.length) problems.push(`mounts left: ${m.join(", ")}`);
  if (c.length) problems.push(`cgroups left: ${c.join(", ")}`);
  if (p.length) problems.push(`processes left: ${p.join(", ")}`);
  const k = extra(after.containers, before.containers);
  if (k.length) problems.push(`container processes left: ${k.join(", ")}`);
  if (problems.length) throw new Error(problems.join("; "));
}
