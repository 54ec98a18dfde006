/**
 * Process, mount and cgroup helpers for the benchmark harness: memory of a
 * process from `/proc/<pid>/smaps_rollup`, processes found by command line,
 * commands run and timed, and the clean-up of what a run leaves (processes
 * by pid, mounts under a directory, the cgroup subtrees it made).
 *
 * @module
 */

import { join } from "node:path";
import { mountsUnder } from "../tests/harness.ts";

export { mountsUnder, processesRootedUnder } from "../tests/harness.ts";

/**
 * Re-executes `script` (with this process's arguments) in a private mount
 * namespace where `/sys/fs/cgroup/unified` is unmounted, which crun 1.8 needs
 * on this machine's hybrid cgroups (every subject then sees the same layout),
 * and exits with its status. In the re-executed process (`TUG_BENCH_NS=1`) it
 * returns at once.
 */
export async function inPrivateMountNamespace(script: URL): Promise<void> {
  if (Deno.env.get("TUG_BENCH_NS") === "1") return;
  const sh =
    `mount --make-rprivate / && (umount /sys/fs/cgroup/unified 2>/dev/null || true) && exec "$@"`;
  const child = new Deno.Command("unshare", {
    args: [
      "-m",
      "sh",
      "-c",
      sh,
      "sh",
      Deno.execPath(),
      "run",
      "-A",
      "--v8-flags=--single-threaded",
      script.pathname,
      ...Deno.args,
    ],
    env: { TUG_BENCH_NS: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // A Ctrl-C reaches the child too: let it clean up, and wait for it.
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => {});
  const { code } = await child.status;
  Deno.exit(code);
}

const decoder = new TextDecoder();

/** A command's outcome. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link exec}. */
export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Milliseconds before the command is killed (default 120 s). */
  timeout?: number;
  /** Called with the command's pid once it is spawned. */
  onSpawn?: (pid: number) => void;
}

/** Runs a command to completion (stdin from /dev/null) and captures its output. */
export async function exec(
  cmd: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<Output> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
  }).spawn();
  options.onSpawn?.(child.pid);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }, options.timeout ?? 120_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a command and returns its stdout; throws with its stderr when it fails. */
export async function check(
  cmd: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<string> {
  const out = await exec(cmd, args, options);
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${(out.stderr || out.stdout).trim()}`,
    );
  }
  return out.stdout;
}

/** The path of program `cmd` found on PATH; throws when there is none. */
export async function which(cmd: string): Promise<string> {
  return (await check("sh", ["-c", `command -v ${cmd}`])).trim();
}

/** Wall time of a command in milliseconds; throws when it fails. */
export async function timed(
  cmd: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<number> {
  const start = performance.now();
  const out = await exec(cmd, args, options);
  const elapsed = performance.now() - start;
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${(out.stderr || out.stdout).trim()}`,
    );
  }
  return elapsed;
}

/** First line of `cmd --version` (or of the args given), or "" when it cannot run. */
export async function versionOf(
  cmd: string,
  args: readonly string[] = ["--version"],
): Promise<string> {
  try {
    const out = await exec(cmd, args, { timeout: 10_000 });
    return (out.stdout || out.stderr).trim().split("\n")[0]?.trim() ?? "";
  } catch {
    return "";
  }
}

/** Memory of one process, in bytes. */
export interface Memory {
  rss: number;
  /** Private_Clean + Private_Dirty: what the process alone holds. */
  private: number;
}

/**
 * Writes `path` back if dirty and drops it from the page cache (GNU dd's
 * `nocache`), so that it is next read through page faults, as a binary is
 * after a boot. A binary just written (copied, or installed by apt) is in
 * the cache as the write left it, and a process mapping it then had 3–4 MiB
 * more of Deno's binary resident here (Linux 6.18, ext4): the fault maps
 * what the write cached around each faulting page.
 */
export async function evictFromPageCache(path: string): Promise<void> {
  const out = await exec("dd", [
    `of=${path}`,
    "oflag=nocache",
    "conv=notrunc,fdatasync",
    "count=0",
    "status=none",
  ]);
  if (out.code !== 0) throw new Error(`dd: cannot drop ${path} from the page cache: ${out.stderr}`);
}

/** The `<field>: <n> kB` line of a `/proc/<pid>/` file, in KiB (0 when absent). */
function kibOf(text: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
}

/** RSS and private memory of `pid` from `/proc/<pid>/smaps_rollup`. */
export function memoryOf(pid: number): Memory {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  const kib = (field: string) => kibOf(text, field);
  return { rss: kib("Rss") * 1024, private: (kib("Private_Clean") + kib("Private_Dirty")) * 1024 };
}

/** The sum of {@link memoryOf} over `pids`. */
export function memoryOfAll(pids: readonly number[]): Memory {
  const total = { rss: 0, private: 0 };
  for (const pid of pids) {
    const m = memoryOf(pid);
    total.rss += m.rss;
    total.private += m.private;
  }
  return total;
}

/** Peaks seen by {@link sampleRss}, in KiB. */
export interface RssPeaks {
  /** The highest sum of the processes' RSS (VmRSS) read in one sample. */
  sum: number;
  /**
   * The highest sum of the processes' PSS (`/proc/<pid>/smaps_rollup`), read
   * every fourth sample: a page the processes share among themselves counts
   * once, so this is what the machine holds for them together.
   */
  pssSum: number;
  /** Each process's own peak (VmHWM) at the last sample that found it. */
  each: Map<number, number>;
}

/**
 * Samples the RSS of the processes `pids()` names every `everyMs`
 * milliseconds (their PSS every fourth time) until `stop()`; a process that
 * has exited counts for nothing in later samples.
 */
export function sampleRss(
  pids: () => readonly number[],
  everyMs = 5,
): { stop(): Promise<RssPeaks> } {
  const peaks: RssPeaks = { sum: 0, pssSum: 0, each: new Map() };
  let running = true;
  let samples = 0;
  const take = () => {
    let sum = 0, pss = 0;
    const withPss = samples++ % 4 === 0;
    for (const pid of pids()) {
      let status: string;
      try {
        status = Deno.readTextFileSync(`/proc/${pid}/status`);
        if (withPss) pss += kibOf(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`), "Pss");
      } catch {
        continue; // gone
      }
      sum += kibOf(status, "VmRSS");
      peaks.each.set(pid, Math.max(peaks.each.get(pid) ?? 0, kibOf(status, "VmHWM")));
    }
    peaks.sum = Math.max(peaks.sum, sum);
    peaks.pssSum = Math.max(peaks.pssSum, pss);
  };
  const sampling = (async () => {
    while (running) {
      take();
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await sampling;
      take();
      return peaks;
    },
  };
}

/** A process's command line, arguments joined by spaces ("" for a kernel thread or a gone process). */
export function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Pids of live processes whose command line satisfies `match`. */
export function findProcesses(match: (cmdline: string) => boolean): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    const line = cmdline(Number(e.name));
    if (line && match(line)) pids.push(Number(e.name));
  }
  return pids.sort((a, b) => a - b);
}

/** Pids of every descendant of `pids` (children, their children, …). */
export function descendants(pids: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e.name)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const queue = [...pids];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Sends `signal` to each pid, then SIGKILL to those still alive after `graceMs`; waits until they are gone. */
export async function killPids(
  pids: readonly number[],
  signal: Deno.Signal = "SIGTERM",
  graceMs = 5000,
): Promise<void> {
  const send = (pid: number, sig: Deno.Signal) => {
    try {
      Deno.kill(pid, sig);
    } catch {
      // gone already
    }
  };
  for (const pid of pids) send(pid, signal);
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(20);
  for (const pid of pids.filter(alive)) send(pid, "SIGKILL");
  const hard = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < hard) await sleep(20);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Detaches every mount under `dir`; returns those that could not be detached. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const deepestFirst = mountsUnder(dir).sort((a, b) => b.length - a.length);
  for (const m of deepestFirst) await exec("umount", ["-l", m]);
  return mountsUnder(dir);
}

interface Hierarchy {
  /** Mount point. */
  point: string;
  /** This process's cgroup in it, relative to the mount point. */
  own: string;
}

/** The mounted cgroup hierarchies (v1, named ones included, and v2) and this process's cgroup in each. */
export function ownCgroups(): Hierarchy[] {
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").flatMap((line) => {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) return [];
    const f = pre.split(" ");
    const [fstype, , opts] = post.split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") return [];
    return [{ root: f[3]!, point: f[4]!, v2: fstype === "cgroup2", opts: (opts ?? "").split(",") }];
  });
  const out: Hierarchy[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/cgroup").trim().split("\n")) {
    const [, controllers, path] = line.split(":", 3) as [string, string, string];
    const wanted = controllers === "" ? [] : controllers.split(",");
    const m = mounts.find((m) =>
      controllers === "" ? m.v2 : !m.v2 && wanted.every((c) => m.opts.includes(c))
    );
    if (!m) continue;
    const own = m.root === "/"
      ? path
      : path.startsWith(m.root)
      ? path.slice(m.root.length) || "/"
      : path;
    if (!out.some((h) => h.point === m.point)) out.push({ point: m.point, own });
  }
  return out;
}

/** A cgroup subtree for the benchmark's containers, nested under the harness's own cgroup in every hierarchy. */
export interface BenchCgroup {
  /** The absolute cgroup path (from each hierarchy's root) to create containers under. */
  path: string;
  /** Pids of every process in the subtree, in any hierarchy (the containers, whatever their mount namespace). */
  pids(): number[];
  /** Removes the subtree in every hierarchy, deepest first, and the ancestors it needed that did not exist before; returns what could not be removed. */
  remove(): Promise<string[]>;
}

/**
 * Picks `<own>/<name>` as an absolute cgroup path, where `<own>` is the
 * deepest of this process's cgroups (on this machine the memory one; the
 * others are `/`). An absolute path is what every runtime reads the same
 * way: crun 1.8 takes a relative cgroupsPath from the hierarchy's root, not
 * from its own cgroup as runc does, which would put its containers outside
 * the harness's memory cgroup.
 */
export function benchCgroup(name: string): BenchCgroup {
  const hierarchies = ownCgroups();
  const deepest = hierarchies.map((h) => h.own).sort((a, b) => b.length - a.length)[0] ?? "/";
  const path = join(deepest, name);
  // The directories on the way that exist now: the others are ours to remove afterwards.
  const ancestors: string[] = [];
  for (let p = deepest; p !== "/" && p !== "."; p = join(p, "..")) ancestors.push(p);
  const existed = new Set<string>();
  for (const h of hierarchies) {
    for (const a of ancestors) {
      try {
        Deno.statSync(join(h.point, a));
        existed.add(join(h.point, a));
      } catch {
        // created by a runtime later, if at all
      }
    }
  }
  const remove = async (): Promise<string[]> => {
    const left: string[] = [];
    const rmdir = async (dir: string): Promise<void> => {
      for (let i = 0; i < 50; i++) {
        try {
          await Deno.remove(dir);
          return;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) return;
          await sleep(20); // a cgroup whose last process just exited can stay busy for a moment
        }
      }
      left.push(dir);
    };
    const tree = async (dir: string): Promise<void> => {
      try {
        for (const e of Deno.readDirSync(dir)) if (e.isDirectory) await tree(join(dir, e.name));
      } catch {
        return; // not there
      }
      await rmdir(dir);
    };
    for (const h of hierarchies) {
      await tree(join(h.point, path));
      for (const a of ancestors) { // deepest first
        const dir = join(h.point, a);
        if (existed.has(dir)) continue;
        try {
          Deno.statSync(dir);
        } catch {
          continue;
        }
        await rmdir(dir);
      }
    }
    return left;
  };
  const pids = (): number[] => {
    const found = new Set<number>();
    const walk = (dir: string) => {
      try {
        for (const line of Deno.readTextFileSync(join(dir, "cgroup.procs")).split("\n")) {
          if (line.trim()) found.add(Number(line));
        }
        for (const e of Deno.readDirSync(dir)) if (e.isDirectory) walk(join(dir, e.name));
      } catch {
        // not there (yet), or gone
      }
    };
    for (const h of hierarchies) walk(join(h.point, path));
    return [...found].sort((a, b) => a - b);
  };
  return { path, pids, remove };
}
