/**
 * Starts and removals of one container racing each other, `run --rm`
 * across a restart of the daemon, and a daemon stopped while clients wait
 * for tasks (each found by probing a running daemon; see the commits).
 */

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  busyboxDaemon,
  ok,
  shimPids,
  showSuppressed,
  tasks,
  type TestDaemon,
  waitFor,
} from "./daemon.ts";
import { ownCgroups, requires } from "./harness.ts";
import { startRegistry, type TestRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox", "cgroup1");

async function containerIds(daemon: TestDaemon): Promise<string[]> {
  return (await ok(daemon, ["containers", "list", "-q"])).split("\n").filter(Boolean);
}

/** Pids in the container's pids cgroup (v1 here); none once the cgroup is gone. */
function cgroupPids(daemon: TestDaemon, id: string): number[] {
  const pids = ownCgroups().get("pids");
  if (!pids) return [];
  try {
    return Deno.readTextFileSync(join(pids, daemon.cgroupParent, "default", id, "cgroup.procs"))
      .split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function withBusybox(
  fn: (registry: TestRegistry, daemon: TestDaemon) => Promise<void>,
): Promise<void> {
  await using registry = await startRegistry();
  await using daemon = await busyboxDaemon(registry);
  await fn(registry, daemon);
}

Deno.test({
  name:
    "two starts of one container at once: one starts it, the other is refused, and the task stays known",
  ignore,
  fn: showSuppressed(() =>
    withBusybox(async (_registry, daemon) => {
      // A group of its own each round: the starts also race to start the group's shim, where the
      // losing start removed the winner's task from the daemon's table (5 of 5 before the fix).
      for (let round = 0; round < 5; round++) {
        const id = `s${round}`;
        await ok(daemon, [
          "containers",
          "create",
          "--label",
          `io.tug.shim.group=race${round}`,
          BUSYBOX,
          id,
          "sleep",
          "1000",
        ]);
        const results = await Promise.all(
          [1, 2].map(() => daemon.tug(["tasks", "start", "-d", id])),
        );
        const codes = results.map((r) => r.code).sort();
        assertEquals(codes, [0, 1], results.map((r) => r.stderr).join(" | "));
        assertStringIncludes(results.find((r) => r.code)!.stderr, "its task is running");
        const task = (await tasks(daemon)).find((t) => t.id === id);
        assertEquals(task?.status, "running", `round ${round}: the task is known`);
        const refused = await daemon.tug(["containers", "rm", id]);
        assert(refused.code !== 0, "a running container is not removed without -f");
        await ok(daemon, ["containers", "rm", "-f", id]);
        assertEquals(cgroupPids(daemon, id), [], `round ${round}: no process left`);
      }
    })
  ),
});

Deno.test({
  name:
    "removals racing removals and starts of one container: each succeeds or finds nothing, and nothing is left running",
  ignore,
  fn: showSuppressed(() =>
    withBusybox(async (_registry, daemon) => {
      for (let round = 0; round < 5; round++) {
        const id = `r${round}`;
        await ok(daemon, ["run", "-d", BUSYBOX, id, "sleep", "1000"]);
        const results = await Promise.all(
          [1, 2, 3].map(() => daemon.tug(["containers", "rm", "-f", id])),
        );
        for (const r of results) {
          // Docker's answer to the losers: the container is not there (any more). Never a 500.
          assert(r.code === 0 || /does not exist/.test(r.stderr), `rm -f: ${r.stderr}`);
        }
        assert(results.some((r) => r.code === 0), "one removal succeeded");
        assertEquals(await containerIds(daemon), []);
        assertEquals(cgroupPids(daemon, id), []);
      }
      for (let round = 0; round < 6; round++) {
        const id = `sr${round}`;
        await ok(daemon, ["containers", "create", BUSYBOX, id, "sleep", "1000"]);
        const [start, rm] = await Promise.all([
          daemon.tug(["tasks", "start", "-d", id]),
          daemon.tug(["containers", "rm", "-f", id]),
        ]);
        assertEquals(rm.code, 0, `rm -f: ${rm.stderr}`);
        assert(start.code === 0 || /does not exist/.test(start.stderr), `start: ${start.stderr}`);
        assertEquals(await containerIds(daemon), [], `round ${round}`);
        assertEquals(await tasks(daemon), [], `round ${round}`);
        assertEquals(cgroupPids(daemon, id), [], `round ${round}: no orphan task`);
      }
    })
  ),
});

Deno.test({
  name:
    "run --rm whose daemon was killed: once restarted, the daemon removes the container when its task has exited",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using first = await busyboxDaemon(registry);
    // One task ends while the daemon is down, the other after the restart.
    const clis = [
      first.tug(["run", "--rm", BUSYBOX, "short", "sleep", "1"]),
      first.tug(["run", "--rm", BUSYBOX, "long", "sleep", "5"]),
    ];
    await waitFor("both tasks running", async () => {
      const t = await tasks(first);
      return t.filter((x) => x.status === "running").length === 2 ? true : undefined;
    });
    await first.kill9();
    await Promise.all(clis); // they fail: their daemon went away
    await new Promise((r) => setTimeout(r, 2000));
    const daemon = await first.restart();
    await waitFor("both containers removed", async () => {
      const ids = await containerIds(daemon);
      return ids.length === 0 ? true : undefined;
    });
    assertEquals(await tasks(daemon), []);
  }),
});

Deno.test({
  name:
    "SIGTERM while clients wait for running tasks: the daemon exits, the tasks run on, and a restart finds them",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using first = await busyboxDaemon(registry);
    // An attached run and a run --rm: each has a wait in flight (the daemon stayed up until the
    // tasks exited, so systemd's stop would have timed out).
    const clis = [
      first.tug(["run", BUSYBOX, "a", "sleep", "1000"]),
      first.tug(["run", "--rm", BUSYBOX, "b", "sleep", "1000"]),
    ];
    await waitFor("both tasks running", async () => {
      const t = await tasks(first);
      return t.filter((x) => x.status === "running").length === 2 ? true : undefined;
    });
    assertEquals(await first.stop(), 0);
    for (const r of await Promise.all(clis)) assert(r.code !== 0, "the CLI learns it");
    const second = await first.restart();
    const running = (await tasks(second)).map((t) => `${t.id} ${t.status}`).sort();
    assertEquals(running, ["a running", "b running"]);
    await ok(second, ["containers", "rm", "-f", "a", "b"]);
  }),
});

Deno.test({
  name:
    "a shim left without containers exits after shim.idle_exit while the daemon runs, and the next start brings one up",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using daemon = await busyboxDaemon(registry, {
      extraConfig: '[shim]\nidle_exit = "1s"\n',
    });
    // The daemon's connection kept every empty shim alive for the daemon's life.
    for (let round = 0; round < 2; round++) {
      const r = await daemon.tug(["run", "--rm", BUSYBOX, `c${round}`, "echo", "hi"]);
      assertEquals([r.code, r.stdout], [0, "hi\n"], r.stderr);
      await waitFor(
        "the idle shim to exit",
        () => Promise.resolve(shimPids(daemon.dir).length === 0 ? true : undefined),
      );
      // Its directory goes with it (one was left for every group ever used).
      await waitFor("its directory to go", () =>
        Promise.resolve(
          [...Deno.readDirSync(join(daemon.dir, "state", "shims"))].length === 0 ? true : undefined,
        ));
    }
  }),
});

Deno.test({
  name:
    "a shim killed with -9: the daemon starts a new one at once, which adopts the containers and reports their exits; attaches that can get nothing say so",
  ignore,
  fn: showSuppressed(() =>
    withBusybox(async (_registry, daemon) => {
      await ok(daemon, ["run", "-d", BUSYBOX, "lives", "sleep", "1000"]);
      await ok(daemon, ["run", "-d", BUSYBOX, "ends", "sleep", "2"]);
      const [shim] = shimPids(daemon.dir);
      assert(shim !== undefined);
      Deno.kill(shim, "SIGKILL");
      // Nothing but `tasks ls` (which does not reach a shim) until the exit shows: the daemon
      // reported "ends" running for as long as no other request started a shim for its group.
      const ended = await waitFor("the exit of the container whose shim died", async () => {
        const t = (await tasks(daemon)).find((x) => x.id === "ends");
        return t?.status === "stopped" ? t : undefined;
      });
      assertEquals(ended.status, "stopped");
      const [next] = shimPids(daemon.dir);
      assert(next !== undefined && next !== shim, "a new shim");
      assertEquals((await tasks(daemon)).find((x) => x.id === "lives")?.status, "running");
      assertEquals(
        await ok(daemon, ["tasks", "exec", "--exec-id", "e", "lives", "echo", "ok"]),
        "ok\n",
      );
      // An attach that can get nothing says so (it hung for ever, or ended at once for a stopped task).
      const adopted = await daemon.tug(["tasks", "attach", "lives"], { timeout: 10_000 });
      assert(adopted.code !== 0);
      assertStringIncludes(adopted.stderr, "its output is no longer captured");
      const over = await daemon.tug(["tasks", "attach", "ends"], { timeout: 10_000 });
      assert(over.code !== 0);
      assertStringIncludes(over.stderr, "it is stopped");
      await ok(daemon, ["containers", "rm", "-f", "lives", "ends"]);
    })
  ),
});

Deno.test({
  name: "execs of one id at once: exactly one runs, the others are refused",
  ignore,
  fn: showSuppressed(() =>
    withBusybox(async (_registry, daemon) => {
      await ok(daemon, ["run", "-d", BUSYBOX, "ex", "sleep", "1000"]);
      // The id was taken only once the exec had started: two could run, and one's CLI got the
      // other's exit code (6 rounds in 30 with five at once).
      for (let round = 0; round < 25; round++) {
        const results = await Promise.all([1, 2, 3, 4, 5, 6].map((k) =>
          daemon.tug([
            "tasks",
            "exec",
            "--exec-id",
            `e${round}`,
            "ex",
            "sh",
            "-c",
            `echo R${k}; sleep 0.${k}; exit ${k + 2}`,
          ])
        ));
        const ran = results.filter((r) => r.stdout.startsWith("R"));
        assertEquals(ran.length, 1, `round ${round}: ${results.map((r) => r.stdout + r.stderr)}`);
        const k = Number(ran[0]!.stdout.trim().slice(1));
        assertEquals(ran[0]!.code, k + 2, "its own exit code");
        for (const r of results.filter((r) => r !== ran[0])) {
          assertStringIncludes(r.stderr, "running already");
        }
      }
      await ok(daemon, ["containers", "rm", "-f", "ex"]);
    })
  ),
});

Deno.test({
  name:
    "an on-failure container that failed while the daemon was down is restarted when it is back",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using first = await busyboxDaemon(registry);
    await ok(first, [
      "run",
      "-d",
      "--restart",
      "on-failure:3",
      BUSYBOX,
      "of",
      "sh",
      "-c",
      "echo run; sleep 1; exit 1",
    ]);
    await first.kill9();
    await new Promise((r) => setTimeout(r, 2000)); // it fails meanwhile
    const daemon = await first.restart();
    // The restarted daemon applied only always and unless-stopped: it stayed stopped.
    await waitFor("a restart", async () => {
      const c = JSON.parse(await ok(daemon, ["containers", "info", "of"]));
      return Number(c.labels["io.tug.restart.count"] ?? 0) >= 1 ? true : undefined;
    });
    await ok(daemon, ["containers", "rm", "-f", "of"]);
  }),
});
