/**
 * Shared set-up for `tug runtime` integration tests: a temporary state root
 * and bundle per test, and a teardown that force-deletes whatever the test
 * left and then fails if mounts, cgroups or processes remain.
 *
 * @module
 */

import { basename, join } from "node:path";
import {
  assertNothingLeft,
  leftovers,
  runDetached,
  type RunOptions,
  type RunResult,
  TUG,
  tug,
} from "../harness.ts";
import { type BundleOptions, busyboxBundle } from "../bundle.ts";

/** What a runtime test gets. */
export interface RuntimeTest {
  dir: string;
  root: string;
  bundle: string;
  /** Runs `tug runtime --root <root> ...args`. */
  rt(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Like rt, but fails the test unless the exit code is 0; returns stdout. */
  ok(args: readonly string[], options?: RunOptions): Promise<string>;
}

/** Runs `fn` with a fresh bundle and state root, then cleans up and checks nothing was left behind. */
export async function withRuntime(
  bundleOptions: BundleOptions,
  fn: (t: RuntimeTest) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-rt-" });
  const before = leftovers(dir);
  const root = join(dir, "state");
  // Containers of different tests must not share a cgroup, even with the same id.
  const testCgroup = `tug-test/${basename(dir)}`;
  const bundle = await busyboxBundle(join(dir, "bundle"), {
    ...bundleOptions,
    modify: (spec) => {
      spec.linux!.cgroupsPath = testCgroup;
      bundleOptions.modify?.(spec);
    },
  });
  // Commands that leave a container behind hand it their stdio: wait for their exit, not for EOF.
  const detaches = (args: readonly string[]) =>
    args[0] === "create" ||
    (args[0] === "run" && (args.includes("-d") || args.includes("--detach")));
  const rt = (args: readonly string[], options?: RunOptions) =>
    detaches(args)
      ? runDetached(TUG, ["runtime", "--root", root, ...args], { cwd: bundle, ...options })
      : tug(["runtime", "--root", root, ...args], { cwd: bundle, ...options });
  const ok = async (args: readonly string[], options?: RunOptions) => {
    const r = await rt(args, options);
    if (r.code !== 0) {
      throw new Error(`tug runtime ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
    }
    return r.stdout;
  };
  let failure: unknown;
  try {
    await fn({ dir, root, bundle, rt, ok });
  } catch (err) {
    failure = err;
  }
  try {
    const ids = (await rt(["list", "-q"])).stdout.trim().split("\n").filter(Boolean);
    for (const id of ids) await rt(["delete", "--force", id]);
    assertNothingLeft(before, dir);
  } catch (err) {
    failure ??= err;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  if (failure) throw failure;
}

/** Polls `check` every 10 ms until it returns true, failing after `ms`. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The OCI status of a container. */
export async function statusOf(t: RuntimeTest, id: string): Promise<string> {
  return JSON.parse(await t.ok(["state", id])).status;
}

/** True once `pid` has exited (a zombie has: its reaper, outside the test, may not have reaped it yet). */
export async function exited(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Kills what a test started and the runtime should have ended (hooks, inits, leftovers), so that a failing test cleans up after itself. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    // Never a process group or everything: 0 (a pid file read empty) would kill the test runner.
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone, as it should be
    }
  }
}
