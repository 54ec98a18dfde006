/**
 * Benchmark: pull and unpack of a 5-layer image of about 105 MB of
 * incompressible data from a local registry (Debian's docker-registry on
 * 127.0.0.1), tug against `ctr images pull --plain-http` on a private
 * containerd 1.6 (Debian's package; its own root, state and socket in a
 * temporary directory; started and stopped by pid). Run in pairs, the order
 * alternating; reports the medians, their ratio, and the peak RSS of tug's
 * pulling process against containerd's.
 *
 * Every run starts from empty stores (a fresh tug root; a fresh containerd
 * root and daemon), so every byte is fetched and unpacked. tug's time is the
 * `pull()` call in its process (what the daemon will spend); its process
 * wall time, Deno's start-up included, is reported too. containerd's time is
 * the wall time of `ctr images pull`.
 *
 * Usage: deno run -A --v8-flags=--single-threaded bench/pull.ts [--pairs N]
 *   [--tug-v8-flags FLAGS]
 *
 * tug's process gets the V8 flags tug runs with (`--single-threaded`, as
 * the Makefile's RUNFLAGS), plus `--tug-v8-flags` (comma-separated) when
 * given, to measure a flag before it goes into RUNFLAGS.
 * (bench/run.ts runs the same comparison through the exported functions).
 *
 * @module
 */

import { join } from "node:path";
import { RUN_FLAGS } from "../self.ts";
import { startRegistry } from "../tests/registry.ts";
import { startTugDaemon, TUG } from "./_daemon.ts";
import { evictFromPageCache, exec, sampleRss, which } from "./_proc.ts";

const DENO = new URL("../tools/deno", import.meta.url).pathname;
const CHILD = new URL("./_pull_child.ts", import.meta.url).pathname;
const RESULTS = new URL("./results/", import.meta.url).pathname;
export const LAYERS = 5;
const LAYER_BYTES = 21 * 1000 * 1000;

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const d = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${d.decode(out.stderr)}`);
  }
  return d.decode(out.stdout);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function peakRssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
}

/**
 * Builds the benchmark image with umoci: 5 layers, each one file of random
 * bytes, each made by `umoci repack` (umoci 0.4.7's `insert` writes layer
 * tars without the final padding and end-of-archive blocks, which GNU tar
 * and tug refuse).
 */
export async function buildImage(dir: string): Promise<string> {
  const layout = join(dir, "layout");
  const bundle = join(dir, "bundle");
  await sh("umoci", ["init", "--layout", layout]);
  await sh("umoci", ["new", "--image", `${layout}:bench`]);
  for (let i = 0; i < LAYERS; i++) {
    await sh("umoci", ["unpack", "--image", `${layout}:bench`, bundle]);
    const data = new Uint8Array(LAYER_BYTES);
    for (let at = 0; at < data.length; at += 65536) {
      crypto.getRandomValues(data.subarray(at, Math.min(data.length, at + 65536)));
    }
    await Deno.mkdir(join(bundle, "rootfs", "data"), { recursive: true });
    await Deno.writeFile(join(bundle, "rootfs", "data", `layer-${i}.bin`), data);
    await sh("umoci", ["repack", "--image", `${layout}:bench`, bundle]);
    await sh("rm", ["-rf", bundle]);
  }
  return layout;
}

interface Containerd {
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

/** The paths of the containerd and ctr that a pull runs. */
export interface CtrBinaries {
  containerd: string;
  ctr: string;
}

/**
 * Copies containerd and ctr into `dir`, each dropped from the page cache:
 * no other process of the run maps the copies, so a PSS shares their pages
 * between the pulling pair only, as tug's own copy (snapshotTug) does for
 * tug's CLI and daemon.
 */
export async function copyCtrBinaries(dir: string): Promise<CtrBinaries> {
  await Deno.mkdir(dir, { recursive: true });
  const copies = { containerd: join(dir, "containerd"), ctr: join(dir, "ctr") };
  for (const [name, to] of Object.entries(copies)) {
    await Deno.copyFile(await Deno.realPath(await which(name)), to);
    await Deno.chmod(to, 0o755);
    await evictFromPageCache(to);
  }
  return copies;
}

async function startContainerd(
  dir: string,
  bins: CtrBinaries = { containerd: "containerd", ctr: "ctr" },
): Promise<Containerd> {
  await Deno.mkdir(dir, { recursive: true });
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  await Deno.writeTextFile(
    config,
    [
      "version = 2",
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      "[debug]",
      '  address = ""',
      "[metrics]",
      '  address = ""',
      "",
    ].join("\n"),
  );
  const log = await Deno.open(join(dir, "containerd.log"), { write: true, create: true });
  const child = new Deno.Command(bins.containerd, {
    args: ["--config", config],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  child.stderr.pipeTo(log.writable).catch(() => {});
  for (let i = 0; i < 200; i++) {
    const r = await new Deno.Command(bins.ctr, {
      args: ["--address", socket, "version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    if (r.code === 0) break;
    if (i === 199) throw new Error(`containerd did not start: see ${join(dir, "containerd.log")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid,
    socket,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone already
      }
      await child.status;
    },
  };
}

/** The V8 flags tug runs with (self.ts's RUN_FLAGS), which the pulling process gets too. */
const TUG_V8_FLAGS: string[] = RUN_FLAGS.filter((f) => f.startsWith("--v8-flags="))
  .flatMap((f) => f.slice("--v8-flags=".length).split(","));

export async function runTug(dir: string, ref: string, extraV8Flags: string[] = []) {
  const start = performance.now();
  const out = await sh(DENO, [
    "run",
    "-A",
    "--no-check",
    `--v8-flags=${[...TUG_V8_FLAGS, ...extraV8Flags].join(",")}`,
    CHILD,
    join(dir, "tug"),
    ref,
  ]);
  const wallMs = performance.now() - start;
  const r = JSON.parse(out.trim().split("\n").pop()!);
  if (r.layers !== LAYERS) throw new Error(`tug unpacked ${r.layers} layers, expected ${LAYERS}`);
  return { ms: r.pullMs as number, processMs: wallMs, rssKiB: r.peakRssKiB as number };
}

/** What one daemon-to-daemon pull measured. */
export interface DaemonPull {
  /** The CLI's wall time. */
  ms: number;
  /** The daemon's peak RSS (VmHWM), start-up included. */
  rssKiB: number;
  /** The CLI's peak RSS. */
  cliKiB: number;
  /** The highest RSS of the CLI and the daemon together, sampled every 5 ms. */
  bothKiB: number;
  /** The highest PSS of the CLI and the daemon together, sampled every 20 ms. */
  pssKiB: number;
}

/**
 * Runs a pull CLI against a daemon, sampling the RSS of both: containerd
 * 1.6's `ctr images pull` fetches the layers in its own process and has the
 * daemon write them into its store and unpack them, while tug's daemon does
 * all of it, so the daemons alone do not compare the same work.
 */
async function pullSampled(cmd: string, args: string[], daemonPid: number): Promise<DaemonPull> {
  let cli: number | undefined;
  const sampler = sampleRss(() => cli === undefined ? [daemonPid] : [daemonPid, cli]);
  const start = performance.now();
  const out = await exec(cmd, args, { onSpawn: (pid) => cli = pid });
  const ms = performance.now() - start;
  const peaks = await sampler.stop();
  if (out.code !== 0) throw new Error(`${args.join(" ")} failed (${out.code}): ${out.stderr}`);
  return {
    ms,
    rssKiB: peakRssKiB(daemonPid),
    cliKiB: peaks.each.get(cli!) ?? 0,
    bothKiB: peaks.sum,
    pssKiB: peaks.pssSum,
  };
}

/**
 * tug as a user meets it, the same way as containerd's side: a fresh daemon
 * (bench/_daemon.ts, the `tug` given) and `tug images pull --plain-http`.
 */
export async function runTugDaemon(
  dir: string,
  ref: string,
  options: { tug?: string; cgroupParent: string },
): Promise<DaemonPull> {
  const daemon = await startTugDaemon(join(dir, "tugd"), options);
  try {
    const r = await pullSampled(options.tug ?? TUG, [
      "-a",
      daemon.address,
      "images",
      "pull",
      "--plain-http",
      ref,
    ], daemon.pid);
    const snapshots = await daemon.tug(["snapshots", "ls"]);
    if (snapshots.stdout.trim().split("\n").length - 1 !== LAYERS) {
      throw new Error(`tug unpacked:\n${snapshots.stdout}`);
    }
    return r;
  } finally {
    await daemon.stop();
  }
}

/** containerd's side: a fresh containerd and `ctr images pull --plain-http`. */
export async function runCtr(
  dir: string,
  ref: string,
  bins: CtrBinaries = { containerd: "containerd", ctr: "ctr" },
): Promise<DaemonPull> {
  const cd = await startContainerd(join(dir, "containerd"), bins);
  try {
    const r = await pullSampled(bins.ctr, [
      "--address",
      cd.socket,
      "images",
      "pull",
      "--plain-http",
      ref,
    ], cd.pid);
    const snapshots = await sh(bins.ctr, ["--address", cd.socket, "snapshots", "ls"]);
    if (snapshots.trim().split("\n").length - 1 !== LAYERS) {
      throw new Error(`containerd unpacked:\n${snapshots}`);
    }
    return r;
  } finally {
    await cd.stop();
  }
}

// Run as a script; bench/run.ts imports the functions above.
if (import.meta.main) {
  const pairs = arg("--pairs", 7);
  const flagsAt = Deno.args.indexOf("--tug-v8-flags");
  const extraV8Flags = flagsAt >= 0
    ? (Deno.args[flagsAt + 1] ?? "").split(",").filter(Boolean)
    : [];
  const dir = await Deno.makeTempDir({ prefix: "tug-bench-pull-" });
  const registry = await startRegistry();
  try {
    console.error("building the image (5 layers of 21 MB random data) ...");
    const layout = await buildImage(dir);
    const ref = `${registry.host}/bench/pull:latest`;
    await sh("skopeo", [
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${layout}:bench`,
      `docker://${ref}`,
    ]);
    const manifest = JSON.parse(
      await sh("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]),
    );
    const compressed = manifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
    console.error(
      `image ${ref}: ${manifest.layers.length} layers, ${
        (compressed / 1e6).toFixed(1)
      } MB compressed`,
    );

    const tug: Array<{ ms: number; processMs: number; rssKiB: number }> = [];
    const ctr: Array<{ ms: number; rssKiB: number }> = [];
    // One warm-up of each (page cache, Deno's module cache), not counted.
    for (let i = -1; i < pairs; i++) {
      const run = join(dir, `run-${i + 1}`);
      await Deno.mkdir(run);
      const order = i % 2 === 0 ? ["tug", "ctr"] : ["ctr", "tug"];
      for (const who of order) {
        if (who === "tug") {
          const r = await runTug(run, ref, extraV8Flags);
          if (i >= 0) tug.push(r);
          console.error(
            `${i < 0 ? "warm-up" : `pair ${i + 1}`}: tug ${r.ms.toFixed(0)} ms (process ${
              r.processMs.toFixed(0)
            } ms), peak RSS ${(r.rssKiB / 1024).toFixed(1)} MiB`,
          );
        } else {
          const r = await runCtr(run, ref);
          if (i >= 0) ctr.push(r);
          console.error(
            `${i < 0 ? "warm-up" : `pair ${i + 1}`}: ctr ${
              r.ms.toFixed(0)
            } ms, containerd peak RSS ${(r.rssKiB / 1024).toFixed(1)} MiB`,
          );
        }
      }
      await sh("rm", ["-rf", run]);
    }
    const result = {
      date: new Date().toISOString(),
      image: { layers: LAYERS, compressedBytes: compressed },
      pairs,
      tugV8Flags: [...TUG_V8_FLAGS, ...extraV8Flags],
      tug: {
        medianMs: median(tug.map((r) => r.ms)),
        medianProcessMs: median(tug.map((r) => r.processMs)),
        medianPeakRssMiB: median(tug.map((r) => r.rssKiB)) / 1024,
        maxPeakRssMiB: Math.max(...tug.map((r) => r.rssKiB)) / 1024,
      },
      containerd: {
        medianMs: median(ctr.map((r) => r.ms)),
        medianPeakRssMiB: median(ctr.map((r) => r.rssKiB)) / 1024,
        maxPeakRssMiB: Math.max(...ctr.map((r) => r.rssKiB)) / 1024,
      },
      ratio: 0,
      processRatio: 0,
    };
    result.ratio = result.tug.medianMs / result.containerd.medianMs;
    result.processRatio = result.tug.medianProcessMs / result.containerd.medianMs;
    console.log(JSON.stringify(result, null, 2));
    await Deno.mkdir(RESULTS, { recursive: true });
    await Deno.writeTextFile(join(RESULTS, "pull.json"), JSON.stringify(result, null, 2) + "\n");
  } finally {
    await registry.stop();
    await sh("rm", ["-rf", dir]).catch(() => {});
  }
}
