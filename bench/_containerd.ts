/**
 * A private containerd 1.6 for the benchmarks: its own root, state, sockets,
 * runc root and FIFO directory in a directory of ours (never the system's
 * default paths; the `opt` plugin, which would create /opt/containerd, is
 * disabled), started in its own session so that a Ctrl-C reaches only the
 * harness, and stopped by pid with every container and shim it started.
 *
 * One instance runs its containers with runc, another with crun: the runtime
 * is chosen per task through ctr's `--runc-binary` (runc v2 shim options),
 * the way containerd's CRI configures `BinaryName`. Container cgroups go
 * under `<cgroup parent>/<id>`, an absolute path under the harness's own
 * cgroup in every hierarchy (see benchCgroup in _proc.ts), never elsewhere
 * on the machine.
 *
 * @module
 */

import { join } from "node:path";
import {
  alive,
  descendants,
  exec,
  findProcesses,
  killPids,
  type Output,
  processesRootedUnder,
  sleep,
} from "./_proc.ts";

/** Options for {@link startContainerd}. */
export interface ContainerdOptions {
  /** Which OCI runtime its tasks use. */
  runtime: "runc" | "crun";
  /** Path of the runtime binary. */
  runtimeBinary: string;
  /** Container cgroups go under this absolute cgroup path. */
  cgroupParent: string;
}

/** A running private containerd. */
export interface Containerd {
  /** Its directory (config, root, state, log). */
  dir: string;
  pid: number;
  socket: string;
  runtime: "runc" | "crun";
  /** Runs `ctr --address <socket> …`. */
  ctr(args: readonly string[], timeout?: number): Promise<Output>;
  /** The `ctr run` flags placing container `id` in this instance's runtime, runc root, FIFO dir and cgroup. */
  runFlags(id: string): string[];
  /** Pids of the `containerd-shim-runc-v2` processes serving this instance. */
  shimPids(): number[];
  /** Kills and removes every task and container, in parallel. */
  removeAll(): Promise<void>;
  /** Removes every container, stops containerd (SIGTERM, then SIGKILL), kills leftover shims and containers, by pid. */
  stop(): Promise<void>;
}

const DISABLED = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
];

/** Starts containerd with everything under `dir` (created), and resolves once `ctr version` answers. */
export async function startContainerd(
  dir: string,
  options: ContainerdOptions,
): Promise<Containerd> {
  await Deno.mkdir(dir, { recursive: true });
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  const runcRoot = join(dir, `${options.runtime}-root`);
  const fifoDir = join(dir, "fifo");
  await Deno.writeTextFile(
    config,
    [
      "version = 2",
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      `disabled_plugins = ${JSON.stringify(DISABLED)}`,
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      "[debug]",
      '  address = ""',
      '  level = "warn"',
      "[metrics]",
      '  address = ""',
      "",
    ].join("\n"),
  );
  const log = await Deno.open(join(dir, "containerd.log"), {
    write: true,
    create: true,
    append: true,
  });
  const child = new Deno.Command("containerd", {
    args: ["--config", config],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    detached: true,
  }).spawn();
  const logging = child.stderr.pipeTo(log.writable).catch(() => {});
  const ctr = (args: readonly string[], timeout = 120_000) =>
    exec("ctr", ["--address", socket, ...args], { timeout });
  const shimPids = () =>
    findProcesses((c) => c.includes("containerd-shim") && c.includes(`-address ${socket}`));

  const removeAll = async () => {
    const out = await ctr(["containers", "list", "--quiet"]);
    const ids = out.stdout.split("\n").map((s) => s.trim()).filter(Boolean);
    await Promise.all(ids.map(async (id) => {
      await ctr(["tasks", "delete", "--force", id]);
      await ctr(["containers", "delete", id]);
    }));
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (alive(child.pid)) await removeAll().catch(() => {});
    const shims = shimPids();
    await killPids([child.pid], "SIGTERM", 10_000);
    await child.status;
    await logging;
    // Shims still running (a removal that failed) and their containers: by pid.
    const left = shims.filter(alive);
    await killPids([...descendants(left), ...processesRootedUnder(dir)], "SIGKILL");
    await killPids(left, "SIGKILL");
  };

  for (let i = 0;; i++) {
    const r = await ctr(["version"], 5000);
    if (r.code === 0) break;
    if (i >= 200 || !alive(child.pid)) {
      await stop();
      throw new Error(`containerd did not start: see ${join(dir, "containerd.log")}`);
    }
    await sleep(50);
  }
  return {
    dir,
    pid: child.pid,
    socket,
    runtime: options.runtime,
    ctr,
    runFlags: (id) => [
      "--runc-binary",
      options.runtimeBinary,
      "--runc-root",
      runcRoot,
      "--fifo-dir",
      fifoDir,
      "--cgroup",
      `${options.cgroupParent}/${id}`,
    ],
    shimPids,
    removeAll,
    stop,
  };
}
