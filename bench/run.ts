/**
 * `make bench`: every comparison of tug with containerd, runc and crun in one
 * run, and a report people can read.
 *
 * The harness re-executes itself in a private mount namespace where
 * `/sys/fs/cgroup/unified` is unmounted (crun 1.8 refuses this machine's
 * hybrid cgroups otherwise), so that tug, runc, crun and both containerd
 * instances all see the same cgroup layout. It then starts, under one
 * temporary directory:
 *
 * - a registry (Debian's docker-registry on 127.0.0.1) holding a busybox
 *   image made by umoci and pushed by skopeo (bench/_image.ts);
 * - two private containerd 1.6 instances, one running its tasks with runc,
 *   one with crun (bench/_containerd.ts);
 * - a private `dist/tug daemon` (bench/_daemon.ts);
 *
 * all with their container cgroups under one subtree of the harness's own
 * cgroup. Every comparison runs in rounds, one sample per subject back to
 * back, the order rotating, after warm-ups:
 *
 * 1. runtime-only start of a bundle: tug runtime / runc / crun (bench/runtime.ts);
 * 2. `run --rm IMAGE ID /bin/true`: tug / ctr + runc / ctr + crun;
 * 3. pull and unpack of the ~105 MB 5-layer image (bench/pull.ts);
 * 4. 50 concurrent detached `sleep` starts, until all run;
 * 5. idle daemon RSS;
 * 6. memory per running container (shims' RSS and private memory / count) with 10 and 50;
 * 7. stop-and-remove of 50 containers.
 *
 * A subject that fails is recorded as failed for that comparison and the
 * run goes on. Everything started is stopped by pid, mounts under the
 * temporary directory are detached, the cgroup subtree and the directory
 * are removed, also on Ctrl-C.
 *
 * Output: bench/results/<stamp>.json (every sample, machine facts,
 * versions), <stamp>.md (the report) and <stamp>.svg (the ratios).
 *
 * Usage: deno run -A --v8-flags=--single-threaded bench/run.ts [--quick] [--only ID,…] [--out DIR]
 *
 * @module
 */

import { join } from "node:path";
import { startRegistry, type TestRegistry } from "../tests/registry.ts";
import { type Containerd, startContainerd } from "./_containerd.ts";
import { snapshotTug, startTugDaemon, TUG, type TugDaemon } from "./_daemon.ts";
import { pushBusybox } from "./_image.ts";
import {
  alive,
  benchCgroup,
  check,
  descendants,
  evictFromPageCache,
  exec,
  findProcesses,
  inPrivateMountNamespace,
  killPids,
  memoryOf,
  memoryOfAll,
  type Output,
  processesRootedUnder,
  sleep,
  unmountUnder,
  versionOf,
  which,
} from "./_proc.ts";
import {
  type Comparison,
  comparison,
  finish,
  markdown,
  missingRatios,
  recordError,
} from "./_report.ts";
import { ratioChart } from "./_svg.ts";
import { type Floor, startFloor } from "./_floor.ts";
import { buildImage, copyCtrBinaries, LAYERS, runCtr, runTug, runTugDaemon } from "./pull.ts";
import { benchRuntime } from "./runtime.ts";

const QUICK = Deno.args.includes("--quick");

/** Rounds and warm-ups per comparison; `budgetS` caps the optional rounds. */
const PLAN = QUICK
  ? { runtime: [10, 2], e2e: [10, 2], pull: [3, 1], fleet: [2, 0], budgetS: 160 }
  : { runtime: [30, 3], e2e: [30, 3], pull: [10, 1], fleet: [6, 1], budgetS: 18 * 60 };
const FLEET = 50;
const SMALL_FLEET = 10;
/** Failures after which a subject is dropped from the rest of a comparison. */
const MAX_FAILURES = 2;

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const ONLY = flag("--only")?.split(",");
const OUT = flag("--out") ?? new URL("./results/", import.meta.url).pathname;
const started = performance.now();

function elapsedS(): number {
  return (performance.now() - started) / 1000;
}

function log(msg: string): void {
  console.error(`[${elapsedS().toFixed(0).padStart(4)} s] ${msg}`);
}

let interrupted = false;

/** Throws once a SIGINT or SIGTERM came: the clean-up runs, nothing new may start. */
function checkInterrupted(): void {
  if (interrupted) throw new Error("interrupted");
}

function wanted(id: string): boolean {
  return !ONLY || ONLY.some((o) => id.startsWith(o));
}

/** The subjects in the order of round `round`: rotated, so that each goes first as often. */
function rotate<T>(xs: readonly T[], round: number): T[] {
  checkInterrupted();
  const k = ((round % xs.length) + xs.length) % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function failedTooOften(c: Comparison, subject: string): boolean {
  return (c.errors[subject]?.count ?? 0) >= MAX_FAILURES;
}

function ok(out: Output, what: string): Output {
  if (out.code !== 0) {
    throw new Error(`${what} failed (${out.code}): ${(out.stderr || out.stdout).trim()}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The subjects that run containers from the image: tug's daemon and the two containerds.

interface Engine {
  /** Subject name in the report. */
  name: string;
  /** The daemon's pid (idle RSS). */
  daemonPid(): number;
  /** Runs the engine's CLI. */
  cli(args: readonly string[], timeout?: number): Promise<Output>;
  /** `run --rm REF ID /bin/true`. */
  runRm(id: string): Promise<Output>;
  /** `run -d REF ID sleep 1000`. */
  runDetached(id: string): Promise<Output>;
  /** Ids of the tasks that are running now. */
  running(): Promise<Set<string>>;
  /** kill -s KILL, delete (retried until the task has stopped), remove the container. */
  stopRemove(id: string): Promise<void>;
  /** Best-effort removal of containers and tasks, after a failure. */
  forceRemove(ids: readonly string[]): Promise<void>;
  /** The shim processes, and their descendants running the shim's own executable (none of the containers). */
  shimProcesses(): number[];
}

function exeOf(pid: number): string {
  try {
    return Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

function withHelpers(shims: () => number[]): () => number[] {
  return () => {
    const pids = shims();
    const exes = new Set(pids.map(exeOf));
    return [...pids, ...descendants(pids).filter((p) => exes.has(exeOf(p)))];
  };
}

async function retryDelete(cli: Engine["cli"], id: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = await cli(["tasks", "delete", id]);
    if (out.code === 0) return;
    if (Date.now() > deadline) ok(out, `tasks delete ${id}`);
    await sleep(10);
  }
}

function ctrEngine(name: string, cd: Containerd, ref: string): Engine {
  const cli = (args: readonly string[], timeout?: number) => cd.ctr(args, timeout);
  return {
    name,
    daemonPid: () => cd.pid,
    cli,
    runRm: (id) => cli(["run", "--rm", ...cd.runFlags(id), ref, id, "/bin/true"]),
    runDetached: (id) => cli(["run", "-d", ...cd.runFlags(id), ref, id, "sleep", "1000"]),
    running: async () => {
      const out = ok(await cli(["tasks", "list"]), "ctr tasks list");
      const ids = out.stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/))
        .filter((f) => f[2] === "RUNNING").map((f) => f[0]!);
      return new Set(ids);
    },
    stopRemove: async (id) => {
      ok(await cli(["tasks", "kill", "-s", "KILL", id]), `ctr tasks kill ${id}`);
      await retryDelete(cli, id);
      ok(await cli(["containers", "rm", id]), `ctr containers rm ${id}`);
    },
    forceRemove: async (ids) => {
      await Promise.all(ids.map(async (id) => {
        await cli(["tasks", "delete", "--force", id]);
        await cli(["containers", "rm", id]);
      }));
    },
    shimProcesses: withHelpers(cd.shimPids),
  };
}

/** Task ids and whether they run, from `tug tasks list --json` (whatever the exact shape). */
function runningFromJson(text: string): Set<string> {
  const data = JSON.parse(text);
  const list: Record<string, unknown>[] = Array.isArray(data)
    ? data
    : (Object.values(data).find(Array.isArray) as Record<string, unknown>[] | undefined) ?? [];
  const ids = new Set<string>();
  for (const t of list) {
    const id = t.id ?? t.containerId ?? t.container_id ?? t.container;
    const status = String(t.status ?? t.state ?? "");
    if (typeof id === "string" && /running/i.test(status)) ids.add(id);
  }
  return ids;
}

function tugEngine(name: string, d: TugDaemon, ref: string): Engine {
  const cli = (args: readonly string[], timeout?: number) => d.tug(args, timeout);
  return {
    name,
    daemonPid: () => d.pid,
    cli,
    runRm: (id) => cli(["run", "--rm", ref, id, "/bin/true"]),
    runDetached: (id) => cli(["run", "-d", ref, id, "sleep", "1000"]),
    running: async () =>
      runningFromJson(ok(await cli(["tasks", "list", "--json"]), "tug tasks list").stdout),
    stopRemove: async (id) => {
      ok(await cli(["tasks", "kill", "-s", "KILL", id]), `tug tasks kill ${id}`);
      await retryDelete(cli, id);
      ok(await cli(["containers", "rm", id]), `tug containers rm ${id}`);
    },
    forceRemove: async (ids) => {
      await Promise.all(ids.map(async (id) => {
        await cli(["tasks", "delete", "--force", id]);
        await cli(["containers", "rm", "--force", id]);
      }));
    },
    shimProcesses: withHelpers(d.shimPids),
  };
}

/** An engine whose set-up failed: every call fails with the set-up's error. */
function brokenEngine(name: string, err: unknown): Engine {
  const fail = () => Promise.reject(err);
  return {
    name,
    daemonPid: () => {
      throw err;
    },
    cli: fail,
    runRm: fail,
    runDetached: fail,
    running: fail,
    stopRemove: fail,
    forceRemove: () => Promise.resolve(),
    shimProcesses: () => {
      throw err;
    },
  };
}

// ---------------------------------------------------------------------------
// Comparisons

async function compareRuntime(): Promise<Comparison> {
  const c = comparison({
    id: "runtime-start",
    title: "runtime-only start of a bundle",
    unit: "ms",
    what: "Wall time of `<runtime> run` of a busybox bundle running /bin/true (bench/runtime.ts).",
    subjects: ["tug runtime", "runc", "crun"],
    anchors: ["runc", "crun"],
    notes: ["Each round runs tug, runc, crun in that order (bench/runtime.ts)."],
  });
  const [rounds, warmup] = PLAN.runtime as [number, number];
  c.warmupRounds = warmup;
  try {
    const r = await benchRuntime({ rounds, warmup });
    const names: Record<string, string> = { tug: "tug runtime", runc: "runc", crun: "crun" };
    for (let i = 0; i < rounds; i++) {
      const round: Record<string, number> = {};
      for (const [k, xs] of Object.entries(r.samples)) {
        if (xs[i] !== undefined) round[names[k] ?? k] = xs[i]!;
      }
      c.rounds.push(round);
    }
    for (const s of ["runc", "crun"]) {
      if (!r.samples[s]) recordError(c, s, new Error(`${s} is not installed`));
    }
  } catch (err) {
    recordError(c, "tug runtime", err);
  }
  return c;
}

async function compareRunRm(engines: Engine[]): Promise<Comparison> {
  const c = comparison({
    id: "run-rm",
    title: "run --rm /bin/true",
    unit: "ms",
    what:
      "Wall time of `run --rm IMAGE ID /bin/true` through each daemon's CLI (the image pulled already).",
    subjects: engines.map((e) => e.name),
    anchors: engines.slice(1).map((e) => e.name),
    target: { anchor: engines[1]!.name, ratio: 0.6 },
    notes: [
      "ctr runs without seccomp unless asked (`--seccomp`); tug applies its default profile, as a user gets them.",
    ],
  });
  const [rounds, warmup] = PLAN.e2e as [number, number];
  for (let i = -warmup; i < rounds; i++) {
    const round: Record<string, number> = {};
    for (const e of rotate(engines, i)) {
      if (failedTooOften(c, e.name)) continue;
      checkInterrupted();
      const id = `rm-${i + warmup}`;
      const t = performance.now();
      try {
        ok(await e.runRm(id), `${e.name} run --rm`);
        round[e.name] = performance.now() - t;
      } catch (err) {
        if (interrupted) throw err;
        recordError(c, e.name, err);
        await e.forceRemove([id]);
      }
    }
    (i < 0 ? c.warmups : c.rounds).push(round);
  }
  return c;
}

async function comparePull(
  dir: string,
  registry: TestRegistry,
  tug: { tug: string; cgroupParent: string },
): Promise<Comparison[]> {
  const time = comparison({
    id: "pull",
    title: "pull + unpack, 5 layers, ~105 MB",
    unit: "ms",
    what:
      "Pull and unpack of a 5-layer image of random data from the local registry into empty stores, " +
      "each through a fresh daemon: `tug images pull` and `ctr images pull` (wall time of the CLI).",
    subjects: ["tug images pull", "tug pull() in its own process", "ctr images pull"],
    anchors: ["ctr images pull"],
    target: { anchor: "ctr images pull", ratio: 0.7 },
    notes: [
      "tug pull() in its own process: `ImageService.pull()` timed inside a process that only pulls " +
      "(bench/_pull_child.ts, from source), the figure of earlier reports.",
    ],
  });
  const rss = comparison({
    id: "pull-rss",
    title: "peak RSS while pulling",
    unit: "MiB",
    what:
      "Peak RSS (VmHWM) of the daemon that pulled (a fresh tug daemon, a fresh containerd), and of " +
      "tug's process that only pulls.",
    subjects: ["tug daemon", "tug pulling process", "containerd"],
    anchors: ["containerd"],
  });
  const both = comparison({
    id: "pull-rss-cli",
    title: "peak RSS of CLI and daemon together while pulling",
    unit: "MiB",
    what:
      "The highest RSS of the pulling CLI and its daemon together (VmRSS of both, sampled every 5 ms), " +
      "and each CLI's peak: containerd 1.6's `ctr images pull` fetches the layers in its own process " +
      "and has containerd write and unpack them, while the tug daemon fetches and unpacks, its CLI " +
      "showing progress.",
    subjects: ["tug CLI + daemon", "ctr + containerd", "tug CLI", "ctr"],
    anchors: ["ctr + containerd"],
    target: { anchor: "ctr + containerd", ratio: 1 },
  });
  const pss = comparison({
    id: "pull-pss",
    title: "memory of CLI and daemon together while pulling (PSS)",
    unit: "MiB",
    what:
      "The highest sum of the pulling CLI's and its daemon's PSS (smaps_rollup, sampled every 20 ms): " +
      "a page the two share counts once, so this is the memory the machine gives the pull. tug's CLI " +
      "and daemon are one binary and share its pages; ctr and containerd are two. Each pair runs " +
      "from copies of its binaries that no other process maps (for tug, of Deno's binary and the " +
      "bundle), dropped from the page cache first; pages shared with the rest of the machine (the C " +
      "library) count a share each.",
    subjects: ["tug CLI + daemon", "ctr + containerd"],
    anchors: ["ctr + containerd"],
  });
  const [pairs, warmup] = PLAN.pull as [number, number];
  try {
    log("pull: building the 5-layer image with umoci");
    const layout = await buildImage(join(dir, "pull-image"));
    const ref = `${registry.host}/bench/pull:latest`;
    await check("skopeo", [
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${layout}:bench`,
      `docker://${ref}`,
    ]);
    await Deno.remove(join(dir, "pull-image"), { recursive: true });
    // Copies of their own for the pulling pairs: the PSS figure then shares
    // the binaries' pages between each CLI and its daemon only, never with
    // the daemons of the other comparisons.
    const pullTug = { ...tug, tug: await snapshotTug(join(dir, "pull-tug")) };
    const ctrBins = await copyCtrBinaries(join(dir, "pull-ctr"));
    const manifest = JSON.parse(
      await check("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]),
    );
    const bytes = manifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
    time.extra = { layers: LAYERS, compressedBytes: bytes };
    for (let i = -warmup; i < pairs; i++) {
      const run = join(dir, `pull-${i + warmup}`);
      await Deno.mkdir(run);
      const t: Record<string, number> = {}, m: Record<string, number> = {};
      const b: Record<string, number> = {}, p: Record<string, number> = {};
      for (const who of rotate(["tug", "ctr", "child"], i)) {
        try {
          if (who === "tug") {
            const r = await runTugDaemon(run, ref, pullTug);
            t["tug images pull"] = r.ms;
            m["tug daemon"] = r.rssKiB / 1024;
            b["tug CLI + daemon"] = r.bothKiB / 1024;
            b["tug CLI"] = r.cliKiB / 1024;
            p["tug CLI + daemon"] = r.pssKiB / 1024;
          } else if (who === "child") {
            const r = await runTug(run, ref);
            t["tug pull() in its own process"] = r.ms;
            m["tug pulling process"] = r.rssKiB / 1024;
          } else {
            const r = await runCtr(run, ref, ctrBins);
            t["ctr images pull"] = r.ms;
            m["containerd"] = r.rssKiB / 1024;
            b["ctr + containerd"] = r.bothKiB / 1024;
            b["ctr"] = r.cliKiB / 1024;
            p["ctr + containerd"] = r.pssKiB / 1024;
          }
        } catch (err) {
          const subject = { tug: "tug images pull", child: "tug pull() in its own process" }[who];
          recordError(time, subject ?? "ctr images pull", err);
        }
      }
      await unmountUnder(run);
      await Deno.remove(run, { recursive: true });
      (i < 0 ? time.warmups : time.rounds).push(t);
      (i < 0 ? rss.warmups : rss.rounds).push(m);
      (i < 0 ? both.warmups : both.rounds).push(b);
      (i < 0 ? pss.warmups : pss.rounds).push(p);
      log(`pull ${i < 0 ? "warm-up" : `pair ${i + 1}/${pairs}`}: ${JSON.stringify(roundText(t))}`);
    }
  } catch (err) {
    recordError(time, "tug images pull", err);
    recordError(time, "ctr images pull", err);
  }
  return [time, rss, both, pss];
}

function roundText(r: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.toFixed(1)]));
}

/** The fleet comparisons, filled round by round. */
interface Fleet {
  start: Comparison;
  stop: Comparison;
  memory: Record<"rss10" | "private10" | "rss50" | "private50", Comparison>;
  idle: Comparison;
  /** The floor server sampled beside the daemons at idle, once started. */
  floor?: Floor;
}

function fleetComparisons(engines: Engine[], daemons: string[]): Fleet {
  const names = engines.map((e) => e.name);
  const memory = (n: number, kind: "rss" | "private") =>
    comparison({
      id: `memory-${kind}-${n}`,
      title: `${kind === "rss" ? "RSS" : "private memory"} per container, ${n} running`,
      unit: "MiB",
      what:
        `${
          kind === "rss" ? "Rss" : "Private_Clean + Private_Dirty"
        } (/proc/<pid>/smaps_rollup) of the shim ` +
        `processes (tug shims; containerd-shim-runc-v2), summed and divided by the ${n} running \`sleep\` containers, ` +
        `${SETTLED_SAMPLE_MS / 1000} s after they were started (the sample at ${
          EARLY_SAMPLE_MS / 1000
        } s is in extra.earlyMiB).`,
      subjects: names,
      anchors: names.slice(1),
      notes: kind === "private"
        ? [
          "Target (issue 5): under 2 MiB private per container. Container processes (busybox sleep) are not counted.",
        ]
        : [],
    });
  return {
    start: comparison({
      id: "start-50",
      title: `${FLEET} concurrent detached starts`,
      unit: "ms",
      what:
        `Time from launching ${FLEET} \`run -d IMAGE ID sleep 1000\` at once until all of them run.`,
      subjects: names,
      anchors: names.slice(1),
      target: { anchor: names[1]!, ratio: 1 },
    }),
    stop: comparison({
      id: "stop-rm-50",
      title: `stop and remove ${FLEET} containers`,
      unit: "ms",
      what:
        `Time to \`tasks kill -s KILL\`, \`tasks delete\` (retried until stopped) and \`containers rm\` ` +
        `${FLEET} running containers, all at once.`,
      subjects: names,
      anchors: names.slice(1),
    }),
    memory: {
      rss10: memory(SMALL_FLEET, "rss"),
      private10: memory(SMALL_FLEET, "private"),
      rss50: memory(FLEET, "rss"),
      private50: memory(FLEET, "private"),
    },
    idle: comparison({
      id: "idle-rss",
      title: "idle daemon RSS",
      unit: "MiB",
      what:
        "RSS of each daemon with the busybox image stored and no container, sampled at idle points of the run " +
        "(5 s after set-up, after the run --rm rounds and after each fleet round). " +
        `${FLOOR}: a Deno server of the daemon's parts doing the kinds of work it does (hono on a unix ` +
        "socket, node:sqlite, an FFI call, an optimized loop, one fetch; bench/_floor_server.ts), " +
        "with none of tug's code but its idle collection.",
      subjects: [...daemons, FLOOR],
      anchors: daemons.slice(1),
      target: { anchor: daemons[1]!, ratio: 1 },
    }),
  };
}

/**
 * When the shims' memory is sampled after a fleet has started: the figure at
 * SETTLED_SAMPLE_MS, when the work of the starts has settled (tug's shim
 * collects its garbage after 1 s of quiet; containerd starts one shim per
 * container), and the one at EARLY_SAMPLE_MS, mid-settle, kept in the
 * results' `extra.earlyMiB`.
 */
const EARLY_SAMPLE_MS = 500;
const SETTLED_SAMPLE_MS = 2500;

/** After the work before it has settled: each daemon's deferred work (metadata GC, tug's collection after a burst, containerd's GC) runs within ~3 s. */
const IDLE_SETTLE_MS = 5000;

/** The subject of the floor server's idle RSS (bench/_floor_server.ts). */
const FLOOR = "Deno floor (no tug code)";

async function sampleIdle(fleet: Fleet, engines: Engine[], daemons: string[]): Promise<void> {
  await sleep(IDLE_SETTLE_MS);
  const floor = fleet.floor;
  const round: Record<string, number> = {};
  const subjects = [
    ...engines.map((e, i) => ({ name: daemons[i]!, pid: () => e.daemonPid() })),
    ...(floor ? [{ name: FLOOR, pid: () => floor.pid }] : []),
  ];
  for (const { name, pid } of subjects) {
    try {
      round[name] = memoryOf(pid()).rss / 2 ** 20;
    } catch (err) {
      recordError(fleet.idle, name, err);
    }
  }
  fleet.idle.rounds.push(round);
}

/** Starts `n` containers of `e` at once; returns the time until all run (throws when some never do). */
async function startFleet(e: Engine, ids: string[]): Promise<number> {
  checkInterrupted();
  const t = performance.now();
  const outs = await Promise.all(ids.map((id) => e.runDetached(id)));
  let done = performance.now() - t;
  const failed = outs.map((o, i) => [o, ids[i]] as const).filter(([o]) => o.code !== 0);
  if (failed.length) {
    const [o, id] = failed[0]!;
    throw new Error(
      `${failed.length} of ${ids.length} starts failed; ${id}: ${(o.stderr || o.stdout).trim()}`,
    );
  }
  for (let polls = 0;; polls++) {
    const running = await e.running();
    if (ids.every((id) => running.has(id))) return done;
    if (performance.now() - t > 60_000) {
      throw new Error(`${ids.filter((id) => !running.has(id)).length} of ${ids.length} never ran`);
    }
    await sleep(20);
    done = performance.now() - t;
  }
}

async function fleetRound(fleet: Fleet, e: Engine, round: number, warmup: boolean): Promise<void> {
  const mem = fleet.memory;
  for (const n of [SMALL_FLEET, FLEET]) {
    const ids = Array.from({ length: n }, (_, i) => `f${n}-${round}-${i}`);
    const big = n === FLEET;
    try {
      const ms = await startFleet(e, ids);
      if (big && !warmup) fleet.start.rounds.at(-1)![e.name] = ms;
      await sleep(EARLY_SAMPLE_MS);
      const early = memoryOfAll(e.shimProcesses());
      await sleep(SETTLED_SAMPLE_MS - EARLY_SAMPLE_MS);
      const procs = e.shimProcesses();
      const m = memoryOfAll(procs);
      const [rssC, privateC] = big ? [mem.rss50, mem.private50] : [mem.rss10, mem.private10];
      for (const [c, at0_5s] of [[rssC, early.rss], [privateC, early.private]] as const) {
        const extra = c.extra ??= { shimProcesses: {}, earlyMiB: {} };
        ((extra.shimProcesses as Record<string, number[]>)[e.name] ??= []).push(procs.length);
        if (!warmup) {
          ((extra.earlyMiB as Record<string, number[]>)[e.name] ??= []).push(
            Math.round(at0_5s / n / 2 ** 20 * 100) / 100,
          );
        }
      }
      if (!warmup) {
        (big ? mem.rss50 : mem.rss10).rounds.at(-1)![e.name] = m.rss / n / 2 ** 20;
        (big ? mem.private50 : mem.private10).rounds.at(-1)![e.name] = m.private / n / 2 ** 20;
      }
      const t = performance.now();
      await Promise.all(ids.map((id) => e.stopRemove(id)));
      if (big && !warmup) fleet.stop.rounds.at(-1)![e.name] = performance.now() - t;
      log(
        `fleet ${warmup ? "warm-up" : `round ${round}`}: ${e.name}, ${n} containers: start ${
          ms.toFixed(0)
        } ms, ` +
          `${procs.length} shim processes ${(m.rss / 2 ** 20).toFixed(1)} MiB RSS, ${
            (m.private / 2 ** 20).toFixed(1)
          } MiB private (at ${EARLY_SAMPLE_MS} ms: ${(early.rss / 2 ** 20).toFixed(1)} / ${
            (early.private / 2 ** 20).toFixed(1)
          })`,
      );
    } catch (err) {
      if (interrupted) throw err;
      for (const c of [fleet.start, fleet.stop, ...Object.values(mem)]) recordError(c, e.name, err);
      log(
        `fleet: ${e.name}, ${n} containers failed: ${
          err instanceof Error ? err.message.split("\n")[0] : err
        }`,
      );
      await e.forceRemove(ids);
      return;
    }
  }
}

async function compareFleet(fleet: Fleet, engines: Engine[], daemons: string[]): Promise<void> {
  const [rounds, warmup] = PLAN.fleet as [number, number];
  for (let i = -warmup; i < rounds; i++) {
    if (i >= 1 && elapsedS() > PLAN.budgetS * 0.85) {
      log(`fleet: time budget reached after ${i} rounds`);
      break;
    }
    const all = [fleet.start, fleet.stop, ...Object.values(fleet.memory)];
    for (const c of all) (i < 0 ? c.warmups : c.rounds).push({});
    for (const e of rotate(engines, i)) {
      if (failedTooOften(fleet.start, e.name)) continue;
      await fleetRound(fleet, e, i + warmup, i < 0);
    }
    await sampleIdle(fleet, engines, daemons);
  }
}

// ---------------------------------------------------------------------------
// Machine facts and versions

async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const os = await Deno.readTextFile("/etc/os-release").catch(() => "");
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? Deno.build.arch,
    cores: (cpuinfo.match(/^processor\s*:/gm) ?? []).length || navigator.hardwareConcurrency,
    memoryGiB: Number((Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 2 ** 20).toFixed(1)),
    kernel: Deno.osRelease(),
    os: /^PRETTY_NAME="?([^"\n]+)"?/m.exec(os)?.[1] ?? "",
    arch: Deno.build.arch,
    loadavg: (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" "),
    cgroups: "hybrid v1 (unified hierarchy unmounted in the benchmark's mount namespace)",
  };
}

/** The commit the tree is at, and whether it has uncommitted changes (the bundle is built from the tree). */
async function gitDescribe(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const head = await exec("git", ["-C", root, "rev-parse", "--short", "HEAD"]).catch(() =>
    undefined
  );
  const dirty = await exec("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"])
    .catch(() => undefined);
  if (!head || head.code !== 0) return "no git";
  return `git ${head.stdout.trim()}${dirty?.stdout.trim() ? ", uncommitted changes" : ""}`;
}

async function versions(tugPath: string): Promise<Record<string, string>> {
  const tug = await exec(tugPath, ["version"], { timeout: 20_000 }).catch(() => undefined);
  return {
    tug: `${/Version:\s*(\S+)/.exec(tug?.stdout ?? "")?.[1] ?? "?"} (${await gitDescribe()})`,
    containerd: (await versionOf("containerd")).replace(
      /^containerd github.com\/containerd\/containerd /,
      "",
    ),
    ctr: (await versionOf("ctr")).replace(/^ctr github.com\/containerd\/containerd /, ""),
    runc: (await versionOf("runc")).replace(/^runc version /, ""),
    crun: (await versionOf("crun")).replace(/^crun version /, ""),
    deno: Deno.version.deno,
    "docker-registry": (await versionOf("/usr/bin/docker-registry")).replace(/^\S+ \S+ /, ""),
  };
}

// ---------------------------------------------------------------------------
// Main

/** The anchors' programs that the runs start. */
const ANCHOR_BINARIES = ["containerd", "ctr", "containerd-shim-runc-v2", "runc", "crun"];

async function main(): Promise<number> {
  await inPrivateMountNamespace(new URL(import.meta.url));
  log(`${QUICK ? "quick" : "full"} run; results in ${OUT}`);
  const date = new Date();
  const tmp = await Deno.makeTempDir({ prefix: "tug-bench-" });
  const cgroup = benchCgroup(`tug-bench-${Deno.pid}`);
  const runContainerdExisted = await Deno.stat("/run/containerd").then(() => true, () => false);
  const cleanups: { what: string; fn: () => Promise<unknown> }[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      for (const { what, fn } of cleanups.reverse()) {
        try {
          await fn();
        } catch (err) {
          console.error(`clean-up: ${what}: ${err instanceof Error ? err.message : err}`);
        }
      }
    })();
  cleanups.push({
    what: "remove the temporary directory",
    fn: () => Deno.remove(tmp, { recursive: true }),
  });
  cleanups.push({
    what: "remove containerd's socket directory",
    fn: async () => {
      // The runc v2 shims put their sockets in /run/containerd/s whatever the config says.
      if (runContainerdExisted) return;
      for (const d of ["/run/containerd/s", "/run/containerd"]) {
        await Deno.remove(d).catch(() => {});
      }
    },
  });
  cleanups.push({
    what: "remove the cgroups",
    fn: async () => {
      const left = await cgroup.remove();
      if (left.length) throw new Error(`cgroups left: ${left.join(", ")}`);
    },
  });
  cleanups.push({
    what: "unmount",
    fn: async () => {
      const left = await unmountUnder(tmp);
      if (left.length) throw new Error(`mounts left: ${left.join(", ")}`);
    },
  });
  cleanups.push({
    what: "kill leftover processes",
    fn: async () => {
      // Whatever still names the directory (a daemon interrupted while starting, its shims) or runs in it.
      const left = [
        ...findProcesses((c) => c.includes(`${tmp}/`)),
        ...processesRootedUnder(tmp),
        ...cgroup.pids(),
      ];
      if (left.length) {
        log(`killing ${left.length} leftover processes: ${left.join(" ")}`);
        await killPids([...descendants(left), ...left], "SIGKILL");
      }
    },
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      log(`${sig}: cleaning up`);
      interrupted = true;
      cleanup().finally(() => Deno.exit(130));
    });
  }

  const comparisons: Comparison[] = [];
  let facts:
    | { machine: Record<string, string | number>; versions: Record<string, string> }
    | undefined;
  try {
    // One build of tug for the whole run (bench/runtime.ts runs dist/tug itself).
    const tug = await snapshotTug(join(tmp, "dist"));
    // The anchors' binaries start from the page cache state tug's copy has.
    for (const bin of ANCHOR_BINARIES) {
      await evictFromPageCache(await Deno.realPath(await which(bin)));
    }
    facts = { machine: await machine(), versions: await versions(tug) };
    const registry = await startRegistry();
    cleanups.push({ what: "stop the registry", fn: () => registry.stop() });
    const ref = await pushBusybox(tmp, registry.host);
    log(`registry ${registry.host} (pid ${registry.pid}), image ${ref}`);

    const containerds: Containerd[] = [];
    for (const runtime of ["runc", "crun"] as const) {
      const cd = await startContainerd(join(tmp, `containerd-${runtime}`), {
        runtime,
        runtimeBinary: await which(runtime),
        cgroupParent: `${cgroup.path}/containerd-${runtime}`,
      });
      cleanups.push({ what: `stop containerd (${runtime})`, fn: () => cd.stop() });
      ok(await cd.ctr(["images", "pull", "--plain-http", ref]), "ctr images pull");
      containerds.push(cd);
      log(`containerd with ${runtime}: pid ${cd.pid}`);
    }
    let tugEng: Engine;
    try {
      const daemon = await startTugDaemon(join(tmp, "tug"), {
        tug,
        cgroupParent: `${cgroup.path}/tug`,
      });
      cleanups.push({ what: "stop the tug daemon", fn: () => daemon.stop() });
      ok(await daemon.tug(["images", "pull", "--plain-http", ref]), "tug images pull");
      tugEng = tugEngine("tug", daemon, ref);
      log(`tug daemon: pid ${daemon.pid}`);
    } catch (err) {
      log(`tug daemon: ${err instanceof Error ? err.message : err}`);
      tugEng = brokenEngine("tug", err);
    }
    const engines = [
      tugEng,
      ctrEngine("ctr + runc", containerds[0]!, ref),
      ctrEngine("ctr + crun", containerds[1]!, ref),
    ];
    const daemons = ["tug daemon", "containerd (runc)", "containerd (crun)"];
    const fleet = fleetComparisons(engines, daemons);
    try {
      const floor = await startFloor(join(tmp, "floor"), `http://${registry.host}/v2/`);
      cleanups.push({ what: "stop the floor server", fn: () => floor.stop() });
      fleet.floor = floor;
    } catch (err) {
      recordError(fleet.idle, FLOOR, err);
    }
    await sampleIdle(fleet, engines, daemons);

    if (wanted("runtime")) {
      log("runtime-only start: tug runtime / runc / crun");
      comparisons.push(await compareRuntime());
    }
    if (wanted("run-rm")) {
      log("run --rm /bin/true: tug / ctr + runc / ctr + crun");
      comparisons.push(await compareRunRm(engines));
      await sampleIdle(fleet, engines, daemons);
    }
    if (wanted("pull")) {
      log("pull + unpack of the 5-layer image: tug / ctr");
      comparisons.push(
        ...await comparePull(tmp, registry, { tug, cgroupParent: `${cgroup.path}/tug-pull` }),
      );
    }
    if (wanted("fleet")) {
      log(`fleets of ${SMALL_FLEET} and ${FLEET} detached sleep containers`);
      await compareFleet(fleet, engines, daemons);
      comparisons.push(
        fleet.start,
        fleet.stop,
        fleet.memory.rss10,
        fleet.memory.private10,
        fleet.memory.rss50,
        fleet.memory.private50,
      );
    }
    comparisons.push(fleet.idle);
    // Stop before the versions and the report, so nothing of ours runs while they are written.
    for (const c of containerds) if (alive(c.pid)) await c.removeAll().catch(() => {});
  } catch (err) {
    if (interrupted) log("interrupted: nothing written");
    else console.error(`bench: ${err instanceof Error ? err.stack : err}`);
  } finally {
    await cleanup();
  }
  if (interrupted) return 130;

  const results = finish({
    date: date.toISOString(),
    mode: QUICK ? "quick" : "full",
    durationS: elapsedS(),
    machine: {
      ...(facts?.machine ?? await machine()),
      loadavgEnd: (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" "),
    },
    versions: facts?.versions ?? await versions(TUG),
    comparisons,
  });
  await Deno.mkdir(OUT, { recursive: true });
  const stamp = `${date.toISOString().slice(0, 16).replace(":", "")}${QUICK ? "-quick" : ""}`;
  const svg = `${stamp}.svg`;
  await Deno.writeTextFile(join(OUT, `${stamp}.json`), JSON.stringify(results, null, 2) + "\n");
  await Deno.writeTextFile(
    join(OUT, svg),
    ratioChart(results.ratios, { missing: missingRatios(results) }),
  );
  const md = markdown(results, svg);
  await Deno.writeTextFile(join(OUT, `${stamp}.md`), md + "\n");
  console.log(md);
  log(`wrote ${join(OUT, stamp)}.{json,md,svg}`);
  return comparisons.length ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
